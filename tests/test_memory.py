"""The memory bill: KV cache bytes against what llama.cpp allocates, layer layouts against transformers' config
classes, weights against safetensors and GGUF files, parameter estimates against published model sizes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import gguf
import pytest

from gguf_models import _vocab, write_tiny_llama
from ropedoctor import gguf_keys as G
from ropedoctor.errors import InputError
from ropedoctor.memory import (
    ModelShape,
    estimate_params,
    estimated_weights,
    kv_bytes_per_token,
    kv_cache_bytes,
    row_bytes,
    shape_from_config,
    shape_from_gguf,
    weight_bytes,
    weights_from_folder,
    weights_from_gguf,
)
from ropedoctor.sources.gguf_header import read_gguf

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MIB = 1 << 20


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name / "config.json").read_text())
    return data


def shape(name: str) -> ModelShape:
    return shape_from_config(fixture(name))


# --- bytes per element --------------------------------------------------------------------------
def test_bytes_per_element_are_ggml_block_sizes() -> None:
    sizes = gguf.constants.GGML_QUANT_SIZES
    assert row_bytes("q8_0", 32) == sizes[gguf.GGMLQuantizationType.Q8_0][1] == 34
    assert row_bytes("q4_0", 32) == sizes[gguf.GGMLQuantizationType.Q4_0][1] == 18
    assert row_bytes("f16", 1) == row_bytes("bf16", 1) == 2
    assert row_bytes("fp8", 7) == 7
    assert row_bytes("q8_0", 33) == 68  # a partial block takes a whole one
    with pytest.raises(InputError):
        row_bytes("f12", 1)


def test_gguf_key_names_match_gguf() -> None:
    keys = gguf.constants.Keys
    assert G.BLOCK_COUNT == keys.LLM.BLOCK_COUNT
    assert G.FEED_FORWARD_LENGTH == keys.LLM.FEED_FORWARD_LENGTH
    assert G.EXPERT_COUNT == keys.LLM.EXPERT_COUNT
    assert G.VALUE_LENGTH == keys.Attention.VALUE_LENGTH
    assert G.KV_LORA_RANK == keys.Attention.KV_LORA_RANK
    assert G.KEY_LENGTH_MLA == keys.Attention.KEY_LENGTH_MLA
    assert G.VALUE_LENGTH_MLA == keys.Attention.VALUE_LENGTH_MLA
    assert G.SLIDING_WINDOW_PATTERN == keys.Attention.SLIDING_WINDOW_PATTERN


# --- the KV formula on published configs ----------------------------------------------------------
@pytest.mark.parametrize(("name", "per_token"), [
    # 2 x layers x kv heads x head dim x 2 bytes
    ("meta-llama-3-8b", 2 * 32 * 8 * 128 * 2),
    ("qwen2.5-7b-instruct", 2 * 28 * 4 * 128 * 2),
    ("meta-llama-3.2-1b", 2 * 16 * 8 * 64 * 2),  # explicit head_dim
    ("yi-1.5-34b", 2 * 60 * 8 * 128 * 2),
    ("chatglm3-6b", 2 * 28 * 2 * 128 * 2),  # multi_query_group_num, kv_channels
    ("qwen-7b", 2 * 32 * 32 * 128 * 2),  # Qwen v1: no GQA
    ("falcon-7b-instruct", 2 * 32 * 1 * 64 * 2),  # multi_query: one KV head
    ("h2ogpt-oig-oasst1-256-6.9b", 2 * 32 * 32 * 128 * 2),  # GPT-NeoX: hidden / heads
    ("deepseek-v3", 61 * (512 + 64) * 2),  # MLA latent, no V
    ("deepseek-v2-lite", 27 * (512 + 64) * 2),
    ("gemma-3-4b-it", 2 * 34 * 4 * 256 * 2),  # text_config nesting
    ("nomic-embed-text-v1.5", 0),  # an encoder keeps no KV cache
    ("modernbert-base", 0),
])
def test_kv_bytes_per_token(name: str, per_token: int) -> None:
    assert kv_bytes_per_token(shape(name)) == per_token


def test_kv_cache_at_n_counts_slots_and_dtypes() -> None:
    llama3 = shape("meta-llama-3-8b")
    assert kv_cache_bytes(llama3, 8192) == 8192 * 131072 == 1 << 30  # the well-known 1 GiB at 8K
    assert kv_cache_bytes(llama3, 8192, slots=4) == 4 << 30
    assert kv_cache_bytes(llama3, 8192, "fp8") == 512 * MIB
    assert kv_cache_bytes(llama3, 8192, "q8_0") == (1 << 30) // 2 * 34 // 32
    assert kv_cache_bytes(llama3, 8192, "q4_0") == (1 << 30) // 2 * 18 // 32
    with pytest.raises(InputError):
        kv_cache_bytes(llama3, 8192, slots=0)


def test_sliding_layers_are_capped_at_the_window() -> None:
    gemma = shape("gemma-3-1b-it")  # 26 layers, window 512, every 6th global
    assert (gemma.sliding_window, gemma.sliding_layers) == (512, 22)
    per_layer = 2 * 1 * 256 * 2
    assert kv_cache_bytes(gemma, 32768) == per_layer * (4 * 32768 + 22 * 512)
    assert kv_cache_bytes(gemma, 256) == per_layer * 26 * 256  # below the window nothing is capped
    oss = shape("gpt-oss-20b")  # alternating sliding (128) and full
    assert kv_cache_bytes(oss, 131072) == 2 * 8 * 64 * 2 * (12 * 131072 + 12 * 128)
    mistral = shape("mistral-7b-v0.1")  # every layer slides over 4096
    assert kv_cache_bytes(mistral, 32768) == kv_cache_bytes(mistral, 4096)
    assert any("llama.cpp" in note for note in mistral.notes)
    qwen = shape("qwen2.5-7b-instruct")  # sliding_window present, use_sliding_window false
    assert qwen.sliding_layers == 0


def test_llama4_chunked_layers() -> None:
    scout = shape("meta-llama-4-scout-17b-16e")
    assert (scout.window_kind, scout.sliding_window, scout.sliding_layers) == ("chunked", 8192, 36)
    per_layer = 2 * 8 * 128 * 2
    assert kv_cache_bytes(scout, 131072) == per_layer * (12 * 131072 + 36 * 8192)
    assert any("NoPE" in note for note in scout.notes)


def _transformers_layer_types(config: dict[str, Any]) -> list[str]:
    from transformers import AutoConfig

    loaded = AutoConfig.for_model(**config)
    text = loaded.get_text_config()
    types: list[str] = list(text.layer_types)
    return types


@pytest.mark.parametrize("config", [
    fixture("gemma-3-1b-it"),
    fixture("gpt-oss-20b"),
    {"model_type": "gemma2", "num_hidden_layers": 6, "hidden_size": 64, "num_attention_heads": 4,
     "sliding_window": 128},
    {"model_type": "qwen2", "num_hidden_layers": 8, "hidden_size": 64, "num_attention_heads": 4,
     "sliding_window": 256, "use_sliding_window": True, "max_window_layers": 5},
    {"model_type": "llama4_text", "num_hidden_layers": 8, "hidden_size": 64, "num_attention_heads": 4,
     "attention_chunk_size": 1024},
])
def test_sliding_layers_match_transformers_layer_types(config: dict[str, Any]) -> None:
    """transformers' config classes are the oracle for which layers slide (or are chunked)."""
    ours = shape_from_config(config)
    theirs = [kind in ("sliding_attention", "chunked_attention") for kind in _transformers_layer_types(config)]
    assert ours.sliding_mask == tuple(theirs)
    assert ours.sliding_layers == sum(theirs)


def test_missing_shape_is_an_input_error() -> None:
    with pytest.raises(InputError, match="num_hidden_layers is missing"):
        shape_from_config({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4})


# --- weights ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "published_billions"), [
    ("meta-llama-3-8b", 8.03), ("mistral-7b-v0.1", 7.24), ("qwen2.5-7b-instruct", 7.62),
    ("mixtral-8x7b-v0.1", 46.7), ("deepseek-v3", 671.0), ("deepseek-v2-lite", 15.7), ("gemma-3-1b-it", 1.0),
    ("gpt-oss-20b", 20.9), ("qwen-7b", 7.72), ("phi-3.5-mini-instruct", 3.82), ("falcon-7b-instruct", 7.22),
    ("chatglm3-6b", 6.24), ("nomic-embed-text-v1.5", 0.137),
])
def test_parameter_estimate_is_near_the_published_size(name: str, published_billions: float) -> None:
    estimate = estimate_params(shape(name))
    assert estimate is not None
    assert abs(estimate / 1e9 / published_billions - 1) < 0.02


def test_estimate_is_labelled_and_uses_the_config_dtype() -> None:
    weights = estimated_weights(shape("meta-llama-3-8b"))
    assert weights is not None and not weights.exact and weights.source == "estimate" and weights.dtype == "bf16"
    assert weights.bytes == 2 * (estimate_params(shape("meta-llama-3-8b")) or 0)
    assert weight_bytes(shape("meta-llama-3-8b"), "q4_0") == -(-(estimate_params(shape("meta-llama-3-8b")) or 0) // 32) * 18


def test_weights_from_safetensors_headers_and_index(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(3, 5, dtype=torch.bfloat16), "b": torch.zeros(7, dtype=torch.float32)},
              str(tmp_path / "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
    save_file({"c": torch.zeros(11, dtype=torch.float16)}, str(tmp_path / "model-00002-of-00002.safetensors"))
    found = weights_from_folder(tmp_path)
    assert found is not None and found.exact
    assert (found.bytes, found.source) == (15 * 2 + 7 * 4 + 11 * 2, "safetensors headers")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 80}, "weight_map": {}}))
    assert weights_from_folder(tmp_path) == type(found)(80, "safetensors index total_size", exact=True)
    assert weights_from_folder(tmp_path / "nothing-here") is None


def test_broken_safetensors_header_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    with pytest.raises(InputError, match="safetensors header claims"):
        weights_from_folder(tmp_path)


# --- GGUF, and llama.cpp as the oracle for the KV bytes --------------------------------------------
def write_llama_gguf(path: Path, kv_heads: list[int], head_dim: int = 32, n_head: int = 4,
                     extra: dict[str, tuple[Any, gguf.GGUFValueType]] | None = None) -> Path:
    """A random llama GGUF with one layer per entry of ``kv_heads`` (a per-layer head_count_kv array when they differ)."""
    return write_tiny_llama(path, kv=extra, n_embd=n_head * head_dim, n_head=n_head, kv_heads=kv_heads)


LOAD = """
import sys
from llama_cpp import Llama
Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_threads=1, verbose=True, flash_attn=True,
      type_k=int(sys.argv[3]), type_v=int(sys.argv[3]))
"""
KV_LINE = re.compile(r"llama_kv_cache: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers.*K \((\w+)\):\s*([\d.]+) MiB,"
                     r" V \((\w+)\):\s*([\d.]+) MiB")


def llamacpp_kv_mib(path: Path, n_ctx: int, kv_type: gguf.GGMLQuantizationType) -> tuple[float, int, float, float]:
    """(total MiB, cells, K MiB, V MiB) from llama.cpp's own ``llama_kv_cache: size = ...`` line."""
    done = subprocess.run([sys.executable, "-c", LOAD, str(path), str(n_ctx), str(int(kv_type))], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "GGML_NO_BACKTRACE": "1"})
    match = KV_LINE.search(done.stderr)
    assert match, done.stderr[-3000:]
    return float(match[1]), int(match[2]), float(match[5]), float(match[7])


@pytest.mark.parametrize(("dtype", "ggml_type"), [
    ("f16", gguf.GGMLQuantizationType.F16), ("q8_0", gguf.GGMLQuantizationType.Q8_0),
    ("q4_0", gguf.GGMLQuantizationType.Q4_0),
])
def test_kv_bytes_equal_what_llamacpp_allocates(tmp_path: Path, dtype: str, ggml_type: gguf.GGMLQuantizationType) -> None:
    """Three layers of GQA (4 heads, 2 KV heads of 32): llama.cpp's log is the oracle."""
    path = write_llama_gguf(tmp_path / "gqa.gguf", [2, 2, 2])
    parsed = shape_from_gguf(read_gguf(path))
    assert (parsed.n_kv_heads, parsed.head_dim, parsed.layer_kv_heads) == (2, 32, None)
    n_ctx = 16384  # a multiple of 256, so llama.cpp allocates exactly n_ctx cells
    total, cells, k_mib, v_mib = llamacpp_kv_mib(path, n_ctx, ggml_type)
    assert cells == n_ctx
    ours = kv_cache_bytes(parsed, n_ctx, dtype)
    assert abs(ours / MIB - total) <= 0.005  # llama.cpp prints two decimals
    assert abs(ours / 2 / MIB - k_mib) <= 0.005 and abs(ours / 2 / MIB - v_mib) <= 0.005
    assert kv_bytes_per_token(parsed, dtype) == row_bytes(dtype, 2 * 32) * 2 * 3


def test_gguf_per_layer_kv_heads(tmp_path: Path) -> None:
    """A head_count_kv array (OpenELM-style, read by llama.cpp's get_key_or_arr) gives each layer its own rows."""
    path = write_llama_gguf(tmp_path / "per-layer.gguf", [4, 2, 1])
    parsed = shape_from_gguf(read_gguf(path))
    assert parsed.layer_kv_heads == (4, 2, 1)
    assert kv_cache_bytes(parsed, 100) == 100 * 2 * 2 * 32 * (4 + 2 + 1)


def test_gguf_weights_and_params_come_from_tensor_infos(tmp_path: Path) -> None:
    path = write_llama_gguf(tmp_path / "w.gguf", [2, 2])
    header = read_gguf(path)
    tensors = gguf.GGUFReader(path).tensors
    assert weights_from_gguf(header).bytes == sum(int(t.n_bytes) for t in tensors)
    parsed = shape_from_gguf(header)
    assert parsed.n_params == sum(int(t.n_elements) for t in tensors)
    assert parsed.vocab_size == len(_vocab()[0])
    assert weight_bytes(parsed, "f32") == 4 * parsed.n_params


def test_gguf_mla_and_sliding_layouts(tmp_path: Path) -> None:
    """Headers only (llama.cpp's key names): an MLA GGUF caches the latent, an old DeepSeek GGUF full K and V,
    a gemma3 GGUF slides on 5 of every 6 layers."""
    def header(arch: str, kv: dict[str, Any]) -> Path:
        writer = gguf.GGUFWriter(str(tmp_path / f"{arch}-{len(kv)}.gguf"), arch)
        for key, value in kv.items():
            writer.add_key_value(key.format(arch=arch), value[0], value[1])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return tmp_path / f"{arch}-{len(kv)}.gguf"

    U32 = gguf.GGUFValueType.UINT32
    base = {"{arch}.block_count": (61, U32), "{arch}.embedding_length": (7168, U32),
            "{arch}.attention.head_count": (128, U32), "{arch}.attention.kv_lora_rank": (512, U32),
            "{arch}.rope.dimension_count": (64, U32)}
    mla = shape_from_gguf(read_gguf(header("deepseek2", {
        **base, "{arch}.attention.head_count_kv": (1, U32), "{arch}.attention.key_length": (576, U32),
        "{arch}.attention.value_length": (512, U32), "{arch}.attention.key_length_mla": (192, U32),
        "{arch}.attention.value_length_mla": (128, U32)})))
    assert kv_bytes_per_token(mla) == kv_bytes_per_token(shape("deepseek-v3")) == 61 * 576 * 2
    old = shape_from_gguf(read_gguf(header("deepseek2", {
        **base, "{arch}.attention.head_count_kv": (128, U32), "{arch}.attention.key_length": (192, U32),
        "{arch}.attention.value_length": (128, U32)})))
    assert kv_bytes_per_token(old) == 61 * 128 * (192 + 128) * 2
    assert any("before llama.cpp's MLA support" in note for note in old.notes)
    gemma = shape_from_gguf(read_gguf(header("gemma3", {
        "{arch}.block_count": (26, U32), "{arch}.embedding_length": (1152, U32),
        "{arch}.attention.head_count": (4, U32), "{arch}.attention.head_count_kv": (1, U32),
        "{arch}.attention.key_length": (256, U32), "{arch}.attention.sliding_window": (512, U32)})))
    assert gemma.sliding_mask == shape("gemma-3-1b-it").sliding_mask
    assert kv_cache_bytes(gemma, 32768) == kv_cache_bytes(shape("gemma-3-1b-it"), 32768)


# gguf-parser-go's README (gpustack/gguf-parser-go@0930736, "Parse" examples, f16 cache, mmap on, full offload):
# its "VRAM 0 / UMA" column is the KV cache alone. (name, layers, heads, GQA as it prints it, ctx, published GiB)
GGUF_PARSER_GO = [
    ("Hermes-2-Pro-Mistral-7B.Q5_K_M", 32, 32, 4, 4096, 32768, 4),
    ("qwen2-72b-instruct-q6_k", 80, 64, 8, 8192, 32768, 10),
    ("MiniCPM-Llama3-V-2_5 Q5_K_M", 32, 32, 4, 4096, 8192, 1),
    ("Meta-Llama-3.1-405B-Instruct.Q2_K", 126, 128, 8, 16384, 131072, 126),
]


@pytest.mark.parametrize(("name", "layers", "heads", "gqa", "embd", "ctx", "gib"), GGUF_PARSER_GO)
def test_kv_equals_gguf_parser_go_published_estimates(tmp_path: Path, name: str, layers: int, heads: int, gqa: int,
                                                      embd: int, ctx: int, gib: int) -> None:
    """A header with the architecture gguf-parser-go printed for each file gives its KV figure exactly (the
    405B file was converted from Meta's first upload, 16 KV heads: 128 / 8 in its GQA column)."""
    writer = gguf.GGUFWriter(str(tmp_path / "h.gguf"), "llama")
    u32 = gguf.GGUFValueType.UINT32
    for key, value in (("block_count", layers), ("embedding_length", embd), ("attention.head_count", heads),
                       ("attention.head_count_kv", heads // gqa), ("context_length", ctx)):
        writer.add_key_value(f"llama.{key}", value, u32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    parsed = shape_from_gguf(read_gguf(tmp_path / "h.gguf"))
    assert kv_cache_bytes(parsed, ctx, "f16") == gib << 30
