"""What `ropedoctor smoke` was asked to do, parsed and planned once: the one input every backend and check reads.

The CLI builds a ``SmokeRequest`` (``run.build_request``): the model is resolved, its RoPE read into ``before``,
the planned fix into ``after`` (``after == before`` with ``--as-is``), and for the transformers backend the
config.json the fix would write is held in memory as ``config`` (the files on disk are never touched).
A baseline run (``--baseline``) gets its own request from ``baseline()``: the same model with RoPE unscaled.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ropedoctor.spec import RopeSpec

CheckName = Literal["finite", "passkey", "perplexity", "speed"]
CHECKS: tuple[CheckName, ...] = ("finite", "passkey", "perplexity", "speed")
BackendName = Literal["transformers", "llama.cpp"]
BACKENDS: tuple[BackendName, ...] = ("transformers", "llama.cpp")
DeviceChoice = Literal["auto", "cpu", "cuda"]
DTypeChoice = Literal["auto", "bfloat16", "float16", "float32"]
Role = Literal["scaled", "baseline"]

DEFAULT_TRIALS = 5  # per (length, depth) cell; 5 x 5 depths = 25 per length, the reference's "decision" minimum
PASSKEY_DEPTHS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
# The bundled perplexity text (fixtures/text/, LICENSE.md there); outside a source checkout --text is required.
BUNDLED_TEXT_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "text"
# Eight plays, 1.15 M characters: over 250,000 tokens in 50K-260K vocabularies, so perplexity runs at 128K
BUNDLED_TEXT = BUNDLED_TEXT_DIR / "shakespeare-tragedies.txt.xz"


@dataclass(frozen=True)
class Thresholds:
    """Default pass criteria (docs/smoke.md says why these numbers); every one is a CLI option."""

    passkey_accuracy: float = 0.8  # YaRN's "passkey context" criterion, classic prompt, at every tested length
    passkey_digits_accuracy: float = 0.6  # the harder, digits-in-filler prompt (reference section 5.3)
    loss_ratio: float = 1.15  # mean loss of each bucket past the original window / in-window mean loss


@dataclass(frozen=True)
class SmokeRequest:
    path: Path  # what the user named (a folder, a config.json, a .gguf)
    model_path: Path  # what the backend loads: the HF folder (transformers) or the .gguf file (llama.cpp)
    ctx: int  # N: the length every long pass runs at
    backend: BackendName
    before: RopeSpec  # the model's RoPE as the file has it (config.json for transformers, the GGUF for llama.cpp)
    after: RopeSpec  # the RoPE the run applies: the planned fix, ``before`` with --as-is, unscaled for a baseline
    config: dict[str, Any] | None = None  # transformers: the config.json the fix would write, parsed; None for GGUF
    device: DeviceChoice = "auto"
    dtype: DTypeChoice = "auto"
    checks: tuple[CheckName, ...] = CHECKS
    text: Path | None = None  # perplexity text; None = the bundled one
    trials: int = DEFAULT_TRIALS
    baseline: bool = True
    as_is: bool = False
    out: Path | None = None  # folder for the PNG plots and smoke.json
    format: Literal["text", "json"] = "text"
    thresholds: Thresholds = field(default_factory=Thresholds)
    reasons: tuple[str, ...] = ()  # why the plan chose ``after`` (fix's reasons)
    seed: int = 0
    max_memory: int | None = None  # bytes the run may use; None = what the device has (--max-memory)
    role: Role = "scaled"
    variants: tuple[Literal["classic", "digits"], ...] = ("classic", "digits")  # --passkey-variants
    max_time: float | None = None  # seconds; stop and report what ran (--max-time)
    share_prefix: bool = True  # passkey prompts reuse the KV cache of the prefix they share (--no-share-prefix)

    @property
    def original(self) -> int:
        """The trained (pre-scaling) length: the in-window bucket ends here."""
        return self.before.original_context or self.before.context or self.ctx

    @property
    def changed(self) -> bool:
        return self.after != self.before

    def baseline_request(self, after: RopeSpec, config: dict[str, Any] | None) -> SmokeRequest:
        """The same run with the unscaled RoPE (``run.unscaled``), for perplexity's comparison."""
        return replace(self, after=after, config=config, role="baseline", checks=("perplexity",), baseline=False)
