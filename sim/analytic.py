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
    if not limiter_engages(s, limit):
        return math.inf
    return limit / (cfg.producer.limiter_poll + limit * cfg.client.send_cpu)


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
