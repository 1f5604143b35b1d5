"""What each command does once its arguments are parsed; shared by the typer CLI and the fast path."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from ropedoctor.errors import InputError

if TYPE_CHECKING:
    from ropedoctor.fix_options import FixOptions
    from ropedoctor.settings import Selectors


def unusable(what: str, exc: Exception) -> InputError:
    """The safety net of the commands over several inputs (check, scan): an input that ends in an exception no
    source or rule turned into an InputError is reported as that input's one line (exit 2), and the other
    inputs are still reported. ``ROPEDOCTOR_DEBUG=1`` raises it instead, with its traceback."""
    import os

    if os.environ.get("ROPEDOCTOR_DEBUG"):
        raise exc
    detail = str(exc).splitlines()[0][:160] if str(exc).strip() else ""
    return InputError(what, f"holds a value ropedoctor cannot use ({type(exc).__name__}{': ' if detail else ''}"
                            f"{detail}); please report this file")


def error_lines(results: list[Any], strict: bool = False) -> list[Any]:
    """What ``--quiet`` prints of a report: each model with a finding that decides the exit code (an error, or
    under ``--strict`` a warning too), its title and those findings, in the text layout; no summaries, info or
    healthy models."""
    from ropedoctor import report

    deciding = ("error", "warning") if strict else ("error",)
    lines = []
    for result in results:
        errors = [f for f in result.findings if f.severity in deciding]
        if errors:
            spec = result.spec
            lines.append([(spec.source, "bold"), (f" ({spec.model_type})" if spec.model_type else "", "")])
            lines += [report.finding_line(f) for f in errors]
    return lines


def selection(paths: list[str], selectors: Selectors | None, isolated: bool) -> frozenset[str]:
    """The rules to run (settings.py: the config file found from ``paths``, then the command line)."""
    from ropedoctor.settings import load_settings

    return load_settings(paths, selectors, isolated).selected


# Past this, no published model scales (Qwen2.5-1M and LongRoPE reach x32-x64 with training); a larger factor is
# most likely a typo in --ctx or --factor.
SANE_SCALING = 64.0


def warn_past_sane_scaling(spec: Any, ctx: int | None, factor: float | None) -> None:
    """One ``ropedoctor: warning:`` line on stderr when the asked scaling is past x64 of the trained length."""
    from ropedoctor.fmt import number

    original = spec.original_context or spec.context
    scale = factor if factor is not None else (ctx / original if ctx and original else None)
    if scale is not None and scale > SANE_SCALING:
        asked = f"--factor {number(factor)}" if factor is not None else f"--ctx {ctx}"
        from ropedoctor.errors import inert

        print(inert(f"ropedoctor: warning: {spec.source}: {asked} is x{number(round(scale, 1))} the trained "
                    f"{original} tokens, past the x{number(SANE_SCALING)} any published model uses: expect the model "
                    "to fail at that length"), file=sys.stderr)  # inert: a newline in a path forges no line


def run_check(paths: list[str], ctx: int | None, output: str, strict: bool, revision: str | None = None,
              quiet: bool = False, selectors: Selectors | None = None, isolated: bool = False) -> int:
    """Check each PATH, print the report, return the exit code (DESIGN.md: 0, 1 or 2).

    ``output``: text, json, sarif or github; ``quiet`` keeps only the findings that decide the exit code.
    """
    from ropedoctor import report
    from ropedoctor.check import CheckResult, check_loaded, load_path
    from ropedoctor.rules import Target
    from ropedoctor.sources import Loaded
    from ropedoctor.terminal import emit

    try:
        target = Target(ctx=ctx, select=selection(paths, selectors, isolated))
    except InputError as error:
        print(error.line, file=sys.stderr)
        return 2
    results: list[CheckResult] = []
    unreadable: list[str] = []
    for path in paths:
        try:
            items = load_path(path, revision)
        except InputError as error:
            items = [error]
        except Exception as exc:  # the safety net: one input never aborts the others
            items = [unusable(path, exc)]
        try:
            checked = check_loaded([item for item in items if isinstance(item, Loaded)], target)
            for result in checked:
                if ctx is not None and result.spec.has_rope:
                    warn_past_sane_scaling(result.spec, ctx, None)
            results += checked
        except Exception as exc:
            items = [unusable(path, exc)]
        for item in items:
            if isinstance(item, InputError):
                print(item.line, file=sys.stderr)
                unreadable.append(item.line)
    if output == "json":
        print(json.dumps(report.check_json(results), indent=2))
    elif output == "sarif":
        from ropedoctor.ci_formats import sarif_document

        print(json.dumps(sarif_document(results, unreadable), indent=2))
    elif output == "github":
        from ropedoctor.ci_formats import github_lines

        for line in github_lines(results):
            if not quiet or line.startswith("::error ") or (strict and line.startswith("::warning ")):
                print(line)
    elif quiet:
        emit(error_lines(results, strict))
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
                quiet: bool = False, selectors: Selectors | None = None, isolated: bool = False) -> int:
    """Check A and B, and B against A (what a conversion changed or lost)."""
    from ropedoctor import report
    from ropedoctor.check import CheckResult
    from ropedoctor.rules import Target, run_rules
    from ropedoctor.terminal import emit

    try:
        selected = selection([a, b], selectors, isolated)
        first = _single(a, revision, "hf-config")
        second = _single(b, revision, "gguf")
    except InputError as error:
        print(error.line, file=sys.stderr)
        return 2
    results = [
        CheckResult(first.spec, run_rules(first.spec, Target(ctx=ctx, select=selected)), first.bytes_fetched),
        CheckResult(second.spec, run_rules(second.spec, Target(ctx=ctx, reference=first.spec, select=selected)),
                    second.bytes_fetched),
    ]
    rows = report.comparison_rows(first.spec, second.spec)
    if output == "json":
        print(json.dumps({**report.check_json(results), "comparison": rows}, indent=2))
    elif quiet:
        emit(error_lines(results))
    else:
        emit(report.check_lines(results) + report.comparison_lines(rows))
    return 1 if any(r.count("error") for r in results) else 0


def run_scan(root: str | None, hf_cache: bool, output: str, quiet: bool = False, selectors: Selectors | None = None,
             isolated: bool = False) -> int:
    """One summary row per model under a folder or in the local Hugging Face cache."""
    from ropedoctor import report
    from ropedoctor.check import check_loaded, load_path
    from ropedoctor.rules import Target
    from ropedoctor.scan import model_folders
    from ropedoctor.sources import Loaded
    from ropedoctor.terminal import emit, progress

    try:
        target = Target(select=selection([root or "."], selectors, isolated))
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
        except Exception as exc:  # the safety net: one model never aborts the scan
            items = [unusable(str(folder), exc)]
        try:
            checked = check_loaded([item for item in items if isinstance(item, Loaded)], target)
        except Exception as exc:
            items, checked = [unusable(str(folder), exc)], []
        for item in items:
            if isinstance(item, InputError):
                rows.append(report.unreadable_row(item))
        for result in checked:
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


def run_restore(path: str, output: str, quiet: bool = False) -> int:
    """``fix --restore``: put the backup of the last fix back."""
    from ropedoctor.fix import restore

    try:
        restored, backup = restore(path)
    except InputError as error:
        print(error.line, file=sys.stderr)
        return 2
    if output == "json":
        print(json.dumps({"restored": str(restored), "backup": str(backup)}, indent=2))
    elif not quiet:
        print(f"restored {restored} from {backup}")
    return 0


def _model_argument(path: str) -> str:
    """What a runtime command loads for PATH: the folder of a config.json, the path or repo id as given."""
    from pathlib import Path

    local = Path(path)
    if local.name == "config.json" and local.is_file():
        return str(local.parent)
    return path


def run_flags(path: str, ctx: int, runtimes: list[str], version: str | None, parallel: int, embedding: bool,
              method: str | None, factor: float | None, output: str, quiet: bool = False) -> int:
    """The flags each runtime needs to serve ``ctx`` tokens per sequence with the planned RoPE."""
    from ropedoctor.plan import Target as PlanTarget
    from ropedoctor.plan import plan
    from ropedoctor.runtimes import RUNTIMES, FlagRequest, default_runtimes
    from ropedoctor.runtimes.base import parse_version
    from ropedoctor.runtimes.names import named_programs, runtime_names

    try:
        names = runtime_names(runtimes, RUNTIMES)
        spec = _single(path, None, "hf-config").spec
        if spec.has_rope:
            after = plan(spec, PlanTarget(ctx=ctx, method=method, factor=factor)).after  # type: ignore[arg-type]
            warn_past_sane_scaling(spec, ctx, factor)
        elif spec.positions == "absolute" and spec.position_table and ctx > spec.position_table:
            print(InputError(spec.source, f"--ctx {ctx} is beyond the {spec.position_table} learned positions of "
                                          f"this {spec.model_type} model; no RoPE flag can extend it").line,
                  file=sys.stderr)  # .line escapes control characters: a newline in a path forges no line
            return 1
        else:
            after = spec
    except InputError as error:
        print(error.line, file=sys.stderr)
        return 2
    request = FlagRequest(spec, after, ctx, parallel, embedding, parse_version(version), model=_model_argument(path))
    if not runtimes:  # no --runtime: the runtimes that load this input as it is (--runtime all for every one)
        names = [name for name in names if name in default_runtimes(request)]
    if factor is not None and after.original_context and factor * after.original_context < ctx:
        print(f"ropedoctor: warning: --factor {factor:g} x the trained {after.original_context} tokens reaches "
              f"{int(factor * after.original_context)}, short of --ctx {ctx}: positions past it are extrapolated",
              file=sys.stderr)
    programs = named_programs(runtimes)
    from ropedoctor.rope_math import NoFrequencies

    try:
        emissions = [e for name in names for e in RUNTIMES[name](request)
                     if not programs or e.runtime != "llama.cpp" or e.program in programs]
    except NoFrequencies:  # a base that is not a number: one line for this file
        print(InputError(spec.source, "no usable RoPE base or rotary dimension to compute frequencies from").line,
              file=sys.stderr)
        return 2
    if output == "json":
        print(json.dumps({"runtimes": [e.as_json() for e in emissions]}, indent=2))
    elif output == "shell":
        for e in emissions:
            print(f"# {e.runtime} {e.version}")
            if e.cannot_serve:
                print(f"# cannot serve this at {ctx} tokens: {e.cannot_serve}")
                continue
            print(e.command if e.program else "\n".join(f"# {line}" for line in (e.snippet or "").splitlines()))
    elif not quiet:  # flags have no error findings: --quiet leaves text output empty
        from ropedoctor.fmt import number
        from ropedoctor.terminal import emit

        lines = []
        for e in emissions:
            lines.append([(f"{e.runtime} ({e.program or 'python'}, {e.version})", "bold")])
            if e.cannot_serve:
                lines.append([(f"  cannot serve this at {ctx} tokens: {e.cannot_serve}", "red")])
                lines += [[("  - " + note, "")] for note in e.notes]
                continue
            lines.append([("  " + (e.command or ""), "green shell")] if e.program else [])
            lines += [[("  " + line, "green nowrap")] for line in (e.snippet or "").splitlines() if e.snippet]
            if e.max_relative_deviation is not None:
                verdict = e.verdict or ("exact" if e.max_relative_deviation < 1e-6 else
                                        f"approximate: frequencies differ by up to {e.max_relative_deviation:.0%}")
                lines.append([(f"  max relative deviation from transformers: {number(e.max_relative_deviation)} "
                               f"({verdict})", "dim")])
            elif e.verdict:
                lines.append([(f"  against transformers: {e.verdict}", "dim")])
            lines += [[("  - " + note, "")] for note in e.notes]
        emit([line for line in lines if line])
    return 0
