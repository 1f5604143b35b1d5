"""Runtime flags: one function per runtime, each knows its versions. Only this package knows a runtime's flags."""

from __future__ import annotations

from collections.abc import Callable

from ropedoctor.runtimes import llamacpp, servers
from ropedoctor.runtimes.base import Emission, FlagRequest

RUNTIMES: dict[str, Callable[[FlagRequest], list[Emission]]] = {
    "llama.cpp": llamacpp.emit, "llama-box": llamacpp.emit_llamabox, "vllm": servers.vllm, "sglang": servers.sglang,
    "tgi": servers.tgi, "lmdeploy": servers.lmdeploy, "ollama": servers.ollama, "transformers": servers.transformers,
}

# What each input format loads in by default (`flags` shows these unless --runtime names others, or all): a GGUF
# in the llama.cpp family, a config.json folder in the servers and transformers; encoders where they serve embeddings.
LOADS: dict[str, tuple[str, ...]] = {
    "gguf": ("llama.cpp", "llama-box", "ollama"),
    "hf-config": ("vllm", "sglang", "tgi", "lmdeploy", "transformers"),
}
ENCODERS: dict[str, tuple[str, ...]] = {
    "gguf": ("llama.cpp", "llama-box", "ollama"),
    "hf-config": ("vllm", "sglang", "transformers"),
}


def default_runtimes(request: FlagRequest) -> tuple[str, ...]:
    table = ENCODERS if request.non_causal else LOADS
    return table.get(request.before.format, tuple(RUNTIMES))


__all__ = ["ENCODERS", "LOADS", "RUNTIMES", "Emission", "FlagRequest", "default_runtimes"]
