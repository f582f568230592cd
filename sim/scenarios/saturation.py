"""Saturation: an unbounded flood misses its deadlines; a task limit fixes it.

Reproduces Lesson #2 and Solution #2 of the article. Nonblocking production
with no limit offers messages faster than the path drains them, so they queue
(in the client, in the connection) until acks come back after ``ack_wait``
(15 s): timeouts, and *ghosts*, messages reported failed yet stored. The SDK's
``concurrent_task_limit`` L caps what is in flight, hence the queueing delay
(about L / the drain rate): 1,000 worked for clients near the broker, while
clients further away still timed out and needed 500 or 250.

Calibration: 100,000 messages of 512 B (703 B on the wire) from one producer
behind a 20 Mbit/s home uplink (~3,500 msg/s). *near*: 33 ms to the broker,
no loss. *far*: 300 ms away with 2 % loss, which holds one TCP connection to
the Mathis rate, ~40 KB/s or ~57 msg/s, so L = 1,000 queues for over 15 s and
L = 500 for about 9 s. The second panel shows what the SDK's 100 ms poll costs:
once the limit engages, a cycle sends L messages then sleeps 100 ms, so
throughput is about L / (0.1 s + L x CPU), where an event-driven limiter
refills as soon as half the tasks are done (33 ms away, default costs,
1 Gbit/s).
"""

from __future__ import annotations

import math

from . import Point

TITLE = "Saturation: no limit times out; the task limit must fit the path"
MESSAGES = 100_000
PATHS = {
    "near": {"link.rtt": "33ms", "link.bandwidth": "20Mbit/s"},
    "far": {"link.rtt": "300ms", "link.loss": 0.02, "link.bandwidth": "20Mbit/s"},
}
PATH_LABELS = {"near": "near (RTT 33 ms)", "far": "far (RTT 300 ms, 2% loss)"}
BASE = {"producer.mode": "nonblocking", "producer.payload_bytes": 512, "producer.messages": MESSAGES}


def points(quick: bool = False) -> list[Point]:
    limits = (None, 1000, 500, 250) if quick else (None, 2000, 1000, 500, 250, 100)
    rows = [
        Point(
            {"panel": "limit", "path": path, "limit_label": "none" if limit is None else str(limit),
             "limit": math.nan if limit is None else limit, "poll_ms": 100.0},
            {**BASE, **overrides, "producer.concurrent_task_limit": limit},
        )
        for path, overrides in PATHS.items()
        for limit in limits
    ]
    poll_limits = (10, 100, 1000) if quick else (10, 25, 50, 100, 250, 500, 1000, 2500)
    n = 3_000 if quick else 10_000
    rows += [
        Point(
            {"panel": "poll", "path": "fast", "limit_label": str(limit), "limit": limit, "poll_ms": poll},
            {**BASE, "producer.messages": n, "producer.concurrent_task_limit": limit,
             "producer.limiter_poll": f"{poll}ms"},
        )
        for poll in (100.0, 0.0)
        for limit in poll_limits
    ]
    return rows


def finish(table):
    from ..analytic import limiter_ceiling
    from ..config import build_config

    table["delivered_fraction"] = table["acked"] / table["sent"]
    fast = build_config({**BASE, "producer.concurrent_task_limit": 1})
    # L / (poll + L x CPU) where the limit engages (L produce() calls take less than a round trip)
    table["theory_poll_msgs_per_s"] = [
        limiter_ceiling(fast, int(limit)) if panel == "poll" else math.nan
        for panel, limit in zip(table["panel"], table["limit"])
    ]
    table.loc[table["theory_poll_msgs_per_s"] == math.inf, "theory_poll_msgs_per_s"] = math.nan
    cpu = fast.client.send_cpu + fast.client.ack_cpu
    table["ceiling_client_cpu_msgs_per_s"] = 1 / cpu
    table["ack_wait_ms"] = fast.producer.ack_wait * 1e3
    return table


def plot(table):
    from ..plotting import COLORS, figure, legend_outside, style_axes

    fig, axes = figure(2, 2, width=13, height=7.0)
    (delivered, timeouts), (latency, poll) = axes
    limits = table[table["panel"] == "limit"]
    for i, (path, rows) in enumerate(limits.groupby("path", sort=False)):
        x = range(len(rows))
        labels = list(rows["limit_label"])
        path = PATH_LABELS.get(path, path)
        delivered.plot(x, rows["delivered_fraction"] * 100, "o-", color=COLORS[i], label=path)
        timeouts.plot(x, rows["timed_out"], "o-", color=COLORS[i], label=f"{path}: timed out")
        timeouts.plot(x, rows["ghosts"], "x:", color=COLORS[i], label=f"{path}: ghosts (stored anyway)")
        latency.plot(x, rows["latency_p99_ms"] / 1e3, "o-", color=COLORS[i], label=f"{path}: p99 of acked")
        for ax in (delivered, timeouts, latency):
            ax.set_xticks(list(x), labels)
    latency.axhline(limits["ack_wait_ms"].iloc[0] / 1e3, color="k", ls="--", lw=1, label="ack_wait (15 s)")
    style_axes(delivered, "concurrent_task_limit", "acked within ack_wait (%)", "Delivered")
    style_axes(timeouts, "concurrent_task_limit", "messages", "Timeouts and ghosts")
    style_axes(latency, "concurrent_task_limit", "latency (s)", "p99 latency of acked messages", logy=True)
    for ax in (delivered, timeouts, latency):
        legend_outside(ax, fontsize=7)

    polls = table[table["panel"] == "poll"].sort_values("limit")
    for i, (poll_ms, rows) in enumerate(polls.groupby("poll_ms", sort=True)):
        label = "event-driven limiter" if poll_ms == 0 else f"SDK limiter, {poll_ms:g} ms poll"
        label += ", RTT 33 ms"
        poll.plot(rows["limit"], rows["throughput_msgs_per_s"], "o-", color=COLORS[2 + i], label=label)
    theory = polls[polls["poll_ms"] > 0]
    poll.plot(theory["limit"], theory["theory_poll_msgs_per_s"], "k--", lw=1, label="L / (poll + L x CPU)")
    poll.axhline(polls["ceiling_client_cpu_msgs_per_s"].iloc[0], color=COLORS[5], ls=":", lw=1,
                 label="client CPU ceiling")
    style_axes(poll, "concurrent_task_limit (L)", "throughput (msg/s)", "What the 100 ms poll costs",
               logx=True, logy=True)
    legend_outside(poll, fontsize=7)
    return fig
