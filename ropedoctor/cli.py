"""The command line: parse, call, render. Nothing here knows file formats or rules."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from ropedoctor import __version__
from ropedoctor.errors import InputError

app = typer.Typer(
    name="ropedoctor",
    help="Check, fix and serve RoPE (rotary position embedding) settings of HF and GGUF models.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


class RulesFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(error: InputError) -> NoReturn:
    print(error.line, file=sys.stderr)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        print(f"ropedoctor {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Check, fix and serve RoPE settings of HF and GGUF models."""


@app.command()
def check(
    paths: Annotated[list[str] | None, typer.Argument(help="Model folders or config.json files (default: .).")] = None,
    ctx: Annotated[int | None, typer.Option("--ctx", min=1, help="Target context length to check for.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.text,
    strict: Annotated[bool, typer.Option("--strict", help="Count warnings as errors for the exit code.")] = False,
) -> None:
    """Say what is wrong with a model's RoPE settings, and why.

    Example: ropedoctor check models/qwen2.5-7b --ctx 131072 --format json
    """
    from ropedoctor.check import CheckResult, check_path
    from ropedoctor.rules import Target

    target = Target(ctx=ctx)
    results: list[CheckResult] = []
    unreadable = 0
    for path in paths or ["."]:
        try:
            results.append(check_path(path, target))
        except InputError as error:
            print(error.line, file=sys.stderr)
            unreadable += 1
    from ropedoctor import report

    if output is OutputFormat.json:
        print(json.dumps(report.check_json(results), indent=2))
    elif results:
        report.render_check(results, _stdout())
    if unreadable:
        raise typer.Exit(2)
    failing = ("error", "warning") if strict else ("error",)
    raise typer.Exit(1 if any(r.count(s) for r in results for s in failing) else 0)


@app.command("rules")
def list_rules(
    output: Annotated[RulesFormat, typer.Option("--format", help="Output format.")] = RulesFormat.text,
) -> None:
    """List every rule: code, name, severity and what it does.

    Example: ropedoctor rules --format markdown > docs/rules.md
    """
    from ropedoctor import report
    from ropedoctor.rules import RULES

    rules = sorted(RULES.values(), key=lambda r: r.code)
    if output is RulesFormat.markdown:
        sys.stdout.write(report.rules_markdown(rules))
    elif output is RulesFormat.json:
        print(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity, "doc": r.doc} for r in rules],
                         indent=2))
    else:
        console = _stdout()
        for r in rules:
            style = report.SEVERITY_STYLE[r.severity]
            console.print(f"{r.code}  {r.name:<34} [{style}]{r.severity:<7}[/{style}] {r.summary}")


@app.command("rule")
def show_rule(code: Annotated[str, typer.Argument(help="A rule code (RD101) or name (missing-required-key).")]) -> None:
    """Print one rule's documentation.

    Example: ropedoctor rule RD207
    """
    from ropedoctor import report
    from ropedoctor.rules import RULES

    wanted = code.strip()
    found = RULES.get(wanted.upper()) or next((r for r in RULES.values() if r.name == wanted.lower()), None)
    if found is None:
        _fail(InputError(code, f"no such rule; `ropedoctor rules` lists the {len(RULES)} rules"))
    report.render_rule(found, _stdout())


def main() -> None:
    """Entry point: no traceback reaches the user, whatever happens."""
    try:
        app()
    except KeyboardInterrupt:
        print("ropedoctor: error: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # a bug: say so in one line (ROPEDOCTOR_DEBUG=1 shows the traceback)
        if os.environ.get("ROPEDOCTOR_DEBUG"):
            raise
        print(f"ropedoctor: error: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
