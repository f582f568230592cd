"""Engine speed: the main case against the naive SimPy model and a minimal heap loop,
and the synchronous case.

The main case: 8 clients with one producer each, nonblocking with a window of
500, 2 partitions, 10 s simulated; client send CPU 40 us, ack CPU 0; 100 MB/s;
660-byte messages without extra overhead, 100-byte acks; RTT 10 ms;
deterministic 20 us partition service; no read-loop cost. Full per-message
records are kept.

* the engine, as ``sim`` runs it;
* the public SimPy model (``sim.simpy_model``: a SimPy process per message, a
  SimPy server per station), the naive way to run the same model, on a shorter
  span of the same system;
* a minimal pure-Python binary-heap loop doing the same arithmetic: one heap
  event per message (its ack coming back), each message's whole path computed
  when it is sent. It is a yardstick for Python's speed, not a correct model:
  it ignores the order in which streams merge, keeps no records, no timeouts.

The synchronous case: 1 client, sync, 10 ms RTT, 2,000 s simulated (default
costs otherwise).

The flood case: one nonblocking producer without a limit at a 0.03 ms RTT
whose partition (62 us per message) falls ever further behind, so acks pile
up ahead of the clock, at 20,000 and at 80,000 messages: the rate must not
fall with the size of the flood (the cost stays linear in the messages).

Every figure is the median over several runs of (messages simulated) / (CPU
seconds), all measured in this process, one after the other.

    python benchmarks/bench_engine.py [--runs 5] [--reference-runs 3]
"""

from __future__ import annotations

import argparse
import heapq
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
from sim.simpy_model import run_simpy  # noqa: E402

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
FLOOD_CASE = {"producer.mode": "nonblocking", "link.rtt": "0.03ms", "link.bandwidth": "inf",
              "link.window_bytes": "inf", "broker.service_time": "62us", "producer.ack_wait": "2s",
              "client.send_cpu": "15us", "client.ack_cpu": "34us", "broker.read_cpu": "4.7us"}
SYNC_CASE = {"producer.mode": "sync", "producer.messages": None, "run.duration": "2000s", "link.rtt": "10ms"}


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


def minimal_loop(duration: float = 10.0) -> int:
    """The main case's arithmetic with one heap event per message (see the module docstring),
    written as tight as pure Python allows."""
    clients, window, partitions = 8, 500, 2
    cpu, up, down, half_rtt, service = 40e-6, 660 / 100e6, 100 / 100e6, 0.005, 20e-6
    cpu_free = [0.0] * clients
    part_free = [0.0] * partitions
    turn = [0] * clients
    up_free = down_free = 0.0
    heap = [(0.0, c) for c in range(clients) for _ in range(window)]
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    sent = 0
    while heap:
        now, c = pop(heap)
        if now >= duration:
            break
        t = cpu_free[c]
        if t < now:
            t = now
        t = cpu_free[c] = t + cpu
        if up_free > t:
            t = up_free
        t = up_free = t + up
        p = turn[c] = 1 - turn[c]
        t += half_rtt
        if part_free[p] > t:
            t = part_free[p]
        t = part_free[p] = t + service
        if down_free > t:
            t = down_free
        down_free = t = t + down
        push(heap, (t + half_rtt, c))
        sent += 1
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of the engine and of the minimal loop (default 5)")
    parser.add_argument("--reference-runs", type=int, default=3, help="naive model runs (default 3)")
    parser.add_argument("--reference-duration", default="0.3s", help="span the naive model simulates")
    args = parser.parse_args()

    engine_config = build_config(MAIN_CASE)
    reference_config = build_config({**MAIN_CASE, "run.duration": args.reference_duration})
    engine, engine_messages = rate(lambda: len(run_records(System(engine_config)).created), args.runs)
    minimal, minimal_messages = rate(minimal_loop, args.runs)
    naive, naive_messages = rate(lambda: len(run_simpy(reference_config).created), args.reference_runs)
    sync_config = build_config(SYNC_CASE)
    sync, sync_messages = rate(lambda: len(run_records(System(sync_config)).created), args.runs)

    print(f"machine: {machine()}")
    print("main case (8 clients x 1 producer, window 500, 2 partitions, 10 s), messages per CPU-second:")
    print(f"  engine        {engine:>12,.0f}  ({engine_messages:,} messages, median of {args.runs})")
    print(f"  minimal loop  {minimal:>12,.0f}  ({minimal_messages:,} messages, median of {args.runs})")
    print(f"  naive model   {naive:>12,.0f}  ({naive_messages:,} messages, median of {args.reference_runs})")
    print(f"  engine / naive: {engine / naive:,.1f}x; engine / minimal loop: {engine / minimal:.2f}")
    print("sync case (1 client, sync, 10 ms RTT, 2,000 s), messages per CPU-second:")
    print(f"  engine        {sync:>12,.0f}  ({sync_messages:,} messages, median of {args.runs})")
    print("flood case (1 producer, no limit, 0.03 ms RTT, a partition falling behind), messages per CPU-second:")
    floods = {}
    for n in (20_000, 80_000):
        flood_config = build_config({**FLOOD_CASE, "producer.messages": n})
        floods[n], _ = rate(lambda: len(run_records(System(flood_config)).created), args.runs)
        print(f"  {n:>6,} messages {floods[n]:>12,.0f}  (median of {args.runs})")
    print(f"  80,000 / 20,000: {floods[80_000] / floods[20_000]:.2f} (1.00 = linear)")


if __name__ == "__main__":
    main()
