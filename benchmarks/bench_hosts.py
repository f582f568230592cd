"""The hosts loop (shared cores) on a 4-producer, 40,000-message run: CPU seconds, median of 3.

Four nonblocking clients (window 100, RTT 0) and a co-located broker on 2 cores, as a
loopback measurement has them: once with the shipped profile (whatever it switches on: since
the refits of 30 Nov 2026, event-loop iterations, the interpreter's collector, read passes, a
lognormal partition stage, the delay proxy as a relay and the scheduler's slice), once with the
default per-message client and constant costs;
then both again with the scheduler's time slice (``client.host_slice`` = 1.5 ms).
Run it from the repository (``python benchmarks/bench_hosts.py``); to compare two
versions, run it from each checkout in turn on a quiet machine and note the load.
"""

from __future__ import annotations

import os
import statistics
import time
import tomllib
from pathlib import Path

from sim import build_config
from sim.engine import run_records
from sim.model.system import System

PROFILE = Path(__file__).resolve().parent.parent / "sim" / "profiles" / "nats-loopback.toml"
SHARED = {"clients": 4, "producer.messages": 10_000, "producer.mode": "nonblocking", "producer.window": 100,
          "link.rtt": 0, "client.host_cores": 2, "client.hosts": 1, "broker.colocated": True}


def cases():
    profile = tomllib.loads(PROFILE.read_text())
    flat = {f"{group}.{key}": value for group, keys in profile.items() for key, value in keys.items()}
    yield "shipped profile (sim/profiles/nats-loopback.toml)", build_config({**flat, **SHARED})
    constant = build_config({
        **SHARED, "client.send_cpu": 30e-6, "client.ack_cpu": 10e-6, "broker.read_cpu": 2e-6,
        "broker.service_time": 10e-6})
    yield "per-message client, constant costs", constant
    profiled = build_config({**flat, **SHARED})
    if "host_slice" in type(profiled.client).model_fields:  # (a checkout from before the key: these two are skipped)
        yield "shipped profile, client.host_slice = 1.5ms", profiled.replace({"client.host_slice": 1.5e-3})
        yield "per-message client, constant costs, client.host_slice = 1.5ms", constant.replace(
            {"client.host_slice": 1.5e-3})


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f}")
    for name, config in cases():
        times = []
        for _ in range(3):
            start = time.process_time()
            records = run_records(System(config), loop="hosts")
            times.append(time.process_time() - start)
        n = len(records.stored)
        median = statistics.median(times)
        print(f"{name}: {n} messages, {median:.3f} CPU-s (median of 3: "
              f"{', '.join(f'{t:.3f}' for t in times)}), {n / median:,.0f} msg per CPU-s")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
