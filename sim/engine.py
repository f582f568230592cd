"""The simulation loop: runs a :class:`~sim.model.system.System` and fills records.

Every station is a first-come first-served server computed by arithmetic
(Lindley: ``start = max(arrival, free); free = start + service``), which is only
right when the station sees its arrivals in time order. The loop is arranged so
that each station does, with as few scheduled events as possible:

* Each client (its event loop, producers and watchdogs) is a *local process*
  that runs ahead of global time, in its own time order, as far as it can be
  sure of its input: the acks coming back. No ack that is not yet computed can
  reach a client before the downlink's busy-until time plus one ack's
  serialization and half an RTT, so a client may handle everything before that.
  Its produce() calls leave its CPU in time order into an outgoing queue.
* The shared uplink merges the clients' outgoing queues: the head of each is
  on a binary heap (``UPLINK``), the only event most messages ever need.
* From the uplink on, the broker is computed in line: the uplink serves in time
  order and propagation is constant, so a message that did not queue in its
  connection's read loop cannot be overtaken at its partition by a later one
  (otherwise it waits for a ``PART_ARRIVE`` event).
* The shared downlink merges the partitions' departures, taking the earliest
  as soon as no partition can still produce an earlier one (its next departure
  is at least its busy-until time plus the shortest service); ``DOWN_WAKE``
  when it has to wait for time to pass.
* ``CLIENT`` wakes a client when its next own event (a produce() finishing, a
  timer, the watchdog, an ack) lies beyond what it could see before.
* ``GATE_UP``: a connection's TCP window reopens.

Simultaneous events: within a client, a CPU completion comes first, then an
arriving ack, then timers and the watchdog; among heap events, the order they
were scheduled in, as in SimPy. The naive SimPy model in
``tests/reference_model.py`` is the oracle this loop is checked against.
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

# heap events, most frequent first
UPLINK, CLIENT, PART_ARRIVE, DOWN_WAKE, GATE_UP = range(5)
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

    INF = math.inf

    # -- network and broker ---------------------------------------------------------
    read_free = [0.0] * clients
    read_busy = [0.0] * clients
    partitions = range(n_partitions)
    part_free = [0.0] * n_partitions
    part_busy = [0.0] * n_partitions
    part_pending = [0] * n_partitions  # PART_ARRIVE events not yet handled
    departed = [deque() for _ in partitions]  # (stored, m): acks not yet on the downlink
    service_next = [s.__next__ for s in streams.service]
    # shortest time from "now" until a message not yet on the uplink reaches a partition
    lookahead = up_time + half_rtt + read_cpu
    min_service = cfg.broker.service_time if cfg.broker.service_dist == "deterministic" else 0.0
    downlink_in_line = n_partitions == 1  # one partition feeds the downlink in time order
    up_free = down_free = up_busy = down_busy = 0.0
    wake_at = INF
    # TCP window: message n of a connection enters the uplink once message n - window
    # has been released (one RTT after leaving the uplink); the others wait in order.
    if up_window is not None:
        released = [[-INF] * up_window for _ in range(clients)]
        entered = [0] * clients
        waiting = [deque() for _ in range(clients)]

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
            downlink(m, stored, now)
        else:
            departed[p].append((stored, m))  # ties go to the older message
            merge_downlink(now)

    def merge_downlink(now: float) -> None:
        """Put on the downlink, in time order, every ack that no partition can still precede."""
        nonlocal wake_at
        # a partition with nothing waiting can still send an ack from its next
        # departure on: its next arrival (a pending event, or a message entering
        # the uplink from now on) or its busy-until time, plus the shortest service
        horizon = INF
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
            downlink(best[1], best[0], now)
        if best is not None and best[0] < wake_at:
            wake_at = best[0]
            push(heap, (wake_at, tick(), DOWN_WAKE, 0))

    def downlink(m: int, entry: float, now: float) -> None:
        """The ack of m enters the shared downlink at ``entry``; on to its client."""
        nonlocal down_free, down_busy
        start = down_free
        if start < entry:
            start = entry
        departure = down_free = start + down_time
        down_busy += down_time
        c = client_of[rec_producer[m]]
        arrival = departure + half_rtt
        inbox[c].append((arrival, m))
        if arrival < wake_time[c]:  # the client runs when time comes to its first new ack
            wake_time[c] = arrival
            push(heap, (arrival, tick(), CLIENT, c))

    # -- clients -------------------------------------------------------------------
    cpu_free = [0.0] * clients
    cpu_busy = [0.0] * clients
    jobs = [deque() for _ in range(clients)]  # (done, job, m) in completion order
    inbox = [deque() for _ in range(clients)]  # (arrival, m): acks on their way to the client
    outgoing = [deque() for _ in range(clients)]  # (time, seq, m): produce() done, on to the network
    wake_time = [INF] * clients  # the pending CLIENT event
    producers_of = [[j for j in range(n_producers) if client_of[j] == c] for c in range(clients)]

    remaining = [UNBOUNDED if messages is None else messages] * n_producers
    in_flight = [0] * n_producers
    phase = [TIMER] * n_producers
    timer = list(streams.start_times)  # start, open-loop arrival or limiter poll; INF if none
    deadline = [INF] * n_producers  # the watchdog: oldest ack deadline; INF if unarmed
    # timers that fall at one instant fire in the order they were set (a deadline
    # is set when its message is created)
    timer_seq = [0] * n_producers
    deadline_seq = [0] * n_producers
    client_timer = [min(timer[j] for j in producers_of[c]) for c in range(clients)]
    next_arrival = [0.0] * n_producers
    gap_next = [g.__next__ if g is not None else None for g in streams.arrival_gaps]
    choose_next = [c.__next__ for c in streams.partitions]
    watch = [deque() for _ in range(n_producers)]  # (m, seq) of each producer's messages in send order
    if open_loop:
        for j in range(n_producers):
            next_arrival[j] = timer[j] + gap_next[j]()

    size = capacity = 0

    def advance(c: int, now: float) -> None:
        """Run client c's own events in time order as far as its acks are known."""
        nonlocal size, capacity
        # no ack still to be computed can arrive before ``horizon``
        horizon = (down_free if down_free > now else now) + down_time + half_rtt
        cpu, arrivals, out, mine = jobs[c], inbox[c], outgoing[c], producers_of[c]
        while True:
            t_cpu = cpu[0][0] if cpu else INF
            t_ack = arrivals[0][0] if arrivals else INF
            t_timer = client_timer[c]
            if t_cpu <= t_ack and t_cpu <= t_timer:
                t, event = t_cpu, 0
            elif t_ack <= t_timer:
                t, event = t_ack, 1
            else:
                t, event = t_timer, 2
            if (t >= horizon and t > now) or t >= end:
                break
            acked = ready = -1
            if event == 0:  # the CPU finishes a job
                _, job, m = cpu.popleft()
                if job == ACK:
                    acked = m
                else:  # produce() of m returns; m goes to its connection
                    rec_sent[m] = t
                    seq = tick()
                    out.append((t, seq, m))
                    if len(out) == 1:
                        push(heap, (t, seq, UPLINK, c))
                    j = rec_producer[m]
                    # the SDK checks its task set right after adding the new task
                    if limit is not None and in_flight[j] >= limit:
                        if poll > 0:
                            phase[j] = SLEEPING
                            timer[j] = t + poll
                            timer_seq[j] = tick()
                            if t + poll < client_timer[c]:
                                client_timer[c] = t + poll
                        else:
                            phase[j] = DRAINING
                        continue
                    ready = j
            elif event == 1:  # an ack arrives and queues for the CPU
                _, m = arrivals.popleft()
                start = cpu_free[c]
                if start < t:
                    start = t
                done = cpu_free[c] = start + ack_cpu
                cpu_busy[c] += ack_cpu
                if done != t:
                    cpu.append((done, ACK, m))
                    continue
                acked = m
            else:  # a producer's timer or watchdog: the first one set, of those due at t
                first = INF
                for k in mine:
                    if timer[k] == t and timer_seq[k] < first:
                        first, j, is_timer = timer_seq[k], k, True
                    if deadline[k] == t and deadline_seq[k] < first:
                        first, j, is_timer = deadline_seq[k], k, False
                if is_timer:
                    timer[j] = INF
                    if phase[j] == SLEEPING and 2 * in_flight[j] > limit:
                        timer[j] = t + poll
                        timer_seq[j] = tick()
                    else:
                        ready = j
                else:
                    queue = watch[j]
                    freed = False
                    while queue:
                        m = queue[0][0]
                        if rec_status[m] != IN_FLIGHT:
                            queue.popleft()
                            continue
                        expiry = rec_created[m] + ack_wait
                        if expiry > t:
                            break
                        queue.popleft()
                        rec_status[m] = TIMED_OUT
                        rec_resolved[m] = expiry
                        in_flight[j] -= 1
                        freed = True
                    if queue:
                        deadline[j] = rec_created[queue[0][0]] + ack_wait
                        deadline_seq[j] = queue[0][1]
                    else:
                        deadline[j] = INF
                    state = phase[j]
                    if freed and (state == BLOCKED or (state == DRAINING and 2 * in_flight[j] <= limit)):
                        ready = j
                client_timer[c] = min([timer[k] for k in mine] + [deadline[k] for k in mine])
                if ready < 0:
                    continue

            if acked >= 0:
                # acked only if processed strictly before the deadline; a late ack is ignored
                if rec_status[acked] != IN_FLIGHT or t >= rec_created[acked] + ack_wait:
                    continue
                rec_status[acked] = ACKED
                rec_resolved[acked] = t
                j = rec_producer[acked]
                in_flight[j] -= 1
                state = phase[j]
                if not (state == BLOCKED or (state == DRAINING and 2 * in_flight[j] <= limit)):
                    continue
                ready = j

            # producer ``ready`` may call produce() at t
            j = ready
            if remaining[j] <= 0:
                phase[j] = DONE
            elif in_flight[j] >= cap:
                phase[j] = BLOCKED
            elif open_loop and next_arrival[j] > t:
                phase[j] = TIMER
                timer[j] = next_arrival[j]
                timer_seq[j] = tick()
                if timer[j] < client_timer[c]:
                    client_timer[c] = timer[j]
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
                rec_created[m] = t
                remaining[j] -= 1
                in_flight[j] += 1
                seq = tick()
                watch[j].append((m, seq))
                if deadline[j] == INF:
                    deadline[j] = t + ack_wait
                    deadline_seq[j] = seq
                    if deadline[j] < client_timer[c]:
                        client_timer[c] = deadline[j]
                start = cpu_free[c]
                if start < t:
                    start = t
                done = cpu_free[c] = start + send_cpu
                cpu_busy[c] += send_cpu
                phase[j] = SENDING
                cpu.append((done, SEND, m))
        if t < wake_time[c]:
            wake_time[c] = t
            push(heap, (t, tick(), CLIENT, c))

    # -- the loop ------------------------------------------------------------------
    for c in range(clients):
        advance(c, 0.0)
    cut = False
    now = 0.0
    while heap:
        now, _, kind, x = pop(heap)
        if now >= end:
            cut = True
            break
        if kind == UPLINK:
            queue = outgoing[x]
            m = queue.popleft()[2]
            if queue:
                head = queue[0]
                push(heap, (head[0], head[1], UPLINK, x))
            to_uplink(x, m, now)
        elif kind == CLIENT:
            if now >= wake_time[x]:
                wake_time[x] = INF
                advance(x, now)
        elif kind == PART_ARRIVE:
            p = rec_partition[x]
            part_pending[p] -= 1
            partition(p, x, now, now)
        elif kind == DOWN_WAKE:
            if now == wake_at:
                wake_at = INF
                merge_downlink(now)
        else:  # GATE_UP
            reopen(x, now)

    for buffer in (rec_producer, rec_partition, rec_created, rec_sent, rec_stored, rec_resolved, rec_status):
        del buffer[size:]
    del rec_intended[size:]
    if cut:
        span = end
    else:  # when the last server fell idle (every ack, even a late one, ends on a client CPU)
        span = max([up_free, down_free, *cpu_free, *read_free, *part_free])
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
    )
