"""The serving runtimes configured from the HF config: vLLM, SGLang, TGI, LMDeploy; and Ollama and transformers.

Each knows the versions the notes cover (shared/reference/runtimes.md); the default is the newest.
Every JSON override carries ``rope_type`` (never legacy ``type`` alone) and ``rope_theta``, and
``max_position_embeddings`` when the runtime derives its maximum length from it.
"""

from __future__ import annotations

from ropedoctor.runtimes.base import Emission, FlagRequest, compact, rope_parameters


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


def vllm(request: FlagRequest) -> list[Emission]:
    e = Emission("vllm", _label(request, "0.33"), program="vllm", argv=["serve", "MODEL"])
    after = request.after
    e.argv += ["--max-model-len", str(request.ctx)]
    overrides: dict[str, object] = {}
    if request.changed:
        params = rope_parameters(after)
        if _older(request, (0, 12)):  # rope_scaling dict + rope_theta until 0.11
            scaling = {k: v for k, v in params.items() if k != "rope_theta"}
            if _older(request, (0, 7)):
                e.argv += ["--rope-scaling", compact(scaling), "--rope-theta", f"{after.theta:g}"]
                e.notes.append("vLLM < 0.7: --rope-scaling/--rope-theta (removed in 0.11.1)")
            else:
                overrides.update({"rope_scaling": scaling, "rope_theta": after.theta})
        else:  # 0.12+: dict overrides replace the whole dict, unnormalised: rope_type and rope_theta inside
            overrides["rope_parameters"] = params
    derived = _vllm_derived(request, _planned_max_positions(request, overrides))
    if derived < request.ctx:
        overrides["max_position_embeddings"] = request.ctx
        e.notes.append(f"vLLM derives {derived} from the config; max_position_embeddings is overridden so "
                       f"--max-model-len {request.ctx} is accepted without VLLM_ALLOW_LONG_MAX_MODEL_LEN")
    if overrides:
        e.argv += ["--hf-overrides", compact(overrides)]
    if after.method == "dynamic":
        e.notes.append("vLLM's dynamic NTK is static: one base for the maximum length, also for short inputs")
    if after.method in ("linear", "dynamic") and after.context and after.factor:
        e.notes.append(f"vLLM multiplies max_position_embeddings by the factor ({after.context} x "
                       f"{after.factor:g}): keep --max-model-len explicit")
    e.per_sequence_context = request.ctx
    return [e]


def _vllm_derived(request: FlagRequest, base: int) -> int:
    """vLLM's _get_and_verify_max_len for the planned config (0.30+: YaRN no longer rescales)."""
    after = request.after
    factor = after.factor or 1.0
    if after.method in ("longrope", "llama3", "default", "none") or after.model_type in ("gemma3", "gemma3_text"):
        return base
    if after.method == "yarn":
        if _older(request, (0, 30)):
            return int((after.original_context or base) * factor)
        return base
    return int(base * factor)


def sglang(request: FlagRequest) -> list[Emission]:
    e = Emission("sglang", _label(request, "0.5.23"), program="python", argv=["-m", "sglang.launch_server",
                                                                          "--model-path", "MODEL"])
    after = request.after
    e.argv += ["--context-length", str(request.ctx)]
    overrides: dict[str, object] = {}
    if request.changed:
        overrides["rope_scaling"] = rope_parameters(after)  # merged into the existing dict; rope_type wins there
    # SGLang: factor x the first length key, but factor 1 when original_max_position_embeddings is set or llama3
    base = _planned_max_positions(request, overrides)
    factor = 1.0 if after.method in ("llama3", "yarn", "longrope", "default") else (after.factor or 1.0)
    if int(base * factor) < request.ctx:
        overrides["max_position_embeddings"] = request.ctx
        e.notes.append(f"SGLang derives {int(base * factor)}; max_position_embeddings is overridden so no "
                       f"SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN is needed")
    if overrides:
        e.argv += ["--json-model-override-args", compact(overrides)]
    e.per_sequence_context = request.ctx
    return [e]


def tgi(request: FlagRequest) -> list[Emission]:
    e = Emission("tgi", _label(request, "3.3"), program="text-generation-launcher", argv=["--model-id", "MODEL"])
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
    e = Emission("lmdeploy", _label(request, "0.18"), program="lmdeploy", argv=["serve", "api_server", "MODEL"])
    after = request.after
    e.argv += ["--session-len", str(request.ctx)]
    if request.changed:
        overrides: dict[str, object] = {"rope_scaling": rope_parameters(after)}
        _planned_max_positions(request, overrides)
        if after.method == "yarn":  # TurboMind rotates by max_position_embeddings / original
            overrides["max_position_embeddings"] = int((after.original_context or 0) * (after.factor or 1))
        if _older(request, (0, 9)):
            if after.method == "dynamic":
                e.argv += ["--rope-scaling-factor", f"{after.factor or 1:g}"]
            else:
                e.notes.append(f"LMDeploy < 0.9 has no --hf-overrides: write {after.method} into config.json")
        else:
            e.argv += ["--hf-overrides", compact(overrides)]
            e.notes.append("--rope-scaling-factor is not used: a no-op since 0.14 (TurboMind refactor)")
    e.per_sequence_context = request.ctx
    return [e]


def ollama(request: FlagRequest) -> list[Emission]:
    e = Emission("ollama", _label(request, "0.33"), program="ollama", argv=["run", "MODEL"])
    e.env = {"OLLAMA_CONTEXT_LENGTH": str(request.ctx)}
    e.snippet = f"PARAMETER num_ctx {request.ctx}"
    e.notes.append(f"or in a Modelfile: PARAMETER num_ctx {request.ctx}, or the API option num_ctx")
    if request.changed:
        e.notes.append("Ollama takes no RoPE parameters (rope_frequency_base/scale were removed in 0.1.35): the "
                       "scaling must be in the GGUF (`ropedoctor fix model.gguf`)")
    context = request.before.context or 0
    if request.before.format == "gguf" and request.ctx > context:
        e.notes.append(f"Ollama clamps num_ctx to the GGUF context_length ({context}): rewrite it with "
                       f"`ropedoctor fix`")
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
    e.snippet = f'from transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained("MODEL"{args})'
    e.notes.append("transformers applies no length limit; these kwargs set the config's RoPE")
    e.per_sequence_context = request.ctx
    return [e]
