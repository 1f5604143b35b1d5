"""`flags` for vLLM 0.33.0, SGLang 0.5.23 and LMDeploy 0.18.0, replayed through those runtimes' own code.

Every fixture, planned with each method `flags --type` offers and at lengths around its trained length, goes through
`ropedoctor flags --runtime R --format json`; the override JSON and length flag it prints are handed to the
runtime's real config loading, override merge, maximum-length derivation and RoPE construction
(tests/runtime_oracles.py, one process per runtime with the transformers that runtime pins). Each case must end one
of two ways: `flags` says the runtime cannot serve it (`cannot_serve`), or the runtime accepts the length and builds,
on every layer kind, the RoPE ropedoctor planned: the same inverse frequencies (and attention scale) as
transformers computes for that plan at N, and a position cache that reaches N.

The sources come from `make runtime-sources` (a prerequisite of `make test`): tools/fetch_runtime_sources.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ropedoctor import rope_math
from ropedoctor.commands import _single, run_flags
from ropedoctor.plan import Target, plan
from ropedoctor.spec import RopeSpec

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(sys.prefix) / "runtime-src"
ORACLE = Path(__file__).resolve().parent / "runtime_oracles.py"
# runtime -> (its sources, the transformers it pins: vLLM 0.33.0 needs <5.21, SGLang 0.5.23 ==5.19.0, LMDeploy
# 0.18.0 >=4.56 so the project's own 5.24)
RUNTIMES: dict[str, tuple[str, str | None]] = {
    "vllm": ("vllm-0.33.0", "transformers-5.20.2"),
    "sglang": ("sglang-0.5.23", "transformers-5.19.0"),
    "lmdeploy": ("lmdeploy-0.18.0", None),
}
METHODS: tuple[str | None, ...] = (None, "yarn", "linear", "dynamic")
FREQ_TOL = 2e-3  # float32 powers in the runtimes against float64 in rope_math


@dataclass(frozen=True)
class Case:
    id: str
    folder: str
    method: str | None
    ctx: int


def _fixtures() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "fixtures").glob("*/config.json"))


def _cases() -> list[Case]:
    out = []
    for folder in _fixtures():
        spec = _single(str(folder), None, "hf-config").spec
        if not spec.has_rope or not spec.causal:
            continue
        trained = spec.original_context or spec.context or 2048
        lengths = sorted({trained, trained + 1, 2 * trained, 4 * trained})
        for method in METHODS:
            for ctx in lengths:
                out.append(Case(f"{folder.name}|{method or 'auto'}|{ctx}", str(folder), method, ctx))
    return out


def _flags(case: Case, runtime: str) -> dict[str, Any] | None:
    """`ropedoctor flags` JSON for one runtime; None where flags itself refuses the plan (exit 2)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_flags(case.folder, case.ctx, [runtime], None, 1, False, case.method, None, "json")
    if code == 2:
        return None
    assert code == 0, err.getvalue()
    emissions = json.loads(out.getvalue())["runtimes"]
    assert len(emissions) == 1
    return emissions[0]  # type: ignore[no-any-return]


OVERRIDE_FLAG = {"vllm": "--hf-overrides", "sglang": "--json-model-override-args", "lmdeploy": "--hf-overrides"}
LENGTH_FLAG = {"vllm": "--max-model-len", "sglang": "--context-length", "lmdeploy": "--session-len"}


def _argument(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def _meant(case: Case) -> RopeSpec:
    spec = _single(case.folder, None, "hf-config").spec
    return plan(spec, Target(ctx=case.ctx, method=case.method)).after  # type: ignore[arg-type]


def _layer_spec(meant: RopeSpec, kind: str) -> RopeSpec:
    layer = meant.layers.get(kind)
    if layer is None:
        return meant
    return replace(meant, method=layer.method, theta=layer.theta, factor=layer.factor, layers={})


def _relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def _judge_frequencies(runtime: str, built: dict[str, Any], meant: RopeSpec, ctx: int) -> str | None:
    if "error" in built:
        return f"the model code raises {built['error']}"
    want, scale = rope_math.spec_inv_freq(meant, ctx)
    if "long" in built and ctx > (meant.original_context or ctx):  # LongRoPE past the original: the long cache
        built = {**built, **built["long"]}
    if built["rotary_dim"] != meant.rotary_dim:
        return f"rotates {built['rotary_dim']} dimensions, not {meant.rotary_dim}"
    got = built["inv_freq"]
    if len(got) != len(want):
        return f"{built['class']}: {len(got)} frequencies, the plan has {len(want)}"
    worst = max(_relative(g, w) for g, w in zip(got, want, strict=True))
    if worst > FREQ_TOL:
        return f"{built['class']}: frequencies differ from the plan's at {ctx} by up to {worst:.3g}"
    if _relative(built["scale"], scale) > FREQ_TOL:
        return f"{built['class']}: attention scale {built['scale']:.6g}, the plan's {scale:.6g}"
    if runtime == "vllm" and built["rows"] < ctx:
        return f"{built['class']}: its position cache has {built['rows']} rows, fewer than {ctx}"
    return None


def _judge_turbomind(rope: dict[str, Any], meant: RopeSpec) -> str | None:
    method = meant.method if meant.method != "none" else "default"
    problems = []
    if rope["type"] != method:
        problems.append(f"type {rope['type']}, not {method}")
    if _relative(rope["base"], meant.theta or 10_000.0) > 1e-9:
        problems.append(f"base {rope['base']:g}, not {meant.theta:g}")
    if rope["dim"] != meant.rotary_dim:
        problems.append(f"rotary dim {rope['dim']}, not {meant.rotary_dim}")
    if method in ("linear", "dynamic", "yarn", "llama3") and _relative(rope["factor"], meant.factor or 1.0) > 1e-9:
        problems.append(f"factor {rope['factor']:g}, not {meant.factor:g}")
    if method == "yarn":
        _, scale = rope_math.spec_inv_freq(meant, meant.context)
        if rope["max_position_embeddings"] != meant.original_context:
            problems.append(f"original {rope['max_position_embeddings']}, not {meant.original_context}")
        if _relative(rope["attention_factor"], scale) > 1e-6:
            problems.append(f"attention factor {rope['attention_factor']:.6g}, not {scale:.6g}")
    if method == "dynamic" and rope["max_position_embeddings"] != meant.dynamic_length:
        problems.append(f"dynamic from {rope['max_position_embeddings']}, not {meant.dynamic_length}")
    return "; ".join(problems) or None


def judge(runtime: str, result: dict[str, Any], meant: RopeSpec, ctx: int) -> str | None:
    """None when the runtime accepts ctx and builds the planned RoPE; else what goes wrong."""
    if not result.get("accepted"):
        return f"refused: {result.get('error', '')[:300]}"
    if runtime == "lmdeploy":
        if result["engine"] != "turbomind":
            return None  # the PyTorch engine is not replayed (see the note): not judged here
        return _judge_turbomind(result["ropes"]["all"], meant)
    for kind, built in result["ropes"].items():
        problem = _judge_frequencies(runtime, built, _layer_spec(meant, kind), ctx)
        if problem:
            return f"{kind}: {problem}" if kind != "all" else problem
    return None


@cache
def _replay(runtime: str) -> tuple[str, dict[str, Any], dict[str, tuple[Case, dict[str, Any] | None]]]:
    """Every case through flags, then through the runtime's code in one process."""
    source, pinned = RUNTIMES[runtime]
    if not (SRC / source).is_dir():
        pytest.fail(f"{SRC / source} is missing: run `make runtime-sources` (part of `make test`)")
    cases: dict[str, tuple[Case, dict[str, Any] | None]] = {}
    payload = []
    for case in _cases():
        emission = _flags(case, runtime)
        cases[case.id] = (case, emission)
        if emission is None or emission.get("cannot_serve"):
            continue
        argv = emission["argv"]
        overrides = _argument(argv, OVERRIDE_FLAG[runtime])
        length = _argument(argv, LENGTH_FLAG[runtime])
        assert length is not None, f"{runtime} flags without {LENGTH_FLAG[runtime]}: {argv}"
        config = json.loads((Path(case.folder) / "config.json").read_text())
        payload.append({"id": case.id, "config": config, "overrides": json.loads(overrides) if overrides else {},
                        "ctx": int(length)})
    env = dict(os.environ)
    if pinned:
        env["PYTHONPATH"] = str(SRC / pinned)
    proc = subprocess.run([sys.executable, str(ORACLE), runtime, str(SRC / source)], input=json.dumps(payload),
                          capture_output=True, text=True, env=env, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    return doc["transformers"], {r["id"]: r for r in doc["results"]}, cases


@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_flags_run_the_planned_rope(runtime: str) -> None:
    tf_version, results, cases = _replay(runtime)
    if runtime in ("vllm", "sglang"):
        assert tf_version == RUNTIMES[runtime][1].split("-")[1]  # type: ignore[union-attr]
    failures = []
    refused_files: set[str] = set()
    counts = {"judged": 0, "runs the plan": 0, "cannot serve (said so)": 0, "flags refuses": 0, "not judged": 0}
    for case_id, (case, emission) in cases.items():
        if emission is None:
            counts["flags refuses"] += 1
            continue
        if emission.get("cannot_serve"):
            counts["cannot serve (said so)"] += 1
            continue
        result = results[case_id]
        if result.get("no_model"):
            failures.append(f"{case_id}: {result['no_model']}, and flags does not say it cannot serve the file")
            continue
        if result.get("file_refused"):
            # the runtime (or its transformers) refuses the unmodified config (Llama-4's strict config class, a
            # longrope block without its original length, a config without architectures): not the flags' doing.
            # An error raised in the replay's own code is its bug, never a refusal.
            assert not result.get("raised_in", "").endswith("runtime_oracles.py"), f"{case_id}: {result['error']}"
            refused_files.add(f"{case.folder.rsplit('/', 1)[-1]}: {result['error'][:160]}")
            continue
        if runtime == "lmdeploy" and result.get("engine") != "turbomind":
            counts["not judged"] += 1
            continue
        if result.get("unjudged") and result.get("accepted"):
            counts["length only (model code not restated)"] = counts.get("length only (model code not restated)",
                                                                         0) + 1
            continue
        try:
            meant = _meant(case)
            rope_math.spec_inv_freq(meant, case.ctx)
        except rope_math.NoFrequencies:  # dual-chunk attention and the like: no reference to compare with
            counts["no reference frequencies"] = counts.get("no reference frequencies", 0) + 1
            continue
        counts["judged"] += 1
        problem = judge(runtime, result, meant, case.ctx)
        verdict = emission.get("verdict") or ""
        if problem and verdict.startswith("approximate") and result.get("accepted"):
            counts["approximate (said so)"] = counts.get("approximate (said so)", 0) + 1
            continue
        if problem:
            failures.append(f"{case_id}: {problem}\n    argv: {' '.join(emission['argv'])}")
        else:
            counts["runs the plan"] += 1
    print(f"{runtime}: {counts}; files the runtime refuses as they are: {sorted(refused_files)}")
    assert counts["judged"] > 300
    assert not failures, f"{len(failures)} of {counts['judged']} cases:\n" + "\n".join(failures[:60])


@cache
def _as_they_are(runtime: str) -> tuple[dict[str, Any], dict[str, RopeSpec]]:
    """Every fixture, unmodified, through the runtime's code: the length it derives, or that it has no model."""
    source, pinned = RUNTIMES[runtime]
    specs = {folder.name: _single(str(folder), None, "hf-config").spec for folder in _fixtures()}
    payload = [{"id": name, "config": json.loads((ROOT / "fixtures" / name / "config.json").read_text()),
                "overrides": {}, "ctx": 1} for name, spec in specs.items() if spec.has_rope and spec.causal]
    env = dict(os.environ)
    if pinned:
        env["PYTHONPATH"] = str(SRC / pinned)
    proc = subprocess.run([sys.executable, str(ORACLE), runtime, str(SRC / source)], input=json.dumps(payload),
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r["id"]: r for r in json.loads(proc.stdout)["results"]}, specs


@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_records_derive_what_the_runtime_derives(runtime: str) -> None:
    """runtimes/records.py (what flags and RD206/RD207 say a runtime derives, and which model types it has no
    model for) against the runtime's own code, on every fixture as it is."""
    from ropedoctor.rules.portability import _raw
    from ropedoctor.runtimes.records import derived_length, nested_labels, record

    rec = record(runtime)
    results, specs = _as_they_are(runtime)
    checked, wrong = 0, []
    for name, result in results.items():
        spec = specs[name]
        if result.get("no_model"):
            if spec.model_type not in rec.no_model:
                wrong.append(f"{name}: {result['no_model']}, the record does not say so")
            continue
        if spec.model_type in rec.no_model:
            wrong.append(f"{name}: the record says no model, the runtime loads it")
        if result.get("derived") is None:
            continue
        text = spec.hf.text if spec.hf is not None else {}
        lengths = {key: value for key in rec.length_keys
                   if isinstance(value := text.get(key), int) and not isinstance(value, bool)}
        if "max_position_embeddings" not in lengths and spec.context:
            lengths["max_position_embeddings"] = spec.context
        ours = derived_length(rec, lengths, spec.method, spec.factor, _raw(spec), spec.model_type,
                              nested=bool(nested_labels(spec)))
        checked += 1
        if ours != result["derived"]:
            wrong.append(f"{name}: the record derives {ours}, {runtime} {result['derived']}")
    print(f"{runtime}: {checked} derived lengths checked")
    assert checked > 30
    assert not wrong, "\n".join(wrong)
