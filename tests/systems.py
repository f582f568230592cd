"""Random small systems for the oracle and invariant tests."""

from __future__ import annotations

import random

from sim.config import SimConfig, build_config


def random_overrides(seed: int) -> dict:
    """A small random system with every mechanism in play somewhere.

    Start times are jittered and costs are irrational-looking reals, so no two
    events of different streams ever fall at exactly the same instant (whose
    order would be a convention, not a fact).
    """
    r = random.Random(seed)
    mode = r.choice(["sync", "nonblocking", "nonblocking", "nonblocking"])
    ov = {
        "clients": r.randint(1, 3),
        "producers_per_client": r.randint(1, 3),
        "producer.mode": mode,
        "producer.messages": r.randint(30, 250),
        "producer.ack_wait": r.choice([r.uniform(0.005, 0.05), 15.0]),
        "producer.payload_bytes": r.randint(100, 2000),
        "producer.overhead_bytes": r.randint(0, 200),
        "producer.partitioning": r.choice(["round_robin", "key", "fixed"]),
        "producer.start_jitter": r.uniform(1e-4, 5e-3),
        "client.send_cpu": r.uniform(5e-6, 150e-6),
        "client.ack_cpu": r.uniform(0, 40e-6),
        "link.rtt": r.uniform(0.5e-3, 20e-3),
        "link.bandwidth": r.uniform(2e6, 50e6),
        "link.window_bytes": r.choice([None, r.randint(2_000, 40_000)]),
        "link.loss": r.choice([0.0, 0.0, r.uniform(1e-4, 0.05)]),
        "broker.partitions": r.randint(1, 3),
        "broker.read_cpu": r.choice([0.0, r.uniform(1e-6, 60e-6), r.uniform(50e-6, 300e-6)]),
        "broker.service_time": r.uniform(10e-6, 300e-6),
        "broker.service_dist": r.choice(["exponential", "lognormal"]),
        "broker.ack_bytes": r.randint(50, 400),
        "run.seed": r.randint(0, 2**31),
    }
    if ov["producer.partitioning"] == "fixed":
        ov["producer.partition"] = r.randint(1, ov["broker.partitions"])
    if ov["broker.service_dist"] == "lognormal":
        ov["broker.service_cv"] = r.uniform(0.3, 2.0)
    if mode == "nonblocking":
        flow = r.choice(["window", "limit", "limit", "unbounded"])
        if flow == "window":
            ov["producer.window"] = r.randint(1, 30)
        elif flow == "limit":
            ov["producer.concurrent_task_limit"] = r.randint(2, 40)
            ov["producer.limiter_poll"] = r.choice([0.0, r.uniform(1e-3, 20e-3)])
    if r.random() < 0.3:
        ov["producer.rate"] = r.uniform(200, 5000)
    if r.random() < 0.2:
        ov["run.duration"] = r.uniform(0.01, 0.2)
    return ov


def random_config(seed: int) -> SimConfig:
    return build_config(random_overrides(seed))
