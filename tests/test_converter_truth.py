"""`compare` against llama.cpp's real converter: every fixture converted header-only (tests/converter_header.py, the
converter at the llama-cpp-python sdist's llama.cpp commit, under the venv's transformers), then checked finding by
finding against what the converter and llama.cpp's loader really do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, ROOT, invoke, write_config
from ropedoctor.sources.gguf_source import read_gguf_spec

CONVERTER = ROOT / ".venv" / "llama-converter"

pytestmark = pytest.mark.skipif(
    not (CONVERTER / "convert_hf_to_gguf.py").is_file(),
    reason="llama.cpp's converter is not extracted: `make llama-converter` (a prerequisite of `make pytest`) puts it "
           "in .venv/llama-converter from the llama-cpp-python sdist",
)

# Findings (RD4xx/RD5xx, any severity) each converted fixture must give, and nothing else from those families.
EXPECTED: dict[str, set[str]] = {
    "internlm2.5-7b-chat": {"RD501"},  # dynamic NTK: dropped by every converter ("Nothing written")
    "qwen-7b": {"RD501", "RD504"},  # use_dynamic_ntk dropped; QwenModel writes max_position_embeddings 32768
    "hunyuanimage-2.1-reprompt": {"RD504"},  # NTK-alpha baked into freq_base (not RD501/RD503); context forced 256k
    "gpt-oss-20b": {"RD507"},  # truncate false: ggml always truncates the YaRN correction range
    "gpt-oss-20b-tf5-converted": {"RD507"},
    "kimi-k2-instruct-0905": {"RD409", "RD507"},  # beta_fast 1 written, deepseek2's loader runs 32
    "deepseek-r1-0528-qwen3-8b": {"RD409"},  # yarn_attn_factor 0.878 written, qwen3's loader derives its own
}
# The converter itself refuses these (its own error, not ropedoctor's).
REFUSED = {"gemma-4-31b-it", "glm-5.3-flash", "h2ogpt-oig-oasst1-256-6.9b", "jina-embeddings-v2-base-code",
           "nomic-embed-text-v1.5", "telechat3-36b-thinking", "tiny-aya-global"}


def _convert(out: Path, folders: list[Path]) -> dict[str, dict[str, Any]]:
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "converter_header.py"), str(CONVERTER), str(out),
                           *map(str, folders)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {Path(row["folder"]).name: row for row in rows}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    folders = sorted(p.parent for p in FIXTURES.glob("*/config.json"))
    return _convert(tmp_path_factory.mktemp("converted"), folders)


def _findings(config: Path, gguf_path: Path) -> list[dict[str, Any]]:
    result = invoke("compare", str(config), str(gguf_path), "--format", "json")
    assert result.exit_code in (0, 1), result.output
    return [f for r in json.loads(result.stdout)["results"] for f in r["findings"] if f["code"][:3] in ("RD4", "RD5")]


def test_compare_on_every_converted_fixture(converted: dict[str, dict[str, Any]]) -> None:
    refused = {name for name, row in converted.items() if "error" in row}
    assert refused == REFUSED, {name: converted[name].get("error") for name in refused ^ REFUSED}
    wrong = {}
    for name, row in sorted(converted.items()):
        if "gguf" not in row:
            continue
        codes = {f["code"] for f in _findings(FIXTURES / name / "config.json", Path(row["gguf"]))}
        if codes != EXPECTED.get(name, set()):
            wrong[name] = codes
    assert wrong == {}


def test_llama3_x32_conversion_of_an_x8_model(tmp_path: Path) -> None:
    """rope_freqs from a config edited to x32, compared with the x8 config: RD505 (the metadata is identical)."""
    config = json.loads((FIXTURES / "meta-llama-3.1-8b-instruct" / "config.json").read_text())
    config["rope_scaling"]["factor"] = 32.0
    folder = write_config(tmp_path / "llama31-x32", config)
    row = _convert(tmp_path, [folder])["llama31-x32"]
    findings = _findings(FIXTURES / "meta-llama-3.1-8b-instruct" / "config.json", Path(row["gguf"]))
    assert [f["code"] for f in findings] == ["RD505"], findings


def test_linear_round_trip_through_the_converter(tmp_path: Path) -> None:
    """`fix --ctx` on a converted linear x4 Llama GGUF plans what `fix --ctx` on its config plans (x16 over the
    trained 4096): the frequencies agree at every position."""
    config = json.loads((FIXTURES / "meta-llama-2-7b-hf" / "config.json").read_text())
    config.update(max_position_embeddings=16384, rope_scaling={"type": "linear", "factor": 4.0})
    folder = write_config(tmp_path / "llama2-linear", config)
    gguf_path = Path(_convert(tmp_path, [folder])["llama2-linear"]["gguf"])
    assert invoke("fix", str(gguf_path), "--ctx", "65536", "--no-backup").exit_code in (0, 1)
    assert invoke("fix", str(folder / "config.json"), "--ctx", "65536", "--no-backup").exit_code in (0, 1)
    again = tmp_path / "again"
    again.mkdir()
    reconverted = Path(_convert(again, [folder])["llama2-linear"]["gguf"])
    fixed_gguf, via_config = read_gguf_spec(gguf_path), read_gguf_spec(reconverted)
    assert (fixed_gguf.method, fixed_gguf.factor, fixed_gguf.original_context) == ("linear", 16.0, 4096)
    assert (via_config.method, via_config.factor) == ("linear", 16.0)
