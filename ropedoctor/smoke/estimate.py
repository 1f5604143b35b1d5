"""How much memory a smoke run needs, against what the device has: refuse before loading rather than crash.

Weights and KV cache come from ``ropedoctor.memory`` (the same bill ``ropedoctor plan`` prints). The rest is the
smoke run's own: the activations of one layer during the N-token prefill (``torch.inference_mode`` frees each
layer's before the next) and one chunk of fp32 logits (``hf_backend.LOGIT_CHUNK``).

Activations of one decoder layer at N tokens, in the compute dtype (b bytes): the residual stream, the normed
input and the layer output (3 N hidden b), then the larger of attention (q, k, v and the attention output:
N (2 heads + 2 kv_heads) head_dim b; SDPA's flash/memory-efficient kernels keep no N x N scores) and the gated
MLP (gate, its activation and up live together: 3 N intermediate b). The final hidden states stay for the
chunked LM head (N hidden b). The logit chunk is chunk x vocab x (b + 4 + 4): the head's output, its fp32 copy
and cross-entropy's log-softmax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropedoctor.errors import InputError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_KV_DTYPE = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
_MEMORY_DTYPE = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
          "tb": 10**12, "ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
          "ti": 1 << 40, "tib": 1 << 40}


@dataclass(frozen=True)
class MemoryEstimate:
    ctx: int
    dtype: str
    weights: int
    kv_cache: int
    activations: int
    logits_chunk: int
    weights_source: str  # where the weight figure comes from (memory.WeightSize.source)

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.activations + self.logits_chunk

    def as_json(self) -> dict[str, Any]:
        return {"total": self.total, "weights": self.weights, "kv_cache": self.kv_cache,
                "activations": self.activations, "logits_chunk": self.logits_chunk, "ctx": self.ctx,
                "dtype": self.dtype, "weights_source": self.weights_source}

    def words(self) -> str:
        return (f"{human_bytes(self.total)} (weights {human_bytes(self.weights)} + KV cache "
                f"{human_bytes(self.kv_cache)} at {self.ctx} tokens + activations "
                f"{human_bytes(self.activations + self.logits_chunk)})")


def human_bytes(count: int | float) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def parse_size(text: str) -> int:
    """``--max-memory``: bytes, or a number with a unit (500MB, 8GiB, 1.5G)."""
    match = _SIZE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise InputError("--max-memory", f"{text!r} is not a size (examples: 8GiB, 500MB, 1073741824)")
    unit = (match.group(2) or "").lower()
    return int(float(match.group(1)) * _UNITS[unit])


def activation_bytes(shape: Any, ctx: int, dtype: str) -> tuple[int, int]:
    """(one layer's prefill activations + the kept hidden states, one logit chunk) at ``ctx`` tokens."""
    from ropedoctor.smoke.hf_backend import LOGIT_CHUNK

    b = DTYPE_BYTES[dtype]
    hidden = shape.hidden_size
    attention = ctx * (2 * shape.n_heads * shape.head_dim + 2 * shape.n_kv_heads * shape.head_dim) * b
    mlp = 3 * ctx * (shape.intermediate_size or 4 * hidden) * b
    layer = 3 * ctx * hidden * b + max(attention, mlp)
    chunk = min(ctx, LOGIT_CHUNK) * (shape.vocab_size or 0) * (b + 4 + 4)
    return layer + ctx * hidden * b, chunk


def estimate_for(config: dict[str, Any], ctx: int, dtype: str, weight_files: list[Path]) -> MemoryEstimate:
    """The whole bill of a transformers smoke run at ``ctx`` tokens in ``dtype``."""
    from ropedoctor import memory

    shape = memory.shape_from_config(config)
    load_dtype = _MEMORY_DTYPE[dtype]
    folder = weight_files[0].parent if weight_files else None
    stored = memory.weights_from_folder(folder) if folder else None
    if stored is not None:
        weights, source = stored.bytes, stored.source
        if shape.weights_dtype and shape.weights_dtype != load_dtype:  # converted while loading
            stored_bytes = memory.row_bytes(shape.weights_dtype, 1 << 20)
            weights = weights * memory.row_bytes(load_dtype, 1 << 20) // stored_bytes
            source += f", converted {shape.weights_dtype} -> {load_dtype}"
    else:
        weights, source = memory.weight_bytes(shape, load_dtype) or 0, "estimate from the shape"
    kv = memory.kv_cache_bytes(shape, ctx, _KV_DTYPE[dtype])
    activations, chunk = activation_bytes(shape, ctx, dtype)
    return MemoryEstimate(ctx, dtype, weights, kv, activations, chunk, source)


def available_bytes(device: str) -> list[int]:
    """Free memory per device: each GPU's (torch.cuda.mem_get_info), or the host's MemAvailable."""
    if device == "cuda":
        import torch

        return [int(torch.cuda.mem_get_info(i)[0]) for i in range(torch.cuda.device_count())]
    return [host_available_bytes()]


def host_available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def preflight(estimate: MemoryEstimate, device: str, max_memory: int | None) -> Any:
    """Where the model goes (a transformers ``device_map``), or the out-of-memory line before anything loads.

    One GPU when the estimate fits it; ``"auto"`` (accelerate spreads the layers over every GPU) when it fits
    only all of them together. ``max_memory`` caps each device's budget (``--max-memory``).
    """
    free = available_bytes(device)
    if max_memory is not None:
        free = [min(f, max_memory) for f in free]
    if estimate.total <= free[0]:
        return {"": 0} if device == "cuda" else "cpu"
    if device == "cuda" and len(free) > 1 and estimate.total <= sum(free):
        return "auto"
    where = f"{len(free)} GPUs have" if len(free) > 1 else f"{device} has"
    raise out_of_memory(estimate, device, sum(free) if device == "cuda" else free[0], where)


def out_of_memory(estimate: MemoryEstimate | None, device: str, budget: int | None,
                  where: str | None = None) -> InputError:
    needs = f"the run needs about {estimate.words()}" if estimate else "the run ran out of memory"
    has = f"; {where or device + ' has'} {human_bytes(budget)} free" if budget is not None else f" on {device}"
    return InputError("out of memory", f"{needs}{has}; lower --ctx, choose a smaller --dtype, or use a larger device")


def estimate_for_gguf(path: Path, ctx: int) -> MemoryEstimate:
    """llama.cpp's bill: the GGUF's tensor data, an f16 KV cache (llama.cpp's default), float32 activations
    (ggml computes in f32) over one ``n_ubatch`` at a time, so the activations are those of one micro-batch."""
    from ropedoctor import memory
    from ropedoctor.sources.gguf_header import read_gguf

    header = read_gguf(path)
    shape = memory.shape_from_gguf(header)
    weights = memory.weights_from_gguf(header)
    activations, chunk = activation_bytes(shape, min(ctx, LLAMACPP_UBATCH), "float32")
    return MemoryEstimate(ctx, "gguf", weights.bytes, memory.kv_cache_bytes(shape, ctx, "f16"), activations, chunk,
                          weights.source)


LLAMACPP_UBATCH = 512  # llama.cpp's default physical batch
