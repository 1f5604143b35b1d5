"""The fast path for plain `check` runs gives exactly what the typer CLI gives."""

from __future__ import annotations

import pytest

from conftest import FIXTURES, invoke, run_cli, run_entry
from ropedoctor.entry import parse_fast_check

QWEN = str(FIXTURES / "qwen2.5-7b-instruct")
BROKEN = str(FIXTURES / "broken" / "yarn-legacy-type-conflict")

SAME_RESULT = [
    ["check", QWEN],
    ["check", QWEN, BROKEN, "--format", "json"],
    ["check", "--format=json", "--ctx=200000", QWEN],
    ["check", BROKEN, "--strict", "--ctx", "8192"],
    ["check", "--", BROKEN],
    ["check", str(FIXTURES / "nowhere"), QWEN],
    ["check", BROKEN, "--ctx", "128k", "--select", "RD2,RD3", "--ignore=RD207", "--extend-ignore", "RD212"],
    ["check", BROKEN, "--isolated", "-q", "--strict", "--extend-select", "ALL"],
    ["check", BROKEN, "--select", "RD9"],
]


@pytest.mark.parametrize("argv", SAME_RESULT, ids=lambda a: " ".join(x.rsplit("/", 1)[-1] for x in a))
def test_fast_path_matches_typer(argv: list[str]) -> None:
    assert parse_fast_check(argv) is not None
    typer_result = invoke(*argv)
    assert run_entry(argv) == (typer_result.exit_code, typer_result.stdout, typer_result.stderr)


@pytest.mark.parametrize("argv", [
    ["check", "--help"], ["check", "--ctx", "0", QWEN], ["check", "--ctx", "many", QWEN], ["check", "--format", "xml"],
    ["check", "--ctx"], ["check", "--unknown"], ["rules"], ["--version"], [],
])
def test_everything_else_goes_to_typer(argv: list[str]) -> None:
    assert parse_fast_check(argv) is None


def test_typer_owns_bad_option_messages() -> None:
    code, _, err = run_entry(["check", "--ctx", "0", QWEN])
    assert code == 2 and "Invalid value for '--ctx'" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["check", "--ctx", "many", QWEN], ["check", "--format", "xml"], ["check", "--ctx"],
                                  ["fix", "--type", "foo"], ["smoke", "--bogus"], ["flags", QWEN]])
def test_a_bad_option_is_one_line(argv: list[str]) -> None:
    """DESIGN.md: bad input is one `ropedoctor: error:` line and exit 2, typer's usage errors included."""
    result = run_cli(*argv)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ropedoctor: error: "), result.stderr
    assert f"ropedoctor {argv[0]} --help" in lines[0]
