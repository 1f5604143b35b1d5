"""THE method table: every RoPE method ropedoctor knows, one record each.

Like transformers' ``ROPE_INIT_FUNCTIONS`` (one table from a method name to what computes it), but a
record also says what a file must carry for the method (the block keys transformers 5.24 validates,
``RotaryEmbeddingConfigMixin._validate_*_rope_parameters``), whether transformers builds it, how a GGUF
carries it, and which ``fix --type`` writes it. ``check``, ``fix``, ``flags``, ``plan`` and ``plot`` read
this table; a name that is not here is reported as unknown by whoever meets it, never a ``KeyError``.

The frequencies themselves live in ``rope_math`` (``rope_math.INV_FREQ`` is keyed by these names and a
test checks the two tables agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Block keys, spelled as in config.json (hf_keys re-exports the same names for the readers).
_TYPE, _THETA, _FACTOR, _ORIGINAL = "rope_type", "rope_theta", "factor", "original_max_position_embeddings"

# How a GGUF can carry a method: its rope.scaling.type value, or "base" (only rope.freq_base changes: the
# converter bakes the method into a larger base), or "tensor" (converter-made rope_freqs / rope_factors_*).
GgufCarrier = Literal["none", "linear", "yarn", "longrope", "base", "tensor"]
FixType = Literal["linear", "dynamic", "yarn", "ntk"]
FIX_TYPES: tuple[FixType, ...] = ("linear", "dynamic", "yarn", "ntk")


@dataclass(frozen=True)
class Method:
    """One RoPE method: what a file carries for it and who can run it."""

    name: str
    label: str  # how messages name it
    summary: str
    required: frozenset[str] = frozenset()  # block keys transformers requires (KeyError when absent)
    optional: frozenset[str] = frozenset()  # other keys it accepts without an "Unrecognized keys" warning
    transformers: bool = True  # transformers 5 validates it and its rotary modules build it
    scaled: bool = False  # has a factor over a trained length
    original_in_block: bool = False  # the trained length lives inside the block (standardisation fills it)
    frequencies: bool = True  # rope_math can compute its inverse frequencies
    gguf: GgufCarrier | None = None  # None: a GGUF cannot carry it at all
    fix_type: FixType | None = None  # the `fix --type` that writes it
    aliases: tuple[str, ...] = ()  # other spellings real files or runtimes use for the same method
    caveat: str = ""  # the quality trade-off `plan` prints beside the method
    # False where any `fix --type` would replace a method the model was trained with and no scaling of its own
    # is validated (proportional: transformers applies a `factor` but warns that the key is unrecognised).
    takes_fix: bool = True

    @property
    def keys(self) -> frozenset[str]:
        return self.required | self.optional


def _k(*names: str) -> frozenset[str]:
    return frozenset(names)


_YARN_OPTIONAL = _k(_THETA, "attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate")

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("none", "no RoPE", "The model has no rotary positions (learned absolute, ALiBi, relative or none).",
           transformers=False, frequencies=False),
    Method("default", "plain RoPE", "Unscaled RoPE: theta_i = base^(-2i/d).",
           _k(_TYPE), _k(_THETA), gguf="none", caveat="no scaling"),
    Method("linear", "linear (PI)", "Position Interpolation: every frequency divided by the factor.",
           _k(_TYPE, _FACTOR), _k(_THETA), scaled=True, gguf="linear", fix_type="linear",
           caveat="Position Interpolation divides every frequency by the factor: without fine-tuning at the new "
           "length quality drops (Chen et al. 2023 fine-tune ~1000 steps)"),
    Method("dynamic", "dynamic NTK", "NTK-aware base grown with the input length past the trained length.",
           _k(_TYPE, _FACTOR), _k(_THETA), scaled=True, fix_type="dynamic",
           caveat="dynamic NTK needs no fine-tuning; in transformers the base grows with each input's length, so "
           "short inputs are unchanged, but cached keys were rotated with an older base once the input grows"),
    Method("ntk", "static NTK base", "A larger base b*s^(d/(d-2)) and no scaling block (what dynamic NTK uses at "
           "s x the trained length, fixed for every input).", transformers=False, scaled=True, gguf="base",
           fix_type="ntk", caveat="a static NTK-aware base, theta x s^(d/(d-2)): no scaling block, every runtime "
           "reads rope_theta; it also changes short inputs, and quality falls off beyond ~4x without fine-tuning"),
    Method("ntk_alpha", "NTK-alpha", "Hunyuan's fixed NTK alpha in a block labelled dynamic: base * "
           "alpha^(d/(d-2)) for every input (transformers' HunYuan rotary module, llama.cpp's converter).",
           _k(_TYPE, "alpha"), _k(_THETA, _FACTOR), scaled=True, gguf="base"),
    Method("yarn", "YaRN", "Ramp between extrapolated high frequencies and interpolated low ones, with an "
           "attention temperature.", _k(_TYPE, _FACTOR, _ORIGINAL), _YARN_OPTIONAL, scaled=True,
           original_in_block=True, gguf="yarn", fix_type="yarn",
           aliases=("deepseek_yarn", "telechat3-yarn"),
           caveat="YaRN interpolates only the low frequencies and keeps the high ones; good without fine-tuning "
           "and best with a little; static YaRN also applies to short inputs, so use the smallest factor that "
           "covers N"),
    Method("llama3", "llama3", "Llama 3.1 bands: low frequencies interpolated, high kept, smooth between.",
           _k(_TYPE, _FACTOR, _ORIGINAL, "low_freq_factor", "high_freq_factor", _THETA), scaled=True,
           original_in_block=True, gguf="tensor",
           caveat="the bands and factor the model was trained with; a larger factor than the trained one is "
           "untested"),
    Method("longrope", "LongRoPE", "Trained per-frequency factor lists, short and long.",
           _k(_TYPE, "short_factor", "long_factor", _ORIGINAL), _k(_THETA, "attention_factor", _FACTOR),
           scaled=True, original_in_block=True, gguf="tensor",
           caveat="trained per-dimension factor lists: the long factors switch on above the original length"),
    Method("proportional", "proportional", "Gemma-4 global layers: the first partial_rotary_factor of the head "
           "rotates with exponents over the whole head, the rest not at all.", _k(_TYPE, _THETA),
           gguf="tensor", takes_fix=False),
    Method("axial", "axial (2-D)", "Vision encoders: separate rotations for the rows and columns of a patch "
           "grid; no text length to scale.", _k(_TYPE), _k(_THETA), frequencies=False),
    Method("dual_chunk", "dual-chunk attention", "Qwen2.5-1M: attention in chunks with intra/inter-chunk "
           "positions (dual_chunk_attention_config); vLLM runs it, transformers and llama.cpp run plain RoPE.",
           transformers=False),  # its RoPE frequencies are plain; DCA changes the positions, not the base
)}

# Family-independent spellings; family-specific legacy names (Phi-3's "su", Qwen2-VL's "mrope") stay in
# hf_keys.LEGACY_METHOD_ALIASES because transformers maps them only for those classes.
_ALIASES = {alias: m.name for m in METHODS.values() for alias in m.aliases}


def canonical(name: object) -> str | None:
    """The table's name for a method spelling, or None when it is unknown."""
    if not isinstance(name, str):
        return None
    if name in METHODS:
        return name
    return _ALIASES.get(name)


def get(name: object) -> Method | None:
    """The record of a method spelling (aliases resolved), or None when it is unknown."""
    known = canonical(name)
    return METHODS[known] if known else None


def label(name: object) -> str:
    """How messages name a method; an unknown spelling is quoted as written."""
    method = get(name)
    return method.label if method else repr(name)


def is_scaled(name: object) -> bool:
    method = get(name)
    return bool(method and method.scaled)


def has_original_in_block(name: object) -> bool:
    method = get(name)
    return bool(method and method.original_in_block)


# The methods transformers validates, for rules about block keys.
TRANSFORMERS_METHODS = tuple(m.name for m in METHODS.values() if m.transformers)


def markdown_table() -> str:
    """docs/methods.md: the table as a page (tests/test_methods.py keeps the page in step with the code)."""
    lines = [
        "# RoPE methods", "",
        "Generated from `ropedoctor/model/methods.py`, the one table every command reads "
        "(`python -c \"from ropedoctor.model.methods import markdown_table; print(markdown_table(), end='')\" "
        "> docs/methods.md`).", "",
        "| method | what it is | block keys (required; optional) | transformers | GGUF | `fix --type` | aliases |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in METHODS.values():
        keys = ", ".join(sorted(m.required)) + ("; " + ", ".join(sorted(m.optional)) if m.optional else "")
        gguf = {"none": "plain", "base": "as a larger freq_base", "tensor": "converter-made tensors",
                None: "cannot"}.get(m.gguf, f"`rope.scaling.type` {m.gguf}")
        lines.append(f"| `{m.name}` | {m.summary} | {keys or '-'} | {'yes' if m.transformers else 'no'} | {gguf} | "
                     f"{m.fix_type or '-'} | {', '.join(m.aliases) or '-'} |")
    return "\n".join(lines) + "\n"
