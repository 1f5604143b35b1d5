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
        return [_remote_or_missing(path, revision)]
    loaded: list[Loaded | InputError] = []
    for file in files:
        try:
            loaded.append(Loaded(load_file(file)))
        except InputError as error:
            loaded.append(error)
    return loaded


def missing_local(path: str) -> str | None:
    """Why PATH reads as a mistyped local path rather than a Hub repo id, or None.

    ``fixtures/yi-1.5-34`` looks like ``org/name``, but when its first folder exists here the user meant a local
    path: say so (with the closest names in the deepest folder that exists), without asking the Hub.
    """
    import difflib
    from pathlib import Path

    parts = Path(path).parts
    if len(parts) < 2 and not path.startswith(("/", ".", "~")):
        return None
    existing = Path(parts[0])
    try:
        if not existing.is_dir():
            return None
        for part in parts[1:-1]:
            if not (existing / part).is_dir():
                break
            existing = existing / part
        names = [p.name for p in existing.iterdir()][:10000]
    except OSError:
        return None
    close = difflib.get_close_matches(Path(path).name, names, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(str(existing / name) for name in close)}?" if close else ""
    if path.startswith(("/", ".", "~")):
        return f"no such local path{hint}"
    return f"no such local path ({existing}/ exists, so this is not looked up on the Hub){hint}"


def _remote_or_missing(path: str, revision: str | None) -> Loaded:
    """A Hub repo id read, unless PATH is a mistyped local path; a Hub failure says the local lookup came first."""
    why = missing_local(path)
    if why is not None:
        raise InputError(path, why)
    try:
        return load_remote(path, revision)
    except InputError as error:
        if error.why == "no such file or directory":
            raise InputError(path, "no such local path") from None
        raise InputError(error.what, f"no such local path; as a Hub repo id: {error.why}") from None


def check_loaded(loaded: list[Loaded], target: Target) -> list[CheckResult]:
    """Rules over each spec; GGUFs beside a config.json are compared with it."""
    reference = next((item.spec for item in loaded if item.spec.format == "hf-config"), None)
    results = []
    for item in loaded:
        compare_with = reference if item.spec.format == "gguf" else None
        findings = run_rules(item.spec, Target(ctx=target.ctx, reference=compare_with, select=target.select))
        results.append(CheckResult(item.spec, findings, item.bytes_fetched))
    return results

