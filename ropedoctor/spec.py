"""RopeSpec: the one format-free description of a model's positions that everything works on.

Frozen stdlib dataclasses rather than pydantic models: ``check`` must start within 1.3x of
importing typer, pydantic and rich, and ``pydantic.main`` alone costs about a quarter of
that budget (see bench/startup.py). The sources validate what they read themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ropedoctor.families import PositionKind, family_of
from ropedoctor.model import methods

SourceFormat = Literal["hf-config", "gguf"]
# No runtime serves more positions than a double counts exactly; a factor that scales past this (1e308) is an
# input error for that file (issue 15: it ended in OverflowError wherever a length was computed).
MAX_SCALED_POSITIONS = 2**53


def _check_scaling(spec: RopeSpec) -> None:
    factor = spec.factor
    if factor is None or isinstance(factor, bool) or not isinstance(factor, (int, float)):
        return
    base = spec.original_context or spec.context or 1
    try:
        scaled = abs(factor) * base if isinstance(base, int) and base > 0 else abs(factor)
    except OverflowError:
        scaled = math.inf
    if not math.isfinite(factor) or scaled > MAX_SCALED_POSITIONS:
        from ropedoctor.errors import InputError

        where = spec.provenance.get("factor", "the RoPE scaling factor")
        raise InputError(spec.source, f"{where} is {factor:g}: scaling {base} positions by it is past 2^53, no usable "
                                      "length")

# transformers' names, plus "none" for models without RoPE (the method table, model/methods.py). A file
# may name anything else; that string is kept as written so a rule can quote it.
KNOWN_METHODS = tuple(methods.METHODS)


@dataclass(frozen=True)
class LayerRope:
    """The RoPE of one layer type when layers differ (Gemma-3 and ModernBERT full vs sliding)."""

    method: str
    theta: float | None
    location: str
    factor: float | None = None


@dataclass(frozen=True)
class HfLayout:
    """How the config.json spelled its RoPE, for rules about the file's own schema.

    ``block`` is the scaling dict transformers 5 validates, after its standardisation
    (``rope_type`` and ``rope_theta`` filled in, the original length copied in for
    yarn/llama3/longrope), one per layer type when nested.
    """

    text: dict[str, Any]  # the (text) config as read
    prefix: str = ""  # "text_config." for multimodal wrappers
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)  # location -> standardised block
    raw_block: dict[str, Any] | None = None  # the effective block before standardisation
    raw_block_key: str | None = None  # "rope_scaling" or "rope_parameters"
    saved_by: str | None = None  # the file's transformers_version

    def path(self, *keys: str) -> str:
        return self.prefix + ".".join(keys)


@dataclass(frozen=True)
class GgufLayout:
    """What the GGUF header stored, for rules about types and tensors.

    ``types`` and ``values`` are keyed by the key template (``{arch}.context_length``);
    ``keys`` maps a template to the real key for messages.
    """

    arch: str
    types: dict[str, int]
    values: dict[str, Any]
    keys: dict[str, str]
    tensors: dict[str, int]  # RoPE-related tensor name -> element count
    name: str | None = None
    basename: str | None = None
    # RoPE tensor name -> its F32 values (rope_freqs.weight of a local file; gguf_header.read_f32_tensor)
    tensor_values: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def key(self, template: str) -> str:
        return self.keys.get(template) or template.format(arch=self.arch)


@dataclass(frozen=True)
class RopeSpec:
    """What a model's file says about its positions, normalised to transformers 5's meaning."""

    source: str
    format: SourceFormat
    model_type: str | None = None
    positions: PositionKind = "rope"
    method: str = "default"
    theta: float | None = None
    factor: float | None = None
    original_context: int | None = None  # length the model was trained at, before scaling
    context: int | None = None  # declared max positions (max_position_embeddings and aliases)
    head_dim: int | None = None
    rotary_dim: int | None = None
    partial_rotary_factor: float = 1.0
    attention_factor: float | None = None
    beta_fast: float | None = None
    beta_slow: float | None = None
    mscale: float | None = None
    mscale_all_dim: float | None = None
    low_freq_factor: float | None = None
    high_freq_factor: float | None = None
    short_factor: list[float] | None = None
    long_factor: list[float] | None = None
    truncate: bool | None = None
    alpha: float | None = None  # NTK-alpha (HunYuan): a fixed base multiplier alpha^(d/(d-2))
    nope_layers: int | None = None  # layers that skip RoPE (no_rope_layers entries 0: Llama-4, SmolLM3)
    layers: dict[str, LayerRope] = field(default_factory=dict)
    causal: bool = True
    remote_code: bool = False
    position_table: int | None = None  # usable learned positions (absolute models)
    provenance: dict[str, str] = field(default_factory=dict)  # field -> key path in the source
    hf: HfLayout | None = None
    gguf: GgufLayout | None = None

    def __post_init__(self) -> None:
        _check_scaling(self)

    def check_computable(self) -> None:
        """InputError when a value the RoPE maths divides by or takes a logarithm of is unusable (a base of 0 or
        below 1, a factor of 0, a negative trained length, a rotary dimension under 4): ``plan``, ``flags``,
        ``fix`` and ``plot`` then stop with one line for this file (``check`` reports such values as findings)."""
        from ropedoctor.errors import InputError

        if not self.has_rope:
            return
        theta = self.theta
        if theta is not None and (not math.isfinite(theta) or theta <= 1 or theta > 1e300):
            raise InputError(self.source, f"{self.where('theta', 'rope_theta')} is {theta:g}: RoPE needs a finite "
                                          "base above 1 to compute frequencies")
        if self.factor is not None and not self.factor > 0:
            raise InputError(self.source, f"{self.where('factor', 'the scaling factor')} is {self.factor:g}: a "
                                          "RoPE scaling factor must be positive")
        for name, value in (("original_context", self.original_context), ("context", self.context)):
            if value is not None and value <= 0:
                raise InputError(self.source, f"{self.where(name, name)} is {value}: a length must be positive")
        rotary = self.rotary_dim
        if rotary is not None and not 4 <= rotary <= 1 << 16:  # every frequency is a list item: bound the list
            shown = str(rotary) if rotary < 10**12 else f"about 10^{len(str(rotary)) - 1}"
            raise InputError(self.source, f"{self.where('rotary_dim', 'the rotary dimension')} gives {shown} "
                                          "rotary dimensions: RoPE needs 4 to 65536")

    def where(self, name: str, fallback: str = "") -> str:
        """The key path a field came from, for a finding's location."""
        return self.provenance.get(name, fallback)

    @property
    def has_rope(self) -> bool:
        return self.positions == "rope"

    def served_context(self) -> int | None:
        """The longest input this file asks a runtime to serve with its current scaling.

        default: the trained length. linear and yarn: factor x the pre-scaling length (what
        vLLM and SGLang derive). dynamic: the same, or the declared length when longer
        (NomicBert declares 8192 and documents factor 2 over 2048). llama3 and longrope:
        the declared (advertised) length, which is not factor x original for Llama 3.x.
        Models without RoPE: their position table (absolute) or declared length (ALiBi).
        """
        if not self.has_rope:
            return self.position_table if self.positions == "absolute" else self.context
        if self.format == "gguf":  # llama-server caps every slot at context_length; scaling is baked in
            if self.method == "yarn" and self.factor and self.original_context and self.context:
                return min(self.context, int(self.original_context * self.factor))
            return self.context
        base = self.original_context or self.context
        if self.method == "default":
            return base
        if self.method in ("linear", "dynamic", "yarn"):
            factor = self.factor if self.factor and self.factor >= 1 else 1.0
            scaled = int(base * factor) if base else None
            if self.method == "dynamic" and scaled and self.context:
                return max(scaled, self.context)
            return scaled
        return self.context

    @property
    def dynamic_length(self) -> int | None:
        """The length dynamic NTK starts growing the base at: max_position_embeddings in transformers
        (and InternLM2), max_trained_positions in NomicBert's own code."""
        if family_of(self.model_type).keyed_to_trained_length:
            return self.original_context or self.context
        return self.context or self.original_context

    def looks_pre_extended(self) -> bool:
        """Whether a linear/dynamic file's max_position_embeddings is already the scaled length."""
        return (
            self.method in ("linear", "dynamic")
            and self.context is not None
            and self.original_context is not None
            and self.original_context < self.context
        )


def json_number(value: Any) -> float | None:
    """A JSON value as a float when it is a real number (bools are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def json_int(value: Any) -> int | None:
    """A JSON value as an int when it is an integral number."""
    number = json_number(value)
    if number is None or number != int(number):
        return None
    return int(number)
