"""Invariants as properties, over random small systems drawn by hypothesis.

Each system is small (a few producers, tens of messages) so that well over
1,000 of them run in every CI run. The systems are drawn to hit the hard
cases on purpose: exact ties (round costs, zero costs, round trips that are
whole milliseconds), deadlines equal to round trips, duration cuts, bin edges,
loss with a small MSS, open-loop rates and exponential service.

Properties:

* conservation: every message created is in exactly one state, and the
  summary's counts add up;
* every loop that can run a system (single stream, events, windows, vectors)
  gives the same per-message times, to 1e-9 s, and the same states;
* summary mode equals full mode in counts and in the time series;
* the SimPy model (``sim.simpy_model``, the oracle) agrees with the default
  loop on the smallest systems.

The draws are derandomized, so CI sees the same systems every run; set
``SIM_PROPERTIES=explore`` to draw new ones (and more of them) while hunting.
Disagreements the properties found are kept as regular reproducers at the
bottom of this file. While one is open, it is listed in the project notes and
marked ``xfail(strict=True)`` with its reason, so its fix shows up as an
unexpected pass.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import build_config
from sim.engine import ACKED, IN_FLIGHT, TIMED_OUT, run_records
from sim.model.system import System
from sim.results import Result

EXPLORE = os.environ.get("SIM_PROPERTIES") == "explore"
EXAMPLES = int(os.environ.get("SIM_PROPERTIES_EXAMPLES", "3000" if EXPLORE else "1000"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not EXPLORE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LOOPS = ("single", "events", "windows", "vectors")
TOLERANCE_S = 1e-9


def _duration(draw, scale: float, ties: bool = True) -> float:
    """A time: often a round number (ties), sometimes zero, sometimes irrational-looking (only that without ties)."""
    kind = draw(st.sampled_from(["zero", "round", "round", "real"])) if ties else "real"
    if kind == "zero":
        return 0.0
    if kind == "round":
        return draw(st.integers(1, 20)) * scale
    return draw(st.floats(0.05, 20.0, allow_nan=False)) * scale


@st.composite
def systems(draw, max_producers: int = 4, max_messages: int = 40, ties: bool = True) -> dict:
    """Dotted-key overrides of one small valid system.

    ``ties=False`` draws every time as an irrational-looking real and jitters every start, so that no two
    events of different streams fall at the same instant (which order wins a tie is then never asked).
    """
    clients = draw(st.integers(1, 3))
    per_client = draw(st.integers(1, max(1, max_producers // clients)))
    mode = draw(st.sampled_from(["sync", "nonblocking", "nonblocking"]))
    ov: dict = {
        "clients": clients,
        "producers_per_client": per_client,
        "producer.mode": mode,
        "producer.messages": draw(st.integers(1, max_messages)),
        "producer.payload_bytes": draw(st.sampled_from([0, 100, 512, 1400, 3000])),
        "producer.overhead_bytes": draw(st.sampled_from([0, 191])),
        "client.send_cpu": _duration(draw, 10e-6, ties),
        "client.ack_cpu": _duration(draw, 10e-6, ties),
        "link.rtt": draw(st.sampled_from([0.0, 1e-3, 2e-3, 10e-3])) if ties and draw(st.booleans())
        else draw(st.floats(1e-5, 20e-3)),
        "link.bandwidth": draw(st.sampled_from([math.inf, 1.25e6, 12.5e6, 125e6])),
        "broker.partitions": draw(st.integers(1, 3)),
        "broker.read_cpu": _duration(draw, 1e-6, ties),
        "broker.service_time": _duration(draw, 10e-6, ties),
        "broker.service_dist": draw(st.sampled_from(["deterministic", "deterministic", "exponential", "lognormal"])),
        "broker.ack_bytes": draw(st.sampled_from([0, 103])),
        "run.seed": draw(st.integers(0, 2**31)),
        "run.bin": draw(st.sampled_from([1e-3, 5e-3, 0.1])),
    }
    if draw(st.booleans()):
        ov["link.window_bytes"] = draw(st.sampled_from([1460, 3000, 20_000, None]))
    if draw(st.integers(0, 3)) == 0:
        ov["link.loss"] = draw(st.sampled_from([1e-3, 0.05, 0.5]))
        ov["link.mss_bytes"] = draw(st.sampled_from([88, 536, 1460]))
    partitioning = draw(st.sampled_from(["round_robin", "key", "fixed"]))
    ov["producer.partitioning"] = partitioning
    if partitioning == "fixed":
        ov["producer.partition"] = draw(st.integers(1, ov["broker.partitions"]))
    if partitioning == "key":
        ov["producer.key_space"] = draw(st.integers(1, 64))
    if ov["broker.service_dist"] == "lognormal":
        ov["broker.service_cv"] = draw(st.floats(0.2, 3.0))
    if mode == "nonblocking":
        flow = draw(st.sampled_from(["window", "limit", "unbounded"]))
        if flow == "window":
            ov["producer.window"] = draw(st.integers(1, 12))
        elif flow == "limit":
            ov["producer.concurrent_task_limit"] = draw(st.integers(1, 16))
            ov["producer.limiter_poll"] = draw(st.sampled_from([0.0, 1e-3, 5e-3]))
    if draw(st.integers(0, 3)) == 0:
        ov["producer.rate"] = draw(st.sampled_from([500.0, 2000.0, 20_000.0]))
        ov["producer.arrivals"] = draw(st.sampled_from(["poisson", "constant"])) if ties else "poisson"
    # a deadline that is often a whole multiple of the round trip: ties between an ack and its deadline
    if draw(st.booleans()):
        ov["producer.ack_wait"] = draw(st.sampled_from([1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3])) if ties \
            else draw(st.floats(1e-3, 50e-3))
    if not ties or draw(st.booleans()):
        ov["producer.start_jitter"] = draw(st.sampled_from([1e-3, 1e-4])) if ties and draw(st.booleans()) \
            else draw(st.floats(1e-6, 5e-3))
    if draw(st.integers(0, 3)) == 0:
        ov["run.duration"] = draw(st.sampled_from([1e-3, 5e-3, 20e-3])) if ties and draw(st.booleans()) \
            else draw(st.floats(1e-4, 0.05))
    if not ties:  # hypothesis likes to reuse a value for several keys: make every time key distinct
        for i, key in enumerate(TIME_KEYS):
            if isinstance(ov.get(key), float) and ov[key] > 0:
                ov[key] *= 1 + 1e-3 * ((i + 1) * math.sqrt(2) % 1)
    return ov


TIME_KEYS = ("client.send_cpu", "client.ack_cpu", "link.rtt", "broker.read_cpu", "broker.service_time",
             "producer.ack_wait", "producer.start_jitter", "run.duration")


# -- helpers ---------------------------------------------------------------------------------------------


def run_loop(config, loop: str | None):
    """The records of ``loop`` on ``config``, or None when that loop cannot run this system."""
    system = System(config)
    if loop == "single":
        from sim.loops.single import applies, run_single_stream

        # the single-stream loop hands a run with a timeout to the general loop (None)
        return run_single_stream(system) if applies(system) else None
    if loop == "windows" or loop == "vectors":
        from sim.engine import allowed_loops

        if loop not in allowed_loops(system):  # no lookahead, or (vectors) a TCP window in bytes that may bind
            return None
    return run_records(system, loop=loop)


def assert_conserved(config, result: Result) -> None:
    s = result.summary
    assert s["acked"] + s["timed_out"] + s["in_flight"] + s["dropped"] == s["sent"], s
    if config.run.duration is None:
        assert s["sent"] == config.producer.messages * config.clients * config.producers_per_client
        assert s["in_flight"] == 0
    if s["in_flight"]:
        assert result.records.cut
    assert s["stored"] >= s["acked"]
    assert s["ghosts"] <= s["timed_out"]
    if not result.summary_only:
        a = result.arrays
        status = a["status"]
        assert set(np.unique(status)) <= {IN_FLIGHT, ACKED, TIMED_OUT}
        acked = status == ACKED
        stored = ~np.isnan(a["stored"])
        assert np.all(stored[acked]), "an acked message was never stored"
        assert np.isnan(a["resolved"][status == IN_FLIGHT]).all()
        assert not np.isnan(a["resolved"][status != IN_FLIGHT]).any()


def differences(config, a, b) -> list[str]:
    """Where two loops' records differ (empty when they agree to 1e-9 s)."""
    x, y = Result(config, a).arrays, Result(config, b).arrays
    out = []
    if x["producer"].shape != y["producer"].shape:
        return [f"{x['producer'].size} vs {y['producer'].size} messages"]
    # the same message is the same (producer, seq): loops may append different producers' messages in
    # another order when they are created at nearly the same time
    ox, oy = np.argsort(x["producer"], kind="stable"), np.argsort(y["producer"], kind="stable")
    for name in x:
        u, v = x[name].astype(float)[ox], y[name].astype(float)[oy]
        if u.shape != v.shape:
            out.append(f"{name}: {u.shape[0]} vs {v.shape[0]} messages")
            continue
        same_nan = np.isnan(u) == np.isnan(v)
        close = np.isclose(u, v, rtol=0, atol=TOLERANCE_S, equal_nan=True)
        agree = same_nan & close
        bad = np.flatnonzero(~agree)
        if bad.size:
            i = int(bad[0])
            out.append(f"{name}: {bad.size} messages differ, first #{i}: {u[i]!r} vs {v[i]!r}")
    if a.cut != b.cut:
        out.append(f"cut: {a.cut} vs {b.cut}")
    return out


# -- properties ------------------------------------------------------------------------------------------


@SETTINGS
@given(systems())
def test_conservation_in_every_loop(overrides):
    config = build_config(overrides)
    for loop in LOOPS:
        records = run_loop(config, loop)
        if records is not None:
            assert_conserved(config, Result(config, records))


@SETTINGS
@given(systems())
def test_every_loop_gives_the_same_messages(overrides):
    config = build_config(overrides)
    runs = {loop: run_loop(config, loop) for loop in LOOPS}
    runs = {loop: records for loop, records in runs.items() if records is not None}
    assert len(runs) >= 1
    first, *others = runs
    for loop in others:
        diff = differences(config, runs[first], runs[loop])
        assert not diff, f"{first} vs {loop}: {diff}"


@SETTINGS
@given(systems())
def test_summary_mode_equals_full_mode(overrides):
    """In every loop that can run the system, summary records give full records' counts and time series."""
    full_config = build_config(overrides)
    summary_config = full_config.replace({"run.records": "summary"})
    compared = 0
    for loop in LOOPS:
        full_records = run_loop(full_config, loop)
        if full_records is None:
            continue
        summary_records = run_loop(summary_config, loop)
        assert summary_records is not None, loop
        full, summary = Result(full_config, full_records), Result(summary_config, summary_records)
        a, b = full.summary, summary.summary
        for key in ("sent", "acked", "timed_out", "ghosts", "stored", "in_flight", "dropped", "makespan_s"):
            assert a[key] == b[key], (loop, key, a[key], b[key])
        ts_a, ts_b = full.timeseries, summary.timeseries
        assert len(ts_a) == len(ts_b), loop
        for column in ("sent", "acked", "timed_out", "in_flight"):
            np.testing.assert_array_equal(ts_a[column].to_numpy(), ts_b[column].to_numpy(),
                                          err_msg=f"{loop}: {column}")
        compared += 1
    assert compared >= 1


def agrees_with_the_reference(overrides: dict) -> None:
    """The default loop and the SimPy model (``sim.simpy_model``) give every message the same times and state."""
    from sim.simpy_model import run_simpy

    config = build_config(overrides)
    diff = differences(config, run_records(System(config)), run_simpy(config))
    assert not diff, f"engine vs SimPy model: {diff}"


@SETTINGS
@given(systems(max_producers=3, max_messages=12, ties=False))
def test_the_simpy_model_agrees_on_small_systems(overrides):
    agrees_with_the_reference(overrides)


@SETTINGS
@given(systems(max_producers=3, max_messages=12, ties=True))
def test_the_simpy_model_agrees_on_small_systems_with_ties(overrides):
    agrees_with_the_reference(overrides)


# -- reproducers of disagreements the properties found (fixed; kept as regular tests) -------------------------------


def test_reference_tie_between_connections():
    """Four messages created at t=0 on two connections: the loops and the SimPy model break the uplink tie alike."""
    agrees_with_the_reference({
        "clients": 2, "producer.mode": "nonblocking", "producer.messages": 2, "producer.payload_bytes": 0,
        "client.send_cpu": 0.0, "client.ack_cpu": 0.0, "link.rtt": 0.015625, "link.bandwidth": 1250000.0,
        "broker.read_cpu": 0.0, "broker.service_time": 0.0, "broker.ack_bytes": 0})


def test_limiter_ceiling_with_zero_costs():
    """A limit with no poll and no CPU cost once made the summary divide by zero."""
    from sim import run

    summary = run({"producer.mode": "nonblocking", "producer.concurrent_task_limit": 2, "producer.limiter_poll": 0,
                   "client.send_cpu": 0, "producer.messages": 5}).summary
    assert summary["acked"] == 5


CUT_TIE = {"producer.mode": "nonblocking", "producer.window": 1, "producer.messages": 1, "producer.payload_bytes": 0,
           "producer.overhead_bytes": 0, "client.send_cpu": 5e-05, "client.ack_cpu": 1e-05, "link.rtt": 0.0001,
           "link.bandwidth": "inf", "broker.read_cpu": 0.0, "broker.service_time": 0.0, "broker.ack_bytes": 0,
           "run.duration": 0.0001}


@pytest.mark.parametrize("loop", ["events", "windows", "vectors", "single"])
def test_a_store_exactly_at_the_cut(loop):
    """Sent at 50 us, half a round trip of 50 us: it reaches the broker exactly when the run stops."""
    from sim.simpy_model import run_simpy

    config = build_config(CUT_TIE)
    assert not differences(config, run_loop(config, loop), run_simpy(config))
    for other in LOOPS:
        assert not differences(config, run_loop(config, loop), run_loop(config, other)), other
