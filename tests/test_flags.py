"""`ropedoctor flags`: what every runtime's emission must get right."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from conftest import FIXTURES, invoke

QWEN = str(FIXTURES / "qwen2.5-7b-instruct")
NOMIC = str(FIXTURES / "nomic-embed-text-v1.5")


def flags(*args: str) -> dict[str, dict[str, Any]]:
    result = invoke("flags", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"runtimes"}
    out = {}
    for entry in doc["runtimes"]:
        assert set(entry) >= {"runtime", "version", "argv", "env", "command", "per_sequence_context", "notes",
                              "max_relative_deviation"}
        out[entry["runtime"] + ("/embedding" if "llama-embedding" in entry["command"] else "")] = entry
    return out


def value_after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def json_overrides(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Every JSON-valued argument of an emission."""
    return [json.loads(arg) for arg in entry["argv"] if arg.startswith("{")]


def test_json_overrides_always_say_rope_type_and_rope_theta() -> None:
    for name in ("qwen2.5-7b-instruct", "meta-llama-2-7b-hf", "broken/qwen2.5-yarn-snippet"):
        for args in (["--ctx", "131072"], ["--ctx", "16384", "--type", "dynamic"]):
            emitted = flags(str(FIXTURES / name), *args, "--runtime", "vllm", "--runtime", "sglang",
                            "--runtime", "lmdeploy")
            blocks = 0
            for runtime, entry in emitted.items():
                for override in json_overrides(entry):
                    block = override.get("rope_parameters") or override.get("rope_scaling")
                    if block is None:  # the RoPE is already right: only the length is overridden
                        assert set(override) == {"max_position_embeddings"}, (runtime, override)
                        continue
                    blocks += 1
                    assert "type" not in block and block["rope_type"] and block["rope_theta"], (runtime, block)
            assert blocks or name == "broken/qwen2.5-yarn-snippet"


def test_context_flag_of_every_runtime() -> None:
    emitted = flags(QWEN, "--ctx", "131072", "--runtime", "all")
    assert value_after(emitted["llama.cpp"]["argv"], "-c") == "131072"
    assert value_after(emitted["vllm"]["argv"], "--max-model-len") == "131072"
    assert value_after(emitted["sglang"]["argv"], "--context-length") == "131072"
    assert value_after(emitted["tgi"]["argv"], "--max-total-tokens") == "131072"
    assert value_after(emitted["tgi"]["argv"], "--max-input-tokens") == "131071"
    assert value_after(emitted["lmdeploy"]["argv"], "--session-len") == "131072"
    assert emitted["ollama"]["env"] == {"OLLAMA_CONTEXT_LENGTH": "131072"}
    assert "max_position_embeddings=131072" in emitted["transformers"]["snippet"]
    assert all(entry["per_sequence_context"] == 131072 for entry in emitted.values())


def test_lengths_runtimes_derive_are_overridden() -> None:
    emitted = flags(QWEN, "--ctx", "131072")
    for runtime in ("vllm", "sglang", "lmdeploy"):
        [override] = json_overrides(emitted[runtime])
        assert override["max_position_embeddings"] == 131072, runtime
    assert "VLLM_ALLOW_LONG_MAX_MODEL_LEN" not in emitted["vllm"]["command"]


def test_llamacpp_yarn_flags_carry_the_original_length() -> None:
    argv = flags(QWEN, "--ctx", "131072", "--runtime", "llama.cpp")["llama.cpp"]["argv"]
    assert value_after(argv, "--rope-scaling") == "yarn" and value_after(argv, "--rope-scale") == "4"
    assert value_after(argv, "--yarn-orig-ctx") == "32768"
    assert value_after(argv, "--override-kv") == "qwen2.context_length=int:131072"


def test_llamacpp_linear_gets_the_context_override_and_slots_divide() -> None:
    entry = flags(str(FIXTURES / "meta-llama-2-7b-hf"), "--ctx", "8192", "--type", "linear", "--parallel", "4",
                  "--runtime", "llama.cpp")["llama.cpp"]
    argv = entry["argv"]
    assert value_after(argv, "-c") == "32768" and value_after(argv, "-np") == "4"
    assert value_after(argv, "--override-kv") == "llama.context_length=int:8192"
    assert entry["per_sequence_context"] == 8192 and any("each serves 8192" in n for n in entry["notes"])


def test_input_already_right_gets_only_context_flags() -> None:
    model = str(FIXTURES / "meta-llama-3.1-8b-instruct")
    emitted = flags(model, "--ctx", "65536", "--runtime", "all")
    assert emitted["llama.cpp"]["argv"] == ["-m", "MODEL.gguf", "-c", "65536", "-np", "1"]
    assert emitted["vllm"]["argv"] == ["serve", model, "--max-model-len", "65536"]
    assert emitted["llama.cpp"]["max_relative_deviation"] == 0.0


def test_nomic_seed_case() -> None:
    """nomic-embed-text-v1.5 at 8192 tokens per input, on llama-server, llama-box and llama-embedding."""
    emitted = flags(NOMIC, "--ctx", "8192", "--runtime", "llama.cpp", "--runtime", "llama-box")
    server, box, embed = emitted["llama.cpp"], emitted["llama-box"], emitted["llama.cpp/embedding"]
    for entry in (server, box):
        argv = entry["argv"]
        assert value_after(argv, "-c") == "8192" and value_after(argv, "-np") == "1"
        assert value_after(argv, "-b") == "8192" and value_after(argv, "-ub") == "8192"
        assert value_after(argv, "--override-kv") == "nomic-bert.context_length=int:8192"
        assert float(value_after(argv, "--rope-freq-base")) == pytest.approx(1000 * 7 ** (64 / 62), rel=1e-6)
        assert entry["per_sequence_context"] == 8192
    assert "llama-embedding" in embed["command"] and "--override-kv" not in embed["argv"]
    explanation = " ".join(server["notes"])
    assert "4 slots of 2048" in explanation and "2048/0.75 = 2730" in explanation
    assert "no dynamic NTK" in explanation
    assert server["max_relative_deviation"] > 0.1  # static approximation of dynamic NTK: said, and measured
    assert any("threads-http" in note for note in box["notes"])


@pytest.mark.parametrize(("name", "args"), [
    ("meta-llama-2-7b-hf", ["--type", "linear"]), ("meta-llama-2-7b-hf", ["--type", "yarn"]),
    ("meta-llama-2-7b-hf", ["--type", "ntk"]), ("qwen2.5-7b-instruct", []), ("meta-llama-3.1-8b-instruct", []),
    ("deepseek-v3", []), ("deepseek-v2-lite", []),
])
def test_llamacpp_means_what_transformers_means(name: str, args: list[str]) -> None:
    entry = flags(str(FIXTURES / name), "--ctx", "16384", *args, "--runtime", "llama.cpp")["llama.cpp"]
    assert entry["max_relative_deviation"] < 1e-6, entry


def test_approximations_are_said() -> None:
    gpt_oss = flags(str(FIXTURES / "gpt-oss-20b"), "--ctx", "65536", "--runtime", "llama.cpp")["llama.cpp"]
    assert gpt_oss["max_relative_deviation"] > 0.01 and any("truncate: false" in n for n in gpt_oss["notes"])
    phi = flags(str(FIXTURES / "phi-3.5-mini-instruct"), "--ctx", "16384", "--runtime", "llama.cpp")["llama.cpp"]
    assert phi["max_relative_deviation"] > 0.01 and any("long factors" in n for n in phi["notes"])


def test_runtime_versions() -> None:
    old = flags(QWEN, "--ctx", "131072", "--runtime", "vllm", "--runtime-version", "0.10.0")["vllm"]
    [override] = json_overrides(old)
    assert "rope_scaling" in override and override["rope_theta"] == 1e6 and "rope_parameters" not in override
    oldest = flags(QWEN, "--ctx", "131072", "--runtime", "vllm", "--runtime-version", "0.6.3")["vllm"]
    assert "--rope-scaling" in oldest["argv"] and value_after(oldest["argv"], "--rope-theta") == "1e+06"
    new = flags(QWEN, "--ctx", "131072", "--runtime", "vllm")["vllm"]
    assert "rope_parameters" in json_overrides(new)[0]
    lmd_old = flags(str(FIXTURES / "meta-llama-2-7b-hf"), "--ctx", "8192", "--type", "dynamic", "--runtime",
                    "lmdeploy", "--runtime-version", "0.8")["lmdeploy"]
    assert value_after(lmd_old["argv"], "--rope-scaling-factor") == "2"
    lmd_new = flags(str(FIXTURES / "meta-llama-2-7b-hf"), "--ctx", "8192", "--type", "dynamic", "--runtime",
                    "lmdeploy")["lmdeploy"]
    assert "--rope-scaling-factor" not in lmd_new["argv"] and "--hf-overrides" in lmd_new["argv"]
    tgi = flags(QWEN, "--ctx", "131072", "--runtime", "tgi")["tgi"]
    assert "--rope-scaling" not in tgi["argv"] and any("only linear|dynamic" in n for n in tgi["notes"])
    ollama = flags(QWEN, "--ctx", "131072", "--runtime", "ollama")["ollama"]
    assert any("rope_frequency_base" in n for n in ollama["notes"])
    tf4 = flags(QWEN, "--ctx", "131072", "--runtime", "transformers", "--runtime-version", "4.57")["transformers"]
    assert "rope_scaling=" in tf4["snippet"] and "rope_theta=1000000.0" in tf4["snippet"]


def test_absolute_positions_get_no_rope_flags() -> None:
    result = invoke("flags", str(FIXTURES / "bert-base-uncased"), "--ctx", "8192")
    assert result.exit_code == 1 and "no RoPE flag can extend it" in result.stderr
    inside = flags(str(FIXTURES / "bert-base-uncased"), "--ctx", "512", "--runtime", "llama.cpp")["llama.cpp"]
    assert not any(arg.startswith("--rope") for arg in inside["argv"])


def test_shell_format_quotes() -> None:
    result = invoke("flags", QWEN, "--ctx", "131072", "--runtime", "vllm", "--format", "shell")
    assert result.exit_code == 0
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("vllm"))
    argv = shlex.split(line)
    assert json.loads(value_after(argv, "--hf-overrides"))["rope_parameters"]["rope_type"] == "yarn"
