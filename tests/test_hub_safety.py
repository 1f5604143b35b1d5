"""Hub safety beyond tests/test_hub.py: a config.json server that lies after its HEAD (10 GB body, a byte
every 2 s), huggingface_hub's own side request, path traversal in repo ids and file names end to end, and the
token in debug logs. Real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from conftest import FIXTURES, run_cli
from hub_server import FakeHub, subprocess_environment, use_fake_hub
from ropedoctor.errors import InputError
from ropedoctor.sources.hub import HubRef, fetch_config

CONFIG = (FIXTURES / "qwen2.5-7b-instruct" / "config.json").read_bytes()
TOKEN = "hf_SafetySecretToken0123456789abcdef"
GIB = 2**30
MIB = 2**20


class LyingHub:
    """HEAD tells the truth about config.json; GET then sends ``mode``: "huge" (a 10 GiB body of zeros) or
    "trickle" (the real bytes, one every ``pause`` s). Every other GET (huggingface_hub's side requests) gets a
    10 GiB body too."""

    def __init__(self, mode: str, pause: float = 2.0) -> None:
        self.mode = mode
        self.pause = pause
        self.served = 0
        self.paths: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _head(self, length: int) -> None:
                self.send_response(200)
                self.send_header("X-Repo-Commit", "a" * 40)
                self.send_header("ETag", '"' + hashlib.sha1(b"blob %d\0" % len(CONFIG) + CONFIG).hexdigest() + '"')
                self.send_header("Content-Length", str(length))
                self.end_headers()

            def do_HEAD(self) -> None:
                hub.paths.append("HEAD " + self.path)
                self._head(len(CONFIG))

            def do_GET(self) -> None:
                hub.paths.append("GET " + self.path)
                try:
                    if hub.mode == "trickle" and self.path.endswith("config.json"):
                        self._head(len(CONFIG))
                        for byte in CONFIG:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            hub.served += 1
                            time.sleep(hub.pause)
                        return
                    self._head(10 * GIB)
                    block = bytes(1 << 16)
                    while hub.served < 10 * GIB:
                        self.wfile.write(block)
                        hub.served += len(block)
                except OSError:
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> LyingHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def lying(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    started: list[LyingHub] = []

    def make(mode: str) -> LyingHub:
        hub = LyingHub(mode).__enter__()
        started.append(hub)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        return hub

    yield make
    for hub in started:
        hub.__exit__()


def test_config_body_larger_than_announced_is_cut(lying: Any) -> None:
    """Before: huggingface_hub read the 10 GiB body (and its side request, into memory: 13 GB of RSS)."""
    hub = lying("huge")
    started = time.monotonic()
    with pytest.raises(InputError, match=r"sent more than the \d+ bytes config.json was announced with"):
        fetch_config(HubRef("org/name", None, None), timeout=5)
    assert time.monotonic() - started < 10
    assert hub.served < 64 * MIB  # one 10 MiB chunk of huggingface_hub, plus socket buffers
    assert not any("/api/agent-harnesses" in path for path in hub.paths)


def test_config_trickle_hits_the_deadline(lying: Any) -> None:
    """Before: a byte every 2 s never tripped huggingface_hub's per-read timeout (over 2 minutes for 1.3 KB)."""
    lying("trickle")
    started = time.monotonic()
    with pytest.raises(InputError, match=r"timed out downloading config.json from 127\.0\.0\.1:\d+ \(deadline"):
        fetch_config(HubRef("org/name", None, None), timeout=1.0)
    assert time.monotonic() - started < 10


# -- path traversal ------------------------------------------------------------------------------------------

TRAVERSALS = ["org/../../x", "org/name/../../etc/passwd.gguf", "../../etc/passwd.gguf", "org/name/%2e%2e/x.gguf",
              "org/..", "org/name/sub/../../../x.gguf", "org/name/..\\..\\x.gguf", "/etc/passwd",
              "org/name/./x.gguf", "org/name//x.gguf"]


def test_traversal_never_reaches_the_hub_or_the_disk(tmp_path: Path) -> None:
    with FakeHub({("org/name", "config.json"): CONFIG}) as hub:
        env = subprocess_environment(hub, tmp_path / "hf")
        for path in TRAVERSALS:
            result = run_cli("check", path, env=env, cwd=tmp_path)
            assert result.returncode == 2, (path, result.stdout)
            assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        for path in ["org/name", "org/name/x%2F..%2F..%2Fy.gguf"]:
            run_cli("check", path, env=env, cwd=tmp_path)
        requested = [r.path for r in hub.requests]
    # what a server sees (percent-decoded once) never has a ".." segment: encoded names stay literal names
    assert all(".." not in unquote(p).split("/") for p in requested), requested
    # nothing was written outside the cache (and the cwd holds only it)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]
    cache_files = [p for p in (tmp_path / "hf").rglob("*") if p.is_file() or p.is_symlink()]
    assert all(os.path.realpath(p).startswith(str((tmp_path / "hf").resolve())) for p in cache_files)


def test_hub_file_names_with_encoded_separators_stay_in_the_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeHub({("org/name", "config.json"): CONFIG}) as hub:
        use_fake_hub(monkeypatch, hub, tmp_path / "hf")
        for name in ["x%2F..%2F..%2Fy.gguf", "..%2Fy.gguf"]:
            result = run_cli("check", f"org/name/{name}", env=subprocess_environment(hub, tmp_path / "hf"),
                             cwd=tmp_path)
            assert result.returncode == 2 and "no such file in the repo" in result.stderr, result.stderr
        assert all(r.path.startswith("/org/name/resolve/main/") for r in hub.requests)


# -- the token in logs ----------------------------------------------------------------------------------------


def test_token_never_in_output_logs_or_json(tmp_path: Path) -> None:
    debug = {"HF_HUB_VERBOSITY": "debug", "HF_DEBUG": "1", "PYTHONWARNINGS": "always"}
    files: dict[tuple[str, str], bytes | Path] = {("org/name", "config.json"): CONFIG,
                                                  ("org/gguf", "m.gguf"): FIXTURES / "gguf" / "qwen2.5-7b-yarn-capped.gguf"}
    scenarios: list[dict[str, Any]] = [{}, {"require_token": "hf_other"}, {"fail_status": 500},
                                       {"redirect_loop": True}, {"trickle_seconds": 0.5}, {"cdn_redirect": True}]
    for switches in scenarios:
        with FakeHub(files, **switches) as hub:
            env = {**subprocess_environment(hub, tmp_path / "hf", token=TOKEN), **debug}
            for args in (["check", "org/name", "--format", "json"], ["check", "org/gguf/m.gguf", "--format", "json"],
                         ["check", "org/missing"], ["scan", "--hf-cache", "--format", "json"],
                         ["compare", "org/name", "org/gguf/m.gguf", "--format", "json"]):
                result = run_cli(*args, env=env, cwd=tmp_path)
                assert TOKEN not in result.stdout + result.stderr, (switches, args)
                assert "Traceback" not in result.stderr, (switches, args, result.stderr)
                if "--format" in args and result.stdout.strip():
                    json.loads(result.stdout)
            headers = hub.headers
        if not switches:  # the token was really sent (so its absence above means something)
            assert any(h.get("authorization") == f"Bearer {TOKEN}" for h in headers)
    logs = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".log", ".txt", ".json", "")]
    assert all(TOKEN.encode() not in p.read_bytes() for p in logs if p.stat().st_size < 2**24)
