"""RD4xx: GGUF metadata that llama.cpp refuses, misreads, or caps."""

from __future__ import annotations

from collections.abc import Iterator

from ropedoctor import gguf_keys as G
from ropedoctor.families import GGUF_ARCHS, GgufArch
from ropedoctor.fmt import number
from ropedoctor.rope_math import yarn_mscale
from ropedoctor.rules.registry import Hit, Target, rule
from ropedoctor.spec import GgufLayout, RopeSpec, json_number


def _layout(spec: RopeSpec) -> GgufLayout | None:
    return spec.gguf if spec.format == "gguf" else None


@rule("RD401", "gguf-wrong-type", "error")
def gguf_wrong_type(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that each RoPE and length key is stored with the exact GGUF type llama.cpp's loader
    asks for: `context_length`, `rope.dimension_count` and `rope.scaling.original_context_length`
    UINT32; `rope.freq_base` and `rope.scaling.factor` FLOAT32; `rope.scaling.type` STRING;
    `attention.causal` BOOL.

    ## Why it matters
    llama.cpp compares the stored type with the C++ type and stops the load with
    "key X has wrong type u64 but expected type u32". gguf-parser-go reads numbers whatever
    their type, so it does not catch this.

    ## Example
    ```console
    $ gguf-dump model.gguf | grep context_length
         17: UINT64     |        1 | llama.context_length = 8192
    ```

    ## Fix
    Rewrite the key with the right type (`ropedoctor fix`), or override it at load:
    `--override-kv llama.context_length=int:8192`.
    """
    layout = _layout(spec)
    if layout is None:
        return
    for template, stored in layout.types.items():
        wanted = G.REQUIRED_TYPES.get(template)
        if wanted and stored not in wanted:
            names = " or ".join(t.name for t in wanted)
            yield Hit(f"{layout.key(template)} is stored as {G.ValueType(stored).name}; llama.cpp requires {names} "
                      f"and refuses to load", layout.key(template))


@rule("RD402", "gguf-unknown-scaling-type", "error")
def gguf_unknown_scaling_type(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that `rope.scaling.type` is one of `none`, `linear`, `yarn`, `longrope`.

    ## Why it matters
    Any other string (`dynamic`, `llama3`, `su`, `default`, written by third-party tools)
    makes llama.cpp abort the load with
    `GGML_ASSERT(hparams.rope_scaling_type_train != LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED)`.

    ## Example
    ```console
    llama.rope.scaling.type = "dynamic"
    ```

    ## Fix
    Write a supported type, or `none` and a static base (`ropedoctor fix --type ntk`).
    """
    layout = _layout(spec)
    value = layout.values.get(G.ROPE_SCALING_TYPE) if layout else None
    if layout and value is not None and value not in G.SCALING_TYPES:
        yield Hit(f"rope.scaling.type {value!r} is not one of {', '.join(G.SCALING_TYPES)}; llama.cpp aborts the load",
                  layout.key(G.ROPE_SCALING_TYPE))


@rule("RD403", "gguf-yarn-context-capped", "warning")
def gguf_yarn_context_capped(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a YaRN GGUF whose `context_length` equals its `original_context_length`.

    ## Why it matters
    It is what converting a config.json with Qwen's YaRN snippet gives (the converter copies
    `max_position_embeddings` as is). llama-server caps every slot at `context_length`, and baked
    YaRN does not trigger its autoscale, so the model serves only the original length
    (verified against llama-server: a 3002-token input is rejected at 2048).

    ## Example
    ```console
    qwen2.context_length = 32768, qwen2.rope.scaling.factor = 4.0,
    qwen2.rope.scaling.original_context_length = 32768
    ```

    ## Fix
    Set `context_length` to factor x original (`ropedoctor fix`), or at load:
    `--override-kv qwen2.context_length=int:131072`.
    """
    layout = _layout(spec)
    if layout is None or spec.method != "yarn" or not spec.factor or spec.factor <= 1 or not spec.context:
        return
    if G.ROPE_SCALING_ORIG_CTX_LEN in layout.values and spec.original_context == spec.context:
        full = int(spec.context * spec.factor)
        yield Hit(f"context_length {spec.context} equals original_context_length with YaRN x{spec.factor:g}: "
                  f"llama-server caps slots at {spec.context}; use --override-kv "
                  f"{layout.key(G.CONTEXT_LENGTH)}=int:{full}", layout.key(G.CONTEXT_LENGTH))


@rule("RD404", "gguf-yarn-missing-original", "error")
def gguf_yarn_missing_original(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports YaRN scaling without `rope.scaling.original_context_length`.

    ## Why it matters
    llama.cpp then takes `context_length` as the pre-scaling length: the YaRN correction
    dimensions move, and when `context_length` is already the extended length the ramp and the
    attention factor are those of a different model.

    ## Example
    ```console
    llama.rope.scaling.type = "yarn", llama.rope.scaling.factor = 4.0, llama.context_length = 16384
    ```

    ## Fix
    Add the key (`ropedoctor fix`), or pass `--yarn-orig-ctx 4096` with every YaRN run.
    """
    layout = _layout(spec)
    if layout and spec.method == "yarn" and G.ROPE_SCALING_ORIG_CTX_LEN not in layout.values:
        yield Hit(f"YaRN without original_context_length: llama.cpp assumes context_length {spec.context}",
                  layout.key(G.ROPE_SCALING_ORIG_CTX_LEN))


@rule("RD405", "gguf-factor-without-type", "warning")
def gguf_factor_without_type(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a scaling factor whose `rope.scaling.type` is missing or `none`.

    ## Why it matters
    A missing type reads as `linear`, so the factor is applied as Position Interpolation, which
    may not be what the model was trained with (converters that lost a YaRN type). With
    `none` llama.cpp ignores the factor entirely ("never scale if scaling type is none").

    ## Example
    ```console
    llama.rope.scaling.factor = 4.0   (no llama.rope.scaling.type)
    ```

    ## Fix
    Write the type the model was trained with (`yarn` or `linear`), or remove the factor.
    """
    layout = _layout(spec)
    if layout is None:
        return
    stored = layout.values.get(G.ROPE_SCALING_FACTOR, layout.values.get(G.ROPE_SCALE_LINEAR))
    factor = json_number(stored)
    if not factor or factor == 1:
        return
    scaling_type = layout.values.get(G.ROPE_SCALING_TYPE)
    if scaling_type is None:
        yield Hit(f"factor {factor:g} without rope.scaling.type: llama.cpp applies it as linear",
                  layout.key(G.ROPE_SCALING_TYPE))
    elif scaling_type == "none":
        yield Hit(f"factor {factor:g} with rope.scaling.type 'none': llama.cpp ignores the factor",
                  layout.key(G.ROPE_SCALING_TYPE))


@rule("RD406", "gguf-rope-tensor-length", "error")
def gguf_rope_tensor_length(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that `rope_freqs`, `rope_factors_long` and `rope_factors_short` have one entry per
    rotary frequency (`rope.dimension_count / 2`).

    ## Why it matters
    Each entry divides one frequency; llama.cpp refuses tensors of the wrong size at load
    (the converter checks Phi-3's lists for the same reason).

    ## Example
    ```console
    rope_factors_long.weight  [64]   with llama.rope.dimension_count = 96
    ```

    ## Fix
    Re-convert from the config.json whose factor lists have `rotary_dim / 2` entries.
    """
    layout = _layout(spec)
    if layout is None or not spec.rotary_dim:
        return
    for name in (G.ROPE_FREQS, G.ROPE_FACTORS_LONG, G.ROPE_FACTORS_SHORT):
        count = layout.tensors.get(name)
        if count is not None and count != spec.rotary_dim // 2:
            yield Hit(f"{name} has {count} entries; rotary dim {spec.rotary_dim} needs {spec.rotary_dim // 2}", name)


@rule("RD407", "gguf-rotary-dim-mismatch", "error")
def gguf_rotary_dim_mismatch(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Checks that `rope.dimension_count` equals the head size on architectures that rotate the
    whole head (`llama`, `deci`, `falcon`, `llama-embed`).

    ## Why it matters
    llama.cpp stops the load with `invalid n_rot: X, expected Y`.

    ## Example
    ```console
    llama.rope.dimension_count = 64   with head size 128
    ```

    ## Fix
    Write the head size (128), or convert the model under an architecture with partial rotation.
    """
    layout = _layout(spec)
    arch = GGUF_ARCHS.get(layout.arch, GgufArch()) if layout else None
    stored = layout is not None and G.ROPE_DIMENSION_COUNT in layout.values
    if layout and arch and arch.rotary_must_equal_head and stored and spec.rotary_dim != spec.head_dim:
        yield Hit(f"rope.dimension_count {spec.rotary_dim} differs from the head size {spec.head_dim}; "
                  f"llama.cpp stops with 'invalid n_rot'", layout.key(G.ROPE_DIMENSION_COUNT))


@rule("RD408", "gguf-freq-base-missing", "warning")
def gguf_freq_base_missing(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports a GGUF without `rope.freq_base` whose family does not use 10000 (Qwen2/3 1e6,
    Llama-3 5e5, nomic-bert 1000, gpt-oss 150000, ...).

    ## Why it matters
    llama.cpp assumes 10000 when the key is absent. Older converters wrote only `rope_theta`
    and dropped other names (GPT-NeoX's `rotary_emb_base` is still never written), so the model
    runs with the wrong frequencies at every position.

    ## Example
    ```console
    general.architecture = "qwen2"   (no qwen2.rope.freq_base)
    ```

    ## Fix
    Add the key with the family's base (`ropedoctor fix`), or pass `--rope-freq-base 1000000`.
    """
    layout = _layout(spec)
    if layout is None or not spec.has_rope or G.ROPE_FREQ_BASE in layout.values:
        return
    usual = GGUF_ARCHS.get(layout.arch, GgufArch()).usual_base
    names = f"{layout.name or ''} {layout.basename or ''}".lower()
    if layout.arch == "llama" and ("llama-3" in names or "llama 3" in names or "llama3" in names):
        usual = 500_000.0
    if usual is not None and usual != 10_000.0:
        yield Hit(f"no rope.freq_base: llama.cpp uses 10000, but {layout.arch} models use {number(usual)}",
                  layout.key(G.ROPE_FREQ_BASE))


# Keys the converter writes (conversion/base.py, from HF beta_fast, beta_slow, extrapolation_factor,
# attention_factor/attn_factor) -> the architectures whose loader reads them (llama.cpp 0c1e57098:
# src/models/grok.cpp and src/models/mistral3.cpp; load_hparams reads none of them), and what every other
# architecture runs instead (llama_context's defaults: beta 32/1, ext_factor 1 under YaRN, the attention
# factor derived as 0.1 ln(s) + 1 times rope.scaling.attn_factor).
IGNORED_YARN_KEYS: dict[str, tuple[frozenset[str], str]] = {
    G.ROPE_SCALING_YARN_BETA_FAST: (frozenset({"grok", "mistral3"}), "beta_fast 32"),
    G.ROPE_SCALING_YARN_BETA_SLOW: (frozenset({"grok", "mistral3"}), "beta_slow 1"),
    G.ROPE_SCALING_YARN_EXT_FACTOR: (frozenset({"grok"}), "ext_factor 1 under YaRN, 0 otherwise"),
    G.ROPE_SCALING_YARN_ATTN_FACTOR: (frozenset({"grok"}), "the attention factor 0.1 ln(s) + 1 it derives "
                                      "itself (times rope.scaling.attn_factor)"),
}


@rule("RD409", "gguf-key-not-read", "info")
def gguf_key_not_read(spec: RopeSpec, target: Target) -> Iterator[Hit]:
    """
    ## What it does
    Reports YaRN keys stored in the GGUF that llama.cpp's loader for this architecture does not
    read: `rope.scaling.yarn_beta_fast`, `yarn_beta_slow`, `yarn_ext_factor` and `yarn_attn_factor`
    (read only by the grok and mistral3 loaders), where the stored value is not what llama.cpp runs.

    ## Why it matters
    The converter copies them from config.json, so the file looks as if it carried them, but
    llama.cpp runs its own values (beta_fast 32, beta_slow 1, ext_factor 1, the attention factor
    it derives). A stored value other than those is not what the model runs.

    ## Example
    ```console
    qwen2.rope.scaling.yarn_beta_fast = 64.0
    ```

    ## Fix
    Nothing to do when the values are llama.cpp's own; otherwise pass `--yarn-beta-fast` /
    `--yarn-beta-slow` / `--yarn-ext-factor` at load (`ropedoctor flags`).
    """
    layout = _layout(spec)
    if layout is None:
        return
    # what llama.cpp runs instead, as a number: a stored value equal to it changes nothing and is not reported
    ran = {G.ROPE_SCALING_YARN_BETA_FAST: 32.0, G.ROPE_SCALING_YARN_BETA_SLOW: 1.0,
           G.ROPE_SCALING_YARN_EXT_FACTOR: 1.0 if spec.method == "yarn" else 0.0,
           G.ROPE_SCALING_YARN_ATTN_FACTOR: yarn_mscale(spec.factor or 1.0) if spec.method == "yarn" else 1.0}
    for template, (readers, runs) in IGNORED_YARN_KEYS.items():
        stored = json_number(layout.values.get(template))
        if stored is None or layout.arch in readers or abs(stored - ran[template]) <= 1e-4 * abs(ran[template]):
            continue
        yield Hit(f"{layout.key(template)} = {number(stored)} is not read by llama.cpp's {layout.arch} loader; it "
                  f"runs {runs}" + (f" = {number(ran[template])}" if template == G.ROPE_SCALING_YARN_ATTN_FACTOR
                                     else ""), layout.key(template))
