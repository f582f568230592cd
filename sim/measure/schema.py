"""The measurement table: one CSV schema for ``measure``, ``calibrate`` and ``validate``.

One row per point and repeat. The columns in :data:`COLUMNS` are required
(more are allowed and kept). How a row becomes a simulator config is part of
the model's contract, :func:`row_overrides`:

==========================  ================================================
row                         config
==========================  ================================================
mode = sync                 producer.mode = sync
mode = window, window = C   nonblocking, producer.window = C
mode = limit, limit = L     nonblocking, concurrent_task_limit = L, limiter_poll = 0
mode = limit_poll, L        nonblocking, concurrent_task_limit = L, limiter_poll = 100ms
mode = unbounded            nonblocking, no window, no limit
mode = burst                producer.mode = burst (every task created at the start, then gathered)
rtt_ms                      link.rtt (the PING/PONG p50 through the path)
producers                   clients (one process, one connection each), producers_per_client = 1
partitions                  broker.partitions (round-robin from partition 1)
messages                    producer.messages = messages / producers
ack_wait_s                  producer.ack_wait
payload_bytes               producer.payload_bytes
host_cores                  client.host_cores (the producers' host; all on it)
colocated = true            broker.colocated (the broker shares that host)
broker_cores (optional)     broker.cores (``sim measure --pin-broker``: the broker and the delay
                            proxy bound to cores of their own, the producers to the others,
                            ``host_cores`` of them; ``colocated`` is then false)
added_rtt_target_ms > 0     link.relay = true (the delay proxy is on the path; 0: false, a direct path
                            with link.relay_cpu = link.relay_wakeup_cpu = 0, so a profile's relay
                            costs are not reported as ignored there; without that column,
                            added_rtt_ms says)
==========================  ================================================

Optional columns (:data:`OPTIONAL_COLUMNS`) are read as NaN when a table
lacks them: ``proxy_cpu_us_per_msg``, the delay proxy's CPU per message
(empty without a proxy), which tables written before it was recorded do not
have. It sets no key: the model's ``link.relay_cpu`` is a cost per chunk,
which the proxy's CPU per message is an outcome of, to compare, not to copy.
``client_gc_full``, ``client_gc_full_ms`` and ``client_gc_us_per_msg``: the
producers' full garbage collections during the run (how many, the mean
length of one, and every collection's time per message), from which
``client.gc_messages``, ``client.gc_pause`` and ``client.gc_message_cpu`` were
set (see ``measurements/README.md``); they are not mapped row by row.

The path on loopback has no bandwidth limit and no TCP window to speak of, so
``link.bandwidth`` and ``link.window_bytes`` are ``inf`` unless the
calibrated profile says otherwise; the row's own keys always win.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..config import InputError

COLUMNS = [
    "mode", "rtt_ms", "window", "limit", "producers", "partitions",
    "messages", "ack_wait_s", "payload_bytes",
    "throughput_msgs_per_s", "p50_ms", "p99_ms",
    "timeouts", "stored", "client_cpu_us_per_msg", "server_cpu_us_per_msg", "repeat",
    "host_cores", "colocated",
]
# columns a table may lack (older tables were written without them): read as NaN
OPTIONAL_COLUMNS = ["proxy_cpu_us_per_msg", "client_gc_full", "client_gc_full_ms", "client_gc_us_per_msg",
                    "broker_cores"]
MODES = ("sync", "window", "limit", "limit_poll", "unbounded", "burst")
LIMITER_POLL = "100ms"

# the path of a loopback measurement, under the profile and the row
PATH_DEFAULTS = {"link.bandwidth": "inf", "link.window_bytes": "inf"}


def _number(row: Mapping[str, Any], key: str, where: str) -> float | None:
    value = row.get(key)
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {key} = {value}: expected a number") from None


def _whole(row, key, where, minimum=1) -> int | None:
    value = _number(row, key, where)
    if value is None:
        return None
    if not value.is_integer() or value < minimum:
        raise InputError(f"{where}: {key} = {row[key]}: expected a whole number >= {minimum}")
    return int(value)


def _flag(row, key, where) -> bool | None:
    value = row.get(key)
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0", "yes"):
        return True
    if text in ("false", "0", "0.0", "no"):
        return False
    raise InputError(f"{where}: {key} = {value}: expected true or false")


def row_overrides(row: Mapping[str, Any], where: str = "row") -> dict[str, Any]:
    """The dotted-key config that stands for one measured row (see the module docstring)."""
    mode = str(row.get("mode", "")).strip()
    if mode not in MODES:
        raise InputError(f"{where}: mode = {mode or '(empty)'}: must be one of {', '.join(MODES)}")
    producers = _whole(row, "producers", where) or 1
    messages = _whole(row, "messages", where)
    if messages is None:
        raise InputError(f"{where}: messages: missing")
    rtt_ms = _number(row, "rtt_ms", where)
    if rtt_ms is None or rtt_ms < 0:
        raise InputError(f"{where}: rtt_ms = {row.get('rtt_ms')}: expected a number >= 0")
    out: dict[str, Any] = {
        "clients": producers,
        "producers_per_client": 1,
        "producer.messages": max(1, round(messages / producers)),
        "link.rtt": rtt_ms / 1e3,
        "broker.partitions": _whole(row, "partitions", where) or 1,
        "producer.mode": {"sync": "sync", "burst": "burst"}.get(mode, "nonblocking"),
    }
    if (ack := _number(row, "ack_wait_s", where)) is not None:
        out["producer.ack_wait"] = ack
    if (payload := _whole(row, "payload_bytes", where, minimum=0)) is not None:
        out["producer.payload_bytes"] = payload
    if (cores := _whole(row, "host_cores", where)) is not None:
        out["client.host_cores"] = cores
        out["client.hosts"] = 1
    if (colocated := _flag(row, "colocated", where)) is not None:
        out["broker.colocated"] = colocated and cores is not None
    if (broker_cores := _whole(row, "broker_cores", where)) is not None:  # pinned apart (--pin-broker)
        if out.get("broker.colocated"):
            raise InputError(f"{where}: broker_cores = {broker_cores}: a row with colocated = true shares the "
                             "producers' cores (host_cores); broker_cores is for a broker pinned apart")
        out["broker.cores"] = broker_cores
    added = _number(row, "added_rtt_target_ms", where)
    if added is None:
        added = _number(row, "added_rtt_ms", where)
    if added is not None:  # measured through the delay proxy (sim.measure.proxy), or straight to the broker
        out["link.relay"] = added > 0
        if not added > 0:  # no proxy on this row: the profile's relay cost has nothing to cost
            out["link.relay_cpu"] = out["link.relay_wakeup_cpu"] = 0.0
    if mode == "window":
        window = _whole(row, "window", where)
        if window is None:
            raise InputError(f"{where}: window: mode window needs a window C")
        out["producer.window"] = window
    elif mode in ("limit", "limit_poll"):
        limit = _whole(row, "limit", where)
        if limit is None:
            raise InputError(f"{where}: limit: mode {mode} needs a limit L")
        out["producer.concurrent_task_limit"] = limit
        out["producer.limiter_poll"] = LIMITER_POLL if mode == "limit_poll" else 0
    return out


def read_table(path: str):
    """The measurement CSV as a DataFrame, checked for the required columns."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: not a CSV table: {str(exc).splitlines()[0]}") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; a measurement table has "
                         f"{', '.join(COLUMNS)}")
    if table.empty:
        raise InputError(f"{path}: no rows")
    for column in OPTIONAL_COLUMNS:
        if column not in table.columns:
            table[column] = math.nan
            continue
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = table[column].notna() & numbers.isna()
        if bad.any():
            value = table[column][bad].iloc[0]
            raise InputError(f"{path}: {column} = {value} (row {int(bad.to_numpy().argmax()) + 1}): "
                             "expected a number or empty")
        table[column] = numbers
    return table
