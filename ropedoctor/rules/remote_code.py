"""RD12x: what a remote-code family's own configuration_*.py refuses (trust_remote_code loaders)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ropedoctor import hf_keys as K
from ropedoctor.families import LegacyValidator, family_of
from ropedoctor.rules.registry import Hit, Target, rule
from ropedoctor.spec import RopeSpec


def legacy_refusal(block: Any, validator: LegacyValidator) -> str | None:
    """What the 4.36-4.38 ``_rope_scaling_validation`` copy raises for ``block`` (None: it passes)."""
    if block is None:
        return None
    values = " or ".join(f"`{key}`" for key in validator.value_keys)
    if not isinstance(block, dict) or len(block) != 2:
        return f"`rope_scaling` must be a dictionary with exactly two fields, `type` and {values}, got {block!r}"
    kind = block.get(K.LEGACY_TYPE)
    if kind is None and K.ROPE_TYPE in block:
        return f"it reads the method from `type`, never `rope_type`, so {block!r} is refused"
    if kind not in validator.types:
        return f"`rope_scaling`'s type field must be one of {list(validator.types)}, got {kind!r}"
    present = [key for key in validator.value_keys if key in block]
    if not present:
        return f"`rope_scaling` needs {values}, got {block!r}"
    value = block[present[0]]
    if not isinstance(value, float) or value <= 1.0:
        return f"`rope_scaling`'s {present[0]} field must be a float > 1, got {value!r}"
    return None


@rule("RD120", "remote-code-block-refused", "error")
def remote_code_block_refused(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    For families whose own `configuration_*.py` (loaded with `trust_remote_code=True`) keeps the
    transformers 4.36-4.38 validator (InternLM, InternLM2/2.5, DeepSeek-MoE), checks `rope_scaling` the
    way that code does: a dict of exactly two keys, `type` linear or dynamic, and a float `factor` > 1.
    Also reports a scaling written only as `rope_parameters`, which that code never reads.

    ## Why it matters
    The remote config class raises `ValueError` at load: a `rope_type` key instead of `type`, a third
    key, or an integer factor `2` is refused, so the model does not load at all. A `rope_parameters`
    block is passed through as an unknown attribute and the model runs unscaled.

    ## Example
    ```json
    {"model_type": "internlm2", "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}
    ```

    ## Fix
    `ropedoctor fix --type dynamic --factor 2` writes exactly `{"type": "dynamic", "factor": 2.0}`.
    """
    family = family_of(spec.model_type)
    validator = family.legacy_validator
    if validator is None or spec.hf is None:
        return
    text = spec.hf.text
    scaling = text.get(K.ROPE_SCALING)
    why = legacy_refusal(scaling, validator)
    if why is not None:
        yield Hit(f"{spec.model_type}'s own config code refuses this block: {why}", spec.hf.path(K.ROPE_SCALING))
        return
    parameters = text.get(K.ROPE_PARAMETERS)
    if scaling is None and isinstance(parameters, dict) and \
            parameters.get(K.ROPE_TYPE, parameters.get(K.LEGACY_TYPE, "default")) != "default":
        yield Hit(f"{spec.model_type}'s own config code reads only `rope_scaling`: this `rope_parameters` "
                  f"scaling is ignored there and the model runs unscaled", spec.hf.path(K.ROPE_PARAMETERS))
