"""Rendering a smoke run: the JSON document (README, docs/smoke.md), a table for people, the PNG plots.

JSON keys the issue fixes: ``passed``, ``backend``, ``device``, ``ctx``, ``rope``, ``checks`` (each with ``name``
and ``passed``), ``tokens_per_s``, ``peak_memory_bytes``, ``memory_estimate_bytes``; the others are additions
documented in docs/smoke.md. Non-finite numbers become null: JSON has no NaN or infinity.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ropedoctor import __version__
from ropedoctor.smoke.checks import CheckOutcome
from ropedoctor.smoke.estimate import MemoryEstimate, human_bytes
from ropedoctor.smoke.request import SmokeRequest
from ropedoctor.terminal import Line, wants_colour

PASSKEY_PNG = "passkey.png"
LOSS_PNG = "loss.png"
JSON_NAME = "smoke.json"


def smoke_json(request: SmokeRequest, backend: dict[str, Any], outcomes: list[CheckOutcome],
               estimate: MemoryEstimate | None, peak: int | None) -> dict[str, Any]:
    from ropedoctor.report import rope_json

    speed = next((o.data for o in outcomes if o.name == "speed" and o.passed is not None), None)
    doc: dict[str, Any] = {
        "ropedoctor": __version__,
        "source": str(request.path),
        "model": str(request.model_path),
        "passed": all(o.passed for o in outcomes),
        "backend": request.backend,
        "device": backend["device"],
        "dtype": backend["dtype"],
        "ctx": request.ctx,
        "original_context": request.original,
        "as_is": request.as_is,
        "rope": rope_json(request.after),
        "rope_before": rope_json(request.before),
        "plan": list(request.reasons),
        "checks": [o.as_json() for o in outcomes],
        "tokens_per_s": {"prefill": speed["prefill_tokens_per_s"], "decode": speed["decode_tokens_per_s"]}
        if speed else None,
        "peak_memory_bytes": peak,
        "memory_estimate_bytes": estimate.total if estimate else None,
        "memory_estimate": estimate.as_json() if estimate else None,
        "thresholds": asdict(request.thresholds),
        "backend_info": backend["info"],
        "plots": [],
    }
    safe: dict[str, Any] = _json_safe(doc)
    return safe


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_plots(doc: dict[str, Any], folder: Path) -> list[str]:
    """The passkey heatmap and the loss curve (colleague B's ``smoke.plots``) for the checks that ran."""
    from ropedoctor.smoke import plots

    written: list[str] = []
    checks = {c["name"]: c for c in doc["checks"]}
    title = f"{Path(doc['model']).name} · {doc['rope']['method']} · {doc['backend']}"
    if "passkey" in checks and any(cell["n"] for cell in checks["passkey"].get("cells", ())):
        cells = [cell for cell in checks["passkey"]["cells"] if cell["n"]]
        written.append(str(plots.passkey_heatmap(cells, folder / PASSKEY_PNG, f"passkey accuracy · {title}",
                                                 original=doc["original_context"])))
    if "perplexity" in checks and "buckets" in checks["perplexity"]:  # absent when --max-time stopped it
        rows = checks["perplexity"]["buckets"]
        scaled = [{"start": r["start"], "end": r["end"], "loss": r["loss"]} for r in rows if r["loss"] is not None]
        baseline = [{"start": r["start"], "end": r["end"], "loss": r["baseline_loss"]} for r in rows
                    if r["baseline_loss"] is not None] if checks["perplexity"]["baseline"] else None
        if scaled:
            written.append(str(plots.loss_curve(scaled, baseline or None, doc["original_context"],
                                                folder / LOSS_PNG, title=f"loss against position · {title}")))
    return written


# --- text ------------------------------------------------------------------------------------------
def _header(doc: dict[str, Any]) -> list[Line]:
    rope = doc["rope"]
    method = f"{rope['method']}" + (f" x{rope['factor']:g}" if rope.get("factor") else "")
    theta = f"{rope['theta']:g}" if isinstance(rope.get("theta"), (int, float)) else "-"
    lines: list[Line] = [[(doc["model"], "bold"), (f" ({doc['backend']}, {doc['device']}, {doc['dtype']})", "dim")],
                         [(f"  rope {method} · theta {theta} · original {doc['original_context']} · "
                           f"ctx {doc['ctx']}" + (" · as is" if doc["as_is"] else ""), "")]]
    lines += [[("  " + reason, "dim")] for reason in doc["plan"]]
    return lines


def _footer(doc: dict[str, Any]) -> list[Line]:
    verdict = ("all checks passed", "bold green") if doc["passed"] else \
        (f"{sum(c['passed'] is False for c in doc['checks'])} of {len(doc['checks'])} checks failed", "bold red")
    if doc.get("stopped"):
        verdict = (f"incomplete: {doc['stopped']}; {verdict[0]}", "bold yellow")
    lines: list[Line] = []
    if doc["memory_estimate_bytes"] is not None and doc["peak_memory_bytes"] is not None:
        lines.append([(f"peak memory {human_bytes(doc['peak_memory_bytes'])}, estimate "
                       f"{human_bytes(doc['memory_estimate_bytes'])}", "dim")])
    lines += [[("wrote " + path, "")] for path in doc["plots"]]
    lines.append([verdict])
    return lines


def _mark(passed: bool | None) -> tuple[str, str]:
    return ("STOP", "yellow") if passed is None else ("PASS", "green") if passed else ("FAIL", "bold red")


def smoke_lines(doc: dict[str, Any]) -> list[Line]:
    """Plain lines: one per check, PASS/FAIL, its deciding numbers."""
    lines = _header(doc)
    for check in doc["checks"]:
        mark = _mark(check["passed"])
        lines.append([("  ", ""), mark, (f" {check['name']:<10} {check['summary']}", "")])
    return lines + _footer(doc)


def print_report(doc: dict[str, Any]) -> None:
    """A rich table on a terminal, the same rows as plain lines everywhere else (terminal.py's policy)."""
    from ropedoctor.terminal import emit

    if not wants_colour():
        emit(smoke_lines(doc))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    for line in _header(doc):
        console.print(Text.assemble(*line))
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("check")
    table.add_column("result")
    table.add_column("numbers", overflow="fold")
    for check in doc["checks"]:
        table.add_row(check["name"], Text(*_mark(check["passed"])), check["summary"])
    console.print(table)
    for line in _footer(doc):
        console.print(Text.assemble(*line))
