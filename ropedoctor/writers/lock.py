"""One writer per file: two ``ropedoctor fix`` runs on the same file never interleave.

The lock is ``fcntl.flock`` on a sidecar ``<file>.ropedoctor.lock`` (not on the file itself: config.json
is replaced by a rename, and a lock on the old inode would not stop a third run that opens the new one).
The holder deletes the sidecar before it lets go; a waiter that wins the lock checks that the sidecar it
locked is still the one on disk, else tries again (the classic unlink race). A run killed while holding
the lock leaves the sidecar behind, but the kernel has released the lock: the next run takes it.

A second run waits up to ``ROPEDOCTOR_LOCK_TIMEOUT`` seconds (default 10), then exits 2 with
"another ropedoctor fix is writing <file>". Where no sidecar can be made (a folder we may not write), the
file itself is locked: nothing can be renamed into such a folder anyway, only edited in place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ropedoctor.errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows: no advisory locks; writes stay atomic, runs may race)
    fcntl = None  # type: ignore[assignment]

LOCK_SUFFIX = ".ropedoctor.lock"
DEFAULT_WAIT = 10.0
_POLL = 0.05


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + LOCK_SUFFIX)


def _wait_limit() -> float:
    try:
        return max(0.0, float(os.environ.get("ROPEDOCTOR_LOCK_TIMEOUT", DEFAULT_WAIT)))
    except ValueError:
        return DEFAULT_WAIT


def _flock(fd: int, deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return True  # a file system without flock: no lock to be had, nothing to wait for
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)


def _open_sidecar(sidecar: Path, where: str) -> int | None:
    """The sidecar's descriptor; None where none can be made (the file itself is locked then); InputError for a
    sidecar in the way (a folder of that name) or a file system that cannot take one (no free inodes)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(sidecar, flags, 0o600)
    except OSError as exc:
        # ENAMETOOLONG: a file name of 240 bytes has no room for the suffix
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.ELOOP,
                         errno.ENAMETOOLONG):
            return None
        if exc.errno == errno.EISDIR:
            raise InputError(where, f"its lock file {sidecar.name} is a folder; remove it") from None
        raise InputError(where, f"cannot create its lock file {sidecar.name}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def writing(path: Path, *, wait: float | None = None) -> Iterator[None]:
    """Hold the write lock of ``path`` for the ``with`` block; InputError when another run keeps it."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = Path(path)
    where = str(path)
    deadline = time.monotonic() + (_wait_limit() if wait is None else wait)
    sidecar = lock_path(path)
    busy = InputError(where, "another ropedoctor fix is writing this file (its lock "
                             f"{sidecar.name} is held); try again when it is done")
    while True:
        fd = _open_sidecar(sidecar, where)
        if fd is None:  # no sidecar possible: lock the file itself, when it exists
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                yield  # the writer will report why it cannot write there
                return
            try:
                if not _flock(fd, deadline):
                    raise busy
                yield
            finally:
                os.close(fd)
            return
        try:
            if not _flock(fd, deadline):
                raise busy
            try:
                current = os.stat(sidecar, follow_symlinks=False)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(current, os.fstat(fd)):
                try:
                    yield
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(sidecar)  # before the lock goes: a waiter on this inode will see it is stale
                return
        finally:
            os.close(fd)
        # the holder we waited for removed the sidecar: lock the new one
