"""What each command does once its arguments are parsed; shared by the typer CLI and the fast path."""

from __future__ import annotations

import json
import sys

from ropedoctor.errors import InputError


def run_check(paths: list[str], ctx: int | None, output: str, strict: bool) -> int:
    """Check each PATH, print the report, return the exit code (DESIGN.md: 0, 1 or 2)."""
    from ropedoctor import report
    from ropedoctor.check import CheckResult, check_path
    from ropedoctor.rules import Target
    from ropedoctor.terminal import emit

    target = Target(ctx=ctx)
    results: list[CheckResult] = []
    unreadable = 0
    for path in paths:
        try:
            results.append(check_path(path, target))
        except InputError as error:
            print(error.line, file=sys.stderr)
            unreadable += 1
    if output == "json":
        print(json.dumps(report.check_json(results), indent=2))
    elif results:
        emit(report.check_lines(results))
    if unreadable:
        return 2
    failing = ("error", "warning") if strict else ("error",)
    return 1 if any(r.count(s) for r in results for s in failing) else 0
