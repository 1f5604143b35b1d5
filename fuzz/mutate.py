"""Byte-level and JSON-level mutations shared by the targets."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

# Tokens that have broken JSON readers before: non-finite numbers, lone surrogates, a BOM, deep nesting.
JSON_TOKENS = [
    b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"-0", b"1e-400", b"null", b"true", b"false", b"[]", b"{}",
    b'"\\ud800"', b"\xff", b"\xef\xbb\xbf", b"\x00", b"99999999999999999999999999", b"-9223372036854775809",
    b'"rope_scaling"', b'"rope_parameters"', b'"rope_type"', b'"type"', b'"factor"', b'"max_position_embeddings"',
    b'"text_config"', b'"head_dim"', b'"yarn"', b'"longrope"', b'"llama3"', b'"dynamic"', b"0.0", b"1e308", b'""',
    b"\\", b'"', b",", b":", b"[", b"{", b"]", b"}",
]
HUGE_U64 = [0, 1, 13, 255, 2**31, 2**32 - 1, 2**32, 2**40, 2**40 + 1, 10**12, 2**62, 2**63 - 1, 2**63, 2**64 - 1]


def mutate_bytes(rng: random.Random, data: bytes, tokens: list[bytes], rounds: int = 4) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, rounds)):
        at = rng.randint(0, max(0, len(out) - 1))
        kind = rng.randrange(9)
        if kind == 0:
            del out[at:]
        elif kind == 1 and out:
            out[at] = rng.randrange(256)
        elif kind == 2:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 3:
            del out[at:at + rng.randint(1, 64)]
        elif kind == 4:
            out[at:at] = rng.choice(tokens)
        elif kind == 5:
            span = out[at:at + rng.randint(1, 256)]
            out[at:at] = span * rng.randint(1, 4)
        elif kind == 6:
            out[at:at + 8] = struct.pack(rng.choice("<>") + "Q", rng.choice(HUGE_U64))
        elif kind == 7:
            out[at:at + 4] = struct.pack(rng.choice("<>") + "I", rng.choice(HUGE_U64[:6]))
        elif out:
            out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(12 if depth < 3 else 9)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2, 7, 2**31, 2**63, 2**64, -(2**63), 10**30, 4096, 131072])
    if kind == 3:
        return rng.choice([0.0, -0.0, 0.5, 1.0, 2.0, 4.0, 1e-300, 1e308, -1e308, 1e6, 3.4e38, 2.5])
    if kind == 4:
        return rng.choice(["", "yarn", "linear", "dynamic", "llama3", "longrope", "default", "su", "2.0", "x" * 300,
                           "\u0000", "\ud7ff", "é", "rope"])
    if kind in (5, 6, 7, 8):
        return rng.randint(-5, 1 << rng.randrange(1, 40))
    if kind in (9, 10):
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


KEYS = ["rope_type", "type", "factor", "original_max_position_embeddings", "rope_theta", "beta_fast", "beta_slow",
        "attention_factor", "mscale", "mscale_all_dim", "low_freq_factor", "high_freq_factor", "short_factor",
        "long_factor", "truncate", "partial_rotary_factor", "head_dim", "max_position_embeddings", "hidden_size",
        "num_attention_heads", "model_type", "rope_scaling", "rope_parameters", "text_config", "layer_types",
        "full_attention", "sliding_attention", "rotary_emb_base", "rotary_pct", "seq_length", "n_positions"]


def mutate_json(rng: random.Random, value: Any) -> Any:
    """A structural change somewhere in ``value``: a replaced, removed or added entry."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        choice = rng.randrange(4)
        entries = dict(value)
        if choice == 0:
            del entries[key]
        elif choice == 1:
            entries[key] = random_json(rng)
        elif choice == 2:
            entries[rng.choice(KEYS)] = random_json(rng)
        else:
            entries[key] = mutate_json(rng, entries[key])
        return entries
    if isinstance(value, list) and value and rng.random() < 0.7:
        items = list(value)
        at = rng.randrange(len(items))
        items[at] = mutate_json(rng, items[at]) if rng.random() < 0.5 else random_json(rng)
        return items
    return random_json(rng)


def dumps(rng: random.Random, value: Any) -> bytes:
    indent = rng.choice([None, 2, 4])
    return json.dumps(value, indent=indent, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
