"""How users name runtimes on the command line: any case, the program's name as an alias, comma lists.

``--runtime llamacpp,VLLM --runtime llama-server`` -> ``["llama.cpp", "vllm"]``. The canonical names are the keys
of ``RUNTIMES``; this module only maps spellings onto them (imported by the CLI, no runtime module needed).
"""

from __future__ import annotations

from collections.abc import Iterable

from ropedoctor.errors import InputError

# Spellings people type -> the canonical runtime name (lower case; "-", "_" and "." are compared loosely).
ALIASES: dict[str, str] = {
    "llamacpp": "llama.cpp", "llama-server": "llama.cpp", "llama-embedding": "llama.cpp", "llama-cli": "llama.cpp",
    "llamaserver": "llama.cpp", "llama-cpp-python": "llama.cpp",
    "llamabox": "llama-box",
    "text-generation-inference": "tgi", "text-generation-launcher": "tgi",
    "hf": "transformers", "huggingface": "transformers",
}


# Aliases that name one program of a runtime: only that program's emission is shown.
PROGRAMS = ("llama-server", "llama-embedding")


def named_programs(values: Iterable[str]) -> set[str]:
    """The llama.cpp programs the ``--runtime`` values single out (``llama-server``); empty when llama.cpp itself
    (or ``all``) is named, or no program is."""
    parts = {_key(part) for value in values for part in value.split(",") if part.strip()}
    programs = {program for program in PROGRAMS if program in parts}
    whole = {"all", "llama.cpp", "llamacpp", "llama-cpp"} & parts
    return set() if whole else programs


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def runtime_names(values: Iterable[str], known: Iterable[str]) -> list[str]:
    """The canonical names the ``--runtime`` values select, in the order of ``known`` ("all" or none: every one).

    InputError naming the unknown spellings and the known names.
    """
    canonical = list(known)
    by_key = {_key(name): name for name in canonical}
    by_key.update({_key(alias): name for alias, name in ALIASES.items() if name in canonical})
    loose = {key.replace(".", "").replace("-", ""): name for key, name in by_key.items()}
    wanted: set[str] = set()
    unknown: list[str] = []
    parts = [part for value in values for part in value.split(",") if part.strip()]
    for part in parts:
        key = _key(part)
        if key == "all":
            wanted.update(canonical)
            continue
        name = by_key.get(key) or loose.get(key.replace(".", "").replace("-", ""))
        if name is None:
            unknown.append(part.strip())
        else:
            wanted.add(name)
    if unknown:
        raise InputError("--runtime", f"unknown {', '.join(unknown)}; known: {', '.join(canonical)}, all "
                                      f"(any case; also {', '.join(sorted(ALIASES))})")
    return [name for name in canonical if name in wanted] if wanted else canonical
