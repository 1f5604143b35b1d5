"""Which rules run: ``--select``, ``--extend-select``, ``--ignore``, ``--extend-ignore`` and the same keys in a
config file, with ruff's habits.

The config file is the closest ``ropedoctor.toml``, ``.ropedoctor.toml`` or ``pyproject.toml`` holding a
``[tool.ropedoctor]`` table, looked for from the first local input path upward, else from the working
directory upward. In ``ropedoctor.toml`` the keys may sit at the top level or under ``[tool.ropedoctor]``.

A selector is a code (``RD209``), a code prefix (``RD2``, ``RD20``), a rule name (``base-below-bound``) or
``ALL``. Resolution, as ruff's: start from the default set; the config file's ``select`` replaces it,
``extend-select`` adds, ``ignore``/``extend-ignore`` remove; then the command line does the same on top.
Rules marked ``default=False`` in the registry (advice that fires on many healthy published models: RD209) are
not in the default set; any selector that names them (``RD209``, ``RD2``, ``ALL``) turns them on.

This module is on the start-up path of a plain ``check``: it imports nothing heavy, and reads a TOML file only
when one exists.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropedoctor.errors import InputError

CONFIG_NAMES = ("ropedoctor.toml", ".ropedoctor.toml", "pyproject.toml")
KEYS = ("select", "extend-select", "ignore", "extend-ignore")


@dataclass(frozen=True)
class Selectors:
    """One layer of selectors (a config file, or the command line); ``select`` None leaves the set as it is."""

    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    source: str = "command line"

    @property
    def empty(self) -> bool:
        return self.select is None and not self.extend_select and not self.ignore


@dataclass(frozen=True)
class Settings:
    """The resolved selection and where it came from (the config file, when one was used)."""

    selected: frozenset[str]
    config: Path | None = None
    layers: tuple[Selectors, ...] = field(default=())


def split_selectors(values: Iterable[str] | None) -> tuple[str, ...]:
    """``["RD1,RD2", "RD301"]`` -> ``("RD1", "RD2", "RD301")``: comma lists and repeated options alike."""
    return tuple(part.strip() for value in values or () for part in value.split(",") if part.strip())


def cli_selectors(select: Iterable[str] | None = None, extend_select: Iterable[str] | None = None,
                  ignore: Iterable[str] | None = None, extend_ignore: Iterable[str] | None = None) -> Selectors:
    chosen = split_selectors(select)
    return Selectors(chosen if select else None, split_selectors(extend_select),
                     split_selectors(ignore) + split_selectors(extend_ignore))


def find_config(start: Path) -> Path | None:
    """The closest config file at or above ``start`` (a folder); a pyproject.toml counts only with our table."""
    try:
        folder = start.resolve()
    except OSError:
        return None
    for directory in (folder, *folder.parents):
        for name in CONFIG_NAMES:
            candidate = directory / name
            if not candidate.is_file():
                continue
            if name != "pyproject.toml":
                return candidate
            # parse only a pyproject.toml that may hold the table: most do not, and a plain check stays fast
            if b"tool.ropedoctor" in _read_bytes(candidate) and _tool_table(_load_toml(candidate)) is not None:
                return candidate
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(str(path), exc.strerror or str(exc)) from None


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:  # Python 3.10: the backport, a dependency there
        try:
            import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ModuleNotFoundError:
            raise InputError(str(path), "reading a TOML config needs Python >= 3.11 or the tomli package "
                                        "(pip install tomli)") from None
    try:
        data: dict[str, Any] = tomllib.loads(_read_bytes(path).decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(str(path), f"invalid TOML: {exc}") from None
    return data


def _tool_table(data: dict[str, Any]) -> Any:
    tool = data.get("tool")
    return tool.get("ropedoctor") if isinstance(tool, dict) else None


def read_config(path: Path) -> Selectors:
    """The selectors of one config file; unknown keys and wrong types are errors, as in ruff."""
    data = _load_toml(path)
    table: Any = _tool_table(data)
    if table is None and path.name != "pyproject.toml":
        table = {k: v for k, v in data.items() if k != "tool"}
    if not isinstance(table, dict):
        raise InputError(str(path), "[tool.ropedoctor] must be a table")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise InputError(str(path), f"unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    lists: dict[str, tuple[str, ...]] = {}
    for key, value in table.items():
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise InputError(str(path), f"{key} must be a list of rule codes, e.g. {key} = [\"RD209\"]")
        lists[key] = split_selectors(value)
    return Selectors(lists.get("select"), lists.get("extend-select", ()),
                     lists.get("ignore", ()) + lists.get("extend-ignore", ()), str(path))


def expand(selector: str, rules: Mapping[str, Any], where: str) -> set[str]:
    """The codes a selector names; an unknown selector is an InputError naming where it came from."""
    token = selector.strip()
    if token.upper() == "ALL":
        return set(rules)
    upper = token.upper()
    codes = {code for code in rules if code.startswith(upper)} if upper.startswith("RD") else set()
    if not codes:
        codes = {code for code, r in rules.items() if r.name == token.lower()}
    if not codes:
        raise InputError(where, f"unknown rule selector {token!r}: a code (RD209), a prefix (RD2) or a name "
                                f"(base-below-bound); `ropedoctor rules` lists them")
    return codes


def resolve_selection(rules: Mapping[str, Any], layers: Iterable[Selectors]) -> frozenset[str]:
    """Apply each layer to the default set (every rule with ``default`` true)."""
    selected = {code for code, r in rules.items() if getattr(r, "default", True)}
    for layer in layers:
        if layer.select is not None:
            selected = set()
            for selector in layer.select:
                selected |= expand(selector, rules, layer.source)
        for selector in layer.extend_select:
            selected |= expand(selector, rules, layer.source)
        for selector in layer.ignore:
            selected -= expand(selector, rules, layer.source)
    return frozenset(selected)


def config_start(paths: Iterable[str]) -> Path:
    """Where discovery starts: the first input that exists locally (its folder), else the working directory."""
    for path in paths:
        candidate = Path(path)
        try:
            if candidate.is_dir():
                return candidate
            if candidate.exists():
                return candidate.parent
        except OSError:
            continue
    return Path(os.getcwd())


def load_settings(paths: Iterable[str], cli: Selectors | None = None, isolated: bool = False) -> Settings:
    """The selection for a run over ``paths``: the discovered config file, then the command line."""
    from ropedoctor.rules import RULES

    layers: list[Selectors] = []
    config = None if isolated else find_config(config_start(paths))
    if config is not None:
        layers.append(read_config(config))
    if cli is not None and not cli.empty:
        layers.append(cli)
    return Settings(resolve_selection(RULES, layers), config, tuple(layers))
