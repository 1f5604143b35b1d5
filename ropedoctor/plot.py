"""`ropedoctor plot`: per rotary dimension pair, the wavelength and how much each method stretches it.

``plot_data`` computes the numbers (rope_math only; no matplotlib, no numpy) and is what
``--format json`` prints; ``render_png`` draws them with matplotlib's Agg backend, imported only
when a picture is asked for. Two panels share the x axis (rotary pair index i, highest frequency
first): the wavelength 2 pi / theta_i in tokens, unscaled and after each method, with the trained
and target lengths as horizontal lines; and the scale factor per pair (1 = kept, s = interpolated
by s), with YaRN's ramp (beta_fast .. beta_slow) and llama3's frequency bands marked.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ropedoctor import rope_math
from ropedoctor.errors import InputError
from ropedoctor.model import methods
from ropedoctor.spec import RopeSpec

COMPARED_METHODS = methods.FIX_TYPES


def _curve(name: str, base: RopeSpec, spec: RopeSpec, seq_len: int | None, role: str) -> dict[str, Any]:
    inv_freq, attention = rope_math.spec_inv_freq(spec, seq_len)
    return {
        "name": name, "role": role, "method": spec.method, "factor": spec.factor, "theta": spec.theta,
        "seq_len": seq_len, "attention_factor": attention,
        "wavelength": rope_math.wavelengths(inv_freq),
        "scale": rope_math.dimension_scales(base.theta or 0.0, base.rotary_dim or 0, inv_freq),
    }


def plot_data(spec: RopeSpec, ctx: int | None = None, method: str | None = None,
              factor: float | None = None) -> dict[str, Any]:
    """The numbers behind the picture; InputError when the model has no RoPE or the target cannot be planned."""
    from ropedoctor.plan import Target, plan

    if not spec.has_rope:
        raise InputError(spec.source, f"the model has {spec.positions} positions, not RoPE: nothing to plot")
    spec.check_computable()
    if not spec.theta or not spec.rotary_dim:
        raise InputError(spec.source, "the file gives no RoPE base or rotary dimension")
    known = methods.get(spec.method)
    if known is None or not known.frequencies:
        raise InputError(spec.source, f"no frequencies to plot for the method {methods.label(spec.method)}")
    original = spec.original_context or spec.context
    unscaled = replace(spec, method="default", factor=None)
    curves = [_curve("none", spec, unscaled, None, "baseline")]
    if spec.method != "default":
        # the model's own method at the target length (dynamic NTK and longrope depend on it)
        curves.append(_curve(f"model ({spec.method})", spec, spec, ctx or original, "model"))
    chosen: RopeSpec | None = None
    notes: list[str] = []
    if method is not None or factor is not None:
        if factor is not None and method is None and spec.method in ("linear", "dynamic", "yarn", "llama3"):
            chosen = replace(spec, factor=factor)  # --factor alone rescales the model's own method
        else:
            chosen = plan(spec, Target(ctx=ctx, method=method or "yarn", factor=factor)).after  # type: ignore[arg-type]
        curves.append(_curve(f"--type {method or chosen.method} x{chosen.factor or factor or 1:g}", spec, chosen,
                             ctx, "chosen"))
    elif ctx is not None:
        try:
            chosen = plan(spec, Target(ctx=ctx)).after
        except InputError as error:  # e.g. trained longrope lists: the picture still shows the alternatives
            notes.append(f"no plan for {ctx}: {error.why}")
        if chosen is not None and chosen != spec:
            label = "ntk" if chosen.method == "default" and chosen.theta != spec.theta else chosen.method
            curves.append(_curve(f"plan for {ctx} ({label} x{chosen.factor or 1:g})", spec, chosen, ctx, "plan"))
    if ctx is not None:
        compare_factor = rope_math.smallest_factor(ctx, original or ctx)
        if chosen is not None and chosen.factor:
            compare_factor = chosen.factor
        for name in COMPARED_METHODS:
            if compare_factor <= 1:
                break
            try:
                other = plan(spec, Target(ctx=ctx, method=name, factor=compare_factor)).after
            except InputError:
                continue
            curves.append(_curve(f"{name} x{compare_factor:g}", spec, other, ctx, "compare"))
    return {
        "source": spec.source, "model_type": spec.model_type, "rotary_dim": spec.rotary_dim, "theta": spec.theta,
        "method": spec.method, "original_context": original, "target_context": ctx,
        "pairs": list(range(len(curves[0]["wavelength"]))),
        "curves": curves, "yarn_ramp": _yarn_ramp(curves, spec), "llama3_bands": _llama3_bands(curves, spec),
        "notes": notes,
    }


def _yarn_ramp(curves: list[dict[str, Any]], spec: RopeSpec) -> dict[str, Any] | None:
    """YaRN's ramp of the first YaRN curve drawn: pairs below ``low`` are kept, above ``high`` divided by s."""
    if not any(c["method"] == "yarn" and c["role"] != "compare" for c in curves) and not any(
            c["method"] == "yarn" for c in curves):
        return None
    own = spec.method == "yarn"
    beta_fast = (spec.beta_fast if own else None) or 32.0
    beta_slow = (spec.beta_slow if own else None) or 1.0
    truncate = spec.truncate is not False if own else True
    low, high = rope_math.yarn_correction_range(spec.theta or 0.0, spec.rotary_dim or 0,
                                                spec.original_context or spec.context or 0, beta_fast, beta_slow,
                                                truncate)
    return {"low": low, "high": high, "beta_fast": beta_fast, "beta_slow": beta_slow}


def _llama3_bands(curves: list[dict[str, Any]], spec: RopeSpec) -> dict[str, Any] | None:
    if not any(c["method"] == "llama3" for c in curves):
        return None
    original = spec.original_context or spec.context or 0
    low_ff, high_ff = spec.low_freq_factor or 1.0, spec.high_freq_factor or 4.0
    return {"high_freq_wavelength": original / high_ff, "low_freq_wavelength": original / low_ff,
            "low_freq_factor": low_ff, "high_freq_factor": high_ff}


_STYLES = {"baseline": ("black", 2.0, "-"), "model": ("tab:blue", 2.2, "-"), "plan": ("tab:red", 2.2, "-"),
           "chosen": ("tab:red", 2.2, "-")}
_COMPARE_COLOURS = {"linear": "tab:orange", "dynamic": "tab:purple", "default": "tab:green", "yarn": "tab:brown",
                    "llama3": "tab:cyan", "longrope": "tab:pink"}


def render_png(data: dict[str, Any]) -> bytes:
    """The picture as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    pairs = data["pairs"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 9), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for curve in data["curves"]:
        colour, width, dash = _STYLES.get(curve["role"], (_COMPARE_COLOURS.get(curve["method"], "grey"), 1.2, "--"))
        top.plot(pairs, curve["wavelength"], color=colour, linewidth=width, linestyle=dash, label=curve["name"])
        bottom.plot(pairs, curve["scale"], color=colour, linewidth=width, linestyle=dash, label=curve["name"])
    original, target = data["original_context"], data["target_context"]
    if original:
        top.axhline(original, color="dimgrey", linestyle=":", linewidth=1.5)
        top.annotate(f"original length {original}", (0, original), textcoords="offset points", xytext=(4, 4),
                     fontsize=9, color="dimgrey")
    if target:
        top.axhline(target, color="tab:red", linestyle=":", linewidth=1.5)
        top.annotate(f"target length {target}", (0, target), textcoords="offset points", xytext=(4, -12),
                     fontsize=9, color="tab:red")
    box = {"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "none"}
    ramp = data["yarn_ramp"]
    if ramp is not None:
        top.axvspan(ramp["low"], ramp["high"], color="tab:brown", alpha=0.12,
                    label=f"YaRN ramp (pairs {ramp['low']:g}-{ramp['high']:g})")
        bottom.axvspan(ramp["low"], ramp["high"], color="tab:brown", alpha=0.12)
        bottom.text(0.01, 0.97, f"YaRN ramp, pairs {ramp['low']:g}-{ramp['high']:g}: left of it a pair turns more than "
                    f"beta_fast={ramp['beta_fast']:g} times in the original length and is kept;\nright of it less than "
                    f"beta_slow={ramp['beta_slow']:g} time and is divided by s; linear in between",
                    transform=bottom.transAxes, fontsize=8, color="saddlebrown", verticalalignment="top", bbox=box)
    bands = data["llama3_bands"]
    if bands is not None:
        top.axhspan(bands["high_freq_wavelength"], bands["low_freq_wavelength"], color="tab:cyan", alpha=0.15,
                    label=f"llama3 band {bands['high_freq_wavelength']:g}-{bands['low_freq_wavelength']:g} tokens")
        top.text(0.99, 0.03, f"llama3: wavelength < original/high_freq_factor = {bands['high_freq_wavelength']:g} kept; "
                 f"> original/low_freq_factor = {bands['low_freq_wavelength']:g} divided by s; smooth between",
                 transform=top.transAxes, fontsize=8, color="teal", horizontalalignment="right", bbox=box)
    top.set_yscale("log")
    top.set_ylabel("wavelength 2\u03c0/\u03b8\u1d62 (tokens, log)")
    top.set_title(f"{data['source']}: rotary dim {data['rotary_dim']}, base {data['theta']:g}, "
                  f"method {data['method']}")
    top.grid(True, which="both", alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    bottom.set_yscale("log")
    highest = max(max(c["scale"]) for c in data["curves"])
    bottom.set_ylim(0.8, highest * 6)  # headroom for the ramp's caption above the curves
    bottom.set_ylabel("scale: wavelength / unscaled (log)")
    bottom.set_xlabel("rotary dimension pair i (high frequency \u2192 low frequency)")
    bottom.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def run_plot(path: str, ctx: int | None, method: str | None, factor: float | None, out: str | None,
             output: str) -> int:
    """Write the PNG (``--out``) and/or print the numbers (``--format json``, which needs no matplotlib)."""
    from ropedoctor.commands import _single
    from ropedoctor.writers.atomic import write_atomic

    try:
        if out is None and output != "json":
            raise InputError("plot", "--out FILE.png is needed (or --format json for the numbers alone)")
        if out is not None and not out.lower().endswith(".png"):
            raise InputError(out, "--out must name a .png file")
        spec = _single(path, None, "hf-config").spec
        data = plot_data(spec, ctx, method, factor)
        if out is not None:
            write_atomic(Path(out), render_png(data))
    except InputError as error:
        print(error.line, file=sys.stderr)
        return 2
    if output == "json":
        print(json.dumps({"out": out, **data}, indent=2))
    else:
        from ropedoctor.terminal import emit

        emit([[(f"wrote {out}", "green")], [(f"  {len(data['curves'])} curves over {len(data['pairs'])} rotary pairs: "
                                             + ", ".join(c["name"] for c in data["curves"]), "")]])
    return 0
