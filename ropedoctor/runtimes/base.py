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
        return out


def rope_parameters(spec: RopeSpec) -> dict[str, Any]:
    """The transformers-5 style dict for a spec: always rope_type and rope_theta (never legacy `type`)."""
    block: dict[str, Any] = {K.ROPE_TYPE: spec.method if spec.method != "none" else "default"}
    if spec.method not in ("default", "none") and spec.factor is not None:
        block[K.FACTOR] = float(spec.factor)
    if spec.method in ("yarn", "llama3", "longrope") and spec.original_context:
        block[K.ORIGINAL_MAX_POSITIONS] = spec.original_context
    optional = {K.LOW_FREQ_FACTOR: spec.low_freq_factor, K.HIGH_FREQ_FACTOR: spec.high_freq_factor,
                K.BETA_FAST: spec.beta_fast, K.BETA_SLOW: spec.beta_slow, K.ATTENTION_FACTOR: spec.attention_factor,
                K.MSCALE: spec.mscale, K.MSCALE_ALL_DIM: spec.mscale_all_dim, K.TRUNCATE: spec.truncate,
                K.SHORT_FACTOR: spec.short_factor, K.LONG_FACTOR: spec.long_factor}
    block.update({k: v for k, v in optional.items() if v is not None})
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
