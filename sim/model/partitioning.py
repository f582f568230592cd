"""Which partition each message of a producer goes to (0-based indices).

Mirrors the SDK: round-robin kept per producer and starting at partition 1, a
key hashed with MurmurHash3-32 (seed 31) modulo the partition count, or one
fixed partition.
"""

from __future__ import annotations

from itertools import cycle, repeat
from typing import Iterator

import numpy as np

from .murmur import key_partition
from .randomness import CHUNK


def round_robin(partitions: int) -> Iterator[int]:
    return cycle(range(partitions))


def fixed(partition: int) -> Iterator[int]:
    """Every message to the 1-based ``partition``."""
    return repeat(partition - 1)


def keyed(partitions: int, key_space: int, rng: np.random.Generator) -> Iterator[int]:
    """Keys ``key-<k>``, k uniform in [0, key_space), hashed as the SDK does."""
    table: dict[int, int] = {}

    def lookup(k: int) -> int:
        p = table.get(k)
        if p is None:
            p = table[k] = key_partition(f"key-{k}", partitions) - 1
        return p

    def stream() -> Iterator[int]:
        while True:
            yield from map(lookup, rng.integers(0, key_space, CHUNK).tolist())

    return stream()


def chooser(partitioning: str, partitions: int, partition: int, key_space: int, rng: np.random.Generator) -> Iterator[int]:
    if partitioning == "round_robin":
        return round_robin(partitions)
    if partitioning == "fixed":
        return fixed(partition)
    if partitioning == "key":
        return keyed(partitions, key_space, rng)
    raise ValueError(f"unknown partitioning {partitioning!r}")
