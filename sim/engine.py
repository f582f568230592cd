"""Run a :class:`~sim.model.system.System` and fill its per-message records.

Every station is a first-come first-served server computed by arithmetic
(Lindley: ``start = max(arrival, free); free = start + service``), which is only
right when the station takes its arrivals in time order. Three loops guarantee
that order.

**Windows** (the usual one). Propagation is a delay no message can beat: a
message that enters the uplink at time t reaches the broker no earlier than
t + uplink serialization + RTT/2, and an ack that leaves a partition at t
reaches its client no earlier than t + downlink serialization + RTT/2. So time
is cut into windows of that length, the *lookahead*, and within one window the
two sides cannot affect each other:

* the clients side (``sim.model.clients``): each client runs its own events up
  to the window's end; then the connections' TCP windows and the shared uplink
  take everything produce() finished in the window, merged in time order;
* the broker side: read loops, partition stages and the shared downlink take
  the arrivals that fall in the window, each station in time order, and hand
  the acks to the clients for a later window.

Whatever falls beyond a window waits for the next one; windows with nothing
in them are skipped. The broker side is computed message by message, or, when
windows carry many messages, station by station with numpy
(``sim.model.network``).

**Events** (``sim.event_loop``): with no lookahead (zero RTT and unlimited
bandwidth) a heap of events orders the merges instead.

**A single stream** (``sim.single_stream``): one synchronous producer has one
message in flight at a time; nothing merges, and a plain loop does it.

Ties at a merge go in connection order (see ``sim.model.network``); within a
client, see ``sim.model.clients``. The SimPy model in ``sim.simpy_model`` is
the oracle all of them are checked against, message by message.
"""

from __future__ import annotations

import math

import numpy as np

from .config import InputError
from .model.clients import client_side
from .model.records import ACKED, IN_FLIGHT, STATUS_NAMES, TIMED_OUT, RecordBuffer, Records
from .model.system import System

__all__ = ["ACKED", "IN_FLIGHT", "STATUS_NAMES", "TIMED_OUT", "Records", "run_records", "lookahead"]


def lookahead(system: System) -> float:
    """The shortest time between one side acting and the other side feeling it."""
    half_rtt = system.config.link.rtt / 2
    return half_rtt + min(system.uplink_time, system.downlink_time)


def run_records(system: System, loop: str | None = None) -> Records:
    """Simulate ``system`` once.

    By default: a plain loop when one message is in flight at a time
    (``sim.single_stream``), else the window loop, its network computed with
    numpy when windows carry many messages, and the event loop when there is no
    lookahead. ``loop`` forces one: "single", "events", "windows" (the network
    message by message) or "vectors" (the network with numpy).
    """
    if loop not in (None, "events", "windows", "vectors", "single"):
        raise ValueError(f"unknown loop {loop!r}")
    check_time_range(system)
    if loop in (None, "single"):
        from .single_stream import applies, run_single_stream

        if applies(system):
            records = run_single_stream(system)
            if records is not None:  # None: a timeout, which needs the general loop
                return records
            loop = None
        elif loop == "single":
            raise ValueError("the single-stream loop needs exactly one producer with one message in flight")
    if loop == "events" or (loop is None and lookahead(system) <= 0):
        from .event_loop import run_events

        return run_events(system)
    if lookahead(system) <= 0:
        raise ValueError("the window loop needs a lookahead > 0 (a round trip or a finite bandwidth)")
    network = {None: None, "windows": "scalar", "vectors": "vector"}[loop]
    return _run_windows(system, network)


RESOLUTION = 2.0**40  # a run's times may reach this many times its largest per-message step


def check_time_range(system: System) -> None:
    """Refuse a run whose clock would reach times where float64 cannot resolve the
    model's own steps (past 2^40 steps, a step is known to 2^-12 only)."""
    cfg = system.config
    steps = [cfg.link.rtt / 2, system.uplink_time, system.downlink_time, cfg.client.send_cpu,
             cfg.client.ack_cpu, cfg.broker.read_cpu, cfg.broker.service_time]
    step = max((s for s in steps if math.isfinite(s)), default=0.0)
    if step <= 0:
        return  # nothing takes time: every time is a start time or an arrival time
    limit = step * RESOLUTION
    for key, value in (("producer.start_jitter", cfg.producer.start_jitter), ("run.duration", cfg.run.duration)):
        if value is not None and value > limit:
            raise InputError(
                f"{key} = {value:g} s: too large for float64 time to resolve the model's steps "
                f"({step:.3g} s); allowed: at most {limit:.3g} s")


def begin_run(system: System):
    """The pieces every loop starts from: random streams, empty records, the clients."""
    cfg = system.config
    streams = system.streams()
    records = RecordBuffer(open_loop=cfg.producer.rate is not None, summary=cfg.run.records == "summary",
                           bin_width=cfg.run.bin)
    advance, clients_state = client_side(system, streams, records)
    return streams, records, advance, clients_state


def expected_batch(system: System) -> float:
    """About how many messages one window carries: the bound on throughput times the lookahead."""
    from .analytic import bounds

    rate = bounds(system).throughput()
    cfg = system.config
    if cfg.producer.rate is not None:
        rate = min(rate, cfg.producer.rate * system.producers)
    return rate * lookahead(system)


VECTOR_BATCH = 32  # from this many messages per window on, the network is computed with numpy


def _run_windows(system: System, network: str | None = None) -> Records:
    from .model.network import ScalarNetwork, VectorNetwork

    cfg = system.config
    INF = math.inf
    streams, records, advance, clients_state = begin_run(system)
    if network is None:
        network = "vector" if expected_batch(system) >= VECTOR_BATCH else "scalar"
    net = {"scalar": ScalarNetwork, "vector": VectorNetwork}[network](system, streams, records, clients_state)
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


def finish(records: RecordBuffer, clients, cut: bool, end: float, free: list, busy: dict) -> Records:
    """Close the records: ``free`` lists the network and broker servers' busy-until
    times, ``busy`` their busy seconds by station."""
    if cut:
        span = end
    else:  # when the last server fell idle (every ack, even a late one, ends on a client CPU)
        span = max(free + clients.cpu_free)
    unfinished = any(r > 0 for r in clients.remaining) or IN_FLIGHT in records.status[: records.count]
    return records.finish({"client_cpu": clients.cpu_busy, **busy}, span, cut and unfinished)
