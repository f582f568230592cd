"""Shared builders for tests."""

from __future__ import annotations

from sim import build_config

# No CPU, no service, no serialization, no window: only propagation is left.
PURE_NETWORK = {
    "client.send_cpu": 0,
    "client.ack_cpu": 0,
    "broker.read_cpu": 0,
    "broker.service_time": 0,
    "link.bandwidth": "inf",
    "link.window_bytes": "inf",
}


def pure_network(**overrides):
    """A config with only propagation delay, plus dotted-key overrides (``a__b`` = ``a.b``)."""
    values = dict(PURE_NETWORK)
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return build_config(values)
