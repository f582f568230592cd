"""A first-come first-served server: the one place the network's and the broker's
queueing arithmetic lives.

The shared uplink and downlink, each connection's read loop and each
partition's lock are stations. A station serves one job at a time, in the
order the jobs reach it: ``start = max(arrival, free); free = start + service``
(Lindley's recursion). The loops hand it jobs in arrival order (ties in
connection order, see ``sim.model.network``), one at a time or a batch at once.

A batch is computed with numpy and gives, bit for bit, the numbers of the
one-at-a-time recursion, so that a tie in one is a tie in the other: the
closed form ``d_i = S_i + max(free, max_{k<=i}(a_k - S_{k-1}))`` (S the running
sum of the services) finds the busy periods, then each busy period is summed
left to right as the recursion does (``np.cumsum`` is sequential).

Busy time: a station with a constant service time counts its jobs (busy =
jobs x service); one with drawn service times adds each one.
"""

from __future__ import annotations

import numpy as np


class Station:
    """One FIFO server. ``free`` is when it is next idle; ``busy`` its seconds of service."""

    __slots__ = ("free", "jobs", "service", "_drawn")

    def __init__(self, service: float | None = None):
        """``service``: the constant service time, or None when each job brings its own."""
        self.free = 0.0
        self.jobs = 0
        self.service = service
        self._drawn = 0.0  # the sum of drawn service times

    @property
    def busy(self) -> float:
        return self.jobs * self.service if self.service is not None else self._drawn

    def serve(self, arrival: float, service: float | None = None) -> float:
        """One job arriving at ``arrival``; returns its departure."""
        if service is None:
            service = self.service
        else:
            self._drawn += service
        start = self.free if self.free > arrival else arrival
        self.free = done = start + service
        self.jobs += 1
        return done

    def serve_all(self, arrivals: list) -> list:
        """Jobs of the constant service time, arriving at ``arrivals`` (in order)."""
        free, service = self.free, self.service
        out = []
        for t in arrivals:
            free = (free if free > t else t) + service
            out.append(free)
        self.free = free
        self.jobs += len(out)
        return out

    def serve_each(self, arrivals: list, services: list) -> list:
        """Jobs arriving at ``arrivals`` (in order), each with its own service time."""
        free, drawn = self.free, self._drawn
        out = []
        for t, s in zip(arrivals, services):
            drawn += s
            free = (free if free > t else t) + s
            out.append(free)
        self.free, self._drawn = free, drawn
        self.jobs += len(out)
        return out

    def serve_batch(self, arrivals: np.ndarray, services: np.ndarray | None = None) -> np.ndarray:
        """A batch of jobs at once (sorted ``arrivals``); constant service unless ``services``."""
        if services is None:
            services = self.service
        else:
            self._drawn += float(np.cumsum(services)[-1]) if services.size else 0.0
        departures = lindley(arrivals, services, self.free)
        if departures.size:
            self.free = float(departures[-1])
        self.jobs += arrivals.size
        return departures


def lindley(arrivals: np.ndarray, services: np.ndarray | float, free: float) -> np.ndarray:
    """Departures of a FIFO server busy until ``free``, from sorted ``arrivals``: bit for
    bit those of the recursion ``d = max(a, d_prev) + s``."""
    if not arrivals.size:
        return arrivals.astype(float)
    if np.isscalar(services):
        steps = np.arange(arrivals.size, dtype=float) * services
        approx = steps + services + np.maximum(free, np.maximum.accumulate(arrivals - steps))
    else:
        total = np.cumsum(services)
        approx = total + np.maximum(free, np.maximum.accumulate(arrivals - (total - services)))
    previous = np.empty(arrivals.size)
    previous[0] = free
    previous[1:] = approx[:-1]
    starts = arrivals >= previous  # a busy period starts here: d = a + s
    for _ in range(arrivals.size + 1):  # the periods found from rounded times may move: settle them
        if starts.all():  # (the usual cases first: every job alone, or one busy period)
            exact = arrivals + services
        elif not starts.any():
            chunk = np.full(arrivals.size, services) if np.isscalar(services) else np.array(services, dtype=float)
            chunk[0] += free
            exact = np.cumsum(chunk)
        else:
            exact = _by_busy_period(arrivals, services, starts, free)
        previous[1:] = exact[:-1]
        settled = arrivals >= previous
        if np.array_equal(settled, starts):
            break
        starts = settled
    return exact


def _by_busy_period(arrivals: np.ndarray, services, starts: np.ndarray, free: float) -> np.ndarray:
    """d = (start ? a : d_prev) + s, summed left to right within each busy period."""
    out = arrivals + services  # right for every job that starts a busy period alone
    size = arrivals.size
    heads = np.flatnonzero(starts)
    if not starts[0]:
        heads = np.concatenate(([0], heads))  # the first job waits for the server's earlier work
    ends = np.append(heads[1:], size)
    longer = np.flatnonzero(ends - heads > 1)
    if not starts[0] and (not longer.size or longer[0] != 0):
        longer = np.concatenate(([0], longer))
    scalar = np.isscalar(services)
    for lo, hi in zip(heads[longer].tolist(), ends[longer].tolist()):
        chunk = np.full(hi - lo, services) if scalar else services[lo:hi].copy()
        # (free + s or a + s first, then + s ...: the recursion's own order)
        chunk[0] = out[lo] if starts[lo] else chunk[0] + free
        out[lo:hi] = np.cumsum(chunk)
    return out
