"""llama.cpp run with RoPE parameters X computes the same model as transformers run with config.json Y.

Each case builds one tiny random model twice (transformers folder, float32 GGUF of the same weights), feeds the
same token ids to both, and compares all logits: max |diff| <= 1e-3. The model is trained for 256 positions and
run at up to 1024 (4x). Each case also has a negative control (a wrong but plausible llama.cpp setting) that must
miss by far more than the tolerance, so that agreement is not an accident of RoPE barely mattering.

Float32 noise floor: ggml builds its cos/sin cache in float32 with a different operation order from
transformers (theta = p * base^(-2i/d) by repeated multiplication, and YaRN's ramp applied to the angle, not to
the frequency). For YaRN x4 at positions near 1023 this costs up to ~3e-5 rad on the rotary pair inside the ramp
and ~5e-4 in the logits; a float32 emulation of ggml's cache reproduces llama.cpp to 1e-5, and transformers with
exact (float64) angles sits 5e-4 from both. It is rounding, not a formula difference.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import pytest

from llamacpp_logits import VT, TinyModel, build_tiny_llama, hf_logits, llamacpp_logits, max_abs_diff, random_tokens
from ropedoctor import rope_math

TOL = 1e-3
WRONG = 0.1  # a negative control must be at least this far off
THETA = 10000.0
D = 16  # head_dim = rotary dim
TRAIN = 256
LONG = 4 * TRAIN

NONE = llama_cpp.LLAMA_ROPE_SCALING_TYPE_NONE
LINEAR = llama_cpp.LLAMA_ROPE_SCALING_TYPE_LINEAR
YARN = llama_cpp.LLAMA_ROPE_SCALING_TYPE_YARN


def compare(model: TinyModel, n: int, params: dict[str, Any], control: dict[str, Any] | None = None) -> float:
    """max |HF - llama.cpp| over all positions and the vocabulary; the control run must be far off."""
    tokens = random_tokens(n)
    expected = hf_logits(model, tokens)
    diff = max_abs_diff(expected, llamacpp_logits(model, tokens, params))
    print(f"\n{model.hf_dir.parent.name}: n={n} {params} max|diff| = {diff:.3g}")
    assert diff <= TOL
    if control is not None:
        off = max_abs_diff(expected, llamacpp_logits(model, tokens, control))
        print(f"  control {control}: max|diff| = {off:.3g}")
        assert off > WRONG
    return diff


def test_no_scaling(tmp_path: Path) -> None:
    model = build_tiny_llama(tmp_path, {"rope_theta": THETA})
    compare(model, TRAIN, {}, control={"rope_freq_base": 2 * THETA})


def test_no_scaling_head_dim_32(tmp_path: Path) -> None:
    """Two heads of 32: the Q/K permutation and the rotary pairing do not depend on a 16-wide head."""
    model = build_tiny_llama(tmp_path, {"rope_theta": THETA}, head_dim=32)
    compare(model, TRAIN, {}, control={"rope_freq_base": 2 * THETA})


def test_linear_x4(tmp_path: Path) -> None:
    model = build_tiny_llama(tmp_path, {"rope_scaling": {"rope_type": "linear", "factor": 4.0}})
    compare(model, LONG, {"rope_scaling_type": LINEAR, "rope_freq_scale": 0.25}, control={})


def test_yarn_x4(tmp_path: Path) -> None:
    """llama.cpp's YaRN magnitude equals transformers' attention factor 0.1 ln 4 + 1.

    llama.cpp sets yarn_attn_factor = m(4) / (1 + 0.1 ln 4) = 1 and ggml multiplies cos/sin by 1 + 0.1 ln 4 itself.
    The control is linear x4 (same angles outside the ramp, no ramp, no magnitude): far off.
    """
    model = build_tiny_llama(tmp_path, {
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": TRAIN},
        "max_position_embeddings": LONG})
    compare(model, LONG, {"rope_scaling_type": YARN, "rope_freq_scale": 0.25, "yarn_orig_ctx": TRAIN},
            control={"rope_scaling_type": LINEAR, "rope_freq_scale": 0.25})


def test_yarn_x4_from_gguf_metadata(tmp_path: Path) -> None:
    """The same YaRN, but from the GGUF keys convert_hf_to_gguf writes, with no runtime flags."""
    model = build_tiny_llama(tmp_path, {
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": TRAIN},
        "max_position_embeddings": LONG}, n_ctx_train=LONG, gguf_kv={
        "{arch}.rope.scaling.type": ("yarn", VT.STRING), "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32),
        "{arch}.rope.scaling.original_context_length": (TRAIN, VT.UINT32)})
    compare(model, LONG, {}, control={"rope_scaling_type": NONE})


def test_llama3_through_rope_freqs(tmp_path: Path) -> None:
    """llama3 (factor 8, low 1, high 4, original 256) = a rope_freqs tensor of divisors default / llama3."""
    factor, low, high = 8.0, 1.0, 4.0
    divisors = [a / b for a, b in zip(rope_math.default_inv_freq(THETA, D),
                                      rope_math.llama3_inv_freq(THETA, D, factor, TRAIN, low, high), strict=True)]
    assert divisors[0] == 1.0 and divisors[-1] == factor and any(1 < x < factor for x in divisors)  # all 3 bands
    model = build_tiny_llama(tmp_path, {
        "rope_scaling": {"rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
                         "original_max_position_embeddings": TRAIN},
        "max_position_embeddings": 8 * TRAIN}, tensors={"rope_freqs.weight": np.array(divisors, dtype=np.float32)})
    # control: the divisors and linear x8 on top (what "llama3 is linear x8" would give)
    compare(model, LONG, {"n_ctx": LONG}, control={"rope_scaling_type": LINEAR, "rope_freq_scale": 1 / factor})


def test_static_ntk_base(tmp_path: Path) -> None:
    """config.json rope_theta = b * 4^(d/(d-2)) = a GGUF with base b run with --rope-freq-base that value."""
    base = rope_math.ntk_scaled_base(THETA, 4.0, D)
    model = build_tiny_llama(tmp_path, {"rope_theta": base},
                             gguf_kv={"{arch}.rope.freq_base": (THETA, VT.FLOAT32)})
    compare(model, LONG, {"rope_freq_base": base}, control={})


LONG_FACTORS = [1.0, 1.2, 1.8, 2.5, 3.5, 4.0, 4.5, 5.0]
SHORT_FACTORS = [1.0, 1.05, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6]


@pytest.fixture
def phi3(tmp_path: Path) -> TinyModel:
    """Phi-3 longrope as Phi3MiniModel converts it: context_length = max_position_embeddings (1024), the original
    length (256) in rope.scaling.original_context_length, attn_factor sqrt(1 + ln s / ln orig), both factor tensors,
    no rope.scaling.type."""
    attn = rope_math.longrope_attention_factor(LONG / TRAIN, TRAIN)
    return build_tiny_llama(tmp_path, {
        "rope_scaling": {"type": "longrope", "short_factor": SHORT_FACTORS, "long_factor": LONG_FACTORS},
        "original_max_position_embeddings": TRAIN}, arch="phi3", n_ctx_train=LONG, gguf_kv={
        "{arch}.rope.scaling.original_context_length": (TRAIN, VT.UINT32),
        "{arch}.rope.scaling.attn_factor": (attn, VT.FLOAT32)}, tensors={
        "rope_factors_long.weight": np.array(LONG_FACTORS, dtype=np.float32),
        "rope_factors_short.weight": np.array(SHORT_FACTORS, dtype=np.float32)})


def test_longrope_phi3_long(phi3: TinyModel) -> None:
    compare(phi3, LONG, {"n_ctx": LONG}, control={"n_ctx": LONG, "rope_scaling_type": LINEAR,
                                                  "rope_freq_scale": TRAIN / LONG})


def test_longrope_phi3_short(phi3: TinyModel) -> None:
    """n_ctx <= original length: llama.cpp picks the short factors, as transformers does for a short input."""
    compare(phi3, 200, {"n_ctx": TRAIN})


def test_longrope_switch_is_by_n_ctx_not_input_length(phi3: TinyModel) -> None:
    """Known divergence: llama.cpp chooses long vs short factors by n_ctx (per sequence), transformers by the input
    length. A 200-token input in a 1024 context gets long factors in llama.cpp, short ones in transformers."""
    tokens = random_tokens(200)
    off = max_abs_diff(hf_logits(phi3, tokens), llamacpp_logits(phi3, tokens, {"n_ctx": LONG}))
    print(f"\nlongrope, 200 tokens in n_ctx {LONG}: max|diff| = {off:.3g}")
    assert off > WRONG


@pytest.fixture
def dynamic(tmp_path: Path) -> TinyModel:
    return build_tiny_llama(tmp_path, {"rope_scaling": {"rope_type": "dynamic", "factor": 4.0}})


def test_dynamic_ntk_equals_static_base_at_its_length(dynamic: TinyModel) -> None:
    """At a fixed length L, transformers' dynamic NTK is default RoPE with base dynamic_base(L)."""
    base = rope_math.dynamic_base(THETA, D, 4.0, LONG, TRAIN)
    compare(dynamic, LONG, {"rope_freq_base": base}, control={})


@pytest.mark.parametrize("n", [TRAIN, 384, 512])
def test_dynamic_ntk_is_only_approximated_below_that_length(dynamic: TinyModel, n: int) -> None:
    """The static base chosen for 1024 tokens is wrong for shorter inputs: transformers then uses the unscaled base
    (n <= 256) or a smaller dynamic one. This deviation is what "dynamic NTK is approximate in llama.cpp" means."""
    tokens = random_tokens(n)
    expected = hf_logits(dynamic, tokens)
    static = rope_math.dynamic_base(THETA, D, 4.0, LONG, TRAIN)
    off = max_abs_diff(expected, llamacpp_logits(dynamic, tokens, {"rope_freq_base": static, "n_ctx": LONG}))
    own = rope_math.dynamic_base(THETA, D, 4.0, n, TRAIN)  # the base transformers uses at this length
    exact = max_abs_diff(expected, llamacpp_logits(dynamic, tokens, {"rope_freq_base": own, "n_ctx": LONG}))
    print(f"\ndynamic NTK at n={n}: static base {static:.0f} max|diff| = {off:.3g}; own base {own:.0f}: {exact:.3g}")
    assert off > WRONG
    assert exact <= TOL
    assert n > TRAIN or math.isclose(own, THETA)
