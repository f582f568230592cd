"""The client as an asyncio program: tasks and the event loop's iterations.

``sim.model.clients`` is the default client: one FIFO CPU on which every
produce() call and every ack is a job of its own, and each message leaves
the moment its produce() call ends. This module is the client for systems
that need more of what a real asyncio client does (it is chosen by
``sim.loops.common.begin_run``):

* ``client.loop = iterations``: the event loop runs *iterations*;
* ``producer.mode = burst``: every task is created at the producer's start,
  as ``asyncio.gather`` over N publishes does;
* ``client.cpu_cv > 0``: each message's produce() and ack cost is drawn
  (lognormal, means ``client.send_cpu`` and ``client.ack_cpu``).

**Producers and tasks** (``client.loop = iterations``). A producer's code
costs no CPU. When it may produce (at its start, when an ack or a timeout
frees room in its flow control, when its open-loop arrival or limiter poll is
due) it acts at the start of the loop's next iteration: one produce() call
there, whose message's latency clock and ``ack_wait`` deadline start then
(``created``). A sync producer's produce() awaits the publish, which runs in
that iteration. A nonblocking one creates a task and yields (the SDK's
``sleep(0)``), so it makes at most one produce() per iteration and its task's
first step, the publish, runs in the next iteration, as asyncio runs a new
task. A burst creates all its tasks at its start (``asyncio.gather``), their
publishes all in the first iteration.

**Iterations.** The loop sleeps until something is due: a task waiting for
its first step, a producer that may produce, an ack that has arrived. Then an
iteration starts at s. It costs ``client.iteration_cpu`` (the poll and the
turn over the ready callbacks, every iteration) plus ``client.wakeup_cpu`` if
the loop slept before s (epoll's sleep and the switch back; an iteration that
follows the previous one at once pays none; with ``client.wakeup_growth`` a
wake-up costs more the longer the loop slept, see :func:`wake_cost`), then, in
this order: the producers that may produce
act (in producer order); the publish of every task created before s and of
every sync produce() of this iteration (``send_cpu`` each, in creation
order); every ack that arrived by s is read (``ack_cpu`` each, in arrival
order; an ack resolves its message when its processing ends, before the
deadline or not at all). Every publish of the iteration leaves in one write
at its end e (their ``sent`` time). What it made ready (tasks it created,
producers its acks or timers freed) acts in the next iteration, which starts
at e if anything is due by then: asyncio runs callbacks made ready during an
iteration in the next one.

**One job at a time** (``client.loop = per_message``, for bursts and drawn
costs): the CPU takes jobs one at a time in the order they became ready (at
one instant: what a finished job set off, then arriving acks, then timers), a
publish leaves when its job ends, and a producer other than a burst waits for
its produce() call to return before the next one; this is the default
client's model, with tasks.

Interface (what the loops use, as for ``sim.model.clients``):
``advance(c, horizon, now)`` runs client c's events before ``horizon`` (and
any at or before ``now``) and returns the time of its next own event; a write
at or after ``horizon`` is held until a later call, since the uplink takes
each window's messages in time order. ``inbox[c]`` takes acks as (arrival, m)
in arrival order, ``outgoing[c]`` gives ``records.Sent`` tuples in order.
"""

from __future__ import annotations

import math
from collections import deque

from .flow import policy_for
from .records import ACKED, IN_FLIGHT, LATE, MESSAGE, TIMED_OUT, renumbered
from .system import UNBOUNDED, System

INF = math.inf

# producer phases
TIMER, BLOCKED, SLEEPING, DRAINING, ACTIVE, SENDING, DONE = range(7)  # ACTIVE: acts at the next iteration
# events on a client's CPU
ACK, WRITE = 0, 1


def uses_aio_client(system: System) -> bool:
    """Does this system need the asyncio client rather than the default one?"""
    cfg = system.config
    return (cfg.client.loop == "iterations" or cfg.producer.mode == "burst" or cfg.client.cpu_cv > 0
            or cfg.client.gc_messages is not None)


class Collector:
    """A client process's cyclic garbage collector, CPython's rule counted in messages.

    CPython counts the tracked objects it allocated minus those it freed (never below
    zero) and runs a young collection when the count passes its first threshold; every
    ``full_every`` young collections (10 x 10 by default) it runs a full one, which walks
    every object the process holds and stops the event loop meanwhile. Here the count
    is in messages: +1 when a message is created (its task, coroutine and future), -1
    when it stops being in flight (acked or timed out), never below zero, and a young
    collection when it reaches ``client.gc_messages``. A full collection costs
    ``client.gc_pause`` + ``client.gc_message_cpu`` x the messages in flight at the
    client, and runs in the publish of the message whose creation set it off.

    So a burst, whose N creations come before any ack, runs N // (gc_messages x
    full_every) full collections, ever longer; a steady flow runs one only as often as
    the messages in flight rise ``gc_messages`` above their lowest since the last young
    collection, and a sync producer (one in flight) never does unless ``gc_messages`` is 1.
    """

    __slots__ = ("young", "full_every", "pause", "per_message", "count", "young_runs", "full_runs", "cpu")

    def __init__(self, client):
        self.young = client.gc_messages
        self.full_every = client.gc_full_every
        self.pause = client.gc_pause
        self.per_message = client.gc_message_cpu
        self.count = 0  # net messages made since the last young collection
        self.young_runs = 0  # young collections since the last full one
        self.full_runs = 0
        self.cpu = 0.0  # CPU of every full collection so far

    def made(self, alive: int) -> float:
        """A message was created, with ``alive`` messages (itself included) in flight at the
        client: the CPU of the full collection it sets off, or 0."""
        n = self.count + 1
        if n < self.young:
            self.count = n
            return 0.0
        self.count = 0
        k = self.young_runs + 1
        if k < self.full_every:
            self.young_runs = k
            return 0.0
        self.young_runs = 0
        self.full_runs += 1
        cost = self.pause + self.per_message * alive
        self.cpu += cost
        return cost

    def freed(self) -> None:
        """A message stopped being in flight (acked or timed out)."""
        if self.count > 0:
            self.count -= 1


def collected(collectors: list[Collector]) -> tuple[int, float]:
    """What the clients' collectors did in a run: (full collections, their CPU seconds)."""
    return sum(c.full_runs for c in collectors), sum(c.cpu for c in collectors)


def collectors(system: System) -> list[Collector] | None:
    """One collector per client process, or None without ``client.gc_messages``."""
    client = system.config.client
    if client.gc_messages is None:
        return None
    return [Collector(client) for _ in range(system.clients)]


def wake_cost(s: float, last_end: float, wakeup: float, growth: float, cap: float) -> float:
    """CPU of the wake-up that starts an iteration at ``s`` when the loop's last iteration
    ended at ``last_end``: none if it did not sleep (``s <= last_end``), else
    ``min(wakeup + growth x slept, cap)``, where a loop that has not run yet has slept
    since the run began (time 0). An idle process wakes to cold caches and a core that
    has to be woken too, so its first iteration costs more the longer it idled: nats-py
    spends 99-104 us of CPU per sync message at 0 ms and 490-550 us at 20 ms RTT."""
    if s <= last_end:
        return 0.0
    if not growth:
        return wakeup
    cost = wakeup + growth * (s - (last_end if last_end > 0.0 else 0.0))
    return cost if cost < cap else cap


def aio_client_side(system: System, streams, records):
    """Build the clients; return ``(advance, clients)`` as ``clients.client_side`` does."""
    clients = AioClients(system, streams, records)
    return clients.advance, clients


class AioClients:
    """Every client's event loop and producers (lists by client c and producer j)."""

    def __init__(self, system: System, streams, records):
        cfg = system.config
        self.records = records
        n_clients = system.clients
        self.n_producers = n_producers = system.producers
        self.client_of = [system.client_of(j) for j in range(n_producers)]
        self.producers_of = [[j for j in range(n_producers) if self.client_of[j] == c] for c in range(n_clients)]
        client = cfg.client
        self.send_cpu, self.ack_cpu, self.wakeup = client.send_cpu, client.ack_cpu, client.wakeup_cpu
        self.growth = client.wakeup_growth
        self.iteration_cpu = client.iteration_cpu
        self.wake_cap = INF if client.wakeup_max is None else client.wakeup_max
        self.batched = client.loop == "iterations"
        self.ack_wait = cfg.producer.ack_wait
        self.end = INF if cfg.run.duration is None else cfg.run.duration
        self.flow = flow = policy_for(system)
        self.open_loop = cfg.producer.rate is not None
        self.burst = cfg.producer.mode == "burst"
        self.sync = cfg.producer.mode == "sync"  # produce() awaits the publish (no task)
        # shared cores (sim.model.hosts), set by the hosts loop: ask(c, t) when client c's
        # work (an iteration or a job) wants a core from t; until granted() it decides nothing more
        self.ask = None
        self.pooled = [False] * n_clients
        self.waiting = [False] * n_clients
        self.plan: list = [None] * n_clients
        self.costs = [c.__next__ for c in streams.client_cpu] if streams.client_cpu is not None else None
        self.collectors = collectors(system)
        self.cost_of: dict[int, tuple[float, float]] = {}  # drawn (send, ack) of messages not yet done

        # what the loops read
        self.inbox = [deque() for _ in range(n_clients)]  # (arrival, m)
        self.outgoing = [deque() for _ in range(n_clients)]  # records.Sent tuples
        self.cpu_busy = [0.0] * n_clients
        self.cpu_free = [0.0] * n_clients
        self.timed_out = [False] * n_clients
        messages = cfg.producer.messages
        self.remaining = [UNBOUNDED if messages is None else messages] * n_producers

        # each client's loop
        self.cpu = [deque() for _ in range(n_clients)]  # (time, ACK, m) / (time, WRITE, [m...]) in time order
        self.ready = [deque() for _ in range(n_clients)]  # tasks waiting for their first step
        self.ready_at = [-INF] * n_clients  # when the last of them was created
        self.last_end = [-INF] * n_clients  # when the loop's last iteration (or job) ended
        self.jobs = [deque() for _ in range(n_clients)]  # per_message: (kind, m) ready, in order
        self.connection_count = [0] * n_clients
        self.seq = [n_producers] * n_clients  # the order timers are set in (a message's deadline at its creation)

        # producers
        self.in_flight = [0] * n_producers
        self.phase = [TIMER] * n_producers
        self.timer = list(streams.start_times)  # start, open-loop arrival or limiter poll (INF: none)
        self.timer_key = list(range(n_producers))
        self.deadline = [INF] * n_producers  # the watchdog: the oldest deadline
        self.deadline_key = [0] * n_producers
        self.watch = [deque() for _ in range(n_producers)]  # (m, key) in creation order
        self.sleep_for = [0.0] * n_producers
        self.gap_next = [g.__next__ if g is not None else None for g in streams.arrival_gaps]
        self.choose_next = [p.__next__ for p in streams.partitions]
        self.next_arrival = [0.0] * n_producers
        if self.open_loop:
            for j in range(n_producers):
                self.next_arrival[j] = self.timer[j] + self.gap_next[j]()

    # -- what the loops call ------------------------------------------------------
    def live(self) -> list[int]:
        status = self.records.status
        ids = [m for queue in self.ready for m in queue]
        ids += [m for queue in self.inbox for _, m in queue]
        ids += [entry[MESSAGE] for queue in self.outgoing for entry in queue]
        for queue in self.cpu:
            for _, kind, x in queue:
                if kind == ACK:
                    ids.append(x)
                else:
                    ids.extend(x)
        ids += [m for queue in self.jobs for _, _, m in queue]
        ids += [m for queue in self.watch for m, _ in queue if status[m] == IN_FLIGHT]
        ids += list(self.cost_of)
        return ids

    def renumber(self, mapping) -> None:
        def new(m):
            return int(mapping[m])

        for queue in self.ready:
            _replace(queue, [new(m) for m in queue])
        for queue in self.inbox:
            _replace(queue, [(t, new(m)) for t, m in queue])
        for queue in self.outgoing:
            _replace(queue, [renumbered(e, mapping) for e in queue])
        for queue in self.cpu:
            _replace(queue, [(t, k, new(x) if k == ACK else [new(m) for m in x]) for t, k, x in queue])
        for queue in self.jobs:
            _replace(queue, [(t, k, new(m)) for t, k, m in queue])
        for queue in self.watch:
            _replace(queue, [(new(m), key) for m, key in queue if mapping[m] >= 0])
        self.cost_of = {new(m): cost for m, cost in self.cost_of.items() if mapping[m] >= 0}

    def advance(self, c: int, horizon: float, now: float) -> float:
        """Client c's events before ``horizon`` (and at or before ``now``), in time order;
        returns the time of its next one. At one instant: the CPU's events, then arriving
        acks (one job at a time only: there they queue for the CPU), then the timers (in
        the order they were set), then the loop starts its next iteration."""
        if horizon > self.end:
            horizon = self.end
        if now >= self.end:
            now = -INF
        cpu, inbox, jobs, batched = self.cpu[c], self.inbox[c], self.jobs[c], self.batched
        waiting = self.waiting
        while True:
            if not cpu and jobs and not waiting[c]:
                self._job(c)
            if waiting[c]:  # its CPU work waits for a core (shared cores: granted() says when)
                self._while_waiting(c, now)
                if waiting[c]:
                    return self._next_held(c)
                continue
            t_timer, who = self._next_timer(c)
            t_cpu = cpu[0][0] if cpu else INF
            t_ack = inbox[0][0] if inbox and not batched else INF
            s = self._next_start(c) if batched and not cpu else INF
            t = min(t_cpu, t_ack, t_timer, s)
            if t >= horizon and t > now:
                return t
            if t == t_cpu:
                self._cpu_event(c, cpu.popleft())
            elif t == t_ack:
                jobs.append((t, ACK, inbox.popleft()[1]))
            elif t == t_timer:
                self._fire_timer(c, t, who)
            else:
                self._iteration(c, s)

    def _next_held(self, c: int) -> float:
        """While client c's work waits for a core: its next timer, or (one job at a time) ack."""
        t_timer, _ = self._next_timer(c)
        inbox = self.inbox[c]
        if inbox and not self.batched and inbox[0][0] < t_timer:
            return inbox[0][0]
        return t_timer

    def _while_waiting(self, c: int, now: float) -> None:
        """Client c's work waits for a core (granted no earlier than ``now``, and it ends later):
        its timers and (one job at a time) arriving acks that the clock has reached come
        first. They fire meanwhile, as a process's watchdog and socket do."""
        inbox, batched = self.inbox[c], self.batched
        while self.waiting[c]:
            t_timer, who = self._next_timer(c)
            t_ack = inbox[0][0] if inbox and not batched else INF
            if t_ack <= t_timer:
                if t_ack > now:
                    return
                self.jobs[c].append((t_ack, ACK, inbox.popleft()[1]))
            else:
                if t_timer > now:
                    return
                self._fire_timer(c, t_timer, who)

    # -- the loop -------------------------------------------------------------------
    def _next_start(self, c: int) -> float:
        """When the loop can next start an iteration: something is due by then."""
        inbox = self.inbox[c]
        s = INF
        if self.ready[c] or any(self.phase[j] == ACTIVE for j in self.producers_of[c]):
            s = self.ready_at[c]
        if inbox and inbox[0][0] < s:
            s = inbox[0][0]
        last = self.last_end[c]
        return last if last > s else s

    def _iteration(self, c: int, s: float) -> None:
        # the iteration's own CPU: the wake-up if it slept, and the poll and turn every iteration pays
        wake = wake_cost(s, self.last_end[c], self.wakeup, self.growth, self.wake_cap) + self.iteration_cpu
        ready, inbox = self.ready[c], self.inbox[c]
        batch = list(ready)  # tasks created before s: their first step
        ready.clear()
        for j in self.producers_of[c]:  # the producers that may produce: one produce() each, at s
            if self.phase[j] == ACTIVE:
                m = self._create(c, j, s)
                if self.sync:
                    batch.append(m)  # produce() awaits its publish: now
                else:
                    ready.append(m)  # a task: its publish in the next iteration
                    self.ready_at[c] = s
                if self._after_produce(c, j, s, go_on=False):
                    self._produce(c, j, s)  # may it go on in the next iteration?
        if self.pooled[c] and self._needs_core(c, s, wake, batch):
            # shared cores: the iteration runs once its host grants it a core, and reads the acks
            # that have arrived by then (granted())
            self.plan[c] = (wake, batch)
            self.waiting[c] = True
            self.ask(c, s)
            return
        self._lay_out(c, s, wake, batch, self._arrived(c, s))

    def _arrived(self, c: int, t: float) -> list:
        """The acks of client c that have arrived by t, taken from its inbox."""
        inbox, acks = self.inbox[c], []
        while inbox and inbox[0][0] <= t:
            acks.append(inbox.popleft()[1])
        return acks

    def _needs_core(self, c: int, s: float, wake: float, batch: list) -> bool:
        """Does the iteration starting at s have CPU work, as known at s (its wake-up, its
        publishes, the acks in by s)? One of no CPU time runs at s without a core."""
        if wake > 0 or any(self._send_cost(m) > 0 for m in batch):
            return True
        for t, m in self.inbox[c]:
            if t > s:
                return False
            if self._ack_cost(m) > 0:
                return True
        return False

    def _lay_out(self, c: int, s: float, wake: float, batch: list, acks: list) -> tuple[float, float]:
        """The iteration's work from s: the wake-up (``wake``, its CPU), the publishes, each ack;
        returns its end and its CPU seconds."""
        t = s
        busy = 0.0
        if wake:
            t += wake
            busy += wake
        for m in batch:
            cost = self._send_cost(m)
            t += cost
            busy += cost
        cpu = self.cpu[c]
        for m in acks:
            cost = self._ack_cost(m)
            t += cost
            busy += cost
            cpu.append((t, ACK, m))
        if batch:
            cpu.append((t, WRITE, batch))
        self.last_end[c] = t
        self.cpu_free[c] = t
        self.cpu_busy[c] += busy
        return t, busy

    def granted(self, c: int, start: float) -> tuple[float, float]:
        """Shared cores: client c's waiting work got a core at ``start``; returns when it ends
        and its CPU seconds. An iteration reads every ack that has arrived by ``start``: a
        process finds, when it runs, everything that reached its socket while it waited."""
        plan, self.plan[c] = self.plan[c], None
        self.waiting[c] = False
        if plan[0] is None:  # one job, fixed when it asked
            _, kind, m = plan
            cost = self._send_cost(m) if kind == WRITE else self._ack_cost(m)
            return self._place(c, start, kind, m, cost), cost
        wake, batch = plan
        return self._lay_out(c, start, wake, batch, self._arrived(c, start))

    def _job(self, c: int) -> None:
        """per_message: the idle CPU takes the job that became ready first."""
        ready, kind, m = self.jobs[c].popleft()
        last = self.last_end[c]
        s = last if last > ready else ready
        cost = self._send_cost(m) if kind == WRITE else self._ack_cost(m)
        if self.pooled[c] and cost > 0:  # shared cores: it runs once its host grants it a core
            self.plan[c] = (None, kind, m)
            self.waiting[c] = True
            self.ask(c, s)
            return
        self._place(c, s, kind, m, cost)

    def _place(self, c: int, s: float, kind: int, m: int, cost: float) -> float:
        event = (s + cost, WRITE, [m]) if kind == WRITE else (s + cost, ACK, m)
        self.cpu[c].append(event)
        self.last_end[c] = self.cpu_free[c] = event[0]
        self.cpu_busy[c] += cost
        return event[0]

    def _cpu_event(self, c: int, event) -> None:
        t, kind, x = event
        if kind == ACK:
            j = self._resolve(x, t)
            if j >= 0:
                self._produce(c, j, t)
            return
        records = self.records
        out, n = self.outgoing[c], self.connection_count[c]
        for m in x:
            records.sent[m] = t
            out.append((t, n, c, m, records.partition[m]))
            n += 1
        self.connection_count[c] = n
        if not self.batched:  # produce() returns now
            j = records.producer[x[0]]
            if self.phase[j] == SENDING:
                self._after_produce(c, j, t)

    # -- producers --------------------------------------------------------------------
    def _create(self, c: int, j: int, t: float) -> int:
        records = self.records
        m = records.count
        if m == records.capacity:
            records.grow()
        records.count = m + 1
        records.producer[m] = j
        records.partition[m] = self.choose_next[j]()
        if self.open_loop:
            records.intended[m] = self.next_arrival[j]
            self.next_arrival[j] += self.gap_next[j]()
        records.created[m] = t
        if self.costs is not None:
            self.cost_of[m] = self.costs[j]()
        self.remaining[j] -= 1
        self.in_flight[j] += 1
        if self.collectors is not None:
            in_flight = self.in_flight
            pause = self.collectors[c].made(sum(in_flight[i] for i in self.producers_of[c]))
            if pause:  # a full collection: it runs in this message's publish
                send, ack = self.cost_of.get(m, (self.send_cpu, self.ack_cpu))
                self.cost_of[m] = (send + pause, ack)
        key = self.seq[c]
        self.seq[c] = key + 1
        self.watch[j].append((m, key))
        if self.deadline[j] == INF:
            self.deadline[j] = t + self.ack_wait
            self.deadline_key[j] = key
        if not self.batched:
            self.jobs[c].append((t, WRITE, m))
        elif self.burst:
            self.ready[c].append(m)
            if t > self.ready_at[c]:
                self.ready_at[c] = t
        return m

    def _produce(self, c: int, j: int, t: float) -> None:
        """Producer j may go on at t: produce() as many times as its flow control allows."""
        phase, remaining, in_flight = self.phase, self.remaining, self.in_flight
        if self.burst:
            while remaining[j] > 0:
                self._create(c, j, t)
            phase[j] = DONE
            return
        cap = self.flow.cap
        while True:
            if remaining[j] <= 0:
                phase[j] = DONE
                return
            if in_flight[j] >= cap:
                phase[j] = BLOCKED
                return
            if self.open_loop and self.next_arrival[j] > t:
                phase[j] = TIMER
                self._set_timer(c, j, self.next_arrival[j])
                return
            if self.batched:  # it acts at the start of the loop's next iteration
                phase[j] = ACTIVE
                if t > self.ready_at[c]:
                    self.ready_at[c] = t
                return
            self._create(c, j, t)
            phase[j] = SENDING  # produce() returns when its job ends
            return

    def _after_produce(self, c: int, j: int, t: float, go_on: bool = True) -> bool:
        """The SDK's check right after a produce(): pause or go on (True)."""
        pause = self.flow.pause
        wait = None if pause is None else pause(self.in_flight[j])
        if wait is not None:
            if wait > 0:
                self.phase[j] = SLEEPING
                self.sleep_for[j] = wait
                self._set_timer(c, j, t + wait)
            else:
                self.phase[j] = DRAINING
            return False
        if go_on:
            self._produce(c, j, t)
        return True

    def _set_timer(self, c: int, j: int, t: float) -> None:
        self.timer[j] = t
        self.timer_key[j] = self.seq[c]
        self.seq[c] += 1

    def _next_timer(self, c: int):
        best, key, who = INF, None, -1
        for j in self.producers_of[c]:
            t = self.timer[j]
            if t < best or (t == best and t < INF and self.timer_key[j] < key):
                best, key, who = t, self.timer_key[j], j
            t = self.deadline[j]
            if t < best or (t == best and t < INF and self.deadline_key[j] < key):
                best, key, who = t, self.deadline_key[j], -2 - j
        return best, who

    def _fire_timer(self, c: int, t: float, who: int) -> None:
        if who >= 0:  # a producer's timer: its start, an open-loop arrival or a limiter poll
            j = who
            self.timer[j] = INF
            if self.phase[j] == SLEEPING and not self.flow.may_resume(self.in_flight[j]):
                self._set_timer(c, j, t + self.sleep_for[j])
                return
            self._produce(c, j, t)
            return
        j = -2 - who  # the watchdog: every message of j whose deadline has come times out
        records = self.records
        status, created = records.status, records.created
        queue = self.watch[j]
        freed = False
        while queue:
            m, _ = queue[0]
            if status[m] != IN_FLIGHT:
                queue.popleft()
                continue
            expiry = created[m] + self.ack_wait
            if expiry > t:
                break
            queue.popleft()
            status[m] = TIMED_OUT
            records.resolved[m] = expiry
            self.timed_out[c] = True
            self.in_flight[j] -= 1
            if self.collectors is not None:
                self.collectors[c].freed()
            freed = True
        if queue:
            m, key = queue[0]
            self.deadline[j] = created[m] + self.ack_wait
            self.deadline_key[j] = key
        else:
            self.deadline[j] = INF
        if freed:
            self._resumed(c, j, t)

    def _resolve(self, m: int, t: float) -> int:
        """The ack of m is processed at t; the producer (>= 0) if it was waiting on it."""
        records = self.records
        self.cost_of.pop(m, None)
        if records.status[m] != IN_FLIGHT or t >= (records.created[m] + self.ack_wait) * LATE:
            return -1
        records.status[m] = ACKED
        records.resolved[m] = t
        j = records.producer[m]
        self.in_flight[j] -= 1
        if self.collectors is not None:
            self.collectors[self.client_of[j]].freed()
        queue = self.watch[j]
        while queue and records.status[queue[0][0]] != IN_FLIGHT:
            queue.popleft()
        phase = self.phase[j]
        if phase == BLOCKED or (phase == DRAINING and self.flow.may_resume(self.in_flight[j])):
            return j
        return -1

    def _resumed(self, c: int, j: int, t: float) -> None:
        phase = self.phase[j]
        if phase == BLOCKED or (phase == DRAINING and self.flow.may_resume(self.in_flight[j])):
            self._produce(c, j, t)

    # -- costs ------------------------------------------------------------------------
    def _send_cost(self, m: int) -> float:
        cost_of = self.cost_of  # drawn costs, or a full collection's in its publish
        if not cost_of:
            return self.send_cpu
        cost = cost_of.get(m)
        return self.send_cpu if cost is None else cost[0]

    def _ack_cost(self, m: int) -> float:
        if self.costs is None:
            return self.ack_cpu
        cost = self.cost_of.get(m)
        return self.ack_cpu if cost is None else cost[1]


def _replace(queue: deque, items: list) -> None:
    queue.clear()
    queue.extend(items)
