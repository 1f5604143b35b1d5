"""rope_math's frequencies and attention factors equal transformers 5's (ROPE_INIT_FUNCTIONS, with torch)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch
from transformers import CONFIG_MAPPING
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from conftest import FIXTURES
from ropedoctor import rope_math
from ropedoctor.sources.hf_config import spec_from_config

LLAMA = {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 4096,
         "rope_theta": 10000.0}

CASES: dict[str, tuple[dict[str, Any], int | None]] = {
    "default": ({**LLAMA}, None),
    "linear": ({**LLAMA, "rope_scaling": {"rope_type": "linear", "factor": 4.0}}, None),
    "dynamic-short": ({**LLAMA, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, 2048),
    "dynamic-long": ({**LLAMA, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, 16384),
    "yarn": ({**LLAMA, "max_position_embeddings": 16384, "rope_scaling": {
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}}, None),
    "yarn-betas-mscale": ({**LLAMA, "max_position_embeddings": 16384, "rope_scaling": {
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "beta_fast": 16.0,
        "beta_slow": 2.0, "mscale": 0.707, "mscale_all_dim": 0.707}}, None),
    "yarn-no-truncate": ({**LLAMA, "max_position_embeddings": 16384, "rope_scaling": {
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "truncate": False}}, None),
    "llama3": ({**LLAMA, "max_position_embeddings": 131072, "rope_theta": 500000.0, "rope_scaling": {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}}, None),
}
FIXTURE_CASES = ["meta-llama-3.1-8b-instruct", "meta-llama-3.2-1b", "deepseek-v3", "gpt-oss-20b",
                 "phi-3.5-mini-instruct", "qwen2.5-7b-instruct", "gemma-3-4b-it"]


def transformers_inv_freq(config: dict[str, Any], seq_len: int | None) -> tuple[list[float], float]:
    cfg = CONFIG_MAPPING[config["model_type"]].from_dict(json.loads(json.dumps(config)))
    cfg = cfg.get_text_config()
    params = cfg.rope_parameters
    layer = "full_attention" if "full_attention" in params else None
    rope_type = (params[layer] if layer else params)["rope_type"]
    if rope_type == "default":
        block = params[layer] if layer else params
        try:  # per-layer configs (Gemma-4) answer head_dim only per layer type
            per_layer: Any = getattr(cfg, "per_layer_config", None)  # indexed by layer type, like ROPE_INIT_FUNCTIONS
            sub = per_layer[layer] if layer else cfg
        except (AttributeError, KeyError, TypeError, ValueError):
            sub = cfg
        head_dim = getattr(sub, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        dim = int(head_dim * block.get("partial_rotary_factor", 1.0))
        inv = 1.0 / (block["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        return inv.tolist(), 1.0
    kwargs: dict[str, Any] = {"layer_type": layer} if layer else {}
    inv, attention = ROPE_INIT_FUNCTIONS[rope_type](cfg, "cpu", seq_len, **kwargs)
    return inv.double().tolist(), float(attention)


def assert_close(ours: list[float], theirs: list[float], rel: float) -> None:
    assert len(ours) == len(theirs)
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours, theirs, strict=True))
    assert worst <= rel, worst


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_cases(name: str) -> None:
    config, seq_len = CASES[name]
    spec = spec_from_config(config, name)
    ours, attention = rope_math.spec_inv_freq(spec, seq_len)
    theirs, their_attention = transformers_inv_freq(config, seq_len)
    assert_close(ours, theirs, 1e-6)  # transformers computes in float32
    assert math.isclose(attention, their_attention, rel_tol=1e-6)


@pytest.mark.parametrize("name", FIXTURE_CASES)
def test_fixtures(name: str) -> None:
    config = json.loads((FIXTURES / name / "config.json").read_text())
    spec = spec_from_config(config, name)
    for seq_len in (None, 2 * (spec.context or 4096)):
        ours, attention = rope_math.spec_inv_freq(spec, seq_len)
        theirs, their_attention = transformers_inv_freq(config, seq_len)
        assert_close(ours, theirs, 1e-6)
        assert math.isclose(attention, their_attention, rel_tol=1e-6)


def test_worked_values_from_the_reference() -> None:
    """transformers_rope.md §3: YaRN ranges for the test config, DeepSeek-V3, gpt-oss, Qwen2.5."""
    assert rope_math.yarn_correction_range(1e4, 128, 2048) == (16, 41)
    assert rope_math.yarn_correction_range(1e4, 64, 4096) == (10, 23)
    assert rope_math.yarn_correction_range(1e6, 128, 32768) == (23, 40)
    low, high = rope_math.yarn_correction_range(1.5e5, 64, 4096, truncate=False)
    assert round(low, 2) == 8.09 and round(high, 2) == 17.40
    assert round(rope_math.yarn_attention_factor(4.0), 4) == 1.1386
    assert round(rope_math.longrope_attention_factor(32.0, 4096), 4) == 1.1902
    assert abs(rope_math.dynamic_base(1e4, 128, 2.0, 8192, 4096) - 30528) < 1  # "b' ~ 30528"
