"""The measurement suites: which points ``sim measure`` runs.

``quick`` (under a minute) touches every mode once; ``full`` (a few minutes
with its default repeats) covers every mode, several RTTs, windows, limits,
bursts up to overload (a 2 s ack_wait) and producers x partitions. A
limiter only engages when L messages can be in flight, so the limit points
sit behind an added RTT. ``proxy`` measures what the delay proxy costs: only
points behind it, at rates from 1,000 msg/s to the machine's ceiling, so
its CPU per message (``proxy_cpu_us_per_msg``) can be set beside the
client's and the server's.
"""

from __future__ import annotations

from .session import Point


def quick() -> list[Point]:
    return [
        Point("sync", 0, 1000),
        Point("sync", 5, 200),
        Point("window", 5, 2000, window=10),
        Point("limit", 5, 2000, limit=100),
        Point("limit_poll", 5, 400, limit=20),
        Point("unbounded", 0, 5000),
        Point("burst", 0, 5000),
        Point("window", 1, 10000, window=100, producers=2, partitions=2),
    ]


def full() -> list[Point]:
    points = [Point("sync", rtt, n) for rtt, n in ((0, 2000), (1, 1000), (5, 300), (20, 100))]
    points += [Point("window", 5, n, window=c) for c, n in ((1, 300), (10, 2000), (100, 10000), (1000, 20000))]
    points += [Point("window", rtt, 10000, window=100) for rtt in (0, 20)]
    points += [Point("limit_poll", 5, n, limit=lim) for lim, n in ((20, 400), (100, 2000), (500, 10000))]
    points += [Point("limit_poll", 20, 2000, limit=100)]
    points += [Point("limit", 5, n, limit=lim) for lim, n in ((100, 5000), (1000, 20000))]
    points += [Point("unbounded", rtt, 20000) for rtt in (0, 5)]
    points += [Point("burst", 0, 10000)]
    points += [Point("burst", 0, n, ack_wait_s=2.0) for n in (20000, 40000, 60000, 80000)]
    points += [Point("window", 1, 10000 * p, window=100, producers=p, partitions=k)
               for p in (1, 2, 4) for k in (1, 2)]
    return points


def proxy() -> list[Point]:
    points = [Point("window", 5, 10000, window=100),
              Point("unbounded", 5, 20000),
              Point("limit_poll", 5, 2000, limit=100)]
    points += [Point("window", 1.25, 10000 * p, window=100, producers=p) for p in (1, 2, 4)]
    return points


SUITES = {"quick": quick, "full": full, "proxy": proxy}
DEFAULT_REPEATS = {"quick": 1, "full": 2, "proxy": 2}
