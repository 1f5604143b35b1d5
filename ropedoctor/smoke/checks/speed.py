"""`speed`: prefill and decode tokens per second at N, and peak memory next to ropedoctor's own estimate.

The prompt fills N tokens minus the decode steps, so the KV cache reaches N. Decoding ignores end-of-sequence:
the rate needs a fixed number of steps. Speed has no pass criterion beyond completing with finite rates: its
numbers depend on the machine (docs/smoke.md); peak memory is reported against the estimate, not judged.
"""

from __future__ import annotations

from ropedoctor.smoke.backend import Backend
from ropedoctor.smoke.checks import CheckOutcome
from ropedoctor.smoke.estimate import MemoryEstimate, human_bytes
from ropedoctor.smoke.request import SmokeRequest

DECODE_STEPS = 32


def run_speed(backend: Backend, request: SmokeRequest, ids: list[int], estimate: MemoryEstimate | None) -> CheckOutcome:
    steps = min(DECODE_STEPS, max(2, len(ids) // 8))
    prompt = ids[: max(1, len(ids) - steps)]
    backend.reset()
    stats = backend.generate_timed(prompt, steps, stop_at_eos=False)
    prefill = stats.prompt_tokens / stats.prefill_seconds if stats.prefill_seconds > 0 else None
    decoded = len(stats.new_ids) - 1
    decode = decoded / stats.decode_seconds if decoded > 0 and stats.decode_seconds > 0 else None
    peak = backend.peak_memory_bytes()
    total = estimate.total if estimate else None
    passed = prefill is not None and decode is not None
    summary = (f"prefill {_rate(prefill)} tok/s ({stats.prompt_tokens} tokens), decode {_rate(decode)} tok/s "
               f"({decoded} steps); peak {human_bytes(peak)}"
               + (f" vs estimate {human_bytes(total)}" if total else ""))
    return CheckOutcome("speed", passed, summary, {
        "prefill_tokens": stats.prompt_tokens, "prefill_seconds": stats.prefill_seconds,
        "prefill_tokens_per_s": prefill, "decode_tokens": decoded, "decode_seconds": stats.decode_seconds,
        "decode_tokens_per_s": decode, "peak_memory_bytes": peak, "memory_estimate_bytes": total,
        "peak_over_estimate": peak / total if total else None,
    })


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
