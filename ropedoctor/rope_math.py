"""The maths of every RoPE scaling method, in one place.

Plain Python (``math``), so ``check`` stays free of numpy. Formulas follow transformers 5.23
``modeling_rope_utils.py``; notation: b = base (rope_theta), d = rotary dim, s = factor.
"""

from __future__ import annotations

import math


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
