"""Engine speed on the main case, against the naive SimPy reference model.

The main case: 8 clients with one producer each, nonblocking with a window of
500, 2 partitions, 10 s simulated; client send CPU 40 us, ack CPU 0; 100 MB/s;
660-byte messages without extra overhead, 100-byte acks; RTT 10 ms;
deterministic 20 us partition service; no read-loop cost.

Both models run in this process, one after the other; each figure is the
median over several runs of (messages simulated) / (CPU seconds). The naive
model simulates a shorter span of the same system (it is ~100 times slower).

    python benchmarks/bench_engine.py [--runs 5] [--reference-runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim import build_config  # noqa: E402
from sim.engine import run_records  # noqa: E402
from sim.model.system import System  # noqa: E402
from tests.reference_model import run_reference  # noqa: E402

MAIN_CASE = {
    "clients": 8,
    "producers_per_client": 1,
    "producer.mode": "nonblocking",
    "producer.window": 500,
    "producer.messages": None,
    "broker.partitions": 2,
    "run.duration": "10s",
    "client.send_cpu": "40us",
    "client.ack_cpu": 0,
    "link.bandwidth": "100MB/s",
    "producer.payload_bytes": 660,
    "producer.overhead_bytes": 0,
    "broker.ack_bytes": 100,
    "link.rtt": "10ms",
    "broker.service_time": "20us",
    "broker.service_dist": "deterministic",
    "broker.read_cpu": 0,
}


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.machine()}"


def rate(fn, runs: int) -> tuple[float, int]:
    """Median messages per CPU-second of ``fn() -> messages`` over ``runs`` runs."""
    rates, count = [], 0
    for _ in range(runs):
        start = time.process_time()
        count = fn()
        rates.append(count / (time.process_time() - start))
    return statistics.median(rates), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="engine runs (default 5)")
    parser.add_argument("--reference-runs", type=int, default=3, help="naive model runs (default 3)")
    parser.add_argument("--reference-duration", default="0.3s", help="span the naive model simulates")
    args = parser.parse_args()

    engine_config = build_config(MAIN_CASE)
    reference_config = build_config({**MAIN_CASE, "run.duration": args.reference_duration})
    engine, engine_messages = rate(lambda: len(run_records(System(engine_config)).created), args.runs)
    naive, naive_messages = rate(lambda: len(run_reference(reference_config)), args.reference_runs)
    print(f"machine: {machine()}")
    print(f"engine:    {engine:>12,.0f} messages per CPU-second ({engine_messages:,} messages, median of {args.runs})")
    print(f"reference: {naive:>12,.0f} messages per CPU-second ({naive_messages:,} messages, median of {args.reference_runs})")
    print(f"ratio:     {engine / naive:>12,.1f}x")


if __name__ == "__main__":
    main()
