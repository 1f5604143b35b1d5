"""The fuzzing loop: a worker process runs one target over inputs ``start..stop``; a supervisor restarts it
past any input that killed it or hung it, and keeps that input.

Input ``i`` of a target is a pure function of ``(seed, target, i)``: the supervisor can rebuild the input
a dead worker was on from the index the worker left in a shared file, without the worker having saved it.

Bounds, per input:

- time: ``SIGALRM`` after ``target.seconds`` interrupts Python code (reported as a failure "hang"); a hang
  in C code that the alarm cannot interrupt is caught by the supervisor, which kills the worker after
  ``3 x seconds + 10`` s without progress;
- memory: the worker caps its own address space (``RLIMIT_AS``) at its size after start-up plus
  ``memory_mb``; an input that needs more ends in MemoryError (a failure) or kills the worker (a failure,
  found by the supervisor).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import random
import re
import resource
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fuzz_corpus"
MAX_KEPT_PER_TARGET = 60  # interesting inputs kept per target (failures are always kept)
_PROGRESS_EVERY = 1000


class Target(Protocol):
    """A parser under fuzzing."""

    name: str
    suffix: str  # file name suffix of kept inputs
    seconds: float  # time bound per input
    memory_mb: int  # address space allowed on top of the worker's size after set-up

    def setup(self) -> None:
        """Once per worker, before the memory cap (servers, seeds)."""

    def generate(self, rng: random.Random) -> bytes:
        """One input."""

    def run(self, data: bytes) -> str:
        """Parse ``data``; return "result" or "clean:<reason template>"; raise Failure for a wrong outcome.
        Any other exception is a failure too."""


class Failure(Exception):
    """The parser ended in a way it must not: a message on two lines, a leaked token, too many bytes read."""


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` in the parser swallows it."""


def input_for(target: Target, seed: int, index: int) -> bytes:
    return target.generate(random.Random(f"{seed}:{target.name}:{index}"))


def template(reason: str) -> str:
    """A reason with numbers, quoted names and bytes blanked: inputs with a new template are kept."""
    reason = re.sub(r"'[^']*'|\"[^\"]*\"|b'.*?'", "'…'", reason)
    return re.sub(r"\d+(\.\d+)?", "N", reason)[:160]


def keep(target: Target, data: bytes, kind: str) -> Path:
    folder = CORPUS / target.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-{hashlib.sha256(data).hexdigest()[:12]}{target.suffix}"
    path.write_bytes(data)
    return path


def _address_space() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * resource.getpagesize()


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Hang()


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    templates: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    kept: int = 0
    slowest: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "templates": len(self.templates), "failures": self.failures[:50],
                "kept": self.kept, "slowest_s": round(self.slowest, 4)}


def work(target: Target, seed: int, start: int, stop: int, index_file: Path, save: bool,
         skip: frozenset[int] = frozenset()) -> None:
    """The worker: run inputs start..stop, print progress lines (JSON) on stdout."""
    target.setup()
    seen = {p.name.split("-")[0] for p in (CORPUS / target.name).glob("*")} if save else set()
    baseline = _address_space()
    cap = baseline + target.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    signal.signal(signal.SIGALRM, _on_alarm)
    with open(index_file, "r+b") as handle:
        shared = mmap.mmap(handle.fileno(), 8)
    tally = Tally()
    for index in range(start, stop):
        if index in skip:  # an input that killed an earlier worker: counted by the supervisor
            continue
        struct.pack_into("<q", shared, 0, index)
        data = input_for(target, seed, index)
        began = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, target.seconds)
        try:
            outcome = target.run(data)
            signal.setitimer(signal.ITIMER_REAL, 0)
        except _Hang:
            outcome = f"failure:hang past {target.seconds} s"
        except MemoryError:
            signal.setitimer(signal.ITIMER_REAL, 0)
            outcome = f"failure:MemoryError (over {target.memory_mb} MiB)"
        except BaseException as exc:  # every other ending is a finding
            signal.setitimer(signal.ITIMER_REAL, 0)
            last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
            where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
            outcome = f"failure:{type(exc).__name__}: {str(exc)[:200]}{where}"
        tally.slowest = max(tally.slowest, time.perf_counter() - began)
        kind = outcome.split(":", 1)[0]
        tally.counts[kind] += 1
        if kind == "failure":
            tally.failures.append({"index": index, "why": outcome[len("failure:"):],
                                   "kept": str(keep(target, data, "failure")) if save else None})
        elif kind == "clean":
            shape = outcome[len("clean:"):]
            tally.templates[shape] += 1
            label = hashlib.sha256(shape.encode()).hexdigest()[:8]
            if save and tally.templates[shape] == 1 and label not in seen and tally.kept < MAX_KEPT_PER_TARGET:
                keep(target, data, label)
                seen.add(label)
                tally.kept += 1
        if (index - start + 1) % _PROGRESS_EVERY == 0 or index + 1 == stop:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            print(json.dumps({"done": index + 1, **tally.as_json(), "peak_rss_mb": usage.ru_maxrss / 1024,
                              "baseline_mb": round(baseline / 2**20)}), flush=True)


@dataclass
class Report:
    target: str
    inputs: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    kept: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    slowest_s: float = 0.0
    restarts: int = 0

    def as_json(self) -> dict[str, Any]:
        rate = self.inputs / self.seconds if self.seconds else 0.0
        return {"target": self.target, "inputs": self.inputs, "counts": dict(self.counts),
                "failures": self.failures, "kept": self.kept, "wall_s": round(self.seconds, 1),
                "cpu_s": round(self.cpu_seconds, 1), "inputs_per_s": round(rate, 1),
                "peak_rss_mb": round(self.peak_rss_mb, 1), "slowest_input_s": self.slowest_s,
                "restarts": self.restarts}


def supervise(target: Target, make: Callable[[], Target], seed: int, count: int, save: bool,
              log: Callable[[str], None]) -> Report:
    """Run ``count`` inputs of ``target`` in worker processes, restarting past inputs that kill or hang them."""
    report = Report(target.name)
    index_file = Path(f"/dev/shm/ropedoctor-fuzz-{os.getpid()}-{target.name}")
    if not index_file.parent.is_dir():
        index_file = Path(f"/tmp/ropedoctor-fuzz-{os.getpid()}-{target.name}")
    index_file.write_bytes(bytes(8))
    began = time.monotonic()
    start = 0
    patience = 3 * target.seconds + 10
    skip: set[int] = set()
    try:
        while start < count:
            command = [sys.executable, "-m", "fuzz.run", "--worker", target.name, "--seed", str(seed),
                       "--start", str(start), "--stop", str(count), "--index-file", str(index_file)]
            if not save:
                command.append("--no-save")
            if skip:
                command += ["--skip", ",".join(map(str, sorted(skip)))]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            worker = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, bufsize=1)
            lines: list[str] = []
            reader = threading.Thread(target=lines.extend, args=(worker.stdout,), daemon=True)
            reader.start()
            last: dict[str, Any] = {}
            moved = time.monotonic()
            at = -1
            shown = 0
            while worker.poll() is None:
                now_at = struct.unpack("<q", index_file.read_bytes()[:8])[0]
                if now_at != at:  # the worker is on another input: it is not stuck
                    at, moved = now_at, time.monotonic()
                elif time.monotonic() - moved > patience:
                    worker.kill()
                while shown < len(lines):
                    log(f"{target.name}: {lines[shown].strip()[:160]}")
                    shown += 1
                time.sleep(0.2)
            reader.join(10)
            for line in lines:
                if line.strip():
                    last = json.loads(line)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            report.cpu_seconds += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if last:
                report.counts.update(last["counts"])
                report.failures += last["failures"]
                report.kept += last["kept"]
                report.peak_rss_mb = max(report.peak_rss_mb, last["peak_rss_mb"])
                report.slowest_s = max(report.slowest_s, last["slowest_s"])
            done = last.get("done", start)
            if worker.returncode == 0 and done >= count:
                break
            # the worker died or was killed on the input it was at: keep that one, redo the ones after the last
            # progress line (they were not counted), and go on past it
            dead_at = struct.unpack("<q", index_file.read_bytes()[:8])[0]
            data = input_for(make(), seed, dead_at)
            kept = str(keep(target, data, "failure")) if save else None
            report.counts["failure"] += 1
            report.failures.append({"index": dead_at, "why": f"worker died (exit {worker.returncode})", "kept": kept})
            report.restarts += 1
            skip.add(dead_at)
            start = done
    finally:
        index_file.unlink(missing_ok=True)
    report.inputs = sum(report.counts.values())
    report.seconds = time.monotonic() - began
    return report
