"""``check``: sources -> RopeSpec -> rules -> findings, for each PATH."""

from __future__ import annotations

from dataclasses import dataclass

from ropedoctor.rules import Finding, Target, run_rules
from ropedoctor.sources import resolve_config
from ropedoctor.sources.hf_config import read_hf_config
from ropedoctor.spec import RopeSpec


@dataclass(frozen=True)
class CheckResult:
    spec: RopeSpec
    findings: list[Finding]

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)


def check_path(path: str, target: Target) -> CheckResult:
    """Check one PATH (a model folder or a config.json); InputError when it cannot be read."""
    spec = read_hf_config(resolve_config(path))
    return CheckResult(spec, run_rules(spec, target))
