"""`fix`: plan -> key edits -> a written file (or a diff), and a re-check of the result.

fix never introduces an error: the result is checked with the same rules, and if it has an
error finding the original did not have, nothing is written (exit 1).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropedoctor import report as render
from ropedoctor.errors import InputError
from ropedoctor.fix_options import FixOptions
from ropedoctor.plan import Plan, plan
from ropedoctor.plan import Target as PlanTarget
from ropedoctor.rules import Finding, Target, run_rules
from ropedoctor.sources import GGUF_SUFFIX, resolve
from ropedoctor.spec import RopeSpec
from ropedoctor.terminal import Line


@dataclass
class FixOutcome:
    report: dict[str, Any]
    lines: list[Line]


class FixError(Exception):
    """The planned result would have new errors; nothing was written."""

    def __init__(self, report: dict[str, Any], lines: list[Line]) -> None:
        super().__init__("fix would introduce errors")
        self.report = report
        self.lines = lines


def fix_path(path: str, options: FixOptions) -> FixOutcome:
    files = resolve(path)
    if not files:
        raise InputError(path, "no such file or directory (fix writes local files only)")
    configs = [f for f in files if not f.name.endswith(GGUF_SUFFIX)]
    target = configs[0] if configs else files[0]
    if not configs and len(files) > 1:
        raise InputError(path, f"holds several GGUF files ({', '.join(f.name for f in files)}); name one")
    fix = _fix_gguf if target.name.endswith(GGUF_SUFFIX) else _fix_config
    if options.mode == "dry-run":
        return fix(target, options)
    from ropedoctor.writers.lock import writing

    # one writer per file, held from the read to the rename: a second run waits, or fails in one line
    written = Path(options.out) if options.mode == "out" and options.out else target
    with writing(Path(os.path.realpath(written)) if options.follow_symlinks else written):
        return fix(target, options)


# The target itself: a result that still cannot serve --ctx is a failed fix, even if the input could not either.
_TARGET_CODES = ("RD301", "RD302")


def _new_errors(before: list[Finding], after: list[Finding]) -> list[Finding]:
    old = {f.code for f in before if f.severity == "error"}
    return [f for f in after if f.severity == "error" and (f.code not in old or f.code in _TARGET_CODES)]


def _report(spec: RopeSpec, the_plan: Plan, changes: list[dict[str, Any]], findings: list[Finding],
            written: str | None, backup: str | None) -> dict[str, Any]:
    return {"source": the_plan.before.source, "written": written, "backup": backup, "changes": changes,
            "rope": render.rope_json(spec), "reasons": the_plan.reasons,
            "findings": [render.finding_json(f) for f in findings]}


def _lines(doc: dict[str, Any], findings: list[Finding], extra: list[Line]) -> list[Line]:
    lines: list[Line] = [[(doc["source"], "bold")]]
    lines += [[("  " + reason, "")] for reason in doc["reasons"]]
    for change in doc["changes"]:
        lines.append([(f"  {change['location']}: ", ""), (json.dumps(change["old"]), "red"), (" -> ", ""),
                      (json.dumps(change["new"]), "green")])
    if not doc["changes"]:
        lines.append([("  no change needed", "green")])
    lines += [render.finding_line(f) for f in findings]
    lines += extra
    if doc["written"]:
        lines.append([("wrote ", ""), (doc["written"], "bold")] + ([(f" (backup {doc['backup']})", "dim")]
                                                                   if doc["backup"] else []))
    return lines


# --- config.json ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedConfig:
    """A config.json and the text fix would write for a target, computed without writing (smoke uses it too)."""

    data: dict[str, Any]
    text: str
    plan: Plan
    edits: list[Any]  # writers.hf_config.Change
    new_text: str


def plan_config(path: Path, target: PlanTarget, style: str = "keep") -> PlannedConfig:
    from ropedoctor.sources.hf_config import spec_from_config
    from ropedoctor.sources.json_file import read_json_object
    from ropedoctor.writers.hf_config import edit_config_text
    from ropedoctor.writers.hf_layout import config_changes

    data = read_json_object(path)
    text = path.read_bytes().decode("utf-8")  # a byte-order mark stays; the editor keeps it
    the_plan = plan(spec_from_config(data, str(path)), target)
    edits = config_changes(the_plan, style)  # type: ignore[arg-type]
    return PlannedConfig(data, text, the_plan, edits, edit_config_text(text, edits))


def _fix_config(path: Path, options: FixOptions) -> FixOutcome:
    from ropedoctor.sources.hf_config import spec_from_config
    from ropedoctor.writers.atomic import write_atomic
    from ropedoctor.writers.hf_config import DELETE, unified_diff
    from ropedoctor.writers.hf_layout import file_style

    planned = plan_config(path, options.target, options.style)
    data, text, the_plan, edits, new_text = planned.data, planned.text, planned.plan, planned.edits, planned.new_text
    spec = the_plan.before
    new_spec = spec_from_config(json.loads(new_text.removeprefix("\ufeff")), str(path))
    rule_target = Target(ctx=options.target.ctx)
    after = run_rules(new_spec, rule_target)
    changes = [{"location": ".".join(e.path), "old": _get(data, e.path),
                "new": None if e.value is DELETE else e.value} for e in edits]
    # a v5 layout (asked for, or kept) is a file transformers 4.x cannot read: RD203 is the request
    v5 = options.style == "v5" or (options.style == "keep" and spec.hf is not None and file_style(spec.hf.text) == "v5")
    fresh = [f for f in _new_errors(run_rules(spec, rule_target), after) if not (v5 and f.code == "RD203")]
    if fresh:
        doc = _report(new_spec, the_plan, changes, fresh, None, None)
        raise FixError(doc, _lines(doc, fresh, [[("nothing written: the result would have new errors", "bold red")]]))
    written: str | None = None
    backup: Path | None = None
    extra: list[Line] = []
    if options.mode == "dry-run" or (not edits and options.mode != "out"):
        extra = [[(line, _diff_style(line))] for line in unified_diff(text, new_text, path.name).splitlines()]
    else:
        destination = Path(options.out) if options.mode == "out" and options.out else path
        if options.mode == "in-place" and options.backup:
            backup = path.with_name(path.name + ".bak")
        write_atomic(destination, new_text.encode(), backup=backup, follow_symlinks=options.follow_symlinks)
        written = str(destination)
    doc = _report(new_spec, the_plan, changes, after, written, str(backup) if backup else None)
    return FixOutcome(doc, _lines(doc, after, extra))


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _diff_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "bold"
    return "green" if line.startswith("+") else "red" if line.startswith("-") else "cyan" if line.startswith("@") \
        else ""


# --- GGUF ----------------------------------------------------------------------------------------------
def _fix_gguf(path: Path, options: FixOptions) -> FixOutcome:
    from ropedoctor.sources.gguf_header import check_shards, read_gguf
    from ropedoctor.sources.gguf_source import spec_from_header
    from ropedoctor.writers.gguf import edit_in_place, override_kv_args, plan_edit, rewrite
    from ropedoctor.writers.gguf_layout import gguf_changes

    check_shards(path)
    header = read_gguf(path)
    spec = spec_from_header(header)
    the_plan = plan(spec, options.target)
    edits = gguf_changes(the_plan)
    edit = plan_edit(header, edits)
    changes = [{"location": e.key, "old": header.kv[e.key].value if e.key in header.kv else None, "new": e.value}
               for e in edits]
    try:
        overrides = override_kv_args(edits)
    except ValueError:
        overrides = []
    extra: list[Line] = [[(f"  write mode: {edit.mode}", "dim")]]
    if overrides:
        extra.append([("  or leave the file as it is and load it with: ", ""),
                      (" ".join(f"--override-kv {arg}" for arg in overrides), "bold")])
    written: str | None = None
    backup: str | None = None
    if options.mode != "dry-run" and edits:
        destination = Path(options.out) if options.mode == "out" and options.out else path
        if destination.is_symlink() and not options.follow_symlinks:
            raise InputError(str(destination), f"is a symlink to {os.readlink(destination)}; pass --follow-symlinks "
                                               f"to write through it")
        if edit.mode == "in-place" and destination == path:
            backup_path = path.with_name(path.name + ".ropedoctor-header.json") if options.backup else None
            edit_in_place(path, header, edits, backup=backup_path)
            backup = str(backup_path) if backup_path else None
        else:
            if destination == path and options.backup:
                backup_path = path.with_name(path.name + ".bak")
                if _same_file(backup_path, path):
                    pass  # the link a run killed before its rename left: the original is still both files
                elif backup_path.exists():
                    raise InputError(str(backup_path), "backup already exists; remove it or use --no-backup")
                else:
                    try:
                        os.link(path, backup_path)  # the old file stays behind the new name, at no copy cost
                    except OSError as exc:
                        raise InputError(str(backup_path), f"cannot make the backup: {exc.strerror or exc}") from None
                backup = str(backup_path)
            rewrite(path, header, edits, destination, progress=_progress_callback())
        written = str(destination)
    new_spec = spec_from_header(read_gguf(Path(written))) if written else the_plan.after
    rule_target = Target(ctx=options.target.ctx)
    after = run_rules(new_spec, rule_target)
    doc = _report(new_spec, the_plan, changes, after, written, backup)
    doc["mode"] = edit.mode
    doc["override_kv"] = overrides
    return FixOutcome(doc, _lines(doc, after, extra))


def _same_file(left: Path, right: Path) -> bool:
    try:
        return os.path.samestat(os.stat(left, follow_symlinks=False), os.stat(right))
    except OSError:
        return False


def _progress_callback() -> Any:
    """A rich progress bar with bytes and speed, on a terminal only."""
    import sys

    if not sys.stderr.isatty() or os.environ.get("NO_COLOR"):
        return None
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True)
    task = bar.add_task("rewrite", total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        if done >= total:
            bar.stop()

    return update
