"""Replacing a file so that a crash at any moment leaves the old bytes or the new, never a mix.

The new content goes to a temp file beside the destination (``.<name>.tmp-<pid>-<random>``),
is flushed to disk, takes the original's permission bits (and owner, where allowed), and is
renamed over the destination; the folder is then synced so the rename itself is durable. Any
failure removes the temp file and leaves the original untouched. Every OSError a user can meet
(permission denied, read-only file system, no space left on device) becomes one InputError.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from ropedoctor.errors import InputError

_CHUNK = 1 << 20


def write_atomic(path: Path, data: bytes, *, backup: Path | None = None, follow_symlinks: bool = False) -> None:
    """Replace ``path``'s content with ``data`` atomically, or raise InputError and change nothing.

    ``backup``: first copy the original there (atomically too); an existing backup is never
    overwritten. A symlinked ``path`` is refused unless ``follow_symlinks``, which writes the
    file the link points to. A missing ``path`` is created (there is nothing to back up).
    """
    where = str(path)
    target = _target(path, follow_symlinks)
    original = _original(target, where)
    _check_folder(target.parent, where)
    if original is not None and not _is_writable(target, original):
        raise InputError(where, "is read-only")
    remove_dead_temps(target)
    if backup is not None:
        remove_dead_temps(backup)
    kept_backup = backup is not None and original is not None and _is_copy_of(backup, target)
    if backup is not None and original is not None and os.path.lexists(backup) and not kept_backup:
        raise InputError(where, f"backup {backup} already exists; remove it or use --no-backup")
    made_backup = None
    if backup is not None and original is not None and not kept_backup:
        _write_backup(target, backup, original, where)
        made_backup = backup
    try:
        try:
            temp = _write_temp(target, lambda fd: _write_all(fd, data), original)
            try:
                os.replace(temp, target)
            except BaseException:
                _unlink_quietly(temp)
                raise
        except OSError as exc:
            raise InputError(where, f"cannot write: {_reason(exc)}") from None
    except BaseException:
        if made_backup is not None:  # a copy of an original left as it was: let the next run make it again
            _unlink_quietly(made_backup)
        raise
    fsync_folder(target.parent)


def _is_copy_of(backup: Path, target: Path) -> bool:
    """Whether ``backup`` holds exactly ``target``'s bytes: what a run killed between its backup and its
    rename leaves, since the original is still in place. Such a backup is kept and used, not refused."""
    try:
        if backup.is_symlink() or not backup.is_file() or backup.stat().st_size != target.stat().st_size:
            return False
        with open(backup, "rb") as left, open(target, "rb") as right:
            while True:
                chunk = left.read(_CHUNK)
                if chunk != right.read(_CHUNK):
                    return False
                if not chunk:
                    return True
    except OSError:
        return False


_TEMP_NAME = re.compile(r"\.tmp-(\d+)(-[0-9a-f]{8})?$")


def remove_dead_temps(target: Path) -> None:
    """Delete the temp files (``.<name>.tmp-<pid>[-<hex>]``) of writers of ``target`` that are no longer running:
    a run killed before its rename leaves one. A live writer's temp file is never touched."""
    prefix = f".{target.name}"
    try:
        names = [entry.name for entry in os.scandir(target.parent) if entry.name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        match = _TEMP_NAME.fullmatch(name[len(prefix):])
        if match is None or _running(int(match[1])):
            continue
        _unlink_quietly(target.parent / name)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process: leave its file alone
    return True


def _target(path: Path, follow_symlinks: bool) -> Path:
    if not path.is_symlink():
        return path
    if not follow_symlinks:
        try:
            points_to = os.readlink(path)
        except OSError as exc:
            raise InputError(str(path), _reason(exc)) from None
        raise InputError(str(path), f"is a symlink to {points_to}; pass --follow-symlinks to write through it")
    return Path(os.path.realpath(path))


def _original(target: Path, where: str) -> os.stat_result | None:
    """The destination's stat, None when it does not exist yet; InputError when it is no file."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(where, _reason(exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(where, "is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(where, "is not a regular file")
    return info


def _can(path: Path, mode: int) -> bool:
    effective = os.access in os.supports_effective_ids
    return os.access(path, mode, effective_ids=effective)


def _is_writable(target: Path, info: os.stat_result) -> bool:
    # root passes os.access for any mode, so the owner's write bit is checked as well: a file
    # someone made read-only stays so, even though renaming over it would work.
    return bool(info.st_mode & stat.S_IWUSR) and _can(target, os.W_OK)


def _check_folder(folder: Path, where: str) -> None:
    if not folder.is_dir():
        raise InputError(where, f"folder {folder} does not exist")
    if not _can(folder, os.W_OK | os.X_OK):
        raise InputError(where, f"folder {folder} is not writable")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view[:_CHUNK])
        view = view[written:]


def _write_temp(dest: Path, fill: Callable[[int], None], original: os.stat_result | None) -> Path:
    """A synced temp file beside ``dest`` with the content ``fill`` writes and the original's mode."""
    temp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temp, flags, 0o600 if original is not None else 0o666)
    try:
        try:
            fill(fd)
            if original is not None:
                _copy_mode_and_owner(fd, temp, original)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _unlink_quietly(temp)
        raise
    return temp


def _copy_mode_and_owner(fd: int, temp: Path, original: os.stat_result) -> None:
    mode = stat.S_IMODE(original.st_mode)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:  # pragma: no cover (Windows before 3.13)
        os.chmod(temp, mode)
    same_owner = (original.st_uid, original.st_gid) == (os.geteuid(), os.getegid()) if hasattr(os, "geteuid") else True
    if not same_owner and hasattr(os, "fchown"):
        with contextlib.suppress(OSError):  # only root may give a file away; keeping ours is fine then
            os.fchown(fd, original.st_uid, original.st_gid)


def _write_backup(target: Path, backup: Path, original: os.stat_result, where: str) -> None:
    """Copy ``target`` to ``backup`` atomically, never replacing a file already there."""

    def copy(fd: int) -> None:
        with open(target, "rb") as source:
            while chunk := source.read(_CHUNK):
                _write_all(fd, chunk)

    try:
        temp = _write_temp(backup, copy, original)
        try:
            try:
                os.link(temp, backup)  # fails if backup appeared meanwhile: no clobbering
            except FileExistsError:
                raise InputError(where, f"backup {backup} already exists; remove it or use --no-backup") from None
            except OSError:  # a file system without hard links
                if os.path.lexists(backup):
                    raise InputError(where, f"backup {backup} already exists; remove it or use --no-backup") from None
                os.replace(temp, backup)
        finally:
            _unlink_quietly(temp)
    except OSError as exc:
        raise InputError(where, f"cannot write backup {backup}: {_reason(exc)}") from None
    fsync_folder(backup.parent)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; best effort (some file systems cannot sync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
