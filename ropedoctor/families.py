"""What each model family means by its config keys: defaults, aliases and position kind.

One row per ``model_type``. Defaults for families that transformers ships natively are the
class defaults of transformers 5.23 (``default_theta``, ``partial_rotary_factor``,
``max_position_embeddings``); ``tests/test_families.py`` checks them against the installed
package. Remote-code families (ChatGLM, Qwen v1, InternLM2, Baichuan, NomicBert's remote
config) follow their published ``configuration_*.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ropedoctor import hf_keys as K

PositionKind = Literal["rope", "alibi", "absolute"]


@dataclass(frozen=True)
class Family:
    """How one model family spells and defaults its position settings."""

    positions: PositionKind = "rope"
    default_theta: float = 10_000.0
    # Sliding-window layers' base (Gemma-3, ModernBERT): the second per-layer-type dict.
    default_local_theta: float | None = None
    theta_keys: tuple[str, ...] = (K.ROPE_THETA,)
    local_theta_keys: tuple[str, ...] = ()
    default_partial_rotary: float | None = None
    partial_rotary_keys: tuple[str, ...] = (K.PARTIAL_ROTARY_FACTOR,)
    context_keys: tuple[str, ...] = (K.MAX_POSITIONS,)
    default_context: int | None = None
    head_dim_keys: tuple[str, ...] = (K.HEAD_DIM,)
    hidden_size_keys: tuple[str, ...] = (K.HIDDEN_SIZE,)
    num_heads_keys: tuple[str, ...] = (K.NUM_ATTENTION_HEADS,)
    causal: bool = True
    # Learned position tables that reserve the first slots (RoBERTa's padding offset).
    position_offset: int = 0
    # transformers nests rope_parameters by these layer-type labels (v5).
    layer_labels: tuple[str, ...] = ()
    # legacy rope_scaling goes to the global layers only (Gemma-3) or to all (ModernBERT).
    scaling_on_local_layers: bool = False
    # The config class has a top-level original_max_position_embeddings field that
    # overrides the one inside the scaling block (Phi-3).
    top_level_original: bool = False
    # Not in transformers: the model ships its own configuration_*.py.
    remote_code: bool = False
    # The scaling block the config class fills in when the file has none (gpt-oss).
    default_block: tuple[tuple[str, object], ...] = ()
    # The config class leaves head_dim None, which transformers 5.23's scaled RoPE functions
    # multiply (TypeError at model init) unless the file sets head_dim (Mixtral).
    needs_explicit_head_dim: bool = False


# GPT-2 spells the model width and head count n_embd / n_head.
_GPT2_HIDDEN = (K.N_EMBD, K.HIDDEN_SIZE)
_GPT2_HEADS = (K.N_HEAD, K.NUM_ATTENTION_HEADS)

FAMILIES: dict[str, Family] = {
    # --- RoPE, Llama convention -------------------------------------------------------
    "llama": Family(default_context=2048),
    "mistral": Family(default_context=4096 * 32),
    "mixtral": Family(default_theta=1_000_000.0, default_context=4096 * 32, needs_explicit_head_dim=True),
    "qwen2": Family(default_context=32768),
    "qwen3": Family(default_context=32768),
    "qwen2_moe": Family(default_context=32768),
    "qwen3_moe": Family(default_context=32768),
    "gemma": Family(default_context=8192),
    "gemma2": Family(default_context=8192),
    "cohere": Family(default_theta=500_000.0),
    "olmo3": Family(default_theta=500_000.0),
    "smollm3": Family(default_theta=2_000_000.0),
    "internlm2": Family(remote_code=True),
    "internlm3": Family(),
    "baichuan": Family(remote_code=True, context_keys=(K.MAX_POSITIONS, K.MODEL_MAX_LENGTH)),
    "minicpm": Family(remote_code=True),
    "minicpm3": Family(head_dim_keys=(K.QK_ROPE_HEAD_DIM,)),
    "deepseek_v2": Family(head_dim_keys=(K.QK_ROPE_HEAD_DIM,)),
    "deepseek_v3": Family(head_dim_keys=(K.QK_ROPE_HEAD_DIM,)),
    "gpt_oss": Family(
        default_theta=150_000.0, default_context=131072,
        default_block=((K.ROPE_TYPE, "yarn"), (K.FACTOR, 32.0), (K.BETA_FAST, 32.0), (K.BETA_SLOW, 1.0),
                       (K.TRUNCATE, False), (K.ORIGINAL_MAX_POSITIONS, 4096)),
    ),
    "falcon": Family(default_context=2048),
    "llama4_text": Family(default_theta=500_000.0),
    "llama4": Family(default_theta=500_000.0),
    "qwen2_vl": Family(default_theta=1_000_000.0),
    "qwen2_5_vl": Family(default_theta=1_000_000.0),
    "qwen3_vl": Family(default_theta=500_000.0),
    "phi3": Family(default_context=4096, top_level_original=True),
    "phimoe": Family(default_theta=1_000_000.0, top_level_original=True),
    # --- partial rotation -------------------------------------------------------------
    "phi": Family(default_partial_rotary=0.5, default_context=2048),
    "stablelm": Family(default_partial_rotary=0.25),
    "persimmon": Family(default_partial_rotary=0.5),
    "glm": Family(default_partial_rotary=0.5),
    "gpt_neox": Family(
        theta_keys=(K.ROTARY_EMB_BASE,), partial_rotary_keys=(K.ROTARY_PCT,), default_partial_rotary=0.25,
        default_context=2048,
    ),
    # ChatGLM / GLM-4 (remote code): theta = 10000 * rope_ratio, only half of each head rotates.
    "chatglm": Family(
        remote_code=True, context_keys=(K.SEQ_LENGTH,), head_dim_keys=(K.KV_CHANNELS,), default_partial_rotary=0.5,
        theta_keys=(K.ROPE_RATIO,),
    ),
    # Qwen v1 (remote code): dynamic NTK and logn attention switched by booleans.
    "qwen": Family(
        remote_code=True, theta_keys=(K.ROTARY_EMB_BASE,), partial_rotary_keys=(K.ROTARY_PCT,),
        context_keys=(K.SEQ_LENGTH, K.MAX_POSITIONS), head_dim_keys=(K.KV_CHANNELS,),
    ),
    # --- per-layer-type RoPE ----------------------------------------------------------
    "gemma3_text": Family(
        default_theta=1_000_000.0, default_local_theta=10_000.0, local_theta_keys=(K.ROPE_LOCAL_BASE_FREQ,),
        layer_labels=(K.FULL_ATTENTION, K.SLIDING_ATTENTION), default_context=131072,
    ),
    "gemma3": Family(  # multimodal wrapper; its text_config is gemma3_text
        default_theta=1_000_000.0, default_local_theta=10_000.0, local_theta_keys=(K.ROPE_LOCAL_BASE_FREQ,),
        layer_labels=(K.FULL_ATTENTION, K.SLIDING_ATTENTION), default_context=131072,
    ),
    "modernbert": Family(
        default_theta=160_000.0, default_local_theta=10_000.0, theta_keys=(K.GLOBAL_ROPE_THETA,),
        local_theta_keys=(K.LOCAL_ROPE_THETA,), layer_labels=(K.FULL_ATTENTION, K.SLIDING_ATTENTION),
        scaling_on_local_layers=True, causal=False, default_context=8192,
    ),
    # --- encoders with RoPE -----------------------------------------------------------
    "nomic_bert": Family(
        default_theta=1000.0, theta_keys=(K.ROTARY_EMB_BASE, K.ROPE_THETA),
        partial_rotary_keys=(K.ROTARY_EMB_FRACTION, K.PARTIAL_ROTARY_FACTOR),
        context_keys=(K.N_POSITIONS, K.MAX_POSITIONS), causal=False,
        hidden_size_keys=_GPT2_HIDDEN, num_heads_keys=_GPT2_HEADS,
    ),
    # --- ALiBi --------------------------------------------------------------------------
    "mpt": Family(positions="alibi", context_keys=("max_seq_len",),
        hidden_size_keys=_GPT2_HIDDEN, num_heads_keys=_GPT2_HEADS),
    "bloom": Family(positions="alibi", context_keys=("seq_length", K.N_POSITIONS),
        hidden_size_keys=_GPT2_HIDDEN, num_heads_keys=_GPT2_HEADS),
    # --- learned absolute positions ----------------------------------------------------
    "bert": Family(positions="absolute", causal=False, default_context=512),
    "roberta": Family(positions="absolute", causal=False, position_offset=2, default_context=512),
    "xlm-roberta": Family(positions="absolute", causal=False, position_offset=2, default_context=514),
    "camembert": Family(positions="absolute", causal=False, position_offset=2, default_context=514),
    "distilbert": Family(positions="absolute", causal=False, default_context=512),
    "electra": Family(positions="absolute", causal=False, default_context=512),
    "gpt2": Family(positions="absolute", context_keys=(K.N_POSITIONS,), default_context=1024,
        hidden_size_keys=_GPT2_HIDDEN, num_heads_keys=_GPT2_HEADS),
    "opt": Family(positions="absolute", default_context=2048, position_offset=2),
    "gpt_bigcode": Family(positions="absolute", context_keys=(K.N_POSITIONS,), default_context=2048,
        hidden_size_keys=_GPT2_HIDDEN, num_heads_keys=_GPT2_HEADS),
}

DEFAULT_FAMILY = Family()

# A trained length below this is not plausible for a released LM: a linear-scaled file whose
# max_position_embeddings / factor is still at least this reads as already extended.
MIN_PLAUSIBLE_TRAINED_LENGTH = 2048


def family_of(model_type: str | None) -> Family:
    """The family row for a model_type; unknown types get the Llama convention."""
    return K.for_model(FAMILIES, model_type, DEFAULT_FAMILY)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class GgufArch:
    """What a GGUF ``general.architecture`` implies that the file itself may not say."""

    positions: PositionKind = "rope"
    causal: bool = True
    # The base the family's models use; a GGUF without rope.freq_base silently gets 10000.
    usual_base: float | None = None
    # llama.cpp refuses rope.dimension_count != head size ("invalid n_rot") for these.
    rotary_must_equal_head: bool = False


GGUF_ARCHS: dict[str, GgufArch] = {
    "llama": GgufArch(rotary_must_equal_head=True),
    "deci": GgufArch(rotary_must_equal_head=True),
    "falcon": GgufArch(rotary_must_equal_head=True),
    "llama-embed": GgufArch(rotary_must_equal_head=True, causal=False),
    "qwen2": GgufArch(usual_base=1_000_000.0),
    "qwen2moe": GgufArch(usual_base=1_000_000.0),
    "qwen3": GgufArch(usual_base=1_000_000.0),
    "qwen3moe": GgufArch(usual_base=1_000_000.0),
    "qwen2vl": GgufArch(usual_base=1_000_000.0),
    "gemma3": GgufArch(usual_base=1_000_000.0),
    "gpt-oss": GgufArch(usual_base=150_000.0),
    "llama4": GgufArch(usual_base=500_000.0),
    "nomic-bert": GgufArch(usual_base=1000.0, causal=False),
    "nomic-bert-moe": GgufArch(usual_base=10_000.0, causal=False),
    "modern-bert": GgufArch(usual_base=160_000.0, causal=False),
    "neo-bert": GgufArch(causal=False),
    "eurobert": GgufArch(causal=False),
    "gemma-embedding": GgufArch(causal=False),
    "bert": GgufArch(positions="absolute", causal=False),
    "jina-bert-v3": GgufArch(positions="absolute", causal=False),
    "gpt2": GgufArch(positions="absolute"),
    "starcoder": GgufArch(positions="absolute"),
    "jina-bert-v2": GgufArch(positions="alibi", causal=False),
    "bloom": GgufArch(positions="alibi"),
    "mpt": GgufArch(positions="alibi"),
    "refact": GgufArch(positions="alibi"),
}


# The GGUF general.architecture convert_hf_to_gguf.py writes for a transformers model_type.
GGUF_ARCH_OF: dict[str, str] = {
    "llama": "llama", "mistral": "llama", "mixtral": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
    "qwen2_moe": "qwen2moe", "qwen3_moe": "qwen3moe", "qwen2_vl": "qwen2vl", "qwen2_5_vl": "qwen2vl",
    "qwen2_5_vl_text": "qwen2vl", "gemma3": "gemma3", "gemma3_text": "gemma3", "phi3": "phi3", "phi": "phi2",
    "nomic_bert": "nomic-bert", "gpt_oss": "gpt-oss", "deepseek_v2": "deepseek2", "deepseek_v3": "deepseek2",
    "gpt_neox": "gptneox", "internlm2": "internlm2", "modernbert": "modern-bert", "falcon": "falcon",
    "stablelm": "stablelm", "chatglm": "chatglm", "baichuan": "baichuan", "minicpm3": "minicpm3", "bert": "bert",
    "xlm-roberta": "bert", "gpt2": "gpt2", "bloom": "bloom", "mpt": "mpt", "qwen": "qwen", "llama4_text": "llama4",
    "llama4": "llama4", "smollm3": "smollm3", "olmo3": "olmo2", "cohere": "command-r",
}
