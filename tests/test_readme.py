"""The README's and docs/'s examples are real: every command in a ```console block runs and prints what is shown.

The pages are README.md and every docs/*.md but the generated rule pages (docs/rules.md, whose console blocks
show runtimes' command lines). `tools/doc_examples.py --write` rewrites stale examples and help blocks.

A block runs unless the line before its fence is ``<!-- not run -->`` (the setup commands, which
build environments); a ```text block shows a command whose output cannot be reproduced here
(timings, a model that is not in the fixtures) and is not run either. In a block, a line starting with ``$ `` is a command and the lines after it,
up to the next command or the fence, are its output (stdout and stderr as a terminal shows them,
trailing spaces ignored); an output line ``...`` stands for any number of lines. Only
``ropedoctor`` commands run, without a shell, with NO_COLOR=1 and 100 columns, from a fresh copy
of the repository's fixtures (so `fix` examples write there, not into the repository).

The runtime support table is rendered here from what `ropedoctor plan` reads off `runtimes/`;
`python tests/test_readme.py` prints it for pasting.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
import typer.testing

from conftest import ROOT
from ropedoctor.cli import app

README = ROOT / "README.md"
DOCS = ROOT / "docs"
GENERATED = {"rules.md"}  # `ropedoctor rules --format markdown`; tests/test_rules.py keeps it current
PAGES = [README, *sorted(p for p in DOCS.glob("*.md") if p.name not in GENERATED)]
README_LIMIT = 20 * 1024  # the README is the first screen and the three tasks; everything else is a docs/ page
CONSOLE_SCRIPT = Path(sys.executable).parent / "ropedoctor"
NOT_RUN = "<!-- not run -->"
ELLIPSIS = "..."


@dataclass(frozen=True)
class Example:
    section: str  # the heading above the block
    line: int  # 1-based line of the command in README.md
    command: str
    expected: list[str]
    run: bool


def examples(text: str) -> list[Example]:
    found: list[Example] = []
    section, previous, block_runs = "", "", True
    fence = ""  # the open console block's fence (``` or more backticks, when the output holds ```)
    current: Example | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        inside = bool(fence)
        opening = re.fullmatch(r"(`{3,})(console|text)", line.strip())
        if not inside and line.startswith("#"):
            section = line.lstrip("#").strip()
        if not inside and opening:
            fence, block_runs = opening[1], opening[2] == "console" and previous.strip() != NOT_RUN
            continue
        if inside and line.strip() == fence:
            fence, current = "", None
            continue
        if inside and line.startswith("$ "):
            current = Example(section, number, line[2:], [], block_runs)
            found.append(current)
        elif inside and current is not None:
            current.expected.append(line)
        if line.strip():
            previous = line
    return found


def _matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line; an ``...`` line takes any number of actual lines."""
    if not expected:
        return not actual
    if expected[0] == ELLIPSIS:
        return any(_matches(expected[1:], actual[skip:]) for skip in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and _matches(expected[1:], actual[1:])


def _normalised(lines: list[str]) -> list[str]:
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def run_example(command: str, workspace: Path) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "ropedoctor", (
        f"only ropedoctor commands run; put {NOT_RUN} before a block of other commands: {command}")
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("FORCE_COLOR", None)
    result = subprocess.run([str(CONSOLE_SCRIPT), *argv[1:]], cwd=workspace, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=300)
    return _normalised(result.stdout.replace(str(workspace) + "/", "").splitlines())


def workspace_for(tmp: Path) -> Path:
    """A copy of the fixtures, and links to the rest of the repository (docs, bench, ...)."""
    shutil.copytree(ROOT / "fixtures", tmp / "fixtures", symlinks=True)
    for entry in ROOT.iterdir():
        if entry.name not in ("fixtures", ".git") and not (tmp / entry.name).exists():
            (tmp / entry.name).symlink_to(entry)
    return tmp


PAGE_EXAMPLES = {page: examples(page.read_text()) for page in PAGES}
ALL = [e for found in PAGE_EXAMPLES.values() for e in found]
RUNNABLE = [(page, e) for page, found in PAGE_EXAMPLES.items() for e in found if e.run]


@pytest.mark.parametrize(("page", "example"), RUNNABLE,
                         ids=[f"{p.name}:L{e.line} {e.command[:60]}" for p, e in RUNNABLE])
def test_readme_example(page: Path, example: Example, tmp_path: Path) -> None:
    actual = run_example(example.command, workspace_for(tmp_path))
    expected = _normalised(example.expected)
    assert _matches(expected, actual), (
        f"{page.relative_to(ROOT)} line {example.line} ({example.section}): `{example.command}` printed\n"
        + "\n".join(actual) + "\n(tools/doc_examples.py --write updates it)")


def test_every_command_has_a_console_example_and_a_page() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    shown = {shlex.split(e.command)[1] for e in ALL if e.command.startswith("ropedoctor ")}
    missing = sorted(set(group.commands) - shown)
    assert not missing, f"README.md and docs/ show no `$ ropedoctor ...` example of: {', '.join(missing)}"
    pages = {p.stem for p in DOCS.glob("*.md")}
    assert not sorted(set(group.commands) - {"rule"} - pages), "every command has its docs/<command>.md"


def test_setup_block_is_excluded_and_everything_else_runs() -> None:
    skipped = [e.command for e in PAGE_EXAMPLES[README] if not e.run]
    assert skipped[0].startswith("make demo ") and "pipx install ." in skipped and "uv tool install ." in skipped
    assert any(c.startswith("source .venv/bin/activate") for c in skipped)
    assert any(c.startswith("pip install .") for c in skipped)
    assert all(e.command.startswith("ropedoctor ") for e in ALL if e.run)


def test_readme_is_a_first_screen() -> None:
    """Under 20 KB; what it is, install and the three classic tasks come first, each task with real output; every
    link to a page of the repository resolves (no ../shared/)."""
    text = README.read_text()
    assert len(text.encode()) < README_LIMIT, f"README.md is {len(text.encode())} bytes"
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## Install", "## Three classic tasks"], headings
    tasks = text.split("## Three classic tasks", 1)[1].split("\n## ", 1)[0]
    for command in ("check fixtures/nomic-embed-text-v1.5", "flags fixtures/nomic-embed-text-v1.5",
                    "fix fixtures/broken/internlm2-scaling-null --factor 2 --type dynamic",
                    "flags fixtures/yi-1.5-34b --ctx 16384"):
        found = [e for e in PAGE_EXAMPLES[README] if command in e.command]
        assert found, command
        for example in found:
            assert example.run and len(_normalised(example.expected)) >= 2 and example.expected[0] != ELLIPSIS
            assert example.command in tasks
    for target in re.findall(r"\]\(([^)#]+)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which a clone does not have"
    assert "../shared" not in text and "docs/design.md" in text


# --- generated help blocks ---------------------------------------------------------------------------

HELP_START = re.compile(r"<!-- generated: (ropedoctor [a-z ]+ --help) -->")


@dataclass(frozen=True)
class HelpBlock:
    command: str
    first: int  # 0-based index of the first line inside the fence
    body: list[str]


def help_blocks(text: str) -> list[HelpBlock]:
    """The ``<!-- generated: ropedoctor CMD --help -->`` blocks of a page: the fenced text after the marker."""
    lines = text.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        marker = HELP_START.fullmatch(line.strip())
        if marker:
            assert lines[number + 1].startswith("```"), f"line {number + 2}: a fence follows the marker"
            end = lines.index(lines[number + 1][:3], number + 2)
            blocks.append(HelpBlock(marker[1], number + 2, lines[number + 2:end]))
    return blocks


def help_text(command: str) -> list[str]:
    """``ropedoctor CMD --help`` as a 100-column terminal without colour shows it."""
    argv = shlex.split(command)[1:]
    result = typer.testing.CliRunner().invoke(app, argv, env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"},
                                              prog_name="ropedoctor")
    assert result.exit_code == 0, result.output
    return _normalised(result.stdout.splitlines())


@pytest.mark.parametrize("page", [p for p in PAGES if help_blocks(p.read_text())], ids=lambda p: p.name)
def test_generated_help_is_current(page: Path) -> None:
    for block in help_blocks(page.read_text()):
        assert block.body == help_text(block.command), (
            f"{page.name}: the help of `{block.command}` is stale; run tools/doc_examples.py --write")


def test_matcher() -> None:
    assert _matches(["a", "...", "d"], ["a", "b", "c", "d"]) and _matches(["a", "...", "b"], ["a", "b"])
    assert not _matches(["a", "d"], ["a", "b", "d"]) and not _matches(["a"], ["a", "b"])
    readme = ("# T\n<!-- not run -->\n```console\n$ make x\n```\n## S\n````console\n$ ropedoctor rule X\n"
              "```json\n{}\n```\n\n````\n")
    skipped, run = examples(readme)
    assert (skipped.run, skipped.command, run.run, run.section, run.expected) == (
        False, "make x", True, "S", ["```json", "{}", "```", ""])
    [shown] = examples("## P\n```text\n$ ropedoctor smoke m --ctx 9\n12,749 tok/s\n```\n")
    assert (shown.run, shown.command, shown.expected) == (False, "ropedoctor smoke m --ctx 9", ["12,749 tok/s"])


def test_rule_families_cover_the_registry() -> None:
    from ropedoctor.rules import RULES

    rules_section = README.read_text().split("\n## Rules\n", 1)[1].split("\n## ", 1)[0]  # README keeps the families
    ranges = re.findall(r"^\|.*\| (RD\d{3})-(RD\d{3}) \|$", rules_section, re.MULTILINE)
    assert ranges and all(low in RULES and high in RULES for low, high in ranges), ranges
    for code in RULES:
        assert sum(low <= code <= high for low, high in ranges) == 1, f"{code} is in no family row of README's Rules"


# --- the runtime support table ---------------------------------------------------------------------

# (row label, fixture, --ctx, the plan option whose support the row shows)
SUPPORT_ROWS = [
    ("linear (PI)", "meta-llama-2-7b-hf", 16384, "linear"),
    ("dynamic NTK", "meta-llama-2-7b-hf", 16384, "dynamic"),
    ("YaRN", "meta-llama-2-7b-hf", 16384, "yarn"),
    ("static NTK base", "meta-llama-2-7b-hf", 16384, "ntk"),
    ("llama3 (factor raised)", "meta-llama-3.1-8b-instruct", 262144, "plan"),
    ("longrope (as trained)", "phi-3.5-mini-instruct", 131072, "plan"),
]
SUPPORT_WORDS = {"flags": "flags", "file-only": "file only", "approximate": "approximate", "as-is": "as is"}


def runtime_table() -> str:
    from ropedoctor.check import load_path
    from ropedoctor.plan_options import options
    from ropedoctor.sources import Loaded

    header: list[str] = []
    rows = []
    for label, fixture, ctx, option_name in SUPPORT_ROWS:
        [loaded] = load_path(str(ROOT / "fixtures" / fixture))
        assert isinstance(loaded, Loaded)
        [option] = [o for o in options(loaded.spec, ctx) if o.name == option_name]
        header = header or [f"{r.runtime} {r.version}" for r in option.runtimes]
        assert header == [f"{r.runtime} {r.version}" for r in option.runtimes]
        rows.append(f"| {label} | " + " | ".join(SUPPORT_WORDS[r.support] for r in option.runtimes) + " |")
    lines = ["| method | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|", *rows]
    return "\n".join(lines) + "\n"


def test_runtime_support_table_is_current() -> None:
    assert runtime_table() in (DOCS / "flags.md").read_text(), (
        "docs/flags.md's runtime support table is stale: paste the output of `python tests/test_readme.py`")


if __name__ == "__main__":
    sys.stdout.write(runtime_table())
