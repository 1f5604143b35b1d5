"""The family records generated from transformers (model/hf_families.json) and how the reader uses them.

``test_model_types_differential.py`` holds every model type to transformers; this file pins the record file
itself (current for the installed transformers, regenerated identically) and the reading rules issue 13 names
one by one, on small configs whose right answer is written out.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import transformers

from conftest import FIXTURES, ROOT
from hf_probe import model_types, quiet
from ropedoctor.errors import InputError
from ropedoctor.families import family_of, hf_records
from ropedoctor.rules import Target, run_rules
from ropedoctor.sources.hf_config import spec_from_config

RECORDS = ROOT / "ropedoctor" / "model" / "hf_families.json"


def _check(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    from ropedoctor.report import rope_json

    spec = spec_from_config(json.loads(json.dumps(config)), "config.json")
    return rope_json(spec), [f"{f.code}:{f.severity}" for f in run_rules(spec, Target())]


def test_records_are_for_the_installed_transformers() -> None:
    doc = json.loads(RECORDS.read_text())
    assert doc["transformers_version"] == transformers.__version__, \
        "transformers was bumped: rerun `.venv/bin/python tools/gen_hf_families.py`"
    assert sorted(doc["types"]) == model_types()
    assert RECORDS.read_text() == json.dumps(doc, indent=0, sort_keys=True, separators=(",", ":")) + "\n"


@pytest.mark.parametrize("model_type", ["llama", "gemma4_text", "minimax_m2", "dbrx", "t5", "gpt_oss",
                                        "qwen3_omni_moe", "cosmos3_edge_text", "deepseek_v4", "olmo3", "glm5_next"])
def test_record_regenerates_identically(model_type: str) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        generator: Any = importlib.import_module("gen_hf_families")
    finally:
        sys.path.remove(str(ROOT / "tools"))
    with quiet():
        fresh = json.loads(json.dumps(generator.record(model_type)))
    committed = {k: v for k, v in hf_records()[model_type].items() if not k.startswith("v4")}  # from .venv-tf4
    assert fresh == committed


def test_records_load_lazily() -> None:
    """Importing the reader reads no JSON; the first family lookup does, once (check's start-up path)."""
    code = ("import ropedoctor.sources.hf_config, ropedoctor.families as f; a = f._hf_families.cache_info().currsize; "
            "f.family_of('llama'); f.family_of('t5'); print(a, f._hf_families.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["0", "1"]


@pytest.mark.parametrize(("model_type", "positions"), [
    ("t5", "relative"), ("bart", "absolute"), ("whisper", "absolute"), ("mamba", "none"), ("gpt_neo", "absolute"),
    ("esm", "absolute"), ("bloom", "alibi"), ("rwkv", "none"), ("glm5_next_text", "none"),
])
def test_types_without_rope_are_method_none(model_type: str, positions: str) -> None:
    rope, findings = _check({"model_type": model_type, "max_position_embeddings": 2048})
    assert (rope["method"], rope["positions"]) == ("none", positions)
    assert rope["theta"] is None and "RD001:info" in findings


def test_unknown_type_without_rope_keys_is_not_assumed_llama() -> None:
    rope, findings = _check({"model_type": "frobnicator", "hidden_size": 512, "num_attention_heads": 8,
                             "max_position_embeddings": 1024})
    assert rope["method"] == "none" and rope["positions"] == "unknown" and rope["theta"] is None
    assert findings == ["RD001:info"]
    rope, _ = _check({"model_type": "frobnicator", "hidden_size": 512, "num_attention_heads": 8, "rope_theta": 5e5})
    assert (rope["method"], rope["theta"], rope["positions"]) == ("default", 5e5, "rope")  # its own RoPE keys


def test_attribute_map_aliases_are_read() -> None:
    rope, _ = _check({"model_type": "dbrx", "d_model": 6144, "n_heads": 48, "max_seq_len": 32768,
                      "attn_config": {"rope_theta": 500000}})
    assert (rope["context"], rope["head_dim"], rope["rotary_dim"]) == (32768, 128, 128)
    rope, _ = _check({"model_type": "jetmoe", "hidden_size": 2048, "num_attention_heads": 16, "kv_channels": 96})
    assert (rope["head_dim"], rope["rotary_dim"]) == (96, 96)


@pytest.mark.parametrize(("fixture", "head_dim", "rotary_dim"), [
    ("minimax-m2", 128, 64),  # rotary_dim 64 of a 128 head
    ("kimi-k2-instruct-0905", 64, 64),  # remote code on DeepseekV3ForCausalLM: qk_rope_head_dim
    ("deepseek-v3.2-exp", 64, 64),
    ("glm-4.7-flash", 64, 64),
    ("gemma-4-31b-it", 512, 128),  # full attention: a quarter of global_head_dim 512
])
def test_head_and_rotary_dims(fixture: str, head_dim: int, rotary_dim: int) -> None:
    rope, _ = _check(json.loads((FIXTURES / fixture / "config.json").read_text()))
    assert (rope["head_dim"], rope["rotary_dim"]) == (head_dim, rotary_dim)


def test_text_config_under_any_recorded_key() -> None:
    rope, _ = _check(json.loads((FIXTURES / "qwen3-omni-30b-a3b-instruct" / "config.json").read_text()))
    assert (rope["theta"], rope["context"]) == (1e6, 65536)
    spec = spec_from_config(json.loads((FIXTURES / "qwen3-omni-30b-a3b-instruct" / "config.json").read_text()), "c")
    assert spec.where("context") == "thinker_config.text_config.max_position_embeddings"


def test_loadable_shapes_do_not_exit_2() -> None:
    _check({"model_type": "pixtral", "num_attention_heads": [4, 8, 16, 32], "hidden_size": 1024})
    _check({"model_type": "glm5_next", "text_config": {"model_type": "glm5_next_text", "qk_rope_head_dim": 0,
                                                        "head_dim": 0}})
    with pytest.raises(InputError):  # a genuinely unusable value still is one
        _check({"model_type": "llama", "num_attention_heads": "thirty-two"})


def test_vendor_yarn_spellings() -> None:
    remote = {"model_type": "telechat3", "hidden_size": 4096, "num_attention_heads": 32,
              "max_position_embeddings": 32768, "rope_scaling": {"rope_type": "telechat3-yarn", "factor": 4.0,
                                                                 "original_max_position_embeddings": 8192}}
    rope, findings = _check(remote)
    assert rope["method"] == "yarn" and not any(f.startswith("RD111") for f in findings)
    native = {**remote, "model_type": "deepseek_v2", "rope_scaling": {**remote["rope_scaling"],  # type: ignore[dict-item]
                                                                       "rope_type": "deepseek_yarn"}}
    _, findings = _check(native)
    assert "RD111:error" in findings  # transformers' own DeepseekV2 raises KeyError building it


def test_hunyuan_alpha_is_applied() -> None:
    rope, findings = _check(json.loads((FIXTURES / "hunyuanimage-2.1-reprompt" / "config.json").read_text()))
    assert rope["method"] == "ntk_alpha"
    assert not any(f.startswith("RD113") for f in findings)


def test_head_dim_none_classes_fail_on_yarn_and_dynamic_only() -> None:
    base = {"model_type": "hunyuan_v1_dense", "hidden_size": 4096, "num_attention_heads": 32,
            "max_position_embeddings": 32768}
    for method, fails in (("linear", False), ("dynamic", True), ("yarn", True)):
        _, findings = _check({**base, "rope_scaling": {"rope_type": method, "factor": 2.0}})
        assert ("RD114:error" in findings) is fails, (method, findings)


def test_class_restrictions_and_non_standardising_classes() -> None:
    _, findings = _check({"model_type": "phi4_multimodal", "rope_scaling": {"rope_type": "linear", "factor": 2.0}})
    assert "RD115:error" in findings
    _, findings = _check({"model_type": "cohere2_moe", "rope_parameters": {"rope_type": "yarn", "factor": 4.0,
                                                                           "rope_theta": 10000.0}})
    assert "RD101:error" in findings  # no standardisation fills the original length: KeyError
    _, findings = _check({"model_type": "qwen2_vl_vision"})
    assert not any(f.endswith(":error") for f in findings)  # axial is its default: no RD111


def test_nope_and_per_layer_yarn_are_represented() -> None:
    rope, _ = _check(json.loads((FIXTURES / "meta-llama-4-scout-17b-16e" / "config.json").read_text()))
    assert rope["nope_layers"] == 12
    rope, _ = _check(json.loads((FIXTURES / "olmo-3-7b" / "config.json").read_text()))
    assert rope["layers"]["full_attention"]["method"] == "yarn"
    assert rope["layers"]["sliding_attention"]["method"] == "default"
    # Cohere2 rotates only on sliding layers (modeling_cohere2: apply_rotary_pos_emb under `if self.sliding_window`)
    config = json.loads((FIXTURES / "tiny-aya-global" / "config.json").read_text())
    rope, _ = _check(config)
    assert rope["nope_layers"] == sum(1 for t in config["layer_types"] if t != "sliding_attention") == 1


def test_hand_written_rows_are_completed_by_the_record() -> None:
    family = family_of("mixtral")
    assert family.needs_explicit_head_dim and family.default_theta == 1e6  # hand-written
    assert family.rotary_keys and family.known  # learnt
    assert not family_of("no-such-type").known


def test_generator_runs_without_the_v4_environment(tmp_path: Path) -> None:
    """The v4 fields come from .venv-tf4 when it exists; the generator must not need it."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        generator: Any = importlib.import_module("gen_hf_families")
    finally:
        sys.path.remove(str(ROOT / "tools"))
    saved = generator.ROOT
    generator.ROOT = tmp_path
    try:
        assert generator._transformers_v4() == (None, None)
    finally:
        generator.ROOT = saved
