"""Reading a GGUF header with a Qwen-size tokenizer: ropedoctor against gguf.GGUFReader, in one run.

    python bench/gguf_header.py [--runs N] [--keep DIR]

Writes (gguf.GGUFWriter, in a temp folder) a llama-architecture GGUF with RoPE keys, 152,000 tokens,
their types (INT32) and scores (FLOAT32), 151,000 merges and a few tensors, twice: with 1 MB and with
1 GB of tensor data (a sparse file: the header is written, then the file is extended with truncate()).
Then measures:
  ropedoctor   `ropedoctor check FILE --format json` in a fresh process, when the CLI accepts .gguf;
               until it does, `python -c "from ropedoctor.sources.gguf_header import read_gguf; ..."`
               (median wall time of interleaved runs, and the process's peak RSS)
  GGUFReader   gguf.GGUFReader(FILE) in this process, constructor only (one run: it takes seconds)
Targets: GGUFReader / ropedoctor >= 100x; ropedoctor peak RSS <= 100 MB; 1 GB within 10% of 1 MB.
Exit status 0 when every target is met, 1 otherwise.
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
from typing import Any

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
N_TOKENS = 152_000
N_MERGES = 151_000
MB = 1 << 20


def write_model(path: Path, data_bytes: int) -> int:
    """A llama-style GGUF whose tensor infos describe ``data_bytes`` of F32 data; returns the file size."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("bench-qwen-size-tokenizer")
    writer.add_context_length(131072)
    writer.add_embedding_length(4096)
    writer.add_block_count(32)
    writer.add_feed_forward_length(14336)
    writer.add_head_count(32)
    writer.add_head_count_kv(8)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(128)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    writer.add_rope_scaling_factor(4.0)
    writer.add_rope_scaling_orig_ctx_len(32768)
    writer.add_file_type(0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list([f"tok{i}_{'ab' * (i % 5)}" for i in range(N_TOKENS)])
    writer.add_token_types([1 + i % 3 for i in range(N_TOKENS)])
    writer.add_token_scores([float(-i) for i in range(N_TOKENS)])
    writer.add_token_merges([f"m{i} x{i % 97}" for i in range(N_MERGES)])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    # tensors: a small one, then four F32 [4096, rows] ones sharing the rest of data_bytes
    small = 4096 * 4
    rows = max(1, (data_bytes - small) // 4 // (4096 * 4))
    per_layer = rows * 4096 * 4
    writer.add_tensor_info("output_norm.weight", [4096], np.dtype(np.float32), small)
    for layer in range(4):
        writer.add_tensor_info(f"blk.{layer}.ffn_down.weight", [rows, 4096], np.dtype(np.float32), per_layer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    header_end = path.stat().st_size
    size = -(-header_end // 32) * 32 + small + 4 * per_layer
    with open(path, "r+b") as handle:
        handle.truncate(size)
    return size


def cli_command(path: Path) -> list[str] | None:
    """`ropedoctor check PATH --format json`, if this ropedoctor accepts a .gguf file."""
    script = Path(PY).parent / "ropedoctor"
    argv = [str(script)] if script.exists() else [PY, "-m", "ropedoctor"]
    argv += ["check", str(path), "--format", "json"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, timeout=120)
    if result.returncode not in (0, 1):
        return None
    try:
        json.loads(result.stdout)
    except ValueError:
        return None
    return argv


def reader_command(path: Path) -> list[str]:
    code = f"from ropedoctor.sources.gguf_header import read_gguf; read_gguf({str(path)!r})"
    return [PY, "-c", code]


# The child is started (and its peak RSS read) by a small Python process: a child forked from this
# big one would report this process's RSS as its own peak (Linux keeps the pre-exec high-water mark).
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(json.loads(sys.argv[1]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=sys.argv[2])
elapsed = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps([elapsed, rss, code.returncode, code.stderr.decode(errors="replace")[-2000:]]))
"""


def child_env(pycache: Path) -> dict[str, str]:
    """Children may write .pyc files (into ``pycache``, not the tree), as an installed ropedoctor has them:
    with PYTHONDONTWRITEBYTECODE every run would compile every module again (some 7 ms for gguf_header alone)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one run of ``argv``."""
    out = subprocess.run([PY, "-c", _MEASURE, json.dumps(argv), str(ROOT)], capture_output=True, text=True,
                         check=True, timeout=300, env=env).stdout
    elapsed, rss, code, stderr = json.loads(out)
    if code not in (0, 1):
        raise SystemExit(f"{argv} failed ({code}): {stderr}")
    return float(elapsed), int(rss) * (1 if sys.platform == "darwin" else 1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--keep", type=Path, default=None, help="Write the files here and keep them.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ropedoctor-bench-") as temp:
        folder = args.keep or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        small, big = folder / "bench-1mb.gguf", folder / "bench-1gb.gguf"
        start = time.perf_counter()
        sizes = {small: write_model(small, MB), big: write_model(big, 1 << 30)}
        print(f"wrote 2 files in {time.perf_counter() - start:.1f} s: "
              + ", ".join(f"{p.name} {s / 1e6:,.1f} MB" for p, s in sizes.items()))

        cli = cli_command(small)
        how = "ropedoctor check --format json" if cli else "read_gguf() in a fresh process (CLI does not take .gguf yet)"
        commands = {(name, path): [*cli[:-3], str(path), "--format", "json"] if cli else reader_command(path)
                    for name, path in (("1 MB", small), ("1 GB", big))}
        if cli:  # the reader alone too: the CLI adds its own imports and rules
            commands["read_gguf", small] = reader_command(small)
        env = child_env(folder / "pycache")
        for argv in commands.values():  # warm the page cache and .pyc files
            run_child(argv, env)
        times: dict[tuple[str, Path], list[float]] = {key: [] for key in commands}
        peak = 0
        for _ in range(args.runs):  # interleaved, so machine noise hits all alike
            for key, argv in commands.items():
                elapsed, rss = run_child(argv, env)
                times[key].append(elapsed)
                peak = max(peak, rss)
        median = {key[0]: statistics.median(values) for key, values in times.items()}

        from ropedoctor.sources.gguf_header import read_gguf

        start = time.perf_counter()
        header = read_gguf(small)
        in_process = time.perf_counter() - start
        start = time.perf_counter()
        reader: Any = gguf.GGUFReader(small)
        reader_time = time.perf_counter() - start
        same = (header.data_offset == reader.data_offset and len(header.kv) == len(reader.fields) - 3
                and [t.name for t in header.tensors] == [t.name for t in reader.tensors])

    ratio = reader_time / median["1 MB"]
    spread = abs(median["1 GB"] - median["1 MB"]) / median["1 MB"]
    rows = [
        ("ropedoctor, 1 MB of tensor data", f"{median['1 MB'] * 1000:8.1f} ms", f"median of {args.runs}, {how}"),
        ("ropedoctor, 1 GB of tensor data", f"{median['1 GB'] * 1000:8.1f} ms", f"{spread:.1%} from 1 MB (target <= 10%)"),
    ]
    if "read_gguf" in median:
        rows.append(("read_gguf() in a fresh process", f"{median['read_gguf'] * 1000:8.1f} ms",
                     f"median of {args.runs}, python -c (start-up included)"))
    rows += [
        ("read_gguf() in-process", f"{in_process * 1000:8.1f} ms", "no interpreter start-up"),
        ("gguf.GGUFReader() in-process", f"{reader_time * 1000:8.1f} ms", "constructor only, 1 run"),
        ("GGUFReader / ropedoctor", f"{ratio:8.1f} x", "target >= 100x"),
        ("ropedoctor peak RSS", f"{peak / MB:8.1f} MB", "target <= 100 MB (largest of all runs)"),
    ]
    for name, value, note in rows:
        print(f"{name:<33} {value:>12}   {note}")
    checks = {"ratio": ratio >= 100, "rss": peak <= 100 * MB, "1 GB vs 1 MB": spread <= 0.10, "agrees": same}
    missed = [name for name, ok in checks.items() if not ok]
    print("targets met" if not missed else f"targets MISSED: {', '.join(missed)}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
