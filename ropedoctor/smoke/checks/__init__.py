"""The four smoke checks (finite, passkey, perplexity, speed) and what they share: the outcome record, the
position buckets (the original window, then each further multiple of it) and the Wilson interval."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CheckOutcome:
    """One check's verdict, its headline for the table, and its numbers for the JSON."""

    name: str
    passed: bool | None  # None: not decided (stopped by --max-time before the check could finish)
    summary: str  # one line for the table: the numbers that decided it
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "summary": self.summary, **self.data}


def position_buckets(n_tokens: int, original: int) -> list[tuple[int, int]]:
    """[0, L), [L, 2L), ... up to ``n_tokens``: inside the trained window, then each further multiple of it."""
    original = max(1, original)
    return [(start, min(start + original, n_tokens)) for start in range(0, n_tokens, original)]


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion: honest at 0/n and n/n, unlike the normal approximation."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))
