"""Shared builders for tests."""

from __future__ import annotations

from sim import build_config
from sim.scenarios.sequential import PURE_NETWORK  # no CPU, no service, no serialization, no window

__all__ = ["PURE_NETWORK", "pure_network"]


def pure_network(**overrides):
    """A config with only propagation delay, plus dotted-key overrides (``a__b`` = ``a.b``)."""
    values = dict(PURE_NETWORK)
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return build_config(values)
