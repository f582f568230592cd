"""The event loop: runs a :class:`~sim.model.system.System` and fills records.

Every station is a first-come first-served server computed by arithmetic
(Lindley: ``start = max(arrival, free); free = start + service``). Arithmetic
is only right when a station sees its arrivals in time order, so the loop keeps
one binary heap of events and creates an event only where streams from
several sources merge and the order is not already known:

* ``SEND_DONE``: a client CPU finishes a produce() call; the message enters
  its connection and, at that same instant, the shared uplink.
* ``PART_ARRIVE``: a message reaches a partition stage. Usually computed in
  line instead: the uplink serves in time order and the propagation delay is
  constant, so a message that did not queue in its connection's read loop
  cannot be overtaken by a later one (see ``_uplink``).
* ``STORED``: a partition stage finishes; the ack enters the shared downlink,
  which merges all partitions (in line when there is only one).
* ``ACK_ARRIVE`` / ``ACK_DONE``: an ack reaches the client CPU, which it
  shares with produce() calls / the CPU has processed it.
* ``WAKE``: a producer's timer (start, open-loop arrival, limiter poll).
* ``WATCHDOG``: one per producer, at the oldest ack deadline.
* ``GATE_UP`` / ``GATE_DOWN``: a connection's TCP window reopens.

Events at the same time run in the order they were scheduled, as in SimPy.
The naive SimPy model in ``tests/reference_model.py`` is the oracle this loop
is checked against.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass
from heapq import heappop, heappush
from itertools import count

from .config import SimConfig
from .model.system import UNBOUNDED, System

# message status codes
IN_FLIGHT, ACKED, TIMED_OUT = 0, 1, 2
STATUS_NAMES = ("in_flight", "acked", "timed_out")

# event kinds, most frequent first
SEND_DONE, STORED, ACK_ARRIVE, ACK_DONE, PART_ARRIVE, WAKE, WATCHDOG, GATE_UP, GATE_DOWN = range(9)

# producer phases
TIMER, SENDING, BLOCKED, SLEEPING, DRAINING, DONE = range(6)


@dataclass
class Records:
    """Per-message typed buffers, one entry per message created.

    ``intended`` is filled for open-loop producers only (otherwise it equals
    ``created``). Times that did not happen are NaN.
    """

    producer: array
    partition: array
    intended: array | None
    created: array
    sent: array
    stored: array
    resolved: array
    status: array
    busy: dict[str, list[float]]
    span: float  # simulated time covered: run.duration if the run was cut, else the last event
    cut: bool  # run.duration stopped the run with work unfinished
    last_resolution: float


CHUNK = 1 << 14  # records grow by this many messages at a time


def run_records(system: System) -> Records:
    """Simulate ``system`` once and return its raw records."""
    cfg: SimConfig = system.config
    streams = system.streams()

    clients = system.clients
    n_producers = system.producers
    n_partitions = system.partitions
    client_of = [system.client_of(j) for j in range(n_producers)]

    send_cpu = cfg.client.send_cpu
    ack_cpu = cfg.client.ack_cpu
    rtt = cfg.link.rtt
    half_rtt = rtt / 2
    up_time = system.uplink_time
    down_time = system.downlink_time
    up_window = system.uplink_window
    down_window = system.downlink_window
    read_cpu = cfg.broker.read_cpu
    ack_wait = cfg.producer.ack_wait
    end = math.inf if cfg.run.duration is None else cfg.run.duration

    cap = system.in_flight_cap
    limit = cfg.producer.concurrent_task_limit if system.flow == "limit" else None
    poll = cfg.producer.limiter_poll
    messages = cfg.producer.messages
    open_loop = cfg.producer.rate is not None

    # per-message records, grown a chunk at a time and trimmed at the end
    rec_producer = array("i")
    rec_partition = array("i")
    rec_intended = array("d")
    rec_created = array("d")
    rec_sent = array("d")
    rec_stored = array("d")
    rec_resolved = array("d")
    rec_status = array("b")
    nan_chunk = array("d", [math.nan]) * CHUNK
    zero_chunk = array("i", [0]) * CHUNK
    status_chunk = array("b", [IN_FLIGHT]) * CHUNK

    def grow() -> None:
        for buffer in (rec_producer, rec_partition):
            buffer.extend(zero_chunk)
        for buffer in (rec_created, rec_sent, rec_stored, rec_resolved):
            buffer.extend(nan_chunk)
        if open_loop:
            rec_intended.extend(nan_chunk)
        rec_status.extend(status_chunk)

    heap: list = []
    push = heappush
    pop = heappop
    tick = count(1).__next__

    # -- stations ---------------------------------------------------------------
    cpu_free = [0.0] * clients
    cpu_busy = [0.0] * clients
    read_free = [0.0] * clients
    read_busy = [0.0] * clients
    part_free = [0.0] * n_partitions
    part_busy = [0.0] * n_partitions
    part_pending = [0] * n_partitions
    service_next = [s.__next__ for s in streams.service]
    up_free = down_free = up_busy = down_busy = 0.0
    # connection windows: messages waiting to enter, release times of those in the pipe
    up_waiting = [deque() for _ in range(clients)]
    up_release = [deque() for _ in range(clients)]
    down_waiting = [deque() for _ in range(clients)]
    down_release = [deque() for _ in range(clients)]

    def uplink(c: int, m: int, now: float) -> None:
        """Message m enters the shared uplink at ``now``; on to the broker."""
        nonlocal up_free, up_busy
        start = up_free
        if start < now:
            start = now
        departure = up_free = start + up_time
        up_busy += up_time
        if up_window is not None:
            up_release[c].append(departure + rtt)
        arrival = departure + half_rtt
        start = read_free[c]
        queued = start > arrival
        if not queued:
            start = arrival
        ready = start + read_cpu
        read_free[c] = ready
        read_busy[c] += read_cpu
        p = rec_partition[m]
        # The uplink serves in time order and propagation is constant, so a message
        # that did not queue in its read loop cannot be overtaken at its partition by
        # a later one: compute the partition now, unless an earlier arrival at p is
        # still pending as an event.
        if queued or part_pending[p]:
            part_pending[p] += 1
            push(heap, (ready, tick(), PART_ARRIVE, m))
        else:
            partition(p, m, ready)

    def partition(p: int, m: int, arrival: float) -> None:
        service = service_next[p]()
        start = part_free[p]
        if start < arrival:
            start = arrival
        stored = start + service
        part_free[p] = stored
        part_busy[p] += service
        rec_stored[m] = stored
        if downlink_in_line:  # one partition feeds the downlink in time order
            downlink(client_of[rec_producer[m]], m, stored)
        else:
            push(heap, (stored, tick(), STORED, m))

    def downlink(c: int, m: int, now: float) -> None:
        """The ack of m enters the shared downlink at ``now``; on to the client."""
        nonlocal down_free, down_busy
        start = down_free
        if start < now:
            start = now
        departure = down_free = start + down_time
        down_busy += down_time
        if down_window is not None:
            down_release[c].append(departure + rtt)
        push(heap, (departure + half_rtt, tick(), ACK_ARRIVE, m))

    def gate(enter, waiting: deque, release: deque, window: int, kind: int):
        """A connection's TCP window in front of ``enter``: at most ``window``
        messages between entering the link and their release one RTT after
        leaving it; the others wait in order."""

        def arrive(c: int, m: int, now: float) -> None:
            if waiting[c]:
                waiting[c].append(m)
                return
            pipe = release[c]
            while pipe and pipe[0] <= now:
                pipe.popleft()
            if len(pipe) < window:
                enter(c, m, now)
            else:
                waiting[c].append(m)
                push(heap, (pipe[len(pipe) - window], tick(), kind, c))

        def reopen(c: int, now: float) -> None:
            queue, pipe = waiting[c], release[c]
            while queue:
                while pipe and pipe[0] <= now:
                    pipe.popleft()
                if len(pipe) >= window:
                    push(heap, (pipe[len(pipe) - window], tick(), kind, c))
                    return
                enter(c, queue.popleft(), now)

        return arrive, reopen

    downlink_in_line = n_partitions == 1 and down_window is None
    to_uplink, reopen_up = (uplink, None) if up_window is None else gate(uplink, up_waiting, up_release, up_window, GATE_UP)
    to_downlink, reopen_down = (
        (downlink, None) if down_window is None else gate(downlink, down_waiting, down_release, down_window, GATE_DOWN)
    )

    # -- producers ----------------------------------------------------------------
    remaining = [UNBOUNDED if messages is None else messages] * n_producers
    in_flight = [0] * n_producers
    phase = [TIMER] * n_producers
    next_arrival = [0.0] * n_producers
    gap_next = [g.__next__ if g is not None else None for g in streams.arrival_gaps]
    choose_next = [c.__next__ for c in streams.partitions]
    watch = [deque() for _ in range(n_producers)]  # each producer's messages in send order
    watch_armed = [False] * n_producers

    for j, start_time in enumerate(streams.start_times):
        if open_loop:
            next_arrival[j] = start_time + gap_next[j]()
        push(heap, (start_time, tick(), WAKE, j))

    size = capacity = 0
    last_resolution = 0.0
    cut = False
    now = 0.0
    # The loop body is written out, not split into functions, because it runs a few
    # times per message. Each event ends in one of three ways: ``continue``; an ack
    # to apply (``acked``); or a producer that may call produce() now (``ready``).
    while heap:
        now, _, kind, x = pop(heap)
        if now >= end:
            cut = True
            break
        acked = ready = -1
        if kind == SEND_DONE:
            rec_sent[x] = now
            j = rec_producer[x]
            to_uplink(client_of[j], x, now)
            # the SDK checks its task set right after adding the new task
            if limit is not None and in_flight[j] >= limit:
                if poll > 0:
                    phase[j] = SLEEPING
                    push(heap, (now + poll, tick(), WAKE, j))
                else:
                    phase[j] = DRAINING
                continue
            ready = j
        elif kind == STORED:
            to_downlink(client_of[rec_producer[x]], x, now)
            continue
        elif kind == ACK_ARRIVE:
            c = client_of[rec_producer[x]]
            start = cpu_free[c]
            if start < now:
                start = now
            done = start + ack_cpu
            cpu_free[c] = done
            cpu_busy[c] += ack_cpu
            if done != now:
                push(heap, (done, tick(), ACK_DONE, x))
                continue
            acked = x
        elif kind == ACK_DONE:
            acked = x
        elif kind == PART_ARRIVE:
            p = rec_partition[x]
            part_pending[p] -= 1
            partition(p, x, now)
            continue
        elif kind == WAKE:
            if phase[x] == SLEEPING and 2 * in_flight[x] > limit:
                push(heap, (now + poll, tick(), WAKE, x))
                continue
            ready = x
        elif kind == WATCHDOG:
            queue = watch[x]
            freed = False
            while queue:
                m = queue[0]
                if rec_status[m] != IN_FLIGHT:
                    queue.popleft()
                    continue
                deadline = rec_created[m] + ack_wait
                if deadline > now:
                    push(heap, (deadline, tick(), WATCHDOG, x))
                    break
                queue.popleft()
                rec_status[m] = TIMED_OUT
                rec_resolved[m] = deadline
                last_resolution = deadline
                in_flight[x] -= 1
                freed = True
            else:
                watch_armed[x] = False
            state = phase[x]
            if not freed or not (state == BLOCKED or (state == DRAINING and 2 * in_flight[x] <= limit)):
                continue
            ready = x
        elif kind == GATE_UP:
            reopen_up(x, now)
            continue
        else:  # GATE_DOWN
            reopen_down(x, now)
            continue

        if acked >= 0:
            # acked only if processed strictly before the deadline; a late ack is ignored
            if rec_status[acked] != IN_FLIGHT or now >= rec_created[acked] + ack_wait:
                continue
            rec_status[acked] = ACKED
            rec_resolved[acked] = now
            last_resolution = now
            j = rec_producer[acked]
            in_flight[j] -= 1
            state = phase[j]
            if not (state == BLOCKED or (state == DRAINING and 2 * in_flight[j] <= limit)):
                continue
            ready = j

        # producer ``ready`` may call produce() now
        j = ready
        if remaining[j] <= 0:
            phase[j] = DONE
        elif in_flight[j] >= cap:
            phase[j] = BLOCKED
        elif open_loop and next_arrival[j] > now:
            phase[j] = TIMER
            push(heap, (next_arrival[j], tick(), WAKE, j))
        else:
            m = size
            if m == capacity:
                grow()
                capacity += CHUNK
            size = m + 1
            rec_producer[m] = j
            rec_partition[m] = choose_next[j]()
            if open_loop:
                rec_intended[m] = next_arrival[j]
                next_arrival[j] += gap_next[j]()
            rec_created[m] = now
            remaining[j] -= 1
            in_flight[j] += 1
            watch[j].append(m)
            if not watch_armed[j]:
                watch_armed[j] = True
                push(heap, (now + ack_wait, tick(), WATCHDOG, j))
            c = client_of[j]
            start = cpu_free[c]
            if start < now:
                start = now
            done = start + send_cpu
            cpu_free[c] = done
            cpu_busy[c] += send_cpu
            phase[j] = SENDING
            push(heap, (done, tick(), SEND_DONE, m))

    for buffer in (rec_producer, rec_partition, rec_created, rec_sent, rec_stored, rec_resolved, rec_status):
        del buffer[size:]
    del rec_intended[size:]
    if cut:
        span = end
    else:  # when the last server fell idle (a watchdog may fire later, finding nothing)
        span = max([last_resolution, up_free, down_free, *cpu_free, *read_free, *part_free])
    unfinished = any(r > 0 for r in remaining) or IN_FLIGHT in rec_status
    busy = {
        "client_cpu": cpu_busy,
        "uplink": [up_busy],
        "read_loop": read_busy,
        "partition": part_busy,
        "downlink": [down_busy],
    }
    return Records(
        producer=rec_producer,
        partition=rec_partition,
        intended=rec_intended if open_loop else None,
        created=rec_created,
        sent=rec_sent,
        stored=rec_stored,
        resolved=rec_resolved,
        status=rec_status,
        busy=busy,
        span=span,
        cut=cut and unfinished,
        last_resolution=last_resolution,
    )
