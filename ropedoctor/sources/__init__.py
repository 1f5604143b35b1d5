"""Everything that turns a user's PATH into RopeSpecs. Only this package knows input formats.

A PATH is a model folder (its config.json and its GGUF files), a config.json, a .gguf file
(the first shard of a split model), or a Hugging Face repo id: ``org/name`` (its config.json)
or ``org/name/file.gguf`` (only the header, fetched with range requests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ropedoctor.errors import InputError
from ropedoctor.spec import RopeSpec

CONFIG_NAME = "config.json"
GGUF_SUFFIX = ".gguf"
_LATER_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


@dataclass(frozen=True)
class Loaded:
    """One source read into a RopeSpec, with what it cost to fetch."""

    spec: RopeSpec
    bytes_fetched: int | None = None  # for hub sources


def is_later_shard(path: Path) -> bool:
    """`name-00002-of-00003.gguf` and later: their metadata lives in shard 1."""
    match = _LATER_SHARD.search(path.name)
    return match is not None and int(match.group(1)) > 1


def resolve(path: str) -> list[Path]:
    """The local files a PATH argument names; [] when PATH is not local (maybe a hub id)."""
    target = Path(path)
    try:
        if target.is_dir():
            if target.name.endswith(GGUF_SUFFIX):
                raise InputError(str(target), "is a directory, not a GGUF file")
            files = [target / CONFIG_NAME] if (target / CONFIG_NAME).is_file() else []
            files += sorted(p for p in target.glob("*" + GGUF_SUFFIX) if p.is_file() and not is_later_shard(p))
            if not files:
                raise InputError(str(target), f"no {CONFIG_NAME} or {GGUF_SUFFIX} file in this folder")
            return files
        if target.exists():
            return [target]
    except PermissionError:  # a folder on the way we may not traverse
        raise InputError(str(target), "permission denied") from None
    except OSError as exc:
        raise InputError(str(target), exc.strerror or str(exc)) from None
    return []


def load_file(path: Path) -> RopeSpec:
    """Read one local config.json (any ``*.json``) or GGUF (``*.gguf``, or any file starting with the GGUF magic,
    such as a blob in Ollama's store); any other file is named as such, not parsed."""
    if path.name.endswith(GGUF_SUFFIX) or (not path.name.lower().endswith(".json") and _has_gguf_magic(path)):
        from ropedoctor.sources.gguf_source import read_gguf_spec

        return read_gguf_spec(path)
    from ropedoctor.sources.hf_config import read_hf_config

    return read_hf_config(path)


def _has_gguf_magic(path: Path) -> bool:
    """Whether a file that is neither ``*.json`` nor ``*.gguf`` is a GGUF; InputError when it is something else."""
    import os

    from ropedoctor.sources.local_file import open_without_waiting

    try:
        fd = open_without_waiting(path)
        try:
            head = os.read(fd, 4) if os.path.isfile(path) else b""
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(str(path), exc.strerror or str(exc)) from None
    if head == b"GGUF":
        return True
    raise InputError(str(path), f"not a {CONFIG_NAME} or {GGUF_SUFFIX} file: ropedoctor reads a model's {CONFIG_NAME}, "
                                f"a {GGUF_SUFFIX} file, or a folder holding them")


def load_remote(path: str, revision: str | None = None) -> Loaded:
    """A Hugging Face repo id (``org/name`` or ``org/name/file.gguf``) read through the hub."""
    from ropedoctor.sources import hub

    ref = hub.parse_hub_path(path, revision)
    if ref is None:
        raise InputError(path, "no such file or directory")
    if ref.filename is None or not ref.filename.endswith(GGUF_SUFFIX):
        from ropedoctor.sources.hf_config import spec_from_config
        from ropedoctor.sources.json_file import read_json_object

        return Loaded(spec_from_config(read_json_object(hub.fetch_config(ref)), ref.source))
    from ropedoctor.sources.gguf_header import read_header
    from ropedoctor.sources.gguf_source import spec_from_header

    remote = hub.open_remote_gguf(ref)
    try:
        header = read_header(remote, path, file_size=remote.size)
    finally:
        remote.close()
    return Loaded(spec_from_header(header), remote.bytes_fetched)
