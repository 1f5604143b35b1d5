"""A fake Hugging Face Hub on 127.0.0.1 for tests: real HTTP, no internet.

``FakeHub`` serves what ``huggingface_hub.hf_hub_download`` calls (HEAD and GET on
``/{repo_id}/resolve/{revision}/{filename}`` with ``X-Repo-Commit``, ``ETag``/``X-Linked-Etag``,
``X-Linked-Size``, ``Content-Length``), Range GETs (``206`` + ``Content-Range``), an optional
redirect of ``.gguf`` files to a "CDN" on another origin (``http://localhost:PORT/cdn/...``, as the
Hub does with LFS files), ``/api/models/{repo_id}`` and ``.../tree/{revision}`` (``HfApi.model_info``,
``list_repo_files``), CONNECT (so one FakeHub can be another's HTTPS proxy), HTTPS (``tls=``, with
``make_certificate``) and switches for misbehaviour. ``requests`` lists (method, path, Range header, body
bytes served) per request, ``headers`` their request headers.

Pointing huggingface_hub 2.x at it: ``huggingface_hub.constants`` reads ``HF_ENDPOINT``,
``HF_HUB_CACHE``/``HF_HOME`` and ``HF_HUB_OFFLINE`` once, at import time, and ``hf_hub_url`` builds
URLs from ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` (also frozen at import). Setting the environment in
a test is therefore not enough for code that calls huggingface_hub directly. ``ropedoctor.sources.hub``
re-reads the environment on every call and passes ``endpoint=``, ``cache_dir=`` and
``local_files_only=`` explicitly, so for it the environment alone works; ``use_fake_hub`` below does
both (environment and constants) so that any huggingface_hub call made in a test goes to the fake hub.
A child process (the CLI run as a user runs it) imports huggingface_hub afresh: give it
``subprocess_environment(hub, home)``.

Usage in another test file::

    @pytest.fixture
    def hub(monkeypatch, tmp_path):
        with FakeHub({("org/name", "config.json"): b"{...}"}) as hub:
            use_fake_hub(monkeypatch, hub, tmp_path / "hf")
            yield hub
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlsplit

import pytest

GIB = 2**30
HUGE_SIZE = 10 * GIB  # the size a file claims with huge_content_length
TRICKLE_PIECE = 1024  # bytes per piece when trickling
_BLOCK = 1 << 16

# Proxy variables that would send test traffic elsewhere (httpx and urllib honour both cases).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class Request(NamedTuple):
    """One request the fake hub answered."""

    method: str
    path: str
    range: str | None
    served: int  # body bytes written to the socket


class FakeHub:
    """A fake Hub serving ``files[(repo_id, filename)]`` (bytes, or a Path read on demand) at ``revision``.

    Switches (attributes, settable at any time):

    - ``ignore_range``: answer Range requests with ``200`` and the whole body.
    - ``extra_bytes``: answer a Range request with that many bytes more than asked (headers consistent).
    - ``redirect_loop``: every resolve URL redirects to ``/loop/1`` -> ``/loop/2`` -> ``/loop/1`` ...
    - ``huge_content_length``: every file claims to be 10 GiB (its bytes, then zeros).
    - ``trickle_seconds``: send bodies in 1 KiB pieces with this pause between them.
    - ``require_token``: a token; resolve/API requests without ``Authorization: Bearer <token>`` get 401.
    - ``cdn_redirect``: resolve URLs of ``.gguf`` files redirect (302) to ``{cdn_url}/cdn/<sha256>``.
    - ``fail_status``: answer every request with this status code.

    ``tls`` (constructor only): a server SSLContext; the hub then speaks HTTPS.
    """

    def __init__(
        self,
        files: Mapping[tuple[str, str], bytes | Path],
        revision: str = "main",
        *,
        ignore_range: bool = False,
        extra_bytes: int = 0,
        redirect_loop: bool = False,
        huge_content_length: bool = False,
        trickle_seconds: float = 0.0,
        require_token: str | None = None,
        cdn_redirect: bool = False,
        fail_status: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.files: dict[tuple[str, str], bytes | Path] = dict(files)
        self.revision = revision
        self.commit = hashlib.sha1(repr(sorted(self.files)).encode()).hexdigest()
        self.ignore_range = ignore_range
        self.extra_bytes = extra_bytes
        self.redirect_loop = redirect_loop
        self.huge_content_length = huge_content_length
        self.trickle_seconds = trickle_seconds
        self.require_token = require_token
        self.cdn_redirect = cdn_redirect
        self.fail_status = fail_status
        # (arrival number, request, headers): logged when a handler ends, listed in arrival order, because a
        # redirect's handler can end after the client already asked the redirect's target
        self._log: list[tuple[int, Request, dict[str, str]]] = []
        self._arrivals = 0
        self._lock = threading.Lock()
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._etags: dict[tuple[str, str], str] = {}
        self._server = _Server(("127.0.0.1", 0), _make_handler(self))
        self.scheme = "http"
        if tls is not None:  # https: the certificate must name 127.0.0.1 and localhost (see make_certificate)
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def cdn_url(self) -> str:
        """Another origin for the same server (the "CDN" that .gguf files redirect to)."""
        return f"{self.scheme}://localhost:{self.port}"

    def start(self) -> FakeHub:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="FakeHub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what happened -----------------------------------------------------------------------------

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no request is being answered (a handler may still be writing after the client left)."""
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout)

    @property
    def requests(self) -> list[Request]:
        """Every request answered so far (waits for those in flight first)."""
        self.wait_idle()
        with self._lock:
            return [request for _, request, _ in sorted(self._log, key=lambda entry: entry[0])]

    @property
    def headers(self) -> list[dict[str, str]]:
        """The request headers (lower-case names) of every request, in the order of ``requests``."""
        self.wait_idle()
        with self._lock:
            return [dict(headers) for _, _, headers in sorted(self._log, key=lambda entry: entry[0])]

    @property
    def bytes_served(self) -> int:
        return sum(r.served for r in self.requests)

    def clear(self) -> None:
        self.wait_idle()
        with self._lock:
            self._log.clear()

    def resolve_path(self, repo_id: str, filename: str, revision: str | None = None) -> str:
        """The URL path huggingface_hub.hf_hub_url builds for a file."""
        return f"/{repo_id}/resolve/{quote(revision or self.revision, safe='')}/{quote(filename)}"

    # -- serving (called from handler threads) -----------------------------------------------------

    def _begin(self) -> int:
        with self._lock:
            self._busy += 1
            self._arrivals += 1
            return self._arrivals

    def _end(self, arrival: int, request: Request, headers: dict[str, str]) -> None:
        with self._idle:
            self._log.append((arrival, request, headers))
            self._busy -= 1
            self._idle.notify_all()

    def _size(self, key: tuple[str, str]) -> int:
        if self.huge_content_length:
            return HUGE_SIZE
        data = self.files[key]
        return len(data) if isinstance(data, bytes) else data.stat().st_size

    def _real_size(self, key: tuple[str, str]) -> int:
        data = self.files[key]
        return len(data) if isinstance(data, bytes) else data.stat().st_size

    def _etag(self, key: tuple[str, str]) -> str:
        """git-sha1 for small files, sha256 for .gguf (LFS-like), as the Hub does."""
        if key not in self._etags:
            data = self.files[key]
            content = data if isinstance(data, bytes) else data.read_bytes()
            if key[1].endswith(".gguf"):
                self._etags[key] = hashlib.sha256(content).hexdigest()
            else:
                self._etags[key] = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        return self._etags[key]

    def _blocks(self, key: tuple[str, str], start: int, end: int) -> Any:
        """The bytes [start, end] of a file (zeros past its real end), in blocks."""
        data = self.files[key]
        real = self._real_size(key)
        pos = start
        handle = None if isinstance(data, bytes) else data.open("rb")
        try:
            while pos <= end:
                count = min(_BLOCK, end - pos + 1)
                if pos >= real:
                    yield bytes(count)
                elif isinstance(data, bytes):
                    yield data[pos:pos + count]
                else:
                    assert handle is not None
                    handle.seek(pos)
                    block = handle.read(min(count, real - pos))
                    yield block
                    count = len(block)
                pos += count
        finally:
            if handle is not None:
                handle.close()


_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still trickling does not hold up stop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (as they should, once they have the bytes they asked for) are not errors."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # idle keep-alive connections end eventually

        def log_message(self, format: str, *args: Any) -> None:  # silence stderr
            pass

        def do_HEAD(self) -> None:
            self._handle(head=True)

        def do_GET(self) -> None:
            self._handle(head=False)

        def do_CONNECT(self) -> None:
            """Play an HTTPS proxy: tunnel to ``host:port`` (any FakeHub can be the proxy of another)."""
            arrival = hub._begin()
            served = 0
            try:
                host, _, port = self.path.rpartition(":")
                with socket.create_connection((host, int(port)), timeout=10) as upstream:
                    self.send_response(200, "Connection established")
                    self.end_headers()
                    served = _relay(self.connection, upstream, hub._stopping)
            except (OSError, ValueError):
                pass
            finally:
                self.close_connection = True
                headers = {k.lower(): v for k, v in self.headers.items()}
                hub._end(arrival, Request("CONNECT", self.path, None, served), headers)

        # -- plumbing --------------------------------------------------------------------------------

        def _handle(self, head: bool) -> None:
            arrival = hub._begin()
            self._served = 0
            path = urlsplit(self.path).path if "://" in self.path else self.path.split("?")[0]  # proxy form
            try:
                self._route(path, head)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                self.close_connection = True
            finally:
                headers = {k.lower(): v for k, v in self.headers.items()}
                hub._end(arrival, Request(self.command, path, self.headers.get("Range"), self._served), headers)

        def _reply(self, status: int, headers: Mapping[str, str | int], body: bytes = b"", head: bool = False) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, str(value))
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and not head:
                self.wfile.write(body)
                self._served += len(body)

        def _error(self, status: int, code: str | None = None, head: bool = False,
                   extra: Mapping[str, str] | None = None) -> None:
            headers: dict[str, str | int] = {"Content-Type": "application/json"}
            if code:
                headers["X-Error-Code"] = code
            headers.update(extra or {})
            body = json.dumps({"error": code or f"HTTP {status}"}).encode()
            self._reply(status, headers, body, head)

        def _authorized(self) -> bool:
            return hub.require_token is None or self.headers.get("Authorization") == f"Bearer {hub.require_token}"

        # -- routes ----------------------------------------------------------------------------------

        def _route(self, path: str, head: bool) -> None:
            if hub.fail_status is not None:
                self._error(hub.fail_status, head=head)
                return
            if path.startswith("/loop/"):
                nxt = "/loop/2" if path == "/loop/1" else "/loop/1"
                self._reply(302, {"Location": nxt}, head=head)
                return
            if path.startswith("/cdn/"):
                self._cdn(path[len("/cdn/"):], head)
                return
            if path.startswith("/api/models/"):
                self._api(path[len("/api/models/"):], head)
                return
            match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if match is None:
                self._error(404, head=head)
                return
            repo_id, revision, filename = match[1], unquote(match[2]), unquote(match[3])
            self._resolve(repo_id, revision, filename, head)

        def _api(self, rest: str, head: bool) -> None:
            """``/api/models/{repo}[/revision/{rev}]`` (model info) and ``/api/models/{repo}/tree/{rev}`` (files)."""
            parts = rest.split("/")
            repo_id = "/".join(parts[:2])
            if not self._authorized():
                self._error(401, "GatedRepo", head)
                return
            names = sorted(name for repo, name in hub.files if repo == repo_id)
            if not names:
                self._error(404, "RepoNotFound", head)
                return
            payload: object
            if len(parts) > 3 and parts[2] == "tree":
                payload = [{"type": "file", "path": name, "size": hub._size((repo_id, name)),
                            "oid": hub._etag((repo_id, name))} for name in names]
            else:
                payload = {"id": repo_id, "modelId": repo_id, "sha": hub.commit,
                           "siblings": [{"rfilename": name} for name in names]}
            self._reply(200, {"Content-Type": "application/json"}, json.dumps(payload).encode(), head)

        def _resolve(self, repo_id: str, revision: str, filename: str, head: bool) -> None:
            if hub.redirect_loop:
                self._reply(302, {"Location": "/loop/1"}, head=head)
                return
            if not any(repo == repo_id for repo, _ in hub.files):
                self._error(401 if hub.require_token is not None else 404, "RepoNotFound", head)
                return
            if not self._authorized():
                self._error(401, "GatedRepo", head)
                return
            if revision not in (hub.revision, hub.commit):
                self._error(404, "RevisionNotFound", head)
                return
            key = (repo_id, filename)
            if key not in hub.files:
                self._error(404, "EntryNotFound", head, {"X-Repo-Commit": hub.commit})
                return
            etag = hub._etag(key)
            common = {"X-Repo-Commit": hub.commit, "Accept-Ranges": "bytes"}
            if hub.cdn_redirect and filename.endswith(".gguf"):
                location = f"{hub.cdn_url}/cdn/{etag}"
                self._reply(302, {**common, "Location": location, "X-Linked-Etag": f'"{etag}"',
                                  "X-Linked-Size": hub._size(key)}, head=head)
                return
            self._content(key, head, {**common, "ETag": f'"{etag}"'})

        def _cdn(self, etag: str, head: bool) -> None:
            for key in hub.files:
                if hub._etag(key) == etag:
                    self._content(key, head, {"ETag": f'"{etag}"', "Accept-Ranges": "bytes"})
                    return
            self._error(404, head=head)

        def _content(self, key: tuple[str, str], head: bool, headers: dict[str, str | int]) -> None:
            size = hub._size(key)
            start, end = 0, size - 1
            status = 200
            wanted = self.headers.get("Range")
            if wanted and not hub.ignore_range:
                match = _RANGE.match(wanted.strip())
                if match is None:
                    self._error(416, head=head)
                    return
                start = int(match[1])
                end = min(int(match[2]) if match[2] else size - 1, size - 1)
                if start >= size:
                    self._error(416, head=head, extra={"Content-Range": f"bytes */{size}"})
                    return
                end = min(end + hub.extra_bytes, size - 1)
                status = 206
                headers = {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
            headers = {**headers, "Content-Type": "application/octet-stream", "Content-Length": end - start + 1}
            self._reply(status, headers, head=head)
            if head:
                return
            self._send_body(key, start, end)

        def _send_body(self, key: tuple[str, str], start: int, end: int) -> None:
            for block in hub._blocks(key, start, end):
                if hub.trickle_seconds > 0:
                    for i in range(0, len(block), TRICKLE_PIECE):
                        if hub._stopping.wait(hub.trickle_seconds):
                            self.close_connection = True
                            return
                        piece = block[i:i + TRICKLE_PIECE]
                        self.wfile.write(piece)
                        self.wfile.flush()
                        self._served += len(piece)
                else:
                    self.wfile.write(block)
                    self._served += len(block)
                if hub._stopping.is_set():
                    self.close_connection = True
                    return

    return Handler


def _relay(client: socket.socket, upstream: socket.socket, stopping: threading.Event) -> int:
    """Copy bytes both ways until one side closes; the bytes sent to the client."""
    sent = 0
    peers = {client: upstream, upstream: client}
    while not stopping.is_set():
        ready, _, _ = select.select(list(peers), [], [], 0.1)
        for sock in ready:
            data = sock.recv(_BLOCK)
            if not data:
                return sent
            peers[sock].sendall(data)
            if sock is upstream:
                sent += len(data)
    return sent


def hub_environment(hub: FakeHub | None, home: Path, *, offline: bool = False,
                    token: str | None = None) -> dict[str, str | None]:
    """The environment that points huggingface_hub at ``hub`` with its cache under ``home`` (None: unset).

    ``hub=None`` sets an endpoint nothing listens on (127.0.0.1:9). Proxy variables and other token sources are
    unset and telemetry is off (else huggingface_hub's first request fetches ``{ENDPOINT}/api/agent-harnesses``),
    so nothing reaches the internet.
    """
    env: dict[str, str | None] = {name: None for name in PROXY_VARIABLES}
    env.update({name.lower(): None for name in PROXY_VARIABLES})
    env.update({
        "HF_ENDPOINT": hub.url if hub is not None else "http://127.0.0.1:9",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1" if offline else None,
        "HF_TOKEN": token,
        "HUGGING_FACE_HUB_TOKEN": None, "HF_OIDC_RESOURCE": None, "HUGGINGFACE_HUB_CACHE": None,
        "TRANSFORMERS_OFFLINE": None,
    })
    return env


def subprocess_environment(hub: FakeHub | None, home: Path, **kwargs: Any) -> dict[str, str]:
    """``os.environ`` with ``hub_environment`` applied, for a child process (it imports huggingface_hub afresh,
    so the environment alone is enough there)."""
    env = {**os.environ, **hub_environment(hub, home, **kwargs)}
    return {name: value for name, value in env.items() if value is not None}


def use_fake_hub(monkeypatch: pytest.MonkeyPatch, hub: FakeHub | None, home: Path, *, offline: bool = False,
                 token: str | None = None) -> None:
    """Point huggingface_hub in this process at ``hub``: ``hub_environment`` plus the constants it froze at import
    (``ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE``, ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_TOKEN_PATH``,
    ``HF_HUB_OFFLINE``, ``HF_HUB_DISABLE_TELEMETRY``)."""
    from huggingface_hub import constants

    env = hub_environment(hub, home, offline=offline, token=token)
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    endpoint = str(env["HF_ENDPOINT"])
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(env["HF_HUB_CACHE"]))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(env["HF_TOKEN_PATH"]))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


def make_certificate(folder: Path) -> tuple[Path, ssl.SSLContext] | None:
    """A self-signed certificate for 127.0.0.1 and localhost (with the ``openssl`` command) and a server context
    for ``FakeHub(tls=...)``; None when there is no ``openssl``. Clients trust it with ``SSL_CERT_FILE``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context
