"""Files from strangers: symlinks, named pipes, folders with thousands of files, odd names, and GGUF headers
that claim absurd sizes. Each is run through the real CLI in a subprocess; time and peak memory are measured
from the outside (``os.wait4``: the child's own CPU time and maximum resident set)."""

from __future__ import annotations

import json
import os
import selectors
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import FIXTURES, ROOT
from gguf_files import llama_kv, write_gguf

HEALTHY = FIXTURES / "qwen2.5-7b-instruct" / "config.json"
MAX_RSS_MB = 200
MAX_CPU_S = 1.0


# The CLI's own peak RSS: VmHWM of its address space, written when it exits. (ru_maxrss of a child counts the
# forked copy of the parent it was exec'd from: a pytest process of several hundred MB.)
_PEAK_RSS_WRAPPER = """
import atexit, re, runpy, sys
out = sys.argv.pop(1)
def peak():
    status = open("/proc/self/status").read()
    open(out, "w").write(re.search(r"VmHWM:\\s+(\\d+)", status)[1])
atexit.register(peak)
sys.argv[0] = "ropedoctor"
runpy.run_module("ropedoctor", run_name="__main__")
"""


class Run(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    cpu_s: float  # user + system time of the child
    rss_mb: float  # its peak resident set
    wall_s: float


def measured(*args: str | bytes, cwd: Path = ROOT, timeout: float = 60) -> Run:
    """The CLI as a user runs it (a child process), with its CPU time (``os.wait4``) and peak RSS (VmHWM)."""
    started = time.monotonic()
    peak_file = Path(tempfile.mkdtemp()) / "peak"
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child becomes the CLI
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.chdir(cwd)
        os.environ["PYTHONPATH"] = str(ROOT)
        try:
            os.execv(sys.executable, [sys.executable, "-c", _PEAK_RSS_WRAPPER, str(peak_file), *map(os.fsdecode, args)])
        finally:
            os._exit(127)
    os.close(out_w)
    os.close(err_w)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    selector = selectors.DefaultSelector()
    for fd in chunks:
        selector.register(fd, selectors.EVENT_READ)
    deadline = started + timeout
    while selector.get_map():
        for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
            data = os.read(key.fd, 65536)
            if data:
                chunks[key.fd].append(data)
            else:
                selector.unregister(key.fd)
                os.close(key.fd)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            break
    _, status, usage = os.wait4(pid, 0)
    peak_kb = int(peak_file.read_text()) if peak_file.exists() else 0
    return Run(os.waitstatus_to_exitcode(status), b"".join(chunks[out_r]).decode("utf-8", "surrogateescape"),
               b"".join(chunks[err_r]).decode("utf-8", "surrogateescape"), usage.ru_utime + usage.ru_stime,
               peak_kb / 1024, time.monotonic() - started)


def one_error_line(run: Run) -> None:
    assert run.returncode == 2, run
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("ropedoctor: error: "), run.stderr
    assert "Traceback" not in run.stderr


# -- GGUF headers that claim the impossible --------------------------------------------------------------------

def _head(n_tensors: int, n_kv: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv)


def _kv_string(key: bytes, value: bytes, claimed: int | None = None) -> bytes:
    length = len(value) if claimed is None else claimed
    return struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) + struct.pack("<Q", length) + value


ARCH = _kv_string(b"general.architecture", b"llama")
CLAIMS = {
    "tensors-10e12.gguf": (_head(10**12, 1) + ARCH + bytes(64), "header claims 1000000000000 tensors"),
    "kv-2e40.gguf": (_head(0, 2**40) + ARCH + bytes(64), "header claims 1099511627776 key-value pairs"),
    "string-2e40.gguf": (_head(0, 1) + _kv_string(b"general.architecture", b"llama", 2**40),
                         "claims 1099511627776 bytes"),
    "key-2e40.gguf": (_head(0, 1) + struct.pack("<Q", 2**40) + b"general.architecture", "claims 1099511627776 bytes"),
    "array-2e40.gguf": (_head(0, 1) + struct.pack("<Q", 21) + b"tokenizer.ggml.tokens" + struct.pack("<IIQ", 9, 8, 2**40)
                        + bytes(64), "an array of 1099511627776 STRING"),
}


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_gguf_claims_cost_no_time_or_memory(tmp_path: Path, name: str) -> None:
    data, reason = CLAIMS[name]
    path = tmp_path / name
    path.write_bytes(data)
    run = measured("check", str(path))
    one_error_line(run)
    assert reason in run.stderr
    assert run.rss_mb < MAX_RSS_MB and run.cpu_s < MAX_CPU_S, run
    # the same through fix: refused before anything is planned or written
    fixed = measured("fix", str(path), "--ctx", "65536")
    one_error_line(fixed)
    assert fixed.rss_mb < MAX_RSS_MB and fixed.cpu_s < MAX_CPU_S, fixed
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


# -- named pipes and devices: refused at once, never waited on -------------------------------------------------

def test_named_pipes_are_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.json")
    os.mkfifo(tmp_path / "pipe.gguf")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").symlink_to(tmp_path / "pipe.json")
    for target, path in [("check", tmp_path / "pipe.json"), ("check", tmp_path / "pipe.gguf"),
                         ("check", folder / "config.json"), ("fix", folder / "config.json")]:
        run = measured(target, str(path), timeout=20)
        one_error_line(run)
        assert "is a named pipe (FIFO), not a regular file" in run.stderr, run.stderr
        assert run.wall_s < 10
    device = tmp_path / "dev"
    device.mkdir()
    (device / "config.json").symlink_to("/dev/zero")
    run = measured("check", str(device / "config.json"))
    one_error_line(run)
    assert "is a device, not a regular file" in run.stderr and run.rss_mb < MAX_RSS_MB


# -- symlinks ----------------------------------------------------------------------------------------------------

def test_symlinked_config_is_read_but_not_written_through(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere" / "config.json"
    real.parent.mkdir()
    original = HEALTHY.read_bytes()
    real.write_bytes(original)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").symlink_to(real)
    checked = measured("check", str(model), "--ctx", "131072", "--format", "json")
    assert checked.returncode == 1 and json.loads(checked.stdout)["results"][0]["rope"]["method"] == "default"
    refused = measured("fix", str(model), "--ctx", "131072")
    one_error_line(refused)
    assert f"is a symlink to {real}; pass --follow-symlinks" in refused.stderr
    assert real.read_bytes() == original and (model / "config.json").is_symlink()
    assert sorted(p.name for p in model.iterdir()) == ["config.json"]
    followed = measured("fix", str(model), "--ctx", "131072", "--follow-symlinks")
    assert followed.returncode == 0, followed.stderr
    assert (model / "config.json").is_symlink() and json.loads(real.read_text())["rope_scaling"]["factor"] == 4.0


def test_symlinked_gguf_is_not_written_through(tmp_path: Path) -> None:
    real = write_gguf(tmp_path / "real.gguf", "llama", llama_kv(4096))
    before = real.read_bytes()
    link = tmp_path / "link.gguf"
    link.symlink_to(real)
    refused = measured("fix", str(link), "--ctx", "16384")
    one_error_line(refused)
    assert "is a symlink" in refused.stderr and real.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.gguf", "real.gguf"]


def test_scan_does_not_follow_symlinked_folders(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "a").mkdir(parents=True)
    (root / "a" / "config.json").write_bytes(HEALTHY.read_bytes())
    (root / "a" / "loop").symlink_to(root)  # a cycle: followed, it would never end
    (root / "outside").symlink_to(tmp_path)
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    run = measured("scan", str(root), "--format", "json", timeout=30)
    assert run.returncode == 0, run.stderr
    assert [row["source"] for row in json.loads(run.stdout)["models"]] == [str(root / "a" / "config.json")]


# -- many files, odd names -----------------------------------------------------------------------------------------

def test_a_folder_with_thousands_of_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_bytes(HEALTHY.read_bytes())
    for i in range(3000):
        (model / f"shard-{i:05d}.safetensors").write_bytes(b"")
    for i in range(200):  # later shards of a split GGUF are not read on their own
        (model / f"m-{i + 2:05d}-of-00201.gguf").write_bytes(b"junk")
    run = measured("check", str(model), "--format", "json")
    assert run.returncode == 0, run.stderr
    assert len(json.loads(run.stdout)["results"]) == 1
    assert run.rss_mb < MAX_RSS_MB and run.cpu_s < MAX_CPU_S, run
    scanned = measured("scan", str(tmp_path), "--format", "json")
    assert scanned.returncode == 0 and scanned.rss_mb < MAX_RSS_MB and scanned.cpu_s < MAX_CPU_S, scanned


ODD_NAMES = ["new\nline", "tab\there", "ünïcödé-模型", "-starts-with-dash", "spaces in name", "quote'\"name",
             "esc\x1b[31mape", "percent%2e%2e", "emoji-🦙"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_folder_names(tmp_path: Path, name: str) -> None:
    model = tmp_path / name
    model.mkdir()
    (model / "config.json").write_bytes(HEALTHY.read_bytes())
    arg = f"./{name}"
    run = measured("check", arg, "--format", "json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["results"][0]["source"] == f"{name}/config.json"
    (model / "config.json").write_text("{")
    broken = measured("check", arg, cwd=tmp_path)
    one_error_line(broken)
    assert "\x1b" not in broken.stderr
    (model / "config.json").write_bytes(HEALTHY.read_bytes())
    for text_run in (measured("check", arg, cwd=tmp_path), measured("scan", ".", cwd=tmp_path)):
        # one model, a name line, a rope line, a verdict (check) or one row and the summary (scan): never a name
        # broken over two lines or an escape sequence reaching the terminal
        assert text_run.returncode == 0 and "\x1b" not in text_run.stdout and "\t" not in text_run.stdout
        assert len(text_run.stdout.splitlines()) in (2, 4), text_run.stdout
    fixed = measured("fix", arg, "--ctx", "65536", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "config.json.bak"]


def test_names_that_are_not_utf8(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/bad\xff\xfename"
    os.mkdir(raw)
    with open(raw + b"/config.json", "wb") as handle:
        handle.write(HEALTHY.read_bytes())
    run = measured("check", raw, "--format", "json")
    assert run.returncode == 0, run.stderr
    json.loads(run.stdout)
    text = measured("check", raw)
    assert text.returncode == 0 and "no findings" in text.stdout, text.stderr
    with open(raw + b"/config.json", "wb") as handle:
        handle.write(b"[1]")
    broken = measured("check", raw)
    one_error_line(broken)
    scanned = measured("scan", os.fsencode(tmp_path), "--format", "json")
    assert scanned.returncode == 1 and json.loads(scanned.stdout)["summary"]["unreadable"] == 1
    fixed = measured("fix", raw, "--ctx", "65536")
    one_error_line(fixed)
