"""The lab's training loop and its own greedy passkey evaluation (shared by train_tiny and the fine-tunes).

The loss is the mean cross-entropy on answer tokens plus ``other_weight`` times the mean on every other token:
retrieval is the task, and the rest (filler, needle, plain text) keeps the model a language model and teaches the
copying that retrieval needs.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab_data import ANSWER, OTHER, Sequence, SequenceSource
from lab_tokenizer import BOS_ID, EOS_ID

from ropedoctor.smoke import passkey


def llama_config(vocab_size: int, n_ctx: int, *, hidden: int = 128, layers: int = 3, heads: int = 4,
                 intermediate: int = 256) -> dict[str, Any]:
    """config.json of the lab model: Llama, no RoPE scaling, float32."""
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab_size,
        "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": heads, "head_dim": hidden // heads,
        "max_position_embeddings": n_ctx, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": None,
        "initializer_range": 0.02, "attention_bias": False, "mlp_bias": False, "dtype": "float32",
    }


def seed_everything(seed: int, threads: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)


def collate(batch: list[Sequence]) -> tuple[Any, Any, Any]:
    """Right-padded ids, targets and kinds; padding is after every real token, so causal attention never sees it."""
    import torch

    width = max(len(s.ids) for s in batch)
    ids = torch.full((len(batch), width), EOS_ID, dtype=torch.long)
    targets = torch.full((len(batch), width - 1), EOS_ID, dtype=torch.long)
    kinds = torch.zeros((len(batch), width - 1), dtype=torch.long)
    for row, seq in enumerate(batch):
        ids[row, :len(seq.ids)] = torch.tensor(seq.ids)
        targets[row, :len(seq.ids) - 1] = torch.tensor(seq.ids[1:])
        kinds[row, :len(seq.kinds)] = torch.tensor(seq.kinds)
    return ids, targets, kinds


def batch_loss(model: Any, batch: list[Sequence], other_weight: float) -> tuple[Any, float]:
    """(the loss to minimise, the answer tokens' mean cross-entropy)."""
    import torch
    import torch.nn.functional as F

    ids, targets, kinds = collate(batch)
    logits = model(input_ids=ids).logits[:, :-1]
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    nll = nll.view_as(targets)
    answer = nll[kinds == ANSWER].mean()
    other = nll[kinds == OTHER].mean()
    total: torch.Tensor = answer + other_weight * other
    return total, float(answer.detach())


@dataclass
class Schedule:
    steps: int
    lr: float
    warmup: int
    batch_passkey: int
    batch_text: int
    lengths: tuple[int, int]  # each batch's token length is drawn uniformly from this range...
    other_weight: float = 0.2
    grow_until: float = 0.0  # ...whose top grows from 30% of the span to all of it over this share of the steps

    def length_range(self, step: int) -> tuple[int, int]:
        """Short sequences first: copying is learned at short range sooner, and their steps are cheaper."""
        low, high = self.lengths
        if self.grow_until <= 0:
            return low, high
        share = min(1.0, 0.3 + 0.7 * step / (self.grow_until * self.steps))
        return low, low + round((high - low) * share)

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model: Any, source: SequenceSource, schedule: Schedule, log: Callable[[str], None],
          probe: Callable[[int], str] | None = None, probe_every: int = 0) -> None:
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.lr, betas=(0.9, 0.95), weight_decay=0.01)
    model.train()
    started, cpu_started = time.perf_counter(), time.process_time()
    recent: list[float] = []
    for step in range(schedule.steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr_at(step)
        length = source.rng.randint(*schedule.length_range(step))
        batch = source.batch(length, schedule.batch_passkey, schedule.batch_text)
        loss, answer_loss = batch_loss(model, batch, schedule.other_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        recent.append(answer_loss)
        if (step + 1) % 25 == 0 or step + 1 == schedule.steps:
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            line = (f"step {step + 1}/{schedule.steps} answer-loss {sum(recent) / len(recent):.3f} "
                    f"loss {float(loss.detach()):.3f} wall {wall:.0f}s cpu {cpu:.0f}s")
            recent.clear()
            if probe is not None and probe_every and (step + 1) % probe_every == 0:
                model.eval()
                line += " " + probe(step + 1)
                model.train()
            log(line)
    model.eval()


def greedy_passkey_accuracy(model: Any, source: SequenceSource, decode: Callable[[list[int]], str], length: int,
                            variant: passkey.Variant, trials: int) -> float:
    """Greedy decoding of ``passkey.ANSWER_TOKENS`` tokens, scored by ``passkey.answer``, on held-out keys."""
    import torch

    hits = 0
    with torch.inference_mode():
        for _ in range(trials):
            seq, key, prompt_len = source.passkey(length, variant, heldout=True)
            ids = seq.ids[:prompt_len]
            out = model.generate(torch.tensor([ids]), max_new_tokens=passkey.ANSWER_TOKENS, do_sample=False,
                                 pad_token_id=EOS_ID, eos_token_id=None)
            hits += passkey.answer(decode(out[0, prompt_len:].tolist())) == key
    return hits / trials
