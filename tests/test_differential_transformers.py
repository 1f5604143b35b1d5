"""Differential tests: ropedoctor `check --format json` vs transformers 5 (oracle).

For every generated config (``differential_configs.generate_cases``):

* transformers raised            -> ropedoctor reports at least one ``error`` finding
  (exit 1);
* transformers warned (RoPE)     -> ropedoctor reports at least one ``warning`` or
  ``error``;
* transformers accepted          -> ropedoctor's ``rope`` block agrees with
  ``config.rope_parameters`` (``full_attention`` entry for per-layer dicts): ``method``
  == ``rope_type``, ``theta`` == ``rope_theta``; ``factor`` == ``factor`` and
  ``original_context`` == ``original_max_position_embeddings`` where transformers has
  them and the method reads them (``factor``: linear/dynamic/yarn/llama3/longrope;
  ``original``: yarn/llama3/longrope). Where transformers holds a non-number (a string
  ``rope_theta``, ``None``) ropedoctor may instead flag it (warning or error).

The oracle and the generator live next to this file (imported as top-level modules:
pytest's default ``prepend`` import mode puts ``tests/`` on ``sys.path`` because it has
no ``__init__.py``); see their docstrings. Skipped when transformers >= 5 is not
installed.
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import transformers
from typer.testing import CliRunner

from differential_configs import KNOWN_METHODS, CaseMeta, generate_cases
from oracle_transformers import Verdict, transformers_verdict

assert int(transformers.__version__.split(".")[0]) >= 5, "the differential test needs transformers 5"

N_CASES = 400
SEED = 0
FACTOR_METHODS = frozenset({"linear", "dynamic", "yarn", "llama3", "longrope"})
ORIGINAL_METHODS = frozenset({"yarn", "llama3", "longrope"})


@functools.lru_cache(maxsize=1)
def _cases() -> list[tuple[dict[str, Any], CaseMeta]]:
    return generate_cases(N_CASES, SEED)


@functools.cache
def _verdict(index: int) -> Verdict:
    return transformers_verdict(_cases()[index][0])


def _run_ropedoctor(folder: Path) -> tuple[int, dict[str, Any], str]:
    from ropedoctor.cli import app

    result = CliRunner().invoke(app, ["check", str(folder), "--format", "json"])
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"ropedoctor did not print JSON (exit {result.exit_code}): {exc}\n"
            f"stdout:\n{result.stdout}\nexception: {result.exception!r}"
        ) from exc
    assert isinstance(doc, dict), doc
    return result.exit_code, doc, result.stdout


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _same_number(a: Any, b: Any) -> bool:
    x, y = _as_number(a), _as_number(b)
    if x is None or y is None:
        return x is None and y is None
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


def _report(
    cfg: dict[str, Any],
    meta: CaseMeta,
    verdict: Verdict,
    exit_code: int,
    res: dict[str, Any],
) -> str:
    findings = res.get("findings", [])
    lines = [
        f"case {meta.label()}",
        "config.json:",
        json.dumps(cfg, indent=2, sort_keys=True),
        "transformers verdict:",
        verdict.describe(),
        f"ropedoctor exit code: {exit_code}",
        f"ropedoctor rope: {json.dumps(res.get('rope'), sort_keys=True)}",
        "ropedoctor findings:",
        *(
            f"  [{f.get('severity')}] {f.get('code')} {f.get('name')}: "
            f"{f.get('message')} @ {f.get('location')}"
            for f in findings
        ),
    ]
    if not findings:
        lines.append("  (none)")
    return "\n".join(lines)


@pytest.mark.parametrize("index", range(N_CASES))
def test_ropedoctor_agrees_with_transformers(index: int, tmp_path: Path) -> None:
    cfg, meta = _cases()[index]
    verdict = _verdict(index)
    (tmp_path / "config.json").write_text(
        json.dumps(cfg, indent=2, allow_nan=False), encoding="utf-8"
    )

    exit_code, doc, _ = _run_ropedoctor(tmp_path)
    results = doc.get("results")
    assert isinstance(results, list), f"no results list in {doc!r}"
    assert len(results) == 1, f"expected one result, got {doc!r}"
    res: dict[str, Any] = results[0]
    findings: list[dict[str, Any]] = res.get("findings", [])
    severities = Counter(str(f.get("severity")) for f in findings)
    msg = _report(cfg, meta, verdict, exit_code, res)

    # JSON contract: exit code follows the error findings
    assert exit_code == (1 if severities["error"] else 0), (
        "exit code disagrees with error findings\n" + msg
    )

    if verdict.raised is not None:
        assert severities["error"] >= 1, (
            "transformers raised but ropedoctor reports no error\n" + msg
        )
        return

    flagged = severities["error"] + severities["warning"] >= 1
    if verdict.warnings:
        assert flagged, (
            "transformers warned but ropedoctor reports no warning or error\n" + msg
        )

    params = verdict.rope_parameters
    assert params is not None, (
        "transformers accepted the config but has no rope_parameters\n" + msg
    )
    full = (
        params.get("full_attention", params)
        if isinstance(params.get("full_attention"), dict)
        else params
    )
    rope: dict[str, Any] = res.get("rope") or {}
    rope_type = full.get("rope_type")

    assert rope.get("method") == rope_type, (
        f"method: ropedoctor {rope.get('method')!r} != transformers {rope_type!r}\n"
        + msg
    )

    checks: list[tuple[str, str]] = [("theta", "rope_theta")]
    if rope_type in FACTOR_METHODS and "factor" in full:
        checks.append(("factor", "factor"))
    if rope_type in ORIGINAL_METHODS and "original_max_position_embeddings" in full:
        checks.append(("original_context", "original_max_position_embeddings"))
    for ours, theirs in checks:
        expected, got = full.get(theirs), rope.get(ours)
        if _same_number(got, expected):
            continue
        mismatch = f"{ours}: ropedoctor {got!r} != transformers {theirs} {expected!r}\n"
        # a number in transformers must be matched exactly; a non-number (a string
        # theta, None) may instead be flagged by ropedoctor
        assert _as_number(expected) is None or isinstance(expected, str), mismatch + msg
        assert flagged, mismatch + "(and ropedoctor does not flag it)\n" + msg


# ----------------------------------------------------------------------------
# the generator


BRIEF_FAULTS: tuple[str, ...] = (
    "missing_factor",
    "extra_key",
    "factor_lt1",
    "factor_zero",
    "negative_attention_factor",
    "beta_fast_lt_slow",
    "llama3_low_ge_high",
    "llama3_original_ge_max",
    "longrope_wrong_length",
    "odd_head_dim",
    "yarn_inconsistent",
    "string_theta",
    "string_factor",
    "type_disagree",
    "layouts_disagree",
    "partial_rotary",
)


def test_generator_size_and_coverage() -> None:
    cases = generate_cases(N_CASES, SEED)
    assert len(cases) >= 300
    configs = [cfg for cfg, _ in cases]
    assert configs == [cfg for cfg, _ in generate_cases(N_CASES, SEED)], (
        "generator is not deterministic"
    )
    for cfg in configs:
        json.dumps(cfg, allow_nan=False)  # plain JSON, no NaN/Infinity
        assert isinstance(cfg.get("model_type"), str)

    methods = Counter(meta.method_class for _, meta in cases)
    for method in (*KNOWN_METHODS, "unknown"):
        assert methods[method] >= 10, (
            f"method {method!r} covered only {methods[method]} times: {methods}"
        )

    # layouts counted from the dicts themselves
    v4 = sum(
        1
        for cfg in configs
        if "rope_scaling" in cfg or "rope_theta" in cfg or "rotary_emb_base" in cfg
    )
    v5 = sum(1 for cfg in configs if "rope_parameters" in cfg)
    both = sum(
        1
        for cfg in configs
        if "rope_parameters" in cfg and ("rope_scaling" in cfg or "rope_theta" in cfg)
    )
    null_scaling = sum(
        1 for cfg in configs if "rope_scaling" in cfg and cfg["rope_scaling"] is None
    )
    legacy_type = sum(
        1
        for cfg in configs
        if isinstance(cfg.get("rope_scaling"), dict) and "type" in cfg["rope_scaling"]
    )
    assert v4 >= 100, f"v4 layout: {v4}"
    assert v5 >= 100, f"v5 layout: {v5}"
    assert both >= 30, f"both layouts at once: {both}"
    assert null_scaling >= 10, f"rope_scaling: null: {null_scaling}"
    assert legacy_type >= 30, f"legacy `type`: {legacy_type}"

    families = Counter(meta.family for _, meta in cases)
    assert families.most_common(1)[0][0] == "llama"
    for family in (
        "qwen2",
        "mistral",
        "phi3",
        "gpt_neox",
        "gemma3_text",
        "deepseek_v3",
        "gpt_oss",
    ):
        assert families[family] >= 5, f"family {family}: {families[family]}"

    faults = Counter(fault for _, meta in cases for fault in meta.faults)
    missing = [fault for fault in BRIEF_FAULTS if faults[fault] == 0]
    assert not missing, f"faults never generated: {missing}"


def test_generator_exercises_every_oracle_outcome() -> None:
    outcomes = Counter(
        "raised" if v.raised else ("warned" if v.warnings else "clean")
        for v in (_verdict(i) for i in range(N_CASES))
    )
    assert outcomes["raised"] >= 30, outcomes
    assert outcomes["warned"] >= 60, outcomes
    assert outcomes["clean"] >= 60, outcomes


# ----------------------------------------------------------------------------
# the oracle


_LLAMA: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 1024,
    "max_position_embeddings": 4096,
    "rope_theta": 10000.0,
}


def test_oracle_missing_yarn_factor_raises_key_error() -> None:
    verdict = transformers_verdict({**_LLAMA, "rope_scaling": {"rope_type": "yarn"}})
    assert verdict.raised is not None, verdict.describe()
    assert verdict.raised.startswith("KeyError"), verdict.describe()
    assert "factor" in verdict.raised
    assert verdict.rope_parameters is None


def test_oracle_unknown_key_warns_unrecognized() -> None:
    verdict = transformers_verdict(
        {**_LLAMA, "rope_scaling": {"rope_type": "linear", "factor": 2.0, "foo": 1}}
    )
    assert verdict.raised is None, verdict.describe()
    assert any("Unrecognized keys" in w and "foo" in w for w in verdict.warnings), (
        verdict.describe()
    )


def test_oracle_accepts_legacy_type() -> None:
    verdict = transformers_verdict(
        {**_LLAMA, "rope_scaling": {"type": "linear", "factor": 2.0}}
    )
    assert verdict.raised is None, verdict.describe()
    assert verdict.warnings == [], verdict.describe()
    assert verdict.rope_parameters is not None
    assert verdict.rope_parameters["rope_type"] == "linear"
    assert verdict.rope_parameters["type"] == "linear"
    assert verdict.rope_parameters["factor"] == 2.0
    assert verdict.rope_parameters["rope_theta"] == 10000.0


def test_oracle_repeats_warning_once_messages() -> None:
    cfg = {
        **_LLAMA,
        "rope_scaling": {
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 2048,
        },
    }
    first, second = transformers_verdict(cfg), transformers_verdict(cfg)
    assert any("implicit factor" in w for w in first.warnings), first.describe()
    assert first.warnings == second.warnings


def test_oracle_does_not_mutate_input() -> None:
    cfg = {**_LLAMA, "rope_scaling": {"type": "linear", "factor": 2.0}}
    before = json.dumps(cfg, sort_keys=True)
    transformers_verdict(cfg)
    assert json.dumps(cfg, sort_keys=True) == before
