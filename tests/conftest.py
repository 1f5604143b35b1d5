from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ropedoctor.cli import app

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

# Text output is cut to the terminal's width (terminal.wrap; 80 columns without a terminal). The tests read whole
# lines, so they run with a wide one; tests/test_newcomer.py and tests/test_readme.py set their own widths.
os.environ["COLUMNS"] = "1000"


def invoke(*args: str) -> Any:
    """The CLI in-process through typer's runner (stdout and stderr kept apart)."""
    return CliRunner().invoke(app, list(args))


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a separate Python process."""
    return subprocess.run([sys.executable, "-m", "ropedoctor", *args], capture_output=True, text=True, timeout=60,
                          cwd=kwargs.pop("cwd", ROOT), **kwargs)


def run_entry(argv: list[str]) -> tuple[int, str, str]:
    """The console entry point in-process (its fast path included): exit code, stdout, stderr."""
    import contextlib
    import io

    from ropedoctor.entry import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["ropedoctor", *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as exit_:
                code = int(exit_.code or 0)
    finally:
        sys.argv = saved
    return code, out.getvalue(), err.getvalue()


def write_config(folder: Path, config: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


@pytest.fixture
def llama_config() -> dict[str, Any]:
    """A small Llama-architecture config in the transformers 4.x layout."""
    return {
        "model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
        "num_hidden_layers": 32, "max_position_embeddings": 4096, "rope_theta": 10000.0, "rope_scaling": None,
    }


def as_nobody(action: Callable[[], str]) -> str:
    """``action()`` in a forked child that dropped root (uid 65534), so file permissions really apply.

    Returns what ``action`` returned, or ``crash: <exception>``. Tests run as root here, and root
    reads and writes through any permission bits.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        os.close(read_end)
        try:
            os.setgid(65534)
            os.setuid(65534)
            payload = action()
        except BaseException as exc:
            payload = f"crash: {exc!r}"
        os.write(write_end, payload.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer
