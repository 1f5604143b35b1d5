"""Train the lab model: a tiny Llama that has learned positions, shipped in fixtures/tiny-trained/.

    nice -n 5 .venv/bin/python bench/lab/train_tiny.py [--steps N] [--seed S] [--out DIR]

A ~0.6M-parameter LlamaForCausalLM (3 layers, hidden 128, 4 heads of 32, RoPE base 10000, no scaling) trained on
CPU at a context of 256 tokens on the smoke test's own passkey prompts (classic and digits variants, built by
``ropedoctor.smoke.passkey.fit`` with this model's tokenizer) mixed with windows of plain English text. Seeded and
deterministic (``torch.use_deterministic_algorithms``) for a given torch build and thread count.

Writes config.json, model.safetensors, tokenizer.json, tokenizer_config.json, model.gguf (float32, through
``tests/llamacpp_logits.write_gguf``) and README.md (command, seed, times, accuracies) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

# Idle OpenMP threads sleep instead of spinning: on a shared machine spinning only burns CPU time.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

from lab_data import SequenceSource, split_text  # noqa: E402
from lab_tokenizer import save_tokenizer, train_tokenizer  # noqa: E402
from lab_train import Schedule, greedy_passkey_accuracy, llama_config, seed_everything, train  # noqa: E402

from ropedoctor.smoke import passkey  # noqa: E402

N_CTX = 256
DEFAULT_TEXT = ROOT / "fixtures" / "text" / "us-constitution.txt"


def tokenizer_corpus(lm_text: str, seed: int) -> list[str]:
    """What the BPE is trained on: prompts of both variants (many keys) and the training text."""
    rng = random.Random(seed)
    prompts = [passkey.prompt_text(v, 400, rng.random(), passkey.new_key(rng), rng.randrange(2**31))
               for v in passkey.VARIANTS for _ in range(50)]
    paragraphs = [p for p in lm_text.split("\n\n") if p.strip()]
    return prompts + paragraphs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "fixtures" / "tiny-trained")
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT, help="plain English text; its first 3/4 is used")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--eval-trials", type=int, default=50)
    args = parser.parse_args(argv)

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from llamacpp_logits import write_gguf

    started, cpu_started = time.perf_counter(), time.process_time()
    seed_everything(args.seed, args.threads)
    train_text, _ = split_text(args.text.read_text(encoding="utf-8"))
    tokenizer = train_tokenizer(tokenizer_corpus(train_text, args.seed), args.vocab)

    def tokenize(text: str) -> list[int]:
        ids: list[int] = tokenizer.encode(text).ids
        return ids

    def decode(ids: list[int]) -> str:
        text: str = tokenizer.decode(ids, skip_special_tokens=True)
        return text

    lm_ids = tokenizer.encode(train_text, add_special_tokens=False).ids
    source = SequenceSource(tokenize, lm_ids, args.seed)
    config = llama_config(args.vocab, N_CTX)
    model = LlamaForCausalLM(LlamaConfig(**config))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params} parameters, vocabulary {tokenizer.get_vocab_size()}, training text {len(lm_ids)} tokens, "
          f"shortest prompt {source.min_length} tokens", flush=True)
    schedule = Schedule(steps=args.steps, lr=args.lr, warmup=100, batch_passkey=12, batch_text=4,
                        lengths=(source.min_length, N_CTX), grow_until=0.5)
    probe_source = SequenceSource(tokenize, lm_ids, args.seed + 1)

    def probe(step: int) -> str:
        accs = {v: greedy_passkey_accuracy(model, probe_source, decode, N_CTX, v, 10) for v in passkey.VARIANTS}
        return " ".join(f"{v} {a:.1f}" for v, a in accs.items())

    train(model, source, schedule, lambda line: print(line, flush=True), probe, probe_every=200)
    train_wall, train_cpu = time.perf_counter() - started, time.process_time() - cpu_started

    eval_source = SequenceSource(tokenize, lm_ids, args.seed + 2)
    accuracy = {v: greedy_passkey_accuracy(model, eval_source, decode, N_CTX, v, args.eval_trials)
                for v in passkey.VARIANTS}
    print(f"held-out passkey accuracy at {N_CTX}: {accuracy}", flush=True)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")  # v4 layout, as published Llamas are
    (out / "generation_config.json").unlink(missing_ok=True)
    save_tokenizer(tokenizer, out, N_CTX)
    write_gguf(out, out / "model.gguf")
    write_readme(out, args, n_params, source.min_length, train_wall, train_cpu, accuracy, torch.__version__)
    print(f"wrote {out} in {time.perf_counter() - started:.0f}s wall, {time.process_time() - cpu_started:.0f}s cpu")
    return 0


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved)


def write_readme(out: Path, args: argparse.Namespace, n_params: int, shortest: int, wall: float, cpu: float,
                 accuracy: dict[passkey.Variant, float], torch_version: str) -> None:
    command = (f"nice -n 5 .venv/bin/python bench/lab/train_tiny.py --seed {args.seed} --steps {args.steps} "
               f"--lr {args.lr} --threads {args.threads} --vocab {args.vocab} "
               f"--text {shown(args.text)}")
    acc = ", ".join(f"{v} {a:.2f}" for v, a in accuracy.items())
    lines: list[Any] = [
        "# tiny-trained: a 0.6M-parameter Llama that has learned positions",
        "",
        "Made by `bench/lab/train_tiny.py` (see `bench/lab/RESULTS.md` for what it shows). Licence: Apache-2.0, "
        "the project's licence.",
        "",
        f"- command: `{command}`",
        f"- seed {args.seed}, {args.steps} steps, torch {torch_version} on CPU, {args.threads} threads",
        f"- training time: {wall:.0f} s wall, {cpu:.0f} s CPU (process time over all threads), on a shared machine",
        f"- {n_params} parameters: 3 layers, hidden 128, 4 heads of 32, intermediate 256, vocabulary {args.vocab}, "
        f"RoPE base 10000, no scaling, trained context {N_CTX} tokens, float32",
        "- data: batches of 12 `ropedoctor.smoke.passkey` prompts (both variants, built by `passkey.fit` with this "
        "tokenizer, uniform depth, keys outside the lab's held-out set) with the answer ` {key}.</s>` appended, "
        f"and 4 windows of the first 3/4 of `{shown(args.text)}` (the last 1/4 is held out for perplexity); each "
        f"batch one length drawn from {shortest}-{N_CTX} tokens, short lengths first (the range's top grows "
        "to 256 over the first half); loss = mean on the answer tokens + 0.2 x mean on every other token; AdamW, "
        f"lr {args.lr} with warm-up and cosine decay",
        f"- greedy passkey accuracy at {N_CTX} tokens on held-out keys ({args.eval_trials} trials each): {acc}",
        "",
        "Files: `config.json`, `model.safetensors`, `tokenizer.json` + `tokenizer_config.json` (byte-level BPE, "
        "digits as single tokens, BOS added), `model.gguf` (the same weights, float32, and the same tokenizer as "
        "llama.cpp's `gpt2` BPE with the `qwen2` pre-tokenizer, which also splits digits one by one: llama.cpp "
        "tokenizes the prompts and the text exactly as transformers does, so the GGUF runs on its own).",
        "",
    ]
    (out / "README.md").write_text("\n".join(str(line) for line in lines))


if __name__ == "__main__":
    raise SystemExit(main())
