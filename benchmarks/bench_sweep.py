"""A sweep of 64 runs on one local worker, then on two: wall time and speed-up.

Each run is a small version of the main case (a different seed per
replication, no cache), about a fifth of a second of CPU.

    python benchmarks/bench_sweep.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import MAIN_CASE  # noqa: E402

from sim.sweep import Sweep, run_sweep  # noqa: E402

SWEEP = Sweep(
    base={**MAIN_CASE, "run.duration": "1s", "run.records": "summary"},
    factors={"broker.partitions": [1, 2, 4, 8]},
    replications=16,
    seed=7,
)


def main() -> None:
    timings = {}
    tables = {}
    for workers in (1, 2):
        start = time.perf_counter()
        tables[workers] = run_sweep(SWEEP, workers=workers, cache=None, progress=False)
        timings[workers] = time.perf_counter() - start
    assert tables[1].equals(tables[2])
    print(f"{len(tables[1])} runs: 1 worker {timings[1]:.1f} s, 2 workers {timings[2]:.1f} s, "
          f"speed-up {timings[1] / timings[2]:.2f}x (identical tables)")


if __name__ == "__main__":
    main()
