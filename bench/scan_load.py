"""``ropedoctor scan`` over thousands of generated model folders: time per model as the count grows, peak RSS,
every broken model reported, and the per-model time against a reference in the same run (a Python process that
walks the same tree and ``json.load``s every config.json: the floor of reading the files at all).

    python bench/scan_load.py [--counts 500,1000,2000,5000] [--json out.json]

Folders are copies of the fixture configs (healthy and broken) and, one in twenty, a small GGUF; one in ten is
unreadable (invalid JSON, an empty file, a truncated GGUF). Each count gets its own tree; the scan runs in a child
process measured with ``os.wait4`` (CPU time and maximum resident set).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REFERENCE = """
import json, os, sys
n = 0
for folder, dirs, files in os.walk(sys.argv[1]):
    dirs.sort()
    if "config.json" in files:
        try:
            with open(os.path.join(folder, "config.json"), "rb") as f:
                json.loads(f.read())
        except ValueError:
            pass
        n += 1
print(n)
"""


def generate(root: Path, count: int, seed: int = 0) -> dict[str, str]:
    """``count`` model folders under ``root``; returns {source: "ok" | "error" | "unreadable"} as expected."""
    rng = random.Random(seed)
    healthy = [p for p in sorted(FIXTURES.glob("*/config.json"))]
    # internlm2-scaling-null is the demo's input for `fix --ctx`: healthy until a length is asked, so no finding here
    broken = sorted(p for p in (FIXTURES / "broken").glob("*/config.json") if p.parent.name != "internlm2-scaling-null")
    ggufs = sorted((FIXTURES / "gguf").glob("*.gguf"))
    expected: dict[str, str] = {}
    for index in range(count):
        folder = root / f"org{index % 50:02d}" / f"model-{index:05d}"
        folder.mkdir(parents=True)
        roll = rng.random()
        if roll < 0.05:
            source = folder / "model.gguf"
            data = rng.choice(ggufs).read_bytes()
            if rng.random() < 0.3:
                data = data[: len(data) // 3]
                expected[str(source)] = "unreadable"
            else:
                expected[str(source)] = "gguf"
            source.write_bytes(data)
            continue
        source = folder / "config.json"
        if roll < 0.15:
            source.write_bytes(rng.choice([b"{", b"", b"[1, 2]", b'{"max_position_embeddings": "4096"}']))
            expected[str(source)] = "unreadable"
        elif roll < 0.45:
            shutil.copyfile(rng.choice(broken), source)
            expected[str(source)] = "broken"
        else:
            shutil.copyfile(rng.choice(healthy), source)
            expected[str(source)] = "fixture"
    return expected


def measure(command: list[str]) -> tuple[float, float, float, bytes]:
    """(wall s, CPU s, peak RSS MB, stdout) of a child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="500,1000,2000,5000")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ropedoctor-scan-") as scratch:
        for count in [int(c) for c in args.counts.split(",")]:
            root = Path(scratch) / f"n{count}"
            expected = generate(root, count)
            wall, cpu, rss, out = measure([sys.executable, "-m", "ropedoctor", "scan", str(root), "--format", "json"])
            doc = json.loads(out)
            rows_by_source = {row["source"]: row for row in doc["models"]}
            missing = [s for s in expected if s not in rows_by_source]
            unreadable_missed = [s for s, kind in expected.items()
                                 if kind == "unreadable" and not rows_by_source.get(s, {}).get("unreadable")]
            _ref_wall, ref_cpu, _ref_rss, _ = measure([sys.executable, "-c", REFERENCE, str(root)])
            rows.append({"models": count, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                         "ms_per_model": round(1000 * cpu / count, 3), "peak_rss_mb": round(rss, 1),
                         "reported": len(doc["models"]), "missing": len(missing),
                         "unreadable_reported": doc["summary"]["unreadable"],
                         "unreadable_expected": sum(1 for k in expected.values() if k == "unreadable"),
                         "unreadable_missed": len(unreadable_missed), "errors": doc["summary"]["error"],
                         "reference_ms_per_model": round(1000 * ref_cpu / count, 3),
                         "ratio_to_reference": round(cpu / ref_cpu, 1) if ref_cpu else None})
            print(json.dumps(rows[-1]), flush=True)
    # start-up (~0.25 s) is paid once; the marginal cost of a model between two counts shows whether it stays flat
    for before, after in itertools.pairwise(rows):
        added = after["models"] - before["models"]
        after["marginal_ms_per_model"] = round(1000 * (after["cpu_s"] - before["cpu_s"]) / added, 3)
    marginal = [r["marginal_ms_per_model"] for r in rows[1:]]
    summary = {"rows": rows, "marginal_max_over_min": round(max(marginal) / min(marginal), 2)
               if marginal and min(marginal) > 0 else None}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0 if all(r["missing"] == 0 and r["unreadable_missed"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
