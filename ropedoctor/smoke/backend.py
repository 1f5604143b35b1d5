"""What a smoke-test backend (transformers, llama.cpp) offers the checks: the one seam between them.

The checks (finite, passkey, perplexity, speed) only talk to a ``Backend``; each backend loads the model with the
planned RoPE applied in memory and hides how its runtime computes. Memory discipline is the backend's job: no
method may hold logits for all positions of a long input at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# (tokens of the current pass done, tokens of the pass): called between chunks where the runtime allows it
ChunkCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class ForwardStats:
    """One forward pass over a whole input."""

    n_tokens: int
    all_finite: bool  # every logit the pass produced is finite (checked chunk by chunk)
    seconds: float
    # mean L2 norm of the last hidden state (transformers) or of the logits (llama.cpp), per position bucket
    # (start, end) -> norm; buckets are the ones the caller asked for
    bucket_norms: dict[tuple[int, int], float] = field(default_factory=dict)
    norm_of: str = "hidden_state"  # "hidden_state" | "logits": what bucket_norms measures


@dataclass(frozen=True)
class GenerateStats:
    """One greedy generation, timed in its two phases (the speed check's prefill and decode rates)."""

    new_ids: list[int]
    prompt_tokens: int
    prefill_seconds: float  # the prompt's pass, up to and including the first new token's logits
    decode_seconds: float  # the len(new_ids) - 1 single-token steps after it
    reused_tokens: int = 0  # prompt tokens taken from the KV cache of the previous call (reuse_prefix)


class Backend(Protocol):
    name: str  # "transformers" | "llama.cpp"
    device: str  # what runs it, in words: "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"
    dtype: str  # "float32", "bfloat16", ... (llama.cpp: the GGUF's file type)
    # what the runtime really loaded, for the report: attn_implementation, device_map, llama.cpp's printed
    # n_ctx / freq_base / freq_scale / n_ctx_orig_yarn, ... (JSON-serialisable values)
    info: dict[str, Any]
    on_chunk: ChunkCallback | None  # progress inside long passes (and the --max-time deadline, by raising)

    def tokenize(self, text: str) -> list[int]:
        """Token ids as the model expects them (BOS added when the model's tokenizer adds it)."""
        ...

    def detokenize(self, ids: list[int]) -> str:
        ...

    def forward(self, ids: list[int], buckets: list[tuple[int, int]]) -> ForwardStats:
        """One pass over ``ids`` (prefill), checking every logit for finiteness in chunks."""
        ...

    def token_losses(self, ids: list[int]) -> list[float]:
        """Negative log-likelihood (nats) of ``ids[i + 1]`` given ``ids[: i + 1]``, for every i: len(ids) - 1 values.

        Computed from hidden states in chunks through the LM head, never all logits at once.
        """
        ...

    def generate(self, ids: list[int], max_new_tokens: int) -> list[int]:
        """Greedy continuation of ``ids`` (only the new tokens); only the last position's logits are kept."""
        ...

    def generate_timed(self, ids: list[int], max_new_tokens: int, *, stop_at_eos: bool = True,
                       reuse_prefix: bool = False) -> GenerateStats:
        """``generate`` with its prefill and decode phases timed; ``stop_at_eos=False`` always makes
        ``max_new_tokens`` tokens (the speed check needs a fixed number of decode steps).

        ``reuse_prefix``: keep the KV cache of the tokens this prompt shares with what the previous call left in
        it (dropping the rest) and prefill only from the first token that differs; the answer is the one a
        fresh pass gives. A backend that cannot (a sliding-window cache that already dropped the prefix,
        frequencies that depend on the input's length) prefills from scratch and says so in ``reused_tokens``.
        """
        ...

    def reset(self) -> None:
        """Forget state between measurements (dynamic NTK's cached frequencies, the KV cache)."""
        ...

    def peak_memory_bytes(self) -> int:
        """Peak memory since load: torch's allocator counter on CUDA, the process's peak RSS on CPU."""
        ...

    def close(self) -> None:
        ...


def shared_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` have in common."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
