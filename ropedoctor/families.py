"""What each model family means by its config keys: defaults, aliases and position kind.

One row per ``model_type``. Defaults for families that transformers ships natively are the
class defaults of transformers 5.23 (``default_theta``, ``partial_rotary_factor``,
``max_position_embeddings``); ``tests/test_families.py`` checks them against the installed
package. Remote-code families (ChatGLM, Qwen v1, InternLM2, Baichuan, NomicBert's remote
config) follow their published ``configuration_*.py``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from ropedoctor import hf_keys as K

# "relative": T5-style relative attention biases; "none": no positions at all (state-space models);
# "unknown": neither a hand-written nor a generated record knows the model type, and the file has no RoPE keys.
PositionKind = Literal["rope", "alibi", "absolute", "relative", "none", "unknown"]


@dataclass(frozen=True)
class LegacyValidator:
    """A remote-code config class's own ``_rope_scaling_validation`` (the transformers 4.36-4.38 copy that
    InternLM/InternLM2, DeepSeek-MoE and others ship): ``rope_scaling`` must be a dict of exactly two keys,
    ``type`` in ``types`` and one of ``value_keys`` a float > 1 (an int such as ``2`` is refused)."""

    types: tuple[str, ...] = ("linear", "dynamic")
    value_keys: tuple[str, ...] = (K.FACTOR,)


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
    # Family-specific keys that switch dynamic NTK on with a factor (NomicBert's rotary_scaling_factor).
    factor_keys: tuple[str, ...] = ()
    # Only layers of these types rotate; the others are NoPE (Cohere2: RoPE on sliding layers, none on global ones).
    rope_layer_types: tuple[str, ...] = ()
    # The family's own code keys dynamic NTK (and llama.cpp's converter the GGUF context) to the trained length,
    # not to the declared one (NomicBert: max_trained_positions).
    keyed_to_trained_length: bool = False
    # A transformers 4.x validator that accepts exactly these rope_scaling keys (Phi-3: type, short/long factor).
    v4_block_keys: tuple[str, ...] = ()
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
    # The methods a `fix` may write into this family's file (None: every method the format carries).
    # Remote code refuses what its own validator does not know; an empty tuple means ropedoctor does not
    # write this family's remote-code keys at all.
    writes: tuple[str, ...] | None = None
    # The remote-code validator the scaling block must pass, so fix writes exactly its shape.
    legacy_validator: LegacyValidator | None = None
    # The method the family's model card prescribes when no scaling ships.
    prescribed: str | None = None
    # The factor the card prescribes up to the declared length, when that differs from the smallest one.
    prescribed_factor: float | None = None
    # --- learnt from transformers (tools/gen_hf_families.py -> model/hf_families.json) ---
    # False only for a model type nothing knows (DEFAULT_FAMILY): its positions are not assumed.
    known: bool = True
    # Where a composite config keeps the text model's config ("thinker_config.text_config", "decoder").
    text_paths: tuple[str, ...] = ()
    # A head_dim the class fixes regardless of hidden_size / num_attention_heads (Gemma: 256).
    default_head_dim: int | None = None
    # (layer type or "", the key that decides the rotary dimension): rotary_dim (MiniMax-M2), qk_rope_head_dim
    # (MLA), global_head_dim (Gemma-4 full attention); default "head_dim" / hidden // heads.
    rotary_keys: tuple[tuple[str, str], ...] = ()
    # The class's default rotary dims per layer type, for a file without the deciding key.
    default_rotary: tuple[tuple[str, int], ...] = ()
    # False when the class skips standardize_rope_params: YaRN/llama3/longrope blocks keep no filled-in
    # original_max_position_embeddings, and transformers raises KeyError without one.
    standardises: bool = True
    # The methods the model's rotary module builds (None: every method transformers knows).
    rope_types: tuple[str, ...] | None = None
    # transformers rewrites "default" to this (vision encoders: "axial").
    default_method: str = "default"
    # The class's _rope_type_labels: rope_parameters nested under these names (DeepSeek-V4: main, compress).
    rope_labels: tuple[str, ...] = ()
    # The class knows NoPE layers (no_rope_layers) / dual-chunk attention (dual_chunk_attention_config).
    no_rope_layers: bool = False
    dual_chunk: bool = False
    # Block keys the class excludes from validation (ignore_keys_at_rope_validation).
    validation_ignored: frozenset[str] = frozenset()
    # What the class does with a legacy v4 rope_scaling naming its method by `type` only: "ok", "dropped" (merged
    # under per-layer blocks that keep rope_type default: runs unscaled) or "fails" (the rotary module raises).
    legacy_scaling: str = "ok"
    # rotary / (deciding key x partial) when not 1: 2-D (axial) vision modules rotate half per axis.
    rotary_scale: float = 1.0
    # False when the class has no global head_dim for validate_rope's odd-head_dim check (Qwen3-Omni text,
    # heterogeneous configs): an odd head then builds (ceil(dim / 2) frequencies).
    checks_odd_head_dim: bool = True
    # transformers 4.x (the 4.57 the generator compared): whether it has the type at all, and its default
    # rope_theta where that differs from 5.x's default_theta (Qwen3-VL: 5e6 in 4.57, 5e5 in 5.x).
    in_v4: bool = True
    v4_theta: float | None = None
    # 4.x's rotary module reads rope_scaling unguarded (Qwen3-VL's mrope_section): a v5-only file cannot build.
    v4_needs_scaling: bool = False


_LEGACY = LegacyValidator()
_PHI3_V4_KEYS = (K.LEGACY_TYPE, K.SHORT_FACTOR, K.LONG_FACTOR)

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
    # InternLM2/2.5 (remote code): configuration_internlm2.py keeps the 4.38 validator, so the block is
    # exactly {"type": linear|dynamic, "factor": float > 1}; the model card prescribes dynamic NTK.
    "internlm2": Family(remote_code=True, writes=("default", "linear", "dynamic"), legacy_validator=_LEGACY,
                        prescribed="dynamic"),
    "internlm": Family(remote_code=True, writes=("default", "linear", "dynamic"), legacy_validator=_LEGACY),
    "deepseek": Family(remote_code=True, writes=("default", "linear", "dynamic"), legacy_validator=_LEGACY),
    "internlm3": Family(prescribed="dynamic"),
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
    # transformers' Phi-3 validator accepts longrope only (a static NTK base writes no block).
    # Cohere2 (Command R7B, Aya): apply_rotary_pos_emb only where sliding_window is set, i.e. on sliding layers
    "cohere2": Family(default_context=8192, rope_layer_types=(K.SLIDING_ATTENTION,)),
    "phi3": Family(default_context=4096, top_level_original=True, writes=("default", "longrope"),
                   v4_block_keys=_PHI3_V4_KEYS),
    "phimoe": Family(default_theta=1_000_000.0, top_level_original=True, writes=("default", "longrope")),
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
        remote_code=True, writes=(), context_keys=(K.SEQ_LENGTH,), head_dim_keys=(K.KV_CHANNELS,), default_partial_rotary=0.5,
        theta_keys=(K.ROPE_RATIO,),
    ),
    # Qwen v1 (remote code): dynamic NTK and logn attention switched by booleans.
    "qwen": Family(
        remote_code=True, writes=(), theta_keys=(K.ROTARY_EMB_BASE,), partial_rotary_keys=(K.ROTARY_PCT,),
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
        # its own switch is rotary_scaling_factor (dynamic NTK); the card's recipe is factor 2 for 8192
        factor_keys=(K.ROTARY_SCALING_FACTOR,), keyed_to_trained_length=True, writes=("default", "dynamic"),
        prescribed="dynamic",
        prescribed_factor=2.0,
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

DEFAULT_FAMILY = Family(known=False)

# A trained length below this is not plausible for a released LM: a linear-scaled file whose
# max_position_embeddings / factor is still at least this reads as already extended.
MIN_PLAUSIBLE_TRAINED_LENGTH = 2048


def family_of(model_type: str | None) -> Family:
    """The family of a model_type: its hand-written row (completed by the generated record of the same type),
    else the record generated from transformers, else DEFAULT_FAMILY (the Llama convention, ``known=False``)."""
    if not model_type:
        return DEFAULT_FAMILY
    return _family_of(model_type)


@functools.cache
def _family_of(model_type: str) -> Family:
    records = hf_records()
    hand: Family | None = K.for_model(FAMILIES, model_type, None)
    record = records.get(model_type)
    if record is None and model_type.endswith("_text"):
        record = records.get(model_type.removesuffix("_text"))
    if hand is not None:
        return _completed(hand, record) if record else hand
    if record is not None:
        return _from_record(record)
    return DEFAULT_FAMILY


@functools.cache
def _hf_families() -> dict[str, Any]:
    path = Path(__file__).resolve().parent / "model" / "hf_families.json"
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def hf_records() -> dict[str, dict[str, Any]]:
    """model/hf_families.json's records by model_type (read once, on the first family lookup)."""
    return _hf_families()["types"]  # type: ignore[no-any-return]


def type_of_architecture(architectures: object) -> str | None:
    """The transformers model_type whose class a config's ``architectures`` names (remote code that reuses a
    native class: Kimi-K2's DeepseekV3ForCausalLM), or None."""
    if not isinstance(architectures, list):
        return None
    known: dict[str, str] = _hf_families()["architectures"]
    return next((known[name] for name in architectures if isinstance(name, str) and name in known), None)


def _learnt(record: dict[str, Any]) -> dict[str, Any]:
    """The Family fields only the generated record knows."""
    rotary_key = record.get("rotary_key")
    keys = tuple(sorted(rotary_key.items())) if isinstance(rotary_key, dict) else (
        (("", rotary_key),) if isinstance(rotary_key, str) else ())
    rope_types = record.get("rope_types")
    return {
        "text_paths": (record["text"],) if record.get("text") else (),
        "default_head_dim": record.get("head_dim"),
        "rotary_keys": keys,
        "default_rotary": tuple(sorted((record.get("rotary") or {}).items())),
        "standardises": record.get("standardises", True),
        "rope_types": tuple(rope_types) if isinstance(rope_types, list) else None,
        "default_method": record.get("rope_type", "default"),
        "rope_labels": tuple(record.get("labels", ())),
        "no_rope_layers": bool(record.get("no_rope_layers")),
        "dual_chunk": bool(record.get("dual_chunk")),
        "validation_ignored": frozenset(record.get("ignore_keys", ())),
        "legacy_scaling": record.get("legacy_scaling", "ok"),
        "rotary_scale": float(record.get("rotary_scale", 1.0)),
        "checks_odd_head_dim": not record.get("head_dim_unchecked"),
        "in_v4": record.get("v4", True) is not False,
        "v4_theta": record.get("v4_theta"),
        "v4_needs_scaling": bool(record.get("v4_needs_scaling")),
    }


def _layered(record: dict[str, Any]) -> dict[str, Any]:
    """A class whose default rope_parameters is nested by full/sliding attention (OLMo-3, Gemma-3n, Gemma-4):
    read like Gemma-3 (a legacy block merges into full attention only; per-layer YaRN stays per layer)."""
    block = record.get("block")
    labels = (K.FULL_ATTENTION, K.SLIDING_ATTENTION)
    if not isinstance(block, dict) or set(block) != set(labels) or not all(isinstance(block[k], dict) for k in labels):
        return {}
    local = block[K.SLIDING_ATTENTION].get(K.ROPE_THETA)
    return {"layer_labels": labels, "default_local_theta": float(local) if isinstance(local, (int, float)) else None}


def _completed(hand: Family, record: dict[str, Any]) -> Family:
    learnt = _learnt(record)
    if not hand.layer_labels:
        learnt.update(_layered(record))
    learnt["needs_explicit_head_dim"] = hand.needs_explicit_head_dim or bool(record.get("head_dim_none"))
    return replace(hand, **learnt)


def _from_record(record: dict[str, Any]) -> Family:
    aliases: dict[str, str] = record.get("aliases") or {}

    def keys(standard: str) -> tuple[str, ...]:
        alias = aliases.get(standard)
        return (alias, standard) if alias and alias != standard else (standard,)

    positions: PositionKind = "rope" if record.get("rope") else record.get("positions", "none")
    block = record.get("block")
    flat = isinstance(block, dict) and not any(isinstance(v, dict) for v in block.values())
    default_block: tuple[tuple[str, object], ...] = ()
    if flat and block and block.get(K.ROPE_TYPE) not in (None, "default", record.get("rope_type")):
        default_block = tuple(sorted((k, v) for k, v in block.items() if k != K.ROPE_THETA))
    return Family(
        positions=positions, default_theta=float(record.get("theta", 10_000.0)),
        theta_keys=keys(K.ROPE_THETA),
        default_partial_rotary=record.get("partial"), context_keys=keys(K.MAX_POSITIONS),
        default_context=record.get("context"),
        # a key the class copies into head_dim whatever the file says (MLA's qk_rope_head_dim) comes first
        head_dim_keys=tuple(dict.fromkeys((*((record["head_dim_key"],) if record.get("head_dim_key") else ()),
                                           *keys(K.HEAD_DIM)))),
        hidden_size_keys=keys(K.HIDDEN_SIZE),
        num_heads_keys=keys(K.NUM_ATTENTION_HEADS), default_block=default_block,
        needs_explicit_head_dim=bool(record.get("head_dim_none")),
        **{"default_local_theta": record.get("local_theta"), **_learnt(record), **_layered(record)},
    )


@dataclass(frozen=True)
class GgufArch:
    """What a GGUF ``general.architecture`` implies that the file itself may not say."""

    positions: PositionKind = "rope"
    causal: bool = True
    # The base the family's models use; a GGUF without rope.freq_base silently gets 10000.
    usual_base: float | None = None
    # llama.cpp refuses rope.dimension_count != head size ("invalid n_rot") for these.
    rotary_must_equal_head: bool = False
    # block counts at which llama.cpp builds this architecture with ALiBi and no RoPE (Baichuan-13B: 40 layers
    # load as LLM_TYPE_13B, whose graph adds no rope and sets max_alibi_bias 8)
    alibi_block_counts: tuple[int, ...] = ()


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
    "baichuan": GgufArch(alibi_block_counts=(40,)),
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


@dataclass(frozen=True)
class ShapeRules:
    """What a family's config class implies about the model's size when the file leaves keys out (the
    memory bill, memory.py). Read from each class's defaults in transformers (or the remote code)."""

    # KV heads: "keys" (num_key_value_heads), Falcon's multi_query/new_decoder_architecture switches,
    # or ChatGLM's multi_query_attention + multi_query_group_num.
    kv_heads: Literal["keys", "falcon", "chatglm"] = "keys"
    ffn_default_x4: bool = False  # no intermediate size means 4 x the width
    intermediate_halved: bool = False  # Qwen v1: intermediate_size counts both MLP halves
    tied_by_default: bool = False
    gated_mlp: bool = True
    # Which layers a sliding_window applies to: every layer, every other one (Gemma-2, gpt-oss), all but every
    # Nth (Gemma-3's sliding_window_pattern), from max_window_layers on (Qwen2/3), or Llama-4's chunked layers.
    windows: Literal["every", "alternate", "pattern", "max_window_layers", "chunked"] = "every"
    window_pattern: int = 6
    shared_experts: int = 0  # shared experts the class adds to an MoE when the file names none (Llama-4)
    # transformers and vLLM apply the window, llama.cpp caches every token for these files
    window_ignored_by_llamacpp: bool = False


_TIED = ShapeRules(tied_by_default=True)
_UNGATED = ShapeRules(gated_mlp=False)
_QWEN_WINDOWS = ShapeRules(windows="max_window_layers")
_LLAMA_WINDOWS = ShapeRules(window_ignored_by_llamacpp=True)
_LLAMA4_SHAPE = ShapeRules(windows="chunked", shared_experts=1)
_GEMMA3_SHAPE = ShapeRules(tied_by_default=True, windows="pattern", window_pattern=6)

SHAPES: dict[str, ShapeRules] = {
    "falcon": ShapeRules(kv_heads="falcon", ffn_default_x4=True, gated_mlp=False),
    "chatglm": ShapeRules(kv_heads="chatglm"),
    "nomic_bert": ShapeRules(ffn_default_x4=True, tied_by_default=True),
    "gpt2": ShapeRules(ffn_default_x4=True, tied_by_default=True, gated_mlp=False),
    "qwen": ShapeRules(intermediate_halved=True),
    "gemma": _TIED, "gemma2": ShapeRules(tied_by_default=True, windows="alternate"),
    "gemma3": _GEMMA3_SHAPE, "gemma3_text": _GEMMA3_SHAPE,
    "bert": ShapeRules(tied_by_default=True, gated_mlp=False), "roberta": _TIED, "xlm-roberta": _TIED,
    "modernbert": _TIED,
    "llama4": _LLAMA4_SHAPE, "llama4_text": _LLAMA4_SHAPE,
    "qwen2": _QWEN_WINDOWS, "qwen2_moe": _QWEN_WINDOWS, "qwen3": _QWEN_WINDOWS, "qwen3_moe": _QWEN_WINDOWS,
    "qwen2_vl": _QWEN_WINDOWS, "qwen2_5_vl": _QWEN_WINDOWS,
    "gpt_oss": ShapeRules(windows="alternate"),
    "mistral": _LLAMA_WINDOWS, "mixtral": _LLAMA_WINDOWS, "llama": _LLAMA_WINDOWS,
    "gpt_neox": _UNGATED, "phi": _UNGATED, "starcoder2": _UNGATED, "gpt_bigcode": _UNGATED, "mpt": _UNGATED,
    "bloom": _UNGATED,
}


def shape_rules_of(model_type: str | None) -> ShapeRules:
    """The size rules of a model_type; unknown types get the Llama convention."""
    return K.for_model(SHAPES, model_type, ShapeRules())  # type: ignore[no-any-return]
