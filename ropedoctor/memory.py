"""The memory bill of serving a model: KV cache bytes per token and at N tokens, and weight bytes.

KV cache: each layer stores, per token, a K row of ``kv_heads x head_dim`` and a V row of
``kv_heads x v_head_dim`` elements, so the classic ``2 x layers x kv_heads x head_dim x bytes``
when K and V are alike. Two layouts differ:

- **MLA** (DeepSeek-V2/V3, MiniCPM3, Kimi-K2): the cache holds one latent row of
  ``kv_lora_rank + qk_rope_head_dim`` elements per layer and no V. That is what vLLM and SGLang
  cache, and what llama.cpp caches since its "V-less cache" (PR #19067, January 2026) for GGUFs
  converted with MLA (``attention.key_length_mla`` present). llama.cpp from April 2025 to then
  also kept a V row of ``kv_lora_rank``; GGUFs converted before April 2025 (no
  ``key_length_mla``) still run as plain multi-head attention there, with full K and V per head,
  and ``shape_from_gguf`` reports them that way. transformers' eager DeepSeek also caches full
  K and V per head. We report the latent convention for config.json.
- **Sliding-window and chunked layers** (Gemma-2/3, gpt-oss, Mistral v0.1, Qwen2 with
  ``use_sliding_window``, Llama-4's chunked attention) never need more than ``window`` tokens, so
  their KV is capped at ``min(ctx, window)``. Runtimes keep a little more (llama.cpp keeps
  ``window + n_ubatch`` cells padded to 256, or everything with ``--swa-full``); we count the
  window itself. Llama-4's chunked layers are counted as windows of ``attention_chunk_size``
  (a token attends only within its chunk, so ``chunk`` cached tokens suffice, which is how vLLM
  allocates them); its NoPE layers are global.

Non-causal encoders (BERT-like embedding models) keep no KV cache at all (llama.cpp creates none).

Bytes per cached element are ggml's block sizes (``gguf.constants.GGML_QUANT_SIZES``, mirrored in
``sources.gguf_header.GGML_TYPES``): f16 and bf16 2, q8_0 34 bytes per 32, q4_0 18 bytes per 32;
fp8 (vLLM's ``--kv-cache-dtype fp8``, e4m3 or e5m2) 1. A quantised row takes whole blocks.

Weights: a GGUF's tensor infos and a safetensors checkpoint (``model.safetensors.index.json``'s
``metadata.total_size``, or the tensor sizes in each file's header) tell the size exactly; else
``estimate_params`` counts the parameters from the shape (embeddings, attention, MLP or experts),
and the result is labelled an estimate.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropedoctor import gguf_keys as G
from ropedoctor import hf_keys as K
from ropedoctor.errors import InputError
from ropedoctor.families import ShapeRules
from ropedoctor.sources.gguf_header import GGML_TYPES, GGUFHeader
from ropedoctor.spec import json_int

# --- bytes per element ---------------------------------------------------------------------------
_GGML_BY_NAME = {name.lower(): (block, size) for name, block, size in GGML_TYPES.values()}
# dtype name -> (elements per block, bytes per block). fp8 is no ggml type: one byte (e4m3/e5m2).
DTYPE_BLOCKS: dict[str, tuple[int, int]] = {**_GGML_BY_NAME, "fp8": (1, 1)}
KV_DTYPES = ("f16", "bf16", "fp8", "q8_0", "q4_0", "f32")
# config.json torch_dtype / dtype spellings -> our names
_TORCH_DTYPES = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}
# safetensors dtype -> bytes per element
_SAFETENSORS_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
                      "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1}
SAFETENSORS_INDEX = "model.safetensors.index.json"
_MAX_SAFETENSORS_HEADER = 100 << 20  # the format's own limit is 100 MB

# llama.cpp's per-architecture sliding-window period (``load_swa_pattern(ml, n)`` in src/models/<arch>.cpp: in
# every n layers the last is global) and chunked attention (Llama-4: period 4, chunk 8192 unless the GGUF says
# sliding_window 0), as read in the llama.cpp that llama-cpp-python 0.3.36 vendors (0c1e57098).
GGUF_SWA_PERIOD: dict[str, int] = {"gemma2": 2, "gemma3": 6, "gpt-oss": 2, "cohere2": 4, "llama4": 4}
GGUF_CHUNKED_ATTENTION: dict[str, int] = {"llama4": 8192}



def dtype_blocks(dtype: str) -> tuple[int, int]:
    """(elements per block, bytes per block) of a dtype name; InputError when unknown."""
    entry = DTYPE_BLOCKS.get(dtype.lower())
    if entry is None:
        known = ", ".join(sorted(DTYPE_BLOCKS))
        raise InputError(f"dtype {dtype!r}", f"unknown; known: {known}")
    return entry


def row_bytes(dtype: str, elements: int) -> int:
    """Bytes of ``elements`` values stored as ``dtype`` (a partial block takes a whole one, as in ggml)."""
    block, size = dtype_blocks(dtype)
    return -(-elements // block) * size


@dataclass(frozen=True)
class ModelShape:
    """What the KV bill and the weight estimate need."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int  # K head size
    v_head_dim: int
    hidden_size: int
    vocab_size: int | None
    intermediate_size: int | None
    n_params: int | None  # when the file tells it (GGUF tensor infos, safetensors headers)
    sliding_window: int | None  # tokens a sliding or chunked layer keeps
    sliding_layers: int  # layers whose KV is capped at the window
    kv_lora_rank: int | None  # MLA: the cache holds kv_lora_rank + qk_rope_head_dim per layer
    qk_rope_head_dim: int | None
    causal: bool = True  # encoders keep no KV cache
    # per-layer KV heads when they differ (GGUF arrays; 0 for layers without attention)
    layer_kv_heads: tuple[int, ...] | None = None
    # which layers are the sliding ones, when known (else any sliding_layers of them)
    sliding_mask: tuple[bool, ...] | None = None
    window_kind: str = "sliding"  # or "chunked" (Llama-4)
    model_type: str | None = None  # model_type or GGUF architecture
    n_experts: int | None = None
    expert_intermediate_size: int | None = None
    n_shared_experts: int = 0
    shared_intermediate_size: int | None = None
    q_lora_rank: int | None = None  # MLA query compression (DeepSeek-V3), for the weight estimate
    dense_layers: int = 0  # leading layers with a dense MLP in an MoE model (DeepSeek)
    tie_word_embeddings: bool = False
    gated_mlp: bool = True
    weights_dtype: str | None = None  # what the file says it is stored in
    notes: tuple[str, ...] = field(default=())  # how family quirks were read

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    def kv_heads_of(self, layer: int) -> int:
        return self.layer_kv_heads[layer] if self.layer_kv_heads is not None else self.n_kv_heads

    def is_sliding(self, layer: int) -> bool:
        if self.sliding_window is None:
            return False
        if self.sliding_mask is not None:
            return self.sliding_mask[layer]
        return layer < self.sliding_layers

    def kv_elements_per_token(self, layer: int) -> tuple[int, int]:
        """(K, V) elements one token adds to ``layer``'s cache."""
        if not self.causal:
            return 0, 0
        if self.kv_lora_rank is not None:
            return self.kv_lora_rank + (self.qk_rope_head_dim or 0), 0
        heads = self.kv_heads_of(layer)
        return heads * self.head_dim, heads * self.v_head_dim


def _layer_bytes(shape: ModelShape, layer: int, kv_dtype: str) -> int:
    k, v = shape.kv_elements_per_token(layer)
    return (row_bytes(kv_dtype, k) if k else 0) + (row_bytes(kv_dtype, v) if v else 0)


def kv_bytes_per_token(shape: ModelShape, kv_dtype: str = "f16") -> int:
    """KV cache bytes one token adds over all layers, with no window cap."""
    return sum(_layer_bytes(shape, layer, kv_dtype) for layer in range(shape.n_layers))


def kv_cache_bytes(shape: ModelShape, ctx: int, kv_dtype: str = "f16", slots: int = 1) -> int:
    """KV cache bytes for ``slots`` sequences of ``ctx`` tokens each; sliding layers keep min(ctx, window)."""
    if ctx < 0 or slots < 1:
        raise InputError("kv cache", f"ctx must be >= 0 and slots >= 1, got ctx {ctx}, slots {slots}")
    total = 0
    for layer in range(shape.n_layers):
        tokens = min(ctx, shape.sliding_window) if shape.is_sliding(layer) and shape.sliding_window else ctx
        total += _layer_bytes(shape, layer, kv_dtype) * tokens
    return total * slots


# --- config.json ---------------------------------------------------------------------------------
def _first_int(text: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = json_int(text.get(key))
        if value is not None and value > 0:
            return value
    return None


def shape_from_config(config: Mapping[str, Any], source: str = "config.json") -> ModelShape:
    """The shape of a parsed config.json (its ``text_config`` for multimodal wrappers); InputError when
    the layer count, width or head count is missing."""
    from ropedoctor.families import family_of, shape_rules_of
    from ropedoctor.sources.hf_config import _text_part

    text, prefix = _text_part(dict(config), source)
    model_type = text.get(K.MODEL_TYPE, config.get(K.MODEL_TYPE))
    model_type = model_type if isinstance(model_type, str) else None
    family = family_of(model_type)
    rules = shape_rules_of(model_type)
    n_layers = _first_int(text, (K.NUM_HIDDEN_LAYERS, K.NUM_LAYERS, K.N_LAYER))
    hidden = _first_int(text, (K.HIDDEN_SIZE, K.N_EMBD, "d_model"))
    n_heads = _first_int(text, (K.NUM_ATTENTION_HEADS, K.N_HEAD))
    for name, value in (("num_hidden_layers", n_layers), ("hidden_size", hidden), ("num_attention_heads", n_heads)):
        if value is None:
            raise InputError(source, f"{prefix}{name} is missing: the memory bill needs the model's shape")
    assert n_layers is not None and hidden is not None and n_heads is not None
    notes: list[str] = []

    kv_heads = _kv_heads(text, rules, n_heads)
    kv_lora_rank = _first_int(text, (K.KV_LORA_RANK,))
    qk_rope = _first_int(text, (K.QK_ROPE_HEAD_DIM,)) if kv_lora_rank else None
    if kv_lora_rank:
        head_dim = (_first_int(text, (K.QK_NOPE_HEAD_DIM,)) or 0) + (qk_rope or 0)
        v_head_dim = _first_int(text, (K.V_HEAD_DIM,)) or head_dim
        notes.append(f"MLA: the cache holds the latent ({kv_lora_rank} + {qk_rope} per token and layer, no V), "
                     "as vLLM, SGLang and llama.cpp (MLA GGUFs) do; transformers caches full K and V per head")
    else:
        head_dim = _first_int(text, (K.HEAD_DIM, K.KV_CHANNELS)) or hidden // n_heads
        v_head_dim = head_dim

    window, mask, kind = _windows(text, rules, n_layers, notes)
    causal = text.get(K.IS_CAUSAL) if isinstance(text.get(K.IS_CAUSAL), bool) else family.causal
    experts = _first_int(text, (K.NUM_LOCAL_EXPERTS, K.NUM_EXPERTS, K.N_ROUTED_EXPERTS))
    intermediate = _first_int(text, (K.INTERMEDIATE_SIZE, K.FFN_HIDDEN_SIZE, K.N_INNER))
    if intermediate is None and rules.ffn_default_x4:
        intermediate = 4 * hidden  # n_inner / ffn_hidden_size absent means 4 x width in these classes
    elif intermediate is not None and rules.intermediate_halved:
        intermediate //= 2  # Qwen v1 halves intermediate_size for each of its two MLP halves
    tied = text.get(K.TIE_WORD_EMBEDDINGS, config.get(K.TIE_WORD_EMBEDDINGS))
    if not isinstance(tied, bool):
        tied = rules.tied_by_default
    dtype = text.get(K.DTYPE) or text.get(K.TORCH_DTYPE) or config.get(K.DTYPE) or config.get(K.TORCH_DTYPE)
    return ModelShape(
        n_layers=n_layers, n_heads=n_heads, n_kv_heads=kv_heads, head_dim=head_dim, v_head_dim=v_head_dim,
        hidden_size=hidden, vocab_size=_first_int(text, (K.VOCAB_SIZE, K.PADDED_VOCAB_SIZE)),
        intermediate_size=intermediate, n_params=None,
        sliding_window=window, sliding_layers=sum(mask) if mask else 0, kv_lora_rank=kv_lora_rank,
        qk_rope_head_dim=qk_rope, causal=bool(causal), sliding_mask=mask, window_kind=kind, model_type=model_type,
        n_experts=experts, expert_intermediate_size=_first_int(text, (K.MOE_INTERMEDIATE_SIZE,)) or intermediate,
        shared_intermediate_size=_first_int(text, (K.SHARED_EXPERT_INTERMEDIATE_SIZE,)),
        dense_layers=_first_int(text, (K.FIRST_K_DENSE_REPLACE,)) or 0,
        n_shared_experts=_first_int(text, (K.N_SHARED_EXPERTS,)) or (rules.shared_experts if experts else 0),
        q_lora_rank=_first_int(text, (K.Q_LORA_RANK,)), tie_word_embeddings=tied,
        gated_mlp=rules.gated_mlp,
        weights_dtype=_TORCH_DTYPES.get(dtype) if isinstance(dtype, str) else None, notes=tuple(notes),
    )


def _kv_heads(text: Mapping[str, Any], rules: ShapeRules, n_heads: int) -> int:
    if rules.kv_heads == "falcon":
        if text.get(K.NEW_DECODER_ARCHITECTURE) is True:
            return _first_int(text, (K.NUM_KV_HEADS,)) or n_heads
        # transformers' FalconConfig: multi_query defaults to True and then means one KV head
        return 1 if text.get(K.MULTI_QUERY, True) is not False else n_heads
    if rules.kv_heads == "chatglm":
        if text.get(K.MULTI_QUERY_ATTENTION) is True:
            return _first_int(text, (K.MULTI_QUERY_GROUP_NUM,)) or n_heads
        return n_heads
    return _first_int(text, (K.NUM_KEY_VALUE_HEADS, K.NUM_KV_HEADS)) or n_heads


def _windows(text: Mapping[str, Any], rules: ShapeRules, n_layers: int,
             notes: list[str]) -> tuple[int | None, tuple[bool, ...] | None, str]:
    """(window, per-layer mask of capped layers, "sliding" or "chunked") as transformers lays the layers out."""
    window = _first_int(text, (K.SLIDING_WINDOW,))
    layer_types = text.get(K.LAYER_TYPES)
    if rules.windows == "chunked":
        chunk = _first_int(text, (K.ATTENTION_CHUNK_SIZE,))
        flags = text.get(K.NO_ROPE_LAYERS)
        if not isinstance(flags, list) or len(flags) != n_layers:
            flags = [int((i + 1) % 4 != 0) for i in range(n_layers)]  # Llama4TextConfig's default: NoPE every 4th
        if chunk is None:
            return None, None, "sliding"
        mask = tuple(bool(flag) for flag in flags)
        notes.append(f"Llama-4: {sum(mask)} RoPE layers use chunked attention, counted as windows of "
                     f"attention_chunk_size {chunk}; the {n_layers - sum(mask)} NoPE layers are global")
        return chunk, mask, "chunked"
    if window is None:
        return None, None, "sliding"
    if isinstance(layer_types, list) and len(layer_types) == n_layers:
        mask = tuple(t in K.SLIDING_ATTENTION_LABELS for t in layer_types)
    elif rules.windows == "alternate":
        mask = tuple((i + 1) % 2 != 0 for i in range(n_layers))
    elif rules.windows == "pattern":
        period = _first_int(text, (K.SLIDING_WINDOW_PATTERN,)) or rules.window_pattern
        mask = tuple((i + 1) % period != 0 for i in range(n_layers))
    elif rules.windows == "max_window_layers":
        if text.get(K.USE_SLIDING_WINDOW) is not True:
            return None, None, "sliding"  # the window key is there but off
        first = json_int(text.get(K.MAX_WINDOW_LAYERS))
        first = n_layers if first is None else first
        mask = tuple(i >= first for i in range(n_layers))
    else:  # Mistral v0.1, Phi-3 and the like apply the window on every layer
        mask = (True,) * n_layers
        if rules.window_ignored_by_llamacpp:
            notes.append(f"sliding_window {window} counted on every layer as transformers and vLLM apply it; "
                         "llama.cpp ignores it for these files and caches every token")
    if not any(mask):
        return None, None, "sliding"
    return window, mask, "sliding"


# --- GGUF ----------------------------------------------------------------------------------------
def _gguf_int(header: GGUFHeader, template: str, arch: str) -> int | None:
    value = header.get(template.format(arch=arch))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _per_layer(header: GGUFHeader, template: str, arch: str, n_layers: int) -> tuple[int, ...] | None:
    """A value that may be one number or a per-layer array (llama.cpp's get_key_or_arr)."""
    value = header.get(template.format(arch=arch))
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n_layers
    if isinstance(value, list) and len(value) == n_layers and all(isinstance(v, int) for v in value):
        return tuple(int(v) for v in value)
    return None


def shape_from_gguf(header: GGUFHeader, extra_params: int = 0) -> ModelShape:
    """The shape llama.cpp reads from a GGUF header; ``extra_params`` adds the tensors of further split shards."""
    from ropedoctor.families import GGUF_ARCHS, GgufArch

    arch = header.architecture
    if arch is None:
        raise InputError(header.source, f"{G.ARCHITECTURE} is missing")
    n_layers = _gguf_int(header, G.BLOCK_COUNT, arch)
    embd = _gguf_int(header, G.EMBEDDING_LENGTH, arch)
    heads = _per_layer(header, G.HEAD_COUNT, arch, n_layers or 0)
    if not n_layers or not embd or not heads:
        raise InputError(header.source, f"{arch}.block_count, embedding_length or attention.head_count is missing: "
                                        "the memory bill needs the model's shape")
    kv_heads = _per_layer(header, G.HEAD_COUNT_KV, arch, n_layers) or heads
    n_head = max(heads)
    head_dim = _gguf_int(header, G.KEY_LENGTH, arch) or embd // n_head
    v_head_dim = _gguf_int(header, G.VALUE_LENGTH, arch) or head_dim
    notes: list[str] = []
    kv_lora_rank: int | None = None
    qk_rope: int | None = None
    rank = _gguf_int(header, G.KV_LORA_RANK, arch)
    if rank and _gguf_int(header, G.KEY_LENGTH_MLA, arch):
        # MLA GGUF: key_length is already kv_lora_rank + n_rot, one KV head, and llama.cpp keeps no V cache
        kv_lora_rank, qk_rope = rank, head_dim - rank
        notes.append(f"MLA: llama.cpp caches the latent ({head_dim} per token and layer, no V)")
    elif rank:
        notes.append("GGUF converted before llama.cpp's MLA support (no attention.key_length_mla): llama.cpp caches "
                     "full K and V per head; re-convert the model to get the MLA cache")

    window, mask, kind = None, None, "sliding"
    pattern = header.get(G.SLIDING_WINDOW_PATTERN.format(arch=arch))
    swa = _gguf_int(header, G.SLIDING_WINDOW, arch)
    if arch in GGUF_CHUNKED_ATTENTION:
        window, kind = swa or GGUF_CHUNKED_ATTENTION[arch], "chunked"
    elif swa:
        window = swa
    if window:
        if isinstance(pattern, list) and len(pattern) == n_layers:
            mask = tuple(bool(v) for v in pattern)
        else:
            period = pattern if isinstance(pattern, int) and not isinstance(pattern, bool) else GGUF_SWA_PERIOD.get(arch)
            if period is None:
                notes.append(f"{arch}.attention.sliding_window {window} is not applied by llama.cpp for {arch}: "
                             "every layer keeps every token")
                window = None
            else:  # llama.cpp set_swa_pattern: period 0 means every layer slides
                mask = tuple(period == 0 or i % period < period - 1 for i in range(n_layers))
    arch_row = GGUF_ARCHS.get(arch, GgufArch())
    causal = header.get(G.CAUSAL.format(arch=arch))
    n_params = sum(t.n_elements for t in header.tensors) + extra_params
    tokens = header.kv.get("tokenizer.ggml.tokens")  # an array the reader skips: its length is still known
    return ModelShape(
        n_layers=n_layers, n_heads=n_head, n_kv_heads=max(kv_heads), head_dim=head_dim, v_head_dim=v_head_dim,
        hidden_size=embd, vocab_size=tokens.length if tokens is not None else None,
        intermediate_size=_gguf_int(header, G.FEED_FORWARD_LENGTH, arch), n_params=n_params or None,
        sliding_window=window if mask else None, sliding_layers=sum(mask) if mask else 0,
        kv_lora_rank=kv_lora_rank, qk_rope_head_dim=qk_rope,
        causal=causal if isinstance(causal, bool) else arch_row.causal,
        layer_kv_heads=kv_heads if len(set(kv_heads)) > 1 else None, sliding_mask=mask, window_kind=kind,
        model_type=arch, n_experts=_gguf_int(header, G.EXPERT_COUNT, arch), notes=tuple(notes),
    )


# --- weights -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightSize:
    """The size of a model's weights and where the figure comes from."""

    bytes: int
    source: str  # "gguf tensor infos", "safetensors index total_size", "safetensors headers", "estimate"
    exact: bool
    dtype: str | None = None  # for an estimate, the dtype it assumes


def estimate_params(shape: ModelShape) -> int | None:
    """Parameters counted from the shape (embeddings, attention, MLP or experts, norms ignored); None when the
    vocabulary or MLP width is unknown."""
    if shape.vocab_size is None or shape.intermediate_size is None:
        return None
    hidden = shape.hidden_size
    # an encoder has no output head; tied embeddings share one matrix
    embeddings = shape.vocab_size * hidden * (1 if shape.tie_word_embeddings or not shape.causal else 2)
    if shape.is_mla:
        rank, rope = shape.kv_lora_rank or 0, shape.qk_rope_head_dim or 0
        nope = shape.head_dim - rope
        q_rank = shape.q_lora_rank
        query = hidden * q_rank + q_rank * shape.n_heads * shape.head_dim if q_rank else hidden * shape.n_heads * shape.head_dim
        attention = (query + hidden * (rank + rope)
                     + rank * shape.n_heads * (nope + shape.v_head_dim) + shape.n_heads * shape.v_head_dim * hidden)
    else:
        attention = (hidden * shape.n_heads * shape.head_dim + hidden * shape.n_kv_heads * (shape.head_dim + shape.v_head_dim)
                     + shape.n_heads * shape.v_head_dim * hidden)
    matrices = 3 if shape.gated_mlp else 2
    dense_mlp = matrices * hidden * shape.intermediate_size
    if shape.n_experts:
        width = shape.expert_intermediate_size or shape.intermediate_size
        moe_mlp = matrices * hidden * width * shape.n_experts + hidden * shape.n_experts  # + the router
        moe_mlp += matrices * hidden * (shape.shared_intermediate_size or width * shape.n_shared_experts)
        mlp = shape.dense_layers * dense_mlp + (shape.n_layers - shape.dense_layers) * moe_mlp
    else:
        mlp = shape.n_layers * dense_mlp
    return embeddings + shape.n_layers * attention + mlp


def weight_bytes(shape: ModelShape, dtype: str) -> int | None:
    """Bytes of the weights stored as ``dtype``: from the file's parameter count when it told one, else the
    estimate; None when neither is known."""
    params = shape.n_params if shape.n_params is not None else estimate_params(shape)
    return None if params is None else row_bytes(dtype, params)


def weights_from_gguf(header: GGUFHeader, shard_headers: tuple[GGUFHeader, ...] = ()) -> WeightSize:
    """The tensor data size of a GGUF (all shards of a split one), from the tensor infos."""
    total = sum(t.n_bytes for h in (header, *shard_headers) for t in h.tensors if t.ggml_type in GGML_TYPES)
    return WeightSize(total, "gguf tensor infos", exact=True)


def weights_from_folder(folder: Path) -> WeightSize | None:
    """The size of a folder's safetensors weights, or None when it holds none."""
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(str(index), f"cannot read the index: {exc}") from None
        total = json_int(data.get("metadata", {}).get("total_size")) if isinstance(data, dict) and isinstance(
            data.get("metadata"), dict) else None
        if total is not None:
            return WeightSize(total, "safetensors index total_size", exact=True)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    return WeightSize(sum(_safetensors_bytes(path) for path in files), "safetensors headers", exact=True)


def _safetensors_bytes(path: Path) -> int:
    """Bytes of tensor data a .safetensors file declares in its header (8-byte length, then JSON)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise InputError(str(path), "truncated safetensors header")
            (length,) = struct.unpack("<Q", head)
            if length > _MAX_SAFETENSORS_HEADER:
                raise InputError(str(path), f"safetensors header claims {length} bytes")
            header = json.loads(handle.read(length))
    except OSError as exc:
        raise InputError(str(path), exc.strerror or str(exc)) from None
    except ValueError as exc:
        raise InputError(str(path), f"invalid safetensors header: {exc}") from None
    if not isinstance(header, dict):
        raise InputError(str(path), "invalid safetensors header: not an object")
    total = 0
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        offsets = info.get("data_offsets")
        if isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets):
            total += offsets[1] - offsets[0]
    return total


def estimated_weights(shape: ModelShape, dtype: str | None = None) -> WeightSize | None:
    """An estimate from the shape, in ``dtype`` or the dtype the config names (bf16 when it names none)."""
    chosen = dtype or shape.weights_dtype or "bf16"
    size = weight_bytes(shape, chosen)
    return None if size is None else WeightSize(size, "estimate", exact=False, dtype=chosen)
