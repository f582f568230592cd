"""The fast engine against the public SimPy model (``sim.simpy_model``), message by message.

Message numbers depend on the order a loop visits the clients in, so messages
are compared per producer, in creation order.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from sim import build_config
from sim.engine import allowed_loops, run_records
from sim.model.records import ACKED, TIMED_OUT
from sim.model.system import System
from sim.results import Result, run
from sim.model.flow import Window
from sim.simpy_model import FlowControl, run_simpy
from tests.systems import random_config

SEEDS = list(range(24))
TIMES = ("intended", "created", "sent", "stored", "resolved")


def by_producer(config, records) -> dict[str, np.ndarray]:
    a = Result(config, records).arrays
    order = np.argsort(a["producer"], kind="stable")
    return {key: value[order] for key, value in a.items()}


def assert_same_messages(config, ours, theirs) -> None:
    a, b = by_producer(config, ours), by_producer(config, theirs)
    assert a["producer"].size == b["producer"].size
    np.testing.assert_array_equal(a["producer"], b["producer"])
    np.testing.assert_array_equal(a["partition"], b["partition"])
    np.testing.assert_array_equal(a["status"], b["status"])
    for name in TIMES:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-9, equal_nan=True, err_msg=name)


def round_config(seed: int):
    """A random system of round numbers, all producers starting together: exact ties
    everywhere (at every merge, and between acks, CPU jobs and timers)."""
    r = random.Random(seed)
    ov = {
        "clients": r.randint(1, 3), "producers_per_client": r.randint(1, 3),
        "producer.mode": r.choice(["sync", "nonblocking", "nonblocking"]),
        "producer.messages": r.randint(5, 80),
        "producer.ack_wait": r.choice([0.002, 0.005, 0.01, 15.0]),
        "producer.payload_bytes": r.choice([100, 512, 1000]), "producer.overhead_bytes": r.choice([0, 191]),
        "producer.partitioning": r.choice(["round_robin", "key", "fixed"]),
        "client.send_cpu": r.choice([0.0, 1e-5, 5e-5, 1e-4]), "client.ack_cpu": r.choice([0.0, 1e-5, 5e-5]),
        "link.rtt": r.choice([0.0, 1e-3, 2e-3, 1e-2]), "link.bandwidth": r.choice(["inf", 1e6, 1e7, 1.25e8]),
        "link.window_bytes": r.choice([None, 4000, 20000]), "link.loss": r.choice([0.0, 0.0, 0.01]),
        "broker.partitions": r.randint(1, 3), "broker.read_cpu": r.choice([0.0, 1e-6, 1e-5]),
        "broker.service_time": r.choice([0.0, 1e-5, 1e-4]),
        "broker.service_dist": r.choice(["deterministic", "deterministic", "exponential"]),
        "run.seed": r.randint(0, 1000),
    }
    if ov["producer.partitioning"] == "fixed":
        ov["producer.partition"] = r.randint(1, ov["broker.partitions"])
    if ov["producer.mode"] == "nonblocking":
        flow = r.choice(["window", "limit", "unbounded"])
        if flow == "window":
            ov["producer.window"] = r.randint(1, 10)
        elif flow == "limit":
            ov["producer.concurrent_task_limit"] = r.randint(2, 20)
            ov["producer.limiter_poll"] = r.choice([0.0, 1e-3, 1e-2])
    if r.random() < 0.3:
        ov["producer.rate"] = r.choice([500, 1000, 2000])
        ov["producer.arrivals"] = r.choice(["poisson", "constant"])
    if r.random() < 0.3:
        ov["run.duration"] = r.choice([0.01, 0.05, 0.1])
    return build_config(ov)


def loops_for(system: System) -> list:
    """The default and every general loop that takes the system (sim.engine.allowed_loops)."""
    return [None] + [loop for loop in allowed_loops(system) if loop != "single"]


def assert_every_loop_matches_the_simpy_model(config) -> None:
    system = System(config)
    reference = run_simpy(config)
    for loop in loops_for(system):
        assert_same_messages(config, run_records(system, loop=loop), reference)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_loop_matches_the_simpy_model(seed):
    assert_every_loop_matches_the_simpy_model(random_config(seed))


@pytest.mark.parametrize("seed", range(40))
def test_exact_ties_go_the_same_way_in_both_engines(seed):
    assert_every_loop_matches_the_simpy_model(round_config(seed))


def test_the_oracle_systems_exercise_every_mechanism():
    """Counted over the systems above, not asserted of a constant: each mechanism occurs."""
    seen = {"timeouts": 0, "ghosts": 0, "cut": 0, "merges": 0, "limiter": 0, "window": 0, "open_loop": 0,
            "tcp_window": 0, "loss": 0, "random_service": 0}
    for seed in SEEDS:
        config = random_config(seed)
        result = run(config, engine="simpy")
        a = result.arrays
        timed_out = a["status"] == TIMED_OUT
        seen["timeouts"] += bool(timed_out.any())
        seen["ghosts"] += bool((timed_out & ~np.isnan(a["stored"])).any())
        seen["cut"] += result.records.cut
        seen["merges"] += config.clients > 1 and config.broker.partitions > 1
        seen["limiter"] += config.producer.concurrent_task_limit is not None
        seen["window"] += config.producer.window is not None
        seen["open_loop"] += config.producer.rate is not None
        seen["tcp_window"] += System(config).uplink_window is not None
        seen["loss"] += config.link.loss > 0
        seen["random_service"] += config.broker.service_dist != "deterministic"
    assert all(seen.values()), seen


def test_summaries_agree_between_engines():
    config = random_config(3)
    fast, slow = run(config), run(config, engine="simpy")
    for key in ("sent", "acked", "timed_out", "ghosts", "stored", "in_flight", "makespan_s"):
        assert fast.summary[key] == pytest.approx(slow.summary[key], abs=1e-9), key


def test_a_user_written_policy_plugs_into_the_simpy_model():
    """A producer that never has more than two in flight, written as a FlowControl,
    gives what the built-in window of two gives."""

    class AtMostTwo(FlowControl):
        def before(self, producer):
            while producer.in_flight >= 2:
                yield producer.changed()

    config = build_config({"producer.mode": "nonblocking", "producer.messages": 50, "link.rtt": "10ms"})
    mine = Result(config, run_simpy(config, policy=AtMostTwo()))
    builtin = Result(config, run_simpy(config, policy=Window(2)))
    np.testing.assert_array_equal(mine.arrays["resolved"], builtin.arrays["resolved"])
    assert mine.summary["makespan_s"] == pytest.approx(25 * 0.01, rel=0.01)
    assert (mine.arrays["status"] == ACKED).all()


@pytest.mark.parametrize("seed", range(30))
def test_exact_ties_go_the_same_way_with_the_asyncio_client(seed):
    """The round systems above with the event loop's iterations (sim.model.aioclient), and
    as bursts where the producers have no limit: wake-ups, writes, acks and timers tie."""
    r = random.Random(seed + 7)
    overrides = round_config(seed).flat()
    overrides.update({"client.loop": "iterations", "client.wakeup_cpu": r.choice([0.0, 1e-5, 1e-4])})
    unlimited = not (overrides["producer.window"] or overrides["producer.concurrent_task_limit"]
                     or overrides["producer.rate"])
    if overrides["producer.mode"] == "nonblocking" and unlimited and r.random() < 0.5:
        overrides["producer.mode"] = "burst"
    assert_every_loop_matches_the_simpy_model(build_config(overrides))
