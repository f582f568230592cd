"""A fixed-memory, log-bucketed latency histogram (in the manner of HdrHistogram).

Values from 2^-30 s (about 1 ns) to 2^64 s fall into buckets 2^(1/128) wide
(12,032 buckets, 96 KiB). A percentile is reported as its bucket's upper edge,
as HdrHistogram does (never below the exact value, at most 0.55% above it) and
never beyond the exact maximum; the count, sum, minimum and maximum are exact.
Its memory does not grow with the number of values. Smaller positive values
share the lowest bucket; no simulated time reaches 2^64 s (the engine refuses
times float64 cannot resolve long before that).
"""

from __future__ import annotations

import math

import numpy as np

SUB_BUCKETS = 128  # per power of two
LOW, HIGH = -30, 64  # 2^-30 s (~1 ns) .. 2^64 s
BUCKETS = (HIGH - LOW) * SUB_BUCKETS


class LogHistogram:
    def __init__(self):
        self.counts = np.zeros(BUCKETS, dtype=np.int64)
        self.zeros = 0  # values of exactly 0 (a round trip with no cost at all)
        self.total = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float)
        if not values.size:
            return
        self.total += values.size
        self.sum += float(values.sum())
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))
        positive = values[values > 0]
        self.zeros += values.size - positive.size
        index = np.floor((np.log2(positive) - LOW) * SUB_BUCKETS).astype(np.int64)
        np.clip(index, 0, BUCKETS - 1, out=index)
        self.counts += np.bincount(index, minlength=BUCKETS)

    def percentile(self, q: float) -> float:
        """Nearest rank: the smallest value that at least q% of the values do not exceed."""
        if not self.total:
            return math.nan
        rank = max(1, math.ceil(q / 100 * self.total - 1e-9))
        if rank <= self.zeros:
            return 0.0
        if rank >= self.total:
            return self.max
        bucket = int(np.searchsorted(np.cumsum(self.counts), rank - self.zeros))
        upper = 2.0 ** (LOW + (bucket + 1) / SUB_BUCKETS)  # the bucket's upper edge
        return min(max(upper, self.min), self.max)

    @property
    def mean(self) -> float:
        return self.sum / self.total if self.total else math.nan
