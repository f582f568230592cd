"""Shared cores: client processes (and a co-located broker) taking turns on a host's cores.

Exact timelines worked out by hand, the fast engine's hosts loop against the SimPy
model message by message, the analytic bound, and the measurement rows' mapping.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from sim import build_config, run
from sim.analytic import bounds, capacities, core_ceiling
from sim.engine import allowed_loops, run_records
from sim.measure.schema import row_overrides
from sim.model.hosts import CorePool, layout, shares_cores
from sim.model.system import System
from sim.results import Result
from sim.simpy_model import run_simpy
from tests.helpers import pure_network
from tests.systems import random_overrides
from tests.test_oracle import assert_same_messages, round_config

MS = 1e-3


def both_engines(config):
    """The fast engine's records and the SimPy model's, each as message arrays in creation order per producer."""
    out = []
    for records in (run_records(System(config)), run_simpy(config)):
        a = Result(config, records).arrays
        order = np.lexsort((a["created"], a["producer"]))
        out.append({k: v[order] for k, v in a.items()})
    return out


def assert_times(a, **expected):
    for name, values in expected.items():
        np.testing.assert_allclose(a[name], values, rtol=0, atol=1e-12, err_msg=name)


# -- the pool --------------------------------------------------------------------------------


def test_a_pool_grants_cores_first_come_first_served():
    pool = CorePool(2)
    # three jobs of 1 s asked at 0, 0 and 0.5: the third waits for the first core to free up
    assert [pool.grant(t, 1.0) for t in (0.0, 0.0, 0.5)] == [1.0, 1.0, 2.0]
    # asked at one instant, granted in key order once everything at that instant has happened, one
    # at a time as a core frees up; each station decides its job (and so its cost) when granted
    pool = CorePool(1)
    pool.request(0.0, (2, 0))
    pool.request(0.0, (0, 1))
    pool.request(0.0, (0, 0))
    cost = {(0, 0): 2.0, (0, 1): 1.0, (2, 0): 1.0, (0, 5): 0.5}
    granted = []

    def settle(key, start):
        granted.append((key, start))
        return start + cost[key], cost[key]

    assert pool.next_grant() == 0.0
    pool.grant_due(0.0, settle)
    assert granted == [((0, 0), 0.0)] and pool.free == [2.0] and pool.next_grant() == 2.0
    pool.request(1.0, (0, 5))  # asked later than (0, 1) and (2, 0): granted after them, whatever its key
    pool.grant_due(1.0, settle)  # (no core free at 1)
    assert len(granted) == 1
    for t in (2.0, 3.0, 4.0):
        assert pool.next_grant() == t
        pool.grant_due(t, settle)
    assert granted[1:] == [((0, 1), 2.0), ((2, 0), 3.0), ((0, 5), 4.0)] and pool.free == [4.5]
    assert pool.next_grant() == float("inf") and pool.busy == 4.5 and pool.jobs == 4


# -- exact timelines ---------------------------------------------------------------------------


def test_two_clients_on_one_core_take_turns():
    """Two sync clients, 1 ms per produce(), 0.5 ms per ack, 10 ms away, on one core."""
    send, ack, rtt = 1 * MS, 0.5 * MS, 10 * MS
    config = pure_network(clients=2, producer__messages=2, client__send_cpu=send, client__ack_cpu=ack,
                          link__rtt=rtt, client__host_cores=1)
    assert shares_cores(System(config))
    # client 1 (the lower) gets the core at 0, client 2 waits for it
    sent0 = [send, 2 * send]
    ack0 = [s + rtt for s in sent0]  # 11, 12 ms
    done00 = ack0[0] + ack  # client 1's ack: the core is free at 11 ms
    # client 1 produces its second message at once (11.5 ms); client 2's ack, in at 12 ms, waits for that send
    sent01 = done00 + send
    done10 = sent01 + ack
    sent11 = done10 + send
    expected = dict(
        created=[0, done00, 0, done10],
        sent=[sent0[0], sent01, sent0[1], sent11],
        stored=[sent0[0] + rtt / 2, sent01 + rtt / 2, sent0[1] + rtt / 2, sent11 + rtt / 2],
        resolved=[done00, sent01 + rtt + ack, done10, sent11 + rtt + ack],
    )
    for a in both_engines(config):
        assert_times(a, **expected)
    # on a core each, neither waits: the second client's first message leaves at 1 ms too
    alone = run(config.replace({"client.host_cores": None})).arrays
    assert sorted(alone["sent"])[:2] == [send, send]


def test_a_colocated_partition_waits_for_the_core():
    """One client (window 2) and the broker on one core, zero RTT: 1 ms per produce(), 0.5 ms per ack,
    2 ms per message in the partition. At an instant the client's job goes first, and the partition
    takes, when granted the core, every message waiting at it then.

    (Recomputed when the work a station does became decided at its grant: the partition, which asked at
    1 ms, now serves m0 and m1 in one pass from its grant at 2 ms, so m1 is stored at 6 ms, not 6.5,
    and m0's ack waits for that pass; the run still ends at 10.5 ms.)"""
    a_, b_, s_ = 1 * MS, 0.5 * MS, 2 * MS
    config = pure_network(producer__mode="nonblocking", producer__window=2, producer__messages=3,
                          client__send_cpu=a_, client__ack_cpu=b_, broker__service_time=s_,
                          link__rtt=0, client__host_cores=1, broker__colocated=True)
    assert shares_cores(System(config))
    # 0-1 send m0; 1-2 send m1 (m0 reached the partition at 1 and it asked for the core, but the client
    # asked at the same instant and goes first); at 2 the partition is granted the core with m0 and m1
    # waiting: 2-4 m0, 4-6 m1; m0's ack (in at 4) asks at 4 and gets the core at 6: 6-6.5, which lets the
    # producer make m2 at 6.5; m1's ack (in at 6) queued ahead of m2's send: 6.5-7; 7-8 send m2;
    # 8-10 m2 in the partition; 10-10.5 its ack
    expected = dict(created=[0, a_, 2 * a_ + 2 * s_ + b_], sent=[a_, 2 * a_, 3 * a_ + 2 * s_ + 2 * b_],
                    stored=[2 * a_ + s_, 2 * a_ + 2 * s_, 3 * a_ + 3 * s_ + 2 * b_],
                    resolved=[2 * a_ + 2 * s_ + b_, 2 * a_ + 2 * s_ + 2 * b_, 3 * a_ + 3 * s_ + 3 * b_])
    for a in both_engines(config):
        assert_times(a, **expected)
    # a broker on its own machine stores m0 as soon as it arrives: 1 + 2 ms
    apart = run(config.replace({"broker.colocated": False})).arrays
    assert apart["stored"][0] == pytest.approx(a_ + s_, abs=1e-12)


def test_a_partition_granted_the_core_serves_every_message_waiting_at_it():
    """Two nonblocking clients (window 2, two messages each) and the broker on one core, zero RTT:
    1 ms per produce(), 0.5 ms per ack, 2 ms per message in the partition. The partition decides
    its work when it is granted the core, not when it asks: it asks at 1 ms for m10 but gets the
    core at 3 ms, when m20 and m11 have arrived too, and serves all three in one pass.

    0-1 client 1 sends m10 (client 2 asked at 0 too); at 1 m10 reaches the partition, which asks,
    and client 1 makes m11 and asks; client 2 asked first: 1-2 it sends m20, then makes m21 and asks
    at 2; 2-3 client 1 sends m11 (asked at 1, ahead of the partition's key at that instant); at 3 the
    partition is granted the core with m10, m20, m11 waiting: 3-5, 5-7, 7-9. Acks in at 5, 7, 9 wait:
    client 2's send of m21 (asked at 2) 9-10; client 1's ack of m10 (asked at 5) 10-10.5; client 2's
    ack of m20 (asked at 10, a client ahead of the partition's m21 asked at 10) 10.5-11; the
    partition's m21 11-13; client 1's ack of m11 (asked at 10.5) 13-13.5; client 2's of m21 13.5-14.
    (Asking a core for each message, the partition would have served m10 alone at 3-5, and m20 and
    m11 each behind the clients' jobs queued meanwhile.)"""
    a_, b_, s_ = 1 * MS, 0.5 * MS, 2 * MS
    config = pure_network(clients=2, producer__mode="nonblocking", producer__window=2, producer__messages=2,
                          client__send_cpu=a_, client__ack_cpu=b_, broker__service_time=s_,
                          link__rtt=0, client__host_cores=1, broker__colocated=True)
    assert shares_cores(System(config))
    # producer 1 (client 1): m10, m11; producer 2 (client 2): m20, m21
    expected = dict(created=[0, 1 * MS, 0, 2 * MS], sent=[1 * MS, 3 * MS, 2 * MS, 10 * MS],
                    stored=[5 * MS, 9 * MS, 7 * MS, 13 * MS], resolved=[10.5 * MS, 13.5 * MS, 11 * MS, 14 * MS])
    for a in both_engines(config):
        assert_times(a, **expected)
    busy = run(config).records.busy
    assert busy["host_cpu"] == [pytest.approx(4 * a_ + 4 * b_ + 4 * s_, abs=1e-15)]


def test_an_iteration_granted_the_core_reads_the_acks_that_arrived_while_it_waited():
    """One client with event-loop iterations and two sync producers, and the broker on its one core,
    zero RTT: a 0.1 ms wake-up, 1 ms per publish, 0.5 ms per ack, 2 ms per message in the partition.

    0-2.1 the first iteration (wake-up, both publishes; sent at 2.1); 2.1-4.1 m0 and 4.1-6.1 m1 in
    the partition (one pass). m0's ack is in at 4.1: the loop wakes and asks for the core, which the
    partition holds until 6.1; m1's ack comes in at 6.1, while it waits, so the iteration granted at
    6.1 reads both: 6.1-6.2 wake-up, 6.7 m0 resolved, 7.2 m1 resolved. Both producers then make their
    next message in the next iteration, at once (no wake-up): 7.2-9.2, both sent at 9.2; the partition
    9.2-11.2 and 11.2-13.2; the iteration woken at 11.2 by m2's ack is granted at 13.2 and reads m3's
    too: 13.3 wake-up, 13.8, 14.3. (Had the iteration read only the acks in when it asked, m1's ack
    would have waited for the next one, and m2 would have left alone at 8.2.)"""
    w, a_, b_, s_ = 0.1 * MS, 1 * MS, 0.5 * MS, 2 * MS
    config = pure_network(clients=1, producers_per_client=2, producer__messages=2, client__loop="iterations",
                          client__wakeup_cpu=w, client__send_cpu=a_, client__ack_cpu=b_, broker__service_time=s_,
                          link__rtt=0, client__host_cores=1, broker__colocated=True)
    assert shares_cores(System(config))
    first = w + 2 * a_  # 2.1: both sent
    acked = first + 2 * s_ + w  # 6.2: the iteration granted at 6.1 has woken
    second = acked + 2 * b_ + 2 * a_  # 9.2: m2 and m3 sent
    late = second + 2 * s_ + w  # 13.3
    # producer 1: m0, m2; producer 2: m1, m3
    expected = dict(created=[0, acked + 2 * b_, 0, acked + 2 * b_], sent=[first, second, first, second],
                    stored=[first + s_, second + s_, first + 2 * s_, second + 2 * s_],
                    resolved=[acked + b_, late + b_, acked + 2 * b_, late + 2 * b_])
    for a in both_engines(config):
        assert_times(a, **expected)


def test_read_loops_take_turns_on_the_brokers_core():
    """Two sync clients 10 ms away; each message costs 1 ms in its connection's read loop, and the
    broker has one core: the second connection's read waits for the first."""
    config = pure_network(clients=2, producer__messages=1, link__rtt=10 * MS, broker__read_cpu=1 * MS,
                          broker__cores=1)
    assert shares_cores(System(config))
    for a in both_engines(config):
        assert_times(a, stored=[6 * MS, 7 * MS], resolved=[11 * MS, 12 * MS])


# -- the fast engine against the SimPy model ---------------------------------------------------------


def shared_config(seed: int, base) -> object:
    """A random system of the oracle's kinds (``base``) with clients, and maybe the broker, on
    hosts of 1-2 cores."""
    r = random.Random(10_000 + seed)
    ov = random_overrides(seed) if base == "random" else dict(round_config(seed).flat())
    ov["clients"] = r.randint(2, 5)
    # (messages within one segment and no jitter: the hosts loop does not take those yet)
    ov["link.jitter"] = 0
    ov.pop("link.jitter_cv", None)
    ov["producer.payload_bytes"] = min(ov["producer.payload_bytes"], 1200)
    where = r.choice(["clients", "colocated", "broker", "both"])
    if where != "broker":
        ov["client.host_cores"] = r.randint(1, 2)
        ov["client.hosts"] = r.choice([1, 1, 2])
    if where == "colocated":
        ov["broker.colocated"] = True
    if where in ("broker", "both"):
        ov["broker.cores"] = r.randint(1, 2)
        if not ov.get("broker.read_cpu"):
            ov["broker.read_cpu"] = r.uniform(5e-6, 80e-6)
    g = random.Random(60_000 + seed)  # (its own draws: the keys above stay as they were)
    if seed % 3:  # the scheduler's time slice: from a few jobs to many
        ov["client.host_slice"] = g.choice([0.5e-3, 1.5e-3, 3e-3, g.uniform(10e-6, 2e-3)])
    return build_config(ov)


SHARED = [("random", seed) for seed in range(24)] + [("round", seed) for seed in range(24)]


@pytest.mark.parametrize("base,seed", SHARED)
def test_the_engine_matches_the_simpy_model_with_shared_cores(base, seed):
    config = shared_config(seed, base)
    assert_same_messages(config, run_records(System(config)), run_simpy(config))


def test_the_shared_systems_make_jobs_wait_for_cores():
    """Counted, not assumed: most of the systems above have fewer cores than processes, and there
    jobs do wait (the run differs from the same system with a core for everyone)."""
    binding = waited = 0
    for base, seed in SHARED:
        config = shared_config(seed, base)
        if not shares_cores(System(config)):
            continue
        binding += 1
        free = config.replace({"client.host_cores": None, "client.hosts": 1, "broker.cores": None,
                               "broker.colocated": False, "client.host_slice": 0})
        ours, theirs = Result(config, run_records(System(config))), run(free)
        waited += not np.array_equal(np.sort(ours.arrays["sent"]), np.sort(theirs.arrays["sent"]))
    assert binding >= 40 and waited >= 30, (binding, waited)


@pytest.mark.parametrize("seed", range(8))
def test_the_hosts_loop_runs_systems_without_shared_cores(seed):
    ov = random_overrides(seed)
    ov.update({"link.jitter": 0, "producer.payload_bytes": min(ov["producer.payload_bytes"], 1200)})
    ov.pop("link.jitter_cv", None)
    config = build_config(ov)
    assert_same_messages(config, run_records(System(config), loop="hosts"), run_simpy(config))


def test_the_hosts_loop_refuses_what_it_does_not_take():
    config = build_config({"producer.payload_bytes": "4KiB", "link.window_bytes": "16KiB", "producer.messages": 5})
    with pytest.raises(ValueError, match="loop 'hosts' does not take a TCP window in bytes"):
        run_records(System(config), loop="hosts")
    shared = config.replace({"clients": 3, "client.host_cores": 1})
    with pytest.raises(ValueError, match="client.host_cores = 1: shared cores do not yet combine with a TCP window"):
        run(shared)


# -- read loops in passes (sim.model.broker_io) on shared cores ------------------------------------


def test_read_passes_take_turns_on_the_brokers_core():
    """Two nonblocking clients, 10 ms away, two messages each sent at 0; the broker reads in passes
    (a 1 ms wake-up plus 0.5 ms per message) on one core. Both connections' messages arrive at 5 ms
    and both loops ask for the core then: connection 0's pass runs first, 5-6 wake-up, parses its
    messages at 6.5 and 7; connection 1's pass gets the core at 7: parses at 8.5 and 9. A pass's
    acks leave together at its last store: 7 and 9, back at 12 and 14."""
    config = pure_network(clients=2, producer__messages=2, producer__mode="nonblocking",
                          link__rtt=10 * MS, broker__cores=1, broker__read_mode="batched",
                          broker__wakeup_cpu=1 * MS, broker__read_cpu=0.5 * MS)
    assert shares_cores(System(config)) and allowed_loops(System(config)) == ["hosts"]
    for a in both_engines(config):  # producers 0 and 1 (clients 0 and 1), two messages each
        assert_times(a, stored=[6.5 * MS, 7 * MS, 8.5 * MS, 9 * MS], resolved=[12 * MS, 12 * MS, 14 * MS, 14 * MS])
    # a core each: both passes run at once, 5-6.5 and 7
    apart = both_engines(config.replace({"broker.cores": 2}))
    for a in apart:
        assert_times(a, stored=[6.5 * MS, 7 * MS] * 2, resolved=[12 * MS] * 4)


def test_a_pass_with_a_read_factor_holds_the_core_for_its_whole_drawn_time():
    """One connection per_message with a drawn factor, on the core a partition (2 ms) also uses: a
    pass holds the core for (wake-up + read_cpu) x its factor, and starts its parse when granted.

    (Recomputed when the work a station does became decided at its grant: the partition's pass now
    takes both messages parsed by its grant, so the second is stored before the third pass runs.)"""
    config = pure_network(clients=1, producer__messages=3, producer__mode="nonblocking", link__rtt=10 * MS,
                          broker__cores=1, broker__wakeup_cpu=1 * MS, broker__read_cpu=0.5 * MS,
                          broker__read_cv=0.5, broker__service_time=2 * MS)
    system = System(config)
    assert shares_cores(system)
    f = [next(d) for d in [system.read_factors()[0]] for _ in range(3)]
    # pass 1 at 5 parses at p1; at p1 the second pass and the partition both ask the core, and at one
    # instant a read loop goes first: the second pass p1 .. p2
    p1 = 5 * MS + 1 * MS * f[0] + 0.5 * MS * f[0]
    p2 = p1 + 1 * MS * f[1] + 0.5 * MS * f[1]
    # at p2 the partition (asked at p1) is granted before the third pass (asked at p2), and finds both
    # parsed messages waiting: p2 .. s1 .. s2
    s1 = p2 + 2 * MS
    s2 = s1 + 2 * MS
    # the third pass gets the core at s2, and the partition, asking when it parses the third, at p3
    p3 = s2 + 1 * MS * f[2] + 0.5 * MS * f[2]
    s3 = p3 + 2 * MS
    for a in both_engines(config):
        assert_times(a, stored=[s1, s2, s3], resolved=[s1 + 5 * MS, s2 + 5 * MS, s3 + 5 * MS])


def passes_shared_config(seed: int):
    """A random shared-core system (sync or asyncio clients) whose broker reads in passes."""
    r = random.Random(40_000 + seed)
    config = aio_shared_config(seed) if seed % 3 == 0 else shared_config(seed, "random" if seed % 2 else "round")
    ov = dict(config.flat())
    ov["broker.read_mode"] = r.choice(["batched", "batched", "batched", "per_message"])
    if ov["broker.read_mode"] == "batched":
        ov["broker.read_bytes"] = r.choice([64, 700, 2000, 8000, 65536])
    ov["broker.wakeup_cpu"] = r.choice([0, r.uniform(1e-6, 200e-6), r.uniform(1e-6, 200e-6)])
    ov["broker.read_cv"] = r.choice([0, r.uniform(0.1, 1.5)])
    if ov["broker.read_mode"] == "per_message" and ov["broker.wakeup_cpu"] == 0 and ov["broker.read_cv"] == 0:
        ov["broker.wakeup_cpu"] = 20e-6
    if ov.get("broker.cores") is None and not ov.get("broker.colocated"):
        ov["broker.cores"] = 1  # the read loops' passes themselves wait for a core
    return build_config(ov)


PASSES_SHARED = range(30)


@pytest.mark.parametrize("seed", PASSES_SHARED)
def test_read_passes_on_shared_cores_match_the_simpy_model_in_every_allowed_loop(seed):
    config = passes_shared_config(seed)
    system = System(config)
    assert system.read_passes
    reference = run_simpy(config)
    loops = allowed_loops(system)
    if shares_cores(system):
        assert loops == ["hosts"]
    else:
        loops.append("hosts")  # (it runs any system)
    for loop in [None, *loops]:
        assert_same_messages(config, run_records(system, loop=loop), reference)


def test_the_pass_systems_share_cores_and_batch():
    """Counted, not assumed: most of the systems above bind their cores, read several messages in
    one pass, and use the asyncio client's iterations; there, passes do wait for cores."""
    binding = batched = iterations = waited = 0
    for seed in PASSES_SHARED:
        config = passes_shared_config(seed)
        if not shares_cores(System(config)):
            continue
        binding += 1
        batched += config.broker.read_mode == "batched"
        iterations += config.client.loop == "iterations"
        free = config.replace({"client.host_cores": None, "client.hosts": 1, "broker.cores": None,
                               "broker.colocated": False, "client.host_slice": 0})
        ours, theirs = Result(config, run_records(System(config))), run(free)
        a, b = np.sort(ours.arrays["stored"]), np.sort(theirs.arrays["stored"])
        waited += a.size != b.size or not np.allclose(a, b, rtol=0, atol=1e-12, equal_nan=True)
    assert binding >= 25 and batched >= 15 and iterations >= 3 and waited >= 15, (binding, batched, iterations,
                                                                                  waited)


@pytest.mark.parametrize("loop", ["single", "vectors"])
def test_loops_without_passes_refuse_them_on_shared_cores(loop):
    config = build_config({"clients": 3, "broker.cores": 1, "broker.read_mode": "batched", "producer.messages": 5})
    with pytest.raises(ValueError, match="does not run read loops in passes"):
        run_records(System(config), loop=loop)


@pytest.mark.parametrize("loop", ["single", "events", "windows", "vectors"])
def test_other_loops_refuse_shared_cores(loop):
    config = build_config({"clients": 2, "client.host_cores": 1, "producer.messages": 5})
    with pytest.raises(ValueError, match="share cores.*loop='hosts'"):
        run_records(System(config), loop=loop)


def test_cores_to_spare_change_nothing():
    """With as many cores as processes nothing waits: the usual loops run it, to the same bytes."""
    base = {"clients": 3, "producer.mode": "nonblocking", "producer.window": 20, "producer.messages": 300,
            "link.rtt": "1ms", "broker.partitions": 2}
    spare = build_config({**base, "client.host_cores": 3 + 3 + 2, "broker.colocated": True})
    assert not shares_cores(System(spare))
    plain = run(build_config(base))
    ours = run(spare)
    for name in ("created", "sent", "stored", "resolved"):
        np.testing.assert_array_equal(ours.arrays[name], plain.arrays[name])


def test_summary_mode_counts_what_full_records_count():
    config = shared_config(5, "random")
    full, summary = run(config), run(config.replace({"run.records": "summary"}))
    for key in ("sent", "acked", "timed_out", "ghosts", "stored", "in_flight"):
        assert full.summary[key] == summary.summary[key], key
    assert full.summary["makespan_s"] == summary.summary["makespan_s"]


# -- the bound -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, cores_per_message", [
    # two producer processes on one core: 1 / 40 us = 25,000 msg/s, whatever the window
    ({"clients": 2, "client.host_cores": 1}, 1 / 40e-6),
    # eight on two cores (the data set's producers x partitions points run up to 8 on 2)
    ({"clients": 8, "client.host_cores": 2}, 2 / 40e-6),
    # four, with the broker on the same two cores: 2 / (40 + 5 + 15 us)
    ({"clients": 4, "client.host_cores": 2, "broker.colocated": True}, 2 / 60e-6),
    # the broker's single core behind four clients with cores of their own: 1 / (5 + 15 us)
    ({"clients": 4, "broker.cores": 1}, 1 / 20e-6),
])
def test_throughput_approaches_cores_over_cpu_per_message_at_rtt_0(overrides, cores_per_message):
    config = build_config({"producer.mode": "nonblocking", "producer.window": 20, "producer.messages": 4000,
                           "link.rtt": 0, "link.bandwidth": "inf", "client.send_cpu": "30us",
                           "client.ack_cpu": "10us", "broker.read_cpu": "5us", "broker.service_time": "15us",
                           **overrides})
    assert core_ceiling(config) == pytest.approx(cores_per_message, rel=1e-12)
    assert bounds(config).max_throughput == pytest.approx(cores_per_message, rel=1e-12)
    result = run(config)
    throughput = result.summary["throughput_msgs_per_s"]
    assert 0.97 * cores_per_message <= throughput <= cores_per_message * (1 + 1e-9)
    util = result.summary["utilisation"]
    name = "broker_cpu" if "broker.cores" in overrides else "host_cpu"
    assert util[name] >= 0.97 and result.summary["limited_by"] == name


def test_capacities_name_the_shared_cores():
    cpu = 45e-6  # the defaults: 35 + 10 us
    config = build_config({"clients": 5, "client.host_cores": 2, "client.hosts": 2})
    caps = capacities(config)
    # hosts of 3 and 2 clients, 2 cores each: the first carries 3/5 of the messages on 2 cores
    assert caps["client_cpu"] == pytest.approx(2 / (3 / 5 * cpu))
    colocated = capacities(build_config({"clients": 4, "client.host_cores": 2, "broker.colocated": True}))
    assert colocated["host_cpu"] == pytest.approx(2 / (cpu + 1.5e-6 + 5e-6))
    broker = capacities(build_config({"clients": 4, "broker.cores": 2}))
    assert broker["broker_cpu"] == pytest.approx(2 / (1.5e-6 + 5e-6))
    assert set(capacities(build_config({}))) == {"client_cpu", "uplink", "connection", "read_loop",
                                                          "partition", "downlink"}


def test_the_layout_puts_clients_round_robin_on_hosts():
    lay = layout(System(build_config({"clients": 5, "client.host_cores": 1, "client.hosts": 2,
                                      "broker.cores": 3})))
    assert lay.client_pool == (0, 1, 0, 1, 0) and lay.broker_pool == 2 and lay.cores == (1, 1, 3)
    assert lay.users == (3, 2, 5 + 1) and lay.binding


def aio_shared_config(seed: int):
    """A shared-core system whose clients are the asyncio client: event-loop iterations with a
    wake-up cost, bursts, drawn CPU costs."""
    r = random.Random(20_000 + seed)
    ov = dict(shared_config(seed, "random").flat())
    kind = ["iterations", "burst", "cv"][seed % 3]
    if kind == "iterations":
        ov.update({"client.loop": "iterations", "client.wakeup_cpu": r.uniform(0, 150e-6)})
        if seed % 4 in (0, 3):  # every iteration's own CPU (its own draw)
            ov["client.iteration_cpu"] = random.Random(28_000 + seed).uniform(1e-6, 40e-6)
        if seed % 2:  # a wake-up that grows with the sleep (its own draws: the rest stays as it was)
            g = random.Random(27_000 + seed)
            ov.update({"client.wakeup_growth": g.uniform(0.005, 0.3),
                       "client.wakeup_max": g.choice([None, ov["client.wakeup_cpu"] + g.uniform(0, 300e-6)])})
    elif kind == "burst":
        ov.update({"producer.mode": "burst", "producer.window": None, "producer.concurrent_task_limit": None,
                   "producer.rate": None, "producer.messages": r.randint(20, 120)})
    else:
        ov["client.cpu_cv"] = r.uniform(0.2, 1.5)
    if seed % 4 in (1, 2):  # a garbage collector (its own draws)
        from tests.test_aioclient import gc_overrides

        ov.update(gc_overrides(random.Random(29_000 + seed)))
    ov = {k: v for k, v in ov.items() if not (k == "producer.limiter_poll" and
                                              ov.get("producer.concurrent_task_limit") is None)}
    if not shares_cores(System(build_config(ov))):  # (two clients on two cores: make them share one)
        ov.update({"client.host_cores": 1, "client.hosts": 1})
    return build_config(ov)


@pytest.mark.parametrize("seed", range(16))
def test_link_jitter_on_shared_cores_matches_the_simpy_model(seed):
    r = random.Random(30_000 + seed)
    base = aio_shared_config(seed) if seed % 2 else shared_config(seed, "random")
    config = base.replace({"link.jitter": r.uniform(1e-5, 2e-3),
                                              "link.jitter_cv": r.uniform(0.3, 2.0)})
    assert shares_cores(System(config))
    assert_same_messages(config, run_records(System(config)), run_simpy(config))


@pytest.mark.parametrize("seed", range(24))
def test_the_asyncio_client_on_shared_cores_matches_the_simpy_model(seed):
    config = aio_shared_config(seed)
    assert shares_cores(System(config))
    assert_same_messages(config, run_records(System(config)), run_simpy(config))


def test_the_shared_core_systems_exercise_a_growing_wake_up():
    grown = [s for s in range(24) if aio_shared_config(s).client.wakeup_growth > 0]
    assert len(grown) >= 3 and any(aio_shared_config(s).client.wakeup_max is not None for s in grown)
    collecting = [s for s in range(24) if aio_shared_config(s).client.gc_messages is not None]
    assert len(collecting) >= 6 and any(aio_shared_config(s).producer.mode == "burst" for s in collecting)


def test_an_iteration_holds_a_core_for_all_its_work():
    """Two sync clients with event-loop iterations on one core, 10 ms away: an iteration costs a
    0.1 ms wake-up plus 1 ms per publish or 0.5 ms per ack, all on the core it was granted."""
    config = pure_network(clients=2, producer__messages=1, client__loop="iterations", client__wakeup_cpu=0.1 * MS,
                          client__send_cpu=1 * MS, client__ack_cpu=0.5 * MS, link__rtt=10 * MS,
                          client__host_cores=1)
    # client 1: 0-1.1 ms (wake-up, publish); client 2 asked at 0 too: 1.1-2.2 ms; acks at 11.1 and 12.2 ms:
    # client 1 11.1-11.7 (wake-up, ack), client 2 12.2-12.8
    for a in both_engines(config):
        assert_times(a, created=[0, 0], sent=[1.1 * MS, 2.2 * MS], stored=[6.1 * MS, 7.2 * MS],
                     resolved=[11.7 * MS, 12.8 * MS])


# -- measurements ----------------------------------------------------------------------------------------


def test_measurement_rows_say_where_the_processes_ran():
    row = {"mode": "window", "window": 100, "producers": 4, "partitions": 2, "messages": 40000, "rtt_ms": 1.25,
           "host_cores": 2, "colocated": "True"}
    out = row_overrides(row)
    assert out["client.host_cores"] == 2 and out["client.hosts"] == 1 and out["broker.colocated"] is True
    assert shares_cores(System(build_config(out)))
    assert row_overrides({**row, "colocated": False})["broker.colocated"] is False
    assert "client.host_cores" not in row_overrides({**row, "host_cores": float("nan"), "colocated": ""})
    with pytest.raises(ValueError, match="colocated = sometimes: expected true or false"):
        row_overrides({**row, "colocated": "sometimes"})
    # sim measure --pin-broker: the producers on host_cores of their own, the broker on broker_cores apart
    pinned = row_overrides({**row, "host_cores": 1, "colocated": False, "broker_cores": 1})
    assert pinned["client.host_cores"] == 1 and pinned["broker.colocated"] is False and pinned["broker.cores"] == 1
    assert "broker.cores" not in row_overrides({**row, "broker_cores": float("nan")})
    with pytest.raises(ValueError, match="broker_cores = 1: a row with colocated = true shares"):
        row_overrides({**row, "broker_cores": 1})
    with pytest.raises(ValueError, match="broker_cores = 1.5: expected a whole number >= 1"):
        row_overrides({**row, "colocated": False, "broker_cores": 1.5})


def test_the_core_bound_counts_a_read_pass_wake_up_over_a_full_read():
    """A broker on one core with read passes: each message costs its parse, its partition stage
    and its share of a full read's wake-up (64 KiB of 703-byte messages: 93.2 per read)."""
    config = build_config({"producer.mode": "nonblocking", "producer.window": 200, "producer.messages": 4000,
                           "clients": 4, "broker.cores": 1, "broker.read_mode": "batched",
                           "broker.wakeup_cpu": "93.2us", "link.rtt": 0, "link.bandwidth": "inf",
                           "client.send_cpu": "30us", "client.ack_cpu": "10us", "broker.read_cpu": "5us",
                           "broker.service_time": "15us"})
    per_message = 93.2e-6 * 703 / 65536 + 5e-6 + 15e-6
    assert core_ceiling(config) == pytest.approx(1 / per_message, rel=1e-12)
    assert run(config).summary["throughput_msgs_per_s"] <= 1 / per_message * (1 + 1e-9)


# -- the scheduler's time slice (client.host_slice) ------------------------------------------------------

U = 2.0**-10  # ~0.98 ms: every time below is a multiple of U / 2, exact in binary floating point


def test_a_sliced_pool_lets_a_station_that_asks_again_at_once_keep_its_core():
    from sim.model.hosts import SlicedCorePool, core_pool

    assert type(core_pool(2, 0.0)) is CorePool and type(core_pool(2, 1e-3)) is SlicedCorePool
    pool = SlicedCorePool(1, 2.0)
    cost = {(0, 0): 1.0, (2, 0): 0.5}
    granted = []

    def settle(key, start):
        granted.append((key, start))
        return start + cost[key], cost[key]

    pool.request(0.0, (0, 0))
    pool.grant_due(0.0, settle)  # (0, 0)'s run starts at 0
    pool.request(0.5, (2, 0))  # waits
    pool.request(1.0, (0, 0))  # its job ended at 1 and it asks at 1, 1 - 0 < 2: it keeps the core
    assert pool.next_grant() == 1.0 and pool.kept == [(1.0, (0, 0))]
    pool.grant_due(1.0, settle)
    pool.request(2.0, (0, 0))  # 2 - 0 is not < 2: it goes behind (2, 0), which asked at 0.5
    pool.grant_due(2.0, settle)
    pool.request(2.5, (2, 0))  # (2, 0)'s run started at 2: it keeps the core at 2.5
    pool.grant_due(2.5, settle)
    pool.request(3.5, (2, 0))  # asked later than its job's end (3): it queues, behind (0, 0)
    pool.grant_due(3.0, settle)
    pool.grant_due(3.5, settle)
    assert granted == [((0, 0), 0.0), ((0, 0), 1.0), ((2, 0), 2.0), ((2, 0), 2.5), ((0, 0), 3.0)]
    assert pool.next_grant() == 4.0 and pool.run_start == {(0, 0): 3.0, (2, 0): 2.0}


def test_a_slice_lets_a_busy_client_keep_the_core():
    """(a) Two unbounded nonblocking clients on one core, U per produce() (a job), U / 2 per ack, 64 U
    away; a slice of 2 U, two jobs. Client 1 asks at 0 with client 2 and goes first (the lower key):
    0-1 m10; at 1 it asks again for m11, 1 - 0 < 2: it keeps the core, 1-2 m11. At 2 its run is 2 U
    long (2 is not < 2): m12 goes behind client 2, waiting since 0. Client 2's run: 2-3 m20, 3-4 m21;
    at 4 (4 - 2 = 2) m22 goes behind client 1 (asked at 2): 4-5 m12; 5-6 m22. The acks come back 64 U
    after each send, one U apart at the least: none waits, each resolved U / 2 after it is in.

    Without the slice (0, the default) each job queues: the clients alternate, 1, 3, 5 and 2, 4, 6."""
    send, ack, rtt = U, U / 2, 64 * U
    config = pure_network(clients=2, producer__mode="nonblocking", producer__window=None, producer__messages=3,
                          client__send_cpu=send, client__ack_cpu=ack, link__rtt=rtt, client__host_cores=1,
                          client__host_slice=2 * U)
    assert shares_cores(System(config))

    def timeline(sent, created):
        return dict(created=[x * U for x in created], sent=[x * U for x in sent],
                    stored=[x * U + rtt / 2 for x in sent], resolved=[x * U + rtt + ack for x in sent])

    # producer 1 (client 1): m10, m11, m12; producer 2: m20, m21, m22
    sliced = timeline(sent=[1, 2, 5, 3, 4, 6], created=[0, 1, 2, 0, 3, 4])
    for a in both_engines(config):
        assert_times(a, **sliced)
    # (c) slice 0: the old timeline, job by job
    old = timeline(sent=[1, 3, 5, 2, 4, 6], created=[0, 1, 3, 0, 2, 4])
    for a in both_engines(config.replace({"client.host_slice": 0})):
        assert_times(a, **old)


def test_when_the_slice_runs_out_the_partition_takes_what_piled_up():
    """(b) One unbounded nonblocking client and the broker on one core, 1 U away (U / 2 each way):
    U per produce(), acks free, U / 2 per message in the partition; a slice of 3.5 U.

    0-1 m0 (the run starts at 0). The client keeps the core for m1 (1-2), m2 (2-3), m3 (3-4): each
    asked as the job before ended, less than 3.5 U into the run. m0 reaches the partition at 1.5 and
    it asks for the core; m1 and m2 reach it at 2.5 and 3.5 while it waits. At 4 the run is 4 U long:
    the client's m4 (made at 4) goes behind the partition, which is granted the core at 4 and takes
    the three messages waiting: stored 4.5, 5, 5.5. m3 reaches it at 4.5; at 5.5 its pass ends and it
    asks again, 1.5 U into its own run: it keeps the core, m3 stored at 6. The client gets the core at
    6: 6-7 m4; its acks (in at 5, 5.5, 6, 6.5 while it waited) are taken after m4's send, at 7. m4
    reaches the partition at 7.5: stored 8, back at 8.5."""
    config = pure_network(producer__mode="nonblocking", producer__window=None, producer__messages=5,
                          client__send_cpu=U, broker__service_time=U / 2, link__rtt=U,
                          client__host_cores=1, broker__colocated=True, client__host_slice=3.5 * U)
    assert shares_cores(System(config))
    sliced = dict(created=[0, 1, 2, 3, 4], sent=[1, 2, 3, 4, 7], stored=[4.5, 5, 5.5, 6, 8],
                  resolved=[7, 7, 7, 7, 8.5])
    for a in both_engines(config):
        assert_times(a, **{k: [x * U for x in v] for k, v in sliced.items()})
    # (c) slice 0, the old timeline: the client's next produce() queues behind the partition each time,
    # and the partition, granted the core between two of them, finds one message waiting:
    # 0-1 m0; 1-2 m1 (no one waits at 1); at 2 m2 goes behind the partition (asked at 1.5): 2-2.5 m0;
    # 2.5-3.5 m2; 3.5-4 m1; 4-5 m3; 5-5.5 m2; 5.5-6.5 m4; 6.5-7 m3; 7-7.5 m4 (arrived at 7). Each
    # ack waits in the client's queue for the send ahead of it.
    old = dict(created=[0, 1, 2, 3.5, 5], sent=[1, 2, 3.5, 5, 6.5], stored=[2.5, 4, 5.5, 7, 7.5],
               resolved=[3.5, 5, 6.5, 7.5, 8])
    for a in both_engines(config.replace({"client.host_slice": 0})):
        assert_times(a, **{k: [x * U for x in v] for k, v in old.items()})


def test_the_random_shared_systems_run_with_slices_that_change_the_run():
    """Counted, not assumed: a third of the systems of ``shared_config`` (and so of the asyncio,
    read-pass and relay ones built on it) keep the default slice 0, and half of the others run
    differently with their slice than with 0."""
    sliced = changed = 0
    for base, seed in SHARED:
        config = shared_config(seed, base)
        if config.client.host_slice == 0 or not shares_cores(System(config)):
            continue
        sliced += 1
        plain = config.replace({"client.host_slice": 0})
        a = Result(config, run_records(System(config))).arrays["sent"]
        b = Result(plain, run_records(System(plain))).arrays["sent"]
        changed += not np.array_equal(np.sort(a), np.sort(b))
    assert sliced >= 25 and changed >= 14, (sliced, changed)
    assert sum(shared_config(seed, base).client.host_slice == 0 for base, seed in SHARED) >= 12


@pytest.mark.parametrize("overrides, cores_per_message", [
    ({"clients": 2, "client.host_cores": 1}, 1 / 40e-6),
    ({"clients": 4, "client.host_cores": 2, "broker.colocated": True}, 2 / 60e-6),
    ({"clients": 4, "broker.cores": 1}, 1 / 20e-6),
])
def test_a_slice_keeps_the_pool_work_conserving(overrides, cores_per_message):
    """The slice only changes who runs next, never leaves a core idle while a station waits: the
    core bound still holds, and a saturated pool still reaches it."""
    config = build_config({"producer.mode": "nonblocking", "producer.window": 20, "producer.messages": 4000,
                           "link.rtt": 0, "link.bandwidth": "inf", "client.send_cpu": "30us",
                           "client.ack_cpu": "10us", "broker.read_cpu": "5us", "broker.service_time": "15us",
                           "client.host_slice": "1.5ms", **overrides})
    assert core_ceiling(config) == pytest.approx(cores_per_message, rel=1e-12)
    throughput = run(config).summary["throughput_msgs_per_s"]
    assert 0.97 * cores_per_message <= throughput <= cores_per_message * (1 + 1e-9)


def test_a_slice_without_shared_cores_is_ignored_with_a_warning():
    from sim.config import ConfigWarning

    with pytest.warns(ConfigWarning, match=r"client.host_slice = 1.5ms is ignored: client.host_cores and "
                                           r"broker.cores are not set"):
        config = build_config({"client.host_slice": "1.5ms", "clients": 2, "producer.messages": 20})
    assert not [key for key, _, _ in build_config({"client.host_slice": "1.5ms", "broker.cores": 1}).ignored()
                if key == "client.host_slice"]
    # (no pool: it changes nothing)
    plain = run(config.replace({"client.host_slice": 0}))
    np.testing.assert_array_equal(run(config).arrays["resolved"], plain.arrays["resolved"])


def test_the_asyncio_and_pass_systems_on_shared_cores_include_slices():
    aio = [aio_shared_config(seed).client.host_slice > 0 for seed in range(24)]
    passes = [passes_shared_config(seed).client.host_slice > 0 for seed in PASSES_SHARED]
    assert 10 <= sum(aio) < 24 and 12 <= sum(passes) < 30, (sum(aio), sum(passes))


def test_the_slice_can_be_fitted_over_a_schedulers_range():
    from sim.calibrate import fit_bounds

    assert fit_bounds("client.host_slice") == (1e-5, 2e-2, "duration")


def test_the_simpy_pool_needs_the_releasing_station_with_a_slice():
    import simpy

    from sim.simpy_model import CorePool as SimPyPool

    env = simpy.Environment()
    SimPyPool(env, 1).release()  # (no slice: the key may be left out, as before)
    with pytest.raises(ValueError, match=r"release\(key\)"):
        SimPyPool(env, 1, 1e-3).release()
