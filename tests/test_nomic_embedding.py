"""End to end, embedding mode: the llama.cpp flags `flags` emits for a NomicBert encoder make llama.cpp compute
the embeddings transformers computes from the config `fix` writes.

The model is nomic-embed-text-v1.5 scaled down 8x (trained at 256, declares 1024, base 1000, non-causal, mean
pooling), served at 1024 tokens per input (the seed case is 2048 -> 8192). NomicBert's scaling is dynamic NTK,
which llama.cpp lacks: `flags` emits the static base transformers reaches at the target length, so the two agree
at exactly that length, and shorter inputs differ by the frequency deviation `flags` reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import invoke
from nomic_encoder import (
    ARCH,
    BASE,
    HEAD_DIM,
    TinyNomic,
    build_tiny_nomic,
    fixed_copy,
    hf_token_embeddings,
    llamacpp_embeddings,
    max_abs_diff,
    random_tokens,
    words_text,
)
from ropedoctor.smoke.llamacpp_params import llama_kwargs

TRAIN, LONG = 256, 1024
TOLERANCE = 1e-3
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> TinyNomic:
    return build_tiny_nomic(tmp_path_factory.mktemp("nomic"), n_ctx_train=TRAIN)


@pytest.fixture(scope="module")
def fixed(model: TinyNomic, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transformers folder after `ropedoctor fix --ctx 1024`."""
    return fixed_copy(model, tmp_path_factory.mktemp("fixed") / "hf", LONG)


@pytest.fixture(scope="module")
def emitted(model: TinyNomic) -> dict[str, dict[str, Any]]:
    """`ropedoctor flags --ctx 1024 --runtime llama.cpp --embedding`, by program (llama-server, llama-embedding)."""
    result = invoke("flags", str(model.hf_dir), "--ctx", str(LONG), "--runtime", "llama.cpp", "--embedding",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    return {run["command"].split()[0]: run for run in json.loads(result.stdout)["runtimes"]}


def ggml_inv_freq(base: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """llama.cpp's frequencies with --rope-scaling none: base^(-2i/d), nothing else (ggml's rope, ext_factor 0)."""
    return np.asarray(base ** (-np.arange(0, HEAD_DIM, 2, dtype=np.float64) / HEAD_DIM))


def test_fix_and_flags_plan_nomic_dynamic_ntk(fixed: Path, emitted: dict[str, dict[str, Any]]) -> None:
    config = json.loads((fixed / "config.json").read_text())
    assert config["rotary_scaling_factor"] == 2.0  # the model card's factor for n_positions (4x trained)
    server = emitted["llama-server"]["argv"]
    assert ["-b", str(LONG), "-ub", str(LONG)] == server[server.index("-b"):server.index("-b") + 4]
    assert f"{ARCH}.context_length=int:{LONG}" in server and "--embedding" in server
    # the static base transformers' dynamic NTK reaches at 1024 tokens: base * (f * L / trained - (f - 1))^(d/(d-2))
    static = BASE * (2.0 * LONG / TRAIN - 1.0) ** (HEAD_DIM / (HEAD_DIM - 2))
    assert float(server[server.index("--rope-freq-base") + 1]) == pytest.approx(static, rel=1e-7)


def test_embeddings_equal_at_the_target_length(model: TinyNomic, fixed: Path,
                                               emitted: dict[str, dict[str, Any]]) -> None:
    tokens = random_tokens(LONG)
    theirs, inv_freq = hf_token_embeddings(fixed, tokens)
    server = llama_kwargs(emitted["llama-server"]["argv"])
    ours = llamacpp_embeddings(model.gguf_path, tokens, server, per_token=True)
    assert max_abs_diff(ours, theirs) <= TOLERANCE
    pooled = llamacpp_embeddings(model.gguf_path, tokens, server, per_token=False)  # the GGUF's mean pooling
    assert max_abs_diff(pooled, theirs.mean(axis=0, keepdims=True)) <= TOLERANCE
    tool = llama_kwargs(emitted["llama-embedding"]["argv"])  # llama-embedding: same RoPE, no slot override
    assert max_abs_diff(llamacpp_embeddings(model.gguf_path, tokens, tool, per_token=True), theirs) <= TOLERANCE
    # what llama.cpp uses is what transformers used at this length (its dynamic base, read from the model)
    base = float(emitted["llama-server"]["argv"][emitted["llama-server"]["argv"].index("--rope-freq-base") + 1])
    assert np.max(np.abs(ggml_inv_freq(base) - inv_freq) / inv_freq) < 1e-5
    # the flags matter: the GGUF as converted (base 1000) computes another model at this length
    plain = {"n_ctx": LONG, "n_batch": LONG, "n_ubatch": LONG}
    assert max_abs_diff(llamacpp_embeddings(model.gguf_path, tokens, plain, per_token=True), theirs) > 0.1


def test_shorter_inputs_differ_by_the_reported_deviation(model: TinyNomic, fixed: Path,
                                                         emitted: dict[str, dict[str, Any]]) -> None:
    """At the trained length transformers keeps base 1000; the emitted static base differs from it by exactly the
    frequency deviation `flags` reports, and that difference is all there is between the two runtimes."""
    tokens = random_tokens(TRAIN, seed=1)
    theirs, inv_freq = hf_token_embeddings(fixed, tokens)
    assert np.allclose(inv_freq, ggml_inv_freq(BASE), rtol=1e-6)  # unscaled below the trained length
    argv = emitted["llama-server"]["argv"]
    base = float(argv[argv.index("--rope-freq-base") + 1])
    deviation = float(np.max(np.abs(ggml_inv_freq(base) - inv_freq) / inv_freq))
    assert deviation == pytest.approx(emitted["llama-server"]["max_relative_deviation"], rel=1e-5)
    assert deviation > 0.5
    server = llama_kwargs(argv)
    assert max_abs_diff(llamacpp_embeddings(model.gguf_path, tokens, server, per_token=True), theirs) > 0.1
    trained = {**server, "rope_freq_base": BASE}  # transformers' base at this length: the difference vanishes
    assert max_abs_diff(llamacpp_embeddings(model.gguf_path, tokens, trained, per_token=True), theirs) <= TOLERANCE


def test_batch_flags_let_the_whole_input_through(model: TinyNomic, fixed: Path,
                                                 emitted: dict[str, dict[str, Any]]) -> None:
    """Without -b/-ub a 1024-token input is truncated or refused; with the emitted ones it is embedded whole."""
    import llama_cpp

    text = words_text(LONG - 2)  # [CLS] + 1022 words + [SEP]
    server = llama_kwargs(emitted["llama-server"]["argv"])
    defaults = {k: v for k, v in server.items() if k not in ("n_batch", "n_ubatch")}  # llama.cpp's 512 and 512
    llm = llama_cpp.Llama(model_path=str(model.gguf_path), n_threads=1, verbose=False, **defaults)
    try:
        tokens = llm.tokenize(text.encode())
        assert len(tokens) == LONG
        _, count = llm.embed(text, return_count=True)
        assert count == 512  # llama-cpp-python silently keeps the first n_batch tokens
        with pytest.raises(ValueError, match="exceed batch size"):
            llm.embed(text, truncate=False)
    finally:
        llm.close()

    llm = llama_cpp.Llama(model_path=str(model.gguf_path), n_threads=1, verbose=False, **server)
    try:
        vector, count = llm.embed(text, return_count=True)
    finally:
        llm.close()
    assert count == LONG
    theirs, _ = hf_token_embeddings(fixed, tokens)
    assert max_abs_diff(np.asarray([vector], dtype=np.float32), theirs.mean(axis=0, keepdims=True)) <= TOLERANCE

    # -b alone is not enough: an encoder runs a whole input in one ubatch, and libllama aborts the process
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from nomic_encoder import llamacpp_embeddings, random_tokens
        params = {{**{defaults!r}, "n_batch": {LONG}}}
        llamacpp_embeddings(__import__("pathlib").Path({str(model.gguf_path)!r}), random_tokens({LONG}), params,
                            per_token=False)
    """)
    crashed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert crashed.returncode != 0
    assert "encoder requires n_ubatch >= n_tokens" in crashed.stderr
