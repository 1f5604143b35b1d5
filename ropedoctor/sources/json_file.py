"""Reading a JSON file strictly and within bounds: the first stage of every config.json read."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from ropedoctor.errors import InputError
from ropedoctor.sources.local_file import open_without_waiting, special_file_kind

# Published config.json files are a few KB; the largest (Phi-3 factor lists, VLM wrappers)
# stay under 100 KB. A larger file is not a config and is not read into memory.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def _reject_constant(name: str) -> float:
    # JSON has no NaN or Infinity; Python's json would accept them and transformers would
    # carry them into the frequencies.
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} overflows a float (numbers must be finite)")
    return value


def type_name(value: Any) -> str:
    """How a JSON value's type reads in a message: "a string", "an array"."""
    names = {list: "an array", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or InputError naming the file and what is wrong."""
    where = str(path)
    try:
        if path.is_dir():
            raise InputError(where, "is a directory, not a JSON file")
        fd = open_without_waiting(path)
        with open(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InputError(where, f"is {special_file_kind(info.st_mode)}, not a regular file")
            size = info.st_size
            if size > MAX_CONFIG_BYTES:
                raise InputError(where, f"file is {size / 1e6:.1f} MB; a config.json is at most "
                                        f"{MAX_CONFIG_BYTES // 2**20} MiB")
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except PermissionError:
        raise InputError(where, "permission denied") from None
    except OSError as exc:
        raise InputError(where, exc.strerror or str(exc)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(where, f"not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise InputError(where, "file is empty")
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise InputError(where, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise InputError(where, str(exc)) from None
    except RecursionError:
        raise InputError(where, "JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise InputError(where, f"expected a JSON object, got {type_name(data)}")
    return data
