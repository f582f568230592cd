"""Config overrides from TOML files: dotted keys or tables, flattened.

A file that cannot be read, is not UTF-8, is not TOML, nests absurdly deep or
holds no setting at all gives one clear line (an :class:`InputError`, or, through
:func:`warn_if_empty`, a :class:`ConfigWarning` for an empty file, which then changes nothing).
"""

from __future__ import annotations

import tomllib
import warnings
from typing import Any, Mapping

from .errors import ConfigWarning, InputError

MAX_DEPTH = 8  # tables within tables; a config needs two ([link] rtt = ...)


def flatten(table: Mapping[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """``{"link": {"rtt": "10ms"}}`` -> ``{"link.rtt": "10ms"}``."""
    if depth > MAX_DEPTH:
        raise InputError(f"{prefix.rstrip('.')[:60]}...: tables nested more than {MAX_DEPTH} deep; a key is "
                         "at most group.name")
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + ".", depth + 1))
        else:
            out[name] = value
    return out


def read_toml(path: str) -> dict[str, Any]:
    if not str(path).strip():
        raise InputError("the file name is empty: give a TOML file")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to read") from None


def read_overrides(path: str) -> dict[str, Any]:
    """Dotted-key overrides from a TOML file."""
    return flatten(read_toml(path))


def warn_if_empty(path: str, overrides: Mapping[str, Any]) -> None:
    """A config file given on purpose that sets nothing is most likely the wrong file: say so."""
    if not overrides:
        warnings.warn(ConfigWarning(f"{path}: holds no settings; the defaults are used"), stacklevel=2)
