"""Validated, frozen parameter models of a simulated system.

A configuration is data: five small groups (``producer``, ``client``,
``link``, ``broker``, ``run``) plus the counts ``clients`` and
``producers_per_client``. Every key has a default that stands for something in
the real system (see ``shared/reference/system-facts.md``); the description of
each field says what.

Overrides use dotted keys, ``{"link.rtt": "10ms", "clients": 4}``, through
:func:`build_config`. Bad input raises :class:`ConfigError`, whose message is
one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from typing import Annotated, Any, Literal, Mapping

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from .units import (
    BANDWIDTH_HELP,
    DURATION_HELP,
    SIZE_HELP,
    format_bandwidth,
    format_duration,
    parse_bandwidth,
    parse_duration,
    parse_size,
)
from .errors import NO_VALUE as _NO_VALUE
from .errors import ConfigError, ConfigWarning, InputError, TooMuchWork  # noqa: F401  (public names, also here)

MIN_MSS_BYTES = 88  # Linux's TCP_MIN_MSS: no TCP stack sends smaller segments
MAX_COUNT = 100_000  # clients, producers per client, partitions: far past any real deployment
MAX_PRODUCERS = 1_000_000  # clients x producers_per_client
MAX_KEY_SPACE = 2**62
MIN_READ_BYTES = 64  # nats-server's smallest read buffer (minBufSize)


def _none_words(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("none", "null"):
        return None
    return value


def _strict_number(value: Any) -> Any:
    """Refuse booleans and NaN where a number is expected."""
    value = _none_words(value)
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eEnN") else int(value)
        except ValueError:
            raise ValueError("expected a number") from None
    if isinstance(value, float) and math.isnan(value):
        raise ValueError("NaN is not a number this model can use")
    return value


def _whole(value: Any) -> Any:
    value = _strict_number(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected a whole number")
        value = int(value)
    return value


def _optional(parser):
    def parse(value: Any) -> Any:
        value = _none_words(value)
        return None if value is None else parser(value)

    return parse


def _window(value: Any) -> Any:
    value = _none_words(value)
    if value is None or (isinstance(value, str) and value.strip().lower() == "inf"):
        return None
    if isinstance(value, float) and math.isinf(value):
        return None
    return _signed(parse_size)(value)


def _signed(parser):
    """``parser``, refusing a negative zero (``-0``, ``-0.0ms``): no physical quantity is "minus nothing",
    and a sign that vanishes silently hides a typo."""

    def parse(value: Any) -> Any:
        result = parser(value)
        if isinstance(result, (int, float)) and result == 0:
            negative = isinstance(value, str) and value.strip().startswith("-")
            if negative or (isinstance(value, float) and math.copysign(1.0, value) < 0):
                raise ValueError("negative zero is not a value; write 0")
        return result

    return parse


Duration = Annotated[float, BeforeValidator(_signed(parse_duration))]
OptionalDuration = Annotated[float | None, BeforeValidator(_optional(_signed(parse_duration)))]
Bandwidth = Annotated[float, BeforeValidator(_signed(parse_bandwidth))]
OptionalBandwidth = Annotated[float | None, BeforeValidator(_optional(_signed(parse_bandwidth)))]
Size = Annotated[int, BeforeValidator(_signed(parse_size))]
Whole = Annotated[int, BeforeValidator(_signed(_whole))]
OptionalWhole = Annotated[int | None, BeforeValidator(_optional(_signed(_whole)))]
Number = Annotated[float, BeforeValidator(_signed(_strict_number))]
OptionalNumber = Annotated[float | None, BeforeValidator(_optional(_signed(_strict_number)))]


def _field(default: Any, doc: str, allowed: str, **constraints: Any) -> Any:
    return Field(default, description=doc, json_schema_extra={"allowed": allowed}, **constraints)


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class ProducerConfig(_Group):
    """One producer: the application loop that calls the SDK's ``produce()``."""

    mode: Literal["sync", "nonblocking", "burst"] = _field(
        "sync",
        "sync awaits each ack before the next produce() (the SDK default); nonblocking "
        "starts one task per message and carries on; burst creates all producer.messages tasks at "
        "the start and gathers them (asyncio.gather)",
        "sync, nonblocking or burst",
    )
    messages: OptionalWhole = _field(
        10_000,
        "messages each producer sends (a finite batch); none = keep producing until run.duration",
        "a whole number >= 1, or none",
        ge=1,
    )
    rate: OptionalNumber = _field(
        None,
        "open-loop arrival rate per producer in messages/s; none = produce as fast as flow control allows",
        "a number > 0 (messages/s), or none",
        gt=0,
        allow_inf_nan=False,
    )
    arrivals: Literal["poisson", "constant"] = _field(
        "poisson",
        "inter-arrival law when producer.rate is set: poisson (exponential gaps) or constant gaps",
        "poisson or constant",
    )
    window: OptionalWhole = _field(
        None,
        "fixed window: at most this many messages in flight, a new one as soon as any resolves "
        "(the article's C drivers); none = no window",
        "a whole number >= 1, or none",
        ge=1,
    )
    concurrent_task_limit: OptionalWhole = _field(
        None,
        "the SDK's concurrent_task_limit L: once L tasks are in flight, sleep until at most L/2 "
        "remain (none = unbounded, the SDK default)",
        "a whole number >= 1, or none",
        ge=1,
    )
    limiter_poll: Duration = _field(
        0.1,
        "how often the SDK's limiter re-checks the task count while it drains (asyncio.sleep(0.1)); "
        "0 = an ideal event-driven wait",
        DURATION_HELP + ", >= 0",
        ge=0,
    )
    ack_wait: Duration = _field(
        15.0,
        "ack_wait_sec: a message whose ack has not been processed this long after produce() is a timeout",
        DURATION_HELP + ", > 0",
        gt=0,
    )
    payload_bytes: Size = _field(512, "application payload per message", SIZE_HELP, ge=0)
    overhead_bytes: Size = _field(
        191,
        "wire overhead per message: SDK headers, subject and reply inbox (703 B on the wire for 512 B)",
        SIZE_HELP,
        ge=0,
    )
    partitioning: Literal["round_robin", "key", "fixed"] = _field(
        "round_robin",
        "partition choice: round_robin (per producer, from partition 1), key (MurmurHash3-32 of the "
        "message key, seed 31, mod partitions) or fixed (producer.partition)",
        "round_robin, key or fixed",
    )
    partition: Whole = _field(
        1, "the partition (1-based) every message goes to when producer.partitioning is fixed", "a whole number >= 1", ge=1
    )
    key_space: Whole = _field(
        1024,
        "with key partitioning, keys are drawn uniformly from this many distinct keys 'key-0', 'key-1', ...",
        f"a whole number >= 1 and <= {MAX_KEY_SPACE}",
        ge=1,
        le=MAX_KEY_SPACE,
    )
    start_jitter: Duration = _field(
        0.0,
        "each producer starts at a uniform random time in [0, start_jitter]; 0 = all start at time 0",
        DURATION_HELP + ", >= 0",
        ge=0,
    )


class ClientConfig(_Group):
    """A client process: one asyncio event loop (one CPU) and one connection."""

    send_cpu: Duration = _field(
        35e-6,
        "event-loop CPU per produce() call; with ack_cpu it makes 45 us per message, the ~22,000 msg/s "
        "of the article (the SDK measured 60-100 us on a slower VM)",
        DURATION_HELP + ", >= 0",
        ge=0,
    )
    ack_cpu: Duration = _field(
        10e-6, "event-loop CPU to process one ack (parse the reply, finish the task)", DURATION_HELP + ", >= 0", ge=0
    )
    loop: Literal["per_message", "iterations"] = _field(
        "per_message",
        "per_message: one FIFO CPU, each produce() and each ack a job of its own, a message leaves when "
        "its produce() ends (the article's model); iterations: the asyncio loop runs iterations, each "
        "costing client.wakeup_cpu after a sleep, one produce() per producer, every ready task's publish, "
        "every ack arrived, and one write of its publishes (nats-py)",
        "per_message or iterations",
    )
    wakeup_cpu: Duration = _field(
        0.0,
        "CPU of one event-loop wake-up after a sleep (epoll, context switch, the write) with client.loop = "
        "iterations; 0 = free; about 117 us on the project's VM (39 us/msg + 117 us/wake-up fits its runs)",
        DURATION_HELP + ", >= 0",
        ge=0,
    )
    cpu_cv: Number = _field(
        0.0,
        "coefficient of variation of each message's produce() and ack CPU (lognormal, means send_cpu and "
        "ack_cpu); 0 = constant",
        "a number >= 0 and <= 100",
        ge=0,
        le=100,
        allow_inf_nan=False,
    )
    host_cores: OptionalWhole = _field(
        None,
        "cores of each client host, shared first-come first-served by the client processes on it (a "
        "process runs on at most one core at a time); none = every client process has a core of its own "
        "(the article's setting: one producer process per machine or a machine with cores to spare)",
        f"a whole number >= 1 and <= {MAX_COUNT:,}, or none",
        ge=1,
        le=MAX_COUNT,
    )
    hosts: Whole = _field(
        1,
        "client hosts the client processes are spread over (client c, from 0, on host c mod hosts); "
        "used with client.host_cores. 1 = all on one machine, as `sim measure` runs them",
        f"a whole number >= 1 and <= {MAX_COUNT:,}",
        ge=1,
        le=MAX_COUNT,
    )
    wakeup_growth: Number = _field(
        0.0,
        "extra CPU of an event-loop wake-up per second the loop slept (client.loop = iterations): a "
        "wake-up after sleeping z costs min(wakeup_cpu + wakeup_growth x z, wakeup_max), as an idle "
        "process finds its caches cold and its core asleep; 0 = every wake-up costs wakeup_cpu. About "
        "0.02 on the project's VM (nats-py: 99-104 us of CPU per sync message at 0 ms RTT, 490-550 us at 20 ms)",
        "a number >= 0 and <= 1",
        ge=0,
        le=1,
        allow_inf_nan=False,
    )
    wakeup_max: OptionalDuration = _field(
        None,
        "the most one event-loop wake-up costs however long the loop slept (with client.wakeup_growth); "
        "none = no cap",
        DURATION_HELP + ", >= client.wakeup_cpu, or none",
        ge=0,
    )
    host_slice: Duration = _field(
        0.0,
        "the OS scheduler's time slice on shared cores (every pool: client hosts and the broker's): a "
        "process whose work goes on without blocking keeps its core up to this long before it goes behind "
        "the processes waiting for one; 0 = every job queues for its core (first come, first served per "
        "job); Linux EEVDF on 2 cores: 1.5 ms (0.75 ms x (1 + log2 cores))",
        DURATION_HELP + ", >= 0",
        ge=0,
    )
    iteration_cpu: Duration = _field(
        0.0,
        "CPU of every event-loop iteration, slept or not (client.loop = iterations): the poll for "
        "ready sockets and timers and the turn over the ready callbacks, which a busy loop pays once "
        "per iteration and a burst once for all its publishes; 0 = an iteration costs only its work "
        "(and client.wakeup_cpu after a sleep)",
        DURATION_HELP + ", >= 0",
        ge=0,
    )
    gc_messages: OptionalWhole = _field(
        None,
        "the interpreter's cyclic garbage collector: net new messages in flight that fill its youngest "
        "generation and set off a young collection (CPython collects after 700 more tracked objects than "
        "it freed: 700 / the objects one in-flight publish keeps alive; nats-py bursts on the project's VM "
        "run a full collection every 2,500-2,900 creations: about 25); none = no collector modelled",
        f"a whole number >= 1 and <= {MAX_COUNT:,}, or none",
        ge=1,
        le=MAX_COUNT,
    )
    gc_full_every: Whole = _field(
        100,
        "young collections per full collection (CPython's default thresholds 700, 10, 10: the middle "
        "generation every 10 young ones, a full one every 10 of those); with client.gc_messages",
        f"a whole number >= 1 and <= {MAX_COUNT:,}",
        ge=1,
        le=MAX_COUNT,
    )
    gc_pause: Duration = _field(
        0.0,
        "CPU of one full garbage collection with nothing in flight: the process's own heap, during which "
        "its event loop stops (7-14 ms measured for a nats-py producer on the project's VM); with "
        "client.gc_messages",
        DURATION_HELP + ", >= 0",
        ge=0,
    )
    gc_message_cpu: Duration = _field(
        0.0,
        "extra CPU of a full garbage collection per message in flight at the client (the objects each "
        "keeps alive are traversed too; nats-py bursts: about 6.5 us); with client.gc_messages",
        DURATION_HELP + ", >= 0",
        ge=0,
    )


class LinkConfig(_Group):
    """The network path between clients and broker, and each TCP connection on it."""

    rtt: Duration = _field(
        0.033,
        "propagation round trip (half each way); 33 ms gives the article's 30 msg/s to a cloud broker",
        DURATION_HELP + ", >= 0",
        ge=0,
    )
    bandwidth: Bandwidth = _field(
        125e6,
        "bottleneck bandwidth per direction, shared first-come first-served by all connections "
        "(1 Gbit/s access link)",
        BANDWIDTH_HELP + ", > 0",
        gt=0,
    )
    downlink_bandwidth: OptionalBandwidth = _field(
        None, "broker-to-client bandwidth when it differs from link.bandwidth; none = the same", BANDWIDTH_HELP + ", or none", gt=0
    )
    loss: Number = _field(
        0.0,
        "random packet loss rate; it caps each connection by the Mathis bound MSS/RTT*sqrt(3/(2 loss))",
        "a number >= 0 and < 1",
        ge=0,
        lt=1,
    )
    mss_bytes: Size = _field(
        1460,
        "TCP maximum segment size, used by the Mathis bound; at least 88 B, Linux's floor (TCP_MIN_MSS)",
        SIZE_HELP + f", >= {MIN_MSS_BYTES}",
        ge=MIN_MSS_BYTES,
    )
    window_bytes: Annotated[int | None, BeforeValidator(_window)] = _field(
        4 * 2**20,
        "TCP window of each connection (client to broker): at most this many bytes unacknowledged, so "
        "one connection carries at most window/RTT (Linux's 4 MiB autotuning ceiling); inf = no cap",
        SIZE_HELP + ", at least link.mss_bytes, or inf",
        ge=1,
    )
    jitter: Duration = _field(
        0.0,
        "mean extra one-way delay of each message and each ack on top of RTT/2, lognormal (queues and "
        "schedulers on the path, timer slack in a proxy); a connection still delivers in order. "
        "0 = a fixed path, as the article's model has; calibrate it on the p99/p50 of round-trip-bound points",
        DURATION_HELP + ", >= 0",
        ge=0,
    )
    jitter_cv: Number = _field(
        1.0,
        "coefficient of variation of the lognormal link.jitter; 1 (as broker.service_cv) is as spread as an "
        "exponential with a longer tail, as path delays have, until a calibration says otherwise",
        "a number > 0 and <= 100",
        gt=0,
        le=100,
        allow_inf_nan=False,
    )
    relay: bool = _field(
        False,
        "every byte goes through one relay process that reads it and writes it on (a proxy, a sidecar, a TLS "
        "terminator); `sim measure`'s delay proxy is one. A message or ack crosses it as it leaves the shared "
        "link, and travels its RTT/2 after it; false = a direct path, as the article's model has",
        "true or false",
    )
    relay_cpu: Duration = _field(
        0.0,
        "the relay's CPU per chunk: what one pass reads from one socket (one direction of one connection), "
        "covering its read and its later write; ~12-15 us for the project's asyncio delay proxy (25-30 us per "
        "message at one message per chunk each way); 0 = a relay that only moves bytes in time",
        DURATION_HELP + ", >= 0",
        ge=0,
    )
    relay_wakeup_cpu: Duration = _field(
        0.0,
        "the relay's CPU per pass, shared by the chunks one pass reads (its wake-up: the poll for ready "
        "sockets and its event loop's own turn); a busy relay reads many sockets per pass, so its CPU per "
        "message falls (the project's proxy: 25-30 us/msg with one producer, 11-12 with four); 0 = none",
        DURATION_HELP + ", >= 0",
        ge=0,
    )


class BrokerConfig(_Group):
    """The broker: a read loop per connection and a serial stage per partition."""

    partitions: Whole = _field(
        1,
        "partitions of the station, each an independent stream with its own lock",
        f"a whole number >= 1 and <= {MAX_COUNT:,}",
        ge=1,
        le=MAX_COUNT,
    )
    read_cpu: Duration = _field(
        1.5e-6, "the per-connection read loop's cost to parse one publish (1-2 us)", DURATION_HELP + ", >= 0", ge=0
    )
    service_time: Duration = _field(
        5e-6,
        "mean time a partition's serial stage holds its lock per message: duplicate check, append, "
        "ack (100-300k msg/s per partition on a local server)",
        DURATION_HELP + ", >= 0",
        ge=0,
    )
    service_dist: Literal["deterministic", "exponential", "lognormal"] = _field(
        "deterministic",
        "distribution of the partition service time",
        "deterministic, exponential or lognormal",
    )
    service_cv: Number = _field(
        1.0,
        "coefficient of variation of a lognormal service time (at most 100: a variance of 10^4 mean^2)",
        "a number > 0 and <= 100",
        gt=0,
        le=100,
        allow_inf_nan=False,
    )
    ack_bytes: Size = _field(103, "bytes of one ack on the wire ({\"stream\":...,\"seq\":N} and framing)", SIZE_HELP, ge=0)
    read_mode: Literal["per_message", "batched"] = _field(
        "per_message",
        "per_message: a connection's read loop takes one message per wake-up and writes its ack alone "
        "(the article's model); batched: each wake-up reads everything that has arrived on the connection, "
        "up to broker.read_bytes, and the acks of one read leave in one write once the last of them is "
        "stored, as nats-server's read loop does",
        "per_message or batched",
    )
    read_bytes: Size = _field(
        65536,
        "most bytes one wake-up of a read loop takes when broker.read_mode is batched: nats-server's "
        "largest read buffer (64 KiB); a message cut by it is finished by the next read",
        SIZE_HELP + f", >= {MIN_READ_BYTES}",
        ge=MIN_READ_BYTES,
    )
    wakeup_cpu: Duration = _field(
        0.0,
        "fixed CPU of one read-loop pass (wake-up, read, the write of its acks), on top of broker.read_cpu "
        "per message; 0 keeps the article's model; about 97 us per wake-up (and 11 us per message) "
        "measured on nats-server on this project's 2-core VM",
        DURATION_HELP + ", >= 0",
        ge=0,
    )
    read_cv: Number = _field(
        0.0,
        "coefficient of variation of a read-loop pass's cost: each pass's wakeup_cpu + messages x read_cpu "
        "is scaled by a lognormal draw of mean 1 (one per pass, per connection); 0 = constant",
        "a number >= 0 and <= 100",
        ge=0,
        le=100,
        allow_inf_nan=False,
    )
    cores: OptionalWhole = _field(
        None,
        "cores of the broker host, shared first-come first-served by its read loops and partition "
        "stages (each runs on at most one core at a time); none = each has a core of its own",
        f"a whole number >= 1 and <= {MAX_COUNT:,}, or none",
        ge=1,
        le=MAX_COUNT,
    )
    colocated: bool = _field(
        False,
        "the broker runs on client host 1, as on loopback (`sim measure`): its read loops and partition "
        "stages share that host's client.host_cores with the client processes there",
        "true or false",
    )


class RunConfig(_Group):
    """How long to simulate and with which random numbers."""

    seed: Whole = _field(1, "seed of every random draw in the run", "a whole number >= 0", ge=0)
    duration: OptionalDuration = _field(
        None,
        "stop the run at this simulated time; none = run until every message is resolved",
        DURATION_HELP + ", > 0, or none",
        gt=0,
    )
    bin: Duration = _field(0.1, "width of the time-series bins", DURATION_HELP + ", > 0", gt=0)
    records: Literal["full", "summary"] = _field(
        "full",
        "full keeps a record of every message (about 41 bytes each); summary keeps only counts, "
        "fixed-memory latency histograms and the time series, for runs of billions of messages",
        "full or summary",
    )


class SimConfig(_Group):
    """A whole simulated system: clients of producers, the link and the broker."""

    clients: Whole = _field(
        1,
        "client processes, each with its own event loop (CPU) and connection",
        f"a whole number >= 1 and <= {MAX_COUNT:,}",
        ge=1,
        le=MAX_COUNT,
    )
    producers_per_client: Whole = _field(
        1,
        "producers sharing each client's event loop and connection",
        f"a whole number >= 1 and <= {MAX_COUNT:,}",
        ge=1,
        le=MAX_COUNT,
    )
    producer: ProducerConfig = ProducerConfig()
    client: ClientConfig = ClientConfig()
    link: LinkConfig = LinkConfig()
    broker: BrokerConfig = BrokerConfig()
    run: RunConfig = RunConfig()

    @model_validator(mode="after")
    def _consistent(self) -> "SimConfig":
        p = self.producer
        if p.mode == "sync":
            for key in ("window", "concurrent_task_limit"):
                if getattr(p, key) is not None:
                    raise ConfigError(
                        f"producer.{key}", getattr(p, key), "applies to nonblocking mode only (producer.mode is sync)"
                    )
        if p.mode == "burst":
            for key in ("window", "concurrent_task_limit", "rate"):
                if getattr(p, key) is not None:
                    raise ConfigError(f"producer.{key}", getattr(p, key),
                                      "does not apply to burst mode (every task is created at the start)")
            if p.messages is None:
                raise ConfigError("producer.messages", None,
                                  "burst mode creates every task at the start: it needs a whole number >= 1")
        if p.window is not None and p.concurrent_task_limit is not None:
            raise ConfigError(
                "producer.concurrent_task_limit",
                p.concurrent_task_limit,
                "set either producer.window or producer.concurrent_task_limit, not both",
            )
        if p.partitioning == "fixed" and p.partition > self.broker.partitions:
            raise ConfigError(
                "producer.partition", p.partition, f"must be at most broker.partitions ({self.broker.partitions})"
            )
        if self.clients * self.producers_per_client > MAX_PRODUCERS:
            raise ConfigError("producers_per_client", self.producers_per_client,
                              f"{self.clients:,} clients x {self.producers_per_client:,} producers is more than "
                              f"{MAX_PRODUCERS:,} producers in all")
        c = self.client
        if c.wakeup_max is not None and c.wakeup_max < c.wakeup_cpu:
            raise ConfigError("client.wakeup_max", format_value("client.wakeup_max", c.wakeup_max),
                              f"must be at least client.wakeup_cpu ({format_value('client.wakeup_cpu', c.wakeup_cpu)}), "
                              "the cost of a wake-up after no sleep")
        if self.broker.colocated and self.broker.cores is not None:
            raise ConfigError("broker.cores", self.broker.cores,
                              "set broker.cores or broker.colocated, not both: a co-located broker uses the "
                              "client host's cores (client.host_cores)")
        link = self.link
        if link.window_bytes is not None and link.window_bytes < link.mss_bytes:
            raise ConfigError(
                "link.window_bytes",
                link.window_bytes,
                f"smaller than one segment (link.mss_bytes = {link.mss_bytes}); a TCP window holds at least "
                "one full segment",
            )
        self._warn_ignored()
        if p.messages is None and self.run.duration is None:
            raise ConfigError(
                "producer.messages", None, "an endless workload needs run.duration; set one of the two"
            )
        return self

    def ignored(self) -> list[tuple[str, Any, str]]:
        """Keys set to a value this system will never use: (key, value, why).

        A default value may be spelled out (a resolved config lists every key), so only values that
        differ from the default count.
        """
        p, b = self.producer, self.broker
        checks = [
            ("producer.arrivals", p.rate is None, "producer.rate is not set (the producer is closed-loop)"),
            ("producer.limiter_poll", p.concurrent_task_limit is None,
             "producer.concurrent_task_limit is not set, so the limiter never waits"),
            ("producer.partition", p.partitioning != "fixed", f"producer.partitioning is {p.partitioning}, not fixed"),
            ("producer.key_space", p.partitioning != "key", f"producer.partitioning is {p.partitioning}, not key"),
            ("broker.service_cv", b.service_dist != "lognormal",
             f"broker.service_dist is {b.service_dist}, not lognormal"),
            ("client.wakeup_cpu", self.client.loop != "iterations", "client.loop is per_message, not iterations"),
            ("client.wakeup_growth", self.client.loop != "iterations", "client.loop is per_message, not iterations"),
            ("client.wakeup_max", self.client.loop != "iterations" or self.client.wakeup_growth == 0,
             "client.wakeup_growth is 0 (a wake-up costs client.wakeup_cpu whatever the sleep)"
             if self.client.loop == "iterations" else "client.loop is per_message, not iterations"),
            ("link.jitter_cv", self.link.jitter == 0, "link.jitter is 0"),
            ("broker.read_bytes", b.read_mode != "batched", "broker.read_mode is per_message (one message per read)"),
            ("client.hosts", self.client.host_cores is None,
             "client.host_cores is not set (every client process has a core of its own)"),
            ("broker.colocated", self.client.host_cores is None,
             "client.host_cores is not set (the shared host has a core for everyone)"),
            ("link.relay_cpu", not self.link.relay, "link.relay is false (no relay on the path)"),
            ("link.relay_wakeup_cpu", not self.link.relay, "link.relay is false (no relay on the path)"),
            ("client.iteration_cpu", self.client.loop != "iterations", "client.loop is per_message, not iterations"),
            ("client.gc_full_every", self.client.gc_messages is None, "client.gc_messages is not set (no collector)"),
            ("client.gc_pause", self.client.gc_messages is None, "client.gc_messages is not set (no collector)"),
            ("client.gc_message_cpu", self.client.gc_messages is None, "client.gc_messages is not set (no collector)"),
            ("client.host_slice", self.client.host_cores is None and b.cores is None,
             "client.host_cores and broker.cores are not set (no shared cores: every process has a core of its own)"),
        ]
        out = []
        for key, unused, why in checks:
            group, name = key.split(".")
            value = getattr(getattr(self, group), name)
            if unused and value != _GROUPS[group].model_fields[name].default:
                out.append((key, value, why))
        return out

    def _warn_ignored(self) -> None:
        import warnings

        for key, value, why in self.ignored():
            warnings.warn(ConfigWarning(f"{key} = {format_value(key, value)} is ignored: {why}"), stacklevel=2)

    # -- dotted keys -------------------------------------------------------

    def flat(self) -> dict[str, Any]:
        """Every key as ``{"producer.mode": "sync", ..., "clients": 1}``."""
        out: dict[str, Any] = {}
        for name, value in self:
            if isinstance(value, BaseModel):
                for sub, subvalue in value:
                    out[f"{name}.{sub}"] = subvalue
            else:
                out[name] = value
        return out

    def replace(self, overrides: Mapping[str, Any]) -> "SimConfig":
        """A new config with dotted-key ``overrides`` applied on top of this one."""
        return build_config(overrides, base=self)


_GROUPS = {
    "producer": ProducerConfig,
    "client": ClientConfig,
    "link": LinkConfig,
    "broker": BrokerConfig,
    "run": RunConfig,
}
_TOP = ("clients", "producers_per_client")


def known_keys() -> list[str]:
    return list(_TOP) + [f"{g}.{f}" for g, model in _GROUPS.items() for f in model.model_fields]


def describe_keys() -> list[dict[str, str]]:
    """Each key with its default, what it stands for and what is allowed."""
    rows = []
    for key in known_keys():
        if "." in key:
            group, name = key.split(".")
            field = _GROUPS[group].model_fields[name]
        else:
            name, field = key, SimConfig.model_fields[key]
        rows.append(
            {
                "key": key,
                "default": format_value(key, field.default),
                "meaning": field.description or "",
                "allowed": (field.json_schema_extra or {}).get("allowed", ""),
            }
        )
    return rows


def format_value(key: str, value: Any) -> str:
    """A value as a user would type it for ``--set``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if key.endswith(("rtt", "_cpu", "_wait", "_poll", "jitter", "service_time", "duration", ".bin", "wakeup_max", "host_slice", "gc_pause")):
        return format_duration(value)
    if key.endswith("bandwidth"):
        return format_bandwidth(value)
    if key.endswith("_bytes"):
        for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
            if value >= size and value % size == 0:
                return f"{value // size}{unit}"
        return f"{value}B"
    return str(value)


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, known_keys(), n=1)
    hint = f"; did you mean {close[0]}?" if close else "; `sim list keys` shows them all"
    return ConfigError(key, _NO_VALUE, f"unknown key{hint}")


def build_config(overrides: Mapping[str, Any] | None = None, base: SimConfig | None = None) -> SimConfig:
    """A validated :class:`SimConfig` from dotted-key ``overrides`` on ``base``.

    Raises :class:`ConfigError` naming the first bad key.
    """
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError("overrides", overrides, "must be a mapping of dotted keys to values, e.g. "
                          "{'link.rtt': '10ms'}")
    if base is not None and not isinstance(base, SimConfig):
        raise ConfigError("base", base, "must be a SimConfig (from build_config) or None")
    overrides = dict(overrides or {})
    for key in overrides:
        if not isinstance(key, str):
            raise ConfigError(repr(key), _NO_VALUE, "a key must be a dotted string such as 'link.rtt'")
    nested: dict[str, Any] = {}
    if base is not None:
        for name in _TOP:
            if name in base.model_fields_set:
                nested[name] = getattr(base, name)
        for group in _GROUPS:
            sub = getattr(base, group)
            nested[group] = {k: getattr(sub, k) for k in sub.model_fields_set}
    for key, value in overrides.items():
        if key in _TOP:
            nested[key] = value
            continue
        group, _, name = key.partition(".")
        if group not in _GROUPS or name not in _GROUPS[group].model_fields:
            raise _unknown(key)
        nested.setdefault(group, {})[name] = value
    try:
        return SimConfig(**nested)
    except ValidationError as exc:
        raise _translate(exc, overrides) from None


def _translate(exc: ValidationError, overrides: Mapping[str, Any]) -> ConfigError:
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, ConfigError):
        return ctx_error
    if error["type"] == "extra_forbidden":
        return _unknown(key)
    value = overrides.get(key, error.get("input"))
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    allowed = ""
    if len(loc) == 2 and loc[0] in _GROUPS and loc[1] in _GROUPS[loc[0]].model_fields:
        allowed = (_GROUPS[loc[0]].model_fields[loc[1]].json_schema_extra or {}).get("allowed", "")
    elif len(loc) == 1 and loc[0] in SimConfig.model_fields:
        allowed = (SimConfig.model_fields[loc[0]].json_schema_extra or {}).get("allowed", "")
    problem = message.replace("Input should be", "must be") if message else "not allowed"
    for words, symbol in _COMPARISONS:
        problem = problem.replace(words, symbol)
    if allowed and allowed[:20] not in problem:
        problem += f" (allowed: {allowed})"
    return ConfigError(key, value, problem)


_COMPARISONS = (
    ("greater than or equal to", ">="),
    ("less than or equal to", "<="),
    ("greater than", ">"),
    ("less than", "<"),
)


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["link.rtt=10ms", "clients=4"]`` -> ``{"link.rtt": "10ms", "clients": "4"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(item, _NO_VALUE, "expected KEY=VALUE, e.g. link.rtt=10ms")
        out[key.strip()] = value.strip()
    return out
