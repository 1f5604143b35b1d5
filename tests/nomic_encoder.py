"""One tiny random NomicBert encoder, two runtimes: transformers' native class and llama.cpp (GGUF ``nomic-bert``).

transformers 5.23 ships a native ``nomic_bert`` model (``NomicBertModel``), so it is the oracle; no forward pass is
written here. ``build_tiny_nomic`` writes a config.json in the published nomic-embed-text-v1.5 layout scaled down
8x (``n_positions`` 4x ``max_trained_positions``, ``rotary_emb_base`` 1000, non-causal, SwiGLU, post-norm), a
safetensors file, and a float32 GGUF laid out as llama.cpp's ``NomicBertModel`` converter lays it out: fused
``attn_qkv`` without a Q/K permutation (``LLM_ARCH_NOMIC_BERT`` is a NeoX-RoPE architecture in ``llama_model_rope_type``,
the same rotate-half pairs as transformers), ``ffn_up``/``ffn_gate`` from nomic's ``fc11``/``fc12``, LayerNorm weight and
bias for ``token_embd_norm``, ``attn_output_norm`` and ``layer_output_norm``, ``token_types``, a WordPiece ("bert")
vocabulary, ``attention.causal = false`` and mean pooling.

The native class reads only ``rope_parameters`` and ``max_position_embeddings``; nomic's own keys
(``rotary_scaling_factor``, ``max_trained_positions``) are remote-code keys it ignores. ``transformers_view``
therefore turns a config.json into what nomic's remote code computes with it (``NomicBertDynamicNTKRotaryEmbedding``:
dynamic NTK over ``max_trained_positions``, the same formula as transformers' ``dynamic``), so the oracle runs the
config ``fix`` wrote, with the meaning its model card gives it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt

VT = gguf.GGUFValueType
F32 = npt.NDArray[np.float32]
ARCH = "nomic-bert"

N_EMBD = 64
N_HEAD = 4
HEAD_DIM = N_EMBD // N_HEAD
N_FF = 128
N_LAYER = 2
N_TOKEN_TYPES = 2
LAYER_NORM_EPS = 1e-12
BASE = 1000.0
# BERT's special ids are llama.cpp's WPM defaults; the words after them are what the tests feed.
PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
WORDS = [f"w{i}" for i in range(40)]
N_VOCAB = MASK + 1 + len(WORDS)


@dataclass(frozen=True)
class TinyNomic:
    """Where the two copies of one tiny encoder are."""

    hf_dir: Path
    gguf_path: Path
    n_ctx_train: int


def nomic_config(n_ctx_train: int) -> dict[str, Any]:
    """nomic-embed-text-v1.5's config.json shape, tiny: both nomic's (GPT-2) names and transformers 5's native ones.

    The published file declares ``n_positions`` 8192 = 4x its ``max_trained_positions`` 2048, and the hub copy
    carries ``max_position_embeddings`` = the trained length beside them; this keeps those ratios.
    """
    return {
        "architectures": ["NomicBertModel"], "model_type": "nomic_bert", "activation_function": "swiglu",
        "causal": False, "prenorm": False, "qkv_proj_bias": False, "mlp_fc1_bias": False, "mlp_fc2_bias": False,
        "vocab_size": N_VOCAB, "n_embd": N_EMBD, "n_head": N_HEAD, "n_layer": N_LAYER, "n_inner": N_FF,
        "hidden_size": N_EMBD, "num_attention_heads": N_HEAD, "num_hidden_layers": N_LAYER,
        "intermediate_size": N_FF, "hidden_act": "silu", "type_vocab_size": N_TOKEN_TYPES,
        "layer_norm_epsilon": LAYER_NORM_EPS, "layer_norm_eps": LAYER_NORM_EPS, "pad_token_id": PAD,
        "n_positions": 4 * n_ctx_train, "max_trained_positions": n_ctx_train, "max_position_embeddings": n_ctx_train,
        "rotary_emb_base": BASE, "rotary_emb_fraction": 1.0, "rotary_emb_interleaved": False,
        "rotary_emb_scale_base": None, "rotary_scaling_factor": None,
        "rope_parameters": {"rope_theta": BASE, "rope_type": "default"}, "dtype": "float32",
    }


def transformers_view(config: dict[str, Any]) -> dict[str, Any]:
    """The config as transformers' native class must receive it to compute what nomic's remote code computes.

    ``rotary_scaling_factor: F`` is dynamic NTK with factor F that starts at ``max_trained_positions``; the native
    class expresses that as ``rope_parameters = {"rope_type": "dynamic", "factor": F}`` with
    ``max_position_embeddings`` the trained length. A config that already says so in ``rope_parameters`` is kept.
    """
    view = dict(config)
    factor = config.get("rotary_scaling_factor")
    rope = config.get("rope_parameters") or {}
    if factor and rope.get("rope_type") != "dynamic":
        view["rope_parameters"] = {"rope_type": "dynamic", "factor": float(factor),
                                   "rope_theta": float(config.get("rotary_emb_base", BASE))}
        view["max_position_embeddings"] = config.get("max_trained_positions", config["max_position_embeddings"])
    return view


def _random_weights(model: Any, seed: int) -> None:
    """Weights that make attention sharp (q/k gain 2), so that a wrong RoPE base misses 1e-3 by far."""
    import torch

    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            shape = tuple(param.shape)
            if "LayerNorm" in name or "layernorm" in name:
                value = (1.0 if name.endswith("weight") else 0.0) + 0.1 * rng.standard_normal(shape)
            elif "embeddings" in name:
                value = rng.standard_normal(shape)
            else:
                gain = 2.0 if ("q_proj" in name or "k_proj" in name) else 1.0
                value = rng.standard_normal(shape) * gain / np.sqrt(shape[1])
            param.copy_(torch.from_numpy(value.astype(np.float32)))


def _gguf_tensors(state: dict[str, F32]) -> dict[str, F32]:
    """The native state dict under llama.cpp's nomic-bert tensor names (numpy shapes; ggml reverses them)."""
    names = gguf.TENSOR_NAMES
    tensor = gguf.MODEL_TENSOR
    out = {
        names[tensor.TOKEN_EMBD] + ".weight": state["embeddings.word_embeddings.weight"],
        names[tensor.TOKEN_TYPES] + ".weight": state["embeddings.token_type_embeddings.weight"],
        names[tensor.TOKEN_EMBD_NORM] + ".weight": state["embeddings.LayerNorm.weight"],
        names[tensor.TOKEN_EMBD_NORM] + ".bias": state["embeddings.LayerNorm.bias"],
    }
    for i in range(N_LAYER):
        hf = f"layers.{i}."

        def name(kind: gguf.MODEL_TENSOR, suffix: str = "weight", bid: int = i) -> str:
            return names[kind].format(bid=bid) + "." + suffix

        # nomic's Wqkv is q, k, v stacked on the output axis; NeoX RoPE needs no permutation
        out[name(tensor.ATTN_QKV)] = np.concatenate(
            [state[hf + f"self_attn.{p}_proj.weight"] for p in ("q", "k", "v")], axis=0)
        out[name(tensor.ATTN_OUT)] = state[hf + "self_attn.o_proj.weight"]
        out[name(tensor.ATTN_OUT_NORM)] = state[hf + "post_attention_layernorm.weight"]
        out[name(tensor.ATTN_OUT_NORM, "bias")] = state[hf + "post_attention_layernorm.bias"]
        out[name(tensor.FFN_UP)] = state[hf + "mlp.up_proj.weight"]  # fc11
        out[name(tensor.FFN_GATE)] = state[hf + "mlp.gate_proj.weight"]  # fc12, under silu
        out[name(tensor.FFN_DOWN)] = state[hf + "mlp.down_proj.weight"]  # fc2
        out[name(tensor.LAYER_OUT_NORM)] = state[hf + "post_mlp_layernorm.weight"]
        out[name(tensor.LAYER_OUT_NORM, "bias")] = state[hf + "post_mlp_layernorm.bias"]
    return out


def _wordpiece_vocab(writer: gguf.GGUFWriter) -> None:
    """A BERT vocabulary as the converter writes it: ``[PAD]`` 0, ``[UNK]`` 100, ``[CLS]`` 101, ``[SEP]`` 102,
    ``[MASK]`` 103, whole words with the phantom-space prefix llama.cpp's WPM tokenizer matches."""
    tokens = [f"[unused{i}]" for i in range(N_VOCAB)]
    types = [gguf.TokenType.UNUSED] * N_VOCAB
    for index, special in ((PAD, "[PAD]"), (UNK, "[UNK]"), (CLS, "[CLS]"), (SEP, "[SEP]"), (MASK, "[MASK]")):
        tokens[index], types[index] = special, gguf.TokenType.CONTROL
    for offset, word in enumerate(WORDS):
        tokens[MASK + 1 + offset], types[MASK + 1 + offset] = "\u2581" + word, gguf.TokenType.NORMAL
    writer.add_tokenizer_model("bert")
    writer.add_token_list(tokens)
    writer.add_token_types([int(t) for t in types])
    writer.add_token_type_count(N_TOKEN_TYPES)
    writer.add_bos_token_id(CLS)
    writer.add_sep_token_id(SEP)
    writer.add_pad_token_id(PAD)
    writer.add_unk_token_id(UNK)
    writer.add_mask_token_id(MASK)


def write_gguf(path: Path, state: dict[str, F32], n_ctx_train: int) -> None:
    """A float32 nomic-bert GGUF with the converter's metadata: context_length is the trained length."""
    writer = gguf.GGUFWriter(str(path), ARCH)
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_layer_norm_eps(LAYER_NORM_EPS)
    writer.add_rope_freq_base(BASE)
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _wordpiece_vocab(writer)
    for tensor_name, array in _gguf_tensors(state).items():
        writer.add_tensor(tensor_name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _quiet_transformers() -> None:
    """No weight-loading progress bars in the test output."""
    from transformers.utils import logging

    quiet: Any = logging.disable_progress_bar
    quiet()


def _native_model(config: dict[str, Any]) -> Any:
    """transformers' NomicBertModel (untyped) built from a config dict."""
    from transformers import NomicBertConfig, NomicBertModel

    _quiet_transformers()
    return NomicBertModel(NomicBertConfig.from_dict(transformers_view(config)))


def build_tiny_nomic(tmp: Path, *, n_ctx_train: int = 256, seed: int = 0) -> TinyNomic:
    """The same random encoder as a transformers folder (``tmp/"hf"``) and a GGUF (``tmp/"model.gguf"``)."""
    import torch

    hf_dir = tmp / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    config = nomic_config(n_ctx_train)
    torch.manual_seed(seed)
    model = _native_model(config)
    _random_weights(model, seed)
    model.save_pretrained(hf_dir)
    (hf_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")  # the file under test, not v5's
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    path = tmp / "model.gguf"
    write_gguf(path, state, n_ctx_train)
    return TinyNomic(hf_dir, path, n_ctx_train)


def fixed_copy(model: TinyNomic, folder: Path, ctx: int) -> Path:
    """A copy of the model's transformers folder after `ropedoctor fix --ctx N`: the config under test."""
    import shutil

    from conftest import invoke

    shutil.copytree(model.hf_dir, folder)
    result = invoke("fix", str(folder), "--ctx", str(ctx), "--no-backup")
    assert result.exit_code == 0, result.output
    return folder


def load_transformers(hf_dir: Path) -> Any:
    """A fresh native NomicBertModel (dynamic NTK keeps state between calls) from ``hf_dir``'s config.json,
    read through ``transformers_view``, with eager attention."""
    import torch
    from transformers import NomicBertConfig, NomicBertModel

    _quiet_transformers()
    config = json.loads((hf_dir / "config.json").read_text())
    native = NomicBertConfig.from_dict(transformers_view(config))
    model: Any = NomicBertModel.from_pretrained(hf_dir, config=native, attn_implementation="eager",
                                                dtype=torch.float32)
    model.eval()
    return model


def hf_token_embeddings(hf_dir: Path, tokens: list[int]) -> tuple[F32, F32]:
    """transformers' last hidden states ``[len(tokens), n_embd]`` and the inverse frequencies it used."""
    import torch

    model = load_transformers(hf_dir)
    with torch.no_grad():
        hidden = model(torch.tensor([tokens], dtype=torch.long)).last_hidden_state[0]
    inv_freq: F32 = model.rotary_emb.inv_freq.detach().numpy().astype(np.float32)
    states: F32 = hidden.numpy().astype(np.float32)
    return states, inv_freq


def llamacpp_embeddings(path: Path, tokens: list[int], params: dict[str, Any], *, per_token: bool) -> F32:
    """llama.cpp's embeddings of ``tokens`` as one sequence: per token (pooling none) ``[n, n_embd]``, or the
    GGUF's pooling (mean) ``[1, n_embd]``. ``params`` are ``llama_cpp.Llama`` keyword arguments."""
    import llama_cpp
    from llama_cpp._internals import LlamaBatch

    kwargs: dict[str, Any] = {"n_threads": 1, "n_threads_batch": 1, "verbose": False, "embedding": True,
                              "flash_attn": False, **params}
    if per_token:
        kwargs["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_NONE
    llm = llama_cpp.Llama(model_path=str(path), **kwargs)
    batch: Any = LlamaBatch(n_tokens=len(tokens), embd=0, n_seq_max=1, verbose=False)  # untyped close()
    try:
        batch.add_sequence(tokens, 0, True)
        status = llama_cpp.llama_decode(llm.ctx, batch.batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        if per_token:
            pointer = llama_cpp.llama_get_embeddings(llm.ctx)
            rows = len(tokens)
        else:
            pointer = llama_cpp.llama_get_embeddings_seq(llm.ctx, 0)
            rows = 1
        out: F32 = np.ctypeslib.as_array(pointer, shape=(rows * N_EMBD,)).reshape(rows, N_EMBD).astype(np.float32)
    finally:
        batch.close()
        llm.close()
    return out


def random_tokens(n: int, seed: int = 0) -> list[int]:
    """``[CLS]``, random word ids, ``[SEP]``: ``n`` ids in all."""
    words = np.random.default_rng(seed).integers(MASK + 1, N_VOCAB, size=n - 2)
    return [CLS, *(int(t) for t in words), SEP]


def words_text(n_words: int, seed: int = 0) -> str:
    """Text of ``n_words`` vocabulary words: llama.cpp's WPM tokenizer makes it ``n_words + 2`` tokens."""
    picks = np.random.default_rng(seed).integers(0, len(WORDS), size=n_words)
    return " ".join(WORDS[int(i)] for i in picks)


def max_abs_diff(a: F32, b: F32) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
