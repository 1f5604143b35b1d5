"""Issue 15, local files (breaks 2-6, 9, 10, 12-14): fix onto a FIFO, a backup through --follow-symlinks, the link
a killed rewrite leaves, owners kept by root, a GGUF that shrinks while read, escape sequences in CI output, a
newline in a `flags` error, lock-sidecar errors, absurd alignments, and a dry run that predicts the write. Each
test failed before its fix."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, as_nobody, run_cli
from gguf_files import VT, llama_kv, write_gguf
from hostile_files import aligned_gguf

DYNAMIC = FIXTURES / "gguf" / "llama-dynamic-u64.gguf"  # fix --ctx 65536: a rewrite (keys are added)
CAPPED = FIXTURES / "gguf" / "qwen2.5-7b-yarn-capped.gguf"  # fix --ctx 131072: an in-place edit


def _fix_json(*args: str, cwd: Path) -> tuple[int, dict[str, object], str]:
    result = run_cli("fix", *args, "--format", "json", cwd=cwd)
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, doc, result.stderr


# -- 2: a device or FIFO as --out -------------------------------------------------------------------------------


def test_fix_gguf_refuses_a_fifo_as_out(tmp_path: Path) -> None:
    """Before: the rewrite renamed its temp file over the FIFO (as root, `--out /dev/null` replaced /dev/null)."""
    model = tmp_path / "model.gguf"
    shutil.copy(DYNAMIC, model)
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    result = run_cli("fix", str(model), "--ctx", "65536", "--out", str(fifo), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"ropedoctor: error: {fifo}: is a named pipe (FIFO), not a regular file; fix " \
                                    "writes regular files only"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert model.read_bytes() == DYNAMIC.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf", "pipe.gguf"]


def test_fix_gguf_refuses_a_symlink_to_a_fifo_as_out(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    shutil.copy(DYNAMIC, model)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "out.gguf").symlink_to(fifo)
    result = run_cli("fix", str(model), "--ctx", "65536", "--out", str(tmp_path / "out.gguf"), "--follow-symlinks",
                     cwd=tmp_path)
    assert result.returncode == 2 and "not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# -- 3: --follow-symlinks keeps the original in the backup ------------------------------------------------------


def test_follow_symlinks_rewrite_backup_holds_the_original(tmp_path: Path) -> None:
    """Before: os.link on the symlink linked the link, so the `.bak` showed the new file."""
    real = tmp_path / "store" / "model.gguf"
    real.parent.mkdir()
    shutil.copy(DYNAMIC, real)
    link = tmp_path / "link.gguf"
    link.symlink_to(real)
    original = real.read_bytes()
    code, doc, stderr = _fix_json(str(link), "--ctx", "65536", "--follow-symlinks", cwd=tmp_path)
    assert code == 0, stderr
    assert doc["mode"] == "rewrite"
    backup = Path(str(doc["backup"]))
    assert not backup.is_symlink() and backup.read_bytes() == original
    assert real.read_bytes() != original and link.is_symlink()


# -- 4: the link a killed rewrite leaves, then an in-place fix ---------------------------------------------------


def test_in_place_fix_after_a_killed_rewrite_keeps_the_backup_distinct(tmp_path: Path) -> None:
    """A rewrite killed after its backup link and before its rename leaves `<file>.bak` as the file itself and its
    temp file. Before: the next fix, in place, wrote through both names: the "backup" held the new values."""
    model = tmp_path / "model.gguf"
    shutil.copy(CAPPED, model)
    original = model.read_bytes()
    os.link(model, tmp_path / "model.gguf.bak")
    (tmp_path / ".model.gguf.tmp-999999999").write_bytes(original[:100])
    code, doc, stderr = _fix_json(str(model), "--ctx", "131072", cwd=tmp_path)
    assert code == 0, stderr
    backup = tmp_path / "model.gguf.bak"
    assert backup.read_bytes() == original
    assert model.read_bytes() != original
    assert not os.path.samestat(os.stat(backup), os.stat(model))
    assert doc["mode"] == "rewrite" and doc["backup"] == str(backup)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf", "model.gguf.bak"]
    # and the dry run said so
    shutil.copy(CAPPED, model)
    backup.unlink()
    os.link(model, backup)
    code, dry, _ = _fix_json(str(model), "--ctx", "131072", "--dry-run", cwd=tmp_path)
    assert code == 0 and dry["mode"] == "rewrite"


# -- 5: owner and group ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="only root can make a file owned by another user to rewrite")
def test_root_rewrite_keeps_owner_and_group(tmp_path: Path) -> None:
    """Before: a root rewrite left the model owned by root (mode kept): a user's 0640 model became unreadable to
    its owner."""
    model = tmp_path / "model.gguf"
    shutil.copy(DYNAMIC, model)
    os.chown(model, 12345, 23456)
    os.chmod(model, 0o640)
    code, doc, stderr = _fix_json(str(model), "--ctx", "65536", "--no-backup", cwd=tmp_path)
    assert code == 0, stderr
    assert doc["mode"] == "rewrite"
    info = os.stat(model)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (12345, 23456, 0o640)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to drop to another user (uid 65534) for a file it cannot give away")
def test_rewrite_says_when_it_cannot_keep_the_owner() -> None:
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="ropedoctor-owner-", dir="/tmp"))  # pytest's tmp_path is root's only
    os.chmod(top, 0o755)
    folder = top / "shared"
    folder.mkdir()
    os.chmod(folder, 0o777)
    try:
        _rewrite_as_nobody(folder)
    finally:
        shutil.rmtree(top)


def _rewrite_as_nobody(folder: Path) -> None:
    model = folder / "model.gguf"
    shutil.copy(DYNAMIC, model)
    os.chmod(model, 0o666)  # owned by root, writable by all: the rename over it works, the chown cannot

    from ropedoctor.sources.gguf_header import read_gguf  # imported as root: nobody cannot read root's pyenv
    from ropedoctor.writers.gguf import KVChange, rewrite

    def rewrite_as_nobody() -> str:
        header = read_gguf(model)
        notes = rewrite(model, header, [KVChange("llama.context_length", VT.UINT32, 65536)], model)
        return json.dumps(notes)

    answer = as_nobody(rewrite_as_nobody)
    assert not answer.startswith("crash"), answer
    notes = json.loads(answer)
    assert any("now belongs to user 65534, not 0" in note for note in notes), answer
    assert os.stat(model).st_uid == 65534


# -- 6: a GGUF that shrinks while its header is read ------------------------------------------------------------

_SHRINK_CHILD = textwrap.dedent("""
    import os, sys, threading, time
    from ropedoctor.errors import InputError
    from ropedoctor.sources.gguf_header import read_gguf
    path = sys.argv[1]
    full = open(path, "rb").read()
    stop = threading.Event()
    def shrink():
        while not stop.is_set():
            with open(path, "r+b") as handle:
                handle.truncate(4096)
            time.sleep(0.001)
            with open(path, "r+b") as handle:
                handle.write(full)
            time.sleep(0.002)
    thread = threading.Thread(target=shrink, daemon=True)
    thread.start()
    outcomes = {"header": 0, "error": 0}
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        try:
            read_gguf(path)
            outcomes["header"] += 1
        except InputError as error:
            assert "\\n" not in error.line
            outcomes["error"] += 1
    stop.set()
    print(outcomes)
""")


def test_a_gguf_shrinking_while_read_is_an_error_not_sigbus(tmp_path: Path) -> None:
    """Before: the header was read through mmap; a file truncated meanwhile killed the process with SIGBUS (exit
    135, no message; a whole `scan` lost every row)."""
    model = tmp_path / "model.gguf"
    write_gguf(model, "llama", llama_kv(extra={"tokenizer.ggml.token_type": (list(range(300000)), VT.ARRAY)}))
    result = subprocess.run([sys.executable, "-c", _SHRINK_CHILD, str(model)], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, (result.returncode, result.stderr[-500:])
    assert "'error'" in result.stdout


# -- 9, 10: escape sequences in CI output and error lines --------------------------------------------------------


def test_github_format_escapes_control_characters(tmp_path: Path) -> None:
    """Before: ESC, BEL and OSC from a folder name, a key or a GGUF architecture reached the CI log raw."""
    folder = tmp_path / "m\x1b]0;pwned\x07odel"
    folder.mkdir()
    config = {"model_type": "llama\x1b[31m", "max_position_embeddings": 4096, "rope_theta": 10000.0,
              "hidden_size": 4096, "num_attention_heads": 32,
              "rope_scaling": {"rope_type": "yarn\x07", "factor": 4.0, "original_max_position_embeddings": 4096}}
    (folder / "config.json").write_text(json.dumps(config))
    result = run_cli("check", str(folder), "--format", "github", cwd=tmp_path)
    assert result.stdout.strip(), result.stderr
    for text in (result.stdout, result.stderr):
        assert not any((ord(c) < 32 and c != "\n") or 127 <= ord(c) < 160 for c in text), repr(text)
    assert all(line.startswith("::") for line in result.stdout.splitlines())


def test_flags_error_line_is_escaped(tmp_path: Path) -> None:
    """Before: `flags` printed its learned-positions error with the path raw: a newline forged `::error`."""
    folder = tmp_path / "x\n::error file=forged::pwned"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "n_positions": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12}))
    result = run_cli("flags", str(folder), "--ctx", "4096", cwd=tmp_path)
    assert result.returncode in (1, 2)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ropedoctor: error: ") and "\\n::error" in lines[0], lines
    assert not any(line.startswith("::") for line in result.stdout.splitlines() + lines)


# -- 12: the lock sidecar ----------------------------------------------------------------------------------------


def test_lock_sidecar_that_is_a_folder(tmp_path: Path) -> None:
    """Before: EISDIR from the sidecar's open ended in `internal error`."""
    model = tmp_path / "model.gguf"
    shutil.copy(DYNAMIC, model)
    (tmp_path / "model.gguf.ropedoctor.lock").mkdir()
    result = run_cli("fix", str(model), "--ctx", "65536", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"ropedoctor: error: {model}: its lock file model.gguf.ropedoctor.lock is a " \
                                    "folder; remove it"
    assert model.read_bytes() == DYNAMIC.read_bytes()


def test_a_name_with_no_room_for_the_lock_suffix(tmp_path: Path) -> None:
    """Before: a 240-byte name made the sidecar's name too long: `internal error`. Now the file itself is locked,
    and what cannot be written is one line."""
    model = tmp_path / ("m" * 235 + ".gguf")
    shutil.copy(CAPPED, model)
    result = run_cli("fix", str(model), "--ctx", "131072", "--no-backup", cwd=tmp_path)
    assert result.returncode in (0, 2), result.stderr
    assert "internal error" not in result.stderr and len(result.stderr.splitlines()) <= 1
    result = run_cli("fix", str(model), "--ctx", "65536", cwd=tmp_path)  # a rewrite: a temp name too long
    assert result.returncode in (0, 1, 2) and "internal error" not in result.stderr
    assert len(result.stderr.splitlines()) <= 1, result.stderr


def test_lock_sidecar_on_a_full_file_system(monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC (no free inodes) on the sidecar is one line, not `internal error`."""
    import errno

    from ropedoctor.errors import InputError
    from ropedoctor.writers import lock

    def no_inodes(*args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "open", no_inodes)
    with pytest.raises(InputError, match=r"cannot create its lock file x\.gguf\.ropedoctor\.lock: No space left"), \
            lock.writing(Path("/nonexistent/x.gguf")):
        pass


# -- 13: absurd alignments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("alignment", [2**31, 2**21, 3, 0])
def test_absurd_alignment_is_refused(tmp_path: Path, alignment: int) -> None:
    """Before: a 296-byte GGUF with general.alignment = 2^31 made `fix` allocate 2 GiB and write a 2 GiB file."""
    model = tmp_path / "model.gguf"
    model.write_bytes(aligned_gguf(alignment))
    result = run_cli("fix", str(model), "--ctx", "65536", cwd=tmp_path)
    assert result.returncode == 2
    assert "general.alignment is" in result.stderr and len(result.stderr.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]


def test_a_sane_alignment_still_rewrites(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(aligned_gguf(4096))
    code, _doc, stderr = _fix_json(str(model), "--ctx", "65536", "--no-backup", cwd=tmp_path)
    assert code in (0, 1), stderr
    assert model.stat().st_size < 3 * 4096


# -- 14: a dry run predicts the write ----------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "args"), [
    (DYNAMIC, ("--type", "yarn", "--factor", "4")),
    (DYNAMIC, ("--ctx", "65536")),
    (CAPPED, ("--ctx", "131072")),
    (CAPPED, ("--type", "linear", "--factor", "2")),
])
def test_dry_run_predicts_the_write(tmp_path: Path, fixture: Path, args: tuple[str, ...]) -> None:
    """Before: `fix --dry-run` on a GGUF reported RD404 and exited 1 where the write exited 0 with no finding (it
    checked the plan's spec, not the header the write gives)."""
    model = tmp_path / "model.gguf"
    shutil.copy(fixture, model)
    dry_code, dry, _ = _fix_json(str(model), *args, "--dry-run", cwd=tmp_path)
    assert model.read_bytes() == fixture.read_bytes()
    code, real, stderr = _fix_json(str(model), *args, "--no-backup", cwd=tmp_path)
    assert (dry_code, dry["findings"], dry["mode"], dry["rope"]) == (code, real["findings"], real["mode"],
                                                                     real["rope"]), stderr
