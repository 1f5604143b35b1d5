"""A real llama-server (built from the llama.cpp that llama-cpp-python vendors: `make llama-server`) serving the tiny
NomicBert encoder of `nomic_encoder.py` on 127.0.0.1: the flags `flags` emits give every slot the asked 1024
tokens, and the answer equals transformers' embedding; the model card's copied recipe, scaled down 8x from
`-c 8192 -np 4 --rope-scaling yarn --rope-freq-scale .75`, does not, for the two reasons `flags` gives.

What is asserted comes from the server itself: its start-up log (`initializing, n_slots = N, n_ctx_slot = M`, `the
slot context (X) exceeds the training context of the model (Y) - capping`) and its HTTP answers.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ROOT, invoke
from nomic_encoder import TinyNomic, build_tiny_nomic, fixed_copy, hf_token_embeddings, max_abs_diff, random_tokens

SERVER = ROOT / ".venv" / "llama-server" / "bin" / "llama-server"
TRAIN, LONG = 256, 1024
START_TIMEOUT_S = 60.0

if not SERVER.exists():  # `make test` builds it first; a bare pytest run may come before the build
    pytest.skip(f"{SERVER} is not built; run `make llama-server`", allow_module_level=True)  # allowed: see above


@dataclass
class Served:
    """A running llama-server and its log file."""

    url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def slots(self) -> tuple[int, int]:
        """(n_slots, n_ctx_slot) from `initializing, n_slots = N, n_ctx_slot = M, kv_unified = ...`."""
        deadline = time.monotonic() + 5.0  # the log is written by llama.cpp's logger thread: allow it to catch up
        while not (found := re.search(r"initializing, n_slots = (\d+), n_ctx_slot = (\d+)", self.log)):
            assert time.monotonic() < deadline, self.log[-3000:]
            time.sleep(0.05)
        return int(found.group(1)), int(found.group(2))

    def embed(self, tokens: list[int]) -> tuple[int, Any]:
        """POST /embedding with token ids (no tokenizer in the way) and no normalisation: (status, JSON body)."""
        body = json.dumps({"content": tokens, "embd_normalize": -1}).encode()
        request = urllib.request.Request(self.url + "/embedding", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(gguf, argv) -> Served``: llama-server started with ``argv`` on a free port, stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(gguf: Path, argv: list[str]) -> Served:
        port = _free_port()
        log_path = tmp_path / f"server-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([str(SERVER), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
                                        "-t", "1", *argv], stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"llama-server exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        return Served(url, log_path, process)
            except (urllib.error.URLError, ConnectionError):
                pass  # still loading (503) or not listening yet
            time.sleep(0.1)
        raise AssertionError(f"llama-server not ready in {START_TIMEOUT_S} s:\n{log_path.read_text()}")

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> TinyNomic:
    return build_tiny_nomic(tmp_path_factory.mktemp("nomic-server"), n_ctx_train=TRAIN)


@pytest.fixture(scope="module")
def fixed(model: TinyNomic, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transformers folder after `ropedoctor fix --ctx 1024`."""
    return fixed_copy(model, tmp_path_factory.mktemp("nomic-fixed") / "hf", LONG)


def pooled(fixed: Path, seed: int) -> tuple[list[int], np.ndarray[Any, Any]]:
    """1024 token ids and transformers' mean-pooled embedding of them with the fixed config."""
    tokens = random_tokens(LONG, seed=seed)
    states, _ = hf_token_embeddings(fixed, tokens)
    return tokens, states.mean(axis=0)


@pytest.fixture(scope="module")
def expected(fixed: Path) -> tuple[list[int], np.ndarray[Any, Any]]:
    return pooled(fixed, seed=3)


def emitted_argv(model: TinyNomic, *extra: str) -> list[str]:
    result = invoke("flags", str(model.hf_dir), "--ctx", str(LONG), "--runtime", "llama.cpp", "--embedding",
                    "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    [server] = [run for run in json.loads(result.stdout)["runtimes"] if run["command"].startswith("llama-server")]
    argv: list[str] = server["argv"]
    assert argv[:2] == ["-m", "MODEL.gguf"]  # a config.json input: the GGUF to convert to is a placeholder
    return argv[2:]  # the server below is started on the converted GGUF with its own -m


def _vector(answer: Any) -> np.ndarray[Any, Any]:
    """The pooled vector of a one-input /embedding answer: ``[{"index": 0, "embedding": [[...]]}]``."""
    return np.asarray(answer[0]["embedding"], dtype=np.float32).reshape(-1)


def test_emitted_flags_serve_1024_tokens_per_slot(model: TinyNomic, expected: tuple[list[int], Any],
                                                  serve: Any) -> None:
    tokens, theirs = expected
    served = serve(model.gguf_path, emitted_argv(model))
    assert served.slots() == (1, LONG)
    assert "capping" not in served.log
    status, answer = served.embed(tokens)
    assert status == 200, answer
    assert max_abs_diff(_vector(answer), theirs) <= 1e-3


def test_parallel_flags_give_each_slot_the_length(model: TinyNomic, fixed: Path, serve: Any) -> None:
    inputs = [pooled(fixed, seed) for seed in (4, 5)]
    argv = emitted_argv(model, "--parallel", "2")
    assert argv[:4] == ["-c", str(2 * LONG), "-np", "2"]
    served = serve(model.gguf_path, argv)
    assert served.slots() == (2, LONG)
    for tokens, theirs in inputs:  # different inputs: the server picks the least recently used slot, not a cached one
        status, answer = served.embed(tokens)
        assert status == 200, answer
        assert max_abs_diff(_vector(answer), theirs) <= 1e-3
    done = rf"id +(\d+) \| task \d+ \| stop processing: n_tokens = {LONG}, truncated = 0"
    deadline = time.monotonic() + 5.0  # a slot logs its release around the time the answer leaves
    while set(re.findall(done, served.log)) != {"0", "1"}:
        assert time.monotonic() < deadline, served.log[-3000:]
        time.sleep(0.05)


# the model card's recipe, scaled down 8x (8192 -> 1024 tokens, trained 2048 -> 256)
CARD = ["-c", str(LONG), "--rope-scaling", "yarn", "--rope-freq-scale", ".75", "-b", str(LONG), "-ub", str(LONG),
        "--embedding"]


def test_card_recipe_with_four_slots_gives_each_a_quarter(model: TinyNomic, expected: tuple[list[int], Any],
                                                          serve: Any) -> None:
    served = serve(model.gguf_path, [*CARD, "-np", "4"])
    assert served.slots() == (4, LONG // 4)
    status, answer = served.embed(expected[0])
    assert status == 400
    assert f"input ({LONG} tokens) is larger than the max context size ({LONG // 4} tokens)" in \
        answer["error"]["message"]


def test_card_recipe_in_one_slot_is_capped_by_yarn_autoscale(model: TinyNomic, expected: tuple[list[int], Any],
                                                             serve: Any) -> None:
    cap = int(TRAIN / 0.75)  # n_ctx_orig_yarn / freq_scale: 341 here, 2730 for the real model
    served = serve(model.gguf_path, [*CARD, "-np", "1"])
    assert served.slots() == (1, cap)
    assert f"the slot context ({LONG}) exceeds the training context of the model ({cap}) - capping" in served.log
    status, answer = served.embed(expected[0])
    assert status == 400
    assert f"input ({LONG} tokens) is larger than the max context size ({cap} tokens)" in answer["error"]["message"]


def test_without_the_batch_flags_the_input_is_refused(model: TinyNomic, expected: tuple[list[int], Any],
                                                      serve: Any) -> None:
    argv = emitted_argv(model)
    at = argv.index("-b")
    assert argv[at:at + 4] == ["-b", str(LONG), "-ub", str(LONG)]
    served = serve(model.gguf_path, argv[:at] + argv[at + 4:])  # llama-server's default -ub 512
    assert served.slots() == (1, LONG)
    status, answer = served.embed(expected[0])
    assert status == 500
    assert f"input ({LONG} tokens) is too large to process. increase the physical batch size" in \
        answer["error"]["message"]
