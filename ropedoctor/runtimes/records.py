"""What each serving runtime does with a config.json: one record per runtime and version range.

Read from the runtimes' own code and checked against it: tests/test_runtime_oracles.py replays every fixture and
method through vLLM 0.33.0, SGLang 0.5.23 and LMDeploy 0.18.0 (their wheels' config loading, override merge,
length derivation and RoPE construction). The records marked ``proven`` are those versions; the others restate the
notes (shared/reference/runtimes.md) for older versions and are not replayed.

``flags`` (runtimes/servers.py) shapes its overrides from these records and the rules that speak for a runtime
(RD206, RD207, RD208 in rules/portability.py) read the same records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ropedoctor.spec import RopeSpec

Merge = Literal["replace", "merge", "recursive"]
Dynamic = Literal["trained-positions", "static-at-factor", "per-sequence"]

# vllm/transformers_utils/model_arch_config_convertor.py derive_max_model_len_and_key, in its order
_VLLM_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                     "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len")
# sglang/srt/utils/hf_transformers/common.py CONTEXT_LENGTH_KEYS
_SGLANG_LENGTH_KEYS = ("max_sequence_length", "seq_length", "max_seq_len", "model_max_length",
                       "max_position_embeddings")
# lmdeploy/utils.py _get_and_verify_max_len
_LMDEPLOY_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                         "max_sequence_length", "max_seq_length", "seq_len")


@dataclass(frozen=True)
class ServerRecord:
    """How one runtime (a version range) derives its length, merges overrides and builds RoPE."""

    runtime: str
    versions: str  # the range, as people write it
    first: tuple[int, ...]  # the first version covered
    proven: bool  # replayed through that version's own code by the test suite
    length_keys: tuple[str, ...]  # every key it reads for the maximum length, in its order
    length_rule: Literal["smallest", "first"]
    outright_key: str | None  # a key that, when present, is the length whatever the others say
    unscaled_methods: frozenset[str]  # methods whose factor does not multiply the derived length
    unscaled_when_original: bool  # the factor does not multiply when the block has original_max_position_embeddings
    unscaled_model_types: tuple[str, ...]  # model types (substrings) whose length is never multiplied
    refuses_longer: bool  # a length flag above the derived length stops the start (else: a warning)
    allow_env: str | None  # the variable that turns that refusal into a warning
    length_flag: str
    override_flag: str
    block_key: str  # the scaling block key its overrides set
    merge: Merge  # what a dict override does to the existing block at the top level
    # how dynamic NTK runs: "trained-positions" (vLLM: a static base from max_trained_positions and the position
    # count; the cache has max_position_embeddings rows), "static-at-factor" (SGLang: the base transformers uses
    # at factor x max_position_embeddings, for every input), "per-sequence" (as transformers)
    dynamic: Dynamic
    yarn_factor_from_positions: bool  # YaRN's factor is max_position_embeddings / original (TurboMind)
    honours_attn_factor: bool  # YaRN's legacy attn_factor multiplies the attention scale (transformers ignores it)
    methods: frozenset[str]  # the scaling methods its rotary code builds from a block
    # methods a plan may carry that it cannot run at all: why
    unsupported: dict[str, str] = field(default_factory=dict)
    # model types whose model code builds its own RoPE whatever the block says: the methods it can build, and why
    model_methods: dict[str, tuple[frozenset[str], str]] = field(default_factory=dict)
    # model types it has no model for at all: why
    no_model: dict[str, str] = field(default_factory=dict)
    block_keeps: tuple[str, ...] = ("mrope_section", "mrope_interleaved")  # file keys an override must carry on
    embedding_flags: tuple[str, ...] = ()  # how it serves an encoder (embeddings); () when it cannot
    remote_code_flag: str = "--trust-remote-code"
    # YaRN under M-RoPE computes its correction range from this many times the original length (vLLM's
    # MRotaryEmbedding sizes its cache, and so its YaRN ramp, by positions_factor = 4)
    mrope_yarn_original_times: int = 1
    # how deep under the top level an override can reach a sub-config (SGLang's get_config updates one level; a
    # deeper dict replaces the sub-config with a plain dict); None: any depth
    nest_depth: int | None = None
    # where transformers nests the block by layer type, whether the length factor is read per layer type (vLLM
    # iterates them) or only at the top (SGLang's rope_scaling.get("factor") finds none there)
    factor_per_layer: bool = True
    # LongRoPE's factor lists: switched per input past the original length ("per-input", as transformers), or
    # the long ones for every input once the maximum length exceeds it (vLLM's Phi3LongRoPEScaledRotaryEmbedding)
    longrope: Literal["per-input", "long-past-original"] = "per-input"

    def covers(self, version: tuple[int, ...] | None) -> bool:
        return version is None or version >= self.first


_SCALED = frozenset({"default", "linear", "dynamic", "yarn", "llama3", "longrope"})
_PLAIN = frozenset({"default"})

VLLM = ServerRecord(
    runtime="vllm", versions="0.30-0.33", first=(0, 30), proven=True,
    length_keys=_VLLM_LENGTH_KEYS, length_rule="smallest", outright_key="model_max_length",
    unscaled_methods=frozenset({"default", "longrope", "llama3", "yarn"}), unscaled_when_original=False,
    unscaled_model_types=("gemma3",), refuses_longer=True, allow_env="VLLM_ALLOW_LONG_MAX_MODEL_LEN",
    length_flag="--max-model-len", override_flag="--hf-overrides", block_key="rope_parameters", merge="replace",
    dynamic="trained-positions", yarn_factor_from_positions=False, honours_attn_factor=False, methods=_SCALED,
    mrope_yarn_original_times=4, longrope="long-past-original", embedding_flags=("--runner", "pooling"),
    model_methods={
        "chatglm": (_PLAIN, "vLLM's chatglm.py builds plain RoPE over half the head (base 10000 x rope_ratio) and "
                            "reads no scaling block"),
        "gpt_oss": (frozenset({"yarn"}), "vLLM's gpt_oss.py builds YaRN from the block's keys whatever its rope_type"),
    },
    no_model={"baichuan": "vLLM removed BaichuanForCausalLM in 0.23.0",
              "qwen": "vLLM removed QWenLMHeadModel in 0.23.0", "mpt": "vLLM removed MPTForCausalLM in 0.28.0",
              "telechat3": "vLLM 0.33 has no TeleChat3 model and transformers no class for its Transformers backend"},
)
# 0.12-0.29 (notes, not replayed): YaRN's derived length is original x factor; otherwise as 0.30
VLLM_0_12 = ServerRecord(
    **{**VLLM.__dict__, "versions": "0.12-0.29", "first": (0, 12), "proven": False,
       "unscaled_methods": frozenset({"default", "longrope", "llama3"})},
)

SGLANG = ServerRecord(
    runtime="sglang", versions="0.5.x", first=(0, 5), proven=True,
    length_keys=_SGLANG_LENGTH_KEYS, length_rule="first", outright_key=None,
    unscaled_methods=frozenset({"llama3"}), unscaled_when_original=True, unscaled_model_types=(),
    refuses_longer=True, allow_env="SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN",
    length_flag="--context-length", override_flag="--json-model-override-args", block_key="rope_scaling",
    merge="merge", dynamic="static-at-factor", yarn_factor_from_positions=False, honours_attn_factor=True,
    methods=_SCALED, nest_depth=1, factor_per_layer=False, embedding_flags=("--is-embedding",),
    no_model={"falcon": "SGLang 0.5.23 has no Falcon model, and transformers' Falcon class is not compatible with "
                        "its Transformers backend",
              "telechat3": "SGLang 0.5.23 has no TeleChat3 model and transformers no class for its Transformers "
                           "backend"},
    model_methods={
        "gemma3": (_PLAIN, "SGLang 0.5.23's gemma3_causal.py builds every layer with rope_type default (only the "
                           "two bases)"),
        "gemma3_text": (_PLAIN, "SGLang 0.5.23's gemma3_causal.py builds every layer with rope_type default"),
        "phi": (_PLAIN, "SGLang 0.5.23's phi.py passes no scaling block to get_rope"),
        "chatglm": (_PLAIN, "SGLang 0.5.23's chatglm.py builds plain RoPE (base 10000 x rope_ratio) and reads no "
                            "scaling"),
        "baichuan": (_PLAIN, "SGLang 0.5.23's baichuan.py takes only rope_theta from the config"),
    },
)

LMDEPLOY = ServerRecord(
    runtime="lmdeploy", versions="0.18 (TurboMind)", first=(0, 18), proven=True,
    length_keys=_LMDEPLOY_LENGTH_KEYS, length_rule="smallest", outright_key=None,
    unscaled_methods=_SCALED, unscaled_when_original=False, unscaled_model_types=(),
    refuses_longer=False, allow_env=None, length_flag="--session-len", override_flag="--hf-overrides",
    block_key="rope_scaling", merge="recursive", dynamic="per-sequence", yarn_factor_from_positions=True,
    honours_attn_factor=False, methods=frozenset({"default", "linear", "dynamic", "yarn", "llama3"}),
    unsupported={"dual_chunk": "LMDeploy 0.18 has no dual-chunk attention (Qwen2.5-1M): it runs plain RoPE over "
                               "every position"},
)

RECORDS: dict[str, tuple[ServerRecord, ...]] = {
    "vllm": (VLLM, VLLM_0_12), "sglang": (SGLANG,), "lmdeploy": (LMDEPLOY,),
}


def record(runtime: str, version: tuple[int, ...] | None = None) -> ServerRecord:
    """The record for a runtime at a version (the newest when None; the oldest record for older versions)."""
    records = RECORDS[runtime]
    for candidate in records:
        if candidate.covers(version):
            return candidate
    return records[-1]


@cache
def _hf_records() -> dict[str, dict[str, Any]]:
    from ropedoctor.families import hf_records

    return hf_records()


def nested_labels(spec: RopeSpec) -> tuple[str, ...]:
    """The layer types transformers nests this model's rope_parameters by (Gemma-3, ModernBERT, OLMo-3): a flat
    override would replace that dict, and the model code then indexes a layer type that is gone."""
    if spec.layers:
        return tuple(sorted(spec.layers))
    records = _hf_records()
    record = records.get(spec.model_type or "") or records.get((spec.model_type or "").removesuffix("_text")) or {}
    block = record.get("block")
    if isinstance(block, dict) and block and all(isinstance(value, dict) for value in block.values()):
        return tuple(sorted(block))
    return ()


def block_factor(rec: ServerRecord, block: dict[str, object], nested: bool = False) -> float:
    """The factor a runtime multiplies its length by: the block's own (per layer type, the last scaled one's, as
    vLLM iterates), 1 for the methods it leaves unscaled or a block without one. ``nested``: the runtime's
    transformers nests the block by layer type (a runtime that reads only a top-level factor then finds none)."""
    if nested and not rec.factor_per_layer:
        return 1.0
    layers = [v for v in block.values() if isinstance(v, dict)] if block and all(
        isinstance(v, dict) for v in block.values()) else [block]
    factor = 1.0
    for layer in layers:
        kind = layer.get("rope_type", layer.get("type", "default"))
        value = layer.get("factor")
        if kind not in rec.unscaled_methods and isinstance(value, (int, float)) and not isinstance(value, bool):
            factor = float(value)
    return factor


def derived_length(rec: ServerRecord, lengths: dict[str, int], method: str, factor: float | None,
                   block: dict[str, object], model_type: str | None, nested: bool = False) -> int | None:
    """The maximum length the runtime derives from a config's length keys and (merged) scaling block.

    ``factor`` is the factor the block would carry when ``block`` is empty (nothing overridden)."""
    if block or nested:
        factor = block_factor(rec, block, nested)
    present = [(key, lengths[key]) for key in rec.length_keys if lengths.get(key) is not None]
    if not present:
        return None
    if rec.outright_key and lengths.get(rec.outright_key):
        base = lengths[rec.outright_key]
    elif rec.length_rule == "smallest":
        base = min(value for _, value in present)
    else:
        base = present[0][1]
    scaled = method not in rec.unscaled_methods and factor and factor > 1
    if rec.unscaled_when_original and "original_max_position_embeddings" in block:
        scaled = False
    if any(part in (model_type or "") for part in rec.unscaled_model_types):
        scaled = False
    return int(base * factor) if scaled and factor else base
