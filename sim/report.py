"""Readable text for a run: what was simulated, what came out, and why."""

from __future__ import annotations

from .config import SimConfig
from .model.system import System
from .results import SATURATED, Result
from .units import format_bandwidth, format_duration

STATION_NAMES = {
    "client_cpu": "client CPU (event loop)",
    "uplink": "uplink bandwidth",
    "read_loop": "broker read loop",
    "partition": "partition stage (lock)",
    "downlink": "downlink bandwidth",
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
    """Why the throughput is what it is, from the measured utilisations."""
    util = result.utilisation
    if not util:
        return "nothing was simulated"
    station = max(util, key=util.get)
    if util[station] >= SATURATED:
        return f"limited by the {STATION_NAMES[station]}: busy {util[station]:.0%} of the time"
    flow = System(result.config).flow
    cause = {
        "sync": "one round trip per message (sync produce)",
        "window": "the window of messages in flight",
        "limit": "the concurrent task limit and its poll",
        "unbounded": "the offered load",
    }[flow]
    if result.config.producer.rate is not None:
        cause = "the offered rate"
    return f"no station is saturated (busiest: {STATION_NAMES[station]}, {util[station]:.0%}); the rate is set by {cause}"


def format_summary(result: Result) -> str:
    s = result.summary
    sent = s["sent"] or 1
    lat = s["latency_ms"]

    def ms(value):
        return "-" if value is None else f"{value:,.3f}"

    lines = [
        describe_system(result.config),
        f"  sent        {s['sent']:>12,}",
        f"  acked       {s['acked']:>12,}  ({s['acked'] / sent:.2%})",
        f"  timed out   {s['timed_out']:>12,}  (ghosts, stored anyway: {s['ghosts']:,})",
        f"  in flight   {s['in_flight']:>12,}" + ("  (run stopped by run.duration)" if result.records.cut else ""),
        f"  makespan    {s['makespan_s']:>12,.3f} s",
        f"  throughput  {(s['throughput_msgs_per_s'] or 0):>12,.0f} msg/s",
        f"  latency ms  p50 {ms(lat['p50'])}  p99 {ms(lat['p99'])}  p99.9 {ms(lat['p999'])}  max {ms(lat['max'])}",
    ]
    util = result.utilisation
    if util:
        busy = "  ".join(f"{name} {value:.0%}" for name, value in sorted(util.items(), key=lambda kv: -kv[1]))
        lines.append(f"  busy        {busy}")
    lines.append(f"  why         {explain(result)}")
    return "\n".join(lines)


def format_plan(result) -> str:
    """The planner's answer as a table, its recommendation and how to reproduce it."""
    request = result.request
    lines = [f"target: {request.rate:,.0f} msg/s" + (f", p99 <= {request.p99 * 1e3:,.0f} ms" if request.p99 else "")
             + f"; {sum(1 for c in result.candidates if c.pruned)} of {len(result.candidates)} combinations ruled "
             "out by analytic bounds, these simulated:"]
    lines.append(f"  {'proc':>4} {'prod/proc':>9} {'parts':>5} {'limit':>6} {'msg/s':>10} {'p99 ms':>9} "
                 f"{'timeouts':>8}  busiest")
    for c in [c for c in result.candidates if c.outcome is not None]:
        o = c.outcome
        mark = "  <- meets the target" if c.holds else ""
        lines.append(f"  {c.processes:>4} {c.producers_per_process:>9} {c.partitions:>5} "
                     f"{'none' if c.limit is None else c.limit:>6} {o['throughput_msgs_per_s']:>10,.0f} "
                     f"{o['p99_ms']:>9,.1f} {o['timed_out']:>8}  {o['bottleneck']} "
                     f"{o['busiest_utilisation']:.0%}{mark}")
    if result.recommendation is not None:
        r = result.recommendation
        lines.append(f"recommendation: {r.processes} process(es) x {r.producers_per_process} producer(s), "
                     f"{r.partitions} partition(s), concurrent_task_limit {'none' if r.limit is None else r.limit}")
        settings = " ".join(f"--set {k}={'none' if v is None else v}" for k, v in r.settings.items())
        lines.append(f"reproduce: sim simulate {settings}")
    else:
        lines.append(f"no plan: {result.reason}.")
        lines.append(f"the most that system sustains: {result.best_rate:,.0f} msg/s")
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
