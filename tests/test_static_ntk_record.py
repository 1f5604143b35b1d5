"""`fix --type ntk` keeps a record of the trained base and length (issue 16): NTK twice does not compound, and a
later method is planned from what the model was trained with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import FIXTURES, run_entry


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "llama2"
    shutil.copytree(FIXTURES / "meta-llama-2-7b-hf", folder)
    return folder


def test_ntk_records_the_trained_base_and_length(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    code, _, err = run_entry(["fix", str(folder), "--type", "ntk", "--factor", "4", "--in-place"])
    assert code == 0, err
    config = json.loads((folder / "config.json").read_text())
    assert config["ropedoctor_static_ntk"] == {"rope_theta": 10000.0, "trained_context": 4096}
    assert config["rope_theta"] == 40889.9 and config["max_position_embeddings"] == 16384
    before = (folder / "config.json").read_bytes()
    code, out, err = run_entry(["fix", str(folder), "--type", "ntk", "--factor", "4", "--in-place"])
    assert code == 0, err
    assert (folder / "config.json").read_bytes() == before, out  # idempotent: planned from the record


def test_a_later_method_starts_from_the_record_and_drops_it(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    assert run_entry(["fix", str(folder), "--type", "ntk", "--factor", "4", "--in-place"])[0] == 0
    (folder / "config.json.bak").unlink()
    code, _, err = run_entry(["fix", str(folder), "--type", "yarn", "--ctx", "16384", "--in-place"])
    assert code == 0, err
    config = json.loads((folder / "config.json").read_text())
    assert "ropedoctor_static_ntk" not in config
    assert config["rope_theta"] == 10000.0
    assert config["rope_scaling"] == {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}
