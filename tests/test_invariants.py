"""Properties every run must have, over many random systems."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import build_config, run
from sim.engine import ACKED, IN_FLIGHT, TIMED_OUT
from tests.systems import random_overrides

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_every_message_is_in_exactly_one_state(seed):
    config = build_config(random_overrides(seed))
    result = run(config)
    a = result.arrays
    status = a["status"]
    assert set(np.unique(status)) <= {IN_FLIGHT, ACKED, TIMED_OUT}
    s = result.summary
    # each state is what the message's own times say it is (not a count derived from itself)
    resolved, created = a["resolved"], a["created"]
    late = resolved - created >= config.producer.ack_wait * (1 - 1e-9)
    assert np.array_equal(status == IN_FLIGHT, np.isnan(resolved))
    assert np.array_equal(status == TIMED_OUT, ~np.isnan(resolved) & late)
    assert np.array_equal(status == ACKED, ~np.isnan(resolved) & ~late)
    assert s["sent"] == status.size and s["acked"] == int((status == ACKED).sum())
    # messages still in flight only when run.duration cut the run short
    if s["in_flight"]:
        assert result.records.cut
    # a finite batch without a duration produces every message
    if config.run.duration is None:
        assert s["sent"] == config.producer.messages * config.clients * config.producers_per_client
    acked = status == ACKED
    timed_out = status == TIMED_OUT
    stored = ~np.isnan(a["stored"])
    # an ack comes from a stored message: stored >= acked, and stored before acked
    assert s["stored"] >= s["acked"]
    assert np.all(stored[acked])
    assert np.all(a["stored"][acked] <= a["resolved"][acked])
    # times move forward along a message's path
    assert np.all(a["intended"] <= a["created"])
    sent = ~np.isnan(a["sent"])
    assert np.all(a["created"][sent] <= a["sent"][sent])
    assert np.all(a["sent"][stored] <= a["stored"][stored])
    # a timeout happens exactly ack_wait after produce(), an ack strictly before
    np.testing.assert_array_equal(a["resolved"][timed_out], a["created"][timed_out] + config.producer.ack_wait)
    assert np.all(a["resolved"][acked] - a["created"][acked] < config.producer.ack_wait)
    # ghosts are exactly the timed-out messages that were stored
    assert s["ghosts"] == int((timed_out & stored).sum())
    assert np.isnan(a["resolved"][status == IN_FLIGHT]).all()
    # the makespan is the last resolution, or the duration when it cut the run
    if not result.records.cut and s["sent"]:
        assert s["makespan_s"] == np.nanmax(a["resolved"])


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_flow_control_is_respected(seed):
    config = build_config(random_overrides(seed))
    table = run(config).messages
    p = config.producer
    for _, group in table.groupby("producer"):
        created = group["t_created_s"].to_numpy()
        resolved = group["t_resolved_s"].to_numpy()
        assert np.all(np.diff(created) >= 0)
        done = np.sort(resolved[~np.isnan(resolved)])
        in_flight = np.arange(1, len(created) + 1) - np.searchsorted(done, created, side="right")
        if p.mode == "sync":
            assert in_flight.max() <= 1
        elif p.window is not None:
            assert in_flight.max() <= p.window
        elif p.concurrent_task_limit is not None:
            assert in_flight.max() <= p.concurrent_task_limit
    # each client's CPU finishes produce() calls in the order they were made
    for _, group in table.groupby("client"):
        sent = group["t_sent_s"].to_numpy()
        sent = sent[~np.isnan(sent)]
        assert np.all(np.diff(sent) >= 0)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_same_seed_gives_identical_runs(seed):
    config = build_config(random_overrides(seed))
    first, second = run(config), run(config)
    for name, values in first.arrays.items():
        assert values.tobytes() == second.arrays[name].tobytes(), name
    assert first.summary == second.summary


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 2))
def test_a_different_seed_changes_a_stochastic_run(seed):
    overrides = random_overrides(seed)
    overrides["run.duration"] = None  # compare whole batches
    base = build_config(overrides)
    assert base.broker.service_dist in ("exponential", "lognormal")
    other = base.replace({"run.seed": base.run.seed + 1})
    a, b = run(base).arrays, run(other).arrays
    assert a["stored"].tobytes() != b["stored"].tobytes()
