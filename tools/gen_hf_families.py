"""Write ropedoctor/model/hf_families.json: one record per transformers model type, learnt from transformers.

Rerun when transformers is bumped (``.venv/bin/python tools/gen_hf_families.py``); the output is sorted and
deterministic, and records the transformers version it came from. Everything in a record is read from the
config class or learnt by building the model's own rotary module (``tests/hf_probe.py``):

* ``rope``: the text config has ``rope_parameters`` after default construction. Types without are recorded with
  the kind of positions their config declares (``absolute`` / ``alibi`` / ``relative`` / ``none``).
* ``text``/``text_type``: where a composite config keeps its text config (``thinker_config.text_config``, ...).
* ``theta``/``local_theta``, ``rope_type`` (class ``default_rope_type``, e.g. ``axial``), ``block`` (the default
  ``rope_parameters`` when it is more than type and theta: gpt-oss's YaRN, per-layer dicts), ``partial``,
  ``context`` (default ``max_position_embeddings``), ``labels`` (``_rope_type_labels``), ``layer_types``.
* ``aliases``: the class ``attribute_map`` (standard name -> the key the file spells).
* ``head_dim``: a fixed class default; ``head_dim_none``: the class leaves ``head_dim`` None (scaled methods that
  multiply it then fail when the rotary module is built).
* ``rotary_key``: which key decides the rotary dimension, found by perturbing candidate keys and rebuilding the
  rotary module (``rotary_dim`` on MiniMax-M2, ``qk_rope_head_dim`` on MLA, ``global_head_dim`` on Gemma-4's
  full-attention layers); ``rotary``: the default rotary dims, per layer type when they differ.
* ``standardises``: false when the class skips ``standardize_rope_params`` (YaRN without
  ``original_max_position_embeddings`` then raises); ``rope_types``: the methods its rotary module accepts, when
  not all of them; ``ignore_keys``; ``no_rope_layers``; ``dual_chunk``.
* ``head_dim_key`` (a key the class copies into head_dim: MLA's ``qk_rope_head_dim``), ``head_dim_unchecked``
  (validate_rope's odd-head_dim check cannot see one), ``legacy_scaling`` (``dropped`` / ``fails``: what the
  class does with a v4 ``rope_scaling`` naming its method by ``type``), ``rotary_scale`` (2-D vision modules).
* From transformers 4.x in ``.venv-tf4`` when it exists (``make``'s second environment): ``v4: false`` (4.x has
  no such type), ``v4_theta`` (its default base differs), ``v4_needs_scaling`` (its rotary module reads
  ``rope_scaling`` unguarded, so a v5-only file cannot build there).
* Top level: ``architectures`` (model class name -> model_type) for remote code that reuses a native class.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hf_probe as P  # noqa: E402

OUT = ROOT / "ropedoctor" / "model" / "hf_families.json"
METHODS = ("default", "linear", "dynamic", "yarn", "longrope", "llama3", "proportional")
# Candidate keys for the rotary dimension, most specific first; the first whose change moves it decides.
ROTARY_KEYS = ("rotary_dim", "qk_rope_head_dim", "global_head_dim", "kv_channels", "attention_head_dim",
               "rope_head_dim", "head_dim", "hidden_size")
LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_source_positions", "max_target_positions", "n_ctx",
               "max_seq_len", "seq_length")


def _attr(obj: Any, name: str) -> Any:
    """An attribute or None: heterogeneous configs raise on per-layer attributes read globally."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _fields(cls: Any) -> dict[str, Any]:
    if not dataclasses.is_dataclass(cls):
        return {}
    return {f.name: f for f in dataclasses.fields(cls)}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: sorted(v) if isinstance(v, (set, frozenset)) else repr(v)))


# A learned position table in the modelling code (GPT-2's wpe, BERT's position_embeddings, BART's embed_positions).
LEARNED_TABLE = re.compile(r"(position_embeddings?|embed_positions|wpe|pos_embed\w*)\s*=\s*\w*(nn\.Embedding|"
                           r"PositionalEmbedding|PositionEmbedding)")


def _modelling_source(text: Any, model_type: str) -> str:
    import inspect

    sources = []
    for module in P._modules_for(text, model_type):
        try:
            sources.append(inspect.getsource(module))
        except (OSError, TypeError):
            continue
    return "\n".join(sources)


def _position_kind(text: Any, model_type: str) -> str:
    """What a type without rope_parameters uses: its config's switch, else what its modelling code builds."""
    kind = _attr(text, "position_embedding_type")
    if isinstance(kind, str):
        if kind.startswith("relative"):
            return "relative"
        if kind in ("absolute", "alibi"):
            return kind
    names = set(_fields(type(text))) | set(vars(text))
    if any("alibi" in n and _attr(text, n) for n in names):
        return "alibi"
    if any(n.startswith("relative_attention") or n in ("max_relative_positions", "position_buckets") for n in names):
        return "relative"
    source = _modelling_source(text, model_type)
    if LEARNED_TABLE.search(source):
        return "absolute"
    if "alibi" in source.lower():
        return "alibi"
    if not source and any(isinstance(_attr(text, n), int) for n in LENGTH_KEYS):
        return "absolute"  # no modelling code to read: a declared length means a table
    return "none"


def _rebuild(text: Any, changes: dict[str, Any], drop: tuple[str, ...] = ()) -> Any:
    data = text.to_dict()
    for key in drop:
        data.pop(key, None)
    data.update(changes)
    return type(text).from_dict(data)


def _main_label(params: dict[str, Any], labels: list[str]) -> str | None:
    if not labels:
        return None
    for preferred in ("full_attention", "main"):
        if preferred in labels:
            return preferred
    return labels[0]


def _with_block(text: Any, block: dict[str, Any], labels: list[str], extra: dict[str, Any] | None = None) -> Any:
    params = json.loads(json.dumps(text.rope_parameters))
    main = _main_label(params, labels)
    if main is None:
        params = block
    else:
        params[main] = block
    return _rebuild(text, {"rope_parameters": params, **(extra or {})})


def _probe_rotary_key(text: Any, model_type: str, base: dict[str, int]) -> dict[str, str]:
    """Per layer type, the first candidate key whose value, given alone to the class, moves that layer's rotary dim.

    Keys are given to a fresh default instance (not a saved dict) so that keys the class only reads as
    arguments count too: Gemma-4's ``global_head_dim``, MiniMax-M2's ``rotary_dim``.
    """
    found: dict[str, str] = {}
    smallest = min(base.values())
    for key in ROTARY_KEYS:
        value = _attr(text, key)
        if isinstance(value, bool) or (value is not None and not isinstance(value, int)):
            continue
        tries = (value // 2, value * 2) if value else (smallest // 2,)
        for new in tries:
            if new <= 0:
                continue
            try:
                dims, _ = P.build_rotary(type(text)(**{key: new}), model_type)
            except Exception:  # an invalid combination: that key cannot be moved alone
                continue
            moved = [label for label, dim in (dims or {}).items() if label in base and dim != base[label]]
            for label in moved:
                found.setdefault(label, key)
            if moved:
                break
    return found


def _default(cls: Any, name: str) -> Any:
    f = _fields(cls).get(name)
    if f is None or f.default is dataclasses.MISSING:
        return None
    return f.default


def _probe_blocks(text: Any, model_type: str, labels: list[str], theta: Any, rotary: int,
                  context: int | None) -> tuple[bool, list[str]]:
    """Whether the class standardises (fills the YaRN original length), and the methods its rotary module takes."""
    extra = {"head_dim": text.hidden_size // text.num_attention_heads} if _needs_head_dim(text) else {}
    main = _main_label(text.rope_parameters, labels)
    current = (text.rope_parameters[main] if main else text.rope_parameters) or {}
    # the class's own extra keys (mrope_section, ...) stay: some classes refuse a block without them
    base = {k: v for k, v in current.items() if k not in ("rope_type", "type", "factor")}
    base.setdefault("rope_theta", theta)
    ctx = context or 4096
    half = max(rotary // 2, 1)
    blocks = {
        "default": {"rope_type": "default"},
        "linear": {"rope_type": "linear", "factor": 2.0},
        "dynamic": {"rope_type": "dynamic", "factor": 2.0},
        "yarn": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": max(ctx // 2, 1)},
        "longrope": {"rope_type": "longrope", "short_factor": [1.0] * half, "long_factor": [2.0] * half,
                     "original_max_position_embeddings": max(ctx // 2, 1), "factor": 2.0},
        "llama3": {"rope_type": "llama3", "factor": 2.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": max(ctx // 2, 1)},
        "proportional": {"rope_type": "proportional", "partial_rotary_factor": base.get("partial_rotary_factor", 0.5)},
    }
    accepted = []
    for method, block in blocks.items():
        try:
            built = _with_block(text, {**base, **block}, labels, extra)
            _, error = P.build_rotary(built, model_type)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        # A shape mismatch of the probe's own factor lists is not a restriction; any other failure is.
        if error is None or error.startswith("RuntimeError"):
            accepted.append(text.default_rope_type if method == "default" else method)
    try:
        _with_block(text, {**base, "rope_type": "yarn", "factor": 2.0}, labels, extra)
        standardises = True
    except KeyError as exc:
        standardises = "original_max_position_embeddings" not in str(exc)
    except Exception:  # another validator: not about standardisation
        standardises = True
    return standardises, accepted


def _probe_head_dim_key(text: Any) -> str | None:
    """The key the class copies into head_dim whatever the file says (MLA: qk_rope_head_dim; glm5_next's 0)."""
    for key in ("qk_rope_head_dim", "kv_channels", "attention_head_dim", "d_kv"):
        if key not in _fields(type(text)):
            continue
        try:
            built = type(text)(**{key: 40, "head_dim": 24}) if "head_dim" in _fields(type(text)) else \
                type(text)(**{key: 40})
        except Exception:  # the class refuses that value (glm5_next allows only NoPE's 0): judge by the defaults
            if _attr(text, key) is not None and _attr(text, "head_dim") == _attr(text, key):
                return key
            continue
        if _attr(built, "head_dim") == 40:
            return key
    return None


def _probe_legacy(text: Any, model_type: str, theta: float) -> str:
    """What the class does with a legacy v4 ``rope_scaling`` (linear x2): "ok", "dropped" (loads unscaled) or
    "fails" (the config or the rotary module raises: per-layer modules want a nested dict)."""
    data = text.to_dict()
    data.pop("rope_parameters", None)
    data.update({"rope_theta": theta, "rope_scaling": {"type": "linear", "factor": 2.0}})
    if _needs_head_dim(text):
        data["head_dim"] = text.hidden_size // text.num_attention_heads
    try:
        built = type(text).from_dict(data)
        _, error = P.build_rotary(built, model_type)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    if error is not None:
        # "fails" only when the layout is the cause: the same block in the v5 layout builds (Phi-3 refuses
        # linear in either layout: that is a method restriction, RD115's)
        return "fails" if _v5_linear_builds(text, model_type, theta) else "ok"
    params = _attr(built, "rope_parameters") or {}
    labels = built.nested_rope_parameter_keys(params)
    main = _main_label(params, [*(_attr(built, "_rope_type_labels") or ()), *labels]) if labels else None
    block = params.get(main) if main else params
    # "dropped" when the model's main layers run unscaled (DeepSeek-V4 gives it to its compress layers only)
    return "ok" if isinstance(block, dict) and block.get("rope_type") == "linear" else "dropped"


def _v5_linear_builds(text: Any, model_type: str, theta: float) -> bool:
    params = text.rope_parameters
    labels = text.nested_rope_parameter_keys(params)
    main = _main_label(params, labels)
    current = (params[main] if main else params) or {}
    block = {k: v for k, v in current.items() if k not in ("rope_type", "type", "factor")}
    block.update({"rope_type": "linear", "factor": 2.0})
    block.setdefault("rope_theta", theta)
    extra = {"head_dim": text.hidden_size // text.num_attention_heads} if _needs_head_dim(text) else {}
    try:
        _, error = P.build_rotary(_with_block(text, block, labels, extra), model_type)
    except Exception:
        return False
    return error is None


def _rotary_scale(text: Any, rec: dict[str, Any], dims: dict[str, int]) -> float | None:
    """rotary / (deciding key x partial) at the defaults when that is not 1 (2-D vision modules rotate half)."""
    key = rec.get("rotary_key")
    if not isinstance(key, str) or key in ("rotary_dim", "qk_rope_head_dim") or "" not in dims:
        return None
    value = _attr(text, "head_dim") if key == "hidden_size" else _attr(text, key)
    if key == "hidden_size" or not isinstance(value, int):
        heads = _attr(text, "num_attention_heads")
        hidden = _attr(text, "hidden_size")
        value = value if isinstance(value, int) else (hidden // heads if isinstance(hidden, int) and
                                                      isinstance(heads, int) and heads else None)
    if not isinstance(value, int) or value <= 0:
        return None
    partial = rec.get("partial", 1.0)
    expected = int(value * partial)
    expected += expected % 2
    return None if not expected or dims[""] == expected else dims[""] / expected


def _needs_head_dim(text: Any) -> bool:
    try:
        return hasattr(text, "head_dim") and text.head_dim is None
    except Exception:
        return False


def record(model_type: str) -> dict[str, Any]:
    cls = P.config_mapping()[model_type]
    rec: dict[str, Any] = {}
    try:
        config = cls()
    except Exception as exc:  # a class that needs arguments: static facts only
        rec["default_fails"] = f"{type(exc).__name__}"
        text, path = None, ""
    else:
        path = P.text_path(config) or ""
        text = P.follow(config, path)
    if path:
        rec["text"] = path
        rec["text_type"] = _attr(text, "model_type")
    aliases = dict(getattr(type(text) if text is not None else cls, "attribute_map", None) or {})
    if aliases:
        rec["aliases"] = dict(sorted(aliases.items()))
    if text is None:
        rec["rope"] = False
        rec["positions"] = "none"
        return rec
    params = _attr(text, "rope_parameters")
    rec["rope"] = bool(params)
    context = _attr(text, "max_position_embeddings")
    if isinstance(context, int) and not isinstance(context, bool):
        rec["context"] = context
    head_key = _probe_head_dim_key(text)
    if head_key:
        rec["head_dim_key"] = head_key
    if not params:
        rec["positions"] = _position_kind(text, model_type)
        return rec
    tcls = type(text)
    theta = getattr(tcls, "default_theta", 10_000.0)
    if isinstance(theta, dict):
        rec["theta"] = float(theta.get("global", 10_000.0))
        if "local" in theta:
            rec["local_theta"] = float(theta["local"])
    else:
        rec["theta"] = float(theta)
    if tcls.default_rope_type != "default":
        rec["rope_type"] = tcls.default_rope_type
    labels = text.nested_rope_parameter_keys(params)
    type_labels = getattr(tcls, "_rope_type_labels", None)
    if type_labels:
        rec["labels"] = list(type_labels)
    layer_types = _attr(text, "layer_types")
    if isinstance(layer_types, list) and layer_types:
        rec["layer_types"] = sorted({str(t) for t in layer_types})
    plain = _plain(params)
    simple = {"rope_type": tcls.default_rope_type, "rope_theta": rec["theta"]}
    if plain != simple:
        rec["block"] = plain
    if not labels and isinstance(plain.get("partial_rotary_factor"), (int, float)):
        rec["partial"] = float(plain["partial_rotary_factor"])
    head_default = _default(tcls, "head_dim")
    if isinstance(head_default, int) and not isinstance(head_default, bool):
        rec["head_dim"] = head_default
    if _needs_head_dim(text):
        rec["head_dim_none"] = True
    try:
        has_head_dim = hasattr(text, "head_dim")
    except Exception:  # a per-layer attribute: validate_rope skips heterogeneous configs too
        has_head_dim = False
    if not has_head_dim or getattr(text, "is_heterogeneous", False):
        rec["head_dim_unchecked"] = True  # validate_rope's odd-head_dim check cannot see one
    ignore = getattr(tcls, "ignore_keys_at_rope_validation", None)
    if ignore:
        rec["ignore_keys"] = sorted(ignore)
    fields = _fields(tcls)
    if "no_rope_layers" in fields or "no_rope_layer_interval" in fields:
        rec["no_rope_layers"] = True
    if "dual_chunk_attention_config" in fields:
        rec["dual_chunk"] = True
    with P.quiet():
        dims, error = P.build_rotary(text, model_type)
        if dims is None:
            rec["rotary_error"] = (error or "").split(":")[0]
            return rec
        rec["rotary"] = dims
        keys = _probe_rotary_key(text, model_type, dims)
        values = set(keys.values())
        if len(values) == 1 and set(keys) == set(dims):
            rec["rotary_key"] = values.pop()
        elif keys:
            rec["rotary_key"] = dict(sorted(keys.items()))
        main_dim = dims.get("full_attention", next(iter(dims.values())))
        standardises, accepted = _probe_blocks(text, model_type, labels, rec["theta"], main_dim,
                                              context if isinstance(context, int) else None)
    if not standardises:
        rec["standardises"] = False
    legacy = _probe_legacy(text, model_type, rec["theta"])
    if legacy != "ok":
        rec["legacy_scaling"] = legacy
    scale = _rotary_scale(text, rec, dims)
    if scale is not None:
        rec["rotary_scale"] = scale
    if set(accepted) != {*METHODS[1:], text.default_rope_type}:
        rec["rope_types"] = sorted(accepted)
    return rec


def _architectures() -> dict[str, str]:
    """Model class name -> model_type, for configs of remote code that reuse a native class (Kimi-K2's
    DeepseekV3ForCausalLM)."""
    from transformers.models.auto import modeling_auto

    found: dict[str, str] = {}
    for name in sorted(vars(modeling_auto)):
        mapping = getattr(modeling_auto, name)
        if not name.endswith("_MAPPING_NAMES") or not isinstance(mapping, dict):
            continue
        for model_type in sorted(mapping):
            classes = mapping[model_type]
            for cls in classes if isinstance(classes, (list, tuple)) else (classes,):
                if isinstance(cls, str) and cls.endswith(("ForCausalLM", "Model")):
                    found.setdefault(cls, model_type)
    return dict(sorted(found.items()))


# Run by .venv-tf4's python (no torch there: the modelling code is scanned, not imported). A modelling file
# reads rope_scaling unguarded when no line within 8 of the read tests it (`if config.rope_scaling is not None`).
V4_SCRIPT = r"""
import json, re, sys, warnings
warnings.simplefilter("ignore")
import transformers
from transformers.models.auto.configuration_auto import CONFIG_MAPPING, CONFIG_MAPPING_NAMES
READ = re.compile(r"config\.rope_scaling(\.get\(|\[)")
GUARD = re.compile(r"rope_scaling\s+is\s+(not\s+)?None|if\s+.*rope_scaling|isinstance\(.*rope_scaling")
def unguarded(path):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return False
    return any(READ.search(line) and not GUARD.search("\n".join(lines[max(0, i - 8):i + 9]))
               for i, line in enumerate(lines))
out = {}
for t in CONFIG_MAPPING_NAMES:
    theta, needs = None, False
    try:
        c = CONFIG_MAPPING[t]()
        text = c.get_text_config() if hasattr(c, "get_text_config") else c
        theta = getattr(text, "rope_theta", None)
        module = sys.modules[type(text).__module__].__file__.replace("configuration_", "modeling_")
        needs = getattr(text, "rope_scaling", None) is None and unguarded(module)
    except Exception:
        pass
    theta = float(theta) if isinstance(theta, (int, float)) and not isinstance(theta, bool) else None
    out[t] = {"theta": theta, "needs_scaling": needs}
print(json.dumps({"version": transformers.__version__, "types": out}))
"""


def _transformers_v4() -> tuple[str | None, dict[str, dict[str, Any]] | None]:
    """The model types of the transformers 4.x in .venv-tf4 (make's second environment) and their default
    rope_theta, or (None, None) when it is not there."""
    python = ROOT / ".venv-tf4" / "bin" / "python"
    if not python.exists():
        return None, None
    done = subprocess.run([str(python), "-c", V4_SCRIPT], capture_output=True, text=True, timeout=600, check=True)
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    return doc["version"], doc["types"]


def main() -> None:
    import transformers

    records = {}
    with P.quiet():
        for model_type in P.model_types():
            try:
                records[model_type] = record(model_type)
            except Exception as exc:  # recorded, not fatal: the reader then knows nothing more of the type
                records[model_type] = {"probe_error": type(exc).__name__, "rope": False, "positions": "none"}
    v4_version, v4 = _transformers_v4()
    for model_type, rec in records.items():
        if v4 is None:
            continue
        if model_type not in v4:
            rec["v4"] = False  # transformers 4.x cannot load the type at all
        elif rec.get("rope"):
            theta = v4[model_type]["theta"]
            if theta is not None and theta != rec.get("theta"):
                rec["v4_theta"] = theta  # 4.x's class default base differs (Qwen3-VL: 5e6 vs 5e5)
            if v4[model_type]["needs_scaling"]:
                rec["v4_needs_scaling"] = True  # 4.x's rotary module reads rope_scaling, None in a v5-only file
    doc = {
        "architectures": _architectures(),
        "generated_by": "tools/gen_hf_families.py",
        "transformers_version": transformers.__version__,
        "transformers_v4_version": v4_version,
        "types": records,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=0, sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{OUT.relative_to(ROOT)}: {len(records)} model types, "
          f"{sum(r['rope'] for r in records.values())} with RoPE (transformers {transformers.__version__})")


if __name__ == "__main__":
    main()
