"""Reading the header of a GGUF file (metadata and tensor infos), streamed, never the tensor data.

Pure ``struct``: this module is on the start-up path of ``ropedoctor check`` and must not import
numpy or gguf. The few tables it needs mirror ``gguf.constants`` (value types, ggml types and
their block sizes); tests/test_gguf_header.py checks them against the installed gguf package.

Layout (GGUF v2 and v3; v1 used 32-bit counts and is refused)::

    magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
    kv_count x   (string key, u32 value type, value)
    tensor_count x (string name, u32 n_dims, n_dims x u64 ne, u32 ggml type, u64 offset)
    padding to ``general.alignment`` (default 32), then the tensor data

A string is a u64 byte length and UTF-8 bytes; an array is a u32 element type, a u64 count and
the elements. Every number is in the file's byte order; big-endian files are told apart by a
version that reads as a huge number in little-endian.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Protocol

from ropedoctor import gguf_keys as G
from ropedoctor.errors import InputError
from ropedoctor.sources.local_file import open_without_waiting, special_file_kind

GGUF_MAGIC = b"GGUF"
GGUF_DEFAULT_ALIGNMENT = 32
SUPPORTED_VERSIONS = (2, 3)
GGML_MAX_DIMS = 4

# Refused without reading further (section "bounded" in the tests): no claimed length is
# allocated before it is checked against the file size, or against these when the size is unknown.
MAX_STRING_BYTES = 1 << 30  # one string (key, name or value) of 1 GiB or more is not a header
MAX_COUNT = 1 << 40  # kv, tensor and array counts
MAX_OFFSET = 1 << 63  # no position in a file can be past this
MAX_ARRAY_DEPTH = 8  # arrays of arrays (gguf-py writes them, llama.cpp refuses them)
MAX_NESTED_ELEMENTS = 1 << 20  # inner elements materialised for one array of arrays
# general.alignment: gguf-py and llama.cpp write 32 and take any power of two; a header could then ask a rewrite
# for up to 4 GiB of padding (a 296-byte file with 2^31 made `fix` write 2 GiB). Past this it is refused.
MAX_ALIGNMENT = 1 << 20

# Streaming: the first read asks for FIRST_CHUNK bytes, each further one for twice as many, up to
# MAX_CHUNK; a single read() never asks for more than MAX_CHUNK.
FIRST_CHUNK = 1 << 20
MAX_CHUNK = 16 << 20

# Default array policy: small arrays are materialised, tokenizer vocabularies are skipped.
MATERIALISE_MAX_LENGTH = 4096

# Names and codes come from ropedoctor.gguf_keys (the mirror of gguf.constants, checked by a test).
KEY_ALIGNMENT = G.ALIGNMENT
KEY_ARCHITECTURE = G.ARCHITECTURE
KEY_SPLIT_NO = G.SPLIT_NO
KEY_SPLIT_COUNT = G.SPLIT_COUNT
KEY_SPLIT_TENSORS_COUNT = G.SPLIT_TENSORS_COUNT
GGUFValueType = G.ValueType
_SCALAR_FORMATS = G.SCALAR_FORMATS
_HOST_ORDER = "<" if sys.byteorder == "little" else ">"
_VALUE_TYPE_NAMES: dict[int, str] = {int(code): code.name for code in GGUFValueType}

_QK_K = 256
# Mirror of ``gguf.constants.GGML_QUANT_SIZES``: ggml type id -> (name, block size, bytes per block).
# Ids 4, 5 (Q4_2, Q4_3), 31-33 (Q4_0_4_4...) and 36-38 (IQ4_NL_4_4...) were removed from ggml.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 2 + 16),
    3: ("Q4_1", 32, 2 + 2 + 16),
    6: ("Q5_0", 32, 2 + 4 + 16),
    7: ("Q5_1", 32, 2 + 2 + 4 + 16),
    8: ("Q8_0", 32, 2 + 32),
    9: ("Q8_1", 32, 4 + 4 + 32),
    10: ("Q2_K", 256, 2 + 2 + _QK_K // 16 + _QK_K // 4),
    11: ("Q3_K", 256, 2 + _QK_K // 4 + _QK_K // 8 + 12),
    12: ("Q4_K", 256, 2 + 2 + _QK_K // 2 + 12),
    13: ("Q5_K", 256, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),
    14: ("Q6_K", 256, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),
    15: ("Q8_K", 256, 4 + _QK_K + _QK_K // 8),
    16: ("IQ2_XXS", 256, 2 + _QK_K // 4),
    17: ("IQ2_XS", 256, 2 + _QK_K // 4 + _QK_K // 32),
    18: ("IQ3_XXS", 256, 2 + _QK_K // 4 + _QK_K // 8),
    19: ("IQ1_S", 256, 2 + _QK_K // 8 + _QK_K // 16),
    20: ("IQ4_NL", 32, 2 + 16),
    21: ("IQ3_S", 256, 2 + _QK_K // 4 + _QK_K // 8 + _QK_K // 32 + 4),
    22: ("IQ2_S", 256, 2 + _QK_K // 4 + _QK_K // 16),
    23: ("IQ4_XS", 256, 2 + 2 + _QK_K // 2 + _QK_K // 64),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, _QK_K // 8 + _QK_K // 16 + _QK_K // 32),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 2 + 4 * 13),
    35: ("TQ2_0", 256, 2 + 64),
    39: ("MXFP4", 32, 1 + 16),
    40: ("NVFP4", 64, 4 + 32),
    41: ("Q1_0", 128, 2 + 16),
}


def value_type_name(code: int) -> str:
    """``"UINT32"`` for 4; ``"type 99"`` for a code GGUF does not define."""
    return _VALUE_TYPE_NAMES.get(code, f"type {code}")


def ggml_type_name(code: int) -> str:
    """``"Q4_K"`` for 12; ``"type 99"`` for an id ggml does not define."""
    entry = GGML_TYPES.get(code)
    return entry[0] if entry else f"type {code}"


@dataclass(frozen=True)
class GGUFValue:
    """One metadata value.

    ``offset`` is the absolute offset of the value's payload: the first byte after the key's u32
    value type (for a string its u64 length, for an array its u32 element type). ``size`` is the
    payload's length in bytes, so ``data[offset:offset + size]`` is the whole value.
    """

    type: int  # GGUFValueType code of the value (ARRAY = 9)
    value: Any  # str / int / float / bool; for arrays a list when materialised, else None
    array_type: int | None  # element type for arrays
    length: int | None  # element count for arrays
    offset: int  # absolute byte offset of the value (after the key and its type), for in-place edits
    size: int  # bytes the value occupies


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order (ne0 first), as stored
    ggml_type: int
    offset: int  # relative to the start of the tensor data section

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def n_bytes(self) -> int:
        """Bytes of tensor data, as ggml computes them (a partial block counts as a whole one)."""
        _name, block, size = GGML_TYPES[self.ggml_type]
        return -(-self.n_elements // block) * size


@dataclass(frozen=True)
class GGUFHeader:
    source: str
    version: int  # 2 or 3
    byte_order: str  # "<" or ">"
    kv: dict[str, GGUFValue]
    tensors: list[TensorInfo]
    alignment: int  # general.alignment or 32
    data_offset: int  # absolute offset of the tensor data section (aligned)
    header_size: int  # bytes of header read (== position after tensor infos)
    _by_name: dict[str, TensorInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {t.name: t for t in self.tensors})

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (None for an array that was not materialised), or ``default``."""
        entry = self.kv.get(key)
        return default if entry is None else entry.value

    def tensor(self, name: str) -> TensorInfo | None:
        return self._by_name.get(name)

    @property
    def architecture(self) -> str | None:
        arch = self.get(KEY_ARCHITECTURE)
        return arch if isinstance(arch, str) else None


Materialise = Callable[[str, int, int], bool]


class ByteStream(Protocol):
    """All read_header needs of a stream (a file opened "rb", or the hub's range reader)."""

    def read(self, size: int, /) -> bytes: ...


def default_materialise(key: str, array_type: int, length: int) -> bool:
    """Arrays read into lists by default: short ones outside the tokenizer."""
    return length <= MATERIALISE_MAX_LENGTH and not key.startswith("tokenizer.")


def _show(text: str) -> str:
    """A key or name as it reads in a one-line message: quoted, escaped, and cut when long."""
    return repr(text) if len(text) <= 100 else repr(text[:100]) + "..."


class _Reader:
    """A forward-only window on ``stream``: ``buf[pos:]`` holds the bytes from absolute ``base + pos``."""

    def __init__(self, stream: ByteStream, source: str, file_size: int | None) -> None:
        self.stream = stream
        self.source = source
        self.file_size = file_size
        self.buf = b""
        self.pos = 0
        self.base = 0
        self.chunk = FIRST_CHUNK
        self.context = "the file header"
        self.set_order("<")

    def set_order(self, order: str) -> None:
        self.order = order
        self.u32 = struct.Struct(order + "I").unpack_from
        self.u64 = struct.Struct(order + "Q").unpack_from
        self.scalars = {code: (struct.Struct(order + fmt).unpack_from, size)
                        for code, (fmt, size) in _SCALAR_FORMATS.items()}

    def fail(self, why: str) -> InputError:
        return InputError(self.source, why)

    def tell(self) -> int:
        return self.base + self.pos

    def _read(self, count: int) -> bytes:
        """Up to ``count`` bytes from the stream (fewer only at its end), asked for in bounded pieces."""
        parts: list[bytes] = []
        got = 0
        while got < count:
            try:
                piece = self.stream.read(min(count - got, MAX_CHUNK))
            except OSError as exc:
                raise self.fail(f"read failed at byte {self.base + len(self.buf) + got}: "
                                f"{exc.strerror or exc}") from None
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    def truncated(self, end: int) -> InputError:
        return self.fail(f"file is truncated: it ends at byte {end}, inside {self.context}")

    def check_end(self, end: int, what: str) -> None:
        """Refuse, before reading or allocating, anything that claims to end past the file."""
        if end >= MAX_OFFSET:
            raise self.fail(f"{what} would end at byte {end}, past the end of any file")
        if self.file_size is not None and end > self.file_size:
            raise self.fail(f"{what} would end at byte {end}, past the end of the file ({self.file_size} bytes)")

    def need(self, count: int) -> None:
        """Make ``buf[pos:pos + count]`` available; a claimed ``count`` must be checked with check_end first."""
        if len(self.buf) - self.pos >= count:
            return
        if self.file_size is not None and self.tell() + count > self.file_size:
            raise self.truncated(self.file_size)
        keep = self.buf[self.pos:]
        self.base += self.pos
        self.pos = 0
        want = max(count - len(keep), self.chunk)
        if self.file_size is not None:
            want = max(count - len(keep), min(want, self.file_size - self.base - len(keep)))
        self.chunk = min(self.chunk * 2, MAX_CHUNK)
        self.buf = keep + self._read(want)
        if len(self.buf) < count:
            raise self.truncated(self.base + len(self.buf))

    def advance_to(self, target: int, what: str) -> None:
        """Move forward to absolute ``target``, reading and dropping whatever lies between."""
        self.check_end(target, what)
        end = self.base + len(self.buf)
        if target <= end:
            self.pos = target - self.base
            return
        missing = target - end
        self.buf = b""
        self.base = end
        self.pos = 0
        while missing:
            piece = self._read(min(missing, MAX_CHUNK))
            if not piece:
                raise self.truncated(self.base)
            self.base += len(piece)
            missing -= len(piece)

    def read_u32(self) -> int:
        self.need(4)
        value: int = self.u32(self.buf, self.pos)[0]
        self.pos += 4
        return value

    def read_u64(self) -> int:
        self.need(8)
        value: int = self.u64(self.buf, self.pos)[0]
        self.pos += 8
        return value

    def read_raw_string(self, what: str) -> bytes:
        length = self.read_u64()
        start = self.tell()
        if length >= MAX_STRING_BYTES:
            raise self.fail(f"{what} claims {length} bytes from byte {start}; strings over 1 GiB are refused")
        if self.file_size is not None and start + length > self.file_size:
            raise self.fail(f"{what} claims {length} bytes from byte {start}, "
                            f"past the end of the file ({self.file_size} bytes)")
        self.need(length)
        raw = self.buf[start - self.base:start - self.base + length]
        self.pos += length
        return raw

    def read_name(self, what: str) -> str:
        """A key or tensor name: strict UTF-8."""
        raw = self.read_raw_string(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not valid UTF-8 ({raw[:40]!r}, bad byte at {exc.start})") from None

    def read_text(self) -> str:
        # String values are decoded leniently: a broken chat template should be reported, not stop the read.
        return self.read_raw_string(f"a string value in {self.context}").decode("utf-8", "replace")

    def skip_strings(self, count: int) -> None:
        """Walk past ``count`` strings: only their length prefixes are looked at.

        This loop is the cost of reading a header with a 150k-token vocabulary (~50 ns a string).
        When the file's byte order is the host's, a length is read from one of eight u64 views of the
        buffer (one per offset modulo 8), which beats ``Struct.unpack_from`` by some 10%.
        """
        while count:
            buf = self.buf
            end = len(buf)
            p = self.pos
            steps = repeat(None, count)
            if self.order == _HOST_ORDER:
                whole = memoryview(buf)
                views = [whole[k:k + (end - k) // 8 * 8].cast("Q") for k in range(8)]
                try:
                    for _ in steps:
                        p += 8 + views[p & 7][p >> 3]  # IndexError exactly when p + 8 > end
                    count = 0
                except IndexError:
                    # The length prefix at p is not (all) in the buffer; ``steps`` has handed out
                    # that string's step too, so it is one of the strings still to walk.
                    count = steps.__length_hint__() + 1
                finally:
                    for view in views:
                        view.release()
                    whole.release()
            else:
                unpack = self.u64
                try:
                    for _ in steps:
                        p += 8 + unpack(buf, p)[0]
                    count = 0
                except (struct.error, OverflowError):
                    count = steps.__length_hint__() + 1
            if p > end:
                # the last string walked ends past the buffer: drop the rest of its bytes
                self.advance_to(self.base + p, f"a string in the array of {self.context}")
            else:
                self.pos = p
            if count:
                self.need(8)


def _array_min_bytes(item_type: int) -> int:
    if item_type == GGUFValueType.STRING:
        return 8
    if item_type == GGUFValueType.ARRAY:
        return 12
    return _SCALAR_FORMATS[item_type][1]


class _Parser:
    def __init__(self, reader: _Reader, materialise: Materialise) -> None:
        self.r = reader
        self.materialise = materialise

    def value(self, key: str, vtype: int) -> GGUFValue:
        r = self.r
        start = r.tell()
        scalar = r.scalars.get(vtype)
        if scalar is not None:
            unpack, size = scalar
            r.need(size)
            value = unpack(r.buf, r.pos)[0]
            r.pos += size
            return GGUFValue(vtype, value, None, None, start, size)
        if vtype == GGUFValueType.STRING:
            text = r.read_text()
            return GGUFValue(vtype, text, None, None, start, r.tell() - start)
        if vtype == GGUFValueType.ARRAY:
            item_type, length = self.array_head(depth=1)
            items: list[Any] | None = None
            if self.materialise(key, item_type, length):
                items = self.array_items(item_type, length, depth=1, budget=[MAX_NESTED_ELEMENTS])
            else:
                self.skip_items(item_type, length, depth=1)
            return GGUFValue(vtype, items, item_type, length, start, r.tell() - start)
        raise r.fail(f"{r.context} has unknown value type {vtype}")

    def array_head(self, depth: int) -> tuple[int, int]:
        r = self.r
        if depth > MAX_ARRAY_DEPTH:
            raise r.fail(f"{r.context} has arrays nested more than {MAX_ARRAY_DEPTH} deep")
        item_type = r.read_u32()
        if item_type not in _VALUE_TYPE_NAMES:
            raise r.fail(f"{r.context} is an array of unknown value type {item_type}")
        length = r.read_u64()
        if length > MAX_COUNT and r.file_size is None:
            raise r.fail(f"{r.context} claims an array of {length} elements")
        r.check_end(r.tell() + length * _array_min_bytes(item_type),
                    f"an array of {length} {value_type_name(item_type)} in {r.context}")
        return item_type, length

    def skip_items(self, item_type: int, length: int, depth: int) -> None:
        r = self.r
        if item_type == GGUFValueType.STRING:
            r.skip_strings(length)
        elif item_type == GGUFValueType.ARRAY:
            for _ in range(length):
                inner_type, inner_length = self.array_head(depth + 1)
                self.skip_items(inner_type, inner_length, depth + 1)
        else:
            r.advance_to(r.tell() + length * _SCALAR_FORMATS[item_type][1], f"an array in {r.context}")

    def array_items(self, item_type: int, length: int, depth: int, budget: list[int]) -> list[Any] | None:
        """The elements as a list; None (and the array skipped) when nested arrays exceed ``budget``."""
        r = self.r
        if item_type == GGUFValueType.STRING:
            return [r.read_text() for _ in range(length)]
        if item_type == GGUFValueType.ARRAY:
            items: list[Any] | None = []
            for _ in range(length):
                inner_type, inner_length = self.array_head(depth + 1)
                inner: list[Any] | None = None
                if items is not None and inner_length <= budget[0]:
                    budget[0] -= inner_length
                    inner = self.array_items(inner_type, inner_length, depth + 1, budget)
                else:
                    self.skip_items(inner_type, inner_length, depth + 1)
                if inner is None:
                    items = None
                elif items is not None:
                    items.append(inner)
            return items
        fmt, size = _SCALAR_FORMATS[item_type]
        total = length * size
        r.need(total)
        values = list(struct.unpack_from(f"{r.order}{length}{fmt}", r.buf, r.pos))
        r.pos += total
        return values

    def tensor_info(self, index: int) -> TensorInfo:
        r = self.r
        r.context = f"tensor info {index}"
        name = r.read_name(f"the name of tensor {index}")
        r.context = f"tensor {_show(name)}"
        n_dims = r.read_u32()
        if n_dims > GGML_MAX_DIMS:
            raise r.fail(f"tensor {_show(name)} has {n_dims} dimensions; GGUF allows at most {GGML_MAX_DIMS}")
        shape = tuple(r.read_u64() for _ in range(n_dims))
        if any(dim >= MAX_OFFSET for dim in shape):
            raise r.fail(f"tensor {_show(name)} has a negative dimension (shape {list(shape)} as signed 64-bit)")
        ggml_type = r.read_u32()
        if ggml_type not in GGML_TYPES:
            raise r.fail(f"tensor {_show(name)} has unknown ggml type {ggml_type}")
        offset = r.read_u64()
        return TensorInfo(name, shape, ggml_type, offset)


def read_header(stream: ByteStream, source: str, *, file_size: int | None = None,
                materialise: Materialise | None = None) -> GGUFHeader:
    """The header of the GGUF file that ``stream`` reads from its first byte.

    ``stream`` needs only ``read(n)``; no more is read than the header (plus read-ahead of at most
    the current chunk, clipped to ``file_size`` when known). ``materialise(key, element_type,
    length)`` says which arrays to turn into lists (default: ``default_materialise``). Anything
    that is not a well-formed GGUF v2/v3 header raises InputError(source, reason).
    """
    reader = _Reader(stream, source, file_size)
    if file_size != 0:
        first = max(FIRST_CHUNK, 24)  # at least the fixed header: magic, version and the two counts
        reader.buf = reader._read(first if file_size is None else min(first, file_size))
        reader.chunk = min(2 * FIRST_CHUNK, MAX_CHUNK)
    return _parse(reader, materialise or default_materialise)


def _parse(r: _Reader, materialise: Materialise) -> GGUFHeader:
    if not len(r.buf):
        raise r.fail("file is empty (0 bytes), not a GGUF file")
    head = bytes(r.buf[:4])
    if head != GGUF_MAGIC:
        if GGUF_MAGIC.startswith(head):
            raise r.truncated(len(head))
        raise r.fail(f"not a GGUF file (it starts with {head!r}, not {GGUF_MAGIC!r})")
    r.pos = 4
    version = r.read_u32()
    if version not in SUPPORTED_VERSIONS and version != 1 and version & 0xFFFF == 0:
        # the version of a big-endian file read in little-endian: 3 reads as 0x03000000
        r.set_order(">")
        version = r.u32(r.buf, 4)[0]
    if version == 1:
        raise r.fail("GGUF version 1 is not supported (ropedoctor reads versions 2 and 3)")
    if version not in SUPPORTED_VERSIONS:
        raise r.fail(f"unknown GGUF version {version} (ropedoctor reads versions 2 and 3)")
    tensor_count = r.read_u64()
    kv_count = r.read_u64()
    for count, what, least in ((kv_count, "key-value pairs", 8 + 4 + 1), (tensor_count, "tensors", 8 + 4 + 4 + 8)):
        if count > MAX_COUNT and r.file_size is None:
            raise r.fail(f"header claims {count} {what}")
        if count * least > MAX_OFFSET or (r.file_size is not None and count * least > r.file_size - r.tell()):
            size = "any file" if r.file_size is None else f"a file of {r.file_size} bytes"
            raise r.fail(f"header claims {count} {what}, more than {size} can hold (the file is truncated or corrupt)")
    if r.file_size is not None and kv_count * 13 + tensor_count * 24 > r.file_size - r.tell():
        raise r.fail(f"header claims {kv_count} key-value pairs and {tensor_count} tensors, "
                     f"more than a file of {r.file_size} bytes can hold (the file is truncated or corrupt)")

    parser = _Parser(r, materialise)
    kv: dict[str, GGUFValue] = {}
    for index in range(kv_count):
        r.context = f"metadata entry {index}"
        key = r.read_name(f"the key of metadata entry {index}")
        r.context = f"key {_show(key)}"
        if key in kv:
            raise r.fail(f"duplicate key {_show(key)} (llama.cpp and gguf-py refuse the file)")
        vtype = r.read_u32()
        kv[key] = parser.value(key, vtype)

    alignment = GGUF_DEFAULT_ALIGNMENT
    align_entry = kv.get(KEY_ALIGNMENT)
    if align_entry is not None:
        if align_entry.type != GGUFValueType.UINT32:
            raise r.fail(f"{KEY_ALIGNMENT} is {value_type_name(align_entry.type)}; it must be UINT32")
        alignment = align_entry.value
        if alignment <= 0 or alignment & (alignment - 1):
            raise r.fail(f"{KEY_ALIGNMENT} is {alignment}, not a power of two")
        if alignment > MAX_ALIGNMENT:
            raise r.fail(f"{KEY_ALIGNMENT} is {alignment}, more than the {MAX_ALIGNMENT} bytes ropedoctor accepts "
                         f"(gguf-py and llama.cpp write {GGUF_DEFAULT_ALIGNMENT})")

    tensors: list[TensorInfo] = []
    names: set[str] = set()
    for index in range(tensor_count):
        info = parser.tensor_info(index)
        if info.name in names:
            raise r.fail(f"duplicate tensor name {_show(info.name)} (llama.cpp and gguf-py refuse the file)")
        names.add(info.name)
        tensors.append(info)

    header_size = r.tell()
    data_offset = -(-header_size // alignment) * alignment
    return GGUFHeader(r.source, version, r.order, kv, tensors, alignment, data_offset, header_size)


def read_gguf(path: str | Path) -> GGUFHeader:
    """The header of a local GGUF file, or InputError."""
    where = str(path)
    target = Path(path)
    try:
        if target.is_dir():
            raise InputError(where, "is a directory, not a GGUF file")
        with open(open_without_waiting(target), "rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISFIFO(info.st_mode) or stat.S_ISSOCK(info.st_mode):
                raise InputError(where, f"is {special_file_kind(info.st_mode)}, not a regular file")
            if not stat.S_ISREG(info.st_mode):  # a device: streamed, every read bounded
                return read_header(handle, where)
            if info.st_size == 0:
                raise InputError(where, "file is empty (0 bytes), not a GGUF file")
            # Read, never mapped: a mapped file that another program shrinks while it is parsed kills the
            # process with SIGBUS (a whole `scan` lost every row); a read of it ends early, one clear error.
            try:
                return read_header(handle, where, file_size=info.st_size)
            except InputError as error:
                if _shrank(handle, info.st_size):
                    raise InputError(where, f"file changed while its header was read (it was {info.st_size} "
                                            f"bytes, now {os.fstat(handle.fileno()).st_size}); read it again") \
                        from None
                raise error from None
    except PermissionError:
        raise InputError(where, "permission denied") from None
    except FileNotFoundError:
        raise InputError(where, "no such file or directory") from None
    except OSError as exc:
        raise InputError(where, exc.strerror or str(exc)) from None


# rope_freqs / rope_factors_* hold rotary_dim / 2 floats (64 for a 128-dim head); more is not a RoPE tensor.
MAX_ROPE_TENSOR_ELEMENTS = 1 << 16
GGML_TYPE_F32 = 0


def read_f32_tensor(path: str | Path, header: GGUFHeader, name: str,
                    max_elements: int = MAX_ROPE_TENSOR_ELEMENTS) -> tuple[float, ...] | None:
    """The values of one small F32 tensor of a local regular file: only its own bytes are read.

    None where they cannot be had: no such tensor, another type, more than ``max_elements`` values, a file
    that is not a regular file, or data past the end (a header-only file); the header rules report those.
    """
    info = header.tensor(name)
    if info is None or info.ggml_type != GGML_TYPE_F32 or not 0 < info.n_elements <= max_elements:
        return None
    start, size = header.data_offset + info.offset, info.n_bytes
    try:
        with open(open_without_waiting(Path(path)), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            handle.seek(start)
            data = handle.read(size)
    except OSError:
        return None
    if len(data) != size:
        return None
    return struct.unpack(f"{header.byte_order}{info.n_elements}f", data)


def _shrank(handle: Any, size: int) -> bool:
    try:
        return os.fstat(handle.fileno()).st_size != size
    except OSError:
        return True


_SHARD_NAME = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
SHARD_NAME_FORMAT = "{}-{:05d}-of-{:05d}.gguf"  # gguf.gguf_writer.SHARD_NAME_FORMAT, llama.cpp's llama_split_path


def split_shards(path: Path) -> list[Path]:
    """Every shard path of the split GGUF ``path`` belongs to ("x-00002-of-00003.gguf" gives the
    three), first shard (the one with the metadata) first; ``[path]`` for a file that is not split."""
    path = Path(path)
    match = _SHARD_NAME.match(path.name)
    if match is None:
        return [path]
    number, count = int(match["no"]), int(match["count"])
    if count < 1 or not 1 <= number <= count:
        raise InputError(str(path), f"shard number {number} of a {count}-shard split is out of range")
    stem = match["stem"]
    return [path.with_name(SHARD_NAME_FORMAT.format(stem, index, count)) for index in range(1, count + 1)]


def check_shards(path: Path) -> list[Path]:
    """``split_shards(path)``, or InputError naming the shards that are not there (for a split file)."""
    shards = split_shards(Path(path))
    if len(shards) == 1:
        return shards
    missing = [shard.name for shard in shards if not shard.is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(str(path), f"split GGUF is incomplete: {len(missing)} of {len(shards)} shards missing ({shown})")
    return shards
