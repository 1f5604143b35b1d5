"""What llama.cpp itself does with a GGUF header, where the header alone does not say it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gguf_files import VT, llama_kv, write_gguf
from ropedoctor import gguf_keys as G
from ropedoctor.sources.gguf_source import read_gguf_spec

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("blocks", "positions"), [(32, "rope"), (40, "alibi")])
def test_baichuan_13b_is_alibi_in_llama_cpp(tmp_path: Path, blocks: int, positions: str) -> None:
    """llama.cpp loads a 40-block Baichuan as LLM_TYPE_13B, whose graph applies no RoPE (ALiBi, max bias 8); the
    32-block 7B rotates."""
    path = write_gguf(tmp_path / "baichuan.gguf", "baichuan",
                      llama_kv(4096, 40, 5120, {"{arch}.block_count": (blocks, VT.UINT32)}))
    spec = read_gguf_spec(path)
    assert spec.positions == positions
    assert (spec.method == "none") == (positions == "alibi")


def _fix(path: Path, ctx: int) -> None:
    done = subprocess.run([sys.executable, "-m", "ropedoctor", "fix", str(path), "--ctx", str(ctx)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr


def test_fix_keeps_mrope_sections(tmp_path: Path) -> None:
    """Qwen2.5-VL's M-RoPE sections survive `fix --ctx` in both formats: llama.cpp refuses a qwen2vl GGUF
    without rope.dimension_sections, transformers' M-RoPE a block without mrope_section."""
    gguf_path = write_gguf(tmp_path / "qwen2vl.gguf", "qwen2vl", {
        **llama_kv(32768, 28, 3584), "{arch}.rope.dimension_count": (128, VT.UINT32),
        "{arch}.rope.freq_base": (1e6, VT.FLOAT32), "{arch}.rope.dimension_sections": ([16, 24, 24, 0], VT.ARRAY)})
    _fix(gguf_path, 65536)
    fixed = read_gguf_spec(gguf_path)
    assert fixed.method == "yarn" and fixed.gguf is not None
    assert list(fixed.gguf.values[G.ROPE_DIMENSION_SECTIONS]) == [16, 24, 24, 0]

    folder = tmp_path / "vl"
    shutil.copytree(ROOT / "fixtures" / "qwen2.5-vl-7b-instruct", folder)
    _fix(folder / "config.json", 256000)
    block = json.loads((folder / "config.json").read_text())["rope_scaling"]
    assert block["rope_type"] == "yarn" and block["mrope_section"] == [16, 24, 24]
