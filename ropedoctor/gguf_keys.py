"""The GGUF metadata keys, types and tensor names ropedoctor reads, defined once.

They mirror ``gguf.constants`` (``Keys``, ``GGUFValueType``, ``TENSOR_NAMES``) rather than
import them: importing gguf pulls numpy in, and ``check`` must start fast.
``tests/test_gguf_keys.py`` asserts every string and code here equals gguf's own.
"""

from __future__ import annotations

from enum import IntEnum


class ValueType(IntEnum):
    """gguf.GGUFValueType."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


# struct format letter and size of each fixed-size value type.
SCALAR_FORMATS: dict[int, tuple[str, int]] = {
    ValueType.UINT8: ("B", 1), ValueType.INT8: ("b", 1), ValueType.UINT16: ("H", 2), ValueType.INT16: ("h", 2),
    ValueType.UINT32: ("I", 4), ValueType.INT32: ("i", 4), ValueType.FLOAT32: ("f", 4), ValueType.BOOL: ("?", 1),
    ValueType.UINT64: ("Q", 8), ValueType.INT64: ("q", 8), ValueType.FLOAT64: ("d", 8),
}

# --- general ------------------------------------------------------------------------------
ARCHITECTURE = "general.architecture"
NAME = "general.name"
BASENAME = "general.basename"
ALIGNMENT = "general.alignment"
SPLIT_COUNT = "split.count"
SPLIT_NO = "split.no"  # 0-based, UINT16
SPLIT_TENSORS_COUNT = "split.tensors.count"

# --- per architecture (format with arch=) ----------------------------------------------------
CONTEXT_LENGTH = "{arch}.context_length"
EMBEDDING_LENGTH = "{arch}.embedding_length"
POOLING_TYPE = "{arch}.pooling_type"
HEAD_COUNT = "{arch}.attention.head_count"
HEAD_COUNT_KV = "{arch}.attention.head_count_kv"
KEY_LENGTH = "{arch}.attention.key_length"
CAUSAL = "{arch}.attention.causal"
SLIDING_WINDOW = "{arch}.attention.sliding_window"
BLOCK_COUNT = "{arch}.block_count"
FEED_FORWARD_LENGTH = "{arch}.feed_forward_length"
EXPERT_COUNT = "{arch}.expert_count"
VALUE_LENGTH = "{arch}.attention.value_length"
KV_LORA_RANK = "{arch}.attention.kv_lora_rank"
KEY_LENGTH_MLA = "{arch}.attention.key_length_mla"  # present only in GGUFs llama.cpp runs as MLA
VALUE_LENGTH_MLA = "{arch}.attention.value_length_mla"
SLIDING_WINDOW_PATTERN = "{arch}.attention.sliding_window_pattern"  # per-layer bools (or one period)
ROPE_DIMENSION_COUNT = "{arch}.rope.dimension_count"
ROPE_DIMENSION_SECTIONS = "{arch}.rope.dimension_sections"
ROPE_FREQ_BASE = "{arch}.rope.freq_base"
ROPE_FREQ_BASE_SWA = "{arch}.rope.freq_base_swa"
ROPE_SCALING_TYPE = "{arch}.rope.scaling.type"
ROPE_SCALING_FACTOR = "{arch}.rope.scaling.factor"
ROPE_SCALING_ATTN_FACTOR = "{arch}.rope.scaling.attn_factor"
ROPE_SCALING_ORIG_CTX_LEN = "{arch}.rope.scaling.original_context_length"
ROPE_SCALING_FINETUNED = "{arch}.rope.scaling.finetuned"
ROPE_SCALING_YARN_LOG_MUL = "{arch}.rope.scaling.yarn_log_multiplier"
ROPE_SCALING_YARN_EXT_FACTOR = "{arch}.rope.scaling.yarn_ext_factor"
ROPE_SCALING_YARN_ATTN_FACTOR = "{arch}.rope.scaling.yarn_attn_factor"
ROPE_SCALING_YARN_BETA_FAST = "{arch}.rope.scaling.yarn_beta_fast"
ROPE_SCALING_YARN_BETA_SLOW = "{arch}.rope.scaling.yarn_beta_slow"
# Legacy factor key: no gguf constant, still read by llama.cpp when scaling.factor is absent.
ROPE_SCALE_LINEAR = "{arch}.rope.scale_linear"

# --- tensors ----------------------------------------------------------------------------------
ROPE_FREQS = "rope_freqs.weight"  # llama3 (and Gemma-4 proportional) per-frequency divisors
ROPE_FACTORS_LONG = "rope_factors_long.weight"  # longrope
ROPE_FACTORS_SHORT = "rope_factors_short.weight"
POSITION_EMBD = "position_embd.weight"  # learned absolute positions

# llama.cpp's RopeScalingType strings; anything else aborts the load.
SCALING_TYPES = ("none", "linear", "yarn", "longrope")

# The type llama.cpp's loader demands for each key (``key X has wrong type``).
REQUIRED_TYPES: dict[str, tuple[ValueType, ...]] = {
    CONTEXT_LENGTH: (ValueType.UINT32,),
    EMBEDDING_LENGTH: (ValueType.UINT32,),
    POOLING_TYPE: (ValueType.UINT32,),
    KEY_LENGTH: (ValueType.UINT32,),
    HEAD_COUNT: (ValueType.UINT32, ValueType.ARRAY),  # per-layer arrays are accepted
    CAUSAL: (ValueType.BOOL,),
    ROPE_DIMENSION_COUNT: (ValueType.UINT32,),
    ROPE_DIMENSION_SECTIONS: (ValueType.ARRAY,),
    ROPE_FREQ_BASE: (ValueType.FLOAT32,),
    ROPE_FREQ_BASE_SWA: (ValueType.FLOAT32,),
    ROPE_SCALING_TYPE: (ValueType.STRING,),
    ROPE_SCALING_FACTOR: (ValueType.FLOAT32,),
    ROPE_SCALE_LINEAR: (ValueType.FLOAT32,),
    ROPE_SCALING_ATTN_FACTOR: (ValueType.FLOAT32,),
    ROPE_SCALING_ORIG_CTX_LEN: (ValueType.UINT32,),
    ROPE_SCALING_FINETUNED: (ValueType.BOOL,),
    ROPE_SCALING_YARN_LOG_MUL: (ValueType.FLOAT32,),
    ROPE_SCALING_YARN_EXT_FACTOR: (ValueType.FLOAT32,),
    ROPE_SCALING_YARN_ATTN_FACTOR: (ValueType.FLOAT32,),
    ROPE_SCALING_YARN_BETA_FAST: (ValueType.FLOAT32,),
    ROPE_SCALING_YARN_BETA_SLOW: (ValueType.FLOAT32,),
}
