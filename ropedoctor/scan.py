"""Finding model folders: under a directory tree, or in the local Hugging Face cache."""

from __future__ import annotations

import os
from pathlib import Path

from ropedoctor.errors import InputError
from ropedoctor.sources import CONFIG_NAME, GGUF_SUFFIX


def model_folders(root: str, hf_cache: bool = False) -> list[Path]:
    """Every folder holding a config.json or a .gguf, in a stable order (symlinked folders not followed)."""
    if hf_cache:
        return _cache_snapshots()
    top = Path(root)
    if not top.is_dir():
        raise InputError(root, "not a directory")
    found = []
    for current, dirs, files in os.walk(top, onerror=None):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if CONFIG_NAME in files or any(f.endswith(GGUF_SUFFIX) for f in files):
            found.append(Path(current))
    return found


def _cache_snapshots() -> list[Path]:
    """Each cached revision of each model repo (huggingface_hub.scan_cache_dir)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir()
    except CacheNotFound as error:
        raise InputError("--hf-cache", f"no Hugging Face cache at {error.cache_dir}") from None
    except (OSError, ValueError) as error:  # HF_HUB_CACHE naming a file, an unreadable folder (issue 15)
        from ropedoctor.sources.hub import hub_cache_dir

        why = error.strerror if isinstance(error, OSError) and error.strerror else "it is not a folder"
        raise InputError("--hf-cache", f"cannot read the Hugging Face cache {hub_cache_dir()} (HF_HUB_CACHE): "
                                       f"{why}") from None
    return sorted(rev.snapshot_path for repo in info.repos if repo.repo_type == "model" for rev in repo.revisions)
