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


# C0, DEL and C1 (U+0080-U+009F: some terminals read U+009B as CSI and U+009D as OSC)
_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(32), *range(127, 160))} | {10: "\\n", 13: "\\r",
                                                                                        9: "\\t"}
# Lone surrogates (a JSON "\\ud800", a file name with undecodable bytes) cannot be written as UTF-8: shown as text.
_CONTROL_ESCAPES |= {code: f"\\u{code:04x}" for code in range(0xD800, 0xE000)}


def inert(text: str) -> str:
    """``text`` with control characters and lone surrogates escaped: a file name with a newline or an escape
    sequence stays on one line and cannot drive the terminal, and every line can be written as UTF-8."""
    return text.translate(_CONTROL_ESCAPES)
