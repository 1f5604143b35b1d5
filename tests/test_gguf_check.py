"""check, compare and scan on GGUF files: the RopeSpec, the RD4xx rules, and config-versus-GGUF (RD5xx)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import FIXTURES, invoke, write_config
from gguf_files import VT, llama_kv, write_gguf


def check_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("check", *args, "--format", "json")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def codes(doc: dict[str, Any], index: int = 0) -> list[str]:
    return [f["code"] for f in doc["results"][index]["findings"]]


def test_llama3_gguf_reads_as_llama3(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "llama31.gguf", "llama",
                      llama_kv(131072, extra={"{arch}.rope.freq_base": (500000.0, VT.FLOAT32)}),
                      {"rope_freqs.weight": 64, "token_embd.weight": 32})
    code, doc = check_json(str(path))
    assert code == 0
    result = doc["results"][0]
    assert result["format"] == "gguf" and result["model_type"] == "llama"
    assert {k: result["rope"][k] for k in ("method", "theta", "context", "rotary_dim", "head_dim")} == {
        "method": "llama3", "theta": 500000.0, "context": 131072, "rotary_dim": 128, "head_dim": 128}


def test_qwen_yarn_with_short_context_is_capped(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "qwen.gguf", "qwen2", llama_kv(32768, 28, 3584, extra={
        "{arch}.rope.freq_base": (1e6, VT.FLOAT32), "{arch}.rope.scaling.type": ("yarn", VT.STRING),
        "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32),
        "{arch}.rope.scaling.original_context_length": (32768, VT.UINT32)}))
    code, doc = check_json(str(path))
    assert code == 0 and "RD403" in codes(doc)
    [finding] = [f for f in doc["results"][0]["findings"] if f["code"] == "RD403"]
    assert finding["location"] == "qwen2.context_length"
    assert "--override-kv qwen2.context_length=int:131072" in finding["message"]


def test_wrong_types_and_unknown_scaling_type(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "bad.gguf", "llama", {
        "{arch}.context_length": (8192, VT.UINT64), "{arch}.embedding_length": (4096, VT.UINT32),
        "{arch}.attention.head_count": (32, VT.UINT32), "{arch}.rope.freq_base": (10000.0, VT.FLOAT64),
        "{arch}.rope.scaling.type": ("dynamic", VT.STRING), "{arch}.rope.scaling.factor": (2.0, VT.FLOAT32)})
    code, doc = check_json(str(path))
    assert code == 1
    found = doc["results"][0]["findings"]
    wrong = {f["location"] for f in found if f["code"] == "RD401"}
    assert wrong == {"llama.context_length", "llama.rope.freq_base"}
    assert any(f["code"] == "RD402" and "'dynamic'" in f["message"] for f in found)


def test_yarn_without_original_and_factor_without_type(tmp_path: Path) -> None:
    yarn = write_gguf(tmp_path / "yarn.gguf", "llama", llama_kv(16384, extra={
        "{arch}.rope.scaling.type": ("yarn", VT.STRING), "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32)}))
    untyped = write_gguf(tmp_path / "untyped.gguf", "llama", llama_kv(16384, extra={
        "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32)}))
    none_typed = write_gguf(tmp_path / "none.gguf", "llama", llama_kv(16384, extra={
        "{arch}.rope.scaling.type": ("none", VT.STRING), "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32)}))
    _, doc = check_json(str(yarn), str(untyped), str(none_typed))
    assert "RD404" in codes(doc, 0)
    assert "RD405" in codes(doc, 1) and doc["results"][1]["rope"]["method"] == "linear"
    assert "RD405" in codes(doc, 2) and doc["results"][2]["rope"]["method"] == "default"


def test_tensor_lengths_and_rotary_dim(tmp_path: Path) -> None:
    short = write_gguf(tmp_path / "freqs.gguf", "llama", llama_kv(), {"rope_freqs.weight": 60})
    partial = write_gguf(tmp_path / "nrot.gguf", "llama", llama_kv(extra={"{arch}.rope.dimension_count": (64, VT.UINT32)}))
    _, doc = check_json(str(short), str(partial))
    assert "RD406" in codes(doc, 0)
    assert "RD407" in codes(doc, 1)


def test_missing_freq_base_on_a_family_that_does_not_use_10000(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "qwen.gguf", "qwen2", llama_kv(32768, 28, 3584))
    _, doc = check_json(str(path))
    assert doc["results"][0]["rope"]["theta"] == 10000.0
    assert "RD408" in codes(doc)


def test_absolute_and_embedding_models_with_ctx(tmp_path: Path) -> None:
    bert = write_gguf(tmp_path / "bert.gguf", "bert", llama_kv(512, 12, 768, extra={
        "{arch}.attention.causal": (False, VT.BOOL)}), {"position_embd.weight": 512 * 768})
    nomic = write_gguf(tmp_path / "nomic.gguf", "nomic-bert", llama_kv(2048, 12, 768, extra={
        "{arch}.attention.causal": (False, VT.BOOL), "{arch}.rope.freq_base": (1000.0, VT.FLOAT32)}))
    result = invoke("check", str(bert), str(nomic), "--ctx", "8192", "--format", "json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 1
    assert doc["results"][0]["rope"]["method"] == "none" and "RD302" in codes(doc, 0)
    assert {"RD301", "RD304"} <= set(codes(doc, 1))


def _config_and_gguf(tmp_path: Path, config: dict[str, Any], kv: dict[str, Any], arch: str = "llama") -> Path:
    folder = write_config(tmp_path / "model", config)
    write_gguf(folder / "model-q4.gguf", arch, kv)
    return folder


def test_folder_with_config_and_gguf_compares_them(tmp_path: Path) -> None:
    config = json.loads((FIXTURES / "internlm2.5-7b-chat" / "config.json").read_text())
    folder = _config_and_gguf(tmp_path, config, llama_kv(32768, 32, 4096, extra={
        "{arch}.rope.freq_base": (1e6, VT.FLOAT32)}), "internlm2")
    code, doc = check_json(str(folder))
    assert [r["format"] for r in doc["results"]] == ["hf-config", "gguf"]
    [dropped] = [f for f in doc["results"][1]["findings"] if f["code"] == "RD501"]
    assert "dynamic" in dropped["message"] and "no dynamic NTK" in dropped["message"]
    assert code == 1


def test_compare_reports_theta_lost_by_conversion(tmp_path: Path) -> None:
    config = json.loads((FIXTURES / "qwen2.5-7b-instruct" / "config.json").read_text())
    folder = write_config(tmp_path / "qwen", config)
    gguf_path = write_gguf(tmp_path / "qwen.gguf", "qwen2", llama_kv(32768, 28, 3584))
    result = invoke("compare", str(folder), str(gguf_path), "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    rows = {row["field"]: row for row in doc["comparison"]}
    assert rows["theta"] == {"field": "theta", "a": 1e6, "b": 10000.0, "same": False}
    assert rows["context"]["same"] and rows["rotary_dim"]["same"]
    assert any(f["code"] == "RD503" and "base 10000" in f["message"] for f in doc["results"][1]["findings"])


def test_nomic_conversion_length(tmp_path: Path) -> None:
    config = json.loads((FIXTURES / "nomic-embed-text-v1.5" / "config.json").read_text())
    folder = _config_and_gguf(tmp_path, config, llama_kv(2048, 12, 768, extra={
        "{arch}.attention.causal": (False, VT.BOOL), "{arch}.rope.freq_base": (1000.0, VT.FLOAT32)}), "nomic-bert")
    _, doc = check_json(str(folder))
    [length] = [f for f in doc["results"][1]["findings"] if f["code"] == "RD504"]
    assert "2048" in length["message"] and "8192" in length["message"]


def test_split_shards(tmp_path: Path) -> None:
    first = write_gguf(tmp_path / "m-00001-of-00002.gguf", "llama", llama_kv(extra={
        "split.no": (0, VT.UINT16), "split.count": (2, VT.UINT16)}))
    result = invoke("check", str(first))
    assert result.exit_code == 2 and "m-00002-of-00002.gguf" in result.stderr
    write_gguf(tmp_path / "m-00002-of-00002.gguf", "llama", {"split.no": (1, VT.UINT16), "split.count": (2, VT.UINT16)})
    code, doc = check_json(str(tmp_path))
    assert code == 0 and [Path(r["source"]).name for r in doc["results"]] == ["m-00001-of-00002.gguf"]


def test_bad_gguf_inputs(tmp_path: Path) -> None:
    good = write_gguf(tmp_path / "good.gguf", "llama", llama_kv())
    data = good.read_bytes()
    cases = {"empty.gguf": b"", "magic.gguf": b"GGML" + data[4:], "truncated.gguf": data[:40]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "folder.gguf").mkdir()
    for name in [*cases, "folder.gguf"]:
        result = invoke("check", str(tmp_path / name))
        assert result.exit_code == 2, (name, result.output)
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1, (name, result.stderr)
        assert result.stderr.startswith(f"ropedoctor: error: {tmp_path / name}"), result.stderr


def test_scan_reports_every_model(tmp_path: Path) -> None:
    for name in ("qwen2.5-7b-instruct", "broken/yarn-legacy-type-conflict", "gpt2"):
        write_config(tmp_path / name.replace("/", "_"), json.loads((FIXTURES / name / "config.json").read_text()))
    (tmp_path / "ggufs").mkdir()
    write_gguf(tmp_path / "ggufs" / "x.gguf", "llama", llama_kv())
    (tmp_path / "broken_json").mkdir()
    (tmp_path / "broken_json" / "config.json").write_text("{")
    result = invoke("scan", str(tmp_path), "--format", "json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 1
    assert doc["summary"]["models"] == 5 and doc["summary"]["unreadable"] == 1 and doc["summary"]["error"] == 1
    by_source = {Path(r["source"]).parent.name: r for r in doc["models"]}
    assert by_source["broken_yarn-legacy-type-conflict"]["first_error"].startswith("RD201")
    assert by_source["gpt2"]["method"] == "none"
    text = invoke("scan", str(tmp_path))
    assert "5 models, 1 unreadable, 1 error" in text.stdout


def test_conversion_that_changed_the_method(tmp_path: Path) -> None:
    """An old converter wrote YaRN as linear: RD502."""
    config = json.loads((FIXTURES / "broken" / "qwen2.5-yarn-snippet" / "config.json").read_text())
    folder = _config_and_gguf(tmp_path, config, llama_kv(32768, 28, 3584, extra={
        "{arch}.rope.freq_base": (1e6, VT.FLOAT32), "{arch}.rope.scaling.type": ("linear", VT.STRING),
        "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32)}), "qwen2")
    _, doc = check_json(str(folder))
    assert "RD502" in codes(doc, 1)
