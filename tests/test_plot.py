"""`ropedoctor plot`: a valid PNG, and per-dimension scales equal to transformers' inv_freq ratios
(transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS is the oracle)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import CONFIG_MAPPING
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from conftest import FIXTURES, invoke
from ropedoctor import rope_math
from ropedoctor.plot import plot_data
from ropedoctor.sources.hf_config import spec_from_config

LLAMA = {"model_type": "llama", "hidden_size": 512, "num_attention_heads": 8, "max_position_embeddings": 4096,
         "rope_theta": 10000.0}


def transformers_scales(config: dict[str, Any], seq_len: int | None) -> list[float]:
    """unscaled inv_freq / the method's inv_freq, both computed by transformers."""
    cfg = CONFIG_MAPPING[config["model_type"]].from_dict(json.loads(json.dumps(config))).get_text_config()
    params = cfg.rope_parameters
    inv, _ = ROPE_INIT_FUNCTIONS[params["rope_type"]](cfg, "cpu", seq_len)
    plain = CONFIG_MAPPING[config["model_type"]].from_dict(
        {**json.loads(json.dumps(config)), "rope_scaling": None, "rope_parameters": None}).get_text_config()
    head_dim = getattr(plain, "head_dim", None) or plain.hidden_size // plain.num_attention_heads
    dim = int(head_dim * params.get("partial_rotary_factor", 1.0))
    base = 1.0 / (params["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    ratios: list[float] = (base.double() / inv.double()).tolist()
    return ratios


def curve(data: dict[str, Any], role: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in data["curves"] if c["role"] == role)
    return found


def assert_close(ours: list[float], theirs: list[float], rel: float = 1e-5) -> None:
    assert len(ours) == len(theirs)
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours, theirs, strict=True))
    assert worst <= rel, worst


CASES: dict[str, tuple[dict[str, Any], int | None]] = {
    "linear": ({**LLAMA, "rope_scaling": {"rope_type": "linear", "factor": 4.0}}, None),
    "dynamic-at-n": ({**LLAMA, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, 12000),
    "yarn": ({**LLAMA, "max_position_embeddings": 16384, "rope_scaling": {
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}}, None),
    "yarn-betas": ({**LLAMA, "max_position_embeddings": 16384, "rope_scaling": {
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "beta_fast": 16.0,
        "beta_slow": 2.0}}, None),
    "llama3": ({**LLAMA, "max_position_embeddings": 131072, "rope_theta": 500000.0, "rope_scaling": {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}}, None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_curve_scales_equal_transformers(name: str) -> None:
    config, seq_len = CASES[name]
    data = plot_data(spec_from_config(config, name), seq_len)
    assert_close(curve(data, "model")["scale"], transformers_scales(config, seq_len))
    assert curve(data, "baseline")["scale"] == [1.0] * len(data["pairs"])


@pytest.mark.parametrize("fixture", ["phi-3.5-mini-instruct", "meta-llama-3.1-8b-instruct", "deepseek-v3"])
@pytest.mark.parametrize("long", [False, True])
def test_published_models_equal_transformers(fixture: str, long: bool) -> None:
    """longrope (short and long factors), llama3 and DeepSeek's YaRN as published."""
    config = json.loads((FIXTURES / fixture / "config.json").read_text())
    spec = spec_from_config(config, fixture)
    seq_len = 2 * (spec.original_context or 0) if long else None
    data = plot_data(spec, seq_len)
    assert_close(curve(data, "model")["scale"], transformers_scales(config, seq_len or spec.original_context))


def test_plan_and_forced_methods_equal_transformers_on_the_written_config() -> None:
    """The plan curve (YaRN for a file without scaling) and --type dynamic, as transformers reads them."""
    spec = spec_from_config(LLAMA, "llama")
    data = plot_data(spec, 16384)
    plan = curve(data, "plan")
    assert (plan["method"], plan["factor"]) == ("yarn", 4.0)
    yarn = {**LLAMA, "max_position_embeddings": 16384,
            "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}}
    assert_close(plan["scale"], transformers_scales(yarn, None))
    low, high = rope_math.yarn_correction_range(10000.0, 64, 4096)
    assert (data["yarn_ramp"]["low"], data["yarn_ramp"]["high"]) == (low, high)
    forced = plot_data(spec, 16384, "dynamic", 4.0)
    dynamic = {**LLAMA, "rope_scaling": {"rope_type": "dynamic", "factor": 4.0}}
    assert_close(curve(forced, "chosen")["scale"], transformers_scales(dynamic, 16384))
    ntk = next(c for c in data["curves"] if c["name"].startswith("ntk"))
    expected = rope_math.ntk_scaled_base(10000.0, 4.0, 64)
    assert_close(ntk["scale"], [(expected / 10000.0) ** (2 * i / 64) for i in range(32)])


def test_wavelengths_and_scales_are_pure() -> None:
    assert rope_math.wavelengths([1.0, 0.5]) == [2 * math.pi, 4 * math.pi]
    assert rope_math.dimension_scales(10000.0, 4, rope_math.linear_inv_freq(10000.0, 4, 3.0)) == \
        pytest.approx([3.0, 3.0])
    assert rope_math.dimension_scales(10000.0, 4, rope_math.default_inv_freq(10000.0, 4)) == [1.0, 1.0]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_plot_writes_a_png_and_json(tmp_path: Path) -> None:
    out = tmp_path / "llama3.png"
    result = invoke("plot", str(FIXTURES / "meta-llama-3.1-8b-instruct"), "--ctx", "262144", "--out", str(out),
                    "--format", "json")
    assert result.exit_code == 0, result.output
    width, height = png_size(out)
    assert width > 500 and height > 500 and out.stat().st_size > 20_000
    doc = json.loads(result.stdout)
    assert doc["out"] == str(out) and doc["llama3_bands"]["low_freq_wavelength"] == 8192
    assert [c["role"] for c in doc["curves"]][:3] == ["baseline", "model", "plan"]
    assert len(doc["curves"][0]["wavelength"]) == len(doc["pairs"]) == 64


def test_plot_from_matplotlib_image_reader(tmp_path: Path) -> None:
    """matplotlib reads the file back as an RGBA image that is not blank."""
    import matplotlib.image

    out = tmp_path / "yarn.png"
    assert invoke("plot", str(FIXTURES / "qwen2.5-7b-instruct"), "--type", "yarn", "--factor", "4", "--out",
                  str(out)).exit_code == 0
    pixels = matplotlib.image.imread(str(out))
    assert pixels.ndim == 3 and float(pixels.std()) > 0.01


@pytest.mark.parametrize(("args", "message"), [
    ([str(FIXTURES / "gpt2")], "not RoPE: nothing to plot"),
    ([str(FIXTURES / "meta-llama-2-7b-hf"), "--ctx", "8192"], "--out must name a .png file"),
    (["MISSING"], "no such local path"),
    ([str(FIXTURES / "meta-llama-2-7b-hf"), "--type", "linear"], "needs --factor F or --ctx N"),
])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(tmp_path / "missing" / "config.json") if a == "MISSING" else a for a in args]
    out = tmp_path / ("x.txt" if "--ctx" in args else "x.png")
    result = invoke("plot", *args, "--out", str(out))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
