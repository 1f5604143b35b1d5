"""A tiny random-weight Llama-architecture GGUF that llama.cpp really loads (tokenizer included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np

VT = gguf.GGUFValueType


def _vocab() -> tuple[list[str], list[int]]:
    """SentencePiece-style: unk, bos, eos, the 256 byte tokens, a few words."""
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), "▁the", "▁pass", "▁key", "▁is"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, *[gguf.TokenType.BYTE] * 256,
             *[gguf.TokenType.NORMAL] * 4]
    return tokens, [int(t) for t in types]


def write_tiny_llama(path: Path, context: int = 256, kv: dict[str, tuple[Any, gguf.GGUFValueType]] | None = None,
                     tensors: dict[str, np.ndarray[Any, Any]] | None = None, n_embd: int = 64, n_head: int = 4,
                     seed: int = 0, kv_heads: list[int] | None = None) -> Path:
    """Head size n_embd / n_head, float32 weights; `kv` keys may use {arch}. One layer per entry of `kv_heads`
    (default: one layer with n_head KV heads), head_count_kv a per-layer array when they differ."""
    rng = np.random.default_rng(seed)
    tokens, types = _vocab()
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(context)
    writer.add_embedding_length(n_embd)
    kv_heads = kv_heads or [n_head]
    head_dim = n_embd // n_head
    writer.add_block_count(len(kv_heads))
    writer.add_feed_forward_length(2 * n_embd)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(kv_heads[0] if len(set(kv_heads)) == 1 else kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    for key, (value, vtype) in (kv or {}).items():
        writer.add_key_value(key.format(arch="llama"), value, vtype)
    n_vocab, ff = len(tokens), 2 * n_embd

    def weight(*shape: int) -> np.ndarray[Any, Any]:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    weights = {"token_embd.weight": weight(n_vocab, n_embd), "output_norm.weight": np.ones(n_embd, dtype=np.float32),
               "output.weight": weight(n_vocab, n_embd)}
    for layer, heads in enumerate(kv_heads):
        blk = f"blk.{layer}."
        weights |= {
            blk + "attn_norm.weight": np.ones(n_embd, dtype=np.float32), blk + "attn_q.weight": weight(n_embd, n_embd),
            blk + "attn_k.weight": weight(heads * head_dim, n_embd), blk + "attn_v.weight": weight(heads * head_dim, n_embd),
            blk + "attn_output.weight": weight(n_embd, n_embd), blk + "ffn_norm.weight": np.ones(n_embd, dtype=np.float32),
            blk + "ffn_gate.weight": weight(ff, n_embd), blk + "ffn_up.weight": weight(ff, n_embd),
            blk + "ffn_down.weight": weight(n_embd, ff),
        }
    weights |= tensors or {}
    for name, array in weights.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
