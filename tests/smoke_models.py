"""A tiny random Llama with real tokenizer files, as a transformers folder and a GGUF: what smoke tests run.

``build_tiny_causal`` adds to ``llamacpp_logits.build_tiny_llama`` a byte-level BPE tokenizer made with
``tokenizers`` (trained on the smoke test's own prompt texts, so prompts are a realistic number of tokens), with
``<unk>``, ``<s>``, ``</s>`` at ids 0, 1, 2 like the GGUF's vocabulary, BOS added by a post-processor as Llama's
tokenizer does, and a ``tokenizer_config.json`` that ``AutoTokenizer`` loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llamacpp_logits import N_VOCAB, TinyModel, build_tiny_llama
from ropedoctor.smoke import passkey

SPECIALS = ["<unk>", "<s>", "</s>"]


def _training_text() -> list[str]:
    return [passkey.TASK, passkey.FILLER, passkey.QUESTION, passkey.needle(12345), passkey.needle(67890),
            *(s.format(n=10000 + 7919 * i) for i, s in enumerate(passkey.DIGIT_SENTENCES)), "0123456789"]


def write_tokenizer(folder: Path, vocab_size: int = N_VOCAB, model_max_length: int = 256) -> None:
    """tokenizer.json + tokenizer_config.json of a byte-level BPE with ``vocab_size`` entries."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_training_text(), trainer=trainer)
    if tokenizer.get_vocab_size() > vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.get_vocab_size()} entries, the model {vocab_size}")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                             special_tokens=[("<s>", 1)])
    tokenizer.save(str(folder / "tokenizer.json"))
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "add_bos_token": True, "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def build_tiny_causal(tmp: Path, *, n_ctx_train: int = 256, rope: dict[str, Any] | None = None,
                      seed: int = 0) -> TinyModel:
    """A random 2-layer Llama (hidden 64, head_dim 16) trained-length ``n_ctx_train``: ``tmp/"hf"`` (config.json,
    model.safetensors, tokenizer files) and ``tmp/"model.gguf"`` (float32, same weights).

    ``rope`` is merged into config.json (default: ``rope_theta`` 10000, no scaling).
    """
    model = build_tiny_llama(tmp, rope if rope is not None else {"rope_theta": 10000.0}, n_ctx_train=n_ctx_train,
                             seed=seed)
    write_tokenizer(model.hf_dir, model.vocab_size, n_ctx_train)
    return model
