"""RD5xx: what a conversion changed or lost, comparing a file with its reference.

These rules run when a model folder holds both a config.json and a GGUF (the GGUF is
checked against the config), or with ``ropedoctor compare A B`` (B against A).
"""

from __future__ import annotations

from collections.abc import Iterator

from ropedoctor import hf_keys as K
from ropedoctor.fmt import number
from ropedoctor.rules.registry import Hit, Target, rule
from ropedoctor.spec import RopeSpec

# How each transformers method survives in a GGUF (converter, llama.cpp runtime).
_GGUF_FORM = {"linear": "rope.scaling.type linear", "yarn": "rope.scaling.type yarn",
              "llama3": "the rope_freqs tensor", "longrope": "the rope_factors_long/short tensors"}


def _pair(spec: RopeSpec, target: Target) -> tuple[RopeSpec, RopeSpec] | None:
    ref = target.reference
    if ref is None or not spec.has_rope or not ref.has_rope:
        return None
    return ref, spec


def _scaled(spec: RopeSpec) -> bool:
    return spec.method not in ("default", "none")


@rule("RD501", "conversion-dropped-scaling", "error")
def conversion_dropped_scaling(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a scaling method in the reference (config.json) that the converted file does not carry.

    ## Why it matters
    The converted model runs unscaled: beyond the trained length it degrades, and for
    llama3 or longrope models even short inputs get other frequencies. Converters before
    December 2025 read only the legacy `type` key (so `rope_type`-only files lost linear and
    YaRN), every converter drops dynamic NTK (InternLM2, NomicBert), and llama3/longrope only
    survive as tensors.

    ## Example
    ```console
    $ ropedoctor compare internlm2_5-7b-chat/config.json internlm2_5-7b-chat.Q4_K_M.gguf
    ```

    ## Fix
    Re-convert with a current converter, add the keys (`ropedoctor fix model.gguf`), or pass
    the flags at load (`ropedoctor flags`). For dynamic NTK use YaRN or a static base instead.
    """
    pair = _pair(spec, target)
    if pair is None:
        return
    ref, converted = pair
    if _scaled(ref) and not _scaled(converted):
        if ref.method == "dynamic":
            why = "GGUF and llama.cpp have no dynamic NTK"
        else:
            raw = ref.hf.raw_block if ref.hf else None
            legacy = " (converters before Dec 2025 read only the legacy `type` key, absent here)" if \
                raw is not None and K.LEGACY_TYPE not in raw and ref.method in ("linear", "yarn") else ""
            why = f"expected {_GGUF_FORM.get(ref.method, ref.method)}{legacy}"
        yield Hit(f"{ref.source} scales with {ref.method} x{ref.factor or 0:g} but {converted.source} carries no "
                  f"scaling: {why}", converted.where("method", converted.source))


@rule("RD502", "conversion-method-differs", "error")
def conversion_method_differs(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports two scaled files whose methods differ (YaRN in config.json, linear in the GGUF).

    ## Why it matters
    The frequencies and the attention factor differ at every position; quality at long
    inputs is that of another method than the one the model was tuned for.

    ## Example
    ```console
    config.json: rope_type yarn, factor 4    model.gguf: rope.scaling.type linear, factor 4
    ```

    ## Fix
    Write the reference's method into the converted file (`ropedoctor fix`).
    """
    pair = _pair(spec, target)
    if pair and _scaled(pair[0]) and _scaled(pair[1]) and pair[0].method != pair[1].method:
        yield Hit(f"method {pair[1].method} differs from the reference's {pair[0].method}",
                  spec.where("method", spec.source))


def _differs(a: float | None, b: float | None, rel: float = 1e-6) -> bool:
    return a is not None and b is not None and abs(a - b) > rel * max(abs(a), abs(b))


@rule("RD503", "conversion-value-differs", "error")
def conversion_value_differs(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Compares the base (theta vs `rope.freq_base`), the scaling factor and the rotary dimension
    of a converted file with its reference (relative tolerance 1e-6: GGUF stores float32).

    ## Why it matters
    A different base or rotary dimension changes every rotation angle; a different factor
    changes where the model stops being faithful. Converters have lost bases stored under
    other names (GPT-NeoX's `rotary_emb_base`) and factors under the `type`/`rope_type` split.

    ## Example
    ```console
    config.json: rope_theta 1000000    model.gguf: no qwen2.rope.freq_base (llama.cpp uses 10000)
    ```

    ## Fix
    Write the reference's values (`ropedoctor fix`) or pass `--rope-freq-base` / `--rope-scale`.
    """
    pair = _pair(spec, target)
    if pair is None:
        return
    ref, converted = pair
    checks = [("theta", "base", ref.theta, converted.theta), ("rotary_dim", "rotary dim", ref.rotary_dim,
              converted.rotary_dim)]
    if _scaled(ref) and _scaled(converted):
        checks.append(("factor", "factor", ref.factor, converted.factor))
    for field, label, a, b in checks:
        if _differs(float(a) if a is not None else None, float(b) if b is not None else None):
            yield Hit(f"{label} {number(b)} differs from the reference's {number(a)}", converted.where(field, converted.source))


@rule("RD504", "conversion-length-differs", "warning")
def conversion_length_differs(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Compares the declared length (`context_length` vs `max_position_embeddings`) and, for
    YaRN, the original length of a converted file with its reference.

    ## Why it matters
    `context_length` is llama-server's per-slot cap, and the original length places YaRN's
    ramp. Converters copy `max_position_embeddings` as is, so a difference means someone
    edited one side, or the family declares its length under another key (NomicBert's
    converter writes 2048, the trained length, while config.json declares `n_positions` 8192).

    ## Example
    ```console
    config.json: max_position_embeddings 131072    model.gguf: llama.context_length 8192
    ```

    ## Fix
    Make sure the difference is intended; `ropedoctor flags --ctx N` prints the override.
    """
    pair = _pair(spec, target)
    if pair is None:
        return
    ref, converted = pair
    if ref.context and converted.context and ref.context != converted.context:
        yield Hit(f"declared length {converted.context} differs from the reference's {ref.context}",
                  converted.where("context", converted.source))
    if ref.method == converted.method == "yarn" and ref.original_context != converted.original_context:
        yield Hit(f"YaRN original length {converted.original_context} differs from the reference's "
                  f"{ref.original_context}", converted.where("original_context", converted.source))
