"""A tree of hostile model files for tests/test_reliability_commands.py (and anyone else): config.json values and
GGUF keys that ended in ``internal error`` before issue 15, plus a folder name with escape sequences.

``make_tree(root)`` writes one folder per case (``root/<name>/config.json`` or ``root/<name>/model.gguf``) and
returns {name: file}. Every case must end, for every command, in exit 2 with one line for that file, or in a
report with findings; never a traceback or ``internal error``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import gguf

from gguf_files import VT, llama_kv, write_gguf

BASE: dict[str, Any] = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
                        "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32,
                        "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 8192,
                        "rope_theta": 500000.0}

# (name, JSON text): the text is written as is (10**300 and lone surrogates are not what json.dumps writes)
CONFIG_TEXTS: list[tuple[str, str]] = [
    ("mpe-10e300", json.dumps(BASE).replace('"max_position_embeddings": 8192',
                                            '"max_position_embeddings": 1' + "0" * 300)),
    ("mpe-float-1e300", json.dumps({**BASE, "max_position_embeddings": 1e300})),
    ("mpe-negative", json.dumps({**BASE, "max_position_embeddings": -5})),
    ("mpe-true", json.dumps({**BASE, "max_position_embeddings": True})),
    ("yarn-original-minus-1", json.dumps({**BASE, "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                                                  "original_max_position_embeddings": -1}})),
    ("yarn-original-0", json.dumps({**BASE, "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                                            "original_max_position_embeddings": 0}})),
    ("yarn-factor-0", json.dumps({**BASE, "rope_scaling": {"rope_type": "yarn", "factor": 0,
                                                          "original_max_position_embeddings": 8192}})),
    ("yarn-factor-1e308", json.dumps({**BASE, "rope_scaling": {"rope_type": "yarn", "factor": 1e308,
                                                              "original_max_position_embeddings": 8192}})),
    ("linear-factor-0", json.dumps({**BASE, "rope_scaling": {"rope_type": "linear", "factor": 0}})),
    ("linear-factor-1e308", json.dumps({**BASE, "rope_scaling": {"rope_type": "linear", "factor": 1e308}})),
    ("dynamic-factor-1e308", json.dumps({**BASE, "rope_scaling": {"rope_type": "dynamic", "factor": 1e308}})),
    ("llama3-equal-freqs", json.dumps({**BASE, "rope_scaling": {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}})),
    ("llama3-factor-1e308", json.dumps({**BASE, "rope_scaling": {
        "rope_type": "llama3", "factor": 1e308, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}})),
    ("theta-1e308", json.dumps({**BASE, "rope_theta": 1e308})),
    ("theta-0", json.dumps({**BASE, "rope_theta": 0})),
    ("theta-negative", json.dumps({**BASE, "rope_theta": -10000.0})),
    ("theta-nan", json.dumps({**BASE, "rope_theta": float("nan")})),
    ("theta-string", json.dumps({**BASE, "rope_theta": "500000"})),
    ("heads-0", json.dumps({**BASE, "num_attention_heads": 0})),
    ("hidden-10e300", json.dumps(BASE).replace('"hidden_size": 4096', '"hidden_size": 1' + "0" * 300)),
    ("partial-rotary-1e308", json.dumps({**BASE, "partial_rotary_factor": 1e308})),
    ("longrope-huge", json.dumps({**BASE, "rope_scaling": {
        "rope_type": "longrope", "short_factor": [1e308] * 64, "long_factor": [1e308] * 64,
        "original_max_position_embeddings": 4096}})),
    ("deep-nesting", '{"model_type": "llama", "x": ' + "[" * 5000 + "]" * 5000 + "}"),
    ("deep-nesting-900", json.dumps(BASE)[:-1] + ', "x": ' + "[" * 900 + "]" * 900 + "}"),
    ("lone-surrogate-value", json.dumps({**BASE, "model_type": "llama\ud800"})),
    ("lone-surrogate-key", json.dumps(BASE)[:-1] + ', "rope_scaling": {"rope_type": "yarn", "fac\\udc00tor": 4.0}}'),
    ("escape-in-type", json.dumps({**BASE, "model_type": "ll\x1b]0;pwned\x07ama"})),
]


def _gguf_cases() -> list[tuple[str, dict[str, tuple[Any, gguf.GGUFValueType]]]]:
    return [
        ("gguf-freq-base-0", llama_kv(extra={"{arch}.rope.freq_base": (0.0, VT.FLOAT32)})),
        ("gguf-freq-base-inf", llama_kv(extra={"{arch}.rope.freq_base": (float("inf"), VT.FLOAT32)})),
        ("gguf-freq-base-string", llama_kv(extra={"{arch}.rope.freq_base": ("10000", VT.STRING)})),
        ("gguf-context-string", {**llama_kv(), "{arch}.context_length": ("8192", VT.STRING)}),
        ("gguf-context-float", {**llama_kv(), "{arch}.context_length": (8192.5, VT.FLOAT32)}),
        ("gguf-context-array", {**llama_kv(), "{arch}.context_length": ([8192, 1], VT.ARRAY)}),
        ("gguf-context-0", llama_kv(context=0)),
        ("gguf-heads-0", {**llama_kv(), "{arch}.attention.head_count": (0, VT.UINT32)}),
        ("gguf-factor-string", llama_kv(extra={"{arch}.rope.scaling.type": ("yarn", VT.STRING),
                                               "{arch}.rope.scaling.factor": ("4", VT.STRING)})),
        ("gguf-factor-nan", llama_kv(extra={"{arch}.rope.scaling.type": ("yarn", VT.STRING),
                                            "{arch}.rope.scaling.factor": (float("nan"), VT.FLOAT32)})),
        ("gguf-factor-huge", llama_kv(extra={"{arch}.rope.scaling.type": ("linear", VT.STRING),
                                             "{arch}.rope.scaling.factor": (3e38, VT.FLOAT32)})),
        ("gguf-type-int", llama_kv(extra={"{arch}.rope.scaling.type": (2, VT.UINT32),
                                          "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32)})),
        ("gguf-dims-string", {**llama_kv(), "{arch}.rope.dimension_count": ("128", VT.STRING)}),
        ("gguf-original-0", llama_kv(extra={"{arch}.rope.scaling.type": ("yarn", VT.STRING),
                                            "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32),
                                            "{arch}.rope.scaling.original_context_length": (0, VT.UINT32)})),
        ("gguf-original-huge", llama_kv(extra={"{arch}.rope.scaling.type": ("yarn", VT.STRING),
                                               "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32),
                                               "{arch}.rope.scaling.original_context_length": (2**64 - 1,
                                                                                               VT.UINT64)})),
    ]


def aligned_gguf(alignment: int) -> bytes:
    """A 296-byte-class GGUF: no tensors, an architecture, and ``general.alignment = alignment``."""
    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    kv = [string("general.architecture") + struct.pack("<I", 8) + string("llama"),
          string("general.alignment") + struct.pack("<II", 4, alignment),
          string("llama.context_length") + struct.pack("<II", 4, 8192),
          string("llama.rope.freq_base") + struct.pack("<If", 6, 10000.0)]
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)) + b"".join(kv)


def make_tree(root: Path) -> dict[str, Path]:
    """One folder per hostile case under ``root``; {case: the file in it}."""
    files: dict[str, Path] = {}
    for name, text in CONFIG_TEXTS:
        folder = root / name
        folder.mkdir(parents=True)
        path = folder / "config.json"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        files[name] = path
    for name, kv in _gguf_cases():
        folder = root / name
        folder.mkdir(parents=True)
        files[name] = write_gguf(folder / "model.gguf", "llama", kv)
    for name, alignment in (("gguf-alignment-2-31", 2**31), ("gguf-alignment-3", 3)):
        folder = root / name
        folder.mkdir(parents=True)
        path = folder / "model.gguf"
        path.write_bytes(aligned_gguf(alignment))
        files[name] = path
    escape = root / "esc\x1b]0;title\x07dir"
    escape.mkdir()
    (escape / "config.json").write_text(json.dumps(BASE))
    files["escape-folder"] = escape / "config.json"
    return files
