"""What every runtime module gets (FlagRequest) and gives back (Emission)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from ropedoctor import hf_keys as K
from ropedoctor.spec import RopeSpec


@dataclass(frozen=True)
class FlagRequest:
    """A planned RoPE (``after``) for a file (``before``), to be served at ``ctx`` tokens per sequence."""

    before: RopeSpec
    after: RopeSpec
    ctx: int
    parallel: int = 1
    embedding: bool = False
    version: tuple[int, ...] | None = None  # None: the newest the notes cover
    model: str = "MODEL"  # what the command loads: the path or repo id given, "MODEL" where there is none

    @property
    def gguf_path(self) -> str:
        """The GGUF a llama.cpp command loads: the given one, else a placeholder for the converted file."""
        return self.model if self.before.format == "gguf" else "MODEL.gguf"

    @property
    def hf_path(self) -> str:
        """The model folder (or repo id) a server loads; a placeholder when the input is a GGUF."""
        return self.model if self.before.format == "hf-config" else "MODEL"

    @property
    def changed(self) -> bool:
        """Whether the RoPE itself must change (otherwise only the context flags are emitted)."""
        fields = ("method", "theta", "factor", "original_context")
        return any(getattr(self.before, f) != getattr(self.after, f) for f in fields)

    @property
    def non_causal(self) -> bool:
        return self.embedding or not self.after.causal


@dataclass
class Emission:
    runtime: str
    version: str
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    per_sequence_context: int | None = None
    notes: list[str] = field(default_factory=list)
    max_relative_deviation: float | None = None
    program: str = ""
    snippet: str | None = None  # runtimes configured in code (transformers) or a Modelfile (ollama)
    cannot_serve: str | None = None  # why this runtime cannot run the plan at this length (then no command)
    verdict: str | None = None  # "exact", or "approximate: ..." beside a deviation from transformers

    @property
    def command(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        line = shlex.join([self.program, *self.argv]) if self.program else ""
        return " ".join(part for part in (env, line) if part)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "runtime": self.runtime, "version": self.version, "argv": self.argv, "env": self.env,
            "command": self.command, "per_sequence_context": self.per_sequence_context, "notes": self.notes,
            "max_relative_deviation": self.max_relative_deviation,
        }
        if self.snippet is not None:
            out["snippet"] = self.snippet
        if self.cannot_serve is not None:
            out["cannot_serve"] = self.cannot_serve
        if self.verdict is not None:
            out["verdict"] = self.verdict
        return out


def rope_parameters(spec: RopeSpec) -> dict[str, Any]:
    """The transformers-5 style dict for a spec: always rope_type and rope_theta (never legacy `type`)."""
    from ropedoctor.writers.hf_layout import scaling_block

    block = scaling_block(spec, as_in_file=False) or {K.ROPE_TYPE: "default"}
    block[K.ROPE_THETA] = spec.theta
    return block


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """'0.11.0' -> (0, 11, 0); 'b4500' -> (4500,); None -> None."""
    if not text:
        return None
    digits = text.lstrip("vb")
    try:
        return tuple(int(part) for part in digits.split(".") if part != "")
    except ValueError:
        return None
