"""The asyncio client (sim.model.aioclient): event-loop iterations, bursts, the pending
buffer and drawn CPU costs. Timelines computed by hand, then both engines on random
systems, message by message."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from sim import build_config
from sim.errors import ConfigError
from sim.engine import run_records
from sim.model.aioclient import uses_aio_client
from sim.model.records import ACKED, TIMED_OUT
from sim.model.system import System
from sim.results import Result
from sim.simpy_model import run_simpy
from tests.systems import random_overrides
from tests.test_oracle import assert_same_messages, loops_for
from tests.test_summary_mode import compare

W, S, A, R = 117e-6, 30e-6, 9e-6, 1e-3  # wake-up, publish, ack, round trip
I = 13e-6  # client.iteration_cpu: what every iteration costs, slept or not
# a path that adds nothing but the round trip: every ack of one write comes back at one instant
BARE = {"link.rtt": R, "link.bandwidth": "inf", "link.window_bytes": "inf", "broker.read_cpu": 0,
        "broker.service_time": 0, "broker.ack_bytes": 0, "client.send_cpu": S, "client.ack_cpu": A}
LOOPS = [None, "events", "windows", "vectors"]


def timeline(overrides: dict, loop=None) -> dict:
    config = build_config({**BARE, **overrides})
    return Result(config, run_records(System(config), loop=loop)).arrays


def both_engines(overrides: dict) -> list[dict]:
    config = build_config({**BARE, **overrides})
    out = [Result(config, run_records(System(config), loop=loop)).arrays for loop in LOOPS]
    return out + [Result(config, run_simpy(config)).arrays]


def test_the_defaults_keep_the_default_client():
    assert not uses_aio_client(System(build_config({})))
    assert uses_aio_client(System(build_config({"client.loop": "iterations"})))
    assert uses_aio_client(System(build_config({"producer.mode": "burst"})))
    assert uses_aio_client(System(build_config({"client.cpu_cv": 0.5})))


def test_sync_pays_one_wake_up_per_message():
    """The ack wakes the loop (W + A); the producer's next publish runs in the iteration
    right after (S, no wake-up); the first publish woke the loop at 0."""
    for a in both_engines({"client.loop": "iterations", "client.wakeup_cpu": W, "producer.messages": 3}):
        created, sent, resolved = a["created"], a["sent"], a["resolved"]
        assert sent[0] == pytest.approx(W + S, abs=1e-15)
        for k in range(3):
            if k:
                assert created[k] == pytest.approx(resolved[k - 1], abs=1e-15)  # produce() at the ack
                assert sent[k] == pytest.approx(resolved[k - 1] + S, abs=1e-15)
            assert resolved[k] == pytest.approx(sent[k] + R + W + A, abs=1e-15)
        assert resolved[2] == pytest.approx(W + 3 * (S + R + W + A), abs=1e-15)
    config = build_config({**BARE, "client.loop": "iterations", "client.wakeup_cpu": W, "producer.messages": 3})
    records = run_records(System(config))
    assert records.busy["client_cpu"][0] == pytest.approx(4 * W + 3 * S + 3 * A, rel=1e-12)


@pytest.mark.parametrize("growth, cap", [(0.05, None), (0.05, 140e-6), (0.3, 200e-6)])
def test_a_wake_up_costs_more_the_longer_the_loop_slept(growth, cap):
    """client.wakeup_growth: the loop sleeps R between its publish and the ack, so each ack
    wakes it for min(W + growth x R, cap); the first iteration, at 0, slept nothing."""
    wake = min(W + growth * R, cap or math.inf)
    overrides = {"client.loop": "iterations", "client.wakeup_cpu": W, "client.wakeup_growth": growth,
                 "client.wakeup_max": cap, "producer.messages": 3}
    for a in both_engines(overrides):
        sent, resolved = a["sent"], a["resolved"]
        assert sent[0] == pytest.approx(W + S, abs=1e-15)
        for k in range(3):
            if k:
                assert sent[k] == pytest.approx(resolved[k - 1] + S, abs=1e-15)
            assert resolved[k] == pytest.approx(sent[k] + R + wake + A, abs=1e-15)
    config = build_config({**BARE, **overrides})
    assert run_records(System(config)).busy["client_cpu"][0] == pytest.approx(
        W + 3 * (wake + S + A), rel=1e-12)
    from sim.analytic import round_trip, sync_makespan

    assert round_trip(config) == pytest.approx(R + S + A + wake, rel=1e-12)
    assert Result(config, run_records(System(config))).summary["makespan_s"] == pytest.approx(
        sync_makespan(config), rel=1e-12)


def test_an_open_loop_producer_pays_for_the_gap_since_its_last_iteration():
    """Arrivals every 10 ms: each produce() finds a loop that slept since its last ack's
    iteration ended (the first, since the run began), so the wake-up grows with that gap."""
    growth, gap = 0.02, 10e-3
    overrides = {"client.loop": "iterations", "client.wakeup_cpu": W, "client.wakeup_growth": growth,
                 "producer.mode": "nonblocking", "producer.rate": 1 / gap, "producer.arrivals": "constant",
                 "producer.messages": 4}
    for a in both_engines(overrides):
        created, sent, resolved = a["created"], a["sent"], a["resolved"]
        for k in range(4):
            assert created[k] == pytest.approx((k + 1) * gap, abs=1e-12)
            # it acts after sleeping since the ack before (the first: since 0); its task publishes next
            woke = W + growth * (created[k] - (resolved[k - 1] if k else 0.0))
            assert sent[k] == pytest.approx(created[k] + woke + S, abs=1e-12)
            assert resolved[k] == pytest.approx(sent[k] + R + W + growth * R + A, abs=1e-12)
    with pytest.raises(ConfigError, match="client.wakeup_max = 10us: must be at least client.wakeup_cpu"):
        build_config({**BARE, **overrides, "client.wakeup_max": "10us"})


def test_three_sync_producers_on_one_loop_move_in_one_write():
    """Their produce() calls of one iteration leave in one write; the acks come back
    together and are read in one iteration; the next round leaves in one write again."""
    for a in both_engines({"client.loop": "iterations", "client.wakeup_cpu": W, "producers_per_client": 3,
                           "producer.messages": 2}):
        order = np.argsort(a["producer"] * 10 + a["created"], kind="stable")  # by producer, then time
        created, sent, resolved = (a[key][order].reshape(3, 2) for key in ("created", "sent", "resolved"))
        first = W + 3 * S
        np.testing.assert_allclose(created[:, 0], 0.0, atol=0)
        np.testing.assert_allclose(sent[:, 0], first, atol=1e-15)  # one write
        back = first + R  # every ack at once, read in one iteration in arrival (connection) order
        np.testing.assert_allclose(resolved[:, 0], back + W + A * np.arange(1, 4), atol=1e-15)
        second = back + W + 3 * A  # the producers act at the next iteration's start
        np.testing.assert_allclose(created[:, 1], second, atol=1e-15)
        np.testing.assert_allclose(sent[:, 1], second + 3 * S, atol=1e-15)
        np.testing.assert_allclose(resolved[:, 1], second + 3 * S + R + W + A * np.arange(1, 4), atol=1e-15)


def test_a_window_is_refilled_one_task_per_iteration():
    """produce() creates a task and yields: one per iteration, each publishing in the next
    iteration. The three tasks leave S apart; their acks come back S apart and each is
    read as it comes (the loop sleeps in between when W + A < S... here it does not)."""
    for a in both_engines({"client.loop": "iterations", "client.wakeup_cpu": W, "producer.mode": "nonblocking",
                           "producer.window": 3, "producer.messages": 4}):
        created, sent, resolved = a["created"], a["sent"], a["resolved"]
        # iteration at 0: wake-up, the first produce() (its task publishes next time); then
        # back to back: publish k, produce k + 1
        np.testing.assert_allclose(created[:3], [0.0, W, W + S], atol=1e-15)
        np.testing.assert_allclose(sent[:3], [W + S, W + 2 * S, W + 3 * S], atol=1e-15)
        # the first ack wakes the loop; the other two arrive while it works (S < W + A)
        r0 = W + S + R + W + A
        assert resolved[0] == pytest.approx(r0, abs=1e-15)
        # next iteration at r0: the freed producer's produce(), then the two acks arrived by then
        assert created[3] == pytest.approx(r0, abs=1e-15)
        np.testing.assert_allclose(resolved[1:3], [r0 + A, r0 + 2 * A], atol=1e-15)
        assert sent[3] == pytest.approx(r0 + 2 * A + S, abs=1e-15)  # its publish: the iteration after


def test_per_message_writes_each_publish_alone():
    """The same window without iterations: each produce() a job, each message its own write."""
    a = timeline({"producer.mode": "nonblocking", "producer.window": 3, "producer.messages": 3})
    np.testing.assert_allclose(a["sent"], S * np.arange(1, 4), atol=1e-15)


def test_a_producer_without_limit_makes_one_produce_per_iteration():
    for a in both_engines({"client.loop": "iterations", "client.wakeup_cpu": W, "producer.mode": "nonblocking",
                           "producer.messages": 3}):
        np.testing.assert_allclose(a["created"], [0.0, W, W + S], atol=1e-15)
        np.testing.assert_allclose(a["sent"], [W + S, W + 2 * S, W + 3 * S], atol=1e-15)


def test_a_burst_runs_every_publish_before_its_first_ack_and_its_last_messages_time_out():
    n = 5
    back = W + n * S + R  # one write, every ack back at once
    ack_wait = back + W + 3.5 * A  # the first three acks are read in time, the last two are not
    for a in both_engines({"client.loop": "iterations", "client.wakeup_cpu": W, "producer.mode": "burst",
                           "producer.messages": n, "producer.ack_wait": ack_wait}):
        np.testing.assert_allclose(a["created"], 0.0, atol=0)  # every task created at the start
        np.testing.assert_allclose(a["sent"], W + n * S, atol=1e-15)
        np.testing.assert_array_equal(a["status"], [ACKED] * 3 + [TIMED_OUT] * 2)
        np.testing.assert_allclose(a["resolved"][:3], back + W + A * np.arange(1, 4), atol=1e-15)
        np.testing.assert_allclose(a["resolved"][3:], ack_wait, atol=1e-15)  # timed out at the deadline


def test_a_burst_one_job_at_a_time():
    """per_message: all tasks exist at 0; their publishes run first, each its own write."""
    n = 4
    for a in both_engines({"producer.mode": "burst", "producer.messages": n}):
        np.testing.assert_allclose(a["created"], 0.0, atol=0)
        np.testing.assert_allclose(a["sent"], S * np.arange(1, n + 1), atol=1e-15)
        # the acks come back R after each write; the CPU is free by then: each takes A
        np.testing.assert_allclose(a["resolved"], S * np.arange(1, n + 1) + R + A, atol=1e-15)


def test_a_burst_needs_a_count():
    from sim.config import ConfigError

    with pytest.raises(ConfigError, match="producer.messages"):
        build_config({"producer.mode": "burst", "producer.messages": None, "run.duration": 1})


def draws_config(seed: int, **extra):
    return build_config({"client.loop": "iterations", "client.cpu_cv": 1.0, "producer.mode": "nonblocking",
                         "producer.window": 50, "producer.messages": 4000, "link.rtt": "1ms",
                         "run.seed": seed, **extra})


def test_drawn_costs_have_the_configured_mean_and_the_same_seed_gives_the_same_run():
    config = draws_config(7)
    first, again = run_records(System(config)), run_records(System(config))
    np.testing.assert_array_equal(np.asarray(first.resolved), np.asarray(again.resolved))
    other = run_records(System(draws_config(8)))
    assert not np.array_equal(np.asarray(first.resolved), np.asarray(other.resolved))
    # busy = sum of 4000 drawn publishes and 4000 drawn acks (lognormal, cv 1): mean 45 us,
    # sd of the sum sqrt(4000 (35^2 + 10^2)) us = 2.3 ms, i.e. 1.3% of 180 ms; 4 sd
    busy = first.busy["client_cpu"][0]
    assert busy == pytest.approx(4000 * 45e-6, rel=4 * 2.3e-3 / 0.18)
    assert not np.allclose(np.asarray(first.resolved),
                           np.asarray(run_records(System(draws_config(7, **{"client.cpu_cv": 0.0}))).resolved))


def test_the_cost_draws_are_lognormal_with_the_configured_mean_and_cv():
    from itertools import islice

    from sim.model.randomness import cpu_costs

    n = 20_000
    pairs = np.array(list(islice(cpu_costs(35e-6, 10e-6, 1.0, np.random.default_rng(3)), n)))
    for column, mean in ((0, 35e-6), (1, 10e-6)):
        x = pairs[:, column]
        assert x.mean() == pytest.approx(mean, rel=4 / np.sqrt(n))  # 4 sd of the mean (cv 1)
        assert x.std() / x.mean() == pytest.approx(1.0, abs=0.1)  # about 4 sd of the sample cv here
        assert np.log(x).std() == pytest.approx(np.sqrt(np.log(2)), rel=0.03)  # sigma^2 = ln(1 + cv^2)
    assert abs(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) < 4 / np.sqrt(n)  # independent draws
    zero = list(islice(cpu_costs(35e-6, 0.0, 1.0, np.random.default_rng(3)), 5))
    assert all(ack == 0.0 for _, ack in zero)


NO_GC = {"client.gc_messages": None, "client.gc_full_every": 100, "client.gc_pause": 0, "client.gc_message_cpu": 0}


def random_aio_config(seed: int):
    """A random system of tests.systems with the asyncio client on: iterations (with and
    without wake-up cost), bursts, drawn costs."""
    overrides = random_overrides(seed)
    r = random.Random(seed + 1000)
    loop = "iterations" if seed % 4 else "per_message"
    overrides["client.loop"] = loop
    if loop == "iterations":
        overrides["client.wakeup_cpu"] = r.choice([0.0, r.uniform(10e-6, 200e-6)])
        if seed % 5 in (1, 3):  # every iteration's own CPU (its own draw)
            overrides["client.iteration_cpu"] = random.Random(seed + 8000).uniform(1e-6, 40e-6)
        g = random.Random(seed + 7000)  # (its own draws: the other keys stay as they were)
        if seed % 3 == 0:  # a wake-up that grows with the sleep, capped or not
            overrides["client.wakeup_growth"] = g.uniform(0.005, 0.3)
            overrides["client.wakeup_max"] = g.choice([None, overrides["client.wakeup_cpu"] + g.uniform(0, 300e-6)])
    if r.random() < 0.5 or loop == "per_message":
        overrides["client.cpu_cv"] = r.uniform(0.1, 2.0)
    if r.random() < 0.3 or (loop == "per_message" and r.random() < 0.5):
        overrides["producer.mode"] = "burst"
        for key in ("producer.window", "producer.concurrent_task_limit", "producer.limiter_poll", "producer.rate"):
            overrides.pop(key, None)
    if seed % 2:  # a garbage collector (its own draws: the other keys stay as they were)
        overrides.update(gc_overrides(random.Random(seed + 9000)))
    return build_config(overrides)


def gc_overrides(g: random.Random) -> dict:
    """A collector that runs often in a short run: young collections every 1-12 net messages, a
    full one every 1-5 young ones, each 0-2 ms plus 0-20 us per message in flight."""
    return {"client.gc_messages": g.randint(1, 12), "client.gc_full_every": g.randint(1, 5),
            "client.gc_pause": g.choice([0.0, g.uniform(1e-5, 2e-3)]),
            "client.gc_message_cpu": g.choice([0.0, g.uniform(1e-7, 2e-5)])}


@pytest.mark.parametrize("seed", range(32))
def test_every_loop_matches_the_simpy_model(seed):
    config = random_aio_config(seed)
    system = System(config)
    reference = run_simpy(config)
    for loop in loops_for(system):
        assert_same_messages(config, run_records(system, loop=loop), reference)


def test_the_random_systems_exercise_every_mechanism():
    seen = {"iterations": 0, "per_message": 0, "burst": 0, "cv": 0, "wakeup": 0, "growth": 0, "cap": 0, "timeouts": 0,
            "limiter": 0, "window": 0, "unbounded": 0, "open_loop": 0, "cut": 0, "gc": 0, "gc_burst": 0,
            "iteration_cpu": 0}
    for seed in range(32):
        config = random_aio_config(seed)
        records = run_records(System(config))
        c, p = config.client, config.producer
        seen[c.loop] += 1
        seen["burst"] += p.mode == "burst"
        seen["cv"] += c.cpu_cv > 0
        seen["wakeup"] += c.loop == "iterations" and c.wakeup_cpu > 0
        seen["growth"] += c.loop == "iterations" and c.wakeup_growth > 0
        seen["iteration_cpu"] += c.loop == "iterations" and c.iteration_cpu > 0
        seen["cap"] += c.loop == "iterations" and c.wakeup_growth > 0 and c.wakeup_max is not None
        seen["timeouts"] += int((np.asarray(records.status) == TIMED_OUT).any())
        seen["limiter"] += p.concurrent_task_limit is not None
        seen["window"] += p.window is not None
        seen["unbounded"] += p.mode == "nonblocking" and System(config).flow == "unbounded" and p.rate is None
        seen["open_loop"] += p.rate is not None
        seen["cut"] += records.cut
        if c.gc_messages is not None and (c.gc_pause or c.gc_message_cpu):  # full collections ran
            without = run_records(System(config.replace(NO_GC)))
            ran = sum(records.busy["client_cpu"]) > sum(without.busy["client_cpu"]) + 1e-12
            seen["gc"] += ran
            seen["gc_burst"] += ran and p.mode == "burst"
    assert all(seen.values()), seen


def test_the_single_stream_loop_refuses_the_asyncio_client():
    config = build_config({"client.loop": "iterations", "producer.messages": 10})
    with pytest.raises(ValueError, match="default client"):
        run_records(System(config), loop="single")
    a = Result(config, run_records(System(config))).arrays  # the default picks a loop that can
    assert (a["status"] == ACKED).all()


@pytest.mark.parametrize("seed", range(6))
def test_summary_mode_gives_the_full_summary(seed, compact_often):
    full_config = random_aio_config(seed).replace({"producer.messages": 400})
    summary_config = full_config.replace({"run.records": "summary"})
    for loop in (None, "events"):
        compare(Result(full_config, run_records(System(full_config), loop=loop)),
                Result(summary_config, run_records(System(summary_config), loop=loop)))


def test_the_analytic_round_trip_counts_the_wake_up():
    from sim.analytic import loop_ceiling, round_trip, sync_makespan

    config = build_config({**BARE, "client.loop": "iterations", "client.wakeup_cpu": W, "producer.messages": 50})
    assert round_trip(config) == pytest.approx(R + W + S + A, rel=1e-12)
    result = Result(config, run_records(System(config)))
    assert result.summary["makespan_s"] == pytest.approx(sync_makespan(config), rel=1e-12)
    assert loop_ceiling(config) == pytest.approx(1 / (W + S + A), rel=1e-12)
    busy = config.replace({"client.iteration_cpu": I})  # two iterations per message: read the ack, publish
    assert round_trip(busy) == pytest.approx(R + W + S + A + 2 * I, rel=1e-12)
    for engine in (lambda c: run_records(System(c)), run_simpy):
        assert Result(busy, engine(busy)).summary["makespan_s"] == pytest.approx(sync_makespan(busy), rel=1e-12)
    assert loop_ceiling(busy, 4) == pytest.approx(4 / (W + 2 * I + 4 * (S + A)), rel=1e-12)
    from sim.config import ConfigWarning

    with pytest.warns(ConfigWarning, match="client.wakeup_cpu = 117us is ignored"):
        per_message = build_config({**BARE, "client.wakeup_cpu": W, "producer.messages": 50})
    assert round_trip(per_message) == pytest.approx(R + S + A, rel=1e-12)  # the key is ignored there


def test_c_sync_producers_take_rounds_of_one_wake_up_and_c_messages():
    """Each round: the acks wake the loop (W + C A), the producers' publishes follow (C S),
    one RTT: N = k messages each take k (R + W + C (S + A)) + W, and C / (W + C (S + A))
    bounds the rate (the loop_ceiling of a batch of C) whatever the RTT."""
    from sim.analytic import loop_ceiling

    c, k = 8, 5
    overrides = {"client.loop": "iterations", "client.wakeup_cpu": W, "producers_per_client": c, "producer.messages": k}
    for a in both_engines(overrides):
        assert np.nanmax(a["resolved"]) == pytest.approx(k * (R + W + c * (S + A)) + W, rel=1e-12)
    config = build_config({**BARE, **overrides})
    rate = Result(config, run_records(System(config))).summary["throughput_msgs_per_s"]
    assert rate < loop_ceiling(config, batch=c) == pytest.approx(c / (W + c * (S + A)))


def combined_config(seed: int):
    """The asyncio client with the other issue-10 mechanisms on: the broker's read passes
    (sim.model.broker_io), link jitter and TCP windows in bytes (sim.model.network)."""
    r = random.Random(seed + 99)
    overrides = random_aio_config(seed).flat()
    overrides["broker.read_mode"] = r.choice(["batched", "per_message"])
    if overrides["broker.read_mode"] == "batched":
        overrides["broker.wakeup_cpu"] = r.uniform(0, 100e-6)
        overrides["broker.read_bytes"] = r.choice([65536, r.randint(2000, 20000)])
        if r.random() < 0.5:
            overrides["broker.read_cv"] = r.uniform(0.1, 1)
    if r.random() < 0.6:
        overrides["link.jitter"] = r.uniform(1e-6, 300e-6)
        overrides["link.jitter_cv"] = r.uniform(0.2, 2)
    if r.random() < 0.3:
        overrides["producer.payload_bytes"] = r.randint(2000, 6000)
        overrides["link.window_bytes"] = r.choice([None, r.randint(8000, 40000)])
    return build_config(overrides)


@pytest.mark.parametrize("seed", range(24))
def test_it_composes_with_read_passes_jitter_and_byte_windows(seed):
    from sim.engine import allowed_loops

    config = combined_config(seed)
    system = System(config)
    reference = run_simpy(config)
    for loop in allowed_loops(system):
        assert_same_messages(config, run_records(system, loop=loop), reference)


def test_the_combined_systems_exercise_every_mechanism():
    seen = {"iterations": 0, "burst": 0, "cv": 0, "read_passes": 0, "jitter": 0, "byte_window": 0}
    for seed in range(24):
        config = combined_config(seed)
        seen["iterations"] += config.client.loop == "iterations"
        seen["burst"] += config.producer.mode == "burst"
        seen["cv"] += config.client.cpu_cv > 0
        seen["read_passes"] += System(config).read_passes
        seen["jitter"] += config.link.jitter > 0
        seen["byte_window"] += System(config).message_bytes > config.link.mss_bytes
    assert all(seen.values()), seen


# -- the garbage collector (client.gc_messages) --------------------------------------------

GC = {"client.gc_messages": 10, "client.gc_full_every": 4, "client.gc_pause": 1e-3, "client.gc_message_cpu": 2e-6}


def test_the_collector_counts_net_messages_never_below_zero():
    """CPython's count: +1 made, -1 freed, never below 0; a young collection at gc_messages,
    a full one every gc_full_every young ones, costing gc_pause + gc_message_cpu x in flight."""
    from sim.model.aioclient import Collector

    collector = Collector(build_config(GC).client)
    for _ in range(5):
        collector.freed()  # nothing to free: stays at 0
    costs = [collector.made(alive) for alive in range(1, 40)]  # 39 made: young runs at 10, 20, 30
    assert collector.count == 9 and collector.young_runs == 3 and collector.full_runs == 0 and not any(costs)
    for _ in range(20):
        collector.freed()  # 9 freed, then no lower
    assert collector.count == 0
    costs = [collector.made(7) for _ in range(10)]  # the 10th: the 4th young collection, so a full one
    assert costs[:9] == [0.0] * 9 and costs[9] == pytest.approx(1e-3 + 7 * 2e-6, rel=1e-12)
    assert collector.full_runs == 1 and collector.young_runs == 0 and collector.count == 0
    assert collector.cpu == pytest.approx(costs[9], rel=1e-12)


@pytest.mark.parametrize("loop", ["iterations", "per_message"])
def test_a_burst_runs_its_full_collections_in_its_publishes(loop):
    """A burst of 1,000: every creation comes before any ack, so the collector runs a full
    collection at creations 40, 80, ..., 1,000 (25), the k-th with 40k in flight: the
    client's CPU grows by exactly 25 x 1 ms + 2 us x 40 x (1 + ... + 25), as the analytic
    count says. With iterations, all 1,000 publishes (and so every collection) run in the
    first iteration: they leave in one write after N S plus that much."""
    from sim.analytic import burst_collections

    n = 1000
    base = {"producer.mode": "burst", "producer.messages": n, "producer.ack_wait": 60, "client.loop": loop}
    gc_cpu = 25 * 1e-3 + 2e-6 * 40 * (25 * 26 / 2)
    assert burst_collections(build_config({**BARE, **base, **GC})) == (25, pytest.approx(gc_cpu, rel=1e-12))
    assert burst_collections(build_config({**BARE, **base})) == (0, 0.0)
    for (with_gc, without) in zip(both_engines({**base, **GC}), both_engines(base)):
        assert (with_gc["status"] == ACKED).all()
        assert with_gc["sent"].max() - without["sent"].max() == pytest.approx(gc_cpu, rel=1e-9)
        if loop == "iterations":
            assert np.all(with_gc["sent"] == pytest.approx(n * S + gc_cpu, rel=1e-12))
    for engine in (lambda c: run_records(System(c)), run_simpy):
        busy = [sum(engine(build_config({**BARE, **base, **extra})).busy["client_cpu"]) for extra in (GC, {})]
        assert busy[0] - busy[1] == pytest.approx(gc_cpu, rel=1e-9)
        config = build_config({**BARE, **base, **GC})
        summary = Result(config, engine(config)).summary
        assert summary["client_gc"] == {"full_collections": 25, "cpu_s": pytest.approx(gc_cpu, rel=1e-12)}
        assert "client_gc" not in Result(config, engine(build_config({**BARE, **base}))).summary


def test_every_iteration_pays_its_own_cpu():
    """client.iteration_cpu = I on top of the sync timeline: the first iteration costs W + I + S;
    the ack's iteration W + I + A; the next publish's iteration (no sleep, no wake-up) I + S."""
    overrides = {"client.loop": "iterations", "client.wakeup_cpu": W, "client.iteration_cpu": I, "producer.messages": 3}
    for a in both_engines(overrides):
        sent, resolved = a["sent"], a["resolved"]
        assert sent[0] == pytest.approx(W + I + S, abs=1e-15)
        for k in range(3):
            if k:
                assert sent[k] == pytest.approx(resolved[k - 1] + I + S, abs=1e-15)
            assert resolved[k] == pytest.approx(sent[k] + R + W + I + A, abs=1e-15)
    """A burst of N pays I once for all its publishes (one iteration), then once per ack read."""
    for a in both_engines({"client.loop": "iterations", "client.iteration_cpu": I, "producer.mode": "burst",
                           "producer.messages": 100, "producer.ack_wait": 60}):
        assert np.all(a["sent"] == pytest.approx(I + 100 * S, rel=1e-12))
        # every ack comes back at one instant, I + 100 S + R: one iteration reads them all
        assert np.nanmax(a["resolved"]) == pytest.approx(I + 100 * S + R + I + 100 * A, rel=1e-12)


def test_a_sync_producer_never_collects():
    """One message in flight at a time: the count goes 0, 1, 0, ... and never reaches 2."""
    base = {"producer.messages": 50, "client.loop": "iterations", "client.wakeup_cpu": W}
    ov = {**GC, "client.gc_messages": 2, "client.gc_full_every": 1}
    for with_gc, without in zip(both_engines({**base, **ov}), both_engines(base)):
        assert np.array_equal(with_gc["resolved"], without["resolved"])
