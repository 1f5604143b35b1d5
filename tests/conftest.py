from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ropedoctor.cli import app

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def invoke(*args: str) -> Any:
    """The CLI in-process through typer's runner (stdout and stderr kept apart)."""
    return CliRunner().invoke(app, list(args))


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a separate Python process."""
    return subprocess.run([sys.executable, "-m", "ropedoctor", *args], capture_output=True, text=True, timeout=60,
                          cwd=kwargs.pop("cwd", ROOT), **kwargs)


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
