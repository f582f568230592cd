"""A relay on the path (``link.relay``, ``sim.model.relay``): one process that copies every byte.

Exact timelines worked out by hand (times in units of U = 2^-10 s, so that every sum is
exact in binary and ties are real ties), the hosts loop against the SimPy model message
by message on random systems, the analytic bounds, bad input and the measurement rows.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest

from sim import ConfigError, build_config, run
from sim.analytic import bounds, core_ceiling, round_trip
from sim.cli import main
from sim.engine import allowed_loops, run_records
from sim.loops.hosts import HostsLoop
from sim.measure.schema import row_overrides
from sim.model.hosts import layout, shares_cores
from sim.model.system import System
from sim.simpy_model import run_simpy
from tests.helpers import pure_network
from tests.systems import random_overrides
from tests.test_hosts import aio_shared_config, assert_times, both_engines, passes_shared_config, shared_config
from tests.test_oracle import assert_same_messages, round_config

U = 2.0**-10  # about 1 ms


# -- exact timelines ---------------------------------------------------------------------------------


def test_one_sync_message_crosses_the_relay_each_way():
    """1 U per produce(), 1/2 U per ack, 2 U in the partition, 16 U of RTT, 1/4 U per relay chunk.
    Sent at 1; the relay's pass 1 .. 1.25 copies it; 8 U later it reaches the broker (9.25) and is
    stored at 11.25; the ack's pass 11.25 .. 11.5; 8 U later it is at the client (19.5), resolved at 20."""
    a, b, s, rtt, r = U, U / 2, 2 * U, 16 * U, U / 4
    config = pure_network(producer__messages=1, client__send_cpu=a, client__ack_cpu=b, broker__service_time=s,
                          link__rtt=rtt, link__relay=True, link__relay_cpu=r)
    stored = a + r + rtt / 2 + s
    resolved = stored + r + rtt / 2 + b
    for arrays in both_engines(config):
        assert_times(arrays, created=[0], sent=[a], stored=[stored], resolved=[resolved])
    assert resolved == 20 * U
    # the analytic round trip of an idle path counts one chunk each way
    assert round_trip(config) == pytest.approx(resolved, rel=1e-12)
    direct = config.replace({"link.relay": False, "link.relay_cpu": 0})
    assert round_trip(direct) == pytest.approx(resolved - 2 * r, rel=1e-12)
    assert run(direct).arrays["resolved"][0] == pytest.approx(resolved - 2 * r, abs=1e-12)
    # two passes of one chunk: busy 2r over the run
    result = run(config)
    assert result.records.busy["relay"] == [2 * r]
    assert result.summary["utilisation"]["relay"] == pytest.approx(2 * r / resolved, rel=1e-12)


def test_two_clients_chunks_share_one_pass():
    """Two sync clients, each on a core of its own, send at 1 U; both messages reach the relay at
    1 and its pass reads both sockets: client 1's chunk is done at 1.25, client 2's at 1.5. Their
    acks (nothing in the broker costs CPU) reach the relay at 9.25 and 9.5: the first pass ends
    at 9.5 just as the second ack comes in, and the next pass starts at once, reading it."""
    a, b, rtt, r = U, U / 2, 16 * U, U / 4
    config = pure_network(clients=2, producer__messages=1, client__send_cpu=a, client__ack_cpu=b, link__rtt=rtt,
                          link__relay=True, link__relay_cpu=r)
    stored = [a + r + rtt / 2, a + 2 * r + rtt / 2]
    back = [stored[0] + r + rtt / 2, stored[1] + r + rtt / 2]  # 17.5 and 17.75 U
    for arrays in both_engines(config):
        assert_times(arrays, created=[0, 0], sent=[a, a], stored=stored, resolved=[t + b for t in back])
    loop = HostsLoop(System(config))
    loop.run()
    assert (loop.relay.passes, loop.relay.chunks, loop.relay.most) == (3, 4, 2)


def test_a_pass_pays_its_wake_up_once_for_all_its_chunks():
    """link.relay_wakeup_cpu = 1/2 U a pass, 1/4 U a chunk: the two clients' messages reach the
    relay at 1 and one pass reads both: 1-1.5 its wake-up, client 1's chunk done at 1.75, client
    2's at 2. Their acks reach the relay at 9.75 and 10: the first ack's pass 9.75-10.5 (wake-up,
    one chunk), then the second's 10.5-11.25. So the second message paid one wake-up on the way
    up, shared with the first, and a whole one on the way back; the round trip of an idle path
    counts one pass of one chunk each way."""
    a, b, rtt, r, w = U, U / 2, 16 * U, U / 4, U / 2
    config = pure_network(clients=2, producer__messages=1, client__send_cpu=a, client__ack_cpu=b, link__rtt=rtt,
                          link__relay=True, link__relay_cpu=r, link__relay_wakeup_cpu=w)
    stored = [a + w + r + rtt / 2, a + w + 2 * r + rtt / 2]  # 9.75 and 10 U
    first_back = stored[0] + w + r  # 10.5
    back = [first_back + rtt / 2, first_back + w + r + rtt / 2]
    for arrays in both_engines(config):
        assert_times(arrays, created=[0, 0], sent=[a, a], stored=stored, resolved=[t + b for t in back])
    loop = HostsLoop(System(config))
    loop.run()
    assert (loop.relay.passes, loop.relay.chunks, loop.relay.most) == (3, 4, 2)
    assert loop.relay.busy == pytest.approx(3 * w + 4 * r, abs=1e-15)
    one = pure_network(producer__messages=1, client__send_cpu=a, client__ack_cpu=b, link__rtt=rtt,
                       link__relay=True, link__relay_cpu=r, link__relay_wakeup_cpu=w)
    assert round_trip(one) == pytest.approx(a + b + rtt + 2 * (w + r), rel=1e-12)
    assert run(one).arrays["resolved"][0] == pytest.approx(a + b + rtt + 2 * (w + r), abs=1e-12)


def test_the_relay_waits_for_a_shared_core_behind_a_client_job():
    """Two sync clients and the relay on one core (co-located broker, zero RTT, nothing in the
    broker costs CPU): 1 U per produce(), 1/2 U per ack, 1/4 U per chunk.

    0-1 client 1 sends m0; 1-2 client 2 sends m1 (asked at 0, before the relay asked at 1);
    the relay is granted the core at 2 and reads what waits then, m0 and m1 (two sockets):
    2-2.25 m0 up (stored at 2.25, its ack back at the relay then), 2.25-2.5 m1 up (stored, its
    ack back at 2.5); the next pass (2.5-3) reads both acks: m0's done at 2.75, m1's at 3;
    client 1's ack asked at 2.75 and gets the core at 3: 3-3.5; client 2's (asked at 3) 3.5-4.

    (Recomputed when the work a station does became decided at its grant: the relay's first pass,
    asked at 1 with m0 alone, now also carries m1, which arrived while it waited for the core, so
    the acks travel together in the second pass and client 1's ack is done at 3.5, not 3.25.)"""
    a, b, r = U, U / 2, U / 4
    config = pure_network(clients=2, producer__messages=1, client__send_cpu=a, client__ack_cpu=b, link__rtt=0,
                          client__host_cores=1, broker__colocated=True, link__relay=True, link__relay_cpu=r)
    system = System(config)
    assert shares_cores(system) and layout(system).users == (3,)
    expected = dict(created=[0, 0], sent=[a, 2 * a], stored=[2 * a + r, 2 * a + 2 * r],
                    resolved=[2 * a + 4 * r + b, 2 * a + 4 * r + 2 * b])
    for arrays in both_engines(config):
        assert_times(arrays, **expected)
    busy = run(config).records.busy
    assert busy["relay"] == [4 * r]
    assert busy["host_cpu"] == [pytest.approx(2 * a + 2 * b + 4 * r, abs=1e-15)]  # the relay's CPU is the pool's
    # with a core of its own (a broker on its own machine) the relay never waits: m0's pass is 1-1.25
    apart = both_engines(config.replace({"broker.colocated": False}))
    for arrays in apart:
        assert arrays["stored"][0] == pytest.approx(a + r, abs=1e-12)


def test_a_relay_without_cpu_changes_no_time():
    """link.relay_cpu = 0: every chunk is done as it arrives, so the run is the direct path's,
    message by message (through the hosts loop against the default loops)."""
    for seed in range(6):
        ov = random_overrides(seed)
        ov["producer.payload_bytes"] = min(ov["producer.payload_bytes"], 1200)
        config = build_config(ov)
        relayed = config.replace({"link.relay": True})
        assert_same_messages(config, run_records(System(relayed)), run_records(System(config)))


# -- the hosts loop against the SimPy model ----------------------------------------------------------


def relay_config(seed: int):
    """A random system of the hosts loop's kinds (plain, shared cores, the asyncio client, read
    passes on shared cores, round numbers with exact ties) with a relay on the path, maybe link.jitter."""
    r = random.Random(90_000 + seed)
    kind = seed % 5
    if kind == 0:
        ov = random_overrides(seed)
        ov["producer.payload_bytes"] = min(ov["producer.payload_bytes"], 1200)
        config = build_config(ov)
    elif kind == 1:
        config = shared_config(seed, "random")
    elif kind == 2:
        config = aio_shared_config(seed)
    elif kind == 3:
        config = passes_shared_config(seed)
    else:
        config = round_config(seed) if seed % 2 else shared_config(seed, "round")
    ov = {"link.relay": True,
          "link.relay_cpu": r.choice([0.0, r.uniform(1e-6, 30e-6), r.uniform(20e-6, 200e-6), r.uniform(20e-6, 200e-6)])}
    g = random.Random(95_000 + seed)  # (its own draws: the keys above stay as they were)
    ov["link.relay_wakeup_cpu"] = g.choice([0.0, g.uniform(1e-6, 100e-6)]) if seed % 3 else 0.0
    if kind == 4:
        ov["link.relay_cpu"] = r.choice([0.0, 1e-5, 5e-5])
        ov["link.relay_wakeup_cpu"] = g.choice([0.0, 2**-15, 2**-13])
    elif r.random() < 0.4:
        ov["link.jitter"] = r.uniform(1e-5, 2e-3)
        ov["link.jitter_cv"] = r.uniform(0.3, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return config.replace(ov)


RELAYED = range(40)


@pytest.mark.parametrize("seed", RELAYED)
def test_the_engine_matches_the_simpy_model_with_a_relay(seed):
    config = relay_config(seed)
    system = System(config)
    assert allowed_loops(system) == ["hosts"]
    assert_same_messages(config, run_records(system), run_simpy(config))


def test_the_relay_systems_cover_every_combination():
    """Counted, not assumed: the systems above have shared cores (where the relay's passes wait
    for the broker's pool), the asyncio client's iterations, batched read passes, link.jitter, a
    relay of no CPU, and passes that read several sockets."""
    count = dict(binding=0, pool=0, waited=0, iterations=0, batched=0, jitter=0, free=0, several=0, wakeup=0)
    for seed in RELAYED:
        config = relay_config(seed)
        system = System(config)
        lay = layout(system)
        loop = HostsLoop(system)
        records = loop.run()
        count["binding"] += shares_cores(system)
        count["pool"] += lay.broker_pool is not None and config.link.relay_cpu > 0
        count["iterations"] += config.client.loop == "iterations"
        count["batched"] += config.broker.read_mode == "batched"
        count["jitter"] += config.link.jitter > 0
        count["free"] += config.link.relay_cpu == 0 and config.link.relay_wakeup_cpu == 0
        count["wakeup"] += config.link.relay_wakeup_cpu > 0
        count["slice"] = count.get("slice", 0) + (shares_cores(system) and config.client.host_slice > 0)
        count["several"] += loop.relay.most >= 2
        count["waited"] += loop.relay.waited > 0  # a pass waited for a core of the pool
    assert count["binding"] >= 15 and count["pool"] >= 8 and count["waited"] >= 6, count
    assert count["iterations"] >= 3 and count["batched"] >= 4 and count["jitter"] >= 8, count
    assert count["free"] >= 3 and count["several"] >= 15 and count["wakeup"] >= 10, count
    assert count["slice"] >= 8, count  # the scheduler's time slice (client.host_slice), from shared_config


# -- loops, bounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["single", "events", "windows", "vectors"])
def test_other_loops_refuse_a_relay(loop):
    config = build_config({"link.relay": True, "producer.messages": 5})
    assert allowed_loops(System(config)) == ["hosts"]
    with pytest.raises(ValueError, match=f"loop '{loop}' cannot run a relay on the path.*loop='hosts'"):
        run_records(System(config), loop=loop)
    records = run_records(System(config), loop="hosts")
    assert records.busy["relay"] == [0.0]


def test_the_core_bound_stays_an_upper_bound_with_a_relay():
    """Four producers and the broker and a 15 us-per-chunk relay on 2 cores at zero RTT: the relay
    takes its CPU from the pool, which the bound counts at its optimistic 0 per message; the run
    stays under it, and the relay's CPU per message lies between 0 and 2 x relay_cpu."""
    config = build_config({"producer.mode": "nonblocking", "producer.window": 50, "producer.messages": 3000,
                           "clients": 4, "client.host_cores": 2, "broker.colocated": True, "link.rtt": 0,
                           "link.bandwidth": "inf", "client.send_cpu": "30us", "client.ack_cpu": "10us",
                           "broker.read_cpu": "5us", "broker.service_time": "15us", "link.relay": True,
                           "link.relay_cpu": "15us"})
    ceiling = 2 / (40e-6 + 5e-6 + 15e-6)  # clients, read loop, partition: the relay counted at 0
    assert core_ceiling(config) == pytest.approx(ceiling, rel=1e-12)
    assert bounds(config).max_throughput <= ceiling * (1 + 1e-12)
    result = run(config)
    assert result.summary["throughput_msgs_per_s"] <= ceiling
    per_message = result.records.busy["relay"][0] / result.summary["acked"]
    assert 0 < per_message < 2 * 15e-6
    # the same system through a relay that costs nothing is faster
    free = run(config.replace({"link.relay_cpu": 0}))
    assert free.summary["throughput_msgs_per_s"] > 1.1 * result.summary["throughput_msgs_per_s"]


# -- bad input ---------------------------------------------------------------------------------------


def test_a_relay_refuses_a_window_in_bytes():
    config = build_config({"link.relay": True, "producer.payload_bytes": "4KiB", "producer.messages": 5})
    assert System(config).segmented
    with pytest.raises(ConfigError, match="link.relay = true: a relay does not yet combine with a TCP window in "
                                          "bytes .*link.window_bytes = 4MiB.*set link.window_bytes = inf") as info:
        run(config)
    assert info.value.key == "link.relay" and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="link.relay"):
        run(config, engine="simpy")
    assert run(config.replace({"link.window_bytes": "inf"})).summary["acked"] == 5


def test_the_cli_refuses_a_relay_with_a_window_in_bytes_in_one_line(capsys):
    code = main(["simulate", "--set", "link.relay=true", "--set", "producer.payload_bytes=4KiB",
                 "--set", "producer.messages=5"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "link.relay" in err and "link.window_bytes" in err and "Traceback" not in err


def test_relay_cpu_without_a_relay_is_ignored_with_a_warning():
    with pytest.warns(Warning, match="link.relay_cpu = 12us is ignored: link.relay is false"):
        build_config({"link.relay_cpu": "12us"})


def test_sim_list_shows_the_relay_keys(capsys):
    assert main(["list", "keys"]) == 0
    out = capsys.readouterr().out
    assert "link.relay " in out and "link.relay_cpu" in out and "delay proxy" in out and "12-15 us" in out


# -- measurement rows --------------------------------------------------------------------------------


def test_rows_measured_through_the_proxy_put_a_relay_on_the_path():
    row = {"mode": "window", "window": 100, "producers": 2, "partitions": 1, "messages": 20000, "rtt_ms": 1.3,
           "host_cores": 2, "colocated": True, "added_rtt_target_ms": 1, "added_rtt_ms": 1.2}
    assert row_overrides(row)["link.relay"] is True
    assert row_overrides({**row, "added_rtt_target_ms": 0, "added_rtt_ms": 0.01})["link.relay"] is False
    # a direct row zeroes the relay's cost, so a profile's link.relay_cpu is not reported as ignored there
    assert "link.relay_cpu" not in row_overrides(row)
    assert row_overrides({**row, "added_rtt_target_ms": 0})["link.relay_cpu"] == 0.0
    from sim.calibrate import row_config

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert row_config({**row, "added_rtt_target_ms": 0}, {"link.relay_cpu": 13e-6})["link.relay_cpu"] == 0.0
        assert row_config(row, {"link.relay_cpu": 13e-6})["link.relay_cpu"] == 13e-6
    # without the target column, the measured added RTT says
    no_target = {k: v for k, v in row.items() if k != "added_rtt_target_ms"}
    assert row_overrides(no_target)["link.relay"] is True
    assert row_overrides({**no_target, "added_rtt_ms": 0.0})["link.relay"] is False
    assert row_overrides({**row, "added_rtt_target_ms": float("nan"), "added_rtt_ms": ""}).get("link.relay") is None
    assert "link.relay" not in row_overrides({k: v for k, v in no_target.items() if k != "added_rtt_ms"})
