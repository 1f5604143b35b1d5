"""The fuzzing corpus (tests/fuzz_corpus/<target>/, kept by ``make fuzz``: the first input of each new error
shape, and every input that once failed) replayed: each ends in a result or one clean error line, in bounded
time. A short hypothesis run of the same generators keeps the targets themselves exercised in the suite; the
long runs (100,000 inputs per parser) are ``make fuzz``."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT

sys.path.insert(0, str(ROOT))
from fuzz.engine import CORPUS
from fuzz.hub_target import HubTarget
from fuzz.issue15_targets import GgufAllocTarget, GgufShrinkTarget, HubNamesTarget
from fuzz.targets import ConfigTarget, GgufTarget, HubPathTarget

TARGETS: dict[str, type[Any]] = {"config": ConfigTarget, "gguf": GgufTarget, "hub-paths": HubPathTarget,
                                 "hub": HubTarget, "hub-names": HubNamesTarget, "gguf-shrink": GgufShrinkTarget,
                                 "gguf-alloc": GgufAllocTarget}
_started: dict[str, Any] = {}


@pytest.fixture(scope="module")
def targets() -> Iterator[dict[str, Any]]:
    for name, kind in TARGETS.items():
        target = kind()
        target.setup()
        _started[name] = target
    yield _started
    hub = _started.pop("hub", None)
    if hub is not None:
        hub.close()
    _started.clear()


def _corpus(name: str) -> list[Path]:
    return sorted((CORPUS / name).glob("*"))


def test_the_corpus_is_there() -> None:
    """Each parser has kept inputs, including the ones that once failed (regressions)."""
    for name in ("config", "gguf", "hub"):
        assert len(_corpus(name)) >= 10, name
    assert any(p.name.startswith("failure-") for p in _corpus("config"))
    assert any(p.name.startswith("failure-") for p in _corpus("gguf"))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_corpus_replays_to_a_result_or_one_clean_line(targets: dict[str, Any], name: str) -> None:
    target = targets[name]
    for path in _corpus(name):
        started = time.perf_counter()
        outcome = target.run(path.read_bytes())  # a Failure or any other exception fails the test
        assert outcome == "result" or outcome.startswith("clean:"), (path.name, outcome)
        assert time.perf_counter() - started < target.seconds, path.name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rng=st.randoms(use_true_random=False),
       name=st.sampled_from(["config", "gguf", "hub-paths", "hub-names", "gguf-shrink", "gguf-alloc"]))
def test_generated_inputs(targets: dict[str, Any], rng: random.Random, name: str) -> None:
    target = targets[name]
    outcome = target.run(target.generate(rng))
    assert outcome == "result" or outcome.startswith("clean:")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rng=st.randoms(use_true_random=False))
def test_generated_hub_responses(targets: dict[str, Any], rng: random.Random) -> None:
    target = targets["hub"]
    outcome = target.run(target.generate(rng))
    assert outcome == "result" or outcome.startswith("clean:")
