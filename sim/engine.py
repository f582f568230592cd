"""Run a :class:`~sim.model.system.System` and fill its per-message records.

Every station is a first-come first-served server computed by arithmetic
(Lindley: ``start = max(arrival, free); free = start + service``), which is only
right when the station takes its arrivals in time order. Two loops guarantee
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
in them are skipped.

**Events** (``sim.event_loop``): with no lookahead (zero RTT and unlimited
bandwidth) a heap of events orders the merges instead.

Ties at a merge go to the older message; within a client, see
``sim.model.clients``. The naive SimPy model in ``tests/reference_model.py``
is the oracle both loops are checked against.
"""

from __future__ import annotations

import math
from collections import deque

from .model.clients import client_side
from .model.records import ACKED, IN_FLIGHT, STATUS_NAMES, TIMED_OUT, RecordBuffer, Records
from .model.system import System

__all__ = ["ACKED", "IN_FLIGHT", "STATUS_NAMES", "TIMED_OUT", "Records", "run_records", "lookahead"]


def lookahead(system: System) -> float:
    """The shortest time between one side acting and the other side feeling it."""
    half_rtt = system.config.link.rtt / 2
    return half_rtt + min(system.uplink_time, system.downlink_time)


def run_records(system: System, loop: str | None = None) -> Records:
    """Simulate ``system`` once; ``loop`` forces "windows" or "events"."""
    if loop is None:
        loop = "windows" if lookahead(system) > 0 else "events"
    if loop == "events":
        from .event_loop import run_events

        return run_events(system)
    if loop != "windows":
        raise ValueError(f"unknown loop {loop!r}")
    if lookahead(system) <= 0:
        raise ValueError("the window loop needs a lookahead > 0 (a round trip or a finite bandwidth)")
    return _run_windows(system)


def begin_run(system: System):
    """The pieces every loop starts from: random streams, empty records, the clients."""
    streams = system.streams()
    records = RecordBuffer(open_loop=system.config.producer.rate is not None)
    advance, clients_state = client_side(system, streams, records)
    return streams, records, advance, clients_state


def _run_windows(system: System) -> Records:
    cfg = system.config
    INF = math.inf
    streams, records, advance, clients_state = begin_run(system)
    inbox, outgoing, client_of = clients_state.inbox, clients_state.outgoing, clients_state.client_of
    timed_out = clients_state.timed_out

    clients = system.clients
    n_partitions = system.partitions
    rtt, half_rtt, up_time, down_time, window, read_cpu, end = system.path_times
    width = lookahead(system)
    rec_producer, rec_partition, rec_stored = records.producer, records.partition, records.stored
    service_next = [s.__next__ for s in streams.service]
    deterministic = cfg.broker.service_dist == "deterministic"
    service_time = cfg.broker.service_time

    # waiting between stations: (time, m), each connection's in time order
    gate = [deque() for _ in range(clients)]  # produce() done, waiting for the TCP window
    to_read = [deque() for _ in range(clients)]  # on the wire to the broker's read loop
    to_partition: list[list] = [[] for _ in range(n_partitions)]
    to_downlink: list = []
    # the TCP window: release time of the message ``window`` places back, per connection
    released = [[-INF] * window for _ in range(clients)] if window is not None else None
    entered = [0] * clients
    # Without timeouts a connection's pipe holds only messages in flight, so a window
    # at least as large as what its producers may have in flight never closes.
    gate_binds = [
        window is not None and len(clients_state.producers_of[c]) * system.in_flight_cap > window
        for c in range(clients)
    ]

    up_free = down_free = up_busy = down_busy = 0.0
    read_free = [0.0] * clients
    read_busy = [0.0] * clients
    part_free = [0.0] * n_partitions
    part_busy = [0.0] * n_partitions
    client_next = [advance(c, 0.0, -INF) for c in range(clients)]

    start = min(client_next)
    cut = False
    while start < INF:
        if start >= end:
            cut = True
            break
        until = start + width
        if until > end:
            until = end

        # -- clients and the uplink ----------------------------------------------
        for c in range(clients):
            if client_next[c] < until:
                client_next[c] = advance(c, until, -INF)
        batch = []
        for c in range(clients):
            out = outgoing[c]
            if window is None:
                if out:
                    batch.extend((t, m, c, 0) for t, m in out)
                    out.clear()
                continue
            waiting = gate[c]
            n = entered[c]
            if not waiting and not (gate_binds[c] or timed_out[c]):
                # this connection cannot have a full window: every message in the pipe is
                # still in flight (an acked one was released before its ack came back)
                batch.extend((t, m, c, k) for k, (t, m) in enumerate(out, n))
                entered[c] = n + len(out)
                out.clear()
                continue
            if out:
                waiting.extend(out)
                out.clear()
            ring = released[c]
            while waiting:
                t, m = waiting[0]
                release = ring[n % window]  # INF while that message is still on its way
                if release > t:
                    t = release
                if t >= until:
                    break
                waiting.popleft()
                ring[n % window] = INF
                batch.append((t, m, c, n))
                n += 1
            entered[c] = n
        if batch:
            batch.sort()
            for t, m, c, n in batch:
                if up_free > t:
                    t = up_free
                up_free = t = t + up_time
                if window is not None:
                    released[c][n % window] = t + rtt
                if read_cpu:
                    to_read[c].append((t + half_rtt, m))
                else:  # the read loop takes no time: on to the partition, still in time order
                    to_partition[rec_partition[m]].append((t + half_rtt, m))
            up_busy += len(batch) * up_time

        # -- the broker and the downlink -------------------------------------------
        if read_cpu:
            for c in range(clients):
                queue = to_read[c]
                if not queue or queue[0][0] >= until:
                    continue
                free = read_free[c]
                n = 0
                while queue and queue[0][0] < until:
                    t, m = queue.popleft()
                    if free > t:
                        t = free
                    free = t = t + read_cpu
                    to_partition[rec_partition[m]].append((t, m))
                    n += 1
                read_free[c] = free
                read_busy[c] += n * read_cpu
        for p in range(n_partitions):
            queue = to_partition[p]
            if not queue:
                continue
            if read_cpu:  # read loops may reorder messages of different connections
                queue.sort()
            if queue[0][0] >= until:
                continue
            n = 0
            free = part_free[p]
            busy = 0.0
            draw = service_next[p]
            for t, m in queue:
                if t >= until:
                    break
                if free > t:
                    t = free
                service = service_time if deterministic else draw()
                busy += service
                free = t = t + service
                rec_stored[m] = t
                to_downlink.append((t, m))
                n += 1
            del queue[:n]
            part_free[p] = free
            part_busy[p] += busy
        if to_downlink:
            if n_partitions > 1:
                to_downlink.sort()
            n = 0
            for t, m in to_downlink:
                if t >= until:
                    break
                if down_free > t:
                    t = down_free
                down_free = t = t + down_time
                c = client_of[rec_producer[m]]
                inbox[c].append((t + half_rtt, m))
                if t + half_rtt < client_next[c]:
                    client_next[c] = t + half_rtt
                n += 1
            del to_downlink[:n]
            down_busy += n * down_time

        # -- the next window starts at the next thing to do ----------------------
        start = min(client_next)
        for c in range(clients):
            if outgoing[c] and outgoing[c][0][0] < start:
                start = outgoing[c][0][0]
            if gate[c]:
                t = max(gate[c][0][0], released[c][entered[c] % window])
                if t < start:
                    start = t
            if to_read[c] and to_read[c][0][0] < start:
                start = to_read[c][0][0]
        for queue in to_partition:
            if queue and queue[0][0] < start:
                start = queue[0][0]
        if to_downlink:
            start = min(start, to_downlink[0][0])
        if start < until:
            start = until

    return finish(
        records, clients_state, cut, end, [up_free, down_free, *read_free, *part_free],
        {"uplink": [up_busy], "read_loop": read_busy, "partition": part_busy, "downlink": [down_busy]},
    )


def finish(records: RecordBuffer, clients, cut: bool, end: float, free: list, busy: dict) -> Records:
    """Close the records: ``free`` lists the network and broker servers' busy-until
    times, ``busy`` their busy seconds by station."""
    if cut:
        span = end
    else:  # when the last server fell idle (every ack, even a late one, ends on a client CPU)
        span = max(free + clients.cpu_free)
    unfinished = any(r > 0 for r in clients.remaining) or IN_FLIGHT in records.status[: records.count]
    return records.finish({"client_cpu": clients.cpu_busy, **busy}, span, cut and unfinished)
