"""The two pictures ``ropedoctor smoke --out DIR`` draws: passkey accuracy over length x depth, and loss against
position for the scaled model and its unscaled baseline.

matplotlib is imported only when a plot is drawn, and through its object API (``Figure`` with the Agg canvas),
never ``pyplot``: no global backend switch, no display needed, nothing left open. Each PNG is rendered in memory
and written with ``write_atomic``, so a crash leaves the old file or the new one.

Inputs are plain mappings, the shapes of the JSON report:

* a passkey cell: ``{"length": tokens, "depth": 0..1, "n": trials, "correct": hits}`` (``"accuracy"`` may stand
  for ``correct / n``), optionally ``"variant"`` (``classic``, ``digits``): one panel per variant;
* a loss bucket: ``{"start": first position, "end": past the last, "loss": mean nats per token}``, optionally
  ``"n"`` (tokens scored).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ropedoctor.writers.atomic import write_atomic

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
_SCALED, _BASELINE, _WINDOW = "#1f77b4", "#d62728", "#2ca02c"


def passkey_heatmap(cells: Sequence[Mapping[str, Any]], path: Path, title: str, *,
                    original: int | None = None) -> Path:
    """Accuracy per (length, depth) cell as a heatmap (lengths across, depths down, 0% at the top as in the
    needle-in-a-haystack plots), each cell annotated with its accuracy and n; ``original`` (the trained length)
    outlined. ValueError when there is no cell.
    """
    if not cells:
        raise ValueError("no passkey cells to plot")
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.figure import Figure

    variants = sorted({str(cell.get("variant", "")) for cell in cells})
    lengths = sorted({int(cell["length"]) for cell in cells})
    depths = sorted({float(cell["depth"]) for cell in cells})
    # red (0%) -> yellow -> green (100%): the colours the needle-in-a-haystack pictures use
    colours = LinearSegmentedColormap.from_list("passkey", ["#d73027", "#fee08b", "#1a9850"])
    width = 1.6 + 0.9 * len(lengths) * len(variants)
    figure = Figure(figsize=(max(width, 4.5), 1.4 + 0.5 * len(depths)), dpi=DPI, layout="constrained")
    panels = figure.subplots(1, len(variants), squeeze=False)[0]
    image = None
    for axes, variant in zip(panels, variants, strict=True):
        grid = [[math.nan] * len(lengths) for _ in depths]
        counts = [[0] * len(lengths) for _ in depths]
        for cell in cells:
            if str(cell.get("variant", "")) != variant:
                continue
            row, column = depths.index(float(cell["depth"])), lengths.index(int(cell["length"]))
            grid[row][column], counts[row][column] = _accuracy(cell), int(cell["n"])
        image = axes.imshow(grid, cmap=colours, vmin=0.0, vmax=1.0, aspect="auto")
        for row in range(len(depths)):
            for column in range(len(lengths)):
                value = grid[row][column]
                text = "-" if math.isnan(value) else f"{value:.0%}\nn={counts[row][column]}"
                axes.text(column, row, text, ha="center", va="center", fontsize=7)
        axes.set_xticks(range(len(lengths)), [_tokens(length) + ("\n(trained)" if length == original else "")
                                              for length in lengths])
        axes.set_yticks(range(len(depths)), [f"{depth:.0%}" for depth in depths])
        axes.set_xlabel("context length (tokens)")
        axes.set_ylabel("needle depth")
        if variant:
            axes.set_title(f"{variant} filler", fontsize=9)
        if original is not None and original in lengths:
            column = lengths.index(original)
            axes.add_patch(_outline(column, len(depths)))
            axes.get_xticklabels()[column].set_fontweight("bold")
            axes.get_xticklabels()[column].set_color(_WINDOW)
    assert image is not None
    figure.colorbar(image, ax=list(panels), label="accuracy", fraction=0.05)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def loss_curve(buckets_scaled: Sequence[Mapping[str, Any]], buckets_baseline: Sequence[Mapping[str, Any]] | None,
               original: int, path: Path, *, title: str | None = None) -> Path:
    """Mean token loss per position bucket, scaled against unscaled (when given), the trained window shaded.

    Each bucket is drawn as a horizontal segment over its positions with a marker at its middle, so buckets
    of unequal width read correctly. ValueError when there is no scaled bucket.
    """
    if not buckets_scaled:
        raise ValueError("no loss buckets to plot")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 3.8), dpi=DPI, layout="constrained")
    axes = figure.subplots()
    end = max(int(b["end"]) for b in [*buckets_scaled, *(buckets_baseline or [])])
    axes.axvspan(0, min(original, end), color=_WINDOW, alpha=0.12, label=f"trained window ({_tokens(original)})")
    axes.axvline(original, color=_WINDOW, linestyle="--", linewidth=1)
    _buckets(axes, buckets_scaled, _SCALED, "scaled (planned RoPE)", "o")
    if buckets_baseline:
        _buckets(axes, buckets_baseline, _BASELINE, "baseline (unscaled)", "s")
    axes.set_xlim(0, end)
    axes.set_xlabel("position (tokens)")
    axes.set_ylabel("mean token loss (nats)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    axes.set_title(title or "loss against position", fontsize=10)
    return _save(figure, path)


def _buckets(axes: Axes, buckets: Sequence[Mapping[str, Any]], colour: str, label: str, marker: str) -> None:
    ordered = sorted(buckets, key=lambda b: int(b["start"]))
    finite = [b for b in ordered if _finite(b["loss"])]
    middles = [(int(b["start"]) + int(b["end"])) / 2 for b in finite]
    axes.plot(middles, [float(b["loss"]) for b in finite], color=colour, marker=marker, linewidth=1.2, label=label)
    for bucket in finite:
        axes.hlines(float(bucket["loss"]), int(bucket["start"]), int(bucket["end"]), color=colour, alpha=0.35,
                    linewidth=3)


def _outline(column: int, rows: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((column - 0.5, -0.5), 1, rows, fill=False, edgecolor=_WINDOW, linewidth=2.5)


def _accuracy(cell: Mapping[str, Any]) -> float:
    n = int(cell["n"])
    if "correct" in cell:
        return int(cell["correct"]) / n if n else math.nan
    return float(cell["accuracy"]) if n else math.nan


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _tokens(n: int) -> str:
    """1024 -> "1K", 131072 -> "128K", 1000 -> "1000": the way context lengths are usually written."""
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def _save(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_atomic(path, buffer.getvalue())
    return path
