"""ropedoctor.writers.gguf against gguf-py: files written by gguf.GGUFWriter, edited, read back by gguf.GGUFReader.

Every edit is checked with GGUFReader as the oracle: all keys and values (changed ones new, the
others as before, in the expected order), the tensor names, shapes and types, and the data section
byte for byte. Both byte orders, alignments 32 and 64.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import ropedoctor.writers.gguf as writer
from ropedoctor.errors import InputError
from ropedoctor.gguf_keys import ValueType
from ropedoctor.sources.gguf_header import read_gguf
from ropedoctor.writers.gguf import (
    KVChange,
    edit_in_place,
    encode_value,
    override_kv_args,
    plan_edit,
    rewrite,
    undo_in_place,
)

ROOT = Path(__file__).resolve().parent.parent
VT = gguf.GGUFValueType
ENDIANS = [gguf.GGUFEndian.LITTLE, gguf.GGUFEndian.BIG]
ENDIAN_IDS = ["little", "big"]
ARCH = "qwen2"
CTX = f"{ARCH}.context_length"
BASE = f"{ARCH}.rope.freq_base"
FACTOR = f"{ARCH}.rope.scaling.factor"
CAUSAL = f"{ARCH}.attention.causal"
SECTIONS = f"{ARCH}.rope.dimension_sections"
SCALING_TYPE = f"{ARCH}.rope.scaling.type"
ORIG_CTX = f"{ARCH}.rope.scaling.original_context_length"
N_TOKENS = 3000


# --- building files -----------------------------------------------------------------------------


def make_gguf(path: Path, endian: Any = gguf.GGUFEndian.LITTLE, *, ctx_type: Any = VT.UINT32,
              alignment: int | None = None, seed: int = 0, big_tensor_bytes: int = 0) -> Path:
    """A qwen2 GGUF with every value type, a tokenizer of N_TOKENS strings and random non-zero tensors."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, ARCH, endianess=endian)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_name("test-model")
    w.add_key_value(CTX, 32768, ctx_type)
    w.add_uint32(f"{ARCH}.embedding_length", 64)
    w.add_rope_freq_base(1000000.0)
    w.add_float32(FACTOR, 2.0)
    w.add_bool(CAUSAL, False)
    w.add_key_value(SECTIONS, [16, 24, 24, 0], VT.ARRAY, sub_type=VT.INT32)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 0.1)
    w.add_key_value("test.bools", [True, False, True], VT.ARRAY)
    w.add_key_value("test.u64s", [1, 2**40], VT.ARRAY, sub_type=VT.UINT64)
    w.add_key_value("test.nested", [[1, 2], [3]], VT.ARRAY)
    w.add_string("test.unicode", "héllo → 世界")
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}_{'é' * (i % 7)}" for i in range(N_TOKENS)])
    w.add_token_types([1 + i % 3 for i in range(N_TOKENS)])
    w.add_token_scores([float(-i) for i in range(N_TOKENS)])
    w.add_tensor("token_embd.weight", rng.standard_normal((50, 64)).astype(np.float32))
    w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((64, 64)).astype(np.float16))
    w.add_tensor("blk.0.odd.weight", rng.standard_normal(7).astype(np.float32))  # 28 bytes: padding follows
    w.add_tensor("blk.0.q8.weight", rng.integers(1, 255, (4, 34), dtype=np.uint8),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("rope_freqs.weight", (rng.random(16) + 1).astype(np.float32))
    if big_tensor_bytes:
        w.add_tensor("blk.1.big.weight", rng.integers(1, 255, big_tensor_bytes, dtype=np.uint8).view(np.int8))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def make_sparse_gguf(path: Path, data_bytes: int) -> Path:
    """A GGUF whose one F32 tensor is declared ``data_bytes`` long: header written, then truncate() (sparse)."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(4096)
    w.add_rope_freq_base(10000.0)
    w.add_tensor_info("big.weight", [data_bytes // 4], np.dtype(np.float32), data_bytes)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    header_end = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(-(-header_end // 32) * 32 + data_bytes)
        handle.seek(-(-header_end // 32) * 32)
        handle.write(b"\x5a" * 4096)  # some non-zero data at the start and the end
        handle.seek(-4096, os.SEEK_END)
        handle.write(b"\xa5" * 4096)
    return path


def poke_padding(path: Path) -> None:
    """Put non-zero bytes in the padding after the 28-byte tensor: they must be copied as they are."""
    reader = gguf.GGUFReader(path)
    odd = next(t for t in reader.tensors if t.name == "blk.0.odd.weight")
    start = odd.data_offset + odd.n_bytes
    del reader
    with open(path, "r+b") as handle:
        handle.seek(start)
        handle.write(b"\xee\xdd\xcc")


# --- the oracle ---------------------------------------------------------------------------------


Fields = dict[str, tuple[list[int], Any]]


def fields(reader: Any) -> Fields:
    return {key: ([int(t) for t in field.types], field.contents())
            for key, field in reader.fields.items() if not key.startswith("GGUF.")}


def expected_fields(before: Fields, changes: list[KVChange]) -> Fields:
    expected = dict(before)
    for change in changes:
        if change.value is None:
            expected.pop(change.key, None)
            continue
        types = [change.type]
        value = change.value
        item_type = change.array_type
        while change.type == ValueType.ARRAY:  # GGUFReader flattens arrays of arrays
            types.append(item_type if item_type is not None else int(VT.get_type(value[0])))
            if types[-1] != ValueType.ARRAY:
                break
            value, item_type = [x for inner in value for x in inner], None
        expected[change.key] = (types, value)
    return expected


def data_section(path: Path) -> bytes:
    reader = gguf.GGUFReader(path)
    offset = reader.data_offset
    del reader
    return path.read_bytes()[offset:]


def assert_edited(source: Path, edited: Path, changes: list[KVChange], before: Fields | None = None) -> None:
    """``edited`` is ``source`` with ``changes`` applied, as gguf.GGUFReader reads them."""
    src, out = gguf.GGUFReader(source), gguf.GGUFReader(edited)
    want = expected_fields(before if before is not None else fields(src), changes)
    got = fields(out)
    assert list(got) == list(want)
    for key, (types, value) in want.items():
        assert got[key][0] == types, key
        assert got[key][1] == value, key
    assert int(out.fields["GGUF.kv_count"].contents()) == len(want)
    assert out.endianess == src.endianess
    assert out.alignment == src.alignment
    assert out.data_offset % out.alignment == 0
    assert len(out.tensors) == len(src.tensors)
    for new, old in zip(out.tensors, src.tensors, strict=True):
        assert (new.name, new.shape.tolist(), new.tensor_type, new.n_bytes) == \
            (old.name, old.shape.tolist(), old.tensor_type, old.n_bytes)
        assert new.data_offset - out.data_offset == old.data_offset - src.data_offset
        assert new.data.tobytes() == old.data.tobytes(), new.name
    src_offset, out_offset = src.data_offset, out.data_offset
    del src, out
    assert edited.read_bytes()[out_offset:] == source.read_bytes()[src_offset:]


@pytest.fixture(params=ENDIANS, ids=ENDIAN_IDS)
def model(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = make_gguf(tmp_path / "model.gguf", request.param)
    poke_padding(path)
    return path


def snapshot(path: Path, folder: Path) -> Path:
    copy = folder / f"original-{path.name}"
    shutil.copyfile(path, copy)
    return copy


# --- encoding -----------------------------------------------------------------------------------


ENCODE_CASES: list[tuple[Any, Any, Any]] = [
    (VT.UINT8, 255, None), (VT.INT8, -128, None), (VT.UINT16, 65535, None), (VT.INT16, -32768, None),
    (VT.UINT32, 2**32 - 1, None), (VT.INT32, -(2**31), None), (VT.FLOAT32, 0.1, None), (VT.FLOAT32, 4, None),
    (VT.BOOL, True, None), (VT.BOOL, False, None), (VT.UINT64, 2**64 - 1, None), (VT.INT64, -(2**63), None),
    (VT.FLOAT64, 1e300, None), (VT.STRING, "", None), (VT.STRING, "yarn", None), (VT.STRING, "日本語 ✓", None),
    (VT.ARRAY, [1, -2, 3], None), (VT.ARRAY, [0.5, 1.5], None), (VT.ARRAY, ["a", "", "ü"], None),
    (VT.ARRAY, [True, False], None), (VT.ARRAY, [[1, 2], [3]], None), (VT.ARRAY, [["x"], ["y", "z"]], None),
    (VT.ARRAY, [1, 2], VT.UINT64), (VT.ARRAY, [1, 2], VT.UINT8), (VT.ARRAY, [1.0, 2.0], VT.FLOAT64),
    (VT.ARRAY, [7, 8], VT.INT16),
]


@pytest.mark.parametrize("endian", ENDIANS, ids=ENDIAN_IDS)
@pytest.mark.parametrize(("vtype", "value", "sub_type"), ENCODE_CASES)
def test_encode_value_matches_gguf_writer(endian: Any, vtype: Any, value: Any, sub_type: Any) -> None:
    reference = gguf.GGUFWriter(None, "x", endianess=endian)._pack_val(value, vtype, add_vtype=False,
                                                                       sub_type=sub_type)
    order = "<" if endian == gguf.GGUFEndian.LITTLE else ">"
    assert encode_value(int(vtype), value, order, None if sub_type is None else int(sub_type)) == reference


@pytest.mark.parametrize(("vtype", "value"), [
    (VT.BOOL, "false"), (VT.BOOL, "true"), (VT.BOOL, 1), (VT.BOOL, None), (VT.UINT8, 256), (VT.UINT32, -1),
    (VT.INT32, 2**31), (VT.UINT32, 1.0), (VT.UINT32, True), (VT.UINT32, "8192"), (VT.FLOAT32, "1e6"),
    (VT.FLOAT32, 1e39), (VT.FLOAT32, False), (VT.STRING, 5), (VT.STRING, b"bytes"), (VT.STRING, "\ud800"),
    (VT.ARRAY, [1, "a"]), (VT.ARRAY, []), (VT.ARRAY, "abc"), (VT.ARRAY, [1.5, 2]), (13, 1),
])
def test_encode_value_refuses(vtype: Any, value: Any) -> None:
    with pytest.raises(ValueError):
        encode_value(int(vtype), value, "<")


def test_empty_array_with_a_type() -> None:
    assert encode_value(ValueType.ARRAY, [], "<", ValueType.INT32) == b"\x05\0\0\0" + bytes(8)


# --- planning -----------------------------------------------------------------------------------


def test_plan_edit(model: Path) -> None:
    header = read_gguf(model)
    in_place = [
        [KVChange(CTX, ValueType.UINT32, 131072)],
        [KVChange(BASE, ValueType.FLOAT32, 500000.0), KVChange(FACTOR, ValueType.FLOAT32, 4.0)],
        [KVChange(CAUSAL, ValueType.BOOL, True)],
        [KVChange("general.name", ValueType.STRING, "abcd-model")],  # 10 bytes, as "test-model"
        [KVChange(SECTIONS, ValueType.ARRAY, [24, 20, 20, 0], ValueType.INT32)],
        [KVChange("no.such.key", ValueType.UINT32, None)],  # removing an absent key changes nothing
        [],
    ]
    for changes in in_place:
        edit = plan_edit(header, changes)
        assert (edit.mode, edit.reason, edit.changes) == ("in-place", None, changes)
    rewrites = {
        "is new": [KVChange(SCALING_TYPE, ValueType.STRING, "yarn")],
        "changes type from UINT32 to UINT64": [KVChange(CTX, ValueType.UINT64, 131072)],
        "is removed": [KVChange(FACTOR, ValueType.FLOAT32, None)],
        "changes size from 18 to 13 bytes": [KVChange("general.name", ValueType.STRING, "short")],
        "changes size": [KVChange(SECTIONS, ValueType.ARRAY, [1, 2, 3])],
        "an array of UINT32": [KVChange(SECTIONS, ValueType.ARRAY, [1, 2, 3, 4], ValueType.UINT32)],
        "is an array of STRING": [KVChange("tokenizer.ggml.tokens", ValueType.ARRAY,
                                           [f"tok{i}_{'é' * (i % 7)}" for i in range(N_TOKENS)])],
    }
    for reason, changes in rewrites.items():
        edit = plan_edit(header, [KVChange("test.u8", ValueType.UINT8, 1), *changes])
        assert edit.mode == "rewrite"
        assert edit.reason is not None and reason in edit.reason, edit.reason


def test_plan_refuses_invalid_changes(model: Path) -> None:
    header = read_gguf(model)
    for changes in (
        [KVChange("general.alignment", ValueType.UINT32, 64)],
        [KVChange("general.alignment", ValueType.UINT32, None)],
        [KVChange(CTX, ValueType.UINT32, 1), KVChange(CTX, ValueType.UINT32, 2)],
        [KVChange(CAUSAL, ValueType.BOOL, "false")],
        [KVChange("", ValueType.UINT32, 1)],
    ):
        with pytest.raises(ValueError):
            plan_edit(header, changes)
        with pytest.raises(ValueError):
            rewrite(model, header, changes, model.with_name("out.gguf"))
    assert not model.with_name("out.gguf").exists()


# --- in place -----------------------------------------------------------------------------------


def test_edit_in_place(model: Path, tmp_path: Path) -> None:
    original = snapshot(model, tmp_path)
    before = fields(gguf.GGUFReader(model))
    mtime_ns = model.stat().st_mtime_ns
    changes = [KVChange(CTX, ValueType.UINT32, 131072), KVChange(BASE, ValueType.FLOAT32, 500000.0),
               KVChange(FACTOR, ValueType.FLOAT32, 4.0), KVChange(CAUSAL, ValueType.BOOL, True),
               KVChange("general.name", ValueType.STRING, "abcd-model"),
               KVChange(SECTIONS, ValueType.ARRAY, [24, 20, 20, 0], ValueType.INT32)]
    backup = tmp_path / "model.gguf.backup.json"
    edit_in_place(model, read_gguf(model), changes, backup=backup)
    assert model.stat().st_size == original.stat().st_size
    assert_edited(original, model, changes, before)

    record = json.loads(backup.read_text())
    assert set(record) >= {"file", "size", "mtime", "patches"}
    assert (record["file"], record["size"], record["mtime_ns"]) == (str(model.resolve()), model.stat().st_size,
                                                                    mtime_ns)
    assert [p["key"] for p in record["patches"]] == [c.key for c in changes]
    header = read_gguf(original)
    old_bytes = original.read_bytes()
    new_bytes = model.read_bytes()
    for patch in record["patches"]:
        entry = header.kv[patch["key"]]
        assert patch["offset"] == entry.offset
        assert bytes.fromhex(patch["old_hex"]) == old_bytes[entry.offset:entry.offset + entry.size]
        assert bytes.fromhex(patch["new_hex"]) == new_bytes[entry.offset:entry.offset + entry.size]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left

    undo_in_place(model, backup)
    assert model.read_bytes() == original.read_bytes()
    assert model.stat().st_mtime_ns == mtime_ns
    assert not backup.exists()


def test_bool_in_place_both_ways(model: Path, tmp_path: Path) -> None:
    """gguf-set-metadata converts with np.bool_(text), and np.bool_("false") is True: not here."""
    assert bool(np.bool_("false")) is True  # the bug this writer must not have
    original = snapshot(model, tmp_path)
    for value in (True, False, True, False):
        before = fields(gguf.GGUFReader(model))
        backup = tmp_path / f"causal-{value}-{time.monotonic_ns()}.json"
        edit_in_place(model, read_gguf(model), [KVChange(CAUSAL, ValueType.BOOL, value)], backup=backup)
        assert gguf.GGUFReader(model).fields[CAUSAL].contents() is value
        assert_edited(original, model, [KVChange(CAUSAL, ValueType.BOOL, value)], before)
    assert model.read_bytes() == original.read_bytes()  # False -> True -> False -> True -> False
    with pytest.raises(ValueError, match="Python bool"):
        edit_in_place(model, read_gguf(model), [KVChange(CAUSAL, ValueType.BOOL, "false")], backup=None)


def test_existing_backup_refused(model: Path, tmp_path: Path) -> None:
    original = snapshot(model, tmp_path)
    backup = tmp_path / "backup.json"
    backup.write_text("{}")
    with pytest.raises(InputError, match="backup file already exists"):
        edit_in_place(model, read_gguf(model), [KVChange(CTX, ValueType.UINT32, 65536)], backup=backup)
    assert model.read_bytes() == original.read_bytes()
    assert backup.read_text() == "{}"


def test_in_place_without_backup(model: Path, tmp_path: Path) -> None:
    original = snapshot(model, tmp_path)
    changes = [KVChange(CTX, ValueType.UINT32, 65536)]
    edit_in_place(model, read_gguf(model), changes, backup=None)
    assert_edited(original, model, changes)


def test_in_place_refuses_what_needs_a_rewrite(model: Path, tmp_path: Path) -> None:
    original = snapshot(model, tmp_path)
    with pytest.raises(ValueError, match="use rewrite"):
        edit_in_place(model, read_gguf(model), [KVChange(SCALING_TYPE, ValueType.STRING, "yarn")],
                      backup=tmp_path / "b.json")
    assert model.read_bytes() == original.read_bytes()
    assert not (tmp_path / "b.json").exists()


def test_in_place_refuses_a_stale_header(model: Path, tmp_path: Path) -> None:
    stale = read_gguf(model)
    rewrite(model, stale, [KVChange(FACTOR, ValueType.FLOAT32, None)], model)  # keys move
    edited = model.read_bytes()
    with pytest.raises(InputError, match="changed since its header was read"):
        edit_in_place(model, stale, [KVChange(CTX, ValueType.UINT32, 65536)], backup=tmp_path / "b.json")
    assert model.read_bytes() == edited
    assert not (tmp_path / "b.json").exists()


def test_undo_refuses_a_changed_file(model: Path, tmp_path: Path) -> None:
    backup = tmp_path / "b.json"
    edit_in_place(model, read_gguf(model), [KVChange(CTX, ValueType.UINT32, 65536)], backup=backup)
    edit_in_place(model, read_gguf(model), [KVChange(CTX, ValueType.UINT32, 1000)], backup=None)
    changed = model.read_bytes()
    with pytest.raises(InputError, match="no longer holds"):
        undo_in_place(model, backup)
    assert model.read_bytes() == changed
    assert backup.exists()
    with open(model, "ab") as handle:
        handle.write(b"x")
    with pytest.raises(InputError, match="not restoring"):
        undo_in_place(model, backup)
    bad = tmp_path / "bad.json"
    bad.write_text('{"size": 1}')
    with pytest.raises(InputError, match="not a ropedoctor backup"):
        undo_in_place(model, bad)


# --- rewrite ------------------------------------------------------------------------------------


REWRITES: dict[str, list[KVChange]] = {
    "retype": [KVChange(CTX, ValueType.UINT32, 131072)],  # the source has it as UINT64
    "add-scaling": [KVChange(SCALING_TYPE, ValueType.STRING, "yarn"), KVChange(FACTOR, ValueType.FLOAT32, 4.0),
                    KVChange(ORIG_CTX, ValueType.UINT32, 32768),
                    KVChange(f"{ARCH}.rope.scaling.finetuned", ValueType.BOOL, True)],
    "remove": [KVChange(FACTOR, ValueType.FLOAT32, None), KVChange("test.unicode", 0, None),
               KVChange("absent.key", 0, None)],
    "string-length": [KVChange("general.name", ValueType.STRING, "a much longer name than before ✓")],
    "arrays": [KVChange(SECTIONS, ValueType.ARRAY, [8, 8]), KVChange("test.new", ValueType.ARRAY, ["x", "yy"]),
               KVChange("test.nested", ValueType.ARRAY, [[5], [6, 7], [8]])],
    "everything": [KVChange(CTX, ValueType.UINT32, 131072), KVChange(SCALING_TYPE, ValueType.STRING, "yarn"),
                   KVChange(FACTOR, ValueType.FLOAT32, None), KVChange("general.name", ValueType.STRING, "n"),
                   KVChange(CAUSAL, ValueType.BOOL, True), KVChange("test.u8", ValueType.UINT8, 1),
                   KVChange("test.f64", ValueType.FLOAT64, 2.5), KVChange("test.i64", ValueType.INT64, -1)],
}


@pytest.mark.parametrize("endian", ENDIANS, ids=ENDIAN_IDS)
@pytest.mark.parametrize("alignment", [None, 64], ids=["align32", "align64"])
@pytest.mark.parametrize("name", list(REWRITES))
def test_rewrite(tmp_path: Path, endian: Any, alignment: int | None, name: str) -> None:
    source = make_gguf(tmp_path / "model.gguf", endian, ctx_type=VT.UINT64, alignment=alignment)
    poke_padding(source)
    original = source.read_bytes()
    changes = REWRITES[name]
    out = tmp_path / "fixed.gguf"
    rewrite(source, read_gguf(source), changes, out)
    assert source.read_bytes() == original
    assert_edited(source, out, changes)
    header = read_gguf(out)
    assert header.alignment == (alignment or 32)
    assert header.data_offset % header.alignment == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.gguf", "model.gguf"]


@pytest.mark.parametrize("endian", ENDIANS, ids=ENDIAN_IDS)
def test_rewrite_in_place_and_idempotent(tmp_path: Path, endian: Any) -> None:
    source = make_gguf(tmp_path / "model.gguf", endian, ctx_type=VT.UINT64, alignment=64)
    poke_padding(source)
    original = snapshot(source, tmp_path)
    changes = REWRITES["everything"]
    rewrite(source, read_gguf(source), changes, source)  # out == path
    assert_edited(original, source, changes)
    once = source.read_bytes()
    rewrite(source, read_gguf(source), changes, source)
    assert source.read_bytes() == once
    again = tmp_path / "again.gguf"
    rewrite(source, read_gguf(source), changes, again)
    assert again.read_bytes() == once
    assert plan_edit(read_gguf(source), changes).mode == "in-place"  # applied changes are now same-size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.gguf", "model.gguf", "original-model.gguf"]


def test_rewrite_without_changes_copies(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy.gguf"
    rewrite(model, read_gguf(model), [], out)
    assert out.read_bytes() == model.read_bytes()  # gguf-py pads with zeros too


def recorder(calls: list[tuple[int, int]]) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        calls.append((done, total))
    return progress


def test_rewrite_progress_and_small_chunks(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for kernel in (True, False):
        monkeypatch.setattr(writer, "USE_COPY_FILE_RANGE", kernel)
        calls: list[tuple[int, int]] = []
        out = tmp_path / f"out-{kernel}.gguf"
        changes = REWRITES["everything"]
        rewrite(model, read_gguf(model), changes, out, progress=recorder(calls), chunk=4096)
        assert_edited(model, out, changes)
        total = out.stat().st_size
        assert calls[-1] == (total, total)
        assert all(t == total for _d, t in calls)
        assert [d for d, _t in calls] == sorted(d for d, _t in calls)
        assert len(calls) >= total // 4096


def test_rewrite_keeps_mode_and_follows_symlinks(model: Path, tmp_path: Path) -> None:
    model.chmod(0o640)
    link = tmp_path / "link.gguf"
    link.symlink_to(model)
    changes = [KVChange(SCALING_TYPE, ValueType.STRING, "yarn")]
    original = snapshot(model, tmp_path)
    rewrite(link, read_gguf(link), changes, link)
    assert link.is_symlink()
    assert_edited(original, model, changes)
    assert model.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("endian", ENDIANS, ids=ENDIAN_IDS)
def test_rewrite_refuses_alignment_changes(tmp_path: Path, endian: Any) -> None:
    source = make_gguf(tmp_path / "model.gguf", endian, alignment=64)
    for value in (32, 64, None):
        with pytest.raises(ValueError, match=r"general\.alignment"):
            rewrite(source, read_gguf(source), [KVChange("general.alignment", ValueType.UINT32, value)], source)


def test_rewrite_failures_leave_no_trace(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = snapshot(model, tmp_path)
    header = read_gguf(model)
    changes = [KVChange(SCALING_TYPE, ValueType.STRING, "yarn")]

    with pytest.raises(InputError, match="no such file or directory"):
        rewrite(model, header, changes, tmp_path / "missing" / "out.gguf")

    with pytest.raises(InputError, match="no such file"):
        rewrite(tmp_path / "nope.gguf", header, changes, tmp_path / "out.gguf")

    def full_disk(self: Any, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer._Copier, "copy", full_disk)
    with pytest.raises(InputError, match=r"No space left on device; .* is unchanged"):
        rewrite(model, header, changes, model)
    monkeypatch.undo()
    assert model.read_bytes() == original.read_bytes()

    calls = 0

    def interrupted(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rewrite(model, header, changes, model, progress=interrupted, chunk=1024)
    assert model.read_bytes() == original.read_bytes()

    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(original.read_bytes()[:-200])
    with pytest.raises(InputError, match="truncated"):
        rewrite(truncated, read_gguf(truncated), changes, truncated)

    monkeypatch.setattr(writer, "_verify", lambda *args: "simulated mismatch")
    with pytest.raises(InputError, match="failed its check"):
        rewrite(model, header, changes, model)
    monkeypatch.undo()
    assert model.read_bytes() == original.read_bytes()

    stale = read_gguf(model)
    rewrite(model, stale, [KVChange(FACTOR, ValueType.FLOAT32, None)], model)
    with pytest.raises(InputError, match="changed since its header was read"):
        rewrite(model, stale, changes, model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf", "original-model.gguf", "truncated.gguf"]


def test_stale_temp_files(model: Path, tmp_path: Path) -> None:
    """Temp files of dead writers are removed by the next rewrite; one a live writer holds is kept."""
    import fcntl

    dead = tmp_path / ".model.gguf.tmp-999999"
    dead.write_bytes(b"GGUF half written")
    live = tmp_path / ".model.gguf.tmp-999998"
    live.write_bytes(b"GGUF being written")
    other = tmp_path / ".other.gguf.tmp-1"
    other.write_bytes(b"not ours")
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        rewrite(model, read_gguf(model), [KVChange(CTX, ValueType.UINT32, 1)], model)
    assert not dead.exists()
    assert live.exists() and other.exists()
    assert read_gguf(model).get(CTX) == 1


def test_rewrite_without_tensors(tmp_path: Path) -> None:
    """A vocab-only GGUF may end right after its header, unpadded: the rewrite pads it."""
    source = tmp_path / "vocab.gguf"
    w = gguf.GGUFWriter(source, ARCH)
    w.add_token_list(["a", "b", "c"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    header = read_gguf(source)
    assert source.stat().st_size == header.header_size < header.data_offset
    changes = [KVChange(CTX, ValueType.UINT32, 4096)]
    out = tmp_path / "out.gguf"
    rewrite(source, header, changes, out)
    assert_edited(source, out, changes)
    assert out.stat().st_size == read_gguf(out).data_offset


# --- property: in place and rewrite agree, and GGUFReader reads what was asked --------------------


SCALAR_VALUES: dict[int, st.SearchStrategy[Any]] = {
    ValueType.UINT8: st.integers(0, 2**8 - 1), ValueType.INT8: st.integers(-(2**7), 2**7 - 1),
    ValueType.UINT16: st.integers(0, 2**16 - 1), ValueType.INT16: st.integers(-(2**15), 2**15 - 1),
    ValueType.UINT32: st.integers(0, 2**32 - 1), ValueType.INT32: st.integers(-(2**31), 2**31 - 1),
    ValueType.UINT64: st.integers(0, 2**64 - 1), ValueType.INT64: st.integers(-(2**63), 2**63 - 1),
    ValueType.FLOAT32: st.floats(width=32, allow_nan=False), ValueType.FLOAT64: st.floats(allow_nan=False),
    ValueType.BOOL: st.booleans(), ValueType.STRING: st.text(max_size=12),
}
KEY_POOL = [CTX, BASE, FACTOR, CAUSAL, SECTIONS, "general.name", "test.u8", "test.i8", "test.u16", "test.i16",
            "test.i32", "test.u64", "test.i64", "test.f64", "test.unicode", "new.a", "new.b", "new.c"]


# what make_gguf writes for the keys of KEY_POOL: type, and for strings the byte length, for arrays the element count
EXISTING: dict[str, tuple[int, int]] = {
    CTX: (ValueType.UINT32, 0), BASE: (ValueType.FLOAT32, 0), FACTOR: (ValueType.FLOAT32, 0),
    CAUSAL: (ValueType.BOOL, 0), SECTIONS: (ValueType.ARRAY, 4), "general.name": (ValueType.STRING, 10),
    "test.u8": (ValueType.UINT8, 0), "test.i8": (ValueType.INT8, 0), "test.u16": (ValueType.UINT16, 0),
    "test.i16": (ValueType.INT16, 0), "test.i32": (ValueType.INT32, 0), "test.u64": (ValueType.UINT64, 0),
    "test.i64": (ValueType.INT64, 0), "test.f64": (ValueType.FLOAT64, 0),
    "test.unicode": (ValueType.STRING, len("héllo → 世界".encode())),
}


@st.composite
def change_sets(draw: st.DrawFn) -> list[KVChange]:
    """Sets of changes; about half of them only same-type, same-size changes of existing keys (in place)."""
    same_size_only = draw(st.booleans())
    pool = list(EXISTING) if same_size_only else KEY_POOL
    keys = draw(st.lists(st.sampled_from(pool), unique=True, max_size=5))
    changes = []
    for key in keys:
        kinds: list[int | str] = [*SCALAR_VALUES, ValueType.ARRAY, "remove", "same", "same", "same"]
        kind = "same" if same_size_only else draw(st.sampled_from(kinds))
        if kind == "same" and key in EXISTING:
            vtype, length = EXISTING[key]
            if vtype == ValueType.ARRAY:
                items = draw(st.lists(SCALAR_VALUES[ValueType.INT32], min_size=length, max_size=length))
                changes.append(KVChange(key, vtype, items, ValueType.INT32))
            elif vtype == ValueType.STRING:
                text = draw(st.text(alphabet="abcxyz-_.", min_size=length, max_size=length))
                changes.append(KVChange(key, vtype, text))
            else:
                changes.append(KVChange(key, vtype, draw(SCALAR_VALUES[vtype])))
        elif kind == "remove":
            changes.append(KVChange(key, 0, None))
        elif kind == ValueType.ARRAY:
            item_type = draw(st.sampled_from([ValueType.INT32, ValueType.UINT8, ValueType.FLOAT32]))
            items = draw(st.lists(SCALAR_VALUES[item_type], min_size=1, max_size=6))
            changes.append(KVChange(key, ValueType.ARRAY, items, item_type))
        else:
            vtype = draw(st.sampled_from(list(SCALAR_VALUES))) if isinstance(kind, str) else kind
            changes.append(KVChange(key, vtype, draw(SCALAR_VALUES[vtype])))
    return changes


@pytest.fixture(scope="module")
def small_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("small")
    models = {}
    for endian, name in zip(ENDIANS, ENDIAN_IDS, strict=True):
        path = make_gguf(folder / f"{name}.gguf", endian)
        poke_padding(path)
        models[name] = path
    return models


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=change_sets(), which=st.sampled_from(ENDIAN_IDS))
def test_property_in_place_equals_rewrite(small_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory,
                                          changes: list[KVChange], which: str) -> None:
    source = small_models[which]
    folder = tmp_path_factory.mktemp("prop")
    header = read_gguf(source)
    rewritten = folder / "rewritten.gguf"
    rewrite(source, header, changes, rewritten)
    assert_edited(source, rewritten, changes)
    mode = plan_edit(header, changes).mode
    event(mode)
    if mode == "in-place":
        patched = folder / "patched.gguf"
        shutil.copyfile(source, patched)
        edit_in_place(patched, header, changes, backup=folder / "backup.json")
        assert patched.read_bytes() == rewritten.read_bytes()
        undo_in_place(patched, folder / "backup.json")
        assert patched.read_bytes() == source.read_bytes()
    shutil.rmtree(folder)


# --- crash safety -------------------------------------------------------------------------------


CHILD = """
import sys, time
from pathlib import Path
from ropedoctor.sources.gguf_header import read_gguf
from ropedoctor.writers.gguf import KVChange, rewrite
path = Path(sys.argv[1])
header = read_gguf(path)
changes = [KVChange(k, t, v) for k, t, v in {changes!r}]
print("go", flush=True)
start = time.perf_counter()
rewrite(path, header, changes, path, chunk=1 << 20)
print(time.perf_counter() - start, flush=True)
"""


def sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


@pytest.fixture
def crash_folder(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """A ~50 MB GGUF (pristine), the expected rewrite of it, and a folder for the victim."""
    pristine = make_gguf(tmp_path / "pristine.gguf", big_tensor_bytes=50 * 2**20)
    expected = tmp_path / "expected.gguf"
    rewrite(pristine, read_gguf(pristine), CRASH_CHANGES, expected)
    victim_folder = tmp_path / "victim"
    victim_folder.mkdir()
    yield pristine, expected, victim_folder


CRASH_CHANGES = [KVChange(CTX, ValueType.UINT32, 131072), KVChange(SCALING_TYPE, ValueType.STRING, "yarn"),
                 KVChange(FACTOR, ValueType.FLOAT32, 4.0), KVChange(ORIG_CTX, ValueType.UINT32, 32768)]


def test_sigkill_during_rewrite(crash_folder: tuple[Path, Path, Path]) -> None:
    """SIGKILL a child rewriting a 50 MB GGUF onto itself at random moments: the file is always the
    old one or the complete new one; the only leftover is the child's temp file, which the next
    rewrite removes (and which, not ending in .gguf, nothing else picks up)."""
    pristine, expected, folder = crash_folder
    old_hash, new_hash = sha(pristine), sha(expected)
    assert old_hash != new_hash
    reader = gguf.GGUFReader(expected)
    assert reader.fields[CTX].contents() == 131072 and reader.fields[SCALING_TYPE].contents() == "yarn"
    del reader
    victim = folder / "model.gguf"
    code = CHILD.format(changes=[(c.key, int(c.type), c.value) for c in CRASH_CHANGES])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def start() -> subprocess.Popen[str]:
        shutil.copyfile(pristine, victim)
        child = subprocess.Popen([sys.executable, "-c", code, str(victim)], stdout=subprocess.PIPE, text=True,
                                 cwd=ROOT, env=env)
        assert child.stdout is not None and child.stdout.readline().strip() == "go"
        return child

    child = start()  # calibration: one uninterrupted run
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0
    duration = float(out.strip())
    assert sha(victim) == new_hash

    rng = random.Random(20240607)
    delays = [rng.uniform(0, 1.5 * duration) for _ in range(16)] + [0.0, duration / 2, duration * 0.95]
    outcomes = {"old": 0, "new": 0, "temp left": 0}
    for delay in delays:
        child = start()
        time.sleep(delay)
        child.kill()
        child.wait(timeout=30)
        assert child.stdout is not None
        child.stdout.close()
        state = sha(victim)
        assert state in (old_hash, new_hash), f"mixed file after a kill at {delay:.3f} s"
        outcomes["old" if state == old_hash else "new"] += 1
        leftovers = {p.name for p in folder.iterdir()} - {"model.gguf"}
        assert leftovers <= {f".model.gguf.tmp-{child.pid}"}, leftovers
        outcomes["temp left"] += len(leftovers)
        if state == new_hash:
            reader = gguf.GGUFReader(victim)
            assert reader.fields[CTX].contents() == 131072
            del reader
        # the next run cleans up and completes (and is idempotent when the kill came after the rename)
        rewrite(victim, read_gguf(victim), CRASH_CHANGES, victim)
        assert sha(victim) == new_hash
        assert [p.name for p in folder.iterdir()] == ["model.gguf"]
    print(f"rewrite of {victim.stat().st_size / 1e6:.0f} MB takes {duration:.3f} s; after {len(delays)} kills: {outcomes}")
    assert outcomes["old"] >= 1, outcomes  # some kills did land mid-rewrite


# --- bounded memory -----------------------------------------------------------------------------


def fast_paths(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    """Turn copy_file_range, hole detection and early writeback on (the defaults on Linux) or off."""
    monkeypatch.setattr(writer, "USE_COPY_FILE_RANGE", on and hasattr(os, "copy_file_range"))
    monkeypatch.setattr(writer, "USE_SEEK_DATA", on and hasattr(os, "SEEK_DATA"))
    monkeypatch.setattr(writer, "USE_WRITEBACK", on and sys.platform.startswith("linux"))


@pytest.mark.parametrize("fast", [True, False], ids=["kernel-copy", "buffer"])
def test_rewrite_1gb_in_bounded_memory(tmp_path: Path, fast: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    fast_paths(monkeypatch, fast)
    source = make_sparse_gguf(tmp_path / "big.gguf", 2**30)
    out = tmp_path / "out.gguf"
    header = read_gguf(source)
    changes = [KVChange("llama.context_length", ValueType.UINT32, 131072),
               KVChange("llama.rope.scaling.type", ValueType.STRING, "yarn")]
    tracemalloc.start()
    try:
        rewrite(source, header, changes, out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    new = read_gguf(out)
    assert new.get("llama.context_length") == 131072 and new.get("llama.rope.scaling.type") == "yarn"
    assert new.tensors == header.tensors
    size = source.stat().st_size
    assert out.stat().st_size - new.data_offset == size - header.data_offset
    with open(source, "rb") as a, open(out, "rb") as b:
        for where in (0, 2**29, 2**30 - 8192):
            a.seek(header.data_offset + where)
            b.seek(new.data_offset + where)
            assert a.read(8192) == b.read(8192)
    out.unlink()


@pytest.mark.parametrize("fast", [True, False], ids=["kernel-copy", "buffer"])
def test_rewrite_sparse_source(tmp_path: Path, fast: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Holes are written as zeros (the output is not sparse); the data between them is copied exactly."""
    fast_paths(monkeypatch, fast)
    source = make_sparse_gguf(tmp_path / "sparse.gguf", 32 * 2**20)
    data_offset = read_gguf(source).data_offset
    rng = random.Random(7)
    with open(source, "r+b") as handle:
        for _ in range(40):
            handle.seek(data_offset + rng.randrange(0, 32 * 2**20 - 10_000))
            handle.write(rng.randbytes(rng.randrange(1, 10_000)))
    out = tmp_path / "out.gguf"
    rewrite(source, read_gguf(source), [KVChange("llama.rope.scaling.type", ValueType.STRING, "yarn")], out,
            chunk=3 * 2**20 + 5)
    assert data_section(out) == data_section(source)
    assert out.stat().st_blocks * 512 >= 32 * 2**20


@pytest.mark.parametrize("failure", ["EXDEV", "zero"])
def test_copy_file_range_fallback(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    calls: list[int] = []

    def broken(src: int, dst: int, count: int, offset_src: int | None = None) -> int:
        calls.append(count)
        if failure == "EXDEV":
            raise OSError(18, "Invalid cross-device link")
        return 0

    monkeypatch.setattr(writer, "USE_COPY_FILE_RANGE", True)
    monkeypatch.setattr(os, "copy_file_range", broken, raising=False)
    out = tmp_path / "out.gguf"
    changes = REWRITES["everything"]
    rewrite(model, read_gguf(model), changes, out, chunk=4096)
    assert len(calls) == 1  # tried once, then the buffer
    assert_edited(model, out, changes)


# --- llama.cpp --override-kv --------------------------------------------------------------------


def test_override_kv_args() -> None:
    changes = [KVChange("qwen2.context_length", ValueType.UINT32, 131072),
               KVChange("qwen2.rope.scaling.factor", ValueType.FLOAT32, 4.0),
               KVChange("qwen2.rope.freq_base", ValueType.FLOAT32, 500000),
               KVChange("qwen2.rope.scaling.attn_factor", ValueType.FLOAT32, 0.1),
               KVChange("x.attention.causal", ValueType.BOOL, False),
               KVChange("x.rope.scaling.finetuned", ValueType.BOOL, True),
               KVChange("general.name", ValueType.STRING, "abc"),
               KVChange("x.big", ValueType.INT64, -(2**63)),
               KVChange("x.f64", ValueType.FLOAT64, 1e20)]
    assert override_kv_args(changes) == [
        "qwen2.context_length=int:131072", "qwen2.rope.scaling.factor=float:4", "qwen2.rope.freq_base=float:500000",
        "qwen2.rope.scaling.attn_factor=float:0.1", "x.attention.causal=bool:false",
        "x.rope.scaling.finetuned=bool:true", "general.name=str:abc", f"x.big=int:{-(2**63)}", "x.f64=float:1e+20"]
    assert override_kv_args([]) == []


@pytest.mark.parametrize("change", [
    KVChange("a.b", ValueType.ARRAY, [1, 2]), KVChange("a.b", ValueType.UINT32, None),
    KVChange("a.b", ValueType.BOOL, "false"), KVChange("a.b", ValueType.UINT64, 2**63),
    KVChange("a.b", ValueType.STRING, "x" * 128), KVChange("a.b", ValueType.STRING, "a,b"),
    KVChange("k" * 128, ValueType.UINT32, 1), KVChange("a=b", ValueType.UINT32, 1),
    KVChange("a.b", ValueType.FLOAT32, float("nan")), KVChange("a.b", ValueType.UINT32, -1),
])
def test_override_kv_refuses(change: KVChange) -> None:
    with pytest.raises(ValueError):
        override_kv_args([change])


def test_writer_imports_neither_numpy_nor_gguf() -> None:
    code = ("import sys; import ropedoctor.writers.gguf; "
            "bad = [m for m in ('numpy', 'gguf') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
