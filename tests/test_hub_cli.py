"""check and scan through the hub, end to end: a real HTTP server on 127.0.0.1, the CLI in a subprocess."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import FIXTURES, run_cli
from gguf_files import VT, llama_kv, write_gguf
from hub_server import FakeHub, subprocess_environment


def test_check_hub_config_and_gguf_header(tmp_path: Path) -> None:
    config = (FIXTURES / "broken" / "qwen2.5-yarn-snippet" / "config.json").read_bytes()
    gguf_path = write_gguf(tmp_path / "model.gguf", "qwen2", llama_kv(32768, 28, 3584, extra={
        "{arch}.rope.freq_base": (1e6, VT.FLOAT32), "{arch}.rope.scaling.type": ("yarn", VT.STRING),
        "{arch}.rope.scaling.factor": (4.0, VT.FLOAT32),
        "{arch}.rope.scaling.original_context_length": (32768, VT.UINT32)}),
        {"token_embd.weight": 8 * 2**20})  # 32 MiB of tensor data the header read must not fetch
    size = gguf_path.stat().st_size
    files: dict[tuple[str, str], bytes | Path] = {("org/qwen", "config.json"): config,
                                                  ("org/qwen", "model.gguf"): gguf_path}
    with FakeHub(files) as hub:
        env = subprocess_environment(hub, tmp_path / "hf", token="hf_secret_token_123")
        result = run_cli("check", "org/qwen", "org/qwen/model.gguf", "--format", "json", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        assert [r["source"] for r in doc["results"]] == ["org/qwen", "org/qwen/model.gguf"]
        assert doc["results"][0]["rope"]["method"] == "yarn"
        gguf_result = doc["results"][1]
        assert "RD403" in [f["code"] for f in gguf_result["findings"]]
        served = sum(request[3] for request in hub.requests if "model.gguf" in request[1])
        assert gguf_result["bytes_fetched"] == served < size // 8
        assert "hf_secret_token_123" not in result.stdout + result.stderr
        offline = run_cli("check", "org/qwen/model.gguf", env={**env, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
        assert offline.returncode == 2 and "offline" in offline.stderr
        cached = run_cli("check", "org/qwen", "--format", "json", env={**env, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
        assert cached.returncode == 0, cached.stderr  # config.json comes from the cache


def test_scan_hf_cache(tmp_path: Path) -> None:
    with FakeHub({("org/a", "config.json"): (FIXTURES / "qwen2.5-7b-instruct" / "config.json").read_bytes(),
                  ("org/b", "config.json"): (FIXTURES / "broken" / "unknown-method" / "config.json").read_bytes()}
                 ) as hub:
        env = subprocess_environment(hub, tmp_path / "hf")
        for repo in ("org/a", "org/b"):
            assert run_cli("check", repo, env=env, cwd=tmp_path).returncode in (0, 1)
        result = run_cli("scan", "--hf-cache", "--format", "json", env=env, cwd=tmp_path)
    doc = json.loads(result.stdout)
    assert result.returncode == 1 and doc["summary"]["models"] == 2 and doc["summary"]["error"] == 1
    assert {row["model_type"] for row in doc["models"]} == {"qwen2", "llama"}
    shutil.rmtree(tmp_path / "hf")
    empty = run_cli("scan", "--hf-cache", env=env, cwd=tmp_path)
    assert empty.returncode == 2 and "no Hugging Face cache" in empty.stderr
