"""llama.cpp (llama-server, llama-cli, llama-embedding) and llama-box: flags, and what they compute.

What the GGUF already carries ("baked") comes from the GGUF itself, or, for a config.json, from
what the current converter writes (dynamic NTK dropped, llama3 and longrope as tensors, NomicBert's
context_length = its trained 2048). Flags then change only what differs from the plan, and
``max_relative_deviation`` compares llama.cpp's frequencies (rope_math.ggml_inv_freq) with what
transformers computes from the planned config at the same length.
"""

from __future__ import annotations

from dataclasses import dataclass

from ropedoctor import rope_math
from ropedoctor.families import GGUF_ARCH_OF, family_of
from ropedoctor.runtimes.base import Emission, FlagRequest
from ropedoctor.spec import RopeSpec

RUNTIME = "llama.cpp"
# The llama.cpp release the flags were proven against: the one llama-cpp-python 0.3.36 vendors (commit 0c1e57098,
# tagged b11312 upstream), shown as users name releases, with the commit beside it.
NEWEST = "b11312 (0c1e57098)"


@dataclass(frozen=True)
class Baked:
    """The RoPE a GGUF of the model carries."""

    arch: str
    method: str  # none/default, linear, yarn, llama3 (rope_freqs), longrope (factor tensors)
    theta: float
    factor: float
    original: int
    context: int  # context_length: llama-server's slot cap


def baked(spec: RopeSpec) -> Baked:
    if spec.format == "gguf" and spec.gguf is not None:
        arch = spec.gguf.arch
        context = spec.context or 0
    else:
        arch = GGUF_ARCH_OF.get(spec.model_type or "", spec.model_type or "llama")
        # the NomicBert converter writes the trained length, not n_positions
        context = (spec.original_context if family_of(spec.model_type).keyed_to_trained_length else spec.context) or 0
    method = spec.method if spec.method in ("linear", "yarn", "llama3", "longrope") else "default"
    factor = (spec.factor or 1.0) if method in ("linear", "yarn") else 1.0
    return Baked(arch, method, spec.theta or 10_000.0, factor, spec.original_context or context, context)


@dataclass(frozen=True)
class RopeFlags:
    """The RoPE part of a llama.cpp command line, and the state it leaves the runtime in."""

    argv: list[str]
    notes: list[str]
    scaling: str  # the runtime's scaling type: default (none), linear, yarn
    theta: float
    factor: float
    original: int


def rope_flags(request: FlagRequest, gguf: Baked) -> RopeFlags:
    want = request.after
    theta = want.theta or gguf.theta
    argv: list[str] = []
    notes: list[str] = []
    scaling, factor, original = gguf.method, gguf.factor, gguf.original
    if not request.changed:
        return RopeFlags(argv, notes, scaling, gguf.theta, factor, original)
    if want.method in ("yarn", "linear"):
        scaling, factor = want.method, want.factor or 1.0
        argv += ["--rope-scaling", want.method, "--rope-scale", f"{factor:g}"]
        if want.method == "yarn":
            original = want.original_context or gguf.original
            argv += ["--yarn-orig-ctx", str(original)]  # else it falls back to an overridden context_length
    elif want.method == "dynamic":
        theta = rope_math.dynamic_base(want.theta or gguf.theta, want.rotary_dim or 2, want.factor or 1.0,
                                       request.ctx, want.dynamic_length or gguf.context)
        scaling, factor = "default", 1.0
        argv += ["--rope-scaling", "none"]
        notes.append(f"llama.cpp has no dynamic NTK: the nearest static equivalent is the base transformers uses "
                     f"at {request.ctx} tokens, {theta:.6g}; shorter inputs get other frequencies than in "
                     f"transformers (which keeps the trained base below {want.dynamic_length} tokens): the "
                     f"max relative deviation is that difference")
    elif want.method == "default" and gguf.method != "default":
        scaling, factor = "default", 1.0
        argv += ["--rope-scaling", "none"]
    if abs(theta - gguf.theta) > 1e-6 * gguf.theta:
        argv += ["--rope-freq-base", f"{theta:.8g}"]
    return RopeFlags(argv, notes, scaling, theta, factor, original)


def deviation(request: FlagRequest, gguf: Baked, flags: RopeFlags) -> float | None:
    """The largest relative difference between llama.cpp's and transformers' frequencies, over input lengths.

    llama.cpp's frequencies are fixed for a slot; transformers' may depend on the input's length
    (dynamic NTK grows the base past its trained length, longrope switches factor lists), so both
    the trained length and ``ctx`` are compared.
    """
    want = request.after
    if not want.has_rope or not want.rotary_dim or want.theta is None:
        return None
    lengths = {request.ctx, want.dynamic_length or request.ctx, want.original_context or request.ctx}
    try:
        return max(_deviation_at(request, gguf, flags, length) for length in lengths)
    except rope_math.NoFrequencies:  # a method without a formula (axial, dual-chunk): nothing to compare
        return None


def _deviation_at(request: FlagRequest, gguf: Baked, flags: RopeFlags, length: int) -> float:
    want = request.after
    assert want.rotary_dim is not None
    divisors = None
    attention = 1.0
    if flags.scaling == "llama3" or gguf.method == "llama3":
        ours = rope_math.spec_inv_freq(request.before, None)[0]
        divisors = [a / b for a, b in zip(rope_math.default_inv_freq(gguf.theta, want.rotary_dim), ours,
                                          strict=True)]
    if gguf.method == "longrope":
        long = request.ctx > gguf.original
        factors = request.before.long_factor if long else request.before.short_factor
        divisors = factors
        attention = rope_math.spec_inv_freq(request.before, request.ctx)[1]
    if flags.scaling in ("llama3", "longrope"):
        scale, ext = 1.0, 0.0
    else:
        scale = 1.0 / flags.factor if flags.scaling in ("linear", "yarn") else 1.0
        ext = 1.0 if flags.scaling == "yarn" else 0.0
    magnitude = None
    if ext and want.mscale_all_dim:  # GGUF yarn_log_multiplier: llama.cpp's DeepSeek-style mscale ratio
        mscale = want.mscale_all_dim if gguf.arch == "deepseek2" and want.mscale_all_dim != 1 else 1.0
        magnitude = rope_math.yarn_mscale(flags.factor, mscale) / rope_math.yarn_mscale(flags.factor,
                                                                                       want.mscale_all_dim)
    ggml = rope_math.ggml_inv_freq(flags.theta, want.rotary_dim, scale, ext, flags.original, divisors,
                                   attn_factor=attention, magnitude=magnitude)
    return rope_math.relative_deviation(ggml, rope_math.spec_inv_freq(want, length))


def _context_flags(request: FlagRequest, gguf: Baked, flags: RopeFlags, box: bool) -> tuple[list[str], list[str]]:
    argv = ["-c", str(request.ctx * request.parallel), "-np", str(request.parallel)]
    notes = []
    if request.parallel > 1:
        notes.append(f"-np {request.parallel} without a unified KV cache divides -c between the slots: each serves "
                     f"{request.ctx} tokens")
    cap = gguf.context
    autoscaled = flags.scaling == "yarn" and flags.factor != gguf.factor
    if not box and autoscaled:
        cap = max(cap, int(flags.original * flags.factor))  # YaRN autoscale (PR #28030)
    if request.ctx > gguf.context:
        key = f"{gguf.arch}.context_length=int:{request.ctx}"
        argv += ["--override-kv", key]
        why = "llama-server caps every slot at context_length" if not box else "the context is capped there"
        notes.append(f"{why} ({gguf.context}); the override lifts it"
                     + (" (current builds also autoscale with --rope-scaling yarn; older ones need it)"
                        if autoscaled else ""))
    if request.non_causal:
        argv += ["-b", str(request.ctx), "-ub", str(request.ctx), "--embedding"]
        notes.append(f"non-causal model: the whole input must fit one ubatch, so -b and -ub are {request.ctx}"
                     + ("; llama-box would set them to -c itself" if box else ""))
    return argv, notes


def emit(request: FlagRequest) -> list[Emission]:
    gguf = baked(request.before)
    flags = rope_flags(request, gguf)
    context, notes = _context_flags(request, gguf, flags, box=False)
    server = Emission(RUNTIME, NEWEST, program="llama-server", argv=["-m", request.gguf_path, *context, *flags.argv],
                      per_sequence_context=request.ctx, notes=notes + flags.notes,
                      max_relative_deviation=deviation(request, gguf, flags))
    if flags.scaling == "yarn" and request.after.truncate is False:
        server.notes.append("the config's YaRN has truncate: false, but llama.cpp always rounds the correction range "
                            "(floor/ceil): frequencies in the ramp differ, as the deviation shows")
    if gguf.method == "longrope" and request.ctx > gguf.original:
        server.notes.append(f"longrope: llama.cpp uses the long factors for every input once a slot exceeds "
                            f"{gguf.original} tokens; transformers switches per input, so short inputs differ")
    if gguf.arch == "nomic-bert":
        server.notes.append(
            "the model card's `-c 8192 -np 4 --rope-scaling yarn --rope-freq-scale .75` serves less on llama-server: "
            "-np 4 splits -c into 4 slots of 2048, and current builds' YaRN autoscale caps a slot at "
            f"{gguf.original}/0.75 = {int(gguf.original / 0.75)} (llama-embedding has neither limit); these flags give "
            f"{request.parallel} slot{'' if request.parallel == 1 else 's'} of {request.ctx} (--parallel N for more)")
    out = [server]
    if request.non_causal:
        argv = ["-m", request.gguf_path, "-c", str(request.ctx), "-b", str(request.ctx), "-ub", str(request.ctx),
                *flags.argv]
        out.append(Emission(RUNTIME, NEWEST, program="llama-embedding", argv=argv, per_sequence_context=request.ctx,
                            notes=["llama-embedding has no slots and no context_length cap", *flags.notes],
                            max_relative_deviation=server.max_relative_deviation))
    return out


def emit_llamabox(request: FlagRequest) -> list[Emission]:
    """llama-box: llama.cpp's RoPE flags, but -np is --threads-http, --override-kv is repeated, no env vars."""
    gguf = baked(request.before)
    flags = rope_flags(request, gguf)
    context, notes = _context_flags(request, gguf, flags, box=True)
    notes.insert(0, "llama-box: -np is an alias of --threads-http (default: the CPU thread count, which would "
                    "divide -c between that many slots); no LLAMA_ARG_* variables")
    return [Emission("llama-box", "v0.0.171", program="llama-box", argv=["-m", request.gguf_path, *context,
                                                                          *flags.argv],
                     per_sequence_context=request.ctx, notes=notes + flags.notes,
                     max_relative_deviation=deviation(request, gguf, flags))]
