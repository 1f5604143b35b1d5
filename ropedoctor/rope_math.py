"""The maths of every RoPE scaling method, in one place.

Plain Python (``math``), so ``check`` stays free of numpy. Formulas follow transformers 5.23
``modeling_rope_utils.py``; notation: b = base (rope_theta), d = rotary dim, s = factor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ropedoctor.errors import InputError
from ropedoctor.model import methods

if TYPE_CHECKING:
    from ropedoctor.spec import RopeSpec


def ntk_scaled_base(theta: float, factor: float, rotary_dim: int) -> float:
    """Static NTK-aware base: b' = b * s^(d / (d - 2)) (bloc97; transformers' dynamic NTK at L = s * L_max)."""
    return float(theta * factor ** (rotary_dim / (rotary_dim - 2)))


def base_lower_bound(context: int) -> float:
    """The smallest base that gives a model real (not superficial) context ``context``.

    Men et al. 2024, "Base of RoPE Bounds Context Length" (arXiv:2405.14591), Fig. 1: the
    bound they derive from the long-term decay of token discrimination, fitted over 1K-1M
    tokens as base >= 0.0424 * L^1.628.
    """
    return float(0.0424 * context**1.628)


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's attention temperature m(s, mu) = 0.1 * mu * ln(s) + 1 (1 for s <= 1)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def yarn_attention_factor(
    factor: float, attention_factor: float | None = None, mscale: float | None = None,
    mscale_all_dim: float | None = None,
) -> float:
    """The factor transformers multiplies cos and sin by under YaRN."""
    if attention_factor is not None:
        return attention_factor
    if mscale and mscale_all_dim:
        return yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim)
    return yarn_mscale(factor)


def smallest_factor(target: int, original: int) -> float:
    """The smallest factor >= target / original, rounded up to the next 0.5 below 4 and integer above.

    Qwen's guidance: use the smallest factor that covers the target, since static scaling
    costs quality on short inputs; half steps keep the factor exact in float32.
    """
    raw = target / original
    if raw <= 1:
        return 1.0
    step = 0.5 if raw < 4 else 1.0
    return math.ceil(raw / step - 1e-9) * step


# --- inverse frequencies (transformers 5.23 ROPE_INIT_FUNCTIONS, in plain Python) -------------------------
def default_inv_freq(theta: float, rotary_dim: int) -> list[float]:
    """theta_i = b^(-2i/d) for i < ceil(d/2) (torch.arange(0, d, 2) / d)."""
    return [1.0 / theta ** (i / rotary_dim) for i in range(0, rotary_dim, 2)]


def linear_inv_freq(theta: float, rotary_dim: int, factor: float) -> list[float]:
    return [f / factor for f in default_inv_freq(theta, rotary_dim)]


def dynamic_base(theta: float, rotary_dim: int, factor: float, seq_len: int, max_positions: int) -> float:
    """Dynamic NTK: b' = b (s L / L_max - (s - 1))^(d/(d-2)) with L = max(seq_len, L_max)."""
    length = max(seq_len, max_positions)
    return float(theta * (factor * length / max_positions - (factor - 1)) ** (rotary_dim / (rotary_dim - 2)))


def dynamic_inv_freq(theta: float, rotary_dim: int, factor: float, seq_len: int, max_positions: int) -> list[float]:
    return default_inv_freq(dynamic_base(theta, rotary_dim, factor, seq_len, max_positions), rotary_dim)


def yarn_correction_range(theta: float, rotary_dim: int, original: int, beta_fast: float = 32.0,
                          beta_slow: float = 1.0, truncate: bool = True) -> tuple[float, float]:
    """The dimension range of YaRN's ramp (find_correction_range), clamped to [0, d - 1]."""

    def dim(rotations: float) -> float:
        return rotary_dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = dim(beta_fast), dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, rotary_dim - 1)


def yarn_inv_freq(theta: float, rotary_dim: int, factor: float, original: int, beta_fast: float = 32.0,
                  beta_slow: float = 1.0, truncate: bool = True) -> list[float]:
    """Interpolated (divided by s) above the ramp, extrapolated (kept) below it, linear in between."""
    low, high = yarn_correction_range(theta, rotary_dim, original, beta_fast, beta_slow, truncate)
    if low == high:
        high += 0.001
    out = []
    for i, freq in enumerate(default_inv_freq(theta, rotary_dim)):
        ramp = min(max((i - low) / (high - low), 0.0), 1.0)  # 1 = interpolate
        out.append(freq * (1 - ramp) + freq / factor * ramp)
    return out


def llama3_inv_freq(theta: float, rotary_dim: int, factor: float, original: int, low_freq_factor: float,
                    high_freq_factor: float) -> list[float]:
    """Llama 3.1: wavelengths above original/low divided by s, below original/high kept, smooth between."""
    low_wavelen, high_wavelen = original / low_freq_factor, original / high_freq_factor
    out = []
    for freq in default_inv_freq(theta, rotary_dim):
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(freq)
        elif wavelen > low_wavelen:
            out.append(freq / factor)
        else:
            smooth = (original / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append((1 - smooth) * freq / factor + smooth * freq)
    return out


def longrope_inv_freq(theta: float, rotary_dim: int, factors: list[float]) -> list[float]:
    return [f / ext for f, ext in zip(default_inv_freq(theta, rotary_dim), factors, strict=True)]


def longrope_attention_factor(factor: float, original: int) -> float:
    return 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(original))


class NoFrequencies(InputError, ValueError):
    """The spec's frequencies cannot be computed: no base or rotary dimension, or a method without a formula. An
    InputError: a command that needs them stops with one line for that file."""


def spec_inv_freq(spec: RopeSpec, seq_len: int | None = None) -> tuple[list[float], float]:
    """(inverse frequencies, attention factor) transformers 5 computes for a spec at ``seq_len`` tokens."""
    if spec.theta is None or not spec.rotary_dim:
        raise NoFrequencies(spec.source, "no usable RoPE base or rotary dimension")
    compute = INV_FREQ.get(methods.canonical(spec.method) or "")
    if compute is None:
        raise NoFrequencies(spec.source, f"no frequencies for the method {methods.label(spec.method)}")
    return compute(spec, seq_len)


def _factor(spec: RopeSpec) -> float:
    return spec.factor if spec.factor is not None else 1.0


def _original(spec: RopeSpec) -> int:
    original = spec.original_context or spec.context
    if original is None:
        raise ValueError(f"{spec.source}: no original length")
    return original


def _default(spec: RopeSpec, seq_len: int | None) -> tuple[list[float], float]:
    return default_inv_freq(spec.theta or 0.0, spec.rotary_dim or 0), 1.0


def _linear(spec: RopeSpec, seq_len: int | None) -> tuple[list[float], float]:
    return linear_inv_freq(spec.theta or 0.0, spec.rotary_dim or 0, _factor(spec)), 1.0


def _dynamic(spec: RopeSpec, seq_len: int | None) -> tuple[list[float], float]:
    max_positions = spec.dynamic_length or _original(spec)
    return dynamic_inv_freq(spec.theta or 0.0, spec.rotary_dim or 0, _factor(spec), seq_len or max_positions,
                            max_positions), 1.0


def _yarn(spec: RopeSpec, seq_len: int | None) -> tuple[list[float], float]:
    factor = _factor(spec)
    freqs = yarn_inv_freq(spec.theta or 0.0, spec.rotary_dim or 0, factor, _original(spec), spec.beta_fast or 32.0,
                          spec.beta_slow or 1.0, spec.truncate is not False)
    return freqs, yarn_attention_factor(factor, spec.attention_factor, spec.mscale, spec.mscale_all_dim)


def _ntk_alpha(spec: RopeSpec, seq_len: int | None) -> tuple[list[float], float]:
    """HunYuan: a fixed NTK base b * alpha^(d/(d-2)), whatever the input length."""
    dim = spec.rotary_dim or 0
    return default_inv_freq(ntk_scaled_base(spec.theta or 0.0, spec.alpha or 1.0, dim), dim), 1.0


def proportional_inv_freq(theta: float, head_dim: int, partial: float, factor: float) -> list[float]:
    """Gemma-4: exponents over the whole head, only the first ``partial`` of the pairs rotating.

    transformers pads the other pairs with zero frequencies; only the rotating pairs are returned here, so
    the list has rotary_dim / 2 entries like every other method's.
    """
    angles = int(partial * head_dim // 2)
    return [1.0 / theta ** (2 * i / head_dim) / factor for i in range(angles)]


def _proportional(spec: RopeSpec, seq_len: int | None) -> tuple[list[float], float]:
    head_dim = spec.head_dim or spec.rotary_dim or 0
    return proportional_inv_freq(spec.theta or 0.0, head_dim, spec.partial_rotary_factor, _factor(spec)), 1.0


def _llama3(spec: RopeSpec, seq_len: int | None) -> tuple[list[float], float]:
    return llama3_inv_freq(spec.theta or 0.0, spec.rotary_dim or 0, _factor(spec), _original(spec),
                           spec.low_freq_factor or 1.0, spec.high_freq_factor or 4.0), 1.0


def _longrope(spec: RopeSpec, seq_len: int | None) -> tuple[list[float], float]:
    original = _original(spec)
    long = seq_len is not None and seq_len > original
    factors = (spec.long_factor if long else spec.short_factor) or []
    attention = spec.attention_factor if spec.attention_factor is not None else \
        longrope_attention_factor(_factor(spec), original)
    return longrope_inv_freq(spec.theta or 0.0, spec.rotary_dim or 0, factors), attention


# method -> function, as transformers' ROPE_INIT_FUNCTIONS.
# Every method of the table whose ``frequencies`` is true has an entry (tests/test_methods.py).
INV_FREQ: dict[str, Callable[[RopeSpec, int | None], tuple[list[float], float]]] = {
    "default": _default, "linear": _linear, "dynamic": _dynamic, "yarn": _yarn, "llama3": _llama3,
    "longrope": _longrope, "proportional": _proportional, "ntk_alpha": _ntk_alpha,
    "ntk": _default,  # a static NTK spec carries its grown base as theta
    "dual_chunk": _default,  # dual-chunk attention re-indexes positions; the frequencies are plain RoPE
}


# --- llama.cpp / ggml -------------------------------------------------------------------------------------
def ggml_inv_freq(theta: float, rotary_dim: int, freq_scale: float, ext_factor: float, original: int,
                  divisors: list[float] | None = None, beta_fast: float = 32.0, beta_slow: float = 1.0,
                  attn_factor: float = 1.0, magnitude: float | None = None) -> tuple[list[float], float]:
    """The per-pair angle per position and cos/sin magnitude ggml's rope uses (ggml-cpu ops.cpp).

    ``divisors`` are the ``rope_freqs`` / longrope factor tensor entries. With YaRN
    (``ext_factor`` != 0) llama.cpp sets the attention factor so that the total magnitude is
    ``0.1 ln(1/freq_scale) + 1``, or ``magnitude`` when the GGUF has a yarn_log_multiplier
    (DeepSeek's mscale ratio); otherwise it is ``attn_factor`` (``rope.scaling.attn_factor``).
    """
    base = default_inv_freq(theta, rotary_dim)
    if divisors is not None:
        base = [f / d for f, d in zip(base, divisors, strict=True)]
    if ext_factor == 0:
        return [f * freq_scale for f in base], attn_factor
    low, high = yarn_correction_range(theta, rotary_dim, original, beta_fast, beta_slow, truncate=True)
    out = []
    for i, freq in enumerate(base):
        ramp = 1 - min(max((i - low) / max(0.001, high - low), 0.0), 1.0)
        mix = ramp * ext_factor
        out.append(freq * freq_scale * (1 - mix) + freq * mix)
    return out, magnitude if magnitude is not None else attn_factor * yarn_mscale(1 / freq_scale)


def relative_deviation(ours: tuple[list[float], float], theirs: tuple[list[float], float]) -> float:
    """The largest relative difference of two (frequencies, attention factor) pairs."""
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours[0], theirs[0], strict=True) if b)
    return max(worst, abs(ours[1] - theirs[1]) / abs(theirs[1]))


# --- per rotary dimension (ropedoctor plot) -------------------------------------------------------------
def wavelengths(inv_freq: list[float]) -> list[float]:
    """Tokens per full turn of each rotary pair: 2 pi / theta_i."""
    return [2 * math.pi / freq for freq in inv_freq]


def dimension_scales(theta: float, rotary_dim: int, inv_freq: list[float]) -> list[float]:
    """How much a method stretches each pair's wavelength against the unscaled base ``theta``:
    theta_i(unscaled) / theta_i(method); 1 keeps the pair (extrapolation), s interpolates it by s."""
    return [base / freq for base, freq in zip(default_inv_freq(theta, rotary_dim), inv_freq, strict=True)]
