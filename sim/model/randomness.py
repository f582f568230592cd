"""Random streams of a run, all derived from the config's seed.

One ``numpy.random.SeedSequence(seed)`` is split into a fixed tree: one branch
per producer (its start time, its arrival gaps, its message keys) and one per
partition (its service times, drawn in the order the partition serves). Each
stream draws in chunks and hands out plain floats, so a run of a billion
messages never holds more than one chunk per stream.
"""

from __future__ import annotations

from itertools import chain, count, repeat
from typing import Callable, Iterator

import numpy as np

CHUNK = 4096


def draws(fill: Callable[[int], np.ndarray], chunk: int = CHUNK) -> Iterator[float]:
    """An endless iterator of floats, ``fill(chunk)`` values at a time."""
    return chain.from_iterable(fill(chunk).tolist() for _ in count())


class SeedTree:
    """The generators of one run: ``producer(j, stream)`` and ``partition(p)``."""

    PRODUCER_STREAMS = ("start", "arrivals", "keys", "cpu")  # (a stream added last leaves the others' seeds)

    def __init__(self, seed: int, producers: int, partitions: int):
        self._seed = seed
        producers_root, partitions_root = np.random.SeedSequence(seed).spawn(2)
        self._producers = [
            dict(zip(self.PRODUCER_STREAMS, (np.random.default_rng(s) for s in child.spawn(len(self.PRODUCER_STREAMS)))))
            for child in producers_root.spawn(producers)
        ]
        self._partitions = [np.random.default_rng(s) for s in partitions_root.spawn(partitions)]

    def producer(self, index: int, stream: str) -> np.random.Generator:
        return self._producers[index][stream]

    def partition(self, index: int) -> np.random.Generator:
        return self._partitions[index]

    # The link's streams hang off their own branch of the seed, ``spawn_key = (LINK_BRANCH,)``,
    # so that adding them moved no existing stream (a branch's key only has to differ from
    # the producers' and partitions' 0 and 1).
    LINK_BRANCH = 0x4C494E4B  # "LINK"
    CONNECTION_STREAMS = ("uplink_jitter", "downlink_jitter")

    def connection(self, index: int, stream: str) -> np.random.Generator:
        """Connection ``index``'s generator for ``stream`` (one of CONNECTION_STREAMS)."""
        if not hasattr(self, "_connections"):
            self._connections: dict = {}
        if (index, stream) not in self._connections:
            key = (self.LINK_BRANCH, index, self.CONNECTION_STREAMS.index(stream))
            self._connections[index, stream] = np.random.default_rng(
                np.random.SeedSequence(self._seed, spawn_key=key))
        return self._connections[index, stream]


class Draws:
    """An endless stream of draws: one at a time (``next(d)``) or many (``d.take(k)``),
    the same numbers in the same order either way."""

    def __init__(self, fill: Callable[[int], np.ndarray], chunk: int = CHUNK):
        self._fill, self._chunk = fill, chunk
        self._array = np.zeros(0)
        self._list: list[float] = []
        self._pos = 0

    def _refill(self) -> None:
        rest = self._array[self._pos :]
        self._array = np.concatenate([rest, self._fill(self._chunk)])
        self._list = self._array.tolist()
        self._pos = 0

    def __iter__(self):
        return self

    def __next__(self) -> float:
        if self._pos == len(self._list):
            self._refill()
        value = self._list[self._pos]
        self._pos += 1
        return value

    def take(self, k: int) -> np.ndarray:
        while len(self._list) - self._pos < k:
            self._refill()
        out = self._array[self._pos : self._pos + k]
        self._pos += k
        return out


class Constant:
    """The same value every time, one at a time or many."""

    def __init__(self, value: float):
        self.value = float(value)

    def __iter__(self):
        return self

    def __next__(self) -> float:
        return self.value

    def take(self, k: int) -> np.ndarray:
        return np.full(k, self.value)


def service_times(dist: str, mean: float, cv: float, rng: np.random.Generator):
    """Service times of one partition stage, in the order it serves messages."""
    if dist == "deterministic" or mean == 0:
        return Constant(mean)
    if dist == "exponential":
        return Draws(lambda n: rng.exponential(mean, n))
    if dist == "lognormal":
        sigma2 = np.log1p(cv * cv)
        mu = np.log(mean) - sigma2 / 2
        sigma = float(np.sqrt(sigma2))
        return Draws(lambda n: rng.lognormal(mu, sigma, n))
    raise ValueError(f"unknown service distribution {dist!r}")


# Children of SeedSequence(run.seed): spawn(n) gives the same first children whatever n is,
# so a new family of streams takes the next index without moving the old ones.
PRODUCERS_BRANCH, PARTITIONS_BRANCH, READ_LOOPS_BRANCH = 0, 1, 2


def branch_rngs(seed: int, branch: int, count: int) -> list[np.random.Generator]:
    """``count`` generators of the family ``branch`` of the run's seed tree."""
    root = np.random.SeedSequence(seed).spawn(branch + 1)[branch]
    return [np.random.default_rng(s) for s in root.spawn(count)]


def cost_factors(cv: float, rng: np.random.Generator):
    """Multipliers of a CPU cost: lognormal of mean 1 and coefficient of variation ``cv``
    (the constant 1 when ``cv`` is 0), one per job, in the order the jobs run."""
    return Constant(1.0) if cv == 0 else service_times("lognormal", 1.0, cv, rng)


def arrival_gaps(kind: str, rate: float, rng: np.random.Generator) -> Iterator[float]:
    """Gaps between a producer's intended send times at ``rate`` messages/s."""
    if kind == "constant":
        return repeat(1.0 / rate)
    return draws(lambda n: rng.exponential(1.0 / rate, n))


def cpu_costs(send: float, ack: float, cv: float, rng: np.random.Generator) -> Iterator[tuple[float, float]]:
    """Each message's (produce() cost, ack cost), drawn when the message is created:
    lognormal with means ``send`` and ``ack`` and coefficient of variation ``cv``
    (a zero mean stays zero). Two draws per message, in the producer's creation order."""
    sigma2 = float(np.log1p(cv * cv))
    sigma = float(np.sqrt(sigma2))

    def chunks():
        while True:
            factors = np.exp(rng.normal(-sigma2 / 2, sigma, 2 * CHUNK))
            yield from zip((send * factors[0::2]).tolist(), (ack * factors[1::2]).tolist())

    return chunks()
def jitter_delays(mean: float, cv: float, rng: np.random.Generator) -> Draws:
    """Extra one-way delays of one connection's messages (or acks), in the order they
    leave the uplink (or the downlink): lognormal with this mean and coefficient of variation."""
    sigma2 = np.log1p(cv * cv)
    mu = np.log(mean) - sigma2 / 2
    sigma = float(np.sqrt(sigma2))
    return Draws(lambda n: rng.lognormal(mu, sigma, n))
