"""RD2xx: settings transformers accepts but another loader, runtime or version reads differently."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ropedoctor import hf_keys as K
from ropedoctor import rope_math
from ropedoctor.families import DEFAULT_FAMILY, family_of
from ropedoctor.fmt import number
from ropedoctor.rules.registry import Hit, Target, rule
from ropedoctor.sources.json_file import type_name
from ropedoctor.spec import RopeSpec, json_number


def _raw(spec: RopeSpec) -> dict[str, Any]:
    return spec.hf.raw_block or {} if spec.hf is not None and spec.has_rope else {}


@rule("RD201", "legacy-type-conflict", "error")
def legacy_type_conflict(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a scaling block whose legacy `type` and `rope_type` name different methods.

    ## Why it matters
    transformers (4.43+ and 5.x) reads `rope_type`; older transformers, older llama.cpp
    converters and some runtime forks read only `type`. The file then scales one way in one
    stack and another way (or not at all, when the method is unknown there) in the other,
    silently.

    ## Example
    ```json
    "rope_scaling": {"type": "linear", "rope_type": "dynamic", "factor": 2.0}
    ```

    ## Fix
    Keep one method and write it under both keys, or only under `rope_type`.
    """
    raw = _raw(spec)
    legacy, current = raw.get(K.LEGACY_TYPE), raw.get(K.ROPE_TYPE)
    if K.for_model(K.LEGACY_METHOD_ALIASES, spec.model_type, {}).get(str(legacy)) == current:
        return  # Qwen-VL's "mrope" beside "default", Phi-3's "su" beside "longrope": one method, two names
    if legacy is not None and current is not None and legacy != current and spec.hf:
        where = spec.hf.path(spec.hf.raw_block_key or K.ROPE_SCALING, K.LEGACY_TYPE)
        yield Hit(f"`type` is {legacy!r} but `rope_type` is {current!r}; transformers uses {current!r}, "
                  f"readers of the legacy key use {legacy!r}", where)


def _comparable(block: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in block.items() if k not in (K.LEGACY_TYPE, K.ROPE_TYPE)}
    out[K.ROPE_TYPE] = block.get(K.ROPE_TYPE, block.get(K.LEGACY_TYPE, "default"))
    return out


@rule("RD202", "scaling-blocks-disagree", "error")
def scaling_blocks_disagree(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Compares `rope_scaling` (the transformers 4.x block) with `rope_parameters` (the 5.x block)
    when a file carries both, together with the top-level `rope_theta`.

    ## Why it matters
    transformers 4.x reads only `rope_scaling` and the top-level `rope_theta`; transformers 5
    lets a non-null `rope_scaling` replace `rope_parameters` entirely; vLLM and SGLang releases
    differ in which they read first. When the two disagree, the model's frequencies depend on
    the library version.

    ## Example
    ```json
    "rope_theta": 10000.0,
    "rope_scaling": {"rope_type": "linear", "factor": 2.0},
    "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 500000.0}
    ```

    ## Fix
    Run `ropedoctor fix --style both` to write agreeing blocks, or keep only one layout.
    """
    if spec.hf is None or not spec.has_rope or family_of(spec.model_type).layer_labels:
        return
    scaling, parameters = spec.hf.text.get(K.ROPE_SCALING), spec.hf.text.get(K.ROPE_PARAMETERS)
    if not isinstance(scaling, dict) or not isinstance(parameters, dict) or not scaling or not parameters:
        return
    a, b = _comparable(scaling), _comparable(parameters)
    top_theta = spec.hf.text.get(K.ROPE_THETA)
    if top_theta is not None:
        a.setdefault(K.ROPE_THETA, top_theta)
    for key in sorted(set(a) | set(b)):
        if key in a and key in b and a[key] != b[key]:
            yield Hit(f"`{key}` is {a[key]!r} for transformers 4.x (rope_scaling) but {b[key]!r} in "
                      f"rope_parameters", spec.hf.path(K.ROPE_PARAMETERS, key))
        elif key in b and key not in a and key != K.ROPE_THETA:
            yield Hit(f"`{key}` ({b[key]!r}) is only in rope_parameters; transformers 5 ignores rope_parameters "
                      f"when rope_scaling is set", spec.hf.path(K.ROPE_PARAMETERS, key))


@rule("RD203", "v5-only-parameters", "error")
def v5_only_parameters(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a file that keeps its RoPE settings only in the transformers 5 `rope_parameters`
    block when those settings differ from what transformers 4.x would assume.

    ## Why it matters
    transformers 4.x (4.57 included, still pinned by many serving stacks) ignores
    `rope_parameters` without a word: the base falls back to the class default and the
    scaling block is dropped, so the model runs with other frequencies.

    ## Example
    ```json
    "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1000000.0,
                        "original_max_position_embeddings": 32768}
    ```

    ## Fix
    `ropedoctor fix --style both` adds the equivalent `rope_theta` and `rope_scaling`.
    """
    if spec.hf is None or not spec.has_rope:
        return
    text = spec.hf.text
    parameters = text.get(K.ROPE_PARAMETERS)
    if not isinstance(parameters, dict) or not parameters or text.get(K.ROPE_SCALING):
        return
    family = family_of(spec.model_type)
    if family is DEFAULT_FAMILY and (spec.hf.saved_by or "").startswith("5"):
        return  # a family we do not know, saved by 5.x: most likely one 4.x cannot load at all (ministral3)
    if not family.in_v4:
        return  # transformers 4.x has no such model type (Gemma-4): nothing there to ignore the block
    lost = []
    block = next(iter(spec.hf.blocks.values()))
    method, factor = block.get(K.ROPE_TYPE), block.get(K.FACTOR)
    v4_block = dict(family.default_block)  # what 4.x falls back to (gpt-oss: its own yarn x32)
    v4_scaled = K.ROTARY_SCALING_FACTOR in family.factor_keys and method == "dynamic" \
        and json_number(text.get(K.ROTARY_SCALING_FACTOR)) == json_number(factor)  # remote code's own key
    if (method != v4_block.get(K.ROPE_TYPE, "default") or factor != v4_block.get(K.FACTOR, factor)) and not v4_scaled:
        lost.append(f"the {method} scaling")
    v4_theta = json_number(spec.hf.text.get(family.theta_keys[0])) or family.v4_theta or family.default_theta
    if spec.theta is not None and spec.theta != v4_theta:
        lost.append(f"rope_theta {number(spec.theta)} (4.x uses {number(v4_theta)})")
    if lost:
        yield Hit(f"only rope_parameters carries {' and '.join(lost)}; transformers 4.x ignores it",
                  spec.hf.path(K.ROPE_PARAMETERS))
    elif family.v4_needs_scaling:
        yield Hit(f"only rope_parameters carries the RoPE settings; transformers 4.x's {spec.model_type} rotary module "
                  "reads rope_scaling, None without a v4 block, and fails when it builds the model",
                  spec.hf.path(K.ROPE_PARAMETERS))


@rule("RD204", "phi3-su-type", "error")
def phi3_su_type(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a Phi-3 scaling block typed `su`, LongRoPE's old name.

    ## Why it matters
    transformers 4.x maps `su` to `longrope`, but transformers 5.0-5.23 maps it only after
    filling in defaults, so the original length is missing and loading raises
    `KeyError: Missing required keys ... {'original_max_position_embeddings'}`.

    ## Example
    ```json
    "rope_scaling": {"type": "su", "short_factor": [...], "long_factor": [...]}
    ```

    ## Fix
    Write `"type": "longrope"` (still exactly three keys, so transformers 4.x accepts it too).
    """
    raw = _raw(spec)
    su_known = "su" in K.for_model(K.LEGACY_METHOD_ALIASES, spec.model_type, {})  # Phi-3's legacy name
    if su_known and spec.hf and "su" in (raw.get(K.LEGACY_TYPE), raw.get(K.ROPE_TYPE)):
        key = K.LEGACY_TYPE if raw.get(K.LEGACY_TYPE) == "su" else K.ROPE_TYPE
        yield Hit("Phi-3 scaling type 'su' fails to load in transformers 5 (KeyError); write 'longrope'",
                  spec.hf.path(spec.hf.raw_block_key or K.ROPE_SCALING, key))


@rule("RD205", "non-numeric-value", "error")
def non_numeric_value(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports RoPE values that are not JSON numbers: a factor or base written as a string, a
    boolean, or `null` where a number is required; longrope factor lists with non-numbers.

    ## Why it matters
    transformers only warns while validating, then fails with `TypeError` when it computes
    the frequencies (or crashes during validation when it compares the value); vLLM and
    llama.cpp's converter reject or drop the value.

    ## Example
    ```json
    "rope_scaling": {"rope_type": "linear", "factor": "2.0"}
    ```

    ## Fix
    Write the number without quotes: `"factor": 2.0`.
    """
    if spec.hf is None or not spec.has_rope:
        return
    for location, block in spec.hf.blocks.items():
        for key in K.NUMERIC_BLOCK_KEYS:
            if key in block and json_number(block[key]) is None and not (key == K.ORIGINAL_MAX_POSITIONS and block[key] is None and spec.context is None):
                yield Hit(f"`{key}` is {type_name(block[key])} ({block[key]!r}), not a number", f"{location}.{key}")
        for key in K.NUMERIC_LIST_KEYS:
            value = block.get(key)
            if key in block and (not isinstance(value, list) or any(json_number(v) is None for v in value)):
                yield Hit(f"`{key}` must be a list of numbers, got {type_name(value)}", f"{location}.{key}")


@rule("RD206", "max-positions-already-extended", "warning")
def max_positions_already_extended(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports linear or dynamic scaling whose `max_position_embeddings` already looks like the
    extended length: dividing it by the factor still leaves a plausible trained length
    (at least 2048), or another key in the file names a shorter trained length.

    ## Why it matters
    vLLM and SGLang derive the maximum length as `max_position_embeddings x factor` (vLLM takes
    the smallest of its length keys and skips Gemma-3; SGLang the first it finds), so they
    multiply a second time and accept inputs far beyond anything the model saw (Together's
    LLaMA-2-7B-32K: 32768 x 8 = 262144). transformers applies no limit at all.

    ## Example
    ```json
    "max_position_embeddings": 32768, "rope_scaling": {"type": "linear", "factor": 8.0}
    ```

    ## Fix
    Serve with an explicit maximum (`ropedoctor flags --ctx 32768`), or set
    `max_position_embeddings` to the trained length (4096) so every runtime derives 32768.
    """
    by_design = spec.where("original_context").endswith(K.MAX_TRAINED_POSITIONS)  # NomicBert's own two lengths
    extended = spec.format == "hf-config" and spec.looks_pre_extended() and spec.context and spec.factor
    if extended and not by_design and any(derived > (spec.context or 0) for _, derived in _served_lengths(spec)):
        yield Hit(f"max_position_embeddings {spec.context} already looks extended ({spec.original_context} x "
                  f"{spec.factor:g}); {_limits(spec)}", spec.where("context", K.MAX_POSITIONS))


def _served_lengths(spec: RopeSpec) -> list[tuple[str, int]]:
    """The longest length each server runtime that refuses longer ones accepts for the file as it is
    (runtimes/records.py: every length key it reads, its rule, when it multiplies by the factor)."""
    from ropedoctor.runtimes.records import RECORDS, derived_length, nested_labels

    text = spec.hf.text if spec.hf is not None else {}
    block = _raw(spec)
    out = []
    for records in RECORDS.values():
        for rec in records:
            if not rec.refuses_longer:
                continue
            lengths = {key: value for key in rec.length_keys
                       if isinstance(value := text.get(key), int) and not isinstance(value, bool)}
            if "max_position_embeddings" not in lengths and spec.context:
                lengths["max_position_embeddings"] = spec.context
            derived = derived_length(rec, lengths, spec.method, spec.factor, block, spec.model_type,
                                     nested=bool(nested_labels(spec)))
            if derived is not None:
                label = {"vllm": "vLLM", "sglang": "SGLang"}.get(rec.runtime, rec.runtime)
                out.append((f"{label} {rec.versions}", derived))
    return out


def _limits(spec: RopeSpec) -> str:
    """"vLLM 0.30-0.33 and SGLang 0.5.x accept up to 32768, vLLM 0.12-0.29 131072": the runtimes grouped by limit."""
    by_limit: dict[int, list[str]] = {}
    for name, derived in _served_lengths(spec):
        by_limit.setdefault(derived, []).append(name)
    parts = [f"{', '.join(names)} {'accept' if len(names) > 1 else 'accepts'} up to {limit}"
             for limit, names in by_limit.items()]
    return ", ".join(parts)


@rule("RD207", "yarn-length-runtime-dependent", "warning")
def yarn_length_runtime_dependent(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports YaRN scaling whose `max_position_embeddings` equals the original length.

    ## Why it matters
    This is the layout of Qwen's documented snippet, and each runtime turns it into a
    different maximum or RoPE: vLLM up to 0.29 derives original x factor, vLLM 0.30+ and SGLang
    keep `max_position_embeddings` (so `--max-model-len` / `--context-length` above it is refused),
    LMDeploy's TurboMind replaces the YaRN factor by `max_position_embeddings / original` (1 here:
    no extension, with the attention scale of the written factor), and a GGUF converted from it
    has `context_length` = original, so llama-server caps every slot at the original length.

    ## Example
    ```json
    "max_position_embeddings": 32768,
    "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    ```

    ## Fix
    Set `max_position_embeddings` to factor x original (131072), the layout every runtime
    reads the same way (`ropedoctor fix --max-position-embeddings extend`).
    """
    scaled = spec.format == "hf-config" and spec.method == "yarn" and spec.factor is not None and spec.factor > 1
    if scaled and spec.factor and spec.context is not None and spec.original_context == spec.context:
        yield Hit(f"max_position_embeddings {spec.context} equals the original length with factor "
                  f"{spec.factor:g}: {_limits(spec)}; LMDeploy's TurboMind runs YaRN x1 (its factor is "
                  f"max_position_embeddings / original)", spec.where("context", K.MAX_POSITIONS))


@rule("RD208", "dynamic-ntk-portability", "info")
def dynamic_ntk_portability(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Notes that dynamic NTK scaling is not portable.

    ## Why it matters
    transformers recomputes the base for each input longer than `max_position_embeddings`.
    vLLM's dynamic NTK is static and, as the file stands, unscaled: its base grows with
    `max_position / max_trained_positions`, and `max_trained_positions` defaults to
    `max_position_embeddings`, whose rows are also all its cache holds. SGLang's is static too:
    one base, the one transformers reaches at factor x `max_position_embeddings`, for every
    input. GGUF and llama.cpp have no dynamic NTK at all and a converted model runs unscaled.

    ## Example
    ```json
    "rope_scaling": {"type": "dynamic", "factor": 2.0}
    ```

    ## Fix
    For llama.cpp, use the static equivalent `ropedoctor fix --type ntk` (a larger
    `rope_theta`) or YaRN; `ropedoctor flags --ctx N` prints, per runtime, the overrides that give
    transformers' base at N (vLLM: `max_trained_positions` and `max_position_embeddings` = N).
    """
    if spec.method == "dynamic" and spec.format == "hf-config":
        yield Hit("dynamic NTK: static in vLLM (and unscaled without max_trained_positions) and SGLang (the base at "
                  "factor x max_position_embeddings for every input), absent from GGUF/llama.cpp (runs unscaled "
                  "there)", spec.where("method", K.ROPE_SCALING))


# Not in the default selection: it fires on 14 of the 54 published models in fixtures/ (Llama-2, Mistral-7B, Qwen3,
# GLM-4, ...), which serve their declared lengths well in practice; `--select RD209` (or `extend-select`) turns it on.
@rule("RD209", "base-below-bound", "info", default=False)
def base_below_bound(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Compares an unscaled model's base (`rope_theta`) with the lower bound that Men et al. 2024
    derive for the length it is used at ("Base of RoPE Bounds Context Length",
    arXiv:2405.14591: base >= 0.0424 L^1.628).

    ## Why it matters
    Below the bound a model keeps a low perplexity at length L but loses the ability to
    retrieve from far back: a superficial long context. It is advice, not a load failure,
    and it is not selected by default: the bound is a sufficient condition from one paper,
    and many published models below it (Llama-2, Mistral-7B v0.1, Qwen3-8B) serve their
    declared length well. Turn it on with `--extend-select RD209` or in `[tool.ropedoctor]`.

    ## Example
    ```json
    "rope_theta": 10000.0, "max_position_embeddings": 32768
    ```

    ## Fix
    Expect weak long-range retrieval; prefer a model trained with a larger base, or fine-tune
    with a larger base before relying on the length.
    """
    if spec.method != "default" or spec.theta is None:
        return
    length = target.ctx or spec.served_context()
    if length and length >= 1024:
        bound = rope_math.base_lower_bound(length)
        if spec.theta < bound:
            yield Hit(f"rope_theta {number(spec.theta)} is below the bound {number(bound)} for {length} tokens "
                      f"(Men et al. 2024)", spec.where("theta", K.ROPE_THETA))


@rule("RD210", "mrope-section-sum", "warning")
def mrope_section_sum(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that Qwen-VL's `mrope_section` sums to half the rotary dimension.

    ## Why it matters
    The three sections (time, height, width) split the rotary frequencies; transformers does
    not check the sum, so a wrong one silently misassigns frequencies or fails inside the
    attention with a shape error.

    ## Example
    ```json
    "head_dim": 128, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 16]}
    ```

    ## Fix
    Qwen2-VL and Qwen2.5-VL use `[16, 24, 24]` for head_dim 128.
    """
    raw = _raw(spec)
    section = raw.get(K.MROPE_SECTION)
    if isinstance(section, list) and spec.rotary_dim and spec.hf:
        numbers = [json_number(v) for v in section]
        if None not in numbers and sum(n or 0 for n in numbers) != spec.rotary_dim // 2:
            yield Hit(f"mrope_section {section} sums to {sum(n or 0 for n in numbers):g}, not rotary_dim/2 = "
                      f"{spec.rotary_dim // 2}", spec.hf.path(spec.hf.raw_block_key or K.ROPE_SCALING, K.MROPE_SECTION))


@rule("RD211", "phi3-v4-key-set", "error")
def phi3_v4_key_set(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that a Phi-3 `rope_scaling` block has exactly the keys `type`, `short_factor` and
    `long_factor`.

    ## Why it matters
    transformers 4.x's Phi-3 validator accepts exactly those three keys and raises
    `ValueError` otherwise, so adding `rope_type` or `factor` (what transformers 5 prefers)
    breaks loading in every stack pinned to 4.x.

    ## Example
    ```json
    "rope_scaling": {"rope_type": "longrope", "short_factor": [...], "long_factor": [...]}
    ```

    ## Fix
    Keep `{"type": "longrope", "short_factor": [...], "long_factor": [...]}`.
    """
    raw = _raw(spec)
    exact = family_of(spec.model_type).v4_block_keys
    if not exact or spec.hf is None or spec.hf.raw_block_key != K.ROPE_SCALING or not raw:
        return
    expected = set(exact)
    if set(raw) != expected:
        extra = sorted(set(raw) - expected)
        missing = sorted(expected - set(raw))
        detail = "; ".join(filter(None, [f"extra {extra}" if extra else "", f"missing {missing}" if missing else ""]))
        yield Hit(f"Phi-3 rope_scaling must have exactly type, short_factor, long_factor for transformers 4.x ({detail})",
                  spec.hf.path(K.ROPE_SCALING))


@rule("RD212", "static-yarn-short-inputs", "info")
def static_yarn_short_inputs(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Notes that YaRN in config.json is static: it applies to every input, short ones included.

    ## Why it matters
    transformers, vLLM and llama.cpp apply the scaled frequencies and attention factor to a
    100-token prompt as much as to a 100K one. Qwen's model cards advise adding the block only
    when long inputs are expected, since it can cost quality on short texts.

    ## Example
    ```json
    "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    ```

    ## Fix
    Use the smallest factor that covers the inputs you serve (`ropedoctor fix --ctx N`), or
    serve two deployments.
    """
    if spec.method == "yarn" and spec.factor and spec.factor > 1 and spec.hf is not None:
        attention = rope_math.yarn_attention_factor(spec.factor, spec.attention_factor, spec.mscale, spec.mscale_all_dim)
        yield Hit(f"static YaRN x{spec.factor:g} (attention factor {attention:.4g}) also applies to short inputs",
                  spec.where("factor", K.ROPE_SCALING))


@rule("RD213", "original-length-conflict", "warning")
def original_length_conflict(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a top-level `original_max_position_embeddings` that disagrees with the one inside
    the scaling block (outside Phi-3, where the top-level key is the documented place).

    ## Why it matters
    transformers 5 validates with the block's value but, when it computes the frequencies,
    standardises again and takes the top-level value; the model then scales from another
    length than the one the validator and the other runtimes saw.

    ## Example
    ```json
    "original_max_position_embeddings": 4096,
    "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8192}
    ```

    ## Fix
    Keep one value, inside the block.
    """
    raw = _raw(spec)
    if spec.hf is None or family_of(spec.model_type).top_level_original:
        return
    top, inner = spec.hf.text.get(K.ORIGINAL_MAX_POSITIONS), raw.get(K.ORIGINAL_MAX_POSITIONS)
    if top is not None and inner is not None and top != inner:
        yield Hit(f"top-level original_max_position_embeddings {top!r} disagrees with the block's {inner!r}",
                  spec.hf.path(K.ORIGINAL_MAX_POSITIONS))


@rule("RD214", "layered-legacy-type-ignored", "error")
def layered_legacy_type_ignored(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a Gemma-3 or ModernBERT `rope_scaling` block that names its method only with the
    legacy `type` key.

    ## Why it matters
    transformers 5 merges `rope_scaling` into per-layer-type blocks that already say
    `rope_type: default`, so the legacy `type` loses: the factor is kept but ignored
    ("Unrecognized keys ... {'factor'}") and the model runs unscaled. transformers 4.x maps
    `type` to `rope_type` and scales. The same file gives different models.

    ## Example
    ```json
    "model_type": "gemma3_text", "rope_scaling": {"type": "linear", "factor": 8.0}
    ```

    ## Fix
    Write `"rope_type": "linear"` (keeping `type` beside it is fine).
    """
    raw = _raw(spec)
    family = family_of(spec.model_type)
    dropped = family.layer_labels or family.legacy_scaling == "dropped"  # generated: OLMo-3, Gemma-3n, ...
    if dropped and spec.hf and spec.hf.raw_block_key == K.ROPE_SCALING:
        legacy = raw.get(K.LEGACY_TYPE)
        if legacy not in (None, "default") and K.ROPE_TYPE not in raw:
            yield Hit(f"legacy `type` {legacy!r} alone: transformers 5 keeps rope_type 'default' for every layer "
                      f"type and ignores the scaling; transformers 4.x applies {legacy!r}",
                      spec.hf.path(K.ROPE_SCALING, K.LEGACY_TYPE))


@rule("RD215", "nomic-scaling-native-ignored", "warning")
def nomic_scaling_native_ignored(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a NomicBert config whose `rotary_scaling_factor` (dynamic NTK) has no matching dynamic
    `rope_parameters` block.

    ## Why it matters
    nomic's remote code (`trust_remote_code=True`, sentence-transformers) scales by
    `rotary_scaling_factor` and ignores `rope_parameters`; transformers 5's native `NomicBertModel`
    reads only `rope_parameters` and ignores `rotary_scaling_factor`. Without both, one loader runs
    the model unscaled past its trained length: the same file gives different embeddings.

    ## Example
    ```json
    "model_type": "nomic_bert", "rotary_scaling_factor": 2.0,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000.0}
    ```

    ## Fix
    Write both: `"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1000.0}`
    beside `rotary_scaling_factor` (`ropedoctor fix --ctx N` does).
    """
    if K.ROTARY_SCALING_FACTOR not in family_of(spec.model_type).factor_keys or spec.hf is None:
        return
    factor = json_number(spec.hf.text.get(K.ROTARY_SCALING_FACTOR))
    if factor is None or factor <= 1:
        return
    block = spec.hf.text.get(K.ROPE_PARAMETERS)
    block = block if isinstance(block, dict) else {}
    if block.get(K.ROPE_TYPE) != "dynamic" or json_number(block.get(K.FACTOR)) != factor:
        yield Hit(f"rotary_scaling_factor {factor:g} without a matching dynamic rope_parameters block: nomic's "
                  f"remote code scales, transformers 5's native NomicBert runs unscaled",
                  spec.hf.path(K.ROTARY_SCALING_FACTOR))
