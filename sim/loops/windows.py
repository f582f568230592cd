"""The window loop: the usual way the fast engine runs a system.

Propagation is a delay no message can beat: a message that enters the uplink
at t reaches the broker no earlier than t + uplink serialization + RTT/2, and an
ack that leaves a partition at t reaches its client no earlier than t +
downlink serialization + RTT/2. So time is cut into windows of that length (the
*lookahead*), and within one window the two sides cannot affect each other:
each client runs its own events to the window's end, then the network takes
what the clients sent, station by station (``sim.model.network``).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..model.network import ScalarNetwork, VectorNetwork
from ..model.records import Records
from ..model.system import UNBOUNDED, System
from .common import begin_run, finish, lookahead


def expected_batch(system: System) -> float:
    """About how many messages one window carries: a bound on the throughput (the
    slowest station, the producers' flow control, the offered load) times the lookahead.
    It only chooses how the network is computed; both ways give the same numbers."""
    cfg = system.config
    # the slowest per-message step (a client's CPU, the link, a read loop, the busiest
    # partition) paces the whole system at best (sim.analytic.capacities is the exact list)
    paces = [(cfg.client.send_cpu + cfg.client.ack_cpu) / system.clients, system.uplink_time,
             system.downlink_time, cfg.broker.read_cpu / system.clients,
             cfg.broker.service_time * max(system.partition_shares)]
    slowest = max(paces)
    rate = 1 / slowest if slowest > 0 else math.inf
    rtt = cfg.link.rtt
    if system.connection_messages is not None and rtt > 0:
        rate = min(rate, system.clients * system.connection_messages / rtt)
    if system.in_flight_cap < UNBOUNDED and rtt > 0:
        rate = min(rate, system.producers * system.in_flight_cap / rtt)
    if cfg.producer.rate is not None:
        rate = min(rate, cfg.producer.rate * system.producers)
    return rate * lookahead(system)


def scalar_only(system: System) -> bool:
    """Mechanisms only the scalar network computes: a TCP window in bytes that may bind, link.jitter."""
    return system.byte_window_binds or system.jitter > 0


VECTOR_BATCH = 32  # from this many messages per window on, the network is computed with numpy


def run_windows(system: System, network: str | None = None, bytes_gate: bool = False) -> Records:
    cfg = system.config
    INF = math.inf
    streams, records, advance, clients_state = begin_run(system)
    if network is None:
        network = "vector" if expected_batch(system) >= VECTOR_BATCH and not scalar_only(system) else "scalar"
    net = {"scalar": ScalarNetwork, "vector": VectorNetwork}[network](system, streams, records, clients_state,
                                                                     bytes_gate)
    clients = system.clients
    end = INF if cfg.run.duration is None else cfg.run.duration
    width = lookahead(system)

    client_next = [advance(c, 0.0, -INF) for c in range(clients)]
    start = min(client_next)
    cut = False
    while start < INF:
        if start >= end:
            cut = True
            break
        until = start + width
        if until <= start:
            raise InputError(
                f"simulated time reached {start:.6g} s, where float64 can no longer tell apart times "
                f"{width:.3g} s apart (the lookahead); allowed: runs whose times stay below about "
                f"{width * 2.0 ** 50:.3g} s (lower producer.start_jitter, run.duration or the message count)")
        if until > end:
            until = end
        # the clients, then what they sent, through the uplink (and on)
        for c in range(clients):
            if client_next[c] < until:
                client_next[c] = advance(c, until, -INF)
        net.uplink(net.admit(until))
        # the broker and the downlink: acks for the clients' later windows
        net.broker(until, client_next)
        # the next window starts at the next thing to do (admit() emptied the outgoing queues)
        start = min(min(client_next), net.next_time())
        if start < until:
            start = until
        if records.tally is not None and records.count >= records.compact_at:
            mapping = records.compact(np.array(clients_state.live() + net.live(), dtype=np.int64))
            clients_state.renumber(mapping)
            net.renumber(mapping)
    return finish(records, clients_state, cut, end, net.free_times(), net.busy())


