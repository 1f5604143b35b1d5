"""A planned RopeSpec back into config.json keys, in the layout (style) the user wants.

Styles: ``v4`` (top-level ``rope_theta`` + ``rope_scaling`` with ``rope_type``), ``v5``
(``rope_parameters`` with ``rope_theta`` inside), ``both`` (v4 and v5 keys agreeing, read the same
way by transformers 4.4x and 5.x), ``keep`` (whatever the file uses now). A legacy ``type`` is
never written alone: when the file has one it is rewritten to agree with ``rope_type``. Phi-3's
transformers 4.x validator accepts exactly ``{type, short_factor, long_factor}``, so a v4 Phi-3
block keeps that shape.
"""

from __future__ import annotations

from typing import Any, Literal

from ropedoctor import hf_keys as K
from ropedoctor.errors import InputError
from ropedoctor.families import MIN_PLAUSIBLE_TRAINED_LENGTH, family_of
from ropedoctor.plan import Plan, method_refusal, static_ntk_record
from ropedoctor.spec import RopeSpec
from ropedoctor.writers.hf_config import DELETE, Change

Style = Literal["keep", "v4", "v5", "both"]
STYLES: tuple[Style, ...] = ("keep", "v4", "v5", "both")


def file_style(text: dict[str, Any]) -> Style:
    """The layout a (text) config uses now."""
    v4 = text.get(K.ROPE_SCALING) is not None or K.ROPE_THETA in text
    v5 = isinstance(text.get(K.ROPE_PARAMETERS), dict)
    return "both" if v4 and v5 else "v5" if v5 else "v4"


def scaling_block(spec: RopeSpec, *, as_in_file: bool = True) -> dict[str, Any] | None:
    """The transformers scaling block of a spec (None when unscaled); runtimes' JSON overrides use it too.

    ``as_in_file``: a longrope block keeps the file's shape (no ``factor`` unless it had one; the
    original length stays where Phi-3 keeps it, at the top level). Runtime overrides want both inside.
    """
    if spec.method in ("default", "none"):
        return None
    block: dict[str, Any] = {K.ROPE_TYPE: spec.method}
    implied = as_in_file and spec.method == "longrope" and spec.hf is not None and \
        K.FACTOR not in (spec.hf.raw_block or {})
    if spec.factor is not None and not implied:
        block[K.FACTOR] = float(spec.factor)
    inside = ("yarn", "llama3") if as_in_file else ("yarn", "llama3", "longrope")
    optional = {
        K.ORIGINAL_MAX_POSITIONS: spec.original_context if spec.method in inside else None,
        K.LOW_FREQ_FACTOR: spec.low_freq_factor, K.HIGH_FREQ_FACTOR: spec.high_freq_factor,
        K.ATTENTION_FACTOR: spec.attention_factor, K.BETA_FAST: spec.beta_fast, K.BETA_SLOW: spec.beta_slow,
        K.MSCALE: spec.mscale, K.MSCALE_ALL_DIM: spec.mscale_all_dim, K.TRUNCATE: spec.truncate,
        K.SHORT_FACTOR: spec.short_factor, K.LONG_FACTOR: spec.long_factor,
    }
    block.update({key: value for key, value in optional.items() if value is not None})
    return block


def _v4_block(block: dict[str, Any] | None, raw: dict[str, Any] | None, model_type: str | None) -> Any:
    """The rope_scaling value for transformers 4.x (None = null)."""
    if block is None:
        return None
    exact = family_of(model_type).v4_block_keys
    if exact:  # Phi-3: exactly these keys, the method under the legacy name
        return {key: block[K.ROPE_TYPE] if key == K.LEGACY_TYPE else block.get(key) for key in exact}
    if raw is not None and K.LEGACY_TYPE in raw:
        return {K.LEGACY_TYPE: block[K.ROPE_TYPE], **block}  # keep the legacy key, agreeing
    return block


def config_changes(plan: Plan, style: Style = "keep") -> list[Change]:
    """The key edits that turn the planned-from file into the plan's result."""
    before, after = plan.before, plan.after
    layout = before.hf
    if layout is None:
        raise InputError(before.source, "not a config.json")
    family = family_of(after.model_type)
    if after.method != before.method or after.theta != before.theta:
        why_not = method_refusal(before, after.method)  # plan() already refused; this guards direct callers
        if why_not is not None:
            raise InputError(before.source, why_not)
    text = layout.text
    # where the reader found the text config: text_config, thinker_config.text_config, decoder, ...
    prefix: tuple[str, ...] = tuple(layout.prefix.rstrip(".").split(".")) if layout.prefix else ()
    wanted: dict[str, Any] = {}  # top-level key of the text config -> value (DELETE to remove)
    _record_static_ntk(before, after, text, wanted)

    if after.context != before.context and after.context is not None:
        context_key = before.where("context", K.MAX_POSITIONS).removeprefix(layout.prefix)
        wanted[context_key] = after.context
    trained_key = before.where("original_context").removeprefix(layout.prefix)
    if after.method == "default" and after.original_context != before.original_context and \
            after.original_context is not None and trained_key in text and "." not in trained_key:
        # A static NTK base serves the new length unscaled: a separate trained-length key (Phi-3's top-level
        # original, NomicBert's max_trained_positions) must say so, or the file reads as serving the old one.
        wanted[trained_key] = after.original_context
    theta_key = family.theta_keys[0] if family.theta_keys != (K.ROPE_RATIO,) else K.ROPE_THETA
    if K.ROTARY_SCALING_FACTOR in family.factor_keys:  # NomicBert's own dynamic NTK switch
        if after.method == "dynamic":
            wanted[K.ROTARY_SCALING_FACTOR] = float(after.factor or 1)
            if style != "v4":  # transformers 5's native class reads only rope_parameters (RD215)
                wanted[K.ROPE_PARAMETERS] = nomic_parameters(text, after)
        elif after.theta is not None and after.theta != before.theta:  # a static NTK base
            for key in family.theta_keys:  # every spelling the file carries, so 4.x and remote code agree
                if key in text:
                    wanted[key] = after.theta
            if isinstance(text.get(K.ROPE_PARAMETERS), dict):
                wanted[K.ROPE_PARAMETERS] = {**text[K.ROPE_PARAMETERS], K.ROPE_THETA: after.theta}
        return _changes(text, prefix, wanted)
    if family.legacy_validator is not None:  # remote code: exactly {"type": ..., "factor": float}, v4 only
        if after.theta is not None and after.theta != before.theta:
            wanted[theta_key] = after.theta
        scaled = after.method != "default"
        if scaled or text.get(K.ROPE_SCALING) is not None:
            wanted[K.ROPE_SCALING] = {K.LEGACY_TYPE: after.method, K.FACTOR: float(after.factor or 1)} \
                if scaled else None
        if K.ROPE_PARAMETERS in text:
            wanted[K.ROPE_PARAMETERS] = DELETE  # that code never reads it (RD120)
        return _changes(text, prefix, wanted)
    if after.method == "linear" and after.factor and after.context and after.original_context \
            and not family.top_level_original:
        # A linear file's trained length is read off max_position_embeddings (sources/hf_config.py guesses whether
        # it is already extended); where that guess would be wrong, say the trained length outright.
        inferred = after.context / after.factor
        inferred = inferred if inferred >= MIN_PLAUSIBLE_TRAINED_LENGTH else after.context
        if inferred != after.original_context:
            wanted[K.ORIGINAL_MAX_POSITIONS] = after.original_context

    chosen = file_style(text) if style == "keep" else style
    if family.needs_explicit_head_dim and after.method != "default" and K.HEAD_DIM not in text and after.head_dim:
        wanted[K.HEAD_DIM] = after.head_dim  # RD114
    block = scaling_block(after)
    if family.layer_labels:
        if chosen in ("v4", "both") and after.theta is not None and after.theta != before.theta:
            wanted[theta_key] = after.theta  # the full-attention layers' base
        _layered(text, block, after, chosen, wanted)
        return _changes(text, prefix, wanted)
    raw = layout.raw_block
    block = _with_model_keys(block, raw, after.model_type)
    if chosen in ("v4", "both"):
        implicit = theta_key not in text and after.theta == family.default_theta  # absent means the default
        if after.theta is not None and (after.theta != before.theta or theta_key not in text) and not implicit:
            wanted[theta_key] = after.theta
        scaling = _v4_block(block, raw, after.model_type)
        if scaling is None and family.default_block:
            scaling = {K.ROPE_TYPE: "default"}  # null would let the class fill in its own scaling (gpt-oss)
        if scaling is not None or text.get(K.ROPE_SCALING) is not None:
            wanted[K.ROPE_SCALING] = scaling
    if chosen == "v4" and K.ROPE_PARAMETERS in text:
        wanted[K.ROPE_PARAMETERS] = DELETE
    if chosen in ("v5", "both"):
        parameters = dict(block or {K.ROPE_TYPE: "default"})
        parameters[K.ROPE_THETA] = after.theta
        old = text.get(K.ROPE_PARAMETERS)
        if isinstance(old, dict) and K.PARTIAL_ROTARY_FACTOR in old:
            parameters[K.PARTIAL_ROTARY_FACTOR] = old[K.PARTIAL_ROTARY_FACTOR]
        wanted[K.ROPE_PARAMETERS] = parameters
    if chosen == "v5":
        for key in (K.ROPE_SCALING, theta_key):
            if key in text:
                wanted[key] = DELETE
    return _changes(text, prefix, wanted)


def _with_model_keys(block: dict[str, Any] | None, raw: dict[str, Any] | None,
                     model_type: str | None) -> dict[str, Any] | None:
    """The new block, carrying the model-specific keys of the old one (M-RoPE's mrope_section and
    mrope_interleaved): the model needs them whatever the scaling, and a default block keeps them too."""
    own = K.for_model(K.VALIDATION_IGNORED_KEYS, model_type, frozenset()) - {K.MAX_POSITIONS}
    carried = {key: value for key, value in (raw or {}).items() if key in own}
    if not carried:
        return block
    return {**(block or {K.ROPE_TYPE: "default"}), **carried}


def _record_static_ntk(before: RopeSpec, after: RopeSpec, text: dict[str, Any], wanted: dict[str, Any]) -> None:
    """A static NTK base keeps the trained base and length beside it (issue 16: the file must still say what the
    model was trained with); any other result drops a stale record."""
    if after.method == "default" and after.theta is not None and after.theta != before.theta:
        theta, trained = static_ntk_record(before) or (before.theta, before.original_context or before.context)
        wanted[K.STATIC_NTK_RECORD] = {K.ROPE_THETA: theta, K.RECORD_TRAINED_CONTEXT: trained}
    elif K.STATIC_NTK_RECORD in text and (after.method != "default" or after.theta != before.theta):
        wanted[K.STATIC_NTK_RECORD] = DELETE


def nomic_parameters(text: dict[str, Any], after: RopeSpec) -> dict[str, Any]:
    """NomicBert's dynamic NTK as transformers 5's native class reads it (remote code reads
    ``rotary_scaling_factor`` and ignores this block; the two together serve both loaders)."""
    old = text.get(K.ROPE_PARAMETERS)
    parameters: dict[str, Any] = dict(old) if isinstance(old, dict) else {}
    parameters.update({K.ROPE_TYPE: "dynamic", K.FACTOR: float(after.factor or 1),
                       K.ROPE_THETA: after.theta or family_of(after.model_type).default_theta})
    parameters.pop(K.LEGACY_TYPE, None)
    return parameters


def _layered(text: dict[str, Any], block: dict[str, Any] | None, after: RopeSpec, style: Style,
             wanted: dict[str, Any]) -> None:
    """Gemma-3 / ModernBERT: the scaling belongs to the full-attention layers."""
    if style in ("v4", "both") and (block is not None or text.get(K.ROPE_SCALING) is not None):
        wanted[K.ROPE_SCALING] = block
    if style in ("v5", "both"):
        old = text.get(K.ROPE_PARAMETERS)
        nested = {k: dict(v) for k, v in old.items() if isinstance(v, dict)} if isinstance(old, dict) else {}
        full = dict(block or {K.ROPE_TYPE: "default"})
        full[K.ROPE_THETA] = after.theta
        kept = nested.get(K.FULL_ATTENTION, {})
        if K.PARTIAL_ROTARY_FACTOR in kept:  # Gemma-4's proportional layers rotate a quarter of the head
            full[K.PARTIAL_ROTARY_FACTOR] = kept[K.PARTIAL_ROTARY_FACTOR]
        nested[K.FULL_ATTENTION] = full
        local = after.layers.get(K.SLIDING_ATTENTION)
        nested.setdefault(K.SLIDING_ATTENTION, {K.ROPE_TYPE: "default", K.ROPE_THETA: local.theta if local else None})
        wanted[K.ROPE_PARAMETERS] = nested
    if style == "v5" and K.ROPE_SCALING in text:
        wanted[K.ROPE_SCALING] = DELETE


def _changes(text: dict[str, Any], prefix: tuple[str, ...], wanted: dict[str, Any]) -> list[Change]:
    """Only the keys whose value really changes."""
    changes = []
    for key, value in wanted.items():
        if value is DELETE:
            if key in text:
                changes.append(Change((*prefix, key), DELETE))
        elif key not in text or text[key] != value or type(text[key]) is not type(value):
            changes.append(Change((*prefix, key), value))
    return changes
