"""The shipped lab model (fixtures/tiny-trained, bench/lab/train_tiny.py): it loads through both backends, it
retrieves the passkey at its trained length, and without scaling at 4x that length smoke reports what the lab
measured (bench/lab/RESULTS.md): retrieval falls and the loss past the trained window rises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import FIXTURES, ROOT
from ropedoctor.cli import app
from ropedoctor.smoke import passkey

MODEL = FIXTURES / "tiny-trained"
TEXT = FIXTURES / "text" / "us-constitution.txt"
TRAINED = 256


def _smoke(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["smoke", str(MODEL), "--device", "cpu", "--format", "json", *args])
    assert result.exit_code in (0, 1), result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    check: dict[str, Any] = next(c for c in doc["checks"] if c["name"] == name)
    return check


def _accuracy(doc: dict[str, Any], variant: str, length: int) -> tuple[float, int]:
    row = next(r for r in _check(doc, "passkey")["lengths"] if r["variant"] == variant and r["length"] == length)
    return row["accuracy"], row["n"]


@pytest.fixture(scope="module")
def heldout_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The last quarter of the bundled text, which the model never trained on (the lab's own split)."""
    import sys

    sys.path.insert(0, str(ROOT / "bench" / "lab"))
    from lab_data import split_text

    path = tmp_path_factory.mktemp("text") / "heldout.txt"
    path.write_text(split_text(TEXT.read_text(encoding="utf-8"))[1], encoding="utf-8")
    return path


def test_shipped_files() -> None:
    names = {p.name for p in MODEL.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "model.gguf",
            "README.md"} <= names
    assert sum(p.stat().st_size for p in MODEL.iterdir()) < 20 * 2**20
    config = json.loads((MODEL / "config.json").read_text())
    assert config["max_position_embeddings"] == TRAINED and "rope_scaling" not in config
    assert "Apache-2.0" in (MODEL / "README.md").read_text()


def test_tokenizer_keeps_keys_whole() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    ids = tokenizer("The pass key is 12345.")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert passkey.answer(str(tokenizer.decode(ids[5:], skip_special_tokens=True))) == 12345  # BOS The pass key is
    assert [tokenizer.decode([i]) for i in tokenizer(" 90817", add_special_tokens=False)["input_ids"]][-5:] == \
        list("90817")


def test_llamacpp_computes_what_transformers_computes() -> None:
    """The GGUF in llama-cpp-python gives transformers' logits on a trained-length passkey prompt, so both
    backends continue it with the same key."""
    import llama_cpp
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    prompt = passkey.fit(lambda text: list(tokenizer(text)["input_ids"]), TRAINED, "classic", 0.5, 48213, 7)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    with torch.inference_mode():
        hf = model(torch.tensor([prompt.ids])).logits[0].numpy()
    llm = llama_cpp.Llama(model_path=str(MODEL / "model.gguf"), n_ctx=TRAINED, n_batch=TRAINED,
                          n_ubatch=TRAINED, logits_all=True, verbose=False, n_threads=1,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, flash_attn=False)
    try:
        llm.eval(prompt.ids)
        cpp = np.array(llm.scores[: len(prompt.ids)], dtype=np.float32)
    finally:
        llm.close()
    assert float(np.max(np.abs(hf - cpp))) < 1e-3
    assert int(np.argmax(cpp[-1])) == int(np.argmax(hf[-1]))


def test_retrieves_at_trained_length_both_backends() -> None:
    for backend in ("transformers", "llama.cpp"):
        doc = _smoke("--ctx", str(TRAINED), "--as-is", "--checks", "passkey", "--trials", "5",
                     "--backend", backend)
        for variant in passkey.VARIANTS:
            accuracy, n = _accuracy(doc, variant, TRAINED)
            assert n == 25
            assert accuracy >= 0.9, (backend, variant, accuracy)
        lengths = _check(doc, "passkey")["lengths"]
        # N/4 = 64 tokens cannot hold the bare prompt: skipped, not failed, so the verdict is the model's
        assert {row["length"] for row in lengths if row["skipped"]} == {TRAINED // 4}
        assert doc["passed"], _check(doc, "passkey")["summary"]


def test_unscaled_at_four_times_what_the_lab_found(heldout_text: Path) -> None:
    # bench/lab/RESULTS.md, row "none": classic 1.00 at 256 and 0.00 at 1024; loss 5.40 nats in the window and
    # 6.57 at 768-1024 on the held-out text. The margins below are the direction with room for other trials.
    doc = _smoke("--ctx", str(4 * TRAINED), "--as-is", "--checks", "passkey,perplexity", "--trials", "4",
                 "--no-baseline", "--text", str(heldout_text))
    assert not doc["passed"]
    in_window, _ = _accuracy(doc, "classic", TRAINED)
    far, _ = _accuracy(doc, "classic", 4 * TRAINED)
    assert far < in_window - 0.3
    buckets = _check(doc, "perplexity")["buckets"]
    assert buckets[0]["end"] == TRAINED
    assert buckets[-1]["loss"] > buckets[0]["loss"] + 0.5


def test_the_gguf_runs_on_its_own(tmp_path: Path) -> None:
    """The GGUF carries the tokenizer: llama.cpp tokenizes as transformers does, and smoke of the GGUF alone
    (no tokenizer.json beside it, so llama.cpp's own vocabulary) retrieves at the trained length."""
    import shutil

    import llama_cpp
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(MODEL)
    llm = llama_cpp.Llama(model_path=str(MODEL / "model.gguf"), vocab_only=True, verbose=False)
    texts = [passkey.prompt_text(variant, 1500, 0.5, 12345, seed) for variant in passkey.VARIANTS for seed in range(3)]
    texts.append(TEXT.read_text(encoding="utf-8")[:6000])
    for text in texts:
        assert llm.tokenize(text.encode(), add_bos=True, special=False) == hf(text)["input_ids"]
    alone = tmp_path / "model.gguf"
    shutil.copy(MODEL / "model.gguf", alone)
    result = CliRunner().invoke(app, ["smoke", str(alone), "--ctx", str(TRAINED), "--as-is", "--backend", "llama.cpp",
                                      "--checks", "passkey", "--trials", "3", "--format", "json"])
    doc = json.loads(result.stdout)
    assert doc["backend_info"]["tokenizer"].startswith("llama.cpp"), doc["backend_info"]
    for variant in passkey.VARIANTS:
        accuracy, n = _accuracy(doc, variant, TRAINED)
        assert n == 15 and accuracy >= 0.9, (variant, accuracy)
