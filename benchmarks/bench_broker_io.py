"""Engine speed with the broker's read loops in passes (sim.model.broker_io).

The main case of ``bench_engine.py`` (8 clients, window 500, 2 partitions,
about 100,000 messages per simulated second), 2 s simulated, run:

* with the defaults (the read loop a plain station, no broker I/O): as ``sim``
  picks the loop (the numpy network), and forced onto the scalar network;
* with ``broker.read_mode = batched``, 97 us per wake-up and 11 us per message
  (nats-server on the project's VM), on the loops that take it: the window loop
  with the scalar network (the default for it) and the event loop;
* batched with no wake-up and no per-message cost (what passes themselves cost).

Every figure is the median over several runs of (messages simulated) / (CPU
seconds), all measured in this process, one after the other.

    python benchmarks/bench_broker_io.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import MAIN_CASE, machine  # noqa: E402

from sim import build_config  # noqa: E402
from sim.engine import run_records  # noqa: E402
from sim.model.system import System  # noqa: E402

BASE = {**MAIN_CASE, "run.duration": "2s"}
BATCHED = {**BASE, "broker.read_mode": "batched", "broker.wakeup_cpu": "97us", "broker.read_cpu": "11us"}
FREE_PASSES = {**BASE, "broker.read_mode": "batched"}
CASES = [
    ("defaults, as sim picks (numpy network)", BASE, None),
    ("defaults, scalar network", BASE, "windows"),
    ("batched 97 us + 11 us, window loop (scalar, the default)", BATCHED, None),
    ("batched 97 us + 11 us, event loop", BATCHED, "events"),
    ("batched, passes of no cost, window loop", FREE_PASSES, None),
]


def rate(overrides: dict, loop: str | None, runs: int) -> tuple[float, int]:
    rates, count = [], 0
    for _ in range(runs):
        system = System(build_config(overrides))
        start = time.process_time()
        records = run_records(system, loop=loop)
        count = len(records.created)
        rates.append(count / (time.process_time() - start))
    return statistics.median(rates), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    for name, overrides, loop in CASES:
        value, count = rate(overrides, loop, args.runs)
        print(f"{name:58s} {value:12,.0f} msg per CPU-s  ({count:,} messages, median of {args.runs})", flush=True)


if __name__ == "__main__":
    main()
