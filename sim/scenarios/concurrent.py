"""N x RTT / C: C messages in flight cut the time C-fold, until a ceiling.

Reproduces Solution #1 of the article ("non-blocking message production"):
with C deliveries under way at once, N messages take about N x RTT / C, so
throughput grows linearly with C ... until something on the path saturates.
Here the client's event loop does: 45 us of CPU per message caps one process
near 22,000 msg/s, and beyond C* = 22,000 msg/s x RTT more messages in flight
only queue. The other ceilings (the shared link, the connection's TCP window,
the partition stage) are drawn too; they lie higher.

Calibration: the article's cloud case (33 ms RTT, 1 Gbit/s, the default
client and broker costs), one producer with a fixed window of C in flight;
N = 10,000 messages (quick: 2,000), C from 1 to 10,000. Theory: ceil(N / C)
round trips, but no less than N messages at the lowest ceiling of
``sim.analytic.capacities`` plus the last one's round trip.
"""

from __future__ import annotations

from . import Point

TITLE = "Messages in flight: N x RTT / C, then the ceiling"
CEILINGS = ("client_cpu", "uplink", "connection", "partition")


def points(quick: bool = False) -> list[Point]:
    n = 2_000 if quick else 10_000
    windows = (1, 10, 100, 1_000, 2_000) if quick else (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000)
    return [
        Point({"window": c, "messages": n}, {"producer.mode": "nonblocking", "producer.window": c, "producer.messages": n})
        for c in windows
    ]


def finish(table):
    import numpy as np

    from ..analytic import capacities as station_capacities
    from ..analytic import round_trip
    from ..config import build_config
    from ..model.system import System

    system = System(build_config({"producer.mode": "nonblocking", "producer.window": 1}))
    trip = round_trip(system)
    capacities = station_capacities(system)
    ceiling = min(capacities[name] for name in CEILINGS)
    table["round_trip_ms"] = trip * 1e3
    # C at a time, one round trip each, but never faster than the lowest ceiling
    # (and the last message still needs its round trip)
    rounds = np.ceil(table["messages"] / table["window"]) * trip
    table["theory_makespan_s"] = np.maximum(rounds, table["messages"] / ceiling + trip)
    table["theory_msgs_per_s"] = table["messages"] / table["theory_makespan_s"]
    table["window_over_rtt_msgs_per_s"] = table["window"] / trip
    for name in CEILINGS:
        table[f"ceiling_{name}_msgs_per_s"] = capacities[name]
    return table


def plot(table):
    from ..plotting import COLORS, figure, legend_below, style_axes

    table = table.sort_values("window")
    fig, (left, right) = figure(1, 2, width=10, height=5.0)
    left.plot(table["window"], table["theory_makespan_s"], "-", color=COLORS[5],
              label="max(ceil(N / C) x round trip, N / ceiling + round trip)")
    left.plot(table["window"], table["makespan_s"], "o", color=COLORS[0], label="simulated")
    style_axes(left, "messages in flight (C)", "time to send N messages (s)",
               f"N = {int(table['messages'].iloc[0]):,} messages", logx=True, logy=True)
    legend_below(left, ncols=1)
    right.plot(table["window"], table["window_over_rtt_msgs_per_s"], ":", color=COLORS[5], label="C / round trip")
    right.plot(table["window"], table["theory_msgs_per_s"], "-", color=COLORS[5], label="N / theory time")
    for i, name in enumerate(CEILINGS):
        value = table[f"ceiling_{name}_msgs_per_s"].iloc[0]
        right.axhline(value, color=COLORS[(i + 1) % len(COLORS)], ls="--", lw=1,
                      label=f"ceiling: {name.replace('_', ' ')} {value:,.0f}/s")
    right.plot(table["window"], table["throughput_msgs_per_s"], "o", color=COLORS[0], label="simulated")
    style_axes(right, "messages in flight (C)", "throughput (msg/s)", "Linear in C, then capped",
               logx=True, logy=True)
    right.set_ylim(top=table[[f"ceiling_{n}_msgs_per_s" for n in CEILINGS]].iloc[0].max() * 3)
    legend_below(right, ncols=2)
    return fig
