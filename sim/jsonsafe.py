"""Strict JSON out of simulation numbers: never a bare ``NaN`` or ``Infinity``.

Python's ``json`` writes ``NaN``, ``Infinity`` and ``-Infinity``, which are not
JSON and which many readers (``jq``, browsers, other languages) reject. Here an
infinite value is written as the string ``"inf"`` (or ``"-inf"``), the same
word ``--set`` accepts, so a printed config can be fed back as it is; an
undefined value (NaN) is written as ``null``, like a value that does not
exist (a latency percentile of a run with no acked message).
"""

from __future__ import annotations

import json
import math
from typing import Any


def clean(value: Any) -> Any:
    """``value`` with every non-finite float replaced (recursively through dicts, lists and tuples)."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return clean(value.item())
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``value`` (see the module docstring for what non-finite numbers become)."""
    return json.dumps(clean(value), allow_nan=False, **kwargs)
