"""Tables to figures. Reads pandas tables (and results) only; never imports the model.

Two kinds of drawing live here:

* **files**: :func:`figure` makes a :class:`matplotlib.figure.Figure` that
  belongs to no backend and no pyplot state, :func:`save` writes it. Figures
  are reproducible byte for byte: one fixed style, and files written without
  dates or version stamps. Nothing here calls ``matplotlib.use``: importing
  ``sim`` leaves the user's backend (Jupyter's inline one, a GUI one) alone.
* **helpers for notebooks and scripts**, in the style of pandas and seaborn:
  each takes ``ax=None`` and returns the Axes it drew on. With ``ax=None`` it
  draws on pyplot's current Axes (``plt.gca()``), so Jupyter shows it as any
  other plot; pass an Axes to place it in a figure of your own.

  - :func:`plot_latency_percentiles`: latency by percentile, HdrHistogram
    style (the x axis spreads 90%, 99%, 99.9%, ... evenly);
  - :func:`plot_timeseries`: throughput and messages in flight over time;
  - :func:`plot_sweep`: a sweep's metric against one factor, with 95%
    confidence bars.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.4,
    "lines.markersize": 5,
    "svg.hashsalt": "sim",
    "path.simplify": False,
}
COLORS = ["#1f5fa8", "#d1495b", "#2a9d8f", "#e9a03b", "#6c4f9c", "#5c5c5c"]


class _StyledFigure(Figure):
    """A Figure that draws (and saves) in the project's style whatever the caller's rcParams."""

    def draw(self, renderer):
        with mpl.rc_context(STYLE):
            return super().draw(renderer)

    def savefig(self, *args, **kwargs):
        with mpl.rc_context(STYLE):
            return super().savefig(*args, **kwargs)

    def _repr_png_(self) -> bytes:
        """A PNG for Jupyter, so that a figure returned by a cell shows even when
        pyplot (and with it the inline backend) was never imported."""
        import io

        buffer = io.BytesIO()
        self.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()


def figure(rows: int = 1, cols: int = 1, width: float = 9.0, height: float = 3.6, **kwargs):
    """A new figure in the project's style, with its axes; outside pyplot, so
    it touches no global state and needs no ``close``."""
    with mpl.rc_context(STYLE):
        fig = _StyledFigure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(rows, cols, **kwargs)
    return fig, axes


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` (PNG or SVG by suffix) without dates or software stamps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Software": None} if path.suffix == ".png" else {"Date": None, "Creator": None}
    with mpl.rc_context(STYLE):
        fig.savefig(path, metadata=metadata)
    return path


def style_axes(ax, xlabel: str, ylabel: str, title: str | None = None, logx=False, logy=False) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, loc="left")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")


def legend_outside(ax, **kwargs):
    """A legend to the right of ``ax``, where it cannot cover data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def legend_below(ax, ncols: int = 2, **kwargs):
    """A legend under ``ax`` (below its x label), where it cannot cover data."""
    # a pad of 3.5 font sizes below the axes clears the tick labels and the x label
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), borderaxespad=3.5, ncols=ncols, **kwargs)


# -- helpers for notebooks ------------------------------------------------------------


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # only when the caller wants pyplot's current Axes

    return plt.gca()


# percentiles shown by plot_latency_percentiles: 0 .. 99.9999
_HDR_TICKS = (0.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999)


def _latencies_ms(source) -> np.ndarray:
    """Latencies in ms of acked messages, from a Result, a messages table or an array of seconds."""
    if hasattr(source, "messages") and hasattr(source, "summary"):  # a Result
        source = source.messages
    if hasattr(source, "columns"):  # a messages table
        column = "latency_s" if "latency_s" in source.columns else None
        if column is None:
            raise ValueError("the table has no latency_s column")
        values = source[column].to_numpy(dtype=float)
    else:
        values = np.asarray(source, dtype=float)
    values = values[~np.isnan(values)]
    return np.sort(values) * 1e3


def plot_latency_percentiles(source, ax=None, label: str | None = None, max_percentile: float | None = None,
                             **line_kwargs: Any):
    """Latency by percentile, as HdrHistogram plots it: the x axis is
    1 / (1 - q), logarithmic, so that 90%, 99%, 99.9% ... are evenly spaced
    and the tail gets the room it deserves.

    ``source``: a :class:`~sim.results.Result`, its ``messages`` table or an
    array of latencies in seconds (NaN for unacked messages is ignored). Each
    point is the nearest-rank percentile of the acked messages, the same rule
    as the summary's p50 .. p99.99. Call it once per run on the same Axes to
    compare runs. Returns the Axes.
    """
    ax = _axes(ax)
    latency = _latencies_ms(source)
    if latency.size == 0:
        raise ValueError("no acked message: there is no latency to plot")
    n = latency.size
    # one point per rank; ranks 1..n-1 only, since q = 1 sits at infinity on this axis
    q = np.arange(1, n) / n if n > 1 else np.array([0.0])
    values = latency[: q.size]
    if max_percentile is not None:
        keep = q <= max_percentile / 100
        q, values = q[keep], values[keep]
    x = 1 / (1 - q)
    if x.size > 4000:  # a million messages need not be a million vertices: keep ~4000, spread evenly on the axis
        # (plus the ranks of the named percentiles, so that p99 sits exactly at 99%)
        named = [math.ceil(t / 100 * n - 1e-9) - 1 for t in (50, 75, 90, 95, 99, 99.9, 99.99, 99.999)]
        keep = np.searchsorted(x, np.geomspace(x[0], x[-1], 4000))
        keep = np.unique(np.concatenate([keep, [k for k in named if 0 <= k < x.size]]).clip(0, x.size - 1))
        x, values = x[keep], values[keep]
    ax.plot(x, values, label=label, **line_kwargs)
    ax.set_xscale("log")
    top = max(x.max() if x.size else 10.0, 10.0)
    ticks = [t for t in _HDR_TICKS if 1 / (1 - t / 100) <= top * 1.0001]
    ax.set_xticks([1 / (1 - t / 100) for t in ticks], [f"{t:g}%" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    if label is not None:
        ax.legend()
    return ax


def plot_timeseries(source, ax=None, in_flight: bool = True, label: str | None = None):
    """Throughput (acked per second, left axis) and messages in flight at each
    bin's end (right axis, dashed) over simulated time.

    ``source``: a :class:`~sim.results.Result` or its ``timeseries`` table.
    Returns the Axes of the throughput; the in-flight Axes is its twin
    (``ax.right_ax``) when ``in_flight`` is True.
    """
    ax = _axes(ax)
    table = source.timeseries if hasattr(source, "timeseries") and hasattr(source, "summary") else source
    prefix = f"{label}: " if label else ""
    (line,) = ax.plot(table["t_s"], table["throughput_msgs_per_s"], label=f"{prefix}throughput")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("acked per second")
    ax.set_ylim(bottom=0)
    if in_flight:
        right = getattr(ax, "right_ax", None) or ax.twinx()
        right.plot(table["t_s"], table["in_flight"], "--", color=line.get_color(), label=f"{prefix}in flight")
        right.set_ylabel("messages in flight (dashed)")
        right.set_ylim(bottom=0)
        right.grid(False)
        ax.right_ax = right
    return ax


def plot_sweep(table, factor: str, metric: str = "throughput_msgs_per_s", ax=None, by: str | None = None,
               logx: bool = False, logy: bool = False, **errorbar_kwargs: Any):
    """A sweep's ``metric`` against ``factor``: the mean over replications with
    its 95% confidence half-width as error bars, one series per value of
    ``by`` (another factor) if given.

    ``table``: what :func:`sim.sweep.run_sweep` returns (one row per run, with
    ``<metric>_mean`` and ``<metric>_ci95`` per grid point), or any table with
    one row per run, whose mean and Student-t interval are then computed here.
    Returns the Axes.
    """
    ax = _axes(ax)
    missing = [c for c in (factor, metric, by) if c is not None and c not in table.columns]
    if missing:
        raise ValueError(f"plot_sweep: the table has no column {missing[0]!r}")
    keys = [factor] if by is None else [by, factor]
    points = _mean_and_ci(table, keys, metric)
    groups = [(None, points)] if by is None else list(points.groupby(by, sort=True))
    for value, rows in groups:
        rows = rows.sort_values(factor)
        label = None if by is None else f"{by} = {value}"
        ax.errorbar(rows[factor], rows["mean"], yerr=rows["ci95"].fillna(0), marker="o", capsize=3,
                    label=label, **errorbar_kwargs)
    ax.set_xlabel(factor)
    ax.set_ylabel(f"{metric} (mean, 95% CI)")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if by is not None:
        ax.legend()
    return ax


def _mean_and_ci(table, keys: Sequence[str], metric: str):
    """One row per grid point: keys, mean and 95% half-width of ``metric``."""
    mean_col, ci_col = f"{metric}_mean", f"{metric}_ci95"
    if mean_col in table.columns and ci_col in table.columns:
        out = table.groupby(keys, sort=True)[[mean_col, ci_col]].first().reset_index()
        return out.rename(columns={mean_col: "mean", ci_col: "ci95"})
    import pandas as pd

    from .stats import mean_ci95

    rows = []
    for key, values in table.groupby(keys, sort=True)[metric]:
        mean, half = mean_ci95(values.dropna().tolist())
        rows.append((*(key if isinstance(key, tuple) else (key,)), mean, half))
    return pd.DataFrame(rows, columns=[*keys, "mean", "ci95"])
