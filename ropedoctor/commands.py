"""What each command does once its arguments are parsed; shared by the typer CLI and the fast path."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from ropedoctor.errors import InputError

if TYPE_CHECKING:
    from ropedoctor.fix_options import FixOptions


def error_lines(results: list[Any]) -> list[Any]:
    """What ``--quiet`` prints of a report: each model with an error finding, its title and those
    findings, in the text layout; no summaries, warnings, info or healthy models."""
    from ropedoctor import report

    lines = []
    for result in results:
        errors = [f for f in result.findings if f.severity == "error"]
        if errors:
            spec = result.spec
            lines.append([(spec.source, "bold"), (f" ({spec.model_type})" if spec.model_type else "", "")])
            lines += [report.finding_line(f) for f in errors]
    return lines


def run_check(paths: list[str], ctx: int | None, output: str, strict: bool, revision: str | None = None,
              quiet: bool = False) -> int:
    """Check each PATH, print the report, return the exit code (DESIGN.md: 0, 1 or 2).

    ``output``: text, json, sarif or github; ``quiet`` keeps only error findings in text output.
    """
    from ropedoctor import report
    from ropedoctor.check import CheckResult, check_loaded, load_path
    from ropedoctor.rules import Target
    from ropedoctor.sources import Loaded
    from ropedoctor.terminal import emit

    target = Target(ctx=ctx)
    results: list[CheckResult] = []
    unreadable: list[str] = []
    for path in paths:
        try:
            items = load_path(path, revision)
        except InputError as error:
            items = [error]
        for item in items:
            if isinstance(item, InputError):
                print(item.line, file=sys.stderr)
                unreadable.append(item.line)
        results += check_loaded([item for item in items if isinstance(item, Loaded)], target)
    if output == "json":
        print(json.dumps(report.check_json(results), indent=2))
    elif output == "sarif":
        from ropedoctor.ci_formats import sarif_document

        print(json.dumps(sarif_document(results, unreadable), indent=2))
    elif output == "github":
        from ropedoctor.ci_formats import github_lines

        for line in github_lines(results):
            if not quiet or line.startswith("::error "):
                print(line)
    elif quiet:
        emit(error_lines(results))
    elif results:
        emit(report.check_lines(results))
    if unreadable:
        return 2
    failing = ("error", "warning") if strict else ("error",)
    return 1 if any(r.count(s) for r in results for s in failing) else 0


def _single(path: str, revision: str | None, prefer: str) -> Any:
    """The one source a compare argument names (a folder's config.json, or its GGUF for `prefer="gguf"`)."""
    from ropedoctor.check import load_path
    from ropedoctor.sources import Loaded

    items = load_path(path, revision)
    loaded = [item for item in items if isinstance(item, Loaded)]
    for item in items:
        if isinstance(item, InputError):
            raise item
    preferred = [item for item in loaded if item.spec.format == prefer] or loaded
    if len(preferred) > 1:
        names = ", ".join(item.spec.source for item in preferred)
        raise InputError(path, f"holds several models ({names}); name one file")
    return preferred[0]


def run_compare(a: str, b: str, ctx: int | None, output: str, revision: str | None = None,
                quiet: bool = False) -> int:
    """Check A and B, and B against A (what a conversion changed or lost)."""
    from ropedoctor import report
    from ropedoctor.check import CheckResult
    from ropedoctor.rules import Target, run_rules
    from ropedoctor.terminal import emit

    try:
        first = _single(a, revision, "hf-config")
        second = _single(b, revision, "gguf")
    except InputError as error:
        print(error.line, file=sys.stderr)
        return 2
    results = [
        CheckResult(first.spec, run_rules(first.spec, Target(ctx=ctx)), first.bytes_fetched),
        CheckResult(second.spec, run_rules(second.spec, Target(ctx=ctx, reference=first.spec)), second.bytes_fetched),
    ]
    rows = report.comparison_rows(first.spec, second.spec)
    if output == "json":
        print(json.dumps({**report.check_json(results), "comparison": rows}, indent=2))
    elif quiet:
        emit(error_lines(results))
    else:
        emit(report.check_lines(results) + report.comparison_lines(rows))
    return 1 if any(r.count("error") for r in results) else 0


def run_scan(root: str | None, hf_cache: bool, output: str, quiet: bool = False) -> int:
    """One summary row per model under a folder or in the local Hugging Face cache."""
    from ropedoctor import report
    from ropedoctor.check import check_loaded, load_path
    from ropedoctor.rules import Target
    from ropedoctor.scan import model_folders
    from ropedoctor.sources import Loaded
    from ropedoctor.terminal import emit, progress

    try:
        folders = model_folders(root or ".", hf_cache)
    except InputError as error:
        print(error.line, file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    for folder in progress(folders, "scanning"):
        try:
            items = load_path(str(folder))
        except InputError as error:
            items = [error]
        for item in items:
            if isinstance(item, InputError):
                rows.append(report.unreadable_row(item))
        for result in check_loaded([item for item in items if isinstance(item, Loaded)], Target()):
            rows.append(report.scan_row(result))
    doc = report.scan_json(rows)
    if output == "json":
        print(json.dumps(doc, indent=2))
    elif quiet:  # the rows of models with an error or that cannot be read; scan_lines' last line is the summary
        emit(report.scan_lines([r for r in rows if r["error"] or r["unreadable"]], doc["summary"])[:-1])
    else:
        emit(report.scan_lines(rows, doc["summary"]))
    return 1 if doc["summary"]["error"] or doc["summary"]["unreadable"] else 0


def _fix_error_lines(doc: dict[str, Any]) -> list[Any]:
    """--quiet for fix: the file and its error findings, when it has any."""
    from ropedoctor import report
    from ropedoctor.rules import Finding

    errors = [Finding(**f) for f in doc["findings"] if f["severity"] == "error"]
    return [[(doc["source"], "bold")], *[report.finding_line(f) for f in errors]] if errors else []


def run_fix(path: str, options: FixOptions, quiet: bool = False) -> int:
    """Plan the change, write it (or show it), and re-check the result."""
    from ropedoctor.fix import FixError, fix_path
    from ropedoctor.terminal import emit

    try:
        outcome = fix_path(path, options)
    except InputError as error:
        print(error.line, file=sys.stderr)
        return 2
    except FixError as error:
        if options.output == "json":
            print(json.dumps(error.report, indent=2))
        elif quiet:
            emit([*_fix_error_lines(error.report), [("nothing written: the result would have new errors", "")]])
        else:
            emit(error.lines)
        return 1
    if options.output == "json":
        print(json.dumps(outcome.report, indent=2))
    elif quiet:
        emit(_fix_error_lines(outcome.report))
    else:
        emit(outcome.lines)
    # DESIGN.md's exit codes: the written file may still carry errors it had before (a v5-only layout, say)
    return 1 if any(f["severity"] == "error" for f in outcome.report["findings"]) else 0


def run_flags(path: str, ctx: int, runtimes: list[str], version: str | None, parallel: int, embedding: bool,
              method: str | None, factor: float | None, output: str, quiet: bool = False) -> int:
    """The flags each runtime needs to serve ``ctx`` tokens per sequence with the planned RoPE."""
    from ropedoctor.plan import Target as PlanTarget
    from ropedoctor.plan import plan
    from ropedoctor.runtimes import RUNTIMES, FlagRequest
    from ropedoctor.runtimes.base import parse_version

    try:
        spec = _single(path, None, "hf-config").spec
        if spec.has_rope:
            after = plan(spec, PlanTarget(ctx=ctx, method=method, factor=factor)).after  # type: ignore[arg-type]
        elif spec.positions == "absolute" and spec.position_table and ctx > spec.position_table:
            print(f"ropedoctor: error: {spec.source}: --ctx {ctx} is beyond the {spec.position_table} learned "
                  f"positions of this {spec.model_type} model; no RoPE flag can extend it", file=sys.stderr)
            return 1
        else:
            after = spec
    except InputError as error:
        print(error.line, file=sys.stderr)
        return 2
    names = list(RUNTIMES) if "all" in runtimes or not runtimes else runtimes
    unknown = [name for name in names if name not in RUNTIMES]
    if unknown:
        print(f"ropedoctor: error: --runtime: unknown {', '.join(unknown)}; known: {', '.join(RUNTIMES)}, all",
              file=sys.stderr)
        return 2
    request = FlagRequest(spec, after, ctx, parallel, embedding, parse_version(version))
    emissions = [e for name in names for e in RUNTIMES[name](request)]
    if output == "json":
        print(json.dumps({"runtimes": [e.as_json() for e in emissions]}, indent=2))
    elif output == "shell":
        for e in emissions:
            print(f"# {e.runtime} {e.version}")
            print(e.command if e.program else "\n".join(f"# {line}" for line in (e.snippet or "").splitlines()))
    elif not quiet:  # flags have no error findings: --quiet leaves text output empty
        from ropedoctor.terminal import emit

        lines = []
        for e in emissions:
            lines.append([(f"{e.runtime} ({e.program or 'python'}, {e.version})", "bold")])
            lines.append([("  " + (e.command or ""), "green")] if e.program else [])
            lines += [[("  " + line, "green")] for line in (e.snippet or "").splitlines() if e.snippet]
            if e.max_relative_deviation is not None:
                lines.append([(f"  max relative deviation from transformers: {e.max_relative_deviation:.2e}", "dim")])
            lines += [[("  - " + note, "")] for note in e.notes]
        emit([line for line in lines if line])
    return 0
