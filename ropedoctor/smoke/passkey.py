"""Passkey prompts: the landmark/PI/YaRN protocol, and a harder variant whose filler carries numbers.

The classic prompt (Mohtashami & Jaggi 2023, copied by PI, YaRN and LongLoRA) is five parts joined with
newlines: the task, filler up to the needle, the needle line, the rest of the filler, the question. Its filler
has no digits, so a model can find the key by content alone (a linear-interpolated toy model scores ~100% on it
and 3-23% on the harder variant: shared/reference/smoke_test.md section 4.3). The ``digits`` variant puts a
5-digit number into every filler sentence, so only the needle's position tells the key apart.

Lengths are set in tokens of the model's own tokenizer: the filler grows (in characters, as in the originals)
until the tokenized prompt is as long as asked, keeping room for the answer. Depth is the needle's place in the
filler, 0 (right after the task) to 1 (right before the question).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Variant = Literal["classic", "digits"]
VARIANTS: tuple[Variant, ...] = ("classic", "digits")

TASK = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
        "I will quiz you about the important information there.")
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
# The digits variant: the same five sentences, each followed by one that carries a number shaped like a key.
DIGIT_SENTENCES = ("The grass is green. Room {n} is on the left.", "The sky is blue. The bus number is {n}.",
                   "The sun is yellow. The box holds {n} stones.", "Here we go. Gate {n} is open.",
                   "There and back again. The year was {n}.")
QUESTION = "What is the pass key? The pass key is"
KEY_DIGITS = 5  # PI: "a random passkey of 5 random digits"
ANSWER_TOKENS = 12  # greedy decoding budget after the question; enough for 5 digits under any tokenizer


def needle(key: int) -> str:
    return f"The pass key is {key}. Remember it. {key} is the pass key."


def new_key(rng: random.Random) -> int:
    """A key of exactly KEY_DIGITS digits."""
    return rng.randint(10 ** (KEY_DIGITS - 1), 10**KEY_DIGITS - 1)


def filler(variant: Variant, n_chars: int, rng: random.Random) -> str:
    """At least ``n_chars`` characters of filler (whole sentences), deterministic for a given ``rng`` state."""
    parts: list[str] = []
    size = 0
    i = 0
    while size < n_chars:
        part = FILLER if variant == "classic" else DIGIT_SENTENCES[i % len(DIGIT_SENTENCES)].format(n=new_key(rng))
        parts.append(part)
        size += len(part) + 1
        i += 1
    return " ".join(parts)


def prompt_text(variant: Variant, n_chars: int, depth: float, key: int, seed: int) -> str:
    """The prompt with ``n_chars`` characters of filler (cut at a sentence end) and the needle at ``depth``."""
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be within 0..1, got {depth}")
    text = filler(variant, n_chars, random.Random(seed))
    sentences = _sentence_ends(text)
    cut = min(sentences, key=lambda end: abs(end - n_chars)) if sentences else len(text)
    text = text[:cut]
    ends = [0, *(end for end in _sentence_ends(text) if end < len(text)), len(text)]
    split = min(ends, key=lambda end: abs(end - depth * len(text)))
    before, after = text[:split].strip(), text[split:].strip()
    return "\n".join(part for part in (TASK, before, needle(key), after, QUESTION) if part)


def _sentence_ends(text: str) -> list[int]:
    return [m.end() for m in re.finditer(r"[.!?](?= |$)", text)]


@dataclass(frozen=True)
class Passkey:
    """One passkey prompt fitted to a token budget."""

    variant: Variant
    key: int
    depth: float
    text: str
    ids: list[int]  # the prompt's token ids, BOS included when the tokenizer adds it

    @property
    def n_tokens(self) -> int:
        return len(self.ids)


def fit(tokenize: Callable[[str], list[int]], length: int, variant: Variant, depth: float, key: int,
        seed: int, answer_room: int = ANSWER_TOKENS) -> Passkey:
    """The longest prompt whose tokens plus ``answer_room`` fit in ``length`` (YaRN's eval/passkey.py rule).

    Binary search over the filler's character count: a handful of tokenizer calls even at 128K tokens.
    """
    budget = length - answer_room
    shortest = prompt_text(variant, 0, depth, key, seed)
    ids = tokenize(shortest)
    if len(ids) > budget:
        raise ValueError(f"a {length}-token passkey prompt does not fit: the bare prompt is {len(ids)} tokens "
                         f"and the answer needs {answer_room}")
    low, high = 0, max(64, budget * 8)  # a token is rarely over 8 characters of this filler
    best = Passkey(variant, key, depth, shortest, ids)
    while low <= high:
        mid = (low + high) // 2
        text = prompt_text(variant, mid, depth, key, seed)
        ids = tokenize(text)
        if len(ids) <= budget:
            best = Passkey(variant, key, depth, text, ids)
            low = mid + 1
        else:
            high = mid - 1
    return best


def answer(continuation: str) -> int | None:
    """The first integer in the model's continuation (landmark and YaRN score it this way)."""
    match = re.search(r"\d+", continuation)
    return int(match.group()) if match else None
