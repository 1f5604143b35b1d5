"""fix killed at any moment: the destination is the old file or the complete new one, never a mix; backups
stay intact; the next run recovers (no stale temp file, backup or lock stops it). Two runs at once: one waits
or fails in one line (the lock), the file is never corrupted.

Kill points: a forked child runs ``fix_path`` with every file system call that changes something
(``os.open`` with O_CREAT, ``write``, ``fsync``, ``replace``, ``link``, ``unlink``, ``fchmod``,
``copy_file_range`` and ``write`` on unbuffered files) counted, and SIGKILLs itself before call k; the test
sweeps k over every call of a complete run (a kill lands between system calls: SIGKILL cannot split a small
``write()`` to a regular file). ``ROPEDOCTOR_FULL_SWEEP=1`` (``make fuzz``) sweeps every point of the
GGUF rewrite too; the suite takes a spread sample of them. A last test kills the real CLI from outside while
it rewrites a 64 MiB GGUF.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, run_cli
from gguf_files import VT, llama_kv, write_gguf
from ropedoctor.fix import fix_path
from ropedoctor.fix_options import FixOptions
from ropedoctor.plan import Target
from ropedoctor.sources.gguf_header import read_gguf
from ropedoctor.writers.gguf import undo_in_place
from ropedoctor.writers.lock import LOCK_SUFFIX

FULL_SWEEP = os.environ.get("ROPEDOCTOR_FULL_SWEEP") == "1"
_PATCHED_OS = ("write", "pwrite", "fsync", "replace", "rename", "link", "unlink", "fchmod", "chmod", "ftruncate",
               "copy_file_range")


def _count_and_kill(kill_at: int | None, on_call: Callable[[int], None] | None = None) -> list[int]:
    """Patch the calls that change files (in this process only: a forked child) to count them and, at call
    ``kill_at``, SIGKILL the process before the call is made."""
    calls = [0]

    def tick() -> None:
        calls[0] += 1
        if on_call is not None:
            on_call(calls[0])
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            tick()
            return function(*args, **kwargs)
        return counted

    for name in _PATCHED_OS:
        if hasattr(os, name):
            setattr(os, name, wrap(getattr(os, name)))
    real_open = os.open

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            tick()
        return real_open(path, flags, *args, **kwargs)

    os.open = os_open

    class CountedFileIO(io.FileIO):
        def write(self, data: Any) -> int:
            tick()
            return super().write(data)

    real_builtin_open = builtins.open

    def counted_open(file: Any, mode: str = "r", buffering: int = -1, *args: Any, **kwargs: Any) -> Any:
        if buffering == 0 and "b" in mode and not args and set(kwargs) <= {"closefd"}:
            return CountedFileIO(file, mode.replace("b", ""), **kwargs)
        return real_builtin_open(file, mode, buffering, *args, **kwargs)

    builtins.open = counted_open
    return calls


def _run_forked(path: Path, options: FixOptions, kill_at: int | None) -> tuple[int, int]:
    """fix_path in a forked child killed before call ``kill_at``: (wait status, calls made) (calls only when the
    child lived)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        code = 0
        try:
            calls = _count_and_kill(kill_at)
            fix_path(str(path), options)
            os.write(write_end, str(calls[0]).encode())
        except BaseException:
            code = 3
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        made = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    return status, int(made or 0)


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def _sweep_points(total: int, sample: int | None) -> list[int]:
    if sample is None or total <= sample:
        return list(range(1, total + 1))
    step = (total - 1) / (sample - 1)
    return sorted({1 + round(i * step) for i in range(sample)})


# -- config.json ---------------------------------------------------------------------------------------------


def _config_case(tmp_path: Path) -> tuple[Path, bytes, FixOptions]:
    folder = tmp_path / "model"
    folder.mkdir()
    original = (FIXTURES / "qwen2.5-7b-instruct" / "config.json").read_bytes()
    (folder / "config.json").write_bytes(original)
    return folder, original, FixOptions(target=Target(ctx=131072), style="both")


def test_config_rewrite_killed_at_every_call(tmp_path: Path) -> None:
    folder, original, options = _config_case(tmp_path)
    config, backup = folder / "config.json", folder / "config.json.bak"
    status, total = _run_forked(folder, options, None)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and total >= 6
    new = config.read_bytes()
    assert new != original and backup.read_bytes() == original
    for kill_at in range(1, total + 1):
        config.write_bytes(original)
        backup.unlink()
        status, _ = _run_forked(folder, options, kill_at)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, kill_at
        assert config.read_bytes() in (original, new), f"a mix after a kill before call {kill_at}"
        killed_new = config.read_bytes() == new
        if backup.exists():
            assert backup.read_bytes() == original, kill_at
        # the next run finishes the job: no leftover (temp file, backup, lock) stands in its way
        outcome = fix_path(str(folder), options)
        assert config.read_bytes() == new, kill_at
        assert backup.read_bytes() == original
        assert outcome.report["backup"] == (None if killed_new else str(backup)), kill_at
        assert _leftovers(folder, {"config.json", "config.json.bak"}) == [], kill_at


# -- GGUF: in place and rewrite -------------------------------------------------------------------------------


def _gguf(path: Path, extra: dict[str, Any], tensor_elements: int = 4096) -> Path:
    return write_gguf(path, "llama", llama_kv(4096, 32, 4096, extra=extra), {"token_embd.weight": tensor_elements})


IN_PLACE_KEYS = {"{arch}.rope.scaling.type": ("linear", VT.STRING), "{arch}.rope.scaling.factor": (2.0, VT.FLOAT32),
                 "{arch}.rope.scaling.original_context_length": (4096, VT.UINT32)}


@pytest.mark.parametrize(("mode", "extra"), [("rewrite", {}), ("in-place", IN_PLACE_KEYS)])
def test_gguf_fix_killed_at_many_calls(tmp_path: Path, mode: str, extra: dict[str, Any]) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    model = _gguf(folder / "model.gguf", extra)
    original = model.read_bytes()
    options = FixOptions(target=Target(ctx=16384, method="linear"))
    status, total = _run_forked(model, options, None)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    new = model.read_bytes()
    assert new != original
    backup = folder / ("model.gguf.bak" if mode == "rewrite" else "model.gguf.ropedoctor-header.json")
    assert backup.exists()
    names = {"model.gguf", backup.name}

    def reset() -> None:
        for leftover in folder.iterdir():
            leftover.unlink()
        model.write_bytes(original)

    for kill_at in _sweep_points(total, None if FULL_SWEEP or mode == "in-place" else 12):
        reset()
        status, _ = _run_forked(model, options, kill_at)
        assert os.WIFSIGNALED(status), kill_at
        now = model.read_bytes()
        assert now in (original, new), f"{mode}: a mix after a kill before call {kill_at} of {total}"
        if mode == "rewrite" and backup.exists():
            assert backup.read_bytes() == original
        if mode == "in-place" and backup.exists() and now == new:  # the saved header bytes still undo the edit
            side = tmp_path / "side"
            side.mkdir(exist_ok=True)
            (side / "model.gguf").write_bytes(now)
            (side / backup.name).write_bytes(backup.read_bytes())
            undo_in_place(side / "model.gguf", side / backup.name)
            assert (side / "model.gguf").read_bytes() == original
        fix_path(str(model), options)  # the next run completes the job, whatever the dead run left
        assert model.read_bytes() == new, kill_at
        assert _leftovers(folder, names) == [], kill_at


# -- a kill from outside, during a long rewrite ----------------------------------------------------------------


def test_cli_killed_from_outside_during_a_64_mib_rewrite(tmp_path: Path) -> None:
    model = _gguf(tmp_path / "big.gguf", {}, tensor_elements=16 * 2**20)  # 64 MiB of tensor data
    original_head = model.read_bytes()[:4096]
    size = model.stat().st_size
    command = [sys.executable, "-m", "ropedoctor", "fix", str(model), "--ctx", "16384", "--type", "linear",
               "--no-backup"]
    for delay in (0.0, 0.05, 0.15, 0.3):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not any(p.name.startswith(".big.gguf.tmp-") for p in tmp_path.iterdir()):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        head = model.read_bytes()[:4096]
        header = read_gguf(model)
        if head == original_head:
            assert model.stat().st_size == size
        else:
            assert header.get("llama.rope.scaling.factor") == 4.0  # complete new file
            return
    result = run_cli(*command[3:])
    assert result.returncode == 0, result.stderr
    assert read_gguf(model).get("llama.rope.scaling.factor") == 4.0
    assert [p.name for p in tmp_path.iterdir()] == ["big.gguf"]


# -- two runs at once -------------------------------------------------------------------------------------------


def _hold_lock_in_child(folder: Path, options: FixOptions, hold: float) -> tuple[int, Path]:
    """A forked fix that pauses ``hold`` seconds at its second file call (holding the lock); returns (pid, flag file
    that appears once it is paused)."""
    flag = folder.parent / "paused"
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            def pause(call: int) -> None:
                if call == 2:  # call 1 creates the lock file; by call 2 the lock is held
                    flag.write_text("x")
                    time.sleep(hold)
            _count_and_kill(None, pause)
            fix_path(str(folder), options)
        except BaseException:
            code = 3
        os._exit(code)
    deadline = time.monotonic() + 20
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return pid, flag


def test_a_second_fix_waits_or_fails_cleanly(tmp_path: Path) -> None:
    folder, original, options = _config_case(tmp_path)
    pid, _ = _hold_lock_in_child(folder, options, hold=3.0)
    assert (folder / ("config.json" + LOCK_SUFFIX)).exists()
    started = time.monotonic()
    refused = run_cli("fix", str(folder), "--ctx", "65536", env={**os.environ, "ROPEDOCTOR_LOCK_TIMEOUT": "0.3"})
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr == (f"ropedoctor: error: {folder / 'config.json'}: another ropedoctor fix is writing this "
                              f"file (its lock config.json{LOCK_SUFFIX} is held); try again when it is done\n")
    assert time.monotonic() - started < 3.0
    waited = run_cli("fix", str(folder), "--ctx", "131072", "--style", "both", "--format", "json",
                     env={**os.environ, "ROPEDOCTOR_LOCK_TIMEOUT": "30"})
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["changes"] == []  # it ran after the first one, on its result
    assert (folder / "config.json.bak").read_bytes() == original
    json.loads((folder / "config.json").read_text())
    assert _leftovers(folder, {"config.json", "config.json.bak"}) == []


def test_many_concurrent_fixes_never_corrupt(tmp_path: Path) -> None:
    folder, _original, _options = _config_case(tmp_path)
    targets = [32768, 65536, 131072, 262144]
    env = {**os.environ, "ROPEDOCTOR_LOCK_TIMEOUT": "60"}
    procs = [subprocess.Popen([sys.executable, "-m", "ropedoctor", "fix", str(folder), "--ctx", str(ctx),
                               "--no-backup", "--style", "both"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for ctx in targets]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(targets), errors
    final = json.loads((folder / "config.json").read_text())
    assert final["rope_scaling"]["rope_type"] == "yarn"
    assert _leftovers(folder, {"config.json"}) == []
