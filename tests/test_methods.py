"""The one method table (ropedoctor/model/methods.py): its key sets against transformers' own validators, its
frequencies against rope_math, no crash on any method in any command, and RD301, `plan` and `fix` giving the
same answer to "which methods can this file take" on every fixture."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import transformers

from conftest import FIXTURES, run_entry, write_config
from ropedoctor import rope_math
from ropedoctor.model import methods
from ropedoctor.plan import writable_types
from ropedoctor.sources import load_file

LLAMA: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 1024, "num_attention_heads": 8, "num_key_value_heads": 8,
    "num_hidden_layers": 2, "max_position_embeddings": 4096, "rope_theta": 10000.0,
}

# A valid block of each method transformers validates, for a head of 128 (64 rotary pairs).
BLOCKS: dict[str, dict[str, Any]] = {
    "default": {"rope_type": "default"},
    "linear": {"rope_type": "linear", "factor": 2.0},
    "dynamic": {"rope_type": "dynamic", "factor": 2.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 1024,
               "low_freq_factor": 1.0, "high_freq_factor": 4.0, "rope_theta": 10000.0},
    "longrope": {"rope_type": "longrope", "short_factor": [1.0] * 64, "long_factor": [2.0] * 64,
                 "original_max_position_embeddings": 1024, "factor": 4.0},
    "proportional": {"rope_type": "proportional", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
    "axial": {"rope_type": "axial"},
}


def test_every_method_with_frequencies_has_a_formula() -> None:
    with_formula = {name for name, m in methods.METHODS.items() if m.frequencies}
    assert with_formula == set(rope_math.INV_FREQ)


def test_aliases_resolve_and_unknown_names_do_not_raise() -> None:
    assert methods.canonical("deepseek_yarn") == "yarn"
    assert methods.canonical("telechat3-yarn") == "yarn"
    assert methods.get("no-such-method") is None
    assert methods.get(None) is None and methods.get(3) is None
    assert methods.label("no-such-method") == "'no-such-method'"


@pytest.mark.parametrize("name", [m.name for m in methods.METHODS.values()
                                  if m.transformers and f"_validate_{m.name}_rope_parameters"
                                  in dir(transformers.PreTrainedConfig)])
def test_required_keys_match_transformers(name: str) -> None:
    """Every key the table calls required makes transformers raise KeyError when it is missing; with all of
    them present transformers accepts the block (its standardisation fills rope_theta and the original)."""
    method = methods.METHODS[name]
    block = BLOCKS[name]
    assert set(block) <= method.keys | {"partial_rotary_factor"}
    transformers.LlamaConfig(**LLAMA, rope_parameters=dict(block))  # accepted
    config = transformers.LlamaConfig(**LLAMA, rope_parameters=dict(block))
    validate = getattr(config, f"_validate_{name}_rope_parameters")
    for key in method.required:
        if key == "rope_type":
            continue  # the validators read rope_type before checking keys
        partial = {k: v for k, v in dict(config.rope_parameters or {}).items() if k != key}
        with pytest.raises(KeyError):
            validate(partial, ignore_keys=set())


@pytest.mark.parametrize("name", [n for n in BLOCKS if methods.METHODS[n].frequencies])
def test_frequencies_equal_transformers(name: str) -> None:
    """rope_math's frequencies for each method equal what transformers' ROPE_INIT_FUNCTIONS computes."""
    import torch
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    config = transformers.LlamaConfig(**LLAMA, rope_parameters=dict(BLOCKS[name]))
    if name == "default":
        theirs = 1.0 / (10000.0 ** (torch.arange(0, 128, 2, dtype=torch.int64).float() / 128))
        attention = 1.0
    else:
        theirs, attention = ROPE_INIT_FUNCTIONS[name](config, "cpu", seq_len=4096)
    with pytest.MonkeyPatch.context():
        spec = _spec_of({**LLAMA, "rope_parameters": BLOCKS[name]})
    ours, our_attention = rope_math.spec_inv_freq(spec, 4096)
    theirs = theirs[theirs != 0]  # proportional pads the pairs that do not rotate with zeros
    assert len(ours) == len(theirs) == (spec.rotary_dim or 0) // 2
    for a, b in zip(ours, theirs.tolist(), strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-12)
    assert our_attention == pytest.approx(attention, rel=1e-6)


def _spec_of(config: dict[str, Any]) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = write_config(Path(folder), config) / "config.json"
        return load_file(path)


# --- no crash class: every method of the table (and an unknown one) through every command ------------------
ALL_BLOCKS = {**BLOCKS, "ntk_alpha": {"rope_type": "dynamic", "alpha": 1000.0},
              "deepseek_yarn": {"rope_type": "deepseek_yarn", "factor": 4.0, "original_max_position_embeddings": 4096},
              "unknown": {"rope_type": "no-such-method", "factor": 2.0}}


@pytest.mark.parametrize("name", sorted(ALL_BLOCKS))
def test_every_method_through_every_command(name: str, tmp_path: Path) -> None:
    folder = write_config(tmp_path / name, {**LLAMA, "rope_parameters": ALL_BLOCKS[name]})
    commands = [
        ["check", str(folder), "--ctx", "65536"],
        ["flags", str(folder), "--ctx", "65536", "--runtime", "all"],
        ["flags", str(folder), "--ctx", "65536", "--runtime", "llama.cpp"],
        ["plan", str(folder), "--ctx", "65536"],
        ["plot", str(folder), "--ctx", "65536", "--format", "json", "--out", str(tmp_path / "p.png")],
        ["fix", str(folder), "--ctx", "65536", "--dry-run"],
        *[["fix", str(folder), "--ctx", "65536", "--type", t, "--dry-run"] for t in methods.FIX_TYPES],
    ]
    for argv in commands:
        code, _, err = run_entry(argv)
        assert code in (0, 1, 2), (argv, code, err)
        assert "internal error" not in err and "Traceback" not in err, (argv, err)
        if code == 2:
            assert err.startswith("ropedoctor: error:") and err.count("\n") == 1, (argv, err)


# --- RD301, plan and fix agree on every fixture ---------------------------------------------------------
def _fixtures() -> list[Path]:
    return sorted(p.parent for p in FIXTURES.glob("*/config.json") if "tiny-trained" not in str(p))


@pytest.mark.parametrize("folder", _fixtures(), ids=lambda p: p.name)
def test_rd301_plan_and_fix_agree(folder: Path) -> None:
    spec = load_file(folder / "config.json")
    if not spec.has_rope or not spec.served_context():
        return
    ctx = (spec.served_context() or 0) * 4
    writable = set(writable_types(spec))
    code, out, _ = run_entry(["check", str(folder), "--ctx", str(ctx), "--format", "json"])
    findings = [f for r in json.loads(out)["results"] for f in r["findings"]]
    messages = [f["message"] for f in findings if f["code"] == "RD301"]
    assert messages, folder
    had = {f["code"] for f in findings if f["severity"] == "error"}
    suggested = set(re.findall(r"ropedoctor fix --type (\w+)", messages[0]))
    assert suggested <= writable
    for fix_type in methods.FIX_TYPES:
        code, out, err = run_entry(["fix", str(folder), "--ctx", str(ctx), "--type", fix_type, "--dry-run",
                                    "--format", "json"])
        if fix_type in suggested:  # written, and with no error the file did not already have
            assert code in (0, 1), (fix_type, err)
            result = json.loads(out)
            assert "would have new errors" not in out, (fix_type, out)
            # RD203 (v5-only layout) is what a kept v5 layout means; fix itself accepts it (fix.py)
            assert {f["code"] for f in result["findings"] if f["severity"] == "error"} <= had | {"RD203"}, out
        elif fix_type not in writable:
            assert code == 2, (fix_type, out)
    code, out, _ = run_entry(["plan", str(folder), "--ctx", str(ctx), "--format", "json"])
    rows = {row["name"]: row["available"] for row in json.loads(out)["options"]}
    for fix_type in methods.FIX_TYPES:
        if fix_type not in writable:
            assert rows.get(fix_type) is False, (fix_type, rows)
        if fix_type in suggested:
            assert rows.get(fix_type) is True, (fix_type, rows)
    if "ropedoctor fix --ctx" in messages[0]:
        code, out, err = run_entry(["fix", str(folder), "--ctx", str(ctx), "--dry-run"])
        assert code in (0, 1) and "would have new errors" not in out, (err, out)


def test_no_model_type_branches_outside_family_records() -> None:
    """Knowledge is data: a `model_type ==` branch (or a literal tuple of types) belongs in families.py or in
    the sources/ readers that apply the records, nowhere else."""
    root = Path(__file__).resolve().parent.parent / "ropedoctor"
    pattern = re.compile(r"model_type\s*(==|!=)|model_type\s+(not\s+)?in\s*[(\[{]|model_type\.startswith")
    allowed = {root / "families.py"}
    offenders = [f"{path.relative_to(root)}:{number}: {line.strip()}"
                 for path in sorted(root.rglob("*.py")) if path not in allowed and root / "sources" not in path.parents
                 for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_methods_page_is_current() -> None:
    page = Path(__file__).resolve().parent.parent / "docs" / "methods.md"
    assert page.read_text() == methods.markdown_table(), "docs/methods.md is stale: regenerate it (see its header)"
