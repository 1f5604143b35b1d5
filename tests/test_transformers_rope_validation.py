"""transformers' own RoPE unit tests, replayed case by case against ropedoctor.

The cases are those of ``tests/utils/test_modeling_rope_utils.py`` (transformers 5.x; the PyPI sdist and
wheel do not ship it, the v5 file read is ``huggingface/transformers`` main as of the v5 RoPE refactor, see
``shared/reference/transformers_rope.md`` section 4.1). ``_cases()`` walks the same loops as those tests
(``test_rope_validation``, ``test_yarn_original_original_max_position_embeddings_validation`` and the
``rope_parameters`` of every ``test_*_rope_numerically`` test), each on the test's own config
(``LlamaConfig()`` flat; ``Gemma3TextConfig()`` with ``layer_types = [full_attention, sliding_attention]``,
the same or a default block on the sliding layer), and keeps the test's assertion as the expectation:
``raise`` (``assertRaises(KeyError)``), ``warn`` (``assertLogs``), ``accept`` (``validate_rope()`` returns,
or the numeric tests build the rotary module from it).

Each case is then:

1. checked against the installed transformers exactly as the test does (``validate_rope()`` on the config
   object), so the replay stays faithful to the pinned version;
2. written as a ``config.json`` (``to_dict()``) and read by ropedoctor, and held to what transformers does
   when it *loads that file* (``AutoConfig``'s path: standardisation first, which fills a missing YaRN
   ``original_max_position_embeddings``, so the one direct-validation ``raise`` that standardisation cures is
   held to the load verdict; ``STANDARDISED_AT_LOAD`` names it): raise -> an error finding, warning -> a
   warning or an error, accepted -> no RD1xx error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from oracle_transformers import transformers_verdict
from ropedoctor.rules import Target, run_rules
from ropedoctor.sources.hf_config import spec_from_config

NESTINGS = (("flat", False, False), ("nested-same", True, True), ("nested-diff", True, False))
VALID_PARAM_MAPPING = {  # test_rope_validation's valid_param_mapping
    "factor": ["linear", "dynamic", "yarn", "longrope"],
    "attention_factor": ["yarn", "longrope"],
    "beta_fast": ["yarn"],
    "beta_slow": ["yarn"],
    "short_factor": ["longrope"],
    "long_factor": ["longrope"],
}
# Cases whose test calls validate_rope() on a block that loading a file would standardise first.
STANDARDISED_AT_LOAD = frozenset({"yarn-without-original"})


@dataclass(frozen=True)
class Case:
    name: str
    params: dict[str, Any]
    nesting: str
    expect: str  # "raise" | "warn" | "accept" (the transformers test's assertion)
    ignore_keys: frozenset[str] | None = None  # the test's config.ignore_keys_at_rope_validation
    # the numeric tests go through the rope functions, which call standardize_rope_params() first
    standardised: bool = False


def _config(case: Case) -> Any:
    """get_config_with_rope_parameters() of the transformers test."""
    from transformers import Gemma3TextConfig, LlamaConfig

    nested, same = next((n, s) for name, n, s in NESTINGS if name == case.nesting)
    params = json.loads(json.dumps(case.params))
    config: Any
    if nested:
        config = Gemma3TextConfig()
        config.layer_types = ["full_attention", "sliding_attention"]
        config.num_hidden_layers = len(config.layer_types)
        config.rope_parameters = {
            "full_attention": params,
            "sliding_attention": json.loads(json.dumps(params)) if same else {"rope_type": "default",
                                                                              "rope_theta": 10000.0},
        }
    else:
        config = LlamaConfig()
        config.layer_types = None
        config.rope_parameters = params
    if case.ignore_keys is not None:
        config.ignore_keys_at_rope_validation = set(case.ignore_keys)
    return config


def _cases() -> list[Case]:
    from transformers import ROPE_INIT_FUNCTIONS, LlamaConfig

    cases: list[Case] = []
    for nesting, _, _ in NESTINGS:
        # test_rope_validation
        cases.append(Case("default-validates", {"rope_type": "default", "rope_theta": 10000.0}, nesting, "accept"))
        for rope_type in ROPE_INIT_FUNCTIONS:
            if rope_type in ("default", "proportional"):
                continue
            cases.append(Case(f"{rope_type}-theta-only", {"rope_type": rope_type, "rope_theta": 10000.0}, nesting,
                              "raise"))
            for param, valid in VALID_PARAM_MAPPING.items():
                if rope_type not in valid:
                    cases.append(Case(f"{rope_type}-with-{param}", {"rope_type": rope_type, "rope_theta": 10000.0,
                                                                    param: True}, nesting, "raise"))
        extra = {"rope_type": "default", "rope_theta": 10000.0, "mrope_sections": True}
        cases.append(Case("extra-key-ignored", extra, nesting, "accept", frozenset({"mrope_sections"})))
        cases.append(Case("extra-key-warns", extra, nesting, "warn", frozenset()))
        # test_yarn_original_original_max_position_embeddings_validation
        max_pos = (131072 if nesting != "flat" else LlamaConfig().max_position_embeddings)
        cases.append(Case("yarn-good-original", {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0,
                                                 "original_max_position_embeddings": int(max_pos / 2.0)},
                          nesting, "accept"))
        cases.append(Case("yarn-without-original", {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0},
                          nesting, "raise"))
        cases.append(Case("yarn-implicit-factor", {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0,
                                                   "original_max_position_embeddings": 1}, nesting, "warn"))
        # the rope_parameters the test_*_rope_numerically tests build modules from
        dim = 256 if nesting != "flat" else 128
        short, long = [2.0] * (dim // 2), [float(i) for i in range(1, dim // 2 + 1)]
        numeric: list[dict[str, Any]] = []
        for factor in (2.0, 10.0, 20.0):
            numeric += [
                {"rope_type": "linear", "factor": factor},
                {"rope_type": "dynamic", "factor": factor},
                {"rope_type": "yarn", "factor": factor},
                {"rope_type": "yarn", "factor": factor, "attention_factor": 0.5},
                {"rope_type": "longrope", "factor": factor, "short_factor": short, "long_factor": long},
                {"rope_type": "longrope", "factor": factor, "short_factor": short, "long_factor": long,
                 "attention_factor": 0.5},
                {"rope_type": "llama3", "factor": factor, "original_max_position_embeddings": 2048,
                 "low_freq_factor": 1, "high_freq_factor": 4},
            ]
        numeric += [
            {"rope_type": "yarn", "factor": 10.0, "beta_fast": 32, "beta_slow": 1},
            {"rope_type": "yarn", "factor": 10.0, "beta_fast": 1000, "beta_slow": 1,
             "original_max_position_embeddings": 8},
            {"rope_type": "longrope", "factor": 1.0, "short_factor": short, "long_factor": long},
            {"rope_type": "llama3", "factor": 10.0, "original_max_position_embeddings": 2048,
             "low_freq_factor": 1, "high_freq_factor": 1000},
            *({"rope_type": "proportional", "partial_rotary_factor": p} for p in (1.0, 0.5, 0.25)),
            *({"rope_type": "proportional", "partial_rotary_factor": 1.0, "factor": f} for f in (1.0, 2.0, 10.0)),
            *({"rope_type": "proportional", "partial_rotary_factor": 0.5, "factor": f} for f in (1.0, 2.0)),
        ]
        for params in numeric:
            cases.append(Case("numeric-" + "-".join(f"{k}={v}" for k, v in params.items()
                                                    if not isinstance(v, list)),
                              {"rope_theta": 10000.0, **params}, nesting, "accept", standardised=True))
    return cases


CASES = _cases()


def _direct(case: Case) -> str:
    """What validate_rope() does on the test's config object: raise, warn or accept."""
    from transformers.utils import logging as hf_logging

    records: list[str] = []

    class Sink(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("transformers.modeling_rope_utils")
    handler = Sink(level=logging.WARNING)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.WARNING)  # other tests (and TRANSFORMERS_VERBOSITY) may have silenced transformers
    hf_logging.get_logger("transformers.modeling_rope_utils").warning_once.cache_clear()  # type: ignore[attr-defined]
    try:
        config = _config(case)
        if case.standardised:
            config.standardize_rope_params()
        config.validate_rope()
    except KeyError:
        return "raise"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return "warn" if records else "accept"


def _as_file(case: Case) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(_config(case).to_dict(), default=sorted))
    data.pop("ignore_keys_at_rope_validation", None)
    if case.ignore_keys:  # the class attribute the test sets, as a file would carry it
        data["ignore_keys_at_rope_validation"] = sorted(case.ignore_keys)
    return data


def _id(case: Case) -> str:
    return f"{case.nesting}-{case.name}"


def test_cases_cover_every_test() -> None:
    counts = {expect: sum(c.expect == expect for c in CASES) for expect in ("raise", "warn", "accept")}
    assert counts["raise"] >= 60 and counts["warn"] >= 6 and counts["accept"] >= 100, counts


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_replay_matches_transformers(case: Case) -> None:
    """The replayed case still behaves in the installed transformers as its test asserts."""
    direct = _direct(case)
    if case.expect == "accept":
        assert direct in ("accept", "warn"), direct  # the numeric tests only need it to load
    else:
        assert direct == case.expect, direct


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_ropedoctor_judges_like_transformers(case: Case) -> None:
    data = _as_file(case)
    verdict = transformers_verdict(data)
    load = "raise" if verdict.raised else ("warn" if verdict.warnings else "accept")
    expect = load if case.name in STANDARDISED_AT_LOAD else case.expect
    if expect == "accept" and load == "warn":
        expect = "warn"  # a numeric case transformers warns on when loading (implicit YaRN factor)
    assert load == expect or (case.expect == "accept" and load in ("accept", "warn")), (load, verdict.describe())
    findings = run_rules(spec_from_config(data, "config.json"), Target())
    severities = {f.severity for f in findings}
    shown = [(f.code, f.severity, f.message) for f in findings]
    if expect == "raise":
        assert "error" in severities, shown
    elif expect == "warn":
        assert severities & {"warning", "error"}, shown
    rd1_errors = [f for f in findings if f.severity == "error" and f.code.startswith("RD1")]
    if expect != "raise":
        assert not rd1_errors, shown
