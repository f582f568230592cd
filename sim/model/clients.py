"""The client side: producers, their event loop (one CPU per client) and watchdogs.

Each client is a *local process*: it handles its own events in time order (a
produce() call finishing on the CPU, an ack arriving, a producer's timer, the
watchdog) and touches nothing outside itself. Its only input is the acks in
``inbox[c]``; its only output is the messages whose produce() call finished,
in ``outgoing[c]``. Whoever drives it says how far it may go: up to a
``horizon`` before which every ack it will ever receive is already in its
inbox.

Producer flow control, as the SDK does it (the policies are in ``sim.model.flow``):

* sync: one message in flight; the next produce() waits for its ack.
* window C: at most C in flight; a new produce() as soon as one resolves.
* concurrent_task_limit L: after adding a task, if L or more are in flight,
  sleep ``limiter_poll`` at a time until at most L/2 remain (poll 0 = wake at
  the exact moment).
* open loop: produce() at the intended (Poisson or constant) arrival times, or
  as soon as flow control allows when late.

A message times out when its ack has not been processed ``ack_wait`` after its
produce() call; one watchdog per producer watches the oldest deadline.

At one instant a client finishes its CPU job first, then takes an arriving ack,
then fires timers, in the order they were set (a deadline is set when its
message is created).
"""

from __future__ import annotations

import math
from collections import deque
from itertools import count

from .flow import policy_for
from .records import ACKED, IN_FLIGHT, LATE, MESSAGE, TIMED_OUT, renumbered
from .system import UNBOUNDED, System

# producer phases
TIMER, SENDING, BLOCKED, SLEEPING, DRAINING, DONE = range(6)
# CPU jobs
SEND, ACK = 0, 1


def client_side(system: System, streams, records):
    """Build the clients of ``system``; return ``(advance, clients)``.

    ``advance(c, horizon, now)`` runs client c's events that fall before
    ``horizon`` (and any at or before ``now``) and returns the time of its next
    own event (``inf`` if none). ``clients`` (:class:`Clients`) exposes the
    queues and counters the loops read.
    """
    clients = Clients(system, streams, records)
    steps = _producer_steps(clients)
    advance = _advancer(clients, _resolver(clients), _timer_firer(clients), steps, _window_bound(clients))
    return advance, clients


class Clients:
    """The state of every client (lists indexed by client c) and producer (by j)."""

    def __init__(self, system: System, streams, records):
        cfg = system.config
        INF = math.inf
        self.records = records
        clients = system.clients
        self.n_producers = n_producers = system.producers
        self.client_of = [system.client_of(j) for j in range(n_producers)]
        self.send_cpu, self.ack_cpu, self.ack_wait = cfg.client.send_cpu, cfg.client.ack_cpu, cfg.producer.ack_wait
        self.end = INF if cfg.run.duration is None else cfg.run.duration
        self.flow = policy_for(system)  # sync, window, the SDK's limiter, or none: sim.model.flow
        self.open_loop = cfg.producer.rate is not None

        self.cpu_free = [0.0] * clients
        self.cpu_busy = [0.0] * clients
        self.jobs = [deque() for _ in range(clients)]  # (done, job, m) in completion order
        self.inbox = [deque() for _ in range(clients)]  # (arrival, m)
        # records.Sent (time, n, c, m, p): produce() of message m returned at time; it is the
        # n-th message of client c's connection and goes to partition p
        self.outgoing = [deque() for _ in range(clients)]
        self.connection_count = [0] * clients
        self.producers_of = [[j for j in range(n_producers) if self.client_of[j] == c] for c in range(clients)]

        messages = cfg.producer.messages
        self.remaining = [UNBOUNDED if messages is None else messages] * n_producers
        self.in_flight = [0] * n_producers
        self.phase = [TIMER] * n_producers
        self.timer = list(streams.start_times)  # start, open-loop arrival or limiter poll; INF if none
        # Timers due at one instant fire in the order they were set, a deadline being
        # set when its message is created: a deadline's key is (its message number, 0),
        # a timer's (the number of messages created before it was set, less a half,
        # then a count of timers set so far). The starts are set first, in producer order.
        self.timer_key = [(-0.5, j) for j in range(n_producers)]
        self.set_order = count(n_producers).__next__
        self.deadline = [INF] * n_producers  # the watchdog: oldest ack deadline (INF if none)
        self.deadline_key = [(0, 0)] * n_producers
        self.client_timer = [min(self.timer[j] for j in self.producers_of[c]) for c in range(clients)]
        self.next_arrival = [0.0] * n_producers
        self.sleep_for = [0.0] * n_producers  # how long a paused producer sleeps between looks
        self.gap_next = [g.__next__ if g is not None else None for g in streams.arrival_gaps]
        self.choose_next = [c.__next__ for c in streams.partitions]
        # each producer's messages still in flight (and a few resolved ones behind them), in send order
        self.watch = [deque() for _ in range(n_producers)]
        self.timed_out = [False] * clients  # has any message of this client timed out?
        if self.open_loop:
            for j in range(n_producers):
                self.next_arrival[j] = self.timer[j] + self.gap_next[j]()

    def live(self) -> list[int]:
        """Every message some client queue still refers to."""
        status = self.records.status
        ids = [m for queue in self.jobs for _, _, m in queue]
        ids += [m for queue in self.inbox for _, m in queue]
        ids += [entry[MESSAGE] for queue in self.outgoing for entry in queue]
        # the watchdogs skip a resolved message anyway: only the unresolved ones count
        ids += [m for queue in self.watch for m in queue if status[m] == IN_FLIGHT]
        return ids

    def renumber(self, mapping) -> None:
        for queue in self.jobs:
            replace_items(queue, [(t, job, int(mapping[m])) for t, job, m in queue])
        for queue in self.inbox:
            replace_items(queue, [(t, int(mapping[m])) for t, m in queue])
        for queue in self.outgoing:
            replace_items(queue, [renumbered(e, mapping) for e in queue])
        for queue in self.watch:
            replace_items(queue, [int(mapping[m]) for m in queue if mapping[m] >= 0])

        def place(key: tuple) -> tuple:
            """Where a timer's key falls among the renumbered messages."""
            point, order = key
            if point == int(point) and mapping[int(point)] >= 0:
                return int(mapping[int(point)]), order
            return int((mapping[: math.ceil(point)] >= 0).sum()) - 0.5, order

        for j in range(self.n_producers):
            # a deadline's key is its message's number (which may be resolved and gone
            # by now), a timer's the count of messages before it, less a half
            if self.deadline[j] != math.inf:
                self.deadline_key[j] = place(self.deadline_key[j])
            if self.timer[j] != math.inf:
                self.timer_key[j] = place(self.timer_key[j])


def _advancer(st: Clients, resolve, fire_timer, steps, window_bound):
    """``advance(c, horizon, now)``: client c's events in time order, up to ``horizon``.
    At one instant: the CPU's job, then an arriving ack, then the timers."""
    INF = math.inf
    records, end, phase = st.records, st.end, st.phase
    jobs, inbox, producers_of, client_timer = st.jobs, st.inbox, st.producers_of, st.client_timer
    cpu_free, cpu_busy, connection_count = st.cpu_free, st.cpu_busy, st.connection_count
    send_cpu, ack_cpu = st.send_cpu, st.ack_cpu
    # a client with one producer whose window alone paces it gets the tight loop
    solo_ok = st.flow.cap < UNBOUNDED and st.flow.pause is None and not st.open_loop

    def advance(c: int, horizon: float, now: float) -> float:
        cpu, arrivals, mine = jobs[c], inbox[c], producers_of[c]
        if horizon > end:
            horizon = end
        if now >= end:
            now = -INF
        free = cpu_free[c]
        sends = acks = 0
        n = connection_count[c]
        m = records.count
        solo = mine[0] if len(mine) == 1 and solo_ok else -1
        try:
            while True:
                if solo >= 0 and not cpu and phase[solo] == BLOCKED and arrivals:
                    free, m, n, k = window_bound(c, solo, horizon, free, m, n)
                    acks += k
                    sends += k
                t_cpu = cpu[0][0] if cpu else INF
                t_ack = arrivals[0][0] if arrivals else INF
                t_timer = client_timer[c]
                if t_cpu <= t_ack and t_cpu <= t_timer:  # the CPU finishes a job
                    t = t_cpu
                    if t >= horizon and t > now:
                        return t
                    _, job, sent = cpu.popleft()
                    if job == ACK:
                        j = resolve(sent, t)
                        if j < 0:
                            continue
                        sent = -1
                    else:
                        j = -1
                elif t_ack <= t_timer:  # an ack arrives and queues for the CPU
                    t = t_ack
                    if t >= horizon and t > now:
                        return t
                    _, acked = arrivals.popleft()
                    acks += 1
                    if free > t:
                        free += ack_cpu
                        cpu.append((free, ACK, acked))
                        continue
                    free = t + ack_cpu
                    if ack_cpu:
                        cpu.append((free, ACK, acked))
                        continue
                    j = resolve(acked, t)  # the CPU is idle and acks cost nothing: processed at once
                    if j < 0:
                        continue
                    sent = -1
                else:  # a producer's timer or watchdog
                    t = t_timer
                    if t >= horizon and t > now:
                        return t
                    records.count = m
                    j = fire_timer(c, t, mine)
                    if j < 0:
                        continue
                    sent = -1
                free, m, n, k = steps(c, t, sent, j, horizon, free, m, n)
                sends += k
        finally:
            records.count = m
            connection_count[c] = n
            cpu_free[c] = free
            cpu_busy[c] += sends * send_cpu + acks * ack_cpu

    return advance


def _producer_steps(st: Clients, begin=None):
    """``steps(c, t, sent, j, horizon, free, m, n)``: alternate "produce() of ``sent``
    returns at t" and "producer j may call produce() at t" for as long as nothing
    else falls due in between; returns ``(free, m, n, produced)``.

    With ``begin`` (``sim.model.hosts``: a CPU whose jobs wait for a core), a produce()
    that costs CPU always queues its job and stops, since its end is not known until a
    core is granted: ``begin(c, t, SEND, m, False)`` asks for one; ``free`` is unused."""
    INF = math.inf
    pooled = begin is not None
    cpu_free = st.cpu_free
    records, phase, remaining, in_flight = st.records, st.phase, st.remaining, st.in_flight
    timer, timer_key, set_order, client_timer = st.timer, st.timer_key, st.set_order, st.client_timer
    deadline, deadline_key, watch, sleep_for = st.deadline, st.deadline_key, st.watch, st.sleep_for
    next_arrival, gap_next, choose_next = st.next_arrival, st.gap_next, st.choose_next
    jobs, inbox, outgoing = st.jobs, st.inbox, st.outgoing
    rec_producer, rec_partition, rec_intended = records.producer, records.partition, records.intended
    rec_created, rec_sent = records.created, records.sent
    cap, pause, open_loop = st.flow.cap, st.flow.pause, st.open_loop
    send_cpu, ack_wait = st.send_cpu, st.ack_wait

    def steps(c: int, t: float, sent: int, j: int, horizon: float, free: float, m: int, n: int):
        cpu, arrivals, out = jobs[c], inbox[c], outgoing[c]
        capacity = records.capacity
        made = 0
        while True:
            if sent >= 0:
                rec_sent[sent] = t
                out.append((t, n, c, sent, rec_partition[sent]))
                n += 1
                j = rec_producer[sent]
                # the SDK checks its task set right after adding the new task
                wait = None if pause is None else pause(in_flight[j])
                if wait is not None:
                    if wait > 0:  # sleep, then look again
                        phase[j] = SLEEPING
                        sleep_for[j] = wait
                        timer[j] = t + wait
                        timer_key[j] = (m - 0.5, set_order())
                        if t + wait < client_timer[c]:
                            client_timer[c] = t + wait
                    else:  # go on the moment the policy allows
                        phase[j] = DRAINING
                    break
            if remaining[j] <= 0:
                phase[j] = DONE
                break
            if in_flight[j] >= cap:
                phase[j] = BLOCKED
                break
            if open_loop and next_arrival[j] > t:
                phase[j] = TIMER
                timer[j] = next_arrival[j]
                timer_key[j] = (m - 0.5, set_order())
                if timer[j] < client_timer[c]:
                    client_timer[c] = timer[j]
                break
            # produce(): a new message, on the CPU after whatever is queued there
            if m == capacity:
                records.count = m
                records.grow()
                capacity = records.capacity
            rec_producer[m] = j
            rec_partition[m] = choose_next[j]()
            if open_loop:
                rec_intended[m] = next_arrival[j]
                next_arrival[j] += gap_next[j]()
            rec_created[m] = t
            remaining[j] -= 1
            in_flight[j] += 1
            watch[j].append(m)
            if deadline[j] == INF:
                deadline[j] = t + ack_wait
                deadline_key[j] = (m, 0)
                if deadline[j] < client_timer[c]:
                    client_timer[c] = deadline[j]
            made += 1
            phase[j] = SENDING
            sent = m
            m += 1
            if pooled:
                if cpu:  # the CPU is busy: the job waits its turn
                    cpu.append((INF, SEND, sent))
                    break
                if send_cpu:
                    begin(c, t, SEND, sent, False)
                    break
                # no CPU cost and the CPU idle: produce() returns at once, unless something else is due first
                cpu_free[c] = free = t
            else:
                if free < t:
                    free = t
                free += send_cpu
            if cpu or free >= horizon or free >= client_timer[c] or (arrivals and arrivals[0][0] <= free):
                cpu.append((free, SEND, sent))
                break
            t = free  # nothing else is due first: produce() returns now
        return free, m, n, made

    return steps


def _window_bound(st: Clients):
    """``window_bound(c, j, horizon, free, m, n)``: a window-bound producer j, blocked,
    its CPU idle: each ack frees one place and the producer fills it at once. While
    that is all that happens (acks one at a time, nothing else due) this does, for
    each ack, what the general steps would: process the ack, produce() one message,
    finish the call. Returns ``(free, m, n, acks)``; it leaves the rest to the caller."""
    records, remaining, phase, watch = st.records, st.remaining, st.phase, st.watch
    inbox, outgoing, client_timer, choose_next = st.inbox, st.outgoing, st.client_timer, st.choose_next
    rec_producer, rec_partition, rec_created = records.producer, records.partition, records.created
    rec_sent, rec_resolved, rec_status = records.sent, records.resolved, records.status
    send_cpu, ack_cpu = st.send_cpu, st.ack_cpu

    def window_bound(c: int, j: int, horizon: float, free: float, m: int, n: int):
        arrivals, out, own = inbox[c], outgoing[c], watch[j]
        capacity = records.capacity
        done_acks = 0
        # (before the earliest deadline by the tie tolerance: see records.LATE)
        limit_t = min(horizon, client_timer[c] * LATE)
        while arrivals:
            a, acked = arrivals[0]
            start = free if free > a else a
            done = start + ack_cpu
            sent_at = done + send_cpu
            if (
                sent_at >= limit_t
                or rec_status[acked] != IN_FLIGHT
                or remaining[j] <= 0
                or (len(arrivals) > 1 and arrivals[1][0] < done)
            ):
                break
            arrivals.popleft()
            done_acks += 1
            rec_status[acked] = ACKED
            rec_resolved[acked] = done
            if own[0] == acked:  # acks come in order: keep the watchdog's queue short
                own.popleft()
            if m == capacity:
                records.count = m
                records.grow()
                capacity = records.capacity
            p = choose_next[j]()
            rec_producer[m] = j
            rec_partition[m] = p
            rec_created[m] = done
            rec_sent[m] = sent_at
            remaining[j] -= 1
            if not remaining[j]:
                phase[j] = DONE  # as the general steps say when that call returns
            own.append(m)
            out.append((sent_at, n, c, m, p))
            n += 1
            m += 1
            free = sent_at
        # (in flight is unchanged: one acked, one produced; still blocked)
        return free, m, n, done_acks

    return window_bound


def _resolver(st: Clients):
    """``resolve(m, t)``: the ack of m is processed at t; the producer that may go on, or -1."""
    records, phase, in_flight, watch = st.records, st.phase, st.in_flight, st.watch
    rec_status, rec_resolved, rec_created, rec_producer = records.status, records.resolved, records.created, \
        records.producer
    ack_wait, may_resume = st.ack_wait, st.flow.may_resume

    def resolve(m: int, t: float) -> int:
        # acked only if processed before the deadline (see records.LATE); a late ack is ignored
        if rec_status[m] != IN_FLIGHT or t >= (rec_created[m] + ack_wait) * LATE:
            return -1
        rec_status[m] = ACKED
        rec_resolved[m] = t
        j = rec_producer[m]
        in_flight[j] -= 1
        queue = watch[j]
        if queue and queue[0] == m:  # keep the watchdog's queue to what is in flight
            queue.popleft()
            while queue and rec_status[queue[0]] != IN_FLIGHT:
                queue.popleft()
        state = phase[j]
        if state == BLOCKED or (state == DRAINING and may_resume(in_flight[j])):
            return j
        return -1

    return resolve


def _timer_firer(st: Clients):
    """``fire_timer(c, t, mine)``: the first-set timer or deadline of client c due at t;
    the producer to go on, or -1."""
    INF = math.inf
    records, phase, in_flight, watch = st.records, st.phase, st.in_flight, st.watch
    timer, timer_key, deadline, deadline_key = st.timer, st.timer_key, st.deadline, st.deadline_key
    client_timer, sleep_for, timed_out, set_order = st.client_timer, st.sleep_for, st.timed_out, st.set_order
    rec_status, rec_resolved, rec_created = records.status, records.resolved, records.created
    ack_wait, may_resume = st.ack_wait, st.flow.may_resume

    def fire_timer(c: int, t: float, mine: list) -> int:
        first = (INF,)
        for k in mine:
            if timer[k] == t and timer_key[k] < first:
                first, j, is_timer = timer_key[k], k, True
            if deadline[k] == t and deadline_key[k] < first:
                first, j, is_timer = deadline_key[k], k, False
        ready = -1
        if is_timer:
            timer[j] = INF
            if phase[j] == SLEEPING and not may_resume(in_flight[j]):
                timer[j] = t + sleep_for[j]
                timer_key[j] = (records.count - 0.5, set_order())
            else:
                ready = j
        else:  # the watchdog: every message of j whose deadline has come times out
            queue = watch[j]
            freed = False
            while queue:
                m = queue[0]
                if rec_status[m] != IN_FLIGHT:
                    queue.popleft()
                    continue
                expiry = rec_created[m] + ack_wait
                if expiry > t:
                    break
                queue.popleft()
                rec_status[m] = TIMED_OUT
                rec_resolved[m] = expiry
                timed_out[c] = True
                in_flight[j] -= 1
                freed = True
            if queue:
                deadline[j] = rec_created[queue[0]] + ack_wait
                deadline_key[j] = (queue[0], 0)
            else:
                deadline[j] = INF
            state = phase[j]
            if freed and (state == BLOCKED or (state == DRAINING and may_resume(in_flight[j]))):
                ready = j
        client_timer[c] = min([timer[k] for k in mine] + [deadline[k] for k in mine])
        return ready

    return fire_timer


def replace_items(queue: deque, items: list) -> None:
    """Put ``items`` in ``queue`` in place of what it held."""
    queue.clear()
    queue.extend(items)
