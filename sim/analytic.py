"""Closed forms and fits the simulator must agree with, from the same configs.

Everything here reads a :class:`~sim.config.SimConfig` (through
:class:`~sim.model.system.System`) so that theory and simulation share one
meaning of every parameter.

* Round trips: :func:`round_trip`, :func:`sync_makespan`,
  :func:`window_makespan`.
* Flow-control and network ceilings: :func:`limiter_ceiling`,
  :func:`connection_rate`, :func:`mathis_rate`.
* The Universal Scalability Law: :func:`usl`, :func:`fit_usl`.
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


def round_trip(config: SimConfig | System) -> float:
    """One message's round trip on an idle system, in seconds.

    Propagation RTT, plus the client's CPU for produce() and for the ack, the
    serialization of the message and of its ack, the broker's read loop and
    the partition stage's mean service time.
    """
    s = _system(config)
    cfg = s.config
    return (
        cfg.link.rtt
        + cfg.client.send_cpu
        + cfg.client.ack_cpu
        + s.uplink_time
        + s.downlink_time
        + cfg.broker.read_cpu
        + cfg.broker.service_time
    )


def sync_makespan(config: SimConfig | System, messages: int | None = None) -> float:
    """N synchronous messages take N round trips."""
    s = _system(config)
    n = s.config.producer.messages if messages is None else messages
    return n * round_trip(s)


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


def mathis_rate(mss_bytes: float, rtt: float, loss: float) -> float:
    """Bytes/s a TCP connection sustains under random loss: (MSS/RTT) sqrt(3/2) / sqrt(p)."""
    if loss <= 0:
        return math.inf
    return mss_bytes / rtt * math.sqrt(1.5) / math.sqrt(loss)


def connection_rate(config: SimConfig | System) -> float:
    """Bytes/s one connection carries: min(bandwidth, window / RTT), the window
    being the configured one or the Mathis bound's, the smaller."""
    s = _system(config)
    rtt = s.config.link.rtt
    window = s.window_bytes
    cap = window / rtt if rtt > 0 and not math.isinf(window) else math.inf
    return min(s.uplink_bandwidth, cap)


# -- the Universal Scalability Law ---------------------------------------------------


def usl(n, lam: float, sigma: float, kappa: float):
    """X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1))."""
    n = np.asarray(n, dtype=float)
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


@dataclass(frozen=True)
class USLFit:
    """A fitted Universal Scalability Law: contention sigma, coherency kappa."""

    lam: float
    sigma: float
    kappa: float

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

    Start from the linearised form N / C(N) - 1 = kappa (N - 1)^2 + (sigma + kappa)(N - 1),
    C(N) = X(N) / X(1) (exact on noiseless data, with X(1) read off the smallest
    N), then minimize the squared error of X(N) itself over (lambda, sigma,
    kappa) by Levenberg-Marquardt, kept inside sigma, kappa >= 0.
    """
    n = np.asarray(n, dtype=float)
    x = np.asarray(x, dtype=float)
    if n.size < 3 or n.size != x.size:
        raise ValueError("fit_usl needs at least 3 points of (N, X), as many X as N")
    if np.any(n < 1) or np.any(x <= 0):
        raise ValueError("fit_usl needs N >= 1 and X > 0")
    order = np.argsort(n)
    n, x = n[order], x[order]

    # linearised start, lambda from the smallest N
    lam = x[0] / n[0]
    y = n / (x / lam) - 1
    design = np.column_stack([(n - 1) ** 2, n - 1])
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    theta = np.array([lam, max(b - a, 0.0), max(a, 0.0)])

    def residual(p: np.ndarray) -> np.ndarray:
        return usl(n, *p) - x

    def jacobian(p: np.ndarray) -> np.ndarray:
        lam, sigma, kappa = p
        d = 1 + sigma * (n - 1) + kappa * n * (n - 1)
        return np.column_stack([n / d, -lam * n * (n - 1) / d**2, -lam * n * n * (n - 1) / d**2])

    damping = 1e-3
    cost = float(residual(theta) @ residual(theta))
    for _ in range(500):
        r, j = residual(theta), jacobian(theta)
        scale = np.maximum(np.sum(j * j, axis=0), 1e-300)
        step = np.linalg.solve(j.T @ j + damping * np.diag(scale), -j.T @ r)
        trial = theta + step
        trial[1:] = np.maximum(trial[1:], 0.0)
        trial_cost = float(residual(trial) @ residual(trial))
        if trial_cost < cost:
            converged = cost - trial_cost <= 1e-15 * max(cost, 1e-300)
            theta, cost, damping = trial, trial_cost, damping / 3
            if converged:
                break
        else:
            damping *= 4
            if damping > 1e12:
                break
    return USLFit(float(theta[0]), float(theta[1]), float(theta[2]))


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
    if s.uplink_window is not None and cfg.link.rtt > 0:
        for c in range(k):
            out.append(Station(f"connection[{c + 1}]", cfg.link.rtt / s.uplink_window / k))
    for c in range(k):
        out.append(Station(f"read_loop[{c + 1}]", cfg.broker.read_cpu / k))
    for p, share in enumerate(s.partition_shares):
        out.append(Station(f"partition[{p + 1}]", cfg.broker.service_time * share))
    out.append(Station("downlink", s.downlink_time))
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
    # the connection's window is a bound, not a server on the path
    total = sum(st.demand for st in all_stations if not st.name.startswith("connection"))
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
    and mean queue length per station."""

    throughput: tuple[float, ...]
    response: tuple[float, ...]
    queue: dict[str, float]

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


def _vectors(pops: tuple[int, ...], total: int):
    """Population vectors n <= pops (elementwise) with sum(n) = total."""
    if len(pops) == 1:
        if total <= pops[0]:
            yield (total,)
        return
    for first in range(min(pops[0], total) + 1):
        for rest in _vectors(pops[1:], total - first):
            yield (first,) + rest


def mva_for(config: SimConfig | System) -> MVAResult:
    """MVA of the closed loop the producers' windows make, one class per client.

    Each client's producers form a class of producers x window customers (1
    each when sync); they visit their own client's CPU and read loop, and
    share the uplink, the partitions (by their long-run share) and the
    downlink; propagation is the delay. The TCP window and the SDK limiter's
    poll are left out: the loop is what a fixed window makes.
    """
    s = _system(config)
    cfg = s.config
    if s.flow not in ("sync", "window"):
        raise ValueError("mva_for models a fixed window (or sync): set producer.window")
    k = s.clients
    per_class = s.producers_per_client * s.in_flight_cap
    demands: dict[str, list[float]] = {}
    for c in range(k):
        demands[f"client_cpu[{c}]"] = [cfg.client.send_cpu + cfg.client.ack_cpu if i == c else 0.0 for i in range(k)]
        demands[f"read_loop[{c}]"] = [cfg.broker.read_cpu if i == c else 0.0 for i in range(k)]
    demands["uplink"] = [s.uplink_time] * k
    for p, share in enumerate(s.partition_shares):
        demands[f"partition[{p + 1}]"] = [cfg.broker.service_time * share] * k
    demands["downlink"] = [s.downlink_time] * k
    return mva_multiclass(demands, [cfg.link.rtt] * k, [per_class] * k)
