"""`fix` end to end: written configs load in transformers 5 (and 4.57 for v4/both) exactly as planned."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import gguf
import pytest

from conftest import FIXTURES, ROOT, invoke, run_cli
from gguf_files import VT, llama_kv, write_gguf
from oracle_transformers import transformers_verdict
from ropedoctor import rope_math
from ropedoctor.sources.hf_config import spec_from_config
from ropedoctor.spec import RopeSpec
from test_rope_math import transformers_inv_freq

TF4_PYTHON = Path(os.environ.get("ROPEDOCTOR_TF4_PYTHON", ROOT / ".venv-tf4" / "bin" / "python"))

# (fixture, fix arguments, expected (method, factor, original, context) after the fix)
MATRIX: list[tuple[str, list[str], tuple[str, float | None, int, int]]] = [
    ("meta-llama-2-7b-hf", ["--type", "linear", "--factor", "4"], ("linear", 4.0, 4096, 4096)),
    ("meta-llama-2-7b-hf", ["--type", "dynamic", "--factor", "2"], ("dynamic", 2.0, 4096, 4096)),
    ("meta-llama-2-7b-hf", ["--ctx", "16384"], ("yarn", 4.0, 4096, 16384)),
    ("meta-llama-2-7b-hf", ["--type", "ntk", "--factor", "4"], ("default", None, 16384, 16384)),
    ("qwen2.5-7b-instruct", ["--ctx", "131072"], ("yarn", 4.0, 32768, 131072)),
    ("broken/qwen2.5-yarn-snippet", ["--ctx", "131072"], ("yarn", 4.0, 32768, 131072)),
    ("mistral-7b-v0.1", ["--type", "linear", "--factor", "2"], ("linear", 2.0, 32768, 32768)),
    ("meta-llama-3.1-8b-instruct", ["--ctx", "262144"], ("llama3", 16.0, 8192, 262144)),
    ("meta-llama-3.1-8b-instruct", ["--ctx", "100000"], ("llama3", 8.0, 8192, 131072)),
    ("phi-3.5-mini-instruct", ["--ctx", "100000"], ("longrope", 32.0, 4096, 131072)),
    ("gpt-oss-20b", ["--ctx", "262144"], ("yarn", 64.0, 4096, 262144)),
    ("deepseek-v3", ["--ctx", "163840"], ("yarn", 40.0, 4096, 163840)),
    ("gemma-3-1b-it", ["--ctx", "65536"], ("yarn", 2.0, 32768, 65536)),
    ("meta-llama-3.1-8b-instruct-tf5-converted", ["--ctx", "262144"], ("llama3", 16.0, 8192, 262144)),
]
STYLES = ["keep", "v4", "v5", "both"]


def fixed(tmp_path: Path, name: str, args: list[str], style: str = "keep") -> tuple[dict[str, Any], Path]:
    out = tmp_path / "out" / "config.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = invoke("fix", str(FIXTURES / name), *args, "--style", style, "--out", str(out), "--format", "json")
    report: dict[str, Any] = json.loads(result.stdout)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert result.exit_code == (1 if errors else 0) and report["written"] == str(out), result.output
    return report, out


@pytest.mark.parametrize(("name", "args", "expected"), MATRIX, ids=lambda v: v if isinstance(v, str) else None)
def test_fixed_config_loads_in_transformers_5_as_planned(tmp_path: Path, name: str, args: list[str],
                                                         expected: tuple[str, float | None, int, int]) -> None:
    report, out = fixed(tmp_path, name, args)
    config = json.loads(out.read_text())
    spec = spec_from_config(config, str(out))
    assert (spec.method, spec.factor, spec.original_context, spec.context) == expected
    assert report["written"] == str(out) and report["rope"]["method"] == expected[0]
    verdict = transformers_verdict(config)
    assert verdict.raised is None, verdict.raised
    pre_existing = transformers_verdict(json.loads((FIXTURES / name / "config.json").read_text())).warnings
    assert [w for w in verdict.warnings if w not in pre_existing] == []
    params = verdict.rope_parameters or {}
    params = params.get("full_attention", params)
    assert params["rope_type"] == spec.method
    assert math.isclose(params["rope_theta"], spec.theta or 0, rel_tol=1e-9)
    ours, attention = rope_math.spec_inv_freq(spec, 2 * (spec.context or 0))
    theirs, their_attention = transformers_inv_freq(config, 2 * (spec.context or 0))
    assert max(abs(a - b) / abs(b) for a, b in zip(ours, theirs, strict=True)) <= 1e-6
    assert math.isclose(attention, their_attention, rel_tol=1e-6)
    check = invoke("check", str(out), "--ctx", str(spec.served_context()), "--format", "json")
    errors = {f["code"] for f in json.loads(check.stdout)["results"][0]["findings"] if f["severity"] == "error"}
    original = invoke("check", str(FIXTURES / name), "--format", "json")
    assert errors <= {f["code"] for f in json.loads(original.stdout)["results"][0]["findings"]}, check.stdout


@pytest.mark.parametrize("style", STYLES)
def test_styles(tmp_path: Path, style: str) -> None:
    _, out = fixed(tmp_path, "qwen2.5-7b-instruct", ["--ctx", "131072"], style)
    config = json.loads(out.read_text())
    has_v4, has_v5 = config.get("rope_scaling") is not None, "rope_parameters" in config
    assert (has_v4, has_v5) == {"keep": (True, False), "v4": (True, False), "v5": (False, True),
                                "both": (True, True)}[style]
    if has_v4:
        assert "type" not in config["rope_scaling"] and config["rope_scaling"]["rope_type"] == "yarn"
    if style == "both":
        v4 = {**config["rope_scaling"], "rope_theta": config["rope_theta"]}
        assert v4 == config["rope_parameters"]
    if style == "v5":
        assert "rope_theta" not in config


def tf4_many(folders: list[Path]) -> dict[str, dict[str, Any]]:
    """What transformers 4.57 (the .venv-tf4 environment) makes of each folder, in one process."""
    assert TF4_PYTHON.exists(), f"{TF4_PYTHON} missing: `make test` creates it (transformers 4.57.6)"
    probe = subprocess.run([str(TF4_PYTHON), str(ROOT / "tests" / "tf4_probe.py"), *map(str, folders)],
                           capture_output=True, text=True, timeout=600)
    assert probe.returncode == 0, probe.stderr
    results = [json.loads(line) for line in probe.stdout.splitlines() if line.startswith("{")]
    return {r["folder"]: r for r in results}


def tf4(folder: Path) -> dict[str, Any]:
    return tf4_many([folder])[str(folder)]


@pytest.mark.parametrize("style", ["v4", "both"])
@pytest.mark.parametrize(("name", "args"), [
    ("qwen2.5-7b-instruct", ["--ctx", "131072"]), ("meta-llama-2-7b-hf", ["--type", "dynamic", "--factor", "2"]),
    ("meta-llama-2-7b-hf", ["--type", "linear", "--factor", "4"]), ("phi-3.5-mini-instruct", ["--ctx", "100000"]),
    ("meta-llama-3.1-8b-instruct-tf5-converted", ["--ctx", "262144"]),
])
def test_v4_and_both_load_in_transformers_4(tmp_path: Path, name: str, args: list[str], style: str) -> None:
    _, out = fixed(tmp_path, name, args, style)
    spec = spec_from_config(json.loads(out.read_text()), str(out))
    seen = tf4(out.parent)
    assert seen["raised"] is None and seen["warnings"] == [], seen
    assert math.isclose(seen["rope_theta"], spec.theta or 0, rel_tol=1e-9)
    scaling = seen["rope_scaling"] or {"rope_type": "default"}
    assert scaling.get("rope_type", scaling.get("type")) == spec.method
    if spec.factor is not None and "factor" in scaling:
        assert scaling["factor"] == spec.factor


def test_mission_example_in_a_model_folder(tmp_path: Path) -> None:
    folder = tmp_path / "Llama-2-7b-hf"
    shutil.copytree(FIXTURES / "meta-llama-2-7b-hf", folder)
    original = (folder / "config.json").read_bytes()
    result = run_cli("fix", "--factor", "2", "--type", "dynamic", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert (folder / "config.json.bak").read_bytes() == original
    config = json.loads((folder / "config.json").read_text())
    assert config["rope_scaling"] == {"rope_type": "dynamic", "factor": 2.0}
    # every other line of the file is untouched
    before = [line for line in original.decode().splitlines() if '"rope_scaling"' not in line]
    after = (folder / "config.json").read_text().splitlines()
    assert all(line in after for line in before if line.strip() not in ("}",))
    again = run_cli("fix", "--factor", "2", "--type", "dynamic", "--no-backup", cwd=folder)
    assert again.returncode == 0 and "no change needed" in again.stdout
    first = (folder / "config.json").read_bytes()
    run_cli("fix", "--factor", "2", "--type", "dynamic", "--no-backup", cwd=folder)
    assert (folder / "config.json").read_bytes() == first


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    shutil.copytree(FIXTURES / "qwen2.5-7b-instruct", folder)
    before = (folder / "config.json").read_bytes()
    result = invoke("fix", str(folder), "--ctx", "131072", "--dry-run")
    assert result.exit_code == 0
    assert '+  "rope_scaling": {' in result.stdout and "-  \"max_position_embeddings\": 32768," in result.stdout
    assert (folder / "config.json").read_bytes() == before and not (folder / "config.json.bak").exists()


def test_existing_backup_and_symlink_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    shutil.copytree(FIXTURES / "qwen2.5-7b-instruct", folder)
    (folder / "config.json.bak").write_text("keep me")
    before = (folder / "config.json").read_bytes()
    result = invoke("fix", str(folder), "--ctx", "131072")
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert (folder / "config.json").read_bytes() == before and (folder / "config.json.bak").read_text() == "keep me"
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "config.json").symlink_to(folder / "config.json")
    result = invoke("fix", str(linked), "--ctx", "131072", "--no-backup")
    assert result.exit_code == 2 and "symlink" in result.stderr
    assert (folder / "config.json").read_bytes() == before


def test_fix_never_writes_new_errors(tmp_path: Path) -> None:
    folder = tmp_path / "llama2"
    shutil.copytree(FIXTURES / "meta-llama-2-7b-hf", folder)
    before = (folder / "config.json").read_bytes()
    result = invoke("fix", str(folder), "--type", "linear", "--factor", "2", "--ctx", "16384", "--format", "json")
    assert result.exit_code == 1  # x2 over 4096 cannot serve 16384: RD301 on the result
    report = json.loads(result.stdout)
    assert report["written"] is None and [f["code"] for f in report["findings"]] == ["RD301"]
    assert (folder / "config.json").read_bytes() == before and not (folder / "config.json.bak").exists()


def test_phi3_takes_only_longrope(tmp_path: Path) -> None:
    result = invoke("fix", str(FIXTURES / "phi-3.5-mini-instruct"), "--type", "yarn", "--factor", "2", "--dry-run")
    assert result.exit_code == 2 and "accepts only longrope" in result.stderr


def test_impossible_plans_exit_2(tmp_path: Path) -> None:
    for name, args, message in [("bert-base-uncased", ["--ctx", "4096"], "not RoPE"),
                                ("phi-3.5-mini-instruct", ["--ctx", "262144"], "longrope"),
                                ("qwen2.5-7b-instruct", [], "nothing to plan")]:
        result = invoke("fix", str(FIXTURES / name), *args, "--dry-run")
        assert result.exit_code == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1


# --- GGUF -------------------------------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    reader = gguf.GGUFReader(str(path))
    return {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def test_gguf_in_place_fix(tmp_path: Path) -> None:
    path = shutil.copy(FIXTURES / "gguf" / "qwen2.5-7b-yarn-capped.gguf", tmp_path / "q.gguf")
    result = invoke("fix", str(path), "--ctx", "131072", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "in-place" and report["override_kv"] == ["qwen2.context_length=int:131072"]
    assert _read(Path(path))["qwen2.context_length"] == 131072
    assert Path(report["backup"]).exists()
    assert invoke("check", str(path), "--ctx", "131072").exit_code == 0


def test_gguf_rewrite_fixes_types_and_method(tmp_path: Path) -> None:
    path = shutil.copy(FIXTURES / "gguf" / "llama-dynamic-u64.gguf", tmp_path / "l.gguf")
    original = Path(path).read_bytes()
    result = invoke("fix", str(path), "--type", "yarn", "--factor", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "rewrite" and report["findings"] == []
    fields = _read(Path(path))
    assert fields["llama.rope.scaling.type"] == "yarn" and fields["llama.context_length"] == 8192
    assert gguf.GGUFReader(str(path)).fields["llama.context_length"].types == [gguf.GGUFValueType.UINT32]
    assert Path(report["backup"]).read_bytes() == original
    assert invoke("check", str(path)).exit_code == 0


def test_gguf_dynamic_is_refused(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", "llama", llama_kv(4096, extra={"{arch}.rope.freq_base": (1e4, VT.FLOAT32)}))
    result = invoke("fix", str(path), "--type", "dynamic", "--factor", "2")
    assert result.exit_code == 2 and "GGUF cannot carry dynamic" in result.stderr


def _native_rope_fixtures() -> list[str]:
    from transformers import CONFIG_MAPPING

    names = []
    for folder in sorted(FIXTURES.iterdir()):
        path = folder / "config.json"
        if not path.exists():
            continue
        config = json.loads(path.read_text())
        spec = spec_from_config(config, folder.name)
        if spec.has_rope and not spec.remote_code and config.get("model_type") in CONFIG_MAPPING and \
                transformers_verdict(config).raised is None:
            names.append(folder.name)
    return names


@pytest.mark.parametrize("method", ["linear", "dynamic", "yarn", "ntk"])
@pytest.mark.parametrize("name", _native_rope_fixtures())
def test_every_fixture_and_method(tmp_path: Path, name: str, method: str) -> None:
    """Every native fixture x every method: transformers 5 loads the result as planned, frequencies agree."""
    refused = {"phi3": "accepts only longrope", "nomic_bert": "rotary_scaling_factor"}
    model_type = json.loads((FIXTURES / name / "config.json").read_text()).get("model_type")
    if model_type in refused and method in ("linear", "yarn", "dynamic")[: 3 if model_type == "phi3" else 2]:
        result = invoke("fix", str(FIXTURES / name), "--type", method, "--factor", "2", "--dry-run")
        assert result.exit_code == 2 and refused[model_type] in result.stderr
        return
    if spec_from_config(json.loads((FIXTURES / name / "config.json").read_text()), name).method == "proportional":
        # Gemma-4: transformers validates no scaling of proportional RoPE, and any other method would replace it
        result = invoke("fix", str(FIXTURES / name), "--type", method, "--factor", "2", "--dry-run")
        assert result.exit_code == 2 and "no scaling transformers validates" in result.stderr
        return
    report, out = fixed(tmp_path, name, ["--type", method, "--factor", "2"])
    config = json.loads(out.read_text())
    spec = spec_from_config(config, str(out))
    # a static NTK base writes no block; a dual-chunk file then reads as its DCA (RD230), with plain frequencies
    assert spec.method == ("default" if method == "ntk" else method) or (method, spec.method) == ("ntk", "dual_chunk"), \
        report
    if model_type == "nomic_bert":
        return  # its remote code reads rotary_scaling_factor; transformers' native class ignores that key
    verdict = transformers_verdict(config)
    assert verdict.raised is None, verdict.raised
    before = transformers_verdict(json.loads((FIXTURES / name / "config.json").read_text())).warnings
    assert [w for w in verdict.warnings if w not in before] == []
    ours, attention = rope_math.spec_inv_freq(spec, 2 * (spec.context or 0))
    theirs, their_attention = transformers_inv_freq(config, 2 * (spec.context or 0))
    assert max(abs(a - b) / abs(b) for a, b in zip(ours, theirs, strict=True)) <= 1e-6
    assert math.isclose(attention, their_attention, rel_tol=1e-6)


def test_every_fixture_and_method_in_transformers_4(tmp_path: Path) -> None:
    """--style v4 and both: transformers 4.57 reads every fixed fixture (it ships) as planned, without warnings."""
    candidates = [name for name in _native_rope_fixtures() if not name.endswith("tf5-converted")]
    loads_in_4 = tf4_many([FIXTURES / name for name in candidates])
    planned: dict[str, RopeSpec] = {}
    for name in candidates:
        config = json.loads((FIXTURES / name / "config.json").read_text())
        if loads_in_4[str(FIXTURES / name)]["raised"] or config.get("model_type") in ("phi3", "nomic_bert"):
            continue  # classes 4.57 lacks; Phi-3 takes longrope only (tested above); NomicBert is remote code
        for method in ("linear", "dynamic", "yarn", "ntk"):
            for style in ("v4", "both"):
                folder = tmp_path / f"{name}-{method}-{style}"
                folder.mkdir()
                out = folder / "config.json"
                result = invoke("fix", str(FIXTURES / name), "--type", method, "--factor", "2", "--style", style,
                                "--out", str(out), "--format", "json")
                assert result.exit_code in (0, 1) and out.exists(), result.output
                planned[str(folder)] = spec_from_config(json.loads(out.read_text()), str(out))
    seen = tf4_many([Path(folder) for folder in planned])
    problems = []
    for where, spec in planned.items():
        got = seen[where]
        scaling = got.get("rope_scaling") or {"rope_type": "default"}
        got_method = scaling.get("rope_type", scaling.get("type"))
        meant = "default" if spec.method == "dual_chunk" else spec.method  # transformers runs DCA files as plain RoPE
        # 4.x warns about the M-RoPE keys a Qwen-Omni/VL block must carry whatever its scaling (the file as published
        # gets the same warning); any other warning is a problem
        model_keys = {"mrope_section", "mrope_interleaved", "interleaved"}
        warnings = [w for w in got["warnings"] if not (w.startswith("Unrecognized keys") and
                                                       set(re.findall(r"'(\w+)'", w.split(":", 1)[1])) <= model_keys)]
        if got["raised"] or warnings or got_method != meant or \
                not math.isclose(got.get("rope_theta") or 0, spec.theta or 0, rel_tol=1e-9) or \
                (spec.factor is not None and scaling.get("factor") != spec.factor):
            problems.append((Path(where).name, got, spec.method, spec.theta, spec.factor))
    assert problems == [], [p[0] for p in problems]
    assert len(planned) >= 100


def test_nomic_scaling_reaches_both_loaders(tmp_path: Path) -> None:
    """NomicBert: remote code reads rotary_scaling_factor, transformers 5's native class only rope_parameters."""
    from transformers import AutoConfig

    out = tmp_path / "config.json"
    result = invoke("fix", str(FIXTURES / "nomic-embed-text-v1.5"), "--ctx", "8192", "--out", str(out),
                    "--format", "json")
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["rotary_scaling_factor"] == 2.0
    assert written["rope_parameters"] == {"rope_theta": 1000.0, "rope_type": "dynamic", "factor": 2.0}
    native = AutoConfig.from_pretrained(tmp_path).rope_parameters
    assert native["rope_type"] == "dynamic" and native["factor"] == 2.0
    assert not [f for f in json.loads(result.stdout)["findings"] if f["code"] in ("RD203", "RD215")]
