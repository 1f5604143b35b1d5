"""Fixing a 2 GB GGUF: ropedoctor's rewrite() against cp, and the in-place edit, in one run.

    python bench/gguf_fix.py [--size-gb 2] [--rounds 5] [--sparse] [--dir DIR]

Writes (gguf.GGUFWriter, in a temp folder under DIR) a llama-architecture GGUF with RoPE keys, a
152,000-token vocabulary and 2 GB of F32 tensor data (a random 16 MB block repeated; with --sparse
a hole: the header is written, then the file is extended with truncate(), with a few non-zero
bytes at each end; cp --sparse=never then writes zeros for the hole without reading it, which
rewrite() cannot know to do, so dense data is the fair default). Then, interleaved,
``--rounds`` times each (after an ``os.sync()``, so no run pays for another's writeback):

  cp          ``cp --sparse=never SRC DST`` (both really copy every byte), timed alone and with an
              fsync of DST: rewrite() fsyncs before it renames, so "cp + fsync" is the same work
  rewrite     ``rewrite()`` to a new file (context_length changed, rope.scaling.* added) in a fresh
              process started by a small measuring process, which reads the peak RSS with
              ``resource.getrusage(RUSAGE_CHILDREN)`` (a child forked from this big process would
              report this process's RSS as its own peak); the time is taken around rewrite() alone
  in-place    ``read_gguf()`` + ``edit_in_place()`` of context_length with a backup, in this process

Medians are reported. Targets: rewrite throughput >= 0.8 x cp + fsync; rewrite peak RSS < 150 MB;
in-place < 0.2 s. Exit status 0 when every target is met, 1 otherwise. The temp folder is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gguf
import numpy as np

from ropedoctor.gguf_keys import ValueType
from ropedoctor.sources.gguf_header import read_gguf
from ropedoctor.writers.gguf import KVChange, edit_in_place, undo_in_place

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
N_TOKENS = 152_000
MB = 1 << 20
GB = 1 << 30

RATIO_TARGET = 0.8
RSS_TARGET = 150 * MB
IN_PLACE_TARGET = 0.2


def write_model(path: Path, data_bytes: int, *, sparse: bool) -> int:
    """A llama GGUF whose tensor infos describe ``data_bytes`` of F32 data; returns the file size.

    The data is a random 16 MB block over and over, or (``sparse``) a hole with a few bytes at each end.
    """
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("bench-gguf-fix")
    writer.add_context_length(8192)
    writer.add_embedding_length(4096)
    writer.add_block_count(32)
    writer.add_head_count(32)
    writer.add_head_count_kv(8)
    writer.add_rope_dimension_count(128)
    writer.add_rope_freq_base(500000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}_{'ab' * (i % 5)}" for i in range(N_TOKENS)])
    writer.add_token_types([1 + i % 3 for i in range(N_TOKENS)])
    small = 4096 * 4
    per_layer = (data_bytes - small) // 4 // 4096 // 4 * 4096 * 4
    writer.add_tensor_info("output_norm.weight", [4096], np.dtype(np.float32), small)
    for layer in range(4):
        writer.add_tensor_info(f"blk.{layer}.ffn_down.weight", [per_layer // 4 // 4096, 4096], np.dtype(np.float32),
                               per_layer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    data_offset = -(-path.stat().st_size // 32) * 32
    size = data_offset + small + 4 * per_layer
    with open(path, "r+b") as handle:
        handle.truncate(size)
        if not sparse:
            block = np.random.default_rng(0).integers(0, 256, 16 * MB, dtype=np.uint8).tobytes()
            handle.seek(data_offset)
            for start in range(data_offset, size, len(block)):
                handle.write(block[:size - start])
        handle.seek(data_offset)
        handle.write(np.arange(4096, dtype=np.float32).tobytes())
        handle.seek(size - MB)
        handle.write(b"\x3f" * MB)
    return size


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def time_cp(src: Path, dst: Path) -> tuple[float, float]:
    """Seconds of ``cp --sparse=never``, and of cp followed by an fsync of the copy."""
    os.sync()
    start = time.perf_counter()
    subprocess.run(["cp", "--sparse=never", str(src), str(dst)], check=True)
    copied = time.perf_counter() - start
    fsync_file(dst)
    synced = time.perf_counter() - start
    dst.unlink()
    return copied, synced


_MEASURE = """
import json, resource, subprocess, sys
result = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True, cwd=sys.argv[2])
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps([rss, result.returncode, result.stdout[-2000:], result.stderr[-2000:]]))
"""

_REWRITE = """
import sys, time
from pathlib import Path
from ropedoctor.sources.gguf_header import read_gguf
from ropedoctor.writers.gguf import KVChange, rewrite
src, out = Path(sys.argv[1]), Path(sys.argv[2])
changes = [KVChange("llama.context_length", 4, 131072), KVChange("llama.rope.scaling.type", 8, "yarn"),
           KVChange("llama.rope.scaling.factor", 6, 4.0), KVChange("llama.rope.scaling.original_context_length", 4, 8192)]
start = time.perf_counter()
rewrite(src, read_gguf(src), changes, out)
print(time.perf_counter() - start)
"""


def time_rewrite(src: Path, dst: Path) -> tuple[float, int]:
    """Seconds of rewrite() in a fresh process, and that process's peak RSS in bytes."""
    os.sync()
    argv = [PY, "-c", _REWRITE, str(src), str(dst)]
    out = subprocess.run([PY, "-c", _MEASURE, json.dumps(argv), str(ROOT)], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    rss, code, stdout, stderr = json.loads(out)
    if code != 0:
        raise SystemExit(f"rewrite failed ({code}): {stderr}")
    header = read_gguf(dst)
    if header.get("llama.context_length") != 131072 or header.get("llama.rope.scaling.type") != "yarn":
        raise SystemExit("rewrite wrote the wrong values")
    if dst.stat().st_size - header.data_offset != src.stat().st_size - read_gguf(src).data_offset:
        raise SystemExit("rewrite lost tensor data")
    dst.unlink()
    return float(stdout.strip()), int(rss) * (1 if sys.platform == "darwin" else 1024)


def time_in_place(path: Path, folder: Path, value: int) -> float:
    """Seconds of read_gguf + edit_in_place of context_length (with a backup), undone afterwards."""
    backup = folder / f"backup-{value}.json"
    start = time.perf_counter()
    header = read_gguf(path)
    edit_in_place(path, header, [KVChange("llama.context_length", ValueType.UINT32, value)], backup=backup)
    elapsed = time.perf_counter() - start
    if read_gguf(path).get("llama.context_length") != value:
        raise SystemExit("in-place edit wrote the wrong value")
    undo_in_place(path, backup)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="Where to put the temp folder.")
    parser.add_argument("--sparse", action="store_true", help="Sparse tensor data (cp then skips reading holes).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ropedoctor-bench-fix-", dir=args.dir) as temp:
        folder = Path(temp)
        src, dst = folder / "model.gguf", folder / "copy.gguf"
        start = time.perf_counter()
        size = write_model(src, int(args.size_gb * GB), sparse=args.sparse)
        os.sync()
        print(f"wrote {src.name}: {size / 1e9:.2f} GB ({'sparse' if args.sparse else 'dense'}) "
              f"in {time.perf_counter() - start:.1f} s")

        cps, syncs, rewrites, rss = [], [], [], []
        for index in range(args.rounds):
            copied, synced = time_cp(src, dst)
            seconds, peak = time_rewrite(src, dst)
            cps.append(copied)
            syncs.append(synced)
            rewrites.append(seconds)
            rss.append(peak)
            print(f"round {index + 1}: cp {copied:.2f} s, cp + fsync {synced:.2f} s, rewrite {seconds:.2f} s "
                  f"(peak RSS {peak / MB:.0f} MB)", flush=True)
        in_place = [time_in_place(src, folder, 100_000 + index) for index in range(5)]

    cp_s, sync_s, rewrite_s = statistics.median(cps), statistics.median(syncs), statistics.median(rewrites)
    ratio = sync_s / rewrite_s
    peak_rss = max(rss)
    in_place_s = statistics.median(in_place)
    rate = size / MB
    print()
    print(f"cp --sparse=never   {cp_s:6.2f} s  {rate / cp_s:7.0f} MB/s  (page cache only, not durable)")
    print(f"cp + fsync          {sync_s:6.2f} s  {rate / sync_s:7.0f} MB/s")
    print(f"rewrite() + fsync   {rewrite_s:6.2f} s  {rate / rewrite_s:7.0f} MB/s  "
          f"(x{rate / rewrite_s / (rate / cp_s):.2f} of plain cp)")
    checks = [
        (f"rewrite throughput / (cp + fsync) = {ratio:.2f}", ratio >= RATIO_TARGET, f">= {RATIO_TARGET}"),
        (f"rewrite peak RSS = {peak_rss / MB:.0f} MB", peak_rss < RSS_TARGET, f"< {RSS_TARGET // MB} MB"),
        (f"in-place edit (read_gguf + edit_in_place + backup) = {in_place_s * 1000:.0f} ms",
         in_place_s < IN_PLACE_TARGET, f"< {IN_PLACE_TARGET * 1000:.0f} ms"),
    ]
    for text, ok, target in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {text} (target {target})")
    return 0 if all(ok for _text, ok, _target in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
