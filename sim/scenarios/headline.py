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
    from ..plotting import COLORS, figure, style_axes

    fig, ax = figure(width=5.5, height=3.6)
    x = range(len(table))
    ax.bar(x, table["throughput_msgs_per_s"], color=[COLORS[1], COLORS[0]], width=0.55, label="simulated")
    ax.hlines(table["article_msgs_per_s"], [i - 0.3 for i in x], [i + 0.3 for i in x], colors="k", lw=2,
              label="article")
    for i, (value, article) in enumerate(zip(table["throughput_msgs_per_s"], table["article_msgs_per_s"])):
        ax.annotate(f"{value:,.0f}/s\n(article {article:,.0f})", (i, value), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xticks(list(x), [f"{m}" for m in table["mode"]])
    style_axes(ax, "produce() mode", "throughput (msg/s)", "33 ms away, 45 us of CPU per message", logy=True)
    ax.set_ylim(5, 4e5)
    ax.legend(loc="upper left")
    return fig
