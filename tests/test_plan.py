"""The planning policy of `fix`, on real fixtures."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES
from ropedoctor import rope_math
from ropedoctor.errors import InputError
from ropedoctor.plan import Plan, Target, plan
from ropedoctor.sources.hf_config import spec_from_config
from ropedoctor.spec import RopeSpec


def spec(name: str) -> RopeSpec:
    return spec_from_config(json.loads((FIXTURES / name / "config.json").read_text()), name)


def planned(name: str, **target: object) -> Plan:
    return plan(spec(name), Target(**target))  # type: ignore[arg-type]


def summary(p: Plan) -> tuple[str, float | None, int | None, int | None]:
    return p.after.method, p.after.factor, p.after.original_context, p.after.context


def test_unscaled_causal_model_gets_the_smallest_yarn() -> None:
    assert summary(planned("yi-1.5-34b", ctx=16384)) == ("yarn", 4.0, 4096, 16384)
    assert summary(planned("qwen2.5-7b-instruct", ctx=131072)) == ("yarn", 4.0, 32768, 131072)
    assert summary(planned("qwen2.5-7b-instruct", ctx=40000)) == ("yarn", 1.5, 32768, 49152)


def test_factor_rounding() -> None:
    assert rope_math.smallest_factor(10000, 4096) == 2.5
    assert rope_math.smallest_factor(8192, 4096) == 2.0
    assert rope_math.smallest_factor(20000, 4096) == 5.0
    assert rope_math.smallest_factor(1000, 4096) == 1.0


def test_a_model_that_already_serves_the_length_is_kept() -> None:
    p = planned("meta-llama-3.1-8b-instruct", ctx=100000)
    assert not p.changed and "already serves 131072" in p.reasons[0]


def test_yarn_snippet_gets_its_max_positions_extended() -> None:
    p = planned("broken/qwen2.5-yarn-snippet", ctx=131072)
    assert summary(p) == ("yarn", 4.0, 32768, 131072)


def test_own_method_with_a_larger_factor() -> None:
    assert summary(planned("internlm2.5-7b-chat", ctx=131072)) == ("dynamic", 4.0, 32768, 32768)
    p = planned("meta-llama-3.1-8b-instruct", ctx=262144)
    assert summary(p) == ("llama3", 16.0, 8192, 262144)


def test_family_prescriptions() -> None:
    assert summary(planned("nomic-embed-text-v1.5", ctx=8192)) == ("dynamic", 2.0, 2048, 8192)
    p = planned("meta-llama-2-7b-hf", ctx=8192)
    assert p.after.method == "yarn"


def test_explicit_types() -> None:
    assert summary(planned("meta-llama-2-7b-hf", method="dynamic", factor=2.0)) == ("dynamic", 2.0, 4096, 4096)
    assert summary(planned("meta-llama-2-7b-hf", method="linear", ctx=10000)) == ("linear", 10000 / 4096, 4096, 4096)
    ntk = planned("meta-llama-2-7b-hf", method="ntk", factor=4.0)
    assert ntk.after.method == "default" and ntk.after.factor is None and ntk.after.context == 16384
    assert ntk.after.theta == pytest.approx(10000 * 4 ** (128 / 126), rel=1e-5)  # written rounded (fmt.number)
    assert summary(planned("meta-llama-2-7b-hf", method="yarn", factor=4.0, max_positions="keep")) == \
        ("yarn", 4.0, 4096, 4096)
    assert summary(planned("meta-llama-2-7b-hf", method="yarn", factor=2.0, original=2048)) == \
        ("yarn", 2.0, 2048, 4096)


@pytest.mark.parametrize(("name", "target", "message"), [
    ("bert-base-uncased", {"ctx": 1024}, "not RoPE"),
    ("phi-3.5-mini-instruct", {"ctx": 262144}, "longrope factor lists"),
    ("meta-llama-2-7b-hf", {}, "nothing to plan"),
    ("meta-llama-2-7b-hf", {"method": "linear"}, "needs --factor F or --ctx N"),
    ("meta-llama-2-7b-hf", {"method": "dynamic", "factor": 2.0, "max_positions": "extend"}, "keyed to"),
])
def test_impossible_targets(name: str, target: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        planned(name, **target)
