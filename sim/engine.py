"""The event loop: runs a :class:`~sim.model.system.System` and fills records.

Every station is a first-come first-served server computed by arithmetic
(Lindley: ``start = max(arrival, free); free = start + service``). Arithmetic
is only right when a station sees its arrivals in time order, so the loop keeps
one binary heap of events and creates an event only where streams from
several sources merge and the order is not already known:

* a client CPU (``CPU_DONE``) serves its producers' produce() calls and the
  acks coming back; when a produce() call finishes, the message enters its
  connection and, at that instant, the shared uplink;
* ``ACK_ARRIVE``: an ack reaches its client;
* ``PART_ARRIVE``: a message reaches a partition stage after queueing in its
  connection's read loop. Otherwise the partition is computed in line: the
  uplink serves in time order and propagation is constant, so a message that
  did not queue in its read loop cannot be overtaken by a later one;
* the shared downlink merges the partitions' departure streams. It takes the
  earliest waiting ack as soon as no partition can still produce an earlier
  one (each partition's next departure is at least its current busy-until time
  plus the shortest service), and ``DOWN_WAKE`` when it must wait for time;
* ``WAKE``: a producer's timer (start, open-loop arrival, limiter poll);
* ``WATCHDOG``: one per producer, at the oldest ack deadline;
* ``GATE_UP``: a connection's TCP window reopens.

A stream whose events are already in time order (one client's CPU
completions, one client's arriving acks) keeps them in a deque and puts only
its head on the heap, which keeps the heap a few entries deep.

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
CPU_DONE, ACK_ARRIVE, PART_ARRIVE, DOWN_WAKE, WAKE, WATCHDOG, GATE_UP = range(7)
# client CPU jobs
SEND, ACK = 0, 1

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
    cpu_jobs = [deque() for _ in range(clients)]  # (done, seq, job, m) in completion order
    inbox = [deque() for _ in range(clients)]  # (arrival, seq, m): acks on their way to a client
    read_free = [0.0] * clients
    read_busy = [0.0] * clients
    partitions = range(n_partitions)
    part_free = [0.0] * n_partitions
    part_busy = [0.0] * n_partitions
    part_pending = [0] * n_partitions  # PART_ARRIVE events not yet handled
    departed = [deque() for _ in partitions]  # (stored, m): acks not yet on the downlink
    service_next = [s.__next__ for s in streams.service]
    # Shortest time from "now" until a message not yet on the uplink reaches a partition.
    lookahead = up_time + half_rtt + read_cpu
    min_service = cfg.broker.service_time if cfg.broker.service_dist == "deterministic" else 0.0
    downlink_in_line = n_partitions == 1  # one partition feeds the downlink in time order
    up_free = down_free = up_busy = down_busy = 0.0
    wake_at = math.inf
    # TCP window: message n of a connection enters the uplink once message n - window
    # has been released (one RTT after leaving the uplink); the others wait in order.
    if up_window is not None:
        released = [[-math.inf] * up_window for _ in range(clients)]
        entered = [0] * clients
        waiting = [deque() for _ in range(clients)]

    def cpu_job(c: int, done: float, job: int, m: int) -> None:
        """Client c's CPU will finish ``job`` for message m at ``done``."""
        queue = cpu_jobs[c]
        seq = tick()
        queue.append((done, seq, job, m))
        if len(queue) == 1:
            push(heap, (done, seq, CPU_DONE, c))

    def to_uplink(c: int, m: int, now: float) -> None:
        if up_window is None:
            uplink(c, m, now)
        elif waiting[c]:
            waiting[c].append(m)
        else:
            release = released[c][entered[c] % up_window]
            if release <= now:
                uplink(c, m, now)
            else:
                waiting[c].append(m)
                push(heap, (release, tick(), GATE_UP, c))

    def reopen(c: int, now: float) -> None:
        queue = waiting[c]
        while queue:
            release = released[c][entered[c] % up_window]
            if release > now:
                push(heap, (release, tick(), GATE_UP, c))
                return
            uplink(c, queue.popleft(), now)

    def uplink(c: int, m: int, now: float) -> None:
        """Message m enters the shared uplink at ``now``; on to the broker."""
        nonlocal up_free, up_busy
        start = up_free
        if start < now:
            start = now
        departure = up_free = start + up_time
        up_busy += up_time
        if up_window is not None:
            released[c][entered[c] % up_window] = departure + rtt
            entered[c] += 1
        arrival = departure + half_rtt
        start = read_free[c]
        queued = start > arrival
        if not queued:
            start = arrival
        ready = read_free[c] = start + read_cpu
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
            partition(p, m, ready, now)

    def partition(p: int, m: int, arrival: float, now: float) -> None:
        service = service_next[p]()
        start = part_free[p]
        if start < arrival:
            start = arrival
        stored = part_free[p] = start + service
        part_busy[p] += service
        rec_stored[m] = stored
        if downlink_in_line:
            downlink(client_of[rec_producer[m]], m, stored)
        else:
            departed[p].append((stored, m))  # ties go to the older message
            merge_downlink(now)

    def merge_downlink(now: float) -> None:
        """Put on the downlink, in time order, every ack that no partition can still precede."""
        nonlocal wake_at
        # a partition with nothing waiting can still send an ack from its next
        # departure on: its next arrival (a pending event, or a message entering
        # the uplink from now on) or its busy-until time, plus the shortest service
        horizon = math.inf
        for q in partitions:
            if not departed[q]:
                soonest = now if part_pending[q] else now + lookahead
                busy = part_free[q]
                bound = (busy if busy > soonest else soonest) + min_service
                if bound < horizon:
                    horizon = bound
        while True:
            best = None
            for queue in departed:
                if queue and (best is None or queue[0] < best):
                    best = queue[0]
                    source = queue
            if best is None or best[0] > horizon:
                break
            source.popleft()
            if not source:
                q = rec_partition[best[1]]
                soonest = now if part_pending[q] else now + lookahead
                busy = part_free[q]
                bound = (busy if busy > soonest else soonest) + min_service
                if bound < horizon:
                    horizon = bound
            m = best[1]
            downlink(client_of[rec_producer[m]], m, best[0])
        if best is not None and best[0] < wake_at:
            wake_at = best[0]
            push(heap, (wake_at, tick(), DOWN_WAKE, 0))

    def downlink(c: int, m: int, now: float) -> None:
        """The ack of m enters the shared downlink at ``now``; on to its client."""
        nonlocal down_free, down_busy
        start = down_free
        if start < now:
            start = now
        departure = down_free = start + down_time
        down_busy += down_time
        arrival = departure + half_rtt
        queue = inbox[c]
        seq = tick()
        queue.append((arrival, seq, m))
        if len(queue) == 1:
            push(heap, (arrival, seq, ACK_ARRIVE, c))

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
        if kind == CPU_DONE:
            queue = cpu_jobs[x]
            _, _, job, m = queue.popleft()
            if queue:
                head = queue[0]
                push(heap, (head[0], head[1], CPU_DONE, x))
            if job == ACK:
                acked = m
            else:  # produce() of m returns; m enters its connection
                rec_sent[m] = now
                j = rec_producer[m]
                to_uplink(x, m, now)
                # the SDK checks its task set right after adding the new task
                if limit is not None and in_flight[j] >= limit:
                    if poll > 0:
                        phase[j] = SLEEPING
                        push(heap, (now + poll, tick(), WAKE, j))
                    else:
                        phase[j] = DRAINING
                    continue
                ready = j
        elif kind == ACK_ARRIVE:
            queue = inbox[x]
            _, _, m = queue.popleft()
            if queue:
                head = queue[0]
                push(heap, (head[0], head[1], ACK_ARRIVE, x))
            start = cpu_free[x]
            if start < now:
                start = now
            done = cpu_free[x] = start + ack_cpu
            cpu_busy[x] += ack_cpu
            if done != now:
                cpu_job(x, done, ACK, m)
                continue
            acked = m
        elif kind == PART_ARRIVE:
            p = rec_partition[x]
            part_pending[p] -= 1
            partition(p, x, now, now)
            continue
        elif kind == DOWN_WAKE:
            if now == wake_at:
                wake_at = math.inf
                merge_downlink(now)
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
        else:  # GATE_UP
            reopen(x, now)
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
            done = cpu_free[c] = start + send_cpu
            cpu_busy[c] += send_cpu
            phase[j] = SENDING
            cpu_job(c, done, SEND, m)

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
