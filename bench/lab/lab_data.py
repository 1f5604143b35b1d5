"""Training and evaluation sequences for the lab model: the smoke test's passkey prompts and plain text.

Passkey prompts come from ``ropedoctor.smoke.passkey`` itself (``fit`` at a token length, both variants), with the
answer `` {key}.</s>`` appended, so the model learns exactly the task ``ropedoctor smoke`` scores. Plain text
windows keep it a language model, so the smoke test's loss-per-position check has something to measure.

Keys are split by a hash: training never sees a key the lab's own evaluation uses.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from lab_tokenizer import BOS_ID, EOS_ID

from ropedoctor.smoke import passkey

IGNORE, OTHER, ANSWER = 0, 1, 2  # what the loss does with the token predicted at a position


@dataclass(frozen=True)
class Sequence:
    """Token ids and, for each next-token target ``ids[i + 1]``, its kind (IGNORE, OTHER, ANSWER)."""

    ids: list[int]
    kinds: list[int]  # len(ids) - 1


def is_heldout_key(key: int) -> bool:
    """One key in eight (by a multiplicative hash, so not by a digit pattern) is kept for evaluation."""
    return (key * 2654435761 >> 7) % 8 == 0


def draw_key(rng: random.Random, heldout: bool) -> int:
    while True:
        key = passkey.new_key(rng)
        if is_heldout_key(key) == heldout:
            return key


def split_text(text: str, train_share: float = 0.75) -> tuple[str, str]:
    """The text cut at the paragraph break nearest ``train_share`` of it: (training part, held-out part)."""
    target = int(len(text) * train_share)
    breaks = [i for i in range(len(text)) if text.startswith("\n\n", i)] or [target]
    cut = min(breaks, key=lambda i: abs(i - target))
    return text[:cut].strip() + "\n", text[cut:].strip() + "\n"


class SequenceSource:
    """Draws training sequences of a given token length from one seeded random stream."""

    def __init__(self, tokenize: Callable[[str], list[int]], lm_ids: list[int], seed: int) -> None:
        self.tokenize = tokenize  # with BOS, as the smoke test tokenizes
        self.lm_ids = lm_ids  # the training text as one token stream, no BOS
        self.rng = random.Random(seed)
        self.min_length = len(tokenize(passkey.prompt_text("digits", 0, 0.5, 99999, 0))) + passkey.ANSWER_TOKENS

    def passkey(self, length: int, variant: passkey.Variant, heldout: bool = False) -> tuple[Sequence, int, int]:
        """A prompt fitted to ``length`` with its answer; also the key and where the answer starts."""
        key = draw_key(self.rng, heldout)
        prompt = passkey.fit(self.tokenize, length, variant, self.rng.random(), key, self.rng.randrange(2**31))
        answer = [*self.tokenize(f" {key}.")[1:], EOS_ID]
        ids = prompt.ids + answer
        kinds = [OTHER] * (len(prompt.ids) - 1) + [ANSWER] * len(answer)
        return Sequence(ids, kinds), key, len(prompt.ids)

    def text_window(self, length: int) -> Sequence:
        start = self.rng.randrange(0, len(self.lm_ids) - length)
        ids = [BOS_ID, *self.lm_ids[start:start + length - 1]]
        return Sequence(ids, [OTHER] * (len(ids) - 1))

    def batch(self, length: int, n_passkey: int, n_text: int) -> list[Sequence]:
        """``n_passkey`` prompts (variants alternating) and ``n_text`` text windows, all at most ``length`` tokens."""
        out = [self.passkey(length, passkey.VARIANTS[i % 2])[0] for i in range(n_passkey)]
        out += [self.text_window(length) for _ in range(n_text)]
        return out
