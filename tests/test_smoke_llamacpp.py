"""The llama.cpp smoke backend on a tiny random Llama (trained at 256 tokens) run at 4x: the flags `flags` emits,
what llama.cpp reports it runs, chunked passes that equal ``logits_all``, the HF tokenizer, and the command."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import pytest

from conftest import invoke
from llamacpp_logits import N_VOCAB, random_tokens
from ropedoctor.errors import InputError
from ropedoctor.plan import Target, plan
from ropedoctor.smoke import passkey
from ropedoctor.smoke.llamacpp_backend import CHUNK, LlamaCppBackend, compare, load_llamacpp, parse_log
from ropedoctor.smoke.llamacpp_params import ROPE_SCALING_TYPES, llama_kwargs, override_kv
from ropedoctor.smoke.request import SmokeRequest
from ropedoctor.sources import load_file
from smoke_models import build_tiny_causal

TRAIN, LONG = 256, 1024


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HF folder (config.json, weights, tokenizer files) holding the GGUF of the same weights."""
    model = build_tiny_causal(tmp_path_factory.mktemp("tiny"), n_ctx_train=TRAIN)
    shutil.copy(model.gguf_path, model.hf_dir / "model.gguf")
    return model.hf_dir


def request_for(gguf: Path, ctx: int = LONG, method: Any = None, factor: float | None = None,
                device: Any = "cpu", as_is: bool = False) -> SmokeRequest:
    before = load_file(gguf)
    after = before if as_is else plan(before, Target(ctx=ctx, method=method, factor=factor)).after
    return SmokeRequest(path=gguf.parent, model_path=gguf, ctx=ctx, backend="llama.cpp", before=before, after=after,
                        device=device, as_is=as_is)


@pytest.fixture(scope="module")
def backend(folder: Path) -> Iterator[LlamaCppBackend]:
    gguf = folder / "model.gguf"
    loaded = load_llamacpp(gguf, request_for(gguf))
    yield loaded
    loaded.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def emitted_argv(gguf: Path, *extra: str) -> list[str]:
    result = invoke("flags", str(gguf), "--ctx", str(LONG), "--runtime", "llama.cpp", "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    [server] = [e for e in json.loads(result.stdout)["runtimes"] if e["command"].startswith("llama-server")]
    argv: list[str] = server["argv"]
    return argv


def reference_scores(gguf: Path, tokens: list[int], backend: LlamaCppBackend) -> np.ndarray:
    """llama-cpp-python's own all-positions path: ``logits_all=True``, one batch, ``scores``."""
    kwargs = {k: v for k, v in backend.info["llama_kwargs"].items() if k not in ("n_batch", "n_ubatch", "logits_all")}
    llm = llama_cpp.Llama(str(gguf), n_batch=len(tokens), n_ubatch=len(tokens), logits_all=True, verbose=False,
                          **kwargs)
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float64)
    finally:
        llm.close()


def nll(scores: np.ndarray, tokens: list[int]) -> np.ndarray:
    logits = scores[:-1]
    top = logits.max(axis=1)
    log_norm = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    return np.asarray(log_norm - logits[np.arange(len(logits)), tokens[1:]])


# --- parameters ---------------------------------------------------------------------------------------

def test_scaling_names_are_llama_cpps_constants() -> None:
    assert ROPE_SCALING_TYPES == {"none": llama_cpp.LLAMA_ROPE_SCALING_TYPE_NONE,
                                  "linear": llama_cpp.LLAMA_ROPE_SCALING_TYPE_LINEAR,
                                  "yarn": llama_cpp.LLAMA_ROPE_SCALING_TYPE_YARN,
                                  "longrope": llama_cpp.LLAMA_ROPE_SCALING_TYPE_LONGROPE}


def test_argv_reader() -> None:
    kwargs = llama_kwargs(["-c", "1024", "-np", "1", "--override-kv", "llama.context_length=int:1024",
                           "--rope-scaling", "yarn", "--rope-scale", "4", "--yarn-orig-ctx", "256",
                           "--rope-freq-base", "40000", "-b", "1024", "-ub", "512"])
    assert kwargs == {"n_ctx": 1024, "kv_overrides": {"llama.context_length": 1024}, "rope_scaling_type": 2,
                      "rope_freq_scale": 0.25, "yarn_orig_ctx": 256, "rope_freq_base": 40000.0, "n_batch": 1024,
                      "n_ubatch": 512}
    assert override_kv("a.b=float:0.5") == ("a.b", 0.5)
    assert override_kv("a.b=bool:false") == ("a.b", False)
    assert override_kv("a.b=str:x=y") == ("a.b", "x=y")
    for bad in (["-np", "2"], ["--threads", "4"], ["-c"], ["--rope-scaling", "dynamic"],
                ["--override-kv", "a.b=int8:1"], ["--override-kv", "a.b"]):
        with pytest.raises(ValueError):
            llama_kwargs(bad)


@pytest.mark.parametrize(("method", "factor", "extra"), [(None, None, ()), ("linear", 4.0, ("--type", "linear",
                                                                                          "--factor", "4")),
                                                         ("ntk", 4.0, ("--type", "ntk", "--factor", "4"))])
def test_parameters_are_what_flags_emits(folder: Path, method: Any, factor: float | None, extra: tuple[str, ...]
                                         ) -> None:
    gguf = folder / "model.gguf"
    loaded = load_llamacpp(gguf, request_for(gguf, method=method, factor=factor))
    try:
        argv = emitted_argv(gguf, *extra)
        assert loaded.info["flags"] == argv
        used = loaded.info["llama_kwargs"]
        assert {k: used[k] for k in llama_kwargs(argv)} == llama_kwargs(argv)
        # the rest only says how the work is done, never what RoPE or context llama.cpp gets
        assert set(used) - set(llama_kwargs(argv)) == {"n_batch", "n_ubatch", "flash_attn", "n_gpu_layers",
                                                       "logits_all", "n_threads", "n_threads_batch"}
        assert loaded.info["matches_flags"], loaded.info["mismatches"]
        assert loaded.info["printed"]["n_ctx"] == LONG
    finally:
        loaded.close()


def test_llama_cpp_reports_the_planned_rope(backend: LlamaCppBackend) -> None:
    printed = backend.info["printed"]
    assert "--rope-scaling" in backend.info["flags"]  # no scaling in the GGUF: the plan adds YaRN x4
    assert printed["freq_scale"] == pytest.approx(1 / 4)
    assert printed["freq_base"] == pytest.approx(10000.0)
    assert backend.info["expected"] == {"n_ctx": LONG, "freq_base": 10000.0, "freq_scale": 0.25,
                                        "n_ctx_orig_yarn": TRAIN}
    assert not any("overflow" in line for line in backend.info["log_warnings"])


def test_a_mismatch_is_reported() -> None:
    printed = parse_log("llama_context: n_ctx         = 1024\nllama_context: freq_base     = 10000.0\n"
                        "llama_context: freq_scale    = 1\nprint_info: n_ctx_orig_yarn       = 256\n")
    assert printed == {"n_ctx": 1024, "freq_base": 10000.0, "freq_scale": 1, "model_n_ctx_orig_yarn": 256}
    expected: dict[str, float | int] = {"n_ctx": 1024, "freq_base": 10000.0, "freq_scale": 0.25,
                                        "n_ctx_orig_yarn": 256}
    assert compare(expected, printed, {}) == ["freq_scale: llama.cpp uses 1, the flags mean 0.25"]
    assert compare({**expected, "freq_scale": 1.0}, printed, {}) == []
    assert compare({"n_ctx": 1000}, printed, {}) == []  # llama.cpp pads n_ctx to a multiple of 256
    assert compare({"n_ctx": 700}, printed, {}) == ["n_ctx: llama.cpp uses 1024, the flags mean 700"]


def test_unscaled_run_past_the_window_is_visible(folder: Path) -> None:
    """--as-is on a GGUF without scaling: only context flags, and llama.cpp's own overflow warning is kept."""
    gguf = folder / "model.gguf"
    loaded = load_llamacpp(gguf, request_for(gguf, as_is=True))
    try:
        assert "--rope-scaling" not in loaded.info["flags"]
        assert loaded.info["printed"]["freq_scale"] == 1
        assert loaded.info["matches_flags"]
    finally:
        loaded.close()


def test_cuda_without_offload_is_refused(folder: Path) -> None:
    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python offloads to a GPU")  # allowed: a GPU build has nothing to refuse
    gguf = folder / "model.gguf"
    with pytest.raises(InputError, match="without GPU offload"):
        load_llamacpp(gguf, request_for(gguf, device="cuda"))


def test_an_unloadable_gguf_is_one_input_error(folder: Path, tmp_path: Path) -> None:
    gguf = folder / "model.gguf"
    request = request_for(gguf)
    broken = tmp_path / "model.gguf"
    broken.write_bytes(gguf.read_bytes()[: gguf.stat().st_size // 2])  # the header is whole, the tensors are not
    with pytest.raises(InputError) as raised:
        load_llamacpp(broken, request)
    assert raised.value.line.startswith(f"ropedoctor: error: {broken}: llama.cpp cannot load it")
    assert "\n" not in raised.value.line


# --- passes -------------------------------------------------------------------------------------------

def test_chunked_losses_equal_logits_all(folder: Path, backend: LlamaCppBackend) -> None:
    tokens = random_tokens(CHUNK + 188, seed=3)  # two chunks, the second partial
    scores = reference_scores(folder / "model.gguf", tokens, backend)
    ours = np.array(backend.token_losses(tokens))
    assert ours.shape == (len(tokens) - 1,)
    assert np.max(np.abs(ours - nll(scores, tokens))) < 1e-5
    assert 0 < float(ours.mean()) < 2 * np.log(N_VOCAB)


def test_forward_norms_equal_logits_all(folder: Path, backend: LlamaCppBackend) -> None:
    tokens = random_tokens(LONG, seed=4)
    scores = reference_scores(folder / "model.gguf", tokens, backend)
    buckets = [(0, TRAIN), (TRAIN, 2 * TRAIN), (2 * TRAIN, LONG), (700, 800)]
    stats = backend.forward(tokens, buckets)
    assert stats.all_finite and stats.n_tokens == LONG and stats.norm_of == "logits" and stats.seconds > 0
    norms = np.linalg.norm(scores, axis=1)
    for low, high in buckets:
        assert stats.bucket_norms[(low, high)] == pytest.approx(float(norms[low:high].mean()), rel=1e-5)


def test_greedy_generation_follows_the_logits(folder: Path, backend: LlamaCppBackend) -> None:
    prompt = random_tokens(600, seed=5)
    timed = backend.generate_timed(prompt, 6, stop_at_eos=False)
    assert len(timed.new_ids) == 6 and timed.prompt_tokens == 600
    assert timed.prefill_seconds > 0 and timed.decode_seconds > 0
    scores = reference_scores(folder / "model.gguf", prompt + timed.new_ids[:-1], backend)
    assert timed.new_ids == [int(row.argmax()) for row in scores[len(prompt) - 1:]]
    until_eos = backend.generate(prompt, 6)  # the same greedy path, cut at an end-of-generation token if any
    assert until_eos == timed.new_ids[: len(until_eos)]
    with pytest.raises(ValueError, match="exceed"):
        backend.generate(random_tokens(LONG), 1)


def test_passes_do_not_leak_into_each_other(backend: LlamaCppBackend) -> None:
    tokens = random_tokens(300, seed=6)
    first = backend.token_losses(tokens)
    backend.generate(random_tokens(900, seed=7), 3)
    backend.reset()
    assert backend.token_losses(tokens) == first
    assert backend.peak_memory_bytes() > 0


# --- tokens -------------------------------------------------------------------------------------------

def test_hf_tokenizer_gives_transformers_ids(folder: Path, backend: LlamaCppBackend) -> None:
    from transformers import AutoTokenizer

    text = passkey.prompt_text("digits", 400, 0.5, 12345, seed=1)
    expected = AutoTokenizer.from_pretrained(folder)(text).input_ids
    assert backend.tokenize(text) == expected
    assert expected[0] == 1  # BOS, as tokenizer_config.json says
    assert backend.detokenize(expected) == text
    assert str(folder / "tokenizer.json") == backend.info["tokenizer"]


def test_gguf_alone_uses_llama_cpps_vocabulary(folder: Path, tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    shutil.copy(folder / "model.gguf", gguf)
    loaded = load_llamacpp(gguf, request_for(gguf))
    try:
        assert "llama.cpp" in loaded.info["tokenizer"]
        ids = loaded.tokenize("The pass key is 12345.")
        assert ids[0] == 1 and len(ids) > 10  # BOS, then the byte tokens of the GGUF's SentencePiece vocabulary
        # the toy vocabulary has no "\u2581" piece: SentencePiece's space marker falls back to its UTF-8 byte
        # tokens, which detokenize back to the marker itself (a real vocabulary holds the piece and gives spaces)
        assert loaded.detokenize(ids[1:]).replace("\u2581", " ").strip() == "The pass key is 12345."
    finally:
        loaded.close()


# --- the command ----------------------------------------------------------------------------------------

def test_smoke_command_through_llamacpp(folder: Path, tmp_path: Path) -> None:
    before = {path.name: digest(path) for path in folder.iterdir()}
    out = tmp_path / "out"
    result = invoke("smoke", str(folder), "--ctx", str(LONG), "--backend", "llama.cpp", "--format", "json",
                    "--trials", "1", "--out", str(out))
    assert result.exit_code in (0, 1), result.output  # a random model may fail a check; it must run them all
    doc = json.loads(result.stdout)
    assert doc["backend"] == "llama.cpp" and doc["ctx"] == LONG and doc["device"] == "cpu"
    assert [check["name"] for check in doc["checks"]] == ["parameters", "finite", "passkey", "perplexity", "speed"]
    assert doc["checks"][0]["passed"] and doc["checks"][0]["mismatches"] == []
    finite = next(c for c in doc["checks"] if c["name"] == "finite")
    assert finite["passed"]
    info = doc["backend_info"]
    assert info["matches_flags"] and info["printed"]["freq_scale"] == pytest.approx(0.25)
    assert info["flags"] == emitted_argv(folder / "model.gguf")
    assert doc["tokens_per_s"]["prefill"] > 0 and doc["tokens_per_s"]["decode"] > 0
    assert doc["peak_memory_bytes"] > 0
    for name in ("passkey.png", "loss.png"):
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert {path.name: digest(path) for path in folder.iterdir()} == before  # GGUF and config.json untouched
