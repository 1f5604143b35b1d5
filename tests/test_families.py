"""The family table agrees with the installed transformers' own class defaults."""

from __future__ import annotations

import pytest
from transformers import CONFIG_MAPPING

from ropedoctor.families import FAMILIES


@pytest.mark.parametrize("model_type", sorted(t for t in FAMILIES if t in CONFIG_MAPPING))
def test_default_theta_matches_transformers(model_type: str) -> None:
    family = FAMILIES[model_type]
    cls = CONFIG_MAPPING[model_type]
    sub_configs = getattr(cls, "sub_configs_defaults", None) or {}
    if "text_config" in sub_configs:  # multimodal wrapper: the text model holds the RoPE defaults
        cls = getattr(sub_configs["text_config"], "config_class", sub_configs["text_config"])
    theta = getattr(cls, "default_theta", 10_000.0)
    if isinstance(theta, dict):
        assert family.default_theta == theta["global"]
        assert family.default_local_theta == theta["local"]
    elif family.positions == "rope" and model_type not in ("gpt_neox",):
        assert family.default_theta == theta, model_type


def test_native_families_are_known_to_transformers() -> None:
    remote = {t for t, f in FAMILIES.items() if f.remote_code}
    assert remote == {"internlm2", "internlm", "deepseek", "baichuan", "minicpm", "chatglm", "qwen"}
    missing = sorted(t for t in FAMILIES if t not in CONFIG_MAPPING and t not in remote)
    assert missing == [], missing


def test_validation_ignored_keys_match_transformers() -> None:
    from ropedoctor.hf_keys import VALIDATION_IGNORED_KEYS

    theirs = {}
    for model_type in CONFIG_MAPPING:
        keys = getattr(CONFIG_MAPPING[model_type], "ignore_keys_at_rope_validation", None)
        if keys:
            theirs[model_type] = frozenset(keys)
    assert theirs == VALIDATION_IGNORED_KEYS
