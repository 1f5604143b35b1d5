"""``check``: sources -> RopeSpec -> rules -> findings, for each PATH.

A folder holding both a config.json and GGUF files gives one result per file, and each GGUF
is also compared with the config.json it was converted from (RD5xx).
"""

from __future__ import annotations

from dataclasses import dataclass

from ropedoctor.errors import InputError
from ropedoctor.rules import Finding, Target, run_rules
from ropedoctor.sources import Loaded, load_file, load_remote, resolve
from ropedoctor.spec import RopeSpec


@dataclass(frozen=True)
class CheckResult:
    spec: RopeSpec
    findings: list[Finding]
    bytes_fetched: int | None = None

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)


def load_path(path: str, revision: str | None = None) -> list[Loaded | InputError]:
    """Every source a PATH names, read; a file that cannot be read gives its InputError in place."""
    files = resolve(path)
    if not files:
        return [load_remote(path, revision)]
    loaded: list[Loaded | InputError] = []
    for file in files:
        try:
            loaded.append(Loaded(load_file(file)))
        except InputError as error:
            loaded.append(error)
    return loaded


def check_loaded(loaded: list[Loaded], target: Target) -> list[CheckResult]:
    """Rules over each spec; GGUFs beside a config.json are compared with it."""
    reference = next((item.spec for item in loaded if item.spec.format == "hf-config"), None)
    results = []
    for item in loaded:
        compare_with = reference if item.spec.format == "gguf" else None
        findings = run_rules(item.spec, Target(ctx=target.ctx, reference=compare_with))
        results.append(CheckResult(item.spec, findings, item.bytes_fetched))
    return results

