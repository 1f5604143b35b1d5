"""Write fixtures/gguf/: tiny GGUF headers (a 16-float tensor each) that show real conversion faults.

Run from the repository root: python tools/make_gguf_fixtures.py (needs gguf, a test extra).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from gguf_files import VT, llama_kv, write_gguf

OUT = Path("fixtures/gguf")
QWEN = {"{arch}.rope.freq_base": (1e6, VT.FLOAT32)}

FILES = {
    # Qwen2.5 converted after adding the YaRN snippet to config.json: context_length left at 32768.
    "qwen2.5-7b-yarn-capped.gguf": ("qwen2", llama_kv(32768, 28, 3584, extra={
        **QWEN, "{arch}.rope.scaling.type": ("yarn", VT.STRING), "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32),
        "{arch}.rope.scaling.original_context_length": (32768, VT.UINT32)})),
    # An old converter that wrote no freq_base for a Qwen model: llama.cpp runs it with 10000.
    "qwen2.5-7b-no-freq-base.gguf": ("qwen2", llama_kv(32768, 28, 3584)),
    # A third-party tool wrote "dynamic" and a UINT64 context_length: llama.cpp refuses both.
    "llama-dynamic-u64.gguf": ("llama", {**llama_kv(4096), "{arch}.context_length": (4096, VT.UINT64),
                                         "{arch}.rope.scaling.type": ("dynamic", VT.STRING),
                                         "{arch}.rope.scaling.factor": (2.0, VT.FLOAT32)}),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (arch, kv) in FILES.items():
        write_gguf(OUT / name, arch, kv)
    (OUT / "README.md").write_text("# GGUF fixtures\n\nTiny GGUF headers written by `tools/make_gguf_fixtures.py` "
                                   "(gguf.GGUFWriter); each shows one real conversion fault:\n\n"
                                   + "".join(f"- `{n}`\n" for n in FILES) + "\n" + json.dumps(
                                       {n: a for n, (a, _) in FILES.items()}) + "\n")


if __name__ == "__main__":
    main()
