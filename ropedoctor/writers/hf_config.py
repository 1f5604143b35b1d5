"""Editing config.json text in place: the named keys change, every other byte stays as it was.

A small scanner finds the members (key, value span) of the objects on a change's path; an edit
replaces one value span, appends one member, or removes one member with its separating comma.
Everything outside those spans (key order, indentation, line endings, the trailing newline,
number spellings such as ``1e-06``, unicode escapes) is copied through untouched. New values
are written in the file's own style: the indent unit of the enclosing object (2 or 4 spaces, a
tab), or compact when that object is written on one line. Each edit is checked at the end: the
result parses to the original with the changes applied, or AssertionError (a bug here).
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

DELETE: Final = object()
"""A Change value meaning "remove this key"."""

# An intermediate object that is never created: a text_config only exists in a wrapper config
# (VLMs), and inventing one would move the text model's settings where nothing reads them.
_MUST_EXIST: Final = frozenset({"text_config"})

_BOM: Final = "\ufeff"
_WHITESPACE: Final = " \t\r\n"
_STRUCTURE: Final = re.compile(r'["{}\[\]]')
_SCALAR_END: Final = re.compile(r"[ \t\r\n,\]}]")
_PUNCTUATION: Final = re.compile(r'["{}\[\],:]')
_NEWLINE: Final = re.compile(r"\r\n|\r|\n")
_LINE: Final = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_DEFAULT_UNIT: Final = "  "


@dataclass(frozen=True)
class Change:
    """Set ``path`` (keys from the top-level object down) to ``value``, a JSON value, or DELETE it."""

    path: tuple[str, ...]
    value: Any

    def __post_init__(self) -> None:
        if not self.path or not all(isinstance(key, str) for key in self.path):
            raise ValueError(f"a change needs a non-empty path of string keys, got {self.path!r}")


# ---------------------------------------------------------------------------------------------
# The scanner: member spans of one object, every other value skipped without building it.


@dataclass(frozen=True)
class _Member:
    key: str
    key_start: int  # the opening quote of the key
    value_start: int
    value_end: int  # just past the value


@dataclass(frozen=True)
class _Object:
    start: int  # the "{"
    end: int  # just past the "}"
    members: tuple[_Member, ...]

    def find(self, key: str) -> _Member | None:
        """The member json.loads keeps for ``key``: the last one when a key repeats."""
        found = None
        for member in self.members:
            if member.key == key:
                found = member
        return found


def _skip_whitespace(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _string_end(text: str, pos: int) -> int:
    """Just past the string whose opening quote is at ``pos``."""
    search = pos + 1
    while True:
        quote = text.find('"', search)
        if quote < 0:
            raise AssertionError(f"unterminated string at offset {pos}")
        backslashes = 0
        while text[quote - 1 - backslashes] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return quote + 1
        search = quote + 1


def _value_end(text: str, pos: int) -> int:
    """Just past the JSON value starting at ``pos`` (containers skipped by depth, not recursion)."""
    first = text[pos]
    if first == '"':
        return _string_end(text, pos)
    if first not in "{[":
        match = _SCALAR_END.search(text, pos)
        return match.start() if match else len(text)
    depth = 0
    while True:
        match = _STRUCTURE.search(text, pos)
        if match is None:
            raise AssertionError("unterminated container")
        char = match.group()
        if char == '"':
            pos = _string_end(text, match.start())
            continue
        depth += 1 if char in "{[" else -1
        pos = match.end()
        if depth == 0:
            return pos


def _scan_object(text: str, start: int) -> _Object:
    if text[start] != "{":
        raise AssertionError(f"expected an object at offset {start}")
    members: list[_Member] = []
    pos = _skip_whitespace(text, start + 1)
    if text[pos] == "}":
        return _Object(start, pos + 1, ())
    while True:
        key_start = pos
        key_end = _string_end(text, key_start)
        key = json.loads(text[key_start:key_end])
        pos = _skip_whitespace(text, key_end)
        if text[pos] != ":":
            raise AssertionError(f"expected ':' at offset {pos}")
        value_start = _skip_whitespace(text, pos + 1)
        value_end = _value_end(text, value_start)
        members.append(_Member(key, key_start, value_start, value_end))
        pos = _skip_whitespace(text, value_end)
        if text[pos] == "}":
            return _Object(start, pos + 1, tuple(members))
        if text[pos] != ",":
            raise AssertionError(f"expected ',' or '}}' at offset {pos}")
        pos = _skip_whitespace(text, pos + 1)


def _root(text: str) -> _Object:
    start = _skip_whitespace(text, 1 if text.startswith(_BOM) else 0)
    return _scan_object(text, start)


def key_offset(text: str, dotted: str) -> int | None:
    """Where the key a dotted path (``text_config.rope_scaling.factor``) names starts in ``text``.

    The offset of the opening quote of the deepest key on the path that the text has (a
    missing ``factor`` points at its ``rope_scaling``), or None when not even the first key is
    there. Report formats use it to put a finding on its line; it is this module's scanner so
    that one piece of code knows where keys are. A key that itself holds a dot is matched whole.
    """
    try:
        obj = _root(text)
    except (AssertionError, IndexError, ValueError):
        return None
    parts = dotted.split(".") if dotted else []
    found: int | None = None
    while parts:
        for count in range(len(parts), 0, -1):
            member = obj.find(".".join(parts[:count]))
            if member is not None:
                break
        else:
            return found
        found, parts = member.key_start, parts[count:]
        if not parts or text[member.value_start] != "{":
            return found
        obj = _scan_object(text, member.value_start)
    return found


# ---------------------------------------------------------------------------------------------
# The file's style.


@dataclass(frozen=True)
class _Style:
    """File-wide: the line ending and the separators of one-line (compact) JSON."""

    newline: str
    item_sep: str
    key_sep: str


@dataclass(frozen=True)
class _Layout:
    """One object's: one member a line (and the indents) or all on one line."""

    multiline: bool
    unit: str  # one indent level
    member_indent: str  # the indentation of a member line
    brace_indent: str  # the indentation of the line holding the "{" (and of the "}")


def _line_start(text: str, pos: int) -> int:
    return max(text.rfind("\n", 0, pos), text.rfind("\r", 0, pos)) + 1


def _line_indent(text: str, pos: int) -> str:
    line = text[_line_start(text, pos) : pos]
    return line[: len(line) - len(line.lstrip(" \t"))]


def _starts_line(text: str, pos: int) -> bool:
    return not text[_line_start(text, pos) : pos].strip(" \t")


def _inline_spaces(text: str, pos: int, step: int) -> str | None:
    """The spaces and tabs beside ``pos`` (before: step -1, after: step 1); None when a line break borders them."""
    end = pos
    while 0 <= end + step < len(text) and text[end + step] in " \t":
        end += step
    beyond = end + step
    if 0 <= beyond < len(text) and text[beyond] in "\r\n":
        return None
    return text[end:pos] if step < 0 else text[pos + 1 : end + 1]


def _style(text: str) -> _Style:
    """The first line break, and the separators of the first ',' and ':' written inline.

    Taken from the whole file (not the edited object) so the choice cannot change between two
    runs of the same edit: whatever is written with it agrees with it.
    """
    newline_match = _NEWLINE.search(text)
    newline = newline_match.group() if newline_match else "\n"
    item_sep: str | None = None
    key_sep: str | None = None
    pos = 0
    while item_sep is None or key_sep is None:
        match = _PUNCTUATION.search(text, pos)
        if match is None:
            break
        char, at = match.group(), match.start()
        if char == '"':
            pos = _string_end(text, at)
            continue
        pos = at + 1
        if char not in ",:" or (item_sep if char == "," else key_sep) is not None:
            continue
        before, after = _inline_spaces(text, at, -1), _inline_spaces(text, at, 1)
        if before is None or after is None:
            continue
        if char == ",":
            item_sep = before + "," + after
        else:
            key_sep = before + ":" + after
    if key_sep is None:
        key_sep = ": "
    if item_sep is None:
        item_sep = "," if key_sep == ":" else ", "
    return _Style(newline, item_sep, key_sep)


def _layout(text: str, obj: _Object, parent: _Layout | None) -> _Layout:
    members = obj.members
    if members:
        gaps = [text[obj.start + 1 : members[0].key_start], text[members[-1].value_end : obj.end - 1]]
        gaps += [text[a.value_end : b.key_start] for a, b in itertools.pairwise(members)]
    else:
        gaps = [text[obj.start + 1 : obj.end - 1]]
    multiline = any("\n" in gap or "\r" in gap for gap in gaps)
    if not members and parent is not None and parent.multiline:
        multiline = True  # an empty object in an indented one opens up as json.dumps(indent=...) writes it
    brace_indent = _line_indent(text, obj.start)
    inherited = parent.unit if parent is not None else _DEFAULT_UNIT
    own_line = [member for member in members if _starts_line(text, member.key_start)]
    if own_line:
        member_indent = _line_indent(text, own_line[0].key_start)
        deeper = member_indent.startswith(brace_indent) and len(member_indent) > len(brace_indent)
        unit = member_indent[len(brace_indent) :] if deeper else inherited
    else:
        unit = inherited
        member_indent = brace_indent + unit
    return _Layout(multiline, unit, member_indent, brace_indent)


def _render(value: Any, style: _Style, layout: _Layout, indent: str) -> str:
    """``value`` as JSON in the layout of the object holding it; ``indent`` is its member line's."""
    if layout.multiline:
        body = json.dumps(value, indent=layout.unit, separators=(",", style.key_sep), allow_nan=False)
        return body.replace("\n", style.newline + indent)
    return json.dumps(value, separators=(style.item_sep, style.key_sep), allow_nan=False)


# ---------------------------------------------------------------------------------------------
# The edits: one member at a time, located afresh from the root each time.


def _locate(text: str, path: Sequence[str]) -> tuple[_Object, _Layout]:
    """The object at ``path`` (which exists and is an object) and its layout."""
    obj = _root(text)
    layout = _layout(text, obj, None)
    for key in path:
        member = obj.find(key)
        if member is None or text[member.value_start] != "{":
            raise AssertionError(f"no object at {list(path)}")
        obj = _scan_object(text, member.value_start)
        layout = _layout(text, obj, layout)
    return obj, layout


def _set_member(text: str, path: Sequence[str], key: str, value: Any) -> str:
    """Replace the value of ``key`` in the object at ``path`` in place, or append the member."""
    style = _style(text)
    obj, layout = _locate(text, path)
    member = obj.find(key)
    if member is not None:
        rendered = _render(value, style, layout, _line_indent(text, member.key_start))
        return text[: member.value_start] + rendered + text[member.value_end :]
    new = json.dumps(key) + style.key_sep + _render(value, style, layout, layout.member_indent)
    if obj.members:
        last = obj.members[-1].value_end
        separator = "," + style.newline + layout.member_indent if layout.multiline else style.item_sep
        return text[:last] + separator + new + text[last:]
    if layout.multiline:
        new = style.newline + layout.member_indent + new + style.newline + layout.brace_indent
    return text[: obj.start + 1] + new + text[obj.end - 1 :]


def _delete_members(text: str, path: Sequence[str], key: str) -> str:
    """Remove every member ``key`` (a repeated key goes entirely) of the object at ``path``."""
    while True:
        obj, _ = _locate(text, path)
        member = obj.find(key)
        if member is None:
            return text
        members = obj.members
        index = members.index(member)
        if len(members) == 1:  # the only member: the object becomes {}
            text = text[: obj.start + 1] + text[obj.end - 1 :]
        elif index < len(members) - 1:  # first or middle: up to the next key, which takes this one's place
            text = text[: member.key_start] + text[members[index + 1].key_start :]
        else:  # last: from the end of the value before, its comma included
            text = text[: members[index - 1].value_end] + text[member.value_end :]


@dataclass
class _Touch:
    """Where the changes reach: ``owned`` when one ends at this key (its value is theirs)."""

    owned: bool = False
    children: dict[str, _Touch] = field(default_factory=dict)


def _net(changes: Sequence[Change]) -> list[Change]:
    """``changes`` without those a later set at the same key, or at one above it, overwrites."""
    return [
        change
        for index, change in enumerate(changes)
        if not any(
            later.value is not DELETE and change.path[: len(later.path)] == later.path for later in changes[index + 1 :]
        )
    ]


def _apply_to_data(data: Any, changes: Sequence[Change]) -> Any:
    """What the edited text must parse to: ``changes`` applied in order to a copy of ``data``."""
    data = json.loads(json.dumps(data))
    for change in changes:
        node = data
        for depth, key in enumerate(change.path[:-1]):
            child = node.get(key)
            if child is None:  # missing or null
                if change.value is DELETE:
                    break
                if key in _MUST_EXIST:
                    raise ValueError(f"{'.'.join(change.path)}: the config has no {key} object to edit")
                child = node[key] = {}
            elif not isinstance(child, dict):
                raise ValueError(f"{'.'.join(change.path)}: {'.'.join(change.path[: depth + 1])} is not an object")
            node = child
        else:
            if change.value is DELETE:
                node.pop(change.path[-1], None)
            else:
                node[change.path[-1]] = json.loads(json.dumps(change.value, allow_nan=False))
    return data


def _same(left: Any, right: Any) -> bool:
    """Equal JSON, types included: 2 and 2.0 differ, as do 1 and true. A loop, not recursion: a document nested
    as deep as the JSON reader allows must not hit the recursion limit here."""
    pending = [(left, right)]
    while pending:
        a, b = pending.pop()
        if type(a) is not type(b):
            return False
        if isinstance(a, dict):
            if a.keys() != b.keys():
                return False
            pending.extend((a[key], b[key]) for key in a)
        elif isinstance(a, list):
            if len(a) != len(b):
                return False
            pending.extend(zip(a, b, strict=True))
        elif a != b:
            return False
    return True


def _edit(text: str, path: tuple[str, ...], touched: dict[str, _Touch], before: Any, after: Any) -> str:
    """Bring the touched members of the object at ``path`` from ``before`` to ``after``."""
    for key, touch in touched.items():
        if key not in after:
            if key in before:
                text = _delete_members(text, path, key)
        elif key not in before:
            continue  # appended below, in the order the changes created them
        elif not touch.owned and isinstance(before[key], dict) and isinstance(after[key], dict):
            text = _edit(text, (*path, key), touch.children, before[key], after[key])
        elif not _same(before[key], after[key]):  # an equal value keeps its bytes (and its spelling)
            text = _set_member(text, path, key, after[key])
    for key in after:
        if key in touched and key not in before:
            text = _set_member(text, path, key, after[key])
    return text


def edit_config_text(text: str, changes: Sequence[Change]) -> str:
    """``text`` (a JSON object) with ``changes`` applied in order, every other byte kept.

    Setting a key replaces its value in place, or appends it as the last member of its object;
    missing (or null) objects on the way are created, except a ``text_config`` (ValueError). A
    path through a value that is not an object raises ValueError. DELETE removes the member and
    its comma; deleting an absent key changes nothing. A value already equal (2.0 is not 2) is
    left as written. A change that a later set at the same key or above overwrites is skipped.
    Applying the same changes to the result returns it unchanged.
    """
    body = text[len(_BOM) :] if text.startswith(_BOM) else text
    try:
        original = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(original, dict):
        raise ValueError("the JSON text is not an object")
    net = _net(changes)
    expected = _apply_to_data(original, net)
    root = _Touch()
    for change in net:
        node = root
        for key in change.path:
            node = node.children.setdefault(key, _Touch())
        node.owned = True
    result = _edit(text, (), root.children, original, expected)
    actual = json.loads(result[len(_BOM) :] if result.startswith(_BOM) else result)
    if not _same(actual, expected):
        raise AssertionError(f"edited config parses to something other than the planned change: {changes!r}")
    return result


def unified_diff(old: str, new: str, name: str) -> str:
    """A unified diff of ``old`` to ``new`` as ``a/<name>`` and ``b/<name>``; "" when they are equal."""
    # Only JSON's line breaks split lines: str.splitlines would also split at a raw U+2028 in a string.
    lines = difflib.unified_diff(_LINE.findall(old), _LINE.findall(new), f"a/{name}", f"b/{name}")
    out = []
    for line in lines:
        if line.endswith(("\n", "\r")):
            out.append(line)
        else:  # the last line of a file without a final newline, as git writes it
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)
