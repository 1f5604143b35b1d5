"""`passkey`: the Position Interpolation paper's retrieval test at N/4, N/2 and N, plus a control at the original
length, at depths 0, 25, 50, 75 and 100%, ``--trials`` prompts per cell, for the classic prompt and the harder
variant whose filler carries numbers (``ropedoctor.smoke.passkey``).

Greedy decoding, the first integer of the continuation, exact match with the key. Each cell reports n, the
accuracy and its 95% Wilson interval: 4 of 5 is anything from 0.38 to 0.96, which the table must not hide.
A length passes when its accuracy over all depths reaches the threshold of its variant; the check passes when
every length does, the control included (a model that cannot retrieve at its trained length says nothing about
its scaling). A length too short for the bare prompt (N/4 of a small N) is skipped, not failed; N itself must run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from ropedoctor.smoke import passkey
from ropedoctor.smoke.backend import Backend
from ropedoctor.smoke.checks import CheckOutcome, wilson_interval
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
    for variant in passkey.VARIANTS:
        for length, control in lengths(request.ctx, request.original):
            for depth in PASSKEY_DEPTHS:
                for trial in range(request.trials):
                    yield variant, length, control, depth, trial


def run_passkey(backend: Backend, request: SmokeRequest,
                tick: Callable[[], None] = lambda: None) -> CheckOutcome:
    cells: dict[tuple[str, int, float], dict[str, Any]] = {}
    for variant, length, control, depth, trial in list(trials(request)):
        # a string seed goes through sha512 in random.seed: the same prompts on every run and machine
        rng = random.Random(f"{request.seed}:{variant}:{length}:{depth}:{trial}")
        key = passkey.new_key(rng)
        cell = cells.setdefault((variant, length, depth), {
            "variant": variant, "length": length, "control": control, "depth": depth, "n": 0, "correct": 0,
            "prompt_tokens": [], "failures": []})
        try:
            prompt = passkey.fit(backend.tokenize, length, variant, depth, key, rng.randrange(1 << 30))
        except ValueError:
            tick()
            continue  # a length too short for the bare prompt: the cell keeps n = 0
        backend.reset()
        got = backend.detokenize(backend.generate(prompt.ids, passkey.ANSWER_TOKENS))
        cell["n"] += 1
        cell["prompt_tokens"].append(prompt.n_tokens)
        if passkey.answer(got) == key:
            cell["correct"] += 1
        elif len(cell["failures"]) < MAX_FAILURES_SHOWN:
            cell["failures"].append({"key": key, "got": got.strip()[:40]})
        tick()
    rows = [_cell_json(cell) for cell in cells.values()]
    by_length = _by_length(rows, request)
    ran = [row for row in by_length if not row["skipped"]]
    at_target = {row["variant"] for row in ran if row["length"] == request.ctx}
    passed = at_target == set(passkey.VARIANTS) and all(row["passed"] for row in ran)
    summary = "; ".join(f"{row['variant']} @{row['length']}{' (control)' if row['control'] else ''} "
                        + ("skipped: the bare prompt does not fit" if row["skipped"] else
                           f"{row['correct']}/{row['n']}") for row in by_length)
    return CheckOutcome("passkey", passed, summary, {
        "trials": request.trials, "depths": list(PASSKEY_DEPTHS), "variants": list(passkey.VARIANTS),
        "original": request.original,
        "thresholds": {"classic": request.thresholds.passkey_accuracy,
                       "digits": request.thresholds.passkey_digits_accuracy},
        "lengths": by_length, "cells": rows,
    })


def _cell_json(cell: dict[str, Any]) -> dict[str, Any]:
    n, correct = cell["n"], cell["correct"]
    tokens = cell.pop("prompt_tokens")
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
