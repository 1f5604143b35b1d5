"""The llama.cpp smoke backend: llama-cpp-python running the GGUF with exactly the flags ``ropedoctor flags`` emits.

Parameters. The RoPE and context part is ``runtimes.llamacpp.emit`` for the request's planned RoPE (the
llama-server argv ``ropedoctor flags GGUF --ctx N --runtime llama.cpp`` prints), read back by
``llamacpp_params.llama_kwargs``. The rest is llama-server's defaults, except two settings that only decide how
the work is done: ``flash_attn=True`` (llama-server's ``-fa auto`` turns it on for CPU and CUDA;
llama-cpp-python's flag cannot say "auto", and without it the attention scores of one micro-batch take
n_ubatch x n_ctx x n_head floats, 8 GiB at 128K tokens) and ``n_gpu_layers=-1`` when llama-cpp-python was built
with GPU offload (and ``--device`` is not ``cpu``).

What llama.cpp really set is read from its own log (captured during load, never printed): ``n_ctx``,
``freq_base`` and ``freq_scale`` as the context reports them, ``n_ctx_orig_yarn`` by llama.cpp's rule (the
``yarn_orig_ctx`` passed, else the model's printed value) and the overflow warnings. ``info["matches_flags"]``
says whether they are what the flags meant (``runtimes.llamacpp.rope_flags``).

Memory. ``logits_all=True`` would allocate n_ctx x n_vocab floats (64 GiB at 128K tokens and a 128K vocabulary);
instead every pass goes through the low-level API one chunk of ``n_batch`` tokens at a time, with a logits flag
only on the positions whose logits are used (all of them for ``forward`` and ``token_losses``, the last one for
generation). A chunk's logits are read in place from llama.cpp's output buffer and reduced at once (finiteness
and norms, or the loss of each next token), so at most n_batch x n_vocab floats exist, and llama.cpp owns them.

Tokens. When the GGUF sits in a folder with ``tokenizer.json`` (an HF model folder holding its GGUF), that
tokenizer is used (``tokenizers.Tokenizer``, BOS as ``tokenizer_config.json``'s ``add_bos_token`` says), so
both backends see the same ids for the same text; otherwise llama.cpp's own vocabulary (``Llama.tokenize``, BOS
as the GGUF says).

Peak memory: the process's peak resident set (``VmHWM``, reset when the backend loads) on CPU; with GPU offload
the device memory in use at its highest, sampled after every decode call through torch when it is installed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ropedoctor.errors import InputError
from ropedoctor.smoke.backend import ChunkCallback, ForwardStats, GenerateStats, shared_prefix
from ropedoctor.smoke.progress import TimeUp

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ropedoctor.smoke.request import SmokeRequest

CHUNK = 512  # tokens per llama_decode when flags set no -b: llama-server's -ub default
_CTX_PAD = 256  # llama.cpp pads n_ctx to a multiple of this (llama-context.cpp)
_LOSS_ROWS = 64  # logits rows turned into float64 at once for the log-softmax (64 x n_vocab x 8 bytes)

# llama.cpp's log lines that carry the context and RoPE it really uses (src/llama-context.cpp, llama-model.cpp)
_LOG_VALUES = {
    "n_ctx": re.compile(r"^llama_context: n_ctx\s+=\s+(\d+)", re.M),
    "n_ctx_seq": re.compile(r"^llama_context: n_ctx_(?:seq|per_seq|pre_seq)\s+=\s+(\d+)", re.M),
    "n_batch": re.compile(r"^llama_context: n_batch\s+=\s+(\d+)", re.M),
    "n_ubatch": re.compile(r"^llama_context: n_ubatch\s+=\s+(\d+)", re.M),
    "freq_base": re.compile(r"^llama_context: freq_base\s+=\s+([-+0-9.eE]+)", re.M),
    "freq_scale": re.compile(r"^llama_context: freq_scale\s+=\s+([-+0-9.eE]+)", re.M),
    "flash_attn": re.compile(r"^llama_context: flash_attn\s+=\s+(\S+)", re.M),
    "n_ctx_train": re.compile(r"^print_info: n_ctx_train\s+=\s+(\d+)", re.M),
    "model_n_ctx_orig_yarn": re.compile(r"^print_info: n_ctx_orig_yarn\s+=\s+(\d+)", re.M),
    "model_rope_scaling": re.compile(r"^print_info: rope scaling\s+=\s+(\S+)", re.M),
    "model_freq_base_train": re.compile(r"^print_info: freq_base_train\s+=\s+([-+0-9.eE]+)", re.M),
    "model_freq_scale_train": re.compile(r"^print_info: freq_scale_train\s+=\s+([-+0-9.eE]+)", re.M),
}
_LOG_WARNINGS = re.compile(r"^.*(?:training context overflow|will not be utilized|custom YaRN scaling).*$", re.M)
_KEEP_ALIVE: list[Any] = []  # ctypes log callbacks llama.cpp may still hold


@dataclass(frozen=True)
class Launch:
    """How the GGUF is run: the flags, what llama_cpp.Llama gets, and what the flags mean llama.cpp to use."""

    gguf: Path
    argv: list[str]  # llama-server's argv, as `ropedoctor flags` prints it
    command: str
    kwargs: dict[str, Any]  # llama_cpp.Llama keyword arguments: the flags' plus how the work is done
    expected: dict[str, float | int]  # n_ctx, freq_base, freq_scale (and n_ctx_orig_yarn for YaRN)
    tokenizer_dir: Path | None
    gpu: bool


def launch(request: SmokeRequest, gguf: Path, gpu_offload: bool) -> Launch:
    """The flags ``flags`` emits for ``request.before`` -> ``request.after`` at ``request.ctx``, as Llama kwargs."""
    from ropedoctor.runtimes.base import FlagRequest
    from ropedoctor.runtimes.llamacpp import baked, emit, rope_flags
    from ropedoctor.smoke.llamacpp_params import llama_kwargs

    flag_request = FlagRequest(request.before, request.after, request.ctx, model=str(gguf))
    server = next(e for e in emit(flag_request) if e.program == "llama-server")
    try:
        kwargs = llama_kwargs(server.argv)
    except ValueError as error:  # a flag this reader does not know: a bug here, said plainly
        raise InputError(str(request.model_path), f"cannot run the flags {server.command!r}: {error}") from None
    meant = rope_flags(flag_request, baked(request.before))
    expected: dict[str, float | int] = {"n_ctx": request.ctx, "freq_base": meant.theta,
                                        "freq_scale": 1.0 / meant.factor if meant.scaling in ("linear", "yarn")
                                        else 1.0}
    if meant.scaling == "yarn":
        expected["n_ctx_orig_yarn"] = meant.original
    if request.device == "cpu":
        gpu = False
    elif request.device == "cuda" and not gpu_offload:
        raise InputError("--device cuda", "this llama-cpp-python was built without GPU offload "
                                          "(reinstall it with CMAKE_ARGS=-DGGML_CUDA=on)")
    else:
        gpu = gpu_offload
    batch = int(kwargs.pop("n_batch", CHUNK))
    kwargs.update(n_batch=batch, n_ubatch=min(batch, int(kwargs.pop("n_ubatch", batch))), flash_attn=True,
                  n_gpu_layers=-1 if gpu else 0, logits_all=False, verbose=False)
    # llama-server uses every physical core; llama-cpp-python's default is half the CPUs (1 of 2 on CI)
    kwargs.setdefault("n_threads", _cores())
    kwargs.setdefault("n_threads_batch", kwargs["n_threads"])
    return Launch(gguf, server.argv, server.command, kwargs, expected,
                  tokenizer_folder(request), gpu)


def _cores() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def vocab_only(gguf: Path) -> Any:
    """llama.cpp with the GGUF's vocabulary alone (no weights, no context): tokenizing before the model loads."""
    import llama_cpp

    log: list[str] = []
    try:
        with _captured_log(llama_cpp, log):
            return llama_cpp.Llama(str(gguf), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as error:
        raise InputError(str(gguf), f"llama.cpp cannot read its vocabulary: {_last_error(log) or error}") from None


def tokenizer_folder(request: SmokeRequest) -> Path | None:
    """The HF folder whose tokenizer.json tokenizes for this GGUF: its own folder, else the folder PATH named."""
    for folder in (request.model_path.parent, request.path if request.path.is_dir() else None):
        if folder is not None and (folder / "tokenizer.json").is_file():
            return folder
    return None


def load_llamacpp(path: Path, request: SmokeRequest) -> LlamaCppBackend:
    """The GGUF ``request.model_path`` in llama.cpp with the planned RoPE; InputError when it cannot run."""
    try:
        import llama_cpp
    except ImportError:
        raise InputError("--backend llama.cpp", "needs llama-cpp-python: pip install 'ropedoctor[smoke]'") from None
    gguf = path if path.suffix == ".gguf" else request.model_path
    return LlamaCppBackend(launch(request, gguf, bool(llama_cpp.llama_supports_gpu_offload())))


class LlamaCppBackend:
    """``Backend`` over llama-cpp-python's low-level API (one sequence, chunked decode; module docstring)."""

    name = "llama.cpp"

    def __init__(self, setup: Launch) -> None:
        import llama_cpp
        import numpy as np

        self._np = np
        self._lib = llama_cpp
        self._memory = _PeakMemory(setup.gpu)
        gguf = setup.gguf
        log: list[str] = []
        try:
            with _captured_log(llama_cpp, log):
                self._llm = llama_cpp.Llama(str(gguf), **setup.kwargs)
        except (ValueError, RuntimeError) as error:
            why = _last_error(log) or str(error)
            raise InputError(str(gguf), f"llama.cpp cannot load it with {setup.command!r}: {why}") from None
        self._ctx = self._llm._ctx.ctx
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm._model.model)
        self._n_vocab = int(self._llm.n_vocab())
        self._n_ctx = int(self._llm.n_ctx())
        self._chunk = int(setup.kwargs["n_batch"])
        self._batch = llama_cpp.llama_batch_init(self._chunk, 0, 1)
        self._closed = False
        self._tokenizer = _HFTokenizer(setup.tokenizer_dir) if setup.tokenizer_dir else None
        self.on_chunk: ChunkCallback | None = None
        self._cached: list[int] = []  # the tokens whose K and V sit in the cache, positions 0.. (sequence 0)
        self._n_swa = int(llama_cpp.llama_model_n_swa(self._llm._model.model))
        self.device = "gpu (llama.cpp offload, all layers)" if setup.gpu else "cpu"
        self.dtype = _file_type(int(llama_cpp.llama_model_ftype(self._llm._model.model)))
        printed = parse_log("".join(log))
        mismatches = compare(setup.expected, printed, setup.kwargs)
        self.info: dict[str, Any] = {
            "gguf": str(gguf), "flags": setup.argv, "command": setup.command,
            "llama_kwargs": {k: v for k, v in setup.kwargs.items() if k != "verbose"},
            "tokenizer": f"{setup.tokenizer_dir / 'tokenizer.json'}" if setup.tokenizer_dir
            else "llama.cpp (the GGUF's vocabulary)",
            "printed": printed, "expected": setup.expected, "matches_flags": not mismatches,
            "mismatches": mismatches, "log_warnings": _LOG_WARNINGS.findall("".join(log)),
            "chunk_tokens": self._chunk, "llama_cpp_python": getattr(llama_cpp, "__version__", "unknown"),
            "n_swa": self._n_swa,
        }

    # tokens

    def tokenize(self, text: str) -> list[int]:
        if self._tokenizer is not None:
            return self._tokenizer.encode(text)
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    def detokenize(self, ids: list[int]) -> str:
        if self._tokenizer is not None:
            return self._tokenizer.decode(ids)
        return bytes(self._llm.detokenize(ids)).decode("utf-8", errors="replace")

    # passes

    def forward(self, ids: list[int], buckets: list[tuple[int, int]]) -> ForwardStats:
        np = self._np
        sums = dict.fromkeys(buckets, 0.0)
        counts = dict.fromkeys(buckets, 0)
        finite = True
        started = time.perf_counter()
        for start, logits in self._decode(ids, every_position=True):
            finite = finite and bool(np.isfinite(logits).all())
            if not finite:
                continue  # norms of a broken pass mean nothing; the rest is still evaluated (timing)
            norms = np.concatenate([np.linalg.norm(block, axis=1) for _, block in _row_blocks(logits, len(logits))])
            for low, high in buckets:
                lo, hi = max(low, start), min(high, start + len(logits))
                if lo < hi:
                    sums[(low, high)] += float(norms[lo - start:hi - start].sum())
                    counts[(low, high)] += hi - lo
        seconds = time.perf_counter() - started
        means = {b: sums[b] / counts[b] if counts[b] else math.nan for b in buckets} if finite else {}
        return ForwardStats(len(ids), finite, seconds, means, norm_of="logits")

    def token_losses(self, ids: list[int]) -> list[float]:
        np = self._np
        losses: list[float] = []
        try:
            for start, logits in self._decode(ids, every_position=True):
                rows = min(len(logits), len(ids) - 1 - start)  # the last position predicts nothing
                for r, block in _row_blocks(logits, rows):
                    targets = np.asarray(ids[start + r + 1:start + r + 1 + len(block)], dtype=np.int64)
                    top = block.max(axis=1)
                    log_norm = top + np.log(np.exp(block - top[:, None]).sum(axis=1))
                    losses += (log_norm - block[np.arange(len(block)), targets]).tolist()
        except TimeUp as stop:  # --max-time: the positions scored so far are still a measurement
            stop.partial = losses  # type: ignore[attr-defined]
            raise
        return losses

    def generate(self, ids: list[int], max_new_tokens: int) -> list[int]:
        return self.generate_timed(ids, max_new_tokens).new_ids

    def generate_timed(self, ids: list[int], max_new_tokens: int, *, stop_at_eos: bool = True,
                       reuse_prefix: bool = False) -> GenerateStats:
        if len(ids) + max_new_tokens > self._n_ctx:
            raise ValueError(f"{len(ids)} prompt + {max_new_tokens} new tokens exceed the {self._n_ctx}-token context")
        new: list[int] = []
        started = time.perf_counter()
        reused = self._keep_prefix(ids) if reuse_prefix else 0
        for _ in self._decode(ids, every_position=False, start=reused):
            pass
        token = self._argmax_last()
        prefill = time.perf_counter() - started
        started = time.perf_counter()
        position = len(ids)
        while not (stop_at_eos and self._lib.llama_vocab_is_eog(self._vocab, token)):
            new.append(token)
            if len(new) >= max_new_tokens:
                break
            self._submit([token], position, every_position=False)
            self._cached.append(token)
            position += 1
            token = self._argmax_last()
        # the end-of-generation token itself is not part of the answer (as in the transformers backend)
        return GenerateStats(new, len(ids), prefill, time.perf_counter() - started, reused)

    def _keep_prefix(self, ids: list[int]) -> int:
        """Drop the cache past the prefix ``ids`` shares with it; how many tokens stay (0: start afresh).

        At least the last prompt token is decoded again: its logits give the first answer token. A
        sliding-window cache keeps only the last window (+ a micro-batch) of positions; when what the next
        token needs is gone, llama.cpp cannot continue there (llama-server's rule: the lowest position kept
        must be within ``n_swa`` of the cut), and the prompt is prefilled from scratch.
        """
        keep = min(shared_prefix(self._cached, ids), len(ids) - 1)
        if keep <= 0:
            return 0
        memory = self._lib.llama_get_memory(self._ctx)
        if memory is None or not self._lib.llama_memory_seq_rm(memory, 0, keep, -1):
            return 0
        if self._n_swa > 0 and int(self._lib.llama_memory_seq_pos_min(memory, 0)) > max(0, keep - self._n_swa):
            return 0
        del self._cached[keep:]
        return keep

    def reset(self) -> None:
        """Empty the KV cache (llama.cpp's frequencies are fixed per context: nothing else carries over)."""
        memory = self._lib.llama_get_memory(self._ctx)
        if memory is not None:
            self._lib.llama_memory_clear(memory, True)
        self._cached = []

    def peak_memory_bytes(self) -> int:
        return self._memory.peak()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._lib.llama_batch_free(self._batch)
            self._llm.close()

    # llama_decode, one chunk at a time

    def _decode(self, ids: list[int], *, every_position: bool,
                start: int = 0) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """A pass over ``ids`` (fresh, or from ``start`` when the cache holds ``ids[:start]``): (first position,
        that chunk's logits rows) per chunk, read in place.

        Without ``every_position`` only the last position of the last chunk gets logits (nothing is yielded
        per chunk; ``_argmax_last`` reads it). The rows are valid until the next decode.
        """
        if not ids:
            raise ValueError("no tokens to evaluate")
        if len(ids) > self._n_ctx:
            raise ValueError(f"{len(ids)} tokens exceed the {self._n_ctx}-token context")
        if start <= 0:
            self.reset()
            start = 0
        for begin in range(start, len(ids), self._chunk):
            part = ids[begin:begin + self._chunk]
            last = begin + len(part) == len(ids)
            self._submit(part, begin, every_position=every_position, last_logits=last)
            self._cached += part
            if every_position:
                pointer = self._lib.llama_get_logits(self._ctx)
                yield begin, self._np.ctypeslib.as_array(pointer, shape=(len(part), self._n_vocab))
            if self.on_chunk is not None:
                self.on_chunk(begin + len(part) - start, len(ids) - start)

    def _submit(self, part: list[int], position: int, *, every_position: bool, last_logits: bool = True) -> None:
        batch = self._batch
        batch.n_tokens = len(part)
        for i, token in enumerate(part):
            batch.token[i] = token
            batch.pos[i] = position + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = every_position or (last_logits and i == len(part) - 1)
        code = self._lib.llama_decode(self._ctx, batch)
        self._memory.sample()
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code} at position {position}")

    def _argmax_last(self) -> int:
        row = self._np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self._ctx, -1), shape=(self._n_vocab,))
        return int(row.argmax())


def _row_blocks(logits: npt.NDArray[np.float32], rows: int) -> Iterator[tuple[int, npt.NDArray[np.float64]]]:
    """The first ``rows`` rows in float64, ``_LOSS_ROWS`` at a time: (first row, block)."""
    for r in range(0, rows, _LOSS_ROWS):
        yield r, logits[r:min(r + _LOSS_ROWS, rows)].astype("float64")


class _HFTokenizer:
    """The model folder's tokenizer.json with tokenizer_config.json's BOS rule (what transformers applies)."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config_path = folder / "tokenizer_config.json"
        config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        bos = config.get("bos_token")
        bos = bos.get("content") if isinstance(bos, dict) else bos
        self._bos = self._tokenizer.token_to_id(bos) if isinstance(bos, str) else None
        add = config.get("add_bos_token")
        self._add_bos: bool | None = add if isinstance(add, bool) else None  # None: the post-processor decides

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=True).ids
        if self._bos is None or self._add_bos is None:
            return ids
        has_bos = bool(ids) and ids[0] == self._bos
        if self._add_bos and not has_bos:
            return [self._bos, *ids]
        if not self._add_bos and has_bos:
            return ids[1:]
        return ids

    def decode(self, ids: list[int]) -> str:
        text: str = self._tokenizer.decode(ids, skip_special_tokens=True)
        return text


class _PeakMemory:
    """Peak RSS since load (Linux VmHWM, reset through clear_refs), or the GPU's peak in use with offload."""

    def __init__(self, gpu: bool) -> None:
        self._device_peak = 0
        self._device_free: Callable[[], tuple[int, int]] | None = None
        if gpu:
            try:
                import torch

                if torch.cuda.is_available():
                    self._device_free = torch.cuda.mem_get_info
            except ImportError:
                pass
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # "5": reset the peak RSS to the current RSS
        self.sample()

    def sample(self) -> None:
        if self._device_free is not None:
            free, total = self._device_free()
            self._device_peak = max(self._device_peak, total - free)

    def peak(self) -> int:
        if self._device_free is not None:
            return self._device_peak
        return _peak_rss()


def _peak_rss() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB (macOS: bytes)


class _captured_log:
    """Route llama.cpp's log into ``lines`` while the model and context are created, then give it back."""

    def __init__(self, llama_cpp: Any, lines: list[str]) -> None:
        self._lib = llama_cpp
        self._lines = lines

    def __enter__(self) -> None:
        lines = self._lines

        @self._lib.llama_log_callback  # type: ignore[untyped-decorator]
        def capture(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            lines.append(text.decode("utf-8", errors="replace"))

        _KEEP_ALIVE.append(capture)
        self._lib.llama_log_set(capture, ctypes.c_void_p(0))

    def __exit__(self, *exc: object) -> None:
        from llama_cpp import _logger

        self._lib.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def parse_log(text: str) -> dict[str, Any]:
    """The values llama.cpp printed while loading (the last of each: the context's, not a probe's)."""
    out: dict[str, Any] = {}
    for key, pattern in _LOG_VALUES.items():
        found = pattern.findall(text)
        if found:
            value = found[-1]
            out[key] = value if key in ("flash_attn", "model_rope_scaling") else _number(value)
    return out


def compare(expected: dict[str, float | int], printed: dict[str, Any], kwargs: dict[str, Any]) -> list[str]:
    """Where llama.cpp's printed state differs from what the flags meant (empty: it runs what flags said).

    freq_base is printed with one decimal and freq_scale with %g, hence the tolerances; llama.cpp rounds n_ctx up
    to a multiple of 256 (1000 runs as 1024). n_ctx_orig_yarn is not printed for the context: llama.cpp takes
    ``yarn_orig_ctx`` when it is given, else the model's value.
    """
    seen = dict(printed)
    seen["n_ctx_orig_yarn"] = kwargs.get("yarn_orig_ctx") or printed.get("model_n_ctx_orig_yarn")
    out = []
    for key, want in expected.items():
        got = seen.get(key)
        if got is None:
            ok = False
        elif key == "n_ctx":
            ok = want <= got < want + _CTX_PAD
        else:
            tolerance = {"freq_base": 0.05 + 1e-6 * abs(want), "freq_scale": 1e-5 * abs(want)}.get(key, 0)
            ok = abs(float(got) - float(want)) <= tolerance
        if not ok:
            out.append(f"{key}: llama.cpp uses {got}, the flags mean {want:g}")
    return out


def _number(text: str) -> float | int:
    return int(text) if text.lstrip("-+").isdigit() else float(text)


def _last_error(log: list[str]) -> str:
    lines = [line.strip() for line in "".join(log).splitlines() if "error" in line.lower() or "failed" in line]
    return lines[-1] if lines else ""


def _file_type(code: int) -> str:
    """llama_model_ftype as the GGUF names it: 0 -> "F32", 15 -> "Q4_K_M"."""
    try:
        import gguf

        name = gguf.LlamaFileType(code).name
    except (ImportError, ValueError):
        return f"ftype {code}"
    return name.removeprefix("ALL_").removeprefix("MOSTLY_")

