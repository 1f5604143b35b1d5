"""Hub responses under fuzzing: a raw HTTP server on 127.0.0.1 answers each request of ``RemoteFile`` (the
GGUF header reader over Range requests) from a generated plan of responses, good and bad alike.

An input is a JSON plan: the file (a small GGUF, maybe mutated), the first range, and the responses to send
to the successive requests (the last one repeats): status, headers (``{start}``, ``{end}``, ``{size}``,
``{len}``, ``{port}`` filled in from the request), the body (the range asked, the whole file, zeros), extra
bytes, a cut after some bytes, a delay, a trickle, or raw bytes instead of a response.

Besides a result or one clean line, every input must: read no more body bytes than the Range headers asked
for, never send the token to another origin, and never show the token in a message.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fuzz.engine import ROOT, Failure
from fuzz.mutate import mutate_bytes
from fuzz.targets import clean

TOKEN = "hf_FuzzSecretToken0123456789abcdef"
SOURCE = "org/name/model.gguf"
MAX_BYTES = 4 * 2**20
CLIENT_TIMEOUT = 0.25
_RANGE = re.compile(r"bytes=(\d+)-(\d+)")
_LOCATIONS = ["/org/name/resolve/main/model.gguf", "http://localhost:{port}/cdn/model", "ftp://example/x",
              "http://[::1", "http://127.0.0.1:99999/", "", "//localhost:{port}/cdn/y", "/loop", "relative/path",
              "http://127.0.0.1:{port}/org/name/resolve/main/model.gguf?x=1", "https://127.0.0.1:{port}/tls"]
_RAW = [b"", b"garbage\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n", b"HTTP/1.1 206 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
        b"HTTP/1.1 206 OK\r\n" + b"X-A: b\r\n" * 120 + b"\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nGG",
        b"HTTP/1.0 206 OK\r\nContent-Range: bytes 0-3/4\r\n\r\nGGUF", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        b"HTTP/1.1 206 OK\r\nTransfer-Encoding: chunked\r\nContent-Range: bytes 0-3/4\r\n\r\nzz\r\nGGUF\r\n0\r\n\r\n"]


class _Server:
    """Answers request k of the current input with ``plan["responses"][min(k, n - 1)]``.

    It runs in its own process (``python -m fuzz.hub_target STATE_DIR``), so that its threads and buffers do
    not count against the client's memory cap: the plan of the current input is ``STATE_DIR/plan.json`` (with
    a ``generation``), and each request is appended to ``STATE_DIR/requests-<generation>.jsonl`` before it is
    answered (so a client that got any byte of an answer finds its request there).
    """

    def __init__(self, state: Path) -> None:
        self.state = state
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self._counts: dict[int, int] = {}

    def current(self) -> tuple[int, dict[str, Any], bytes]:
        # read at every request: file times are too coarse to tell two quick inputs apart
        plan = json.loads((self.state / "plan.json").read_bytes())
        return plan["generation"], plan, base64.b64decode(plan["file"])

    def serve_forever(self) -> None:
        threading.stack_size(512 * 1024)
        while True:
            conn, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(1)
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    piece = conn.recv(4096)
                    if not piece:
                        return
                    head += piece
                generation, plan, file = self.current()
                lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                match = _RANGE.fullmatch(headers.get("range", ""))
                start, end = (int(match[1]), int(match[2])) if match else (0, len(file) - 1)
                record = {"range": headers.get("range"), "asked": end - start + 1 if match else 0,
                          "host": headers.get("host", ""), "auth": "authorization" in headers, "path": lines[0]}
                with self.lock:
                    index = self._counts.get(generation, 0)
                    self._counts = {generation: index + 1}
                    with open(self.state / f"requests-{generation}.jsonl", "a") as log:
                        log.write(json.dumps(record) + "\n")
                responses = plan["responses"]
                self._respond(conn, responses[min(index, len(responses) - 1)], file, start, end)
            except (OSError, ValueError):
                pass

    def _respond(self, conn: socket.socket, spec: dict[str, Any], file: bytes, start: int, end: int) -> None:
        if spec.get("delay"):
            time.sleep(spec["delay"])
        if "raw" in spec:
            conn.sendall(base64.b64decode(spec["raw"]))
            return
        size = len(file)
        last = min(end, size - 1)
        body_kind = spec.get("body", "range")
        body = {"range": file[start:last + 1], "whole": file, "empty": b"",
                "zeros": bytes(max(0, last - start + 1))}[body_kind]
        body += bytes(spec.get("extra", 0))
        values = {"start": start, "end": last, "size": size, "len": len(body) - spec.get("extra", 0),
                  "port": self.port}
        head = f"HTTP/1.1 {spec.get('status', 206)} {spec.get('reason', 'X')}\r\n"
        for name, value in spec.get("headers", []):
            head += f"{name}: {value.format(**values)}\r\n"
        head += "Connection: close\r\n\r\n"
        conn.sendall(head.encode("latin-1", "replace"))
        if spec.get("cut") is not None:
            body = body[:spec["cut"]]
        if spec.get("trickle"):
            for at in range(0, len(body), 1024):
                conn.sendall(body[at:at + 1024])
                time.sleep(spec["trickle"])
        else:
            conn.sendall(body)


def _good(status: int = 206) -> dict[str, Any]:
    return {"status": status, "headers": [["Content-Range", "bytes {start}-{end}/{size}"], ["Content-Length", "{len}"]],
            "body": "range"}


class HubTarget:
    name = "hub"
    suffix = ".json"
    seconds = 10.0
    memory_mb = 768

    def __init__(self) -> None:
        self.seeds: list[bytes] = []
        self.server: subprocess.Popen[str] | None = None
        self.state = Path()
        self.generation = 0
        self.port = 0

    def setup(self) -> None:
        files = sorted((ROOT / "tests" / "gguf_corpus").glob("valid-*.gguf")) + sorted(
            (ROOT / "fixtures" / "gguf").glob("*.gguf"))
        self.seeds = [p.read_bytes() for p in files]
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.state = Path(tempfile.mkdtemp(prefix="ropedoctor-fuzz-hub-", dir=shm))
        atexit.register(shutil.rmtree, self.state, True)
        self.generation = 0
        self._write_plan({"responses": [_good()], "file": "", "first_range": 1})
        self.server = subprocess.Popen([sys.executable, "-m", "fuzz.hub_target", str(self.state)], cwd=ROOT,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.server.stdout is not None
        self.port = int(self.server.stdout.readline())

    def _write_plan(self, plan: dict[str, Any]) -> None:
        self.generation += 1
        temp = self.state / "plan.tmp"
        temp.write_text(json.dumps({**plan, "generation": self.generation}))
        os.replace(temp, self.state / "plan.json")
        for old in self.state.glob("requests-*.jsonl"):
            old.unlink()

    def close(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait()
            self.server = None

    # -- inputs ------------------------------------------------------------------------------------

    def _response(self, rng: random.Random) -> dict[str, Any]:
        if rng.random() < 0.05:
            return {"raw": base64.b64encode(rng.choice(_RAW)).decode()}
        spec = _good()
        for _ in range(rng.randint(0, 3)):
            kind = rng.randrange(11)
            headers: list[list[str]] = spec["headers"]
            if kind == 0:
                spec["status"] = rng.choice([200, 206, 301, 302, 307, 308, 404, 401, 403, 416, 500, 503, 204, 999])
            elif kind == 1:
                spec["status"] = rng.choice([301, 302, 307])
                headers.append(["Location", rng.choice(_LOCATIONS)])
            elif kind == 2:
                headers[:] = [h for h in headers if h[0] != "Content-Range"]
                if rng.random() < 0.8:
                    headers.append(["Content-Range", rng.choice([
                        "bytes {start}-{end}/10737418240", "bytes {start}-{end}/*", "bytes 0-{end}/{size}",
                        "bytes {end}-{start}/{size}", "bytes 1-{end}/{size}", "garbage", "bytes */{size}",
                        "bytes {start}-99999999999/{size}", "bytes {start}-{end}/0"])])
            elif kind == 3:
                headers[:] = [h for h in headers if h[0] != "Content-Length"]
                if rng.random() < 0.8:
                    headers.append(["Content-Length", rng.choice(
                        ["0", "1", "10737418240", "-1", "abc", "{end}", "{size}", " 5 ", "{len}, {len}"])])
            elif kind == 4:
                headers.append(["Content-Encoding", rng.choice(["gzip", "br", "identity", ""])])
            elif kind == 5:
                spec["extra"] = rng.choice([1, 100, 65536, 262144])
            elif kind == 6:
                spec["cut"] = rng.choice([0, 1, 7, 100, 5000])
            elif kind == 7:
                spec["body"] = rng.choice(["whole", "empty", "zeros"])
            elif kind == 8:
                headers.append(["X-Linked-Size", rng.choice(["{size}", "10737418240", "0", "x"])])
            elif kind == 9 and rng.random() < 0.1:
                if rng.random() < 0.5:
                    spec["delay"] = rng.choice([0.05, 0.4])
                else:
                    spec["trickle"] = rng.choice([0.01, 0.2])
            elif kind == 10:
                spec["status"] = 200
                headers[:] = [["Content-Length", rng.choice(["{size}", "10737418240"])]]
                spec["body"] = "whole"
        return spec

    def generate(self, rng: random.Random) -> bytes:
        if not self.seeds:
            self.setup()
        file = rng.choice(self.seeds)
        if rng.random() < 0.3:
            file = mutate_bytes(rng, file, [b"GGUF"], rounds=2)
        responses = [self._response(rng) if rng.random() < 0.6 else _good() for _ in range(rng.randint(1, 4))]
        plan = {"file": base64.b64encode(file).decode(), "first_range": rng.choice([1, 16, 64, 256, 4096, 2**20]),
                "responses": responses}
        return json.dumps(plan, indent=1).encode()

    # -- running -----------------------------------------------------------------------------------

    def run(self, data: bytes) -> str:
        from ropedoctor.errors import InputError
        from ropedoctor.rules import Target, run_rules
        from ropedoctor.sources.gguf_header import read_header
        from ropedoctor.sources.gguf_source import spec_from_header
        from ropedoctor.sources.hub import RemoteFile

        assert self.server is not None
        plan = json.loads(data)
        self._write_plan(plan)
        generation = self.generation
        url = f"http://127.0.0.1:{self.port}/org/name/resolve/main/model.gguf"
        remote = RemoteFile(url, source=SOURCE, token=TOKEN, timeout=CLIENT_TIMEOUT, max_bytes=MAX_BYTES,
                            first_range=plan["first_range"])
        outcome = "result"
        try:
            remote.peek(1)
            header = read_header(remote, SOURCE, file_size=remote.size)
            run_rules(spec_from_header(header), Target())
        except InputError as error:
            if TOKEN in error.line:
                raise Failure("the token is in the error message") from None
            outcome = clean(error)
        finally:
            remote.close()
        log = self.state / f"requests-{generation}.jsonl"
        requests = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        asked = sum(r["asked"] for r in requests)
        if remote.bytes_fetched > asked or remote.bytes_fetched > MAX_BYTES:
            raise Failure(f"read {remote.bytes_fetched} body bytes; the requests asked for {asked}")
        if any(r["auth"] and not r["host"].startswith("127.0.0.1:") for r in requests):
            raise Failure("the token was sent to another origin")
        return outcome


def serve(state: Path) -> None:
    server = _Server(state)
    print(server.port, flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # the client's end of the pipe closes when it exits, however it exits: so do we


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
