"""Rendering results: the JSON contract (DESIGN.md) and rich text for people."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from ropedoctor import __version__
from ropedoctor.check import CheckResult
from ropedoctor.fmt import number, plural
from ropedoctor.rules.registry import SEVERITIES, Finding, Rule
from ropedoctor.spec import RopeSpec
from ropedoctor.terminal import Line

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def rope_json(spec: RopeSpec) -> dict[str, Any]:
    """The ``rope`` object of a result: the stable seven keys, then additions."""
    out: dict[str, Any] = {
        "method": spec.method, "theta": spec.theta, "factor": spec.factor,
        "original_context": spec.original_context, "context": spec.context,
        "head_dim": spec.head_dim, "rotary_dim": spec.rotary_dim,
        "positions": spec.positions, "causal": spec.causal,
    }
    if spec.nope_layers:
        out["nope_layers"] = spec.nope_layers
    if spec.layers:
        out["layers"] = {name: {"method": layer.method, "theta": layer.theta, "factor": layer.factor}
                         for name, layer in spec.layers.items()}
    return out


def finding_json(finding: Finding) -> dict[str, Any]:
    return asdict(finding)


def result_json(result: CheckResult) -> dict[str, Any]:
    spec = result.spec
    out: dict[str, Any] = {
        "source": spec.source, "format": spec.format, "model_type": spec.model_type, "rope": rope_json(spec),
        "findings": [finding_json(f) for f in result.findings],
    }
    if result.bytes_fetched is not None:
        out["bytes_fetched"] = result.bytes_fetched
    return out


def check_json(results: list[CheckResult]) -> dict[str, Any]:
    return {
        "ropedoctor": __version__,
        "results": [result_json(r) for r in results],
        "summary": {severity: sum(r.count(severity) for r in results) for severity in SEVERITIES},
    }


_number = number


def _context(spec: RopeSpec) -> str:
    """The declared length, and what the file serves when that differs (a linear x4 over 4096 declaring 4096)."""
    served = spec.served_context()
    declared = _number(spec.context)
    return f"context {declared}" if served is None or served == spec.context else \
        f"context {declared} (serves {_number(served)})"


def spec_summary(spec: RopeSpec) -> str:
    """One line a person reads first: method, base, factor, lengths, rotary dims."""
    if not spec.has_rope:
        kind = {"alibi": "ALiBi", "absolute": "learned absolute positions", "relative": "relative position biases",
                "none": "no position encoding", "unknown": "unknown family, positions not known"}.get(
            spec.positions, spec.positions)
        return f"no RoPE ({kind}) · {_context(spec)}"
    method = f"method {spec.method}" + (f" x{_number(spec.factor)}" if spec.factor is not None else "")
    parts = [
        method, f"theta {_number(spec.theta)}", f"original {_number(spec.original_context)}", _context(spec),
        f"rotary {_number(spec.rotary_dim)}/{_number(spec.head_dim)}",
    ]
    if not spec.causal:
        parts.append("non-causal")
    line = " · ".join(parts)
    for name, layer in spec.layers.items():
        line += f"\n  {name}: {layer.method}, theta {_number(layer.theta)}" + (
            f", factor {_number(layer.factor)}" if layer.factor else "")
    return line


def check_lines(results: list[CheckResult]) -> list[Line]:
    """The text report: per model a title, the RoPE summary and the findings; then the totals."""
    lines: list[Line] = []
    for result in results:
        spec = result.spec
        lines.append([(spec.source, "bold"), (f" ({spec.model_type})" if spec.model_type else "", "")])
        lines += [[("  " + text, "")] for text in spec_summary(spec).splitlines()]
        if not result.findings:
            lines.append([("  no findings", "green")])
        lines += [finding_line(f) for f in result.findings]
    totals: dict[str, int] = {s: sum(r.count(s) for r in results) for s in SEVERITIES}
    lines.append([(summary_line(totals), "")])
    return lines


def finding_line(f: Finding) -> Line:
    """One finding as people read it: severity, code, name, message, (location)."""
    return [("  ", ""), (f"{f.severity:<7}", SEVERITY_STYLE[f.severity]), (f" {f.code} {f.name}: {f.message} ", ""),
            (f"({f.location})", "dim")]


def summary_line(totals: Mapping[str, int]) -> str:
    """ "1 error, 2 warnings, 0 info" (info is a mass noun)."""
    return ", ".join(f"{n} {s}{'s' if n != 1 and s != 'info' else ''}" for s, n in totals.items())


OFF_BY_DEFAULT = "not selected by default"


def rules_lines(rules: list[Rule]) -> list[Line]:
    """One line per rule: code, name, severity, the first sentence (and whether it is off by default)."""
    return [[(f"{r.code}  {r.name:<34} ", ""), (f"{r.severity:<7}", SEVERITY_STYLE[r.severity]),
             (f" {r.summary}" + ("" if r.default else f" ({OFF_BY_DEFAULT}: --extend-select {r.code})"), "")]
            for r in rules]


def rule_lines(r: Rule) -> list[Line]:
    lines: list[Line] = [[(f"{r.code} {r.name}", "bold"), (" (", ""), (r.severity, SEVERITY_STYLE[r.severity]),
                          (")" if r.default else f", {OFF_BY_DEFAULT})", "")], []]
    for section, body in r.doc.items():
        lines.append([(section, "bold")])
        lines += [[(text, "")] for text in body.splitlines()]
        lines.append([])
    return lines


def rules_markdown(rules: list[Rule]) -> str:
    """docs/rules.md: every rule's page, generated from the registry."""
    lines = ["# ropedoctor rules", "", "Generated by `ropedoctor rules --format markdown`; do not edit.", "",
             "| code | name | severity | what it does |", "|---|---|---|---|"]
    lines += [f"| [{r.code}](#{r.code.lower()}-{r.name}) | {r.name} | {r.severity}"
              f"{'' if r.default else ' (off by default)'} | {r.summary} |" for r in rules]
    for r in rules:
        selected = "" if r.default else f" · {OFF_BY_DEFAULT} (`--extend-select {r.code}`)"
        lines += ["", f"## {r.code} {r.name}", "", f"Severity: **{r.severity}**{selected}", ""]
        for section, body in r.doc.items():
            lines += [f"### {section}", "", body, ""]
    return "\n".join(lines).rstrip() + "\n"


# --- compare ----------------------------------------------------------------------------------
COMPARED_FIELDS = ("method", "theta", "factor", "original_context", "context", "rotary_dim", "head_dim", "causal")


def comparison_rows(a: RopeSpec, b: RopeSpec) -> list[dict[str, Any]]:
    """Field by field, A against B (the `comparison` list of `compare --format json`)."""
    rows = []
    for field in COMPARED_FIELDS:
        left, right = getattr(a, field), getattr(b, field)
        same = left == right if not isinstance(left, float) or not isinstance(right, float) else \
            abs(left - right) <= 1e-6 * max(abs(left), abs(right))
        rows.append({"field": field, "a": left, "b": right, "same": same})
    return rows


def comparison_lines(rows: list[dict[str, Any]]) -> list[Line]:
    lines: list[Line] = [[("comparison (a -> b)", "bold")]]
    for row in rows:
        mark, style = ("same", "green") if row["same"] else ("differs", "yellow")
        lines.append([(f"  {row['field']:<17} {_number(row['a'])!s:>12} -> {_number(row['b'])!s:<12} ", ""),
                      (mark, style)])
    return lines


# --- scan --------------------------------------------------------------------------------------
def scan_row(result: CheckResult) -> dict[str, Any]:
    spec = result.spec
    first_error = next((f for f in result.findings if f.severity == "error"), None)
    return {
        "source": spec.source, "format": spec.format, "model_type": spec.model_type, "method": spec.method,
        "theta": spec.theta, "factor": spec.factor, "original_context": spec.original_context,
        "context": spec.context, **{s: result.count(s) for s in SEVERITIES},
        "first_error": f"{first_error.code} {first_error.message}" if first_error else None, "unreadable": None,
    }


def unreadable_row(error: Any) -> dict[str, Any]:
    return {"source": error.what, "format": None, "model_type": None, "method": None, "theta": None, "factor": None,
            "original_context": None, "context": None, "error": 0, "warning": 0, "info": 0, "first_error": None,
            "unreadable": error.why}


def scan_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary = {"models": len(rows), "unreadable": sum(1 for r in rows if r["unreadable"])}
    summary.update({s: sum(r[s] for r in rows) for s in SEVERITIES})
    return {"ropedoctor": __version__, "models": rows, "summary": summary}


def scan_lines(rows: list[dict[str, Any]], summary: dict[str, int]) -> list[Line]:
    lines: list[Line] = []
    for row in rows:
        if row["unreadable"]:
            lines.append([(f"{row['source']}  ", ""), ("unreadable", "bold red"), (f": {row['unreadable']}", "")])
            continue
        status = ("error", SEVERITY_STYLE["error"]) if row["error"] else \
            ("warning", SEVERITY_STYLE["warning"]) if row["warning"] else ("ok", "green")
        lines.append([(f"{status[0]:<7}", status[1]), (
            f" {row['source']}  {row['model_type'] or '-'} {row['method']} theta {_number(row['theta'])} "
            f"factor {_number(row['factor'])} context {_number(row['context'])}", "")])
        if row["first_error"]:
            lines.append([(f"        {row['first_error']}", "dim")])
    lines.append([(f"{plural(summary['models'], 'model')}, {summary['unreadable']} unreadable, "
                   + summary_line({s: summary[s] for s in SEVERITIES}), "")])
    return lines
