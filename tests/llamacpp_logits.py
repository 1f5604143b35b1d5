"""One tiny random model, two runtimes: transformers from config.json, llama.cpp from a GGUF of the same weights.

``build_tiny_llama`` writes a transformers folder (config.json + model.safetensors) and a float32 GGUF holding
the same weights, laid out as ``convert_hf_to_gguf.py`` lays them out. ``hf_logits`` and ``llamacpp_logits``
then run both on the same token ids, so a test can show that a set of llama.cpp RoPE parameters computes the
same model as a config.json RoPE block.

Architectures: ``llama`` (Llama, separate q/k/v and gate/up, Q and K permuted for llama.cpp's interleaved RoPE)
and ``phi3`` (Phi-3, fused qkv and gate_up, NeoX RoPE, so no permutation). Weights are random but scaled so that
attention is sharp (query/key gain 2): position encoding then changes the logits visibly, and a wrong RoPE
setting misses the 1e-3 tolerance by orders of magnitude.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt

VT = gguf.GGUFValueType
F32 = npt.NDArray[np.float32]

N_VOCAB = 300  # unk, bos, eos, 256 bytes, padding
N_EMBD = 64
N_FF = 128
N_LAYER = 2
RMS_EPS = 1e-5
HF_CLASS = {"llama": "LlamaForCausalLM", "phi3": "Phi3ForCausalLM"}


@dataclass
class TinyModel:
    """Where the two copies of one tiny model are, and its shape."""

    arch: str
    hf_dir: Path
    gguf_path: Path
    n_ctx_train: int
    head_dim: int
    n_head: int
    vocab_size: int = N_VOCAB
    config: dict[str, Any] = field(default_factory=dict)


def _tokenizer(writer: gguf.GGUFWriter, n_vocab: int = N_VOCAB) -> None:
    """A minimal SentencePiece ("llama") vocabulary: unk, bos, eos, the 256 byte tokens, unused padding."""
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL, *[gguf.TokenType.BYTE] * 256]
    while len(tokens) < n_vocab:
        tokens.append(f"<pad_{len(tokens)}>")
        types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types([int(t) for t in types])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)


def permute(weights: F32, n_head: int) -> F32:
    """convert_hf_to_gguf's LlamaModel.permute: HF's rotate-half layout to llama.cpp's interleaved pairs."""
    out: F32 = weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]) \
        .swapaxes(1, 2).reshape(weights.shape)
    return out


def _hf_config(arch: str, rope: dict[str, Any], n_ctx_train: int, head_dim: int, n_head: int) -> dict[str, Any]:
    config: dict[str, Any] = {
        "architectures": [HF_CLASS[arch]], "model_type": arch, "vocab_size": N_VOCAB, "hidden_size": N_EMBD,
        "intermediate_size": N_FF, "num_hidden_layers": N_LAYER, "num_attention_heads": n_head,
        "num_key_value_heads": n_head, "max_position_embeddings": n_ctx_train, "rms_norm_eps": RMS_EPS,
        "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False, "bos_token_id": 1,
        "eos_token_id": 2, "pad_token_id": None, "initializer_range": 0.02, "dtype": "float32",
    }
    if arch == "llama":
        config.update({"head_dim": head_dim, "attention_bias": False, "mlp_bias": False})
    else:  # Phi-3: head_dim is hidden_size / num_attention_heads
        config.update({"sliding_window": None, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attention_dropout": 0.0,
                       "partial_rotary_factor": 1.0})
    config.update(rope)
    return config


def _random_weights(model: Any, seed: int) -> None:
    """Replace transformers' init (std 0.02, nearly uniform attention) with weights that make attention sharp."""
    import torch

    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            shape = tuple(param.shape)
            if name.endswith("norm.weight"):
                value = 1.0 + 0.1 * rng.standard_normal(shape)
            elif name.endswith("embed_tokens.weight"):
                value = rng.standard_normal(shape)
            else:
                gain = 2.0 if any(p in name for p in ("q_proj", "k_proj", "qkv_proj")) else 1.0
                value = rng.standard_normal(shape) * gain / np.sqrt(shape[1])
            param.copy_(torch.from_numpy(value.astype(np.float32)))


def _gguf_tensors(arch: str, state: dict[str, F32], n_head: int, n_head_kv: int, n_layer: int) -> dict[str, F32]:
    """HF state dict to GGUF tensor names (and llama's Q/K permutation)."""
    out = {"token_embd.weight": state["model.embed_tokens.weight"], "output_norm.weight": state["model.norm.weight"],
           "output.weight": state["lm_head.weight"]}
    for i in range(n_layer):
        hf, blk = f"model.layers.{i}.", f"blk.{i}."
        out[blk + "attn_norm.weight"] = state[hf + "input_layernorm.weight"]
        out[blk + "ffn_norm.weight"] = state[hf + "post_attention_layernorm.weight"]
        out[blk + "attn_output.weight"] = state[hf + "self_attn.o_proj.weight"]
        out[blk + "ffn_down.weight"] = state[hf + "mlp.down_proj.weight"]
        if arch == "llama":
            out[blk + "attn_q.weight"] = permute(state[hf + "self_attn.q_proj.weight"], n_head)
            out[blk + "attn_k.weight"] = permute(state[hf + "self_attn.k_proj.weight"], n_head_kv)
            out[blk + "attn_v.weight"] = state[hf + "self_attn.v_proj.weight"]
            out[blk + "ffn_gate.weight"] = state[hf + "mlp.gate_proj.weight"]
            out[blk + "ffn_up.weight"] = state[hf + "mlp.up_proj.weight"]
        else:  # phi3: fused tensors as they are (Phi3MiniModel does not permute: NeoX RoPE)
            out[blk + "attn_qkv.weight"] = state[hf + "self_attn.qkv_proj.weight"]
            out[blk + "ffn_up.weight"] = state[hf + "mlp.gate_up_proj.weight"]  # gate first, as ggml's swiglu
    return out


def _quiet_auto_model() -> Any:
    """transformers' AutoModelForCausalLM (untyped), its progress bars off."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    quiet: Any = logging.disable_progress_bar
    quiet()
    return AutoModelForCausalLM


def build_tiny_llama(tmp: Path, rope: dict[str, Any], *, n_ctx_train: int = 256, head_dim: int = 16, seed: int = 0,
                     arch: str = "llama", gguf_kv: dict[str, tuple[Any, gguf.GGUFValueType]] | None = None,
                     tensors: dict[str, F32] | None = None) -> TinyModel:
    """The same random 2-layer model as a transformers folder (``tmp/"hf"``) and a GGUF (``tmp/"model.gguf"``).

    ``rope`` is merged into config.json as is (``rope_theta``, ``rope_scaling``, ``max_position_embeddings``, ...).
    The GGUF gets ``context_length = n_ctx_train``, ``rope.freq_base`` from ``rope_theta`` and
    ``rope.dimension_count = head_dim``; RoPE scaling keys only from ``gguf_kv`` (keys may use ``{arch}``), extra
    tensors (``rope_freqs.weight``, ``rope_factors_long.weight``, ...) only from ``tensors``. A ``gguf_kv`` key
    that the harness writes itself (``{arch}.rope.freq_base``, ``{arch}.context_length``, ...) replaces its value.
    """
    import torch
    from transformers import AutoConfig

    auto = _quiet_auto_model()

    if arch not in HF_CLASS:
        raise ValueError(f"unsupported arch {arch!r}")
    n_head = N_EMBD // head_dim
    hf_dir = tmp / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    config = _hf_config(arch, rope, n_ctx_train, head_dim, n_head)
    (hf_dir / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(seed)
    model = auto.from_config(AutoConfig.from_pretrained(hf_dir), dtype=torch.float32)
    _random_weights(model, seed)
    model.save_pretrained(hf_dir)
    (hf_dir / "config.json").write_text(json.dumps(config, indent=2))  # the config.json under test, not v5's rewrite
    path = tmp / "model.gguf"
    trained = {"{arch}.context_length": (n_ctx_train, VT.UINT32)}  # even when config.json declares more
    write_gguf(hf_dir, path, gguf_kv={**trained, **(gguf_kv or {})}, tensors=tensors)
    return TinyModel(arch, hf_dir, path, n_ctx_train, head_dim, n_head, config=config)


def _bpe_tokenizer(writer: gguf.GGUFWriter, tokenizer_json: Path, n_vocab: int) -> None:
    """A byte-level BPE tokenizer.json (digits split one by one, as the lab's) as llama.cpp's "gpt2" model with
    the "qwen2" pre-tokenizer, whose regex also takes digits one at a time; BOS added as the post-processor does."""
    spec = json.loads(tokenizer_json.read_text())
    vocab: dict[str, int] = dict(spec["model"]["vocab"])
    special = {t["content"]: t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
    vocab.update(special)
    by_id = {i: token for token, i in vocab.items()}
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(n_vocab)]
    types = [gguf.TokenType.CONTROL if t in special else
             gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED for i, t in enumerate(tokens)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([int(t) for t in types])
    writer.add_token_merges(merges)
    for name, add in (("<s>", writer.add_bos_token_id), ("</s>", writer.add_eos_token_id),
                      ("<unk>", writer.add_unk_token_id)):
        if name in special:
            add(special[name])
    writer.add_add_bos_token("<s>" in json.dumps(spec.get("post_processor")))


def write_gguf(hf_dir: Path, path: Path, *, gguf_kv: dict[str, tuple[Any, gguf.GGUFValueType]] | None = None,
               tensors: dict[str, F32] | None = None) -> None:
    """A float32 GGUF of the transformers folder ``hf_dir`` (config.json + model.safetensors), as the converter lays
    it out: ``context_length`` = max_position_embeddings, ``rope.freq_base`` = rope_theta, the byte-level vocabulary
    padded to the model's ``vocab_size``, or the folder's byte-level BPE ``tokenizer.json`` when it has one (llama.cpp
    then tokenizes text as transformers does: tests/test_tiny_trained.py). RoPE scaling keys only from ``gguf_kv`` (keys may use ``{arch}``; a key
    the function writes itself is replaced), extra tensors only from ``tensors``.
    """
    from safetensors.numpy import load_file

    config = json.loads((hf_dir / "config.json").read_text())
    arch = config["model_type"]
    if arch not in HF_CLASS:
        raise ValueError(f"unsupported arch {arch!r}")
    n_embd, n_head = int(config["hidden_size"]), int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    head_dim = int(config.get("head_dim") or n_embd // n_head)
    n_layer = int(config["num_hidden_layers"])
    rope_theta = config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta") or 10000.0
    state = {k: v.astype(np.float32) for k, v in load_file(str(hf_dir / "model.safetensors")).items()}
    if "lm_head.weight" not in state:  # tied embeddings: llama.cpp reads token_embd for the output too
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    writer = gguf.GGUFWriter(str(path), arch)
    kv: dict[str, tuple[Any, gguf.GGUFValueType]] = {
        "{arch}.context_length": (int(config["max_position_embeddings"]), VT.UINT32),
        "{arch}.embedding_length": (n_embd, VT.UINT32), "{arch}.block_count": (n_layer, VT.UINT32),
        "{arch}.feed_forward_length": (int(config["intermediate_size"]), VT.UINT32),
        "{arch}.attention.head_count": (n_head, VT.UINT32), "{arch}.attention.head_count_kv": (n_head_kv, VT.UINT32),
        "{arch}.rope.dimension_count": (head_dim, VT.UINT32), "{arch}.rope.freq_base": (float(rope_theta), VT.FLOAT32),
        "{arch}.attention.layer_norm_rms_epsilon": (float(config.get("rms_norm_eps", RMS_EPS)), VT.FLOAT32),
        **(gguf_kv or {}),  # the caller's keys win (e.g. a freq_base other than config.json's)
    }
    for key, (value, vtype) in kv.items():
        writer.add_key_value(key.format(arch=arch), value, vtype)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if (hf_dir / "tokenizer.json").exists():
        _bpe_tokenizer(writer, hf_dir / "tokenizer.json", int(config["vocab_size"]))
    else:
        _tokenizer(writer, int(config["vocab_size"]))
    for name, array in {**_gguf_tensors(arch, state, n_head, n_head_kv, n_layer), **(tensors or {})}.items():
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def hf_logits(model: TinyModel, tokens: list[int]) -> F32:
    """transformers' logits, float32 ``[len(tokens), vocab]``, eager attention, from a freshly loaded model.

    Loading afresh matters for dynamic NTK and longrope, whose rotary modules keep state between calls.
    """
    import torch

    hf = _quiet_auto_model().from_pretrained(model.hf_dir, attn_implementation="eager", dtype=torch.float32)
    hf.eval()
    with torch.no_grad():
        out = hf(torch.tensor([tokens], dtype=torch.long)).logits[0]
    logits: F32 = out.numpy().astype(np.float32)
    return logits


def llamacpp_logits(model: TinyModel, tokens: list[int], params: dict[str, Any] | None = None) -> F32:
    """llama.cpp's logits for every position, the tokens evaluated as one batch.

    ``params`` are ``llama_cpp.Llama`` keyword arguments (``rope_scaling_type``, ``rope_freq_base``,
    ``rope_freq_scale``, ``yarn_orig_ctx``, ``kv_overrides``, ``n_ctx``, ...). The KV cache is float32 (the
    default f16 cache alone costs ~1e-3) and flash attention is off.
    """
    import llama_cpp

    kwargs: dict[str, Any] = {
        "n_ctx": len(tokens), "n_batch": len(tokens), "n_ubatch": len(tokens), "n_threads": 1,
        "n_threads_batch": 1, "logits_all": True, "verbose": False, "flash_attn": False,
        "type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32, **(params or {}),
    }
    llm = llama_cpp.Llama(model_path=str(model.gguf_path), **kwargs)
    try:
        llm.eval(tokens)
        logits: F32 = np.array(llm.scores[: len(tokens), :], dtype=np.float32)
    finally:
        llm.close()
    return logits


def max_abs_diff(a: F32, b: F32) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def random_tokens(n: int, seed: int = 0) -> list[int]:
    """Token ids past the control tokens (no tokenizer needed)."""
    return [int(t) for t in np.random.default_rng(seed).integers(3, N_VOCAB, size=n)]
