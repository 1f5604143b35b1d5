"""The options of `ropedoctor fix`, parsed once by the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ropedoctor.plan import Target


@dataclass(frozen=True)
class FixOptions:
    target: Target
    style: Literal["keep", "v4", "v5", "both"] = "keep"
    mode: Literal["in-place", "out", "dry-run"] = "in-place"
    out: str | None = None
    backup: bool = True
    follow_symlinks: bool = False
    output: str = "text"
