"""Parsing of quantities with units: durations, bandwidths and byte sizes.

Every parser accepts a plain number (in the base unit: seconds, bytes per
second, bytes) or a string such as ``"7.3ms"``, ``"100Mbit/s"`` or ``"4MiB"``,
and raises ``ValueError`` with a message that says what is allowed.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER}|[-+]?inf|nan)\s*([A-Za-zµ/]*)\s*$", re.IGNORECASE)

DURATION_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0}
_BANDWIDTH_UNIT = re.compile(r"^(?:(k|K|M|G|Ki|Mi|Gi)?(bit|b|B)/s|(k|K|M|G)?bps)$")
_PREFIX = {None: 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30}
SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}

DURATION_HELP = "a duration such as 10ms, 250us, 1.5s or a number of seconds"
BANDWIDTH_HELP = "a bandwidth such as 100Mbit/s, 12.5MB/s, a number of bytes/s, or inf"
SIZE_HELP = "a size such as 512B, 64KiB, 4MiB or a whole number of bytes"


def _split(value: object, what: str) -> tuple[float, str]:
    if isinstance(value, bool):
        raise ValueError(f"expected {what}, not a boolean")
    if isinstance(value, (int, float)):
        return float(value), ""
    if not isinstance(value, str):
        raise ValueError(f"expected {what}")
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"expected {what}")
    return float(match.group(1)), match.group(2)


def _unit(units: dict, unit: str, what: str, case_sensitive: bool = False) -> float:
    key = unit if case_sensitive else unit.lower()
    if key not in units:
        raise ValueError(f"unknown unit {unit!r}: expected {what}")
    return units[key]


def parse_duration(value: object) -> float:
    """Seconds from ``value`` (``"10ms"``, ``0.5``, ``"1.5s"``); finite."""
    number, unit = _split(value, DURATION_HELP)
    seconds = number * _unit(DURATION_UNITS, unit, DURATION_HELP)
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration: {DURATION_HELP}")
    return seconds


def parse_bandwidth(value: object) -> float:
    """Bytes per second from ``value``; ``inf`` means an unlimited link.

    A lower-case ``b`` (``bit``, ``bps``) counts bits and an upper-case ``B``
    counts bytes: ``"100Mbit/s"``, ``"100Mb/s"`` and ``"12.5MB/s"`` are all
    12.5e6 bytes per second. A plain number is bytes per second.
    """
    number, unit = _split(value, BANDWIDTH_HELP)
    if math.isnan(number):
        raise ValueError(f"expected {BANDWIDTH_HELP}")
    if not unit:
        return number
    match = _BANDWIDTH_UNIT.match(unit)
    if not match:
        raise ValueError(f"unknown unit {unit!r}: expected {BANDWIDTH_HELP}")
    prefix, base, bps_prefix = match.groups()
    if base is None:  # "Mbps"
        return number * _PREFIX[bps_prefix] / 8
    return number * _PREFIX[prefix] / (1 if base == "B" else 8)


def parse_size(value: object) -> int:
    """Whole bytes from ``value`` (``"512B"``, ``"4MiB"``, ``660``)."""
    number, unit = _split(value, SIZE_HELP)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite size: {SIZE_HELP}")
    total = number * _unit(SIZE_UNITS, unit, SIZE_HELP)
    if total != int(total):
        raise ValueError(f"expected a whole number of bytes: {SIZE_HELP}")
    return int(total)


def format_duration(seconds: float) -> str:
    """A short human form: ``33ms``, ``250us``, ``1.5s``."""
    if seconds == 0:
        return "0s"
    magnitude = abs(seconds)
    for unit, factor in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if magnitude >= factor:
            return f"{seconds / factor:g}{unit}"
    return f"{seconds / 1e-9:g}ns"


def format_bandwidth(bytes_per_s: float) -> str:
    if math.isinf(bytes_per_s):
        return "inf"
    bits = bytes_per_s * 8
    for unit, factor in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= factor:
            return f"{bits / factor:g}{unit}"
    return f"{bits:g}bit/s"
