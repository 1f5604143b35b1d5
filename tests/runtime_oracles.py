"""Run the serving runtimes' own code, read out of their wheels, on a config and the flags ropedoctor emitted.

``python tests/runtime_oracles.py RUNTIME SRC_DIR < cases.json > results.json``, one process per runtime, with the
transformers that runtime pins first on PYTHONPATH (tests/test_runtime_oracles.py sets that up). Each case is
``{"id", "config": <config.json dict>, "overrides": <the override JSON of the emitted flags>, "ctx": <the length
flag>}``; each result says whether the runtime accepts the length (``accepted``/``error``), the length it derived,
and the RoPE it builds per layer kind: the rotary class, and the inverse frequencies, attention scale and cache rows
that class computes.

What runs is the runtimes' own code: whole modules where their imports can be met by small stand-ins (the rotary
embedding packages), and otherwise the named functions and methods compiled out of the real source file (the
config loading, override merging and length derivation, whose modules import the whole engine). Only the model
files' ``get_rope(...)`` call arguments are restated here (``_vllm_rope_args`` and friends, a few lines each, copied
from the model file named beside them): a model file imports attention kernels, distributed state and quantisation
layers that cannot load without a GPU stack.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import logging
import math
import re
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch

LOG = logging.getLogger("runtime_oracles")


class _Logger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """vLLM's and SGLang's loggers have *_once variants."""

    def warning_once(self, *args: Any, **kwargs: Any) -> None:
        pass

    def info_once(self, *args: Any, **kwargs: Any) -> None:
        pass

    def debug_once(self, *args: Any, **kwargs: Any) -> None:
        pass


def _logger(name: str = "stub") -> _Logger:
    return _Logger(logging.getLogger(name), {})


def _module(name: str, **attrs: Any) -> types.ModuleType:
    """A stand-in module (and its parents, as packages) registered in sys.modules."""
    parts = name.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        if parent not in sys.modules:
            package = types.ModuleType(parent)
            package.__path__ = []
            sys.modules[parent] = package
    module = sys.modules.get(name) or types.ModuleType(name)
    if not hasattr(module, "__path__"):
        module.__path__ = []
    for key, value in attrs.items():
        setattr(module, key, value)
    sys.modules[name] = module
    return module


def _load_package(name: str, directory: Path) -> types.ModuleType:
    """Import a real package from the extracted wheel under its real name."""
    spec = importlib.util.spec_from_file_location(name, directory / "__init__.py",
                                                  submodule_search_locations=[str(directory)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def compile_defs(path: Path, names: list[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """Compile the named top-level functions, classes, assignments, or ``Class.method``s of a real source file
    into ``namespace``, keeping the file name and line numbers (tracebacks point at the runtime's own lines).

    Decorators are dropped (caches and registries of the engine); a method comes out as a plain function.
    """
    tree = ast.parse(path.read_text(), str(path))
    wanted: list[ast.stmt] = []
    for name in names:
        owner, _, member = name.partition(".")
        found = None
        for node in tree.body:
            if (isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == owner) or (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == owner for t in node.targets)) or (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == owner):
                found = node
        if found is None:
            raise LookupError(f"{path}: no top-level {owner}")
        if member:
            assert isinstance(found, ast.ClassDef)
            methods = [n for n in found.body if isinstance(n, ast.FunctionDef) and n.name == member]
            if not methods:
                raise LookupError(f"{path}: no {name}")
            found = methods[0]
        if isinstance(found, (ast.FunctionDef, ast.ClassDef)):
            found.decorator_list = []
        wanted.append(found)
    code = compile(ast.Module(body=wanted, type_ignores=[]), str(path), "exec")
    exec(code, namespace)
    return namespace


class _Recorder:
    """A stand-in for ``torch`` inside a rotary module: computes everything as torch does, except that
    ``einsum`` (the position x frequency outer product, up to 10^7 elements per cache) records its inputs and
    returns one row. The frequencies and the cache length are the class's own; nothing else is skipped."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[float]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def einsum(self, equation: str, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
        # positions may be pre-scaled (linear: t / factor): the effective frequency is inv_freq x the step
        step = float(positions[1] - positions[0]) if positions.numel() > 1 else 1.0
        self.calls.append((int(positions.numel()), [float(x) * step for x in inv_freq.flatten()]))
        return torch.outer(positions[:1].to(inv_freq.dtype), inv_freq)


def _built(rope: Any, recorder: _Recorder) -> dict[str, Any]:
    rows, inv_freq = recorder.calls[0] if recorder.calls else (0, [])
    out: dict[str, Any] = {}
    if hasattr(rope, "long_mscale"):  # LongRoPE: a short cache (original rows) and a long one
        out["long"] = {"rows": recorder.calls[-1][0], "inv_freq": recorder.calls[-1][1],
                       "scale": float(rope.long_mscale)}
    recorder.calls.clear()
    scale = getattr(rope, "mscale", None)
    if scale is None:
        scale = getattr(rope, "short_mscale", getattr(rope, "attention_factor", None))
    return {"class": type(rope).__name__, "base": float(getattr(rope, "base", 0.0)),
            "rotary_dim": int(getattr(rope, "rotary_dim", 0)), "rows": rows, "inv_freq": inv_freq,
            "scale": float(scale) if scale is not None else 1.0, **out}


def _auto_or_remote(auto_config: Any, folder: str) -> Any:
    """AutoConfig, as the runtimes call it. A family whose config class is remote code (the repo's
    configuration_*.py, which a fixture does not carry) loads with `--trust-remote-code` as that class; the stand-in
    here is transformers' PretrainedConfig over the same dict, which is what those classes build on, and what
    LMDeploy's own config_from_pretrained falls back to."""
    from transformers import PretrainedConfig

    try:
        return auto_config.from_pretrained(folder, trust_remote_code=False)
    except ValueError as error:
        if not any(why in str(error) for why in ("does not recognize", "trust_remote_code", "custom code")):
            raise
        config = PretrainedConfig.from_pretrained(folder)
        config.remote_code_stand_in = True
        return config


def transformers_rope(text: Any, ctx: int) -> dict[str, Any]:
    """The RoPE of a model run through transformers' own modeling code (vLLM's Transformers backend): the
    model type's rotary module over the final text config, at ctx tokens for dynamic NTK."""
    import importlib

    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    family = text.model_type.removesuffix("_text")
    try:
        module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
        name = next(n for n in sorted(dir(module)) if n.endswith("RotaryEmbedding") and not n.startswith("_"))
        params = getattr(text, "rope_parameters", None) or {}
    except (ImportError, StopIteration) as error:
        return {"unjudged": f"no transformers rotary module for {text.model_type}: {error}"}
    if params and all(isinstance(value, dict) for value in params.values()):
        return {"unjudged": f"{name} per layer type is not restated"}
    try:
        rope = getattr(module, name)(text)
    except Exception as error:  # the model's own rotary module refuses the config: what the backend would do
        return {"all": {"error": f"{type(error).__name__}: {error}"}}
    if not hasattr(rope, "inv_freq"):
        return {"unjudged": f"{name} keeps no inv_freq (per layer type): not restated"}
    inv_freq, scale = rope.inv_freq, rope.attention_scaling
    if params.get("rope_type") == "dynamic" and "alpha" not in params:  # NTK-alpha: fixed, the module's own
        inv_freq, scale = ROPE_INIT_FUNCTIONS["dynamic"](text, None, seq_len=ctx)
    freqs = [float(x) for x in inv_freq.flatten()]
    return {"all": {"class": f"{name} (transformers)", "base": 0.0, "rotary_dim": 2 * len(freqs), "rows": ctx,
                    "inv_freq": freqs, "scale": float(scale)}}


def _write_config(config: dict[str, Any]) -> str:
    folder = tempfile.mkdtemp(prefix="rd-oracle-")
    (Path(folder) / "config.json").write_text(json.dumps(config))
    return folder


# --- vLLM 0.33 ---------------------------------------------------------------------------------------------------


class VllmOracle:
    def __init__(self, src: Path) -> None:
        self.src = src / "vllm"
        self.recorder = _Recorder()
        self._stubs()
        rotary = _load_package("vllm.model_executor.layers.rotary_embedding",
                               self.src / "model_executor/layers/rotary_embedding")
        for name in list(sys.modules):
            if name.startswith("vllm.model_executor.layers.rotary_embedding."):
                sys.modules[name].torch = self.recorder  # type: ignore[attr-defined]
        self.get_rope = rotary.get_rope
        self.cache = rotary._ROPE_DICT
        import transformers
        from transformers import AutoConfig, PreTrainedConfig

        self.transformers = transformers
        self.AutoConfig = AutoConfig
        ns: dict[str, Any] = {"PreTrainedConfig": PreTrainedConfig, "logger": _logger(), "Any": Any,
                              "Iterator": Iterator, "math": math}
        from transformers.configuration_utils import ALLOWED_LAYER_TYPES

        ns["ALLOWED_LAYER_TYPES"] = ALLOWED_LAYER_TYPES
        config_py = self.src / "transformers_utils/config.py"
        compile_defs(config_py, ["is_rope_parameters_nested", "patch_legacy_rope_type", "patch_rope_parameters",
                                 "iter_rope_parameters", "get_hf_text_config"], ns)
        model_py = self.src / "config/model.py"
        compile_defs(model_py, ["_get_and_verify_max_len", "ModelConfig._update_nested",
                                "ModelConfig._apply_dict_overrides"], ns)
        compile_defs(self.src / "transformers_utils/model_arch_config_convertor.py",
                     ["ModelArchConfigConvertorBase.derive_max_model_len_and_key"], ns)
        utils = compile_defs(self.src / "config/utils.py", ["getattr_iter"], {"logger": _logger(), "Any": Any})
        _module("vllm.config.utils", getattr_iter=utils["getattr_iter"])
        ns["envs"] = types.SimpleNamespace(VLLM_ALLOW_LONG_MAX_MODEL_LEN=False)
        ns["current_platform"] = types.SimpleNamespace(check_max_model_len=lambda n: n)
        self.ns = ns
        registry: dict[str, Any] = {}
        compile_defs(self.src / "model_executor/models/registry.py", [
            "_TEXT_GENERATION_MODELS", "_EMBEDDING_MODELS", "_LATE_INTERACTION_MODELS", "_REWARD_MODELS",
            "_TOKEN_CLASSIFICATION_MODELS", "_SEQUENCE_CLASSIFICATION_MODELS", "_MULTIMODAL_MODELS",
            "_SPECULATIVE_DECODING_MODELS", "_TRANSFORMERS_SUPPORTED_MODELS", "_TRANSFORMERS_BACKEND_MODELS",
            "_VLLM_MODELS", "_PREVIOUSLY_SUPPORTED_MODELS"], registry)
        self.models: dict[str, tuple[str, str]] = registry["_VLLM_MODELS"]
        self.removed: dict[str, str] = registry["_PREVIOUSLY_SUPPORTED_MODELS"]
        chatglm: dict[str, Any] = {"PreTrainedConfig": PreTrainedConfig}
        compile_defs(self.src / "transformers_utils/configs/chatglm.py", ["ChatGLMConfig"], chatglm)
        # _CONFIG_REGISTRY: vLLM's own config class per model type (a name in vllm.transformers_utils.configs,
        # several of which are transformers' classes); only those two kinds are loaded here
        names = compile_defs(config_py, ["_CONFIG_REGISTRY"], {"LazyConfigDict": dict, "PreTrainedConfig": Any})
        self.registry: dict[str, Any] = {"chatglm": chatglm["ChatGLMConfig"]}
        for model_type, name in names["_CONFIG_REGISTRY"].items():
            if model_type not in self.registry and hasattr(transformers, name):
                self.registry[model_type] = getattr(transformers, name)

    def _stubs(self) -> None:
        class CustomOp(torch.nn.Module):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__()

            @classmethod
            def register(cls, name: str) -> Callable[[Any], Any]:
                return lambda c: c

            def enabled(self) -> bool:
                return False

        def identity(*args: Any, **kwargs: Any) -> Any:
            return args[0] if args and callable(args[0]) else (lambda f: f)

        _module("vllm._aiter_ops", rocm_aiter_ops=types.SimpleNamespace(
            is_triton_rotary_embed_enabled=lambda: False, is_enabled=lambda: False))
        _module("vllm.model_executor.custom_op", CustomOp=CustomOp, PluggableLayer=CustomOp)
        _module("vllm.logger", init_logger=_logger)
        _module("vllm.platforms", current_platform=types.SimpleNamespace(
            is_cuda=lambda: False, is_rocm=lambda: False, is_cuda_alike=lambda: False, is_xpu=lambda: False,
            is_cpu=lambda: True, is_tpu=lambda: False, device_type="cpu"))
        _module("vllm.utils.torch_utils", direct_register_custom_op=lambda *a, **k: None,
                async_tensor_h2d=lambda *a, **k: None)
        _module("vllm.utils.flashinfer", has_flashinfer=lambda: False)
        _module("vllm.triton_utils", tl=types.SimpleNamespace(constexpr=int), triton=types.SimpleNamespace(jit=identity))
        self.vllm_config = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=None))
        _module("vllm.config", get_current_vllm_config=lambda: self.vllm_config)
        _module("vllm.distributed", get_tensor_model_parallel_rank=lambda: 0,
                get_tensor_model_parallel_world_size=lambda: 1)

    def load(self, folder: str, scalar: dict[str, Any]) -> Any:
        """HFConfigParser.parse, for a local config.json: vLLM's own config class where it registers one,
        else AutoConfig; then get_config's update with the scalar overrides and patch_rope_parameters."""
        from transformers import PreTrainedConfig

        config_dict, _ = PreTrainedConfig.get_config_dict(folder)
        model_type = config_dict.get("model_type")
        if model_type in self.registry:
            config = self.registry[model_type].from_pretrained(folder)
        else:
            config = _auto_or_remote(self.AutoConfig, folder)
        if scalar:
            config.update(scalar)
        self.ns["patch_rope_parameters"](config)
        self.ns["patch_rope_parameters"](config.get_text_config())
        for sub in getattr(config, "sub_configs", None) or {}:
            self.ns["patch_rope_parameters"](getattr(config, sub))
        return config

    def run(self, case: dict[str, Any]) -> dict[str, Any]:
        overrides = case.get("overrides") or {}
        scalar = {k: v for k, v in overrides.items() if not isinstance(v, dict)}
        nested = {k: v for k, v in overrides.items() if isinstance(v, dict)}
        config = self.load(_write_config(case["config"]), scalar)
        holder = types.SimpleNamespace()
        holder._update_nested = lambda target, updates: self.ns["_update_nested"](holder, target, updates)
        if nested:
            self.ns["_apply_dict_overrides"](holder, config, nested)
        text = self.ns["get_hf_text_config"](config)
        arch = types.SimpleNamespace(derived_max_model_len_and_key=self.ns["derive_max_model_len_and_key"](
            types.SimpleNamespace(hf_text_config=text)))
        out: dict[str, Any] = {"id": case["id"]}
        architecture = (getattr(config, "architectures", None) or [""])[0]
        if architecture in self.removed:
            out.update(accepted=False, ropes={},
                       no_model=f"{architecture} was removed in vLLM {self.removed[architecture]}")
            return out
        if not architecture:
            out["unjudged"] = "the config names no architecture"
        module = self.models.get(architecture, ("transformers", ""))[0]
        if architecture and module == "transformers" and not hasattr(self.transformers, architecture) \
                and "AutoModel" not in (getattr(config, "auto_map", None) or {}):
            out.update(accepted=False, ropes={}, no_model=f"{architecture} is neither a vLLM model nor a "
                                                          f"transformers class (the Transformers backend needs one)")
            return out
        out["model_module"] = module
        try:
            out["max_model_len"] = self.ns["_get_and_verify_max_len"](
                hf_config=text, model_arch_config=arch, tokenizer_config=None, max_model_len=case["ctx"],
                disable_sliding_window=False, sliding_window=None)
            out["accepted"] = True
        except ValueError as error:
            out["accepted"], out["error"] = False, str(error)
        try:  # the derived length itself: ask for more than anything derives and read the refusal
            self.ns["_get_and_verify_max_len"](
                hf_config=text, model_arch_config=arch, tokenizer_config=None, max_model_len=10**15,
                disable_sliding_window=False, sliding_window=None)
        except ValueError as error:
            found = re.search(r"derived max_model_len \([\w.]+=([\d.]+) or", str(error))
            out["derived"] = int(float(found.group(1))) if found else None
        self.vllm_config.model_config.max_model_len = out.get("max_model_len", case["ctx"])
        if module == "transformers":
            out["ropes"] = transformers_rope(text, case["ctx"])
            if "unjudged" in out["ropes"]:
                out["unjudged"] = out["ropes"].pop("unjudged")
        elif getattr(text, "dual_chunk_attention_config", None):
            out["ropes"], out["unjudged"] = {}, "dual-chunk attention (qwen2.py's DualChunkRotaryEmbedding) is not restated"
        elif module in VLLM_RESTATED:
            out["ropes"] = self.ropes(text, module)
        else:
            out["ropes"], out["unjudged"] = {}, f"vllm/model_executor/models/{module}.py is not restated here"
        return out

    def ropes(self, text: Any, module: str) -> dict[str, Any]:
        """vllm/model_executor/models/<module>.py: what each passes to get_rope (VLLM_RESTATED)."""
        self.cache.clear()
        heads = getattr(text, "num_attention_heads", None) or 1
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        params: Any = getattr(text, "rope_parameters", None)
        calls: dict[str, tuple[Any, ...]]
        if module == "gpt_oss":  # gpt_oss.py OAIAttention: YaRN from the block's keys, whatever its rope_type
            try:
                params = {"rope_theta": params["rope_theta"], "rope_type": "yarn", "factor": params["factor"],
                          "original_max_position_embeddings": params["original_max_position_embeddings"],
                          "beta_fast": params["beta_fast"], "beta_slow": params["beta_slow"],
                          "truncate": params.get("truncate", True)}
            except KeyError as error:
                return {"all": {"error": f"KeyError: {error}"}}
            calls = {"all": (head_dim, text.max_position_embeddings, params, True)}
        elif text.model_type == "chatglm":  # chatglm.py GLMAttention
            rope_ratio = getattr(text, "rope_ratio", 1.0)
            params = {"rope_type": "default", "rope_theta": 10000 * rope_ratio, "partial_rotary_factor": 0.5}
            calls = {"all": (head_dim, getattr(text, "seq_length", 8192), params, False)}
        elif isinstance(params, dict) and self.ns["is_rope_parameters_nested"](params):  # gemma3.py, modernbert.py
            calls = {kind: (head_dim, text.max_position_embeddings, params[kind], True) for kind in params}
        else:  # llama.py, qwen2.py
            calls = {"all": (head_dim, text.max_position_embeddings, params, True)}
        built: dict[str, Any] = {}
        for kind, (size, max_position, rope_parameters, neox) in calls.items():
            try:
                rope = self.get_rope(size, max_position=max_position, rope_parameters=rope_parameters,
                                     is_neox_style=neox)
                built[kind] = _built(rope, self.recorder)
            except (ValueError, KeyError, TypeError, AssertionError) as error:
                built[kind] = {"error": f"{type(error).__name__}: {error}"}
        return built


# The vLLM model files whose get_rope call is restated in VllmOracle.ropes (llama.py's: head_dim, max_position,
# config.rope_parameters; gemma3.py / modernbert.py per layer type; chatglm.py; gpt_oss.py)
VLLM_RESTATED = frozenset({"llama", "qwen2", "qwen3", "qwen3_moe", "qwen2_moe", "qwen2_5_vl", "qwen2_vl", "mixtral",
                           "internlm2", "gemma3", "gemma3_mm", "modernbert", "chatglm", "phi3", "gpt_oss",
                           "mistral", "mistral3", "llava"})

# --- SGLang 0.5.23 -----------------------------------------------------------------------------------------------


class _Env:
    """sglang.srt.environ.envs: each variable's .get() gives its default (SGLANG_ALLOW_OVERWRITE_... is False)."""

    DEFAULTS: ClassVar[dict[str, int]] = {"SGLANG_ROPE_CACHE_ALIGN": 128}

    def __getattr__(self, name: str) -> Any:
        return types.SimpleNamespace(get=lambda: self.DEFAULTS.get(name, False))


def _any_module(name: str, true: tuple[str, ...] = ()) -> types.ModuleType:
    """A stand-in whose every attribute is a function answering False (platform probes, kernel imports),
    or True for the names in ``true``."""
    module = _module(name)

    def probe(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return lambda *a, **k: attr in true

    setattr(module, "__getattr__", probe)  # noqa: B010 - PEP 562 module __getattr__
    return module


def _no_compile(fn: Any = None, **kwargs: Any) -> Any:
    """torch.compile as a decorator at import time (SGLang's rotary utils): compiling is not what is tested."""
    return fn if fn is not None else (lambda f: f)


def _entry_classes(models: Path) -> dict[str, str]:
    """The architectures SGLang's model registry imports (every model file's EntryClass) -> the file."""
    names: dict[str, str] = {}
    for path in sorted(models.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "EntryClass"
                                                    for t in node.targets):
                values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
                names.update((v.id, path.stem) for v in values if isinstance(v, ast.Name))
    return names


# The SGLang model files whose get_rope call is restated in SglangOracle.ropes: llama.py's shape (theta and
# scaling from rope_parameters, rotary = partial x head_dim), qwen2.py's (get_rope_config), gemma3_causal.py,
# chatglm.py, phi.py, baichuan.py
SGLANG_STYLE = {"llama": "llama", "mistral": "llama", "mixtral": "llama", "internlm2": "llama", "qwen3": "llama",
                "qwen2": "qwen2", "qwen2_5_vl": "qwen2", "gemma3_causal": "gemma3", "gemma3_mm": "gemma3",
                "chatglm": "chatglm", "phi": "phi", "baichuan": "baichuan"}


class SglangOracle:
    def __init__(self, src: Path) -> None:
        self.src = src / "sglang"
        self.recorder = _Recorder()
        torch.compile = _no_compile  # type: ignore[assignment]
        _any_module("sglang.srt.utils", true=("is_cpu",))
        _any_module("sglang.kernels.ops.attention.rotary_triton")
        _any_module("sglang.kernels.ops.attention.mrope")
        _module("sglang.kernels.fused_op", BaseFusedOp=torch.nn.Module)
        _module("sglang.srt.environ", envs=_Env())
        _module("sglang.srt.platforms", current_platform=types.SimpleNamespace(is_out_of_tree=lambda: False))
        _module("sglang.srt.runtime_context", get_exec=lambda: None, publish_role=lambda: None,
                attention_backends=types.SimpleNamespace())
        rotary = _load_package("sglang.srt.layers.rotary_embedding", self.src / "srt/layers/rotary_embedding")
        for name in list(sys.modules):
            if name.startswith("sglang.srt.layers.rotary_embedding."):
                sys.modules[name].torch = self.recorder  # type: ignore[attr-defined]
        self.get_rope = rotary.get_rope
        self.cache = sys.modules["sglang.srt.layers.rotary_embedding.factory"]._ROPE_DICT
        from transformers import AutoConfig, PretrainedConfig

        self.AutoConfig = AutoConfig
        common = self.src / "srt/utils/hf_transformers/common.py"
        ns: dict[str, Any] = {"PretrainedConfig": PretrainedConfig, "torch": torch, "logger": _logger(),
                              "Optional": Any, "envs": _Env(), "is_in_ci": lambda: False}
        compile_defs(self.src / "srt/utils/hf_transformers_patches.py", ["normalize_rope_scaling_compat"], ns)
        compile_defs(common, ["CONTEXT_LENGTH_KEYS", "get_context_length", "get_rope_config", "_patch_text_config",
                              "get_hf_text_config"], ns)
        compile_defs(self.src / "srt/configs/model_config.py", ["ModelConfig._derive_context_length"], ns)

        config_py = self.src / "srt/utils/hf_transformers/config.py"
        auto = types.SimpleNamespace(from_pretrained=lambda model, **kw: _auto_or_remote(AutoConfig, model))
        ns.update(AutoConfig=auto, ModelConfigParserBase=object, _try_load_longcat_config=lambda *a, **k: None,
                  _try_load_raw_mamba_config=lambda *a, **k: None, _is_deepseek_ocr_model=lambda c: False,
                  _is_deepseek_ocr2_model=lambda c: False, _CONFIG_REGISTRY={}, _GEMMA4_MODEL_TYPES=(),
                  DeepseekV41Config=type("DeepseekV41Config", (), {}))
        compile_defs(config_py, ["HfModelConfigParser", "_set_architectures"], ns)
        ns.update(check_gguf_file=lambda model: False, resolve_runai_obj_uri=lambda model: model,
                  is_remote_url=lambda model: False, is_mistral_model=lambda model: False,
                  get_model_config_parser=lambda name: ns["HfModelConfigParser"]())
        compile_defs(config_py, ["get_config"], ns)
        self.ns = ns
        self.entry_classes = _entry_classes(self.src / "srt/models")

    def run(self, case: dict[str, Any]) -> dict[str, Any]:
        arch = (case["config"].get("architectures") or [""])[0]
        auto_map = case["config"].get("auto_map") or {}
        if not arch:
            style, where = None, "a config that names no architecture"
        elif arch in self.entry_classes:
            style = SGLANG_STYLE.get(self.entry_classes[arch])
            where = f"sglang/srt/models/{self.entry_classes[arch]}.py"
        else:  # model_loader/utils.py resolve_transformers_arch, --model-impl auto: transformers' own class
            import transformers

            model_class = getattr(transformers, arch, None)
            if model_class is None and "AutoModel" in auto_map:
                style, where = None, "remote model code (auto_map), which a fixture does not carry"
            elif model_class is None or (hasattr(model_class, "is_backend_compatible")
                                         and not model_class.is_backend_compatible()):
                why = "no class in transformers" if model_class is None else "its transformers class is not " \
                    "backend-compatible"
                return {"id": case["id"], "accepted": False, "ropes": {},
                        "no_model": f"no SGLang model has EntryClass {arch!r} and {why}"}
            else:
                style, where = "transformers", "the Transformers backend"
        folder = _write_config(case["config"])
        config = self.ns["get_config"](folder, trust_remote_code=False,
                                       model_override_args=case.get("overrides") or None)
        text = self.ns["get_hf_text_config"](config)
        model = types.SimpleNamespace(is_draft_model=False, hf_text_config=text, hf_config=config)
        out: dict[str, Any] = {"id": case["id"], "derived": self.ns["get_context_length"](text)}
        try:
            self.ns["_derive_context_length"](model, case["ctx"])
            out["accepted"], out["context_len"] = True, model.context_len
        except ValueError as error:
            out["accepted"], out["error"] = False, str(error)
        if style == "transformers":
            out["ropes"] = transformers_rope(text, case["ctx"])
            if "unjudged" in out["ropes"]:
                out["unjudged"] = out["ropes"].pop("unjudged")
        elif style is None or getattr(text, "dual_chunk_attention_config", None):
            out["ropes"], out["unjudged"] = {}, f"{where} (or its dual-chunk attention) is not restated"
        else:
            out["ropes"] = self.ropes(text, style)
        return out

    def ropes(self, config: Any, style: str) -> dict[str, Any]:
        """sglang/srt/models/<file>.py: what each passes to get_rope (SGLANG_STYLE)."""
        self.cache.clear()
        heads = getattr(config, "num_attention_heads", None) or 1
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        max_position = getattr(config, "max_position_embeddings", 8192)
        calls: dict[str, tuple[int, float, Any]] = {}
        if style == "gemma3":  # gemma3_causal.py Gemma3Attention
            params = config.rope_parameters
            nested = isinstance(params, dict) and "full_attention" in params
            local = params["sliding_attention"].get("rope_theta", 10000.0) if nested else getattr(
                config, "rope_local_base_freq", 10000.0)
            glob = params["full_attention"].get("rope_theta", 1000000.0) if nested else (
                params.get("rope_theta", 10000.0) if params else 10000.0)
            calls = {"sliding_attention": (head_dim, local, {"rope_type": "default"}),
                     "full_attention": (head_dim, glob, {"rope_type": "default"})}
        elif style == "chatglm":  # chatglm.py GLMAttention
            calls = {"all": (head_dim // 2, 10000 * getattr(config, "rope_ratio", 1.0), None)}
            max_position = getattr(config, "seq_length", 8192)
        elif style == "phi":  # phi.py PhiAttention: no scaling block
            rotary = int(config.partial_rotary_factor * (config.hidden_size // config.num_attention_heads))
            calls = {"all": (rotary, config.rope_parameters["rope_theta"], None)}
        elif style == "baichuan":  # baichuan.py BaiChuanAttention: rope_theta only
            calls = {"all": (head_dim, self.ns["get_rope_config"](config)[0], None)}
        elif style == "qwen2":  # qwen2.py Qwen2DecoderLayer
            theta, scaling = self.ns["get_rope_config"](config)
            calls = {"all": (head_dim, theta, scaling)}
        else:  # llama.py LlamaDecoderLayer / LlamaAttention
            params = getattr(config, "rope_parameters", None)
            if params is not None:
                theta, scaling = params.get("rope_theta", 10000), params
            else:
                theta, scaling = getattr(config, "rope_theta", 10000), getattr(config, "rope_scaling", None)
            if scaling is not None and getattr(config, "original_max_position_embeddings", None):
                scaling["original_max_position_embeddings"] = config.original_max_position_embeddings
            rotary = int(getattr(config, "partial_rotary_factor", 1) * head_dim)
            calls = {"all": (rotary, theta, scaling)}
        built: dict[str, Any] = {}
        for kind, (rotary_dim, theta, scaling) in calls.items():
            try:
                rope = self.get_rope(head_dim, rotary_dim=rotary_dim, max_position=max_position, base=theta,
                                     rope_scaling=scaling, is_neox_style=getattr(config, "rope_is_neox_style", True))
                built[kind] = _built(rope, self.recorder)
            except (ValueError, KeyError, TypeError, AssertionError) as error:
                built[kind] = {"error": f"{type(error).__name__}: {error}"}
        return built


# --- LMDeploy 0.18 (TurboMind, the engine `lmdeploy serve` picks for the architectures it lists) ------------------


class LmdeployOracle:
    def __init__(self, src: Path) -> None:
        self.src = src / "lmdeploy"
        from transformers import AutoConfig, PretrainedConfig

        ns: dict[str, Any] = {"AutoConfig": AutoConfig, "PretrainedConfig": PretrainedConfig, "logger": _logger(),
                              "get_logger": lambda name: _logger(name), "Any": Any, "math": math,
                              "SimpleNamespace": types.SimpleNamespace, "lru_cache": lambda f: f,
                              "PretrainedConfig_": PretrainedConfig}
        package = _module("lmdeploy.hf_configs")
        package.__path__ = [str(self.src / "hf_configs")]  # register_config imports its siblings relatively
        ns.update(__name__="lmdeploy.hf_configs", __package__="lmdeploy.hf_configs")
        compile_defs(self.src / "hf_configs/__init__.py", ["register_config", "config_from_pretrained"], ns)
        setattr(package, "config_from_pretrained", ns["config_from_pretrained"])  # noqa: B010
        compile_defs(self.src / "archs.py", ["get_model_arch"], ns)
        compile_defs(self.src / "utils.py", ["_get_and_verify_max_len"], ns)
        compile_defs(self.src / "pytorch/config.py", ["_override_hf_config_dict", "_overide_hf_config_cfg",
                                                      "_override_hf_config", "override_hf_config"], ns)
        compile_defs(self.src / "turbomind/supported_models.py", ["SUPPORTED_ARCHS"], ns)
        compile_defs(self.src / "turbomind/models/utils.py", ["source_model_config", "_optional_attr", "_param_get",
                                                              "_param_has", "_get_mscale", "parse_rope_param"], ns)
        self.ns = ns

    def run(self, case: dict[str, Any]) -> dict[str, Any]:
        folder = _write_config(case["config"])
        arch, hf_model_cfg = self.ns["get_model_arch"](folder)
        out: dict[str, Any] = {"id": case["id"], "engine": "turbomind" if arch in self.ns["SUPPORTED_ARCHS"]
                               else "pytorch"}
        # turbomind/converter.py get_tm_model: the default session_len is derived before the overrides apply;
        # an explicit --session-len is taken as given (utils._get_and_verify_max_len only warns)
        out["derived"] = self.ns["_get_and_verify_max_len"](hf_model_cfg, None)
        out["session_len"] = self.ns["_get_and_verify_max_len"](hf_model_cfg, case["ctx"])
        cfg = self.ns["source_model_config"](hf_model_cfg)
        if case.get("overrides"):
            self.ns["override_hf_config"](cfg, case["overrides"])
        out["accepted"] = True
        if out["engine"] != "turbomind":
            return out  # the PyTorch engine's RoPE is not replayed
        text = getattr(cfg, "text_config", cfg) if hasattr(cfg, "vision_config") else cfg
        heads = getattr(text, "num_attention_heads", None) or 1
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        try:  # turbomind/models/utils.py make_attention_config
            rope, max_positions = self.ns["parse_rope_param"](text, head_dim)
            out["ropes"] = {"all": {**vars(rope), "max_position_embeddings_cfg": max_positions}}
        except RuntimeError as error:
            out["accepted"], out["error"], out["ropes"] = False, str(error), {}
        return out


# --- entry point -------------------------------------------------------------------------------------------------

ORACLES: dict[str, Callable[[Path], Any]] = {"vllm": VllmOracle, "sglang": SglangOracle,
                                                  "lmdeploy": LmdeployOracle}


def _raised_in(error: BaseException) -> str:
    """The file of the innermost frame that raised: a runtime's or transformers' (a refusal), or this one (a bug
    of the replay, which the test must not count as a refusal)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename if tb is not None else ""


@contextmanager
def _quiet() -> Iterator[None]:
    logging.disable(logging.CRITICAL)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def main() -> int:
    runtime, src = sys.argv[1], Path(sys.argv[2])
    cases = json.load(sys.stdin)
    stdout = sys.stdout
    with _quiet(), contextlib.redirect_stdout(sys.stderr):  # the runtimes print; stdout carries only the JSON
        try:
            from transformers.utils import logging as tf_logging

            tf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        except ImportError:
            pass
        oracle = ORACLES[runtime](src)
        results = []
        for case in cases:
            try:
                results.append(oracle.run(case))
            except Exception as error:  # a refusal at start: the config or the override does not load
                result = {"id": case["id"], "accepted": False, "ropes": {}, "error": f"{type(error).__name__}: {error}",
                          "raised_in": _raised_in(error)}
                try:  # does the runtime load the file as it is, without the flags?
                    oracle.run({**case, "overrides": {}, "ctx": 1})
                except Exception:
                    result["file_refused"] = True
                results.append(result)
    import transformers

    json.dump({"transformers": transformers.__version__, "results": results}, stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
