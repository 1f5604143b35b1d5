"""The rule registry: one small unit per rule, with a stable code, a name, a severity and a doc.

A rule is a generator function decorated with ``@rule(code, name, severity)``. Its docstring
is the rule's page, in four parts (ruff's layout): ``What it does``, ``Why it matters``,
``Example`` and ``Fix``, each introduced by a ``## `` heading. It yields ``Hit``s; the
engine turns them into Findings with the rule's code, name and severity.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from ropedoctor.spec import RopeSpec

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
DOC_SECTIONS = ("What it does", "Why it matters", "Example", "Fix")


@dataclass(frozen=True)
class Target:
    """What the user asked for beyond the file itself."""

    ctx: int | None = None
    reference: RopeSpec | None = None  # the other side when comparing (config.json vs GGUF)
    select: frozenset[str] | None = None  # the codes to run (settings.py); None: every rule


@dataclass(frozen=True)
class Hit:
    """One problem a rule found: the message quotes the values, the location is the key path."""

    message: str
    location: str
    severity: Severity | None = None  # a rule may raise or lower its own severity for one case


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    severity: Severity
    message: str
    location: str


Check = Callable[[RopeSpec, Target], Iterator[Hit]]


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    check: Check
    doc: dict[str, str]
    default: bool = True  # in the default selection (settings.py); False: only when selected

    @property
    def summary(self) -> str:
        """The first sentence of "What it does" (an abbreviation's period, "et al." or "e.g.", ends none)."""
        text = " ".join(self.doc["What it does"].split())
        end = next((m.start() for m in _SENTENCE_END.finditer(text)), len(text))
        return text[:end].rstrip(".") + "."


# A period that ends a sentence: followed by a space and a capital or a backtick, not closing an abbreviation.
_SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\bcf)\.(?=\s+[A-Z`(\"])")


RULES: dict[str, Rule] = {}


def parse_doc(text: str, code: str) -> dict[str, str]:
    """The four ``## `` sections of a rule's docstring."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in textwrap.dedent(text).strip().splitlines():  # textwrap: inspect costs 5 ms of start-up
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    missing = [name for name in DOC_SECTIONS if name not in sections]
    if missing:
        raise ValueError(f"rule {code}: doc lacks sections {missing}")
    return {name: "\n".join(sections[name]).strip() for name in DOC_SECTIONS}


def rule(code: str, name: str, severity: Severity, default: bool = True) -> Callable[[Check], Check]:
    """Register a check function as a rule; ``default=False`` keeps it out of the default selection."""

    def register(check: Check) -> Check:
        if code in RULES:
            raise ValueError(f"rule code {code} registered twice")
        RULES[code] = Rule(code, name, severity, check, parse_doc(check.__doc__ or "", code), default)
        return check

    return register


def run_rules(spec: RopeSpec, target: Target) -> list[Finding]:
    """Every rule over one spec, errors first, then by code."""
    findings = [
        Finding(r.code, r.name, hit.severity or r.severity, hit.message, hit.location)
        for r in RULES.values() if target.select is None or r.code in target.select
        for hit in r.check(spec, target)
    ]
    findings.sort(key=lambda f: (SEVERITIES.index(f.severity), f.code, f.location))
    return findings
