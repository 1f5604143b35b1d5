"""transformers' own model classes as an oracle for every model type it knows.

Shared by ``tools/gen_hf_families.py`` (which writes ``ropedoctor/model/hf_families.json`` from
what it learns here) and ``tests/test_model_types_differential.py`` (which holds ropedoctor's reading
of a ``config.json`` to what transformers builds from the same file).

What "builds" means here: ``AutoConfig``'s path (``oracle_transformers._build``: the config class's
``from_dict``, which standardises and validates ``rope_parameters``), then the text model's own rotary
module, instantiated from that config exactly as the model's ``__init__`` does
(``<Model>RotaryEmbedding(config=config)``). The rotary dimension is twice the number of non-zero
``inv_freq`` entries of that module (partial rotary pads with zeros in ``proportional``; per-layer-type
modules hold one ``<layer type>_inv_freq`` buffer per type).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Rotary modules of other towers (vision patches, audio frames, DiT vocoders, talkers): not the text model's.
_OTHER_TOWER = re.compile(r"Vision|Audio|DiT|Talker|Patch|2D|Code2Wav|Token2Wav|Encoder(?!Decoder)|Conformer|Positional")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """transformers' warnings and logs silenced (the generator walks 822 classes)."""
    root = logging.getLogger("transformers")
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def attr(obj: Any, name: str) -> Any:
    """An attribute or None: heterogeneous configs raise on per-layer attributes read globally."""
    try:
        return getattr(obj, name, None)
    except Exception:  # AmbiguousGlobalPerLayerAttributeError and kin
        return None


def config_mapping() -> Any:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return CONFIG_MAPPING


def model_types() -> list[str]:
    return sorted(config_mapping().keys())


def text_path(config: Any) -> str | None:
    """The dotted attribute path from ``config`` to its text config ("" when it is its own)."""
    try:
        target = config.get_text_config()
    except (ValueError, AttributeError):
        target = config
    return _path_to(config, target, 0)


def _path_to(config: Any, target: Any, depth: int) -> str | None:
    if config is target:
        return ""
    if depth > 2:
        return None
    for key in sorted(getattr(config, "sub_configs", None) or {}):
        sub = getattr(config, key, None)
        if sub is None or isinstance(sub, (dict, list)):
            continue
        below = _path_to(sub, target, depth + 1)
        if below is not None:
            return key if below == "" else f"{key}.{below}"
    return None


def follow(config: Any, path: str) -> Any:
    for key in filter(None, path.split(".")):
        config = getattr(config, key)
    return config


def follow_dict(data: dict[str, Any], path: str) -> dict[str, Any] | None:
    node: Any = data
    for key in filter(None, path.split(".")):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _modules_for(text: Any, model_type: str) -> list[Any]:
    """The modelling modules that may define the text model's rotary module."""
    from transformers.models.auto import modeling_auto

    names: list[str] = []
    text_type = getattr(text, "model_type", None) or model_type
    for mapping in (modeling_auto.MODEL_MAPPING_NAMES, modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES):
        for key in (text_type, model_type):
            value = mapping.get(key)
            if isinstance(value, str):
                names.append(value)
    modules: list[Any] = []
    own = type(text).__module__.replace(".configuration_", ".modeling_")
    candidates = [own]
    import transformers

    for name in names:
        with contextlib.suppress(Exception):
            candidates.append(getattr(transformers, name).__module__)
    for module_name in dict.fromkeys(candidates):
        with contextlib.suppress(Exception):
            modules.append(importlib.import_module(module_name))
    return modules


def rotary_classes(text: Any, model_type: str) -> list[Any]:
    """Candidate rotary classes, the text model's most likely first."""
    found: dict[str, Any] = {}
    for module in _modules_for(text, model_type):
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and name.endswith("RotaryEmbedding") and obj.__module__ == module.__name__:
                found.setdefault(name, obj)
    return [found[n] for n in sorted(found, key=lambda n: (bool(_OTHER_TOWER.search(n)), "Text" not in n, n))]


def rotary_dims(module: Any) -> dict[str, int]:
    """Twice the non-zero inv_freq entries, per layer type ("" for a single module-wide buffer)."""
    dims: dict[str, int] = {}
    for name, buffer in module.named_buffers():
        leaf = name.rsplit(".", 1)[-1]
        if not leaf.endswith("inv_freq") or "original" in leaf:
            continue
        label = leaf.removesuffix("inv_freq").rstrip("_")
        dims[label] = 2 * int((buffer != 0).sum())
    return dims


def build_rotary(text: Any, model_type: str) -> tuple[dict[str, int] | None, str | None]:
    """The text model's rotary dims, or the error that building its rotary module raised."""
    first_error: str | None = None
    for cls in rotary_classes(text, model_type):
        try:
            module = cls(config=text)
        except Exception as exc:  # transformers raises anything here; the verdict keeps its name
            first_error = first_error or f"{type(exc).__name__}: {exc}"
            continue
        dims = rotary_dims(module)
        if dims:
            return dims, None
    return None, first_error or "no rotary module found"


@dataclass(frozen=True)
class Built:
    """What transformers made of one config.json: the config and the text model's rotary module."""

    raised: str | None  # "<Type>: <message>" from the config class or the rotary module
    stage: str | None  # "config" or "rotary"
    warnings: list[str] = field(default_factory=list)  # RoPE-related ones
    rope_parameters: dict[str, Any] | None = None  # the text config's, as a plain dict
    context: int | None = None  # text config max_position_embeddings
    head_dim: int | None = None  # text config head_dim attribute when an int
    rotary: dict[str, int] | None = None  # rotary dims per layer type ("" = one buffer)
    text_type: str | None = None

    def describe(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True, default=repr)


def build(config: dict[str, Any], model_type: str, path: str | None = None) -> Built:
    """Load ``config`` as AutoConfig does, then build the text model's rotary module (when it has RoPE)."""
    from oracle_transformers import Verdict, _build, transformers_verdict

    try:
        verdict = transformers_verdict(config)
    except ValueError:  # built, but get_text_config() is ambiguous (text_encoder and decoder): no warnings kept
        verdict = Verdict(raised=None)
    if verdict.raised is not None:
        return Built(raised=verdict.raised, stage="config", warnings=verdict.warnings)
    with quiet():
        built = _build(json.loads(json.dumps(config)), "")
        text = follow(built, path) if path is not None else built.get_text_config()
        raw = attr(text, "rope_parameters")
        params = json.loads(json.dumps(raw, default=repr)) if isinstance(raw, dict) else None
        context = attr(text, "max_position_embeddings")
        head_dim = attr(text, "head_dim")
        rotary, error = build_rotary(text, model_type) if params else (None, None)
    return Built(
        raised=error, stage="rotary" if error else None, warnings=verdict.warnings, rope_parameters=params,
        context=context if isinstance(context, int) else None,
        head_dim=head_dim if isinstance(head_dim, int) and not isinstance(head_dim, bool) else None,
        rotary=rotary, text_type=attr(text, "model_type"),
    )


def saved_default(model_type: str) -> tuple[dict[str, Any] | None, str | None]:
    """The class's default config as ``save_pretrained`` writes it, and where its text config lives."""
    with quiet():
        try:
            config = config_mapping()[model_type]()
        except Exception:  # some classes cannot be built with no arguments (transformers' own inconsistency)
            return None, None
        path = text_path(config)
        # a text config outside sub_configs (RAG's generator): compare the top-level config
        return _finite(json.loads(config.to_json_string(use_diff=True))), path if path is not None else ""


def _finite(data: dict[str, Any]) -> dict[str, Any]:
    """The saved dict without values transformers spells as ``{"__float__": "Infinity"}`` (Mamba-2's
    ``time_step_limit``): ``from_pretrained`` decodes them, ``from_dict`` does not, and the class default
    is the same value."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, list) and any(isinstance(v, dict) and "__float__" in v for v in value):
            continue
        if isinstance(value, dict) and "__float__" in value:
            continue
        out[key] = _finite(value) if isinstance(value, dict) else value
    return out
