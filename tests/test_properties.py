"""Property tests: whatever config.json content, check ends in a report or one InputError line."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ropedoctor import hf_keys as K
from ropedoctor import report
from ropedoctor.check import CheckResult
from ropedoctor.errors import InputError
from ropedoctor.families import FAMILIES
from ropedoctor.rules import Target, run_rules
from ropedoctor.sources.hf_config import spec_from_config

NUMBERS = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=8))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)
ROPE_KEYS = sorted({v for k, v in vars(K).items() if k.isupper() and isinstance(v, str)})
METHODS = st.sampled_from([*K.METHOD_KEYS, "su", "mrope", "ntk", ""])
BLOCK = st.dictionaries(st.sampled_from(ROPE_KEYS), st.one_of(JSON, METHODS, NUMBERS), max_size=6)
CONFIG = st.fixed_dictionaries(
    {K.MODEL_TYPE: st.one_of(st.sampled_from(sorted(FAMILIES)), st.text(max_size=6))},
    optional={
        K.ROPE_SCALING: st.one_of(st.none(), BLOCK, JSON), K.ROPE_PARAMETERS: st.one_of(BLOCK, JSON),
        K.ROPE_THETA: st.one_of(NUMBERS, JSON), K.MAX_POSITIONS: st.one_of(st.integers(0, 2**40), JSON),
        K.HIDDEN_SIZE: st.integers(0, 2**16), K.NUM_ATTENTION_HEADS: st.integers(0, 256),
        K.HEAD_DIM: st.one_of(st.integers(0, 1024), JSON), K.TEXT_CONFIG: st.one_of(BLOCK, JSON),
        K.PARTIAL_ROTARY_FACTOR: st.one_of(NUMBERS, JSON), K.LAYER_TYPES: JSON,
        K.ORIGINAL_MAX_POSITIONS: st.one_of(st.integers(0, 2**20), JSON),
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=CONFIG, ctx=st.one_of(st.none(), st.integers(1, 2**31)))
def test_any_config_gives_a_report_or_one_input_error(config: dict[str, Any], ctx: int | None) -> None:
    try:
        spec = spec_from_config(json.loads(json.dumps(config)), "config.json")
    except InputError as error:
        assert error.line.startswith("ropedoctor: error: config.json: ") and "\n" not in error.line
        return
    result = CheckResult(spec, run_rules(spec, Target(ctx=ctx)))
    json.dumps(report.check_json([result]))
    assert report.check_lines([result])
    for finding in result.findings:
        assert finding.message and finding.severity in ("error", "warning", "info")
