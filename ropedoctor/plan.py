"""Planning a RoPE change: a RopeSpec and a target (length or explicit method) -> the corrected RopeSpec.

Policy with only ``--ctx N`` (README, "fix"):

1. A file that already serves N tokens is kept (only a YaRN ``max_position_embeddings`` left at
   the original length is extended, the layout every runtime reads alike).
2. A file with its own method that cannot reach N keeps the method with a larger factor (linear,
   dynamic, YaRN: the smallest factor that covers N; llama3: factor and declared length scaled
   together). Trained longrope factor lists cannot be stretched: that is an error.
3. A file without scaling gets what its family documents (InternLM2: dynamic NTK; NomicBert: its
   own ``rotary_scaling_factor``, dynamic NTK), else YaRN with the smallest factor that covers N
   (Qwen's guidance: static YaRN costs quality on short inputs, so do not overshoot).

Factors are rounded up to the next 0.5 below 4 and to the next integer above (rope_math).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from ropedoctor import rope_math
from ropedoctor.errors import InputError
from ropedoctor.spec import RopeSpec

PlanType = Literal["linear", "dynamic", "yarn", "ntk"]
PLAN_TYPES: tuple[PlanType, ...] = ("linear", "dynamic", "yarn", "ntk")
MaxPositions = Literal["keep", "extend", "auto"]

# Families whose model cards prescribe a method when no scaling ships.
_FAMILY_METHOD: dict[str, PlanType] = {"internlm2": "dynamic", "internlm3": "dynamic", "nomic_bert": "dynamic"}


@dataclass(frozen=True)
class Target:
    """What the user asked fix (or flags) for."""

    ctx: int | None = None
    method: PlanType | None = None
    factor: float | None = None
    original: int | None = None
    max_positions: MaxPositions = "auto"


@dataclass(frozen=True)
class Plan:
    before: RopeSpec
    after: RopeSpec
    reasons: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.before != self.after


def plan(spec: RopeSpec, target: Target) -> Plan:
    """The corrected spec and why; InputError when the target cannot be met."""
    if target.ctx is None and target.method is None:
        raise InputError(spec.source, "nothing to plan: give --ctx N, or --type T with --factor F or --ctx N")
    if not spec.has_rope:
        raise InputError(spec.source, f"the model has {spec.positions} positions, not RoPE: no RoPE setting can "
                                      f"extend it")
    original = target.original or spec.original_context or spec.context
    if not original:
        raise InputError(spec.source, "the file gives no trained length; pass --original N")
    if target.method is not None:
        return _explicit(spec, target, original)
    assert target.ctx is not None
    served = spec.served_context() or 0
    if target.ctx <= served and spec.method != "default":
        return _keep(spec, target, f"keeps {spec.method} x{spec.factor or 0:g}: it already serves {served} "
                                   f">= {target.ctx} tokens")
    if target.ctx <= served:
        return Plan(spec, spec, [f"nothing to change: the model serves {served} >= {target.ctx} tokens unscaled"])
    if spec.method in ("linear", "dynamic", "yarn"):
        factor = rope_math.smallest_factor(target.ctx, original)
        return _scaled(spec, target, spec.method, factor, original,  # type: ignore[arg-type]
                       f"keeps the model's {spec.method} scaling with the smallest factor that covers "
                       f"{target.ctx}: {factor:g} x {original}")
    if spec.method == "llama3":
        grow = rope_math.smallest_factor(target.ctx, spec.context or original)
        factor = (spec.factor or 1.0) * grow
        after = replace(spec, factor=factor, context=int((spec.context or original) * grow))
        return Plan(spec, after, [f"keeps llama3: factor {spec.factor or 0:g} -> {factor:g} and declared length "
                                  f"{spec.context} -> {after.context} (the bands stay at original {original})"])
    if spec.method == "longrope":
        raise InputError(spec.source, f"longrope factor lists are trained for {spec.context} tokens and cannot be "
                                      f"stretched to {target.ctx}; use --type yarn to replace them")
    if spec.method != "default":
        raise InputError(spec.source, f"unknown method {spec.method!r}; pass --type")
    family = _FAMILY_METHOD.get(spec.model_type or "")
    method: PlanType = family or "yarn"
    factor = rope_math.smallest_factor(target.ctx, original)
    if spec.model_type == "nomic_bert" and spec.context and target.ctx <= spec.context:
        factor = 2.0  # the model card's recipe for its declared 8192
    why = f"the {spec.model_type} model card prescribes {method}" if family else \
        "no scaling ships: YaRN with the smallest factor that covers the target"
    return _scaled(spec, target, method, factor, original, f"{why}: factor {factor:g} over {original}")


def _explicit(spec: RopeSpec, target: Target, original: int) -> Plan:
    method = target.method
    assert method is not None
    if target.factor is not None:
        if target.factor < 1:
            raise InputError(spec.source, f"--factor {target.factor:g} is below 1")
        factor = target.factor
    elif target.ctx is not None:
        factor = target.ctx / original if method == "linear" else rope_math.smallest_factor(target.ctx, original)
    else:
        raise InputError(spec.source, f"--type {method} needs --factor F or --ctx N")
    if method == "ntk":
        if not spec.theta or not spec.rotary_dim or spec.rotary_dim <= 2:
            raise InputError(spec.source, "a static NTK base needs rope_theta and the rotary dimension")
        theta = rope_math.ntk_scaled_base(spec.theta, factor, spec.rotary_dim)
        after = replace(spec, method="default", theta=theta, factor=None, original_context=int(original * factor),
                        context=int(original * factor), attention_factor=None)
        return Plan(spec, after, [
            f"static NTK-aware base: theta {spec.theta:g} x {factor:g}^({spec.rotary_dim}/{spec.rotary_dim - 2}) = "
            f"{theta:.6g}, no scaling block (for runtimes without dynamic NTK)",
            f"declared length {spec.context} -> {after.context}"])
    return _scaled(spec, target, method, factor, original, f"--type {method} x{factor:g} over {original}")


def _scaled(spec: RopeSpec, target: Target, method: PlanType, factor: float, original: int, why: str) -> Plan:
    # dynamic NTK is keyed to max_position_embeddings (transformers, InternLM2): never extend it.
    # linear: most vendors keep the original there, and vLLM multiplies by the factor again.
    # GGUF's context_length is llama-server's slot cap, so a GGUF extends it for linear scaling too.
    extends_by_default = method == "yarn" or (method == "linear" and spec.format == "gguf")
    extend = target.max_positions == "extend" or (target.max_positions == "auto" and extends_by_default)
    if method == "dynamic" and target.max_positions == "extend":
        raise InputError(spec.source, "dynamic NTK is keyed to max_position_embeddings; it must stay the trained "
                                      "length (--max-position-embeddings keep)")
    same = spec.method == method
    after = replace(
        spec, method=method, factor=factor, original_context=original,
        context=int(original * factor) if extend else spec.context,
        attention_factor=spec.attention_factor if same else None,
        beta_fast=spec.beta_fast if same else None, beta_slow=spec.beta_slow if same else None,
        mscale=spec.mscale if same else None, mscale_all_dim=spec.mscale_all_dim if same else None,
        truncate=spec.truncate if same else None,
        low_freq_factor=spec.low_freq_factor if same else None, high_freq_factor=spec.high_freq_factor if same else None,
        short_factor=spec.short_factor if same else None, long_factor=spec.long_factor if same else None,
    )
    reasons = [why]
    if after.context != spec.context:
        reasons.append(f"declared length {spec.context} -> {after.context} "
                       f"({'factor x original' if extend else 'the trained length'})")
    return Plan(spec, after, reasons)


def _keep(spec: RopeSpec, target: Target, why: str) -> Plan:
    if spec.method == "yarn" and spec.factor and spec.original_context and target.max_positions != "keep":
        full = int(spec.original_context * spec.factor)
        if spec.context != full:
            after = replace(spec, context=full)
            return Plan(spec, after, [why, f"declared length {spec.context} -> {full} (factor x original, "
                                           f"the layout every runtime reads alike)"])
    return Plan(spec, spec, [why])
