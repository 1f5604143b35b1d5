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

# A line is a list of (text, rich style) segments; "" means unstyled. Two words in a style are ours, not rich's:
# NOWRAP keeps the line whole (a diff line), SHELL wraps it as a shell command (a trailing backslash on each piece, so
# the lines still paste as one command).
Segment = tuple[str, str]
Line = list[Segment]
NOWRAP = "nowrap"
SHELL = "shell"
_OURS = (NOWRAP, SHELL)
_SEVERITIES = ("error ", "warning ", "info ")


def width() -> int:
    """The terminal's width: COLUMNS when set, else the terminal's, else 80 (pipes and CI logs)."""
    import shutil

    return max(40, shutil.get_terminal_size((80, 24)).columns)


def _hang(text: str) -> int:
    """The indent of a wrapped line's continuation: under the message of a finding, the text of a bullet, else +4."""
    body = text.lstrip(" ")
    indent = len(text) - len(body)
    if body.startswith(_SEVERITIES):
        return indent + 8
    if body.startswith("- "):
        return indent + 2
    return indent + 4


def wrap(line: Line, columns: int) -> list[Line]:
    """``line`` cut at spaces into pieces of at most ``columns`` characters (a longer word stays whole), styles kept."""
    styles = " ".join(style for _, style in line).split()
    text = "".join(part for part, _ in line)
    if NOWRAP in styles or len(text) <= columns:
        return [line]
    shell = SHELL in styles
    hang = _hang(text)
    pieces: list[tuple[int, int]] = []
    start, limit = 0, columns - (2 if shell else 0)
    floor = len(text) - len(text.lstrip(" "))  # never cut inside the indentation
    while len(text) - start > limit:
        # a shell command breaks only before an option, so a flag stays beside its value (even past the width)
        space = " -" if shell else " "
        cut = text.rfind(space, start + floor + 1, start + limit + 1)
        dot = text.rfind(" · ", start + floor + 1, start + limit - 1)  # a summary line breaks between its parts
        if not shell and dot != -1 and dot - start > limit // 2:
            cut = dot + 2
        if cut == -1:
            cut = text.find(space, start + limit)
            if cut == -1:
                break
        pieces.append((start, cut))
        start = cut
        while start < len(text) and text[start] == " ":
            start += 1
        floor, limit = 0, columns - hang - (2 if shell else 0)
    pieces.append((start, len(text)))
    out: list[Line] = []
    for number, (begin, end) in enumerate(pieces):
        piece: Line = [] if number == 0 else [(" " * hang, "")]
        offset = 0
        for part, style in line:
            low, high = max(begin, offset), min(end, offset + len(part))
            if low < high:
                piece.append((text[low:high], style))
            offset += len(part)
        if shell and number < len(pieces) - 1:
            piece.append((" \\", ""))
        out.append(piece)
    return out


def wants_colour() -> bool:
    """Colour only for a terminal, and never under NO_COLOR (https://no-color.org) or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return sys.stdout.isatty()


def emit(lines: list[Line]) -> None:
    """Print the lines, each cut to the terminal's width (``wrap``), in colour on a terminal."""
    from ropedoctor.errors import inert

    columns = width()
    lines = [piece for line in lines for piece in wrap([(inert(text), style) for text, style in line], columns)]
    if not wants_colour():
        sys.stdout.write("".join("".join(text for text, _ in line) + "\n" for line in lines))
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    for line in lines:
        console.print(Text.assemble(*((text, _rich_style(style)) for text, style in line)))


def _rich_style(style: str) -> str:
    return " ".join(word for word in style.split() if word not in _OURS)


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
