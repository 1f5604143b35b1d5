"""bench/smoke_gpu.py: its --tiny code path runs on CPU end to end, and without CUDA the full bench refuses in one
line (the GPU figures themselves are taken on a GPU machine: README, Performance)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT

BENCH = ROOT / "bench" / "smoke_gpu.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_tiny_runs_every_pass(tmp_path: Path) -> None:
    out = tmp_path / "smoke_gpu.json"
    result = run("--tiny", "--lengths", "128,256", "--repeats", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    assert [row["ctx"] for row in doc["rows"]] == [128, 256]
    for row in doc["rows"]:
        assert row["finite"] and row["prefill_tokens_per_s"] > 0 and row["loss_tokens_per_s"] > 0
        assert 0 < row["mfu"] < 1 and row["peak_memory_bytes"] > 0 and row["estimate_bytes"] > 0
        layers, width = doc["config"]["num_hidden_layers"], 4 * 16  # --tiny: 2 layers, 4 heads of 16
        assert row["model_flops"] == pytest.approx(2 * doc["model_params_in_matmuls"] * row["ctx"]
                                                   + 2 * 2 * layers * row["ctx"] ** 2 * width / 2)
    assert doc["targets"]["judged"] is False
    assert "prefill tok/s" in result.stdout


def test_without_cuda_the_bench_refuses_in_one_line() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")  # allowed: on a GPU machine the bench runs instead of refusing
    result = run()
    assert result.returncode == 2
    assert result.stderr.startswith("bench/smoke_gpu.py: error: CUDA is not available")
    assert result.stderr.count("\n") == 1 and not result.stdout


def test_bad_lengths_are_one_line() -> None:
    result = run("--tiny", "--lengths", "4k")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
