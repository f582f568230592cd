"""link.jitter: each message and each ack is late by its own lognormal draw, on top
of RTT/2, and a connection still delivers in order.

An exact timeline (with the run's own draws) where a late message holds back the
one behind it, the distribution of the draws, both engines on random systems,
and the spread of latency it gives a round-trip-bound producer.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from sim import build_config
from sim.engine import allowed_loops, run_records
from sim.loops.single import applies as single_applies
from sim.model.randomness import SeedTree, jitter_delays
from sim.model.system import System
from sim.results import Result, run
from sim.simpy_model import run_simpy
from tests.systems import random_overrides
from tests.test_oracle import assert_same_messages

QUIET = {"client.ack_cpu": 0, "broker.read_cpu": 0, "broker.service_time": 0, "broker.ack_bytes": 0,
         "link.bandwidth": "inf", "link.rtt": "10ms"}


def draws(seed: int, stream: str, k: int) -> list[float]:
    """The first k jitter delays of connection 0's ``stream``, as a run with ``seed`` draws them."""
    tree = SeedTree(seed, 1, 1)
    return [next(d) for d in [jitter_delays(1e-3, 1.0, tree.connection(0, stream))] for _ in range(k)]


def loops(system: System) -> list:
    return [None] + [loop for loop in allowed_loops(system) if loop != "single"]


def test_a_late_message_holds_back_the_one_behind_it():
    """Two messages sent 100 us apart (send_cpu), 1 ms of jitter on average. The seed is
    chosen so that the first is so late the second would overtake it: the second reaches
    the broker with the first (in order), and the same with their acks when that happens."""
    seed = next(s for s in range(1000) if draws(s, "uplink_jitter", 2)[0] > draws(s, "uplink_jitter", 2)[1] + 2e-4)
    up, down = draws(seed, "uplink_jitter", 2), draws(seed, "downlink_jitter", 2)
    config = build_config({**QUIET, "producer.mode": "nonblocking", "producer.window": 2, "producer.messages": 2,
                           "client.send_cpu": "100us", "link.jitter": "1ms", "run.seed": seed})
    sent = [1e-4, 2e-4]
    arrive0 = sent[0] + 0.005 + up[0]
    arrive1 = max(arrive0, sent[1] + 0.005 + up[1])
    assert arrive1 == arrive0  # held back, by the choice of seed
    back0 = arrive0 + 0.005 + down[0]
    back1 = max(back0, arrive1 + 0.005 + down[1])
    system = System(config)
    for records in [run_records(system, loop=loop) for loop in loops(system)] + [run_simpy(config)]:
        a = Result(config, records).arrays
        np.testing.assert_allclose(a["sent"], sent, rtol=0, atol=1e-15)
        np.testing.assert_allclose(a["stored"], [arrive0, arrive1], rtol=0, atol=1e-15)
        np.testing.assert_allclose(a["resolved"], [back0, back1], rtol=0, atol=1e-15)


def test_a_sync_producer_adds_two_draws_per_round_trip():
    """Sync, one message at a time: each round trip is RTT + its two draws exactly."""
    config = build_config({**QUIET, "producer.messages": 5, "client.send_cpu": 0, "link.jitter": "1ms",
                           "run.seed": 7})
    up, down = draws(7, "uplink_jitter", 5), draws(7, "downlink_jitter", 5)
    trips = np.array(up) + np.array(down) + 0.01
    for loop in ("single", "events", "windows"):
        a = Result(config, run_records(System(config), loop=loop)).arrays
        np.testing.assert_allclose(a["resolved"] - a["created"], trips, rtol=1e-12)


def test_the_draws_are_lognormal_with_the_configured_mean_and_cv():
    for cv in (0.5, 1.0, 2.0):
        values = jitter_delays(2e-3, cv, np.random.default_rng(3)).take(400_000)
        sigma = np.sqrt(np.log1p(cv * cv))
        assert values.mean() == pytest.approx(2e-3, rel=4 * cv / np.sqrt(values.size) * 3)
        # the log is normal with sd sigma: its sd is known far better than the mean's
        assert np.log(values).std() == pytest.approx(sigma, rel=0.01)
        assert (values > 0).all()


def test_jitter_zero_draws_nothing_and_changes_nothing():
    base = build_config({"producer.mode": "nonblocking", "producer.window": 8, "producer.messages": 300, "clients": 2})
    assert base.link.jitter == 0 and System(base).streams().uplink_jitter is None


def jitter_config(seed: int):
    r = random.Random(seed)
    ov = random_overrides(seed)
    ov["link.jitter"] = r.uniform(1e-5, 5e-3)
    ov["link.jitter_cv"] = r.uniform(0.3, 2.5)
    if r.random() < 0.3:
        ov["link.rtt"] = 0.0
    if r.random() < 0.3:  # messages in segments too
        ov["producer.payload_bytes"] = r.randint(1500, 5000)
        ov["link.window_bytes"] = r.randint(1460, 15000)
    return build_config(ov)


@pytest.mark.parametrize("seed", range(24))
def test_every_loop_matches_the_simpy_model(seed):
    config = jitter_config(seed)
    system = System(config)
    reference = run_simpy(config)
    allowed = loops(system) + (["single"] if single_applies(system) else [])
    for loop in allowed:
        assert_same_messages(config, run_records(system, loop=loop), reference)


def test_the_vector_network_refuses_jitter():
    with pytest.raises(ValueError, match="jitter"):
        run_records(System(jitter_config(0)), loop="vectors")


def test_jitter_spreads_the_latency_of_round_trip_bound_points():
    """No jitter: p99 = p50. A window of 20 at 10 ms, round-trip bound: the spread grows with
    the jitter, and a jitter of about a tenth of the RTT gives the measured median p99/p50
    of about 1.5 (measured on NATS: 1.02-2.4 over round-trip-bound points)."""
    def ratio(jitter):
        config = build_config({"producer.mode": "nonblocking", "producer.window": 20, "producer.messages": 4000,
                               "link.rtt": "10ms", "link.jitter": jitter})
        latency = run(config).summary["latency_ms"]
        return latency["p99"] / latency["p50"]

    flat, small, tenth, large = ratio(0), ratio("0.2ms"), ratio("1ms"), ratio("3ms")
    assert flat == pytest.approx(1.0, abs=0.01)
    assert flat < small < tenth < large
    assert 1.02 < small < 1.3 and 1.3 < tenth < 1.8 and large > 2.0
