"""The event loop, for systems without lookahead (zero RTT, unlimited bandwidth).

A binary heap orders the merges that the window loop (``sim.engine``) orders by
windows:

* ``UPLINK``: the head of a client's outgoing queue enters its connection and,
  at that instant, the shared uplink and (computed ahead) its read loop; it
  reaches its partition as a ``PART_ARRIVE`` event.
* The shared downlink merges the partitions' departures, taking the earliest as
  soon as no partition can still produce an earlier one (``DOWN_WAKE`` when it
  must wait for time to pass).
* ``CLIENT``: a client runs its own events as far as it can be sure of its
  acks: none still to be computed can arrive before the downlink's busy-until
  time plus one ack's serialization and half an RTT.
* ``GATE_UP``: a connection's TCP window reopens.

At one instant the heap runs the clients first, then what enters the uplink,
then partition arrivals, then the downlink (the order in which the window loop
takes them); within each, messages go in connection order (their place n on
their connection, then the client: the tie rule of ``sim.model.network``), and
client wake-ups in the order they were scheduled. A heap entry is
``(time, rank, key, kind, x)``.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heapify, heappop, heappush
from itertools import count

import numpy as np

from .model.clients import replace_items
from .model.records import Records
from .model.system import System

UPLINK, CLIENT, PART_ARRIVE, DOWN_WAKE, GATE_UP = range(5)
# the rank of each kind at one instant
RANK = {CLIENT: 0, UPLINK: 1, GATE_UP: 1, PART_ARRIVE: 2, DOWN_WAKE: 3}


def run_events(system: System) -> Records:
    from .engine import begin_run, finish

    cfg = system.config
    INF = math.inf
    streams, records, advance, state = begin_run(system)
    inbox, outgoing, client_of = state.inbox, state.outgoing, state.client_of
    rec_producer, rec_partition, rec_stored = records.producer, records.partition, records.stored

    clients = system.clients
    n_partitions = system.partitions
    rtt, half_rtt, up_time, down_time, window, read_cpu, end = system.path_times

    heap: list = []
    push = heappush
    tick = count(1).__next__

    read_free = [0.0] * clients
    read_busy = [0.0] * clients
    partitions = range(n_partitions)
    part_free = [0.0] * n_partitions
    part_busy = [0.0] * n_partitions
    part_pending = [0] * n_partitions  # PART_ARRIVE events not yet handled
    departed = [deque() for _ in partitions]  # (stored, key, m): acks not yet on the downlink
    service_next = [s.__next__ for s in streams.service]
    # shortest time from "now" until a message not yet on the uplink reaches a partition
    lookahead = up_time + half_rtt + read_cpu
    min_service = cfg.broker.service_time if cfg.broker.service_dist == "deterministic" else 0.0
    station = {"up_free": 0.0, "down_free": 0.0, "up_busy": 0.0, "down_busy": 0.0, "wake_at": INF}
    wake_time = [INF] * clients  # each client's pending CLIENT event
    uplink_scheduled = [False] * clients
    if window is not None:
        released = [[-INF] * window for _ in range(clients)]
        entered = [0] * clients
        waiting = [deque() for _ in range(clients)]

    def run_client(c: int, now: float) -> None:
        horizon = max(station["down_free"], now) + down_time + half_rtt
        t = advance(c, horizon, now)
        if t < wake_time[c]:
            wake_time[c] = t
            push(heap, (t, 0, tick(), CLIENT, c))
        out = outgoing[c]
        if out and not uplink_scheduled[c]:
            uplink_scheduled[c] = True
            push(heap, (out[0][0], 1, out[0][1] * clients + c, UPLINK, c))

    def to_uplink(c: int, key: int, m: int, now: float) -> None:
        if window is None:
            uplink(c, key, m, now)
        elif waiting[c]:
            waiting[c].append((key, m))
        else:
            release = released[c][entered[c] % window]
            if release <= now:
                uplink(c, key, m, now)
            else:
                waiting[c].append((key, m))
                push(heap, (release, 1, key, GATE_UP, c))

    def reopen(c: int, now: float) -> None:
        """Let the head of c's TCP window queue in; the next one gets its own event, so
        that messages of several connections let in at one instant go in connection order."""
        queue = waiting[c]
        if queue and released[c][entered[c] % window] <= now:
            uplink(c, *queue.popleft(), now)
        if queue:
            push(heap, (max(now, released[c][entered[c] % window]), 1, queue[0][0], GATE_UP, c))

    def uplink(c: int, key: int, m: int, now: float) -> None:
        departure = max(station["up_free"], now) + up_time
        station["up_free"] = departure
        station["up_busy"] += up_time
        if window is not None:
            released[c][entered[c] % window] = departure + rtt
            entered[c] += 1
        arrival = departure + half_rtt
        ready = read_free[c] = (read_free[c] if read_free[c] > arrival else arrival) + read_cpu
        read_busy[c] += read_cpu
        # the partition takes it at its arrival, among whatever else arrives then (in
        # connection order): adding half an RTT can round two departures to one arrival
        p = rec_partition[m]
        part_pending[p] += 1
        push(heap, (ready, 2, key, PART_ARRIVE, m))

    def partition(p: int, key: int, m: int, arrival: float, now: float) -> None:
        service = service_next[p]()
        stored = part_free[p] = max(part_free[p], arrival) + service
        part_busy[p] += service
        rec_stored[m] = stored
        departed[p].append((stored, key, m))
        merge_downlink(now)

    def next_departure_bound(q: int, now: float) -> float:
        """No ack not yet computed leaves partition q before this: its next arrival
        (a pending event, or a message entering the uplink from now on) or its
        busy-until time, plus the shortest service."""
        soonest = now if part_pending[q] else now + lookahead
        return max(part_free[q], soonest) + min_service

    def merge_downlink(now: float, settled: bool = False) -> None:
        """Put the earliest departures on the downlink while no partition can still
        produce an earlier one, or an equal one that goes first by the tie rule.
        ``settled``: everything at this instant that could leave a partition now has
        (the DOWN_WAKE rank comes last), so a departure at ``now`` may go."""
        horizon = min((next_departure_bound(q, now) for q in partitions if not departed[q]), default=INF)
        while True:
            heads = [queue for queue in departed if queue]
            if not heads:
                return
            source = min(heads, key=lambda queue: queue[0])
            stored, _, m = source[0]
            if stored > horizon or (stored == horizon and not (settled and stored <= now)):
                if stored < station["wake_at"]:
                    station["wake_at"] = stored
                    push(heap, (stored, 3, tick(), DOWN_WAKE, 0))
                return
            source.popleft()
            if not source:
                horizon = min(horizon, next_departure_bound(rec_partition[m], now))
            downlink(m, stored, now)

    def downlink(m: int, entry: float, now: float) -> None:
        departure = max(station["down_free"], entry) + down_time
        station["down_free"] = departure
        station["down_busy"] += down_time
        c = client_of[rec_producer[m]]
        arrival = departure + half_rtt
        inbox[c].append((arrival, m))
        if arrival < wake_time[c]:
            wake_time[c] = arrival
            push(heap, (arrival, 0, tick(), CLIENT, c))

    def compact() -> None:
        """Summary mode: fold finished messages into the tally, renumber the rest."""
        live = [e[4] for e in heap if e[3] == PART_ARRIVE] + [m for q in departed for _, _, m in q]
        if window is not None:
            live += [m for q in waiting for _, m in q]
        mapping = records.compact(np.array(state.live() + live, dtype=np.int64))
        state.renumber(mapping)
        heap[:] = [(*e[:4], int(mapping[e[4]])) if e[3] == PART_ARRIVE else e for e in heap]
        heapify(heap)
        for q in departed:
            replace_items(q, [(t, key, int(mapping[m])) for t, key, m in q])
        if window is not None:
            for q in waiting:
                replace_items(q, [(key, int(mapping[m])) for key, m in q])

    def prune() -> int:
        """Drop superseded client wake-ups (a client needs only its earliest, ``wake_time``):
        an ack arriving first leaves the later one in the heap, and the heap would grow
        with every message acked within one ack_wait. Returns the next size to prune at."""
        kept = []
        for entry in heap:
            if entry[3] == CLIENT:
                c = entry[4]
                if entry[0] != wake_time[c] or c in woken:
                    continue
                woken.add(c)
            kept.append(entry)
        woken.clear()
        heap[:] = kept
        heapify(heap)
        return max(1024, 2 * len(heap))

    woken: set = set()
    prune_at = 1024
    for c in range(clients):
        run_client(c, 0.0)
    cut = False
    while heap:
        now, _, key, kind, x = heappop(heap)
        if now >= end:
            cut = True
            break
        if kind == UPLINK:
            out = outgoing[x]
            m = out.popleft()[3]
            if out:
                push(heap, (out[0][0], 1, out[0][1] * clients + x, UPLINK, x))
            else:
                uplink_scheduled[x] = False
            to_uplink(x, key, m, now)
        elif kind == CLIENT:
            if now >= wake_time[x]:
                wake_time[x] = INF
                run_client(x, now)
        elif kind == PART_ARRIVE:
            p = rec_partition[x]
            part_pending[p] -= 1
            partition(p, key, x, now, now)
        elif kind == DOWN_WAKE:
            if now == station["wake_at"]:
                station["wake_at"] = INF
                merge_downlink(now, settled=True)
        else:  # GATE_UP
            reopen(x, now)
        if records.tally is not None and records.count >= records.compact_at:
            compact()
        if len(heap) > prune_at:
            prune_at = prune()

    return finish(
        records, state, cut, end, [station["up_free"], station["down_free"], *read_free, *part_free],
        {"uplink": [station["up_busy"]], "read_loop": read_busy, "partition": part_busy,
         "downlink": [station["down_busy"]]},
    )
