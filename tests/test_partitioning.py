"""Partition choice as the SDK makes it."""

from collections import Counter

import numpy as np
import pytest

from sim import build_config, run
from sim.model.murmur import key_partition, murmur3_32

# Published MurmurHash3_x86_32 test vectors (SMHasher's verification set).
VECTORS = [
    (b"", 0, 0),
    (b"", 1, 0x514E28B7),
    (b"", 0xFFFFFFFF, 0x81F16F39),
    (b"\0\0\0\0", 0, 0x2362F9DE),
    (b"aaaa", 0x9747B28C, 0x5A97808A),
    (b"aaa", 0x9747B28C, 0x283E0130),
    (b"aa", 0x9747B28C, 0x5D211726),
    (b"a", 0x9747B28C, 0x7FA09EA6),
    (b"abcd", 0x9747B28C, 0xF0478627),
    (b"abc", 0x9747B28C, 0xC84A62DD),
    (b"ab", 0x9747B28C, 0x74875592),
    (b"Hello, world!", 0x9747B28C, 0x24884CBA),
    (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD),
]


@pytest.mark.parametrize("data,seed,expected", VECTORS)
def test_murmur3_vectors(data, seed, expected):
    assert murmur3_32(data, seed) == expected


def test_key_partition_is_one_based_and_in_range():
    parts = [key_partition(f"key-{k}", 3) for k in range(300)]
    assert set(parts) == {1, 2, 3}


def test_round_robin_is_per_producer_from_partition_one():
    cfg = build_config({"clients": 2, "producers_per_client": 2, "producer.messages": 7, "broker.partitions": 3})
    table = run(cfg).messages
    for _, group in table.groupby("producer"):
        assert group["partition"].tolist() == [1, 2, 3, 1, 2, 3, 1]


def test_fixed_partition():
    cfg = build_config({"producer.messages": 20, "broker.partitions": 4, "producer.partitioning": "fixed", "producer.partition": 3})
    assert set(run(cfg).messages["partition"]) == {3}


def test_key_partitioning_follows_the_hash_of_drawn_keys():
    cfg = build_config(
        {"producer.messages": 2000, "broker.partitions": 4, "producer.partitioning": "key", "producer.key_space": 8,
         "producer.mode": "nonblocking"}
    )
    parts = run(cfg).messages["partition"].to_numpy()
    allowed = {key_partition(f"key-{k}", 4) for k in range(8)}
    assert set(parts) == allowed
    # uniform over 8 keys: each key's partition gets about its share of keys
    expected = Counter(key_partition(f"key-{k}", 4) for k in range(8))
    for p, keys in expected.items():
        share = np.mean(parts == p)
        assert abs(share - keys / 8) < 0.05
