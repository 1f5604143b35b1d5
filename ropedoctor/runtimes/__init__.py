"""Runtime flags: one function per runtime, each knows its versions. Only this package knows a runtime's flags."""

from __future__ import annotations

from collections.abc import Callable

from ropedoctor.runtimes import llamacpp, servers
from ropedoctor.runtimes.base import Emission, FlagRequest

RUNTIMES: dict[str, Callable[[FlagRequest], list[Emission]]] = {
    "llama.cpp": llamacpp.emit, "llama-box": llamacpp.emit_llamabox, "vllm": servers.vllm, "sglang": servers.sglang,
    "tgi": servers.tgi, "lmdeploy": servers.lmdeploy, "ollama": servers.ollama, "transformers": servers.transformers,
}

__all__ = ["RUNTIMES", "Emission", "FlagRequest"]
