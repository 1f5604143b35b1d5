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

from ropedoctor import hf_keys as K
from ropedoctor import rope_math
from ropedoctor.errors import InputError
from ropedoctor.families import family_of
from ropedoctor.fmt import number
from ropedoctor.model import methods
from ropedoctor.model.methods import FIX_TYPES, FixType
from ropedoctor.spec import RopeSpec, json_int, json_number

PlanType = FixType
PLAN_TYPES: tuple[PlanType, ...] = FIX_TYPES
MaxPositions = Literal["keep", "extend", "auto"]


def refusal(spec: RopeSpec, fix_type: str) -> str | None:
    """Why `fix --type fix_type` cannot be written into this file, or None when it can.

    The one answer to "which methods can this file take": plan() refuses with it, so RD301's suggestions,
    `plan`'s rows, `flags` and `fix` (which all go through plan()) cannot disagree.
    """
    method = methods.get(fix_type)
    if method is None or method.fix_type is None:
        return f"unknown --type {fix_type!r} (one of {', '.join(FIX_TYPES)})"
    if not spec.has_rope:
        return f"the model has {spec.positions} positions, not RoPE: no RoPE setting can extend it"
    own = methods.get(spec.method)
    if own is not None and not own.takes_fix:
        return (f"{own.label} RoPE has no scaling transformers validates, and --type {fix_type} would replace the "
                f"method the model was trained with")
    written = "default" if fix_type == "ntk" else fix_type  # a static NTK base writes no scaling block
    why_not = method_refusal(spec, written)
    if why_not is not None:
        return why_not + ("; use --type ntk for a static base" if fix_type != "ntk" and
                          method_refusal(spec, "default") is None else "")
    if fix_type == "ntk" and (not spec.theta or not spec.rotary_dim or spec.rotary_dim <= 2):
        return "a static NTK base needs rope_theta and the rotary dimension"
    return None


def method_refusal(spec: RopeSpec, written: str) -> str | None:
    """Why a file of this format and family cannot carry ``written`` (a method of the table), or None."""
    method = methods.get(written)
    if method is None:
        return f"unknown method {written!r}"
    if spec.format == "gguf":
        if method.gguf is None:
            return f"GGUF cannot carry {method.label} (llama.cpp has no such scaling)"
        return None
    family = family_of(spec.model_type)
    if family.writes is not None and written not in family.writes:
        if not family.writes:
            return (f"{spec.model_type} keeps its RoPE in remote-code keys ropedoctor does not write; use "
                    f"`ropedoctor flags` for the runtime instead")
        takes = " or ".join(m for m in family.writes if m != "default") or "no"
        switch = f" (its own switch is {family.factor_keys[0]})" if family.factor_keys else ""
        return f"{spec.model_type}'s config code accepts only {takes} scaling{switch}, not {written}"
    return None


def writable_types(spec: RopeSpec) -> tuple[PlanType, ...]:
    """The `fix --type` values this file can take."""
    return tuple(t for t in PLAN_TYPES if refusal(spec, t) is None)


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


def static_ntk_record(spec: RopeSpec) -> tuple[float, int] | None:
    """(trained base, trained length) that an earlier `fix --type ntk` recorded in this file, if any."""
    record = spec.hf.text.get(K.STATIC_NTK_RECORD) if spec.hf else None
    if not isinstance(record, dict) or spec.method != "default":
        return None
    theta, trained = json_number(record.get(K.ROPE_THETA)), json_int(record.get(K.RECORD_TRAINED_CONTEXT))
    if theta is None or theta <= 0 or trained is None or trained <= 0:
        return None
    return theta, trained


def plan(spec: RopeSpec, target: Target) -> Plan:
    """The corrected spec and why; InputError when the target cannot be met.

    A file whose base an earlier `fix --type ntk` grew is planned from its recorded trained base and length
    (so NTK twice does not compound), unless it already serves what is asked.
    """
    record = static_ntk_record(spec)
    served = spec.served_context() or 0
    if record is None or (target.method is None and target.ctx is not None and target.ctx <= served):
        return _plan(spec, target)
    theta, trained = record
    inner = _plan(replace(spec, theta=theta, original_context=trained), target)
    return Plan(spec, inner.after, [*inner.reasons, f"planned from the trained base {number(theta)} and length "
                                                    f"{trained} an earlier `fix --type ntk` recorded"])


def _plan(spec: RopeSpec, target: Target) -> Plan:
    if target.ctx is None and target.method is None:
        raise InputError(spec.source, "nothing to plan: give --ctx N, or --type T with --factor F or --ctx N")
    if not spec.has_rope:
        raise InputError(spec.source, f"the model has {spec.positions} positions, not RoPE: no RoPE setting can "
                                      f"extend it")
    spec.check_computable()  # a base of 0, a factor of 0...: one line for this file, not a math error
    original = target.original or spec.original_context or spec.context
    if not original:
        raise InputError(spec.source, "the file gives no trained length; pass --original N")
    if target.method is not None:
        why_not = refusal(spec, target.method)
        if why_not is not None:
            raise InputError(spec.source, why_not)
        return _explicit(spec, target, original)
    assert target.ctx is not None
    served = spec.served_context() or 0
    if target.ctx <= served and spec.method != "default":
        return _keep(spec, target, f"keeps {spec.method} x{spec.factor or 0:g}: it already serves {served} "
                                   f">= {target.ctx} tokens")
    if target.ctx <= served:
        return Plan(spec, spec, [f"nothing to change: the model serves {served} >= {target.ctx} tokens unscaled"])
    if spec.method in ("linear", "dynamic", "yarn") and refusal(spec, spec.method) is None:
        factor = rope_math.smallest_factor(target.ctx, original)
        return _scaled(spec, target, spec.method, factor, original,
                       f"keeps the model's {spec.method} scaling with the smallest factor that covers "
                       f"{target.ctx}: {factor:g} x {original}")
    if spec.method == "llama3":
        grow = rope_math.smallest_factor(target.ctx, spec.context or original)
        factor = (spec.factor or 1.0) * grow
        after = replace(spec, factor=factor, context=int((spec.context or original) * grow))
        return Plan(spec, after, [f"keeps llama3: factor {spec.factor or 0:g} -> {factor:g} and declared length "
                                  f"{spec.context} -> {after.context} (the bands stay at original {original})"])
    writable = writable_types(spec)
    alternatives = " or ".join(f"--type {t}" for t in writable) or "nothing ropedoctor can write"
    if spec.method == "longrope":
        raise InputError(spec.source, f"longrope factor lists are trained for {spec.context} tokens and cannot be "
                                      f"stretched to {target.ctx}; replace them with {alternatives}")
    if spec.method not in ("default", "linear", "dynamic", "yarn"):
        raise InputError(spec.source, f"fix does not extend {methods.label(spec.method)} scaling; "
                                      f"pass {alternatives}")
    family = family_of(spec.model_type)
    prescribed = family.prescribed if family.prescribed in writable else None
    method = next((t for t in (prescribed, "yarn", *writable) if t in writable and t != "ntk"), None)
    if method is None:
        raise InputError(spec.source, f"no scaling block can be written into this file; pass {alternatives}")
    factor = rope_math.smallest_factor(target.ctx, original)
    if prescribed and family.prescribed_factor and spec.context and target.ctx <= spec.context:
        factor = family.prescribed_factor  # the card's recipe for the declared length (NomicBert: 2 for 8192)
    why = f"the {spec.model_type} model card prescribes {methods.label(method)}" if prescribed else \
        f"{methods.label(method)} with the smallest factor that covers the target" + \
        ("" if method == "yarn" else " (this file's config code cannot take YaRN)")
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
        # rounded as fmt.number shows it (a whole number from 100000, else six significant digits): a written base
        # of 20444971.216243107 claims a precision nobody trained for, and text output and file then agree
        exact = rope_math.ntk_scaled_base(spec.theta, factor, spec.rotary_dim)
        theta = float(round(exact)) if exact >= 1e5 else float(f"{exact:.6g}")
        after = replace(spec, method="default", theta=theta, factor=None, original_context=int(original * factor),
                        context=int(original * factor), attention_factor=None)
        return Plan(spec, after, [
            f"static NTK-aware base: theta {number(spec.theta)} x {factor:g}^({spec.rotary_dim}/{spec.rotary_dim - 2})"
            f" = {number(theta)}, no scaling block (for runtimes without dynamic NTK)",
            f"declared length {spec.context} -> {after.context}"])
    return _scaled(spec, target, method, factor, original, f"--type {method} x{factor:g} over {original}")


def _scaled(spec: RopeSpec, target: Target, method: str, factor: float, original: int, why: str) -> Plan:
    # dynamic NTK is keyed to max_position_embeddings (transformers, InternLM2): never extend it.
    # linear: most vendors keep the original there, and vLLM multiplies by the factor again.
    # GGUF's context_length is llama-server's slot cap, so a GGUF extends it for linear scaling too.
    extends_by_default = method == "yarn" or (method == "linear" and spec.format == "gguf")
    extend = target.max_positions == "extend" or (target.max_positions == "auto" and extends_by_default)
    if method == "dynamic" and target.max_positions == "extend":
        raise InputError(spec.source, "dynamic NTK is keyed to max_position_embeddings; it must stay the trained "
                                      "length (--max-position-embeddings keep)")
    same = spec.method == method
    context = int(original * factor) if extend else spec.context
    if method == "dynamic" and target.max_positions != "keep" and spec.context and spec.context > original and \
            not family_of(spec.model_type).keyed_to_trained_length:
        context = original  # transformers starts growing the base at max_position_embeddings: it must be the trained one
    after = replace(
        spec, method=method, factor=factor, original_context=original,
        context=context,
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
