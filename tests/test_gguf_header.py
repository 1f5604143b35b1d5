"""The streaming GGUF header reader, against gguf-py (writer to make files, reader as the oracle)."""

from __future__ import annotations

import io
import math
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from ropedoctor.errors import InputError
from ropedoctor.sources import gguf_header as gh
from ropedoctor.sources.gguf_header import (
    GGUFHeader,
    GGUFValueType,
    check_shards,
    read_gguf,
    read_header,
    split_shards,
)

CORPUS = Path(__file__).resolve().parent / "gguf_corpus"
ARRAY = GGUFValueType.ARRAY
STRING = GGUFValueType.STRING
FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
ALL = lambda key, item_type, length: True  # noqa: E731  (materialise every array)


# --- a GGUF byte builder: any layout, including the ones gguf-py refuses to write --------------------------

@dataclass(frozen=True)
class Arr:
    """An array value: element type and elements (``Arr`` themselves for arrays of arrays)."""

    item_type: int
    items: tuple[Any, ...]


KV = tuple["str | bytes", int, Any]  # key, value type, value (an Arr for arrays)
Tensor = tuple["str | bytes", tuple[int, ...], int]  # name, shape (ggml order), ggml type


def enc_str(order: str, text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack(order + "Q", len(raw)) + raw


def enc_payload(order: str, vtype: int, value: Any) -> bytes:
    if vtype in FORMATS:
        return struct.pack(order + FORMATS[vtype], value)
    if vtype == STRING:
        return enc_str(order, value)
    assert isinstance(value, Arr)
    return (struct.pack(order + "IQ", value.item_type, len(value.items))
            + b"".join(enc_payload(order, value.item_type, item) for item in value.items))


def tensor_bytes(shape: tuple[int, ...], ggml_type: int) -> int:
    _name, block, size = gh.GGML_TYPES[ggml_type]
    return -(-math.prod(shape) // block) * size


def build(kvs: list[KV], tensors: list[Tensor] = (), *, order: str = "<", version: int = 3,  # type: ignore[assignment]
          alignment: int = 32, counts: tuple[int, int] | None = None, data: bool = True) -> bytes:
    """GGUF bytes: header, key-values, tensor infos (contiguous aligned offsets), padding, zero data."""
    n_tensors, n_kv = counts if counts is not None else (len(tensors), len(kvs))
    out = bytearray(b"GGUF" + struct.pack(order + "IQQ", version, n_tensors, n_kv))
    for key, vtype, value in kvs:
        out += enc_str(order, key) + struct.pack(order + "I", vtype) + enc_payload(order, vtype, value)
    offset = 0
    for name, shape, ggml_type in tensors:
        out += enc_str(order, name) + struct.pack(order + "I", len(shape))
        out += b"".join(struct.pack(order + "Q", dim) for dim in shape)
        out += struct.pack(order + "IQ", ggml_type, offset)
        offset += -(-tensor_bytes(shape, ggml_type) // alignment) * alignment if ggml_type in gh.GGML_TYPES else 0
    if data:
        out += bytes(-len(out) % alignment) + bytes(offset)
    return bytes(out)


def expected_value(vtype: int, value: Any) -> Any:
    if vtype == GGUFValueType.FLOAT32:
        return struct.unpack("f", struct.pack("f", value))[0]
    if vtype == GGUFValueType.BOOL:
        return bool(value)
    if vtype == STRING:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if vtype == ARRAY:
        return [expected_value(value.item_type, item) for item in value.items]
    return value


def parse(data: bytes, *, sized: bool = True, **kwargs: Any) -> GGUFHeader:
    return read_header(io.BytesIO(data), "test.gguf", file_size=len(data) if sized else None, **kwargs)


def refused(data: bytes, **kwargs: Any) -> str:
    """The reason read_header gives for refusing ``data``, the same with and without the file size."""
    reasons = []
    for sized in (True, False):
        with pytest.raises(InputError) as caught:
            parse(data, sized=sized, **kwargs)
        assert caught.value.what == "test.gguf"
        reasons.append(caught.value.why)
    return reasons[0]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(type(a) is type(b) and a == b)


def flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from flatten(item)
    else:
        yield value


def leaf_type(field: Any) -> int:
    return int(field.types[-1])


def assert_matches_reader(header: GGUFHeader, path: Path) -> None:
    """Everything read_header says agrees with gguf.GGUFReader on the same file."""
    reader = gguf.GGUFReader(path)
    fields = {key: f for key, f in reader.fields.items() if not key.startswith("GGUF.")}
    assert list(header.kv) == list(fields)
    assert header.version == int(reader.fields["GGUF.version"].parts[0][0])
    for key, field in fields.items():
        mine = header.kv[key]
        assert mine.type == field.types[0], key
        assert mine.offset == field.offset + 8 + len(key.encode()) + 4, key
        assert mine.size == sum(int(part.nbytes) for part in field.parts[3:]), key
        if mine.type == ARRAY:
            assert mine.array_type == int(field.parts[3][0]), key
            assert mine.length == int(field.parts[4][0]), key
            leaves = list(flatten(mine.value)) if mine.value is not None else None
            # gguf-py flattens arrays of arrays and takes the element type of all from the first one
            # ... and when that first one is empty it has no element type to take, and drops every leaf after it
            first_empty = isinstance(mine.value, list) and bool(mine.value) and mine.value[0] == []
            if leaves is not None and len({type(leaf) for leaf in leaves}) <= 1 and (not leaves or len(field.types) > 1) \
                    and not first_empty:
                assert same(leaves, field.contents()), key
        else:
            assert same(mine.value, field.contents()), key
    assert [t.name for t in header.tensors] == [t.name for t in reader.tensors]
    for mine_t, theirs in zip(header.tensors, reader.tensors, strict=True):
        assert mine_t.shape == tuple(int(d) for d in theirs.shape)
        assert mine_t.ggml_type == int(theirs.tensor_type)
        assert mine_t.offset == theirs.data_offset - reader.data_offset
        assert mine_t.n_elements == theirs.n_elements
        assert mine_t.n_bytes == theirs.n_bytes
    assert header.alignment == reader.alignment
    assert header.data_offset == reader.data_offset
    assert header.byte_order == (">" if reader.endianess == gguf.GGUFEndian.BIG else "<")


# --- the tables mirror gguf's -----------------------------------------------------------------------------

def test_value_types_mirror_gguf() -> None:
    mine = {name: code for name, code in vars(GGUFValueType).items() if name.isupper()}
    assert mine == {t.name: int(t) for t in gguf.GGUFValueType}
    assert {code: gh.value_type_name(code) for code in mine.values()} == {int(t): t.name for t in gguf.GGUFValueType}


def test_ggml_types_mirror_gguf() -> None:
    assert {code: (block, size) for code, (_n, block, size) in gh.GGML_TYPES.items()} == {
        int(t): sizes for t, sizes in gguf.GGML_QUANT_SIZES.items()}
    assert {code: name for code, (name, _b, _s) in gh.GGML_TYPES.items()} == {
        int(t): t.name for t in gguf.GGMLQuantizationType}


def test_constants_mirror_gguf() -> None:
    assert struct.pack("<I", gguf.GGUF_MAGIC) == gh.GGUF_MAGIC
    assert gh.GGUF_DEFAULT_ALIGNMENT == gguf.GGUF_DEFAULT_ALIGNMENT
    assert gguf.GGUF_VERSION in gh.SUPPORTED_VERSIONS
    assert list(gh.SUPPORTED_VERSIONS) == gguf.gguf_reader.READER_SUPPORTED_VERSIONS
    assert gh.KEY_ALIGNMENT == gguf.Keys.General.ALIGNMENT
    assert gh.KEY_ARCHITECTURE == gguf.Keys.General.ARCHITECTURE
    assert gh.KEY_SPLIT_NO == gguf.Keys.Split.LLM_KV_SPLIT_NO
    assert gh.KEY_SPLIT_COUNT == gguf.Keys.Split.LLM_KV_SPLIT_COUNT
    assert gh.KEY_SPLIT_TENSORS_COUNT == gguf.Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT
    assert gh.SHARD_NAME_FORMAT.format("m", 2, 3) == gguf.gguf_writer.SHARD_NAME_FORMAT.format("m", 2, 3)


def test_import_leaves_numpy_and_gguf_out() -> None:
    code = ("import sys; import ropedoctor.sources.gguf_header; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'gguf'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- files written by gguf.GGUFWriter, compared with gguf.GGUFReader ---------------------------------------

TOKENS = [f"tok{i}" + "é" * (i % 3) for i in range(3000)]


def write_with_gguf(path: Path, endian: gguf.GGUFEndian) -> None:
    """Every value type, arrays of arrays, a 3000-token vocabulary and four tensors with data."""
    vt = gguf.GGUFValueType
    writer = gguf.GGUFWriter(path, "llama", endianess=endian)
    writer.add_context_length(32768)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    writer.add_rope_scaling_factor(4.0)
    writer.add_rope_dimension_sections([16, 24, 24, 0])
    writer.add_custom_alignment(64)
    scalars: list[tuple[str, Any, gguf.GGUFValueType]] = [
        ("t.u8", 255, vt.UINT8), ("t.i8", -128, vt.INT8), ("t.u16", 65535, vt.UINT16), ("t.i16", -32768, vt.INT16),
        ("t.u32", 2**32 - 1, vt.UINT32), ("t.i32", -(2**31), vt.INT32), ("t.f32", 0.1, vt.FLOAT32),
        ("t.bool", True, vt.BOOL), ("t.false", False, vt.BOOL), ("t.str", "héllo, 世界", vt.STRING),
        ("t.empty", "", vt.STRING), ("t.u64", 2**64 - 1, vt.UINT64), ("t.i64", -(2**63), vt.INT64),
        ("t.f64", 1e300, vt.FLOAT64),
    ]
    for key, value, vtype in scalars:
        writer.add_key_value(key, value, vtype)
    for code, fmt in FORMATS.items():
        values: list[Any] = [True, False] if fmt == "?" else [1.5, -2.25] if fmt in "fd" else [1, 2, 3]
        writer.add_key_value(f"a.{gh.value_type_name(code).lower()}", values, vt.ARRAY, vt(code))
    writer.add_array("a.strings", ["x", "", "ÿ"])
    writer.add_array("a.nested", [[1, 2], [3], [4, 5, 6]])
    writer.add_array("a.nested_strings", [["a", "b"], ["c"]])
    writer.add_array("a.nested3", [[[1.0], [2.0, 3.0]], [[4.0]]])
    writer.add_array("a.long", list(range(5000)))
    writer.add_token_list(TOKENS)
    writer.add_token_types([1] * len(TOKENS))
    writer.add_token_scores([float(-i) for i in range(len(TOKENS))])
    writer.add_tensor("token_embd.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    writer.add_tensor("rope_freqs.weight", np.ones(64, dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.ones((2, 3, 5), dtype=np.float16))
    writer.add_tensor("blk.0.ffn.weight", np.zeros((2, 34), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize("endian", [gguf.GGUFEndian.LITTLE, gguf.GGUFEndian.BIG], ids=["little", "big"])
def test_writer_file_matches_reader(tmp_path: Path, endian: gguf.GGUFEndian) -> None:
    path = tmp_path / "model.gguf"
    write_with_gguf(path, endian)
    with open(path, "rb") as handle:
        everything = read_header(handle, str(path), file_size=path.stat().st_size, materialise=ALL)
    assert_matches_reader(everything, path)
    assert everything.byte_order == (">" if endian == gguf.GGUFEndian.BIG else "<")
    assert everything.version == 3 and everything.alignment == 64
    assert everything.get("tokenizer.ggml.tokens") == TOKENS
    assert everything.get("a.nested") == [[1, 2], [3], [4, 5, 6]]
    assert everything.get("a.nested3") == [[[1.0], [2.0, 3.0]], [[4.0]]]
    assert everything.get("t.str") == "héllo, 世界" and everything.get("t.u64") == 2**64 - 1
    # the default policy: the same header, tokenizer arrays and long arrays left as None
    default = read_gguf(path)
    assert default.kv.keys() == everything.kv.keys() and default.tensors == everything.tensors
    for key, value in default.kv.items():
        skipped = key.startswith("tokenizer.") or key == "a.long"
        assert value.value is None if skipped else value == everything.kv[key], key
        assert (value.type, value.array_type, value.length, value.offset, value.size) == (
            everything.kv[key].type, everything.kv[key].array_type, everything.kv[key].length,
            everything.kv[key].offset, everything.kv[key].size)
    assert default.get("llama.rope.dimension_sections") == [16, 24, 24, 0]
    assert default.get("tokenizer.ggml.tokens", "absent") is None
    assert default.get("no.such.key", "absent") == "absent"
    assert default.architecture == "llama"
    tensor = default.tensor("blk.0.attn_q.weight")
    assert tensor is not None and tensor.shape == (5, 3, 2) and tensor.ggml_type == 1
    assert default.tensor("missing") is None


def test_offsets_address_the_values(tmp_path: Path) -> None:
    """``offset``/``size`` cover exactly the value's bytes: what an in-place edit overwrites."""
    path = tmp_path / "model.gguf"
    write_with_gguf(path, gguf.GGUFEndian.LITTLE)
    data = path.read_bytes()
    header = read_gguf(path)
    for key, value in header.kv.items():
        raw = data[value.offset:value.offset + value.size]
        if value.type in FORMATS:
            assert struct.unpack("<" + FORMATS[value.type], raw)[0] == value.value
        elif value.type == STRING:
            assert raw == enc_str("<", value.value)
        else:
            assert struct.unpack_from("<IQ", raw) == (value.array_type, value.length)
        # the key's bytes and type end where the value starts
        assert data[:value.offset].endswith(enc_str("<", key) + struct.pack("<I", value.type))


def test_version_2(tmp_path: Path) -> None:
    """gguf-py writes only v3; v2 has the same layout (u64 counts and lengths), so patch the version."""
    path = tmp_path / "v2.gguf"
    write_with_gguf(path, gguf.GGUFEndian.LITTLE)
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 2)
    path.write_bytes(bytes(data))
    header = read_gguf(path)
    assert header.version == 2
    assert_matches_reader(read_header(io.BytesIO(bytes(data)), "v2", file_size=len(data), materialise=ALL), path)


def test_materialise_callback_sees_each_top_level_array() -> None:
    seen: list[tuple[str, int, int]] = []

    def policy(key: str, item_type: int, length: int) -> bool:
        seen.append((key, item_type, length))
        return key == "b"

    data = build([("a", ARRAY, Arr(4, (1, 2))), ("b", ARRAY, Arr(9, (Arr(8, ("x",)),))), ("c", 4, 7)])
    header = parse(data, materialise=policy)
    assert seen == [("a", 4, 2), ("b", 9, 1)]
    assert header.get("a") is None and header.get("b") == [["x"]] and header.get("c") == 7


def test_nested_arrays_past_the_budget_are_skipped() -> None:
    inner = Arr(0, tuple([1] * 10))
    data = build([("n", ARRAY, Arr(ARRAY, (inner,) * 5)), ("after", 4, 1)])
    with mock.patch.object(gh, "MAX_NESTED_ELEMENTS", 25):
        header = parse(data)
    assert header.get("n") is None and header.kv["n"].length == 5 and header.get("after") == 1
    assert parse(data).get("n") == [[1] * 10] * 5


def test_edge_layouts() -> None:
    """Layouts gguf-py does not write: empty arrays and keys, no tensors, 0-dim tensors, 1-byte alignment."""
    data = build([("", STRING, ""), ("e", ARRAY, Arr(STRING, ())), ("n", ARRAY, Arr(ARRAY, (Arr(0, ()),))),
                  ("general.alignment", 4, 1)], [("scalar", (), 0), ("v", (3,), 0)], alignment=1)
    header = parse(data)
    assert header.get("") == "" and header.get("e") == [] and header.get("n") == [[]]
    assert header.alignment == 1 and header.data_offset == header.header_size
    scalar = header.tensor("scalar")
    assert scalar is not None and scalar.shape == () and scalar.n_elements == 1 and scalar.n_bytes == 4
    empty = parse(build([]))
    assert empty.kv == {} and empty.tensors == [] and empty.header_size == 24 and empty.data_offset == 32


def test_invalid_utf8_in_a_string_value_is_replaced() -> None:
    """Values are decoded leniently (gguf-py raises); keys and tensor names are not."""
    header = parse(build([("chat", STRING, b"ok \xff\xfe")]))
    assert header.get("chat") == "ok \ufffd\ufffd"


# --- streaming: small chunks, short reads, read-ahead bounds ----------------------------------------------

class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes a read, and counts what it was asked for."""

    def __init__(self, data: bytes, step: int, tail: int = 0) -> None:
        self.data = data
        self.step = step
        self.tail = tail  # virtual zero bytes after ``data`` (a big tensor section, never allocated)
        self.pos = 0
        self.asked: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        total = len(self.data) + self.tail
        count = max(0, min(size, self.step, total - self.pos))
        start, self.pos = self.pos, self.pos + count
        head = self.data[start:start + count]
        return head + bytes(count - len(head))


@contextmanager
def chunks(first: int) -> Iterator[None]:
    with mock.patch.object(gh, "FIRST_CHUNK", first), mock.patch.object(gh, "MAX_CHUNK", max(first, 64)):
        yield


def big_vocab_file(n_tokens: int) -> bytes:
    tokens = tuple(f"t{i}" * (1 + i % 4) for i in range(n_tokens))
    return build([("general.architecture", STRING, "llama"), ("tokenizer.ggml.tokens", ARRAY, Arr(STRING, tokens)),
                  ("tokenizer.ggml.scores", ARRAY, Arr(6, (0.5,) * n_tokens)), ("llama.context_length", 4, 8192)],
                 [("output.weight", (64, 2), 0)])


@pytest.mark.parametrize("first", [1, 7, 64, 1000])
@pytest.mark.parametrize("step", [1, 3, 1 << 20])
def test_small_chunks_and_short_reads_give_the_same_header(first: int, step: int) -> None:
    data = big_vocab_file(300) + build([])  # trailing bytes after the data do not matter
    reference = parse(data, materialise=ALL)
    for order in ("<", ">"):
        if order == ">":
            data = build([("k", ARRAY, Arr(STRING, ("ab", "c") * 50)), ("x", 12, 2.5)], [("w", (4,), 0)], order=">")
            reference = parse(data, materialise=ALL)
        for size in (len(data), None):
            for policy in (None, ALL):
                with chunks(first):
                    header = read_header(Trickle(data, step), "test.gguf", file_size=size, materialise=policy)
                assert header.tensors == reference.tensors and header.data_offset == reference.data_offset
                assert all(v.value is None or v == reference.kv[k] for k, v in header.kv.items())


def test_reads_only_the_header_from_a_stream() -> None:
    """A 1 GiB tensor section behind a 2.6 MB header: a little read-ahead, never the data, bounded reads."""
    data = big_vocab_file(200_000)
    header = parse(data)
    head = data[:header.header_size]
    for size in (len(head) + (1 << 30), None):
        stream = Trickle(head, 1 << 30, tail=1 << 30)
        assert read_header(stream, "test.gguf", file_size=size) == header
        assert max(stream.asked) <= gh.MAX_CHUNK
        assert stream.pos <= 2 * header.header_size + 2 * gh.FIRST_CHUNK
    # a file that is only the header (no tensor data at all) reads too, and never past its end
    stream = Trickle(head, 1 << 30)
    assert read_header(stream, "test.gguf", file_size=len(head)) == header
    assert stream.pos == len(head) and stream.asked[-1] > 0


def test_skipping_300k_strings_is_fast() -> None:
    """The tokenizer walk: ~300k length prefixes (152k tokens + 151k merges in a Qwen-size vocabulary)."""
    data = big_vocab_file(300_000)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        parse(data)
        best = min(best, time.perf_counter() - start)
    assert best < 0.1, f"{best * 1000:.1f} ms"


# --- malformed input: one test each, InputError with a clear reason ---------------------------------------

GOOD_KVS: list[KV] = [("general.architecture", STRING, "llama"), ("llama.context_length", 4, 4096)]
GOOD_TENSORS: list[Tensor] = [("token_embd.weight", (8, 4), 0), ("output.weight", (8, 4), 1)]


def test_truncated_files() -> None:
    data = build(GOOD_KVS, GOOD_TENSORS)
    header = parse(data)
    for cut in (2, 6, 12, 30, 60, header.header_size - 1):
        assert "truncated" in refused(data[:cut])
    assert refused(data[:60]) == ("header claims 2 tensors, more than a file of 60 bytes can hold "
                                  "(the file is truncated or corrupt)")
    assert "inside key 'llama.context_length'" in refused(data[:header.kv["llama.context_length"].offset + 2])
    assert "inside tensor 'output.weight'" in refused(data[:header.header_size - 3])
    # the header is complete but the tensor data is not there: still a header
    assert parse(data[:header.header_size]).tensors == header.tensors


def test_bad_magic() -> None:
    assert refused(b"GGML" + build(GOOD_KVS)[4:]) == "not a GGUF file (it starts with b'GGML', not b'GGUF')"
    assert refused(b"{\"model_type\": \"llama\"}").startswith("not a GGUF file (it starts with b'{\"mo'")


def test_version_1_is_refused() -> None:
    assert refused(build(GOOD_KVS, version=1)) == "GGUF version 1 is not supported (ropedoctor reads versions 2 and 3)"
    assert refused(build(GOOD_KVS, version=1, order=">")).startswith("GGUF version 1 is not supported")


def test_unknown_version() -> None:
    assert refused(build(GOOD_KVS, version=4)) == "unknown GGUF version 4 (ropedoctor reads versions 2 and 3)"
    assert refused(build(GOOD_KVS, version=0)).startswith("unknown GGUF version 0")
    assert refused(build(GOOD_KVS, version=7, order=">")).startswith("unknown GGUF version 7")
    assert refused(build(GOOD_KVS, version=0x12345678)).startswith("unknown GGUF version 305419896")


def test_big_endian_is_detected() -> None:
    header = parse(build(GOOD_KVS, GOOD_TENSORS, order=">"))
    assert header.byte_order == ">" and header.get("llama.context_length") == 4096
    assert header.tensors == parse(build(GOOD_KVS, GOOD_TENSORS)).tensors


def test_counts_beyond_the_file() -> None:
    assert refused(build(GOOD_KVS, counts=(0, 10**6))).startswith("header claims 1000000 key-value pairs, more than")
    assert refused(build(GOOD_KVS, counts=(0, 2**64 - 1))).startswith(f"header claims {2**64 - 1} key-value pairs")
    assert refused(build(GOOD_KVS, counts=(2**63, 2))).startswith(f"header claims {2**63} tensors")
    with pytest.raises(InputError, match="file is truncated"):  # without a size, a plausible count reads to the end
        parse(build(GOOD_KVS, counts=(10, 2)), sized=False)


def test_string_length_beyond_the_file() -> None:
    data = bytearray(build(GOOD_KVS))
    at = data.index(b"llama")  # the value "llama" follows its u64 length
    for claim in (1000, 2**31, 2**63, 2**64 - 1):
        data[at - 8:at] = struct.pack("<Q", claim)
        with pytest.raises(InputError) as caught:
            parse(bytes(data))
        assert ("past the end of the file" in caught.value.why) or ("strings over 1 GiB" in caught.value.why)
        assert "key 'general.architecture'" in caught.value.why
    data[at - 8:at] = struct.pack("<Q", 2**40)
    assert refused(bytes(data)) == (f"a string value in key 'general.architecture' claims 1099511627776 bytes from "
                                    f"byte {at}; strings over 1 GiB are refused")


def test_key_length_beyond_the_file() -> None:
    data = bytearray(build(GOOD_KVS))
    data[24:32] = struct.pack("<Q", 5000)
    with pytest.raises(InputError) as caught:
        parse(bytes(data))
    assert caught.value.why == ("the key of metadata entry 0 claims 5000 bytes from byte 32, "
                                f"past the end of the file ({len(data)} bytes)")
    with pytest.raises(InputError) as caught:
        parse(bytes(data), sized=False)
    assert caught.value.why == f"file is truncated: it ends at byte {len(data)}, inside metadata entry 0"


def test_array_length_beyond_the_file() -> None:
    data = build([("a", ARRAY, Arr(4, (1, 2, 3)))])
    at = data.index(struct.pack("<IQ", 4, 3)) + 4
    for claim in (4, 10**9, 2**62, 2**64 - 1):
        bad = data[:at] + struct.pack("<Q", claim) + data[at + 8:]
        for policy in (None, ALL):
            with pytest.raises(InputError) as caught:
                parse(bad, materialise=policy)
            assert caught.value.why.startswith(f"an array of {claim} UINT32 in key 'a' would end at byte"), claim
            with pytest.raises(InputError) as caught:
                parse(bad, materialise=policy, sized=False)
            assert caught.value.why.startswith("file is truncated" if claim <= 2**40 else "key 'a' claims an array")


def test_duplicate_key() -> None:
    assert refused(build([*GOOD_KVS, ("llama.context_length", 4, 8192)])) == (
        "duplicate key 'llama.context_length' (llama.cpp and gguf-py refuse the file)")


def test_duplicate_tensor_name() -> None:
    assert refused(build(GOOD_KVS, [*GOOD_TENSORS, ("output.weight", (4,), 0)])) == (
        "duplicate tensor name 'output.weight' (llama.cpp and gguf-py refuse the file)")


def test_unknown_value_type() -> None:
    data = build([*GOOD_KVS, ("odd", 4, 1)]).replace(enc_str("<", "odd") + struct.pack("<I", 4),
                                                      enc_str("<", "odd") + struct.pack("<I", 13))
    assert refused(data) == "key 'odd' has unknown value type 13"


def test_unknown_array_element_type() -> None:
    data = build([("a", ARRAY, Arr(4, (1,)))]).replace(struct.pack("<IQ", 4, 1), struct.pack("<IQ", 99, 1))
    assert refused(data) == "key 'a' is an array of unknown value type 99"


def test_invalid_utf8_in_key() -> None:
    assert refused(build([(b"bad\xffkey", 4, 1)])) == (
        "the key of metadata entry 0 is not valid UTF-8 (b'bad\\xffkey', bad byte at 3)")
    assert refused(build([], [(b"\xc3(", (4,), 0)])) == "the name of tensor 0 is not valid UTF-8 (b'\\xc3(', bad byte at 0)"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"^.*empty.gguf: file is empty \(0 bytes\), not a GGUF file$"):
        read_gguf(path)
    assert refused(b"") == "file is empty (0 bytes), not a GGUF file"


def test_directory_named_gguf(tmp_path: Path) -> None:
    (tmp_path / "x.gguf").mkdir()
    with pytest.raises(InputError) as caught:
        read_gguf(tmp_path / "x.gguf")
    assert caught.value.why == "is a directory, not a GGUF file"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        read_gguf(str(tmp_path / "nope.gguf"))
    assert caught.value.why == "no such file or directory"


def test_alignment_not_a_power_of_two() -> None:
    for value in (0, 3, 48, 2**32 - 1):
        data = build([*GOOD_KVS, ("general.alignment", 4, value)], data=False)
        assert refused(data) == f"general.alignment is {value}, not a power of two"
    data = build([*GOOD_KVS, ("general.alignment", 10, 64)], data=False)
    assert refused(data) == "general.alignment is UINT64; it must be UINT32"


def test_too_many_dimensions() -> None:
    assert refused(build(GOOD_KVS, [("w", (1, 2, 3, 4, 5), 0)])) == "tensor 'w' has 5 dimensions; GGUF allows at most 4"


def test_unknown_ggml_type() -> None:
    for code in (4, 5, 31, 36, 42, 2**32 - 1):  # removed (Q4_2, Q4_3, Q4_0_4_4, IQ4_NL_4_4) and never defined
        assert refused(build(GOOD_KVS, [("w", (32,), code)])) == f"tensor 'w' has unknown ggml type {code}"


def test_negative_dimension() -> None:
    assert refused(build(GOOD_KVS, [("w", (2**64 - 1, 2), 0)], data=False)) == (
        f"tensor 'w' has a negative dimension (shape [{2**64 - 1}, 2] as signed 64-bit)")


def test_arrays_nested_too_deep() -> None:
    value = Arr(4, (1,))
    for _ in range(gh.MAX_ARRAY_DEPTH):
        value = Arr(ARRAY, (value,))
    for policy in (None, ALL):
        assert refused(build([("deep", ARRAY, value)]), materialise=policy) == (
            "key 'deep' has arrays nested more than 8 deep")


# --- bounded time and memory --------------------------------------------------------------------------------

@contextmanager
def bounded(seconds: float = 1.0, megabytes: int = 50) -> Iterator[None]:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, elapsed
    assert peak < megabytes * 2**20, peak


def test_claims_of_10_to_12_tensors(tmp_path: Path) -> None:
    data = build(GOOD_KVS, GOOD_TENSORS, counts=(10**12, 2), data=False)
    path = tmp_path / "claims.gguf"
    path.write_bytes(data)
    with bounded():
        with pytest.raises(InputError, match="header claims 1000000000000 tensors"):
            read_gguf(path)
        with pytest.raises(InputError, match="file is truncated"):
            parse(data, sized=False)


def test_claims_of_a_2_to_40_byte_string(tmp_path: Path) -> None:
    key_claim = b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 2**40) + b"x" * 100
    value_claim = bytearray(build(GOOD_KVS))
    at = value_claim.index(b"llama")
    value_claim[at - 8:at] = struct.pack("<Q", 2**40)
    for data in (key_claim, bytes(value_claim)):
        path = tmp_path / "claims.gguf"
        path.write_bytes(data)
        with bounded():
            with pytest.raises(InputError, match=r"claims 1099511627776 bytes|past the end of the file"):
                read_gguf(path)
            with pytest.raises(InputError, match=r"claims 1099511627776 bytes from byte \d+; strings over 1 GiB"):
                parse(data, sized=False)


def test_claims_of_huge_arrays_without_a_size() -> None:
    """No file size known (a stream): claims are read until the stream ends, never allocated."""
    for item_type in (0, 10, STRING, ARRAY):
        data = bytearray(build([("a", ARRAY, Arr(item_type, ()))], data=False))
        data[-8:] = struct.pack("<Q", 2**40)
        for policy in (None, ALL):
            with bounded(), pytest.raises(InputError, match="file is truncated"):
                parse(bytes(data), sized=False, materialise=policy)
        data[-8:] = struct.pack("<Q", 2**40 + 1)
        with pytest.raises(InputError, match=r"^test\.gguf: key 'a' claims an array of 1099511627777 elements$"):
            parse(bytes(data), sized=False)


# --- property tests ---------------------------------------------------------------------------------------

UINT = {0: 8, 2: 16, 4: 32, 10: 64}
INT = {1: 8, 3: 16, 5: 32, 11: 64}
SCALARS: dict[int, st.SearchStrategy[Any]] = {
    **{code: st.integers(0, 2**bits - 1) for code, bits in UINT.items()},
    **{code: st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for code, bits in INT.items()},
    6: st.floats(width=32, allow_nan=False), 12: st.floats(allow_nan=False), 7: st.booleans(),
    STRING: st.text(max_size=12),
}


def arrays(depth: int) -> st.SearchStrategy[Arr]:
    types = sorted(SCALARS) + ([ARRAY] if depth < 3 else [])

    def items(item_type: int) -> st.SearchStrategy[Arr]:
        element = arrays(depth + 1) if item_type == ARRAY else SCALARS[item_type]
        return st.lists(element, max_size=4 if item_type == ARRAY else 6).map(lambda xs: Arr(item_type, tuple(xs)))

    return st.sampled_from(types).flatmap(items)


def values() -> st.SearchStrategy[tuple[int, Any]]:
    def of(vtype: int) -> st.SearchStrategy[tuple[int, Any]]:
        source = arrays(1) if vtype == ARRAY else SCALARS[vtype]
        return source.map(lambda value: (vtype, value))

    return st.sampled_from([*sorted(SCALARS), ARRAY]).flatmap(of)


keys = st.text(max_size=16).filter(lambda k: not k.startswith("GGUF.") and k != "general.alignment")
kv_lists = st.lists(st.tuples(keys, values()), max_size=8, unique_by=lambda kv: kv[0]).map(
    lambda pairs: [(k, vtype, value) for k, (vtype, value) in pairs])


@st.composite
def tensor_lists(draw: st.DrawFn) -> list[Tensor]:
    names = draw(st.lists(st.text(min_size=1, max_size=10), max_size=4, unique=True))
    out: list[Tensor] = []
    for name in names:
        ggml_type = draw(st.sampled_from(sorted(gh.GGML_TYPES)))
        block = gh.GGML_TYPES[ggml_type][1]
        rest = draw(st.lists(st.integers(1, 3), max_size=3))
        out.append((name, (block * draw(st.integers(1, 2)), *rest), ggml_type))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kvs=kv_lists, tensors=tensor_lists(), order=st.sampled_from("<>"), version=st.sampled_from([2, 3]),
       alignment=st.sampled_from([None, 1, 8, 32, 64, 256]))
def test_built_headers_round_trip(kvs: list[KV], tensors: list[Tensor], order: str, version: int,
                                  alignment: int | None) -> None:
    if alignment is not None:
        kvs = [*kvs, ("general.alignment", 4, alignment)]
    data = build(kvs, tensors, order=order, version=version, alignment=alignment or 32)
    header = parse(data, materialise=ALL)
    assert (header.version, header.byte_order, header.alignment) == (version, order, alignment or 32)
    assert list(header.kv) == [key for key, _t, _v in kvs]
    for key, vtype, value in kvs:
        got = header.kv[key if isinstance(key, str) else key.decode()]
        assert got.type == vtype and same(got.value, expected_value(vtype, value))
        assert data[got.offset:got.offset + got.size] == enc_payload(order, vtype, value)
        if vtype == ARRAY:
            assert (got.array_type, got.length) == (value.item_type, len(value.items))
    assert [(t.name, t.shape, t.ggml_type) for t in header.tensors] == tensors
    assert header.data_offset % header.alignment == 0 and header.data_offset - header.header_size < header.alignment
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "h.gguf"
        path.write_bytes(data)
        assert_matches_reader(header, path)
        assert read_gguf(path).tensors == header.tensors


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kvs=kv_lists, big=st.booleans())
def test_writer_headers_round_trip(kvs: list[KV], big: bool) -> None:
    """The same through gguf.GGUFWriter (it refuses empty arrays, so those are dropped)."""
    vt = gguf.GGUFValueType
    kept = [(str(k), t, v) for k, t, v in kvs if not (t == ARRAY and not (all_nonempty(v) and inferable(v)))
            and k != "general.architecture"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w.gguf"
        writer = gguf.GGUFWriter(path, "test", endianess=gguf.GGUFEndian.BIG if big else gguf.GGUFEndian.LITTLE)
        for key, vtype, value in kept:
            if vtype == ARRAY:
                writer.add_key_value(key, to_python(value), vt.ARRAY, vt(value.item_type))
            else:
                writer.add_key_value(key, value, vt(vtype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        writer.close()
        with open(path, "rb") as handle:
            header = read_header(handle, "w", materialise=ALL)
        assert_matches_reader(header, path)
    for key, vtype, value in kept:
        got = header.kv[key]
        if vtype != ARRAY or value.item_type != ARRAY:  # inner arrays take the writer's inferred element types
            assert got.type == vtype and same(got.value, expected_value(vtype, value))


def inferable(value: Arr) -> bool:
    """GGUFWriter infers the element types of inner arrays (int -> INT32, float -> FLOAT32): values must fit."""
    if value.item_type != ARRAY:
        return True

    def fits(item: Any) -> bool:
        if isinstance(item, Arr):
            return all(fits(inner) for inner in item.items)
        if isinstance(item, (bool, str)):
            return True
        if isinstance(item, int):
            return -(2**31) <= item < 2**31
        return isinstance(item, float) and abs(item) < 3.4e38

    return all(fits(item) for item in value.items)


def all_nonempty(value: Arr) -> bool:
    return bool(value.items) and all(all_nonempty(item) for item in value.items if isinstance(item, Arr))


def to_python(value: Any) -> Any:
    return [to_python(item) for item in value.items] if isinstance(value, Arr) else value


def seed_files() -> list[bytes]:
    return [
        build(GOOD_KVS, GOOD_TENSORS),
        build([*GOOD_KVS, ("general.alignment", 4, 64)], GOOD_TENSORS, order=">"),
        big_vocab_file(20),
        build([("n", ARRAY, Arr(ARRAY, (Arr(STRING, ("a", "bc")), Arr(STRING, ())))), ("s", STRING, "x" * 40),
               ("f", 12, 1.5), ("b", 7, True)], [("t", (32, 2), 8)], version=2),
    ]


SEEDS = seed_files()
HUGE = [0, 1, 13, 255, 2**31, 2**32 - 1, 2**32, 2**40, 2**40 + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "u64", "u32"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "u64":
            data[at:at + 8] = struct.pack("<Q", draw(st.sampled_from(HUGE)))
        else:
            data[at:at + 4] = struct.pack("<I", draw(st.sampled_from(HUGE[:6])))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(), sized=st.booleans(), everything=st.booleans(), first=st.sampled_from([1 << 20, 5]))
def test_mutations_end_in_a_header_or_input_error(data: bytes, sized: bool, everything: bool, first: int) -> None:
    start = time.perf_counter()
    with chunks(first):
        try:
            header = parse(data, sized=sized, materialise=ALL if everything else None)
        except InputError as exc:
            assert exc.what == "test.gguf" and exc.why and "\n" not in exc.why
        else:
            assert header.header_size <= len(data) and header.version in (2, 3)
    assert time.perf_counter() - start < 1.0


# --- split shards -------------------------------------------------------------------------------------------

def test_split_shard_names() -> None:
    assert split_shards(Path("m/x-00002-of-00003.gguf")) == [
        Path("m/x-00001-of-00003.gguf"), Path("m/x-00002-of-00003.gguf"), Path("m/x-00003-of-00003.gguf")]
    assert split_shards(Path("x.gguf")) == [Path("x.gguf")]
    assert split_shards(Path("x-00001-of-00003.gguf.part")) == [Path("x-00001-of-00003.gguf.part")]
    assert split_shards(Path("a-b-00001-of-00001.gguf")) == [Path("a-b-00001-of-00001.gguf")]
    for bad in ("x-00004-of-00003.gguf", "x-00000-of-00003.gguf", "x-00001-of-00000.gguf"):
        with pytest.raises(InputError, match="out of range"):
            split_shards(Path(bad))


def write_split(folder: Path) -> list[Path]:
    writer = gguf.GGUFWriter(folder / "model.gguf", "llama", split_max_tensors=1)
    writer.add_context_length(4096)
    for index in range(3):
        writer.add_tensor(f"blk.{index}.w", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return sorted(folder.glob("*.gguf"))


def test_complete_split(tmp_path: Path) -> None:
    written = write_split(tmp_path)
    assert [p.name for p in written] == [f"model-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert check_shards(written[1]) == written
    first = read_gguf(written[0])
    assert first.get("split.no") == 0 and first.get("split.count") == 3 and first.get("split.tensors.count") == 3
    assert first.kv["split.count"].type == GGUFValueType.UINT16
    assert first.get("llama.context_length") == 4096
    assert [read_gguf(p).get("split.no") for p in written] == [0, 1, 2]
    assert check_shards(tmp_path / "other.gguf") == [tmp_path / "other.gguf"]


def test_incomplete_split(tmp_path: Path) -> None:
    written = write_split(tmp_path)
    written[1].unlink()
    with pytest.raises(InputError) as caught:
        check_shards(written[0])
    assert caught.value.why == "split GGUF is incomplete: 1 of 3 shards missing (model-00002-of-00003.gguf)"
    many = tmp_path / "big-00001-of-00009.gguf"
    many.write_bytes(b"")
    with pytest.raises(InputError, match=r"8 of 9 shards missing \(big-00002-of-00009.gguf, .* and 3 more\)"):
        check_shards(many)


# --- the corpus of odd files ----------------------------------------------------------------------------------

def _nested(depth: int) -> Arr:
    value = Arr(4, (1,))
    for _ in range(depth):
        value = Arr(ARRAY, (value,))
    return value


def _with(data: bytes, at: int, raw: bytes) -> bytes:
    return data[:at] + raw + data[at + len(raw):]


_GOOD = build(GOOD_KVS, GOOD_TENSORS)
_VOCAB = big_vocab_file(50)
ROPE_KVS: list[KV] = [*GOOD_KVS, ("llama.rope.freq_base", 6, 500000.0), ("llama.rope.scaling.type", STRING, "yarn"),
                      ("llama.rope.scaling.factor", 6, 4.0), ("llama.rope.scaling.original_context_length", 4, 8192)]

# file name -> (bytes, None for a file that reads, else the start of the InputError reason)
CORPUS_FILES: dict[str, tuple[bytes, str | None]] = {
    "valid-minimal.gguf": (build([]), None),
    "valid-rope-little.gguf": (build(ROPE_KVS, [*GOOD_TENSORS, ("rope_freqs.weight", (64,), 0)]), None),
    "valid-rope-big-endian.gguf": (build(ROPE_KVS, GOOD_TENSORS, order=">"), None),
    "valid-v2.gguf": (build(GOOD_KVS, GOOD_TENSORS, version=2), None),
    "valid-nested-arrays.gguf": (build([("n", ARRAY, _nested(3)), ("s", ARRAY, Arr(ARRAY, (Arr(STRING, ("a",)),)))]),
                                 None),
    "valid-empty-things.gguf": (build([("", STRING, ""), ("e", ARRAY, Arr(STRING, ())), ("z", ARRAY, Arr(0, ()))],
                                      [("scalar", (), 0)]), None),
    "valid-alignment-1.gguf": (build([("general.alignment", 4, 1)], GOOD_TENSORS, alignment=1), None),
    "valid-header-only.gguf": (build(GOOD_KVS, GOOD_TENSORS, data=False), None),
    "valid-invalid-utf8-value.gguf": (build([("chat", STRING, b"\xff\xfe{{")]), None),
    "valid-vocab.gguf": (_VOCAB, None),
    "empty.gguf": (b"", "file is empty"),
    "magic-only.gguf": (b"GGUF", "file is truncated"),
    "old-ggml-magic.gguf": (b"lmgg" + bytes(40), "not a GGUF file"),
    "not-gguf-json.gguf": (b'{"model_type": "llama"}\n', "not a GGUF file"),
    "version-1.gguf": (build(GOOD_KVS, version=1), "GGUF version 1 is not supported"),
    "version-4.gguf": (build(GOOD_KVS, version=4), "unknown GGUF version 4"),
    "version-0-big-endian.gguf": (build(GOOD_KVS, version=0, order=">"), "unknown GGUF version 0"),
    "truncated-in-key.gguf": (build([("k" * 200, 4, 1)])[:100],
                              "the key of metadata entry 0 claims 200 bytes from byte 32, past the end of the file"),
    "truncated-in-string.gguf": (build([("general.name", STRING, "x" * 200)])[:100],
                                 "a string value in key 'general.name' claims 200 bytes from byte 56, past the end"),
    "truncated-in-u64.gguf": (build([("general.name", STRING, "x"), ("n", 10, 5)], data=False)[:-3],
                              "file is truncated: it ends at byte 75, inside key 'n'"),
    "truncated-tiny.gguf": (_GOOD[:40], "header claims 2 key-value pairs, more than a file of 40 bytes can hold"),
    "truncated-in-tensor-info.gguf": (_GOOD[:parse(_GOOD).header_size - 5], "file is truncated"),
    "truncated-in-vocab.gguf": (_VOCAB[:300], "an array of 50 STRING in key 'tokenizer.ggml.tokens' would end at"),
    "kv-count-huge.gguf": (build(GOOD_KVS, counts=(0, 2**64 - 1)), "header claims"),
    "tensor-count-10e12.gguf": (build(GOOD_KVS, GOOD_TENSORS, counts=(10**12, 2)), "header claims 1000000000000"),
    "key-length-2e40.gguf": (b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 2**40) + b"k" * 16,
                             "the key of metadata entry 0 claims 1099511627776 bytes"),
    "string-length-2e40.gguf": (_with(_GOOD, _GOOD.index(b"llama") - 8, struct.pack("<Q", 2**40)), "a string value"),
    "string-length-max.gguf": (_with(_GOOD, _GOOD.index(b"llama") - 8, struct.pack("<Q", 2**64 - 1)),
                               "a string value"),
    "vocab-string-length-huge.gguf": (_with(_VOCAB, _VOCAB.index(b"t0") - 8, struct.pack("<Q", 2**62)),
                                      "a string in the array of key 'tokenizer.ggml.tokens'"),
    "array-length-huge.gguf": (build([("a", ARRAY, Arr(10, (1,)))]).replace(struct.pack("<IQ", 10, 1),
                                                                           struct.pack("<IQ", 10, 2**61)), "an array of"),
    "duplicate-key.gguf": (build([*GOOD_KVS, GOOD_KVS[1]]), "duplicate key"),
    "duplicate-tensor.gguf": (build(GOOD_KVS, [*GOOD_TENSORS, GOOD_TENSORS[0]]), "duplicate tensor name"),
    "unknown-value-type.gguf": (build([("k", 4, 1)]).replace(struct.pack("<I", 4) + struct.pack("<I", 1),
                                                             struct.pack("<I", 13) + struct.pack("<I", 1)),
                                "key 'k' has unknown value type 13"),
    "unknown-array-type.gguf": (build([("a", ARRAY, Arr(4, (1,)))]).replace(struct.pack("<IQ", 4, 1),
                                                                          struct.pack("<IQ", 77, 1)),
                                "key 'a' is an array of unknown value type 77"),
    "invalid-utf8-key.gguf": (build([(b"\xff\xfe", 4, 1)]), "the key of metadata entry 0 is not valid UTF-8"),
    "invalid-utf8-tensor-name.gguf": (build([], [(b"w\xc0", (4,), 0)]), "the name of tensor 0"),
    "alignment-48.gguf": (build([("general.alignment", 4, 48)], GOOD_TENSORS, data=False),
                          "general.alignment is 48, not a power of two"),
    "alignment-0.gguf": (build([("general.alignment", 4, 0)], data=False), "general.alignment is 0"),
    "alignment-string.gguf": (build([("general.alignment", STRING, "32")]), "general.alignment is STRING"),
    "tensor-5-dims.gguf": (build(GOOD_KVS, [("w", (1, 1, 1, 1, 1), 0)]), "tensor 'w' has 5 dimensions"),
    "tensor-type-q4_2.gguf": (build(GOOD_KVS, [("w", (32,), 4)], data=False), "tensor 'w' has unknown ggml type 4"),
    "tensor-negative-dim.gguf": (build(GOOD_KVS, [("w", (2**63,), 0)], data=False), "tensor 'w' has a negative"),
    "arrays-nested-9-deep.gguf": (build([("deep", ARRAY, _nested(9))]), "key 'deep' has arrays nested more than 8"),
}


def test_corpus_files_are_the_ones_described() -> None:
    """tests/gguf_corpus holds CORPUS_FILES byte for byte (rewrite with `python tests/test_gguf_header.py`)."""
    for name, (data, _reason) in CORPUS_FILES.items():
        assert (CORPUS / name).read_bytes() == data, name
    readme = (CORPUS / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in CORPUS_FILES)


def test_corpus() -> None:
    """Every file of tests/gguf_corpus reads or is refused with InputError, in bounded time and memory.

    Read twice: as a local file (mapped, size known: the reason must be the one described), and as a
    stream of unknown size with every array materialised (claims then end in "truncated" instead)."""
    files = sorted(CORPUS.glob("*.gguf"))
    assert len(files) >= len(CORPUS_FILES)
    for path in files:
        expected = CORPUS_FILES.get(path.name, (b"", "?"))[1]
        for read in (read_gguf, read_streamed):
            with bounded(megabytes=50):
                try:
                    header = read(path)
                except InputError as exc:
                    assert expected is not None, (path.name, exc.why)
                    if read is read_gguf:
                        assert expected == "?" or exc.why.startswith(expected), (path.name, exc.why)
                else:
                    assert expected in (None, "?"), (path.name, header)


def read_streamed(path: Path) -> GGUFHeader:
    """The stream path (no size, every array materialised) on a local file."""
    with open(path, "rb") as handle:
        return read_header(handle, str(path), materialise=ALL)


def write_corpus(folder: Path = CORPUS) -> None:
    folder.mkdir(exist_ok=True)
    for name, (data, _reason) in CORPUS_FILES.items():
        (folder / name).write_bytes(data)


if __name__ == "__main__":
    write_corpus()
    print(f"wrote {len(CORPUS_FILES)} files to {CORPUS}")

