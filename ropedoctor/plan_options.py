"""`ropedoctor plan`: the ways to reach --ctx N side by side, what each runtime does with each, and the memory bill.

The options come from fix's own policy (``plan.plan``): the recommended plan first, then each
method forced with ``--type`` (PI/linear, dynamic NTK, static NTK base, YaRN), and the model's
own llama3 or longrope when it has one. Which runtime supports an option is not restated here:
each runtime module (``runtimes/``) is asked for the flags that realise it, and the answer is read
off what it emits (RoPE flags or overrides, nothing but a context flag, llama.cpp's deviation
from transformers). The memory bill is ``memory.py``'s.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropedoctor.errors import InputError
from ropedoctor.memory import ModelShape
from ropedoctor.model import methods
from ropedoctor.spec import RopeSpec

# How far llama.cpp's frequencies may be from transformers' and still be the same method (ggml float32 angles).
_SAME_AS_TRANSFORMERS = 1e-3


@dataclass(frozen=True)
class RuntimeSupport:
    runtime: str
    version: str
    support: str  # "as-is" (no RoPE change needed), "flags", "file-only", "approximate"
    notes: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "version": self.version, "support": self.support, "notes": self.notes}


@dataclass(frozen=True)
class Option:
    name: str  # "plan" or the method forced (linear, dynamic, ntk, yarn, llama3, longrope)
    spec: RopeSpec | None  # None when the option cannot reach N
    reasons: list[str] = field(default_factory=list)
    runtimes: list[RuntimeSupport] = field(default_factory=list)
    why_not: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "available": self.spec is not None}
        if self.spec is None:
            out["why"] = self.why_not
            return out
        spec = self.spec
        out.update({
            "method": spec.method, "factor": spec.factor, "theta": spec.theta,
            "original_context": spec.original_context, "context": spec.context,
            "serves": spec.served_context(), "reasons": self.reasons, "notes": [_method_note(self)],
            "runtimes": [r.as_json() for r in self.runtimes],
        })
        return out


def _method_note(option: Option) -> str:
    key = "ntk" if option.name == "ntk" else (option.spec.method if option.spec else option.name)
    method = methods.get(key)  # the caveats live in the method table
    return method.caveat if method else ""


def options(spec: RopeSpec, ctx: int, parallel: int = 1, runtimes: list[str] | None = None) -> list[Option]:
    """Every way to serve ``ctx`` tokens: fix's plan first, then each method forced; ``runtimes`` (canonical
    names) limits the support rows, None: every runtime."""
    from ropedoctor.plan import PLAN_TYPES, Target, plan

    if not spec.has_rope:
        return []
    out: list[Option] = []
    try:
        recommended = plan(spec, Target(ctx=ctx))
        out.append(Option("plan", recommended.after, recommended.reasons, _support(spec, recommended.after, ctx, parallel, runtimes)))
    except InputError as error:
        out.append(Option("plan", None, why_not=error.why))
    for method in PLAN_TYPES:
        try:
            forced = plan(spec, Target(ctx=ctx, method=method))
        except InputError as error:
            out.append(Option(method, None, why_not=error.why))
            continue
        out.append(Option(method, forced.after, forced.reasons, _support(spec, forced.after, ctx, parallel, runtimes)))
    if spec.method in ("llama3", "longrope"):
        own = out[0].spec
        if own is None or own.method != spec.method:
            served = spec.served_context()
            out.append(Option(spec.method, spec if served and served >= ctx else None,
                              ["the model's own method as trained"],
                              _support(spec, spec, ctx, parallel, runtimes) if served and served >= ctx else [],
                              why_not=None if served and served >= ctx else f"serves {served} < {ctx} tokens"))
    return out


def _support(before: RopeSpec, after: RopeSpec, ctx: int, parallel: int,
             runtimes: list[str] | None = None) -> list[RuntimeSupport]:
    """What each runtime module emits for this option, read as a support level."""
    from ropedoctor.runtimes import RUNTIMES, FlagRequest

    request = FlagRequest(before, after, ctx, parallel)
    unchanged = FlagRequest(before, before, ctx, parallel)
    rows: list[RuntimeSupport] = []
    for name, emit in RUNTIMES.items():
        if runtimes is not None and name not in runtimes:
            continue
        emissions = emit(request)
        baseline = emit(unchanged)
        for emission, plain in zip(emissions, baseline, strict=False):
            if not request.changed:
                support = "as-is"
            elif (emission.argv, emission.env, emission.snippet) == (plain.argv, plain.env, plain.snippet):
                support = "file-only"  # nothing on the command line carries the RoPE: write it with `fix`
            else:
                support = "flags"
            deviation = emission.max_relative_deviation
            if support != "file-only" and deviation is not None and deviation > _SAME_AS_TRANSFORMERS:
                support = "approximate"
            label = emission.runtime if emission.program in ("", name, "llama-server", "vllm", "python",
                                                              "text-generation-launcher", "lmdeploy", "ollama",
                                                              "llama-box") else f"{emission.runtime} ({emission.program})"
            rows.append(RuntimeSupport(label, emission.version, support, emission.notes))
    return rows


# --- the memory bill -----------------------------------------------------------------------------
def shape_of(spec: RopeSpec) -> tuple[ModelShape | None, str | None]:
    """(shape, None) or (None, why the shape is unknown)."""
    from ropedoctor.memory import shape_from_config, shape_from_gguf

    path = Path(spec.source)
    if spec.format == "hf-config" and spec.hf is not None:
        text = dict(spec.hf.text)
        text.setdefault("model_type", spec.model_type)
        return shape_from_config(text, spec.source), None
    if spec.format == "hf-config" and path.is_file():  # models without RoPE keep no layout: read the file again
        from ropedoctor.sources.json_file import read_json_object

        return shape_from_config(read_json_object(path), spec.source), None
    if spec.format == "gguf" and path.is_file():
        from ropedoctor.sources.gguf_header import check_shards, read_gguf

        shards = check_shards(path)
        rest = [read_gguf(shard) for shard in shards[1:]]
        return shape_from_gguf(read_gguf(path), sum(t.n_elements for h in rest for t in h.tensors)), None
    return None, "the file is not local; run plan on the downloaded file for the memory bill"


def weights_of(spec: RopeSpec, shape: ModelShape | None, dtype: str | None) -> Any:
    """The weights' size from the file when it tells it, else an estimate (or None)."""
    from ropedoctor.memory import estimated_weights, weights_from_folder, weights_from_gguf

    path = Path(spec.source)
    if spec.format == "gguf" and path.is_file():
        from ropedoctor.sources.gguf_header import check_shards, read_gguf

        shards = check_shards(path)
        return weights_from_gguf(read_gguf(path), tuple(read_gguf(s) for s in shards[1:]))
    if spec.format == "hf-config" and path.is_file():
        found = weights_from_folder(path.parent)
        if found is not None:
            return found
    return estimated_weights(shape, dtype) if shape is not None else None


def memory_bill(spec: RopeSpec, ctx: int, parallel: int, kv_dtype: str, weights_dtype: str | None) -> dict[str, Any]:
    from ropedoctor.memory import kv_bytes_per_token, kv_cache_bytes

    out: dict[str, Any] = {"kv_dtype": kv_dtype, "ctx": ctx, "slots": parallel}
    try:
        shape, why = shape_of(spec)
    except InputError as error:  # the options stand without the bill
        shape, why = None, error.why
    weights = weights_of(spec, shape, weights_dtype)
    if shape is None:
        out.update({"available": False, "why": why})
        return out
    per_slot = kv_cache_bytes(shape, ctx, kv_dtype)
    weights_json = None if weights is None else {"bytes": weights.bytes, "source": weights.source,
                                                  "exact": weights.exact, "dtype": weights.dtype}
    out.update({
        "available": True,
        "layers": shape.n_layers, "kv_heads": list(shape.layer_kv_heads) if shape.layer_kv_heads else shape.n_kv_heads,
        "head_dim": shape.head_dim, "v_head_dim": shape.v_head_dim,
        "mla": {"kv_lora_rank": shape.kv_lora_rank, "qk_rope_head_dim": shape.qk_rope_head_dim} if shape.is_mla else None,
        "sliding_window": shape.sliding_window, "sliding_layers": shape.sliding_layers,
        "window_kind": shape.window_kind if shape.sliding_window else None, "causal": shape.causal,
        "kv_bytes_per_token": kv_bytes_per_token(shape, kv_dtype),
        "kv_bytes_per_slot": per_slot, "kv_bytes_total": per_slot * parallel,
        "weights": weights_json,
        "total_bytes": per_slot * parallel + (weights.bytes if weights is not None else 0),
        "notes": list(shape.notes) + ([] if shape.causal else ["non-causal encoder: no KV cache"]),
    })
    return out


# --- the command ----------------------------------------------------------------------------------
def plan_document(spec: RopeSpec, ctx: int, parallel: int, kv_dtype: str, weights_dtype: str | None,
                  runtimes: list[str] | None = None) -> dict[str, Any]:
    from ropedoctor import __version__
    from ropedoctor.report import rope_json

    found = options(spec, ctx, parallel, runtimes)
    return {
        "ropedoctor": __version__, "source": spec.source, "format": spec.format, "model_type": spec.model_type,
        "ctx": ctx, "parallel": parallel, "rope": rope_json(spec),
        "options": [o.as_json() for o in found],
        "memory": memory_bill(spec, ctx, parallel, kv_dtype, weights_dtype),
    }


def run_plan(path: str, ctx: int, parallel: int, kv_dtype: str, weights_dtype: str | None, output: str,
             runtimes: list[str] | None = None) -> int:
    """``runtimes``: the --runtime values as typed (any case, aliases, comma lists); None or empty: every runtime."""
    from ropedoctor.commands import _single, warn_past_sane_scaling
    from ropedoctor.memory import dtype_blocks
    from ropedoctor.runtimes import RUNTIMES
    from ropedoctor.runtimes.names import runtime_names

    try:
        wanted = runtime_names(runtimes, RUNTIMES) if runtimes else None
        if weights_dtype is not None:
            dtype_blocks(weights_dtype)
        spec = _single(path, None, "hf-config").spec
        if spec.has_rope:
            warn_past_sane_scaling(spec, ctx, None)
        doc = plan_document(spec, ctx, parallel, kv_dtype, weights_dtype, wanted)
    except InputError as error:
        print(error.line, file=sys.stderr)
        return 2
    beyond_table = spec.positions == "absolute" and spec.position_table and ctx > spec.position_table
    if output == "json":
        print(json.dumps(doc, indent=2))
    else:
        from ropedoctor.terminal import emit

        emit(plan_lines(doc, spec))
    return 1 if beyond_table else 0


def _size(count: int | None) -> str:
    if count is None:
        return "-"
    if count >= 1 << 80:  # a shape of 10^300 (a hostile hidden_size): no float holds it, no machine either
        return f"about 10^{len(str(int(count))) - 1} B"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count} B"


# The support levels as the text table says them (JSON keeps the keys).
SUPPORT_MARKS = {"as-is": "as is", "flags": "flags", "file-only": "file only", "approximate": "approx"}
SUPPORT_LEGEND = ("flags: `ropedoctor flags` prints them; file only: no flag carries it, write it with "
                  "`ropedoctor fix`; approx: llama.cpp computes other frequencies than transformers; as is: "
                  "nothing to change")


def plan_lines(doc: dict[str, Any], spec: RopeSpec) -> list[Any]:
    """Text output: the options, what each runtime needs for each (runtimes down, options across), the memory bill."""
    from ropedoctor.fmt import number, plural
    from ropedoctor.report import spec_summary

    lines: list[Any] = [[(f"{doc['source']} ({doc['model_type']})", "bold")]]
    lines += [[("  " + text, "")] for text in spec_summary(spec).splitlines()]
    ctx = doc["ctx"]
    first = doc["options"][0] if doc["options"] else None
    if not doc["options"]:
        lines.append([(f"  {spec.positions} positions, not RoPE: no scaling option applies", "yellow")])
    elif first is not None and first["available"] and all(r["support"] == "as-is" for r in first["runtimes"]):
        lines.append([(f"  nothing to change: the file already serves {number(first['serves'])} tokens, {ctx} asked; "
                       f"`ropedoctor flags --ctx {ctx}` prints each runtime's context flag", "green")])
    else:
        available = [o for o in doc["options"] if o["available"]]
        lines.append([(f"ways to serve {ctx} tokens per sequence", "bold")])
        lines.append([(f"  {'option':<9}{'method':<10}{'factor':>7}{'theta':>11}{'serves':>9}", "dim")])
        for o in doc["options"]:
            if not o["available"]:
                lines.append([(f"  {o['name']:<9}unavailable: {o['why']}", "yellow")])
                continue
            lines.append([(f"  {o['name']:<9}{o['method']:<10}{number(o['factor']):>7}{number(o['theta']):>11}"
                           f"{number(o['serves']):>9}", "green" if o["name"] == "plan" else "")])
        if available and available[0]["runtimes"]:
            names = [o["name"] for o in available]
            width = max(2 + max(len(word) for word in SUPPORT_MARKS.values()), *(len(n) + 2 for n in names))
            labels = [r["runtime"] for r in available[0]["runtimes"]]
            first_col = max(len(label) for label in labels) + 2
            lines.append([("what each runtime needs", "bold")])
            lines.append([("  " + "runtime".ljust(first_col) + "".join(n.ljust(width) for n in names).rstrip(), "dim")])
            for row, label in enumerate(labels):
                cells = "".join(SUPPORT_MARKS[o["runtimes"][row]["support"]].ljust(width) for o in available)
                lines.append([("  " + label.ljust(first_col), ""), (cells.rstrip(), "")])
            lines.append([("  " + SUPPORT_LEGEND, "dim")])
        for o in available:
            lines.append([(f"  {o['name']}: ", "bold"), ("; ".join(o["reasons"]), "")])
        lines.append([("caveats", "bold")])
        seen: set[str] = set()
        for o in available:
            for note in o["notes"]:
                if note and note not in seen:
                    seen.add(note)
                    lines.append([(f"  - {note}", "dim")])
    memory = doc["memory"]
    lines.append([(f"memory ({memory['kv_dtype']} KV cache, {plural(doc['parallel'], 'slot')} of {ctx} tokens)",
                   "bold")])
    if not memory["available"]:
        lines.append([("  " + memory["why"], "yellow")])
        return lines
    window = ""
    if memory["sliding_window"]:
        window = f", {memory['sliding_layers']} {memory['window_kind']} layers capped at {memory['sliding_window']}"
    kv_heads = memory["kv_heads"]
    layout = (f"MLA latent {memory['mla']['kv_lora_rank']} + {memory['mla']['qk_rope_head_dim']}" if memory["mla"]
              else f"{kv_heads} KV heads x {memory['head_dim']}")
    lines.append([(f"  {memory['layers']} layers, {layout}{window}", "")])
    lines.append([(f"  KV cache: {_size(memory['kv_bytes_per_token'])} per token, {_size(memory['kv_bytes_per_slot'])} "
                   f"per slot, {_size(memory['kv_bytes_total'])} in total", "")])
    weights = memory["weights"]
    if weights is not None:
        label = weights["source"] if weights["exact"] else f"estimate from the shape, {weights['dtype']}"
        lines.append([(f"  weights: {_size(weights['bytes'])} ({label})", "")])
    lines.append([(f"  total: {_size(memory['total_bytes'])}", "bold")])
    lines += [[("  - " + note, "dim")] for note in memory["notes"]]
    return lines

