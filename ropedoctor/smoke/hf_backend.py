"""The transformers backend: the model folder's safetensors, loaded with the planned config.json held in memory.

Memory discipline (shared/reference/smoke_test.md section 3.4): the base model (``model.model``) gives the last
hidden states, and the LM head plus the loss run on ``LOGIT_CHUNK`` positions at a time, so logits for all N
positions never exist (Qwen2.5 at 128K would need 74 GiB of fp32 logits). Generation keeps one position's logits
(``logits_to_keep=1``) and a KV cache. Dynamic NTK is stateful in transformers (its frequencies follow the
longest input seen, reference section 3.6), so ``reset`` restores every rotary module's buffers as loaded.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from ropedoctor.errors import InputError
from ropedoctor.smoke.backend import ChunkCallback, ForwardStats, GenerateStats, shared_prefix
from ropedoctor.smoke.estimate import MemoryEstimate, out_of_memory
from ropedoctor.smoke.request import SmokeRequest

LOGIT_CHUNK = 1024  # positions per LM-head chunk: 1024 x 152K vocab x 4 B = 0.6 GB of fp32 logits at most
# transformers' rotary modules whose frequencies follow the input's length (reference 3.6): keys cached during one
# prompt were rotated for that prompt's length, so a prefix cannot be carried over to a prompt of another length
LENGTH_DEPENDENT_ROPE = frozenset({"dynamic", "longrope"})
EXTRA_LINE = "pip install 'ropedoctor[smoke]'"
WEIGHT_PATTERN = "*.safetensors"


def import_torch_stack() -> tuple[Any, Any]:
    """torch and transformers, or the one line that says which extra to install."""
    try:
        import torch
        import transformers
    except ImportError:
        raise InputError("smoke needs the smoke extra", EXTRA_LINE) from None
    return torch, transformers


def resolve_device(torch: Any, device: str) -> str:
    """"auto" -> cuda when torch sees a GPU; "cuda" without one is unusable input."""
    if device == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, no GPU visible"
        raise InputError("--device cuda", f"CUDA is not available (torch {torch.__version__}: {build})")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(torch: Any, dtype: str, device: str) -> str:
    """auto: bfloat16 on a GPU that has it, float16 on one that does not, float32 on CPU."""
    if dtype != "auto":
        return dtype
    if device == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob(WEIGHT_PATTERN))
    if not files:
        raise InputError(str(folder), f"no weights: smoke loads {WEIGHT_PATTERN} from the model folder "
                                      f"(a config.json alone cannot be run)")
    return files


def _device_words(torch: Any, device: str) -> str:
    if device == "cuda":
        return f"cuda:0 ({torch.cuda.get_device_name(0)})"
    return "cpu"


def _attention(device: str, dtype: str) -> str:
    """flash-attention 2 where it is installed and can run (CUDA, half precision), else SDPA; never eager,
    which materialises heads x N x N scores per layer."""
    if device == "cuda" and dtype in ("bfloat16", "float16") and importlib.util.find_spec("flash_attn"):
        return "flash_attention_2"
    return "sdpa"


class HFBackend:
    """A loaded transformers causal LM (see the module docstring for the memory rules)."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, torch: Any, device: str, dtype: str,
                 info: dict[str, Any], estimate: MemoryEstimate | None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.torch = torch
        self._device_kind = device
        self.device = _device_words(torch, device)
        self.dtype = dtype
        self.info = info
        self.estimate = estimate
        self._input_device = model.get_input_embeddings().weight.device
        self._rotary_state = _rotary_snapshot(model)
        self._eos = _eos_ids(model, tokenizer)
        self.on_chunk: ChunkCallback | None = None
        self._past: Any = None  # the KV cache the last generation left, for reuse_prefix
        self._cached: list[int] = []  # the tokens it holds
        rope = info.get("rope_parameters")
        rope_type = rope.get("rope_type") if isinstance(rope, dict) else None
        self._length_dependent = rope_type in LENGTH_DEPENDENT_ROPE

    # --- tokens ---------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"]
        return ids

    def detokenize(self, ids: list[int]) -> str:
        text: str = self.tokenizer.decode(ids, skip_special_tokens=True)
        return text

    # --- passes ---------------------------------------------------------------------------------
    def _tensor(self, ids: list[int]) -> Any:
        return self.torch.tensor([ids], dtype=self.torch.long, device=self._input_device)

    def _sync(self) -> None:
        if self._device_kind == "cuda":
            self.torch.cuda.synchronize()

    def _hidden(self, ids: list[int]) -> Any:
        """Last hidden states [N, hidden] of the base model: no logits, no KV cache."""
        out = self.model.model(input_ids=self._tensor(ids), use_cache=False)
        return out.last_hidden_state[0]

    def _logits(self, hidden: Any) -> Any:
        """The LM head on some positions, with the post-processing the model's own forward applies."""
        logits = self.model.lm_head(hidden.to(self.model.lm_head.weight.device))
        config = self.model.config
        scale = getattr(config, "logit_scale", None)  # Cohere multiplies
        if isinstance(scale, (int, float)) and not isinstance(scale, bool):
            logits = logits * scale
        divide = getattr(config, "logits_scaling", None)  # Granite divides
        if isinstance(divide, (int, float)) and not isinstance(divide, bool) and divide:
            logits = logits / divide
        cap = getattr(config, "final_logit_softcapping", None)  # Gemma-2/3
        if cap:
            logits = self.torch.tanh(logits / cap) * cap
        return logits

    def forward(self, ids: list[int], buckets: list[tuple[int, int]]) -> ForwardStats:
        torch = self.torch
        with torch.inference_mode(), self._oom():
            self._sync()
            start = time.perf_counter()
            hidden = self._hidden(ids)
            finite = True
            for begin in range(0, hidden.shape[0], LOGIT_CHUNK):
                finite = finite and bool(torch.isfinite(self._logits(hidden[begin:begin + LOGIT_CHUNK])).all())
            self._sync()
            seconds = time.perf_counter() - start
            norms = {(a, b): float(hidden[a:b].float().norm(dim=-1).mean()) for a, b in buckets if b > a}
        return ForwardStats(len(ids), finite and bool(torch.isfinite(hidden).all()), seconds, norms, "hidden_state")

    def token_losses(self, ids: list[int]) -> list[float]:
        torch = self.torch
        losses: list[float] = []
        with torch.inference_mode(), self._oom():
            hidden = self._hidden(ids)
            targets = self._tensor(ids)[0, 1:]
            for begin in range(0, len(ids) - 1, LOGIT_CHUNK):
                end = min(begin + LOGIT_CHUNK, len(ids) - 1)
                logits = self._logits(hidden[begin:end]).float()
                nll = torch.nn.functional.cross_entropy(logits, targets[begin:end].to(logits.device),
                                                        reduction="none")
                losses += nll.tolist()
        return losses

    def generate(self, ids: list[int], max_new_tokens: int) -> list[int]:
        return self.generate_timed(ids, max_new_tokens).new_ids

    def generate_timed(self, ids: list[int], max_new_tokens: int, *, stop_at_eos: bool = True,
                       reuse_prefix: bool = False) -> GenerateStats:
        """Greedy decoding with a KV cache, our own loop: no generation_config.json can turn sampling on."""
        torch = self.torch
        new: list[int] = []
        with torch.inference_mode(), self._oom():
            self._sync()
            start = time.perf_counter()
            past, reused = self._keep_prefix(ids) if reuse_prefix else (None, 0)
            if past is None:
                self.reset()  # every fresh pass sees the model as loaded (dynamic NTK's state)
            self._past, self._cached = None, []
            out = self.model(input_ids=self._tensor(ids[reused:]), past_key_values=past, use_cache=True,
                             logits_to_keep=1)
            token = int(out.logits[0, -1].argmax())
            self._sync()
            prefill = time.perf_counter() - start
            new.append(token)
            past = out.past_key_values
            start = time.perf_counter()
            while len(new) < max_new_tokens and not (stop_at_eos and token in self._eos):
                out = self.model(input_ids=self._tensor([token]), past_key_values=past, use_cache=True,
                                 logits_to_keep=1)
                past = out.past_key_values
                token = int(out.logits[0, -1].argmax())
                new.append(token)
            self._sync()
            decode = time.perf_counter() - start
            if reuse_prefix:  # keep it for the next prompt; otherwise free it now
                self._past, self._cached = past, [*ids, *new[:-1]]
            del past, out
        if stop_at_eos and new and new[-1] in self._eos:
            new = new[:-1]
        return GenerateStats(new, len(ids), prefill, decode, reused)

    def _keep_prefix(self, ids: list[int]) -> tuple[Any, int]:
        """The previous generation's cache cropped to the prefix it shares with ``ids`` (at least the last prompt
        token runs again: its logits give the answer), or (None, 0). Sliding-window layers keep only their last
        window, and length-dependent RoPE (dynamic NTK, LongRoPE) rotated the cached keys for another length:
        both start afresh."""
        past = self._past
        keep = min(shared_prefix(self._cached, ids), len(ids) - 1)
        if past is None or keep <= 0 or self._length_dependent:
            return None, 0
        if any(getattr(layer, "is_sliding", False) for layer in getattr(past, "layers", ())):
            return None, 0
        drop = int(past.get_seq_length()) - keep
        if drop < 0:
            return None, 0
        past.crop(-drop)  # transformers 5 crops by a negative count of tokens to remove (a positive one raises)
        self.reset()  # the rotary state as loaded, as a fresh pass sees it
        return past, keep

    # --- state and memory -------------------------------------------------------------------------
    def reset(self) -> None:
        self._past, self._cached = None, []
        for module, buffers, attrs in self._rotary_state:
            for name, value in buffers.items():
                module.register_buffer(name, value.clone(), persistent=False)
            for name, value in attrs.items():
                setattr(module, name, value)
        if self._device_kind == "cuda":
            self.torch.cuda.empty_cache()

    def peak_memory_bytes(self) -> int:
        if self._device_kind == "cuda":
            return sum(int(self.torch.cuda.max_memory_allocated(i)) for i in range(self.torch.cuda.device_count()))
        return peak_rss_bytes()

    def close(self) -> None:
        self.model = None
        self._rotary_state = []
        if self._device_kind == "cuda":
            self.torch.cuda.empty_cache()

    def _oom(self) -> Any:
        return _OutOfMemory(self.torch, self.estimate, self.device)


class _OutOfMemory:
    """A real torch.OutOfMemoryError becomes the one-line error with the estimate against the device."""

    def __init__(self, torch: Any, estimate: MemoryEstimate | None, device: str) -> None:
        self.torch, self.estimate, self.device = torch, estimate, device

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is not None and issubclass(kind, self.torch.OutOfMemoryError):
            raise out_of_memory(self.estimate, self.device, None) from None


def peak_rss_bytes() -> int:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB, macOS bytes


def _rotary_snapshot(model: Any) -> list[tuple[Any, dict[str, Any], dict[str, Any]]]:
    """Every rotary module's frequency buffers and length counters as loaded (``reset`` puts them back)."""
    state = []
    for module in model.modules():
        if not hasattr(module, "original_max_seq_len"):
            continue
        buffers = {name: buf.detach().clone() for name, buf in module.named_buffers(recurse=False)
                   if name.endswith("inv_freq")}
        attrs = {name: value for name, value in vars(module).items()
                 if name.endswith("max_seq_len_cached") or name == "attention_scaling"}
        state.append((module, buffers, attrs))
    return state


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), model.config.eos_token_id,
                  tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def check_before_load(request: SmokeRequest) -> None:
    """The refusals that need no weights (weights present, device, the memory estimate), before anything is said
    or loaded: a run that cannot start exits 2 with its one line."""
    from ropedoctor.smoke.estimate import estimate_for, preflight

    torch, _ = import_torch_stack()
    weights = weight_files(request.model_path)
    device = resolve_device(torch, request.device)
    if request.config is None:
        raise InputError(str(request.model_path), "the transformers backend needs a config.json")
    preflight(estimate_for(request.config, request.ctx, resolve_dtype(torch, request.dtype, device), weights), device,
              request.max_memory)


def load_transformers(request: SmokeRequest) -> HFBackend:
    """Load the folder's weights with ``request.config`` (the planned config.json, never written to disk)."""
    from ropedoctor.smoke.estimate import estimate_for, preflight

    torch, transformers = import_torch_stack()
    folder = request.model_path
    weights = weight_files(folder)
    device = resolve_device(torch, request.device)
    dtype = resolve_dtype(torch, request.dtype, device)
    if request.config is None:
        raise InputError(str(folder), "the transformers backend needs a config.json")
    estimate = estimate_for(request.config, request.ctx, dtype, weights)
    placement = preflight(estimate, device, request.max_memory)
    hf_logging: Any = transformers.utils.logging
    hf_logging.set_verbosity_error()  # the long-input tokenizer warning and load reports are ours to state
    hf_logging.disable_progress_bar()
    attention = _attention(device, dtype)
    try:
        with tempfile.TemporaryDirectory(prefix="ropedoctor-smoke-") as tmp:
            # the planned config goes through AutoConfig exactly as a written file would (never the v5 pitfall
            # of assigning config.rope_scaling, which drops rope_theta: reference section 3.1)
            (Path(tmp) / "config.json").write_text(json.dumps(request.config))
            config = transformers.AutoConfig.from_pretrained(tmp)
        tokenizer = _tokenizer(transformers, folder)
        if device == "cuda":
            for index in range(torch.cuda.device_count()):
                torch.cuda.reset_peak_memory_stats(index)
        with _OutOfMemory(torch, estimate, _device_words(torch, device)):
            model = transformers.AutoModelForCausalLM.from_pretrained(
                str(folder), config=config, dtype=getattr(torch, dtype), attn_implementation=attention,
                device_map=placement if device == "cuda" else "cpu")
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(str(folder), f"transformers cannot load it: {_first_line(exc)}") from None
    model.eval()
    info = {"attn_implementation": attention, "device_map": placement if device == "cuda" else "cpu",
            "transformers": transformers.__version__, "torch": torch.__version__,
            "rope_parameters": _jsonable(getattr(config, "rope_parameters", None)),
            "max_position_embeddings": getattr(config, "max_position_embeddings", None)}
    return HFBackend(model, tokenizer, torch, device, dtype, info, estimate)


def _tokenizer(transformers: Any, folder: Path) -> Any:
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(str(folder), f"no usable tokenizer: {_first_line(exc)}") from None
    tokenizer.model_max_length = 1 << 62  # only a warning threshold; we tokenize N tokens on purpose
    return tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return str(value)
