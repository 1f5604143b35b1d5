"""Fuzz targets for what issue 15's red team taught:

- ``hub-names``: a Hub whose HEAD and GET name paths (``ETag``, ``X-Linked-Etag``, ``X-Repo-Commit``,
  ``Location``) with ``..``, ``/``, absolute paths, quotes, ``W/``, NUL, long and short hex: ``fetch_config`` must end
  in a file inside the cache or one clean line, and nothing may appear outside the cache folder.
- ``gguf-shrink``: a GGUF (valid, then mutated) read while it is shorter than its stat said (the window of a file
  truncated by another program): a header or one clean line, never a signal or another exception.
- ``gguf-alloc``: a small GGUF whose alignment, counts and lengths ask for huge allocations; it is read and, when
  readable, rewritten with one key more: one clean line, or an output no larger than the input plus one
  alignment (bounded), within the worker's memory cap.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fuzz.engine import ROOT, Failure
from fuzz.mutate import HUGE_U64, mutate_bytes
from fuzz.targets import _scratch, clean

_HEX = "0123456789abcdef"
_PIECES = ["..", "../", "/", "//", "/etc/x", "%2e%2e", "\\", "\x00", "W/", '"', "'", " ", "~", ".", "a" * 300,
           "blobs", "snapshots", "refs", "models--x", "\n", "é", "*", "?", "#"]


def _hex(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(_HEX) for _ in range(count))


def _name(rng: random.Random, hex_len: int) -> str:
    """A value for a header that names a path: hex, hex with pieces spliced in, or pieces alone."""
    kind = rng.random()
    if kind < 0.3:
        return _hex(rng, rng.choice([hex_len, 40, 64, 32, 8, 129, 0]))
    if kind < 0.7:
        text = _hex(rng, hex_len)
        for _ in range(rng.randint(1, 3)):
            at = rng.randint(0, len(text))
            text = text[:at] + rng.choice(_PIECES) + text[at:]
        return text
    return "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 5)))


class HubNamesTarget:
    name = "hub-names"
    suffix = ".json"
    seconds = 5.0
    memory_mb = 512

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.plan: dict[str, Any] = {}
        self.server: ThreadingHTTPServer | None = None

    def setup(self) -> None:
        self.folder = _scratch()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, method: str) -> None:
                plan = target.plan
                headers: dict[str, str] = plan.get(method, {})
                body = plan.get("body", "{}").encode("utf-8", "surrogatepass")
                status = int(plan.get(f"{method}_status", 200))
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value.replace("\r", "").replace("\n", ""))
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if method == "GET":
                        self.wfile.write(body)
                except (OSError, UnicodeEncodeError):
                    self.close_connection = True

            def do_HEAD(self) -> None:
                self._answer("HEAD")

            def do_GET(self) -> None:
                self._answer("GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def generate(self, rng: random.Random) -> bytes:
        def headers() -> dict[str, str]:
            out: dict[str, str] = {}
            if rng.random() < 0.9:
                etag = _name(rng, 40)
                out["ETag"] = rng.choice([f'"{etag}"', etag, f'W/"{etag}"'])
            if rng.random() < 0.3:
                out["X-Linked-Etag"] = f'"{_name(rng, 64)}"'
            if rng.random() < 0.9:
                out["X-Repo-Commit"] = _name(rng, 40)
            if rng.random() < 0.2:
                out["X-Linked-Size"] = rng.choice(["10", "-1", "99999999999", "abc", ""])
            return out

        plan: dict[str, Any] = {"HEAD": headers(), "GET": headers(),
                                "body": rng.choice(['{"model_type": "llama"}', "{}", "not json", "x" * 5000]),
                                "revision": rng.choice([None, None, "main", "v1", "refs/pr/1", _hex(rng, 40)])}
        if rng.random() < 0.15:
            plan["GET_status"] = rng.choice([302, 500, 404])
            plan["GET"]["Location"] = rng.choice(["/../../x", "http://127.0.0.1:9/x?token=t", "//evil/x", ""])
        if rng.random() < 0.05:
            plan["HEAD_status"] = rng.choice([404, 401, 500, 302])
        return json.dumps(plan).encode()

    def run(self, data: bytes) -> str:
        from ropedoctor.errors import InputError
        from ropedoctor.sources.hub import HubRef, fetch_config

        assert self.folder is not None and self.server is not None
        self.plan = json.loads(data)
        root = self.folder / "run"
        shutil.rmtree(root, ignore_errors=True)
        cache = root / "cache"
        root.mkdir()
        env = {"HF_ENDPOINT": f"http://127.0.0.1:{self.server.server_address[1]}", "HF_HUB_CACHE": str(cache),
               "HF_HUB_OFFLINE": "", "HF_TOKEN": "hf_FuzzNamesToken0123456789"}
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            path = fetch_config(HubRef("org/name", None, self.plan.get("revision")), timeout=1.0)
            outcome = "result"
            if not str(os.path.realpath(path)).startswith(str(cache) + "/"):
                raise Failure(f"fetch_config returned a path outside the cache: {path}")
        except InputError as error:
            outcome = clean(error)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        for found in root.rglob("*"):
            if found != cache and not str(found).startswith(str(cache) + "/"):
                raise Failure(f"a file outside the cache: {found}")
            if found.is_symlink() and not os.path.realpath(found).startswith(str(cache) + "/"):
                raise Failure(f"a link out of the cache: {found} -> {os.readlink(found)}")
        return outcome


def _gguf_seeds() -> list[bytes]:
    seeds = [p.read_bytes() for p in sorted((ROOT / "fixtures").rglob("*.gguf"))]
    seeds += [p.read_bytes() for p in sorted((ROOT / "tests" / "gguf_corpus").rglob("*.gguf"))][:40]
    return [seed for seed in seeds if len(seed) < 4 << 20] or [_tiny_gguf(32)]


class GgufShrinkTarget:
    """A GGUF read while it holds fewer bytes than its stat said."""

    name = "gguf-shrink"
    suffix = ".gguf"
    seconds = 2.0
    memory_mb = 512

    def __init__(self) -> None:
        self.seeds: list[bytes] = []
        self.folder: Path | None = None

    def setup(self) -> None:
        self.seeds = _gguf_seeds()
        self.folder = _scratch()

    def generate(self, rng: random.Random) -> bytes:
        if not self.seeds:
            self.setup()
        data = rng.choice(self.seeds)
        if rng.random() < 0.3:
            data = mutate_bytes(rng, data, [b"\xff" * 8, *(v.to_bytes(8, "little") for v in HUGE_U64)], rounds=1)
        said = len(data) + rng.choice([0, 1, 4096, 1 << 20, 1 << 40])
        cut = rng.randint(0, len(data))
        return struct.pack("<QQ", said, cut) + data

    def run(self, data: bytes) -> str:
        from ropedoctor.errors import InputError
        from ropedoctor.sources.gguf_header import read_gguf, read_header

        said, cut = struct.unpack_from("<QQ", data)
        body = data[16:]
        assert self.folder is not None
        path = self.folder / "model.gguf"
        path.write_bytes(body[:cut])
        outcomes = []
        try:  # what read_gguf does after its stat, with the file shorter than the stat said
            with open(path, "rb") as handle:
                read_header(handle, str(path), file_size=said)
            outcomes.append("result")
        except InputError as error:
            outcomes.append(clean(error))
        try:
            read_gguf(path)
        except InputError as error:
            clean(error)
        return outcomes[0]


def _tiny_gguf(alignment: int, counts: tuple[int, int] | None = None, key_len: int | None = None) -> bytes:
    def string(text: str, claimed: int | None = None) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw) if claimed is None else claimed) + raw

    kv = [string("general.architecture") + struct.pack("<I", 8) + string("llama"),
          string("general.alignment") + struct.pack("<II", 4, alignment),
          string("llama.context_length", key_len) + struct.pack("<II", 4, 8192),
          string("llama.rope.freq_base") + struct.pack("<If", 6, 10000.0)]
    tensors, pairs = counts if counts is not None else (0, len(kv))
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, pairs) + b"".join(kv)


class GgufAllocTarget:
    """A header that asks for a huge allocation: read, then rewritten with a key more."""

    name = "gguf-alloc"
    suffix = ".gguf"
    seconds = 3.0
    memory_mb = 512

    def __init__(self) -> None:
        self.folder: Path | None = None

    def setup(self) -> None:
        self.folder = _scratch()

    def generate(self, rng: random.Random) -> bytes:
        alignment = rng.choice([0, 1, 3, 32, 4096, 1 << 20, 1 << 21, 1 << 24, 1 << 31, 2**32 - 1, 1 << rng.randint(0,
                                                                                                                31)])
        counts = None
        if rng.random() < 0.3:
            counts = (rng.choice([0, 1, 2**31, 2**40, 2**63]), rng.choice([4, 5, 2**32, 2**62]))
        key_len = rng.choice([None, None, None, 2**31, 2**40, 2**64 - 1, 0])
        data = _tiny_gguf(alignment, counts, key_len)
        if rng.random() < 0.3:
            data = mutate_bytes(rng, data, [v.to_bytes(8, "little") for v in HUGE_U64], rounds=1)
        return data

    def run(self, data: bytes) -> str:
        from ropedoctor.errors import InputError
        from ropedoctor.sources import gguf_header
        from ropedoctor.sources.gguf_header import read_gguf, read_header
        from ropedoctor.writers.gguf import KVChange, rewrite

        assert self.folder is not None
        path = self.folder / "model.gguf"
        out = self.folder / "out.gguf"
        path.write_bytes(data)
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
        try:
            read_header(io.BytesIO(data), "stream")
        except InputError as error:
            clean(error)
        try:
            header = read_gguf(path)
            rewrite(path, header, [KVChange("llama.rope.scaling.factor", 6, 4.0)], out)
        except InputError as error:
            return clean(error)
        except ValueError as error:  # a change the header cannot take (a key of the wrong kind): a planning bug
            raise Failure(f"rewrite refused a valid change: {error}") from None
        size = out.stat().st_size
        if size > len(data) + getattr(gguf_header, "MAX_ALIGNMENT", 1 << 20) + 4096:  # (absent before issue 15)
            raise Failure(f"a {len(data)}-byte header became a {size}-byte file")
        return "result"
