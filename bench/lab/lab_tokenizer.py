"""The lab model's tokenizer: a small byte-level BPE whose digits are single tokens.

Single-digit tokens make every 5-digit key exactly five tokens, so the model copies a key digit by digit and
``passkey.answer`` reads the decoded digits back contiguously (the byte-level decoder restores the exact text).
BOS is added by a post-processor, as a Llama tokenizer does, so ``passkey.fit`` and the smoke test count it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2: what the GGUF writer's vocabulary and the config say
BOS_ID, EOS_ID = 1, 2


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A ``tokenizers.Tokenizer`` with at most ``vocab_size`` entries, trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                             special_tokens=[("<s>", BOS_ID)])
    return tokenizer


def save_tokenizer(tokenizer: Any, folder: Path, model_max_length: int) -> None:
    """tokenizer.json and a tokenizer_config.json that ``AutoTokenizer.from_pretrained`` loads."""
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "add_bos_token": True, "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
