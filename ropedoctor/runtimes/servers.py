"""The serving runtimes configured from the HF config: vLLM, SGLang, TGI, LMDeploy; and Ollama and transformers.

Each knows the versions the notes cover (shared/reference/runtimes.md); the default is the newest.
Every JSON override carries ``rope_type`` (never legacy ``type`` alone) and ``rope_theta``, and
``max_position_embeddings`` when the runtime derives its maximum length from it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ropedoctor import rope_math
from ropedoctor.families import family_of
from ropedoctor.runtimes.base import Emission, FlagRequest, compact, rope_parameters
from ropedoctor.runtimes.records import ServerRecord, derived_length, nested_labels, record
from ropedoctor.spec import RopeSpec


def _planned_max_positions(request: FlagRequest, overrides: dict[str, object]) -> int:
    """The max_position_embeddings the runtime will see: the plan's (overridden) or the file's."""
    if request.changed and request.after.context and request.after.context != request.before.context:
        overrides["max_position_embeddings"] = request.after.context
        return request.after.context
    return request.before.context or 2048


def _older(request: FlagRequest, than: tuple[int, ...]) -> bool:
    return request.version is not None and request.version < than


def _label(request: FlagRequest, newest: str) -> str:
    return ".".join(map(str, request.version)) if request.version else newest


@dataclass
class _Served:
    """What one server runtime needs in its override JSON (or why it cannot serve the plan)."""

    block: dict[str, Any] | None = None
    scalars: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    verdict: str | None = None
    cannot: str | None = None


def _layer(spec: RopeSpec, label: str) -> RopeSpec:
    layer = spec.layers[label]
    return replace(spec, method=layer.method, theta=layer.theta, factor=layer.factor, layers={})


def _file_block(spec: RopeSpec) -> dict[str, Any]:
    raw = spec.hf.raw_block if spec.hf is not None else None
    return dict(raw) if isinstance(raw, dict) else {}


def _short_deviation(after: RopeSpec, ctx: int, served: RopeSpec) -> float:
    """The largest relative frequency difference between a static RoPE (``served``) and transformers' dynamic
    NTK on inputs up to ctx (transformers keeps the trained base below its trained length)."""
    trained = after.dynamic_length or after.original_context or ctx
    lengths = {min(trained, ctx), ctx}
    static = rope_math.spec_inv_freq(served, ctx)
    return max(rope_math.relative_deviation(static, rope_math.spec_inv_freq(after, n)) for n in lengths)


def _served(request: FlagRequest, rec: ServerRecord) -> _Served:
    """The override a server runtime needs so that it derives a length >= ctx and builds the planned RoPE."""
    before, after, ctx = request.before, request.after, request.ctx
    out = _Served()
    model_type = before.model_type or ""
    if model_type in rec.no_model:
        out.cannot = rec.no_model[model_type]
        return out
    if after.method in rec.unsupported:
        out.cannot = rec.unsupported[after.method]
        return out
    if model_type in rec.model_methods:
        builds, why = rec.model_methods[model_type]
        wanted = {after.method} | {layer.method for layer in after.layers.values()} if after.layers else {after.method}
        if not wanted <= builds:
            out.cannot = f"{why}: the planned {after.method} RoPE would not run"
            return out
    raw = _file_block(before)
    method, factor = after.method, after.factor
    dynamic = [after] if after.method == "dynamic" else [_layer(after, label) for label in after.layers
                                                        if after.layers[label].method == "dynamic"]
    if request.changed or (dynamic and rec.dynamic != "per-sequence"):
        out.block = _block(after, rec, raw)
    block = out.block if out.block is not None else raw
    if dynamic and rec.dynamic != "per-sequence" and out.block is not None:
        for label in (nested_labels(after) or ("",)):
            target = out.block[label] if label else out.block
            spec = _layer(after, label) if label in after.layers else after
            if spec.method == "dynamic":
                _static_dynamic(target, spec, rec, ctx, out)
        if not after.layers and rec.dynamic == "static-at-factor":
            method, factor = "default", None
    if dynamic and rec.dynamic != "per-sequence":
        static = replace(after, method="default", theta=rope_math.dynamic_base(
            after.theta or 10_000.0, after.rotary_dim or 2, after.factor or 1.0, ctx,
            after.dynamic_length or after.original_context or ctx), factor=None)
        deviation = _short_deviation(after, ctx, static)
        out.verdict = "exact" if deviation < 1e-6 else \
            f"approximate: exact at {ctx} tokens, shorter inputs differ by up to {deviation:.0%}"
        out.notes.append(f"{rec.runtime}'s dynamic NTK is static: one base for every input, transformers' base at "
                         f"{ctx} tokens")
    if after.method == "yarn" and rec.mrope_yarn_original_times != 1 and "mrope_section" in raw \
            and after.original_context:
        widened = replace(after, original_context=after.original_context * rec.mrope_yarn_original_times)
        deviation = rope_math.relative_deviation(rope_math.spec_inv_freq(widened, ctx),
                                                 rope_math.spec_inv_freq(after, ctx))
        out.verdict = f"approximate: frequencies differ by up to {deviation:.0%}"
        out.notes.append(f"{rec.runtime}'s M-RoPE YaRN takes its correction range from "
                         f"{rec.mrope_yarn_original_times} x original_max_position_embeddings")
    if after.method == "longrope" and rec.longrope == "long-past-original" and after.original_context \
            and ctx > after.original_context and after.long_factor and after.short_factor:
        short = min(after.original_context, ctx)
        deviation = rope_math.relative_deviation(rope_math.spec_inv_freq(after, ctx),
                                                 rope_math.spec_inv_freq(after, short))
        out.verdict = f"approximate: inputs up to {short} tokens differ by up to {deviation:.0%}"
        out.notes.append(f"{rec.runtime} uses LongRoPE's long factors for every input once the maximum length "
                         f"exceeds {after.original_context}; transformers switches per input")
    if after.method == "yarn" and rec.honours_attn_factor:
        _, want = rope_math.spec_inv_freq(after, ctx)
        merged = {**raw, **(out.block or {})} if rec.merge == "merge" else (out.block or raw)
        mscale, all_dim = merged.get("mscale"), merged.get("mscale_all_dim")
        if isinstance(mscale, (int, float)) and isinstance(all_dim, (int, float)) and mscale and all_dim:
            runs = rope_math.yarn_mscale(factor or 1.0, float(mscale)) / rope_math.yarn_mscale(factor or 1.0,
                                                                                          float(all_dim))
        else:
            runs = rope_math.yarn_mscale(factor or 1.0)
        if "attn_factor" in merged or abs(runs - want) > 1e-9 * want:
            out.block = {**(out.block or _block(after, rec, raw)), "attn_factor": want / runs}
            if "attn_factor" in raw:
                out.notes.append(f"SGLang multiplies YaRN's attention scale by the file's attn_factor "
                                 f"({raw['attn_factor']}), which transformers ignores: overridden to match it")
    if after.method == "yarn" and rec.yarn_factor_from_positions and after.original_context and after.factor:
        # TurboMind takes YaRN's factor as max_position_embeddings / original (its attention scale from factor)
        positions = round(after.original_context * after.factor)
        if positions != before.context or out.block is not None:
            out.scalars["max_position_embeddings"] = positions
            out.block = out.block or _block(after, rec, raw)
    if request.changed and after.context and after.context != before.context \
            and "max_position_embeddings" not in out.scalars \
            and not (rec.yarn_factor_from_positions and after.method == "yarn"):
        out.scalars["max_position_embeddings"] = after.context
    if rec.refuses_longer:
        _lift_length(request, rec, out, method, factor, block)
    return out


def _static_dynamic(block: dict[str, Any], spec: RopeSpec, rec: ServerRecord, ctx: int, out: _Served) -> None:
    """Make a runtime whose dynamic NTK is static use transformers' base at ctx."""
    trained = spec.dynamic_length or spec.original_context or ctx
    if rec.dynamic == "trained-positions":
        # vLLM: base x (factor x max_position / max_trained_positions - (factor - 1))^(d/(d-2)) and a cache of
        # max_position rows; max_trained_positions defaults to max_position (the base never grows). With
        # max_position = ctx and max_trained_positions = the trained length (ctx when shorter: no growth) it is
        # the base transformers uses at ctx
        block["max_trained_positions"] = min(trained, ctx)
        out.scalars["max_position_embeddings"] = ctx
    else:
        # SGLang: the base transformers reaches at factor x max_position_embeddings, for every input; as plain
        # RoPE with transformers' base at ctx it is exact at ctx
        block.update({"rope_type": "default", "rope_theta": rope_math.dynamic_base(
            spec.theta or 10_000.0, spec.rotary_dim or 2, spec.factor or 1.0, ctx, trained)})
        # plain RoPE has no factor to multiply the length by: the length key itself must reach ctx (plan keeps
        # max_position_embeddings at the trained length for dynamic NTK)
        out.scalars["max_position_embeddings"] = max(ctx, spec.context or 0)


def _lift_length(request: FlagRequest, rec: ServerRecord, out: _Served, method: str, factor: float | None,
                 block: dict[str, Any]) -> None:
    """Raise every length key the runtime reads that holds it below ctx."""
    before, ctx = request.before, request.ctx
    text = before.hf.text if before.hf is not None else {}
    lengths = {key: value for key in rec.length_keys
               if isinstance(value := text.get(key), int) and not isinstance(value, bool)}
    if "max_position_embeddings" not in lengths and before.context:
        lengths["max_position_embeddings"] = before.context  # the config class's default
    lengths.update(out.scalars)
    merged = {**block, **(out.block or {})} if rec.merge == "merge" else (out.block or block)
    derived = derived_length(rec, lengths, method, factor, merged, before.model_type,
                             nested=bool(nested_labels(before)))
    if derived is not None and derived >= ctx:
        return
    raised = [key for key, value in lengths.items() if value < ctx] or ["max_position_embeddings"]
    for key in raised:
        out.scalars[key] = ctx
    out.notes.append(f"{rec.runtime} derives {derived} from the config ({', '.join(rec.length_keys[:3])}, ...: "
                     f"{'the smallest' if rec.length_rule == 'smallest' else 'the first'} it finds); "
                     f"{', '.join(raised)} {'is' if len(raised) == 1 else 'are'} raised to {ctx} so "
                     f"{rec.length_flag} {ctx} starts without {rec.allow_env}")


def _block(spec: RopeSpec, rec: ServerRecord, raw: dict[str, Any], *, nested: bool = True) -> dict[str, Any]:
    """A complete scaling block for the plan: rope_type and rope_theta inside (a replacing merge loses
    everything else), the file's M-RoPE keys and partial rotary factor kept; per layer type where the config
    nests the block by layer type (a flat block would replace that dict)."""
    labels = nested_labels(spec) if nested else ()
    if labels:
        return {label: _block(_layer(spec, label) if label in spec.layers else spec, rec, {}, nested=False)
                for label in labels}
    block = rope_parameters(spec)
    for key in rec.block_keeps:
        if key in raw:
            block[key] = raw[key]
    if spec.partial_rotary_factor != 1.0:
        block["partial_rotary_factor"] = spec.partial_rotary_factor
    return block


def _overrides(request: FlagRequest, served: _Served, rec: ServerRecord) -> dict[str, Any]:
    """The override JSON, nested under the text model's config for composite configs: the runtimes read
    the text config, and an override of the top level never reaches it."""
    inner: dict[str, Any] = dict(served.scalars)
    if served.block is not None:
        inner = {rec.block_key: served.block, **inner}
    return _nest(request.before, inner)


def _text_path(spec: RopeSpec) -> str:
    """Where the runtimes' transformers keeps this model's text config: the file's own nesting, else the
    family's (Qwen2.5-VL's older files keep text keys at the top; transformers 5 moves them to text_config)."""
    if spec.hf is not None and spec.hf.prefix:
        return spec.hf.prefix.rstrip(".")
    paths = family_of(spec.model_type).text_paths
    return paths[0] if paths else ""


def _nest(spec: RopeSpec, inner: dict[str, Any]) -> dict[str, Any]:
    path = _text_path(spec)
    if not inner or not path:
        return inner
    for part in reversed(path.split(".")):
        inner = {part: inner}
    return inner


def _server(request: FlagRequest, rec: ServerRecord, e: Emission) -> None:
    served = _served(request, rec)
    e.notes += served.notes
    e.verdict = served.verdict
    if served.cannot:
        e.cannot_serve = served.cannot
        return
    overrides = _overrides(request, served, rec)
    path = _text_path(request.before)
    if overrides and path and rec.nest_depth is not None and path.count(".") + 1 > rec.nest_depth:
        e.cannot_serve = (f"its text config is {path}, and {rec.runtime}'s override merge reaches "
                          f"{rec.nest_depth} level(s) down (a deeper dict replaces the sub-config)")
        return
    if request.non_causal:
        if not rec.embedding_flags:
            e.cannot_serve = f"{rec.runtime} serves no embedding (encoder) models"
            return
        e.argv += list(rec.embedding_flags)
    if request.before.remote_code:  # the family ships its own configuration/modeling code
        e.argv.append(rec.remote_code_flag)
    e.argv += [rec.length_flag, str(request.ctx)]
    if overrides:
        e.argv += [rec.override_flag, compact(overrides)]
    e.per_sequence_context = request.ctx


def vllm(request: FlagRequest) -> list[Emission]:
    e = Emission("vllm", _label(request, "0.33"), program="vllm", argv=["serve", request.hf_path])
    after = request.after
    if _older(request, (0, 12)):  # rope_scaling dict + rope_theta until 0.11 (notes; not replayed)
        e.argv += ["--max-model-len", str(request.ctx)]
        overrides: dict[str, object] = {}
        if request.changed:
            params = rope_parameters(after)
            scaling = {k: v for k, v in params.items() if k != "rope_theta"}
            if _older(request, (0, 7)):
                e.argv += ["--rope-scaling", compact(scaling), "--rope-theta", f"{after.theta:g}"]
                e.notes.append("vLLM < 0.7: --rope-scaling/--rope-theta (removed in 0.11.1)")
            else:
                overrides.update({"rope_scaling": scaling, "rope_theta": after.theta})
        if after.method == "yarn":
            derived = int((after.original_context or 0) * (after.factor or 1.0))
        else:
            derived = int(_planned_max_positions(request, overrides) * (after.factor or 1.0))
        if derived < request.ctx:
            overrides["max_position_embeddings"] = request.ctx
        if overrides:
            e.argv += ["--hf-overrides", compact(overrides)]
        e.per_sequence_context = request.ctx
        return [e]
    rec = record("vllm", request.version)
    _server(request, rec, e)
    if not rec.proven:
        e.notes.append(f"vLLM {rec.versions}: from the notes, not replayed through that version's code")
    return [e]


def sglang(request: FlagRequest) -> list[Emission]:
    e = Emission("sglang", _label(request, "0.5.23"), program="python", argv=["-m", "sglang.launch_server",
                                                                          "--model-path", request.hf_path])
    _server(request, record("sglang", request.version), e)
    return [e]


def tgi(request: FlagRequest) -> list[Emission]:
    e = Emission("tgi", _label(request, "3.3"), program="text-generation-launcher", argv=["--model-id", request.hf_path])
    after = request.after
    e.argv += ["--max-input-tokens", str(request.ctx - 1), "--max-total-tokens", str(request.ctx)]
    if request.changed:
        if after.method in ("linear", "dynamic"):
            e.argv += ["--rope-scaling", after.method, "--rope-factor", f"{after.factor or 1:g}"]
            if after.method == "linear":
                e.notes.append("TGI's static rotary path appears not to apply linear scaling (flash models); "
                               "verify with `ropedoctor smoke`")
            e.notes.append("--rope-scaling replaces the config's whole rope_scaling with {type, factor}")
        else:
            e.notes.append(f"TGI has no flag for {after.method} (--rope-scaling takes only linear|dynamic): write it "
                           f"into config.json with `ropedoctor fix`; TGI reads it from there")
    e.per_sequence_context = request.ctx
    return [e]


def lmdeploy(request: FlagRequest) -> list[Emission]:
    e = Emission("lmdeploy", _label(request, "0.18"), program="lmdeploy", argv=["serve", "api_server", request.hf_path])
    after = request.after
    if _older(request, (0, 9)):  # no --hf-overrides before 0.9 (notes; not replayed)
        e.argv += ["--session-len", str(request.ctx)]
        if request.changed:
            if after.method == "dynamic":
                e.argv += ["--rope-scaling-factor", f"{after.factor or 1:g}"]
            else:
                e.notes.append(f"LMDeploy < 0.9 has no --hf-overrides: write {after.method} into config.json")
        e.per_sequence_context = request.ctx
        return [e]
    rec = record("lmdeploy", request.version)
    _server(request, rec, e)
    if after.method == "yarn" and not e.cannot_serve:
        e.notes.append("TurboMind takes YaRN's factor as max_position_embeddings / original: "
                       "max_position_embeddings is set to original x factor")
    return [e]


def ollama(request: FlagRequest) -> list[Emission]:
    # Ollama runs models by name: a GGUF becomes one with `ollama create NAME -f Modelfile` (FROM the file)
    gguf = request.gguf_path
    name = shlex.quote(Path(gguf).stem.lower().replace(" ", "-")) if request.before.format == "gguf" else "MODEL"
    e = Emission("ollama", _label(request, "0.33"), program="ollama", argv=["run", name])
    e.env = {"OLLAMA_CONTEXT_LENGTH": str(request.ctx)}
    e.snippet = f"FROM {gguf}\nPARAMETER num_ctx {request.ctx}"
    e.notes.append(f"first `ollama create {name} -f Modelfile` with the Modelfile above (its num_ctx, or the API "
                   f"option num_ctx, sets the length per model)")
    if request.changed:
        e.notes.append(f"Ollama takes no RoPE parameters (rope_frequency_base/scale were removed in 0.1.35): the "
                       f"scaling must be in the GGUF (`ropedoctor fix {shlex.quote(gguf)} --ctx {request.ctx}`)")
    context = request.before.context or 0
    if request.before.format == "gguf" and request.ctx > context:
        e.notes.append(f"Ollama clamps num_ctx to the GGUF context_length ({context}): rewrite it with "
                       f"`ropedoctor fix {shlex.quote(gguf)} --ctx {request.ctx}`")
    e.per_sequence_context = request.ctx
    return [e]


def transformers(request: FlagRequest) -> list[Emission]:
    after = request.after
    e = Emission("transformers", _label(request, "5.23"))
    kwargs: dict[str, object] = {}
    if request.changed:
        if _older(request, (5,)):
            kwargs = {"rope_scaling": {k: v for k, v in rope_parameters(after).items() if k != "rope_theta"},
                      "rope_theta": after.theta}
        else:  # a rope_parameters kwarg replaces the dict wholesale: rope_type and rope_theta inside
            kwargs = {"rope_parameters": rope_parameters(after)}
        if after.context != request.before.context and after.context:
            kwargs["max_position_embeddings"] = after.context
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    if request.before.remote_code:
        args += ", trust_remote_code=True"
    auto = "AutoModel" if request.non_causal else "AutoModelForCausalLM"
    e.snippet = f"from transformers import {auto}\nmodel = {auto}.from_pretrained({json.dumps(request.hf_path)}{args})"
    e.notes.append("transformers applies no length limit; these kwargs set the config's RoPE")
    e.per_sequence_context = request.ctx
    return [e]
