"""Editing config.json text (only the changed members move) and writing files atomically."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, ROOT, as_nobody
from ropedoctor.errors import InputError
from ropedoctor.writers import atomic
from ropedoctor.writers.atomic import write_atomic
from ropedoctor.writers.hf_config import DELETE, Change, edit_config_text, unified_diff

FIXTURE_FILES = sorted([*FIXTURES.glob("*/config.json"), *FIXTURES.glob("broken/*/config.json")])
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}

# ---------------------------------------------------------------------------------------------
# An independent reader of member spans (json's own raw_decode, not the module's scanner), for
# "everything outside the changed members is byte-identical".

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\r\n]*")


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    assert match is not None
    return match.end()


def _root_brace(text: str) -> int:
    return _skip(text, 1 if text.startswith("\ufeff") else 0)


def _members(text: str, brace: int) -> list[tuple[str, int, int, int]]:
    """(key, key start, value start, value end) of the object whose "{" is at ``brace``."""
    assert text[brace] == "{"
    found: list[tuple[str, int, int, int]] = []
    pos = _skip(text, brace + 1)
    if text[pos] == "}":
        return found
    while True:
        key, key_end = _DECODER.raw_decode(text, pos)
        colon = _skip(text, key_end)
        assert text[colon] == ":"
        value_start = _skip(text, colon + 1)
        _, value_end = _DECODER.raw_decode(text, value_start)
        found.append((key, pos, value_start, value_end))
        pos = _skip(text, value_end)
        if text[pos] == "}":
            return found
        assert text[pos] == ","
        pos = _skip(text, pos + 1)


def _object_at(text: str, path: Sequence[str]) -> int | None:
    """The "{" of the object at ``path``, None when it is missing or no object."""
    brace = _root_brace(text)
    for key in path:
        spans = [m for m in _members(text, brace) if m[0] == key]
        if not spans or text[spans[-1][2]] != "{":
            return None
        brace = spans[-1][2]
    return brace


def _without(text: str, path: Sequence[str]) -> str:
    """``text`` with every member at ``path`` cut out with its separator; an emptied object reads {}."""
    while True:
        brace = _object_at(text, path[:-1])
        if brace is None:
            return text
        members = _members(text, brace)
        index = next((i for i, m in enumerate(members) if m[0] == path[-1]), None)
        if index is None:
            closing = _skip(text, brace + 1)
            if text[closing] == "}":  # an empty object compares as {} whatever its inner whitespace
                text = text[: brace + 1] + text[closing:]
            return text
        if len(members) == 1:
            end = _skip(text, members[0][3])
            text = text[: brace + 1] + text[end:]
        elif index < len(members) - 1:
            text = text[: members[index][1]] + text[members[index + 1][1] :]
        else:
            text = text[: members[index - 1][3]] + text[members[index][3] :]


def _touched(original: Any, path: tuple[str, ...]) -> tuple[str, ...]:
    """The member a change rewrites: ``path``, or where it first leaves the original (a new object)."""
    node = original
    for depth, key in enumerate(path[:-1]):
        if not isinstance(node, dict) or node.get(key) is None:
            return path[: depth + 1]
        node = node[key]
    return path


def _reference(data: Any, changes: Sequence[Change]) -> Any:
    """What the edited text must parse to (ValueError where the edit is impossible).

    Changes apply in order, except one that a later set at the same key or above it overwrites.
    """
    data = json.loads(json.dumps(data))
    for index, change in enumerate(changes):
        if any(c.value is not DELETE and change.path[: len(c.path)] == c.path for c in changes[index + 1 :]):
            continue
        node = data
        for depth, key in enumerate(change.path[:-1]):
            child = node.get(key)
            if child is None:
                if change.value is DELETE:
                    break
                if key == "text_config":
                    raise ValueError("no text_config")
                child = node[key] = {}
            elif not isinstance(child, dict):
                raise ValueError(f"{change.path[: depth + 1]} is not an object")
            node = child
        else:
            if change.value is DELETE:
                node.pop(change.path[-1], None)
            else:
                node[change.path[-1]] = json.loads(json.dumps(change.value))
    return data


def _same(left: Any, right: Any) -> bool:
    """Equal JSON with types: 2 is not 2.0, 1 is not true."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def _loads(text: str) -> Any:
    return json.loads(text.removeprefix("\ufeff"))


def assert_clean_edit(text: str, changes: Sequence[Change]) -> str:
    """Edit, then check meaning, untouched bytes, line endings, final newline and idempotence."""
    original = _loads(text)
    result = edit_config_text(text, changes)
    assert _same(_loads(result), _reference(original, changes))
    touched = [_touched(original, change.path) for change in changes]
    stripped_before, stripped_after = text, result
    for path in touched:
        stripped_before, stripped_after = _without(stripped_before, path), _without(stripped_after, path)
    assert stripped_after == stripped_before
    assert result.endswith("\n") == text.endswith("\n")
    assert result.endswith("\r\n") == text.endswith("\r\n")
    if "\r\n" in text and "\n" not in text.replace("\r\n", ""):
        assert "\n" not in result.replace("\r\n", ""), "a bare \\n in a \\r\\n file"
    if "\n" not in text and "\r" not in text:
        assert "\n" not in result and "\r" not in result, "a one-line file grew lines"
    assert edit_config_text(result, changes) == result, "not idempotent"
    return result


# ---------------------------------------------------------------------------------------------
# Every fixture, with the changes ropedoctor makes.


def _fixture_change_sets(config: dict[str, Any]) -> Iterator[tuple[str, list[Change]]]:
    yield "theta", [Change(("rope_theta",), 500000.0)]
    yield "yarn", [Change(("rope_scaling",), YARN)]
    yield "delete-scaling", [Change(("rope_scaling",), DELETE)]
    yield "rope-parameters", [Change(("rope_parameters",), {"rope_type": "default", "rope_theta": 10000.0})]
    yield "mpe", [Change(("max_position_embeddings",), 131072)]
    yield (
        "v4-to-v5",
        [
            Change(("rope_scaling",), DELETE),
            Change(("rope_theta",), DELETE),
            Change(("rope_parameters",), {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6}),
            Change(("max_position_embeddings",), 8192),
        ],
    )
    if isinstance(config.get("rope_scaling"), dict) or config.get("rope_scaling") is None:
        yield "factor", [Change(("rope_scaling", "factor"), 8.0), Change(("rope_scaling", "type"), DELETE)]
    if isinstance(config.get("text_config"), dict):
        yield (
            "text-config",
            [
                Change(("text_config", "rope_theta"), 1000000.0),
                Change(("text_config", "rope_scaling"), YARN),
                Change(("text_config", "max_position_embeddings"), 131072),
                Change(("text_config", "rope_local_base_freq"), DELETE),
            ],
        )


def _fixture_cases() -> Iterator[Any]:
    for file in FIXTURE_FILES:
        config = json.loads(file.read_text(encoding="utf-8"))
        name = str(file.parent.relative_to(FIXTURES))
        for label, changes in _fixture_change_sets(config):
            yield pytest.param(file, changes, id=f"{name}-{label}")


def test_fixtures_found() -> None:
    assert len(FIXTURE_FILES) > 40
    assert any("text_config" in json.loads(f.read_text()) for f in FIXTURE_FILES)


@pytest.mark.parametrize(("file", "changes"), list(_fixture_cases()))
def test_fixture_edits(file: Path, changes: list[Change]) -> None:
    text = file.read_bytes().decode("utf-8")
    assert_clean_edit(text, changes)


def test_fixture_yarn_written_in_style() -> None:
    text = (FIXTURES / "qwen2.5-7b-instruct" / "config.json").read_text()
    result = edit_config_text(text, [Change(("rope_scaling",), YARN)])
    assert result.endswith(
        '  "vocab_size": 152064,\n'
        '  "rope_scaling": {\n'
        '    "rope_type": "yarn",\n'
        '    "factor": 4.0,\n'
        '    "original_max_position_embeddings": 32768\n'
        "  }\n"
        "}\n"
    ), result[-300:]


def test_fixture_nested_text_config_indent() -> None:
    text = (FIXTURES / "gemma-3-4b-it" / "config.json").read_text()
    result = edit_config_text(text, [Change(("text_config", "rope_scaling"), {"rope_type": "yarn", "factor": 8.0})])
    old_block = '    "rope_scaling": {\n      "factor": 8.0,\n      "rope_type": "linear"\n    },\n'
    new_block = '    "rope_scaling": {\n      "rope_type": "yarn",\n      "factor": 8.0\n    },\n'
    assert result == text.replace(old_block, new_block)
    # an equal value (key order aside) keeps its bytes
    same = [Change(("text_config", "rope_scaling"), {"rope_type": "linear", "factor": 8.0})]
    assert edit_config_text(text, same) == text


def test_missing_text_config_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="text_config"):
        edit_config_text('{\n  "a": 1\n}\n', [Change(("text_config", "rope_theta"), 1.0)])
    # deleting inside a missing text_config has nothing to do
    assert edit_config_text('{"a": 1}', [Change(("text_config", "rope_theta"), DELETE)]) == '{"a": 1}'


def test_path_through_a_non_object_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not an object"):
        edit_config_text('{"rope_scaling": "yarn"}', [Change(("rope_scaling", "factor"), 2.0)])


def test_invalid_input_and_change() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        edit_config_text('{"a": 1,}', [])
    with pytest.raises(ValueError, match="not an object"):
        edit_config_text("[1, 2]", [])
    with pytest.raises(ValueError, match="non-empty path"):
        Change((), 1)


# ---------------------------------------------------------------------------------------------
# Exact results for the shapes a file can have.


@pytest.mark.parametrize(
    ("text", "changes", "expected"),
    [
        pytest.param(
            '{"a": 1, "rope_theta": 10000.0, "b": [1, 2]}',
            [Change(("rope_theta",), 1e6), Change(("rope_scaling",), {"type": "linear", "factor": 2.0})],
            '{"a": 1, "rope_theta": 1000000.0, "b": [1, 2], "rope_scaling": {"type": "linear", "factor": 2.0}}',
            id="one-line",
        ),
        pytest.param(
            '{"a":1,"b":{"c":2}}',
            [Change(("b", "d"), [1, 2]), Change(("e",), {"f": True})],
            '{"a":1,"b":{"c":2,"d":[1,2]},"e":{"f":true}}',
            id="one-line-compact",
        ),
        pytest.param(
            '{\r\n  "a": 1,\r\n  "b": 2\r\n}\r\n',
            [Change(("c",), {"x": [1]}), Change(("a",), DELETE)],
            '{\r\n  "b": 2,\r\n  "c": {\r\n    "x": [\r\n      1\r\n    ]\r\n  }\r\n}\r\n',
            id="crlf",
        ),
        pytest.param(
            '{\n    "a": 1,\n    "b": 2\n}',
            [Change(("b",), {"x": 1})],
            '{\n    "a": 1,\n    "b": {\n        "x": 1\n    }\n}',
            id="four-spaces-no-final-newline",
        ),
        pytest.param(
            '{\n\t"a": 1\n}\n',
            [Change(("r",), {"x": 1})],
            '{\n\t"a": 1,\n\t"r": {\n\t\t"x": 1\n\t}\n}\n',
            id="tabs",
        ),
        pytest.param("{}", [Change(("a",), 1)], '{"a": 1}', id="empty-object"),
        pytest.param("{}\n", [Change(("a", "b"), 2.0)], '{"a": {"b": 2.0}}\n', id="empty-object-nested"),
        pytest.param(
            '{\n  "rope_scaling": {}\n}\n',
            [Change(("rope_scaling", "factor"), 2)],
            '{\n  "rope_scaling": {\n    "factor": 2\n  }\n}\n',
            id="empty-nested-object-opens-up",
        ),
        pytest.param(
            '{\n  "rope_scaling": null,\n  "x": 1\n}\n',
            [Change(("rope_scaling", "factor"), 2.0)],
            '{\n  "rope_scaling": {\n    "factor": 2.0\n  },\n  "x": 1\n}\n',
            id="null-becomes-object",
        ),
        pytest.param(
            '{\n  "a": 1,\n  "b": 2,\n  "c": 3\n}\n',
            [Change(("a",), DELETE)],
            '{\n  "b": 2,\n  "c": 3\n}\n',
            id="delete-first",
        ),
        pytest.param(
            '{\n  "a": 1,\n  "b": 2,\n  "c": 3\n}\n',
            [Change(("b",), DELETE)],
            '{\n  "a": 1,\n  "c": 3\n}\n',
            id="delete-middle",
        ),
        pytest.param(
            '{\n  "a": 1,\n  "b": 2,\n  "c": 3\n}\n',
            [Change(("c",), DELETE)],
            '{\n  "a": 1,\n  "b": 2\n}\n',
            id="delete-last",
        ),
        pytest.param('{\n  "a": 1\n}\n', [Change(("a",), DELETE)], "{}\n", id="delete-only"),
        pytest.param('{"a": 1}', [Change(("zz",), DELETE)], '{"a": 1}', id="delete-absent"),
        pytest.param('{"a": 1, "a": 2, "b": 3}', [Change(("a",), DELETE)], '{"b": 3}', id="delete-repeated-key"),
        pytest.param('{"a": 1, "a": 2}', [Change(("a",), 5)], '{"a": 1, "a": 5}', id="set-repeated-key-last-wins"),
        pytest.param(
            '{"k\\"q": 1, "caf\\u00e9": 1e-06, "\\u00e9t\\u00e9": {"s": "\\"}\\""}, "n": [[1, [2, {"x": "]"}]], []]}',
            [Change(("café",), 2e-06), Change(('k"q',), DELETE), Change(("été", "x"), 1)],
            '{"caf\\u00e9": 2e-06, "\\u00e9t\\u00e9": {"s": "\\"}\\"", "x": 1}, "n": [[1, [2, {"x": "]"}]], []]}',
            id="escaped-keys-and-nested-arrays",
        ),
        pytest.param(
            '{\n  "n": [\n    [1, 2],\n    {"a": [3]}\n  ],\n  "rms_norm_eps": 1e-06\n}\n',
            [Change(("n",), [[1], {"a": []}])],
            '{\n  "n": [\n    [\n      1\n    ],\n    {\n      "a": []\n    }\n  ],\n  "rms_norm_eps": 1e-06\n}\n',
            id="nested-arrays-indented",
        ),
        pytest.param(
            '\ufeff{\n  "a": 1\n}\n', [Change(("b",), 2)], '\ufeff{\n  "a": 1,\n  "b": 2\n}\n', id="byte-order-mark"
        ),
        pytest.param(
            '{\n  "x": 10000.0,\n  "i": 10000\n}\n',
            [Change(("x",), 2), Change(("i",), 2.0)],
            '{\n  "x": 2,\n  "i": 2.0\n}\n',
            id="int-and-float-kept-as-given",
        ),
    ],
)
def test_exact_edits(text: str, changes: list[Change], expected: str) -> None:
    assert edit_config_text(text, changes) == expected
    assert_clean_edit(text, changes)


def test_unified_diff() -> None:
    old = '{\n  "a": 1,\n  "b": 2\n}\n'
    new = edit_config_text(old, [Change(("b",), 3)])
    diff = unified_diff(old, new, "config.json")
    assert diff.startswith("--- a/config.json\n+++ b/config.json\n@@ ")
    assert '-  "b": 2\n+  "b": 3\n' in diff
    assert unified_diff(old, old, "config.json") == ""
    no_newline = unified_diff('{"a": 1}', '{"a": 2}', "c.json")
    assert no_newline.endswith('-{"a": 1}\n\\ No newline at end of file\n+{"a": 2}\n\\ No newline at end of file\n')
    # a raw U+2028 inside a string is no line break
    assert unified_diff('{"s": "x\u2028y", "a": 1}', '{"s": "x\u2028y", "a": 2}', "c.json").count("\n") == 7


# ---------------------------------------------------------------------------------------------
# Random JSON files in random styles, random changes.

_keys = st.one_of(
    st.sampled_from(["a", "b", "rope_scaling", "factor", 'q"uote', "back\\slash", "é", "\u2028"]), st.text(max_size=6)
)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)
)
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3), max_leaves=12
)
_objects = st.dictionaries(_keys, _values, max_size=6)


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_files_and_changes(data: st.DataObject) -> None:
    obj = data.draw(_objects, label="object")
    indent = data.draw(st.sampled_from([None, 2, 4, "\t"]), label="indent")
    separators = data.draw(st.sampled_from([(", ", ": "), (",", ":"), (",", ": "), (" , ", " : ")]), label="seps")
    text = json.dumps(obj, indent=indent, separators=separators, ensure_ascii=data.draw(st.booleans()))
    if data.draw(st.booleans(), label="crlf"):
        text = text.replace("\n", "\r\n")
    if data.draw(st.booleans(), label="final newline"):
        text += "\r\n" if "\r\n" in text else "\n"
    existing = list(_paths(obj))
    changes = []
    for _ in range(data.draw(st.integers(1, 4), label="count")):
        use_existing = data.draw(st.booleans(), label="existing path") if existing else False
        if use_existing:
            path = data.draw(st.sampled_from(existing))
        else:
            parent = data.draw(st.sampled_from([(), *existing]))
            path = (*parent, *data.draw(st.lists(_keys, min_size=1, max_size=2)))
        value = data.draw(st.one_of(st.just(DELETE), _values), label="value")
        changes.append(Change(path, value))
    try:
        _reference(obj, changes)
    except ValueError:
        with pytest.raises(ValueError):
            edit_config_text(text, changes)
        return
    assert_clean_edit(text, changes)


# ---------------------------------------------------------------------------------------------
# write_atomic


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_atomic_success_keeps_mode_and_backs_up(tmp_path: Path) -> None:
    dest = tmp_path / "config.json"
    dest.write_bytes(b'{"old": 1}\n')
    dest.chmod(0o640)
    backup = tmp_path / "config.json.bak"
    write_atomic(dest, b'{"new": 2}\n', backup=backup)
    assert dest.read_bytes() == b'{"new": 2}\n'
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert backup.read_bytes() == b'{"old": 1}\n'
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "config.json.bak"]


def test_atomic_creates_a_new_file(tmp_path: Path) -> None:
    dest = tmp_path / "new.json"
    write_atomic(dest, b"{}", backup=tmp_path / "new.json.bak")  # nothing to back up
    assert dest.read_bytes() == b"{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json"]


def test_atomic_refuses_existing_backup(tmp_path: Path) -> None:
    dest = tmp_path / "config.json"
    dest.write_bytes(b"original")
    backup = tmp_path / "config.json.bak"
    backup.write_bytes(b"an older backup")
    with pytest.raises(InputError) as caught:
        write_atomic(dest, b"new", backup=backup)
    assert caught.value.why == f"backup {backup} already exists; remove it or use --no-backup"
    assert dest.read_bytes() == b"original"
    assert backup.read_bytes() == b"an older backup"
    assert _leftovers(tmp_path) == []


def test_atomic_symlink_refused_or_followed(tmp_path: Path) -> None:
    real = tmp_path / "blobs" / "abc123"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "config.json"
    link.symlink_to(real)
    with pytest.raises(InputError) as caught:
        write_atomic(link, b"new")
    assert caught.value.line == (
        f"ropedoctor: error: {link}: is a symlink to {real}; pass --follow-symlinks to write through it"
    )
    assert real.read_bytes() == b"old"
    write_atomic(link, b"new", follow_symlinks=True, backup=tmp_path / "config.json.bak")
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert (tmp_path / "config.json.bak").read_bytes() == b"old"
    assert _leftovers(tmp_path) == [] and _leftovers(real.parent) == []


def test_atomic_replace_failure_leaves_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "config.json"
    dest.write_bytes(b"original")
    backup = tmp_path / "config.json.bak"

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(InputError) as caught:
        write_atomic(dest, b"new content", backup=backup)
    assert caught.value.why == "cannot write: Input/output error"
    assert dest.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no temp file, no half-made backup


def test_atomic_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "config.json"
    dest.write_bytes(b"original")
    real_write = os.write
    calls = []

    def full_disk(fd: int, data: Any) -> int:
        calls.append(fd)
        if len(calls) == 1:
            return real_write(fd, bytes(data[:4096]))  # the disk fills up part way through
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(InputError) as caught:
        write_atomic(dest, b"x" * 100_000)
    monkeypatch.undo()
    assert "No space left on device" in caught.value.why
    assert caught.value.line == f"ropedoctor: error: {dest}: cannot write: No space left on device"
    assert dest.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_atomic_read_only_file(tmp_path: Path) -> None:
    dest = tmp_path / "config.json"
    dest.write_bytes(b"original")
    dest.chmod(0o444)
    with pytest.raises(InputError) as caught:
        write_atomic(dest, b"new")
    assert caught.value.why == "is read-only"
    assert dest.read_bytes() == b"original"
    assert _leftovers(tmp_path) == []


def test_atomic_directory_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        write_atomic(tmp_path, b"x")
    with pytest.raises(InputError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "config.json", b"x")


def _as_nobody(action: Callable[[], None]) -> str:
    """``action`` as uid 65534: the InputError line it raised, "no error", or a crash."""

    def run() -> str:
        try:
            action()
        except InputError as exc:
            return exc.line
        return "no error"

    return as_nobody(run)


def test_atomic_unwritable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    dest = folder / "config.json"
    dest.write_bytes(b"original")
    dest.chmod(0o666)  # the file itself is writable: only the folder stops the rename
    for parent in (folder, tmp_path, *tmp_path.parents[:3]):  # up to pytest's base temp folder
        parent.chmod(0o755)
    if os.geteuid() == 0:
        line = _as_nobody(lambda: write_atomic(dest, b"new"))
    else:
        folder.chmod(0o555)
        try:
            write_atomic(dest, b"new")
            line = "no error"
        except InputError as exc:
            line = exc.line
        finally:
            folder.chmod(0o755)
    assert line == f"ropedoctor: error: {dest}: folder {folder} is not writable"
    assert dest.read_bytes() == b"original"
    assert _leftovers(folder) == []


_WRITER = """
import sys
from pathlib import Path
from ropedoctor.writers.atomic import write_atomic
dest = Path(sys.argv[1])
old, new = (Path(p).read_bytes() for p in sys.argv[2:4])
sys.stdout.write("ready\\n")
sys.stdout.flush()
while True:
    write_atomic(dest, new)
    write_atomic(dest, old)
"""


def test_atomic_survives_sigkill(tmp_path: Path) -> None:
    size = 5 * 1024 * 1024
    old = b'{"v": "' + b"a" * size + b'"}\n'
    new = b'{"v": "' + b"b" * (size + 4096) + b'"}\n'
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    folder = tmp_path / "model"
    folder.mkdir()
    dest = folder / "config.json"
    dest.write_bytes(old)
    rng = random.Random(20240611)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(20):
        args = [sys.executable, "-c", _WRITER, str(dest), str(tmp_path / "old"), str(tmp_path / "new")]
        child = subprocess.Popen(args, stdout=subprocess.PIPE, env=env)
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        content = dest.read_bytes()
        assert content in (old, new), f"a mix after SIGKILL: {len(content)} bytes"
        assert json.loads(content)["v"][0] in "ab"
        for leftover in _leftovers(folder):  # a kill between open and rename may leave one; never the file
            assert re.fullmatch(r"\.config\.json\.tmp-\d+-[0-9a-f]{8}", leftover)
            (folder / leftover).unlink()
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]


def test_atomic_module_temp_names(tmp_path: Path) -> None:
    dest = tmp_path / "config.json"
    made: list[Path] = []
    real = atomic._write_temp

    def spy(target: Path, fill: Callable[[int], None], original: os.stat_result | None) -> Path:
        made.append(real(target, fill, original))
        return made[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(atomic, "_write_temp", spy)
        write_atomic(dest, b"x")
    assert len(made) == 1
    assert made[0].parent == tmp_path
    assert re.fullmatch(rf"\.config\.json\.tmp-{os.getpid()}-[0-9a-f]{{8}}", made[0].name)
    assert not made[0].exists()
