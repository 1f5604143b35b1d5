"""Write fixtures/broken/: each a real fixture with one documented edit that a rule must catch.

Run from the repository root: python tools/make_broken_fixtures.py. The output is committed;
tests/test_fixtures.py checks each variant's findings.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURES = Path("fixtures")
Edit = Callable[[dict[str, Any]], None]


def _set(**values: Any) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config.update(copy.deepcopy(values))

    return edit


def _drop_scaling_key(key: str) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        del config["rope_scaling"][key]

    return edit


def _rename_scaling_block(config: dict[str, Any]) -> None:
    block = config.pop("rope_scaling")
    block["rope_theta"] = config.pop("rope_theta")
    config["rope_parameters"] = block


def _gemma3_legacy_type(config: dict[str, Any]) -> None:
    text = config["text_config"]
    text["rope_scaling"] = {"type": "linear", "factor": 8.0}


QWEN_YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}

# name -> (source fixture, edit, what the edit is)
VARIANTS: dict[str, tuple[str, Edit, str]] = {
    "yarn-legacy-type-conflict": (
        "qwen2.5-7b-instruct",
        _set(rope_scaling={"type": "linear", **QWEN_YARN}),
        "Qwen's YaRN snippet with a stale legacy `type: linear` beside `rope_type: yarn`",
    ),
    "qwen2.5-yarn-snippet": (
        "qwen2.5-7b-instruct",
        _set(rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}),
        "the YaRN block from Qwen2.5's model card, max_position_embeddings left at 32768",
    ),
    "linear-missing-factor": ("meta-llama-2-7b-hf", _set(rope_scaling={"type": "linear"}), "linear without factor"),
    "factor-as-string": (
        "meta-llama-2-7b-hf", _set(rope_scaling={"rope_type": "linear", "factor": "2.0"}), "factor written as a string"
    ),
    "llama3-bands-reversed": (
        "meta-llama-3.1-8b-instruct",
        _set(rope_scaling={"factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0,
                           "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
        "low_freq_factor and high_freq_factor swapped",
    ),
    "llama3-missing-original": (
        "meta-llama-3.1-8b-instruct", _drop_scaling_key("original_max_position_embeddings"),
        "original_max_position_embeddings removed from the llama3 block",
    ),
    "v5-only-llama3": (
        "meta-llama-3.1-8b-instruct", _rename_scaling_block,
        "the llama3 block moved into a transformers 5 `rope_parameters` with rope_theta inside",
    ),
    "both-blocks-disagree": (
        "meta-llama-3.1-8b-instruct",
        _set(rope_parameters={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192, "rope_theta": 500000.0}),
        "a `rope_parameters` block with factor 32 beside the official rope_scaling factor 8",
    ),
    "unknown-method": ("meta-llama-2-7b-hf", _set(rope_scaling={"rope_type": "ntk", "factor": 2.0}), "`ntk` is no method"),
    "yarn-beta-reversed": (
        "qwen2.5-7b-instruct",
        _set(max_position_embeddings=131072, rope_scaling={**QWEN_YARN, "beta_fast": 1, "beta_slow": 32}),
        "YaRN with beta_fast and beta_slow swapped",
    ),
    "yarn-factor-mismatch": (
        "qwen2.5-7b-instruct", _set(max_position_embeddings=128000, rope_scaling=QWEN_YARN),
        "max_position_embeddings 128000 with factor 4 x 32768 (= 131072)",
    ),
    "odd-head-dim": ("meta-llama-2-7b-hf", _set(head_dim=127), "head_dim 127"),
    "gemma3-legacy-type": (
        "gemma-3-4b-it", _gemma3_legacy_type, "Gemma-3's linear x8 written with the legacy `type` key only"
    ),
    "linear-extended-mpe": (
        "meta-llama-2-7b-hf", _set(max_position_embeddings=16384, rope_scaling={"type": "linear", "factor": 4.0}),
        "linear x4 with max_position_embeddings already 4 x 4096",
    ),
    "internlm2-scaling-null": (
        "internlm2.5-7b-chat", _set(rope_scaling=None),
        "`rope_scaling: null`: the model card's dynamic NTK x2 lost (README's second classic task)",
    ),
}


def main() -> None:
    lines = ["# Broken variants", "",
             "Each folder is a real fixture with one edit, written by `tools/make_broken_fixtures.py`.", "",
             "| folder | from | edit |", "|---|---|---|"]
    for name, (source, edit, what) in VARIANTS.items():
        config = json.loads((FIXTURES / source / "config.json").read_text())
        edit(config)
        folder = FIXTURES / "broken" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        lines.append(f"| {name} | {source} | {what} |")
    (FIXTURES / "broken" / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
