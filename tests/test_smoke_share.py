"""Passkey prefix sharing (issue 17): prompts that share their filler reuse the KV cache of that prefix, in
llama.cpp (``llama_memory_seq_rm`` of the tail) and in transformers (``DynamicCache.crop``), and the answers are
token for token those of a pass from scratch. The lab model (fixtures/tiny-trained, trained at 256) at 1024
tokens: 30 prompts of up to 1024 tokens (one trial) through both backends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from conftest import FIXTURES
from ropedoctor.smoke import passkey
from ropedoctor.smoke.checks.passkey import Job, plan_prompts, prefill_plan, run_order, run_passkey
from ropedoctor.smoke.request import BackendName, SmokeRequest
from ropedoctor.smoke.run import build_request, load_backend, load_tokenizer

MODEL = FIXTURES / "tiny-trained"
CTX = 1024


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _jobs(backend: BackendName, trials: int = 1, as_is: bool = False) -> tuple[SmokeRequest, list[Job]]:
    request = build_request(str(MODEL), CTX, backend, device="cpu", trials=trials, as_is=as_is)
    tokenize, close = load_tokenizer(request)
    try:
        return request, plan_prompts(tokenize, request)
    finally:
        close()


def test_prompts_share_their_filler_and_run_depth_first() -> None:
    _, jobs = _jobs("llama.cpp", trials=2)
    assert len(jobs) == 2 * 3 * 5 * 2  # variants x lengths (256 control, 512, 1024; 1024/4 = 256) x depths x trials
    assert all(job.prompt is not None for job in jobs)
    # each (variant, length) group is contiguous and sorted by token ids: a depth-first walk of the prefix tree
    groups = [(job.variant, job.length) for job in jobs]
    assert groups == sorted(groups, key=lambda g: (passkey.VARIANTS.index(g[0]), g[1]))
    for key in set(groups):
        ids = [job.prompt.ids for job in jobs if (job.variant, job.length) == key]  # type: ignore[union-attr]
        assert ids == sorted(ids)
    assert run_order(list(reversed(jobs))) != jobs or len(set(groups)) == 1  # the order is the plan's, not input's
    # the digits filler is drawn once per trial: the depths of one trial agree up to the earlier needle
    one_trial = [job for job in jobs if job.variant == "digits" and job.length == CTX and job.trial == 0]
    shallow, deep = min(one_trial, key=lambda j: j.depth), max(one_trial, key=lambda j: j.depth)
    assert shallow.prompt is not None and deep.prompt is not None
    head = passkey.TASK
    assert deep.prompt.text.startswith(head) and shallow.prompt.text.startswith(head)
    halfway = next(j for j in one_trial if j.depth == 0.5)
    assert halfway.prompt is not None
    before_needle = halfway.prompt.text.split("The pass key is")[0].rstrip("\n")
    assert deep.prompt.text.startswith(before_needle)
    plan = prefill_plan(jobs, share=True)
    prefilled, total = sum(new for new, _ in plan), sum(new + past for new, past in plan)
    assert total == sum(job.prompt.n_tokens for job in jobs if job.prompt)
    assert total / prefilled > 1.5, (total, prefilled)
    assert prefill_plan(jobs, share=False) == [(job.prompt.n_tokens, 0) for job in jobs if job.prompt]


@pytest.mark.parametrize("backend_name", ["llama.cpp", "transformers"])
def test_shared_prefix_gives_the_answers_of_a_fresh_pass(backend_name: BackendName) -> None:
    request, jobs = _jobs(backend_name, as_is=True)  # unscaled: it retrieves at 256 (a static YaRN does not)
    backend = load_backend(request)
    try:
        fresh = [backend.generate_timed(job.prompt.ids, passkey.ANSWER_TOKENS) for job in jobs if job.prompt]
        assert all(stats.reused_tokens == 0 for stats in fresh)
        backend.reset()
        shared = [backend.generate_timed(job.prompt.ids, passkey.ANSWER_TOKENS, reuse_prefix=True)
                  for job in jobs if job.prompt]
    finally:
        backend.close()
    assert [stats.new_ids for stats in shared] == [stats.new_ids for stats in fresh]
    # the cache kept exactly the prefix each prompt shares with the one before it (the plan's figure)
    assert [stats.reused_tokens for stats in shared] == [past for _, past in prefill_plan(jobs, share=True)]
    assert sum(stats.reused_tokens for stats in shared) > 0.3 * sum(stats.prompt_tokens for stats in shared)
    # and the model does retrieve in its window, so the comparison is between real answers, not noise
    correct = sum(passkey.answer(backend.detokenize(stats.new_ids)) == job.key
                  for stats, job in zip(shared, [j for j in jobs if j.prompt], strict=True) if job.length == 256)
    assert correct >= 8  # of 10 prompts at the trained length


def test_the_check_reports_the_same_cells_with_and_without_sharing() -> None:
    request, jobs = _jobs("llama.cpp")
    backend = load_backend(request)
    try:
        scratch = run_passkey(backend, request, jobs, share=False)
        shared = run_passkey(backend, request, jobs, share=True)
    finally:
        backend.close()
    assert shared.data["cells"] == scratch.data["cells"]
    assert shared.passed == scratch.passed
    assert scratch.data["reused_tokens"] == 0 and scratch.data["prefix_sharing"] is False
    assert shared.data["prompt_tokens_total"] == scratch.data["prefilled_tokens"]
    assert shared.data["prefilled_tokens"] + shared.data["reused_tokens"] == shared.data["prompt_tokens_total"]
    assert shared.data["prefilled_tokens"] < 0.7 * scratch.data["prefilled_tokens"]
