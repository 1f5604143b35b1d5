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
        return f"ropedoctor: error: {self.what}: {self.why}"
