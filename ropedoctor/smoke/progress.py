"""How long a smoke run takes, said before and while it runs, on stderr (stdout stays the report's).

Before the model loads: how many prompts and tokens each check will prefill. After the first measured unit: the
estimated total time, calibrated on it (the work is weighed by a cost model, so a 16K prompt counts for more than a
4K one; see ``Cost``). While running: a progress bar with the time left on a terminal; elsewhere (CI logs, a pipe)
one line when each check starts, one when each (check, length) ends, and a line whenever nothing was said for
``HEARTBEAT_S``, each with the elapsed time and the ETA, so that a log never sits silent for long.

``--max-time`` is a deadline: ``check`` raises ``TimeUp`` between prompts and between llama.cpp chunks, and the run
reports what it has (``run.execute``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

HEARTBEAT_S = 50.0  # a line at least this often when stderr is not a terminal (the issue: never a silent minute)


class TimeUp(Exception):
    """``--max-time`` was reached; the run stops and reports its partial results."""


@dataclass(frozen=True)
class Cost:
    """Relative cost of prefilling tokens (FLOPs from the model's shape; only ratios matter, the rate is measured).

    Each new token costs the matmuls (2 x parameters) plus attention over every earlier position (4 x heads x
    head_dim per layer and position; sliding-window layers see at most their window).
    """

    linear: float = 1.0  # per token
    attention: float = 0.0  # per token and earlier position, summed over full-attention layers
    window_linear: float = 0.0  # per token: sliding layers' attention at their (full) window

    @classmethod
    def from_shape(cls, shape: Any) -> Cost:
        if shape is None:
            return cls()
        per_layer = 4.0 * shape.n_heads * shape.head_dim
        sliding = shape.sliding_layers if shape.sliding_window else 0
        params = shape.n_params or (12 * shape.hidden_size ** 2 * shape.n_layers)
        return cls(linear=2.0 * params, attention=per_layer * (shape.n_layers - sliding),
                   window_linear=per_layer * sliding * (shape.sliding_window or 0))

    def prefill(self, new: int, past: int = 0) -> float:
        """Prefilling ``new`` tokens after ``past`` cached ones."""
        if new <= 0:
            return 0.0
        pairs = new * past + new * (new + 1) / 2  # sum of the positions each new token attends to
        return new * (self.linear + self.window_linear) + self.attention * pairs


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """The one reporter of a run: lines or a bar on stderr, the ETA, the deadline (module docstring)."""

    def __init__(self, *, max_time: float | None = None, stream: TextIO | None = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, heartbeat: float = HEARTBEAT_S,
                 quiet: bool = False, cost: Cost | None = None) -> None:
        self.cost = cost or Cost()  # how the share of a pass done is weighed (``follow``)
        self._stream = stream or sys.stderr
        self._tty = (self._stream.isatty() and not os.environ.get("NO_COLOR")) if tty is None else tty
        self._clock = clock
        self._start = clock()
        self._deadline = self._start + max_time if max_time is not None else None
        self.max_time = max_time
        self._heartbeat = heartbeat
        self._quiet = quiet
        self._total = 0.0
        self._done = 0.0
        self._partial = 0.0  # cost done inside the current unit (llama.cpp chunks)
        self._calibrated = False
        self._label = "loading"
        self._last_line = self._start
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what is said ---------------------------------------------------------------------------
    def say(self, text: str) -> None:
        """One line on stderr (above the bar on a terminal)."""
        if self._quiet:
            return
        with self._lock:
            self._last_line = self._clock()
            if self._bar is not None:
                self._bar.console.print(f"smoke: {text}", markup=False, highlight=False)
            else:
                print(f"smoke: {text}", file=self._stream, flush=True)

    def status(self) -> str:
        """Elapsed time and ETA, for the lines."""
        return f"{human_seconds(self.elapsed())} elapsed, ETA {human_seconds(self.eta())}"

    def elapsed(self) -> float:
        return self._clock() - self._start

    def eta(self) -> float | None:
        """Seconds left: the measured time per unit of cost times the cost left (None before any work)."""
        done = self._done + self._partial
        if done <= 0 or self._work_seconds <= 0:
            return None
        return max(0.0, (self._total - done) * self._work_seconds / done)

    # --- the work --------------------------------------------------------------------------------
    def begin(self, total_cost: float) -> None:
        """The model is loaded: the measured work starts now (loading is not part of the rate)."""
        self._total = max(total_cost, 1e-9)
        self._work_start = self._clock()
        if self._tty and not self._quiet:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(self._label, total=self._total)
            self._bar.start()
        elif not self._quiet:
            self._thread = threading.Thread(target=self._beat, name="smoke-heartbeat", daemon=True)
            self._thread.start()

    @property
    def _work_seconds(self) -> float:
        start = getattr(self, "_work_start", None)
        return self._clock() - start if start is not None else 0.0

    def activity(self, label: str) -> None:
        """What runs now (the bar's text; the heartbeat line's subject)."""
        self._label = label
        if self._bar is not None:
            self._bar.update(self._task, description=label)

    def advance(self, cost: float) -> None:
        """A unit of work of ``cost`` is done; the first one calibrates the estimate, said once."""
        self._done += cost
        self._partial = 0.0
        if self._bar is not None:
            self._bar.update(self._task, completed=self._done)
        if not self._calibrated and self._done > 0 and self._total > self._done:
            self._calibrated = True
            self.say(f"the first unit took {human_seconds(self._work_seconds)}: the whole run needs about "
                     f"{human_seconds(self._work_seconds * self._total / self._done)} more than loading "
                     f"(calibrated on it)")
        self.check()

    def inside(self, cost: float) -> None:
        """Progress inside a unit (a llama.cpp chunk): moves the bar and the ETA, checks the deadline."""
        self._partial = cost
        if self._bar is not None:
            self._bar.update(self._task, completed=self._done + cost)
        self.check()

    def follow(self, unit: float, cost: Cost | None = None, past: int = 0) -> Callable[[int, int], None]:
        """A backend's ``on_chunk`` for one pass that costs ``unit`` (``total`` tokens after ``past`` cached
        ones): the share of its cost done so far moves the bar and the ETA."""
        model = cost or self.cost

        def on_chunk(done: int, total: int) -> None:
            whole = model.prefill(total, past)
            self.inside(unit * model.prefill(done, past) / whole if whole else 0.0)

        return on_chunk

    def check(self) -> None:
        if self._deadline is not None and self._clock() >= self._deadline:
            raise TimeUp(f"--max-time {self.max_time:g} s reached after {human_seconds(self.elapsed())}")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _beat(self) -> None:
        while not self._stop.wait(min(5.0, self._heartbeat)):
            if self._clock() - self._last_line >= self._heartbeat:
                self.say(f"{self._label}: still running, {self.status()}")
