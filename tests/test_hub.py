"""ropedoctor.sources.hub against a fake Hub on 127.0.0.1 (tests/hub_server.py): no test reaches the internet.

Every test points huggingface_hub at the fake hub with ``use_fake_hub`` (environment and the constants
huggingface_hub froze at import) and a cache under tmp_path. Times are bounded by small timeouts.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, cast

import gguf
import numpy as np
import pytest
from huggingface_hub import HfApi, close_session

from conftest import ROOT
from hub_server import HUGE_SIZE, FakeHub, make_certificate, subprocess_environment, use_fake_hub
from ropedoctor.errors import InputError
from ropedoctor.sources import hub as hub_module
from ropedoctor.sources.gguf_header import read_gguf, read_header
from ropedoctor.sources.hub import (
    FIRST_RANGE,
    MAX_REDIRECTS,
    HubRef,
    RemoteFile,
    fetch_config,
    open_remote_gguf,
    parse_hub_path,
)

MIB = 1 << 20
REPO = "org/model"
GGUF_REPO = "org/model-GGUF"
GGUF_NAME = "model-Q4_K_M.gguf"
SMALL_NAME = "small.gguf"
CONFIG = {"model_type": "llama", "rope_theta": 500000.0, "max_position_embeddings": 8192}
CONFIG_BYTES = json.dumps(CONFIG).encode()
TOKEN = "hf_FakeSecretToken0123456789abcdef"
N_TOKENS = 50_000
TENSOR_BYTES = 50 * MIB

Hub = Callable[..., FakeHub]


# -- fixtures ---------------------------------------------------------------------------------------------------


def _write_gguf(path: Path, n_tokens: int, tensor_bytes: int) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(8192)
    writer.add_rope_freq_base(500000.0)
    writer.add_rope_dimension_count(128)
    writer.add_tokenizer_model("gpt2")
    if n_tokens:
        writer.add_token_list([f"token_{i:06d}_" + "x" * 30 for i in range(n_tokens)])
        writer.add_token_merges([f"m{i:06d} n{i:06d}" + "y" * 10 for i in range(n_tokens)])
        writer.add_token_scores([0.0] * n_tokens)
        writer.add_token_types([1] * n_tokens)
    writer.add_tensor("token_embd.weight", np.zeros(tensor_bytes // 4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def big_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GGUF with a 50k-token vocabulary and merges (a ~4.5 MB header) and 50 MB of (zero) tensor data."""
    path = tmp_path_factory.mktemp("gguf") / GGUF_NAME
    _write_gguf(path, N_TOKENS, TENSOR_BYTES)
    return path


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GGUF whose whole file fits in the first range."""
    path = tmp_path_factory.mktemp("gguf") / SMALL_NAME
    _write_gguf(path, 0, 4096)
    return path


@pytest.fixture
def files(big_gguf: Path, small_gguf: Path) -> dict[tuple[str, str], bytes | Path]:
    return {(REPO, "config.json"): CONFIG_BYTES, (REPO, "README.md"): b"# model\n",
            (GGUF_REPO, GGUF_NAME): big_gguf, (GGUF_REPO, SMALL_NAME): small_gguf,
            (GGUF_REPO, "Q8_0/" + GGUF_NAME): big_gguf}


@pytest.fixture
def make_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
             files: dict[tuple[str, str], bytes | Path]) -> Iterator[Hub]:
    """``make_hub(token=None, offline=False, **switches)``: a started FakeHub that huggingface_hub points at."""
    started: list[FakeHub] = []

    def make(*, token: str | None = None, offline: bool = False, **switches: object) -> FakeHub:
        hub = FakeHub(files, **switches)  # type: ignore[arg-type]
        started.append(hub.start())
        use_fake_hub(monkeypatch, hub, tmp_path / "hf", token=token, offline=offline)
        return hub

    yield make
    for hub in started:
        hub.stop()


def _ranges(hub: FakeHub) -> list[tuple[int, int]]:
    spans = []
    for request in hub.requests:
        assert request.range is not None and request.range.startswith("bytes=")
        first, last = request.range[len("bytes="):].split("-")
        spans.append((int(first), int(last)))
    return spans


def _read_all_header(remote: RemoteFile, source: str) -> int:
    header = read_header(cast(BinaryIO, remote), source, file_size=remote.size)
    return header.header_size


# -- parse_hub_path ---------------------------------------------------------------------------------------------


def test_parse_repo_and_gguf_paths() -> None:
    assert parse_hub_path("Qwen/Qwen2.5-7B-Instruct") == HubRef("Qwen/Qwen2.5-7B-Instruct", None, None)
    assert parse_hub_path("org/name", "v1.0") == HubRef("org/name", None, "v1.0")
    assert parse_hub_path("org/name", "refs/pr/1") == HubRef("org/name", None, "refs/pr/1")
    assert parse_hub_path("org/name-GGUF/model-Q4_K_M.gguf") == HubRef("org/name-GGUF", "model-Q4_K_M.gguf", None)
    assert parse_hub_path("org/name-GGUF/Q8_0/model-00001-of-00002.gguf") == HubRef(
        "org/name-GGUF", "Q8_0/model-00001-of-00002.gguf", None)
    ref = parse_hub_path("org/name/x.gguf", "a" * 40)
    assert ref is not None and ref.source == f"org/name/x.gguf@{'a' * 40}" and ref.file == "x.gguf"
    assert HubRef("org/name", None, None).file == "config.json"


@pytest.mark.parametrize("path", [
    "", "model", "/abs/org/name", "./org/name", "../org/name", "~/org/name", "org/", "/org/name", "org//name",
    "org/../x", "org/../x.gguf", "../../etc/passwd.gguf", "org/name/../../etc/passwd.gguf",
    "org/name/./x.gguf", "org/name/sub/../x.gguf", "org\\name", "org/name\\x.gguf", "C:/org/name",
    "org/na me", "org/name\n", " org/name", "org/name--x", "org/.name", "org/name.", "org/name.git",
    "org/name..x", "org/café", "a/b/c", "org/name/config.json", "org/name/x.GGUF", "org/config.json",
    "org/model.gguf", "org/name/x.gguf\x00", "hf://org/name", "https://huggingface.co/org/name",
    "org/" + "n" * 97,
])
def test_parse_rejects_what_is_not_a_repo_path(path: str) -> None:
    """Decision: anything that is not a valid repo path is None (the caller reports a missing local file)."""
    assert parse_hub_path(path) is None


@pytest.mark.parametrize("revision", ["", "a..b", "has space", "main:x", "-x", "x/", "/x", "a//b", "x.lock",
                                      "a@{1}", "x" * 256, "a\\b", "a\nb"])
def test_parse_refuses_invalid_revision(revision: str) -> None:
    with pytest.raises(InputError, match="--revision"):
        parse_hub_path("org/name", revision)


def test_parse_existing_local_path_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    (tmp_path / "org" / "name" / "x.gguf").write_bytes(b"GGUF")
    assert parse_hub_path("org/name") is None
    assert parse_hub_path("org/name/x.gguf") is None
    assert parse_hub_path("org/other") == HubRef("org/other", None, None)
    # a dangling symlink is a local path too
    (tmp_path / "org" / "link").symlink_to(tmp_path / "nowhere")
    assert parse_hub_path("org/link") is None
    assert parse_hub_path(str(tmp_path / "org" / "name")) is None


def test_parse_local_path_imports_no_huggingface_hub(tmp_path: Path) -> None:
    (tmp_path / "org" / "name").mkdir(parents=True)
    code = ("import sys\nfrom ropedoctor.sources.hub import parse_hub_path\n"
            "assert parse_hub_path('org/name') is None and parse_hub_path('model.json') is None\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'huggingface_hub', 'httpx2', 'httpx'}))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- config.json through hf_hub_download ------------------------------------------------------------------------


def test_config_download_cache_hit_and_offline(make_hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = make_hub()
    ref = parse_hub_path(REPO)
    assert ref is not None
    path = fetch_config(ref)
    assert json.loads(path.read_text()) == CONFIG
    assert "models--org--model" in str(path) and str(path).startswith(os.environ["HF_HUB_CACHE"])
    first = hub.requests
    assert [r.method for r in first].count("GET") == 1

    hub.clear()
    assert fetch_config(ref) == path  # cache hit: the hub is only asked for the commit (HEAD), no download
    assert hub.requests and all(r.method == "HEAD" for r in hub.requests)

    hub.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at call time, not only when huggingface_hub was imported
    assert fetch_config(ref) == path
    assert hub.requests == []
    with pytest.raises(InputError, match=r"offline \(HF_HUB_OFFLINE is set\) and config.json is not in the HF cache"):
        fetch_config(HubRef("org/other", None, None))
    assert hub.requests == []


def test_environment_alone_in_a_fresh_process(make_hub: Hub, tmp_path: Path) -> None:
    """A child process gets only the environment (huggingface_hub reads it at import): config and GGUF work,
    and nothing but the files is asked for (no /api/agent-harnesses with telemetry off)."""
    hub = make_hub()
    code = ("from ropedoctor.sources.hub import fetch_config, open_remote_gguf, parse_hub_path\n"
            f"print(fetch_config(parse_hub_path({REPO!r})).read_text())\n"
            f"remote = open_remote_gguf(parse_hub_path({GGUF_REPO + '/' + SMALL_NAME!r}))\n"
            "print(remote.read(4), remote.bytes_fetched)\n")
    env = subprocess_environment(hub, tmp_path / "child-hf")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar, no warning
    lines = result.stdout.splitlines()
    assert json.loads(lines[0]) == CONFIG and lines[1].startswith("b'GGUF' ")
    assert {r.path for r in hub.requests} == {hub.resolve_path(REPO, "config.json"),
                                              hub.resolve_path(GGUF_REPO, SMALL_NAME)}
    assert (tmp_path / "child-hf" / "hub" / "models--org--model").is_dir()


def test_config_cached_file_answers_when_the_hub_is_down(make_hub: Hub, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    make_hub()
    ref = HubRef(REPO, None, None)
    path = fetch_config(ref)
    use_fake_hub(monkeypatch, None, tmp_path / "hf")  # nothing listens there now
    started = time.monotonic()
    assert fetch_config(ref) == path
    assert time.monotonic() - started < 5


def test_config_revision_by_commit(make_hub: Hub) -> None:
    hub = make_hub()
    path = fetch_config(HubRef(REPO, None, hub.commit))
    assert json.loads(path.read_text()) == CONFIG
    assert hub.commit in str(path)


@pytest.mark.parametrize(("ref", "message"), [
    (HubRef("org/missing", None, None), r"not found or gated \(HTTP 404\), set HF_TOKEN"),
    (HubRef(GGUF_REPO, None, None), "the repo has no config.json"),
    (HubRef(REPO, None, "nope"), "revision 'nope' not found"),
])
def test_config_errors(make_hub: Hub, ref: HubRef, message: str) -> None:
    make_hub()
    with pytest.raises(InputError, match=message) as caught:
        fetch_config(ref)
    assert caught.value.what == ref.source
    assert "\n" not in str(caught.value)


def test_config_errors_are_quick(make_hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No retries with back-off (huggingface_hub alone would take ~23 s on each of these)."""
    hub = make_hub(fail_status=500)
    started = time.monotonic()
    with pytest.raises(InputError, match=r"HTTP 500 from 127\.0\.0\.1:\d+ and config.json is not in the HF cache"):
        fetch_config(HubRef(REPO, None, None))
    assert len(hub.requests) == 1
    use_fake_hub(monkeypatch, None, tmp_path / "hf")
    with pytest.raises(InputError, match=r"cannot reach 127\.0\.0\.1:9 .* and config.json is not in the HF cache"):
        fetch_config(HubRef(REPO, None, None))
    assert time.monotonic() - started < 5


def test_config_redirect_loop(make_hub: Hub) -> None:
    hub = make_hub(redirect_loop=True)
    with pytest.raises(InputError, match="too many redirects"):
        fetch_config(HubRef(REPO, None, None))
    assert len(hub.requests) <= 25


def test_config_too_large_is_not_downloaded(make_hub: Hub) -> None:
    hub = make_hub(huge_content_length=True)
    with pytest.raises(InputError, match=f"is {HUGE_SIZE} bytes, more than"):
        fetch_config(HubRef(REPO, None, None))
    assert [r.method for r in hub.requests] == ["HEAD"]


def test_config_gated(make_hub: Hub) -> None:
    hub = make_hub(require_token=TOKEN)
    with pytest.raises(InputError, match=r"not found or gated \(HTTP 401\), set HF_TOKEN"):
        fetch_config(HubRef(REPO, None, None))
    assert all("authorization" not in h for h in hub.headers)


# -- GGUF header over Range requests ----------------------------------------------------------------------------


def test_gguf_header_over_growing_ranges(make_hub: Hub, big_gguf: Path) -> None:
    hub = make_hub()
    local = read_gguf(big_gguf)
    file_size = big_gguf.stat().st_size
    assert local.header_size > 4 * MIB and file_size > local.header_size + TENSOR_BYTES

    ref = parse_hub_path(f"{GGUF_REPO}/{GGUF_NAME}")
    assert ref is not None
    with open_remote_gguf(ref) as remote:
        header = read_header(cast(BinaryIO, remote), ref.source, file_size=remote.size)
        assert remote.size == file_size
        fetched = remote.bytes_fetched
        request_count = remote.request_count
    assert header.header_size == local.header_size
    assert header.kv.keys() == local.kv.keys()
    assert header.get("llama.context_length") == 8192 and header.get("llama.rope.freq_base") == 500000.0
    assert [t.name for t in header.tensors] == ["token_embd.weight"]

    requests = hub.requests
    spans = _ranges(hub)
    assert all(r.method == "GET" and r.path == hub.resolve_path(GGUF_REPO, GGUF_NAME) for r in requests)
    assert spans[0] == (0, FIRST_RANGE - 1)
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))  # contiguous, no byte asked twice
    sizes = [last - first + 1 for first, last in spans]
    assert all(later >= sum(sizes[:i + 1]) for i, later in enumerate(sizes[1:]))  # each range >= all before it
    assert len(requests) == request_count <= 5
    assert hub.bytes_served == fetched == sum(sizes)  # exact, and the fake hub served exactly what was asked
    assert fetched < local.header_size + sizes[-1]  # less than the header plus one range
    assert fetched < file_size / 5
    print(f"\nGGUF header {local.header_size} B of a {file_size} B file: {len(requests)} requests {sizes}, "
          f"{fetched} B fetched")


def test_remote_read_returns_the_file_bytes(make_hub: Hub, big_gguf: Path) -> None:
    make_hub()
    data = big_gguf.read_bytes()
    remote = open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None))
    got = []
    position = 0
    for size in [0, 1, 3, 4, 8, 8, 1000, 65536, MIB, 7, 3 * MIB, 12345]:
        assert remote.tell() == position
        piece = remote.read(size)
        assert len(piece) == size
        got.append(piece)
        position += size
    assert b"".join(got) == data[:position]
    assert remote.peek(10) == data[position:position + 10] and remote.tell() == position
    assert remote.bytes_fetched < 2 * position + FIRST_RANGE
    with pytest.raises(ValueError, match="never read whole"):
        remote.read()
    remote.close()
    with pytest.raises(ValueError, match="closed"):
        remote.read(1)


def test_remote_small_file_ends(make_hub: Hub, small_gguf: Path) -> None:
    hub = make_hub()
    data = small_gguf.read_bytes()
    with open_remote_gguf(HubRef(GGUF_REPO, SMALL_NAME, None)) as remote:
        assert remote.read(len(data) + 100) == data
        assert remote.read(10) == b""
        assert remote.size == len(data) == remote.bytes_fetched
    assert len(hub.requests) == 1


def test_gguf_in_a_folder_and_by_commit(make_hub: Hub, big_gguf: Path) -> None:
    hub = make_hub()
    ref = parse_hub_path(f"{GGUF_REPO}/Q8_0/{GGUF_NAME}", hub.commit)
    assert ref is not None
    with open_remote_gguf(ref) as remote:
        assert _read_all_header(remote, ref.source) == read_gguf(big_gguf).header_size
    assert hub.requests[0].path == f"/{GGUF_REPO}/resolve/{hub.commit}/Q8_0/{GGUF_NAME}"


def test_cdn_redirect_keeps_the_token_on_the_hub(make_hub: Hub, big_gguf: Path) -> None:
    hub = make_hub(cdn_redirect=True, require_token=TOKEN, token=TOKEN)
    with open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None)) as remote:
        _read_all_header(remote, GGUF_REPO)
        assert remote.size == big_gguf.stat().st_size
        fetched = remote.bytes_fetched
    requests, headers = hub.requests, hub.headers
    assert requests[0].path.startswith(f"/{GGUF_REPO}/resolve/") and requests[0].served == 0
    assert headers[0]["authorization"] == f"Bearer {TOKEN}"
    assert all(r.path.startswith("/cdn/") for r in requests[1:])  # the redirect target is reused
    assert all(h["host"].startswith("localhost:") and "authorization" not in h for h in headers[1:])
    assert fetched == hub.bytes_served


def test_offline_gguf_is_refused(make_hub: Hub) -> None:
    hub = make_hub(offline=True)
    with pytest.raises(InputError, match="offline"):
        open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None))
    assert hub.requests == []


def test_max_bytes(make_hub: Hub) -> None:
    hub = make_hub()
    with open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None), max_bytes=3 * MIB) as remote, \
            pytest.raises(InputError, match="larger than the download limit"):
        _read_all_header(remote, GGUF_REPO)
    assert hub.bytes_served <= 3 * MIB


# -- misbehaving servers -----------------------------------------------------------------------------------------


def test_server_ignoring_range_is_left_after_the_bytes_asked(make_hub: Hub, big_gguf: Path) -> None:
    hub = make_hub(ignore_range=True)
    ref = HubRef(GGUF_REPO, GGUF_NAME, None)
    with open_remote_gguf(ref) as remote:
        assert remote.bytes_fetched == FIRST_RANGE
        assert remote.read(100) == big_gguf.read_bytes()[:100]
        with pytest.raises(InputError, match="server does not support range requests"):
            _read_all_header(remote, ref.source)
        assert remote.bytes_fetched == FIRST_RANGE
    assert len(hub.requests) == 1 and hub.requests[0].range == f"bytes=0-{FIRST_RANGE - 1}"
    # the server wrote into socket buffers until the connection was closed, far from the whole file
    assert hub.bytes_served < 16 * MIB


def test_server_ignoring_range_is_fine_for_a_small_file(make_hub: Hub, small_gguf: Path) -> None:
    make_hub(ignore_range=True)
    with open_remote_gguf(HubRef(GGUF_REPO, SMALL_NAME, None)) as remote:
        assert _read_all_header(remote, SMALL_NAME) == read_gguf(small_gguf).header_size
        assert remote.bytes_fetched == small_gguf.stat().st_size


def test_server_sending_more_than_asked(make_hub: Hub, big_gguf: Path) -> None:
    hub = make_hub(extra_bytes=3 * MIB)
    data = big_gguf.read_bytes()
    with open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None)) as remote:
        header_size = _read_all_header(remote, GGUF_REPO)
        fetched = remote.bytes_fetched
    assert header_size == read_gguf(big_gguf).header_size
    asked = [last - first + 1 for first, last in _ranges(hub)]
    assert fetched == sum(asked)  # the extra bytes were not read
    remote2 = open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None))
    assert remote2.read(2 * MIB) == data[:2 * MIB]
    remote2.close()


def test_huge_content_length(make_hub: Hub, big_gguf: Path) -> None:
    hub = make_hub(huge_content_length=True)
    started = time.monotonic()
    with open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None)) as remote:
        assert _read_all_header(remote, GGUF_REPO) == read_gguf(big_gguf).header_size
        assert remote.size == HUGE_SIZE
        assert remote.bytes_fetched < 16 * MIB
    hub.ignore_range = True  # a 10 GiB body without range support: read the first range, then refuse
    with open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None)) as remote, \
            pytest.raises(InputError, match="does not support range requests"):
        _read_all_header(remote, GGUF_REPO)
    assert remote.bytes_fetched == FIRST_RANGE
    assert time.monotonic() - started < 10


def test_redirect_loop(make_hub: Hub) -> None:
    hub = make_hub(redirect_loop=True)
    with pytest.raises(InputError, match=f"too many redirects \\(more than {MAX_REDIRECTS}\\)"):
        open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None))
    assert len(hub.requests) == MAX_REDIRECTS + 1


def test_slow_trickle_hits_the_request_deadline(make_hub: Hub) -> None:
    """1 KiB every 20 ms never trips a per-read timeout; the per-request deadline (0.5 s + 0.5 s per MiB) does."""
    hub = make_hub(trickle_seconds=0.02)
    started = time.monotonic()
    with pytest.raises(InputError, match=r"timed out reading from 127\.0\.0\.1:\d+ \(timeout 0.5 s\)"):
        open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None), timeout=0.5)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3
    assert hub.bytes_served < FIRST_RANGE / 2


def test_stalled_server_hits_the_read_timeout(make_hub: Hub) -> None:
    make_hub(trickle_seconds=30)
    started = time.monotonic()
    with pytest.raises(InputError, match="timed out"):
        open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None), timeout=0.3)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("switches", "path", "message"), [
    ({}, f"{GGUF_REPO}/missing.gguf", r"no such file in the repo \(HTTP 404\)"),
    ({}, "org/missing/x.gguf", r"not found or gated \(HTTP 404\), set HF_TOKEN"),
    ({"require_token": TOKEN}, f"{GGUF_REPO}/{GGUF_NAME}", r"not found or gated \(HTTP 401\), set HF_TOKEN"),
    ({"fail_status": 403}, f"{GGUF_REPO}/{GGUF_NAME}", r"not found or gated \(HTTP 403\), set HF_TOKEN"),
    ({"fail_status": 503}, f"{GGUF_REPO}/{GGUF_NAME}", r"HTTP 503 from 127\.0\.0\.1"),
])
def test_gguf_http_errors(make_hub: Hub, switches: Mapping[str, object], path: str, message: str) -> None:
    make_hub(**switches)
    ref = parse_hub_path(path)
    assert ref is not None
    with pytest.raises(InputError, match=message):
        open_remote_gguf(ref)


def test_unreachable_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_hub(monkeypatch, None, tmp_path / "hf")
    with pytest.raises(InputError, match=r"cannot read from 127\.0\.0\.1:9 \(.*refused"):
        open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None))


def test_http_proxy_from_the_environment(make_hub: Hub, monkeypatch: pytest.MonkeyPatch, big_gguf: Path) -> None:
    """HTTP_PROXY is honoured: the fake hub plays the proxy for an endpoint that does not resolve."""
    hub = make_hub()
    monkeypatch.setenv("HTTP_PROXY", hub.url)
    for endpoint in ("http://hub.invalid", "http://127.0.0.1:9"):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        with open_remote_gguf(HubRef(GGUF_REPO, SMALL_NAME, None)) as remote:
            assert remote.read(4) == b"GGUF"
        assert hub.headers[-1]["host"] == endpoint[len("http://"):]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # now straight to 127.0.0.1:9, where nothing listens
    with pytest.raises(InputError, match=r"cannot read from 127\.0\.0\.1:9"):
        open_remote_gguf(HubRef(GGUF_REPO, SMALL_NAME, None))


def test_https_with_a_cdn_redirect(make_hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   big_gguf: Path) -> None:
    """TLS end to end: certificate verification (SSL_CERT_FILE, as huggingface_hub's client honours it), SNI for
    the Hub and for the "CDN" on another name, and config.json through hf_hub_download over https."""
    made = make_certificate(tmp_path)
    assert made is not None, "the TLS tests need the openssl command (Debian's openssl package)"
    cert, context = made
    monkeypatch.setattr(hub_module, "_SSL_CONTEXT", None)  # the context is made once per process
    hub = make_hub(tls=context, cdn_redirect=True, token=TOKEN)
    assert hub.url.startswith("https://")
    with pytest.raises(InputError, match=r"cannot read from 127\.0\.0\.1:\d+ \(.*CERTIFICATE_VERIFY_FAILED"):
        open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None))

    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setattr(hub_module, "_SSL_CONTEXT", None)
    hub.clear()
    with open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None)) as remote:
        assert _read_all_header(remote, GGUF_REPO) == read_gguf(big_gguf).header_size
        assert remote.bytes_fetched == hub.bytes_served
    assert hub.headers[0]["authorization"] == f"Bearer {TOKEN}"
    assert all(h["host"].startswith("localhost:") and "authorization" not in h for h in hub.headers[1:])

    close_session()  # huggingface_hub's shared client reads SSL_CERT_FILE when it is made
    try:
        assert json.loads(fetch_config(HubRef(REPO, None, None)).read_text()) == CONFIG
    finally:
        close_session()
    monkeypatch.setattr(hub_module, "_SSL_CONTEXT", None)


def test_https_through_a_connect_proxy(make_hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY: a CONNECT tunnel (another FakeHub plays the proxy); the token travels inside the tunnel."""
    made = make_certificate(tmp_path)
    assert made is not None, "the TLS tests need the openssl command (Debian's openssl package)"
    cert, context = made
    hub = make_hub(tls=context, token=TOKEN)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setattr(hub_module, "_SSL_CONTEXT", None)
    with FakeHub({}) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        with open_remote_gguf(HubRef(GGUF_REPO, SMALL_NAME, None)) as remote:
            assert remote.read(4) == b"GGUF"
        assert [(r.method, r.path) for r in proxy.requests] == [("CONNECT", f"127.0.0.1:{hub.port}")]
        assert "authorization" not in proxy.headers[0]
    assert hub.headers[0]["authorization"] == f"Bearer {TOKEN}"
    monkeypatch.setattr(hub_module, "_SSL_CONTEXT", None)


def test_fake_hub_api_routes(make_hub: Hub) -> None:
    """The fake hub's /api/models routes, for tests that list a repo's files through huggingface_hub."""
    hub = make_hub()
    api = HfApi(endpoint=hub.url, token=False)
    assert api.model_info(GGUF_REPO).sha == hub.commit
    assert sorted(api.list_repo_files(GGUF_REPO)) == sorted(name for repo, name in hub.files if repo == GGUF_REPO)


# -- the token ----------------------------------------------------------------------------------------------------


def _assert_secret_kept(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    assert TOKEN not in str(exc) and TOKEN not in repr(exc) and TOKEN not in text
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


def test_token_is_sent_but_never_shown(make_hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = make_hub(require_token=TOKEN, token=TOKEN)
    with open_remote_gguf(HubRef(GGUF_REPO, SMALL_NAME, None)) as remote:
        assert remote.read(4) == b"GGUF"
        assert TOKEN not in repr(remote)
    assert fetch_config(HubRef(REPO, None, None)).is_file()
    assert all(h.get("authorization") == f"Bearer {TOKEN}" for h in hub.headers)

    failures: list[Callable[[], object]] = [
        lambda: open_remote_gguf(HubRef(GGUF_REPO, "missing.gguf", None)),
        lambda: open_remote_gguf(HubRef("org/missing", "x.gguf", None)),
        lambda: fetch_config(HubRef("org/missing", None, None)),
        lambda: fetch_config(HubRef(REPO, None, "nope")),
    ]
    for fail in failures:
        with pytest.raises(InputError) as caught:
            fail()
        _assert_secret_kept(caught.value)

    hub.require_token = "hf_another_token"  # the token is refused: say so without showing it
    for fail in [lambda: open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None)),
                 lambda: fetch_config(HubRef("org/model", None, "v2"))]:
        with pytest.raises(InputError, match=r"not found or gated .* the HF token has no access") as caught:
            fail()
        _assert_secret_kept(caught.value)

    for switch, value, timeout in [("redirect_loop", True, 10.0), ("trickle_seconds", 0.05, 0.3)]:
        hub.require_token = None
        setattr(hub, switch, value)
        with pytest.raises(InputError) as caught:
            open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None), timeout=timeout)
        _assert_secret_kept(caught.value)
        setattr(hub, switch, type(value)())

    use_fake_hub(monkeypatch, None, tmp_path / "hf", token=TOKEN)
    for fail in [lambda: open_remote_gguf(HubRef(GGUF_REPO, GGUF_NAME, None)),
                 lambda: fetch_config(HubRef("org/never", None, None))]:
        with pytest.raises(InputError) as caught:
            fail()
        _assert_secret_kept(caught.value)
