"""Readable text for a run: what was simulated, what came out, and why."""

from __future__ import annotations

import math

from .config import SimConfig
from .model.system import System
from .results import Result
from .units import format_bandwidth, format_duration

STATION_NAMES = {
    "client_cpu": "client CPU (event loop)",
    "uplink": "uplink bandwidth",
    "read_loop": "broker read loop",
    "partition": "partition stage (lock)",
    "downlink": "downlink bandwidth",
    "relay": "relay on the path (proxy)",
    "host_cpu": "shared cores of a host",
    "broker_cpu": "broker's shared cores",
}


def describe_system(config: SimConfig) -> str:
    """One line: who sends what, how, over which path."""
    system = System(config)
    p = config.producer
    flow = {
        "sync": "sync",
        "window": f"nonblocking, window {p.window}",
        "limit": f"nonblocking, concurrent_task_limit {p.concurrent_task_limit} "
        f"(poll {format_duration(p.limiter_poll)})",
        "unbounded": "nonblocking, no limit",
    }[system.flow]
    workload = f"{p.messages:,} messages" if p.messages is not None else "endless"
    if p.rate is not None:
        workload += f" at {p.rate:,.0f} msg/s ({p.arrivals})"
    plural = lambda n, word: f"{n} {word}{'' if n == 1 else 's'}"  # noqa: E731
    return (
        f"{plural(config.clients, 'client')} x {plural(config.producers_per_client, 'producer')}, {flow}; "
        f"{workload} of {system.message_bytes} B each; RTT {format_duration(config.link.rtt)}, "
        f"{format_bandwidth(config.link.bandwidth)}"
        + (f", loss {config.link.loss:g}" if config.link.loss else "")
        + f"; {plural(config.broker.partitions, 'partition')}"
    )


def explain(result: Result) -> str:
    """What sets the pace (the summary's ``limited_by``), in words, with the number behind it."""
    from .analytic import round_trip
    from .limits import flow_ceiling

    s = result.summary
    util = s["utilisation"]
    if not util:
        return "nothing was simulated"
    what = s["limited_by"]
    config = result.config
    system = System(config)
    trip = f"{round_trip(system) * 1e3:,.1f} ms"
    if what in STATION_NAMES:
        name = STATION_NAMES[what].replace(" (event loop)", ", its event loop")
        text = f"limited by the {name} ({what}): busy {util[what]:.0%} of the time"
    elif what == "connection_window":
        source = f"the Mathis window for loss {config.link.loss:g}" if config.link.loss else "link.window_bytes"
        per = system.connection_messages / config.link.rtt if config.link.rtt > 0 else math.inf
        text = (f"limited by the TCP window (connection_window): each connection may have "
                f"{system.window_bytes:,.0f} B in flight ({source}), {_count(system.connection_messages)} messages per RTT, "
                f"at most {per:,.0f} msg/s each; in use {util['connection']:.0%} of the time")
    elif what == "offered_load":
        busiest = max(util, key=util.get)
        offered = config.producer.rate * system.producers
        text = (f"limited by the offered load (offered_load): {offered:,.0f} msg/s offered and kept up with "
                f"(busiest: {_station_label(busiest)} {util[busiest]:.0%})")
    else:
        _, ceiling = flow_ceiling(config)
        cap = f"{'about' if what == 'limiter' else 'at most'} {ceiling:,.0f} msg/s" if math.isfinite(ceiling) else ""
        p = config.producer
        if what == "round_trip" and system.flow == "sync":
            text = (f"limited by the round trip (round_trip): sync, one message per round trip ({trip}) per "
                    f"producer, {cap}")
        elif what == "round_trip":
            text = (f"limited by the round trip (round_trip): too few messages to keep any station busy; each waits "
                    f"a round trip ({trip})")
        elif what == "window":
            text = (f"limited by the window (window): {p.window:,} in flight per producer, each for a round trip "
                    f"({trip}), {cap}")
        else:
            text = (f"limited by the task limit (limiter): concurrent_task_limit {p.concurrent_task_limit:,} with its "
                    f"{format_duration(p.limiter_poll)} poll, {cap}")
    if s["timed_out"]:
        wait = format_duration(config.producer.ack_wait)
        if config.producer.ack_wait <= round_trip(system):
            text += f"; {s['timed_out']:,} timed out: ack_wait ({wait}) is shorter than a round trip ({trip})"
        else:
            text += f"; {s['timed_out']:,} timed out: acks came back later than ack_wait ({wait})"
    return text


def _station_label(name: str) -> str:
    return "connection window" if name == "connection" else name


def backlog_growth(result: Result) -> float | None:
    """For an open-loop run: messages/s by which the backlog (waiting to be produced
    or in flight) grows over the second half of the offering, or None when it holds
    steady (within 5% of the offered rate and the Poisson noise)."""
    config = result.config
    rate = config.producer.rate
    if rate is None:
        return None
    offered = rate * System(config).producers
    ts = result.timeseries
    width = config.run.bin
    end = result.records.span if config.run.duration is not None else (config.producer.messages or 0) / rate
    end = min(end, result.records.span)
    first, last = int(end / 2 / width), int(end / width)
    if last - first < 2:
        return None
    window = (last - first) * width
    sent = float(ts["sent"].iloc[first:last].sum())
    in_flight = ts["in_flight"].to_numpy()
    growth = (offered * window - sent + in_flight[last - 1] - in_flight[first - 1 if first else 0]) / window
    noise = 3 * math.sqrt(offered * window) / window
    return growth if growth > 0.05 * offered + noise else None


def format_summary(result: Result) -> str:
    s = result.summary
    sent = s["sent"] or 1
    lat = s["latency_ms"]

    def ms(value):
        return "-" if value is None else f"{value:,.3f}"

    def percentiles(stats):
        return (f"p50 {ms(stats['p50'])}  p75 {ms(stats.get('p75'))}  p95 {ms(stats.get('p95'))}  "
                f"p99 {ms(stats['p99'])}  p99.9 {ms(stats['p999'])}  p99.99 {ms(stats.get('p9999'))}  "
                f"max {ms(stats['max'])}")

    lines = [
        describe_system(result.config),
        f"  sent        {s['sent']:>12,}",
        f"  acked       {s['acked']:>12,}  ({s['acked'] / sent:.2%})",
        f"  timed out   {s['timed_out']:>12,}  (ghosts, stored anyway: {s['ghosts']:,})",
        f"  in flight   {s['in_flight']:>12,}" + ("  (run stopped by run.duration)" if result.records.cut else ""),
        f"  makespan    {s['makespan_s']:>12,.3f} s",
        f"  throughput  {(s['throughput_msgs_per_s'] or 0):>12,.0f} msg/s  "
        f"({(s.get('throughput_mb_per_s') or 0):,.3f} MB/s of payload)",
        f"  latency ms  {percentiles(lat)}  (from produce())",
    ]
    per_client = s.get("per_client_msgs_per_s")
    if per_client and result.config.clients > 1:  # as nats bench prints it for its publishers
        lines.insert(-1, f"  per client  min {per_client['min']:,.0f}  avg {per_client['avg']:,.0f}  "
                         f"max {per_client['max']:,.0f}  stddev {per_client['stddev']:,.0f} msg/s")
    if "latency_from_intended_ms" in s:
        lines.append(f"  latency ms  {percentiles(s['latency_from_intended_ms'])}  (from intended send time)")
        growth = backlog_growth(result)
        if growth is not None:
            lines.append(f"  backlog     grows by ~{growth:,.0f} msg/s: the system does not keep up with "
                         "producer.rate, so latency from intended send time keeps rising")
    util = result.utilisation
    if util:
        ordered = sorted(util.items(), key=lambda kv: -kv[1])
        busy = "  ".join(f"{_station_label(name)} {value:.0%}" for name, value in ordered)
        lines.append(f"  busy        {busy}")
    lines.append(f"  why         {explain(result)}")
    return "\n".join(lines)


def format_plan(result) -> str:
    """The planner's answer: the candidates it simulated, its recommendation and how to reproduce it."""
    from .plan import cli_values, reproduce_command

    request = result.request
    head = (f"target: {request.rate:,.0f} msg/s" + (f", p99 <= {request.p99 * 1e3:,.0f} ms" if request.p99 else "")
            + f", no station busier than {request.max_busy:.0%}; ")
    if not result.simulated and result.pruned == len(result.candidates) == 1:
        head += "the largest allowed system is ruled out by analytic bounds, and every smaller one with it"
    else:
        head += (f"searched {len(result.candidates):,} of {result.combinations:,} systems (smallest first), "
                 f"{result.pruned:,} ruled out by analytic bounds")
    lines = [head]
    simulated = result.simulated
    extra = 0
    if result.recommendation is not None:  # what was simulated alongside, beyond the answer: --json has it
        shown = [c for c in simulated if c.cost <= result.recommendation.cost]
        extra, simulated = len(simulated) - len(shown), shown
    if simulated:
        lines.append("simulated (msg/s: acked / run.duration, as `sim simulate` prints it; delivered: acked / offered "
                     "over the run's middle half; p99 from intended send time):")
        lines.append(f"  {'clients':>7} {'prod/client':>11} {'parts':>5} {'limit':>6} {'msg/s':>10} {'delivered':>9} "
                     f"{'p99 ms':>9} {'timeouts':>8}  busiest (headroom)")
        for c in simulated:
            o = c.outcome
            mark = "  <- meets the target" if c.holds else f"  x {', '.join(o['failed'])}"
            if "same_run_as_limit" in o:
                mark += "  (limit never reached: the run without one)"
            p99 = "-" if o["p99_ms"] is None else f"{o['p99_ms']:,.1f}"
            lines.append(f"  {c.clients:>7} {c.producers_per_client:>11} {c.partitions:>5} "
                         f"{'none' if c.limit is None else c.limit:>6} {(o['throughput_msgs_per_s'] or 0):>10,.0f} "
                         f"{o['delivered']:>9.1%} {p99:>9} {o['timed_out']:>8}  {o['busiest_station']} "
                         f"{o['busiest_utilisation']:.0%} ({o['headroom']:.0%}){mark}")
    if extra:
        lines.append(f"  (and {extra} costlier system{'s' if extra > 1 else ''} judged in the same batch: --json "
                     "lists them)")
    if result.recommendation is not None:
        r = result.recommendation
        o = r.outcome
        lines.append(f"recommendation: {r.clients} client(s) x {r.producers_per_client} producer(s), "
                     f"{r.partitions} partition(s), concurrent_task_limit {'none' if r.limit is None else r.limit}: "
                     f"{(o['throughput_msgs_per_s'] or 0):,.0f} msg/s, busiest {o['busiest_station']} "
                     f"{o['busiest_utilisation']:.0%}, limited by {o['limited_by']}")
        lines.append(f"reproduce: {reproduce_command(cli_values(r.settings))}")
    else:
        lines.append(f"no plan: {result.reason}.")
        if result.best_rate:
            lines.append(f"the most the largest system sustains under the same test: {result.best_rate:,.0f} msg/s")
    return "\n".join(lines)


def format_sweep(sweep, table, out: str) -> str:
    """One line per grid point: its factors, mean throughput (95% CI), p99 and timeouts."""
    from .sweep import summarize

    points = summarize(table, list(sweep.factors))
    lines = [f"{len(table)} runs ({len(points)} points x {sweep.replications} replications) -> {out}"]
    for row in points.to_dict("records"):
        factors = "  ".join(f"{k}={row[k]}" for k in sweep.factors)
        ci = row["throughput_msgs_per_s_ci95"]
        lines.append(
            f"  {factors}:  {row['throughput_msgs_per_s_mean']:,.0f} +/- {'-' if ci != ci else f'{ci:,.0f}'} msg/s,"
            f"  p99 {row['latency_p99_ms_mean']:,.1f} ms,  timed out {row['timed_out_mean']:,.1f}"
        )
    return "\n".join(lines)


def _count(value) -> str:
    """A whole count as 1,234; a fraction of one as 2.67."""
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
