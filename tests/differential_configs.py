"""Deterministic generator of ``config.json`` dicts for differential testing against
transformers.

``generate_configs(n, seed)`` returns ``n`` complete config dicts for model classes that
transformers 5.23 ships natively (``llama`` mostly, plus ``qwen2``, ``mistral``,
``phi3``, ``gpt_neox``, ``gemma3_text``, ``deepseek_v3``, ``gpt_oss``).
``generate_cases`` returns the same configs together with a :class:`CaseMeta` describing
how each was made (family, method, layout, type key, faults), which the tests use for
coverage counts and failure messages.

Axes that are varied:

* **method**: ``default``, ``linear``, ``dynamic``, ``yarn``, ``llama3``, ``longrope``
  and unknown strings (``ntk``, ``YaRN``, ``su``, ``mrope``, ...);
* **layout**: ``v4`` (top-level ``rope_theta`` + ``rope_scaling``), ``v4-null``
  (``rope_scaling: null``), ``v5`` (``rope_parameters`` with ``rope_theta`` inside),
  ``both`` (v4 and v5 keys at once, agreeing or not), ``v5+null-scaling``, ``bare`` (no
  RoPE keys at all), and the model-specific legacy keys of GPT-NeoX and Gemma3;
* **type key** of the legacy dict: ``rope_type``, ``type`` or both (sometimes
  disagreeing);
* **faults**: missing required keys, unknown extra keys, ``factor`` < 1 / 0 / negative,
  negative ``attention_factor``, ``beta_fast < beta_slow``, llama3 ``low >= high`` and
  ``original >= max_position_embeddings``, longrope lists of the wrong length, odd
  ``head_dim``, yarn ``factor`` inconsistent with ``max_position_embeddings /
  original``, numbers given as strings, integer ``attention_factor``, a float llama3
  ``original``, both layouts disagreeing, ``type``/``rope_type`` disagreeing.

Every value is plain JSON (no NaN/Infinity); ``json.dumps(cfg, allow_nan=False)`` works
on every generated dict.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

KNOWN_METHODS: tuple[str, ...] = (
    "default",
    "linear",
    "dynamic",
    "yarn",
    "llama3",
    "longrope",
)
UNKNOWN_METHODS: tuple[str, ...] = (
    "ntk",
    "YaRN",
    "Linear",
    "su",
    "mrope",
    "rope",
    "dynamic-ntk",
    "xpos",
)
LAYOUTS: tuple[str, ...] = ("v4", "v4-null", "v5", "both", "v5+null-scaling", "bare")

FAMILY_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("llama", 50),
    ("qwen2", 8),
    ("mistral", 8),
    ("phi3", 8),
    ("gpt_neox", 6),
    ("gemma3_text", 6),
    ("deepseek_v3", 7),
    ("gpt_oss", 7),
)

# Faults that can be applied to the RoPE dict of a given method.
FAULTS_BY_METHOD: dict[str, tuple[str, ...]] = {
    "default": ("extra_key", "extra_factor", "string_theta", "odd_head_dim"),
    "linear": (
        "missing_factor",
        "extra_key",
        "factor_lt1",
        "factor_zero",
        "factor_negative",
        "string_factor",
        "string_theta",
        "extra_original",
        "odd_head_dim",
    ),
    "dynamic": (
        "missing_factor",
        "extra_key",
        "factor_lt1",
        "factor_zero",
        "extra_original",
        "string_factor",
        "odd_head_dim",
    ),
    "yarn": (
        "missing_factor",
        "missing_original",
        "extra_key",
        "factor_lt1",
        "factor_zero",
        "negative_attention_factor",
        "int_attention_factor",
        "beta_fast_lt_slow",
        "yarn_inconsistent",
        "string_beta",
        "null_factor",
        "odd_head_dim",
    ),
    "llama3": (
        "missing_factor",
        "missing_low",
        "missing_high",
        "missing_original",
        "extra_key",
        "factor_lt1",
        "llama3_low_ge_high",
        "llama3_original_ge_max",
        "float_original",
        "null_low",
        "odd_head_dim",
    ),
    "longrope": (
        "missing_short",
        "missing_long",
        "extra_key",
        "longrope_wrong_length",
        "longrope_not_list",
        "factor_lt1",
        "negative_attention_factor",
        "odd_head_dim",
    ),
}
UNKNOWN_FAULTS: tuple[str, ...] = ("extra_key",)


@dataclass(frozen=True)
class CaseMeta:
    """How one generated config was made (for coverage counts and failure messages)."""

    index: int
    family: str
    method: str
    """Method requested: one of KNOWN_METHODS, or ``unknown:<string>``."""
    layout: str
    type_key: str
    """``rope_type``, ``type``, ``both``, ``both-disagree`` or ``-`` (no legacy dict)"""
    faults: tuple[str, ...] = field(default_factory=tuple)

    @property
    def method_class(self) -> str:
        return "unknown" if self.method.startswith("unknown:") else self.method

    def label(self) -> str:
        faults = ",".join(self.faults) or "clean"
        head = f"#{self.index} {self.family} {self.method} {self.layout}"
        return f"{head} {self.type_key} [{faults}]"


# ----------------------------------------------------------------------------
# model skeletons


def _pick_dims(rng: random.Random) -> tuple[int, int]:
    """(hidden_size, num_attention_heads) with an even head_dim >= 8."""
    while True:
        hidden = rng.choice((64, 128, 192, 256, 384, 512))
        heads = rng.choice((2, 4, 8))
        head_dim = hidden // heads
        if hidden % heads == 0 and head_dim % 2 == 0 and head_dim >= 8:
            return hidden, heads


def _base(family: str, rng: random.Random) -> dict[str, Any]:
    hidden, heads = _pick_dims(rng)
    kv_heads = rng.choice([h for h in (1, 2, heads) if heads % h == 0])
    cfg: dict[str, Any] = {
        "architectures": [],
        "model_type": family,
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": 2,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": 1024,
        "max_position_embeddings": rng.choice((2048, 4096, 8192, 16384, 32768, 131072)),
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    if family == "llama":
        cfg["architectures"] = ["LlamaForCausalLM"]
        if rng.random() < 0.5:
            cfg["head_dim"] = hidden // heads
    elif family == "qwen2":
        cfg["architectures"] = ["Qwen2ForCausalLM"]
        cfg["use_sliding_window"] = False
        cfg["max_window_layers"] = 2
    elif family == "mistral":
        cfg["architectures"] = ["MistralForCausalLM"]
        cfg["sliding_window"] = None
        if rng.random() < 0.5:
            cfg["head_dim"] = hidden // heads
    elif family == "phi3":
        cfg["architectures"] = ["Phi3ForCausalLM"]
        cfg["vocab_size"] = 32064
        cfg["pad_token_id"] = 32000
        cfg["eos_token_id"] = 32000
        cfg["original_max_position_embeddings"] = rng.choice((1024, 2048, 4096))
        cfg["max_position_embeddings"] = cfg[
            "original_max_position_embeddings"
        ] * rng.choice((1, 8, 32))
        cfg["rms_norm_eps"] = 1e-5
    elif family == "gpt_neox":
        cfg["architectures"] = ["GPTNeoXForCausalLM"]
        cfg["hidden_act"] = "gelu"
        cfg["layer_norm_eps"] = 1e-5
        cfg["use_parallel_residual"] = True
        cfg["vocab_size"] = 1024
        del cfg["rms_norm_eps"]
        del cfg["num_key_value_heads"]
    elif family == "gemma3_text":
        cfg["architectures"] = ["Gemma3ForCausalLM"]
        cfg["head_dim"] = rng.choice((16, 32, 64))
        cfg["hidden_act"] = "gelu_pytorch_tanh"
        cfg["hidden_activation"] = "gelu_pytorch_tanh"
        cfg["sliding_window"] = 512
        cfg["query_pre_attn_scalar"] = cfg["head_dim"]
        cfg["rms_norm_eps"] = 1e-6
        cfg["pad_token_id"] = 0
        del cfg["hidden_act"]
        # 2 layers with the default pattern of 6 would have no full-attention layer
        if rng.random() < 0.75:
            cfg["sliding_window_pattern"] = 2
        else:
            cfg["layer_types"] = ["sliding_attention", "full_attention"]
    elif family == "deepseek_v3":
        cfg["architectures"] = ["DeepseekV3ForCausalLM"]
        rope_dim = rng.choice((16, 32, 64))
        cfg.update(
            {
                "qk_rope_head_dim": rope_dim,
                "qk_nope_head_dim": 32,
                "v_head_dim": 32,
                "kv_lora_rank": 64,
                "q_lora_rank": 96,
                "moe_intermediate_size": 64,
                "n_routed_experts": 4,
                "n_shared_experts": 1,
                "num_experts_per_tok": 2,
                "n_group": 2,
                "topk_group": 1,
                "first_k_dense_replace": 1,
                "rope_interleave": True,
                "max_position_embeddings": rng.choice((4096, 16384, 163840)),
            }
        )
        cfg["bos_token_id"] = 0
        cfg["eos_token_id"] = 1
    elif family == "gpt_oss":
        cfg["architectures"] = ["GptOssForCausalLM"]
        cfg["head_dim"] = rng.choice((16, 32, 64))
        cfg["num_local_experts"] = 4
        cfg["num_experts_per_tok"] = 2
        cfg["sliding_window"] = 128
        cfg["max_position_embeddings"] = rng.choice((32768, 131072))
        cfg["bos_token_id"] = None
        cfg["eos_token_id"] = None
    else:  # pragma: no cover - programming error
        raise ValueError(family)
    return cfg


def _head_dim(cfg: dict[str, Any]) -> int:
    if cfg["model_type"] == "deepseek_v3":
        return int(cfg["qk_rope_head_dim"])
    if (
        cfg["model_type"] == "phi3"
    ):  # Phi3Config has no head_dim field; its validator uses this
        return int(cfg["hidden_size"]) // int(cfg["num_attention_heads"])
    if isinstance(cfg.get("head_dim"), int):
        return int(cfg["head_dim"])
    return int(cfg["hidden_size"]) // int(cfg["num_attention_heads"])


def _theta(rng: random.Random) -> float:
    return rng.choice((10000.0, 10000.0, 500000.0, 1000000.0, 150000.0, 1e4, 25000.0))


# ----------------------------------------------------------------------------
# the RoPE dict of one method (clean)


def _method_params(
    method: str, cfg: dict[str, Any], rng: random.Random, prf: float
) -> dict[str, Any]:
    max_pos = int(cfg["max_position_embeddings"])
    if method == "default":
        return {}
    if method in ("linear", "dynamic"):
        return {"factor": rng.choice((2.0, 4.0, 8.0, 2, 1.5))}
    if method == "yarn":
        factor = rng.choice((2, 4, 8, 16, 32))
        original = max(256, max_pos // factor)
        params: dict[str, Any] = {
            "factor": float(factor) if rng.random() < 0.7 else factor
        }
        if rng.random() < 0.8:
            params["original_max_position_embeddings"] = original
            if max_pos // original != factor or max_pos % original:
                params["factor"] = max_pos / original
        if rng.random() < 0.5:
            params["beta_fast"] = rng.choice((32.0, 32, 16.0))
            params["beta_slow"] = rng.choice((1.0, 1, 2.0))
        if rng.random() < 0.25:
            params["mscale"] = 1.0
            params["mscale_all_dim"] = rng.choice((1.0, 0.707))
        if rng.random() < 0.15:
            params["attention_factor"] = rng.choice((1.0, 1.2))
        if rng.random() < 0.15:
            params["truncate"] = rng.choice((True, False))
        return params
    if method == "llama3":
        original = rng.choice(
            [o for o in (1024, 2048, 4096, 8192) if o < max_pos] or [max_pos // 2]
        )
        return {
            "factor": rng.choice((8.0, 4.0, 2.0, 8)),
            "low_freq_factor": rng.choice((1.0, 1)),
            "high_freq_factor": rng.choice((4.0, 4, 2.0)),
            "original_max_position_embeddings": original,
        }
    if method == "longrope":
        half = int(_head_dim(cfg) * prf) // 2
        params = {
            "short_factor": [round(1.0 + 0.01 * i, 4) for i in range(half)],
            "long_factor": [round(1.0 + 0.25 * i, 4) for i in range(half)],
        }
        if cfg["model_type"] != "phi3":
            roll = rng.random()
            if roll < 0.5:
                params["original_max_position_embeddings"] = max(256, max_pos // 4)
            if roll < 0.7:
                params["factor"] = 4.0
        return params
    # unknown method: give it something plausible
    return {"factor": 2.0} if rng.random() < 0.6 else {}


# ----------------------------------------------------------------------------
# faults


def _apply_fault(
    fault: str, cfg: dict[str, Any], params: dict[str, Any], rng: random.Random
) -> None:
    """Mutate ``cfg`` (head_dim, top level) or ``params`` (the RoPE dict, unplaced)."""
    max_pos = int(cfg["max_position_embeddings"])
    if fault == "extra_key":
        params[
            rng.choice(
                ("foo", "scaling_factor", "mrope_sections", "alpha", "rope_keys")
            )
        ] = rng.choice((1, 2.0, "x", True))
    elif fault == "extra_factor":
        params["factor"] = 2.0
    elif fault == "extra_original":
        params["original_max_position_embeddings"] = max(256, max_pos // 2)
    elif fault.startswith("missing_"):
        key = {
            "missing_factor": "factor",
            "missing_original": "original_max_position_embeddings",
            "missing_low": "low_freq_factor",
            "missing_high": "high_freq_factor",
            "missing_short": "short_factor",
            "missing_long": "long_factor",
        }[fault]
        params.pop(key, None)
    elif fault == "factor_lt1":
        params["factor"] = rng.choice((0.5, 0.25, 0.9))
    elif fault == "factor_zero":
        params["factor"] = rng.choice((0, 0.0))
    elif fault == "factor_negative":
        params["factor"] = -2.0
    elif fault == "null_factor":
        params["factor"] = None
    elif fault == "string_factor":
        params["factor"] = str(params.get("factor", 2.0))
    elif fault == "string_theta":
        params["__string_theta__"] = True
    elif fault == "string_beta":
        params["beta_fast"] = "32"
        params["beta_slow"] = 1.0
    elif fault == "negative_attention_factor":
        params["attention_factor"] = rng.choice((-1.0, -0.5))
    elif fault == "int_attention_factor":
        params["attention_factor"] = 1
    elif fault == "beta_fast_lt_slow":
        params["beta_fast"] = rng.choice((1.0, 2.0))
        params["beta_slow"] = rng.choice((32.0, 16.0))
    elif fault == "yarn_inconsistent":
        original = max(256, max_pos // 8)
        params["original_max_position_embeddings"] = original
        params["factor"] = max_pos / original * rng.choice((2.0, 0.5, 1.5))
    elif fault == "llama3_low_ge_high":
        params["low_freq_factor"] = rng.choice((4.0, 8.0))
        params["high_freq_factor"] = rng.choice((4.0, 1.0))
    elif fault == "llama3_original_ge_max":
        params["original_max_position_embeddings"] = max_pos * rng.choice((1, 2))
    elif fault == "float_original":
        params["original_max_position_embeddings"] = float(
            params.get("original_max_position_embeddings", 2048)
        )
    elif fault == "null_low":
        params["low_freq_factor"] = None
    elif fault == "longrope_wrong_length":
        key = rng.choice(("short_factor", "long_factor"))
        values = list(params.get(key, [1.0]))
        params[key] = (
            values[:-1]
            if len(values) > 1 and rng.random() < 0.5
            else [*values, 1.0, 1.0]
        )
    elif fault == "longrope_not_list":
        params[rng.choice(("short_factor", "long_factor"))] = rng.choice((1.0, "1.0"))
    elif fault == "odd_head_dim":
        _make_odd_head_dim(cfg, rng)
    else:  # pragma: no cover - programming error
        raise ValueError(fault)


def _make_odd_head_dim(cfg: dict[str, Any], rng: random.Random) -> None:
    family = cfg["model_type"]
    odd = rng.choice((9, 15, 33, 65))
    if family == "deepseek_v3":
        cfg["qk_rope_head_dim"] = odd
    elif family in ("gemma3_text", "gpt_oss") or (
        "head_dim" in cfg and rng.random() < 0.7
    ):
        cfg["head_dim"] = odd
        if family == "gemma3_text":
            cfg["query_pre_attn_scalar"] = odd
    else:
        heads = int(cfg["num_attention_heads"])
        cfg["hidden_size"] = odd * heads
        cfg["intermediate_size"] = odd * heads * 2
        cfg.pop("head_dim", None)


# ----------------------------------------------------------------------------
# placing the dict in the config (layout)


def _type_entry(method_name: str, type_key: str, rng: random.Random) -> dict[str, Any]:
    if type_key == "rope_type":
        return {"rope_type": method_name}
    if type_key == "type":
        return {"type": method_name}
    if type_key == "both":
        return {"type": method_name, "rope_type": method_name}
    # both-disagree: rope_type is the one transformers uses
    other = rng.choice(
        [m for m in ("linear", "dynamic", "default", "yarn") if m != method_name]
    )
    return {"type": other, "rope_type": method_name}


def _place(
    cfg: dict[str, Any],
    method_name: str,
    params: dict[str, Any],
    layout: str,
    type_key: str,
    rng: random.Random,
    prf: float | None,
    faults: list[str],
) -> None:
    family = cfg["model_type"]
    string_theta = bool(params.pop("__string_theta__", False))
    theta: Any = _theta(rng)
    if string_theta:
        theta = str(theta)
    with_type = {**_type_entry(method_name, type_key, rng), **params}

    if family == "gpt_neox" and layout in ("v4", "v4-null", "bare"):
        # GPT-NeoX names rotary_emb_base / rotary_pct (top-level rope_theta unused)
        if layout != "bare":
            cfg["rotary_emb_base"] = theta
            cfg["rotary_pct"] = prf if prf is not None else 0.25
            if rng.random() < 0.25:
                cfg["rope_theta"] = _theta(rng)  # distractor: transformers ignores it
                faults.append("neox_ignored_rope_theta")
        if layout == "v4":
            cfg["rope_scaling"] = (
                with_type if method_name != "default" or rng.random() < 0.5 else None
            )
        elif layout == "v4-null":
            cfg["rope_scaling"] = None
        return

    if family == "gemma3_text" and layout in (
        "v4",
        "v4-null",
        "bare",
        "v5",
        "both",
        "v5+null-scaling",
    ):
        local_theta = rng.choice((10000.0, 10000.0, 5000.0))
        if layout in ("v4", "v4-null", "both"):
            cfg["rope_theta"] = theta
            cfg["rope_local_base_freq"] = local_theta
            cfg["rope_scaling"] = (
                None if layout == "v4-null" or method_name == "default" else with_type
            )
        if layout in ("v5", "both", "v5+null-scaling"):
            full = (
                {**with_type} if method_name != "default" else {"rope_type": "default"}
            )
            if layout == "both" and rng.random() < 0.4:
                full = {"rope_type": "linear", "factor": 3.0}
                faults.append("layouts_disagree")
            full["rope_theta"] = theta
            cfg["rope_parameters"] = {
                "full_attention": full,
                "sliding_attention": {
                    "rope_type": "default",
                    "rope_theta": local_theta,
                },
            }
            if layout == "v5+null-scaling":
                cfg["rope_scaling"] = None
        return

    if layout == "bare":
        return
    if layout == "v4":
        cfg["rope_theta"] = theta
        if prf is not None:
            cfg["partial_rotary_factor"] = prf
        cfg["rope_scaling"] = (
            with_type if (method_name != "default" or rng.random() < 0.5) else None
        )
        return
    if layout == "v4-null":
        cfg["rope_theta"] = theta
        if prf is not None:
            cfg["partial_rotary_factor"] = prf
        cfg["rope_scaling"] = None
        return
    v5 = {"rope_type": method_name, **params}
    if rng.random() < 0.85:
        v5["rope_theta"] = theta
    if prf is not None:
        v5["partial_rotary_factor"] = prf
    if layout == "v5":
        cfg["rope_parameters"] = v5
        return
    if layout == "v5+null-scaling":
        cfg["rope_parameters"] = v5
        cfg["rope_scaling"] = None
        if rng.random() < 0.5:
            cfg["rope_theta"] = theta
        return
    # both layouts at once
    cfg["rope_parameters"] = v5
    legacy = copy.deepcopy(with_type)
    cfg["rope_theta"] = theta
    roll = rng.random()
    if roll < 0.3:
        legacy = (
            {"rope_type": "linear", "factor": 3.0}
            if method_name != "linear"
            else {"type": "dynamic", "factor": 2.0}
        )
        faults.append("layouts_disagree")
    elif roll < 0.45:
        cfg["rope_theta"] = theta * 2 if isinstance(theta, float) else theta
        if isinstance(theta, float):
            faults.append("theta_disagree")
    if prf is not None and rng.random() < 0.5:
        cfg["partial_rotary_factor"] = prf
    cfg["rope_scaling"] = (
        legacy if method_name != "default" or rng.random() < 0.5 else None
    )


# ----------------------------------------------------------------------------
# families with a house style


def _choose_method(family: str, rng: random.Random) -> str:
    if family == "phi3":
        return rng.choices(
            ("longrope", "default", "yarn", "linear", "unknown"), (70, 12, 6, 6, 6)
        )[0]
    if family == "gpt_neox":
        return rng.choices(
            ("default", "linear", "dynamic", "yarn", "unknown"), (35, 25, 25, 10, 5)
        )[0]
    if family == "gemma3_text":
        return rng.choices(
            ("default", "linear", "yarn", "dynamic", "llama3", "unknown"),
            (30, 35, 15, 8, 6, 6),
        )[0]
    if family == "deepseek_v3":
        return rng.choices(
            ("yarn", "default", "linear", "llama3", "unknown"), (65, 15, 8, 6, 6)
        )[0]
    if family == "gpt_oss":
        return rng.choices(("yarn", "default", "dynamic", "unknown"), (75, 10, 10, 5))[
            0
        ]
    return rng.choices(
        ("default", "linear", "dynamic", "yarn", "llama3", "longrope", "unknown"),
        (14, 14, 12, 18, 18, 12, 12),
    )[0]


def _choose_layout(family: str, rng: random.Random) -> str:
    if family == "phi3":
        return rng.choices(("v4", "v5", "both", "v4-null", "bare"), (60, 20, 10, 5, 5))[
            0
        ]
    return rng.choices(LAYOUTS, (40, 8, 28, 14, 6, 4))[0]


def _one_case(index: int, rng: random.Random) -> tuple[dict[str, Any], CaseMeta]:
    families, weights = zip(*FAMILY_WEIGHTS, strict=True)
    family = rng.choices(families, weights)[0]
    cfg = _base(family, rng)
    method = _choose_method(family, rng)
    layout = _choose_layout(family, rng)
    faults: list[str] = []

    if layout in ("v4-null", "bare"):
        method = "default"  # no scaling dict: whatever the class defaults to
    method_name = method
    if method == "unknown":
        method_name = rng.choice(UNKNOWN_METHODS)
        if family == "phi3":
            method_name = rng.choice(("su", "yarn", "ntk"))
    if family == "phi3" and method == "longrope" and rng.random() < 0.2:
        method_name = rng.choice(("su", "yarn"))  # Phi-3's old names for longrope
        faults.append(f"phi3_alias_{method_name}")

    # partial rotary factor (NeoX always has one; others sometimes)
    prf: float | None = None
    if family == "gpt_neox":
        prf = rng.choice((0.25, 0.5, 1.0))
    elif family in ("llama", "qwen2", "mistral", "phi3") and rng.random() < 0.12:
        prf = rng.choice((0.5, 0.25))
        faults.append("partial_rotary")

    params = _method_params(
        method if method != "unknown" else "unknown", cfg, rng, prf or 1.0
    )

    if rng.random() < 0.55:
        pool = FAULTS_BY_METHOD.get(method, UNKNOWN_FAULTS)
        for fault in rng.sample(
            pool, k=1 if rng.random() < 0.85 else min(2, len(pool))
        ):
            _apply_fault(fault, cfg, params, rng)
            faults.append(fault)

    type_key = "-"
    if layout in ("v4", "both") or (family == "phi3" and layout != "v5"):
        type_key = rng.choices(
            ("rope_type", "type", "both", "both-disagree"), (45, 30, 15, 10)
        )[0]
        if family == "phi3":
            type_key = rng.choices(("type", "rope_type", "both"), (70, 15, 15))[0]
        if type_key == "both-disagree":
            faults.append("type_disagree")

    if family == "gpt_oss" and layout == "bare":
        faults.append("gpt_oss_class_default")
    if layout == "bare" and family not in ("gpt_oss",):
        faults.append("no_rope_keys")

    _place(
        cfg,
        method_name,
        params,
        layout,
        type_key if type_key != "-" else "rope_type",
        rng,
        prf,
        faults,
    )

    meta = CaseMeta(
        index=index,
        family=family,
        method=method if method != "unknown" else f"unknown:{method_name}",
        layout=layout,
        type_key=type_key,
        faults=tuple(faults),
    )
    return cfg, meta


def generate_cases(
    n: int = 400, seed: int = 0
) -> list[tuple[dict[str, Any], CaseMeta]]:
    """``n`` (config, meta) pairs, deterministic for a given ``seed``."""
    rng = random.Random(seed)
    return [_one_case(i, rng) for i in range(n)]


def generate_configs(n: int = 400, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` complete config.json dicts, deterministic for a given ``seed``."""
    return [cfg for cfg, _ in generate_cases(n, seed)]
