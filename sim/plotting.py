"""Tables to figures. Reads pandas tables only; never imports the model.

Figures are reproducible byte for byte: the Agg backend, one fixed style, and
files written without dates or version stamps.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

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


def figure(rows: int = 1, cols: int = 1, width: float = 9.0, height: float = 3.6, **kwargs):
    """A new figure in the project's style, with its axes."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows, cols, figsize=(width, height), **kwargs)
    fig.set_layout_engine("constrained")
    return fig, axes


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` (PNG or SVG by suffix) without dates or software stamps; close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Software": None} if path.suffix == ".png" else {"Date": None, "Creator": None}
    with plt.rc_context(STYLE):
        fig.savefig(path, metadata=metadata)
    plt.close(fig)
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
