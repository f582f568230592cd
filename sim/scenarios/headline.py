"""The headline: 30 msg/s synchronous, 22,000 msg/s non-blocking.

Reproduces the article's headline result (Solution #1): "we went from
producing 30 messages per second to 22,000 messages per second" by switching
produce() to nonblocking=True.

Calibration (the defaults): a round trip of about 33 ms to the cloud broker
(hence ~30 msg/s when each message waits for its ack) and 45 us of client CPU
per message (35 us for produce(), 10 us to process the ack: hence ~22,000
msg/s once the event loop is the bottleneck); 1 Gbit/s, broker costs of a few
microseconds.
"""

from __future__ import annotations

from . import Point

TITLE = "Headline: 30 msg/s sync, 22,000 msg/s nonblocking"
ARTICLE = {"sync": 30.0, "nonblocking": 22_000.0}


def points(quick: bool = False) -> list[Point]:
    return [
        Point({"mode": "sync", "article_msgs_per_s": ARTICLE["sync"]},
              {"producer.mode": "sync", "producer.messages": 300 if quick else 1_000}),
        Point({"mode": "nonblocking", "article_msgs_per_s": ARTICLE["nonblocking"]},
              {"producer.mode": "nonblocking", "producer.messages": 20_000 if quick else 100_000}),
    ]


def finish(table):
    table["relative_error"] = table["throughput_msgs_per_s"] / table["article_msgs_per_s"] - 1
    return table


def plot(table):
    from ..plotting import COLORS, figure, legend_below, style_axes

    fig, ax = figure(width=7.0, height=3.2)
    rows = list(table.itertuples(index=False))
    y = list(range(len(rows)))[::-1]  # first row on top
    # a dot chart on a linear axis: the distance from 0 is the rate, so the ratio reads honestly
    for yi, row in zip(y, rows):
        ax.hlines(yi, 0, row.throughput_msgs_per_s, color=COLORS[5], lw=1, alpha=0.5)
    ax.plot([r.throughput_msgs_per_s for r in rows], y, "o", color=COLORS[0], ms=8, label="simulated", zorder=3)
    ax.plot([r.article_msgs_per_s for r in rows], y, "|", color=COLORS[1], ms=18, mew=2.5,
            label="the article's measurement", zorder=4)
    for yi, row in zip(y, rows):
        ax.annotate(f"{row.throughput_msgs_per_s:,.0f} msg/s (article: {row.article_msgs_per_s:,.0f})",
                    (row.throughput_msgs_per_s, yi), textcoords="offset points", xytext=(0, 11),
                    ha="left" if row.throughput_msgs_per_s < 1e3 else "right", fontsize=8)
    rates = {row.mode: row.throughput_msgs_per_s for row in rows}
    if {"sync", "nonblocking"} <= rates.keys():
        ax.set_title(f"nonblocking / sync = {rates['nonblocking'] / rates['sync']:,.0f}x "
                     f"(article: {ARTICLE['nonblocking'] / ARTICLE['sync']:,.0f}x)\n"
                     "33 ms away, 45 us of client CPU per message", loc="left")
    ax.set_yticks(y, [row.mode for row in rows])
    style_axes(ax, "throughput (msg/s), linear axis from 0", "produce() mode")
    ax.set_xlim(0, max(max(rates.values()), ARTICLE["nonblocking"]) * 1.12)
    ax.set_ylim(-0.6, len(rows) - 0.3)
    legend_below(ax)
    return fig
