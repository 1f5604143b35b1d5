"""RD115-RD116: what one transformers model class refuses that the generic RoPE validation accepts.

The restrictions are data: ``tools/gen_hf_families.py`` learns them by building each class's own rotary
module (``model/hf_families.json``: ``rope_types``, ``legacy_scaling``); nothing here names a model type.
"""

from __future__ import annotations

from collections.abc import Iterator

from ropedoctor import hf_keys as K
from ropedoctor.families import family_of
from ropedoctor.rules.registry import Hit, Target, rule
from ropedoctor.spec import RopeSpec


@rule("RD115", "method-refused-by-class", "error")
def method_refused_by_class(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that the scaling method is one the model's own transformers class builds. Some classes
    accept only a few methods although the generic validation knows more: Phi-4-multimodal and
    Phi-3 only longrope, Cosmos3-Edge and Ernie-4.5-VL only `default`, vision encoders only `axial`.

    ## Why it matters
    The config loads, then the class's validator or rotary module raises (`ValueError: Ernie 4.5 VL
    requires the default rope type`, `... supports only axial rope`) and the model is never built.

    ## Example
    ```json
    "model_type": "ernie4_5_vl_moe", "text_config": {"rope_parameters": {"rope_type": "yarn", "factor": 4.0}}
    ```

    ## Fix
    Use a method the class accepts (the message lists them), or remove the scaling.
    """
    if spec.hf is None or not spec.has_rope:
        return
    allowed = family_of(spec.model_type).rope_types
    if allowed is None:
        return
    for location, block in spec.hf.blocks.items():
        method = block.get(K.ROPE_TYPE)
        if isinstance(method, str) and method in K.METHOD_KEYS and method not in allowed:
            accepted = ", ".join(allowed) if allowed else "no method (it refuses every rope_parameters)"
            yield Hit(f"the {spec.model_type} class builds only {accepted}; transformers raises on {method!r} "
                      f"when it builds the model", f"{location}.{K.ROPE_TYPE}")


@rule("RD116", "legacy-scaling-refused", "error")
def legacy_scaling_refused(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a legacy `rope_scaling` block on a model whose transformers class reads only a
    `rope_parameters` dict nested by layer type (Gemma-4, Laguna, MiMo-V2-Flash, ...).

    ## Why it matters
    transformers 5 takes the flat legacy block as the whole `rope_parameters`; the class's rotary
    module then looks up its layer types in it and raises `KeyError: 'full_attention'`.

    ## Example
    ```json
    "model_type": "gemma4_text", "rope_scaling": {"type": "linear", "factor": 2.0}
    ```

    ## Fix
    Write the scaling into `rope_parameters.full_attention` (the v5 layout), or run `ropedoctor fix`.
    """
    if spec.hf is None or not spec.has_rope or spec.hf.raw_block_key != K.ROPE_SCALING:
        return
    if family_of(spec.model_type).legacy_scaling == "fails":
        yield Hit(f"the {spec.model_type} class reads only rope_parameters nested by layer type; transformers "
                  f"raises on this flat rope_scaling when it builds the model", spec.hf.path(K.ROPE_SCALING))


@rule("RD117", "odd-rotary-dim-scaled", "error")
def odd_rotary_dim_scaled(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports YaRN or LongRoPE on a model whose rotated part of a head, `int(head_dim * partial_rotary_factor)`,
    is odd (GLM-4-MoE's default 42 x 0.5 = 21).

    ## Why it matters
    transformers computes `ceil(dim / 2)` frequencies but YaRN's ramp (and LongRoPE's factor lists) have
    `dim // 2` entries: building the model fails with `RuntimeError: The size of tensor a (11) must match
    the size of tensor b (10)`. Unscaled, linear, dynamic and llama3 RoPE build.

    ## Example
    ```json
    "hidden_size": 4096, "num_attention_heads": 96, "partial_rotary_factor": 0.5,
    "rope_scaling": {"rope_type": "yarn", "factor": 4.0}
    ```

    ## Fix
    Correct the head size or the partial rotary factor (the published values give an even rotated part).
    """
    if spec.hf is None or not spec.has_rope or spec.method not in ("yarn", "longrope") or not spec.head_dim:
        return
    if spec.provenance.get("rotary_dim"):
        return  # a key gives the rotary dimension itself (MiniMax-M2's rotary_dim, MLA's qk_rope_head_dim)
    rotated = int(spec.head_dim * spec.partial_rotary_factor)
    if rotated % 2:
        yield Hit(f"{spec.method} over an odd rotated part ({spec.head_dim} x {spec.partial_rotary_factor:g} = "
                  f"{rotated}): transformers fails with a tensor size mismatch when it builds the model",
                  spec.where("head_dim", K.HEAD_DIM))
