"""config.json (transformers 4.x and 5.x layouts, and model-specific names) into a RopeSpec.

The numbers are what transformers 5 would use for the same file: we mirror its
``convert_rope_params_to_dict`` and ``standardize_rope_params`` (legacy ``type``, a non-null
``rope_scaling`` winning over ``rope_parameters``, theta inside the block winning over the
top-level one, the family's ``default_theta``, the original length filled from
``max_position_embeddings``). Remote-code families (ChatGLM, Qwen v1, NomicBert) are read the
way their own ``configuration_*.py`` and modelling code read them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ropedoctor import hf_keys as K
from ropedoctor.errors import InputError
from ropedoctor.families import (
    MIN_PLAUSIBLE_TRAINED_LENGTH,
    Family,
    PositionKind,
    family_of,
    type_of_architecture,
)
from ropedoctor.model import methods
from ropedoctor.sources.json_file import read_json_object, type_name
from ropedoctor.spec import HfLayout, LayerRope, RopeSpec, json_int, json_number

# Keys whose wrong JSON type makes the file unusable (exit 2), as opposed to RoPE values
# of the wrong type, which are findings that point at the key.
_SHAPE_KEYS = (
    K.MAX_POSITIONS, K.HIDDEN_SIZE, K.NUM_ATTENTION_HEADS, K.HEAD_DIM, K.N_POSITIONS, K.N_EMBD, K.N_HEAD,
    K.SEQ_LENGTH, K.KV_CHANNELS, K.QK_ROPE_HEAD_DIM, K.MAX_TRAINED_POSITIONS,
)


# Shape keys transformers accepts as a list (one value per stage) or as 0 (no rotary part: glm5_next's
# qk_rope_head_dim, a head_dim left 0 for the class to derive).
_PER_LAYER_KEYS = frozenset({K.NUM_ATTENTION_HEADS, K.HEAD_DIM})
_ZERO_MEANS_NONE = frozenset({K.HEAD_DIM, K.QK_ROPE_HEAD_DIM})
# Keys whose value is the rotary dimension itself (MiniMax-M2's rotary_dim; MLA's qk_rope_head_dim).
_DIRECT_ROTARY_KEYS = frozenset({"rotary_dim", K.QK_ROPE_HEAD_DIM})


def read_hf_config(path: Path) -> RopeSpec:
    """Read a config.json file; InputError when it cannot be used."""
    return spec_from_config(read_json_object(path), str(path))


def spec_from_config(data: dict[str, Any], source: str) -> RopeSpec:
    """The RopeSpec of a parsed config.json."""
    outer_type = data.get(K.MODEL_TYPE)
    wrapper = family_of(outer_type if isinstance(outer_type, str) else None)
    text, prefix = _text_part(data, source, wrapper.text_paths)
    model_type = text.get(K.MODEL_TYPE, data.get(K.MODEL_TYPE))
    if model_type is not None and not isinstance(model_type, str):
        raise InputError(source, f"{prefix}{K.MODEL_TYPE} must be a string, got {type_name(model_type)}")
    _check_shape_types(text, prefix, source)
    family = family_of(model_type)
    if not family.known and wrapper.known and text is not data:
        # the text part names a type nothing records (or none): the wrapper's record describes its text config
        family, model_type = wrapper, outer_type if isinstance(outer_type, str) else model_type
    if not family.known:
        # remote code built on a native class (Kimi-K2: DeepseekV3ForCausalLM) reads its keys as that class does
        native = type_of_architecture(data.get("architectures"))
        family = replace(family_of(native), remote_code=True) if native else family
    reader = _Reader(text, prefix, family, source, model_type, str(data.get("transformers_version", "")) or None)
    positions = _position_kind(text, model_type, family)
    if positions != "rope":
        return reader.non_rope_spec(positions)
    return reader.rope_spec()


def _text_part(data: dict[str, Any], source: str, paths: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """The text model's part of a multimodal wrapper (Gemma-3, Llama-4, Qwen-VL), or the file.

    ``paths`` are where the wrapper's class keeps it (``thinker_config.text_config``, ``decoder``), from its
    generated record; ``text_config`` is tried last.
    """
    for path in paths:
        if path == K.TEXT_CONFIG:
            continue
        node: Any = data
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and node:
            return node, path + "."
    if K.TEXT_CONFIG not in data or data[K.TEXT_CONFIG] is None:
        return data, ""
    text = data[K.TEXT_CONFIG]
    if not isinstance(text, dict):
        raise InputError(source, f"{K.TEXT_CONFIG} must be an object, got {type_name(text)}")
    # Qwen2-VL in the 4.x layout keeps the text settings at the top and may carry a
    # text_config without them; read whichever part actually holds the positions.
    holds_positions = any(key in text for key in (*K.ROPE_EVIDENCE_KEYS, K.MAX_POSITIONS))
    if not holds_positions and any(key in data for key in (*K.ROPE_EVIDENCE_KEYS, K.MAX_POSITIONS)):
        return data, ""
    return text, K.TEXT_CONFIG + "."


def _check_shape_types(text: dict[str, Any], prefix: str, source: str) -> None:
    for key in _SHAPE_KEYS:
        value = text.get(key)
        number = json_int(value)
        if isinstance(value, list) and key in _PER_LAYER_KEYS:
            continue  # per-stage head counts (vision/audio towers): not a text model's shape, read as absent
        if value is not None and number is None:
            raise InputError(source, f"{prefix}{key} must be an integer, got {type_name(value)} {value!r}")
        if number is not None and number < (0 if key in _ZERO_MEANS_NONE else 1):
            raise InputError(source, f"{prefix}{key} must be a positive integer, got {number}")
    for key in (K.ROPE_SCALING, K.ROPE_PARAMETERS):
        value = text.get(key)
        if value is not None and not isinstance(value, dict):
            raise InputError(source, f"{prefix}{key} must be an object or null, got {type_name(value)}")


def _position_kind(text: dict[str, Any], model_type: str | None, family: Family) -> PositionKind:
    """RoPE, ALiBi or learned absolute positions, from the family and the switches some files carry."""
    embedding_type = text.get(K.POSITION_EMBEDDING_TYPE)
    if embedding_type == "alibi":  # jina-bert is model_type "bert" with this switch
        return "alibi"
    if embedding_type == "rotary":
        return "rope"
    if text.get(K.ALIBI) is True:  # Falcon-40B/180B-style switch
        return "alibi"
    attn_config = text.get("attn_config")
    if model_type == "mpt" and isinstance(attn_config, dict) and not attn_config.get("alibi", False):
        return "absolute"  # MPT without ALiBi uses a learned table
    if model_type == "baichuan" and text.get(K.HIDDEN_SIZE) == 5120 and K.ROPE_THETA not in text:
        return "alibi"  # Baichuan/Baichuan2-13B: the 13B modelling code uses ALiBi, the 7B RoPE
    if model_type == "nomic_bert" and json_number(text.get(K.ROTARY_EMB_FRACTION)) == 0.0:
        return "absolute"
    if not family.known:  # no record: RoPE only when the file itself says so
        return "rope" if any(key in text for key in K.ROPE_EVIDENCE_KEYS) else "unknown"
    return family.positions


class _Reader:
    """Reads one (text) config with its family's names, recording where each value came from."""

    def __init__(self, text: dict[str, Any], prefix: str, family: Family, source: str, model_type: str | None,
                 saved_by: str | None) -> None:
        self.text = text
        self.model_type = model_type
        self.prefix = prefix
        self.family = family
        self.source = source
        self.provenance: dict[str, str] = {}
        self.saved_by = saved_by

    # --- plain values -------------------------------------------------------------
    def first(self, field: str, keys: tuple[str, ...]) -> Any:
        """The first of ``keys`` present in the config, recorded as ``field``'s provenance."""
        for key in keys:
            if self.text.get(key) is not None:
                self.provenance[field] = self.prefix + key
                return self.text[key]
        return None

    def context(self) -> int | None:
        value = json_int(self.first("context", self.family.context_keys))
        return value if value is not None else self.family.default_context

    def head_dim(self) -> int | None:
        head_dim = json_int(self.first("head_dim", self.family.head_dim_keys))
        if head_dim:
            return head_dim
        self.provenance.pop("head_dim", None)
        if self.family.default_head_dim:
            return self.family.default_head_dim
        hidden = json_int(self.first("hidden_size", self.family.hidden_size_keys))
        heads = json_int(self.first("num_heads", self.family.num_heads_keys))
        if hidden and heads:
            self.provenance["head_dim"] = self.provenance.pop("hidden_size", "")
            return hidden // heads
        return None

    def causal(self) -> bool:
        value = self.text.get(K.IS_CAUSAL)
        return value if isinstance(value, bool) else self.family.causal

    # --- models without RoPE --------------------------------------------------------
    def non_rope_spec(self, positions: PositionKind) -> RopeSpec:
        context = self.context()
        if positions in ("alibi", "unknown") and "context" not in self.provenance:
            context = None  # the family default is an absolute table size (BERT's 512), not an ALiBi length
        table = context - self.family.position_offset if context and positions == "absolute" else None
        explicit = json_int(self.first("head_dim", self.family.head_dim_keys))
        head_dim = explicit if explicit is not None and explicit >= 0 else self.head_dim()  # glm5_next's NoPE 0
        return RopeSpec(
            source=self.source, format="hf-config", model_type=self.model_type, positions=positions, method="none",
            context=context, head_dim=head_dim, causal=self.causal(), remote_code=self.family.remote_code,
            position_table=table, provenance=self.provenance,
        )

    # --- RoPE ---------------------------------------------------------------------------
    def top_theta(self) -> float | None:
        """The base outside the scaling block, under the family's name for it."""
        if self.family.theta_keys == (K.ROPE_RATIO,):  # ChatGLM: base = 10000 * rope_ratio
            ratio = self.first("theta", (K.ROPE_RATIO,))
            number = json_number(ratio)
            return 10_000.0 * number if number is not None else (None if ratio is not None else 10_000.0)
        value = self.first("theta", self.family.theta_keys)
        if value is None:
            return self.family.default_theta
        return value  # type: ignore[no-any-return]  # kept as written; rules report a non-number

    def top_partial_rotary(self) -> Any:
        value = self.first("partial_rotary_factor", self.family.partial_rotary_keys)
        return value if value is not None else self.family.default_partial_rotary

    def rope_spec(self) -> RopeSpec:
        text, family, model_type = self.text, self.family, self.model_type
        context = self.context()
        head_dim = self.head_dim()
        located, raw_block, raw_key = self.standardised_blocks(context)
        _, main_location, block = located[0]
        blocks = {location: b for _, location, b in located}
        method = str(block.get(K.ROPE_TYPE, "default"))
        layers = {
            label: LayerRope(
                method=str(b.get(K.ROPE_TYPE)), theta=json_number(b.get(K.ROPE_THETA)),
                factor=json_number(b.get(K.FACTOR)), location=location,
            )
            for label, location, b in located
            if label is not None
        }
        if raw_block:
            named_by = K.ROPE_TYPE if K.ROPE_TYPE in raw_block or K.LEGACY_TYPE not in raw_block else K.LEGACY_TYPE
            self.provenance["method"] = f"{main_location}.{named_by}"
        self.provenance.setdefault("method", main_location)
        for field, key in ((K.FACTOR, "factor"), (K.ORIGINAL_MAX_POSITIONS, "original_context")):
            if raw_block is not None and key not in self.provenance:
                self.provenance[key] = f"{main_location}.{field}"
        if raw_block is not None and raw_block.get(K.ROPE_THETA) is not None:
            self.provenance["theta"] = f"{main_location}.{K.ROPE_THETA}"

        partial = json_number(block.get(K.PARTIAL_ROTARY_FACTOR))
        # above 1 only where the class's own default is (EfficientLoFTR's 4.0 over a 32-wide head)
        ceiling = max(1.0, family.default_partial_rotary or 1.0)
        partial = partial if partial is not None and 0 < partial <= ceiling else 1.0
        rotary_dim = self.rotary_dim(head_dim, partial, located[0][0], method)
        if dict(family.rotary_keys).get(located[0][0] or "") == "global_head_dim" and "rotary_dim" in self.provenance:
            head_dim = json_int(text.get("global_head_dim")) or head_dim  # Gemma-4: the full-attention head
            self.provenance["head_dim"] = self.provenance["rotary_dim"]
        alpha = json_number(block.get("alpha"))
        if method == "dynamic" and alpha is not None and alpha > 0:
            # HunYuan: `alpha` in a dynamic block is a fixed NTK base multiplier; transformers' HunYuan rotary
            # module and llama.cpp's converter apply it statically (methods.ntk_alpha)
            method = "ntk_alpha"
        factor = json_number(block.get(K.FACTOR))
        original = json_int(block.get(K.ORIGINAL_MAX_POSITIONS)) if method in K.METHODS_WITH_ORIGINAL else None
        if factor is None and method in ("yarn", "longrope") and context and original:
            factor = context / original  # what transformers' init functions use when factor is absent
        if method not in K.METHODS_WITH_ORIGINAL:
            original = self.trained_length(method, context, factor)
        elif original is None and family.top_level_original:  # Phi-3 'su': transformers fails, the length stands
            original = json_int(text.get(K.ORIGINAL_MAX_POSITIONS))
        dual_chunk = text.get("dual_chunk_attention_config")
        if isinstance(dual_chunk, dict) and method == "default":
            # Qwen2.5-1M: dual-chunk attention (vLLM, SGLang) reaches the declared length from this trained one
            method = "dual_chunk"
            self.provenance["method"] = self.prefix + "dual_chunk_attention_config"
            trained = json_int(dual_chunk.get(K.ORIGINAL_MAX_POSITIONS))
            if trained:
                original = trained
                self.provenance["original_context"] = f"{self.prefix}dual_chunk_attention_config.{K.ORIGINAL_MAX_POSITIONS}"
        if model_type == "qwen" and text.get(K.USE_DYNAMIC_NTK) is True:
            method, factor = "dynamic", None  # Qwen v1: NTK alpha recomputed from each input's length
            self.provenance["method"] = self.prefix + K.USE_DYNAMIC_NTK
        if model_type == "nomic_bert":
            nomic_factor = json_number(self.first("factor", (K.ROTARY_SCALING_FACTOR,)))
            if nomic_factor is not None:
                method, factor = "dynamic", nomic_factor
                self.provenance["method"] = self.prefix + K.ROTARY_SCALING_FACTOR
        return RopeSpec(
            source=self.source, format="hf-config", model_type=model_type, positions="rope", method=method,
            theta=json_number(block.get(K.ROPE_THETA)), factor=factor, original_context=original, context=context,
            head_dim=head_dim, rotary_dim=rotary_dim,
            partial_rotary_factor=partial, alpha=alpha if method == "ntk_alpha" else None,
            nope_layers=self.nope_layers(),
            attention_factor=json_number(block.get(K.ATTENTION_FACTOR)),
            beta_fast=json_number(block.get(K.BETA_FAST)), beta_slow=json_number(block.get(K.BETA_SLOW)),
            mscale=json_number(block.get(K.MSCALE)), mscale_all_dim=json_number(block.get(K.MSCALE_ALL_DIM)),
            low_freq_factor=json_number(block.get(K.LOW_FREQ_FACTOR)),
            high_freq_factor=json_number(block.get(K.HIGH_FREQ_FACTOR)),
            short_factor=_number_list(block.get(K.SHORT_FACTOR)), long_factor=_number_list(block.get(K.LONG_FACTOR)),
            truncate=block.get(K.TRUNCATE) if isinstance(block.get(K.TRUNCATE), bool) else None,
            layers=layers, causal=self.causal(), remote_code=family.remote_code, provenance=self.provenance,
            hf=HfLayout(prefix=self.prefix, text=text, blocks=blocks, raw_block=raw_block, raw_block_key=raw_key,
                      saved_by=self.saved_by),
        )

    def rotary_dim(self, head_dim: int | None, partial: float, label: str | None, method: str) -> int | None:
        """The rotated part of a head as transformers builds it: ``ceil(dim / 2)`` frequencies, twice.

        The key that decides it comes from the family's generated record: MiniMax-M2's ``rotary_dim`` and MLA's
        ``qk_rope_head_dim`` are the rotary dimension; Gemma-4's full-attention layers rotate a fraction of
        ``global_head_dim``; everything else a fraction of ``head_dim`` (or hidden_size // num_attention_heads).
        """
        keys = dict(self.family.rotary_keys)
        key = keys.get(label or "") or keys.get("")
        defaults = dict(self.family.default_rotary)
        default = defaults.get(label or "", defaults.get(""))
        if defaults and (not keys or not head_dim):
            return default  # no key moves it (transformers fixes it), or nothing to derive it from
        dim: int | None = None
        if key in _DIRECT_ROTARY_KEYS or key == "global_head_dim":
            value = json_int(self.first("rotary_dim", (key,)))
            if value is not None and value > 0:
                dim = value if key in _DIRECT_ROTARY_KEYS else int(value * partial)
            elif key in _DIRECT_ROTARY_KEYS and key in self.family.head_dim_keys and head_dim:
                dim = int(head_dim * partial)
            elif key == "global_head_dim" or not head_dim:
                return default
        if dim is None:
            dim = int(head_dim * partial) if head_dim else None
        # measured at the class defaults: only the class's default method (2-D axial / patch modules) has it
        if dim and self.family.rotary_scale != 1.0 and method == self.family.default_method:
            dim += dim % 2
            dim = int(dim * self.family.rotary_scale)
        return dim + dim % 2 if dim else dim

    def nope_layers(self) -> int | None:
        """How many layers skip RoPE: ``no_rope_layers`` holds 1 for a RoPE layer and 0 for a NoPE one
        (Llama-4, SmolLM3: transformers' ``use_rope = no_rope_layers[layer_idx]``)."""
        flags = self.first("nope_layers", (K.NO_ROPE_LAYERS,))
        if not isinstance(flags, list) or not all(isinstance(f, int) for f in flags):
            self.provenance.pop("nope_layers", None)
            types = self.text.get(K.LAYER_TYPES)
            if self.family.rope_layer_types and isinstance(types, list):  # Cohere2: only sliding layers rotate
                self.provenance["nope_layers"] = self.prefix + K.LAYER_TYPES
                return sum(1 for t in types if t not in self.family.rope_layer_types) or None
            return None
        return sum(1 for f in flags if f == 0)

    def trained_length(self, method: str, context: int | None, factor: float | None) -> int | None:
        """The pre-scaling length for methods whose block does not carry one."""
        trained = json_int(self.first("original_context", (K.MAX_TRAINED_POSITIONS, K.ORIGINAL_MAX_POSITIONS)))
        if trained is not None and trained > 0:  # 0 or a negative length is no length: read as absent
            return trained
        self.provenance["original_context"] = self.provenance.get("context", "")
        # Vendors disagree whether a linear file's max_position_embeddings is the original
        # (LongChat: 2048 with x8) or the extended length (Together 32K: 32768 with x8); read
        # it as extended when dividing by the factor still leaves a plausible trained length.
        if method == "linear" and context and factor and factor > 1 and context / factor >= MIN_PLAUSIBLE_TRAINED_LENGTH:
            return int(context / factor)
        return context

    def standardised_blocks(
        self, context: int | None
    ) -> tuple[list[tuple[str | None, str, dict[str, Any]]], dict[str, Any] | None, str | None]:
        """The block(s) transformers 5 validates as (layer label, location, block); the raw block and its key.

        The first entry is the one that decides the model's method (full attention when nested).
        """
        text, family, prefix = self.text, self.family, self.prefix
        scaling, parameters = text.get(K.ROPE_SCALING), text.get(K.ROPE_PARAMETERS)
        top_theta, top_partial = self.top_theta(), self.top_partial_rotary()
        raw_key = K.ROPE_SCALING if scaling else (K.ROPE_PARAMETERS if parameters else None)
        raw = dict(scaling or parameters or {})
        if not raw and parameters is None and family.default_block:
            self.provenance["method"] = self.prefix + K.MODEL_TYPE
            located = self.prefix + K.ROPE_PARAMETERS
            return [(None, located, self.standardise(dict(family.default_block), top_theta, top_partial, context))], None, None

        if family.layer_labels:  # Gemma-3, ModernBERT: always one block per layer type
            nested = (_nested_copy(parameters, family.layer_labels) if parameters else None) or {
                label: {K.ROPE_TYPE: "default"} for label in family.layer_labels
            }
            # update() below keeps this rope_type over a legacy `type` (RD214)
            full = nested.setdefault(K.FULL_ATTENTION, {K.ROPE_TYPE: "default"})
            local = nested.setdefault(K.SLIDING_ATTENTION, {K.ROPE_TYPE: "default"})
            if scaling:
                full.update(scaling)
                if family.scaling_on_local_layers:
                    local.update(scaling)
            full.setdefault(K.ROPE_THETA, top_theta)
            local_theta = self.first("local_theta", family.local_theta_keys)
            local.setdefault(K.ROPE_THETA, local_theta if local_theta is not None else family.default_local_theta)
            v5 = prefix + K.ROPE_PARAMETERS + "."
            full_at = prefix + K.ROPE_SCALING if scaling else v5 + K.FULL_ATTENTION
            local_at = v5 + K.SLIDING_ATTENTION if parameters else self.provenance.get("local_theta", full_at)
            return [
                (K.FULL_ATTENTION, full_at, self.standardise(full, None, top_partial, context)),
                (K.SLIDING_ATTENTION, local_at, self.standardise(local, None, top_partial, context)),
            ], (raw or None), raw_key

        layer_types = text.get(K.LAYER_TYPES)
        labels = tuple(t for t in layer_types if isinstance(t, str)) if isinstance(layer_types, list) else ()
        # transformers nests by the class's _rope_type_labels when it has them, else by the layer types
        labels = family.rope_labels or labels
        nested_blocks = _nested_copy(raw, labels) if raw and not scaling else None
        if nested_blocks:
            # full attention decides the model's method (Gemma-4, gpt-oss); else the class's first label
            order = {label: i for i, label in enumerate(dict.fromkeys((K.FULL_ATTENTION, *labels)))}
            nested_blocks = dict(sorted(nested_blocks.items(), key=lambda item: order.get(item[0], len(order))))
            return [
                (label, f"{prefix}{raw_key}.{label}", self.standardise(b, top_theta, top_partial, context))
                for label, b in nested_blocks.items()
            ], raw, raw_key
        location = prefix + (raw_key or K.ROPE_SCALING)
        block = raw
        if scaling and family.legacy_scaling == "dropped" and K.ROPE_TYPE not in scaling:
            # merged under per-layer blocks that already say rope_type default: the legacy `type` loses (RD214)
            block = {**raw, K.ROPE_TYPE: "default"}
        return [(None, location, self.standardise(block, top_theta, top_partial, context))], (raw or None), raw_key

    def standardise(self, block: dict[str, Any], theta: Any, partial: Any, context: int | None) -> dict[str, Any]:
        """transformers 5's standardize_rope_params on one block (a copy)."""
        block = dict(block)
        block.setdefault(K.ROPE_TYPE, block.get(K.LEGACY_TYPE, "default"))
        if theta is not None:
            block.setdefault(K.ROPE_THETA, theta)
        if partial is not None:
            block.setdefault(K.PARTIAL_ROTARY_FACTOR, partial)
        if block[K.ROPE_TYPE] == "default" and self.family.default_method != "default":
            block[K.ROPE_TYPE] = self.family.default_method  # transformers' default_rope_type (axial)
        if block[K.ROPE_TYPE] in K.METHODS_WITH_ORIGINAL and not self.family.standardises:
            pass  # the class skips standardize_rope_params: a missing original length stays missing (KeyError)
        elif block[K.ROPE_TYPE] in K.METHODS_WITH_ORIGINAL:
            top_original = self.text.get(K.ORIGINAL_MAX_POSITIONS)
            if self.family.top_level_original:
                block[K.ORIGINAL_MAX_POSITIONS] = top_original if top_original is not None else self.family.default_context
                self.provenance["original_context"] = self.prefix + K.ORIGINAL_MAX_POSITIONS
            elif K.ORIGINAL_MAX_POSITIONS not in block and context is not None:
                # (no max_position_embeddings at all: transformers raises AttributeError; RD101 reports it)
                block[K.ORIGINAL_MAX_POSITIONS] = context
                self.provenance["original_context"] = self.provenance.get("context", K.MAX_POSITIONS)
        alias = K.for_model(K.LEGACY_METHOD_ALIASES, self.model_type, {})
        if isinstance(block[K.ROPE_TYPE], str) and block[K.ROPE_TYPE] in alias:
            block[K.ROPE_TYPE] = alias[block[K.ROPE_TYPE]]
        elif self.family.remote_code or not self.family.known:
            # a vendor's own spelling its remote code runs (deepseek_yarn, telechat3-yarn); native transformers
            # classes do not map it (KeyError when the model is built: RD111 stays right for them)
            block[K.ROPE_TYPE] = methods.canonical(block[K.ROPE_TYPE]) or block[K.ROPE_TYPE]
        return block


def _nested_copy(block: dict[str, Any], labels: tuple[str, ...]) -> dict[str, dict[str, Any]] | None:
    """Per-layer-type dicts when ``block`` is nested by the config's layer types, else None."""
    keys = [key for key in block if key in labels]
    if not keys:
        return None
    return {key: dict(block[key]) for key in keys if isinstance(block[key], dict)}


def _number_list(value: Any) -> list[float] | None:
    if isinstance(value, list) and all(json_number(v) is not None for v in value):
        return [float(v) for v in value]
    return None
