"""Every fixture: the RopeSpec we read and the findings we report, and transformers 5 agreeing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_new_families import EXPECTED as NEW_FAMILIES  # issue 13's 2025-2026 families, tested there
from transformers import CONFIG_MAPPING

from conftest import FIXTURES, invoke
from oracle_transformers import is_rope_related, transformers_verdict

# folder -> (method, theta, factor, original_context, context, rotary_dim, codes), reviewed by hand
# against the model cards: e.g. Llama 3.1 is llama3 x8 from 8192 advertised at 131072; Phi-3.5
# rotates all 96 dims, Phi-4-mini 96 of 128 (partial_rotary_factor 0.75); GLM-4's base is
# 10000 x rope_ratio 500; InternLM2.5 is dynamic x2 keyed to 32768.
EXPECTED: dict[str, tuple[str, float | None, float | None, int | None, int | None, int | None, list[str]]] = {
    "baichuan2-7b-chat": ("default", 1e4, None, 4096, 4096, 128, []),
    "bert-base-uncased": ("none", None, None, None, 512, None, ["RD001"]),
    "bge-m3-korean": ("none", None, None, None, 8194, None, ["RD001"]),
    "bloom-560m": ("none", None, None, None, None, None, ["RD001"]),
    "chatglm3-6b": ("default", 1e4, None, 8192, 8192, 64, []),
    "codellama-7b-hf": ("default", 1e6, None, 16384, 16384, 128, []),
    "deepseek-r1-0528-qwen3-8b": ("yarn", 1e6, 4.0, 32768, 131072, 128, ["RD102", "RD212"]),
    "deepseek-v2-lite": ("yarn", 1e4, 40.0, 4096, 163840, 64, ["RD113", "RD212"]),
    "deepseek-v3": ("yarn", 1e4, 40.0, 4096, 163840, 64, ["RD113", "RD212"]),
    "deepseek-v3-tf5-converted": ("yarn", 1e4, 40.0, 4096, 163840, 64, ["RD113", "RD203", "RD212"]),
    "disc-finllm-baichuan-13b": ("none", None, None, None, 4096, None, ["RD001"]),
    "falcon-7b-instruct": ("default", 1e4, None, 2048, 2048, 64, []),
    "gemma-3-1b-it": ("default", 1e6, None, 32768, 32768, 256, []),
    "gemma-3-1b-it-tf5-converted": ("default", 1e6, None, 32768, 32768, 256, []),
    # no RD206: vLLM never multiplies Gemma-3's length, SGLang reads no top-level factor in its nested block
    "gemma-3-4b-it": ("linear", 1e6, 8.0, 16384, 131072, 256, []),
    "gemma-3-4b-it-tf5-converted": ("linear", 1e6, 8.0, 16384, 131072, 256, ["RD203"]),
    "glm-4-9b-chat": ("default", 5e6, None, 131072, 131072, 64, []),
    "gpt-oss-20b": ("yarn", 150000.0, 32.0, 4096, 131072, 64, ["RD212"]),
    "gpt-oss-20b-tf5-converted": ("yarn", 150000.0, 32.0, 4096, 131072, 64, ["RD212"]),
    "gpt2": ("none", None, None, None, 1024, None, ["RD001"]),
    "h2ogpt-oig-oasst1-256-6.9b": ("default", 1e4, None, 2048, 2048, 32, []),
    "internlm2.5-7b-chat": ("dynamic", 1e6, 2.0, 32768, 32768, 128, ["RD208"]),
    "jina-embeddings-v2-base-code": ("none", None, None, None, None, None, ["RD001"]),
    "meta-llama-2-7b-hf": ("default", 1e4, None, 4096, 4096, 128, []),
    "meta-llama-2-7b-hf-tf5-converted": ("default", 1e4, None, 4096, 4096, 128, []),
    "meta-llama-3-8b": ("default", 5e5, None, 8192, 8192, 128, []),
    "meta-llama-3-8b-instruct": ("default", 5e5, None, 8192, 8192, 128, []),
    "meta-llama-3.1-8b-instruct": ("llama3", 5e5, 8.0, 8192, 131072, 128, []),
    "meta-llama-3.1-8b-instruct-tf5-converted": ("llama3", 5e5, 8.0, 8192, 131072, 128, ["RD203"]),
    "meta-llama-3.2-1b": ("llama3", 5e5, 32.0, 8192, 131072, 64, []),
    "meta-llama-4-scout-17b-16e": ("llama3", 5e5, 8.0, 8192, 262144, 128, []),
    "ministral-3-3b-reasoning-2512": ("yarn", 1e6, 16.0, 16384, 262144, 128, ["RD212"]),
    "mistral-7b-v0.1": ("default", 1e4, None, 32768, 32768, 128, []),
    "mixtral-8x7b-v0.1": ("default", 1e6, None, 32768, 32768, 128, []),
    "modernbert-base": ("default", 160000.0, None, 8192, 8192, 64, []),
    "modernbert-base-tf5-converted": ("default", 160000.0, None, 8192, 8192, 64, []),
    "mpt-7b-instruct": ("none", None, None, None, 2048, None, ["RD001"]),
    "nomic-embed-text-v1.5": ("default", 1000.0, None, 2048, 8192, 64, ["RD002"]),
    "omnigen-v1-phi3-su": ("longrope", 1e4, None, 4096, 131072, 96, ["RD112", "RD204"]),
    "phi-2": ("default", 1e4, None, 2048, 2048, 32, []),
    "phi-3.5-mini-instruct": ("longrope", 1e4, 32.0, 4096, 131072, 96, ["RD112"]),
    "phi-3.5-mini-instruct-tf5-converted": ("longrope", 1e4, 32.0, 4096, 131072, 96, ["RD112", "RD203"]),
    "phi-4-mini-instruct": ("longrope", 1e4, 32.0, 4096, 131072, 96, ["RD112"]),
    "qwen-7b": ("dynamic", 1e4, None, 8192, 8192, 128, ["RD208"]),
    "qwen2.5-7b-instruct": ("default", 1e6, None, 32768, 32768, 128, []),
    "qwen2.5-vl-7b-instruct": ("default", 1e6, None, 128000, 128000, 128, []),
    "qwen2.5-vl-7b-instruct-tf5-converted": ("default", 1e6, None, 128000, 128000, 128, []),
    "qwen3-8b": ("default", 1e6, None, 40960, 40960, 128, []),
    "yi-1.5-34b": ("default", 5e6, None, 4096, 4096, 128, []),
}

BROKEN: dict[str, list[str]] = {
    "both-blocks-disagree": ["RD202"],
    "factor-as-string": ["RD205"],
    "gemma3-legacy-type": ["RD214", "RD102"],
    "internlm2-scaling-null": [],
    "linear-extended-mpe": ["RD206"],
    "linear-missing-factor": ["RD101"],
    "llama3-bands-reversed": ["RD106"],
    "llama3-missing-original": ["RD101", "RD107"],
    "odd-head-dim": ["RD110"],
    "qwen2.5-yarn-snippet": ["RD207", "RD212"],
    "unknown-method": ["RD111"],
    "v5-only-llama3": ["RD203"],
    "yarn-beta-reversed": ["RD104", "RD113", "RD212"],
    "yarn-factor-mismatch": ["RD105", "RD212"],
    "yarn-legacy-type-conflict": ["RD201", "RD207", "RD212"],
}


def _check(folder: Path) -> dict[str, Any]:
    result = invoke("check", str(folder), "--format", "json")
    assert result.exit_code in (0, 1), result.output
    doc: dict[str, Any] = json.loads(result.stdout)["results"][0]
    return doc


def test_corpus_is_complete() -> None:
    # tiny-trained is the lab's model (bench/lab, its own README and tests), not a published config
    folders = {p.name for p in FIXTURES.iterdir() if (p / "config.json").exists()} - {"tiny-trained"}
    assert folders == set(EXPECTED) | set(NEW_FAMILIES)
    assert len([f for f in folders if "tf5-converted" not in f]) >= 30
    readme = (FIXTURES / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in folders), "every fixture has a provenance row"
    assert {p.name for p in (FIXTURES / "broken").iterdir() if p.is_dir()} == set(BROKEN)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str) -> None:
    method, theta, factor, original, context, rotary, codes = EXPECTED[name]
    doc = _check(FIXTURES / name)
    rope = doc["rope"]
    assert (rope["method"], rope["theta"], rope["factor"], rope["original_context"], rope["context"],
            rope["rotary_dim"]) == (method, theta, factor, original, context, rotary)
    assert sorted(f["code"] for f in doc["findings"]) == sorted(codes)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_variant(name: str) -> None:
    doc = _check(FIXTURES / "broken" / name)
    assert [f["code"] for f in doc["findings"]] == BROKEN[name]


def _native(name: str) -> bool:
    """Fixtures whose model transformers ships (not remote code, and with RoPE)."""
    config = json.loads((FIXTURES / name / "config.json").read_text())
    return config.get("model_type") in CONFIG_MAPPING and not config.get("auto_map") and EXPECTED[name][0] != "none"


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if _native(n)))
def test_fixture_agrees_with_transformers(name: str) -> None:
    """For every fixture transformers 5 loads natively, our numbers are its numbers."""
    config = json.loads((FIXTURES / name / "config.json").read_text())
    verdict = transformers_verdict(config)
    doc = _check(FIXTURES / name)
    if verdict.raised is not None:
        if is_rope_related(verdict.raised):
            assert any(f["severity"] == "error" for f in doc["findings"]), verdict.raised
        else:  # e.g. Llama-4's int attn_temperature_tuning, which 5.x's strict dataclass refuses
            assert "rope" not in verdict.raised.lower()
        return
    assert verdict.rope_parameters
    params = verdict.rope_parameters.get("full_attention", verdict.rope_parameters)
    rope = doc["rope"]
    assert rope["method"] == params["rope_type"]
    assert rope["theta"] == pytest.approx(float(params["rope_theta"]))
    if params["rope_type"] != "default" and params.get("factor") is not None:
        assert rope["factor"] == pytest.approx(float(params["factor"]))
    if params["rope_type"] in ("yarn", "llama3", "longrope"):
        assert rope["original_context"] == params["original_max_position_embeddings"]
