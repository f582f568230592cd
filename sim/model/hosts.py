"""Hosts: processes that share a machine's cores.

Each client process is one asyncio event loop, so it runs on at most one core
at a time; the broker's read loops and partition stages are each serial too.
When several of them live on one host with fewer cores than there are of
them, they take turns on the cores. ``client.host_cores`` gives each client
host its cores (``client.hosts`` hosts, client c on host c mod hosts),
``broker.cores`` the broker's, and ``broker.colocated`` puts the broker on
client host 1, as on loopback.

The cores of a host are a :class:`CorePool`: k identical servers taken first
come, first served (per job; within a scheduler's time slice with
``client.host_slice``, below). A serial station (a client's CPU, a read loop, a
partition stage, a relay) asks the pool for a core when it has work (it is
free and something has reached it), and holds the core for its job's CPU
time. The pool grants requests in the order they were made, so a request at
t is granted at ``max(t, the earliest time a core is free)`` (Kiefer and
Wolfowitz's recursion for k servers). Requests made at the same instant go in
a fixed order: client CPUs (by client), then read loops (by connection), then
partition stages (by partition), then a relay's pass (``sim.model.relay``, on
the broker's pool). A core is granted at T once everything else at T has
happened, so what arrives at T is in; a job of no CPU time needs no core.

The work is decided at the grant, not at the request: a real process finds,
when the OS gives it a core, everything that reached its socket or queue
while it waited, so a busy machine makes bigger batches. Measured on this
machine (``measurements/nats-loopback.csv``, ``nats-loopback-proxy.csv``),
nats-server's CPU per message falls from 27-29 us with one producer to 12-13
us with four, the delay proxy's from 25-30 to 11-12 us, and four producers on
two cores reach 31,500 msg/s, where a partition stage asking a core for each
message gave 14,000-16,000 msg/s and a p50 two to three times too long (its
one-message jobs queued behind long client iterations). At its grant at T:

* a partition stage serves every message waiting at it by T, one after the
  other from T (a service time drawn for each, in arrival order), each stored
  at its own end: one request per such pass (with a core of its own it
  serves them one by one, which is the same timeline);
* a read loop in passes (``sim.model.broker_io``) reads what has arrived by
  T, up to ``broker.read_bytes``; one reading a message at a time reads the
  message it asked with;
* a client's event-loop iteration (``sim.model.aioclient``) reads every ack
  that arrived by T; its wake-up's cost, its producers' calls and its tasks
  are those of the moment it asked;
* the relay (``sim.model.relay``) reads the chunks waiting by T;
* the default client (below) has one job per request, one produce() or one
  ack, fixed when it asks.

While a client's work waits for its core, its timers (deadlines, limiter
polls, open-loop arrivals) still fire at their times.

Why a pool of k servers rather than processor sharing: the OS scheduler does
time-slice runnable processes, but its slices (Linux EEVDF: 0.75 ms x (1 +
log2 cores), 1.5 ms on 2 cores; CFS had 0.75-3 ms) are 10 to 100 times the
10-100 us of one job of a client's event loop or a broker stage. A woken
process almost always runs its job to the end before another takes its core,
which is what a first-come first-served pool does; processor sharing is the
limit of slices much shorter than jobs. Both are work-conserving, so the
throughput bound is the same: at most cores / (CPU per message) through the
processes sharing them.

First come, first served per job *within a slice* (``client.host_slice``,
:class:`SlicedCorePool`). What the slice does decide is who runs next when a
process's job ends and it has another at once (the next iteration of a busy
loop, the next pass of a read loop, a partition or relay with work waiting):
a real scheduler lets a process that has not blocked keep its core until its
slice runs out, and only then puts it behind the processes waiting. So a
station granted a core at G keeps it for each job it asks for at the very
instant its previous one ends, while that instant is less than
``host_slice`` after G; otherwise it queues like any request, and its next
grant starts a new run. Meanwhile the others' work piles up (acks wait in
their sockets, messages at a partition), and they find big batches when they
run. Measured here (``measurements/nats-loopback.csv``, window 100, 1.25 ms
RTT, 2 cores for the producers, nats-server and the delay proxy): 4
producers reach 31,500 msg/s with a p50 of 7.9 ms and a p99 of 34 ms, 2
producers 28,000, 4.3 and 16 ms, where every job queueing gave about 25,000
msg/s with a p50 of 2.1 ms and a p99 of 2.3 ms (no station ever waited long,
so no window ever filled). ``host_slice`` = 0, the default, is every job
queueing. The slice only reorders who runs: no core idles while a station
waits, so the bounds above still hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from heapq import heappop, heappush, heapreplace

from .system import System

# who asks a pool for a core: the first field of a request's key (the order at one instant)
CLIENT_CPU, READ_LOOP, PARTITION = 0, 1, 2
RELAY = 3  # the relay on the path (sim.model.relay), on the broker's pool


class CorePool:
    """``cores`` identical cores, granted first come, first served, the work decided at the grant.

    ``request(t, key)`` records that the station ``key`` has work from t and wants a core;
    ``grant_due(t, settle)`` grants, at t, the requests made by t while a core is free at t
    (earlier requests first, then in key order): ``settle(key, t)`` decides the job then and
    returns ``(end, cost)``, and the core is busy until ``end``. :meth:`next_grant` says when
    the next grant can happen. The loop calls ``grant_due`` once everything else at t has
    happened, so the station's job takes in whatever reached it by t."""

    __slots__ = ("cores", "free", "pending", "busy", "jobs")

    def __init__(self, cores: int):
        self.cores = cores
        self.free = [0.0] * cores  # when each core is next free (a heap)
        self.pending: list = []  # (t, key) not yet granted (a heap)
        self.busy = 0.0  # CPU seconds granted
        self.jobs = 0

    def request(self, t: float, key: tuple) -> None:
        heappush(self.pending, (t, key))

    def next_grant(self) -> float:
        """When the head request can be granted: once it is made and a core is free."""
        if not self.pending:
            return math.inf
        t, free = self.pending[0][0], self.free[0]
        return t if t >= free else free

    def grant(self, t: float, cost: float) -> float:
        """A job asking at t (after every earlier request), its cost known: when it is done."""
        free = self.free[0]
        start = t if t >= free else free
        done = start + cost
        heapreplace(self.free, done)
        self.busy += cost
        self.jobs += 1
        return done

    def grant_due(self, t: float, settle) -> None:
        """Grant at t the requests made by t while a core is free at t, in order: the station
        decides its job at the grant (``settle(key, t)`` returns when it ends and its cost)."""
        pending, free = self.pending, self.free
        # only the cores free as the grant starts: one that a job of no CPU time frees at t is
        # granted again once what that job set off at t has happened (the loop calls again)
        idle = sum(1 for f in free if f <= t)
        while idle and pending and pending[0][0] <= t:
            idle -= 1
            key = heappop(pending)[1]
            end, cost = settle(key, t)
            heapreplace(free, end)
            self.busy += cost
            self.jobs += 1

    def last_free(self) -> float:
        return max(self.free)


class SlicedCorePool(CorePool):
    """A :class:`CorePool` with the OS scheduler's time slice (``client.host_slice`` > 0).

    A station granted a core at G starts a *run*. When a job of the run ends at T and the
    station asks again at that same T (it has its next job at once), it keeps the core without
    queueing if T - G < ``slice``: that request is granted at T ahead of every request waiting
    (still once everything else at T has happened, as any grant). Otherwise (the slice is used
    up, or it asks later than T) its request queues first come first served like any other, and
    the grant that serves it starts a new run."""

    __slots__ = ("slice", "run_start", "ended", "kept")

    def __init__(self, cores: int, slice_: float):
        super().__init__(cores)
        self.slice = slice_
        self.run_start: dict = {}  # key -> when its run was granted
        self.ended: dict = {}  # key -> when its last job granted here ends
        self.kept: list = []  # (t, key): requests that keep their core at t (a heap)

    def request(self, t: float, key: tuple) -> None:
        if self.ended.get(key) == t and t - self.run_start[key] < self.slice:
            heappush(self.kept, (t, key))
        else:
            heappush(self.pending, (t, key))

    def next_grant(self) -> float:
        soonest = CorePool.next_grant(self)
        if self.kept and self.kept[0][0] < soonest:
            return self.kept[0][0]
        return soonest

    def grant(self, t: float, cost: float) -> float:
        raise NotImplementedError("a pool with a time slice grants at the grant (grant_due)")

    def grant_due(self, t: float, settle) -> None:
        pending, free, kept, ended = self.pending, self.free, self.kept, self.ended
        idle = sum(1 for f in free if f <= t)
        while kept and kept[0][0] <= t:  # the runs that go on: each on the core it just freed
            key = heappop(kept)[1]
            if not idle:  # (its core went to another at this instant: it waits as any request)
                heappush(pending, (t, key))
                continue
            idle -= 1
            end, cost = settle(key, t)
            ended[key] = end
            heapreplace(free, end)
            self.busy += cost
            self.jobs += 1
        while idle and pending and pending[0][0] <= t:
            idle -= 1
            key = heappop(pending)[1]
            end, cost = settle(key, t)
            self.run_start[key] = t
            ended[key] = end
            heapreplace(free, end)
            self.busy += cost
            self.jobs += 1


def core_pool(cores: int, slice_: float) -> CorePool:
    """The pool of ``cores`` cores: with a time slice (``client.host_slice`` > 0) or without."""
    return SlicedCorePool(cores, slice_) if slice_ > 0 else CorePool(cores)


@dataclass(frozen=True)
class Layout:
    """Which pool of cores each client and the broker draw from (None: a core of its own)."""

    cores: tuple[int, ...]  # cores of each pool
    users: tuple[int, ...]  # serial stations of each pool that need CPU (a job of no CPU time needs no core)
    client_pool: tuple[int | None, ...]  # by client
    broker_pool: int | None  # read loops and partition stages
    names: tuple[str, ...]  # each pool's name, e.g. "host[1]", "broker"

    @property
    def binding(self) -> bool:
        """Can a pool ever make a job wait? Only with fewer cores than stations needing CPU on it."""
        return any(users > cores for users, cores in zip(self.users, self.cores))


def layout(system: System) -> Layout:
    """The pools of ``system``: one per client host with ``client.host_cores``, and the broker's
    (its own with ``broker.cores``, client host 1's with ``broker.colocated``)."""
    cfg = system.config
    cores: list[int] = []
    names: list[str] = []
    client_pool: list[int | None] = [None] * system.clients
    host_cores, hosts = cfg.client.host_cores, cfg.client.hosts
    client_cost = cfg.client.send_cpu + cfg.client.ack_cpu
    users: list[int] = []
    if host_cores is not None:
        for h in range(hosts):
            cores.append(host_cores)
            names.append(f"host[{h + 1}]")
            users.append(0)
        for c in range(system.clients):
            client_pool[c] = c % hosts
            if client_cost > 0:
                users[c % hosts] += 1
    broker_pool = None
    if cfg.broker.colocated and host_cores is not None:
        broker_pool = 0
    elif cfg.broker.cores is not None:
        cores.append(cfg.broker.cores)
        names.append("broker")
        users.append(0)
        broker_pool = len(cores) - 1
    if broker_pool is not None:
        b = cfg.broker
        reads = b.read_cpu > 0 or (system.read_passes and b.wakeup_cpu > 0)
        users[broker_pool] += (system.clients if reads else 0) + (
            system.partitions if b.service_time > 0 else 0)
        if cfg.link.relay and (cfg.link.relay_cpu > 0 or cfg.link.relay_wakeup_cpu > 0):  # on the broker's cores
            users[broker_pool] += 1
    return Layout(tuple(cores), tuple(users), tuple(client_pool), broker_pool, tuple(names))


def shares_cores(system: System) -> bool:
    """Does ``system`` have processes that take turns on too few cores (see :class:`Layout`)?"""
    cfg = system.config
    if cfg.client.host_cores is None and cfg.broker.cores is None:
        return False
    return layout(system).binding


def unsupported(system: System) -> str | None:
    """What in ``system`` the hosts loop (and so shared cores) does not take yet, or None."""
    if system.segmented:
        return "a TCP window in bytes (messages longer than link.mss_bytes under a finite link.window_bytes)"
    return None


def check_supported(system: System) -> None:
    """Refuse, in one line, a system whose cores bind together with a mechanism the hosts
    loop does not take yet (:func:`unsupported`), or a relay with one (``sim.model.relay``)."""
    from ..errors import ConfigError
    from .relay import check_supported as check_relay

    check_relay(system)
    if not shares_cores(system):
        return
    reason = unsupported(system)
    if reason is not None:
        cfg = system.config
        key, value = ("client.host_cores", cfg.client.host_cores) if cfg.client.host_cores is not None else (
            "broker.cores", cfg.broker.cores)
        raise ConfigError(key, value, f"shared cores do not yet combine with {reason}")


def pool_busy(lay: Layout, busy: list[float]) -> dict[str, list[float]]:
    """The records' busy entries of binding pools (seconds of CPU per core, so that busy /
    span is the mean use of its cores): ``host_cpu`` for client hosts (co-located or not),
    ``broker_cpu`` for the broker's own cores. Empty when no pool binds, as then nothing
    waits for a core and the run is today's model."""
    if not lay.binding:
        return {}
    out: dict[str, list[float]] = {}
    for name, cores, seconds in zip(lay.names, lay.cores, busy):
        out.setdefault("broker_cpu" if name == "broker" else "host_cpu", []).append(seconds / cores)
    return out


def pool_demands(system: System) -> list[tuple[str, float, int]]:
    """Each pool's name (``host_cpu[h]``, ``broker_cpu``), the CPU seconds it serves per message of
    the whole system, and how many cores it can use at once (no more than the stations on it:
    each runs on one core at a time).

    Clients are symmetric (each carries 1/clients of the messages); every message passes
    one read loop (at its least cost: full reads, see ``System.read_cost_per_message``)
    and one partition stage. A relay on the path (``link.relay``, on the broker's pool)
    spends between 0 and 2 x (``link.relay_wakeup_cpu`` + ``link.relay_cpu``) per message (one
    pass and one chunk each way when each carries one message, next to nothing when they carry
    many): the bound counts
    the optimistic 0, so that it stays a true upper bound on throughput (its process counts
    among the pool's users, which can only raise the usable cores). So the pools cap the
    throughput at min over pools of usable cores / demand (:func:`sim.analytic.core_ceiling`)."""
    cfg = system.config
    lay = layout(system)
    out = []
    client_cost = cfg.client.send_cpu + cfg.client.ack_cpu
    for i, (name, cores) in enumerate(zip(lay.names, lay.cores)):
        share = sum(1 for p in lay.client_pool if p == i) / system.clients
        demand = share * client_cost
        if lay.broker_pool == i:  # a read pass's wake-up spread over a full read's messages
            demand += system.read_cost_per_message() + cfg.broker.service_time
        usable = min(cores, lay.users[i]) if lay.users[i] else cores
        label = "broker_cpu" if name == "broker" else f"host_cpu[{name[5:-1]}]"
        out.append((label, demand, usable))
    return out


def core_capacities(system: System) -> dict[str, float]:
    """``sim.analytic.capacities``'s entries for shared cores: ``client_cpu`` as the client hosts'
    cores allow, ``host_cpu`` (the co-located host: clients and broker) and ``broker_cpu``
    (``broker.cores``), in messages/s of the whole system."""
    cfg = system.config
    lay = layout(system)
    caps: dict[str, float] = {}
    cpu = cfg.client.send_cpu + cfg.client.ack_cpu
    if cfg.client.host_cores is not None and cpu > 0:
        per_host = []
        for h in range(cfg.client.hosts):
            on = sum(1 for p in lay.client_pool if p == h)
            if on:
                per_host.append(min(cfg.client.host_cores, on) / (on / system.clients * cpu))
        caps["client_cpu"] = min(system.clients / cpu, *per_host)
    for label, demand, usable in pool_demands(system):
        if label == "broker_cpu" or (label == "host_cpu[1]" and lay.broker_pool == 0):
            key = "broker_cpu" if label == "broker_cpu" else "host_cpu"
            caps[key] = usable / demand if demand > 0 else math.inf
    return caps


# -- client processes on shared cores ------------------------------------------------------


def pooled_client_side(system: System, streams, records, ask):
    """The clients of ``system`` (``sim.model.clients``) with CPUs that draw from pools.

    ``ask(c, t)`` is called when client c's next CPU job wants a core from t;
    the caller grants it later and calls ``granted(c, start)``, which returns
    when the job ends and its cost. Each job is one produce() or one ack, fixed when
    it asks (the default client has nothing to gather at its grant). Until then the job
    waits at the head of the client's CPU queue, and the client decides nothing
    at or after the earliest moment it could end (``t + cost``): what happens next
    depends on when it does. A client whose entry of ``pools`` is None has a core of
    its own and ``ask`` is never called for it.

    Returns ``(advance, clients, granted)``; ``advance(c, horizon, now)`` is that of
    ``sim.model.clients`` except that it returns inf while its CPU waits for a core
    (``granted`` says when to wake it) and that jobs queued on a busy CPU learn their
    end only when they reach the head of the queue.
    """
    from .clients import Clients, _producer_steps, _resolver, _timer_firer

    clients = Clients(system, streams, records)
    pools = layout(system).client_pool
    waiting = [False] * system.clients
    asked = [0.0] * system.clients  # the cost of the job waiting for its core
    send_cpu, ack_cpu = clients.send_cpu, clients.ack_cpu
    jobs, cpu_free = clients.jobs, clients.cpu_free
    INF = math.inf
    SEND, ACK = 0, 1

    def begin(c: int, t: float, job: int, m: int, head: bool) -> None:
        """Job ``job`` of message m becomes the head of c's CPU queue at t: it asks for a core."""
        cost = send_cpu if job == SEND else ack_cpu
        queue = jobs[c]
        entry = (t + cost, job, m)
        if head:
            queue[0] = entry
        else:
            queue.append(entry)
        if cost > 0 and pools[c] is not None:
            waiting[c] = True
            asked[c] = cost
            ask(c, t)
        else:
            cpu_free[c] = t + cost

    def granted(c: int, start: float) -> tuple[float, float]:
        _, job, m = jobs[c][0]
        cost = asked[c]
        done = start + cost
        jobs[c][0] = (done, job, m)
        waiting[c] = False
        cpu_free[c] = done
        return done, cost

    steps = _producer_steps(clients, begin)
    advance = _pooled_advancer(clients, _resolver(clients), _timer_firer(clients), steps, begin, waiting)
    return advance, clients, granted


def _pooled_advancer(st, resolve, fire_timer, steps, begin, waiting):
    """``sim.model.clients._advancer`` for a CPU whose jobs wait for a core (see above)."""
    INF = math.inf
    SEND, ACK = 0, 1
    records, end = st.records, st.end
    jobs, inbox, producers_of, client_timer = st.jobs, st.inbox, st.producers_of, st.client_timer
    cpu_busy, connection_count = st.cpu_busy, st.connection_count
    send_cpu, ack_cpu = st.send_cpu, st.ack_cpu

    def advance(c: int, horizon: float, now: float) -> float:
        cpu, arrivals, mine = jobs[c], inbox[c], producers_of[c]
        if horizon > end:
            horizon = end
        if now >= end:
            now = -INF
        sends = acks = 0
        n = connection_count[c]
        m = records.count
        try:
            while True:
                t_cpu = cpu[0][0] if cpu else INF
                t_ack = arrivals[0][0] if arrivals else INF
                t_timer = client_timer[c]
                if waiting[c] and t_cpu <= t_ack and t_cpu <= t_timer:
                    # its job waits for a core: nothing from its earliest end on is known yet, but
                    # for acks and timers the clock has reached (the job ends after them)
                    t = t_ack if t_ack <= t_timer else t_timer
                    if t > now:
                        return t
                    t_cpu = INF
                if t_cpu <= t_ack and t_cpu <= t_timer:  # the CPU finishes a job
                    t = t_cpu
                    if t >= horizon and t > now:
                        return t
                    _, job, sent = cpu.popleft()
                    if cpu:  # the next job asks for a core now
                        begin(c, t, cpu[0][1], cpu[0][2], True)
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
                    if cpu:
                        cpu.append((INF, ACK, acked))
                        continue
                    if ack_cpu:
                        begin(c, t, ACK, acked, False)
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
                _, m, n, k = steps(c, t, sent, j, horizon, t, m, n)
                sends += k
        finally:
            records.count = m
            connection_count[c] = n
            cpu_busy[c] += sends * send_cpu + acks * ack_cpu

    return advance
