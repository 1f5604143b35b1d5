"""`perplexity`: token-level loss over N tokens of a long text, per position bucket (the original window, then
each further multiple of it), and with ``--baseline`` the same for the unscaled model.

One pass, every token scored (the backend applies the LM head in chunks). The verdict compares each bucket past
the window with the in-window mean: a correctly scaled model stays near it, an unscaled one blows up right after
the window (shared/reference/smoke_test.md section 2.2). The baseline shows what the scaling bought.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ropedoctor.errors import InputError
from ropedoctor.smoke.checks import CheckOutcome, position_buckets
from ropedoctor.smoke.request import BUNDLED_TEXT, SmokeRequest, Thresholds

CURVE_POINTS = 128  # points of the loss-against-position curve (each the mean over a span of positions)
_COMPRESSED = ((b"\xfd7zXZ\x00", "lzma"), (b"\x1f\x8b", "gzip"), (b"BZh", "bz2"))
_CUT_MARGIN = 64  # tokens past N before the cut, so that the cut cannot change the first N


def text_path(request: SmokeRequest) -> Path:
    if request.text is not None:
        return request.text
    if not BUNDLED_TEXT.is_file():
        raise InputError("perplexity", f"no --text FILE given and no bundled text installed ({BUNDLED_TEXT})")
    return BUNDLED_TEXT


def read_text(path: Path) -> str:
    """The text of ``path``, plain UTF-8 or compressed (xz, gzip, bzip2: told by the first bytes, not the name)."""
    try:
        data = path.read_bytes()
        for magic, module in _COMPRESSED:
            if data.startswith(magic):
                data = importlib.import_module(module).decompress(data)
                break
        return data.decode("utf-8")
    except (OSError, EOFError, ValueError) as exc:  # lzma.LZMAError and UnicodeDecodeError are ValueErrors
        raise InputError(str(path), f"cannot read the text: {getattr(exc, 'strerror', None) or exc}") from None


def text_ids(tokenize: Callable[[str], list[int]], request: SmokeRequest) -> tuple[Path, list[int]]:
    """The first N tokens of the text; a text shorter than N is unusable (repeating it would let the model
    copy and make the far buckets look better than they are).

    Only a prefix is tokenized (8 characters a token, doubled until it holds N tokens), cut at a line end so that
    its tokens are the whole text's: a 1 MB text through a slow tokenizer costs seconds otherwise.
    """
    path = text_path(request)
    text = read_text(path)
    if len(text.encode("utf-8")) + 1 < request.ctx:  # no tokenizer makes more tokens than bytes (+ BOS)
        raise short_text(path, None, len(text), request.ctx)
    take = 8 * request.ctx
    while True:
        cut = len(text) if take >= len(text) else text.rfind("\n", 0, take) + 1 or take
        ids = tokenize(text[:cut])
        if len(ids) >= request.ctx + _CUT_MARGIN or cut == len(text):
            break
        take *= 2
    if len(ids) < request.ctx:
        raise short_text(path, len(ids), len(text), request.ctx)
    return path, ids[: request.ctx]


def short_text(path: Path, tokens: int | None, chars: int, ctx: int) -> InputError:
    has = f"{tokens:,} tokens in this model's tokenizer, fewer than --ctx {ctx}" if tokens is not None else \
        f"{chars:,} characters, fewer than --ctx {ctx} tokens in any tokenizer"
    return InputError(str(path), f"{has}; give a longer --text (the bundled text holds over 250,000 tokens)")


def bucket_losses(losses: list[float], buckets: list[tuple[int, int]]) -> list[float | None]:
    """Mean loss of the tokens at positions [start, end); ``losses[i]`` is the loss of the token at i + 1."""
    out: list[float | None] = []
    for start, end in buckets:
        part = losses[max(0, start - 1): end - 1]
        out.append(sum(part) / len(part) if part else None)
    return out


def curve(losses: list[float], points: int = CURVE_POINTS) -> tuple[list[int], list[float]]:
    """(position, mean loss) over equal spans: the per-token losses are too noisy to plot as they are."""
    span = max(1, math.ceil(len(losses) / points))
    positions, means = [], []
    for start in range(0, len(losses), span):
        part = losses[start: start + span]
        positions.append(start + 1 + len(part) // 2)
        means.append(sum(part) / len(part))
    return positions, means


def perplexity_outcome(scaled: list[float], baseline: list[float] | None, request: SmokeRequest,
                       text: Path) -> CheckOutcome:
    thresholds: Thresholds = request.thresholds
    n_tokens = len(scaled) + 1
    buckets = position_buckets(n_tokens, request.original)
    means = bucket_losses(scaled, buckets)
    base_means = bucket_losses(baseline, buckets) if baseline is not None else [None] * len(buckets)
    inside = means[0]
    rows: list[dict[str, Any]] = []
    worst = 0.0
    finite = all(math.isfinite(value) for value in scaled)
    for (start, end), loss, base in zip(buckets, means, base_means, strict=True):
        ratio = loss / inside if loss is not None and inside else None
        if start > 0 and ratio is not None:
            worst = max(worst, ratio)
        rows.append({"start": start, "end": end, "loss": loss, "ppl": _ppl(loss), "ratio_to_window": ratio,
                     "baseline_loss": base, "baseline_ppl": _ppl(base)})
    beyond = [row for row in rows if row["start"] > 0]
    passed = finite and all(row["ratio_to_window"] is not None and row["ratio_to_window"] <= thresholds.loss_ratio
                            for row in beyond)
    positions, scaled_curve = curve(scaled)
    summary = f"loss in window {_fmt(inside)}" + "".join(
        f", x{row['end'] / request.original:g} {_fmt(row['loss'])}" for row in beyond)
    if beyond:
        summary += f" (worst {worst:.2f}x, limit {thresholds.loss_ratio:g}x)"
    if baseline is not None:
        summary += "; unscaled " + " / ".join(_fmt(row["baseline_loss"]) for row in rows)
    return CheckOutcome("perplexity", passed, summary, {
        "tokens": n_tokens, "text": str(text), "original": request.original, "in_window_loss": inside,
        "worst_ratio": worst if beyond else None, "max_ratio": thresholds.loss_ratio, "buckets": rows,
        "baseline": baseline is not None,
        "curve": {"positions": positions, "scaled": scaled_curve,
                  "baseline": curve(baseline)[1] if baseline is not None else None},
    })


def _ppl(loss: float | None) -> float | None:
    if loss is None:
        return None
    return math.exp(loss) if loss < 700 else None  # past exp(700) a float overflows; JSON has no infinity


def _fmt(loss: float | None) -> str:
    return "-" if loss is None else f"{loss:.3f}"
