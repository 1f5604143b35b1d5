"""`fix`: plan -> key edits -> a written file (or a diff), and a re-check of the result.

fix never introduces an error: the result is checked with the same rules, and if it has an
error finding the original did not have, nothing is written (exit 1).
"""

from __future__ import annotations

import json
import os
import shlex
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


def _target_file(path: str) -> Path:
    """The one local file fix works on: a folder's config.json, or its only GGUF."""
    from ropedoctor.check import missing_local

    files = resolve(path)
    if not files:
        raise InputError(path, missing_local(path) or "no such local path (fix writes local files only)")
    configs = [f for f in files if not f.name.endswith(GGUF_SUFFIX)]
    if not configs and len(files) > 1:
        raise InputError(path, f"holds several GGUF files ({', '.join(f.name for f in files)}); name one")
    return configs[0] if configs else files[0]


def out_destination(out: str, target: Path) -> Path:
    """Where ``--out`` writes: a folder (one that exists, a name ending in ``/``, or a name without a file suffix)
    gets the input's own file name (DIR/config.json); missing folders on the way are created."""
    destination = Path(out)
    as_folder = destination.is_dir() or out.endswith(("/", os.sep)) or (
        not destination.exists() and destination.suffix.lower() not in (".json", GGUF_SUFFIX))
    if as_folder:
        destination = destination / target.name
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out, f"cannot create the folder {destination.parent}: {exc.strerror or exc}") from None
    return destination


def fix_path(path: str, options: FixOptions) -> FixOutcome:
    from dataclasses import replace

    target = _target_file(path)
    if options.mode == "out" and options.out:
        options = replace(options, out=str(out_destination(options.out, target)))
    fix = _fix_gguf if target.name.endswith(GGUF_SUFFIX) else _fix_config
    if options.mode == "dry-run":
        return fix(target, options)
    from ropedoctor.writers.lock import writing

    # one writer per file, held from the read to the rename: a second run waits, or fails in one line
    written = Path(options.out) if options.mode == "out" and options.out else target
    with writing(Path(os.path.realpath(written)) if options.follow_symlinks else written):
        return fix(target, options)


def _rule_target(path: Path, options: FixOptions) -> Target:
    """The rules fix reports: the selection `check` would use for this file (its config file's, RD209 off)."""
    from ropedoctor.settings import load_settings

    return Target(ctx=options.target.ctx, select=load_settings([str(path)]).selected)


def _warn_scaling(spec: RopeSpec, options: FixOptions) -> None:
    from ropedoctor.commands import warn_past_sane_scaling

    warn_past_sane_scaling(spec, options.target.ctx, options.target.factor)


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


def _lines(doc: dict[str, Any], findings: list[Finding], extra: list[Line], dry_run: bool = False) -> list[Line]:
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
        if doc["backup"]:
            lines.append([("undo: ", "dim"), (f"ropedoctor fix --restore {shlex.quote(doc['written'])}", "")])
    elif dry_run:
        lines.append([("dry run: nothing written", "dim")])
    else:
        lines.append([("nothing written: the file already says this", "green")])
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
    _warn_scaling(spec, options)
    new_spec = spec_from_config(json.loads(new_text.removeprefix("\ufeff")), str(path))
    rule_target = _rule_target(path, options)
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
        extra = [[(line, _diff_style(line) + " nowrap")] for line in unified_diff(text, new_text, path.name).splitlines()]
    else:
        destination = Path(options.out) if options.mode == "out" and options.out else path
        if options.mode == "in-place" and options.backup:
            backup = path.with_name(path.name + ".bak")
        write_atomic(destination, new_text.encode(), backup=backup, follow_symlinks=options.follow_symlinks)
        written = str(destination)
    doc = _report(new_spec, the_plan, changes, after, written, str(backup) if backup else None)
    return FixOutcome(doc, _lines(doc, after, extra, options.mode == "dry-run"))


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
    from ropedoctor.writers.gguf import (
        GGUFEdit,
        edit_in_place,
        link_backup,
        override_kv_args,
        plan_edit,
        preview,
        rewrite,
        rewrite_backup,
        stale_backup_link,
    )
    from ropedoctor.writers.gguf_layout import gguf_changes

    check_shards(path)
    header = read_gguf(path)
    spec = spec_from_header(header)
    the_plan = plan(spec, options.target)
    _warn_scaling(spec, options)
    edits = gguf_changes(the_plan)
    edit = plan_edit(header, edits)
    if edit.mode == "in-place" and (options.mode != "out" or not options.out) and stale_backup_link(path):
        # an interrupted rewrite left <file>.bak as this very file: an in-place edit would change it too
        edit = GGUFEdit("rewrite", edit.changes, f"{rewrite_backup(path).name} is this file (a hard link an "
                                                 "interrupted rewrite left); a rewrite keeps it the original")
    changes = [{"location": e.key, "old": header.kv[e.key].value if e.key in header.kv else None, "new": e.value}
               for e in edits]
    try:
        overrides = override_kv_args(edits)
    except ValueError:
        overrides = []
    extra: list[Line] = [[(f"  write mode: {edit.mode}", "dim")]] if edits else []
    if overrides:
        extra.append([("  or leave the file as it is and load it with: ", ""),
                      (" ".join(f"--override-kv {arg}" for arg in overrides), "bold")])
    notes: list[str] = []
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
                backup = str(link_backup(path))  # the old file stays behind the new name, at no copy cost
            notes += rewrite(path, header, edits, destination, progress=_progress_callback())
            extra += [[(f"  note: {note}", "yellow")] for note in notes]
        written = str(destination)
    # a dry run checks the header the write would give (values as the file will hold them), so that it
    # predicts the findings and exit code of the write exactly
    predicted = spec_from_header(preview(header, edits)) if edits else the_plan.after
    new_spec = spec_from_header(read_gguf(Path(written))) if written else predicted
    rule_target = _rule_target(path, options)
    after = run_rules(new_spec, rule_target)
    doc = _report(new_spec, the_plan, changes, after, written, backup)
    doc["mode"] = edit.mode
    doc["override_kv"] = overrides
    doc["notes"] = notes  # what the write could not keep (an owner only root may restore)
    return FixOutcome(doc, _lines(doc, after, extra, options.mode == "dry-run"))


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


# --- undo ----------------------------------------------------------------------------------------------
def backup_of(path: Path) -> Path | None:
    """The backup a fix left beside ``path``: the old header bytes of a GGUF edited in place, else ``PATH.bak``."""
    for candidate in (path.with_name(path.name + ".ropedoctor-header.json"), path.with_name(path.name + ".bak")):
        if candidate.is_file():
            return candidate
    return None


def restore(path: str) -> tuple[Path, Path]:
    """Put back what the last fix of ``path`` (a file, or a folder's config.json or only GGUF) overwrote; the
    backup is consumed. (restored file, backup used); InputError when there is none."""
    from ropedoctor.writers.gguf import undo_in_place

    target = _target_file(path)
    backup = backup_of(target)
    if backup is None:
        raise InputError(str(target), f"no backup to restore ({target.name}.bak or "
                                      f"{target.name}.ropedoctor-header.json); fix keeps one unless --no-backup")
    if backup.name.endswith(".ropedoctor-header.json"):
        undo_in_place(target, backup)
        return target, backup
    try:
        os.replace(backup, target)  # atomic: the old file takes its name back
    except OSError as exc:
        raise InputError(str(target), f"cannot restore from {backup}: {exc.strerror or exc}") from None
    return target, backup
