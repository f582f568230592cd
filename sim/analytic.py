"""Closed forms and fits the simulator must agree with, from the same configs.

Everything here reads a :class:`~sim.config.SimConfig` (through
:class:`~sim.model.system.System`) so that theory and simulation share one
meaning of every parameter.

* Round trips: :func:`round_trip`, :func:`sync_makespan`,
  :func:`window_makespan`.
* Flow-control, network and CPU ceilings: :func:`limiter_ceiling`,
  :func:`connection_rate`, :func:`mathis_rate`, :func:`core_ceiling`.
* The broker's read loops in passes: :func:`read_loop_rate`, :func:`pass_timeline`.
* The Universal Scalability Law: :func:`usl`, :func:`fit_usl`; the two-line
  bound it is compared with, :func:`fit_knee`.
* Mean Value Analysis: exact (:func:`mva`, :func:`mva_multiclass`) and
  Bard-Schweitzer's approximation (:func:`mva_schweitzer`) when the exact one
  would be too large; :func:`mva_for` picks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .config import SimConfig
from .model.system import System


def _system(config: SimConfig | System) -> System:
    return config if isinstance(config, System) else System(config)


# -- round trips ----------------------------------------------------------------


def capacities(config: SimConfig | System) -> dict[str, float]:
    """Messages/s each station can carry for the whole system (inf = no limit).

    The connection entry is the windows' ceiling at the base RTT; the
    producers' own flow control (sync, window, limiter) is not a station
    (see :func:`limiter_ceiling`, :func:`window_makespan`).
    """
    s = _system(config)
    cfg, rtt = s.config, s.config.link.rtt
    cpu = cfg.client.send_cpu + cfg.client.ack_cpu
    service = cfg.broker.service_time
    busiest = max(s.partition_shares)
    caps = {
        "client_cpu": s.clients / cpu if cpu else math.inf,
        "uplink": 1 / s.uplink_time if s.uplink_time else math.inf,
        # whole messages per RTT, or window / message bytes when the window counts bytes
        "connection": (s.clients * s.connection_messages / rtt
                       if s.connection_messages is not None and rtt > 0 else math.inf),
        "read_loop": s.clients / read if (read := s.read_cost_per_message()) else math.inf,
        "partition": 1 / (service * busiest) if service else math.inf,
        "downlink": 1 / s.downlink_time if s.downlink_time else math.inf,
    }
    if cfg.client.host_cores is not None or cfg.broker.cores is not None:  # shared cores: sim.model.hosts
        from .model.hosts import core_capacities

        caps.update(core_capacities(s))
    return caps


def round_trip(config: SimConfig | System) -> float:
    """One message's round trip on an idle system, in seconds.

    Propagation RTT, plus the client's CPU for produce() and for the ack, the
    serialization of the message and of its ack, the broker's read loop (one
    pass of one message: ``wakeup_cpu`` + ``read_cpu``) and the partition
    stage's mean service time; with ``client.loop = iterations``, the wake-up
    of the idle event loop the ack finds (it slept for the rest of the round trip)
    and two iterations' own CPU (``client.iteration_cpu``: the one that reads the
    ack, the one that publishes the next message);
    with a relay on the path (``link.relay``), one pass of one chunk each way
    (``link.relay_wakeup_cpu`` + ``link.relay_cpu``, ``sim.model.relay``).
    """
    s = _system(config)
    cfg = s.config
    relay = 2 * (cfg.link.relay_wakeup_cpu + cfg.link.relay_cpu) if cfg.link.relay else 0.0
    away = (cfg.link.rtt + s.uplink_time + s.downlink_time + cfg.broker.read_cpu + cfg.broker.service_time
            + cfg.broker.wakeup_cpu + relay)  # while the loop sleeps
    return away + cfg.client.send_cpu + cfg.client.ack_cpu + wakeup(s, away) + 2 * iteration(s)


def iteration(config: SimConfig | System) -> float:
    """CPU every event-loop iteration pays, slept or not (``client.iteration_cpu`` with
    ``client.loop = iterations``, else 0)."""
    c = _system(config).config.client
    return c.iteration_cpu if c.loop == "iterations" else 0.0


def wakeup(config: SimConfig | System, slept: float = 0.0) -> float:
    """CPU of one wake-up of an idle client event loop after sleeping ``slept`` seconds:
    ``min(client.wakeup_cpu + client.wakeup_growth x slept, client.wakeup_max)`` with
    ``client.loop = iterations``, else 0 (the per-message client never sleeps)."""
    c = _system(config).config.client
    if c.loop != "iterations":
        return 0.0
    if not c.wakeup_growth:
        return c.wakeup_cpu
    cost = c.wakeup_cpu + c.wakeup_growth * slept
    return cost if c.wakeup_max is None or cost < c.wakeup_max else c.wakeup_max


def loop_ceiling(config: SimConfig | System, batch: float = 1.0) -> float:
    """Messages/s one client's event loop carries when each of its wake-ups serves
    ``batch`` messages: b / (wakeup + 2 iteration + b (send + ack)), the iteration that
    reads the acks and the one that publishes the next b. A sync producer (or a window
    of one) wakes its loop once per message: 1 / (wakeup + 2 iteration + send + ack); a
    busy loop that never sleeps reaches 1 / (send + ack) at most (the client_cpu
    capacity, which leaves out the iterations' own CPU). The wake-up counted
    is the one after no sleep (``client.wakeup_cpu``): a wake-up that grows with the sleep
    (``client.wakeup_growth``) only lowers the rate, so this stays an upper bound."""
    s = _system(config)
    cfg = s.config
    cycle = wakeup(s) + 2 * iteration(s) + batch * (cfg.client.send_cpu + cfg.client.ack_cpu)
    return math.inf if cycle <= 0 else batch / cycle


def burst_collections(config: SimConfig | System, messages: int | None = None) -> tuple[int, float]:
    """Full garbage collections of a burst, and their CPU, summed over the client processes:
    ``(count, seconds)``. A burst creates all its tasks before any ack can come back, so
    each client's count of messages in flight only rises: with M = ``client.gc_messages``
    x ``client.gc_full_every``, a client that creates n messages runs floor(n / M) full
    collections, the k-th with k M messages in flight, costing ``client.gc_pause`` +
    ``client.gc_message_cpu`` x k M. Exact when every producer of a client starts at the
    same instant (``producer.start_jitter`` = 0 or one producer per client). (0, 0.0)
    without ``client.gc_messages``.

    Outside a burst how often the collector runs depends on how the messages in flight
    rise and fall; its CPU only lowers the rates, so the ceilings here ignore it and stay
    upper bounds."""
    s = _system(config)
    cfg = s.config
    c = cfg.client
    if c.gc_messages is None:
        return 0, 0.0
    n = cfg.producer.messages if messages is None else messages
    every = c.gc_messages * c.gc_full_every
    count, seconds = 0, 0.0
    for client in range(s.clients):
        made = n * sum(1 for j in range(s.producers) if s.client_of(j) == client)
        runs = made // every
        count += runs
        seconds += runs * c.gc_pause + c.gc_message_cpu * every * runs * (runs + 1) / 2
    return count, seconds


def sync_makespan(config: SimConfig | System, messages: int | None = None) -> float:
    """N synchronous messages take N round trips (plus, with event-loop iterations, the
    wake-up that sends the first one)."""
    s = _system(config)
    n = s.config.producer.messages if messages is None else messages
    return n * round_trip(s) + wakeup(s)


def window_makespan(config: SimConfig | System, window: int, messages: int | None = None) -> float:
    """N messages with C in flight and no shared bottleneck: ceil(N / C) round trips."""
    s = _system(config)
    n = s.config.producer.messages if messages is None else messages
    return math.ceil(n / window) * round_trip(s)


# -- ceilings ---------------------------------------------------------------------


def limiter_engages(config: SimConfig | System, limit: int | None = None) -> bool:
    """Does the limiter ever stop the producer? Only if L produce() calls take
    less than a round trip: otherwise acks free tasks before L are in flight."""
    s = _system(config)
    cfg = s.config
    limit = cfg.producer.concurrent_task_limit if limit is None else limit
    return limit is not None and limit * cfg.client.send_cpu < round_trip(s)


def limiter_ceiling(config: SimConfig | System, limit: int | None = None) -> float:
    """Messages/s one producer gets from the SDK's drain-to-half limiter once it
    engages: about L / (poll + L x CPU), when acks come back within one poll;
    inf when it never engages (see :func:`limiter_engages`)."""
    s = _system(config)
    cfg = s.config
    limit = cfg.producer.concurrent_task_limit if limit is None else limit
    cycle = cfg.producer.limiter_poll + limit * cfg.client.send_cpu if limit is not None else 0.0
    if not limiter_engages(s, limit) or cycle <= 0:  # never engages, or refills at once at no cost
        return math.inf
    return limit / cycle


def core_ceiling(config: SimConfig | System) -> float:
    """Messages/s the shared cores let through (``client.host_cores``, ``broker.cores``,
    ``broker.colocated``): each pool of k cores serves at most k / (its CPU seconds per
    message), and never more than one core per process on it; the tightest pool
    (``sim.model.hosts.pool_demands``). inf when no cores are shared."""
    from .model.hosts import pool_demands

    s = _system(config)
    rates = [usable / demand for _, demand, usable in pool_demands(s) if demand > 0]
    return min(rates, default=math.inf)


def mathis_rate(mss_bytes: float, rtt: float, loss: float) -> float:
    """Bytes/s a TCP connection sustains under random loss: (MSS/RTT) sqrt(3/2) / sqrt(p)."""
    if loss <= 0:
        return math.inf
    return mss_bytes / rtt * math.sqrt(1.5) / math.sqrt(loss)


def connection_rate(config: SimConfig | System) -> float:
    """Bytes/s one connection carries: min(bandwidth, window / RTT), the window
    being the configured one or the Mathis bound's, the smaller. When messages go in
    segments (longer than link.mss_bytes) the window counts bytes and a connection in
    steady state carries W / (RTT + one segment's serialization), within 1% of this
    bound wherever a segment takes under 1% of the RTT to send; messages of one segment
    carry floor(W / message) messages per RTT (``System.connection_messages``)."""
    s = _system(config)
    rtt = s.config.link.rtt
    window = s.window_bytes
    cap = window / rtt if rtt > 0 and not math.isinf(window) else math.inf
    return min(s.uplink_bandwidth, cap)


def read_loop_rate(config: SimConfig | System, messages_per_read: float | None = None) -> float:
    """Messages/s one connection's read loop carries when each pass reads
    ``messages_per_read`` messages: b / (wakeup_cpu + b x read_cpu). By default b is
    what a full read holds (``broker.read_bytes`` / message bytes when batched, 1 per
    message), which makes it the loop's ceiling; lighter loads read fewer messages per
    pass and pay the wake-up over fewer. The cost factor of ``broker.read_cv`` has mean
    1, so this is the mean rate. inf when a pass costs nothing."""
    s = _system(config)
    b = s.messages_per_full_read if messages_per_read is None else float(messages_per_read)
    if b <= 0:
        raise ValueError("messages_per_read must be > 0")
    wakeup, per_message = s.config.broker.wakeup_cpu, s.config.broker.read_cpu
    if math.isinf(b):
        return 1 / per_message if per_message else math.inf
    cost = wakeup + b * per_message
    return b / cost if cost else math.inf


@dataclass(frozen=True)
class PassTimeline:
    """One pass of b messages that reach an idle read loop together, all for one idle
    partition of deterministic service S: when each is parsed and stored (from the
    pass's start) and when their acks are written together (the last stored)."""

    parsed: tuple[float, ...]
    stored: tuple[float, ...]
    written: float


def pass_timeline(config: SimConfig | System, messages: int) -> PassTimeline:
    """The j-th message (from 1) is parsed at w + j r and stored at
    w + r + S + (j - 1) max(r, S): the partition keeps up with the parse when S <= r,
    else the parse runs ahead and the partition works through a queue. With acks
    written a pass at a time (batched) all b acks leave at the last store, so the
    first waits (b - 1) max(r, S) longer than it would alone."""
    s = _system(config)
    b = s.config.broker
    w, r, service = b.wakeup_cpu, b.read_cpu, b.service_time
    parsed = tuple(w + j * r for j in range(1, messages + 1))
    stored = tuple(w + r + service + (j - 1) * max(r, service) for j in range(1, messages + 1))
    return PassTimeline(parsed, stored, stored[-1] if stored else math.nan)


# -- the Universal Scalability Law ---------------------------------------------------


def usl(n, lam: float, sigma: float, kappa: float):
    """X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1))."""
    n = np.asarray(n, dtype=float)
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


@dataclass(frozen=True)
class USLFit:
    """A fitted Universal Scalability Law: throughput of one lambda, contention
    sigma, coherency kappa, each with its standard error (from the Jacobian at
    the optimum: s^2 (J'J)^-1, s^2 the residual variance), and the residual
    sum of squares. A parameter that sits on its bound of 0 has a one-sided
    meaning: its standard error says how far up the data would still allow it."""

    lam: float
    sigma: float
    kappa: float
    lam_se: float = math.nan
    sigma_se: float = math.nan
    kappa_se: float = math.nan
    rss: float = math.nan

    @property
    def peak(self) -> float:
        """N* = sqrt((1 - sigma) / kappa): where throughput peaks (inf when kappa = 0)."""
        if self.kappa <= 0:
            return math.inf
        return math.sqrt(max(0.0, 1 - self.sigma) / self.kappa)

    def __call__(self, n):
        return usl(n, self.lam, self.sigma, self.kappa)


def fit_usl(n: Sequence[float], x: Sequence[float]) -> USLFit:
    """Least-squares fit of the USL to throughput ``x`` at concurrency ``n``, sigma, kappa >= 0.

    Starts from the linearised form N / C(N) - 1 = kappa (N - 1)^2 + (sigma + kappa)(N - 1),
    C(N) = X(N) / X(1) (exact on noiseless data, with X(1) read off the smallest
    N), then minimizes the squared error of X(N) itself over (lambda, sigma,
    kappa) with ``scipy.optimize.least_squares`` (trust region reflective,
    which keeps sigma and kappa on their bound of 0 where the data puts them).
    """
    from scipy.optimize import least_squares

    n = np.asarray(n, dtype=float)
    x = np.asarray(x, dtype=float)
    if n.size < 3 or n.size != x.size:
        raise ValueError("fit_usl needs at least 3 points of (N, X), as many X as N")
    if np.any(n < 1) or np.any(x <= 0):
        raise ValueError("fit_usl needs N >= 1 and X > 0")
    order = np.argsort(n, kind="stable")
    n, x = n[order], x[order]

    # linearised start, lambda from the smallest N
    lam = x[0] / n[0]
    y = n / (x / lam) - 1
    design = np.column_stack([(n - 1) ** 2, n - 1])
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    start = np.array([lam, max(b - a, 0.0), max(a, 0.0)])
    # scale each parameter so that the solver's steps are of comparable size
    scale = np.array([max(lam, 1e-300), 1e-2, 1e-4])

    def residual(p: np.ndarray) -> np.ndarray:
        return usl(n, *p) - x

    def jacobian(p: np.ndarray) -> np.ndarray:
        lam, sigma, kappa = p
        d = 1 + sigma * (n - 1) + kappa * n * (n - 1)
        return np.column_stack([n / d, -lam * n * (n - 1) / d**2, -lam * n * n * (n - 1) / d**2])

    best = None
    # the linearised start, and the pure-contention and pure-coherency corners: keep the best
    for guess in (start, np.array([lam, max(b, 0.0), 0.0]), np.array([lam, 0.0, max(a, 0.0)])):
        fit = least_squares(residual, guess, jac=jacobian, bounds=([0.0, 0.0, 0.0], [np.inf, np.inf, np.inf]),
                            method="trf", x_scale=scale, xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=5000)
        if best is None or fit.cost < best.cost:
            best = fit
    theta = best.x
    rss = float(2 * best.cost)
    dof = n.size - 3
    j = jacobian(theta)
    if dof > 0:
        covariance = np.linalg.pinv(j.T @ j) * (rss / dof)
        se = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    else:
        se = np.full(3, math.nan)
    return USLFit(float(theta[0]), float(theta[1]), float(theta[2]), float(se[0]), float(se[1]), float(se[2]), rss)


@dataclass(frozen=True)
class KneeFit:
    """The two-line bound X(N) = min(lambda N, ceiling): linear growth, then a hard ceiling."""

    lam: float
    ceiling: float
    rss: float

    @property
    def knee(self) -> float:
        """N where the two lines meet."""
        return self.ceiling / self.lam

    def __call__(self, n):
        return np.minimum(self.lam * np.asarray(n, dtype=float), self.ceiling)


def fit_knee(n: Sequence[float], x: Sequence[float]) -> KneeFit:
    """Least-squares fit of min(lambda N, ceiling): the shape of a closed loop
    whose bottleneck saturates at once (operational bounds), which the USL's
    smooth curve cannot follow. For each split of the sorted points into a
    linear head and a flat tail, lambda (through the origin) and the ceiling
    (the tail's mean) are least-squares closed forms; the split whose min()
    model has the smallest squared error wins (a tail-less split is a line)."""
    n = np.asarray(n, dtype=float)
    x = np.asarray(x, dtype=float)
    if n.size < 2 or n.size != x.size:
        raise ValueError("fit_knee needs at least 2 points of (N, X), as many X as N")
    order = np.argsort(n, kind="stable")
    n, x = n[order], x[order]
    best: KneeFit | None = None
    for k in range(1, n.size + 1):
        head_n, head_x, tail = n[:k], x[:k], x[k:]
        lam = float(head_n @ head_x / (head_n @ head_n))
        ceiling = float(tail.mean()) if tail.size else float(lam * n[-1])
        model = np.minimum(lam * n, ceiling)
        rss = float(((model - x) ** 2).sum())
        if best is None or rss < best.rss:
            best = KneeFit(lam, ceiling, rss)
    return best


# -- operational bounds ------------------------------------------------------------

QUEUE, DELAY = "queue", "delay"


@dataclass(frozen=True)
class Station:
    """One server of the closed loop a message travels: ``demand`` seconds of its
    service per message of the whole system (visits x service time)."""

    name: str
    demand: float
    kind: str = QUEUE


def stations(config: SimConfig | System) -> list[Station]:
    """Every server a message may use, with its demand per message of the whole system.

    Clients and their connections are symmetric (each carries 1/clients of the
    messages); partitions carry their long-run share. Clients, connections and
    partitions are numbered from 1, as in the message table. The connection's TCP
    window is not a server, but it bounds each connection to window / RTT
    messages per second, which reads as a demand of RTT / window.
    """
    s = _system(config)
    cfg = s.config
    k = s.clients
    out = []
    for c in range(k):
        out.append(Station(f"client_cpu[{c + 1}]", (cfg.client.send_cpu + cfg.client.ack_cpu) / k))
    out.append(Station("uplink", s.uplink_time))
    window = s.connection_messages  # whole messages, or window / message bytes when it counts bytes
    if window is not None and cfg.link.rtt > 0:
        for c in range(k):
            out.append(Station(f"connection[{c + 1}]", cfg.link.rtt / window / k))
    for c in range(k):  # (a read loop in passes: its cost per message when every read is full)
        out.append(Station(f"read_loop[{c + 1}]", s.read_cost_per_message() / k))
    for p, share in enumerate(s.partition_shares):
        out.append(Station(f"partition[{p + 1}]", cfg.broker.service_time * share))
    out.append(Station("downlink", s.downlink_time))
    if cfg.client.host_cores is not None or cfg.broker.cores is not None:
        # a pool of shared cores: k servers for the CPU work of the stations on it, which read as
        # one server of demand / k (not on the path: that work is counted at its stations)
        from .model.hosts import pool_demands

        for name, demand, usable in pool_demands(s):
            out.append(Station(name, demand / usable))
    return out


def population(config: SimConfig | System) -> float:
    """Most messages the producers may have in flight at once (inf if unbounded)."""
    s = _system(config)
    cap = s.in_flight_cap
    return math.inf if cap >= 1 << 62 else float(s.producers * cap)


@dataclass(frozen=True)
class Bounds:
    """Asymptotic bounds of the closed loop: X(C) <= min(C / (D + Z), 1 / D_max)."""

    demands: dict[str, float]  # by station kind: the busiest server's demand
    total_demand: float  # D: service per message along its path
    delay: float  # Z: propagation, where nothing queues
    bottleneck: str  # the station kind with the largest demand
    max_demand: float  # D_max
    population: float  # C: messages in flight at most

    @property
    def max_throughput(self) -> float:
        """1 / D_max: no population gets more through the bottleneck."""
        return math.inf if self.max_demand == 0 else 1 / self.max_demand

    @property
    def knee(self) -> float:
        """C* = (D + Z) / D_max: below it throughput grows linearly with C, above it the bottleneck caps it."""
        return math.inf if self.max_demand == 0 else (self.total_demand + self.delay) / self.max_demand

    def throughput(self, population: float | None = None) -> float:
        c = self.population if population is None else population
        trip = self.total_demand + self.delay
        linear = math.inf if trip == 0 else c / trip
        return min(linear, self.max_throughput)

    def response(self, population: float | None = None) -> float:
        """R(C) >= max(D, C D_max - Z): time in the queueing stations."""
        c = self.population if population is None else population
        return max(self.total_demand, c * self.max_demand - self.delay)


def bounds(config: SimConfig | System, population_override: float | None = None) -> Bounds:
    """Service demands, the bottleneck and the asymptotic bounds of ``config``."""
    s = _system(config)
    all_stations = stations(s)
    by_kind: dict[str, float] = {}
    for station in all_stations:
        kind = station.name.split("[")[0]
        by_kind[kind] = max(by_kind.get(kind, 0.0), station.demand)
    # the connection's window and shared cores are bounds, not servers on the path
    total = sum(st.demand for st in all_stations if not st.name.startswith(("connection", "host_cpu", "broker_cpu")))
    bottleneck = max(by_kind, key=by_kind.get)
    return Bounds(
        demands=by_kind,
        total_demand=total,
        delay=s.config.link.rtt,
        bottleneck=bottleneck,
        max_demand=by_kind[bottleneck],
        population=population(s) if population_override is None else population_override,
    )


# -- exact mean value analysis ---------------------------------------------------------


@dataclass(frozen=True)
class MVAResult:
    """Throughput (per class), response time (per class, queueing stations only)
    and mean queue length per station; ``method`` says how: ``exact`` or
    ``schweitzer`` (approximate)."""

    throughput: tuple[float, ...]
    response: tuple[float, ...]
    queue: dict[str, float]
    method: str = "exact"

    @property
    def total_throughput(self) -> float:
        return float(sum(self.throughput))


def mva(demands: dict[str, float], delay: float, customers: int) -> MVAResult:
    """Exact single-class MVA: queueing stations with ``demands`` (seconds per
    visit cycle) and a delay station of ``delay`` seconds, ``customers`` in the loop."""
    return mva_multiclass({name: (d,) for name, d in demands.items()}, (delay,), (customers,))


def mva_multiclass(
    demands: dict[str, Sequence[float]], delays: Sequence[float], populations: Sequence[int]
) -> MVAResult:
    """Exact multi-class MVA over all population vectors.

    ``demands[station][c]`` is class c's demand at a queueing station (0 if it
    never goes there), ``delays[c]`` its think time at the delay station and
    ``populations[c]`` how many of it circulate. For product-form networks
    (first-come first-served stations with exponential service, any delay
    distribution) the results are exact.
    """
    names = list(demands)
    d = np.array([list(demands[name]) for name in names], dtype=float).reshape(len(names), len(populations))
    z = np.asarray(delays, dtype=float)
    pops = tuple(int(p) for p in populations)
    classes = len(pops)
    if any(p < 0 for p in pops) or z.shape != (classes,):
        raise ValueError("mva needs one delay and a non-negative population per class")
    # queue lengths per station for every population vector, filled in order of total population
    shape = tuple(p + 1 for p in pops)
    queues = np.zeros(shape + (len(names),))
    throughput = np.zeros(classes)
    response = np.zeros(classes)
    for total in range(1, sum(pops) + 1):
        for vector in _vectors(pops, total):
            r = np.zeros((len(names), classes))
            for c in range(classes):
                if vector[c] == 0:
                    continue
                before = list(vector)
                before[c] -= 1
                r[:, c] = d[:, c] * (1 + queues[tuple(before)])
            cycle = z + r.sum(axis=0)
            x = np.divide(vector, cycle, out=np.zeros(classes), where=cycle > 0)
            queues[vector] = r @ x
            if vector == pops:
                throughput, response = x, r.sum(axis=0)
    final = queues[pops]
    return MVAResult(tuple(map(float, throughput)), tuple(map(float, response)),
                     {name: float(q) for name, q in zip(names, final)})


# exact multi-class MVA keeps a queue length per station for every population
# vector: prod(N_c + 1) x stations numbers, and as many steps. Past this many
# cells mva_for switches to Bard-Schweitzer.
EXACT_MVA_LIMIT = 2_000_000


def exact_mva_cells(stations: int, populations: Sequence[int]) -> int:
    """How many queue lengths exact multi-class MVA would store."""
    return stations * math.prod(int(p) + 1 for p in populations)


def mva_schweitzer(
    demands: dict[str, Sequence[float]], delays: Sequence[float], populations: Sequence[int],
    tolerance: float = 1e-10, max_iterations: int = 100_000,
) -> MVAResult:
    """Bard-Schweitzer approximate multi-class MVA: the same arguments and
    meaning as :func:`mva_multiclass`, in time and memory that do not grow with
    the populations.

    Exact MVA needs the queue lengths at population N - e_c, one class-c
    customer fewer. Schweitzer estimates them from those at N itself, by
    assuming the removed customer takes away its class's share:
    Q_k(N - e_c) = Q_k(N) - Q_kc(N) / N_c, and iterates
    R_kc = D_kc (1 + Q_k(N - e_c)), X_c = N_c / (Z_c + sum_k R_kc), Q_kc = X_c R_kc
    to a fixed point. It is exact for one customer in all, and tends to the
    exact answer where the delay dominates or one station saturates (the two
    asymptotes); it errs most near the knee, with a few customers per class.
    Measured against the exact solution (tests/test_analytic.py): at most 6.7%
    in total throughput over the closed loops :func:`mva_for` builds from 1-3
    clients, windows 1-60, 1-2 partitions (worst: 1 client, window 5, a 400 us
    partition 1 ms away, right at the knee), and at most 10% over 200 random
    networks of 1-3 classes, 1-4 stations and up to 8 customers per class.
    Linearizer would roughly halve that at three times the work.
    """
    names = list(demands)
    d = np.array([list(demands[name]) for name in names], dtype=float).reshape(len(names), len(populations))
    z = np.asarray(delays, dtype=float)
    pops = np.array([int(p) for p in populations], dtype=float)
    classes = pops.size
    if np.any(pops < 0) or z.shape != (classes,):
        raise ValueError("mva needs one delay and a non-negative population per class")
    active = pops > 0
    # start with each class spread evenly over the stations it visits
    visits = (d > 0).sum(axis=0)
    q = np.where(d > 0, pops / np.maximum(visits, 1), 0.0)
    x = np.zeros(classes)
    r = np.zeros_like(d)
    for _ in range(max_iterations):
        total = q.sum(axis=1, keepdims=True)
        arriving = total - np.divide(q, pops, out=np.zeros_like(q), where=active)
        r = d * (1 + arriving)
        cycle = z + r.sum(axis=0)
        x = np.divide(pops, cycle, out=np.zeros(classes), where=cycle > 0)
        new = r * x
        change = np.abs(new - q).max()
        q = new
        if change <= tolerance * max(1.0, pops.max()):
            break
    return MVAResult(tuple(map(float, x)), tuple(map(float, r.sum(axis=0))),
                     {name: float(v) for name, v in zip(names, q.sum(axis=1))}, method="schweitzer")


def _vectors(pops: tuple[int, ...], total: int):
    """Population vectors n <= pops (elementwise) with sum(n) = total."""
    if len(pops) == 1:
        if total <= pops[0]:
            yield (total,)
        return
    for first in range(min(pops[0], total) + 1):
        for rest in _vectors(pops[1:], total - first):
            yield (first,) + rest


def mva_for(config: SimConfig | System, method: str = "auto") -> MVAResult:
    """MVA of the closed loop the producers' windows make, one class per client.

    Each client's producers form a class of producers x window customers (1
    each when sync); they visit their own client's CPU and read loop, and
    share the uplink, the partitions (by their long-run share) and the
    downlink; propagation is the delay. The TCP window and the SDK limiter's
    poll are left out: the loop is what a fixed window makes.

    ``method``: ``exact``, ``schweitzer`` or ``auto`` (exact while it stores at
    most ``EXACT_MVA_LIMIT`` queue lengths, Schweitzer beyond: 4 clients with a
    window of 500 would need 501^4 population vectors).
    """
    if method not in ("auto", "exact", "schweitzer"):
        raise ValueError(f"method = {method!r}: must be auto, exact or schweitzer")
    s = _system(config)
    cfg = s.config
    if s.flow not in ("sync", "window"):
        raise ValueError("mva_for models a fixed window (or sync): set producer.window")
    k = s.clients
    per_class = s.producers_per_client * s.in_flight_cap
    demands: dict[str, list[float]] = {}
    for c in range(k):
        demands[f"client_cpu[{c}]"] = [cfg.client.send_cpu + cfg.client.ack_cpu if i == c else 0.0 for i in range(k)]
        demands[f"read_loop[{c}]"] = [s.read_cost_per_message() if i == c else 0.0 for i in range(k)]
    demands["uplink"] = [s.uplink_time] * k
    for p, share in enumerate(s.partition_shares):
        demands[f"partition[{p + 1}]"] = [cfg.broker.service_time * share] * k
    demands["downlink"] = [s.downlink_time] * k
    populations = [per_class] * k
    if method == "auto":
        method = "exact" if exact_mva_cells(len(demands), populations) <= EXACT_MVA_LIMIT else "schweitzer"
    solve = mva_multiclass if method == "exact" else mva_schweitzer
    return solve(demands, [cfg.link.rtt] * k, populations)
