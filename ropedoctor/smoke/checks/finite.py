"""`finite`: one forward pass over N tokens; every logit finite, hidden-state norms per position bucket.

The input is the classic passkey prompt fitted to N tokens: deterministic, natural-looking text that needs no
file. A norm that jumps in the buckets past the original window is the first sign of positions the model never
saw, even when every logit stays finite.
"""

from __future__ import annotations

from collections.abc import Callable

from ropedoctor.smoke import passkey
from ropedoctor.smoke.backend import Backend
from ropedoctor.smoke.checks import CheckOutcome, position_buckets
from ropedoctor.smoke.request import SmokeRequest


def probe_ids(tokenize: Callable[[str], list[int]], length: int, seed: int) -> list[int]:
    """A prompt of (nearly) ``length`` tokens for the passes that only need realistic tokens."""
    return passkey.fit(tokenize, length, "classic", 0.5, 12345, seed, answer_room=0).ids


def run_finite(backend: Backend, request: SmokeRequest, ids: list[int]) -> CheckOutcome:
    backend.reset()
    buckets = position_buckets(len(ids), request.original)
    stats = backend.forward(ids, buckets)
    norms = [{"start": a, "end": b, "norm": stats.bucket_norms.get((a, b))} for a, b in buckets]
    finite_norms = all(row["norm"] is not None and row["norm"] == row["norm"] and abs(row["norm"]) != float("inf")
                       for row in norms)
    passed = stats.all_finite and finite_norms
    spread = [row["norm"] for row in norms if row["norm"] is not None]
    summary = (f"{stats.n_tokens} tokens, {'all logits finite' if stats.all_finite else 'NON-FINITE logits'}; "
               f"{stats.norm_of.replace('_', ' ')} norm " + " / ".join(f"{value:.3g}" for value in spread))
    return CheckOutcome("finite", passed, summary, {
        "tokens": stats.n_tokens, "all_finite": stats.all_finite, "seconds": stats.seconds,
        "norm_of": stats.norm_of, "bucket_norms": norms,
    })
