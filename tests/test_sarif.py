"""`check --format sarif`: valid SARIF 2.1.0 (the OASIS schema, vendored), every rule in the driver,
and each finding on the line and column of its key in config.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import FIXTURES, ROOT, invoke
from ropedoctor.ci_formats import key_region, region_at
from ropedoctor.rules import RULES

SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
BROKEN = FIXTURES / "broken" / "yarn-legacy-type-conflict"
HEALTHY = FIXTURES / "qwen2.5-7b-instruct"
GGUF = FIXTURES / "gguf" / "qwen2.5-7b-yarn-capped.gguf"

# Several findings, each on a known line: RD207 on line 6, RD201 on 9, RD212 on 11, RD104 and RD113 on
# 12 (beta_fast), RD102 on 14; every member key of rope_scaling starts in column 5.
SEVERAL = """{
  "model_type": "qwen2",
  "hidden_size": 3584,
  "num_attention_heads": 28,
  "num_key_value_heads": 4,
  "max_position_embeddings": 32768,
  "rope_theta": 1000000.0,
  "rope_scaling": {
    "type": "linear",
    "rope_type": "yarn",
    "factor": 4.0,
    "beta_fast": 1,
    "beta_slow": 32,
    "mystery": 3
  }
}
"""
SEVERAL_PLACES = {
    "RD201": (9, 5), "RD102": (14, 5), "RD104": (12, 5), "RD207": (6, 3), "RD113": (12, 5), "RD212": (11, 5),
}


def validate(doc: dict[str, Any]) -> None:
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def sarif(*args: str) -> tuple[int, dict[str, Any], str]:
    result = invoke("check", *args, "--format", "sarif")
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_vendored_schema_is_the_oasis_one_and_catches_mistakes() -> None:
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    assert SCHEMA["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    _, doc, _ = sarif(str(BROKEN))
    doc["runs"][0]["results"][0]["level"] = "fatal"  # not a SARIF level: the validation must fail
    with pytest.raises(AssertionError, match="level"):
        validate(doc)


def test_valid_sarif_with_every_rule() -> None:
    code, doc, _ = sarif(str(BROKEN), str(HEALTHY), str(GGUF))
    assert code == 1  # the format does not change the exit code
    validate(doc)
    assert doc["version"] == "2.1.0"
    [run] = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "ropedoctor" and driver["version"] and driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == sorted(RULES)
    for entry in driver["rules"]:
        rule = RULES[entry["id"]]
        assert entry["name"] == rule.name
        assert entry["shortDescription"]["text"] == rule.summary
        assert entry["defaultConfiguration"]["level"] == {"error": "error", "warning": "warning", "info": "note"}[
            rule.severity]
        markdown = entry["help"]["markdown"]
        for section in ("## What it does", "## Why it matters", "## Example", "## Fix"):
            assert section in markdown
        assert rule.doc["Fix"] in markdown
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels == {"RD201": "error", "RD207": "warning", "RD212": "note", "RD403": "warning"}
    assert run["invocations"] == [{"executionSuccessful": True}]


def test_exit_codes_follow_the_findings() -> None:
    code, doc, _ = sarif(str(HEALTHY))
    assert code == 0
    assert doc["runs"][0]["results"] == []
    assert sarif(str(FIXTURES / "broken" / "qwen2.5-yarn-snippet"), "--strict")[0] == 1


def test_several_findings_on_their_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(SEVERAL)
    monkeypatch.chdir(tmp_path)
    code, doc, _ = sarif("model")
    assert code == 1
    validate(doc)
    run = doc["runs"][0]
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == tmp_path.resolve().as_uri() + "/"
    places = {}
    lines = SEVERAL.splitlines()
    for result in run["results"]:
        [location] = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"] == {"uri": "model/config.json", "uriBaseId": "SRCROOT"}
        line, column = physical["region"]["startLine"], physical["region"]["startColumn"]
        places[result["ruleId"]] = (line, column)
        key = location["logicalLocations"][0]["fullyQualifiedName"].rsplit(".", 1)[-1]
        assert lines[line - 1][column - 1:].startswith(f'"{key}"'), (result["ruleId"], line, column)
    assert places == SEVERAL_PLACES


def test_missing_key_points_at_its_block_and_crlf_counts_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    text = ('{"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32,\r\n'
            ' "max_position_embeddings": 4096,\r\n "rope_scaling": {"rope_type": "yarn"}}')
    (tmp_path / "config.json").write_bytes(text.encode())
    monkeypatch.chdir(tmp_path)
    code, doc, _ = sarif("config.json")
    assert code == 1
    [result] = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "RD101"]
    assert result["message"]["text"].endswith("(rope_scaling.factor)")
    # `factor` is missing: the finding goes to `"rope_scaling"`, line 3 column 2
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 3, "startColumn": 2}


def test_nested_wrapper_keys() -> None:
    """text_config.rope_scaling.type in a Gemma-3 wrapper: the nested key, not a top-level one."""
    source = FIXTURES / "broken" / "gemma3-legacy-type" / "config.json"
    text = source.read_text()
    region = key_region(text, "text_config.rope_scaling.type")
    assert region is not None
    line = text.splitlines()[region.line - 1]
    assert line[region.column - 1:].startswith('"type"')
    assert text.index('"text_config"') < text.index(line)
    code, doc, _ = sarif(str(source.parent))
    assert code == 1
    [rd214] = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "RD214"]
    assert rd214["locations"][0]["physicalLocation"]["region"] == {"startLine": region.line,
                                                                   "startColumn": region.column}


def test_region_helpers() -> None:
    assert region_at("ab\r\ncd\ref\ngh", 0) == region_at("x", 0)
    assert (region_at("ab\r\ncd\ref\ngh", 4).line, region_at("ab\r\ncd\ref\ngh", 4).column) == (2, 1)
    assert (region_at("ab\r\ncd\ref\ngh", 11).line, region_at("ab\r\ncd\ref\ngh", 11).column) == (4, 2)
    text = '{"a.b": {"c": 1}, "a": {"b": 2}}'
    assert key_region(text, "a.b.c") == region_at(text, text.index('"c"'))  # a key with a dot matched whole
    assert key_region(text, "a.b") == region_at(text, text.index('"a.b"'))
    assert key_region(text, "zzz") is None
    assert key_region("not json", "a") is None


def test_gguf_findings_name_the_file_and_key_without_region() -> None:
    code, doc, _ = sarif(str(GGUF))
    assert code == 0
    validate(doc)
    [result] = doc["runs"][0]["results"]
    [location] = result["locations"]
    assert "region" not in location["physicalLocation"]
    assert location["physicalLocation"]["artifactLocation"] == {
        "uri": "fixtures/gguf/qwen2.5-7b-yarn-capped.gguf", "uriBaseId": "SRCROOT"}
    assert location["logicalLocations"] == [{"fullyQualifiedName": "qwen2.context_length", "kind": "member"}]


def test_file_outside_the_working_directory_gets_a_file_uri(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(SEVERAL)
    result = subprocess.run([sys.executable, "-m", "ropedoctor", "check", str(tmp_path), "--format", "sarif"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    validate(doc)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in doc["runs"][0]["results"]}
    assert uris == {(tmp_path / "config.json").as_uri()}


def test_unreadable_input_is_a_notification_and_exit_two(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{")
    code, doc, err = sarif(str(tmp_path), str(BROKEN))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ropedoctor: error: ")
    validate(doc)
    [invocation] = doc["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["message"]["text"] == err.strip()
    assert {r["ruleId"] for r in doc["runs"][0]["results"]} == {"RD201", "RD207", "RD212"}


def test_sarif_stays_off_heavy_imports() -> None:
    probe = ("import sys\nfrom ropedoctor.entry import main\n"
             f"sys.argv = ['ropedoctor', 'check', {str(BROKEN)!r}, '--format', 'sarif']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "sys.stderr.write(repr(sorted({m.split('.')[0] for m in sys.modules})))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    loaded = set(eval(result.stderr.splitlines()[-1]))
    assert not loaded & {"numpy", "gguf", "huggingface_hub", "torch", "transformers"}
