"""Components on their own, as exact timelines: the flow policies, one client's event
loop, the network between the clients and the broker."""

from __future__ import annotations

import math

import pytest

from sim import build_config
from sim.loops.common import begin_run
from sim.model.flow import FlowPolicy, Limiter, Window, policy_for
from sim.model.network import ScalarNetwork, VectorNetwork
from sim.model.records import ACKED, Sent
from sim.model.system import UNBOUNDED, System

INF = math.inf


def test_flow_policies():
    assert Window(3).cap == 3 and Window(3).pause is None
    limiter = Limiter(10, 0.1)
    assert limiter.cap == UNBOUNDED
    assert limiter.pause(9) is None and limiter.pause(10) == 0.1 and Limiter(10, 0.0).pause(12) == 0.0
    assert limiter.may_resume(5) and not limiter.may_resume(6)
    assert FlowPolicy().pause is None and FlowPolicy().may_resume(10**9)


@pytest.mark.parametrize("overrides, kind, cap", [
    ({"producer.mode": "sync"}, Window, 1),
    ({"producer.mode": "nonblocking", "producer.window": 7}, Window, 7),
    ({"producer.mode": "nonblocking", "producer.concurrent_task_limit": 4}, Limiter, UNBOUNDED),
    ({"producer.mode": "nonblocking"}, FlowPolicy, UNBOUNDED),
])
def test_the_config_picks_the_policy(overrides, kind, cap):
    policy = policy_for(System(build_config(overrides)))
    assert type(policy) is kind and policy.cap == cap


def client(overrides: dict):
    system = System(build_config({"producer.mode": "nonblocking", "producer.window": 2, "producer.messages": 3,
                                  "client.send_cpu": "1ms", "client.ack_cpu": "0.5ms", **overrides}))
    _, records, advance, clients = begin_run(system)
    return records, advance, clients


def test_a_client_timeline_window_of_two():
    records, advance, clients = client({})
    # produce() at 0 and at 1 ms (the CPU is busy with the first until then); then blocked
    assert advance(0, 0.050, -INF) == 15.0  # nothing more to do but wait for acks; next: the first deadline
    assert [(e[0], e[1], e[3]) for e in clients.outgoing[0]] == [(0.001, 0, 0), (0.002, 1, 1)]
    # what crosses to the network, by name
    assert Sent(*clients.outgoing[0][1]) == Sent(time=0.002, place=1, client=0, message=1, partition=0)
    clients.outgoing[0].clear()
    # the first ack arrives at 10 ms: processed by 10.5 ms, the third produce() returns at 11.5 ms
    clients.inbox[0].append((0.010, 0))
    advance(0, 0.050, -INF)
    assert [(e[0], e[1], e[3]) for e in clients.outgoing[0]] == [(0.0115, 2, 2)]
    assert records.status[0] == ACKED and records.resolved[0] == 0.0105 and records.created[2] == 0.0105
    assert clients.cpu_free[0] == 0.0115 and clients.cpu_busy[0] == pytest.approx(0.0035, rel=1e-12)


def test_a_client_never_runs_past_its_horizon():
    records, advance, clients = client({})
    assert advance(0, 0.0015, -INF) == 0.002  # the second produce() would return at 2 ms
    assert [e[0] for e in clients.outgoing[0]] == [0.001]


def test_a_watchdog_times_out_every_due_message_of_its_producer_at_once():
    records, advance, clients = client({"producer.ack_wait": "20ms", "client.send_cpu": 0})
    advance(0, 0.050, -INF)  # both made at 0, no ack comes: both deadlines fall at 20 ms
    assert records.status[0] == records.status[1] == 2  # timed out, at their deadline
    assert (records.resolved[0], records.resolved[1]) == (0.020, 0.020)
    assert records.created[2] == 0.020  # the producer goes on at once


@pytest.mark.parametrize("network", [ScalarNetwork, VectorNetwork])
def test_the_network_timeline(network):
    """Two connections send at once: the uplink takes them in connection order, the
    partition serves them one after the other, the downlink returns the acks."""
    system = System(build_config({"clients": 2, "link.rtt": "10ms", "link.bandwidth": 1_000_000,
                                  "producer.payload_bytes": 800, "producer.overhead_bytes": 200,
                                  "broker.ack_bytes": 100, "broker.read_cpu": 0, "broker.service_time": "2ms"}))
    streams, records, _, clients = begin_run(system)
    records.grow()  # room for the two messages this test makes by hand
    records.count = 2
    records.producer[0], records.producer[1] = 0, 1
    net = network(system, streams, records, clients)
    # produce() returned at 0 on both connections: (time, n, c, m, partition)
    clients.outgoing[0].append((0.0, 0, 0, 0, 0))
    clients.outgoing[1].append((0.0, 0, 1, 1, 0))
    client_next = [INF, INF]
    net.uplink(net.admit(0.1))
    net.broker(0.1, client_next)
    # 1,000 B at 1 MB/s = 1 ms each on the uplink: client 0's leaves at 1 ms, client 1's at 2 ms;
    # both reach the broker 5 ms later, the partition takes 2 ms each: stored at 8 and 10 ms
    assert list(records.stored[:2]) == pytest.approx([0.008, 0.010], abs=1e-15)
    # the acks (100 B: 0.1 ms on the downlink) arrive 5 ms after leaving
    assert [t for t, _ in clients.inbox[0]] == pytest.approx([0.0131], abs=1e-15)
    assert [t for t, _ in clients.inbox[1]] == pytest.approx([0.0151], abs=1e-15)
    assert client_next == pytest.approx([0.0131, 0.0151], abs=1e-15)
    assert net.busy()["partition"] == [pytest.approx(0.004)]
