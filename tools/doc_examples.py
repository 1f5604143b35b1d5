"""Bring the README's and docs/'s console examples and generated help blocks up to date with the code.

    .venv/bin/python tools/doc_examples.py           # report what is stale (exit 1 when something is)
    .venv/bin/python tools/doc_examples.py --write   # rewrite it in place

An example (a ``$ ropedoctor ...`` line in a ```console block, tests/test_readme.py's rules) whose shown output
no longer matches is rewritten with what the command prints now, unless the shown output elides lines with
``...`` and is more than that one line: those are listed for a person to edit. A lone ``...`` is filled in. A block between
``<!-- generated: ropedoctor CMD --help -->`` and ``<!-- end generated -->`` is replaced by that help text.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_readme import (  # noqa: E402  (tests/ is not a package)
    ELLIPSIS,
    PAGES,
    _matches,
    _normalised,
    examples,
    help_blocks,
    help_text,
    run_example,
    workspace_for,
)


def update_page(page: Path, write: bool) -> list[str]:
    """What is stale in one page; with ``write`` the page is rewritten (hand-elided examples aside)."""
    lines = page.read_text().splitlines()
    stale: list[str] = []
    replacements: list[tuple[int, int, list[str]]] = []  # (first line index, end index, new lines)
    for example in examples("\n".join(lines)):
        if not example.run:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            actual = run_example(example.command, workspace_for(Path(tmp)))
        expected = _normalised(example.expected)
        if _matches(expected, actual) and expected != [ELLIPSIS]:  # a lone "..." is a block to fill in
            continue
        where = f"{page.relative_to(ROOT)}:{example.line}: `{example.command}`"
        if ELLIPSIS in expected and expected != [ELLIPSIS]:
            stale.append(where + " (elided by hand: edit it)")
            continue
        stale.append(where)
        replacements.append((example.line, example.line + len(example.expected), actual))
    for block in help_blocks("\n".join(lines)):
        wanted = help_text(block.command)
        if block.body != wanted:
            stale.append(f"{page.relative_to(ROOT)}:{block.first + 1}: help of `{block.command}`")
            replacements.append((block.first, block.first + len(block.body), wanted))
    if write and replacements:
        for first, end, new in sorted(replacements, reverse=True):
            lines[first:end] = new
        page.write_text("\n".join(lines) + "\n")
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the stale examples in place")
    args = parser.parse_args()
    stale = [item for page in PAGES for item in update_page(page, args.write)]
    for item in stale:
        print(("updated " if args.write and "edit it" not in item else "stale ") + item)
    return 1 if stale and not args.write else 0


if __name__ == "__main__":
    raise SystemExit(main())
