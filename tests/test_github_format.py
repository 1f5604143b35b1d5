"""`check --format github`: one GitHub workflow annotation per finding, escaped as GitHub's toolkit escapes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import FIXTURES, invoke
from ropedoctor.ci_formats import escape_data, escape_property

BROKEN = str(FIXTURES / "broken" / "yarn-legacy-type-conflict")
HEALTHY = str(FIXTURES / "qwen2.5-7b-instruct")
GGUF = str(FIXTURES / "gguf" / "qwen2.5-7b-yarn-capped.gguf")

COMMAND = re.compile(r"^::(error|warning|notice) (?P<properties>[^:]*)::(?P<message>.*)$")


def unescape(text: str) -> str:
    """The runner's decoding of a workflow command value (the inverse of the toolkit's escaping)."""
    for escaped, raw in (("%2C", ","), ("%3A", ":"), ("%0A", "\n"), ("%0D", "\r"), ("%25", "%")):
        text = text.replace(escaped, raw)
    return text


def parse(line: str) -> tuple[str, dict[str, str], str]:
    match = COMMAND.match(line)
    assert match, line
    properties = dict(item.split("=", 1) for item in match["properties"].split(","))
    return match[1], {key: unescape(value) for key, value in properties.items()}, unescape(match["message"])


def test_broken_config_annotations() -> None:
    result = invoke("check", BROKEN, "--format", "github")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [parse(line)[0] for line in lines] == ["error", "warning", "notice"]
    command, properties, message = parse(lines[0])
    assert command == "error"
    assert {k: v for k, v in properties.items() if k != "file"} == {
        "line": "28", "col": "5", "title": "RD201 legacy-type-conflict"}
    assert properties["file"].endswith("fixtures/broken/yarn-legacy-type-conflict/config.json")
    assert message.startswith("`type` is 'linear' but `rope_type` is 'yarn'") and message.endswith("(rope_scaling.type)")
    # the raw line carries the title's ' ' and the message's ':' as they are (only properties escape ':')
    assert lines[0].startswith("::error file=") and ",line=28,col=5,title=RD201 legacy-type-conflict::`type`" in lines[0]
    assert parse(lines[1])[1]["line"] == "12" and parse(lines[1])[1]["title"] == "RD207 yarn-length-runtime-dependent"
    assert parse(lines[2])[1]["title"] == "RD212 static-yarn-short-inputs"


def test_relative_paths_when_run_from_the_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES.parent)
    result = invoke("check", "fixtures/broken/yarn-legacy-type-conflict", "--format", "github")
    assert result.stdout.splitlines()[0] == (
        "::error file=fixtures/broken/yarn-legacy-type-conflict/config.json,line=28,col=5,"
        "title=RD201 legacy-type-conflict::`type` is 'linear' but `rope_type` is 'yarn'; transformers uses 'yarn', "
        "readers of the legacy key use 'linear' (rope_scaling.type)")


def test_healthy_prints_nothing_and_exits_zero() -> None:
    result = invoke("check", HEALTHY, "--format", "github")
    assert (result.exit_code, result.stdout) == (0, "")


def test_quiet_keeps_only_errors_and_strict_only_changes_the_exit_code() -> None:
    quiet = invoke("check", BROKEN, "--format", "github", "--quiet")
    assert quiet.exit_code == 1
    assert [parse(line)[0] for line in quiet.stdout.splitlines()] == ["error"]
    warning_only = str(FIXTURES / "broken" / "qwen2.5-yarn-snippet")
    plain, strict = invoke("check", warning_only, "--format", "github"), invoke(
        "check", warning_only, "--format", "github", "--strict")
    assert (plain.exit_code, strict.exit_code) == (0, 1) and plain.stdout == strict.stdout


def test_gguf_annotation_has_no_line() -> None:
    result = invoke("check", GGUF, "--format", "github")
    [line] = result.stdout.splitlines()
    command, properties, message = parse(line)
    assert command == "warning" and set(properties) == {"file", "title"}
    assert properties["title"] == "RD403 gguf-yarn-context-capped" and message.endswith("(qwen2.context_length)")


def test_unreadable_input_exit_two(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("[]")
    result = invoke("check", str(tmp_path), BROKEN, "--format", "github")
    assert result.exit_code == 2
    assert result.stderr == f"ropedoctor: error: {tmp_path}/config.json: expected a JSON object, got an array\n"
    assert len(result.stdout.splitlines()) == 3


def test_escaping_follows_the_toolkit() -> None:
    # @actions/core: escapeData replaces %, \r, \n; escapeProperty also : and ,
    assert escape_data("100% done\r\nnext: a, b") == "100%25 done%0D%0Anext: a, b"
    assert escape_property("100% done\r\nnext: a, b") == "100%25 done%0D%0Anext%3A a%2C b"
    assert escape_data("%0A") == "%250A"  # already-escaped text is escaped again, not passed through


def test_odd_file_names_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "v1,final: 100%"
    folder.mkdir()
    (folder / "config.json").write_text((FIXTURES / "broken" / "yarn-legacy-type-conflict" / "config.json").read_text())
    monkeypatch.chdir(tmp_path)
    result = invoke("check", "v1,final: 100%", "--format", "github")
    first = result.stdout.splitlines()[0]
    assert first.startswith("::error file=v1%2Cfinal%3A 100%25/config.json,line=28,col=5,")
    assert parse(first)[1]["file"] == "v1,final: 100%/config.json"
