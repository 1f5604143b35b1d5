"""`ropedoctor smoke` at 32K and 128K tokens on one GPU: a randomly initialised Llama-3.1-8B-shaped model.

    python bench/smoke_gpu.py [--lengths 32768,131072] [--repeats 2] [--json PATH]
    python bench/smoke_gpu.py --tiny [--json PATH]        # the same code path, small shape, float32, any device

The model is built on the GPU from a config dict (Llama-3.1-8B's shape: 32 layers, hidden 4096, 32 heads, 8 KV
heads, MLP 14336, vocabulary 128256, untied head; its llama3 RoPE, factor 8 over 8192 trained tokens, base 5e5,
serving 131072), in bfloat16, with random weights: nothing is downloaded, nothing written to disk. It runs through
the transformers smoke backend (``ropedoctor.smoke.hf_backend.HFBackend``, the object ``ropedoctor smoke`` uses:
the base model, then the LM head and the loss in chunks, SDPA or flash-attention 2) at each length:

  prefill   ``forward`` (the finite check: one pass over N tokens, every logit checked chunk by chunk),
            timed ``--repeats`` times after a warm-up at 2048 tokens; the best time counts
  loss      ``token_losses`` (the perplexity check's pass), timed once
  decode    ``generate_timed`` with 16 new tokens (prefill with a KV cache of N tokens, then decode)

and reports, per length:

* prefill tokens/s = N / seconds;
* model FLOPs utilisation (MFU) = model FLOPs of one forward / seconds / the GPU's measured bf16 matmul rate
  (a 8192 x 8192 x 8192 ``torch.matmul`` timed with CUDA events in the same run). Model FLOPs of one causal
  forward over N tokens:

      FLOPs(N) = 2 * P * N  +  2 * 2 * L * N^2 * d / 2

  P = the parameters in matrix products (all but the embedding table, the LM head included since the finite
  check applies it to every position), L = layers, d = heads x head_dim (the width of QK^T and of AV; 2 products,
  2 FLOPs per multiply-add, halved by the causal mask);
* peak memory (``torch.cuda.max_memory_allocated`` over all three passes, weights included) against ropedoctor's
  estimate (``ropedoctor.smoke.estimate.estimate_for``: weights + KV cache + one layer's activations + one logit
  chunk).

Targets: prefill MFU >= 35% at 32K; peak within 15% of the estimate at every length; 128K completes on one 80 GB
GPU. Exit 0 when all are met, 1 otherwise, 2 without CUDA (one line; ``--tiny`` runs anywhere and only proves the
code path: its figures are printed, not judged).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

LLAMA_31_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "hidden_act": "silu", "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
    "max_position_embeddings": 131072, "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192},
    "bos_token_id": 128000, "eos_token_id": 128001, "attention_bias": False, "mlp_bias": False,
}
# --tiny: the same architecture and RoPE, small enough for a CPU in seconds
TINY: dict[str, Any] = {**LLAMA_31_8B, "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
                        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                        "max_position_embeddings": 1024, "bos_token_id": 1, "eos_token_id": 2,
                        "rope_scaling": {**LLAMA_31_8B["rope_scaling"], "original_max_position_embeddings": 128}}

MFU_TARGET = 0.35  # at 32K
MEMORY_TOLERANCE = 0.15
WARMUP_TOKENS = 2048
DECODE_TOKENS = 16
MATMUL_SIZE = 8192


def fail(why: str) -> int:
    print(f"bench/smoke_gpu.py: error: {why}", file=sys.stderr)
    return 2


def model_flops(params: int, layers: int, width: int, tokens: int) -> float:
    """The docstring's FLOPs(N) of one causal forward."""
    return 2.0 * params * tokens + 2.0 * 2.0 * layers * tokens * tokens * width / 2.0


def matmul_rate(torch: Any, device: str, dtype: Any, size: int, rounds: int = 20) -> float:
    """FLOP/s of a size^3 matmul on ``device`` (CUDA events on a GPU, wall time on CPU), best of ``rounds``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        torch.matmul(a, b)
    best = float("inf")
    for _ in range(rounds):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.matmul(a, b)
            end.record()
            torch.cuda.synchronize()
            seconds = start.elapsed_time(end) / 1000.0
        else:
            began = time.perf_counter()
            torch.matmul(a, b)
            seconds = time.perf_counter() - began
        best = min(best, seconds)
    del a, b
    return 2.0 * size**3 / best


def build_backend(torch: Any, transformers: Any, config: dict[str, Any], device: str, dtype: str, ctx: int) -> Any:
    """The model from its config, random weights, on ``device``, wrapped as the smoke backend."""
    from ropedoctor.smoke.estimate import estimate_for
    from ropedoctor.smoke.hf_backend import HFBackend, _attention

    with tempfile.TemporaryDirectory(prefix="smoke-gpu-") as tmp:
        # through a config.json, as `ropedoctor smoke` loads its planned config
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        hf_config = transformers.AutoConfig.from_pretrained(tmp)
    attention = _attention(device, dtype)
    torch.manual_seed(0)
    with torch.device(device):  # parameters are created on the GPU: no 16 GB detour through host memory
        model = transformers.AutoModelForCausalLM.from_config(hf_config, dtype=getattr(torch, dtype),
                                                              attn_implementation=attention)
    model.eval()
    info = {"attn_implementation": attention, "transformers": transformers.__version__, "torch": torch.__version__}
    # ids are random: no text is tokenized, so the backend gets no tokenizer, only the EOS id it asks for
    no_text = SimpleNamespace(eos_token_id=config["eos_token_id"])
    return HFBackend(model, no_text, torch, device, dtype, info, estimate_for(config, ctx, dtype, []))


def run_length(torch: Any, backend: Any, config: dict[str, Any], dtype: str, ctx: int, repeats: int,
               params: int, rate: float, device: str) -> dict[str, Any]:
    from ropedoctor.smoke.estimate import estimate_for

    rng = random.Random(ctx)
    ids = [rng.randrange(3, config["vocab_size"]) for _ in range(ctx)]
    buckets = [(0, config["rope_scaling"]["original_max_position_embeddings"]), (0, ctx)]
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    finite = True
    for _ in range(repeats):
        backend.reset()
        stats = backend.forward(ids, buckets)
        seconds.append(stats.seconds)
        finite = finite and stats.all_finite
    backend.reset()
    began = time.perf_counter()
    losses = backend.token_losses(ids)
    loss_seconds = time.perf_counter() - began
    backend.reset()
    decode = backend.generate_timed(ids[: ctx - DECODE_TOKENS], DECODE_TOKENS, stop_at_eos=False)
    peak = backend.peak_memory_bytes()
    estimate = estimate_for(config, ctx, dtype, [])
    best = min(seconds)
    flops = model_flops(params, config["num_hidden_layers"],
                        config["num_attention_heads"] * config["head_dim"], ctx)
    return {
        "ctx": ctx, "finite": finite, "prefill_seconds": best, "prefill_seconds_all": seconds,
        "prefill_tokens_per_s": ctx / best, "model_flops": flops, "achieved_flops_per_s": flops / best,
        "mfu": flops / best / rate, "loss_seconds": loss_seconds, "loss_tokens_per_s": (ctx - 1) / loss_seconds,
        "mean_loss": sum(losses) / len(losses),
        "decode_tokens_per_s": (len(decode.new_ids) - 1) / decode.decode_seconds if decode.decode_seconds else None,
        "decode_prefill_tokens_per_s": decode.prompt_tokens / decode.prefill_seconds,
        "peak_memory_bytes": peak, "estimate_bytes": estimate.total, "estimate": estimate.as_json(),
        "peak_over_estimate": peak / estimate.total,
    }


def judge(rows: list[dict[str, Any]], lengths: list[int], tiny: bool) -> dict[str, Any]:
    if tiny:
        return {"judged": False, "why": "--tiny proves the code path; targets apply to the 8B shape on a GPU"}
    at_32k = next((r for r in rows if r["ctx"] == 32768), None)
    return {
        "judged": True,
        "mfu_32k": None if at_32k is None else at_32k["mfu"] >= MFU_TARGET,
        "memory": all(abs(r["peak_over_estimate"] - 1) <= MEMORY_TOLERANCE for r in rows),
        "128k_completes": 131072 not in lengths or any(r["ctx"] == 131072 and r["finite"] for r in rows),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'ctx':>7}  {'prefill tok/s':>13}  {'MFU':>6}  {'loss tok/s':>10}  {'decode tok/s':>12}  " \
           f"{'peak GiB':>8}  {'estimate GiB':>12}  {'peak/est':>8}"
    lines = [head]
    for r in rows:
        decode = f"{r['decode_tokens_per_s']:.1f}" if r["decode_tokens_per_s"] else "-"
        lines.append(f"{r['ctx']:>7}  {r['prefill_tokens_per_s']:>13.0f}  {r['mfu']:>6.1%}  "
                     f"{r['loss_tokens_per_s']:>10.0f}  {decode:>12}  {r['peak_memory_bytes'] / 2**30:>8.2f}  "
                     f"{r['estimate_bytes'] / 2**30:>12.2f}  {r['peak_over_estimate']:>8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lengths", default=None, help="comma-separated token counts (default 32768,131072; "
                                                        "--tiny: 256,512)")
    parser.add_argument("--repeats", type=int, default=2, help="timed prefill passes per length (best counts)")
    parser.add_argument("--tiny", action="store_true", help="small shape, float32, any device: the code path only")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        lengths = [int(x) for x in (args.lengths or ("256,512" if args.tiny else "32768,131072")).split(",")]
    except ValueError:
        return fail(f"--lengths {args.lengths!r}: expected comma-separated integers")
    if args.repeats < 1 or any(n < 16 for n in lengths):
        return fail("--repeats must be >= 1 and every length >= 16")
    try:
        import torch
        import transformers
    except ImportError:
        return fail("needs torch and transformers: pip install 'ropedoctor[smoke]'")
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        return fail(f"CUDA is not available (torch {torch.__version__}); this bench needs a GPU "
                    "(--tiny runs the code path on CPU)")
    device = "cuda" if cuda else "cpu"
    dtype = "float32" if args.tiny else "bfloat16"
    config = TINY if args.tiny else LLAMA_31_8B
    hf_logging: Any = transformers.utils.logging
    hf_logging.set_verbosity_error()

    rate = matmul_rate(torch, device, getattr(torch, dtype), 1024 if args.tiny else MATMUL_SIZE)
    backend = build_backend(torch, transformers, config, device, dtype, max(lengths))
    params = sum(p.numel() for name, p in backend.model.named_parameters() if "embed_tokens" not in name)
    backend.forward([1] * min(WARMUP_TOKENS, max(lengths)), [])  # kernels chosen, allocator warm
    rows = []
    for ctx in lengths:
        try:
            rows.append(run_length(torch, backend, config, dtype, ctx, args.repeats, params, rate, device))
        except Exception as exc:  # an OOM at 128K is a result to report, not a traceback
            print(f"ctx {ctx}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                  file=sys.stderr)
            break
    name = torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine()
    verdict = judge(rows, lengths, args.tiny)
    doc = {"device": name, "dtype": dtype, "shape": "tiny" if args.tiny else "Llama-3.1-8B", "config": config,
           "matmul_flops_per_s": rate, "model_params_in_matmuls": params, "rows": rows, "targets": verdict,
           "command": " ".join(["python", "bench/smoke_gpu.py", *(argv if argv is not None else sys.argv[1:])])}
    print(f"device {name} · {dtype} · measured matmul {rate / 1e12:.1f} TFLOP/s · "
          f"{params / 1e9:.2f} B params in matmuls · {backend.info['attn_implementation']}")
    print(table(rows))
    print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in verdict.items()
                                  if k not in ("judged", "why")) if verdict["judged"] else verdict["why"])
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if len(rows) < len(lengths):
        return 1
    return 0 if not verdict["judged"] or all(v for k, v in verdict.items() if k not in ("judged", "why")) else 1


if __name__ == "__main__":
    sys.exit(main())
