"""Golden runs: 36 systems (every loop, every flow control, both record modes,
open and closed loop, timeouts, cuts, loss, several partitions and service
distributions), whose summaries, per-message times and time series are kept in
``tests/golden/runs.json``. A change that is meant to leave behaviour alone (a
refactoring, a speed-up) must leave every one byte for byte the same.

Regenerate, only for a deliberate change of behaviour, with
``SIM_REGEN_GOLDEN=1 pytest tests/test_golden.py`` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from sim import build_config
from sim.engine import run_records
from sim.model.system import System
from sim.results import Result

GOLDEN = Path(__file__).parent / "golden" / "runs.json"
# the numpy the golden file was recorded with (constraints.txt): byte for byte there
PINNED_NUMPY = next(line.split("==")[1].strip() for line in
                    (Path(__file__).parent.parent / "constraints.txt").read_text().splitlines()
                    if line.startswith("numpy=="))
# the summary keys this file pins (later keys may be added to summaries freely)
KEYS = ("sent", "acked", "timed_out", "ghosts", "stored", "in_flight", "makespan_s", "throughput_msgs_per_s",
        "latency_ms", "latency_from_intended_ms", "utilisation", "simulated_s")

LATENCY_KEYS = ("p50", "p99", "p999", "max", "mean")

BASE = {"producer.messages": 300, "link.rtt": "5ms", "client.send_cpu": "40us", "client.ack_cpu": "10us"}
POLICIES = {
    "sync": {"producer.mode": "sync"},
    "window": {"producer.mode": "nonblocking", "producer.window": 16},
    "limit_poll": {"producer.mode": "nonblocking", "producer.concurrent_task_limit": 20, "producer.limiter_poll": "10ms"},
    "limit_event": {"producer.mode": "nonblocking", "producer.concurrent_task_limit": 20, "producer.limiter_poll": 0},
    "unbounded": {"producer.mode": "nonblocking"},
}
SHAPES = {
    "one": {},
    "many": {"clients": 3, "producers_per_client": 2, "broker.partitions": 3, "producer.partitioning": "key",
             "broker.service_dist": "exponential", "broker.service_time": "60us", "broker.read_cpu": "5us",
             "producer.start_jitter": "1ms"},
    "lossy_open_loop": {"clients": 2, "producer.rate": 1500, "link.loss": 0.05, "link.rtt": "20ms", "link.bandwidth": "20Mbit/s",
                        "broker.service_dist": "lognormal", "broker.service_cv": 1.5, "producer.ack_wait": "30ms",
                        "run.duration": "300ms"},
}
ZERO_LOOKAHEAD = {"link.rtt": 0, "link.bandwidth": "inf"}


def systems() -> dict[str, tuple[dict, str | None]]:
    """name -> (overrides, loop)."""
    out = {}
    for policy, flow in POLICIES.items():
        for shape, extra in SHAPES.items():
            for records in ("full", "summary"):
                out[f"{policy}-{shape}-{records}"] = ({**BASE, **flow, **extra, "run.records": records}, None)
    # every loop forced on one busy system, and the event loop where it is the only one
    busy = {**BASE, **POLICIES["window"], **SHAPES["many"]}
    for loop in ("events", "windows", "vectors"):
        out[f"loop-{loop}"] = (busy, loop)
    out["zero-lookahead"] = ({**BASE, **POLICIES["limit_event"], **SHAPES["many"], **ZERO_LOOKAHEAD}, None)
    out["sync-timeouts"] = ({**BASE, "producer.ack_wait": "4ms", "link.rtt": "5ms"}, "single")
    out["window-1"] = ({**BASE, "producer.mode": "nonblocking", "producer.window": 1, "run.records": "summary"}, None)
    return out


def digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()[:16]


def record(overrides: dict, loop: str | None) -> dict:
    config = build_config(overrides)
    result = Result(config, run_records(System(config), loop=loop))
    summary = {key: result.summary[key] for key in KEYS if key in result.summary}
    for key in ("latency_ms", "latency_from_intended_ms"):  # the percentiles pinned (more may be added)
        if summary.get(key) is not None:
            summary[key] = {name: value for name, value in summary[key].items() if name in LATENCY_KEYS}
    out = {"summary": json.loads(json.dumps(summary, sort_keys=True)), "cut": bool(result.records.cut)}
    series = result.timeseries
    out["timeseries"] = {name: digest(series[name].to_numpy(dtype=np.int64)) for name in
                         ("sent", "acked", "timed_out", "in_flight")}
    if not result.summary_only:
        a = result.arrays
        order = np.argsort(a["producer"], kind="stable")  # message numbers depend on the loop
        out["messages"] = {name: digest(a[name][order]) for name in
                           ("producer", "partition", "intended", "created", "sent", "stored", "resolved", "status")}
    return out


def test_golden_file_covers_what_it_says():
    assert len(systems()) >= 30
    if not GOLDEN.exists() or os.environ.get("SIM_REGEN_GOLDEN"):
        pytest.skip("regenerating")
    assert set(json.loads(GOLDEN.read_text())) == set(systems())


@pytest.mark.parametrize("name", sorted(systems()))
def test_golden_run_is_unchanged(name):
    overrides, loop = systems()[name]
    got = record(overrides, loop)
    if os.environ.get("SIM_REGEN_GOLDEN"):
        data = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        data[name] = got
        GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        return
    want = json.loads(GOLDEN.read_text())[name]
    if np.__version__ == PINNED_NUMPY:
        assert got == want
    else:
        # another numpy (the lowest-versions run) may sum a station's busy time in
        # another order: the last bit of a utilisation moves, nothing else may
        assert close(got, want), (got, want)


def close(got, want) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and set(got) == set(want) and all(close(got[k], want[k]) for k in want)
    if isinstance(want, float) and isinstance(got, float):
        return got == pytest.approx(want, rel=1e-12, abs=1e-300)
    return got == want
