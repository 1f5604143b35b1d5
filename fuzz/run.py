"""``python -m fuzz.run [--count N] [--seed S] [--target T ...] [--out FILE]``: fuzz every parser.

Each target runs ``--count`` inputs in a worker process (see fuzz/engine.py for the bounds); interesting
inputs (the first of each new error-message shape, and every failure) are kept in tests/fuzz_corpus/<target>/,
which tests/test_fuzz_corpus.py replays in the test suite. The summary (counts, rates, peak RSS, failures)
is printed as JSON and written to ``--out``. Exit status 1 when any input failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

from fuzz.engine import supervise, work
from fuzz.targets import TARGETS, make_target


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="inputs per target (default 100000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", action="append", choices=TARGETS, help="default: all")
    parser.add_argument("--no-save", action="store_true", help="keep nothing in tests/fuzz_corpus")
    parser.add_argument("--out", type=Path, help="write the summary JSON here too")
    parser.add_argument("--worker", choices=TARGETS, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--index-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--skip", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        skip = frozenset(int(i) for i in args.skip.split(",") if i)
        work(make_target(args.worker), args.seed, args.start, args.stop, args.index_file, not args.no_save, skip)
        return 0
    summary = []
    began = time.monotonic()
    for name in args.target or TARGETS:
        report = supervise(make_target(name), partial(make_target, name), args.seed, args.count, not args.no_save,
                           _log)
        summary.append(report.as_json())
        print(json.dumps(report.as_json()), file=sys.stderr, flush=True)
    doc = {"seed": args.seed, "count_per_target": args.count, "wall_s": round(time.monotonic() - began, 1),
           "targets": summary}
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if any(t["counts"].get("failure") for t in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
