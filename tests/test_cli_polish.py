"""What a user expects of the command line: --version, shell completion, an example in every
command's --help, --quiet, and no colour, boxes or progress bars where there is no terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import typer

from conftest import FIXTURES, ROOT, invoke, run_entry, write_config
from ropedoctor import __version__
from ropedoctor.cli import app

CONSOLE_SCRIPT = Path(sys.executable).parent / "ropedoctor"
BROKEN = "fixtures/broken/yarn-legacy-type-conflict"
HEALTHY = "fixtures/qwen2.5-7b-instruct"
WARNING_ONLY = "fixtures/broken/qwen2.5-yarn-snippet"
GGUF = "fixtures/gguf/qwen2.5-7b-yarn-capped.gguf"

ANSI = re.compile(r"\x1b")  # every escape sequence starts with ESC
BOX_DRAWING = re.compile(r"[\u2500-\u257f\u2580-\u259f]")  # lines, corners and block elements
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # everything but \t and \n

# One run of each command; a command added to the app without an entry here is still covered
# through its --help (see `samples`).
SAMPLES: dict[str, list[list[str]]] = {
    "check": [["check", BROKEN, HEALTHY], ["check", "fixtures/yi-1.5-34b", "--ctx", "16384"], ["check", GGUF]],
    "compare": [["compare", "fixtures/meta-llama-2-7b-hf", GGUF]],
    "scan": [["scan", "fixtures/broken"]],
    "fix": [["fix", "fixtures/meta-llama-2-7b-hf", "--ctx", "16384", "--dry-run"]],
    "flags": [["flags", "fixtures/nomic-embed-text-v1.5", "--ctx", "8192", "--runtime", "all"]],
    "rules": [["rules"]],
    "rule": [["rule", "RD207"]],
}


def command_names() -> list[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return sorted(group.commands)


def samples() -> list[list[str]]:
    runs = [["--help"]]
    for name in command_names():
        runs += [*SAMPLES.get(name, []), [name, "--help"]]
    return runs


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The console script in a subprocess: stdout and stderr are pipes, not a terminal."""
    return subprocess.run([str(CONSOLE_SCRIPT), *argv], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "COLUMNS": "100", **(env or {})})


def run_on_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """The console script with stdin, stdout and stderr on a pseudo-terminal; what it wrote there."""
    master, slave = pty.openpty()
    full_env = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "TERM")}
    process = subprocess.Popen([str(CONSOLE_SCRIPT), *argv], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                               env={**full_env, "TERM": "xterm-256color", "COLUMNS": "100", **env})
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return process.wait(timeout=120), b"".join(chunks).decode()


# --- --version and completion ------------------------------------------------------------------


def test_version_is_the_package_version() -> None:
    result = run(["--version"])
    assert (result.returncode, result.stdout, result.stderr) == (0, f"ropedoctor {__version__}\n", "")
    assert version("ropedoctor") == __version__


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_a_script(shell: str) -> None:
    result = run(["--show-completion", shell])
    assert result.returncode == 0, result.stderr
    assert "_ROPEDOCTOR_COMPLETE" in result.stdout and "ropedoctor" in result.stdout


def test_completion_completes_commands_and_choices() -> None:
    def complete(words: str, index: int) -> list[str]:
        result = run([], env={"_ROPEDOCTOR_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(index)})
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert complete("ropedoctor ch", 1) == ["check"]
    assert set(complete("ropedoctor ", 1)) >= set(SAMPLES)
    assert complete("ropedoctor check --format ", 3) == ["text", "json", "sarif", "github"]
    assert "--quiet" in complete("ropedoctor check --q", 2)


# --- --help --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", command_names())
def test_every_command_help_has_an_example(name: str) -> None:
    result = invoke(name, "--help")
    assert result.exit_code == 0
    assert re.search(rf"^\s*Example: ropedoctor {re.escape(name)}\b", result.stdout, re.MULTILINE), result.stdout


def test_root_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in command_names():
        assert re.search(rf"^\s+{re.escape(name)}\s", result.stdout, re.MULTILINE), name
    assert "--version" in result.stdout and "--show-completion" in result.stdout


# --- --quiet ----------------------------------------------------------------------------------------


def test_quiet_check_prints_only_error_findings() -> None:
    full = invoke("check", BROKEN, HEALTHY)
    quiet = invoke("check", BROKEN, HEALTHY, "--quiet")
    assert quiet.exit_code == full.exit_code == 1
    assert quiet.stdout.splitlines() == [
        f"{BROKEN}/config.json (qwen2)",
        *[line for line in full.stdout.splitlines() if line.startswith("  error ")],
    ]
    assert "RD201" in quiet.stdout and "RD207" not in quiet.stdout and "no findings" not in quiet.stdout
    for args in ([HEALTHY], [WARNING_ONLY]):
        assert (invoke("check", *args, "-q").exit_code, invoke("check", *args, "-q").stdout) == (0, "")
    strict = invoke("check", WARNING_ONLY, "-q", "--strict")
    assert strict.exit_code == 1  # under --strict the warnings decide the exit code, so quiet output shows them
    assert strict.stdout.splitlines()[0] == f"{WARNING_ONLY}/config.json (qwen2)"
    assert [line.split()[:2] for line in strict.stdout.splitlines()[1:]] == [["warning", "RD207"]]


def test_quiet_keeps_documents_and_stderr() -> None:
    for output in ("json", "sarif"):
        assert invoke("check", BROKEN, "--format", output, "-q").stdout == invoke(
            "check", BROKEN, "--format", output).stdout
    missing = invoke("check", "fixtures/nowhere", "-q")
    assert missing.exit_code == 2 and missing.stderr.startswith("ropedoctor: error: fixtures/nowhere: ")


def test_quiet_compare_scan_fix_flags(tmp_path: Path) -> None:
    compare = invoke("compare", "fixtures/meta-llama-2-7b-hf", GGUF, "-q")
    assert compare.exit_code == 1
    assert compare.stdout.splitlines()[0] == f"{GGUF} (qwen2)"
    assert all(line.startswith("  error ") for line in compare.stdout.splitlines()[1:])
    assert "comparison" not in compare.stdout
    assert invoke("compare", HEALTHY, HEALTHY, "-q").stdout == ""

    scan = invoke("scan", "fixtures/broken", "-q")
    full_scan = invoke("scan", "fixtures/broken")
    assert scan.exit_code == full_scan.exit_code == 1
    assert scan.stdout.splitlines()[0].startswith("error ") and "models," not in scan.stdout
    assert not any(line.startswith(("ok ", "warning ")) for line in scan.stdout.splitlines())
    assert set(scan.stdout.splitlines()) < set(full_scan.stdout.splitlines())

    model = write_config(tmp_path / "llama", json.loads((FIXTURES / "meta-llama-2-7b-hf" / "config.json").read_text()))
    dry = invoke("fix", str(model), "--ctx", "16384", "--dry-run", "-q")
    assert (dry.exit_code, dry.stdout) == (0, "")
    written = invoke("fix", str(model), "--ctx", "16384", "--out", str(tmp_path / "out.json"), "-q")
    assert (written.exit_code, written.stdout) == (0, "")
    assert json.loads((tmp_path / "out.json").read_text())["rope_scaling"]["rope_type"] == "yarn"

    flags = invoke("flags", "fixtures/nomic-embed-text-v1.5", "--ctx", "8192", "-q")
    assert (flags.exit_code, flags.stdout) == (0, "")
    shell = ["flags", "fixtures/nomic-embed-text-v1.5", "--ctx", "8192", "--format", "shell"]
    assert invoke(*shell, "-q").stdout == invoke(*shell).stdout != ""
    learned = invoke("flags", "fixtures/bert-base-uncased", "--ctx", "8192", "-q")
    assert learned.exit_code == 1 and learned.stdout == "" and learned.stderr.startswith("ropedoctor: error: ")


@pytest.mark.parametrize("argv", [
    ["check", BROKEN, "-q"], ["check", BROKEN, HEALTHY, "--quiet", "--format", "github"],
    ["check", "--format=sarif", BROKEN], ["check", GGUF, "--format", "github", "--strict"],
], ids=lambda argv: " ".join(argv[1:]))
def test_fast_path_agrees_with_typer_on_the_new_options(argv: list[str]) -> None:
    typer_result = invoke(*argv)
    assert run_entry(argv) == (typer_result.exit_code, typer_result.stdout, typer_result.stderr)


# --- plain output without a terminal ----------------------------------------------------------------


@pytest.mark.parametrize("argv", samples(), ids=lambda argv: " ".join(argv))
def test_plain_output_without_a_terminal(argv: list[str]) -> None:
    result = run(argv)
    assert result.returncode in (0, 1), result.stderr
    for stream in (result.stdout, result.stderr):
        assert not ANSI.search(stream) and not BOX_DRAWING.search(stream) and not CONTROL.search(stream), stream


@pytest.mark.parametrize("argv", samples(), ids=lambda argv: " ".join(argv))
def test_no_color_on_a_terminal(argv: list[str]) -> None:
    code, output = run_on_terminal(argv, {"NO_COLOR": "1"})
    assert code in (0, 1), output
    output = output.replace("\r\n", "\n")  # the terminal's own line discipline
    assert not ANSI.search(output) and not BOX_DRAWING.search(output) and not CONTROL.search(output), output


def test_a_terminal_without_no_color_gets_colour() -> None:
    """The two tests above would pass for a program that never colours; this one shows it does."""
    code, output = run_on_terminal(["check", BROKEN], {})
    assert code == 1 and "\x1b[" in output


def test_progress_only_on_a_terminal(tmp_path: Path) -> None:
    source = json.loads((FIXTURES / "qwen2.5-7b-instruct" / "config.json").read_text())
    for index in range(24):  # terminal.progress draws from 20 items on
        write_config(tmp_path / f"model-{index:02d}", source)
    piped = run(["scan", str(tmp_path)])
    assert piped.returncode == 0 and piped.stderr == ""
    assert piped.stdout.splitlines()[-1].startswith("24 models, 0 unreadable")
    code, on_terminal = run_on_terminal(["scan", str(tmp_path)], {})
    assert code == 0 and "scanning" in on_terminal and "\x1b[" in on_terminal
    code, no_color = run_on_terminal(["scan", str(tmp_path)], {"NO_COLOR": "1"})
    assert code == 0 and "scanning" not in no_color and "\x1b" not in no_color


def test_console_script_is_installed() -> None:
    assert CONSOLE_SCRIPT.exists() and shutil.which(str(CONSOLE_SCRIPT))


def test_closed_pipe_stops_quietly() -> None:
    """`ropedoctor ... | head`: no internal error and no traceback when the reader goes away."""
    process = subprocess.Popen([str(CONSOLE_SCRIPT), "check", *[BROKEN] * 10, "--format", "sarif"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(100).startswith(b"{")
    process.stdout.close()  # the SARIF log (~120 kB) outgrows a pipe's buffer: the writer meets the closed end
    assert process.wait(timeout=60) == 141
    assert process.stderr.read() == b""
