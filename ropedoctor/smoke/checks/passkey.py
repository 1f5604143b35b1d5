"""`passkey`: the Position Interpolation paper's retrieval test at N/4, N/2 and N, plus a control at the original
length, at depths 0, 25, 50, 75 and 100%, ``--trials`` prompts per cell, for the classic prompt and the harder
variant whose filler carries numbers (``ropedoctor.smoke.passkey``).

Greedy decoding, the first integer of the continuation, exact match with the key. Each cell reports n, the
accuracy and its 95% Wilson interval: 4 of 5 is anything from 0.38 to 0.96, which the table must not hide.
A length passes when its accuracy over all depths reaches the threshold of its variant; the check passes when
every length does, the control included (a model that cannot retrieve at its trained length says nothing about
its scaling). A length too short for the bare prompt (N/4 of a small N) is skipped, not failed; N itself must run.

Every prompt is built before the model loads (``plan_prompts``: the counts and the time estimate are said up
front). The prompts of one trial share their filler (the classic filler is fixed; the digits filler is drawn once
per trial), so prompts that agree up to the needle share that prefix: within each (variant, length) they run in
the order of their token ids, which visits the prefix tree depth first, and the backend keeps what the previous
prompt left in its KV cache up to the first token that differs (``Backend.generate(reuse_prefix=True)``). The
prompts and the answers are those of a run from scratch (tests/test_smoke_share.py); only the work differs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from ropedoctor.smoke import passkey
from ropedoctor.smoke.backend import Backend, shared_prefix
from ropedoctor.smoke.checks import CheckOutcome, wilson_interval
from ropedoctor.smoke.progress import Cost, Progress, TimeUp
from ropedoctor.smoke.request import PASSKEY_DEPTHS, SmokeRequest

MAX_FAILURES_SHOWN = 3  # per cell, in the JSON


def lengths(ctx: int, original: int) -> list[tuple[int, bool]]:
    """(length, is_control): N/4, N/2, N and the original length, each once, shortest first."""
    wanted = {ctx // 4: False, ctx // 2: False, ctx: False}
    if original < ctx:
        wanted[original] = True
    return sorted(wanted.items())


def trials(request: SmokeRequest) -> Iterator[tuple[passkey.Variant, int, bool, float, int]]:
    """Every (variant, length, control, depth, trial) the check runs, in the order it runs them."""
    for variant in request.variants:
        for length, control in lengths(request.ctx, request.original):
            for depth in PASSKEY_DEPTHS:
                for trial in range(request.trials):
                    yield variant, length, control, depth, trial


@dataclass(frozen=True)
class Job:
    """One passkey prompt of the grid: where it sits and what it asks (``prompt`` None: the bare prompt does not fit)."""

    variant: passkey.Variant
    length: int
    control: bool
    depth: float
    trial: int
    key: int
    prompt: passkey.Passkey | None


def filler_seed(seed: int, variant: str, trial: int) -> int:
    """One filler per trial, shared by its depths and lengths (a shorter filler is a prefix of a longer one)."""
    return random.Random(f"{seed}:{variant}:filler:{trial}").randrange(1 << 30)


def plan_prompts(tokenize: Callable[[str], list[int]], request: SmokeRequest) -> list[Job]:
    """Every prompt of the check, fitted to its length, in the order ``run_passkey`` runs them."""
    jobs = []
    for variant, length, control, depth, trial in trials(request):
        # a string seed goes through sha512 in random.seed: the same prompts on every run and machine
        key = passkey.new_key(random.Random(f"{request.seed}:{variant}:{length}:{depth}:{trial}"))
        try:
            prompt: passkey.Passkey | None = passkey.fit(tokenize, length, variant, depth, key,
                                                         filler_seed(request.seed, variant, trial))
        except ValueError:
            prompt = None  # a length too short for the bare prompt: the cell keeps n = 0
        jobs.append(Job(variant, length, control, depth, trial, key, prompt))
    return run_order(jobs)


def run_order(jobs: list[Job]) -> list[Job]:
    """(variant, length) groups as ``trials`` lists them; inside each, the prompts sorted by their token ids, so
    that each prompt follows the one it shares the longest prefix with (a depth-first walk of the prefix tree)."""
    out: list[Job] = []
    for _, group in groupby(jobs, key=lambda job: (job.variant, job.length)):
        out += sorted(group, key=lambda job: job.prompt.ids if job.prompt else [])
    return out


def prefill_plan(jobs: list[Job], share: bool) -> list[tuple[int, int]]:
    """(tokens to prefill, tokens reused from the cache) per job, in run order: what ``run_passkey`` will do when
    the backend keeps every prefix (llama.cpp may have to refuse one: a sliding-window cache that dropped it)."""
    plan: list[tuple[int, int]] = []
    previous: list[int] = []
    for job in jobs:
        if job.prompt is None:
            plan.append((0, 0))
            continue
        ids = job.prompt.ids
        reuse = min(shared_prefix(previous, ids), len(ids) - 1) if share else 0
        plan.append((len(ids) - reuse, reuse))
        previous = ids
    return plan


def job_costs(jobs: list[Job], share: bool, cost: Cost) -> list[float]:
    return [cost.prefill(new, past) + cost.prefill(passkey.ANSWER_TOKENS, new + past) if new else 0.0
            for new, past in prefill_plan(jobs, share)]


def run_passkey(backend: Backend, request: SmokeRequest, jobs: list[Job], progress: Progress | None = None, *,
                share: bool = True, cost: Cost | None = None) -> CheckOutcome:
    """Run ``jobs`` (``plan_prompts``) in their order; on ``TimeUp`` the outcome so far rides on the exception."""
    progress = progress or Progress(quiet=True)
    costs = job_costs(jobs, share, cost or Cost())
    plan = prefill_plan(jobs, share)
    cells: dict[tuple[str, int, float], dict[str, Any]] = {}
    for job in jobs:  # every cell exists, run or not, in the grid's order
        cells.setdefault((job.variant, job.length, job.depth), {
            "variant": job.variant, "length": job.length, "control": job.control, "depth": job.depth, "n": 0,
            "correct": 0, "prompt_tokens": [], "failures": []})
    counters = {"prefilled_tokens": 0, "reused_tokens": 0, "prompts": 0}
    try:
        index = 0
        for (variant, length), group in groupby(jobs, key=lambda job: (job.variant, job.length)):
            group_jobs = list(group)
            progress.activity(f"passkey {variant} @{length}")
            correct = ran = 0
            for job in group_jobs:
                if job.prompt is not None:
                    cell = cells[(job.variant, job.length, job.depth)]
                    backend.on_chunk = progress.follow(costs[index], cost, past=plan[index][1])
                    stats = backend.generate_timed(job.prompt.ids, passkey.ANSWER_TOKENS, reuse_prefix=share)
                    got = backend.detokenize(stats.new_ids)
                    counters["prefilled_tokens"] += stats.prompt_tokens - stats.reused_tokens
                    counters["reused_tokens"] += stats.reused_tokens
                    counters["prompts"] += 1
                    cell["n"] += 1
                    cell["prompt_tokens"].append(job.prompt.n_tokens)
                    ran += 1
                    if passkey.answer(got) == job.key:
                        cell["correct"] += 1
                        correct += 1
                    elif len(cell["failures"]) < MAX_FAILURES_SHOWN:
                        cell["failures"].append({"key": job.key, "got": got.strip()[:40]})
                progress.advance(costs[index])
                index += 1
            progress.say(f"passkey {variant} @{length}: {correct}/{ran} correct; {progress.status()}")
    except TimeUp as stop:
        stop.partial = _outcome(cells, request, counters, share, stopped=str(stop))  # type: ignore[attr-defined]
        raise
    return _outcome(cells, request, counters, share)


def _outcome(cells: dict[tuple[str, int, float], dict[str, Any]], request: SmokeRequest, counters: dict[str, int],
             share: bool, stopped: str | None = None) -> CheckOutcome:
    rows = [_cell_json(dict(cell)) for cell in cells.values()]
    by_length = _by_length(rows, request)
    ran = [row for row in by_length if not row["skipped"]]
    at_target = {row["variant"] for row in ran if row["length"] == request.ctx}
    passed: bool | None = at_target == set(request.variants) and all(row["passed"] for row in ran)
    summary = "; ".join(f"{row['variant']} @{row['length']}{' (control)' if row['control'] else ''} "
                        + ("skipped: the bare prompt does not fit" if row["skipped"] and not stopped else
                           f"{row['correct']}/{row['n']}") for row in by_length)
    if stopped:
        passed = None
        summary = f"stopped ({stopped}): {summary}"
    prefilled, reused = counters["prefilled_tokens"], counters["reused_tokens"]
    return CheckOutcome("passkey", passed, summary, {
        "trials": request.trials, "depths": list(PASSKEY_DEPTHS), "variants": list(request.variants),
        "original": request.original,
        "thresholds": {"classic": request.thresholds.passkey_accuracy,
                       "digits": request.thresholds.passkey_digits_accuracy},
        "lengths": by_length, "cells": rows,
        # the work: prompt tokens prefilled, and those taken from the previous prompt's KV cache instead
        "prefix_sharing": share, "prompts": counters["prompts"], "prefilled_tokens": prefilled,
        "reused_tokens": reused, "prompt_tokens_total": prefilled + reused,
        **({"stopped": stopped} if stopped else {}),
    })


def _cell_json(cell: dict[str, Any]) -> dict[str, Any]:
    n, correct = cell["n"], cell["correct"]
    tokens = cell.pop("prompt_tokens")
    cell["failures"] = list(cell["failures"])
    low, high = wilson_interval(correct, n)
    return {**cell, "accuracy": correct / n if n else None, "ci95": [low, high],
            "prompt_tokens": round(sum(tokens) / len(tokens)) if tokens else None}


def _by_length(rows: list[dict[str, Any]], request: SmokeRequest) -> list[dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        entry = out.setdefault((row["variant"], row["length"]), {
            "variant": row["variant"], "length": row["length"], "control": row["control"], "n": 0, "correct": 0})
        entry["n"] += row["n"]
        entry["correct"] += row["correct"]
    limits = {"classic": request.thresholds.passkey_accuracy, "digits": request.thresholds.passkey_digits_accuracy}
    for entry in out.values():
        n, correct = entry["n"], entry["correct"]
        entry["accuracy"] = correct / n if n else None
        entry["ci95"] = list(wilson_interval(correct, n))
        entry["skipped"] = n == 0  # every prompt was longer than the length (the bare prompt does not fit)
        entry["passed"] = None if n == 0 else correct / n >= limits[entry["variant"]]
    return list(out.values())
