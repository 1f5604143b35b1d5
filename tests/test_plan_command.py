"""`ropedoctor plan`: the options side by side, the runtime support read off runtimes/, the memory bill, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, invoke, run_cli
from ropedoctor.memory import kv_bytes_per_token, kv_cache_bytes, shape_from_config
from ropedoctor.plan_options import SUPPORT_MARKS


def plan_json(*args: str) -> dict[str, Any]:
    result = invoke("plan", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def option(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(o for o in doc["options"] if o["name"] == name)
    return found


def support(opt: dict[str, Any], runtime: str) -> str:
    level: str = next(r["support"] for r in opt["runtimes"] if r["runtime"] == runtime)
    return level


def test_options_for_a_file_without_scaling() -> None:
    doc = plan_json(str(FIXTURES / "qwen2.5-7b-instruct"), "--ctx", "131072")
    assert [o["name"] for o in doc["options"]] == ["plan", "linear", "dynamic", "yarn", "ntk"]
    plan = option(doc, "plan")
    assert (plan["method"], plan["factor"], plan["context"], plan["serves"]) == ("yarn", 4.0, 131072, 131072)
    assert option(doc, "linear")["factor"] == 4.0
    ntk = option(doc, "ntk")
    assert ntk["method"] == "default" and ntk["theta"] == pytest.approx(1e6 * 4 ** (128 / 126))
    for opt in doc["options"]:
        assert opt["notes"] and opt["reasons"] and {r["support"] for r in opt["runtimes"]} <= set(SUPPORT_MARKS)


def test_runtime_support_is_what_the_runtime_modules_emit() -> None:
    doc = plan_json(str(FIXTURES / "qwen2.5-7b-instruct"), "--ctx", "131072")
    # llama.cpp has no dynamic NTK: its static stand-in deviates from transformers
    assert support(option(doc, "dynamic"), "llama.cpp") == "approximate"
    assert support(option(doc, "yarn"), "llama.cpp") == "flags"
    assert support(option(doc, "yarn"), "vllm") == "flags"
    assert support(option(doc, "yarn"), "tgi") == "file-only"  # TGI's --rope-scaling takes only linear|dynamic
    assert support(option(doc, "linear"), "tgi") == "flags"
    assert support(option(doc, "yarn"), "ollama") == "file-only"  # no RoPE parameters at all
    assert any("TGI has no flag" in n for n in next(r for r in option(doc, "yarn")["runtimes"]
                                                     if r["runtime"] == "tgi")["notes"])


def test_a_file_that_already_serves_n_needs_nothing() -> None:
    doc = plan_json(str(FIXTURES / "meta-llama-3.1-8b-instruct"), "--ctx", "65536")
    plan = option(doc, "plan")
    assert plan["method"] == "llama3" and plan["factor"] == 8.0
    assert {r["support"] for r in plan["runtimes"]} == {"as-is"}


def test_longrope_cannot_be_stretched_but_the_others_can() -> None:
    doc = plan_json(str(FIXTURES / "phi-3.5-mini-instruct"), "--ctx", "262144")
    assert option(doc, "plan")["available"] is False
    assert "cannot be stretched" in option(doc, "plan")["why"]
    # transformers' Phi-3 class takes longrope only: plan offers what fix can write (issue 13), a static base
    assert option(doc, "yarn")["available"] is False and "accepts only longrope" in option(doc, "yarn")["why"]
    assert option(doc, "ntk")["available"] and option(doc, "ntk")["method"] == "default"
    assert option(doc, "longrope") == {"name": "longrope", "available": False, "why": "serves 131072 < 262144 tokens"}


def test_memory_bill_per_slot_and_total() -> None:
    doc = plan_json(str(FIXTURES / "qwen2.5-7b-instruct"), "--ctx", "131072", "--parallel", "2", "--kv-dtype", "q8_0")
    memory = doc["memory"]
    shape = shape_from_config(json.loads((FIXTURES / "qwen2.5-7b-instruct" / "config.json").read_text()))
    assert memory["kv_bytes_per_token"] == kv_bytes_per_token(shape, "q8_0") == 28 * 2 * 4 * 128 * 34 // 32
    assert memory["kv_bytes_per_slot"] == kv_cache_bytes(shape, 131072, "q8_0")
    assert memory["kv_bytes_total"] == 2 * memory["kv_bytes_per_slot"]
    assert memory["weights"]["source"] == "estimate" and memory["weights"]["exact"] is False
    assert memory["total_bytes"] == memory["kv_bytes_total"] + memory["weights"]["bytes"]
    assert (memory["layers"], memory["kv_heads"], memory["head_dim"], memory["mla"]) == (28, 4, 128, None)


def test_memory_bill_mla_and_sliding() -> None:
    deepseek = plan_json(str(FIXTURES / "deepseek-v3"), "--ctx", "163840")["memory"]
    assert deepseek["mla"] == {"kv_lora_rank": 512, "qk_rope_head_dim": 64}
    assert deepseek["kv_bytes_per_slot"] == 61 * 576 * 2 * 163840
    gemma = plan_json(str(FIXTURES / "gemma-3-1b-it"), "--ctx", "32768")["memory"]
    assert (gemma["sliding_window"], gemma["sliding_layers"], gemma["window_kind"]) == (512, 22, "sliding")
    assert gemma["kv_bytes_per_slot"] == 2 * 256 * 2 * (4 * 32768 + 22 * 512)


def test_weights_from_safetensors_are_exact(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text((FIXTURES / "meta-llama-3-8b" / "config.json").read_text())
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 16060522496},
                                                                     "weight_map": {}}))
    weights = plan_json(str(folder), "--ctx", "8192")["memory"]["weights"]
    assert weights == {"bytes": 16060522496, "source": "safetensors index total_size", "exact": True, "dtype": None}


def test_gguf_memory_from_the_header(tmp_path: Path) -> None:
    from test_memory import write_llama_gguf

    path = write_llama_gguf(tmp_path / "tiny.gguf", [2, 2, 2])
    memory = plan_json(str(path), "--ctx", "4096", "--parallel", "3")["memory"]
    assert memory["kv_bytes_per_slot"] == 3 * 2 * 64 * 2 * 4096
    assert memory["kv_bytes_total"] == 3 * memory["kv_bytes_per_slot"]
    assert memory["weights"]["source"] == "gguf tensor infos" and memory["weights"]["exact"]


def test_a_gguf_without_shape_keys_still_gets_its_options() -> None:
    doc = plan_json(str(FIXTURES / "gguf" / "qwen2.5-7b-yarn-capped.gguf"), "--ctx", "131072")
    assert option(doc, "plan")["available"]
    assert doc["memory"]["available"] is False and "block_count" in doc["memory"]["why"]


def test_text_output_is_plain_off_a_terminal() -> None:
    done = run_cli("plan", "fixtures/qwen2.5-7b-instruct", "--ctx", "131072")
    assert done.returncode == 0, done.stderr
    assert "ways to serve 131072 tokens per sequence" in done.stdout
    assert "KV cache: 56.00 KiB per token, 7.00 GiB per slot, 7.00 GiB in total" in done.stdout
    assert "\x1b[" not in done.stdout


def test_models_without_rope() -> None:
    result = invoke("plan", str(FIXTURES / "gpt2"), "--ctx", "4096", "--format", "json")
    assert result.exit_code == 1  # beyond GPT-2's 1024 learned positions
    doc = json.loads(result.stdout)
    assert doc["options"] == [] and doc["memory"]["kv_bytes_per_token"] == 2 * 12 * 12 * 64 * 2
    embed = plan_json(str(FIXTURES / "nomic-embed-text-v1.5"), "--ctx", "8192")["memory"]
    assert embed["kv_bytes_per_slot"] == 0 and "no KV cache" in embed["notes"][-1]


@pytest.mark.parametrize(("args", "message"), [
    (["MISSING", "--ctx", "100"], "no such local path"),
    ([str(FIXTURES / "qwen2.5-7b-instruct"), "--ctx", "100", "--weights-dtype", "q5"], "dtype 'q5': unknown"),
])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(tmp_path / "missing" / "config.json") if a == "MISSING" else a for a in args]
    result = invoke("plan", *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_help_has_an_example() -> None:
    for command in ("plan", "plot"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Example: ropedoctor " + command in result.stdout
