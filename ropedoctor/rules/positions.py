"""RD0xx: what kind of positions the model has, before any RoPE advice."""

from __future__ import annotations

from collections.abc import Iterator

from ropedoctor import hf_keys as K
from ropedoctor.rules.registry import Hit, Target, rule
from ropedoctor.spec import RopeSpec


@rule("RD001", "no-rope", "info")
def no_rope(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Recognises models without rotary embeddings: ALiBi (MPT, BLOOM, jina-bert, Baichuan-13B),
    learned absolute positions (BERT, XLM-RoBERTa/bge-m3, GPT-2), relative position biases (T5) and
    no position encoding at all (Mamba); and says so when the model type is unknown and the file
    has no RoPE keys, instead of assuming RoPE.

    ## Why it matters
    RoPE scaling flags do nothing for them (or are refused); a learned position table cannot
    be stretched at all. ropedoctor gives no RoPE advice for these models.

    ## Example
    ```json
    {"model_type": "bert", "max_position_embeddings": 512}
    ```

    ## Fix
    Nothing to fix. To serve longer inputs, pick a model trained for them.
    """
    if spec.positions == "alibi":
        length = f"declared length {spec.context}" if spec.context else "no declared length"
        yield Hit(f"ALiBi positions (no RoPE); {length}", spec.where("context", K.MODEL_TYPE))
    elif spec.positions == "absolute":
        yield Hit(f"learned absolute positions (no RoPE): a table of {spec.position_table} positions",
                  spec.where("context", K.MODEL_TYPE))
    elif spec.positions == "relative":
        yield Hit("relative position biases (no RoPE)", spec.where("context", K.MODEL_TYPE))
    elif spec.positions == "none":
        yield Hit("no position encoding in the model (no RoPE)", spec.where("context", K.MODEL_TYPE))
    elif spec.positions == "unknown":
        yield Hit(f"unknown family {spec.model_type!r}, positions not known: no RoPE keys in the file and no record "
                  "of the type, so ropedoctor does not assume RoPE", K.MODEL_TYPE)


@rule("RD002", "declared-beyond-trained", "warning")
def declared_beyond_trained(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports an unscaled model whose declared maximum length is beyond the length it was
    trained at (NomicBert's `n_positions` above `max_trained_positions`).

    ## Why it matters
    Runtimes accept inputs up to the declared length, but without a scaling method the model
    sees rotation angles it never saw in training, and embeddings or generations degrade.

    ## Example
    ```json
    "n_positions": 8192, "max_trained_positions": 2048, "rotary_scaling_factor": null
    ```

    ## Fix
    Set the scaling the model card documents (NomicBert: `rotary_scaling_factor`), or
    `ropedoctor fix --ctx 8192`.
    """
    unscaled = spec.has_rope and spec.method == "default"
    if unscaled and spec.context and spec.original_context and spec.context > spec.original_context:
        yield Hit(f"declares {spec.context} positions but was trained at {spec.original_context} without scaling",
                  spec.where("context", K.MAX_POSITIONS))
