"""RD5xx: what a conversion changed or lost, comparing a file with its reference.

These rules run when a model folder holds both a config.json and a GGUF (the GGUF is
checked against the config), or with ``ropedoctor compare A B`` (B against A).
"""

from __future__ import annotations

from collections.abc import Iterator

from ropedoctor import gguf_keys as G
from ropedoctor.fmt import number
from ropedoctor.model import methods
from ropedoctor.rope_math import default_inv_freq, llama3_inv_freq, ntk_scaled_base, yarn_mscale
from ropedoctor.rules.gguf import IGNORED_YARN_KEYS
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
    llama3 or longrope models even short inputs get other frequencies. llama.cpp's converter
    (measured at llama-cpp-python 0.3.36's llama.cpp under transformers 5.24, header-only, every fixture:
    tests/test_converter_truth.py) writes linear and YaRN from `rope_type`, `type` or
    `rope_parameters`, so a file without them came from another converter or was edited; it
    drops dynamic NTK (InternLM2, Qwen-7B's `use_dynamic_ntk`), and llama3/longrope only
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
    record = methods.get(ref.method)
    # a method the converter bakes into rope.freq_base (HunYuan's NTK-alpha) is checked by RD503; a method that is
    # no scaling (dual-chunk attention: plain RoPE frequencies) has nothing to carry
    if record is not None and (not record.scaled or record.gguf == "base"):
        return
    if _scaled(ref) and not _scaled(converted):
        if ref.method == "dynamic":
            why = "GGUF and llama.cpp have no dynamic NTK"
        else:
            made = " (llama.cpp's converter writes it: the file came from another converter or was edited)" \
                if ref.method in ("linear", "yarn") else ""
            why = f"expected {_GGUF_FORM.get(ref.method, ref.method)}{made}"
        factor = f" x{ref.factor:g}" if ref.factor else ""
        yield Hit(f"{ref.source} scales with {ref.method}{factor} but {converted.source} carries no "
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
    theta = ref.theta
    record = methods.get(ref.method)
    stretch = ref.alpha or ref.factor
    if record is not None and record.gguf == "base" and theta and stretch and ref.rotary_dim and \
            not _scaled(converted):
        theta = ntk_scaled_base(theta, stretch, ref.rotary_dim)  # what the converter writes (HunYuan)
    checks = [("theta", "base", theta, converted.theta), ("rotary_dim", "rotary dim", ref.rotary_dim,
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


# float32 divisors written by the converter (its frequencies are float32 too) against float64 ones
_DIVISOR_TOLERANCE = 1e-3


def _llama3_divisors(ref: RopeSpec) -> list[float] | None:
    """What llama.cpp's converter writes into rope_freqs for the reference: default / llama3 frequencies (its
    own defaults for absent keys: factor 8, low 1, high 4, original 8192)."""
    if not ref.theta or not ref.rotary_dim:
        return None
    plain = default_inv_freq(ref.theta, ref.rotary_dim)
    low, high = ref.low_freq_factor or 1.0, ref.high_freq_factor or 4.0
    if low == high:
        return None  # the converter asserts; RD1xx report the block
    banded = llama3_inv_freq(ref.theta, ref.rotary_dim, ref.factor or 8.0, ref.original_context or 8192, low, high)
    return [p / b for p, b in zip(plain, banded, strict=True)]


@rule("RD505", "conversion-rope-freqs-differ", "error")
def conversion_rope_freqs_differ(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reads the values of the GGUF's `rope_freqs` tensor (the llama3 per-frequency divisors) and
    compares them with what the reference's llama3 block gives (factor, `low_freq_factor`,
    `high_freq_factor`, original length, base), relative tolerance 1e-3.

    ## Why it matters
    A llama3 GGUF carries its scaling only in this tensor, with no `rope.scaling.*` key, so a
    file converted from another config (x32 for an x8 model) looks the same in the metadata but
    runs other frequencies at every position. Only local files are read (a few hundred bytes).

    ## Example
    ```console
    config.json: rope_type llama3, factor 8    model.gguf: rope_freqs.weight up to 32
    ```

    ## Fix
    Re-convert from the reference config.json; llama.cpp always uses the tensor when it exists.
    """
    pair = _pair(spec, target)
    layout = spec.gguf if spec.format == "gguf" else None
    if pair is None or layout is None or pair[0].method != "llama3":
        return
    stored = layout.tensor_values.get(G.ROPE_FREQS)
    expected = _llama3_divisors(pair[0])
    if not stored or expected is None or len(stored) != len(expected):
        return  # unreadable (header-only, not local) or a length RD406 reports
    worst = max(range(len(stored)), key=lambda i: abs(stored[i] - expected[i]) / max(abs(expected[i]), 1e-30))
    if abs(stored[worst] - expected[worst]) > _DIVISOR_TOLERANCE * abs(expected[worst]):
        ref = pair[0]
        yield Hit(f"rope_freqs divides frequencies by up to {number(max(stored))} (entry {worst}: "
                  f"{number(stored[worst])}, expected {number(expected[worst])}); the reference's llama3 "
                  f"x{number(ref.factor or 8.0)} (low {number(ref.low_freq_factor or 1.0)}, high "
                  f"{number(ref.high_freq_factor or 4.0)}, original {ref.original_context or 8192}) divides by up "
                  f"to {number(max(expected))}", G.ROPE_FREQS)


@rule("RD506", "conversion-added-scaling", "error")
def conversion_added_scaling(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a scaling the converted file carries that the reference does not have.

    ## Why it matters
    The converted model runs scaled frequencies at every position (linear, llama3) or from the
    start (static YaRN), so short inputs differ from the model as trained.

    ## Example
    ```console
    config.json: no rope_scaling    model.gguf: llama.rope.scaling.type linear, factor 4
    ```

    ## Fix
    Remove the scaling from the converted file (`ropedoctor fix --type ... ` or a re-conversion), or
    check the reference is the config the file was converted from.
    """
    pair = _pair(spec, target)
    if pair and not _scaled(pair[0]) and _scaled(pair[1]):
        ref, converted = pair
        factor = f" x{number(converted.factor)}" if converted.factor else ""
        yield Hit(f"{converted.source} scales with {converted.method}{factor} but {ref.source} has no scaling",
                  converted.where("method", converted.source))


@rule("RD507", "conversion-setting-not-run", "info")
def conversion_setting_not_run(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Lists YaRN settings of the reference that llama.cpp does not run as written: `truncate: false`
    (ggml always floors and ceils the correction range), `beta_fast` / `beta_slow` other than 32 / 1
    and an `attention_factor` other than 0.1 ln(s) + 1 (the converter writes them, but only the grok
    and mistral3 loaders read the betas, and only grok the attention factor).

    ## Why it matters
    The GGUF cannot carry them, so the converted model's frequencies or attention scale differ
    slightly from the reference's; this is what llama.cpp is, not a conversion error.

    ## Example
    ```console
    config.json: rope_type yarn, factor 32, truncate false (gpt-oss)
    ```

    ## Fix
    Nothing in the file; `--yarn-beta-fast`, `--yarn-beta-slow`, `--yarn-attn-factor` at load where
    a different value matters.
    """
    pair = _pair(spec, target)
    layout = spec.gguf if spec.format == "gguf" else None
    if pair is None or layout is None or pair[0].method != "yarn" or pair[1].method != "yarn":
        return
    ref = pair[0]
    readers = IGNORED_YARN_KEYS[G.ROPE_SCALING_YARN_BETA_FAST][0]
    notes = []
    if ref.truncate is False:
        notes.append("truncate false (llama.cpp always truncates the correction range)")
    if layout.arch not in readers:
        for label, value, runs in (("beta_fast", ref.beta_fast, 32.0), ("beta_slow", ref.beta_slow, 1.0)):
            if value is not None and value != runs:
                notes.append(f"{label} {number(value)} (llama.cpp runs {number(runs)})")
    derived = yarn_mscale(ref.factor or 1.0)
    if ref.attention_factor is not None and _differs(ref.attention_factor, derived, 1e-4) \
            and layout.arch not in IGNORED_YARN_KEYS[G.ROPE_SCALING_YARN_ATTN_FACTOR][0]:
        notes.append(f"attention_factor {number(ref.attention_factor)} (llama.cpp derives {number(derived)})")
    if notes:
        yield Hit(f"{ref.source}'s YaRN {'; '.join(notes)}: llama.cpp's {layout.arch} does not run it as written",
                  spec.where("method", spec.source))
