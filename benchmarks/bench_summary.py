"""Summary mode against full records, loop by loop, at 10 million messages.

For each of the engine's loops (single stream, events, windows message by
message, windows with numpy) one system of about 10 million messages runs
twice, each time in a fresh Python process: with full per-message records and
with ``run.records = summary``. The counts must be identical; the table shows
both peak resident set sizes (``ru_maxrss``), what summary mode keeps beyond
the interpreter, numpy and pandas, and its time-series bins.

    python benchmarks/bench_summary.py [--messages 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SYSTEMS = {
    # one synchronous producer, 10 us away: one message in flight at a time
    "single": {"link.rtt": "10us", "client.send_cpu": "1us", "client.ack_cpu": "1us"},
    # no lookahead at all (zero RTT, unlimited bandwidth): only the event loop can run it
    "events": {"clients": 4, "producer.mode": "nonblocking", "producer.window": 8, "link.rtt": 0,
               "link.bandwidth": "inf", "broker.partitions": 2, "client.send_cpu": "4us",
               "client.ack_cpu": "1us"},
    # sparse windows: the network message by message
    "windows": {"clients": 2, "producer.mode": "nonblocking", "producer.window": 2, "link.rtt": "100us",
                "broker.partitions": 2, "client.send_cpu": "4us", "client.ack_cpu": "1us"},
    # dense windows: the network with numpy
    "vectors": {"clients": 8, "producer.mode": "nonblocking", "producer.window": 500, "link.rtt": "10ms",
                "broker.partitions": 2, "client.send_cpu": "40us", "client.ack_cpu": 0,
                "link.bandwidth": "100MB/s", "broker.service_time": "20us"},
}

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from sim import build_config
from sim.engine import run_records
from sim.model.system import System
from sim.results import Result
config = build_config({overrides!r})
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu = time.process_time()
result = Result(config, run_records(System(config), loop={loop!r}))
summary = result.summary
cpu = time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
keys = ("sent", "acked", "timed_out", "ghosts", "stored", "in_flight", "makespan_s")
series = result.timeseries
print(json.dumps({{"counts": {{k: summary[k] for k in keys}}, "start_kb": start, "peak_kb": peak, "cpu_s": cpu,
                  "bins": len(series), "series": series[["sent", "acked", "timed_out", "in_flight"]].sum().tolist()}}))
"""


def measure(loop: str, overrides: dict) -> dict:
    code = CHILD.format(root=str(ROOT), overrides=overrides, loop=loop)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000_000, help="messages per run (default 10 million)")
    args = parser.parse_args()
    print(f"{'loop':<8} {'messages':>12} {'same':>5} {'full RSS':>9} {'summary RSS':>12} {'above start':>12} "
          f"{'bins':>8} {'summary msg/CPU-s':>18}")
    for loop, system in SYSTEMS.items():
        producers = system.get("clients", 1) * system.get("producers_per_client", 1)
        overrides = {**system, "producer.messages": args.messages // producers}
        full = measure(loop, {**overrides, "run.records": "full"})
        summary = measure(loop, {**overrides, "run.records": "summary"})
        same = full["counts"] == summary["counts"] and full["series"] == summary["series"]
        above = (summary["peak_kb"] - summary["start_kb"]) / 1024
        print(f"{loop:<8} {summary['counts']['sent']:>12,} {'yes' if same else 'NO':>5} "
              f"{full['peak_kb'] / 1024:>6.0f} MB {summary['peak_kb'] / 1024:>9.0f} MB {above:>9.0f} MB "
              f"{summary['bins']:>8,} {summary['counts']['sent'] / summary['cpu_s']:>18,.0f}")


if __name__ == "__main__":
    main()
