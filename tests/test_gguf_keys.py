"""ropedoctor.gguf_keys mirrors gguf.constants exactly (gguf is the source of truth)."""

from __future__ import annotations

import gguf
from gguf.constants import Keys

from ropedoctor import gguf_keys as G


def test_value_types_match_gguf() -> None:
    assert {t.name: t.value for t in G.ValueType} == {t.name: t.value for t in gguf.GGUFValueType}


def test_keys_match_gguf() -> None:
    pairs = {
        G.ARCHITECTURE: Keys.General.ARCHITECTURE, G.NAME: Keys.General.NAME, G.BASENAME: Keys.General.BASENAME,
        G.ALIGNMENT: Keys.General.ALIGNMENT, G.SPLIT_COUNT: Keys.Split.LLM_KV_SPLIT_COUNT,
        G.SPLIT_NO: Keys.Split.LLM_KV_SPLIT_NO,
        G.CONTEXT_LENGTH: Keys.LLM.CONTEXT_LENGTH, G.EMBEDDING_LENGTH: Keys.LLM.EMBEDDING_LENGTH,
        G.POOLING_TYPE: Keys.LLM.POOLING_TYPE, G.HEAD_COUNT: Keys.Attention.HEAD_COUNT,
        G.HEAD_COUNT_KV: Keys.Attention.HEAD_COUNT_KV, G.KEY_LENGTH: Keys.Attention.KEY_LENGTH,
        G.CAUSAL: Keys.Attention.CAUSAL, G.SLIDING_WINDOW: Keys.Attention.SLIDING_WINDOW,
        G.ROPE_DIMENSION_COUNT: Keys.Rope.DIMENSION_COUNT, G.ROPE_DIMENSION_SECTIONS: Keys.Rope.DIMENSION_SECTIONS,
        G.ROPE_FREQ_BASE: Keys.Rope.FREQ_BASE, G.ROPE_FREQ_BASE_SWA: Keys.Rope.FREQ_BASE_SWA,
        G.ROPE_SCALING_TYPE: Keys.Rope.SCALING_TYPE, G.ROPE_SCALING_FACTOR: Keys.Rope.SCALING_FACTOR,
        G.ROPE_SCALING_ATTN_FACTOR: Keys.Rope.SCALING_ATTN_FACTOR,
        G.ROPE_SCALING_ORIG_CTX_LEN: Keys.Rope.SCALING_ORIG_CTX_LEN,
        G.ROPE_SCALING_FINETUNED: Keys.Rope.SCALING_FINETUNED,
        G.ROPE_SCALING_YARN_LOG_MUL: Keys.Rope.SCALING_YARN_LOG_MUL,
        G.ROPE_SCALING_YARN_EXT_FACTOR: Keys.Rope.SCALING_YARN_EXT_FACTOR,
        G.ROPE_SCALING_YARN_ATTN_FACTOR: Keys.Rope.SCALING_YARN_ATTN_FACTOR,
        G.ROPE_SCALING_YARN_BETA_FAST: Keys.Rope.SCALING_YARN_BETA_FAST,
        G.ROPE_SCALING_YARN_BETA_SLOW: Keys.Rope.SCALING_YARN_BETA_SLOW,
    }
    for ours, theirs in pairs.items():
        assert ours == theirs


def test_tensor_names_and_scaling_types_match_gguf() -> None:
    names = gguf.TENSOR_NAMES
    assert names[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight" == G.ROPE_FREQS
    assert names[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] + ".weight" == G.ROPE_FACTORS_LONG
    assert names[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] + ".weight" == G.ROPE_FACTORS_SHORT
    assert names[gguf.MODEL_TENSOR.POS_EMBD] + ".weight" == G.POSITION_EMBD
    assert tuple(t.value for t in gguf.RopeScalingType) == G.SCALING_TYPES
