"""A configured system as the engine and the analysis see it.

:class:`System` turns a :class:`~sim.config.SimConfig` into inert numbers: the
service time of every station per message, the window of every connection
counted in messages, the flow control of the producers, and the random streams
of one run. Both the engine and the analytic cross-checks read it, so they
agree on what the parameters mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, NamedTuple

from ..config import SimConfig
from .partitioning import chooser
from .randomness import (READ_LOOPS_BRANCH, SeedTree, arrival_gaps, branch_rngs, cost_factors, cpu_costs,
                         jitter_delays, service_times)

UNBOUNDED = 1 << 62  # "no limit" for counts compared in the hot loop


def mathis_window_bytes(mss_bytes: int, loss: float) -> float:
    """Bytes in flight that the Mathis bound allows: MSS * sqrt(3 / (2 p)).

    Throughput = window / RTT, i.e. (MSS / RTT) * sqrt(3/2) / sqrt(p).
    """
    if loss <= 0:
        return math.inf
    return mss_bytes * math.sqrt(1.5 / loss)


def window_in_messages(window_bytes: float, message_bytes: int) -> int | None:
    """How many messages of ``message_bytes`` fit a window; None = no cap.

    A window smaller than one message still lets one message through at a
    time, as TCP would send it in pieces.
    """
    if math.isinf(window_bytes) or message_bytes == 0:
        return None
    return max(1, int(window_bytes // message_bytes))


class PathTimes(NamedTuple):
    """Per-message times of the path from the uplink to the clients, as the loops use them."""

    rtt: float
    half_rtt: float
    uplink_time: float
    downlink_time: float
    uplink_window: int | None
    read_cpu: float
    end: float  # run.duration, or inf
    window_bytes: float | None = None  # the window in bytes, when messages go in segments (else None)
    mss_bytes: int = 0
    jitter: bool = False  # link.jitter > 0: each message and ack has its own extra delay


@dataclass(frozen=True)
class RunStreams:
    """The random streams of one run (fresh iterators, consumed by a run)."""

    start_times: list[float]
    arrival_gaps: list[Iterator[float] | None]
    partitions: list[Iterator[int]]
    service: list[Iterator[float]]
    client_cpu: list[Iterator[tuple[float, float]]] | None = None  # per producer, with client.cpu_cv > 0
    # link.jitter: per connection, the extra delays of its messages (in the order they
    # leave the uplink) and of its acks (in the order they leave the downlink); None when 0
    uplink_jitter: list[Iterator[float]] | None = None
    downlink_jitter: list[Iterator[float]] | None = None


@dataclass(frozen=True)
class System:
    config: SimConfig

    # -- shape -------------------------------------------------------------
    @property
    def clients(self) -> int:
        return self.config.clients

    @property
    def producers_per_client(self) -> int:
        return self.config.producers_per_client

    @property
    def producers(self) -> int:
        return self.config.clients * self.config.producers_per_client

    @property
    def partitions(self) -> int:
        return self.config.broker.partitions

    def client_of(self, producer: int) -> int:
        return producer // self.config.producers_per_client

    # -- producers ---------------------------------------------------------
    @property
    def flow(self) -> str:
        """sync, window, limit or unbounded."""
        p = self.config.producer
        if p.mode == "sync":
            return "sync"
        if p.window is not None:
            return "window"
        if p.concurrent_task_limit is not None:
            return "limit"
        return "unbounded"

    @property
    def in_flight_cap(self) -> int:
        """Messages a producer may have in flight before produce() waits."""
        return {"sync": 1, "window": self.config.producer.window}.get(self.flow, UNBOUNDED)

    # -- bytes and wire times ----------------------------------------------
    @property
    def message_bytes(self) -> int:
        p = self.config.producer
        return p.payload_bytes + p.overhead_bytes

    @property
    def ack_bytes(self) -> int:
        return self.config.broker.ack_bytes

    @property
    def uplink_bandwidth(self) -> float:
        return self.config.link.bandwidth

    @property
    def downlink_bandwidth(self) -> float:
        link = self.config.link
        return link.bandwidth if link.downlink_bandwidth is None else link.downlink_bandwidth

    @property
    def uplink_time(self) -> float:
        """Seconds one message occupies the shared uplink."""
        return self.message_bytes / self.uplink_bandwidth

    @property
    def downlink_time(self) -> float:
        """Seconds one ack occupies the shared downlink."""
        return self.ack_bytes / self.downlink_bandwidth

    @property
    def window_bytes(self) -> float:
        """Effective TCP window per connection: the configured one or Mathis, the smaller."""
        link = self.config.link
        configured = math.inf if link.window_bytes is None else float(link.window_bytes)
        return min(configured, mathis_window_bytes(link.mss_bytes, link.loss))

    @property
    def segmented(self) -> bool:
        """Do messages cross the TCP window in segments? Yes when a message is longer
        than one segment (link.mss_bytes) and the window is finite: then the window
        counts bytes (``sim.model.network.ByteWindow``). A message of at most one
        segment is never split (TCP sends a segment only when all of it fits the
        window), so there a window of W bytes is exactly floor(W / message) messages:
        :attr:`uplink_window`."""
        return self.message_bytes > self.config.link.mss_bytes and not math.isinf(self.window_bytes)

    @property
    def byte_window_binds(self) -> bool:
        """Can a window in bytes hold a message back? Without timeouts, a connection's
        unreleased bytes belong to messages its producers still have in flight (a message's
        last byte is released one RTT after it leaves, before its ack can be back), so a
        window of at least producers x in-flight cap x message bytes never holds one: the
        loops then run the plain path, and run again with the window on if a timeout lets
        a producer go past its cap (``sim.model.network.WindowEngaged``)."""
        return self.segmented and (
            self.producers_per_client * self.in_flight_cap * self.message_bytes > self.window_bytes)

    @property
    def uplink_window(self) -> int | None:
        """Messages one connection may have between entering the uplink and their
        release one RTT after leaving it, when messages are single segments (None when
        there is no cap, or when the window counts bytes: :attr:`segmented`). Acks,
        ~7 times smaller, travel the other way without a window: the reverse direction
        is never the tighter one."""
        if self.segmented:
            return None
        return window_in_messages(self.window_bytes, self.message_bytes)

    @property
    def connection_messages(self) -> float | None:
        """Messages' worth of bytes one connection may have unacknowledged: the whole
        messages of :attr:`uplink_window`, or window / message bytes when messages go in
        segments; None when nothing caps it. A connection carries at most this many per RTT."""
        if self.segmented:
            return self.window_bytes / self.message_bytes
        return self.uplink_window

    @property
    def jitter(self) -> float:
        """Mean extra one-way delay of each message and each ack (link.jitter)."""
        return self.config.link.jitter

    @property
    def path_times(self) -> PathTimes:
        cfg = self.config
        end = math.inf if cfg.run.duration is None else cfg.run.duration
        return PathTimes(
            cfg.link.rtt, cfg.link.rtt / 2, self.uplink_time, self.downlink_time, self.uplink_window,
            cfg.broker.read_cpu, end, self.window_bytes if self.segmented else None, cfg.link.mss_bytes,
            self.jitter > 0,
        )

    # -- the broker's read loops ---------------------------------------------
    @property
    def read_passes(self) -> bool:
        """Do the read loops run in passes (``sim.model.broker_io``)? Yes when they read
        in batches, or a pass has a fixed cost or a random one; otherwise a read loop is
        a plain station of ``broker.read_cpu`` per message."""
        b = self.config.broker
        return b.read_mode == "batched" or b.wakeup_cpu > 0 or b.read_cv > 0

    @property
    def read_cap_bytes(self) -> int | None:
        """Bytes one pass reads at most; None = one message per pass (per_message)."""
        b = self.config.broker
        return b.read_bytes if b.read_mode == "batched" else None

    @property
    def messages_per_full_read(self) -> float:
        """Messages a pass carries on average when every read fills its buffer:
        read_bytes / message bytes (a message cut by the buffer is finished by the next
        read); 1 per pass per_message; inf for messages of no bytes."""
        cap = self.read_cap_bytes
        if cap is None:
            return 1.0
        return math.inf if self.message_bytes == 0 else cap / self.message_bytes

    def read_cost_per_message(self) -> float:
        """The least read-loop CPU per message: wakeup_cpu / (messages per full read) +
        read_cpu, the mean cost when every read is full (the cost factor has mean 1)."""
        b = self.config.broker
        per_read = self.messages_per_full_read
        wakeup = 0.0 if b.wakeup_cpu == 0 or math.isinf(per_read) else b.wakeup_cpu / per_read
        return wakeup + b.read_cpu

    def read_factors(self) -> list:
        """Per connection, the multipliers of its read passes' costs, in pass order."""
        b = self.config.broker
        if b.read_cv == 0:
            return [cost_factors(0.0, None) for _ in range(self.clients)]
        rngs = branch_rngs(self.config.run.seed, READ_LOOPS_BRANCH, self.clients)
        return [cost_factors(b.read_cv, rng) for rng in rngs]

    # -- load ------------------------------------------------------------
    @cached_property
    def partition_shares(self) -> list[float]:
        """Fraction of the messages each partition receives in the long run."""
        p, count = self.config.producer, self.partitions
        if p.partitioning == "fixed":
            return [1.0 if i == p.partition - 1 else 0.0 for i in range(count)]
        if p.partitioning == "key" and count > 1:
            from .murmur import key_partition

            keys = min(p.key_space, 1 << 16)  # beyond that the shares are uniform to <1%
            hits = [0] * count
            for k in range(keys):
                hits[key_partition(f"key-{k}", count) - 1] += 1
            return [h / keys for h in hits]
        return [1.0 / count] * count

    # -- randomness --------------------------------------------------------
    def streams(self) -> RunStreams:
        cfg = self.config
        p, b = cfg.producer, cfg.broker
        tree = SeedTree(cfg.run.seed, self.producers, self.partitions)
        starts, gaps, parts = [], [], []
        for j in range(self.producers):
            jitter = p.start_jitter
            starts.append(float(tree.producer(j, "start").uniform(0, jitter)) if jitter > 0 else 0.0)
            gaps.append(arrival_gaps(p.arrivals, p.rate, tree.producer(j, "arrivals")) if p.rate else None)
            parts.append(chooser(p.partitioning, self.partitions, p.partition, p.key_space, tree.producer(j, "keys")))
        service = [
            service_times(b.service_dist, b.service_time, b.service_cv, tree.partition(i)) for i in range(self.partitions)
        ]
        client_cpu = None
        if cfg.client.cpu_cv > 0:
            client_cpu = [cpu_costs(cfg.client.send_cpu, cfg.client.ack_cpu, cfg.client.cpu_cv, tree.producer(j, "cpu"))
                          for j in range(self.producers)]
        up = down = None
        if cfg.link.jitter > 0:
            mean, cv = cfg.link.jitter, cfg.link.jitter_cv
            up = [jitter_delays(mean, cv, tree.connection(c, "uplink_jitter")) for c in range(self.clients)]
            down = [jitter_delays(mean, cv, tree.connection(c, "downlink_jitter")) for c in range(self.clients)]
        return RunStreams(starts, gaps, parts, service, client_cpu, uplink_jitter=up, downlink_jitter=down)
