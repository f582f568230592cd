"""Partitions: more producer processes scale until a partition's lock saturates.

Reproduces Lessons #3 and #4 of the article: throughput measured as producers
are added, each its own Python process (its own event loop and connection),
nonblocking with a limit of 500 tasks, 512 B payloads. With one partition it
grows linearly from 1 to 4 producers, then flattens: the partition's serial
stage (duplicate check, append, ack, under one lock) is saturated. With two
partitions it stays linear to 8 producers, then flattens at twice the height;
with four, to all 16. Below its ceiling each producer runs at the pace of its
own limiter: L = 500 tasks, then a 100 ms poll, about 4,250 msg/s, so up to 8
producers two and four partitions give the same throughput.

Calibration: 33 ms to the broker, default client costs, limiter poll 100 ms
(each producer then makes about 4,250 msg/s); the partition stage holds its
lock 55 us per message on average (exponential), which stands for the cloud
broker's whole per-message work under the lock, replication included, and
caps one partition near 18,000 msg/s. Producers start within the first 100 ms.
Each point simulates 5 s (quick: 2 s), 1 to 16 producers. Theory: each lock
caps partitions / 55 us, each producer its limiter's L / (poll + L x CPU).
A Universal Scalability Law fit (``scipy.optimize``, with standard errors) is
drawn unless the two-line bound min(lambda N, ceiling) fits the points more
than 4 times better (in squared error): then the curve has a hard knee, which
the USL's smooth shape cannot follow, and the figure says so instead.
"""

from __future__ import annotations

from . import Point

TITLE = "Producers and partitions: linear until a partition's lock saturates"
PARTITIONS = (1, 2, 4)
KNEE_FACTOR = 4  # the two-line bound must fit this many times better to call a knee hard
CALIBRATION = {
    "producers_per_client": 1,
    "producer.mode": "nonblocking",
    "producer.concurrent_task_limit": 500,
    "producer.payload_bytes": 512,
    "producer.messages": None,
    "producer.start_jitter": "100ms",
    "broker.service_time": "55us",
    "broker.service_dist": "exponential",
}


def points(quick: bool = False) -> list[Point]:
    producers = (1, 2, 4, 6, 8, 12, 16) if quick else tuple(range(1, 17))
    duration = "2s" if quick else "5s"
    return [
        Point(
            {"kind": "simulated", "producers": n, "partitions": p},
            {**CALIBRATION, "clients": n, "broker.partitions": p, "run.duration": duration},
        )
        for p in PARTITIONS
        for n in producers
    ]


def finish(table):
    import numpy as np
    import pandas as pd

    from ..analytic import capacities, fit_knee, fit_usl, limiter_ceiling
    from ..config import build_config

    fits = []
    for p, rows in table.groupby("partitions"):
        n, x = rows["producers"], rows["throughput_msgs_per_s"]
        usl, knee = fit_usl(n, x), fit_knee(n, x)
        # the USL's smooth curve is drawn unless the two-line bound min(lambda N,
        # ceiling), with a parameter fewer, leaves under a quarter of its squared
        # error: then the curve has a hard knee the USL cannot follow (on a straight
        # line the two fit alike, within noise)
        drawn = knee.rss * KNEE_FACTOR >= usl.rss
        selected = table["partitions"] == p
        table.loc[selected, "usl_lambda"] = usl.lam
        table.loc[selected, "usl_lambda_se"] = usl.lam_se
        table.loc[selected, "usl_sigma"] = usl.sigma
        table.loc[selected, "usl_sigma_se"] = usl.sigma_se
        table.loc[selected, "usl_kappa"] = usl.kappa
        table.loc[selected, "usl_kappa_se"] = usl.kappa_se
        table.loc[selected, "usl_rss"] = usl.rss
        table.loc[selected, "knee_lambda"] = knee.lam
        table.loc[selected, "knee_ceiling_msgs_per_s"] = knee.ceiling
        table.loc[selected, "knee_rss"] = knee.rss
        table.loc[selected, "usl_drawn"] = drawn
        table.loc[selected, "usl_fit_msgs_per_s"] = usl(n)
        if drawn:
            grid = np.round(np.arange(1, n.max() + 0.001, 0.25), 2)
            fits.append(pd.DataFrame({"kind": "usl", "producers": grid, "partitions": p,
                                      "throughput_msgs_per_s": usl(grid)}))
        config = build_config({**CALIBRATION, "clients": 1, "broker.partitions": int(p), "run.duration": "1s"})
        table.loc[selected, "ceiling_partition_msgs_per_s"] = capacities(config)["partition"]
        table.loc[selected, "limiter_msgs_per_s"] = limiter_ceiling(config) * table.loc[selected, "producers"]
    table["usl_drawn"] = table["usl_drawn"].astype(bool)
    return pd.concat([table, *fits], ignore_index=True)


def plot(table):
    from ..plotting import COLORS, figure, legend_outside, style_axes

    fig, ax = figure(width=10.5, height=4.8)
    simulated = table[table["kind"] == "simulated"]
    top = simulated["producers"].max()
    # the limiter's ceiling, the same line for every series: N x L / (poll + L x CPU)
    one = simulated[simulated["partitions"] == simulated["partitions"].min()].sort_values("producers")
    per_producer = one["limiter_msgs_per_s"].iloc[0] / one["producers"].iloc[0]
    ax.plot([0, top + 0.5], [0, per_producer * (top + 0.5)], ":", color="k", lw=1,
            label=f"each producer's limiter: {per_producer:,.0f} msg/s x N")
    # nested markers, smallest on top, so that coinciding points stay visible
    styles = {1: dict(marker="o", ms=4.5, zorder=6), 2: dict(marker="s", ms=8, mfc="none", mew=1.4, zorder=5),
              4: dict(marker="D", ms=12, mfc="none", mew=1.4, zorder=4)}
    for i, (p, rows) in enumerate(simulated.groupby("partitions")):
        rows = rows.sort_values("producers")
        color = COLORS[i]
        name = f"{p} partition{'s' if p > 1 else ''}"
        ax.plot(rows["producers"], rows["throughput_msgs_per_s"], ls="none", color=color, label=f"{name}: simulated",
                **styles.get(p, dict(marker="^")))
        ceiling = rows["ceiling_partition_msgs_per_s"].iloc[0]
        ax.axhline(ceiling, color=color, ls="--", lw=1, alpha=0.8,
                   label=f"{name}: lock ceiling, {ceiling:,.0f} msg/s")
        first = rows.iloc[0]
        if bool(first["usl_drawn"]):
            fit = table[(table["kind"] == "usl") & (table["partitions"] == p)]
            ax.plot(fit["producers"], fit["throughput_msgs_per_s"], "-", color=color, alpha=0.7,
                    label=f"{name}: USL fit, sigma {first['usl_sigma']:.4f} +/- {first['usl_sigma_se']:.4f},\n"
                          f"    kappa {first['usl_kappa']:.5f} +/- {first['usl_kappa_se']:.5f}")
        else:
            ax.plot([], [], " ", label=f"{name}: no USL curve: a hard knee at N = "
                                        f"{first['knee_ceiling_msgs_per_s'] / first['knee_lambda']:.1f}\n"
                                        "    (the two-line bound fits it better)")
    style_axes(ax, "producer processes (N)", "throughput (msg/s)",
               "Producers scale until the partitions' locks saturate")
    ax.set_xlim(0.5, top + 0.5)
    ax.set_ylim(0, simulated["ceiling_partition_msgs_per_s"].max() * 1.08)
    legend_outside(ax, fontsize=7)
    return fig
