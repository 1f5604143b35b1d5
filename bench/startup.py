"""Start-up cost of `ropedoctor check` on a config.json, against two references in the same run.

    python bench/startup.py [--runs N] [--model FIXTURE]

Measures the median wall time (interleaved runs, so machine noise hits all three alike) of:
  ropedoctor:  ropedoctor check fixtures/<model>
  imports:     python -c "import typer, pydantic, rich"   (the floor: our three runtime imports)
  AutoConfig:  transformers.AutoConfig.from_pretrained(fixtures/<model>)
Targets (issue 2): ropedoctor <= 1.3x imports, and >= 8x faster than AutoConfig.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def commands(model: Path) -> dict[str, list[str]]:
    script = Path(PY).parent / "ropedoctor"
    ropedoctor = [str(script)] if script.exists() else [PY, "-m", "ropedoctor"]
    return {
        "ropedoctor": [*ropedoctor, "check", str(model)],
        "imports": [PY, "-c", "import typer, pydantic, rich"],
        "AutoConfig": [PY, "-c", f"from transformers import AutoConfig; AutoConfig.from_pretrained({str(model)!r})"],
    }


# An installed package has its bytecode compiled (pip does it); this workplace sets
# PYTHONDONTWRITEBYTECODE, which would make every run recompile every module.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=ENV)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--model", default="meta-llama-3.1-8b-instruct")
    args = parser.parse_args()
    cmds = commands(ROOT / "fixtures" / args.model)
    for argv in cmds.values():  # warm the page cache and .pyc files
        wall(argv)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(args.runs):
        for name, argv in cmds.items():
            times[name].append(wall(argv))
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, value in median.items():
        print(f"{name:<11} median {value * 1000:7.1f} ms over {args.runs} runs")
    vs_imports = median["ropedoctor"] / median["imports"]
    vs_autoconfig = median["AutoConfig"] / median["ropedoctor"]
    ok = vs_imports <= 1.3 and vs_autoconfig >= 8
    print(f"ropedoctor / imports   = {vs_imports:.2f}x (target <= 1.3x)")
    print(f"AutoConfig / ropedoctor = {vs_autoconfig:.1f}x (target >= 8x)")
    print("targets met" if ok else "targets MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
