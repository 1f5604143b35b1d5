"""The check CLI: exit codes, the JSON contract, and one clean line for every bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, as_nobody, invoke, run_cli, write_config

HEALTHY = str(FIXTURES / "qwen2.5-7b-instruct")
BROKEN = str(FIXTURES / "broken" / "yarn-legacy-type-conflict")
WARNING_ONLY = str(FIXTURES / "broken" / "qwen2.5-yarn-snippet")


def test_healthy_exits_zero_and_summarises() -> None:
    result = invoke("check", HEALTHY)
    assert result.exit_code == 0, result.output
    assert "method default · theta 1000000" in result.stdout
    assert "no findings" in result.stdout


def test_error_finding_exits_one() -> None:
    result = invoke("check", BROKEN)
    assert result.exit_code == 1
    assert "RD201 legacy-type-conflict" in result.stdout


def test_strict_counts_warnings() -> None:
    assert invoke("check", WARNING_ONLY).exit_code == 0
    assert invoke("check", WARNING_ONLY, "--strict").exit_code == 1


def test_json_contract() -> None:
    result = invoke("check", BROKEN, HEALTHY, "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert set(doc) == {"ropedoctor", "results", "summary"}
    assert [r["source"] for r in doc["results"]] == [BROKEN + "/config.json", HEALTHY + "/config.json"]
    first = doc["results"][0]
    assert set(first) == {"source", "format", "model_type", "rope", "findings"}
    assert first["format"] == "hf-config" and first["model_type"] == "qwen2"
    stable = {"method", "theta", "factor", "original_context", "context", "head_dim", "rotary_dim"}
    assert stable <= set(first["rope"])
    assert {k: first["rope"][k] for k in stable} == {
        "method": "yarn", "theta": 1e6, "factor": 4.0, "original_context": 32768, "context": 32768,
        "head_dim": 128, "rotary_dim": 128}
    finding = first["findings"][0]
    assert set(finding) == {"code", "name", "severity", "message", "location"}
    assert finding == {"code": "RD201", "name": "legacy-type-conflict", "severity": "error",
                       "message": finding["message"], "location": "rope_scaling.type"}
    assert "'linear'" in finding["message"] and "'yarn'" in finding["message"]
    assert doc["summary"] == {"error": 1, "warning": 1, "info": 1}


def test_path_defaults_to_current_directory() -> None:
    result = run_cli("check", "--format", "json", cwd=FIXTURES / "qwen2.5-7b-instruct")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["source"] == "config.json"


def test_ctx_beyond_support_says_what_to_do() -> None:
    result = invoke("check", str(FIXTURES / "yi-1.5-34b"), "--ctx", "16384", "--format", "json")
    assert result.exit_code == 1
    [finding] = [f for f in json.loads(result.stdout)["results"][0]["findings"] if f["code"] == "RD301"]
    assert "16384" in finding["message"] and "4096" in finding["message"]
    assert "linear (PI) x4" in finding["message"] and "YaRN x4" in finding["message"] and "--type ntk" in finding["message"]


def test_absolute_positions_cannot_be_extended() -> None:
    result = invoke("check", str(FIXTURES / "bert-base-uncased"), "--ctx", "8192", "--format", "json")
    assert result.exit_code == 1
    codes = [f["code"] for f in json.loads(result.stdout)["results"][0]["findings"]]
    assert codes == ["RD302", "RD001"]


def test_rules_and_rule_commands() -> None:
    listing = invoke("rules")
    assert listing.exit_code == 0 and "RD101  missing-required-key" in listing.stdout
    page = invoke("rule", "RD207")
    assert page.exit_code == 0
    for section in ("What it does", "Why it matters", "Example", "Fix"):
        assert section in page.stdout
    assert invoke("rule", "yarn-length-runtime-dependent").stdout == page.stdout
    missing = invoke("rule", "RD999")
    assert missing.exit_code == 2 and missing.stderr.startswith("ropedoctor: error: RD999: no such rule")


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("ropedoctor 0.")


# --- bad input: one line on stderr naming the file, exit 2, no traceback --------------------------


def _bad_inputs(tmp: Path) -> list[tuple[str, str, str]]:
    """(path argument, what the stderr line must contain, case name)."""
    cases: list[tuple[str, str, str]] = []

    def put(name: str, content: bytes) -> str:
        folder = tmp / name
        folder.mkdir()
        (folder / "config.json").write_bytes(content)
        return str(folder)

    cases.append((str(tmp / "nowhere"), "no such local path", "missing path"))
    (tmp / "empty-folder").mkdir()
    cases.append((str(tmp / "empty-folder"), "no config.json or .gguf file in this folder", "folder without config.json"))
    cases.append((put("invalid", b'{"model_type": "llama",'), "invalid JSON at line 1", "invalid JSON"))
    cases.append((put("array", b"[1, 2]"), "expected a JSON object, got an array", "not an object"))
    cases.append((put("nan", b'{"rope_theta": NaN}'), "NaN is not valid JSON", "NaN"))
    cases.append((put("inf", b'{"rope_theta": Infinity}'), "Infinity is not valid JSON", "Infinity"))
    cases.append((put("overflow", b'{"rope_theta": 1e400}'), "overflows a float", "overflowing number"))
    cases.append((put("string-number", b'{"model_type": "llama", "max_position_embeddings": "4096"}'),
                  "max_position_embeddings must be an integer, got a string '4096'", "number as string"))
    cases.append((put("scaling-list", b'{"model_type": "llama", "rope_scaling": ["linear", 2]}'),
                  "rope_scaling must be an object or null, got an array", "unknown value type"))
    cases.append((put("model-type-number", b'{"model_type": 7}'), "model_type must be a string", "model_type type"))
    cases.append((put("empty", b""), "file is empty", "empty file"))
    cases.append((put("binary", b"\xff\xfe\x00\x81"), "not UTF-8 text", "binary"))
    cases.append((put("deep", b"[" * 100_000 + b"]" * 100_000), "nested too deeply", "deep nesting"))
    huge = tmp / "huge"
    huge.mkdir()
    with open(huge / "config.json", "wb") as handle:
        handle.truncate(200 * 1024 * 1024)  # sparse: costs no disk
    cases.append((str(huge), "file is 209.7 MB", "200 MB file"))
    return cases


@pytest.fixture
def bad_inputs(tmp_path: Path) -> list[tuple[str, str, str]]:
    return _bad_inputs(tmp_path)


def test_bad_inputs_in_process(bad_inputs: list[tuple[str, str, str]]) -> None:
    for path, expected, name in bad_inputs:
        result = invoke("check", path)
        assert result.exit_code == 2, (name, result.output)
        assert result.stdout == "", name
        lines = result.stderr.splitlines()
        assert len(lines) == 1, (name, result.stderr)
        assert lines[0].startswith(f"ropedoctor: error: {path}"), (name, lines[0])
        assert expected in lines[0], (name, lines[0])


def test_bad_inputs_in_subprocess(bad_inputs: list[tuple[str, str, str]]) -> None:
    paths = [path for path, _, _ in bad_inputs]
    result = run_cli("check", *paths, HEALTHY, "--format", "json")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == len(paths)
    doc: dict[str, Any] = json.loads(result.stdout)  # the readable one is still reported
    assert [r["model_type"] for r in doc["results"]] == ["qwen2"]


def _check_as_nobody(path: Path) -> tuple[int, str]:
    """check run as an unprivileged user: (exit code, stderr)."""
    import ropedoctor.check
    import ropedoctor.report  # noqa: F401  (the child may not read the source tree)

    def action() -> str:
        result = invoke("check", str(path))
        crash = result.exception if not isinstance(result.exception, SystemExit) else None
        return json.dumps([result.exit_code, result.stderr + (repr(crash) if crash else "")])

    code, stderr = json.loads(as_nobody(action))
    return int(code), str(stderr)


def test_unreadable_file(tmp_path: Path, llama_config: dict[str, Any]) -> None:
    folder = write_config(tmp_path / "private", llama_config)
    (folder / "config.json").chmod(0)
    for parent in (folder, tmp_path, *tmp_path.parents[:3]):  # up to pytest's base temp folder
        parent.chmod(0o755)
    if os.geteuid() == 0:
        code, stderr = _check_as_nobody(folder)
    else:
        result = invoke("check", str(folder))
        code, stderr = result.exit_code, result.stderr
    assert code == 2, stderr
    assert stderr.strip() == f"ropedoctor: error: {folder / 'config.json'}: permission denied"
