"""Capacity planning: which system reaches a target rate, and what is the most a system sustains.

:func:`plan` answers *"we need R messages per second at this RTT: how many
processes, producers per process, partitions, and which in-flight limit?"*:

1. every combination in the search space is a candidate, each producer
   offered its share of R as an open-loop Poisson rate;
2. analytic bounds prune those that cannot work (a station loaded past 90%,
   an in-flight limit below what Little's law needs, a p99 bound below one
   round trip);
3. simulation confirms the survivors, cheapest first (fewest processes, then
   partitions, then producers per process, then the smallest limit), until the
   cheapest one that holds is found and its cost level is covered;
4. the recommendation is that cheapest one, with the dotted-key settings that
   reproduce it in ``sim simulate``.

A candidate holds when nothing times out and, over the messages meant to be
sent in the run's middle half: at least 97% are acked (at 97% of the offered
rate), the delay from intended send time to ack does not grow (by at most 1%
of the time elapsed: a system offered a fraction e more than it drains lets it
grow by e), and its p99, counted from each message's *intended* send time (so a
stalled producer cannot hide its own delay), is within the bound.

:func:`max_rate` finds the highest rate one given config sustains under the
same test, the way OpenMessaging Benchmark does: raise the offered rate
multiplicatively while it holds, then bisect between the last rate that held
and the first that did not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .analytic import bounds, round_trip
from .config import InputError, SimConfig, build_config
from .model.system import System

LIMITS = (100, 250, 500, 1000, 2000, 5000, 10000, None)
PARTITIONS = (1, 2, 4, 8)
PRODUCERS_PER_PROCESS = (1, 2, 4)
HEADROOM = 0.9  # a station planned above this utilisation is pruned
DELIVERED = 0.97  # acked / offered that counts as sustaining the rate


@dataclass(frozen=True)
class Request:
    """What the user needs and what they are willing to run."""

    rate: float
    overrides: dict[str, Any] = field(default_factory=dict)  # rtt, payload, bandwidth, loss, ...
    p99: float | None = None  # seconds
    max_producers: int = 32
    max_processes: int = 16
    seed: int = 1

    def __post_init__(self):
        if not (isinstance(self.rate, (int, float)) and math.isfinite(self.rate) and self.rate > 0):
            raise InputError(f"--rate = {self.rate}: must be a number of messages per second > 0")
        if self.p99 is not None and not self.p99 > 0:
            raise InputError(f"--p99 = {self.p99}: must be a duration > 0")
        if self.max_producers < 1 or self.max_processes < 1:
            raise InputError("--max-producers and --max-processes must be at least 1")


@dataclass
class Candidate:
    processes: int
    producers_per_process: int
    partitions: int
    limit: int | None
    settings: dict[str, Any]
    pruned: str | None = None  # why analytic bounds rule it out
    outcome: dict[str, Any] | None = None  # the simulated run, when simulated

    @property
    def cost(self) -> tuple:
        return (self.processes, self.partitions, self.producers_per_process, math.inf if self.limit is None else self.limit)

    @property
    def holds(self) -> bool:
        return self.outcome is not None and self.outcome["holds"]

    def describe(self) -> dict[str, Any]:
        out = {
            "processes": self.processes,
            "producers_per_process": self.producers_per_process,
            "partitions": self.partitions,
            "concurrent_task_limit": self.limit,
        }
        if self.outcome:
            out.update({k: v for k, v in self.outcome.items() if k != "holds"})
            out["meets_target"] = self.holds
        return out


def _duration(rate: float, config: SimConfig | None = None) -> float:
    """Long enough for about 100,000 messages (2 to 20 simulated seconds), and for
    its middle half to be eight round trips long."""
    seconds = min(20.0, max(2.0, 100_000 / rate))
    if config is not None:
        seconds = max(seconds, 16 * config.link.rtt)
    return seconds


def candidate_settings(request: Request, processes: int, per_process: int, partitions: int, limit) -> dict:
    producers = processes * per_process
    return {
        **request.overrides,
        "clients": processes,
        "producers_per_client": per_process,
        "broker.partitions": partitions,
        "producer.mode": "nonblocking",
        "producer.concurrent_task_limit": limit,
        "producer.rate": request.rate / producers,
        "producer.messages": None,
        "producer.start_jitter": "10ms",
        "run.duration": _duration(request.rate, build_config(request.overrides)),
        "run.seed": request.seed,
    }


def prune(config: SimConfig, request: Request) -> str | None:
    """Why analytic bounds rule this candidate out, or None."""
    system = System(config)
    b = bounds(system)
    for station, demand in b.demands.items():
        load = request.rate * demand
        if load > HEADROOM:
            return f"{station} would be {load:.0%} busy"
    trip = round_trip(system)
    if request.p99 is not None and request.p99 < trip:
        return f"a round trip alone takes {trip * 1e3:.1f} ms"
    if config.producer.ack_wait <= trip:
        return "ack_wait is shorter than a round trip"
    limit = config.producer.concurrent_task_limit
    if limit is not None:
        # Little: a producer at rate r with round trip T has r T messages in flight on
        # average; leave room for bursts before the drain-to-half limiter engages
        needed = 2 * config.producer.rate * trip + 10
        if limit < needed:
            return f"a limit of {limit} is below the ~{needed:.0f} in flight that {config.producer.rate:,.0f} msg/s needs"
    return None


def judge(config: SimConfig, request: Request) -> dict[str, Any]:
    """Simulate one config and say whether it sustains its offered rate.

    The verdict looks at the messages meant to be sent in the run's middle half
    (by intended send time), so that neither the first round trip nor the
    messages still under way at the end bias it.
    """
    from .results import run

    result = run(config)
    s = result.summary
    a = result.arrays
    span = config.run.duration
    middle = (a["intended"] >= span / 4) & (a["intended"] < 3 * span / 4)
    acked = middle & (a["status"] == 1)
    offered = config.producer.rate * System(config).producers
    delivered = acked.sum() / max(1, middle.sum())
    measured = acked.sum() / (span / 2)
    delay = (a["resolved"] - a["intended"])[acked]
    p99 = float(np.percentile(delay, 99, method="inverted_cdf")) if delay.size else math.inf
    holds = (
        s["timed_out"] == 0
        and delivered >= DELIVERED
        and measured >= DELIVERED * offered
        and (request.p99 is None or p99 <= request.p99)
        and backlog_steady(result)
    )
    return {
        "offered_msgs_per_s": float(offered),
        "throughput_msgs_per_s": float(measured),
        "p99_ms": p99 * 1e3,
        "timed_out": int(s["timed_out"]),
        "bottleneck": s["busiest_station"],
        "busiest_utilisation": float(max(s["utilisation"].values())) if s["utilisation"] else 0.0,
        "holds": bool(holds),
    }


def backlog_steady(result, max_slope: float = 0.01) -> bool:
    """Does the backlog hold steady? A system offered a fraction e more than it drains
    piles messages up, in flight or still waiting to be produced, so the delay from
    each message's intended send time to its ack grows by about e seconds per second.
    Over the run's middle half that slope must stay under ``max_slope``."""
    a = result.arrays
    span = result.config.run.duration
    middle = (a["status"] == 1) & (a["intended"] >= span / 4) & (a["intended"] < 3 * span / 4)
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
    reason: str | None = None  # when nothing reaches the target
    bottleneck: str | None = None
    best_rate: float | None = None

    @property
    def feasible(self) -> bool:
        return self.recommendation is not None

    def to_json(self) -> dict[str, Any]:
        simulated = [c for c in self.candidates if c.outcome is not None]
        out: dict[str, Any] = {
            "target_msgs_per_s": self.request.rate,
            "p99_bound_ms": None if self.request.p99 is None else self.request.p99 * 1e3,
            "feasible": self.feasible,
            "candidates": [c.describe() for c in simulated],
            "pruned": len([c for c in self.candidates if c.pruned]),
        }
        if self.recommendation is not None:
            out["recommendation"] = {**self.recommendation.describe(), "set": _cli_values(self.recommendation.settings)}
        else:
            out.update({"reason": self.reason, "bottleneck": self.bottleneck, "best_rate_msgs_per_s": self.best_rate})
        return out


def _cli_values(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as ``sim simulate --set`` takes them (None is written ``none``)."""
    return {key: ("none" if value is None else value) for key, value in settings.items()}


def plan(request: Request, workers: int | None = None, progress: bool | None = None) -> Plan:
    from .parallel import default_workers, parallel_map

    candidates = []
    for processes in range(1, request.max_processes + 1):
        for per_process in PRODUCERS_PER_PROCESS:
            if processes * per_process > request.max_producers:
                continue
            for partitions in PARTITIONS:
                for limit in LIMITS:
                    settings = candidate_settings(request, processes, per_process, partitions, limit)
                    candidate = Candidate(processes, per_process, partitions, limit, settings)
                    candidate.pruned = prune(build_config(settings), request)
                    candidates.append(candidate)
    candidates.sort(key=lambda c: c.cost)
    survivors = [c for c in candidates if c.pruned is None]

    # simulate cheapest first, a batch at a time; stop once the cheapest that holds is
    # known and every survivor of its (processes, partitions) cost level is simulated
    batch = 2 * (workers or default_workers())
    best: Candidate | None = None
    queue = list(survivors)
    while queue:
        if best is not None and (queue[0].processes, queue[0].partitions) > (best.processes, best.partitions):
            break
        chunk, queue = queue[:batch], queue[batch:]
        outcomes = parallel_map(_judge_job, [(c.settings, request) for c in chunk], workers=workers,
                                progress=progress, desc="plan")
        for candidate, outcome in zip(chunk, outcomes):
            candidate.outcome = outcome
        passing = [c for c in chunk if c.holds]
        if passing and best is None:
            best = min(passing, key=lambda c: c.cost)
        elif passing:
            best = min([best, *passing], key=lambda c: c.cost)
    if best is not None:
        return Plan(request, candidates, best)
    return _infeasible(request, candidates)


def _infeasible(request: Request, candidates: list[Candidate]) -> Plan:
    """Nothing reaches the target: name what prevents it, and find the best rate the
    largest allowed system sustains."""
    processes = request.max_processes
    per_process = max(p for p in PRODUCERS_PER_PROCESS if p == 1 or processes * p <= request.max_producers)
    processes = min(processes, request.max_producers // per_process)
    largest = build_config(candidate_settings(request, processes, per_process, max(PARTITIONS), None))
    b = bounds(largest)
    loads = {station: request.rate * demand for station, demand in b.demands.items()}
    station = max(loads, key=loads.get)
    found = max_rate(largest, p99=request.p99)
    reason = (
        f"no system of at most {request.max_processes} processes and {request.max_producers} producers "
        f"reaches {request.rate:,.0f} msg/s: even with {processes} processes x {per_process} producers and "
        f"{max(PARTITIONS)} partitions the {station.replace('_', ' ')} would be {loads[station]:.0%} busy"
    )
    return Plan(request, candidates, None, reason=reason, bottleneck=station, best_rate=found.rate)


# -- the highest sustainable rate of one config -------------------------------------


@dataclass
class MaxRate:
    rate: float  # total messages/s that held
    outcome: dict[str, Any] | None
    probes: list[tuple[float, bool]]  # (total rate, held)


def max_rate(config: SimConfig, p99: float | None = None, precision: float = 0.02) -> MaxRate:
    """The highest total rate ``config``'s producers sustain (open loop, Poisson)."""
    system = System(config)
    producers = system.producers
    request = Request(rate=1.0, p99=p99)
    ceiling = bounds(system).max_throughput
    start = ceiling / 4 if math.isfinite(ceiling) else 1000.0
    probes: list[tuple[float, bool]] = []
    outcomes: dict[float, dict] = {}

    def holds(total: float) -> bool:
        cfg = config.replace({
            "producer.rate": total / producers,
            "producer.messages": None,
            "run.duration": _duration(total, config),
            "producer.start_jitter": "10ms",
        })
        outcome = judge(cfg, request)
        outcomes[total] = outcome
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
            if rate < 1e-3:
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
    return MaxRate(low, outcomes[low], probes)
