"""How numbers, booleans and counts read in text output: one format everywhere (JSON keeps the raw values).

- integers, and floats that are whole, print as integers: ``1000000``, not ``1e+06``;
- other numbers of 100000 and above print rounded to a whole number (``20444971``): a base that large carries no
  meaning past the unit;
- the rest print with up to six significant digits (``7453.48``, ``1.13863``, ``0.857``);
- booleans print JSON-style (``true``/``false``), and None as ``-``.
"""

from __future__ import annotations

import math


def number(value: float | int | bool | str | None) -> str:
    """One number (or bool, or None) as text output shows it; a string is shown as it is."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e18:
        return str(int(value))
    if abs(value) >= 1e5:
        return str(round(value))
    return f"{value:.6g}"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 model``, ``2 models``, ``0 slots``; ``many`` for irregular plurals."""
    return f"{count} {word if count == 1 else many or word + 's'}"


# The longest --ctx accepted: llama.cpp's n_ctx and most runtimes' length fields are 32-bit; past it a number is a typo.
MAX_LENGTH = 2**31 - 1
_SUFFIXES = {"k": 1024, "m": 1024 * 1024}


def parse_length(text: str) -> int:
    """A token count as users write it: ``32768``, ``8k``/``32K``/``128k`` (x1024), ``1m`` (x1024^2), ``1.5k``.

    ValueError (with the reason) for anything else, for zero, and past ``MAX_LENGTH``.
    """
    value = text.strip().lower().replace("_", "")
    scale = _SUFFIXES.get(value[-1:], 1)
    digits = value[:-1] if scale != 1 else value
    try:
        if not digits or not digits.replace(".", "", 1).isdigit():
            raise ValueError
        tokens = float(digits) * scale if "." in digits else int(digits) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a token count (32768, 8k, 128K, 1m)") from None
    if tokens != int(tokens):
        raise ValueError(f"{text!r} is not a whole number of tokens")
    if tokens < 1:
        raise ValueError(f"{text!r}: the length must be at least 1")
    if tokens > MAX_LENGTH:
        raise ValueError(f"{text!r} is past {MAX_LENGTH} tokens (2^31 - 1), the most any runtime can hold")
    return int(tokens)
