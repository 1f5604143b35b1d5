"""A GGUF header into a RopeSpec, with llama.cpp's own defaults for absent keys.

llama.cpp (``load_hparams``) reads: ``context_length`` (the training length and llama-server's
slot cap), ``rope.freq_base`` (10000 when absent), ``rope.scaling.type`` ("linear" when
absent, harmless with factor 1), ``rope.scaling.factor`` (else the legacy ``scale_linear``),
``original_context_length`` (else ``context_length``). llama3 and longrope exist only as
tensors (``rope_freqs``, ``rope_factors_long/short``); dynamic NTK does not exist at all.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ropedoctor import gguf_keys as G
from ropedoctor.errors import InputError
from ropedoctor.families import GGUF_ARCHS, MIN_PLAUSIBLE_TRAINED_LENGTH, GgufArch
from ropedoctor.sources.gguf_header import GGUFHeader, check_shards, read_f32_tensor, read_gguf
from ropedoctor.spec import GgufLayout, LayerRope, RopeSpec, json_number

# Keys whose stored type and value the GGUF rules look at.
_READ_KEYS = (*G.REQUIRED_TYPES, G.ROPE_SCALING_YARN_LOG_MUL)
# RoPE tensors whose values the rules compare (a few hundred bytes each, read only from local files).
_VALUE_TENSORS = (G.ROPE_FREQS, G.ROPE_FACTORS_LONG, G.ROPE_FACTORS_SHORT)


def read_gguf_spec(path: Path) -> RopeSpec:
    """Read a local GGUF (first shard of a split model, whose set must be complete)."""
    check_shards(path)
    header = read_gguf(path)
    values = {name: data for name in _VALUE_TENSORS if (data := read_f32_tensor(path, header, name)) is not None}
    return spec_from_header(header, values)


def spec_from_header(header: GGUFHeader, tensor_values: dict[str, tuple[float, ...]] | None = None) -> RopeSpec:
    """``tensor_values``: the RoPE tensors' data where the caller could read it (a local file)."""
    arch = header.get(G.ARCHITECTURE)
    if not isinstance(arch, str) or not arch:
        raise InputError(header.source, f"no {G.ARCHITECTURE} string in the GGUF metadata")
    family = GGUF_ARCHS.get(arch, GgufArch())
    keys = {template: template.format(arch=arch) for template in _READ_KEYS}
    types = {template: header.kv[key].type for template, key in keys.items() if key in header.kv}
    values = {template: header.kv[key].value for template, key in keys.items() if key in header.kv}
    provenance: dict[str, str] = {}

    def value(field: str, template: str) -> Any:
        if template in values:
            provenance[field] = keys[template]
            return values[template]
        return None

    context = _count(value("context", G.CONTEXT_LENGTH))
    heads = values.get(G.HEAD_COUNT)
    heads = max(heads) if isinstance(heads, list) and heads else heads
    width = _count(values.get(G.EMBEDDING_LENGTH))
    head_dim = _count(value("head_dim", G.KEY_LENGTH))
    if head_dim is None and width and isinstance(heads, int) and heads > 0:
        head_dim = width // heads
        provenance["head_dim"] = keys[G.EMBEDDING_LENGTH]
    causal_value = values.get(G.CAUSAL)
    causal = causal_value if isinstance(causal_value, bool) else family.causal
    tensors = {
        t.name: _elements(t.shape) for t in header.tensors
        if t.name in (G.ROPE_FREQS, G.ROPE_FACTORS_LONG, G.ROPE_FACTORS_SHORT, G.POSITION_EMBD)
    }
    layout = GgufLayout(arch=arch, types=types, values=values, keys=keys, tensors=tensors,
                        name=_text(header.get(G.NAME)), basename=_text(header.get(G.BASENAME)),
                        tensor_values=dict(tensor_values or {}))
    common: dict[str, Any] = {
        "source": header.source, "format": "gguf", "model_type": arch, "context": context, "head_dim": head_dim,
        "causal": causal, "gguf": layout, "provenance": provenance,
    }
    positions = family.positions
    if _count(header.get(G.BLOCK_COUNT.format(arch=arch))) in family.alibi_block_counts:
        positions = "alibi"
    if positions != "rope":
        table = context if positions == "absolute" else None
        return RopeSpec(positions=positions, method="none", position_table=table, **common)

    theta = _number(value("theta", G.ROPE_FREQ_BASE))
    if theta is None and G.ROPE_FREQ_BASE not in values:
        theta = 10_000.0  # llama.cpp's default; RD408 says when the family's base differs
        provenance["theta"] = keys[G.ROPE_FREQ_BASE]
    factor = _number(value("factor", G.ROPE_SCALING_FACTOR))
    if factor is None:
        factor = _number(value("factor", G.ROPE_SCALE_LINEAR))
    factor = factor if factor else None  # 0 means "no scaling" to llama.cpp
    scaling_type = value("method", G.ROPE_SCALING_TYPE)
    method = _method(scaling_type, factor, tensors)
    if method in ("llama3", "longrope") and G.ROPE_SCALING_TYPE not in values:
        provenance["method"] = G.ROPE_FREQS if method == "llama3" else G.ROPE_FACTORS_LONG
    original = _count(value("original_context", G.ROPE_SCALING_ORIG_CTX_LEN))
    if original is None:
        original = context
        provenance["original_context"] = provenance.get("context", keys[G.CONTEXT_LENGTH])
        # llama.cpp runs linear as freq_scale = 1/factor at every position (n_ctx_orig_yarn feeds only YaRN and
        # longrope), and the converter copies max_position_embeddings, the extended length, into context_length
        # and writes no original for linear: the trained length is context_length / factor, read as the config
        # reader reads the same max_position_embeddings (hf_config.trained_length), so both paths plan alike.
        if method == "linear" and context and factor and factor > 1 \
                and context / factor >= MIN_PLAUSIBLE_TRAINED_LENGTH:
            original = int(context / factor)
    rotary = _count(value("rotary_dim", G.ROPE_DIMENSION_COUNT)) or head_dim
    swa_base = _number(values.get(G.ROPE_FREQ_BASE_SWA))
    layers = {}
    if swa_base is not None:
        layers = {
            "full_attention": LayerRope(method, theta, keys[G.ROPE_FREQ_BASE], factor),
            "sliding_attention": LayerRope("default", swa_base, keys[G.ROPE_FREQ_BASE_SWA]),
        }
    return RopeSpec(
        method=method, theta=theta, factor=factor if method != "default" else None, original_context=original,
        rotary_dim=rotary, partial_rotary_factor=rotary / head_dim if rotary and head_dim else 1.0,
        attention_factor=_number(values.get(G.ROPE_SCALING_ATTN_FACTOR)), layers=layers, **common,
    )


def _number(value: Any) -> float | None:
    """A finite number; NaN and infinities (a float key of a broken file) read as absent."""
    number = json_number(value)
    return number if number is not None and math.isfinite(number) else None


def _count(value: Any) -> int | None:
    """A positive whole number (a length, a dimension); anything else reads as absent."""
    number = _number(value)
    return int(number) if number is not None and number == int(number) and number > 0 else None


def _method(scaling_type: Any, factor: float | None, tensors: dict[str, int]) -> str:
    """The transformers name of what llama.cpp will run."""
    if G.ROPE_FACTORS_LONG in tensors or scaling_type == "longrope":
        return "longrope"
    if scaling_type in (None, "linear"):  # absent reads as linear, a no-op without a factor
        if factor and factor != 1:
            return "linear"
        return "llama3" if G.ROPE_FREQS in tensors else "default"
    if scaling_type == "none":
        return "llama3" if G.ROPE_FREQS in tensors else "default"
    return str(scaling_type)  # "yarn", or a string llama.cpp refuses (RD402)


def _elements(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
