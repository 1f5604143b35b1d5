"""RD230: lengths that only dual-chunk attention serves (Qwen2.5-1M's ``dual_chunk_attention_config``)."""

from __future__ import annotations

from collections.abc import Iterator

from ropedoctor.model import methods
from ropedoctor.rules.registry import Hit, Target, rule
from ropedoctor.spec import RopeSpec, json_int

DUAL_CHUNK_CONFIG = "dual_chunk_attention_config"
_DUAL_CHUNK_ORIGINAL = "original_max_position_embeddings"


def dual_chunk_length(spec: RopeSpec) -> int | None:
    """The trained length dual-chunk attention extends, when the file turns it on."""
    block = spec.hf.text.get(DUAL_CHUNK_CONFIG) if spec.hf else None
    if not isinstance(block, dict):
        return None
    return json_int(block.get(_DUAL_CHUNK_ORIGINAL)) or json_int(block.get("chunk_size"))


@rule("RD230", "dual-chunk-runtime-dependent", "warning")
def dual_chunk_runtime_dependent(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a file whose declared length (or `--ctx N`) goes past the trained length of its
    `dual_chunk_attention_config` (Qwen2.5-7B/14B-Instruct-1M: 262144 of 1010000).

    ## Why it matters
    Past that length the model was extended by dual-chunk attention (DCA), not by a RoPE scaling:
    vLLM (and SGLang's `dual_chunk_flash_attn` backend) run DCA; transformers and llama.cpp ignore the
    block and run plain RoPE at positions the model never saw, so quality collapses there while
    every length check passes.

    ## Example
    ```json
    {"max_position_embeddings": 1010000, "rope_theta": 10000000,
     "dual_chunk_attention_config": {"chunk_size": 262144, "local_size": 8192,
                                     "original_max_position_embeddings": 262144}}
    ```

    ## Fix
    Serve lengths past the DCA trained length with vLLM or SGLang (their dual-chunk backends); elsewhere
    stay within it, or `ropedoctor fix --ctx N` for a RoPE scaling those runtimes do run.
    """
    trained = dual_chunk_length(spec)
    if trained is None or not spec.has_rope:
        return
    asked = target.ctx if target.ctx is not None else spec.context
    if asked is None or asked <= trained:
        return
    what = f"--ctx {asked}" if target.ctx is not None else f"the declared {asked} tokens"
    yield Hit(f"{what} rely on {methods.label('dual_chunk')} past its trained {trained}: vLLM and SGLang run it, "
              f"transformers and llama.cpp run plain RoPE there (positions the model never saw)",
              spec.hf.path(DUAL_CHUNK_CONFIG) if spec.hf else DUAL_CHUNK_CONFIG)
