"""`check` findings for CI systems: SARIF 2.1.0 (code scanning) and GitHub workflow commands.

Both put a finding on the line of its key in config.json, found by the config editor's own
scanner (``writers.hf_config.key_offset``), so that one piece of code knows where keys are. A
GGUF finding names its file and, as a logical location, the GGUF key; it has no line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ropedoctor import __version__
from ropedoctor.check import CheckResult
from ropedoctor.rules.registry import DOC_SECTIONS, Finding, Rule, Severity

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://pypi.org/project/ropedoctor/"
# The base every relative artifact URI is resolved against: the directory ropedoctor ran in.
SRCROOT = "SRCROOT"

SARIF_LEVEL: dict[Severity, str] = {"error": "error", "warning": "warning", "info": "note"}
GITHUB_COMMAND: dict[Severity, str] = {"error": "error", "warning": "warning", "info": "notice"}

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Region:
    """1-based line and column (in Unicode code points) of a key in its file."""

    line: int
    column: int


@dataclass(frozen=True)
class Place:
    """Where a finding goes: the file as a path relative to the working directory when it is below
    it (``relative``), and the key's region when the file is a local config.json holding the key."""

    path: str
    relative: bool
    region: Region | None


def region_at(text: str, offset: int) -> Region:
    """The line and column of ``offset`` in ``text``; \\r\\n, \\r and \\n end lines, as in JSON."""
    breaks = list(_LINE_BREAK.finditer(text, 0, offset))
    line_start = breaks[-1].end() if breaks else 0
    return Region(len(breaks) + 1, offset - line_start + 1)


def key_region(text: str, location: str) -> Region | None:
    """The region of the key ``location`` names (or of its deepest present ancestor)."""
    from ropedoctor.writers.hf_config import key_offset

    offset = key_offset(text, location)
    return None if offset is None else region_at(text, offset)


class _Texts:
    """config.json texts read once per file, for every finding in it."""

    def __init__(self) -> None:
        self._texts: dict[str, str | None] = {}

    def get(self, source: str) -> str | None:
        if source not in self._texts:
            try:
                self._texts[source] = Path(source).read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError):  # a hub id, or a file gone since it was checked
                self._texts[source] = None
        return self._texts[source]


def _display_path(source: str, cwd: Path) -> tuple[str, bool]:
    """``source`` relative to ``cwd``, with forward slashes, when it is a local file below it."""
    path = Path(source)
    if not path.is_absolute() and not (cwd / path).exists():
        return source, False  # not a local file: a hub id
    absolute = Path(os.path.abspath(cwd / path))
    for base, target in ((Path(os.path.abspath(cwd)), absolute), (cwd.resolve(), absolute.resolve())):
        try:
            return target.relative_to(base).as_posix(), True
        except ValueError:
            continue
    return str(absolute), False


def place(result: CheckResult, finding: Finding, texts: _Texts, cwd: Path) -> Place:
    path, relative = _display_path(result.spec.source, cwd)
    region = None
    if result.spec.format == "hf-config" and finding.location:
        text = texts.get(result.spec.source)
        region = key_region(text, finding.location) if text is not None else None
    return Place(path, relative, region)


# --- SARIF -------------------------------------------------------------------------------------


def rule_markdown(rule: Rule) -> str:
    """The rule's page in markdown: its four sections under ``##`` headings."""
    return "\n\n".join(f"## {section}\n\n{rule.doc[section]}" for section in DOC_SECTIONS)


def sarif_rule(rule: Rule) -> dict[str, Any]:
    what = " ".join(rule.doc["What it does"].split())
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": what},
        "help": {"text": "\n\n".join(f"{section}\n\n{rule.doc[section]}" for section in DOC_SECTIONS),
                 "markdown": rule_markdown(rule)},
        "defaultConfiguration": {"level": SARIF_LEVEL[rule.severity]},
        "properties": {"severity": rule.severity},
    }


def _artifact_uri(spot: Place) -> dict[str, str]:
    if spot.relative:
        return {"uri": quote(spot.path), "uriBaseId": SRCROOT}
    path = Path(spot.path)
    return {"uri": path.as_uri()} if path.is_absolute() else {"uri": quote(spot.path)}


def sarif_result(result: CheckResult, finding: Finding, rule_index: dict[str, int], texts: _Texts,
                 cwd: Path) -> dict[str, Any]:
    spot = place(result, finding, texts, cwd)
    physical: dict[str, Any] = {"artifactLocation": _artifact_uri(spot)}
    if spot.region is not None:
        physical["region"] = {"startLine": spot.region.line, "startColumn": spot.region.column}
    location: dict[str, Any] = {"physicalLocation": physical}
    if finding.location:
        location["logicalLocations"] = [{"fullyQualifiedName": finding.location, "kind": "member"}]
    return {
        "ruleId": finding.code,
        "ruleIndex": rule_index[finding.code],
        "level": SARIF_LEVEL[finding.severity],
        "message": {"text": f"{finding.message} ({finding.location})" if finding.location else finding.message},
        "locations": [location],
    }


def sarif_document(results: list[CheckResult], unreadable: Iterable[str] = (), cwd: Path | None = None,
                   ) -> dict[str, Any]:
    """One SARIF 2.1.0 log: a run whose driver lists every rule, and a result per finding.

    ``unreadable`` holds the one-line errors of inputs that could not be read; they become tool
    execution notifications, and the invocation is marked unsuccessful (exit code 2).
    """
    from ropedoctor.rules import RULES

    cwd = cwd or Path.cwd()
    rules = sorted(RULES.values(), key=lambda r: r.code)
    rule_index = {r.code: index for index, r in enumerate(rules)}
    texts = _Texts()
    errors = list(unreadable)
    invocation: dict[str, Any] = {"executionSuccessful": not errors}
    if errors:
        invocation["toolExecutionNotifications"] = [{"level": "error", "message": {"text": line}} for line in errors]
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "ropedoctor", "version": __version__, "semanticVersion": __version__,
                "informationUri": INFORMATION_URI, "rules": [sarif_rule(r) for r in rules],
            }},
            "invocations": [invocation],
            "originalUriBaseIds": {SRCROOT: {"uri": cwd.resolve().as_uri() + "/"}},
            "columnKind": "unicodeCodePoints",
            "results": [sarif_result(r, f, rule_index, texts, cwd) for r in results for f in r.findings],
        }],
    }


# --- GitHub workflow commands ------------------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's toolkit does (``escapeData``), and every other control
    character shown as ``\\xNN``: a folder name, key or GGUF architecture with ESC, BEL or an OSC sequence
    reaches the CI log inert."""
    from ropedoctor.errors import inert

    return inert(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def escape_property(text: str) -> str:
    """A workflow command property value (``escapeProperty``): also ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_line(result: CheckResult, finding: Finding, texts: _Texts, cwd: Path) -> str:
    """``::error file=...,line=...,col=...,title=RD201 legacy-type-conflict::message (location)``."""
    spot = place(result, finding, texts, cwd)
    properties = [("file", spot.path)]
    if spot.region is not None:
        properties += [("line", str(spot.region.line)), ("col", str(spot.region.column))]
    properties.append(("title", f"{finding.code} {finding.name}"))
    joined = ",".join(f"{name}={escape_property(value)}" for name, value in properties)
    message = f"{finding.message} ({finding.location})" if finding.location else finding.message
    return f"::{GITHUB_COMMAND[finding.severity]} {joined}::{escape_data(message)}"


def github_lines(results: list[CheckResult], cwd: Path | None = None) -> list[str]:
    """One annotation per finding: errors as ::error, warnings as ::warning, info as ::notice."""
    cwd = cwd or Path(os.getcwd())
    texts = _Texts()
    return [github_line(r, f, texts, cwd) for r in results for f in r.findings]
