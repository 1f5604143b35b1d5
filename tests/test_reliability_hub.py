"""Issue 15, the hostile Hub (breaks 1, 7, 8 and the cache half of 12): a server on 127.0.0.1 that names cache
paths in its ETag or commit, trickles its HEAD, redirects to a host that fails with a token in the URL, and a
``HF_HUB_CACHE`` that is a file. Each test failed before the fix (huggingface_hub's ``hf_hub_download`` wrote
the body where the ETag said, its HEAD had only a per-read timeout, its retries printed 12 lines)."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, run_cli
from hub_server import subprocess_environment, use_fake_hub
from ropedoctor.errors import InputError
from ropedoctor.sources.hub import HubRef, fetch_config

CONFIG = (FIXTURES / "qwen2.5-7b-instruct" / "config.json").read_bytes()
GOOD_ETAG = hashlib.sha1(b"blob %d\0" % len(CONFIG) + CONFIG).hexdigest()
COMMIT = "c" * 40
SECRET = "sig=TopSecretQueryValue"

Headers = Callable[[str], dict[str, str]]


class HostileHub:
    """HEAD and GET of any resolve URL answer with ``headers(method)`` and, for GET, the config bytes (or a
    redirect when ``headers`` gives a Location)."""

    def __init__(self, headers: Headers) -> None:
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, method: str) -> None:
                hub.requests.append(f"{method} {self.path}")
                extra = headers(method)
                status = 302 if "Location" in extra else 200
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0" if status == 302 else str(len(CONFIG)))
                self.end_headers()
                if method == "GET" and status == 200:
                    self.wfile.write(CONFIG)

            def do_HEAD(self) -> None:
                self._answer("HEAD")

            def do_GET(self) -> None:
                self._answer("GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[[Headers], HostileHub]]:
    started: list[HostileHub] = []

    def make(headers: Headers) -> HostileHub:
        hub = HostileHub(headers)
        started.append(hub)
        use_fake_hub(monkeypatch, None, tmp_path / "hf")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        return hub

    yield make
    for hub in started:
        hub.close()


def _tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.mark.parametrize(("etag", "commit"), [
    ('"/tmp/ropedoctor-hostile-etag"', COMMIT),
    ('"../../../../outside"', COMMIT),
    ('W/"../../x"', COMMIT),
    (f'"{GOOD_ETAG}"', "../../../../outside"),
    (f'"{GOOD_ETAG}"', "main"),
    ('"a/b"', COMMIT),
    ('""', COMMIT),
])
def test_hub_cannot_name_a_path(hostile: Callable[[Headers], HostileHub], tmp_path: Path, etag: str,
                                commit: str) -> None:
    """Before: the ETag became the blob's path (``"/any/path"`` wrote the body there)."""
    absolute = Path("/tmp/ropedoctor-hostile-etag")
    absolute.unlink(missing_ok=True)
    before = _tree(tmp_path)
    hostile(lambda method: {"ETag": etag, "X-Repo-Commit": commit})
    with pytest.raises(InputError, match=r"(not a hash|not 40 hex digits|does not answer like).*") as caught:
        fetch_config(HubRef("org/name", None, None), timeout=5)
    assert "\n" not in caught.value.line
    assert not absolute.exists()
    assert _tree(tmp_path) == before  # not even the cache folder was made


def test_a_good_answer_lands_in_the_cache_only(hostile: Callable[[Headers], HostileHub], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    hub = hostile(lambda method: {"ETag": f'"{GOOD_ETAG}"', "X-Repo-Commit": COMMIT})
    path = fetch_config(HubRef("org/name", None, None), timeout=5)
    assert path.read_bytes() == CONFIG
    storage = tmp_path / "hf" / "hub" / "models--org--name"
    assert path == storage / "snapshots" / COMMIT / "config.json" and path.is_symlink()
    assert (storage / "blobs" / GOOD_ETAG).read_bytes() == CONFIG
    assert (storage / "refs" / "main").read_text() == COMMIT
    assert {p.split("/")[0] for p in _tree(tmp_path)} == {"hf"}
    # offline, huggingface_hub's own lookup finds it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert fetch_config(HubRef("org/name", None, None)) == path
    assert [r.split()[0] for r in hub.requests] == ["HEAD", "GET"]


def _trickling_server(stop: threading.Event) -> tuple[socket.socket, threading.Thread]:
    """Answers every connection with a status line and then one header byte every 0.3 s, forever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    def trickle(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not stop.is_set():
                    conn.sendall(b"X-Slow: " + b"a" * 3)
                    time.sleep(0.3)
                    conn.sendall(b"\r\n")
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_head_trickling_headers_hits_a_total_deadline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Before: the HEAD had only huggingface_hub's per-read timeout; a server trickling header lines held
    ``check org/name`` 91-120 s against the documented 10 s."""
    stop = threading.Event()
    listener, _thread = _trickling_server(stop)
    try:
        use_fake_hub(monkeypatch, None, tmp_path / "hf")
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        started = time.monotonic()
        with pytest.raises(InputError, match=r"no answer from 127\.0\.0\.1:\d+ in time \(deadline 1 s\)"):
            fetch_config(HubRef("org/name", None, None), timeout=1.0)
        assert time.monotonic() - started < 4
    finally:
        stop.set()
        listener.close()


def test_failing_redirect_target_is_one_line_naming_it(hostile: Callable[[Headers], HostileHub],
                                                       tmp_path: Path) -> None:
    """Before: 12 lines of huggingface_hub retries with the full redirect URL (and its query), then our line
    naming the Hub instead of the host that failed."""

    def headers(method: str) -> dict[str, str]:
        common = {"ETag": f'"{GOOD_ETAG}"', "X-Repo-Commit": COMMIT}
        return common if method == "HEAD" else {**common, "Location": f"http://127.0.0.1:9/cdn/blob?{SECRET}"}

    hub = hostile(headers)
    env = {**subprocess_environment(None, tmp_path / "child"), "HF_ENDPOINT": hub.url}
    result = run_cli("check", "org/name", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ropedoctor: error: org/name: ") and "cannot reach 127.0.0.1:9 (" in lines[0]
    assert SECRET not in result.stderr and "/cdn/" not in result.stderr and "internal error" not in result.stderr


def test_hub_cache_that_is_a_file(hostile: Callable[[Headers], HostileHub], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ``HF_HUB_CACHE`` pointing at a file ended in ``internal error``."""
    hostile(lambda method: {"ETag": f'"{GOOD_ETAG}"', "X-Repo-Commit": COMMIT})
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(InputError, match=r"cannot use the HF cache .*cache-file \(HF_HUB_CACHE\): Not a directory"):
        fetch_config(HubRef("org/name", None, None), timeout=5)
    assert cache.read_text() == "not a folder"


def test_scan_hf_cache_that_is_a_file(tmp_path: Path) -> None:
    """Before: `scan --hf-cache` with HF_HUB_CACHE naming a file ended in `internal error: ValueError`."""
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    env = {**subprocess_environment(None, tmp_path / "home"), "HF_HUB_CACHE": str(cache)}
    result = run_cli("scan", "--hf-cache", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"ropedoctor: error: --hf-cache: cannot read the Hugging Face cache {cache} " \
                                    "(HF_HUB_CACHE): it is not a folder"
