"""Opening a local file that a stranger may have made a named pipe, a socket or a device."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def open_without_waiting(path: Path) -> int:
    """A read-only descriptor of ``path``; O_NONBLOCK because opening a named pipe nobody writes to would wait
    forever (the caller refuses it from ``os.fstat``)."""
    return os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))


def special_file_kind(mode: int) -> str:
    """How a file that is not a regular file reads in a message: "a named pipe (FIFO)", "a device"."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"
