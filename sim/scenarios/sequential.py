"""N x RTT: synchronous production waits one round trip per message.

Reproduces Lesson #1 of the article ("Don't underestimate the impact of
latency"): with the SDK's default, synchronous produce(), the N-th message
leaves only after the first N - 1 came back, so N messages take N round trips:
10,000 messages take about 1 s at a 0.1 ms round trip and 100 s at 10 ms.

Calibration: *pure network* keeps nothing but propagation (no CPU, no broker
service, unlimited bandwidth), where N x RTT is exact; *with costs* keeps the
defaults (45 us of client CPU per message, the broker's 6.5 us, 1 Gbit/s), where
a round trip is RTT plus those costs, which matters at a short RTT.
"""

from __future__ import annotations

from . import Point

TITLE = "Synchronous production: N messages take N round trips"
RTTS_MS = (0.1, 10.0)
PURE_NETWORK = {
    "client.send_cpu": 0,
    "client.ack_cpu": 0,
    "broker.read_cpu": 0,
    "broker.service_time": 0,
    "link.bandwidth": "inf",
    "link.window_bytes": "inf",
}
CALIBRATIONS = {"pure network": PURE_NETWORK, "with costs": {}}


def points(quick: bool = False) -> list[Point]:
    counts = (1, 100, 10_000) if quick else (1, 10, 100, 1_000, 10_000)
    return [
        Point(
            {"calibration": name, "rtt_ms": rtt, "messages": n},
            {**overrides, "link.rtt": f"{rtt}ms", "producer.messages": n},
        )
        for name, overrides in CALIBRATIONS.items()
        for rtt in RTTS_MS
        for n in counts
    ]


def finish(table):
    from ..analytic import round_trip
    from ..config import build_config

    trips = {
        (name, rtt): round_trip(build_config({**overrides, "link.rtt": f"{rtt}ms"}))
        for name, overrides in CALIBRATIONS.items()
        for rtt in RTTS_MS
    }
    table["round_trip_ms"] = [trips[(c, r)] * 1e3 for c, r in zip(table["calibration"], table["rtt_ms"])]
    table["theory_s"] = table["messages"] * table["round_trip_ms"] / 1e3
    return table


def plot(table):
    from ..plotting import COLORS, figure, legend_outside, style_axes

    fig, ax = figure(width=8.5, height=4.0)
    for i, rtt in enumerate(sorted(table["rtt_ms"].unique())):
        for calibration, marker, line in (("pure network", "o", "-"), ("with costs", "s", "--")):
            rows = table[(table["rtt_ms"] == rtt) & (table["calibration"] == calibration)].sort_values("messages")
            if rows.empty:
                continue
            label = f"RTT {rtt:g} ms, {calibration}"
            ax.plot(rows["messages"], rows["theory_s"], line, color=COLORS[i], alpha=0.6)
            ax.plot(rows["messages"], rows["makespan_s"], marker, color=COLORS[i], label=label,
                    fillstyle="none" if calibration == "with costs" else "full")
    style_axes(ax, "messages produced synchronously (N)", "total time (s)",
               "Sync produce(): N messages take N round trips (lines: N x round trip)", logx=True, logy=True)
    legend_outside(ax)
    return fig
