"""`ropedoctor smoke`: plan the RoPE in memory, load the model once, run the checks, report; exit 0, 1 or 2.

Order: the request is built and validated from the files alone (nothing heavy imported, nothing written), the
backend loads (the extra, weights, device and memory are checked there, before any pass), the perplexity text is
tokenized before the first long pass, then finite, passkey, perplexity and speed run on the planned model. With
``--baseline`` the unscaled model is loaded afterwards (never both at once) for perplexity's comparison.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ropedoctor.errors import InputError
from ropedoctor.smoke.backend import Backend
from ropedoctor.smoke.checks import CheckOutcome
from ropedoctor.smoke.estimate import MemoryEstimate
from ropedoctor.smoke.request import CHECKS, BackendName, CheckName, SmokeRequest
from ropedoctor.spec import RopeSpec


# --- the request -------------------------------------------------------------------------------------
def parse_checks(text: str) -> tuple[CheckName, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CHECKS]
    if unknown or not names:
        raise InputError("--checks", f"unknown {', '.join(unknown) or 'empty list'}; known: {', '.join(CHECKS)}")
    return tuple(name for name in CHECKS if name in names)


def _model_files(path: str, backend: BackendName) -> tuple[Path, Path]:
    """(the file whose RoPE is planned, what the backend loads)."""
    from ropedoctor.sources import CONFIG_NAME, GGUF_SUFFIX, resolve

    files = resolve(path)
    if not files:
        raise InputError(path, "no such file or directory (smoke runs local models only)")
    if backend == "transformers":
        configs = [f for f in files if f.name == CONFIG_NAME or not f.name.endswith(GGUF_SUFFIX)]
        if not configs:
            raise InputError(path, "the transformers backend needs a model folder with config.json and "
                                   "safetensors weights; for a GGUF use --backend llama.cpp")
        return configs[0], configs[0].parent
    ggufs = [f for f in files if f.name.endswith(GGUF_SUFFIX)]
    if not ggufs:
        raise InputError(path, "the llama.cpp backend needs a .gguf file (or a folder holding one)")
    if len(ggufs) > 1:
        raise InputError(path, f"holds several GGUF files ({', '.join(f.name for f in ggufs)}); name one")
    return ggufs[0], ggufs[0]


def build_request(path: str, ctx: int, backend: BackendName, *, method: str | None = None,
                  factor: float | None = None, **options: Any) -> SmokeRequest:
    """Resolve the model, read its RoPE and plan the fix in memory (as ``fix --ctx`` would, nothing written)."""
    from ropedoctor.plan import Target, plan
    from ropedoctor.sources import load_file

    source, model_path = _model_files(path, backend)
    before = load_file(source)
    as_is = bool(options.get("as_is"))
    config: dict[str, Any] | None = None
    if backend == "transformers":
        from ropedoctor.fix import plan_config
        from ropedoctor.sources.hf_config import spec_from_config
        from ropedoctor.sources.json_file import read_json_object

        if as_is:
            after, reasons, config = before, ["--as-is: the model as the file has it"], read_json_object(source)
        else:
            planned = plan_config(source, Target(ctx=ctx, method=method, factor=factor))  # type: ignore[arg-type]
            config = json.loads(planned.new_text.removeprefix("\ufeff"))
            after, reasons = spec_from_config(config, str(source)), planned.plan.reasons
    elif as_is:
        after, reasons = before, ["--as-is: the model as the file has it"]
    else:
        the_plan = plan(before, Target(ctx=ctx, method=method, factor=factor))  # type: ignore[arg-type]
        after, reasons = the_plan.after, the_plan.reasons
    return SmokeRequest(path=Path(path), model_path=model_path, ctx=ctx, backend=backend, before=before,
                        after=after, config=config, reasons=tuple(reasons), **options)


def unscaled_spec(spec: RopeSpec) -> RopeSpec:
    """The model's RoPE with no scaling at all: its own base, plain frequencies."""
    return replace(spec, method="default", factor=None, attention_factor=None, beta_fast=None, beta_slow=None,
                   mscale=None, mscale_all_dim=None, low_freq_factor=None, high_freq_factor=None,
                   short_factor=None, long_factor=None, truncate=None)


def baseline_request(request: SmokeRequest) -> SmokeRequest:
    """The unscaled model, through the same config writer as the fix (config.json) or the same flags (GGUF)."""
    after = unscaled_spec(request.before)
    config: dict[str, Any] | None = None
    if request.backend == "transformers":
        from ropedoctor.plan import Plan
        from ropedoctor.writers.hf_config import edit_config_text
        from ropedoctor.writers.hf_layout import config_changes

        source = request.before.source
        text = Path(source).read_bytes().decode("utf-8")
        config = json.loads(edit_config_text(text, config_changes(Plan(request.before, after))).removeprefix("\ufeff"))
    return request.baseline_request(after, config)


# --- running -------------------------------------------------------------------------------------------
def load_backend(request: SmokeRequest) -> Backend:
    if request.backend == "transformers":
        from ropedoctor.smoke.hf_backend import load_transformers

        return load_transformers(request)
    try:
        from ropedoctor.smoke.llamacpp_backend import load_llamacpp
    except ImportError:
        raise InputError("smoke needs the smoke extra", "pip install 'ropedoctor[smoke]'") from None
    _preflight_gguf(request)
    return load_llamacpp(request.model_path, request)


def gguf_estimate(request: SmokeRequest) -> MemoryEstimate | None:
    from ropedoctor.smoke.estimate import estimate_for_gguf

    return estimate_for_gguf(request.model_path, request.ctx) if request.backend == "llama.cpp" else None


def _preflight_gguf(request: SmokeRequest) -> None:
    """llama.cpp allocates weights and KV cache at load; refuse before when the budget says it cannot fit."""
    from ropedoctor.smoke.estimate import host_available_bytes, out_of_memory

    estimate = gguf_estimate(request)
    if estimate is None:
        return
    budget = request.max_memory if request.max_memory is not None else host_available_bytes()
    if estimate.total > budget:
        raise out_of_memory(estimate, "llama.cpp", budget, "the budget (--max-memory or free host memory) is"
                            if request.max_memory is not None else "the host has")


class _Steps:
    """One progress bar over the run's measurements, on a terminal only (stderr, so JSON on stdout stays clean)."""

    def __init__(self, total: int) -> None:
        import os

        self._bar: Any = None
        if sys.stderr.isatty() and not os.environ.get("NO_COLOR") and total > 1:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task("smoke", total=total)
            self._bar.start()

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    def tick(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _step_count(request: SmokeRequest) -> int:
    from ropedoctor.smoke.checks.passkey import trials

    checks = request.checks
    passkey = len(list(trials(request))) if "passkey" in checks else 0
    return ("finite" in checks) + passkey + ("perplexity" in checks) * (1 + request.baseline) + ("speed" in checks)


def execute(request: SmokeRequest) -> dict[str, Any]:
    """Run the checks; the report document (``report.smoke_json``). InputError for unusable input."""
    from ropedoctor.smoke.checks.finite import probe_ids, run_finite
    from ropedoctor.smoke.checks.passkey import run_passkey
    from ropedoctor.smoke.checks.perplexity import perplexity_outcome, text_ids
    from ropedoctor.smoke.checks.speed import run_speed
    from ropedoctor.smoke.report import smoke_json

    steps = _Steps(_step_count(request))
    outcomes: dict[str, CheckOutcome] = {}
    try:
        backend = load_backend(request)
        try:
            estimate: MemoryEstimate | None = getattr(backend, "estimate", None) or gguf_estimate(request)
            if "matches_flags" in backend.info:
                outcomes["parameters"] = _parameters_outcome(backend.info)
            text, ids = text_ids(backend.tokenize, request) if "perplexity" in request.checks else (None, [])
            probe = probe_ids(backend, request.ctx, request.seed) if {"finite", "speed"} & set(request.checks) \
                else []
            if "finite" in request.checks:
                steps.describe(f"finite: one pass over {len(probe)} tokens")
                outcomes["finite"] = run_finite(backend, request, probe)
                steps.tick()
            if "passkey" in request.checks:
                steps.describe("passkey")
                outcomes["passkey"] = run_passkey(backend, request, steps.tick)
            scaled: list[float] = []
            if "perplexity" in request.checks:
                steps.describe(f"perplexity: {len(ids)} tokens")
                backend.reset()
                scaled = backend.token_losses(ids)
                steps.tick()
            if "speed" in request.checks:
                steps.describe("speed")
                outcomes["speed"] = run_speed(backend, request, probe, estimate)
                steps.tick()
            peak = backend.peak_memory_bytes()
            meta = {"device": backend.device, "dtype": backend.dtype, "info": backend.info}
        finally:
            backend.close()
        if "perplexity" in request.checks and text is not None:
            baseline: list[float] | None = None
            if request.baseline:
                steps.describe("perplexity: the unscaled baseline")
                baseline = _baseline_losses(request, ids, scaled)
                steps.tick()
            outcomes["perplexity"] = perplexity_outcome(scaled, baseline, request, text)
    finally:
        steps.close()
    ordered = [outcomes[name] for name in ("parameters", *request.checks) if name in outcomes]
    return smoke_json(request, meta, ordered, estimate, peak)


def _parameters_outcome(info: dict[str, Any]) -> CheckOutcome:
    """A runtime that did not take the flags (llama.cpp printed another n_ctx, base or scale) fails the run:
    every other number would measure a RoPE other than the planned one."""
    mismatches = info.get("mismatches") or []
    summary = "llama.cpp runs the parameters flags emits" if info["matches_flags"] else \
        "llama.cpp did not take the flags: " + "; ".join(str(m) for m in mismatches)
    return CheckOutcome("parameters", bool(info["matches_flags"]), summary,
                        {"printed": info.get("printed"), "expected": info.get("expected"), "mismatches": mismatches})


def _baseline_losses(request: SmokeRequest, ids: list[int], scaled: list[float]) -> list[float]:
    base = baseline_request(request)
    if base.after == request.after and base.config == request.config:
        return scaled  # the run already is unscaled: the same model, the same numbers
    backend = load_backend(base)
    try:
        backend.reset()
        return backend.token_losses(ids)
    finally:
        backend.close()


def run_smoke(request: SmokeRequest) -> int:
    """Execute, print (text or JSON), write ``--out``; the exit code (0 passed, 1 a check failed, 2 bad input)."""
    from ropedoctor.smoke.report import JSON_NAME, print_report, write_plots
    from ropedoctor.writers.atomic import write_atomic

    try:
        doc = execute(request)
        if request.out is not None:
            try:
                request.out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(str(request.out), exc.strerror or str(exc)) from None
            doc["plots"] = write_plots(doc, request.out)
            write_atomic(request.out / JSON_NAME, (json.dumps(doc, indent=2) + "\n").encode())
    except InputError as error:
        print(error.line, file=sys.stderr)
        return 2
    if request.format == "json":
        print(json.dumps(doc, indent=2))
    else:
        print_report(doc)
    return 0 if doc["passed"] else 1
