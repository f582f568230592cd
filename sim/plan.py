"""Capacity planning: which system reaches a target rate, and what is the most a system sustains.

:func:`plan` answers *"we need R messages per second at this RTT: how many
clients (producer processes, each with its own event loop and connection),
producers per client, partitions, and which in-flight limit?"*:

1. the search goes from small to large: one client, then two, and so on; at
   each size every combination of producers per client, partitions and limit
   is a candidate, each producer offered its share of R as an open-loop
   Poisson rate;
2. analytic bounds prune those that cannot work: a p99 bound below one round
   trip, an ``ack_wait`` no longer than a round trip, a station (or a
   connection's TCP window) that would be busier than ``max_busy``, an
   in-flight limit below what Little's law needs;
3. simulation confirms the survivors, cheapest first (fewest clients, then
   partitions, then producers per client, then the smallest limit), and the
   search stops at the first that holds;
4. the recommendation is that one, with the dotted-key settings that reproduce
   it in ``sim simulate`` and the summary that run prints.

A candidate holds when, in its simulated run:

* nothing times out;
* no station, and no connection window, is busier than ``max_busy`` (80% by
  default: headroom for the moments when things vary);
* of the messages *offered* in the run's middle half (the arrivals the seed
  draws, counted again from the same random streams, so that Poisson noise in
  the offered load is not mistaken for a shortfall), at least 97% are acked;
* the delay from intended send time to ack does not grow (by at most 1% of
  the time elapsed: a system offered a fraction e more than it drains lets it
  grow by e);
* the p99 latency from intended send time, as ``sim simulate`` reports it in
  ``latency_from_intended_ms``, is within the bound.

:func:`max_rate` finds the highest rate one given config sustains under the
same test, the way OpenMessaging Benchmark does: raise the offered rate
multiplicatively while it holds, then bisect between the last rate that held
and the first that did not.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .analytic import capacities, round_trip
from .config import InputError, SimConfig, build_config
from .model.records import ACKED
from .model.system import System

LIMITS = (100, 250, 500, 1000, 2000, 5000, 10000, None)
PARTITIONS = (1, 2, 4, 8)
PRODUCERS_PER_CLIENT = (1, 2, 4)
MAX_BUSY = 0.8  # default: no station busier than this in a recommended system
DELIVERED = 0.97  # acked / offered that counts as sustaining the rate
STATION_LABELS = {"connection": "connection_window"}


@dataclass(frozen=True)
class Request:
    """What the user needs and what they are willing to run."""

    rate: float
    overrides: dict[str, Any] = field(default_factory=dict)  # rtt, payload, bandwidth, loss, a calibrated profile...
    p99: float | None = None  # seconds
    max_producers: int = 32
    max_clients: int = 16
    seed: int = 1
    max_busy: float = MAX_BUSY

    def __post_init__(self):
        if not (isinstance(self.rate, (int, float)) and math.isfinite(self.rate) and self.rate > 0):
            raise InputError(f"--rate = {self.rate}: must be a number of messages per second > 0")
        if self.p99 is not None and not self.p99 > 0:
            raise InputError(f"--p99 = {self.p99}: must be a duration > 0")
        if self.max_producers < 1:
            raise InputError(f"--max-producers = {self.max_producers}: must be at least 1")
        if self.max_clients < 1:
            raise InputError(f"--max-clients = {self.max_clients}: must be at least 1")
        if not (isinstance(self.max_busy, (int, float)) and 0 < self.max_busy <= 1):
            raise InputError(f"--max-busy = {self.max_busy}: must be a fraction > 0 and <= 1 (e.g. 0.8 or 80%)")


@dataclass
class Candidate:
    clients: int
    producers_per_client: int
    partitions: int
    limit: int | None
    settings: dict[str, Any]
    pruned: str | None = None  # why analytic bounds rule it out
    pruned_by: str | None = None  # the same, as one word of the limited_by vocabulary (or ack_wait)
    outcome: dict[str, Any] | None = None  # the simulated run, when simulated

    @property
    def cost(self) -> tuple:
        limit = math.inf if self.limit is None else self.limit
        return (self.clients, self.partitions, self.producers_per_client, limit)

    @property
    def holds(self) -> bool:
        return self.outcome is not None and self.outcome["holds"]

    def describe(self, with_summary: bool = False) -> dict[str, Any]:
        out = {
            "clients": self.clients,
            "producers_per_client": self.producers_per_client,
            "partitions": self.partitions,
            "concurrent_task_limit": self.limit,
        }
        if self.outcome:
            out.update({k: v for k, v in self.outcome.items() if k not in ("holds", "summary")})
            out["meets_target"] = self.holds
            if with_summary:
                out["summary"] = self.outcome["summary"]
        return out


def _duration(rate: float, config: SimConfig | None = None) -> float:
    """Long enough for about 100,000 messages (at least 2 simulated seconds), so that
    an offered load a few percent above what the system drains shows as a growing
    backlog above the noise of Poisson arrivals, and for its middle half to be eight
    round trips long."""
    seconds = max(2.0, 100_000 / rate)
    if config is not None:
        seconds = max(seconds, 16 * config.link.rtt)
    return seconds


def candidate_settings(request: Request, clients: int, per_client: int, partitions: int, limit) -> dict:
    producers = clients * per_client
    settings = {
        **request.overrides,
        "clients": clients,
        "producers_per_client": per_client,
        "broker.partitions": partitions,
        "producer.mode": "nonblocking",
        "producer.window": None,
        "producer.concurrent_task_limit": limit,
        "producer.rate": request.rate / producers,
        "producer.messages": None,
        "producer.start_jitter": "10ms",
        "run.duration": _duration(request.rate, build_config(request.overrides)),
        "run.seed": request.seed,
    }
    if "producer.window" not in request.overrides:
        del settings["producer.window"]
    if "run.records" in request.overrides:  # the verdict reads every message
        settings["run.records"] = "full"
    return settings


def loads(config: SimConfig, rate: float) -> dict[str, float]:
    """Busy fraction of each station kind's busiest server (and of each connection's
    window) when the whole system carries ``rate`` messages/s."""
    caps = capacities(config)
    return {STATION_LABELS.get(name, name): (rate / cap if cap > 0 else math.inf)
            for name, cap in caps.items() if not math.isinf(cap)}


def prune(config: SimConfig, request: Request) -> tuple[str, str] | None:
    """Why analytic bounds rule this candidate out, or None: (what, in words).

    The reasons that no number of clients can fix come first: a round trip
    longer than the p99 bound or than ``ack_wait``."""
    system = System(config)
    trip = round_trip(system)
    if request.p99 is not None and request.p99 < trip:
        return "round_trip", (f"a round trip alone takes {trip * 1e3:,.1f} ms, more than the p99 bound of "
                              f"{request.p99 * 1e3:,.1f} ms")
    if config.producer.ack_wait <= trip:
        return "ack_wait", (f"ack_wait ({config.producer.ack_wait:g} s) is no longer than a round trip "
                            f"({trip:,.3g} s): every message would time out")
    for station, load in sorted(loads(config, request.rate).items(), key=lambda kv: -kv[1]):
        if load > request.max_busy:
            return station, (f"the {station.replace('_', ' ')} would be {load:.0%} busy, more than "
                             f"--max-busy {request.max_busy:.0%}")
    limit = config.producer.concurrent_task_limit
    if limit is not None:
        # Little: a producer at rate r with round trip T has r T messages in flight on
        # average; leave room for bursts before the drain-to-half limiter engages
        needed = 2 * config.producer.rate * trip + 10
        if limit < needed:
            return "limiter", (f"a limit of {limit} is below the ~{needed:,.0f} in flight that "
                               f"{config.producer.rate:,.0f} msg/s per producer needs")
    return None


def offered_between(config: SimConfig, start: float, end: float) -> int:
    """How many messages the producers' open-loop arrivals put in [start, end): the
    same draws the run made, from the same seeded streams."""
    system = System(config)
    streams = system.streams()
    limit = math.inf if config.producer.messages is None else config.producer.messages
    total = 0
    for j in range(system.producers):
        gaps = streams.arrival_gaps[j]
        if gaps is None:
            continue
        t = streams.start_times[j] + next(gaps)
        made = 0
        while t < end and made < limit:
            if t >= start:
                total += 1
            t += next(gaps)
            made += 1
    return total


def judge(config: SimConfig, request: Request) -> dict[str, Any]:
    """Simulate one config and say whether it sustains its offered rate (see the
    module's description); ``failed`` lists every test it missed."""
    from .results import run

    result = run(config)
    s = result.summary
    a = result.arrays
    span = config.run.duration
    start, end = span / 4, 3 * span / 4
    middle = (a["intended"] >= start) & (a["intended"] < end)
    acked = int((middle & (a["status"] == ACKED)).sum())
    offered = offered_between(config, start, end)
    delivered = acked / offered if offered else 1.0
    p99 = (s.get("latency_from_intended_ms") or {}).get("p99")
    util = s["utilisation"]
    busiest = max(util, key=util.get) if util else None
    busy = float(util[busiest]) if busiest else 0.0
    failed = []
    if s["timed_out"]:
        failed.append(f"{s['timed_out']:,} timed out")
    if busy > request.max_busy:
        failed.append(f"{STATION_LABELS.get(busiest, busiest)} {busy:.0%} busy")
    if delivered < DELIVERED:
        failed.append(f"{delivered:.1%} of the offered load acked")
    if not backlog_steady(result):
        failed.append("the backlog grows")
    if request.p99 is not None and (p99 is None or p99 > request.p99 * 1e3):
        failed.append("p99 above the bound" if p99 is not None else "nothing acked")
    return {
        "offered_msgs_per_s": float(config.producer.rate * System(config).producers),
        "max_in_flight": max_in_flight(a),
        "throughput_msgs_per_s": s["throughput_msgs_per_s"],
        "delivered": delivered,  # what the verdict judges: acked / offered, messages meant for the window
        "judged_window_s": [start, end],
        "offered_in_window": offered,
        "acked_in_window": acked,
        "p99_ms": p99,
        "timed_out": int(s["timed_out"]),
        "busiest_station": None if busiest is None else STATION_LABELS.get(busiest, busiest),
        "busiest_utilisation": busy,
        "headroom": 1.0 - busy,
        "limited_by": s["limited_by"],
        "failed": failed,
        "holds": not failed,
        "summary": s,
    }


def max_in_flight(a: dict[str, np.ndarray]) -> int:
    """The most messages any one producer had in flight at once (created, not yet
    acked or timed out), counting a creation before a resolution at the same instant."""
    done = ~np.isnan(a["resolved"])
    times = np.concatenate([a["created"], a["resolved"][done]])
    delta = np.concatenate([np.ones(a["created"].size), -np.ones(int(done.sum()))])
    who = np.concatenate([a["producer"], a["producer"][done]])
    if not times.size:
        return 0
    order = np.lexsort((-delta, times, who))
    who, delta = who[order], delta[order]
    running = np.cumsum(delta)
    starts = np.r_[0, np.flatnonzero(np.diff(who)) + 1]
    base = np.repeat(running[starts] - delta[starts], np.diff(np.r_[starts, who.size]))
    return int((running - base).max())


def backlog_steady(result, max_slope: float = 0.01) -> bool:
    """Does the backlog hold steady? A system offered a fraction e more than it drains
    piles messages up, in flight or still waiting to be produced, so the delay from
    each message's intended send time to its ack grows by about e seconds per second.
    Over the run's middle half that slope must stay under ``max_slope``."""
    a = result.arrays
    span = result.config.run.duration
    middle = (a["status"] == ACKED) & (a["intended"] >= span / 4) & (a["intended"] < 3 * span / 4)
    if middle.sum() < 10:
        return True
    slope = np.polyfit(a["intended"][middle], (a["resolved"] - a["intended"])[middle], 1)[0]
    return bool(slope <= max_slope)


def _judge_job(job) -> dict[str, Any]:
    settings, request = job
    return judge(build_config(settings), request)


@dataclass
class Plan:
    request: Request
    candidates: list[Candidate]
    recommendation: Candidate | None
    combinations: int = 0  # in the whole search space
    reason: str | None = None  # when nothing reaches the target
    limited_by: str | None = None
    best_rate: float | None = None

    @property
    def feasible(self) -> bool:
        return self.recommendation is not None

    @property
    def simulated(self) -> list[Candidate]:
        return [c for c in self.candidates if c.outcome is not None]

    @property
    def pruned(self) -> int:
        return sum(1 for c in self.candidates if c.pruned)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target_msgs_per_s": self.request.rate,
            "p99_bound_ms": None if self.request.p99 is None else self.request.p99 * 1e3,
            "max_busy": self.request.max_busy,
            "feasible": self.feasible,
            "combinations": self.combinations,
            "considered": len(self.candidates),
            "pruned": self.pruned,
            "candidates": [c.describe() for c in self.simulated],
        }
        if self.recommendation is not None:
            values = cli_values(self.recommendation.settings)
            out["recommendation"] = {**self.recommendation.describe(with_summary=True), "set": values,
                                     "reproduce": reproduce_command(values)}
        else:
            out.update({"reason": self.reason, "limited_by": self.limited_by, "best_rate_msgs_per_s": self.best_rate})
        return out


def cli_values(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as ``sim simulate --set`` takes them (None is written ``none``)."""
    return {key: ("none" if value is None else value) for key, value in settings.items()}


def reproduce_command(values: dict[str, Any]) -> str:
    """The ``sim simulate`` command line that runs exactly these settings."""
    def text(value):
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    return "sim simulate " + " ".join(f"--set {shlex.quote(f'{key}={text(value)}')}" for key, value in values.items())


def _level(request: Request, clients: int) -> list[Candidate]:
    """Every combination with ``clients`` clients, pruned, cheapest first."""
    out = []
    for per_client in PRODUCERS_PER_CLIENT:
        if clients * per_client > request.max_producers:
            continue
        for partitions in PARTITIONS:
            for limit in LIMITS:
                settings = candidate_settings(request, clients, per_client, partitions, limit)
                candidate = Candidate(clients, per_client, partitions, limit, settings)
                verdict = prune(build_config(settings), request)
                if verdict is not None:
                    candidate.pruned_by, candidate.pruned = verdict
                out.append(candidate)
    out.sort(key=lambda c: c.cost)
    return out


def _largest(request: Request) -> Candidate:
    """The most capable system allowed: most clients, most producers, most partitions, no limit."""
    clients = min(request.max_clients, request.max_producers)
    per_client = max(p for p in PRODUCERS_PER_CLIENT if p == 1 or clients * p <= request.max_producers)
    settings = candidate_settings(request, clients, per_client, max(PARTITIONS), None)
    candidate = Candidate(clients, per_client, max(PARTITIONS), None, settings)
    verdict = prune(build_config(settings), request)
    if verdict is not None:
        candidate.pruned_by, candidate.pruned = verdict
    return candidate


def plan(request: Request, workers: int | None = None, progress: bool | None = None) -> Plan:
    """Search from one client up; stop at the first candidate that holds (see the module)."""
    from .parallel import default_workers, process_pool
    from .progress import progress_bar

    sizes = range(1, min(request.max_clients, request.max_producers) + 1)
    per_size = sum(1 for k in sizes for p in PRODUCERS_PER_CLIENT if k * p <= request.max_producers)
    combinations = per_size * len(PARTITIONS) * len(LIMITS)
    workers = default_workers() if workers is None else workers
    candidates: list[Candidate] = []
    largest = _largest(request)
    if largest.pruned is not None:
        # every smaller system loads each station at least as much: nothing to simulate
        return _infeasible(request, [largest], combinations, largest)
    bar = progress_bar(combinations, "plan", progress, unit="system")
    pool = None
    try:
        if workers > 1:
            pool = process_pool(workers)
        batch = 2 * workers

        def simulate(chunk: list[Candidate]) -> None:
            jobs = [(c.settings, request) for c in chunk]
            outcomes = list(pool.map(_judge_job, jobs)) if pool is not None else [_judge_job(j) for j in jobs]
            for candidate, outcome in zip(chunk, outcomes):
                candidate.outcome = outcome
            bar.update(len(chunk))

        for clients in sizes:
            level = _level(request, clients)
            candidates.extend(level)
            bar.update(sum(1 for c in level if c.pruned))
            # one shape (partitions, producers per client) at a time, its limits from the smallest;
            # a shape whose run without a limit survives pruning has survivors, and only then
            shapes: dict[tuple, list[Candidate]] = {}
            for c in level:
                if c.pruned is None:
                    shapes.setdefault((c.partitions, c.producers_per_client), []).append(c)
            order = list(shapes.values())
            for start in range(0, len(order), batch):
                group = order[start:start + batch]
                # first each shape's run without a limit; a limit above the most messages any
                # producer had in flight there is never reached, so its run is that same run
                simulate([shape[-1] for shape in group])
                rest = []
                for shape in group:
                    unlimited = shape[-1]
                    assert unlimited.limit is None  # pruning by load spares all of a shape or none
                    for c in shape[:-1]:
                        if c.limit > unlimited.outcome["max_in_flight"]:
                            c.outcome = {**unlimited.outcome, "same_run_as_limit": "none"}
                            bar.update()
                        else:
                            rest.append(c)
                for i in range(0, len(rest), batch):
                    simulate(rest[i:i + batch])
                for shape in group:  # in cost order: the first shape that holds, its smallest limit
                    passing = [c for c in shape if c.holds]
                    best = _confirm(passing, request)
                    if best is not None:
                        bar.update(bar.total - bar.n)
                        return Plan(request, candidates, best, combinations)
    finally:
        if pool is not None:
            pool.shutdown()
        bar.close()
    return _infeasible(request, candidates, combinations, largest)


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _confirm(passing: list[Candidate], request: Request) -> Candidate | None:
    """The cheapest of ``passing`` that holds in a run of its own settings (a candidate
    that shared the run without a limit is simulated again, for its own exact summary)."""
    for candidate in sorted(passing, key=lambda c: c.cost):
        if "same_run_as_limit" in candidate.outcome:
            candidate.outcome = _judge_job((candidate.settings, request))
        if candidate.holds:
            return candidate
    return None


def _infeasible(request: Request, candidates: list[Candidate], combinations: int, largest: Candidate) -> Plan:
    """Nothing reaches the target: name what prevents it, and find the best rate the
    largest allowed system sustains under the same test."""
    scope = (f"no system of at most {_count(request.max_clients, 'client')} and "
             f"{_count(request.max_producers, 'producer')} reaches {request.rate:,.0f} msg/s")
    shape = (f"{_count(largest.clients, 'client')} x {_count(largest.producers_per_client, 'producer')}, "
             f"{largest.partitions} partitions, no limit")
    config = build_config(largest.settings)
    if largest.pruned_by in ("round_trip", "ack_wait"):
        return Plan(request, candidates, None, combinations, reason=f"{scope}: {largest.pruned}",
                    limited_by=largest.pruned_by, best_rate=0.0)
    if largest.pruned is not None:
        reason = f"{scope}: even with {shape} {largest.pruned}"
        what = largest.pruned_by
    else:
        tried = [c for c in candidates if c.outcome is not None]
        if tried:
            worst = max(tried, key=lambda c: c.cost)
            what = worst.outcome["limited_by"]
            reason = (f"{scope}: the largest simulated, {worst.clients} clients x {worst.producers_per_client} "
                      f"producers, {worst.partitions} partitions, limit "
                      f"{'none' if worst.limit is None else worst.limit}, fails: {'; '.join(worst.outcome['failed'])} "
                      f"(limited by {what})")
        else:
            what = None
            reason = f"{scope}: every combination is ruled out by analytic bounds"
    found = max_rate(config, p99=request.p99, max_busy=request.max_busy)
    return Plan(request, candidates, None, combinations, reason=reason, limited_by=what, best_rate=found.rate)


# -- the highest sustainable rate of one config -------------------------------------


@dataclass
class MaxRate:
    rate: float  # total messages/s that held
    outcome: dict[str, Any] | None
    probes: list[tuple[float, bool]]  # (total rate, held)
    config: SimConfig | None = None  # the system at that rate, as simulated

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_rate_msgs_per_s": self.rate,
                               "probes": [{"rate": r, "held": h} for r, h in self.probes]}
        if self.outcome is not None:
            values = cli_values(_changed(self.config))
            out["at_max"] = {k: v for k, v in self.outcome.items() if k not in ("holds", "summary")}
            out["at_max"].update({"set": values, "reproduce": reproduce_command(values),
                                  "summary": self.outcome["summary"]})
        return out


def _changed(config: SimConfig) -> dict[str, Any]:
    """The keys of ``config`` that differ from the defaults, as ``--set`` values."""
    defaults = build_config({}).flat()
    return {key: value for key, value in config.flat().items() if defaults.get(key) != value}


def max_rate(config: SimConfig, p99: float | None = None, precision: float = 0.02,
             max_busy: float = MAX_BUSY) -> MaxRate:
    """The highest total rate ``config``'s producers sustain (open loop, Poisson), no
    station busier than ``max_busy``."""
    from .limits import flow_ceiling

    system = System(config)
    producers = system.producers
    request = Request(rate=1.0, p99=p99, max_busy=max_busy)
    station_cap = min(capacities(config).values())
    ceiling = min(station_cap * max_busy, flow_ceiling(config)[1])
    start = ceiling / 2 if math.isfinite(ceiling) and ceiling > 0 else 1000.0
    probes: list[tuple[float, bool]] = []
    outcomes: dict[float, tuple[dict, SimConfig]] = {}

    def holds(total: float) -> bool:
        cfg = config.replace({
            "producer.rate": total / producers,
            "producer.messages": None,
            "run.duration": _duration(total, config),
            "producer.start_jitter": "10ms",
            "run.records": "full",
        })
        outcome = judge(cfg, request)
        outcomes[total] = (outcome, cfg)
        probes.append((total, outcome["holds"]))
        return outcome["holds"]

    low, high = 0.0, None
    rate = start
    while high is None:  # multiplicative increase until it fails
        if holds(rate):
            low = rate
            rate *= 2
            if rate > 1e9:
                raise InputError("the rate keeps holding past 1e9 msg/s: is anything limiting this system?")
        else:
            high = rate
    if low == 0.0:  # even the first probe failed: come down until one holds
        rate = high
        while low == 0.0:
            rate /= 2
            if rate < 0.1:  # a trickle would take ages to show anything; nothing holds
                return MaxRate(0.0, None, probes)
            if holds(rate):
                low = rate
            else:
                high = rate
    while (high - low) / low > precision:
        middle = (low + high) / 2
        if holds(middle):
            low = middle
        else:
            high = middle
    outcome, cfg = outcomes[low]
    return MaxRate(low, outcome, probes, cfg)
