"""llama-server's command line, as ``ropedoctor flags --runtime llama.cpp`` emits it, read back as the keyword
arguments of ``llama_cpp.Llama``: the smoke backend runs exactly the flags a user would be told to pass.

Only the flags ``runtimes/llamacpp.py`` emits are known; anything else is an error, so a new flag there cannot be
silently dropped here. ``-np`` is read but must be 1: ``llama_cpp.Llama`` serves one sequence.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# llama.h's enum llama_rope_scaling_type (llama_cpp.LLAMA_ROPE_SCALING_TYPE_*); written out so that parsing argv
# does not load libllama (tests/test_smoke_llamacpp.py checks them against llama_cpp's constants)
ROPE_SCALING_TYPES: dict[str, int] = {"none": 0, "linear": 1, "yarn": 2, "longrope": 3}


def llama_kwargs(argv: list[str]) -> dict[str, Any]:
    """llama-server's argv as ``llama_cpp.Llama`` keyword arguments (what llama-server would set).

    ``--rope-scale F`` becomes ``rope_freq_scale = 1/F`` (llama-server's own conversion), ``--override-kv
    key=type:value`` an entry of ``kv_overrides`` with the typed value. ValueError for a flag it does not know.
    """
    kwargs: dict[str, Any] = {}
    args = iter(argv)
    for flag in args:
        if flag == "-m":
            _value(args, flag)  # the model path: the caller hands llama_cpp.Llama its model_path itself
        elif flag == "-c":
            kwargs["n_ctx"] = int(_value(args, flag))
        elif flag == "-np":
            slots = int(_value(args, flag))
            if slots != 1:
                raise ValueError(f"-np {slots}: llama_cpp.Llama serves one sequence")
        elif flag == "-b":
            kwargs["n_batch"] = int(_value(args, flag))
        elif flag == "-ub":
            kwargs["n_ubatch"] = int(_value(args, flag))
        elif flag == "--rope-scaling":
            name = _value(args, flag)
            if name not in ROPE_SCALING_TYPES:
                raise ValueError(f"--rope-scaling {name}: not one of {', '.join(ROPE_SCALING_TYPES)}")
            kwargs["rope_scaling_type"] = ROPE_SCALING_TYPES[name]
        elif flag == "--rope-scale":
            kwargs["rope_freq_scale"] = 1 / float(_value(args, flag))
        elif flag == "--rope-freq-base":
            kwargs["rope_freq_base"] = float(_value(args, flag))
        elif flag == "--yarn-orig-ctx":
            kwargs["yarn_orig_ctx"] = int(_value(args, flag))
        elif flag == "--override-kv":
            key, value = override_kv(_value(args, flag))
            kwargs.setdefault("kv_overrides", {})[key] = value
        elif flag == "--embedding":
            kwargs["embedding"] = True
        else:
            raise ValueError(f"unexpected llama-server flag {flag}")
    return kwargs


def override_kv(text: str) -> tuple[str, int | float | bool | str]:
    """``llama.context_length=int:1024`` -> ("llama.context_length", 1024); llama.cpp's four value types."""
    key, sep, typed = text.partition("=")
    kind, sep2, value = typed.partition(":")
    if not (sep and sep2 and key):
        raise ValueError(f"--override-kv {text}: expected KEY=TYPE:VALUE")
    if kind == "int":
        return key, int(value)
    if kind == "float":
        return key, float(value)
    if kind == "bool":
        if value not in ("true", "false"):
            raise ValueError(f"--override-kv {text}: a bool is true or false")
        return key, value == "true"
    if kind == "str":
        return key, value
    raise ValueError(f"--override-kv {text}: type {kind!r} is not int, float, bool or str")


def _value(args: Iterator[str], flag: str) -> str:
    try:
        return next(args)
    except StopIteration:
        raise ValueError(f"{flag} needs a value") from None
