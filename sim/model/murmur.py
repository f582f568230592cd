"""MurmurHash3, x86 32-bit variant: how the SDK maps a message key to a partition.

The SDK hashes the UTF-8 key with seed 31, reads the result unsigned and takes
it modulo the number of partitions to index the partition list (1..P).
"""

from __future__ import annotations

_C1 = 0xCC9E2D51
_C2 = 0x1B873593
_MASK = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def murmur3_32(data: bytes | str, seed: int = 0) -> int:
    """The unsigned 32-bit MurmurHash3 (x86) of ``data``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    h = seed & _MASK
    length = len(data)
    blocks = length // 4
    for i in range(blocks):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * _C1) & _MASK
        k = _rotl(k, 15)
        k = (k * _C2) & _MASK
        h ^= k
        h = _rotl(h, 13)
        h = (h * 5 + 0xE6546B64) & _MASK
    tail = data[4 * blocks :]
    k = 0
    if len(tail) == 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if len(tail) >= 1:
        k ^= tail[0]
        k = (k * _C1) & _MASK
        k = _rotl(k, 15)
        k = (k * _C2) & _MASK
        h ^= k
    h ^= length
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h


SDK_SEED = 31


def key_partition(key: str, partitions: int) -> int:
    """The 1-based partition the SDK picks for ``key`` among ``partitions``."""
    return murmur3_32(key, SDK_SEED) % partitions + 1
