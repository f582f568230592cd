"""Wall time of `sim figures` (full and --quick) on this machine, into a scratch folder.

    python benchmarks/bench_figures.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def wall(args: list[str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sim", "figures", "--out", out, *args], check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    for label, extra in (("full", []), ("quick", ["--quick"])):
        times = [wall(extra) for _ in range(runs)]
        print(f"sim figures {label:<6} median {statistics.median(times):5.1f} s  (runs: "
              + ", ".join(f"{t:.1f}" for t in times) + ")")


if __name__ == "__main__":
    main()
