"""RD3xx: whether the length asked for with ``--ctx`` can be served, and how."""

from __future__ import annotations

from collections.abc import Iterator

from ropedoctor import hf_keys as K
from ropedoctor.fmt import number
from ropedoctor.model import methods
from ropedoctor.rules.registry import Hit, Target, rule
from ropedoctor.spec import RopeSpec


@rule("RD301", "ctx-beyond-scaling", "error")
def ctx_beyond_scaling(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    With `--ctx N`, checks that N is within what the file's RoPE settings support: the
    trained length without scaling, factor x original with linear, dynamic or YaRN, the
    declared length with llama3 or longrope.

    ## Why it matters
    Beyond that length the model sees rotation angles it never saw in training; outputs
    degrade sharply (perplexity explodes, retrieval fails) even though runtimes may accept
    the input.

    ## Example
    Yi-34B-Chat (`rope_theta` 5e6, `max_position_embeddings` 4096, no scaling) at 16384:
    ```console
    $ ropedoctor check Yi-34B-Chat --ctx 16384
    ```

    ## Fix
    Scale it: `ropedoctor fix --ctx N` (the file's own method with a larger factor, else what its
    family documents, else YaRN with the smallest factor that covers N; the message names which),
    `--type linear --factor F` (Position Interpolation) or `--type ntk` (a larger static base).
    """
    served = spec.served_context()
    if target.ctx is None or not spec.has_rope or served is None or target.ctx <= served:
        return
    original = spec.original_context or spec.context or served
    # Every suggestion is a plan fix itself would write (plan.plan): fix's own choice first, then each
    # --type this file can take, so RD301, `plan`, `flags` and `fix` cannot disagree.
    options: list[str] = []
    planned = _fix_plan(spec, target.ctx, None)
    if planned is not None:
        options.append(f"{_describe(planned)} (`ropedoctor fix --ctx {target.ctx}`)")
    from ropedoctor.plan import writable_types

    for fix_type in writable_types(spec):
        forced = _fix_plan(spec, target.ctx, fix_type)
        if forced is None or (planned is not None and fix_type != "ntk" and forced.method == planned.method):
            continue
        options.append(f"{_describe(forced)} (`ropedoctor fix --type {fix_type} --ctx {target.ctx}`)")
    scaling = "no scaling" if spec.method == "default" else \
        f"{methods.label(spec.method)} x{spec.factor:g}" if spec.factor else methods.label(spec.method)
    advice = "scale it with " + ", or ".join(options) if options else \
        "ropedoctor cannot write a scaling into this file (see `ropedoctor plan`)"
    yield Hit(f"--ctx {target.ctx} is beyond the {served} tokens this file supports ({scaling}, trained at "
              f"{original}); {advice}", spec.where("context", K.MAX_POSITIONS))


def _describe(planned: RopeSpec) -> str:
    if planned.method == "default":
        return f"a static NTK base rope_theta {number(planned.theta or 0)}"
    return f"{methods.label(planned.method)} x{planned.factor or 1:g}"


def _fix_plan(spec: RopeSpec, ctx: int, fix_type: str | None) -> RopeSpec | None:
    from ropedoctor.errors import InputError
    from ropedoctor.plan import Target as PlanTarget
    from ropedoctor.plan import plan

    try:
        return plan(spec, PlanTarget(ctx=ctx, method=fix_type)).after  # type: ignore[arg-type]
    except InputError:
        return None


@rule("RD302", "ctx-beyond-position-table", "error")
def ctx_beyond_position_table(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    With `--ctx N`, checks that a model with learned absolute positions has N positions.

    ## Why it matters
    Its position table has one learned vector per position; there is nothing to look up past
    the end. Runtimes refuse the input or index out of range. RoPE flags cannot help.

    ## Example
    ```console
    $ ropedoctor check bert-base-uncased --ctx 8192
    ```

    ## Fix
    Truncate or chunk inputs to the table size, or use a RoPE or ALiBi model trained for the length.
    """
    table = spec.position_table if spec.positions == "absolute" else None
    if target.ctx is not None and table is not None and target.ctx > table:
        yield Hit(f"--ctx {target.ctx} is beyond the {table} learned positions; RoPE scaling "
                  f"cannot extend an absolute position table", spec.where("context", K.MAX_POSITIONS))


@rule("RD303", "ctx-beyond-alibi-length", "warning")
def ctx_beyond_alibi_length(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    With `--ctx N`, reports an ALiBi model asked for more than its declared length.

    ## Why it matters
    ALiBi has no table and extrapolates somewhat, but runtimes cap inputs at the declared
    length and quality beyond the trained length is not guaranteed. RoPE flags do nothing.

    ## Example
    ```console
    $ ropedoctor check mpt-7b --ctx 8192
    ```

    ## Fix
    Raise the declared length (`max_seq_len` for MPT) and validate quality with `ropedoctor smoke`.
    """
    if target.ctx is not None and spec.positions == "alibi" and spec.context and target.ctx > spec.context:
        yield Hit(f"--ctx {target.ctx} is beyond the declared {spec.context}; ALiBi runtimes cap there",
                  spec.where("context", K.MAX_POSITIONS))


@rule("RD304", "ctx-embedding-batch", "info")
def ctx_embedding_batch(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    With `--ctx N` on a non-causal (embedding or encoder) model, reminds that the whole input
    must fit one micro-batch.

    ## Why it matters
    llama.cpp evaluates a non-causal input in one ubatch: llama-server and llama-embedding
    refuse or truncate inputs longer than `-ub` (default 512), whatever `-c` says.

    ## Example
    ```console
    $ ropedoctor check nomic-embed-text-v1.5 --ctx 8192
    ```

    ## Fix
    Pass `-b N -ub N` as well as `-c N`; `ropedoctor flags --ctx N` prints them.
    """
    if target.ctx is not None and not spec.causal and spec.positions != "absolute":
        yield Hit(f"non-causal model: llama.cpp needs -b and -ub of at least {target.ctx} "
                  f"(see `ropedoctor flags --ctx {target.ctx}`)", spec.where("context", K.MAX_POSITIONS))
