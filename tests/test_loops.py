"""Every way of running a system gives the same records: the single-stream loop,
the window loop message by message and with numpy, and the event loop."""

from __future__ import annotations

import random

import numpy as np
import pytest

from sim import build_config
from sim.engine import allowed_loops, expected_batch, run_records
from sim.model.system import System
from sim.results import Result
from sim.loops.single import applies, run_single_stream
from tests.systems import random_overrides

def same_records(config, a, b, rtol=1e-12):
    """The same run as users see it (times after the run's end are not reported)."""
    x, y = Result(config, a).arrays, Result(config, b).arrays
    assert x.keys() == y.keys()
    for name in x:
        np.testing.assert_allclose(x[name].astype(float), y[name].astype(float), rtol=rtol, atol=1e-12,
                                   equal_nan=True, err_msg=name)
    assert a.cut == b.cut
    assert a.span == pytest.approx(b.span, rel=1e-12)
    if not a.cut:  # (a run stopped part way may count the last message's service either way)
        for station in a.busy:
            np.testing.assert_allclose(a.busy[station], b.busy[station], rtol=1e-9, atol=1e-15, err_msg=station)


def single_stream_overrides(seed: int) -> dict:
    r = random.Random(seed)
    ov = random_overrides(seed)
    ov.update({"clients": 1, "producers_per_client": 1})
    for key in ("producer.window", "producer.concurrent_task_limit", "producer.limiter_poll"):
        ov.pop(key, None)
    if r.random() < 0.5:
        ov["producer.mode"] = "sync"
    else:
        ov.update({"producer.mode": "nonblocking", "producer.window": 1})
    return ov


@pytest.mark.parametrize("seed", range(40))
def test_single_stream_loop_equals_the_window_loop(seed):
    system = System(build_config(single_stream_overrides(seed)))
    assert applies(system)
    single = run_single_stream(system)
    general = run_records(system, loop="windows")
    if single is None:  # it met a timeout and handed over
        assert (np.frombuffer(general.status, dtype=np.int8) == 2).any()
        return
    same_records(system.config, single, general)


def test_single_stream_covers_cuts_open_loop_and_timeouts():
    outcomes = {"cut": 0, "open_loop": 0, "handed_over": 0}
    for seed in range(40):
        config = build_config(single_stream_overrides(seed))
        single = run_single_stream(System(config))
        if single is None:
            outcomes["handed_over"] += 1
            continue
        outcomes["cut"] += single.cut
        outcomes["open_loop"] += config.producer.rate is not None
    assert all(outcomes.values()), outcomes


@pytest.mark.parametrize("seed", range(25))
def test_numpy_network_equals_the_scalar_one(seed):
    system = System(build_config(random_overrides(seed)))
    if "vectors" not in allowed_loops(system):  # a TCP window in bytes that may bind: refused, said so
        with pytest.raises(ValueError, match="vectors"):
            run_records(system, loop="vectors")
        from tests.test_oracle import assert_same_messages  # (message numbers differ between these loops)

        assert_same_messages(system.config, run_records(system, loop="events"), run_records(system, loop="windows"))
        return
    same_records(system.config, run_records(system, loop="vectors"), run_records(system, loop="windows"), rtol=1e-9)


def test_dense_systems_get_the_numpy_network():
    main = build_config({"clients": 8, "producer.mode": "nonblocking", "producer.window": 500,
                         "broker.partitions": 2, "producer.messages": 1000})
    assert expected_batch(System(main)) >= 32
    sparse = build_config({"producer.mode": "nonblocking", "producer.window": 2})
    assert expected_batch(System(sparse)) < 32
