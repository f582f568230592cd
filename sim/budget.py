"""How much work a run is, estimated before it starts, and a refusal when that is absurd.

A config can be valid key by key and still describe a run that would never
finish or could never fit in memory: ``producer.rate=1e-300`` (ten thousand
messages a googol of years apart), ``producer.payload_bytes=1e30``,
``run.bin=1ns`` over a long run. :func:`check` estimates, from the config and
the analytic bounds alone (nothing is simulated):

* the messages the run creates (a finite batch, or what the bottleneck lets
  through in ``run.duration``);
* the simulated time it spans (the slowest of: the producers' start jitter,
  an open-loop producer's last arrival, the total work at the bottleneck's
  rate, cut at ``run.duration``);
* the time-series bins and the memory of the records.

It raises :class:`~sim.errors.TooMuchWork` (a ``ConfigError``, so one line
naming the key to change) when the simulated span passes
:data:`MAX_SIMULATED_S` (times past it lose the engine's nanosecond
resolution), when the run would take more than :data:`MAX_CPU_S` of CPU, or
when its memory would pass what this machine has. The estimates are
deliberately rough (within a small factor); the limits are far from any run
that makes sense.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .config import SimConfig
from .errors import TooMuchWork

MAX_SIMULATED_S = 1e9  # about 32 years; a float64 time there still resolves 0.12 us
MAX_CPU_S = 86_400.0  # a day of CPU for one run
SECONDS_PER_MESSAGE = {"fast": 3e-6, "simpy": 1.5e-4}  # CPU per message, about twice what was measured
BYTES_PER_MESSAGE = {"full": 200.0, "summary": 0.0}  # records (41 B) plus the per-message table
BYTES_PER_BIN = 64.0  # sent, acked, timed_out counts and their per-bin temporaries
MAX_BINS = 1e8

# station kinds of sim.analytic.stations -> the key a user would change
_STATION_KEYS = {
    "client_cpu": "client.send_cpu",
    "uplink": "producer.payload_bytes",
    "connection": "link.window_bytes",
    "read_loop": "broker.read_cpu",
    "partition": "broker.service_time",
    "downlink": "broker.ack_bytes",
}


@dataclass(frozen=True)
class Estimate:
    """Rough size of one run: messages, simulated seconds, time-series bins, memory and CPU."""

    messages: float
    simulated_s: float
    bins: float
    memory_bytes: float
    cpu_s: float
    culprit: tuple[str, str]  # (key, why) of the term that sets the simulated span


def memory_limit() -> float:
    """Bytes a run may use: this machine's physical memory (inf where unknown)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def estimate(config: SimConfig, timeseries: bool = False, engine: str = "fast") -> Estimate:
    """The rough size of running ``config`` on ``engine``; ``timeseries``: the per-bin table will be built."""
    from .analytic import bounds
    from .model.system import System

    p, run = config.producer, config.run
    producers = config.clients * config.producers_per_client
    b = bounds(System(config))
    rate = b.throughput()  # messages/s the whole system can carry at most
    if rate < b.max_throughput and b.max_demand < b.delay:  # round trips set the pace, not a station
        bottleneck, through = "producer.messages", "round trips"
    else:
        bottleneck, through = _STATION_KEYS.get(b.bottleneck, "producer.messages"), f"the {b.bottleneck}"
    if p.rate is not None:
        rate = min(rate, p.rate * producers)
    duration = math.inf if run.duration is None else run.duration
    total = math.inf if p.messages is None else float(min(p.messages, 10**300)) * producers
    # the simulated span: the latest of the terms that each take time on their own
    terms = [(p.start_jitter * producers / (producers + 1), ("producer.start_jitter", "the producers' start jitter"))]
    if p.rate is not None and p.messages is not None:
        terms.append((p.messages / p.rate, ("producer.rate", f"{p.messages:,} messages per producer at this rate")))
    if math.isfinite(total):
        work = total / rate if rate > 0 else math.inf
        terms.append((work, (bottleneck, f"{_number(total)} messages through {through}, at most "
                                          f"{_number(rate)} msg/s")))
    span, culprit = max(terms, key=lambda t: t[0])
    if span > duration or math.isinf(total):
        span, culprit = duration, ("run.duration", "the run's duration")
    messages = total if math.isfinite(total) else rate * span
    if run.duration is not None and math.isfinite(rate):
        messages = min(messages, rate * duration + producers * min(b.population, 1e12))
    memory = messages * BYTES_PER_MESSAGE[run.records] if messages == messages else math.inf
    bins = span / run.bin + 1
    if run.records == "summary" or timeseries:
        memory += bins * BYTES_PER_BIN
    # a batched read loop takes read_bytes per pass: a message larger than that costs a pass per read
    size, cap = p.payload_bytes + p.overhead_bytes, config.broker.read_bytes
    passes = max(1.0, size / cap) if config.broker.read_mode == "batched" else 1.0
    return Estimate(messages, span, bins, memory, messages * passes * SECONDS_PER_MESSAGE[engine], culprit)


def check(config: SimConfig, timeseries: bool = False, engine: str = "fast") -> Estimate:
    """:func:`estimate`, raising :class:`~sim.errors.TooMuchWork` when the run is absurd."""
    e = estimate(config, timeseries, engine)
    flat = config.flat()
    if not e.simulated_s <= MAX_SIMULATED_S:
        key, why = e.culprit
        raise TooMuchWork(key, flat.get(key), f"the run would simulate about {_span(e.simulated_s)} ({why}); at "
                          f"most {_span(MAX_SIMULATED_S)} can be simulated: shorten it with run.duration or "
                          "fewer messages")
    if not e.messages < math.inf:
        raise TooMuchWork("producer.messages", config.producer.messages, "the system has no cost that takes time, "
                          "so an endless producer would create endless messages at once; set producer.rate or "
                          "a finite producer.messages")
    if e.cpu_s > MAX_CPU_S:
        key = "producer.messages" if config.producer.messages is not None else "run.duration"
        raise TooMuchWork(key, flat[key], f"the run would create about {_number(e.messages)} messages, about "
                          f"{_span(e.cpu_s)} of CPU; at most {_span(MAX_CPU_S)} per run: use fewer messages or "
                          "a shorter run.duration")
    if e.bins > MAX_BINS:
        raise TooMuchWork("run.bin", config.run.bin, f"{_number(e.bins)} time-series bins over "
                          f"{_span(e.simulated_s)}; at most {_number(MAX_BINS)}: use a wider run.bin")
    limit = memory_limit()
    if e.memory_bytes > limit:
        if e.bins * BYTES_PER_BIN < e.memory_bytes / 2:
            key, fix = "producer.messages", "fewer messages, or run.records = summary"
        else:
            key, fix = "run.bin", "a wider run.bin"
        raise TooMuchWork(key, flat[key], f"the run would need about {_bytes(e.memory_bytes)} of memory; this "
                          f"machine has {_bytes(limit)}: use {fix}")
    return e


def _number(x: float) -> str:
    if not math.isfinite(x):
        return "infinitely many"
    return f"{x:,.0f}" if 1 <= abs(x) < 1e9 else f"{x:.3g}"


def _span(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "forever"
    for unit, size in (("year", 365.25 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds / size
            return f"{_number(n)} {unit}" + ("" if round(n) == 1 else "s")
    return f"{seconds:.3g} s"


def _bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"
