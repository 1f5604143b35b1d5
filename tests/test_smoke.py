"""`ropedoctor smoke`, the backend-independent parts: the request and its in-memory plan, the baseline config,
the check arithmetic (buckets, Wilson intervals, passkey lengths, loss curves), sizes, and the exit-2 paths that
stop before any model loads (a missing extra is a real failed import in a child process)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ropedoctor.cli import app
from ropedoctor.errors import InputError
from ropedoctor.fix import fix_path
from ropedoctor.fix_options import FixOptions
from ropedoctor.plan import Target
from ropedoctor.smoke.checks import position_buckets, wilson_interval
from ropedoctor.smoke.checks.passkey import lengths, trials
from ropedoctor.smoke.checks.perplexity import bucket_losses, curve, perplexity_outcome
from ropedoctor.smoke.estimate import MemoryEstimate, out_of_memory, parse_size
from ropedoctor.smoke.request import SmokeRequest
from ropedoctor.smoke.run import baseline_request, build_request, parse_checks

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 300, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
    "head_dim": 16, "max_position_embeddings": 256, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
}


def _folder(tmp_path: Path, **extra: object) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**CONFIG, **extra}, indent=2))
    return folder


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_request_holds_the_config_fix_would_write(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    before = _digest(folder)
    request = build_request(str(folder), 1024, "transformers")
    assert _digest(folder) == before  # planned in memory only
    written = tmp_path / "fixed.json"
    fix_path(str(folder), FixOptions(target=Target(ctx=1024), mode="out", out=str(written)))
    assert request.config == json.loads(written.read_text())
    assert (request.after.method, request.after.factor, request.after.original_context) == ("yarn", 4.0, 256)
    assert request.before.method == "default" and request.changed and request.original == 256
    assert request.model_path == folder and any("YaRN" in reason for reason in request.reasons)


def test_type_and_factor_plan_like_fix(tmp_path: Path) -> None:
    request = build_request(str(_folder(tmp_path)), 1024, "transformers", method="linear", factor=4.0)
    assert (request.after.method, request.after.factor) == ("linear", 4.0)
    assert request.config is not None and request.config["rope_scaling"]["rope_type"] == "linear"


def test_as_is_keeps_the_file(tmp_path: Path) -> None:
    folder = _folder(tmp_path, rope_scaling={"rope_type": "linear", "factor": 2.0})
    request = build_request(str(folder / "config.json"), 1024, "transformers", as_is=True)
    assert request.after == request.before and not request.changed
    assert request.config == json.loads((folder / "config.json").read_text())


def test_baseline_is_unscaled_with_the_same_base(tmp_path: Path) -> None:
    folder = _folder(tmp_path, rope_theta=500000.0, rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                                                   "original_max_position_embeddings": 256})
    request = build_request(str(folder), 1024, "transformers")
    base = baseline_request(request)
    assert base.role == "baseline" and base.checks == ("perplexity",) and not base.baseline
    assert base.after.method == "default" and base.after.factor is None and base.after.theta == 500000.0
    assert base.config is not None and base.config.get("rope_scaling") is None
    assert base.config["rope_theta"] == 500000.0


def test_gguf_needs_the_llamacpp_backend(tmp_path: Path) -> None:
    gguf = ROOT / "fixtures" / "gguf" / "qwen2.5-7b-yarn-capped.gguf"
    with pytest.raises(InputError, match=r"--backend llama\.cpp"):
        build_request(str(gguf), 1024, "transformers")
    request = build_request(str(gguf), 131072, "llama.cpp")
    assert request.model_path == gguf and request.config is None and request.before.format == "gguf"
    with pytest.raises(InputError, match=r"needs a \.gguf"):
        build_request(str(_folder(tmp_path)), 1024, "llama.cpp")


def test_parse_checks_and_sizes() -> None:
    assert parse_checks("speed, finite") == ("finite", "speed")  # always in the documented order
    with pytest.raises(InputError, match="unknown bogus"):
        parse_checks("finite,bogus")
    assert parse_size("8GiB") == 8 << 30 and parse_size("500MB") == 500_000_000 and parse_size("1024") == 1024
    assert parse_size("1.5 mib") == 3 << 19
    with pytest.raises(InputError):
        parse_size("lots")


def test_position_buckets_are_multiples_of_the_window() -> None:
    assert position_buckets(1024, 256) == [(0, 256), (256, 512), (512, 768), (768, 1024)]
    assert position_buckets(600, 256) == [(0, 256), (256, 512), (512, 600)]
    assert position_buckets(100, 256) == [(0, 100)]


def test_wilson_interval_matches_the_reference() -> None:
    low, high = wilson_interval(8, 10)  # shared/reference/smoke_test.md 5.3: "about 0.49-0.94"
    assert (round(low, 2), round(high, 2)) == (0.49, 0.94)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_passkey_lengths_and_trials(tmp_path: Path) -> None:
    assert lengths(1024, 256) == [(256, True), (512, False), (1024, False)]  # N/4 is the control here
    assert lengths(131072, 32768) == [(32768, True), (65536, False), (131072, False)]
    assert lengths(4096, 256) == [(256, True), (1024, False), (2048, False), (4096, False)]
    request = build_request(str(_folder(tmp_path)), 4096, "transformers", trials=2)
    runs = list(trials(request))
    assert len(runs) == 2 * 4 * 5 * 2  # variants x lengths x depths x trials
    assert {depth for _, _, _, depth, _ in runs} == {0.0, 0.25, 0.5, 0.75, 1.0}


def test_bucket_losses_score_by_predicted_position() -> None:
    losses = [float(i) for i in range(7)]  # losses[i] is the loss of the token at position i + 1
    assert bucket_losses(losses, [(0, 4), (4, 8)]) == [1.0, 4.5]
    positions, means = curve(losses, points=3)
    assert positions == [2, 5, 7] and means == [1.0, 4.0, 6.0]


def test_perplexity_verdict_against_the_window(tmp_path: Path) -> None:
    request = build_request(str(_folder(tmp_path)), 1024, "transformers")
    flat = [2.0] * 1023
    blown = [2.0] * 255 + [6.0] * 768
    good = perplexity_outcome(flat, blown, request, tmp_path / "t.txt")
    assert good.passed and good.data["worst_ratio"] == 1.0 and good.data["in_window_loss"] == 2.0
    assert [row["baseline_loss"] for row in good.data["buckets"]] == [2.0, 6.0, 6.0, 6.0]
    assert good.data["curve"]["baseline"] is not None
    bad = perplexity_outcome(blown, None, request, tmp_path / "t.txt")
    assert not bad.passed and bad.data["worst_ratio"] == 3.0 and bad.data["curve"]["baseline"] is None


def test_out_of_memory_line_has_both_figures() -> None:
    estimate = MemoryEstimate(131072, "bfloat16", 16 << 30, 16 << 30, 10 << 30, 1 << 30, "safetensors headers")
    line = out_of_memory(estimate, "cuda", 80 << 30, "cuda:0 has").line
    assert line.startswith("ropedoctor: error: out of memory: the run needs about 43.0 GiB")
    assert "KV cache 16.0 GiB at 131072 tokens" in line and "cuda:0 has 80.0 GiB free" in line


def _smoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["smoke", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    cases = [
        ([str(tmp_path / "absent"), "--ctx", "1024"], "no such file or directory"),
        ([str(folder), "--ctx", "1024", "--checks", "finite,nope"], "--checks: unknown nope"),
        ([str(folder), "--ctx", "1024", "--max-memory", "much"], "--max-memory"),
        ([str(ROOT / "fixtures" / "gguf" / "qwen2.5-7b-yarn-capped.gguf"), "--ctx", "1024"], "--backend llama.cpp"),
    ]
    for args, expected in cases:
        code, out, err = _smoke(args)
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("ropedoctor: error: ") and expected in err, err


def test_missing_extra_is_one_line(tmp_path: Path) -> None:
    """torch really fails to import in the child (``sys.modules[name] = None`` makes ``import`` raise)."""
    folder = _folder(tmp_path)
    shutil.copy(ROOT / "fixtures" / "qwen2.5-7b-instruct" / "config.json", folder / "unused.json")
    (folder / "model.safetensors").write_bytes(b"")
    code = ("import sys; sys.modules['torch'] = None; sys.argv = ['ropedoctor', 'smoke', sys.argv[1], '--ctx', "
            "'1024']; from ropedoctor.entry import main; main()")
    result = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr == "ropedoctor: error: smoke needs the smoke extra: pip install 'ropedoctor[smoke]'\n"
    assert result.stdout == ""


def test_defaults_are_documented() -> None:
    from ropedoctor.smoke.request import DEFAULT_TRIALS, Thresholds

    doc = (ROOT / "docs" / "smoke.md").read_text()
    defaults = Thresholds()
    assert f"--trials {DEFAULT_TRIALS}" in doc and SmokeRequest.__dataclass_fields__["trials"].default == 5
    for option, value in (("--pass-passkey", defaults.passkey_accuracy),
                          ("--pass-passkey-digits", defaults.passkey_digits_accuracy),
                          ("--pass-loss-ratio", defaults.loss_ratio)):
        assert f"`{option} {value:g}`" in doc


def test_parameters_llamacpp_did_not_take_fail_the_run() -> None:
    from ropedoctor.smoke.run import _parameters_outcome

    taken = _parameters_outcome({"matches_flags": True, "mismatches": [], "printed": {"n_ctx": 1024}})
    refused = _parameters_outcome({"matches_flags": False, "mismatches": ["freq_scale: llama.cpp uses 1, the flags "
                                                                          "mean 0.25"]})
    assert taken.passed and not refused.passed
    assert "freq_scale" in refused.summary and refused.as_json()["mismatches"]
