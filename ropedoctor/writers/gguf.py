"""Changing GGUF metadata: a same-size patch in place, or a streamed rewrite through a temp file.

Pure ``struct`` and file I/O (no numpy, no gguf), driven by the offsets and sizes that
sources/gguf_header.py records for every value.

* ``edit_in_place`` overwrites values whose new encoding has the same type and the same size
  (fixed-size scalars, a string of the same byte length, an array of fixed-size items of the same
  count). It is gguf-set-metadata done right: numbers in the file's byte order, a bool only from a
  Python bool (gguf-set-metadata converts with ``np.bool_(text)``, and ``np.bool_("false")`` is
  True), and before anything is written a JSON backup of the exact bytes it overwrites, which
  ``undo_in_place`` puts back.
* ``rewrite`` writes a new file: the fixed header with the new key count; the KV pairs copied byte
  for byte except the changed ones (a changed key keeps its place, a new key goes last, a removed
  key is dropped); the tensor infos copied (their offsets are relative to the data section, so they
  stay valid); zero padding to the alignment; then everything from the source's data section to its
  end (tensor data and the padding between tensors, as they are), streamed in ``chunk``-sized pieces.

Crash safety of ``rewrite``: the output goes to ``.<name>.tmp-<pid>`` in the destination's folder
and is fsynced, read back with read_gguf and checked, and only then renamed over the destination
(and the folder fsynced). Whoever opens the destination sees the old file or the complete new one,
never a mix, also when the destination is the source. A writer killed before the rename leaves its
temp file behind: the name does not end in ``.gguf``, so ropedoctor's scans and ``*.gguf`` globs
ignore it, and the next rewrite to the same destination deletes it. A temp file is held under an
exclusive ``flock`` while it is written, so only the temp files of dead writers are deleted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from io import FileIO
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ropedoctor.errors import InputError
from ropedoctor.gguf_keys import ALIGNMENT, ValueType
from ropedoctor.sources.gguf_header import GGUF_MAGIC, GGUFHeader, GGUFValue, read_gguf, value_type_name
from ropedoctor.writers.atomic import fsync_folder, remove_dead_temps

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, so stale temp files are left alone
    fcntl = None  # type: ignore[assignment]

Mode = Literal["in-place", "rewrite"]
Progress = Callable[[int, int], None]

FIXED_HEADER_SIZE = 24  # magic, u32 version, u64 tensor count, u64 kv count
MAX_ARRAY_DEPTH = 8  # as sources/gguf_header.py reads them
LLAMA_OVERRIDE_MAX = 127  # llama.cpp's --override-kv: key and str value are at most 127 bytes
VERIFY_SAMPLE = 1 << 20  # bytes of the data section compared at each end after a rewrite

# struct letter and size of every fixed-size value type
_SCALARS: dict[int, tuple[str, int]] = {
    ValueType.UINT8: ("B", 1),
    ValueType.INT8: ("b", 1),
    ValueType.UINT16: ("H", 2),
    ValueType.INT16: ("h", 2),
    ValueType.UINT32: ("I", 4),
    ValueType.INT32: ("i", 4),
    ValueType.FLOAT32: ("f", 4),
    ValueType.BOOL: ("?", 1),
    ValueType.UINT64: ("Q", 8),
    ValueType.INT64: ("q", 8),
    ValueType.FLOAT64: ("d", 8),
}
_FLOATS = (ValueType.FLOAT32, ValueType.FLOAT64)
_VARIABLE = (ValueType.STRING, ValueType.ARRAY)
# copy_file_range errors that mean "not here, copy through a buffer instead"
_NO_COPY_FILE_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF}
# Set to False to always copy through a user-space buffer (tests, and filesystems that misbehave).
USE_COPY_FILE_RANGE = hasattr(os, "copy_file_range")
# Set to False to read the holes of a sparse source like any data.
_SEEK_DATA: int = getattr(os, "SEEK_DATA", -1)
_SEEK_HOLE: int = getattr(os, "SEEK_HOLE", -1)
USE_SEEK_DATA = _SEEK_DATA >= 0 and _SEEK_HOLE >= 0
ZERO_BUFFER = 128 << 10  # zeros written at a time for a hole (as cp does)
# Set to False not to start the writeback of each WRITEBACK_STEP bytes as soon as they are written.
USE_WRITEBACK = sys.platform.startswith("linux")
WRITEBACK_STEP = 64 << 20
_SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h


@dataclass(frozen=True)
class KVChange:
    """Set ``key`` to ``value`` of GGUF type ``type``; ``value=None`` removes the key.

    ``array_type`` is the element type of an ARRAY value; when None it is inferred the way gguf-py
    does (bool → BOOL, int → INT32, float → FLOAT32, str → STRING, list → ARRAY).
    """

    key: str  # full key, e.g. "qwen2.context_length"
    type: int  # ValueType code; ignored for removals
    value: Any  # new value; None removes the key
    array_type: int | None = None

    @property
    def removes(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class GGUFEdit:
    mode: Mode
    changes: list[KVChange]
    reason: str | None = None  # why a rewrite is needed (None for in-place)


@dataclass(frozen=True)
class _Prepared:
    change: KVChange
    payload: bytes | None  # the encoded value (None: removal)
    array_type: int | None  # effective element type of an array


# --- encoding ---------------------------------------------------------------------------------


def _type_name(code: int | None) -> str:
    return "none" if code is None else value_type_name(code)


def _infer_type(item: Any) -> int:
    """gguf-py's GGUFValueType.get_type."""
    if isinstance(item, str):
        return ValueType.STRING
    if isinstance(item, (list, tuple)):
        return ValueType.ARRAY
    if isinstance(item, bool):
        return ValueType.BOOL
    if isinstance(item, float):
        return ValueType.FLOAT32
    if isinstance(item, int):
        return ValueType.INT32
    raise ValueError(f"cannot infer a GGUF type for {type(item).__name__} {item!r}")


def _check_scalar(vtype: int, value: Any) -> None:
    if vtype == ValueType.BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"a BOOL value must be a Python bool, not {type(value).__name__} {value!r}")
    elif vtype in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"a {value_type_name(vtype)} value must be a number, not {type(value).__name__} {value!r}")
    elif isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"a {value_type_name(vtype)} value must be an int, not {type(value).__name__} {value!r}")


def _pack(fmt: str, values: Sequence[Any], vtype: int) -> bytes:
    try:
        return struct.pack(fmt, *values)
    except (struct.error, OverflowError) as exc:
        shown = values[0] if len(values) == 1 else "an element"
        raise ValueError(f"{shown} does not fit a {value_type_name(vtype)} ({exc})") from None


def _encode_string(value: Any, order: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"a STRING value must be a str, not {type(value).__name__} {value!r}")
    data = value.encode("utf-8")  # UnicodeEncodeError (a ValueError) for lone surrogates
    return struct.pack(order + "Q", len(data)) + data


def _array_type(value: Any, given: int | None) -> int:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"an ARRAY value must be a list, not {type(value).__name__}")
    if given is not None:
        if given not in _SCALARS and given not in _VARIABLE:
            raise ValueError(f"unknown GGUF array element type {given}")
        return given
    if not value:
        raise ValueError("the element type of an empty array cannot be inferred; give array_type")
    inferred = _infer_type(value[0])
    for item in value:
        if _infer_type(item) != inferred:
            raise ValueError(f"array elements must all have one type ({_type_name(inferred)} and {item!r})")
    return inferred


def _encode_array(value: Any, order: str, given: int | None, depth: int) -> bytes:
    if depth > MAX_ARRAY_DEPTH:
        raise ValueError(f"arrays nested more than {MAX_ARRAY_DEPTH} deep")
    item_type = _array_type(value, given)
    head = struct.pack(order + "IQ", item_type, len(value))
    if item_type == ValueType.STRING:
        return head + b"".join(_encode_string(item, order) for item in value)
    if item_type == ValueType.ARRAY:
        return head + b"".join(_encode_array(item, order, None, depth + 1) for item in value)
    for item in value:
        _check_scalar(item_type, item)
    fmt, _size = _SCALARS[item_type]
    return head + _pack(f"{order}{len(value)}{fmt}", value, item_type)


def encode_value(vtype: int, value: Any, order: str = "<", array_type: int | None = None) -> bytes:
    """The payload of a GGUF value (what follows the key and its u32 type) in byte order ``order``.

    ValueError for a value that does not fit the type (a str for BOOL, 300 for UINT8, ...).
    """
    if order not in ("<", ">"):
        raise ValueError(f"byte order must be '<' or '>', not {order!r}")
    if vtype == ValueType.ARRAY:
        return _encode_array(value, order, array_type, depth=1)
    if vtype == ValueType.STRING:
        return _encode_string(value, order)
    if vtype not in _SCALARS:
        raise ValueError(f"unknown GGUF value type {vtype}")
    _check_scalar(vtype, value)
    return _pack(order + _SCALARS[vtype][0], (value,), vtype)


def _entry(key: str, vtype: int, payload: bytes, order: str) -> bytes:
    """A whole KV pair: key string, u32 value type, value."""
    return _encode_string(key, order) + struct.pack(order + "I", vtype) + payload


def _prefix(key: str, entry: GGUFValue, order: str) -> bytes:
    """The bytes in front of ``entry.offset``: the key string and the value type."""
    return _encode_string(key, order) + struct.pack(order + "I", entry.type)


def _prepare(header: GGUFHeader, changes: Sequence[KVChange]) -> list[_Prepared]:
    prepared: list[_Prepared] = []
    seen: set[str] = set()
    for change in changes:
        key = change.key
        if not isinstance(key, str) or not key:
            raise ValueError(f"a GGUF key must be a non-empty str, not {key!r}")
        key.encode("utf-8")
        if key in seen:
            raise ValueError(f"{key} is changed twice")
        seen.add(key)
        if key == ALIGNMENT:
            raise ValueError(f"{ALIGNMENT} cannot be changed: it moves every tensor (re-convert the model instead)")
        if change.removes:
            prepared.append(_Prepared(change, None, None))
            continue
        item_type = _array_type(change.value, change.array_type) if change.type == ValueType.ARRAY else None
        try:
            payload = encode_value(change.type, change.value, header.byte_order, item_type)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        prepared.append(_Prepared(change, payload, item_type))
    return prepared


def _rewrite_reason(header: GGUFHeader, prepared: Sequence[_Prepared]) -> str | None:
    """Why the changes cannot be patched in place; None when they can."""
    for item in prepared:
        change = item.change
        current = header.kv.get(change.key)
        if item.payload is None:
            if current is not None:
                return f"{change.key} is removed"
            continue  # removing an absent key changes nothing
        if current is None:
            return f"{change.key} is new"
        if current.type != change.type:
            return f"{change.key} changes type from {_type_name(current.type)} to {_type_name(change.type)}"
        if change.type == ValueType.ARRAY:
            if current.array_type != item.array_type:
                return (f"{change.key} changes from an array of {_type_name(current.array_type)} "
                        f"to an array of {_type_name(item.array_type)}")
            if item.array_type in _VARIABLE:
                return f"{change.key} is an array of {_type_name(item.array_type)}"
        if len(item.payload) != current.size:
            return f"{change.key} changes size from {current.size} to {len(item.payload)} bytes"
    return None


def plan_edit(header: GGUFHeader, changes: Sequence[KVChange]) -> GGUFEdit:
    """``in-place`` when every change sets an existing key to a value of the same type and encoded size
    (a removal of an absent key changes nothing); ``rewrite`` otherwise. ValueError for invalid changes."""
    reason = _rewrite_reason(header, _prepare(header, changes))
    return GGUFEdit("in-place" if reason is None else "rewrite", list(changes), reason)


def preview(header: GGUFHeader, changes: Sequence[KVChange]) -> GGUFHeader:
    """The header that ``changes`` give, as reading the written file would return it (each new value decoded
    from its encoding, so a FLOAT32 is rounded as the file will hold it): what ``fix --dry-run`` checks, so
    that it predicts the findings and exit code of the real write. ValueError for invalid changes."""
    kv = dict(header.kv)
    for item in _prepare(header, changes):
        key = item.change.key
        if item.payload is None:
            kv.pop(key, None)
            continue
        old = kv.get(key)
        length = len(item.change.value) if item.change.type == ValueType.ARRAY else None
        kv[key] = GGUFValue(item.change.type, _decoded(item, header.byte_order), item.array_type, length,
                            old.offset if old is not None else 0, len(item.payload))
    return replace(header, kv=kv)


def _decoded(item: _Prepared, order: str) -> Any:
    vtype, value = item.change.type, item.change.value
    if vtype in _SCALARS:
        assert item.payload is not None
        return struct.unpack(order + _SCALARS[vtype][0], item.payload)[0]
    if vtype == ValueType.ARRAY and item.array_type in _SCALARS:
        fmt = _SCALARS[item.array_type][0]
        return [struct.unpack(order + fmt, struct.pack(order + fmt, v))[0] for v in value]
    return list(value) if isinstance(value, tuple) else value


def rewrite_backup(path: Path) -> Path:
    """Where a rewrite keeps the original: ``<file>.bak`` beside the file itself (a symlink resolved, so the
    backup is a hard link on the same file system and holds the file's bytes, not the link's)."""
    real = Path(os.path.realpath(path))
    return real.with_name(real.name + ".bak")


def stale_backup_link(path: Path) -> bool:
    """Whether ``<file>.bak`` is the file itself: the hard link of a rewrite killed before its rename. An
    in-place edit would then change the "backup" too; a rewrite leaves it the original (a new inode)."""
    return _same_inode(rewrite_backup(path), Path(os.path.realpath(path)))


def link_backup(path: Path) -> Path:
    """Keep the original of ``path`` as ``rewrite_backup(path)``, a hard link (no copy), before a rewrite."""
    real = Path(os.path.realpath(path))
    backup = rewrite_backup(path)
    if _same_inode(backup, real):
        return backup  # the link a run killed before its rename left: the original is still both names
    if os.path.lexists(backup):
        raise InputError(str(backup), "backup already exists; remove it or use --no-backup")
    try:
        os.link(real, backup, follow_symlinks=False)
    except OSError as exc:
        raise InputError(str(backup), f"cannot make the backup: {_why(exc)}") from None
    return backup


def _same_inode(left: Path, right: Path) -> bool:
    try:
        return os.path.samestat(os.stat(left, follow_symlinks=False), os.stat(right))
    except OSError:
        return False


# --- small file helpers -----------------------------------------------------------------------


def _why(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    return exc.strerror or str(exc)


def _read_at(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    parts: list[bytes] = []
    while size:
        piece = handle.read(size)
        if not piece:
            break
        parts.append(piece)
        size -= len(piece)
    return b"".join(parts)


def _write_at(handle: BinaryIO, offset: int, data: bytes) -> None:
    handle.seek(offset)
    _write_all(handle, data)


def _write_all(handle: BinaryIO, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = handle.write(view)
        if not written:
            raise OSError(errno.EIO, "short write")
        view = view[written:]


def _try_lock(fd: int) -> bool:
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _still_named(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _check_fixed_header(handle: BinaryIO, header: GGUFHeader, where: str) -> None:
    head = _read_at(handle, 0, FIXED_HEADER_SIZE)
    expected = GGUF_MAGIC + struct.pack(header.byte_order + "IQQ", header.version, len(header.tensors),
                                        len(header.kv))
    if head != expected:
        raise InputError(where, "the file changed since its header was read (magic, version or counts differ); "
                                "read it again")


def _check_prefix(handle: BinaryIO, header: GGUFHeader, key: str, entry: GGUFValue, where: str) -> None:
    prefix = _prefix(key, entry, header.byte_order)
    start = entry.offset - len(prefix)
    if start < FIXED_HEADER_SIZE or _read_at(handle, start, len(prefix)) != prefix:
        raise InputError(where, f"the file changed since its header was read ({key!r} is no longer at byte {start}); "
                                f"read it again")


# --- in place ---------------------------------------------------------------------------------


def _old_bytes(handle: BinaryIO, header: GGUFHeader, key: str, entry: GGUFValue, where: str) -> bytes:
    """The current bytes of ``key``'s value, checked against what the header says is there."""
    _check_prefix(handle, header, key, entry, where)
    old = _read_at(handle, entry.offset, entry.size)
    if len(old) != entry.size:
        raise InputError(where, f"file is truncated inside the value of {key!r}")
    order = header.byte_order
    if entry.type == ValueType.STRING:
        consistent = struct.unpack_from(order + "Q", old)[0] == entry.size - 8
    elif entry.type == ValueType.ARRAY:
        item_type, count = struct.unpack_from(order + "IQ", old)
        fixed = _SCALARS.get(item_type)
        consistent = (item_type, count) == (entry.array_type, entry.length) and fixed is not None \
            and 12 + count * fixed[1] == entry.size
    else:
        consistent = entry.type in _SCALARS and _SCALARS[entry.type][1] == entry.size
    if not consistent:
        raise InputError(where, f"the file changed since its header was read (the value of {key!r} differs); "
                                f"read it again")
    return old


def _write_backup(backup: Path, record: dict[str, Any]) -> None:
    """Write ``record`` as JSON to ``backup`` atomically; InputError if ``backup`` exists."""
    where = str(backup)
    if os.path.lexists(backup):
        raise InputError(where, "backup file already exists; undo the earlier edit or remove the backup first")
    data = (json.dumps(record, indent=1) + "\n").encode("utf-8")
    remove_dead_temps(backup)
    temp = backup.with_name(f".{backup.name}.tmp-{os.getpid()}")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        try:
            with open(fd, "wb", buffering=0, closefd=False) as handle:
                _write_all(handle, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, backup)  # fails if the backup exists: no check-then-write race
        except FileExistsError:
            raise InputError(where, "backup file already exists; undo the earlier edit or remove the backup "
                                    "first") from None
        except OSError:  # no hard links on this filesystem
            if os.path.lexists(backup):
                raise InputError(where, "backup file already exists") from None
            os.replace(temp, backup)
        fsync_folder(backup.parent)
    except OSError as exc:
        raise InputError(where, f"cannot write the backup: {_why(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


def edit_in_place(path: Path, header: GGUFHeader, changes: Sequence[KVChange], *, backup: Path | None) -> None:
    """Overwrite the values of existing keys with values of the same type and size.

    ``header`` must be ``read_gguf(path)``; the bytes in front of every value (its key and type)
    are checked before anything is written. With ``backup``, the overwritten bytes are saved there
    first as JSON (``{"file", "size", "mtime", "mtime_ns", "patches": [{"offset", "old_hex",
    "new_hex", "key"}]}``), written atomically; an existing backup is refused. ValueError when the
    changes need a rewrite (see plan_edit); InputError when the file cannot be edited.
    """
    path = Path(path)
    where = str(path)
    prepared = _prepare(header, changes)
    reason = _rewrite_reason(header, prepared)
    if reason is not None:
        raise ValueError(f"{path} cannot be edited in place: {reason}; use rewrite()")
    if backup is not None and os.path.lexists(backup) and not _unapplied_backup(path, Path(backup)):
        raise InputError(str(backup), "backup file already exists; undo the earlier edit or remove the backup first")
    try:
        with open(path, "r+b", buffering=0) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InputError(where, "is not a regular file; fix writes regular files only")
            _check_fixed_header(handle, header, where)
            patches: list[tuple[str, int, bytes, bytes]] = []
            for item in prepared:
                if item.payload is None:
                    continue  # removal of an absent key
                key = item.change.key
                entry = header.kv[key]
                patches.append((key, entry.offset, _old_bytes(handle, header, key, entry, where), item.payload))
            if backup is not None and os.path.lexists(backup):
                os.unlink(backup)  # an unapplied record of an edit that never happened (see _unapplied_backup)
            if backup is not None:
                _write_backup(Path(backup), {
                    "file": str(path.resolve()), "size": info.st_size, "mtime": info.st_mtime,
                    "mtime_ns": info.st_mtime_ns,
                    "patches": [{"offset": offset, "old_hex": old.hex(), "new_hex": new.hex(), "key": key}
                                for key, offset, old, new in patches],
                })
            _write_patches(handle, patches)
            os.fsync(handle.fileno())
    except OSError as exc:
        raise InputError(where, _why(exc)) from None


# Patches within this span are written with one write() from one buffer: a run killed at any moment leaves
# all of them or none (a RoPE key set is a few hundred bytes of one header). Wider spans are written one by one.
_ONE_WRITE_SPAN = 1 << 20


def _write_patches(handle: BinaryIO, patches: list[tuple[str, int, bytes, bytes]]) -> None:
    if not patches:
        return
    first = min(offset for _k, offset, _o, _n in patches)
    end = max(offset + len(new) for _k, offset, _o, new in patches)
    if end - first > _ONE_WRITE_SPAN:
        for _key, offset, _old, new in patches:
            _write_at(handle, offset, new)
        return
    span = bytearray(_read_at(handle, first, end - first))
    for _key, offset, _old, new in patches:
        span[offset - first:offset - first + len(new)] = new
    _write_at(handle, first, bytes(span))


def _unapplied_backup(path: Path, backup: Path) -> bool:
    """Whether ``backup`` records an in-place edit of ``path`` that never reached it: same size, and every
    patched value still holds its old bytes. A run killed after saving its backup and before writing leaves
    that; the next run replaces it instead of refusing."""
    try:
        size, _mtime_ns, patches = _load_backup(backup)
        with open(path, "rb", buffering=0) as handle:
            if os.fstat(handle.fileno()).st_size != size:
                return False
            return any(old != new for _k, _o, old, new in patches) and all(
                _read_at(handle, offset, len(old)) == old for _key, offset, old, _new in patches)
    except (InputError, OSError):
        return False


def _load_backup(backup: Path) -> tuple[int, int | None, list[tuple[str, int, bytes, bytes]]]:
    where = str(backup)
    try:
        record = json.loads(Path(backup).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(where, _why(exc)) from None
    except ValueError:
        raise InputError(where, "not a ropedoctor backup (not valid JSON)") from None
    try:
        size = record["size"]
        mtime_ns = record.get("mtime_ns")
        patches = [(str(p["key"]), p["offset"], bytes.fromhex(p["old_hex"]), bytes.fromhex(p["new_hex"]))
                   for p in record["patches"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InputError(where, "not a ropedoctor backup (fields missing or malformed)") from None
    if not isinstance(size, int) or not isinstance(mtime_ns, (int, type(None))) or any(
            not isinstance(offset, int) or offset < 0 or len(old) != len(new) for _k, offset, old, new in patches):
        raise InputError(where, "not a ropedoctor backup (fields malformed)")
    return size, mtime_ns, patches


def undo_in_place(path: Path, backup: Path) -> None:
    """Put back the bytes an ``edit_in_place`` overwrote, then delete ``backup``.

    Refused (InputError, nothing written) unless the file has the size recorded in the backup and
    every patched value holds what the edit wrote (or, after an edit cut short, the old bytes
    again). The file's modification time is restored too.
    """
    path, backup = Path(path), Path(backup)
    where = str(path)
    size, mtime_ns, patches = _load_backup(backup)
    try:
        with open(path, "r+b", buffering=0) as handle:
            info = os.fstat(handle.fileno())
            if info.st_size != size:
                raise InputError(where, f"is {info.st_size} bytes but the backup {backup} is of a {size}-byte file; "
                                        f"not restoring")
            for key, offset, old, new in patches:
                if _read_at(handle, offset, len(new)) not in (new, old):
                    raise InputError(where, f"{key} at byte {offset} no longer holds the value the edit wrote; "
                                            f"not restoring")
            for _key, offset, old, _new in reversed(patches):
                _write_at(handle, offset, old)
            os.fsync(handle.fileno())
        if mtime_ns is not None:
            os.utime(path, ns=(info.st_atime_ns, mtime_ns))
        os.unlink(backup)
        fsync_folder(backup.parent)
    except OSError as exc:
        raise InputError(where, _why(exc)) from None


# --- rewrite ----------------------------------------------------------------------------------


class _Copier:
    """Writes the new file: bytes, and ranges of the source.

    A range is copied with copy_file_range (no user-space buffer), or else through one reused
    buffer of ``chunk`` bytes. Holes of a sparse source (SEEK_DATA/SEEK_HOLE) are not read: zeros
    are written for them from a 128 KiB buffer, as ``cp --sparse=never`` does, so the new file is
    never sparse but costs no reads of zero pages. On Linux the writeback of every 64 MiB written
    is started right away (sync_file_range), which takes about a third off a multi-GB rewrite,
    fsync included; the pages stay cached.
    """

    def __init__(self, src: FileIO, dst: FileIO, chunk: int, total: int, progress: Progress | None) -> None:
        self.src, self.dst = src, dst
        self.chunk, self.total, self.progress = chunk, total, progress
        self.done = 0
        self.kernel = USE_COPY_FILE_RANGE
        self.holes = USE_SEEK_DATA
        self.buffer: bytearray | None = None
        self.zeros: bytes | None = None
        self.writeback = _sync_file_range() if USE_WRITEBACK else None
        self.flushed = 0

    def report(self, count: int) -> None:
        self.done += count
        if self.writeback is not None and self.done - self.flushed >= WRITEBACK_STEP:
            self._start_writeback()
        if self.progress is not None:
            self.progress(self.done, self.total)

    def _start_writeback(self) -> None:
        """Start writing the last WRITEBACK_STEP bytes to disk without waiting (sync_file_range), so
        that the final fsync has little left to do: the disk works while the copy goes on."""
        assert self.writeback is not None
        if self.writeback(self.dst.fileno(), self.flushed, self.done - self.flushed, _SYNC_FILE_RANGE_WRITE) != 0:
            self.writeback = None  # not supported here: the final fsync does it all
        self.flushed = self.done

    def write(self, data: bytes) -> None:
        for start in range(0, len(data), self.chunk):
            piece = data[start:start + self.chunk]
            _write_all(self.dst, piece)
            self.report(len(piece))

    def copy(self, offset: int, length: int) -> None:
        end = offset + length
        while offset < end:
            hole, want = self._extent(offset, min(end - offset, self.chunk))
            if hole:
                self._write_zeros(want)
                got = want
            else:
                copied = self._kernel_copy(offset, want) if self.kernel else None
                if not copied:  # not supported here, or 0 (some filesystems say 0 for "cannot"): ask read()
                    self.kernel = False
                    copied = self._buffer_copy(offset, want)
                if copied == 0:
                    raise _Truncated(offset)
                got = copied
            offset += got
            self.report(got)

    def _extent(self, offset: int, want: int) -> tuple[bool, int]:
        """Whether the source has a hole at ``offset``, and for how many bytes (at most ``want``) that holds."""
        if not self.holes:
            return False, want
        fd = self.src.fileno()
        try:
            data = os.lseek(fd, offset, _SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # SEEK_DATA not supported here
                self.holes = False
                return False, want
            size = os.fstat(fd).st_size  # ENXIO: no data from offset on
            return (True, min(want, size - offset)) if offset < size else (False, want)
        if data > offset:
            return True, min(want, data - offset)
        try:
            hole = os.lseek(fd, offset, _SEEK_HOLE)
        except OSError:
            self.holes = False
            return False, want
        return False, min(want, hole - offset) if hole > offset else want

    def _write_zeros(self, count: int) -> None:
        if self.zeros is None:
            self.zeros = bytes(min(self.chunk, ZERO_BUFFER))
        view = memoryview(self.zeros)
        while count > 0:
            piece = view[:count]
            _write_all(self.dst, piece)
            count -= len(piece)

    def _kernel_copy(self, offset: int, want: int) -> int | None:
        try:
            return os.copy_file_range(self.src.fileno(), self.dst.fileno(), want, offset)
        except OSError as exc:
            if exc.errno not in _NO_COPY_FILE_RANGE:
                raise
            self.kernel = False
            return None

    def _buffer_copy(self, offset: int, want: int) -> int:
        if self.buffer is None:
            self.buffer = bytearray(self.chunk)
        view = memoryview(self.buffer)[:want]
        self.src.seek(offset)
        got = self.src.readinto(view)
        if got:
            _write_all(self.dst, view[:got])
        return int(got or 0)


_SYNC_FILE_RANGE: list[Callable[[int, int, int, int], int] | None] = []


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's sync_file_range (Linux), loaded on first use; None where there is none."""
    if not _SYNC_FILE_RANGE:
        function: Callable[[int, int, int, int], int] | None = None
        try:
            import ctypes

            found = ctypes.CDLL(None, use_errno=True).sync_file_range
            found.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            found.restype = ctypes.c_int
            function = found
        except (OSError, AttributeError, ImportError):
            pass
        _SYNC_FILE_RANGE.append(function)
    return _SYNC_FILE_RANGE[0]


class _Truncated(Exception):
    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left) and math.isnan(right):
        return True
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def _layout(header: GGUFHeader, prepared: Sequence[_Prepared]) -> tuple[list[bytes | tuple[int, int]], list[str]]:
    """The pieces of the new header after its fixed part (bytes to write, (start, end) ranges of the
    source to copy) and the new key order."""
    order = header.byte_order
    changed = {item.change.key: item for item in prepared}
    pieces: list[bytes | tuple[int, int]] = []
    keys: list[str] = []
    run: int | None = None  # start of a run of unchanged entries
    end = FIXED_HEADER_SIZE
    for key, entry in header.kv.items():
        start = entry.offset - 8 - len(key.encode("utf-8")) - 4
        item = changed.get(key)
        if item is None:
            run = start if run is None else run
            keys.append(key)
        else:
            if run is not None:
                pieces.append((run, start))
                run = None
            if item.payload is not None:
                pieces.append(_entry(key, item.change.type, item.payload, order))
                keys.append(key)
        end = entry.offset + entry.size
    if run is not None:
        pieces.append((run, end))
    for item in prepared:
        if item.change.key not in header.kv and item.payload is not None:
            pieces.append(_entry(item.change.key, item.change.type, item.payload, order))
            keys.append(item.change.key)
    pieces.append((end, header.header_size))  # tensor infos, unchanged
    return pieces, keys


def _remove_stale_temps(out: Path) -> None:
    """Delete ``.<name>.tmp-<pid>`` files next to ``out`` that no live writer holds locked."""
    if fcntl is None:  # pragma: no cover
        return
    prefix = f".{out.name}.tmp-"
    try:
        names = [entry.name for entry in os.scandir(out.parent)]
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix) or not name[len(prefix):].isdigit():
            continue
        candidate = out.parent / name
        try:
            fd = os.open(candidate, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _try_lock(fd) and _still_named(fd, candidate):
                os.unlink(candidate)
        except OSError:
            pass
        finally:
            os.close(fd)


def _create_temp(out: Path, temp: Path) -> int:
    """Create and lock ``out``'s temp file (O_EXCL); retried while a concurrent cleaner races for the name."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _attempt in range(50):
        try:
            fd = os.open(temp, flags, 0o600)
        except FileExistsError:  # left by a dead process that had our pid
            _remove_stale_temps(out)
            time.sleep(0.01)
            continue
        if _try_lock(fd) and _still_named(fd, temp):
            return fd
        os.close(fd)
        time.sleep(0.01)
    raise InputError(str(temp), "cannot create the temp file: the name stays taken")


def _verify(new_path: Path, dst: FileIO, src: FileIO, header: GGUFHeader, prepared: Sequence[_Prepared],
            keys: list[str], data_offset: int, total: int) -> str | None:
    """What is wrong with the written file, or None."""
    try:
        new = read_gguf(new_path)
    except InputError as exc:
        return exc.why
    if (new.version, new.byte_order, new.alignment) != (header.version, header.byte_order, header.alignment):
        return "version, byte order or alignment differ"
    if new.tensors != header.tensors:
        return "tensor infos differ"
    if list(new.kv) != keys:
        return "keys differ"
    if new.data_offset != data_offset or os.fstat(dst.fileno()).st_size != total:
        return "data section misplaced"
    changed = {item.change.key: item for item in prepared}
    for key in keys:
        entry = new.kv[key]
        item = changed.get(key)
        if item is not None:
            if entry.type != item.change.type or _read_at(dst, entry.offset, entry.size) != item.payload:
                return f"{key} does not hold the new value"
            continue
        old = header.kv[key]
        if (entry.type, entry.size, entry.array_type, entry.length) != (old.type, old.size, old.array_type,
                                                                         old.length) or not _same(old.value, entry.value):
            return f"{key} changed"
    length = total - data_offset
    for where in sorted({0, max(0, length - VERIFY_SAMPLE)}):
        count = min(VERIFY_SAMPLE, length - where)
        if _read_at(dst, data_offset + where, count) != _read_at(src, header.data_offset + where, count):
            return f"tensor data differs at data byte {where}"
    return None


def rewrite(path: Path, header: GGUFHeader, changes: Sequence[KVChange], out: Path, *,
            progress: Progress | None = None, chunk: int = 16 * 2**20) -> list[str]:
    """Write ``path`` with ``changes`` applied to ``out`` (which may be ``path``), streaming the tensor data.

    ``header`` must be ``read_gguf(path)``. The new file is built in ``.<out name>.tmp-<pid>`` next to
    ``out``, fsynced, read back and checked, then renamed over ``out``: ``out`` is never seen half
    written. Stale temp files of killed writers are deleted first. ``progress(done, total)`` is
    called with the bytes written so far. ValueError for invalid changes; InputError for anything
    else (the temp file is removed and the source is untouched).

    ``out`` must be a regular file or not exist: a device or a named pipe is refused (renaming over
    ``/dev/null`` as root would replace it). An existing ``out`` keeps its mode, and its owner and group
    where this process may set them (root may; others may keep a group they belong to); the notes returned
    say what could not be kept.
    """
    path, out = Path(path), Path(out)
    if chunk < 1:
        raise ValueError(f"chunk must be positive, not {chunk}")
    prepared = _prepare(header, changes)
    if out.is_symlink():  # write the file the link points to, not over the link
        out = Path(os.path.realpath(out))
    where, target = str(path), str(out)
    order = header.byte_order
    try:
        src = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below, after the rename
    except OSError as exc:
        raise InputError(where, _why(exc)) from None
    with src:
        try:
            info = os.fstat(src.fileno())
            _check_fixed_header(src, header, where)
            for item in prepared:
                if item.change.key in header.kv:
                    _check_prefix(src, header, item.change.key, header.kv[item.change.key], where)
        except OSError as exc:
            raise InputError(where, _why(exc)) from None
        if header.tensors:
            needed = header.data_offset + max(t.offset + t.n_bytes for t in header.tensors)
            if info.st_size < needed:
                raise InputError(where, f"file is truncated: the tensor data needs {needed} bytes, "
                                        f"the file has {info.st_size}")
        data_length = max(0, info.st_size - header.data_offset)  # a file without tensors may end unpadded
        pieces, keys = _layout(header, prepared)
        fixed = GGUF_MAGIC + struct.pack(order + "IQQ", header.version, len(header.tensors), len(keys))
        header_size = len(fixed) + sum(len(p) if isinstance(p, bytes) else p[1] - p[0] for p in pieces)
        data_offset = -(-header_size // header.alignment) * header.alignment
        total = data_offset + data_length
        existing = _existing_target(out, target)
        mode = stat.S_IMODE(existing.st_mode if existing is not None else info.st_mode)
        notes: list[str] = []

        _remove_stale_temps(out)
        temp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        try:
            fd = _create_temp(out, temp)
        except OSError as exc:
            raise InputError(target, f"cannot create {temp.name}: {_why(exc)}") from None
        placed = False
        try:
            with open(fd, "r+b", buffering=0) as dst:
                copier = _Copier(src, dst, chunk, total, progress)
                copier.write(fixed)
                for piece in pieces:
                    if isinstance(piece, bytes):
                        copier.write(piece)
                    else:
                        copier.copy(piece[0], piece[1] - piece[0])
                copier.write(bytes(data_offset - header_size))
                copier.copy(header.data_offset, data_length)
                os.fsync(dst.fileno())
                problem = _verify(temp, dst, src, header, prepared, keys, data_offset, total)
                if problem is not None:
                    raise InputError(target, f"the rewritten file failed its check ({problem}); "
                                             f"{path} is unchanged")
                if existing is not None:
                    notes = _keep_owner(dst.fileno(), existing, target)
                os.chmod(temp, mode)  # after chown, which clears the set-id bits
                os.replace(temp, out)
                placed = True
            fsync_folder(out.parent)
        except _Truncated as exc:
            raise InputError(where, f"file ended at byte {exc.offset} while it was copied (did it change?)") from None
        except OSError as exc:
            raise InputError(target, f"rewrite failed: {_why(exc)}; {path} is unchanged") from None
        finally:
            if not placed:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
    return notes


def _existing_target(out: Path, target: str) -> os.stat_result | None:
    """``out``'s stat when it exists; InputError when it is not a regular file (a device, a FIFO, a folder)."""
    try:
        info = os.stat(out)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(target, _why(exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(target, "is a directory")
    if not stat.S_ISREG(info.st_mode):
        from ropedoctor.sources.local_file import special_file_kind

        raise InputError(target, f"is {special_file_kind(info.st_mode)}, not a regular file; fix writes regular "
                                 "files only")
    return info


def _keep_owner(fd: int, original: os.stat_result, target: str) -> list[str]:
    """Give the new file ``original``'s owner and group where allowed; a note for what stays ours."""
    if not hasattr(os, "fchown"):  # pragma: no cover (Windows)
        return []
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) == (original.st_uid, original.st_gid):
        return []
    try:
        os.fchown(fd, original.st_uid, original.st_gid)
        return []
    except OSError:
        pass
    notes = []
    if mine.st_uid != original.st_uid:
        notes.append(f"{target} now belongs to user {mine.st_uid}, not {original.st_uid}: only root may give a file "
                     f"away (run as that user, or chown it back)")
    if mine.st_gid != original.st_gid:
        try:
            os.fchown(fd, -1, original.st_gid)
        except OSError:
            notes.append(f"{target} now has group {mine.st_gid}, not {original.st_gid}: this user is not in it")
    return notes


# --- llama.cpp --override-kv --------------------------------------------------------------------


def _format_float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"llama.cpp cannot take the non-finite float {value}")
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def override_kv_args(changes: Sequence[KVChange]) -> list[str]:
    """llama.cpp's ``--override-kv KEY=TYPE:VALUE`` arguments, one per change.

    Types int (every integer type), float (FLOAT32/FLOAT64), bool and str. llama.cpp cannot
    remove a key or override an array; it keeps keys under 128 bytes and str values under 128
    bytes, and splits the flag's value on commas: ValueError for all of those.
    """
    args: list[str] = []
    for change in changes:
        key = change.key
        if change.removes:
            raise ValueError(f"{key}: llama.cpp's --override-kv cannot remove a key")
        if change.type == ValueType.ARRAY:
            raise ValueError(f"{key}: llama.cpp's --override-kv cannot override an array")
        if not key or len(key.encode("utf-8")) > LLAMA_OVERRIDE_MAX or any(c in key for c in "=,"):
            raise ValueError(f"{key!r}: llama.cpp's --override-kv takes keys of 1 to 127 bytes without '=' or ','")
        try:
            encode_value(change.type, change.value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        value = change.value
        if change.type == ValueType.BOOL:
            text = "bool:" + ("true" if value else "false")
        elif change.type in _FLOATS:
            text = "float:" + _format_float(value)
        elif change.type == ValueType.STRING:
            if len(value.encode("utf-8")) > LLAMA_OVERRIDE_MAX or "," in value:
                raise ValueError(f"{key}: llama.cpp's --override-kv takes str values of at most 127 bytes "
                                 f"without ','")
            text = "str:" + value
        else:
            if not -(2**63) <= value < 2**63:
                raise ValueError(f"{key}: {value} does not fit llama.cpp's 64-bit signed int override")
            text = f"int:{value}"
        args.append(f"{key}={text}")
    return args
