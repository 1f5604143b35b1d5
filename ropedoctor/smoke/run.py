"""`ropedoctor smoke`: plan the RoPE in memory, load the model once, run the checks, report; exit 0, 1 or 2.

Order: the request is built and validated from the files alone (nothing heavy imported, nothing written), the
backend loads (the extra, weights, device and memory are checked there, before any pass), the perplexity text is
tokenized before the first long pass, then finite, passkey, perplexity and speed run on the planned model. With
``--baseline`` the unscaled model is loaded afterwards (never both at once) for perplexity's comparison.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ropedoctor.errors import InputError
from ropedoctor.smoke.backend import Backend
from ropedoctor.smoke.checks import CheckOutcome
from ropedoctor.smoke.estimate import MemoryEstimate
from ropedoctor.smoke.progress import Cost, Progress, TimeUp
from ropedoctor.smoke.request import CHECKS, BackendName, CheckName, SmokeRequest
from ropedoctor.spec import RopeSpec


# --- the request -------------------------------------------------------------------------------------
def parse_checks(text: str) -> tuple[CheckName, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CHECKS]
    if unknown or not names:
        raise InputError("--checks", f"unknown {', '.join(unknown) or 'empty list'}; known: {', '.join(CHECKS)}")
    return tuple(name for name in CHECKS if name in names)


def parse_variants(text: str) -> tuple[Literal["classic", "digits"], ...]:
    from ropedoctor.smoke.passkey import VARIANTS

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise InputError("--passkey-variants", f"unknown {', '.join(unknown) or 'empty list'}; "
                                               f"known: {', '.join(VARIANTS)}")
    return tuple(name for name in VARIANTS if name in names)


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


def check_before_load(request: SmokeRequest) -> None:
    """Every refusal that needs no weights (the extra, the device, the memory budget, the flags), first."""
    if request.backend == "transformers":
        from ropedoctor.smoke.hf_backend import check_before_load as hf_check

        hf_check(request)
        return
    try:
        import llama_cpp
    except ImportError:
        raise InputError("smoke needs the smoke extra", "pip install 'ropedoctor[smoke]'") from None
    from ropedoctor.smoke.llamacpp_backend import launch

    launch(request, request.model_path, bool(llama_cpp.llama_supports_gpu_offload()))
    _preflight_gguf(request)


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


def load_tokenizer(request: SmokeRequest) -> tuple[Callable[[str], list[int]], Callable[[], None]]:
    """(tokenize, close): the model's tokenizer alone, so that texts and prompts are counted before any weights
    load (a short --text is refused at once); the ids are those the backend's own ``tokenize`` gives."""
    if request.backend == "transformers":
        from ropedoctor.smoke.hf_backend import _tokenizer, import_torch_stack

        _, transformers = import_torch_stack()
        tokenizer = _tokenizer(transformers, request.model_path)

        def hf_tokenize(text: str) -> list[int]:
            ids: list[int] = tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"]
            return ids

        return hf_tokenize, lambda: None
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise InputError("smoke needs the smoke extra", "pip install 'ropedoctor[smoke]'") from None
    from ropedoctor.smoke.llamacpp_backend import _HFTokenizer, tokenizer_folder, vocab_only

    folder = tokenizer_folder(request)
    if folder is not None:
        return _HFTokenizer(folder).encode, lambda: None
    vocab = vocab_only(request.model_path)

    def cpp_tokenize(text: str) -> list[int]:
        return list(vocab.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    return cpp_tokenize, vocab.close


def model_shape(request: SmokeRequest) -> Any:
    """The model's shape (``memory.ModelShape``) for the cost model, or None when it cannot be read."""
    from ropedoctor import memory

    try:
        if request.backend == "llama.cpp":
            from ropedoctor.sources.gguf_header import read_gguf

            return memory.shape_from_gguf(read_gguf(request.model_path))
        return memory.shape_from_config(request.config or {})
    except (InputError, OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class _Work:
    """What the run will do, counted before the model loads."""

    text: Path | None = None
    text_ids: list[int] = field(default_factory=list)
    probe: list[int] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def plan_work(request: SmokeRequest, cost: Cost) -> _Work:
    """Tokenize the text and build every prompt with the tokenizer alone; the cost of each check."""
    from ropedoctor.smoke.checks.finite import probe_ids
    from ropedoctor.smoke.checks.passkey import job_costs, plan_prompts, prefill_plan
    from ropedoctor.smoke.checks.perplexity import text_ids
    from ropedoctor.smoke.checks.speed import DECODE_STEPS

    work = _Work()
    checks = set(request.checks)
    tokenize, close = load_tokenizer(request)
    try:
        if "perplexity" in checks:
            work.text, work.text_ids = text_ids(tokenize, request)
        if {"finite", "speed"} & checks:
            work.probe = probe_ids(tokenize, request.ctx, request.seed)
        if "passkey" in checks:
            work.jobs = plan_prompts(tokenize, request)
    finally:
        close()
    n_probe = len(work.probe)
    if "finite" in checks:
        work.costs["finite"] = cost.prefill(n_probe)
        work.lines.append(f"finite: 1 pass of {n_probe:,} tokens")
    if "passkey" in checks:
        work.costs["passkey"] = sum(job_costs(work.jobs, request.share_prefix, cost))
        plan = prefill_plan(work.jobs, request.share_prefix)
        prompts = sum(1 for job in work.jobs if job.prompt is not None)
        total = sum(new + past for new, past in plan)
        prefill = sum(new for new, _ in plan)
        shared = (f", {prefill:,} to prefill: the rest is a shared prefix kept in the KV cache "
                  f"({total / max(prefill, 1):.1f}x fewer)" if request.share_prefix else ", prefix sharing off")
        work.lines.append(f"passkey: {prompts} prompts ({', '.join(request.variants)}; {request.trials} trial(s) x "
                          f"{len({job.depth for job in work.jobs})} depths x {len({job.length for job in work.jobs})} "
                          f"lengths), {total:,} prompt tokens{shared}")
    if "perplexity" in checks:
        passes = 2 if request.baseline else 1
        work.costs["perplexity"] = passes * cost.prefill(len(work.text_ids))
        work.lines.append(f"perplexity: {passes} pass(es) of {len(work.text_ids):,} tokens of {work.text}"
                          + (" (the scaled model, then the unscaled baseline)" if passes == 2 else ""))
    if "speed" in checks:
        steps = min(DECODE_STEPS, max(2, n_probe // 8))
        work.costs["speed"] = cost.prefill(n_probe - steps) + cost.prefill(steps, n_probe - steps)
        work.lines.append(f"speed: 1 prefill of {n_probe - steps:,} tokens, {steps} decode steps")
    return work


def execute(request: SmokeRequest, progress: Progress | None = None) -> dict[str, Any]:
    """Run the checks; the report document (``report.smoke_json``). InputError for unusable input.

    ``--max-time`` (``TimeUp``) stops the run where it is: the checks that finished keep their verdicts, the one
    that was running reports what it measured with ``passed: null``, the rest are listed as not run, and the
    document says ``complete: false``.
    """
    from ropedoctor.smoke.checks.finite import run_finite
    from ropedoctor.smoke.checks.passkey import run_passkey
    from ropedoctor.smoke.checks.perplexity import perplexity_outcome
    from ropedoctor.smoke.checks.speed import run_speed
    from ropedoctor.smoke.report import smoke_json

    cost = Cost.from_shape(model_shape(request))
    progress = progress or Progress(max_time=request.max_time)
    progress.cost = cost
    outcomes: dict[str, CheckOutcome] = {}
    stopped: str | None = None
    peak: int | None = None
    estimate: MemoryEstimate | None = gguf_estimate(request)
    meta: dict[str, Any] = {"device": None, "dtype": None, "info": {}}
    try:
        check_before_load(request)
        work = plan_work(request, cost)
        progress.say(f"{request.backend} at {request.ctx:,} tokens; before loading, the work: " + "; ".join(work.lines))
        progress.activity("loading the model")
        backend = load_backend(request)
        try:
            estimate = getattr(backend, "estimate", None) or estimate
            meta = {"device": backend.device, "dtype": backend.dtype, "info": backend.info}
            progress.begin(sum(work.costs.values()))
            if "matches_flags" in backend.info:
                outcomes["parameters"] = _parameters_outcome(backend.info)
            scaled: list[float] = []
            for name in request.checks:
                unit = work.costs.get(name, 0.0)
                progress.activity(name)
                _follow_chunks(backend, progress, unit / (2 if name == "perplexity" and request.baseline else 1))
                if name == "finite":
                    outcomes["finite"] = run_finite(backend, request, work.probe)
                elif name == "passkey":
                    try:
                        outcomes["passkey"] = run_passkey(backend, request, work.jobs, progress,
                                                          share=request.share_prefix, cost=cost)
                    except TimeUp as stop:
                        outcomes["passkey"] = stop.partial  # type: ignore[attr-defined]
                        raise
                    continue  # passkey advances per prompt and says its lines per length
                elif name == "perplexity":
                    backend.reset()
                    try:
                        scaled = backend.token_losses(work.text_ids)
                    except TimeUp as stop:
                        partial: list[float] = getattr(stop, "partial", [])
                        if work.text is not None and len(partial) >= request.original:
                            outcome = perplexity_outcome(partial, None, request, work.text)
                            outcome.data["stopped"] = str(stop)
                            outcome.passed = None
                            outcome.summary = f"stopped ({stop}) after {len(partial) + 1:,} tokens: {outcome.summary}"
                            outcomes["perplexity"] = outcome
                        raise
                    unit /= 2 if request.baseline else 1
                elif name == "speed":
                    outcomes["speed"] = run_speed(backend, request, work.probe, estimate)
                progress.advance(unit)
                if name in outcomes:
                    progress.say(f"{name}: {'PASS' if outcomes[name].passed else 'FAIL'}; {progress.status()}")
            peak = backend.peak_memory_bytes()
        finally:
            with contextlib.suppress(Exception):
                peak = peak if peak is not None else backend.peak_memory_bytes()
            backend.close()
        if "perplexity" in request.checks and work.text is not None:
            baseline: list[float] | None = None
            if request.baseline:
                progress.activity("perplexity: the unscaled baseline")
                try:
                    baseline = _baseline_losses(request, work.text_ids, scaled, progress,
                                                work.costs["perplexity"] / 2)
                except TimeUp as stop:  # the scaled model's buckets stand; the comparison did not finish
                    outcome = perplexity_outcome(scaled, None, request, work.text)
                    outcome.passed, outcome.data["stopped"] = None, str(stop)
                    outcome.summary = f"stopped ({stop}) during the unscaled baseline: {outcome.summary}"
                    outcomes["perplexity"] = outcome
                    raise
                progress.advance(work.costs["perplexity"] / 2)
            outcomes["perplexity"] = perplexity_outcome(scaled, baseline, request, work.text)
            progress.say(f"perplexity: {'PASS' if outcomes['perplexity'].passed else 'FAIL'}; {progress.status()}")
    except TimeUp as stop:
        stopped = str(stop)
        progress.say(f"stopped: {stopped}; reporting what ran")
    finally:
        progress.close()
    ordered = [outcomes[name] for name in ("parameters", *request.checks) if name in outcomes]
    if stopped:
        ordered += [CheckOutcome(name, None, f"not run: {stopped}", {"stopped": stopped})
                    for name in request.checks if name not in outcomes]
    doc = smoke_json(request, meta, ordered, estimate, peak)
    doc["complete"] = stopped is None
    if stopped:
        doc["passed"] = False
        doc["stopped"] = stopped
    doc["elapsed_seconds"] = round(progress.elapsed(), 3)
    return doc


def _follow_chunks(backend: Backend, progress: Progress, unit: float) -> None:
    backend.on_chunk = progress.follow(unit)


def _parameters_outcome(info: dict[str, Any]) -> CheckOutcome:
    """A runtime that did not take the flags (llama.cpp printed another n_ctx, base or scale) fails the run:
    every other number would measure a RoPE other than the planned one."""
    mismatches = info.get("mismatches") or []
    summary = "llama.cpp runs the parameters flags emits" if info["matches_flags"] else \
        "llama.cpp did not take the flags: " + "; ".join(str(m) for m in mismatches)
    return CheckOutcome("parameters", bool(info["matches_flags"]), summary,
                        {"printed": info.get("printed"), "expected": info.get("expected"), "mismatches": mismatches})


def _baseline_losses(request: SmokeRequest, ids: list[int], scaled: list[float], progress: Progress,
                     unit: float) -> list[float]:
    base = baseline_request(request)
    if base.after == request.after and base.config == request.config:
        return scaled  # the run already is unscaled: the same model, the same numbers
    backend = load_backend(base)
    try:
        _follow_chunks(backend, progress, unit)
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
