"""The transformers smoke backend on a tiny random Llama (trained length 256) with real tokenizer files, and
`ropedoctor smoke` end to end at 4x that length: transformers 5.23 itself is the oracle (``labels=`` loss,
``generate``), the files stay untouched, and the failure paths exit 2 with one line.

Random weights retrieve nothing: these tests assert mechanics (shapes, keys, finite flags, cells, exit codes),
never accuracy. torch runs on one thread here: the CI machine has two cores shared with other test processes,
and contended thread pools make a 2-layer model's decode steps 50x slower.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from ropedoctor.cli import app
from ropedoctor.smoke import hf_backend
from ropedoctor.smoke.hf_backend import HFBackend
from ropedoctor.smoke.run import build_request, load_backend
from smoke_models import build_tiny_causal

CTX = 1024  # 4x the trained 256


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal(tmp_path_factory.mktemp("tiny")).hf_dir


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> Iterator[HFBackend]:
    loaded = load_backend(build_request(str(model_dir), CTX, "transformers", device="cpu"))
    assert isinstance(loaded, HFBackend)
    yield loaded
    loaded.close()


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_loads_the_planned_rope_in_memory(backend: HFBackend) -> None:
    rope = backend.model.config.rope_parameters
    assert (rope["rope_type"], rope["factor"], rope["original_max_position_embeddings"]) == ("yarn", 4.0, 256)
    assert rope["rope_theta"] == 10000.0  # the v5 pitfall (reference 3.1) would have left None here
    assert backend.info["attn_implementation"] == "sdpa" and backend.dtype == "float32" and backend.device == "cpu"


def test_chunked_loss_equals_transformers_labels_loss(backend: HFBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = backend.tokenize("The grass is green. The sky is blue. The pass key is 12345. " * 4)[:150]
    monkeypatch.setattr(hf_backend, "LOGIT_CHUNK", 16)  # ten chunks on a short input
    losses = backend.token_losses(ids)
    assert len(losses) == len(ids) - 1
    with torch.inference_mode():
        reference = backend.model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
    assert sum(losses) / len(losses) == pytest.approx(float(reference), abs=1e-5)


def test_greedy_loop_equals_transformers_generate(backend: HFBackend) -> None:
    ids = backend.tokenize("What is the pass key? The pass key is")
    ours = backend.generate_timed(ids, 8, stop_at_eos=False)
    with torch.inference_mode():
        theirs = backend.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                        max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=2)
    assert ours.new_ids == theirs[0, len(ids):].tolist()
    assert ours.prompt_tokens == len(ids) and ours.prefill_seconds > 0 and ours.decode_seconds > 0


def test_forward_reports_buckets_and_finiteness(backend: HFBackend) -> None:
    ids = backend.tokenize("Here we go. There and back again. " * 40)[:CTX]
    stats = backend.forward(ids, [(0, 256), (256, len(ids))])
    assert stats.all_finite and stats.n_tokens == len(ids) and stats.norm_of == "hidden_state"
    assert set(stats.bucket_norms) == {(0, 256), (256, len(ids))}
    assert all(value > 0 for value in stats.bucket_norms.values())


def test_reset_undoes_dynamic_ntk_state(tmp_path: Path) -> None:
    """transformers keeps dynamic NTK's grown frequencies after a long call (reference 3.6) and only resets them
    for an input shorter than the trained length: a 512-token input after a 1024-token one scores differently
    than on a fresh model, unless the backend resets."""
    folder = build_tiny_causal(tmp_path, rope={"rope_theta": 10000.0}).hf_dir
    loaded = load_backend(build_request(str(folder), CTX, "transformers", device="cpu", method="dynamic",
                                        factor=4.0))
    assert isinstance(loaded, HFBackend)
    try:
        assert loaded.model.config.rope_parameters["rope_type"] == "dynamic"
        middle = loaded.tokenize("The sky is blue. " * 100)[:512]
        long = loaded.tokenize("The sun is yellow. " * 200)[:CTX]
        fresh = loaded.token_losses(middle)
        loaded.token_losses(long)
        stale = loaded.token_losses(middle)
        loaded.reset()
        again = loaded.token_losses(middle)
    finally:
        loaded.close()
    assert max(abs(a - b) for a, b in zip(fresh, stale, strict=True)) > 1e-4
    assert again == pytest.approx(fresh, abs=1e-6)


# --- the command, end to end -----------------------------------------------------------------------
def _smoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["smoke", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def full_run(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], Path, bool]:
    before = _digest(model_dir)
    out = tmp_path_factory.mktemp("report")
    code, stdout, stderr = _smoke([str(model_dir), "--ctx", str(CTX), "--trials", "1", "--device", "cpu",
                                   "--format", "json", "--out", str(out)])
    # stderr is not a terminal here: the work said before loading, then a line per check (docs/smoke.md)
    assert stderr.splitlines()[0].startswith("smoke: transformers at 1,024 tokens; before loading, the work:"), stderr
    assert all(line.startswith("smoke: ") for line in stderr.splitlines()), stderr
    return code, json.loads(stdout), out, _digest(model_dir) == before


def test_smoke_json_shape(full_run: tuple[int, dict[str, Any], Path, bool]) -> None:
    code, doc, _, _ = full_run
    for key in ("passed", "backend", "device", "ctx", "rope", "checks", "tokens_per_s", "peak_memory_bytes",
                "memory_estimate_bytes"):
        assert key in doc
    assert code == (0 if doc["passed"] else 1)
    assert (doc["backend"], doc["device"], doc["ctx"], doc["original_context"]) == ("transformers", "cpu", CTX, 256)
    assert (doc["rope"]["method"], doc["rope"]["factor"]) == ("yarn", 4.0) and doc["rope_before"]["method"] == "default"
    assert [c["name"] for c in doc["checks"]] == ["finite", "passkey", "perplexity", "speed"]
    assert all(isinstance(c["passed"], bool) for c in doc["checks"])
    assert doc["tokens_per_s"]["prefill"] > 0 and doc["tokens_per_s"]["decode"] > 0
    assert doc["peak_memory_bytes"] > 0 and doc["memory_estimate_bytes"] == doc["memory_estimate"]["total"] > 0


def test_smoke_checks_ran_every_part(full_run: tuple[int, dict[str, Any], Path, bool]) -> None:
    checks = {c["name"]: c for c in full_run[1]["checks"]}
    finite = checks["finite"]
    assert finite["passed"] and finite["all_finite"] and finite["tokens"] > 0.9 * CTX
    assert [(b["start"], b["end"]) for b in finite["bucket_norms"]][:3] == [(0, 256), (256, 512), (512, 768)]
    passkey = checks["passkey"]
    cells = {(c["variant"], c["length"], c["depth"]) for c in passkey["cells"] if c["n"] == 1}
    assert cells == {(v, n, d) for v in ("classic", "digits") for n in (256, 512, 1024)
                     for d in (0.0, 0.25, 0.5, 0.75, 1.0)}
    assert all(c["prompt_tokens"] <= c["length"] and len(c["ci95"]) == 2 for c in passkey["cells"])
    assert {(row["variant"], row["length"], row["control"]) for row in passkey["lengths"]} >= {("classic", 256, True)}
    perplexity = checks["perplexity"]
    assert perplexity["tokens"] == CTX and perplexity["text"].endswith("shakespeare-tragedies.txt.xz") and perplexity["baseline"]
    assert [(b["start"], b["end"]) for b in perplexity["buckets"]] == [(0, 256), (256, 512), (512, 768), (768, 1024)]
    assert all(b["loss"] > 0 and b["baseline_loss"] > 0 for b in perplexity["buckets"])
    assert perplexity["buckets"][0]["loss"] != perplexity["buckets"][0]["baseline_loss"]  # yarn's attention factor
    assert len(perplexity["curve"]["positions"]) == len(perplexity["curve"]["baseline"]) > 10
    speed = checks["speed"]
    assert speed["prefill_tokens"] + speed["decode_tokens"] + 1 <= CTX and speed["decode_tokens"] > 1


def test_smoke_writes_report_and_plots_and_leaves_the_model(full_run: tuple[int, dict[str, Any], Path, bool]) -> None:
    _, doc, out, untouched = full_run
    assert untouched
    assert json.loads((out / "smoke.json").read_text())["checks"] == doc["checks"]
    for name in ("passkey.png", "loss.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
    assert sorted(Path(p).name for p in doc["plots"]) == ["loss.png", "passkey.png"]


def test_as_is_runs_the_file_unchanged(model_dir: Path) -> None:
    code, stdout, _ = _smoke([str(model_dir), "--ctx", "512", "--as-is", "--checks", "finite,perplexity",
                              "--no-baseline", "--format", "json"])
    doc = json.loads(stdout)
    assert code in (0, 1) and doc["as_is"] and doc["rope"] == doc["rope_before"] and doc["rope"]["method"] == "default"
    assert [c["name"] for c in doc["checks"]] == ["finite", "perplexity"]
    assert doc["checks"][1]["baseline"] is False and doc["checks"][1]["buckets"][0]["baseline_loss"] is None


def test_text_report(model_dir: Path) -> None:
    code, stdout, _ = _smoke([str(model_dir), "--ctx", "512", "--checks", "finite", "--device", "cpu"])
    assert code == 0
    assert "rope yarn x2" in stdout and "PASS finite" in stdout and "all checks passed" in stdout


def test_out_of_memory_is_refused_before_loading(model_dir: Path) -> None:
    code, stdout, stderr = _smoke([str(model_dir), "--ctx", str(CTX), "--max-memory", "1MiB"])
    assert code == 2 and stdout == ""
    assert stderr.startswith("ropedoctor: error: out of memory: the run needs about ") and stderr.count("\n") == 1
    assert "cpu has 1.0 MiB free" in stderr and f"at {CTX} tokens" in stderr


def test_missing_weights(model_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare, ignore=shutil.ignore_patterns("*.safetensors"))
    code, _, stderr = _smoke([str(bare), "--ctx", str(CTX)])
    assert code == 2 and stderr == f"ropedoctor: error: {bare}: no weights: smoke loads *.safetensors from the " \
                                   f"model folder (a config.json alone cannot be run)\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")  # allowed: the GPU runs it
def test_cuda_asked_but_absent(model_dir: Path) -> None:
    code, _, stderr = _smoke([str(model_dir), "--ctx", str(CTX), "--device", "cuda"])
    assert code == 2 and stderr.startswith("ropedoctor: error: --device cuda: CUDA is not available")
    assert stderr.count("\n") == 1


def test_text_shorter_than_ctx(model_dir: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("Too short.")
    code, _, stderr = _smoke([str(model_dir), "--ctx", str(CTX), "--checks", "perplexity", "--text", str(short)])
    assert code == 2 and stderr.startswith(f"ropedoctor: error: {short}: ") and "fewer than --ctx 1024" in stderr
    assert os.path.getsize(short) == 10
