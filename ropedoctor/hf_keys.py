"""Every Hugging Face ``config.json`` key that ropedoctor reads, defined once.

The per-method key sets mirror transformers 5.23
(``RotaryEmbeddingConfigMixin._validate_*_rope_parameters``): a required key that is
missing makes transformers raise ``KeyError``; a key in neither set makes it warn
"Unrecognized keys".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ropedoctor.model import methods as _methods

# --- the generic RoPE keys (transformers 4.43+ and 5.x) ---------------------------------
ROPE_THETA = "rope_theta"
ROPE_SCALING = "rope_scaling"  # v4 block; null when unscaled
ROPE_PARAMETERS = "rope_parameters"  # v5 block, theta inside
ROPE_TYPE = "rope_type"
LEGACY_TYPE = "type"  # pre-4.43 name of rope_type
FACTOR = "factor"
ORIGINAL_MAX_POSITIONS = "original_max_position_embeddings"
MAX_POSITIONS = "max_position_embeddings"
PARTIAL_ROTARY_FACTOR = "partial_rotary_factor"
ATTENTION_FACTOR = "attention_factor"
BETA_FAST = "beta_fast"
BETA_SLOW = "beta_slow"
MSCALE = "mscale"
MSCALE_ALL_DIM = "mscale_all_dim"
TRUNCATE = "truncate"
LOW_FREQ_FACTOR = "low_freq_factor"
HIGH_FREQ_FACTOR = "high_freq_factor"
SHORT_FACTOR = "short_factor"
LONG_FACTOR = "long_factor"
MROPE_SECTION = "mrope_section"
MROPE_INTERLEAVED = "mrope_interleaved"

# --- model shape --------------------------------------------------------------------------
MODEL_TYPE = "model_type"
TEXT_CONFIG = "text_config"
HEAD_DIM = "head_dim"
HIDDEN_SIZE = "hidden_size"
NUM_ATTENTION_HEADS = "num_attention_heads"
LAYER_TYPES = "layer_types"
IS_CAUSAL = "is_causal"
POSITION_EMBEDDING_TYPE = "position_embedding_type"  # BERT family: absolute / alibi / rotary

# --- model shape for the memory bill (ropedoctor/memory.py) -------------------------------
NUM_HIDDEN_LAYERS = "num_hidden_layers"
NUM_LAYERS = "num_layers"  # ChatGLM
N_LAYER = "n_layer"  # GPT-2 names (NomicBert)
NUM_KEY_VALUE_HEADS = "num_key_value_heads"
NUM_KV_HEADS = "num_kv_heads"  # Falcon (new decoder architecture)
MULTI_QUERY = "multi_query"  # Falcon-7B: one KV head
NEW_DECODER_ARCHITECTURE = "new_decoder_architecture"  # Falcon-40B/180B: num_kv_heads
MULTI_QUERY_ATTENTION = "multi_query_attention"  # ChatGLM
MULTI_QUERY_GROUP_NUM = "multi_query_group_num"  # ChatGLM: KV heads
VOCAB_SIZE = "vocab_size"
PADDED_VOCAB_SIZE = "padded_vocab_size"  # ChatGLM
INTERMEDIATE_SIZE = "intermediate_size"
FFN_HIDDEN_SIZE = "ffn_hidden_size"  # ChatGLM
N_INNER = "n_inner"  # GPT-2 names
TIE_WORD_EMBEDDINGS = "tie_word_embeddings"
TORCH_DTYPE = "torch_dtype"  # transformers 4.x
DTYPE = "dtype"  # transformers 5.x
SLIDING_WINDOW = "sliding_window"
SLIDING_WINDOW_PATTERN = "sliding_window_pattern"  # Gemma-3 (every Nth layer global)
USE_SLIDING_WINDOW = "use_sliding_window"  # Qwen2/Qwen3
MAX_WINDOW_LAYERS = "max_window_layers"  # Qwen2/Qwen3: layers from this index on use the window
ATTENTION_CHUNK_SIZE = "attention_chunk_size"  # Llama-4 chunked attention
NO_ROPE_LAYERS = "no_rope_layers"  # Llama-4: 1 = RoPE (chunked) layer, 0 = NoPE (global) layer
KV_LORA_RANK = "kv_lora_rank"  # MLA latent width
Q_LORA_RANK = "q_lora_rank"  # MLA query compression
QK_NOPE_HEAD_DIM = "qk_nope_head_dim"  # MLA
V_HEAD_DIM = "v_head_dim"  # MLA
NUM_LOCAL_EXPERTS = "num_local_experts"  # Mixtral, gpt-oss
NUM_EXPERTS = "num_experts"  # Qwen MoE
N_ROUTED_EXPERTS = "n_routed_experts"  # DeepSeek
N_SHARED_EXPERTS = "n_shared_experts"  # DeepSeek
MOE_INTERMEDIATE_SIZE = "moe_intermediate_size"  # DeepSeek, Qwen MoE
SHARED_EXPERT_INTERMEDIATE_SIZE = "shared_expert_intermediate_size"  # Qwen MoE
FIRST_K_DENSE_REPLACE = "first_k_dense_replace"  # DeepSeek: leading dense layers
SLIDING_ATTENTION_LABELS = ("sliding_attention", "chunked_attention")  # layer_types values with a capped KV

# --- per-layer-type labels of nested v5 rope_parameters (Gemma-3, ModernBERT) -------------
FULL_ATTENTION = "full_attention"
SLIDING_ATTENTION = "sliding_attention"

# --- model-specific names ----------------------------------------------------------------
ROTARY_PCT = "rotary_pct"  # GPT-NeoX
ROTARY_EMB_BASE = "rotary_emb_base"  # GPT-NeoX, Qwen v1, NomicBert
ROTARY_EMB_FRACTION = "rotary_emb_fraction"  # NomicBert
ROTARY_SCALING_FACTOR = "rotary_scaling_factor"  # NomicBert (dynamic NTK)
MAX_TRAINED_POSITIONS = "max_trained_positions"  # NomicBert
N_POSITIONS = "n_positions"  # GPT-2 names (GPT-2, NomicBert)
N_EMBD = "n_embd"
N_HEAD = "n_head"
SEQ_LENGTH = "seq_length"  # Qwen v1, ChatGLM
KV_CHANNELS = "kv_channels"  # Qwen v1, ChatGLM: head size
ROPE_RATIO = "rope_ratio"  # ChatGLM: theta = 10000 * rope_ratio
USE_DYNAMIC_NTK = "use_dynamic_ntk"  # Qwen v1
USE_LOGN_ATTN = "use_logn_attn"  # Qwen v1
ROPE_LOCAL_BASE_FREQ = "rope_local_base_freq"  # Gemma-3 sliding layers
GLOBAL_ROPE_THETA = "global_rope_theta"  # ModernBERT
LOCAL_ROPE_THETA = "local_rope_theta"  # ModernBERT
QK_ROPE_HEAD_DIM = "qk_rope_head_dim"  # DeepSeek-V2/V3, MiniCPM3 (MLA)
ALIBI = "alibi"  # Falcon
MODEL_MAX_LENGTH = "model_max_length"  # Baichuan
# Written by `fix --type ntk` beside the grown rope_theta: the base and length the model was trained with, so a later
# plan starts from them (transformers keeps an unknown top-level key as a plain attribute and ignores it).
STATIC_NTK_RECORD = "ropedoctor_static_ntk"
RECORD_TRAINED_CONTEXT = "trained_context"

# Every key that can carry a scaling factor or length; used to tell RoPE configs apart.
ROPE_EVIDENCE_KEYS = frozenset(
    {ROPE_THETA, ROPE_SCALING, ROPE_PARAMETERS, PARTIAL_ROTARY_FACTOR, ROTARY_PCT, ROTARY_EMB_BASE,
     ROTARY_EMB_FRACTION, ROPE_RATIO, ROPE_LOCAL_BASE_FREQ, GLOBAL_ROPE_THETA, QK_ROPE_HEAD_DIM}
)


@dataclass(frozen=True)
class MethodKeys:
    """The keys transformers 5.23 accepts inside a scaling block of one rope_type."""

    required: frozenset[str]
    optional: frozenset[str]


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


# rope_type -> keys, read off the one method table (ropedoctor.model.methods). Keys that transformers
# itself fills during standardisation (rope_theta, original_max_position_embeddings) are listed as it lists them.
METHOD_KEYS: dict[str, MethodKeys] = {
    m.name: MethodKeys(m.required, m.optional) for m in _methods.METHODS.values() if m.transformers
}
ALWAYS_OPTIONAL = _keys(PARTIAL_ROTARY_FACTOR)

# Methods whose block carries the pre-scaling length; transformers fills it from
# max_position_embeddings when absent.
METHODS_WITH_ORIGINAL = tuple(m.name for m in _methods.METHODS.values() if m.original_in_block)

# Legacy names that transformers maps onto a real method for some families.
LEGACY_METHOD_ALIASES: dict[str, dict[str, str]] = {
    "phi3": {"su": "longrope", "yarn": "longrope"},
    "qwen2_vl_text": {"mrope": "default"},
    "qwen2_5_vl_text": {"mrope": "default"},
}

# Keys some families keep in the block that transformers 5.23 excludes from validation
# (the config classes' ``ignore_keys_at_rope_validation``; tests/test_families.py compares).
VALIDATION_IGNORED_KEYS: dict[str, frozenset[str]] = {
    **{t: _keys(MROPE_SECTION) for t in (
        "cosmos3_edge_text", "ernie4_5_vl_moe_text", "glm4v_moe_text", "glm4v_text", "glm_image_text",
        "glm_ocr_text", "hy_v4_vl_text", "qwen2_5_omni_talker", "qwen2_5_omni_text", "qwen2_5_vl_text",
        "qwen2_vl_text")},
    **{t: _keys(MROPE_SECTION, MROPE_INTERLEAVED) for t in (
        "cohere_compass_text", "qwen3_5_moe_text", "qwen3_5_text", "qwen3_vl_moe_text", "qwen3_vl_text",
        "qwen4_exp_text")},
    "qwen3_omni_moe_text": _keys(MROPE_SECTION, MROPE_INTERLEAVED, "interleaved"),
    "hunyuan_vl_text": _keys(MROPE_SECTION, BETA_FAST, BETA_SLOW, MSCALE, MSCALE_ALL_DIM, "alpha"),
    "ministral3": _keys("llama_4_scaling_beta", MAX_POSITIONS),
}


def for_model(table: dict[str, Any], model_type: str | None, default: Any) -> Any:
    """A per-model-type entry; a 4.x wrapper type (qwen2_vl) finds its text type's (qwen2_vl_text)."""
    if not model_type:
        return default
    for key in (model_type, model_type + "_text", model_type.removesuffix("_text")):
        if key in table:
            return table[key]
    return default


# Values inside a block that must be numbers (lists of numbers for the longrope factors).
NUMERIC_BLOCK_KEYS = (
    FACTOR, ROPE_THETA, ORIGINAL_MAX_POSITIONS, ATTENTION_FACTOR, BETA_FAST, BETA_SLOW, MSCALE, MSCALE_ALL_DIM,
    LOW_FREQ_FACTOR, HIGH_FREQ_FACTOR, PARTIAL_ROTARY_FACTOR,
)
NUMERIC_LIST_KEYS = (SHORT_FACTOR, LONG_FACTOR)
