"""llama.cpp (llama-cpp-python) loads every GGUF `fix` writes, and its load log shows the new values."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import invoke
from gguf_models import VT, write_tiny_llama

LOAD = """
import sys
from llama_cpp import Llama
Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_threads=1, verbose=True)
print("LOADED")
"""


def load_log(path: Path, n_ctx: int = 256) -> tuple[bool, str]:
    """(loaded, the load log) from a fresh process (a refused file may abort it)."""
    env = {**os.environ, "GGML_NO_BACKTRACE": "1"}  # an abort need not run gdb
    done = subprocess.run([sys.executable, "-c", LOAD, str(path), str(n_ctx)], capture_output=True, text=True,
                          timeout=120, env=env)
    return done.returncode == 0 and "LOADED" in done.stdout.splitlines(), done.stderr


def logged(log: str, name: str) -> str:
    match = re.search(rf"{re.escape(name)}\s*=\s*(\S+)", log)
    assert match, f"{name} not in the load log:\n{log[-3000:]}"
    return match.group(1)


def fix(path: Path, *args: str) -> dict[str, object]:
    result = invoke("fix", str(path), *args, "--no-backup", "--format", "json")
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_tiny_model_loads_as_written(tmp_path: Path) -> None:
    loaded, log = load_log(write_tiny_llama(tmp_path / "plain.gguf"))
    assert loaded, log[-2000:]
    assert logged(log, "n_ctx_train") == "256"


def test_yarn_context_fixed_in_place(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "yarn.gguf", 256, {
        "{arch}.rope.scaling.type": ("yarn", VT.STRING), "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32),
        "{arch}.rope.scaling.original_context_length": (256, VT.UINT32)})
    assert fix(path, "--ctx", "1024")["mode"] == "in-place"
    loaded, log = load_log(path, 1024)
    assert loaded, log[-2000:]
    assert logged(log, "n_ctx_train") == "1024"
    assert logged(log, "rope scaling") == "yarn"
    assert logged(log, "n_ctx_orig_yarn") == "256"
    assert float(logged(log, "freq_scale_train")) == pytest.approx(0.25)


def test_unloadable_file_becomes_loadable(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "bad.gguf", 256, {
        "{arch}.rope.scaling.type": ("dynamic", VT.STRING), "{arch}.rope.scaling.factor": (2.0, VT.FLOAT32)})
    loaded, _ = load_log(path)
    assert not loaded  # llama.cpp aborts on the unknown scaling type
    assert fix(path, "--type", "yarn", "--factor", "2")["mode"] == "rewrite"
    loaded, log = load_log(path, 512)
    assert loaded, log[-2000:]
    assert logged(log, "rope scaling") == "yarn" and logged(log, "n_ctx_train") == "512"
    assert float(logged(log, "freq_scale_train")) == pytest.approx(0.5)


@pytest.mark.parametrize(("args", "base", "scale", "ctx"), [
    (["--type", "linear", "--factor", "2"], 10000.0, 0.5, 512),
    (["--type", "ntk", "--factor", "4"], 10000.0 * 4 ** (16 / 14), 1.0, 1024),  # a static base, no scaling
])
def test_linear_and_ntk(tmp_path: Path, args: list[str], base: float, scale: float, ctx: int) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf")
    fix(path, *args)
    loaded, log = load_log(path, ctx)
    assert loaded, log[-2000:]
    assert float(logged(log, "freq_base_train")) == pytest.approx(base, rel=1e-5)
    assert float(logged(log, "freq_scale_train")) == pytest.approx(scale)
    assert logged(log, "n_ctx_train") == str(ctx)
