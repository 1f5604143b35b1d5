"""Writing styled lines: rich colours on a terminal, plain text everywhere else.

Non-TTY output (pipes, CI logs, pre-commit) and NO_COLOR get plain text without rich, which
also keeps rich's rendering machinery off the start-up path of scripted runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# A line is a list of (text, rich style) segments; "" means unstyled.
Segment = tuple[str, str]
Line = list[Segment]


def wants_colour() -> bool:
    """Colour only for a terminal, and never under NO_COLOR (https://no-color.org) or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return sys.stdout.isatty()


def emit(lines: list[Line]) -> None:
    from ropedoctor.errors import inert

    if not wants_colour():
        sys.stdout.write("".join(inert("".join(text for text, _ in line)) + "\n" for line in lines))
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    for line in lines:
        console.print(Text.assemble(*((inert(text), style) for text, style in line)))


def progress(items: Sequence[T], label: str, minimum: int = 20) -> Iterator[T]:
    """Iterate with a progress bar on a terminal when there are many items; silently otherwise."""
    if len(items) < minimum or not sys.stderr.isatty() or os.environ.get("NO_COLOR"):
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=label, console=_stderr_console(), transient=True)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
