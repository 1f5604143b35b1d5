"""Tiny real GGUF files for tests, written with gguf.GGUFWriter (the reference writer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np

VT = gguf.GGUFValueType


def write_gguf(path: Path, arch: str, kv: dict[str, tuple[Any, gguf.GGUFValueType]],
               tensors: dict[str, int] | None = None) -> Path:
    """A GGUF with `general.architecture = arch`, the given keys ({arch} is filled in) and F32 tensors of n elements."""
    writer = gguf.GGUFWriter(str(path), arch)
    for key, (value, vtype) in kv.items():
        sub_type = VT.INT32 if vtype == VT.ARRAY else None
        writer.add_key_value(key.format(arch=arch), value, vtype, sub_type=sub_type)
    for name, count in (tensors or {"token_embd.weight": 16}).items():
        writer.add_tensor(name, np.zeros(count, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def llama_kv(context: int = 8192, head_count: int = 32, width: int = 4096,
             extra: dict[str, tuple[Any, gguf.GGUFValueType]] | None = None) -> dict[str, tuple[Any, gguf.GGUFValueType]]:
    """The shape keys of a Llama-architecture model, plus `extra` ({arch}-templated keys)."""
    kv: dict[str, tuple[Any, gguf.GGUFValueType]] = {
        "{arch}.context_length": (context, VT.UINT32),
        "{arch}.embedding_length": (width, VT.UINT32),
        "{arch}.attention.head_count": (head_count, VT.UINT32),
        "{arch}.rope.dimension_count": (width // head_count, VT.UINT32),
    }
    kv.update(extra or {})
    return kv
