"""GGUF truth against llama.cpp's converter and loader (issue 14, item 3): what a GGUF runs compared with the
config.json it was converted from, and round trips (`fix` the config then convert, versus `fix` the GGUF)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from conftest import FIXTURES, invoke, write_config
from gguf_files import VT, llama_kv, write_gguf
from ropedoctor import gguf_keys as G
from ropedoctor.sources.gguf_header import read_f32_tensor, read_gguf
from ropedoctor.sources.gguf_source import read_gguf_spec
from ropedoctor.sources.hf_config import read_hf_config


def _findings(*args: str) -> list[dict[str, Any]]:
    result = invoke("check", *args, "--format", "json")
    assert result.exit_code in (0, 1), result.output
    return [f for r in json.loads(result.stdout)["results"] for f in r["findings"]]


def _codes(*args: str) -> list[str]:
    return [f["code"] for f in _findings(*args)]


def _fix(path: Path, ctx: int) -> None:
    result = invoke("fix", str(path), "--ctx", str(ctx), "--no-backup")
    assert result.exit_code in (0, 1), result.output


def _converted_kv(config: dict[str, Any]) -> dict[str, tuple[Any, gguf.GGUFValueType]]:
    """What convert_hf_to_gguf.py writes for a linear config (conversion/base.py): max_position_embeddings as
    context_length, the factor, and no original length."""
    text = config.get("text_config", config)
    block = text["rope_scaling"]
    heads, width = text["num_attention_heads"], text["hidden_size"]
    head_dim = text.get("head_dim", width // heads)
    return {**llama_kv(text["max_position_embeddings"], heads, width),
            "{arch}.attention.key_length": (head_dim, VT.UINT32), "{arch}.rope.dimension_count": (head_dim, VT.UINT32),
            "{arch}.rope.freq_base": (float(text.get("rope_theta", 10000.0)), VT.FLOAT32),
            "{arch}.rope.scaling.type": ("linear", VT.STRING),
            "{arch}.rope.scaling.factor": (float(block["factor"]), VT.FLOAT32)}


LLAMA_LINEAR_X4 = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
                   "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32,
                   "max_position_embeddings": 16384, "rope_theta": 10000.0,
                   "rope_scaling": {"type": "linear", "factor": 4.0}}


@pytest.mark.parametrize(("name", "arch", "ctx", "factor", "original"), [
    ("gemma-3-4b", "gemma3", 262144, 16.0, 16384),  # trained x8 over 16384: the GGUF used to plan x2 over 131072
    ("llama-linear-x4", "llama", 65536, 16.0, 4096),  # x4 over 4096: the GGUF used to keep x4 over 16384
])
def test_linear_round_trip_agrees(tmp_path: Path, name: str, arch: str, ctx: int, factor: float,
                                  original: int) -> None:
    """llama.cpp applies a linear GGUF's 1/factor at every position and the converter copies the extended
    max_position_embeddings into context_length: the trained length is context_length / factor, as on the
    config side, so `fix --ctx N` on either plans the same factor over the same trained length."""
    config = json.loads((FIXTURES / "gemma-3-4b-it" / "config.json").read_text()) if arch == "gemma3" \
        else LLAMA_LINEAR_X4
    folder = write_config(tmp_path / name, config)
    gguf_path = write_gguf(tmp_path / f"{name}.gguf", arch, _converted_kv(config))
    before = read_gguf_spec(gguf_path)
    assert before.original_context == original  # context_length / the trained factor

    _fix(gguf_path, ctx)
    _fix(folder / "config.json", ctx)
    from_gguf, from_config = read_gguf_spec(gguf_path), read_hf_config(folder / "config.json")
    assert (from_gguf.method, from_gguf.factor, from_gguf.original_context) == ("linear", factor, original)
    assert (from_config.method, from_config.factor, from_config.original_context) == ("linear", factor, original)
    # a second fix is a no-op on the GGUF (the original length it wrote keeps it idempotent)
    stamp = gguf_path.read_bytes()
    _fix(gguf_path, ctx)
    assert gguf_path.read_bytes() == stamp


def test_linear_gguf_with_a_short_context_keeps_it_as_trained(tmp_path: Path) -> None:
    """LongChat-style files (2048 with x8): dividing would leave an implausible trained length, so the
    declared length is the trained one, as hf_config reads the same file."""
    path = write_gguf(tmp_path / "longchat.gguf", "llama", llama_kv(2048, extra={
        "{arch}.rope.scaling.type": ("linear", VT.STRING), "{arch}.rope.scaling.factor": (8.0, VT.FLOAT32)}))
    assert read_gguf_spec(path).original_context == 2048


def _converter_llama3_divisors(theta: float, dim: int, factor: float, low: float, high: float,
                               original: int) -> list[float]:
    """conversion/llama.py's generate_extra_tensors at llama-cpp-python 0.3.36 (float32 frequencies)."""
    freqs = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    out = []
    for freq in freqs.astype(np.float32):
        wavelen = 2 * math.pi / float(freq)
        if wavelen < original / high:
            out.append(1.0)
        elif wavelen > original / low:
            out.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return out


def _llama3_gguf(path: Path, divisors: list[float] | None, context: int = 131072) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    for key, (value, vtype) in llama_kv(context, extra={"{arch}.rope.freq_base": (500000.0, VT.FLOAT32)}).items():
        writer.add_key_value(key.format(arch="llama"), value, vtype)
    writer.add_tensor("token_embd.weight", np.zeros(32, dtype=np.float32))
    if divisors is not None:
        writer.add_tensor(G.ROPE_FREQS, np.array(divisors, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize(("factor", "reported"), [(8.0, False), (32.0, True)])
def test_llama3_rope_freqs_values_are_compared(tmp_path: Path, factor: float, reported: bool) -> None:
    """A llama3 GGUF carries its scaling only in rope_freqs: an x32 tensor for an x8 config is RD505."""
    folder = write_config(tmp_path / "llama31",
                          json.loads((FIXTURES / "meta-llama-3.1-8b-instruct" / "config.json").read_text()))
    divisors = _converter_llama3_divisors(500000.0, 128, factor, 1.0, 4.0, 8192)
    _llama3_gguf(folder / "model.gguf", divisors)
    findings = _findings(str(folder))
    hits = [f for f in findings if f["code"] == "RD505"]
    assert bool(hits) == reported, findings
    if reported:
        assert "up to 32" in hits[0]["message"] and "x8" in hits[0]["message"]
    assert not any(f["code"] in ("RD501", "RD502", "RD506") for f in findings)


def test_rope_freqs_read_is_bounded_to_its_own_bytes(tmp_path: Path) -> None:
    divisors = _converter_llama3_divisors(500000.0, 128, 8.0, 1.0, 4.0, 8192)
    path = _llama3_gguf(tmp_path / "l.gguf", divisors)
    header = read_gguf(path)
    values = read_f32_tensor(path, header, G.ROPE_FREQS)
    assert values is not None and len(values) == 64
    assert values == pytest.approx(divisors, rel=1e-6)
    assert read_f32_tensor(path, header, G.ROPE_FREQS, max_elements=63) is None  # over the bound: not read
    assert read_f32_tensor(path, header, "no_such.weight") is None
    # a header-only copy (tensor data cut off): no values, no error, and the spec still reads as llama3
    info = header.tensor(G.ROPE_FREQS)
    assert info is not None
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:header.data_offset + info.offset + 8])
    assert read_f32_tensor(cut, read_gguf(cut), G.ROPE_FREQS) is None
    spec = read_gguf_spec(cut)
    assert spec.method == "llama3" and spec.gguf is not None and spec.gguf.tensor_values == {}


@pytest.mark.parametrize(("arch", "reported"), [("qwen2", True), ("mistral3", False)])
def test_yarn_keys_llama_cpp_does_not_read_are_info(tmp_path: Path, arch: str, reported: bool) -> None:
    """The converter writes yarn_beta_fast/slow; only grok and mistral3 read them."""
    path = write_gguf(tmp_path / f"{arch}.gguf", arch, llama_kv(131072, 28, 3584, {
        "{arch}.rope.freq_base": (1e6, VT.FLOAT32), "{arch}.rope.scaling.type": ("yarn", VT.STRING),
        "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32),
        "{arch}.rope.scaling.original_context_length": (32768, VT.UINT32),
        "{arch}.rope.scaling.yarn_beta_fast": (64.0, VT.FLOAT32),
        "{arch}.rope.scaling.yarn_beta_slow": (1.0, VT.FLOAT32)}))
    hits = [f for f in _findings(str(path)) if f["code"] == "RD409"]
    if not reported:
        assert hits == []
        return
    # beta_slow 1 is what llama.cpp runs anyway: only beta_fast is reported
    [hit] = hits
    assert hit["severity"] == "info"
    assert "yarn_beta_fast = 64" in hit["message"] and "runs beta_fast 32" in hit["message"]


def test_gpt_oss_truncate_is_reported_as_not_run(tmp_path: Path) -> None:
    """gpt-oss trains YaRN with truncate false; ggml always floors/ceils the correction range."""
    config = json.loads((FIXTURES / "gpt-oss-20b" / "config.json").read_text())
    folder = write_config(tmp_path / "gpt-oss", config)
    write_gguf(folder / "model.gguf", "gpt-oss", llama_kv(131072, 64, 2880, {
        "{arch}.attention.key_length": (64, VT.UINT32), "{arch}.rope.dimension_count": (64, VT.UINT32),
        "{arch}.rope.freq_base": (150000.0, VT.FLOAT32), "{arch}.rope.scaling.type": ("yarn", VT.STRING),
        "{arch}.rope.scaling.factor": (32.0, VT.FLOAT32),
        "{arch}.rope.scaling.original_context_length": (4096, VT.UINT32),
        "{arch}.rope.scaling.yarn_beta_fast": (32.0, VT.FLOAT32),
        "{arch}.rope.scaling.yarn_beta_slow": (1.0, VT.FLOAT32)}))
    findings = _findings(str(folder))
    [note] = [f for f in findings if f["code"] == "RD507"]
    assert note["severity"] == "info" and "truncate false" in note["message"]
    assert "beta" not in note["message"]  # 32 / 1 are what llama.cpp runs
    assert not any(f["code"].startswith("RD50") and f["severity"] != "info" for f in findings), findings


def test_scaling_the_gguf_adds_is_reported(tmp_path: Path) -> None:
    config = json.loads((FIXTURES / "qwen2.5-7b-instruct" / "config.json").read_text())
    folder = write_config(tmp_path / "qwen", config)
    write_gguf(folder / "model.gguf", "qwen2", llama_kv(32768, 28, 3584, {
        "{arch}.rope.freq_base": (1e6, VT.FLOAT32), "{arch}.rope.scaling.type": ("linear", VT.STRING),
        "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32)}))
    findings = _findings(str(folder))
    [added] = [f for f in findings if f["code"] == "RD506"]
    assert "linear x4" in added["message"] and "no scaling" in added["message"]
    # the same file without the scaling: nothing added
    plain = tmp_path / "plain"
    shutil.copytree(folder, plain)
    write_gguf(plain / "model.gguf", "qwen2", llama_kv(32768, 28, 3584, {"{arch}.rope.freq_base": (1e6, VT.FLOAT32)}))
    assert "RD506" not in _codes(str(plain))


def test_rd501_and_rd503_follow_what_the_converter_writes(tmp_path: Path) -> None:
    """HunYuan's NTK-alpha is baked into freq_base (theta x alpha^(d/(d-2)), scaling type none): neither lost
    (RD501) nor a different base (RD503). Dual-chunk attention is no scaling: a plain qwen2 GGUF loses none. A
    linear config whose GGUF has no scaling names no converter date it did not measure."""
    hunyuan = write_config(tmp_path / "hunyuan",
                           json.loads((FIXTURES / "hunyuanimage-2.1-reprompt" / "config.json").read_text()))
    write_gguf(hunyuan / "model.gguf", "hunyuan-dense", llama_kv(32768, 32, 4096, {
        "{arch}.attention.key_length": (128, VT.UINT32), "{arch}.rope.dimension_count": (128, VT.UINT32),
        "{arch}.rope.freq_base": (10000.0 * 1000.0 ** (128 / 126), VT.FLOAT32),
        "{arch}.rope.scaling.type": ("none", VT.STRING), "{arch}.rope.scaling.factor": (1.0, VT.FLOAT32)}))
    assert not {"RD501", "RD503"} & set(_codes(str(hunyuan)))
    # the same file with the unbaked base: the base the converter would have written is reported
    write_gguf(hunyuan / "model.gguf", "hunyuan-dense", llama_kv(32768, 32, 4096, {
        "{arch}.attention.key_length": (128, VT.UINT32), "{arch}.rope.dimension_count": (128, VT.UINT32),
        "{arch}.rope.freq_base": (10000.0, VT.FLOAT32)}))
    assert "RD503" in _codes(str(hunyuan))

    long = write_config(tmp_path / "qwen-1m",
                        json.loads((FIXTURES / "qwen2.5-7b-instruct-1m" / "config.json").read_text()))
    write_gguf(long / "model.gguf", "qwen2", llama_kv(1010000, 28, 3584, {"{arch}.rope.freq_base": (1e7, VT.FLOAT32)}))
    assert "RD501" not in _codes(str(long))

    linear = write_config(tmp_path / "linear", LLAMA_LINEAR_X4)
    write_gguf(linear / "model.gguf", "llama", llama_kv(16384))
    [lost] = [f for f in _findings(str(linear)) if f["code"] == "RD501"]
    assert "x4" in lost["message"] and "another converter or was edited" in lost["message"]
    assert "2025" not in lost["message"]
