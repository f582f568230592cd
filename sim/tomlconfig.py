"""Config overrides from TOML files: dotted keys or tables, flattened."""

from __future__ import annotations

import tomllib
from typing import Any, Mapping

from .config import InputError


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"link": {"rtt": "10ms"}}`` -> ``{"link.rtt": "10ms"}``."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None


def read_overrides(path: str) -> dict[str, Any]:
    """Dotted-key overrides from a TOML file."""
    return flatten(read_toml(path))
