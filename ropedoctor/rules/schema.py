"""RD1xx: what transformers (4.4x and 5.x) itself raises or warns about.

Each rule mirrors one check of ``RotaryEmbeddingConfigMixin._validate_*_rope_parameters``
(transformers 5.23) or of a model's own validator; ``tests/test_differential_transformers.py``
holds the rules to transformers' behaviour on generated configs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ropedoctor import hf_keys as K
from ropedoctor.families import family_of
from ropedoctor.rules.registry import Hit, Target, rule
from ropedoctor.spec import RopeSpec, json_int, json_number


def _blocks(spec: RopeSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    """The standardised scaling blocks of a config.json with RoPE, as (location, block)."""
    if spec.hf is not None and spec.has_rope:
        yield from spec.hf.blocks.items()


def _received(spec: RopeSpec, block: dict[str, Any]) -> set[str]:
    """The keys transformers checks: legacy ``type`` and the family's ignored keys left out."""
    ignored: frozenset[str] = K.for_model(K.VALIDATION_IGNORED_KEYS, spec.model_type, frozenset())
    return set(block) - {K.LEGACY_TYPE} - ignored


def _is_phi3_su(spec: RopeSpec) -> bool:
    raw = spec.hf.raw_block if spec.hf else None
    su_known = "su" in K.for_model(K.LEGACY_METHOD_ALIASES, spec.model_type, {})  # Phi-3's legacy name
    return su_known and bool(raw) and "su" in (raw.get(K.ROPE_TYPE), raw.get(K.LEGACY_TYPE))  # type: ignore[union-attr]


@rule("RD101", "missing-required-key", "error")
def missing_required_key(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that a scaling block has every key its method requires: `factor` for linear and
    dynamic; `factor` and `original_max_position_embeddings` for yarn; `short_factor`,
    `long_factor` and the original length for longrope; `factor`, `low_freq_factor`,
    `high_freq_factor` and `original_max_position_embeddings` for llama3.

    ## Why it matters
    transformers raises `KeyError: Missing required keys in rope_parameters` and the model
    does not load. transformers 5 fills a missing original length from
    `max_position_embeddings`, but transformers 4.x raises for llama3 without it.

    ## Example
    ```json
    "rope_scaling": {"rope_type": "linear"}
    ```

    ## Fix
    Add the missing keys, for example `"factor": 4.0`, or run `ropedoctor fix --ctx N`.
    """
    if _is_phi3_su(spec):
        return  # RD204 explains this one
    for location, block in _blocks(spec):
        method = block.get(K.ROPE_TYPE)
        keys = K.METHOD_KEYS.get(method) if isinstance(method, str) else None
        if keys is None:
            continue
        missing = sorted(keys.required - _received(spec, block))
        if missing:
            yield Hit(f"{method} scaling needs {', '.join(f'`{m}`' for m in missing)}; transformers raises "
                      f"KeyError and the model does not load", f"{location}.{missing[0]}")
        raw = spec.hf.raw_block if spec.hf else None
        nested = raw.get(location.rsplit(".", 1)[-1]) if raw is not None else None
        raw = nested if isinstance(nested, dict) else raw  # a per-layer-type block: its own keys
        if method == "llama3" and raw is not None and K.ORIGINAL_MAX_POSITIONS not in raw and not missing:
            yield Hit(f"llama3 scaling without `{K.ORIGINAL_MAX_POSITIONS}`: transformers 4.x raises KeyError, "
                      f"5.x assumes {spec.context} (max_position_embeddings) and shifts the frequency bands",
                      f"{location}.{K.ORIGINAL_MAX_POSITIONS}")


@rule("RD102", "unrecognized-key", "warning")
def unrecognized_key(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports keys in a scaling block that its method does not use.

    ## Why it matters
    transformers warns "Unrecognized keys in rope_parameters" and ignores them. A key meant
    for another method usually means the method is not the one the author intended (a
    `beta_fast` under `linear`, an `original_max_position_embeddings` under `dynamic`).

    ## Example
    ```json
    "rope_scaling": {"rope_type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 4096}
    ```

    ## Fix
    Remove the key, or set the method that uses it.
    """
    for location, block in _blocks(spec):
        method = block.get(K.ROPE_TYPE)
        keys = K.METHOD_KEYS.get(method) if isinstance(method, str) else None
        if keys is None:
            continue
        extra = sorted(_received(spec, block) - keys.required - keys.optional - K.ALWAYS_OPTIONAL)
        applied = K.METHOD_KEYS.get(spec.method) if spec.method != method else None  # NTK-alpha in a dynamic block
        for key in extra:
            if applied is not None and key in applied.required | applied.optional:
                yield Hit(f"`{key}` is not a {method} parameter to transformers' validation, which warns; the "
                          f"model's rotary module applies it ({spec.method})", f"{location}.{key}")
                continue
            yield Hit(f"`{key}` is not a {method} parameter; transformers warns and ignores it", f"{location}.{key}")


@rule("RD103", "factor-below-one", "warning")
def factor_below_one(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that a scaling factor is at least 1.

    ## Why it matters
    A factor below 1 compresses the trained window instead of stretching it; transformers
    warns "factor field must be a float or int >= 1" and runs with it anyway, so the model
    sees positions it was never trained on at every length.

    ## Example
    ```json
    "rope_scaling": {"rope_type": "linear", "factor": 0.5}
    ```

    ## Fix
    Use the target length divided by the trained length (`ropedoctor fix --ctx N` computes it).
    """
    for location, block in _blocks(spec):
        factor = json_number(block.get(K.FACTOR))
        if factor is not None and factor < 1 and block.get(K.ROPE_TYPE) in K.METHOD_KEYS:
            yield Hit(f"factor {block[K.FACTOR]!r} is below 1; transformers warns and shrinks the trained window",
                      f"{location}.{K.FACTOR}")


@rule("RD104", "yarn-beta-order", "warning")
def yarn_beta_order(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that YaRN's `beta_fast` (default 32) is not below `beta_slow` (default 1).

    ## Why it matters
    The betas bound the ramp between dimensions that keep their frequency and dimensions that
    are interpolated. Reversed, the ramp runs backwards; transformers warns "beta_fast field
    must be greater than beta_slow".

    ## Example
    ```json
    "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "beta_fast": 1, "beta_slow": 32}
    ```

    ## Fix
    Swap them, or drop both to use the defaults 32 and 1.
    """
    for location, block in _blocks(spec):
        if block.get(K.ROPE_TYPE) != "yarn":
            continue
        fast, slow = json_number(block.get(K.BETA_FAST)), json_number(block.get(K.BETA_SLOW))
        if (fast or 32.0) < (slow or 1.0):
            yield Hit(f"beta_fast {fast or 32:g} is below beta_slow {slow or 1:g}; the YaRN ramp runs backwards",
                      f"{location}.{K.BETA_FAST}")


@rule("RD105", "yarn-factor-mismatch", "warning")
def yarn_factor_mismatch(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that a YaRN `factor` equals `max_position_embeddings / original_max_position_embeddings`
    when the two lengths differ.

    ## Why it matters
    transformers 5 and 4.56+ use the explicit factor and warn; transformers 4.50-4.55 silently
    replaced it with the ratio; vLLM derives the maximum length from the factor. The same
    file then means different frequencies and lengths in different runtimes.

    ## Example
    ```json
    "max_position_embeddings": 131072,
    "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    ```

    ## Fix
    Make the three agree: `max_position_embeddings = factor x original_max_position_embeddings`.
    """
    for location, block in _blocks(spec):
        if block.get(K.ROPE_TYPE) != "yarn":
            continue
        factor = json_number(block.get(K.FACTOR))
        original = json_number(block.get(K.ORIGINAL_MAX_POSITIONS))
        if factor is None or not original or spec.context is None:
            continue
        implicit = spec.context / original
        if implicit not in (factor, 1.0):
            yield Hit(f"factor {factor:g} but max_position_embeddings / original_max_position_embeddings = "
                      f"{spec.context} / {original:g} = {implicit:g}; runtimes disagree on which to use",
                      f"{location}.{K.FACTOR}")


@rule("RD106", "llama3-freq-factor-order", "warning")
def llama3_freq_factor_order(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that llama3's `high_freq_factor` is greater than its `low_freq_factor`.

    ## Why it matters
    The two set the wavelength band in which frequencies are smoothly interpolated
    (original / high_freq_factor to original / low_freq_factor). Reversed or equal, the band is
    empty or inverted and the smoothing divides by zero or runs backwards; transformers warns.

    ## Example
    ```json
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192}
    ```

    ## Fix
    Llama 3.1's values are `low_freq_factor: 1.0`, `high_freq_factor: 4.0`.
    """
    for location, block in _blocks(spec):
        if block.get(K.ROPE_TYPE) != "llama3":
            continue
        low, high = json_number(block.get(K.LOW_FREQ_FACTOR)), json_number(block.get(K.HIGH_FREQ_FACTOR))
        if low is not None and high is not None and high <= low:
            yield Hit(f"high_freq_factor {high:g} is not above low_freq_factor {low:g}; the smoothing band is empty",
                      f"{location}.{K.HIGH_FREQ_FACTOR}")


@rule("RD107", "llama3-original-length", "warning")
def llama3_original_length(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that llama3's `original_max_position_embeddings` is an integer below
    `max_position_embeddings`.

    ## Why it matters
    The original length places the frequency bands. transformers warns when it is not an
    integer or not below `max_position_embeddings`, which usually means the original length
    was copied from the extended one (or transformers 5 filled it in because it was missing).

    ## Example
    ```json
    "max_position_embeddings": 8192,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192}
    ```

    ## Fix
    Set it to the pre-training length (8192 for Llama 3.1) and `max_position_embeddings` to the
    advertised one (131072).
    """
    for location, block in _blocks(spec):
        if block.get(K.ROPE_TYPE) != "llama3":
            continue
        original = block.get(K.ORIGINAL_MAX_POSITIONS)
        if original is not None and (isinstance(original, bool) or not isinstance(original, int)):
            yield Hit(f"original_max_position_embeddings {original!r} is not an integer",
                      f"{location}.{K.ORIGINAL_MAX_POSITIONS}")
        elif isinstance(original, int) and spec.context is not None and original >= spec.context:
            yield Hit(f"original_max_position_embeddings {original} is not below max_position_embeddings "
                      f"{spec.context}", f"{location}.{K.ORIGINAL_MAX_POSITIONS}")


@rule("RD108", "longrope-factor-length", "warning")
def longrope_factor_length(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that longrope's `short_factor` and `long_factor` lists have one entry per rotary
    frequency: `int(head_dim * partial_rotary_factor) // 2`.

    ## Why it matters
    Each entry divides one frequency. transformers warns on a wrong length and then fails or
    broadcasts wrongly at load; Phi-3's own validator raises `ValueError` (an error here), and
    llama.cpp rejects `rope_factors_long` tensors of the wrong size.

    ## Example
    ```json
    "head_dim": 96, "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.0], "long_factor": [1.0, 1.0]}
    ```

    ## Fix
    Use the lists published with the model; they must have 48 entries for head_dim 96.
    """
    for location, block in _blocks(spec):
        if block.get(K.ROPE_TYPE) != "longrope" or not spec.head_dim:
            continue
        partial = json_number(block.get(K.PARTIAL_ROTARY_FACTOR)) or 1.0
        expected = int(spec.head_dim * partial) // 2
        for key in K.NUMERIC_LIST_KEYS:
            value = block.get(key)
            if isinstance(value, list) and len(value) != expected:
                yield Hit(f"`{key}` has {len(value)} entries; rotary dim {int(spec.head_dim * partial)} needs {expected}",
                          f"{location}.{key}", "error" if family_of(spec.model_type).v4_block_keys else None)


@rule("RD109", "attention-factor-invalid", "warning")
def attention_factor_invalid(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that an explicit `attention_factor` is a non-negative float.

    ## Why it matters
    The attention factor multiplies cos and sin, so attention logits scale by its square; a
    negative value flips every score. transformers warns (for YaRN it also warns on an integer).

    ## Example
    ```json
    "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "attention_factor": -1.0}
    ```

    ## Fix
    Remove it to get the method's default (YaRN: 0.1 ln(factor) + 1), or give a positive float.
    """
    for location, block in _blocks(spec):
        method = block.get(K.ROPE_TYPE)
        value = block.get(K.ATTENTION_FACTOR)
        if value is None or method not in ("yarn", "longrope"):
            continue
        number = json_number(value)
        wrong_type = not isinstance(value, float) if method == "yarn" else number is None
        if wrong_type or (number is not None and number < 0):
            yield Hit(f"attention_factor {value!r} must be a float >= 0", f"{location}.{K.ATTENTION_FACTOR}")


@rule("RD110", "odd-head-dim", "error")
def odd_head_dim(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that a fully rotated head has an even size.

    ## Why it matters
    RoPE rotates pairs of dimensions. transformers 5 raises "RoPE requires an even rotary
    dimension" for an odd head_dim above 4; llama.cpp asserts on it.

    ## Example
    ```json
    "hidden_size": 4000, "num_attention_heads": 32
    ```

    ## Fix
    Correct `head_dim` (or `hidden_size` / `num_attention_heads`); the published value is even.
    """
    if spec.hf is None or not spec.has_rope or spec.head_dim is None or not family_of(spec.model_type).checks_odd_head_dim:
        return
    head_dim = spec.head_dim
    if head_dim > 4 and head_dim % 2 and int(head_dim * spec.partial_rotary_factor) == head_dim:
        yield Hit(f"head_dim {head_dim} is odd; RoPE rotates pairs of dimensions", spec.where("head_dim", K.HEAD_DIM))


@rule("RD111", "unknown-method", "error")
def unknown_method(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a `rope_type` (or legacy `type`) that no runtime knows.

    ## Why it matters
    transformers warns "Missing validation function" and then fails with `KeyError` when it
    builds the rotary embedding; vLLM raises; converters drop the block, so the model runs
    unscaled.

    ## Example
    ```json
    "rope_scaling": {"rope_type": "ntk", "factor": 2.0}
    ```

    ## Fix
    Use one of `linear`, `dynamic`, `yarn`, `llama3`, `longrope` (or remove the block).
    """
    for location, block in _blocks(spec):
        method = block.get(K.ROPE_TYPE)
        if not isinstance(method, str) or method not in K.METHOD_KEYS:
            where = K.ROPE_TYPE if spec.hf and spec.hf.raw_block and K.ROPE_TYPE in spec.hf.raw_block else K.LEGACY_TYPE
            yield Hit(f"unknown RoPE method {method!r}; known: {', '.join(K.METHOD_KEYS)}", f"{location}.{where}")


@rule("RD112", "longrope-without-factor", "warning")
def longrope_without_factor(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a longrope block without `factor`, whose factor is implied by
    `max_position_embeddings / original_max_position_embeddings`.

    ## Why it matters
    transformers 5 warns ("Please set the `factor` field") and derives the factor; a file
    whose `max_position_embeddings` is later edited (to serve a shorter context, say) silently
    changes the attention factor too.

    ## Example
    ```json
    "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
    "rope_scaling": {"type": "longrope", "short_factor": [...], "long_factor": [...]}
    ```

    ## Fix
    For transformers 5 only, add `"factor": 32.0`. Phi-3 files that must load in transformers
    4.x cannot take the key (its validator accepts exactly three keys); leave them as published.
    """
    for location, block in _blocks(spec):
        if block.get(K.ROPE_TYPE) == "longrope" and block.get(K.FACTOR) is None:
            original = json_int(block.get(K.ORIGINAL_MAX_POSITIONS))
            implied = f" (implied {spec.context} / {original} = {spec.context / original:g})" if original and spec.context else ""
            yield Hit(f"longrope without `factor`{implied}; transformers 5 warns", f"{location}.{K.FACTOR}")


@rule("RD113", "v4-float-required", "info")
def v4_float_required(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Notes scaling values written as integers where transformers 4.x asks for floats: `factor`,
    `low_freq_factor`, `high_freq_factor`, `beta_fast`, `beta_slow` (DeepSeek-V3's `"factor": 40`).

    ## Why it matters
    transformers 4.43-4.57 warns ("factor field must be a float >= 1") but uses the value
    unchanged, and transformers 5 accepts integers; so this is advice, not a fault, although
    policy would make a transformers warning a warning.

    ## Example
    ```json
    "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096}
    ```

    ## Fix
    Write `40.0` to silence transformers 4.x, or leave it.
    """
    raw = spec.hf.raw_block if spec.hf is not None and spec.has_rope else None
    if not raw or spec.hf is None:
        return
    named = raw.get(K.ROPE_TYPE, raw.get(K.LEGACY_TYPE))
    # the keys 4.x's validator of that method checks (a beta under "dynamic" is never asked for a float)
    checked = {"linear": (K.FACTOR,), "dynamic": (K.FACTOR,), "longrope": (K.FACTOR,),
               "llama3": (K.FACTOR, K.LOW_FREQ_FACTOR, K.HIGH_FREQ_FACTOR),
               "yarn": (K.FACTOR, K.BETA_FAST, K.BETA_SLOW)}.get(named if isinstance(named, str) else "",
                                                                   (K.FACTOR, K.LOW_FREQ_FACTOR, K.HIGH_FREQ_FACTOR,
                                                                    K.BETA_FAST, K.BETA_SLOW))
    keys = [k for k in checked if isinstance(raw.get(k), int) and not isinstance(raw.get(k), bool)]
    if keys:
        listed = ", ".join(f"`{k}` {raw[k]}" for k in keys)
        yield Hit(f"integers where transformers 4.x warns that it wants floats: {listed}",
                  spec.hf.path(spec.hf.raw_block_key or K.ROPE_SCALING, keys[0]))


# The methods whose transformers 5.24 frequency function multiplies a head_dim that may be None.
_HEAD_DIM_MULTIPLIED = ("dynamic", "yarn", "longrope")


@rule("RD114", "scaling-without-head-dim", "error")
def scaling_without_head_dim(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports dynamic, YaRN or LongRoPE scaling on a model whose transformers config class leaves
    `head_dim` unset (Mixtral, HunYuan, MiniMax, Ministral: `head_dim_none` in the generated family
    records) when the file does not set it.

    ## Why it matters
    transformers 5.24's dynamic, yarn and longrope functions read
    `getattr(config, "head_dim", hidden_size // num_attention_heads)`, which returns the class's
    `None`, and fail with `TypeError: unsupported operand type(s) for *: 'NoneType' and 'float'`
    when the model is built. Unscaled, linear, llama3 and proportional RoPE read
    `head_dim or hidden_size // num_attention_heads` and work.

    ## Example
    ```json
    "model_type": "mixtral", "rope_scaling": {"rope_type": "yarn", "factor": 2.0}
    ```

    ## Fix
    Add `"head_dim": 128` (hidden_size / num_attention_heads); `ropedoctor fix` does.
    """
    family = family_of(spec.model_type)
    if spec.hf is None or spec.method not in _HEAD_DIM_MULTIPLIED or not family.needs_explicit_head_dim:
        return
    if all(spec.hf.text.get(key) is None for key in family.head_dim_keys):
        yield Hit(f"{spec.method} scaling without head_dim: transformers 5 fails with TypeError when it builds the "
                  f"{spec.model_type} model; add 'head_dim: {spec.head_dim}'", spec.hf.path(K.HEAD_DIM))
