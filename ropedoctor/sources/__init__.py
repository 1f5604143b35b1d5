"""Everything that turns a user's PATH into RopeSpecs. Only this package knows input formats."""

from __future__ import annotations

from pathlib import Path

from ropedoctor.errors import InputError

CONFIG_NAME = "config.json"


def resolve_config(path: str) -> Path:
    """The config.json a PATH argument names: the file itself, or a folder's config.json."""
    target = Path(path)
    try:
        if target.is_dir():
            candidate = target / CONFIG_NAME
            if not candidate.exists():
                raise InputError(str(target), f"no {CONFIG_NAME} in this folder")
            return candidate
        if not target.exists():
            raise InputError(str(target), "no such file or directory")
    except PermissionError:  # a folder on the way we may not traverse
        raise InputError(str(target), "permission denied") from None
    except OSError as exc:
        raise InputError(str(target), exc.strerror or str(exc)) from None
    return target
