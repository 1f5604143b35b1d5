"""The 2025-2026 families of issue 13: each fixture's rope block and findings, held to the real thing.

Where transformers 5.24 knows the model type, the expected block is computed here, at test time, the way the
model itself builds it: ``AutoConfig``'s path (``oracle_transformers._build``), then the text model's own rotary
module, named explicitly per fixture (``ROTARY``). Rotary dim = twice the non-zero ``inv_freq`` entries; for
per-layer-type modules the full-attention layer's buffer, and that layer's head size.

Remote-code families are held to their own code: Kimi-K2 ships DeepSeek-V3's ``configuration_deepseek.py`` /
``modeling_deepseek.py`` (``DeepseekV3YarnRotaryEmbedding(qk_rope_head_dim, ...)``), which transformers'
``deepseek_v3`` mirrors (Moonshot's deployment guide says to rename ``kimi_k2`` to ``deepseek_v3`` for engines
without it); TeleChat3 is a Llama-shaped decoder whose ``telechat3-yarn`` is YaRN under a vendor name (vLLM's
``TeleChat3RoPEScaledRotaryEmbedding``, mlx-lm's ``YarnRoPE``), so transformers' Llama with the block spelled
``yarn`` computes the same frequencies.

``EXPECTED`` writes the numbers out so a reviewer can read them; ``test_expectation_is_the_real_thing`` checks
that every one of them is what the oracle computes, and ``test_new_family`` holds ``ropedoctor check`` to them.
The few places where the right reading is not transformers' own are ``OVERRIDES``, each with its reason.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, invoke, run_entry
from oracle_transformers import _build
from ropedoctor.model import methods

CONTRACT = ("method", "theta", "factor", "original_context", "context", "head_dim", "rotary_dim")
MAIN_LAYER = "full_attention"  # per-layer-type modules: the block describes the full-attention layers


@dataclass(frozen=True)
class Rope:
    """The JSON contract's rope block, plus the per-layer-type methods where the model has them."""

    method: str
    theta: float | None
    factor: float | None
    original_context: int | None
    context: int | None
    head_dim: int | None
    rotary_dim: int | None
    layers: tuple[tuple[str, str, float | None, float | None], ...] | None = None  # (type, method, theta, factor)

    def contract(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in CONTRACT)


# fixture -> the text model's rotary module (None: the text model has none; transformers builds no RoPE for it)
ROTARY: dict[str, str | None] = {
    "minimax-m2": "transformers.models.minimax_m2.modeling_minimax_m2.MiniMaxM2RotaryEmbedding",
    "minimax-m2.7": "transformers.models.minimax_m2.modeling_minimax_m2.MiniMaxM2RotaryEmbedding",
    "kimi-k2-instruct-0905": "transformers.models.deepseek_v3.modeling_deepseek_v3.DeepseekV3RotaryEmbedding",
    "deepseek-v3.2-exp": "transformers.models.deepseek_v32.modeling_deepseek_v32.DeepseekV32RotaryEmbedding",
    "glm-4.7-flash": "transformers.models.glm4_moe_lite.modeling_glm4_moe_lite.Glm4MoeLiteRotaryEmbedding",
    "glm-5.3-flash": None,
    "qwen3-omni-30b-a3b-instruct":
        "transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe.Qwen3OmniMoeThinkerTextRotaryEmbedding",
    "qwen3-vl-4b-instruct": "transformers.models.qwen3_vl.modeling_qwen3_vl.Qwen3VLTextRotaryEmbedding",
    "qwen3-vl-4b-instruct-tf5-converted": "transformers.models.qwen3_vl.modeling_qwen3_vl.Qwen3VLTextRotaryEmbedding",
    "telechat3-36b-thinking": "transformers.models.llama.modeling_llama.LlamaRotaryEmbedding",
    "hunyuanimage-2.1-reprompt":
        "transformers.models.hunyuan_v1_dense.modeling_hunyuan_v1_dense.HunYuanDenseV1RotaryEmbedding",
    "qwen2.5-7b-instruct-1m": "transformers.models.qwen2.modeling_qwen2.Qwen2RotaryEmbedding",
    "smollm3-3b": "transformers.models.smollm3.modeling_smollm3.SmolLM3RotaryEmbedding",
    "tiny-aya-global": "transformers.models.cohere2.modeling_cohere2.Cohere2RotaryEmbedding",
    "olmo-3-7b": "transformers.models.olmo3.modeling_olmo3.Olmo3RotaryEmbedding",
    "gemma-4-31b-it": "transformers.models.gemma4.modeling_gemma4.Gemma4TextRotaryEmbedding",
}


def _as_deepseek_v3(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "model_type": "deepseek_v3"}


def _as_llama_yarn(config: dict[str, Any]) -> dict[str, Any]:
    scaling = {k: ("yarn" if k in ("type", "rope_type") else v) for k, v in config["rope_scaling"].items()}
    return {**config, "model_type": "llama", "rope_scaling": scaling}


# Remote-code families: the transformers class that computes what their own code computes (module docstring).
AS_TRANSFORMERS = {"kimi-k2-instruct-0905": _as_deepseek_v3, "telechat3-36b-thinking": _as_llama_yarn}

# fixture -> (the expected block, the expected finding codes). Every block is checked against the oracle.
EXPECTED: dict[str, tuple[Rope, list[str]]] = {
    # rotary_dim 64 of head 128: the published `rotary_dim` becomes partial_rotary_factor 0.5
    "minimax-m2": (Rope("default", 5e6, None, 196608, 196608, 128, 64), []),
    "minimax-m2.7": (Rope("default", 5e6, None, 204800, 204800, 128, 64), []),
    # MLA: only qk_rope_head_dim (64) rotates; transformers' DeepSeek configs call that head_dim.
    # Floats throughout (beta 1.0, factor 64.0), factor = 262144 / 4096: only the static-YaRN note.
    "kimi-k2-instruct-0905": (Rope("yarn", 50000.0, 64.0, 4096, 262144, 64, 64), ["RD212"]),
    # DeepSeek-V3's block verbatim: integer factor/betas (RD113), static YaRN (RD212), as for deepseek-v3
    "deepseek-v3.2-exp": (Rope("yarn", 1e4, 40.0, 4096, 163840, 64, 64), ["RD113", "RD212"]),
    "glm-4.7-flash": (Rope("default", 1e6, None, 202752, 202752, 64, 64), []),
    # NoPE text model (qk_rope_head_dim 0, no rotary module): no RoPE, and never exit 2
    "glm-5.3-flash": (Rope("none", None, None, None, 1048576, 0, None), ["RD001"]),
    # thinker_config.text_config; the talker's block is the one transformers warns about, not this one
    "qwen3-omni-30b-a3b-instruct": (Rope("default", 1e6, None, 65536, 65536, 128, 128), []),
    "qwen3-vl-4b-instruct": (Rope("default", 5e6, None, 262144, 262144, 128, 128), []),
    # RD203 is right here: transformers 4.57 does not read this file's theta (its 5e6 is the class default)
    # and Qwen3VLTextRotaryEmbedding.__init__ calls config.rope_scaling.get("mrope_section", ...) on
    # rope_scaling None (4.57 modeling_qwen3_vl.py, line 297): 4.x cannot build the model from the v5-only file.
    "qwen3-vl-4b-instruct-tf5-converted": (Rope("default", 5e6, None, 262144, 262144, 128, 128), ["RD203"]),
    # a vendor YaRN alias that vLLM and mlx-lm serve as YaRN: the method is yarn, the original length the block's
    "telechat3-36b-thinking": (Rope("yarn", 1e6, 4.0, 8192, 32768, 128, 128), ["RD212"]),
    # the HunYuan rotary module turns "dynamic" + alpha into ntk_alpha (base * alpha^(d/(d-2)), every length).
    # transformers 5.24's validation warns that alpha, beta_fast, beta_slow, mscale and mscale_all_dim are
    # unrecognized for "dynamic" (a warning each, by the severity policy; alpha's must not say it is ignored);
    # not dynamic NTK, so no RD208; no RD113: 4.x never asks these for floats (4.57's HunYuan config leaves
    # `self._rope_scaling_validation()` commented out and loads the file without a warning).
    "hunyuanimage-2.1-reprompt": (Rope("ntk_alpha", 1e4, 1.0, 32768, 32768, 128, 128), ["RD102"] * 5),
    # see OVERRIDES: dual-chunk attention, trained at 262144. The declared 1010000 means different lengths in
    # different runtimes (vLLM/SGLang run dual-chunk attention, transformers and llama.cpp plain RoPE): a warning
    "qwen2.5-7b-instruct-1m": (Rope("dual_chunk", 1e7, None, 262144, 1010000, 128, 128), ["RD230"]),
    "smollm3-3b": (Rope("default", 5e6, None, 65536, 65536, 128, 128), []),
    # no max_position_embeddings in the file: Cohere2Config's default 8192
    "tiny-aya-global": (Rope("default", 50000.0, None, 8192, 8192, 128, 128), []),
    # per-layer YaRN: the full-attention layers scale, the sliding ones do not
    "olmo-3-7b": (
        Rope("yarn", 5e5, 8.0, 8192, 65536, 128, 128,
             (("full_attention", "yarn", 5e5, 8.0), ("sliding_attention", "default", 5e5, None))),
        ["RD212"]),
    # full-attention layers: proportional over global_head_dim 512, a quarter rotating (128); no RD203, since
    # transformers 4.x does not know gemma4 at all (a v5-only file is the only file there is)
    "gemma-4-31b-it": (
        Rope("proportional", 1e6, None, 131072, 131072, 512, 128,
             (("full_attention", "proportional", 1e6, None), ("sliding_attention", "default", 1e4, None))),
        []),
}

# Where transformers' own reading is not the right one, and why.
OVERRIDES: dict[str, tuple[dict[str, Any], str]] = {
    "qwen2.5-7b-instruct-1m": (
        {"method": "dual_chunk", "original_context": 262144},
        "transformers ignores dual_chunk_attention_config and runs plain RoPE to 1010000; the model was trained "
        "to dual_chunk_attention_config.original_max_position_embeddings (262144) and reaches 1M only through "
        "dual-chunk attention (vLLM's DualChunkRotaryEmbedding; the method table's dual_chunk)"),
}


def _config(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name / "config.json").read_text())
    return data


def _class(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _attr(obj: Any, name: str) -> Any:
    try:  # heterogeneous configs raise on per-layer attributes read globally
        return getattr(obj, name, None)
    except Exception:
        return None


def _head_dim(config: Any) -> int:
    head_dim = _attr(config, "head_dim")
    if isinstance(head_dim, int) and not isinstance(head_dim, bool):
        return head_dim
    return int(config.hidden_size // config.num_attention_heads)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers' own warnings (the talker's mrope keys, HunYuan's alpha) are not what these tests judge."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)


@functools.cache
def oracle(name: str) -> Rope:
    """What transformers 5.24 builds from the fixture (or, for remote code, from its transformers twin)."""
    config = AS_TRANSFORMERS.get(name, lambda c: c)(_config(name))
    with _quiet():
        text = _build(json.loads(json.dumps(config)), "").get_text_config()
        context = text.max_position_embeddings
        rotary_path = ROTARY[name]
        if rotary_path is None:
            modeling = importlib.import_module(type(text).__module__.replace(".configuration_", ".modeling_"))
            text_rotary = [n for n in vars(modeling) if n.endswith("RotaryEmbedding") and "Vision" not in n]
            assert not text_rotary and not _attr(text, "rope_parameters"), text_rotary
            return Rope("none", None, None, None, context, _attr(text, "head_dim"), None)
        module = _class(rotary_path)(config=text)
    params: dict[str, Any] = dict(text.rope_parameters)
    layers = None
    if isinstance(module.rope_type, dict):  # one inv_freq buffer and one method per layer type
        layers = tuple((t, module.rope_type[t], _num(params[t]["rope_theta"]),
                        _num(params[t].get("factor")) if module.rope_type[t] != "default" else None)
                       for t in sorted(module.rope_type))
        method, main = module.rope_type[MAIN_LAYER], params[MAIN_LAYER]
        inv_freq = getattr(module, f"{MAIN_LAYER}_inv_freq")
        per_layer = _attr(text, "per_layer_config")
        head_dim = _head_dim(per_layer[MAIN_LAYER] if per_layer is not None else text)
    else:
        method, main, inv_freq, head_dim = module.rope_type, params, module.inv_freq, _head_dim(text)
    scaled_original = method in ("yarn", "llama3", "longrope")
    rope = Rope(
        method=method,
        theta=_num(main["rope_theta"]),
        factor=_num(main.get("factor")) if method not in ("default", "proportional") else None,
        original_context=int(main["original_max_position_embeddings"]) if scaled_original else context,
        context=context,
        head_dim=head_dim,
        rotary_dim=2 * int((inv_freq != 0).sum()),
        layers=layers,
    )
    override = OVERRIDES.get(name)
    return replace(rope, **override[0]) if override else rope


def _check(name: str, *extra: str) -> dict[str, Any]:
    result = invoke("check", str(FIXTURES / name), "--format", "json", *extra)
    assert result.exit_code in (0, 1), f"exit {result.exit_code}: {result.output}"
    doc: dict[str, Any] = json.loads(result.stdout)["results"][0]
    return doc


def test_every_fixture_has_an_oracle_and_a_provenance_row() -> None:
    assert set(EXPECTED) == set(ROTARY)
    readme = (FIXTURES / "README.md").read_text()
    for name in EXPECTED:
        assert (FIXTURES / name / "config.json").is_file(), name
        assert f"`{name}`" in readme, f"{name}: no provenance row in fixtures/README.md"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expectation_is_the_real_thing(name: str) -> None:
    """The numbers written in EXPECTED are the ones transformers' own classes compute (OVERRIDES aside)."""
    expected = EXPECTED[name][0]
    assert oracle(name) == expected


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_new_family(name: str) -> None:
    expected, codes = EXPECTED[name]
    doc = _check(name)
    rope = doc["rope"]
    assert {key: rope.get(key) for key in CONTRACT} == dict(zip(CONTRACT, expected.contract(), strict=True))
    if expected.layers is not None:
        got = rope.get("layers") or {}
        assert {t: (v.get("method"), v.get("theta"), v.get("factor")) for t, v in got.items()} == {
            t: (method, theta, factor) for t, method, theta, factor in expected.layers}
    assert sorted(f["code"] for f in doc["findings"]) == sorted(codes)


def test_dual_chunk_beyond_its_trained_length_is_runtime_dependent() -> None:
    """Qwen2.5-1M at 1M: vLLM/SGLang run dual-chunk attention, transformers and llama.cpp plain RoPE (a warning)."""
    doc = _check("qwen2.5-7b-instruct-1m", "--ctx", "1000000")
    assert [(f["code"], f["severity"]) for f in doc["findings"]] == [("RD230", "warning")]
    assert not _check("qwen2.5-7b-instruct-1m", "--ctx", "262144")["findings"]


def test_hunyuan_alpha_is_not_said_to_be_ignored() -> None:
    """transformers' HunYuan rotary module and llama.cpp's converter both apply `alpha` (issue 13)."""
    doc = _check("hunyuanimage-2.1-reprompt")
    alpha = [f for f in doc["findings"] if f.get("location") == "rope_scaling.alpha"]
    assert alpha and all("ignore" not in f["message"].lower() for f in alpha), alpha


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_crash_on_any_command(name: str, tmp_path: Path) -> None:
    """check, flags, plan, plot and every fix on the new layouts: a result or one clean error line, never a crash."""
    folder = str(FIXTURES / name)
    ctx = "2000000"  # past every fixture's declared length, so every command has something to plan
    commands = [
        ["check", folder, "--ctx", ctx],
        ["flags", folder, "--ctx", ctx, "--runtime", "all"],
        ["flags", folder, "--ctx", ctx, "--runtime", "llama.cpp"],
        ["plan", folder, "--ctx", ctx],
        ["plot", folder, "--ctx", ctx, "--format", "json", "--out", str(tmp_path / "p.png")],
        ["fix", folder, "--ctx", ctx, "--dry-run"],
        *[["fix", folder, "--type", t, "--factor", "2", "--dry-run"] for t in methods.FIX_TYPES],
    ]
    for argv in commands:
        code, _, err = run_entry(argv)
        assert code in (0, 1, 2), (argv, code, err)
        assert "internal error" not in err and "Traceback" not in err, (argv, err)
        if code == 2:
            assert err.startswith("ropedoctor: error:") and err.count("\n") == 1, (argv, err)
