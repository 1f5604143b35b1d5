"""The rule registry: every rule documented, and every rule fires on a config made to trigger it."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from ropedoctor.rules import RULES, Target, run_rules
from ropedoctor.rules.registry import DOC_SECTIONS
from ropedoctor.sources.hf_config import spec_from_config

LLAMA: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 4096,
    "rope_theta": 500000.0,
}
QWEN_YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
PHI3: dict[str, Any] = {
    "model_type": "phi3", "hidden_size": 3072, "num_attention_heads": 32, "max_position_embeddings": 131072,
    "original_max_position_embeddings": 4096, "rope_theta": 10000.0,
    "rope_scaling": {"type": "longrope", "short_factor": [1.0] * 48, "long_factor": [1.0] * 48},
}


def llama(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(LLAMA)
    config.update(changes)
    return config


def phi3(**scaling: Any) -> dict[str, Any]:
    config = copy.deepcopy(PHI3)
    config["rope_scaling"].update(scaling)
    return config


# code -> (config, --ctx, expected location). Each config triggers its rule.
TRIGGERS: dict[str, tuple[dict[str, Any], int | None, str]] = {
    "RD001": ({"model_type": "bert", "max_position_embeddings": 512}, None, "max_position_embeddings"),
    "RD002": ({"model_type": "nomic_bert", "n_embd": 768, "n_head": 12, "n_positions": 8192,
               "max_trained_positions": 2048, "rotary_emb_base": 1000, "rotary_emb_fraction": 1.0}, None, "n_positions"),
    "RD101": (llama(rope_scaling={"rope_type": "linear"}), None, "rope_scaling.factor"),
    "RD102": (llama(rope_scaling={"rope_type": "dynamic", "factor": 2.0, "beta_fast": 32}), None,
              "rope_scaling.beta_fast"),
    "RD103": (llama(rope_scaling={"rope_type": "linear", "factor": 0.5}), None, "rope_scaling.factor"),
    "RD104": (llama(max_position_embeddings=16384, rope_scaling={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "beta_fast": 1, "beta_slow": 32}),
        None, "rope_scaling.beta_fast"),
    "RD105": (llama(max_position_embeddings=128000, rope_scaling=QWEN_YARN), None, "rope_scaling.factor"),
    "RD106": (llama(max_position_embeddings=131072, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}), None, "rope_scaling.high_freq_factor"),
    "RD107": (llama(max_position_embeddings=8192, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}), None, "rope_scaling.original_max_position_embeddings"),
    "RD108": (phi3(short_factor=[1.0] * 47), None, "rope_scaling.short_factor"),
    "RD109": (llama(max_position_embeddings=16384, rope_scaling={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "attention_factor": -1.0}),
        None, "rope_scaling.attention_factor"),
    "RD110": (llama(head_dim=127), None, "head_dim"),
    "RD111": (llama(rope_scaling={"type": "ntk", "factor": 2.0}), None, "rope_scaling.type"),
    "RD112": (copy.deepcopy(PHI3), None, "rope_scaling.factor"),
    "RD113": (llama(max_position_embeddings=16384, rope_scaling={
        "rope_type": "yarn", "factor": 4, "original_max_position_embeddings": 4096}), None, "rope_scaling.factor"),
    "RD114": ({"model_type": "mixtral", "hidden_size": 4096, "num_attention_heads": 32,
               "max_position_embeddings": 32768, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, None,
              "head_dim"),
    "RD115": ({"model_type": "ernie4_5_vl_moe_text", "hidden_size": 2560, "num_attention_heads": 20,
               "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 500000.0}}, None,
              "rope_parameters.rope_type"),
    "RD116": ({"model_type": "gemma4_text", "rope_scaling": {"type": "linear", "factor": 2.0}}, None,
              "rope_scaling"),
    "RD117": ({"model_type": "glm4_moe", "hidden_size": 4096, "num_attention_heads": 96,
               "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, None, "hidden_size"),
    "RD120": ({"model_type": "internlm2", "hidden_size": 4096, "num_attention_heads": 32,
               "max_position_embeddings": 32768, "rope_scaling": {"type": "dynamic", "factor": 2}}, None,
              "rope_scaling"),
    "RD230": ({"model_type": "qwen2", "hidden_size": 3584, "num_attention_heads": 28, "rope_theta": 10000000.0,
               "max_position_embeddings": 1010000, "dual_chunk_attention_config": {
                   "chunk_size": 262144, "local_size": 8192, "original_max_position_embeddings": 262144}}, None,
              "dual_chunk_attention_config"),
    "RD201": (llama(rope_scaling={"type": "linear", "rope_type": "dynamic", "factor": 2.0}), None, "rope_scaling.type"),
    "RD202": (llama(rope_scaling={"rope_type": "linear", "factor": 2.0},
                    rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 500000.0}), None,
              "rope_parameters.factor"),
    "RD203": ({k: v for k, v in llama(rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                         "rope_theta": 500000.0}).items() if k != "rope_theta"},
              None, "rope_parameters"),
    "RD204": (phi3(type="su"), None, "rope_scaling.type"),
    "RD205": (llama(rope_scaling={"rope_type": "linear", "factor": "2.0"}), None, "rope_scaling.factor"),
    "RD206": (llama(max_position_embeddings=32768, rope_scaling={"type": "linear", "factor": 8.0}), None,
              "max_position_embeddings"),
    "RD207": (llama(max_position_embeddings=32768, rope_scaling=QWEN_YARN), None, "max_position_embeddings"),
    "RD208": (llama(rope_scaling={"type": "dynamic", "factor": 2.0}), None, "rope_scaling.type"),
    "RD209": (llama(rope_theta=10000.0, max_position_embeddings=32768), None, "rope_theta"),
    "RD210": ({"model_type": "qwen2_vl", "hidden_size": 3584, "num_attention_heads": 28, "max_position_embeddings": 32768,
               "rope_theta": 1e6, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 16]}}, None,
              "rope_scaling.mrope_section"),
    "RD211": (phi3(rope_type="longrope"), None, "rope_scaling"),
    "RD212": (llama(max_position_embeddings=131072, rope_scaling=QWEN_YARN), None, "rope_scaling.factor"),
    "RD213": (llama(max_position_embeddings=16384, original_max_position_embeddings=2048, rope_scaling={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}), None,
        "original_max_position_embeddings"),
    "RD214": ({"model_type": "gemma3_text", "hidden_size": 2560, "num_attention_heads": 8, "head_dim": 256,
               "max_position_embeddings": 131072, "rope_scaling": {"type": "linear", "factor": 8.0}}, None,
              "rope_scaling.type"),
    "RD215": ({"model_type": "nomic_bert", "n_embd": 768, "n_head": 12, "max_position_embeddings": 2048,
               "n_positions": 8192, "rotary_emb_base": 1000, "rotary_scaling_factor": 2.0}, None,
              "rotary_scaling_factor"),
    "RD301": (llama(rope_theta=5e6), 16384, "max_position_embeddings"),
    "RD302": ({"model_type": "xlm-roberta", "max_position_embeddings": 8194}, 8193, "max_position_embeddings"),
    "RD303": ({"model_type": "mpt", "max_seq_len": 2048, "attn_config": {"alibi": True}}, 8192, "max_seq_len"),
    "RD304": ({"model_type": "modernbert", "hidden_size": 768, "num_attention_heads": 12,
               "max_position_embeddings": 8192}, 8192, "max_position_embeddings"),
}


def test_every_rule_has_a_trigger() -> None:
    """config.json rules fire from TRIGGERS; GGUF (RD4xx) and comparison (RD5xx) rules in test_gguf_check.py and
    test_gguf_conversion_truth.py."""
    from conftest import ROOT

    gguf_tests = "".join((ROOT / "tests" / name).read_text()
                         for name in ("test_gguf_check.py", "test_gguf_conversion_truth.py"))
    for code in RULES:
        assert code in TRIGGERS or (code[:3] in ("RD4", "RD5") and f'"{code}"' in gguf_tests), code


@pytest.mark.parametrize("code", sorted(TRIGGERS))
def test_rule_fires(code: str) -> None:
    config, ctx, location = TRIGGERS[code]
    findings = run_rules(spec_from_config(config, "config.json"), Target(ctx=ctx))
    hits = [f for f in findings if f.code == code]
    assert hits, f"{code} did not fire; got {[(f.code, f.message) for f in findings]}"
    assert hits[0].location == location
    assert hits[0].severity == (RULES[code].severity if code != "RD108" else "error")  # Phi-3's validator raises


def test_clean_configs_trigger_nothing_but_advice() -> None:
    for config in (llama(), llama(max_position_embeddings=131072, rope_scaling={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192})):
        findings = run_rules(spec_from_config(config, "config.json"), Target())
        assert [f.code for f in findings if f.severity != "info"] == []


def test_registry_is_well_formed() -> None:
    names = [r.name for r in RULES.values()]
    assert len(set(names)) == len(names)
    for code, r in RULES.items():
        assert re.fullmatch(r"RD\d{3}", code) and r.code == code
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", r.name)
        assert list(r.doc) == list(DOC_SECTIONS)
        assert all(len(body) > 20 for body in r.doc.values()), code
        assert "```" in r.doc["Example"], f"{code}: the example shows the offending config or command"


def test_docs_rules_md_is_current() -> None:
    """docs/rules.md is generated from the registry; regenerate with `ropedoctor rules --format markdown`."""
    from pathlib import Path

    from conftest import ROOT, invoke

    result = invoke("rules", "--format", "markdown")
    assert result.exit_code == 0
    assert (Path(ROOT) / "docs" / "rules.md").read_text() == result.stdout, \
        "docs/rules.md is stale: run `ropedoctor rules --format markdown > docs/rules.md`"


@pytest.mark.parametrize(("config", "ctx", "first"), [
    (llama(rope_theta=10000.0), 16384, "YaRN x4 (`ropedoctor fix --ctx 16384`)"),
    ({"model_type": "nomic_bert", "n_embd": 768, "n_head": 12, "max_position_embeddings": 2048, "n_positions": 8192,
      "max_trained_positions": 2048, "rotary_emb_base": 1000}, 8192, "dynamic NTK x2 (`ropedoctor fix --ctx 8192`)"),
    (llama(max_position_embeddings=4096, rope_scaling={"rope_type": "linear", "factor": 2.0}), 16384,
     "linear (PI) x8 (`ropedoctor fix --ctx 16384`)"),  # the file's own method, over its trained 2048
])
def test_ctx_beyond_scaling_names_what_fix_writes(config: dict[str, Any], ctx: int, first: str) -> None:
    """RD301's first suggestion is plan.py's policy (what `fix --ctx N` writes), never a method fix would not pick."""
    hit = next(f for f in run_rules(spec_from_config(config, "config.json"), Target(ctx=ctx)) if f.code == "RD301")
    assert hit.message.split("scale it with ", 1)[1].startswith(first), hit.message
