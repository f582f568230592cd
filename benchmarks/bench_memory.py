"""Peak memory of long runs: full records (bytes per message) and summary-only mode.

Each measurement runs in a fresh Python process and reads its peak resident set
size (ru_maxrss); the system is the main case of bench_engine.py, run for as
long as the message count needs (about 100,000 messages per simulated second).

    python benchmarks/bench_memory.py [--skip-100m]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import resource, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from bench_engine import MAIN_CASE
from sim import build_config
from sim.engine import run_records
from sim.model.system import System
config = build_config({{**MAIN_CASE, "run.duration": {seconds!r}, "run.records": {mode!r}}})
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu = time.process_time()
records = run_records(System(config))
cpu = time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
count = records.tally.sent if records.tally else len(records.created)
print(count, start, peak, cpu)
"""


def measure(messages: int, mode: str) -> tuple[int, float, float, float]:
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), seconds=messages / 100_000, mode=mode)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    count, start, peak, cpu = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    return count, start / 1024, peak / 1024, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-100m", action="store_true", help="leave out the 100-million-message run (minutes)")
    args = parser.parse_args()
    runs = [(1_000_000, "full"), (10_000_000, "full"), (1_000_000, "summary"), (10_000_000, "summary")]
    if not args.skip_100m:
        runs.append((100_000_000, "summary"))
    print(f"{'records':<8} {'messages':>12} {'peak RSS':>10} {'above start':>12} {'per message':>12} {'msg/CPU-s':>10}")
    for messages, mode in runs:
        count, start, peak, cpu = measure(messages, mode)
        print(f"{mode:<8} {count:>12,} {peak:>8.0f} MB {peak - start:>9.0f} MB "
              f"{(peak - start) * 2**20 / count:>9.1f} B {count / cpu:>10,.0f}")


if __name__ == "__main__":
    main()
