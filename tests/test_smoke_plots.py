"""smoke's two PNGs: written atomically, real PNGs of a sensible size, every input shape the report passes."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ropedoctor.smoke.plots import loss_curve, passkey_heatmap

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    assert data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def cells(variants: tuple[str, ...] = ("classic", "digits"), lengths: tuple[int, ...] = (256, 512, 1024),
          trials: int = 3) -> list[dict[str, Any]]:
    out = []
    for v, variant in enumerate(variants):
        for i, length in enumerate(lengths):
            for j, depth in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
                out.append({"variant": variant, "length": length, "depth": depth, "n": trials,
                            "correct": (v + i + j) % (trials + 1), "control": length == lengths[0]})
    return out


def test_heatmap_is_a_png(tmp_path: Path) -> None:
    path = passkey_heatmap(cells(), tmp_path / "passkey.png", "passkey accuracy", original=256)
    assert path == tmp_path / "passkey.png"
    width, height = png_size(path)
    assert 500 <= width <= 2500 and 250 <= height <= 1500
    assert path.stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["passkey.png"]  # no temporary file left beside it


def test_heatmap_one_variant_accuracy_only_and_an_empty_cell(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"length": 512, "depth": 0.5, "n": 4, "accuracy": 0.75},
                                  {"length": 1024, "depth": 0.0, "n": 0, "accuracy": None}]
    width, height = png_size(passkey_heatmap(rows, tmp_path / "one.png", "one", original=None))
    assert width > 300 and height > 150


def test_more_lengths_give_a_wider_picture(tmp_path: Path) -> None:
    narrow = png_size(passkey_heatmap(cells(("classic",), (256, 512)), tmp_path / "a.png", "a", original=256))
    wide = png_size(passkey_heatmap(cells(("classic",), (256, 512, 1024, 2048, 4096)), tmp_path / "b.png", "b",
                                    original=256))
    assert wide[0] > narrow[0]


def test_loss_curve_is_a_png(tmp_path: Path) -> None:
    scaled = [{"start": s, "end": s + 128, "loss": 5.0 + 0.01 * i} for i, s in enumerate(range(0, 1024, 128))]
    baseline = [{"start": s, "end": s + 128, "loss": 5.0 if s < 256 else 9.0} for s in range(0, 1024, 128)]
    path = loss_curve(scaled, baseline, 256, tmp_path / "loss.png", title="tiny")
    width, height = png_size(path)
    assert 500 <= width <= 1500 and 250 <= height <= 1000
    assert path.stat().st_size > 10_000


def test_loss_curve_without_baseline_and_with_gaps(tmp_path: Path) -> None:
    scaled = [{"start": 0, "end": 300, "loss": 4.0}, {"start": 300, "end": 600, "loss": float("nan")},
              {"start": 600, "end": 1000, "loss": 4.5}]
    assert png_size(loss_curve(scaled, None, 256, tmp_path / "loss.png"))[0] > 0


def test_empty_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no passkey cells"):
        passkey_heatmap([], tmp_path / "x.png", "x")
    with pytest.raises(ValueError, match="no loss buckets"):
        loss_curve([], None, 256, tmp_path / "y.png")
    assert not list(tmp_path.iterdir())


def test_plots_module_imports_no_matplotlib_until_drawing() -> None:
    code = ("import sys, ropedoctor.smoke.plots; "
            "print(any(m == 'matplotlib' or m.startswith('matplotlib.') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_drawing_leaves_pyplot_alone(tmp_path: Path) -> None:
    """The object API only: no pyplot import, no global backend switch in the caller's process."""
    code = ("import sys; from pathlib import Path; from ropedoctor.smoke.plots import loss_curve; "
            f"loss_curve([{{'start': 0, 'end': 10, 'loss': 1.0}}], None, 5, Path({str(tmp_path / 'l.png')!r})); "
            "print('matplotlib.pyplot' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
