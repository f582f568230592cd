"""What a run returns: per-message records, a summary and a time series.

The engine fills typed buffers; this module turns them into numpy arrays once
and into pandas tables only when asked (``Result.messages``,
``Result.timeseries``), so a sweep that reads only ``Result.summary`` never
builds a DataFrame.

Latency is measured from produce() to the processed ack, over acked messages.
Percentiles use the nearest-rank rule of benchmark tools: p99 is the smallest
latency that at least 99% of acked messages do not exceed.

Conventions of the tables: every time is in seconds and says so in its name
(``t_created_s``, ``latency_s``); producers, clients and partitions are all
numbered from 1, as the SDK numbers partitions (``producer.partition = 1``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .config import InputError, SimConfig
from .engine import ACKED, STATUS_NAMES, TIMED_OUT, Records
from .limits import connection_occupancy, limited_by

PERCENTILES = {"p50": 50.0, "p75": 75.0, "p95": 95.0, "p99": 99.0, "p999": 99.9, "p9999": 99.99}
SATURATED = 0.9  # busy fraction from which a station counts as the bottleneck


def histogram_stats_ms(histogram) -> dict[str, float | None]:
    """The same numbers as :func:`latency_stats_ms`, from a fixed-memory histogram."""
    if not histogram.total:
        return {name: None for name in (*PERCENTILES, "max", "mean")}
    out = {name: histogram.percentile(q) * 1e3 for name, q in PERCENTILES.items()}
    out["max"] = histogram.max * 1e3
    out["mean"] = histogram.mean * 1e3
    return out


def latency_stats_ms(latency_s: np.ndarray) -> dict[str, float | None]:
    """p50, p75, p95, p99, p99.9, p99.99, max and mean in milliseconds (None when empty)."""
    if latency_s.size == 0:
        return {name: None for name in (*PERCENTILES, "max", "mean")}
    n = latency_s.size
    # nearest rank: the k-th smallest with k = ceil(q n), guarded against 0.999 * 1000 = 999.0000000000001
    ranks = [max(1, math.ceil(q / 100 * n - 1e-9)) - 1 for q in PERCENTILES.values()]
    values = np.partition(latency_s, ranks)[ranks] * 1e3
    out = {name: float(v) for name, v in zip(PERCENTILES, values)}
    out["max"] = float(latency_s.max() * 1e3)
    out["mean"] = float(latency_s.mean() * 1e3)
    return out


CLIENT_STATS = ("min", "avg", "max", "stddev")


def client_rate_stats(acked_per_client: np.ndarray, makespan: float) -> dict[str, float] | None:
    """Min, mean, max and (population) standard deviation of the clients' acked
    messages per second, as ``nats bench`` prints them for its publishers."""
    if not makespan > 0 or acked_per_client.size == 0:
        return None
    rates = acked_per_client / makespan
    return {"min": float(rates.min()), "avg": float(rates.mean()), "max": float(rates.max()),
            "stddev": float(rates.std())}


@dataclass(repr=False)
class Result:
    """One simulated run of ``config``.

    ``summary`` holds the headline numbers, ``messages`` and ``timeseries`` the
    tables, ``to_dict()`` what ``sim simulate --json`` prints. ``wall_s`` is how
    long the run took on this machine (None when not timed).
    """

    config: SimConfig
    records: Records = field(repr=False)
    wall_s: float | None = None

    def __repr__(self) -> str:
        s = self.summary
        rate = s["throughput_msgs_per_s"]
        p99 = s["latency_ms"]["p99"]
        return (f"<Result: {s['sent']:,} sent, {s['acked']:,} acked, {s['timed_out']:,} timed out; "
                f"{'-' if rate is None else f'{rate:,.0f}'} msg/s, p99 {'-' if p99 is None else f'{p99:,.3f}'} ms; "
                f"limited by {self.limit}>")

    @property
    def limit(self) -> str:
        """What sets the pace, in one word: the summary's ``limited_by``."""
        return str(self.summary.get("limited_by"))

    def _repr_html_(self) -> str:
        """Jupyter's view: the summary as a small table, and what limits the run."""
        from html import escape

        from .report import explain

        s = self.summary
        lat = s["latency_ms"]

        def num(value, fmt):
            return "-" if value is None else format(value, fmt)

        rows = [
            ("sent", num(s["sent"], ",")),
            ("acked", num(s["acked"], ",")),
            ("timed out (ghosts)", f"{s['timed_out']:,} ({s['ghosts']:,})"),
            ("in flight at the end", num(s["in_flight"], ",")),
            ("makespan", f"{s['makespan_s']:,.3f} s"),
            ("throughput", f"{num(s['throughput_msgs_per_s'], ',.0f')} msg/s, "
                           f"{num(s['throughput_mb_per_s'], ',.3f')} MB/s"),
            ("latency p50 / p99 / p99.9 / max",
             " / ".join(num(lat[k], ",.3f") for k in ("p50", "p99", "p999", "max")) + " ms"),
            ("what limits it", explain(self)),
        ]
        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>{escape(v)}</td>"
                       "</tr>" for k, v in rows)
        return f"<table><caption style='text-align:left'>sim.Result</caption>{body}</table>"

    @property
    def summary_only(self) -> bool:
        """True when the run kept no per-message records (``run.records = summary``)."""
        return self.records.tally is not None

    # -- arrays ---------------------------------------------------------------
    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        r = self.records
        if self.summary_only:
            raise InputError("this run kept no per-message records (run.records = summary); "
                             "run it with run.records = full for them")
        created = np.frombuffer(r.created, dtype=np.float64) if len(r.created) else np.zeros(0)
        out = {
            # 0-based inside the engine
            "producer": np.frombuffer(r.producer, dtype=np.int32) if len(r.producer) else np.zeros(0, np.int32),
            "partition": (np.frombuffer(r.partition, dtype=np.int32) + 1) if len(r.partition) else np.zeros(0, np.int32),
            "created": created,
            "intended": np.frombuffer(r.intended, dtype=np.float64) if r.intended is not None and len(r.intended) else created,
            "sent": np.frombuffer(r.sent, dtype=np.float64) if len(r.sent) else np.zeros(0),
            "resolved": np.frombuffer(r.resolved, dtype=np.float64) if len(r.resolved) else np.zeros(0),
            "status": np.frombuffer(r.status, dtype=np.int8) if len(r.status) else np.zeros(0, np.int8),
        }
        stored = np.array(r.stored, dtype=np.float64)
        stored[stored > r.stored_until] = np.nan  # computed ahead, but after the run was stopped
        out["stored"] = stored
        return out

    # -- summary ----------------------------------------------------------------
    @cached_property
    def tally(self):
        """The run's counts, acks per client, latency histograms and per-bin counts: kept
        by the engine in summary mode, made from the records with full records. Summary
        and time series come from it in both modes."""
        if self.summary_only:
            return self.records.tally
        from .model.records import Tally

        cfg = self.config
        tally = Tally(cfg.producer.rate is not None, cfg.run.bin, cfg.clients, cfg.producers_per_client,
                      histograms=False)  # (percentiles come from the messages, exactly)
        tally.add(self.arrays)  # (stores after the run are NaN in the arrays already)
        return tally

    @cached_property
    def makespan_s(self) -> float:
        """From time 0 to the last resolution, or to run.duration if that came first."""
        if self.records.cut:
            return float(self.config.run.duration)
        last = self.tally.last_resolution
        return 0.0 if math.isnan(last) else last

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The run's headline numbers (the keys of ``sim simulate --json``). Latency
        percentiles are exact with full records, from the histograms in summary mode."""
        tally = self.tally
        makespan = self.makespan_s
        out: dict[str, Any] = {
            "sent": tally.sent,
            "acked": tally.acked,
            "timed_out": tally.timed_out,
            "ghosts": tally.ghosts,
            "stored": tally.stored,
            "in_flight": tally.in_flight,
            "dropped": 0,
            "makespan_s": makespan,
            "throughput_msgs_per_s": (tally.acked / makespan) if makespan > 0 else None,
            "throughput_mb_per_s": self._mb_per_s(tally.acked, makespan),
            "per_client_msgs_per_s": client_rate_stats(tally.acked_by_client, makespan),
        }
        if self.summary_only:
            out["latency_ms"] = histogram_stats_ms(tally.latency)
            if tally.from_intended is not None:
                out["latency_from_intended_ms"] = histogram_stats_ms(tally.from_intended)
        else:
            a = self.arrays
            acked = a["status"] == ACKED
            out["latency_ms"] = latency_stats_ms((a["resolved"] - a["created"])[acked])
            if self.config.producer.rate is not None:
                out["latency_from_intended_ms"] = latency_stats_ms((a["resolved"] - a["intended"])[acked])
        return self._with_stations(out)

    def _mb_per_s(self, acked: int, makespan: float) -> float | None:
        """Acked payload in MB (10^6 bytes) per second, as ``nats bench`` counts it."""
        return acked * self.config.producer.payload_bytes / makespan / 1e6 if makespan > 0 else None

    def _with_stations(self, out: dict[str, Any]) -> dict[str, Any]:
        util = self.utilisation
        busiest = max(util, key=util.get) if util else None
        out["utilisation"] = util
        out["busiest_station"] = busiest
        # a station is the bottleneck only when it is (nearly) always busy; otherwise
        # flow control, round trips or the offered load set the pace
        out["bottleneck"] = busiest if busiest is not None and util[busiest] >= SATURATED else None
        out["simulated_s"] = self.records.span
        if self.records.collections is not None:  # client.gc_messages: the interpreter's full collections
            count, seconds = self.records.collections
            out["client_gc"] = {"full_collections": int(count), "cpu_s": float(seconds)}
        cpu = self.cpu_us_per_msg
        if cpu:
            out["cpu_us_per_msg"] = cpu
        out["limited_by"] = limited_by(self.config, out)
        return out

    @cached_property
    def cpu_us_per_msg(self) -> dict[str, float]:
        """CPU time per message sent, in microseconds, summed over every process of a kind:
        ``client`` (the client processes' CPUs, collections included), ``broker`` (its read
        loops and partition stages) and ``relay`` (with ``link.relay``). These are what
        ``sim measure`` records as ``client_cpu_us_per_msg``, ``server_cpu_us_per_msg`` and
        ``proxy_cpu_us_per_msg``. Empty when nothing was sent."""
        sent = self.tally.sent
        if not sent:
            return {}
        busy = self.records.busy
        kinds = {"client": ("client_cpu",), "broker": ("read_loop", "partition"), "relay": ("relay",)}
        out = {}
        for kind, stations in kinds.items():
            if any(name in busy for name in stations):
                out[kind] = sum(sum(busy.get(name, ())) for name in stations) / sent * 1e6
        return out

    @cached_property
    def utilisation(self) -> dict[str, float]:
        """Busy fraction of the simulated span of the busiest server of each station, and
        ``connection``: the mean occupancy of the connections' TCP windows."""
        span = self.records.span
        if not span > 0:
            return {}
        util = {name: min(1.0, max(busy) / span) for name, busy in self.records.busy.items()}
        carried = self.tally.stored
        connection = connection_occupancy(self.config, carried, span)
        if connection is not None:
            util["connection"] = connection
        return util

    # -- tables -------------------------------------------------------------------
    @cached_property
    def messages(self):
        """One row per message created, in creation order.

        ``producer``, ``client`` and ``partition`` count from 1; ``seq`` is the
        message's number within its producer, from 0. Times are seconds from
        the start of the run: ``t_intended_s`` (open loop: when it was due),
        ``t_created_s`` (produce()), ``t_sent_s`` (its last byte left on the
        uplink), ``t_stored_s`` (the partition appended it; NaN if never),
        ``t_resolved_s`` (ack processed or timed out; NaN while in flight);
        ``latency_s`` = t_resolved_s - t_created_s for acked messages.
        """
        import pandas as pd

        a = self.arrays
        producer = a["producer"]
        status = a["status"]
        acked = status == ACKED
        table = pd.DataFrame(
            {
                "producer": producer + 1,
                "client": producer // self.config.producers_per_client + 1,
                "seq": pd.Series(producer).groupby(producer).cumcount().to_numpy(),
                "partition": a["partition"],
                "t_intended_s": a["intended"],
                "t_created_s": a["created"],
                "t_sent_s": a["sent"],
                "t_stored_s": a["stored"],
                "t_resolved_s": a["resolved"],
                "status": pd.Categorical.from_codes(status, categories=list(STATUS_NAMES)),
                "ghost": (status == TIMED_OUT) & ~np.isnan(a["stored"]),
                "latency_s": np.where(acked, a["resolved"] - a["created"], np.nan),
            }
        )
        table.index.name = "message"
        return table

    @cached_property
    def timeseries(self):
        """Per bin of ``run.bin`` seconds: messages sent, acked, timed out, throughput, in flight at the bin's end.

        Bin k holds the times in [k * run.bin, (k + 1) * run.bin); a message is in
        flight at a bin's end when it was sent in that bin or before and resolved
        after it. Both record modes count with the same rule (``records.bin_index``).
        """
        import pandas as pd

        counts = self.tally.bins
        width = self.config.run.bin
        span = max(self.records.span, self.makespan_s)
        bins = max(1, math.ceil(span / width - 1e-9))

        def fit(values: np.ndarray) -> np.ndarray:
            """``values`` on exactly ``bins`` bins; anything past the last falls into it."""
            out = np.zeros(bins, dtype=np.int64)
            head = values[:bins]
            out[: head.size] = head
            out[-1] += values[bins:].sum()
            return out

        sent, acked, timed_out = (fit(counts[name]) for name in ("sent", "acked", "timed_out"))
        in_flight = np.cumsum(sent) - np.cumsum(acked + timed_out)
        return pd.DataFrame(
            {
                "t_s": np.arange(bins) * width,
                "sent": sent,
                "acked": acked,
                "timed_out": timed_out,
                "throughput_msgs_per_s": acked / width,
                "in_flight": in_flight,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """What ``sim simulate --json`` prints: the summary, the resolved config
        it came from, the simulator's version and the wall time of the run.

        ``wall_s`` is the only value that differs between two runs of the same
        config and seed; everything else is the same to the byte.
        """
        from . import __version__

        return {**self.summary, "config": self.config.flat(), "sim_version": __version__, "wall_s": self.wall_s}


def flat_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary as one flat row: ``latency_ms.p99`` becomes ``latency_p99_ms``,
    ``utilisation.uplink`` becomes ``utilisation_uplink``, ``client_gc.cpu_s`` ``client_gc_cpu_s``,
    ``cpu_us_per_msg.client`` ``client_cpu_us_per_msg`` (the name of ``sim measure``'s column)."""
    row: dict[str, Any] = {}
    for key, value in summary.items():
        if key in ("latency_ms", "latency_from_intended_ms"):
            stem = key[: -len("_ms")]
            for name, v in value.items():
                row[f"{stem}_{name}_ms".replace("latency_from_intended", "latency_intended")] = v
        elif key in ("utilisation", "client_gc"):
            for name, v in value.items():
                row[f"{key}_{name}"] = v
        elif key == "cpu_us_per_msg":
            for name, v in value.items():
                row[f"{name}_cpu_us_per_msg"] = v
        elif key == "per_client_msgs_per_s":
            for name in CLIENT_STATS:
                row[f"per_client_{name}_msgs_per_s"] = None if value is None else value[name]
        else:
            row[key] = value
    return row


ENGINES = ("fast", "simpy")


def run(config: SimConfig | None = None, engine: str = "fast", **overrides: Any) -> Result:
    """Simulate ``config`` (defaults if None) with optional dotted-key overrides.

    ``run(link__rtt="10ms")`` is shorthand for ``run(build_config({"link.rtt": "10ms"}))``.
    ``engine="simpy"`` runs the SimPy model (``sim.simpy_model``) instead of the fast
    engine: the same numbers, message by message, much more slowly.
    """
    from .config import build_config

    from collections.abc import Mapping

    from .budget import check

    if engine not in ENGINES:
        raise InputError(f"engine = {engine!r}: allowed: {', '.join(ENGINES)}")
    if isinstance(config, Mapping):  # run({"link.rtt": "10ms"}): dotted-key overrides
        config = build_config(config)
    if config is not None and not isinstance(config, SimConfig):
        raise InputError(f"run(config): expected a SimConfig from sim.build_config or a dict of dotted keys, "
                         f"not {type(config).__name__}")
    if config is None or overrides:
        config = build_config({k.replace("__", "."): v for k, v in overrides.items()}, base=config)
    check(config, engine=engine)  # refuse absurd work up front, with one line naming the key
    if engine == "simpy":
        from .simpy_model import run_simpy

        start = time.perf_counter()
        records = run_simpy(config)
        return Result(config, records, wall_s=time.perf_counter() - start)
    from .engine import run_records
    from .model.system import System

    start = time.perf_counter()
    records = run_records(System(config))
    return Result(config, records, wall_s=time.perf_counter() - start)
