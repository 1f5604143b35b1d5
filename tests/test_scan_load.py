"""``ropedoctor scan`` over 1,000 generated model folders: every broken one reported, memory bounded.
The 5,000-folder run with timings per count is bench/scan_load.py."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("scan_load", ROOT / "bench" / "scan_load.py")
assert _spec is not None and _spec.loader is not None
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
generate: Callable[..., dict[str, str]] = _bench.generate  # the bench's generator: the same folders, fewer

MAX_RSS_MB = 200


def test_scan_reports_every_broken_model_of_1000(tmp_path: Path) -> None:
    expected = generate(tmp_path / "models", 1000, seed=1)
    result = subprocess.run([sys.executable, "-m", "ropedoctor", "scan", str(tmp_path / "models"), "--format", "json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr  # broken models are errors
    doc = json.loads(result.stdout)
    rows = {row["source"]: row for row in doc["models"]}
    assert set(rows) == set(expected)
    for source, kind in expected.items():
        row = rows[source]
        if kind == "unreadable":
            assert row["unreadable"], row
        else:
            assert not row["unreadable"], row
    broken = [s for s, kind in expected.items() if kind == "broken"]
    assert broken and all(rows[s]["error"] or rows[s]["warning"] or rows[s]["info"] for s in broken)
    assert doc["summary"]["unreadable"] == sum(1 for kind in expected.values() if kind == "unreadable")


def test_scan_memory_stays_bounded(tmp_path: Path) -> None:
    generate(tmp_path / "models", 1000, seed=2)
    # VmHWM, not ru_maxrss: the latter counts the forked copy of this (large) pytest process
    code = ("import re, sys; from ropedoctor.commands import run_scan; "
            "run_scan(sys.argv[1], False, 'json'); "
            "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1], file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "models")], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    peak_mb = int(result.stderr.strip().splitlines()[-1]) / 1024
    assert peak_mb < MAX_RSS_MB, peak_mb
    assert len(json.loads(result.stdout)["models"]) == 1000
