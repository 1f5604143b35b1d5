"""The one error type for input that cannot be used (exit code 2, one line on stderr)."""

from __future__ import annotations


class InputError(Exception):
    """A file or argument ropedoctor cannot use; ``line`` is what the user sees."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")
        self.what = what
        self.why = why

    @property
    def line(self) -> str:
        return inert(f"ropedoctor: error: {self.what}: {self.why}")


_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def inert(text: str) -> str:
    """``text`` with control characters escaped: a file name with a newline or an escape sequence stays on one
    line and cannot drive the terminal."""
    return text.translate(_CONTROL_ESCAPES)
