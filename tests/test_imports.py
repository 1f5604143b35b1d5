"""check of a config.json or a local GGUF stays on the fast path: none of the heavy libraries is imported."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import FIXTURES, ROOT

HEAVY = ("numpy", "gguf", "huggingface_hub", "torch", "transformers")

PROBE = """
import sys
from ropedoctor.entry import main
sys.argv = ["ropedoctor", "check", {path!r}, "--ctx", "65536", "--format", {fmt!r}]
try:
    main()
except SystemExit:
    pass
sys.stderr.write(repr(sorted(m.split(".")[0] for m in sys.modules)))
"""


def test_check_imports_no_heavy_library() -> None:
    for fmt in ("text", "json"):
        for model in ("qwen2.5-7b-instruct", "gemma-3-4b-it", "broken/yarn-legacy-type-conflict",
                      "gguf/qwen2.5-7b-yarn-capped.gguf"):
            code = PROBE.format(path=str(FIXTURES / model), fmt=fmt)
            result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
            loaded = set(eval(result.stderr.splitlines()[-1]))
            assert not loaded & set(HEAVY), (model, fmt, sorted(loaded & set(HEAVY)))


def test_importtime_agrees() -> None:
    """The same through `python -X importtime`, which lists every module imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ropedoctor", "check", str(FIXTURES / "qwen2.5-7b-instruct"),
         "--format", "json"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0
    json.loads(result.stdout)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "ropedoctor" in imported
    assert not imported & set(HEAVY)
