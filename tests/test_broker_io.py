"""The broker's read loops in passes and the acks of a pass written together (sim.model.broker_io).

Timelines computed by hand, every loop that takes the mechanism against the SimPy
model on random systems, the analytic ceiling, the cost variability, and the
loops that must refuse it.
"""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest

from sim import build_config, run
from sim.analytic import bounds, capacities, pass_timeline, read_loop_rate, round_trip
from sim.engine import READ_PASS_LOOPS, lookahead, run_records
from sim.model.broker_io import AckWrites, ReadLoops
from sim.model.system import System
from sim.results import Result
from sim.simpy_model import SimPyModel, run_simpy
from tests.test_oracle import assert_same_messages, by_producer, round_config
from tests.systems import random_overrides

US = 1e-6


def timeline_config(**overrides):
    """One client, one producer, 1 ms away on an unlimited link, acks free on the client."""
    values = {
        "producer.mode": "nonblocking", "producer.payload_bytes": 100, "producer.overhead_bytes": 0,
        "client.send_cpu": 0, "client.ack_cpu": 0, "link.rtt": "1ms", "link.bandwidth": "inf",
        "link.window_bytes": "inf", "broker.read_cpu": "1us", "broker.service_time": 0,
        "broker.read_mode": "batched",
    }
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return build_config(values)


def every_run(config):
    """The records of every loop that takes ``config``, and of the SimPy model, in creation order."""
    system = System(config)
    loops = ["events"] + (["windows", None] if lookahead(system) > 0 else [None])
    runs = {loop: run_records(system, loop=loop) for loop in loops}
    runs["simpy"] = run_simpy(config)
    return {name: by_producer(config, records) for name, records in runs.items()}


def assert_times(config, stored, resolved):
    for name, a in every_run(config).items():
        np.testing.assert_allclose(a["stored"], stored, rtol=0, atol=1e-12, err_msg=f"stored, {name}")
        np.testing.assert_allclose(a["resolved"], resolved, rtol=0, atol=1e-12, err_msg=f"resolved, {name}")


def test_three_messages_that_arrive_during_a_pass_are_read_by_the_next_one_and_acked_together():
    """Sends 20 us apart reach the broker at 520, 540, 560, 580 us. The first pass (at 520)
    reads one message: 97 + 11 us, parsed at 628. The second starts when it ends, at 628,
    and reads the three that came meanwhile: parsed at 628 + 97 + 11 = 736, 747, 758; the
    partition (5 us) stores them at 741, 752, 763; their acks are written together at 763
    and reach the client at 1263, which takes 3 us for each."""
    config = timeline_config(producer__messages=4, client__send_cpu="20us", client__ack_cpu="3us",
                             broker__wakeup_cpu="97us", broker__read_cpu="11us", broker__service_time="5us")
    stored = np.array([633, 741, 752, 763]) * US
    resolved = np.array([1136, 1266, 1269, 1272]) * US
    assert_times(config, stored, resolved)
    model = SimPyModel(config)
    model.run()
    assert (model.read_loops[0].passes, model.read_loops[0].most) == (2, 3)


def test_messages_written_one_by_one_without_batching():
    """The same four messages per_message: a pass per message, each ack written alone."""
    config = timeline_config(producer__messages=4, client__send_cpu="20us", client__ack_cpu="3us",
                             broker__wakeup_cpu="97us", broker__read_cpu="11us", broker__service_time="5us",
                             broker__read_mode="per_message")
    # passes at 520, 628, 736, 844 (each 108 us, the loop never idle): parsed 108 us after each start
    stored = np.array([633, 741, 849, 957]) * US
    resolved = stored + 503 * US
    assert_times(config, stored, resolved)


def test_a_read_takes_at_most_read_bytes_and_the_next_one_finishes_a_cut_message():
    """Six 100-byte messages reach the broker together at 500 us; reads hold 250 bytes.
    Pass 1 (at 500): 250 bytes, two whole messages and half a third: 10 + 2 x 1 us, parsed
    511, 512. Pass 2 (at 512): the other half and two more, 250 bytes, three messages
    parsed 523, 524, 525. Pass 3 (at 525): the last 100 bytes, parsed 536. Acks leave per
    pass: at 512, 525 and 536, and arrive 500 us later."""
    config = timeline_config(producer__messages=6, broker__read_bytes=250, broker__wakeup_cpu="10us")
    stored = np.array([511, 512, 523, 524, 525, 536]) * US
    resolved = np.array([1012, 1012, 1025, 1025, 1025, 1036]) * US
    assert_times(config, stored, resolved)
    model = SimPyModel(config)
    model.run()
    assert (model.read_loops[0].passes, model.read_loops[0].most) == (3, 3)


def test_a_message_larger_than_the_read_buffer_takes_several_passes():
    """200 bytes through 64-byte reads: passes of 64, 64, 64 and 8 bytes, 10 us each, the
    last parsing the message (1 us): parsed at 500 + 41 us; the wake-ups' 40 us are busy time."""
    config = timeline_config(producer__messages=1, producer__payload_bytes=200, broker__read_bytes=64,
                             broker__wakeup_cpu="10us")
    assert_times(config, np.array([541]) * US, np.array([1041]) * US)
    model = SimPyModel(config)
    model.run()
    assert model.read_loops[0].passes == 4
    result = run(config)
    assert result.records.busy["read_loop"][0] == pytest.approx(41 * US, abs=1e-15)


def test_a_pass_that_outruns_its_partition_writes_its_acks_at_the_last_store():
    """Five messages in one pass, parse 1 us each, partition 4 us: the theory's
    w + r + S + (j - 1) max(r, S), acks all written at the fifth store."""
    config = timeline_config(producer__messages=5, broker__wakeup_cpu="30us", broker__service_time="4us")
    theory = pass_timeline(config, 5)
    start = 500 * US
    stored = start + np.array(theory.stored)
    assert theory.written == pytest.approx((30 + 1 + 4 + 4 * 4) * US)
    assert_times(config, stored, np.full(5, start + theory.written + 500 * US))


def test_with_no_wakeup_cost_a_batched_pass_parses_as_the_plain_read_loop():
    """Passes of no fixed cost parse each message when the per-message station would:
    the first pass of a window of messages stores them at the same times; only the acks
    wait for their pass."""
    base = dict(producer__messages=5, broker__service_time="2us")
    batched = every_run(timeline_config(**base))
    plain = every_run(timeline_config(**base, broker__read_mode="per_message"))
    np.testing.assert_array_equal(batched["simpy"]["stored"], plain["simpy"]["stored"])
    assert not np.array_equal(batched["simpy"]["resolved"], plain["simpy"]["resolved"])
    # parse 1 us each, store 2 us each: the fifth stored at 500 + 1 + 2 + 4 x 2 us
    np.testing.assert_allclose(batched["events"]["resolved"], (500 + 1 + 2 + 8 + 500) * US, atol=1e-12)


def test_per_message_passes_cost_what_a_plain_read_loop_of_both_costs_costs():
    """per_message with a wake-up w is the plain read loop of read_cpu + w (up to the order
    of a float sum) on random systems."""
    for seed in range(6):
        ov = random_overrides(seed)
        w = random.Random(seed).uniform(5e-6, 80e-6)
        passes = build_config({**ov, "broker.wakeup_cpu": w})
        plain = build_config({**ov, "broker.read_cpu": ov["broker.read_cpu"] + w})
        assert System(passes).read_passes and not System(plain).read_passes
        assert_same_messages(passes, run_records(System(passes)), run_records(System(plain)))


def test_the_default_model_does_not_run_in_passes():
    system = System(build_config({}))
    assert not system.read_passes
    assert capacities(system)["read_loop"] == 1 / 1.5e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not System(build_config({"broker.read_bytes": "8KiB"})).read_passes


# -- the two engines on random systems --------------------------------------------------


def with_passes(ov: dict, seed: int) -> dict:
    r = random.Random(seed + 1000)
    ov = dict(ov)
    ov["broker.read_mode"] = r.choice(["batched", "batched", "per_message"])
    if ov["broker.read_mode"] == "batched":
        ov["broker.read_bytes"] = r.choice([64, 700, 2000, 8000, 65536])
    ov["broker.wakeup_cpu"] = r.choice([0, r.uniform(1e-6, 200e-6)])
    ov["broker.read_cv"] = r.choice([0, r.uniform(0.1, 1.5)])
    if ov["broker.read_mode"] == "per_message" and ov["broker.wakeup_cpu"] == 0 and ov["broker.read_cv"] == 0:
        ov["broker.wakeup_cpu"] = 20e-6
    if r.random() < 0.3:  # the link's jitter: arrivals at the read loop spread, in order per connection
        ov["link.jitter"] = r.uniform(1e-5, 2e-3)
    return ov


def assert_loops_match_simpy(config) -> dict:
    system = System(config)
    assert system.read_passes
    model = SimPyModel(config)
    reference = model.run()
    loops = ["events"] + (["windows", None] if lookahead(system) > 0 else [None])
    for loop in loops:
        assert_same_messages(config, run_records(system, loop=loop), reference)
    return {"passes": sum(r.passes for r in model.read_loops), "most": max(r.most for r in model.read_loops)}


@pytest.mark.parametrize("seed", range(24))
def test_every_loop_that_runs_passes_matches_the_simpy_model(seed):
    assert_loops_match_simpy(build_config(with_passes(random_overrides(seed), seed)))


@pytest.mark.parametrize("seed", range(24))
def test_exact_ties_in_passes_go_the_same_way_in_both_engines(seed):
    """Round numbers: passes that start as messages arrive, partitions and the downlink
    fed at one instant by several connections' passes."""
    ov = with_passes(round_config(seed).flat(), seed)
    ov["broker.wakeup_cpu"] = random.Random(seed).choice([0.0, 1e-5, 5e-5])
    ov["broker.read_cv"] = 0.0
    if ov["broker.read_mode"] == "per_message":
        ov["broker.wakeup_cpu"] = 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (round_config's flat() spells out keys it ignores)
        config = build_config(ov)
    assert_loops_match_simpy(config)


def test_the_random_systems_read_several_messages_per_pass():
    """Counted, not assumed: the systems above batch, cut messages, vary the cost."""
    most, cut, varied, jittered, in_bytes = 0, 0, 0, 0, 0
    for seed in range(24):
        ov = with_passes(random_overrides(seed), seed)
        config = build_config(ov)
        model = SimPyModel(config)
        model.run()
        most = max(most, *(r.most for r in model.read_loops))
        cut += any(r.partial for r in model.read_loops) or (
            ov["broker.read_mode"] == "batched" and ov["broker.read_bytes"] < System(config).message_bytes)
        varied += ov["broker.read_cv"] > 0
        jittered += config.link.jitter > 0
        in_bytes += System(config).byte_window_binds
    assert most >= 10 and cut >= 3 and varied >= 6 and jittered >= 3 and in_bytes >= 3, (
        most, cut, varied, jittered, in_bytes)


def test_summary_mode_folds_messages_held_by_passes(compact_often):
    config = build_config({**with_passes(random_overrides(5), 5), "producer.messages": 400,
                           "broker.read_mode": "batched", "broker.read_bytes": 4000})
    full = run(config)
    for loop in READ_PASS_LOOPS:
        summary = Result(config.replace({"run.records": "summary"}),
                         run_records(System(config.replace({"run.records": "summary"})), loop=loop))
        for key in ("sent", "acked", "timed_out", "stored", "makespan_s"):
            assert summary.summary[key] == pytest.approx(full.summary[key], abs=1e-9), (loop, key)


# -- the loops that cannot, and the analysis ------------------------------------------------


@pytest.mark.parametrize("loop", ["vectors", "single"])
def test_loops_without_passes_refuse_them(loop):
    system = System(timeline_config(producer__messages=3, producer__mode="sync"))
    with pytest.raises(ValueError, match=f"loop '{loop}' does not run read loops in passes"):
        run_records(system, loop=loop)


def test_the_read_loop_ceiling_is_reached_when_every_read_is_full():
    """703-byte messages, 64 KiB reads: 93.2 messages per pass, 97 us + 11 us each:
    one connection's loop carries 1 / (11 us + 97 us / 93.2); a large window keeps it full."""
    config = build_config({
        "producer.mode": "nonblocking", "producer.window": 2000, "producer.messages": 60_000,
        "client.send_cpu": "1us", "client.ack_cpu": 0, "link.rtt": "200us", "link.bandwidth": "inf",
        "link.window_bytes": "inf", "broker.read_mode": "batched", "broker.wakeup_cpu": "97us",
        "broker.read_cpu": "11us", "broker.service_time": "2us",
    })
    system = System(config)
    ceiling = 1 / (11e-6 + 97e-6 / (65536 / 703))
    assert read_loop_rate(config) == pytest.approx(ceiling, rel=1e-12)
    assert capacities(system)["read_loop"] == pytest.approx(ceiling, rel=1e-12)
    assert min(capacities(system), key=capacities(system).get) == "read_loop"
    b = bounds(config)  # the operational bounds see the same demand
    assert b.bottleneck == "read_loop" and b.max_throughput == pytest.approx(ceiling, rel=1e-12)
    throughput = run(config).summary["throughput_msgs_per_s"]
    assert throughput == pytest.approx(ceiling, rel=0.01)
    assert throughput <= ceiling * 1.0001


def test_small_reads_pay_the_wakeup_over_fewer_messages():
    """A window of 10 sent at one instant: each round trip is one pass of 10, whose acks
    come back together and release the next 10 at once. A pass costs 97 + 10 x 11 us, the
    last store 2 us later, so 500 round trips take 500 x (100 + 97 + 110 + 2) us, below the
    read loop's 10 / (97 + 10 x 11 us) for passes of 10."""
    config = build_config({
        "producer.mode": "nonblocking", "producer.window": 10, "producer.messages": 5000,
        "client.send_cpu": 0, "client.ack_cpu": 0, "link.rtt": "100us", "link.bandwidth": "inf",
        "link.window_bytes": "inf", "broker.read_mode": "batched", "broker.wakeup_cpu": "97us",
        "broker.read_cpu": "11us", "broker.service_time": "2us",
    })
    bound = read_loop_rate(config, 10)
    assert bound == pytest.approx(10 / 207e-6)
    summary = run(config).summary
    assert summary["makespan_s"] == pytest.approx(500 * 309e-6, rel=1e-9)
    assert summary["throughput_msgs_per_s"] <= bound


def test_round_trip_counts_one_pass_of_one_message():
    config = timeline_config(broker__wakeup_cpu="97us", broker__read_cpu="11us", broker__service_time="5us")
    assert round_trip(config) == pytest.approx(1e-3 + 97e-6 + 11e-6 + 5e-6)
    result = run(config.replace({"producer.mode": "sync", "producer.messages": 50}))
    assert result.summary["makespan_s"] == pytest.approx(50 * round_trip(config), rel=1e-9)


# -- variability ----------------------------------------------------------------------------


def test_pass_costs_scale_by_a_lognormal_factor_of_mean_one_and_the_configured_cv():
    """20,000 single-message passes of 100 us, cv 0.5: the mean and the cv of the costs
    within 4 standard errors (of the mean: 0.5/sqrt(n); of the cv: about cv sqrt((1 + 2 cv^2) / 2n)
    for a lognormal, loosely)."""
    n, cv = 20_000, 0.5
    config = timeline_config(producer__messages=n, broker__read_mode="per_message",
                             broker__wakeup_cpu="100us", broker__read_cpu=0, broker__read_cv=cv)
    loops = ReadLoops(System(config))
    costs = []
    for m in range(n):
        loops.arrive(0, 0.0, m, m)
        start = loops.next_pass(0)
        loops.read(0, start)
        costs.append(loops.free[0] - start)
    costs = np.array(costs) / 100e-6
    assert abs(costs.mean() - 1) < 4 * cv / math.sqrt(n)
    assert abs(costs.std() / costs.mean() - cv) < 4 * cv * math.sqrt((1 + 2 * cv * cv) / (2 * n))


def test_variable_passes_spread_latency_and_the_same_seed_gives_the_same_times():
    base = {"producer.mode": "nonblocking", "producer.window": 50, "producer.messages": 3000,
            "link.rtt": "1ms", "broker.read_mode": "batched", "broker.wakeup_cpu": "97us",
            "broker.read_cpu": "11us"}
    steady = run(build_config(base)).summary["latency_ms"]
    varied_config = build_config({**base, "broker.read_cv": 1.0})
    varied = run(varied_config).summary["latency_ms"]
    assert varied["p99"] / varied["p50"] > 1.05 * steady["p99"] / steady["p50"]
    again = run(varied_config)
    np.testing.assert_array_equal(again.arrays["resolved"], run(varied_config).arrays["resolved"])
    other = run(varied_config.replace({"run.seed": 2}))
    assert not np.array_equal(other.arrays["resolved"], again.arrays["resolved"])


def test_read_streams_leave_the_others_alone():
    """A read cv draws from its own branch of the seed tree: partition service draws stay."""
    base = {"producer.mode": "nonblocking", "producer.window": 5, "producer.messages": 200,
            "broker.service_dist": "exponential", "broker.wakeup_cpu": "20us"}
    a = System(build_config(base)).streams().service[0].take(50)
    b = System(build_config({**base, "broker.read_cv": 0.7})).streams().service[0].take(50)
    np.testing.assert_array_equal(a, b)


def test_ack_writes_hold_a_pass_until_its_last_store():
    writes = AckWrites()
    writes.open([(1.0, "a", 0), (2.0, "b", 1), (3.0, "c", 2)])
    assert writes.stored(1, 5.0) == []
    assert writes.stored(0, 7.0) == []
    assert sorted(writes.live()) == [0, 1, 2]
    assert writes.stored(2, 6.0) == [(7.0, "a", 0), (7.0, "b", 1), (7.0, "c", 2)]
    assert writes.live() == []


@pytest.mark.parametrize("seed", range(12))
def test_passes_behind_the_asyncio_client_match_the_simpy_model(seed):
    """The broker's passes with the client's loop iterations, bursts and drawn costs."""
    from tests.test_aioclient import random_aio_config

    client = {k: v for k, v in random_aio_config(seed).flat().items()
              if k.startswith("client.") or k.startswith("producer.")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (flat() spells out keys the system ignores)
        config = build_config(with_passes({**random_overrides(seed), **client}, seed))
    assert_loops_match_simpy(config)
