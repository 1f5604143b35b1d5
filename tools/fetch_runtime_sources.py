"""Fetch the few Python files of the pinned serving-runtime wheels that tests/test_runtime_oracles.py runs.

vLLM's wheel is 336 MB and LMDeploy's 107 MB, almost all compiled kernels; the code that derives a maximum length,
merges overrides and builds the RoPE is a few hundred kB of Python. So this reads each wheel's zip central directory
with HTTP range requests against the file URL the package index lists (pip's configured index, PEP 691 JSON), and
writes only the named members, each checked against the CRC-32 the wheel records, under DEST/<name>-<version>/.

Usage: python tools/fetch_runtime_sources.py DEST [--list NAME]   (--list prints a wheel's members and exits)
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import json
import os
import sys
import urllib.request
import zipfile
from pathlib import Path

# (distribution, version, wheel tag suffix, member globs). The tag is any one platform's: the members read are
# pure Python, the same in every platform's wheel.
WHEELS: list[tuple[str, str, str, list[str]]] = [
    ("vllm", "0.33.0", "manylinux_2_28_x86_64.whl", [
        "vllm/config/*.py", "vllm/transformers_utils/*.py",
        "vllm/model_executor/layers/rotary_embedding/*.py", "vllm/model_executor/models/*.py",
        "vllm-0.33.0.dist-info/METADATA",
    ]),
    ("sglang", "0.5.23", "cp311-cp311-manylinux_2_34_x86_64.whl", [
        "sglang/srt/configs/*.py", "sglang/srt/utils/*.py", "sglang/srt/layers/rotary_embedding/*.py",
        "sglang/srt/models/*.py", "sglang/srt/environ.py", "sglang/srt/server_args.py", "sglang-0.5.23.dist-info/METADATA",
    ]),
    ("lmdeploy", "0.18.0", "cp311-cp311-manylinux_2_28_x86_64.whl", [
        "lmdeploy/*.py", "lmdeploy-0.18.0.dist-info/METADATA",
    ]),
]


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file, fetched in blocks by HTTP range requests."""

    BLOCK = 1 << 18

    def __init__(self, url: str, size: int) -> None:
        self.url, self.size, self.pos = url, size, 0
        self.blocks: dict[int, bytes] = {}
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def _block(self, index: int) -> bytes:
        if index not in self.blocks:
            start = index * self.BLOCK
            end = min(self.size, start + self.BLOCK) - 1
            request = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end}"})
            with urllib.request.urlopen(request, timeout=120) as response:
                data = response.read()
            if response.status != 206 or len(data) != end - start + 1:
                raise OSError(f"{self.url}: range {start}-{end} answered {response.status} with {len(data)} bytes")
            self.blocks[index] = data
            self.requests += 1
        return self.blocks[index]

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.size - self.pos)
        done = 0
        while done < want:
            index, offset = divmod(self.pos, self.BLOCK)
            chunk = self._block(index)[offset:offset + want - done]
            buffer[done:done + len(chunk)] = chunk
            done += len(chunk)
            self.pos += len(chunk)
        return done


def index_url() -> str:
    """The index pip itself would ask: PIP_INDEX_URL, pip's configured index-url, else pip's default."""
    configured = os.environ.get("PIP_INDEX_URL")
    if not configured:
        from pip._internal.configuration import Configuration
        from pip._internal.models.index import PyPI

        config = Configuration(isolated=False)
        config.load()
        values = dict(config.items())
        configured = values.get("global.index-url") or values.get(":env:.index-url") or PyPI.simple_url
    return configured.rstrip("/")


def wheel_file(name: str, version: str, suffix: str) -> tuple[str, int]:
    request = urllib.request.Request(f"{index_url()}/{name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        files = json.load(response)["files"]
    for entry in files:
        filename = entry["filename"]
        if filename.startswith(f"{name}-{version}-") and filename.endswith(suffix):
            return entry["url"], int(entry["size"])
    raise SystemExit(f"fetch_runtime_sources: no {name} {version} wheel ending {suffix} on the index")


def fetch(dest: Path, name: str, version: str, suffix: str, globs: list[str]) -> int:
    url, size = wheel_file(name, version, suffix)
    remote = RangeFile(url, size)
    target = dest / f"{name}-{version}"
    count = 0
    with zipfile.ZipFile(io.BufferedReader(remote, buffer_size=RangeFile.BLOCK)) as wheel:
        for info in wheel.infolist():
            if not any(fnmatch.fnmatch(info.filename, pattern) for pattern in globs):
                continue
            data = wheel.read(info)  # zipfile checks the CRC-32 and raises BadZipFile on a mismatch
            path = target / info.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            count += 1
    print(f"{name} {version}: {count} files, {remote.requests} range requests", file=sys.stderr)
    return count


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dest", type=Path)
    parser.add_argument("--list", dest="list_name")
    args = parser.parse_args()
    for name, version, suffix, globs in WHEELS:
        if args.list_name:
            if name == args.list_name:
                url, size = wheel_file(name, version, suffix)
                with zipfile.ZipFile(io.BufferedReader(RangeFile(url, size), buffer_size=RangeFile.BLOCK)) as w:
                    for info in w.infolist():
                        print(info.filename, info.file_size)
            continue
        if fetch(args.dest, name, version, suffix, globs) == 0:
            raise SystemExit(f"fetch_runtime_sources: nothing matched in the {name} {version} wheel")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
