"""transformers 5.x used as an oracle for RoPE settings in a ``config.json`` dict.

``transformers_verdict(config)`` builds the config object exactly the way
``AutoConfig.from_pretrained(<local folder>)`` does in transformers 5.23, minus the file
I/O and the Hub:

* ``AutoConfig.from_pretrained`` (``models/auto/configuration_auto.py``) reads the JSON
  with ``PreTrainedConfig.get_config_dict`` (a plain ``json.load``), applies one
  heuristic (``model_type == "mistral"`` with ``layer_types`` -> ``"ministral"``), looks
  up ``CONFIG_MAPPING[config_dict["model_type"]]`` (unknown type -> ``ValueError``) and
  calls ``config_class.from_dict(config_dict, **unused_kwargs)``; the only unused kwarg
  left for a local folder is ``name_or_path``.
* ``PreTrainedConfig.from_dict`` (``configuration_utils.py``) copies ``name_or_path``
  into the dict and calls ``cls(**config_dict)``. The strict-dataclass ``__init__`` sets
  the fields, ``__post_init__`` converts legacy RoPE keys
  (``convert_rope_params_to_dict`` -> ``standardize_rope_params``), and the class
  validators (``validate_rope`` among them) run right after;
  ``ValueError``/``TypeError`` from a validator are wrapped in ``huggingface_hub``'s
  ``StrictDataclassClassValidationError``, ``KeyError`` is not.

The input dict is round-tripped through JSON first, so the oracle sees what a
``config.json`` file would give and never mutates the caller's dict (transformers
mutates the ``rope_scaling`` / ``rope_parameters`` dicts it is given in place).

Warning capture and filter
--------------------------
During construction the oracle records

* every ``logging`` record of level WARNING or above reaching the ``transformers``
  library root logger (``logger.warning``, ``logger.warning_once``, ``logger.error``);
  the level of that logger is lowered to WARNING for the call if
  ``TRANSFORMERS_VERBOSITY`` raised it, and the ``functools.lru_cache`` behind
  ``warning_once`` is cleared before each call so a message already emitted by an
  earlier call is emitted (and recorded) again;
* every Python ``warnings.warn`` (``FutureWarning``, ``UserWarning``, ...), with the
  ``"always"`` filter so none is swallowed by the once-per-location registry.

A message is kept when it is **RoPE-related**, i.e. it matches ``ROPE_WARNING_RE``
(case-insensitive): it mentions ``rope`` (which covers ``rope_parameters``,
``rope_scaling``, ``rope_type``, ``rope_theta``, ``standardize_rope_params``, ``RoPE``),
``rotary``, ``factor`` (``factor``, ``attention_factor``, ``short_factor``,
``low_freq_factor``, implicit factor, ...), the word ``keys`` ("Missing required keys" /
"Unrecognized keys"), ``head_dim`` or ``original_max_position_embeddings``. Everything
else (``num_labels``, ``torch_dtype``, mistral ``layer_types`` advice, ...) is dropped.
Kept messages are in emission order, logging and Python warnings interleaved as they
happened.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

ROPE_WARNING_RE: re.Pattern[str] = re.compile(
    r"rope|rotary|factor|\bkeys\b|head_dim|original_max_position_embeddings",
    re.IGNORECASE,
)


def is_rope_related(message: str) -> bool:
    """True when a warning message is RoPE-related (see the module docstring)."""
    return ROPE_WARNING_RE.search(message) is not None


@dataclass(frozen=True)
class Verdict:
    """What transformers made of one ``config.json`` dict."""

    raised: str | None
    """``"<ExceptionType>: <message>"`` when construction raised, else ``None``."""
    warnings: list[str] = field(default_factory=list)
    """RoPE-related warning messages emitted during construction (in order)."""
    rope_parameters: dict[str, Any] | None = None
    """``config.rope_parameters`` (text config for composite models) as a plain dict."""
    all_warnings: list[str] = field(default_factory=list)
    """Every captured warning message, unfiltered (for debugging failing cases)."""

    @property
    def accepted(self) -> bool:
        return self.raised is None

    def describe(self) -> str:
        return json.dumps(
            {
                "raised": self.raised,
                "warnings": self.warnings,
                "rope_parameters": self.rope_parameters,
            },
            indent=2,
            sort_keys=True,
            default=repr,
        )


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._sink.append(record.getMessage())
        except (TypeError, ValueError):  # pragma: no cover - a bad format string
            self._sink.append(str(record.msg))


def _clear_warning_once_cache() -> None:
    from transformers.utils import logging as hf_logging

    for name in ("warning_once", "info_once"):
        cached = getattr(hf_logging, name, None)
        cache_clear = getattr(cached, "cache_clear", None)
        if callable(cache_clear):
            cache_clear()


def _plain(value: Any) -> Any:
    """Deep-copy ``value`` into plain dict/list/scalars (sets become sorted lists)."""
    if isinstance(value, dict):
        return {
            str(k) if not isinstance(k, str) else k: _plain(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=repr)
    return copy.deepcopy(value)


def _build(config_dict: dict[str, Any], name_or_path: str) -> Any:
    """Mirror of ``AutoConfig.from_pretrained`` after the JSON has been read (5.23)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if "model_type" not in config_dict:
        raise ValueError(
            f"Unrecognized model in {name_or_path or '<dict>'}. "
            "Should have a `model_type` key"
        )
    if config_dict["model_type"] == "mistral" and "layer_types" in config_dict:
        config_dict["model_type"] = "ministral"
    try:
        config_class = CONFIG_MAPPING[config_dict["model_type"]]
    except KeyError:
        raise ValueError(
            "The checkpoint you are trying to load has model type "
            f"`{config_dict['model_type']}` "
            "but Transformers does not recognize this architecture."
        ) from None
    return config_class.from_dict(config_dict, name_or_path=name_or_path)


def _text_rope_parameters(config: Any) -> dict[str, Any] | None:
    text_config = config
    get_text_config = getattr(config, "get_text_config", None)
    if callable(get_text_config):
        text_config = get_text_config()
    params = getattr(text_config, "rope_parameters", None)
    if params is None:
        return None
    if not isinstance(params, dict):  # pragma: no cover - defensive
        return {"<non-dict>": repr(params)}
    plain = _plain(params)
    assert isinstance(plain, dict)
    return plain


def transformers_verdict(config: dict[str, Any], name_or_path: str = "") -> Verdict:
    """Construct ``config`` with transformers (offline, no remote code); report it."""
    config_dict = json.loads(json.dumps(config, allow_nan=False))

    captured: list[str] = []
    handler = _ListHandler(captured)
    root = logging.getLogger("transformers")
    old_level = root.level
    raised: str | None = None
    rope_parameters: dict[str, Any] | None = None

    _clear_warning_once_cache()
    root.addHandler(handler)
    if old_level == logging.NOTSET or old_level > logging.WARNING:
        root.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")

            def _showwarning(
                message: Warning | str,
                category: type[Warning],
                filename: str,
                lineno: int,
                file: Any = None,
                line: str | None = None,
            ) -> None:
                captured.append(str(message))

            warnings.showwarning = _showwarning
            try:
                built = _build(config_dict, name_or_path)
            except Exception as exc:
                raised = f"{type(exc).__name__}: {exc}"
            else:
                rope_parameters = _text_rope_parameters(built)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        _clear_warning_once_cache()

    all_messages = list(captured)
    return Verdict(
        raised=raised,
        warnings=[m for m in all_messages if is_rope_related(m)],
        rope_parameters=rope_parameters,
        all_warnings=all_messages,
    )
