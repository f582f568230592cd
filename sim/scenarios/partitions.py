"""Partitions: more producer processes scale until a partition's lock saturates.

Reproduces Lessons #3 and #4 of the article: throughput measured as producers
are added, each its own Python process (its own event loop and connection),
nonblocking with a limit of 500 tasks, 512 B payloads. With one partition it
grows linearly from 1 to 4 producers, then flattens: the partition's serial
stage (duplicate check, append, ack, under one lock) is saturated. With two
partitions it stays linear to 8 producers; four add little over two, because
the network round trip, not the locks, sets each producer's pace.

Calibration: 33 ms to the broker, default client costs, limiter poll 100 ms
(each producer then makes about 4,250 msg/s); the partition stage holds its
lock 55 us per message on average (exponential), which stands for the cloud
broker's whole per-message work under the lock, replication included, and
caps one partition near 18,000 msg/s. Producers start within the first 100 ms.
Each point simulates 5 s (quick: 2 s). A Universal Scalability Law fit is
drawn over each curve.
"""

from __future__ import annotations

from . import Point

TITLE = "Producers and partitions: linear until a partition's lock saturates"
PARTITIONS = (1, 2, 4)
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
    producers = (1, 2, 3, 4, 5, 8) if quick else tuple(range(1, 9))
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

    from ..analytic import fit_usl

    fits = []
    for p, rows in table.groupby("partitions"):
        fit = fit_usl(rows["producers"], rows["throughput_msgs_per_s"])
        n = np.round(np.arange(1, rows["producers"].max() + 0.001, 0.25), 2)
        fits.append(pd.DataFrame({"kind": "usl", "producers": n, "partitions": p, "throughput_msgs_per_s": fit(n)}))
        table.loc[table["partitions"] == p, ["usl_sigma", "usl_kappa", "usl_lambda"]] = (fit.sigma, fit.kappa, fit.lam)
    fitted = pd.concat(fits, ignore_index=True)
    params = table.groupby("partitions")[["usl_sigma", "usl_kappa", "usl_lambda"]].first()
    fitted = fitted.join(params, on="partitions")
    first = table.groupby("partitions")["throughput_msgs_per_s"].transform(lambda x: x.iloc[0])
    table["linear_msgs_per_s"] = first * table["producers"] / table.groupby("partitions")["producers"].transform("min")
    return pd.concat([table, fitted], ignore_index=True)


def plot(table):
    from ..plotting import COLORS, figure, style_axes

    fig, ax = figure(width=6.8, height=4.2)
    simulated = table[table["kind"] == "simulated"]
    for i, (p, rows) in enumerate(simulated.groupby("partitions")):
        fit = table[(table["kind"] == "usl") & (table["partitions"] == p)]
        label = f"{p} partition{'s' if p > 1 else ''}"
        ax.plot(rows["producers"], rows["throughput_msgs_per_s"], "os^D"[i % 4], color=COLORS[i], label=label,
                markersize=7 - 1.5 * i, alpha=0.9)
        sigma, kappa = fit["usl_sigma"].iloc[0], fit["usl_kappa"].iloc[0]
        ax.plot(fit["producers"], fit["throughput_msgs_per_s"], "-", color=COLORS[i], alpha=0.7,
                label=f"USL fit: sigma {sigma:.3f}, kappa {kappa:.4f}")
    one = simulated[simulated["partitions"] == simulated["partitions"].min()]
    ax.plot(one["producers"], one["linear_msgs_per_s"], "k:", lw=1, label="linear")
    style_axes(ax, "producer processes", "throughput (msg/s)",
               "Each producer: limit 500, 512 B; partition lock 55 us/msg")
    ax.set_xlim(0.5, simulated["producers"].max() + 0.5)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left")
    return fig
