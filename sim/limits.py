"""What sets a run's pace: the ``limited_by`` of a summary, and the TCP window's occupancy.

``limited_by`` takes one word of a fixed vocabulary (:data:`VOCABULARY`):

* a station that is saturated: ``client_cpu``, ``uplink``, ``read_loop``,
  ``partition``, ``downlink``; or shared cores that are all busy: ``host_cpu``
  (a client host's, co-located broker included), ``broker_cpu``;
* ``connection_window``: the TCP window of each connection is full (the
  configured ``link.window_bytes`` or, with loss, the Mathis window), so each
  connection carries at most window / RTT;
* the producers' flow control: ``round_trip`` (sync: one message per round
  trip; also a batch too small to fill any station), ``window`` (a fixed
  window of C in flight), ``limiter`` (``concurrent_task_limit`` and its poll);
* ``offered_load``: an open-loop producer that the system keeps up with.

The rule, from the measured utilisations and throughput (so that full and
summary records give the same answer):

1. a station or the connection window busy at least 90% of the time (the last
   such along a message's path: client CPU, connection window, uplink, read
   loop, partition, downlink, since a flood keeps the stations before the
   tightest one busy too), and at least as close to its ceiling as the flow
   control and the offered load are to theirs, is named;
2. an open-loop producer whose throughput is at least as close to its flow
   control's ceiling as to the offered rate is limited by the flow control;
   one that is not held back (the mean wait from intended send time to
   produce() stays under two round trips, or 2% of the run) is
   ``offered_load``; one that is held back is limited by its flow control;
3. otherwise the flow control (``round_trip``, ``window``, or ``limiter`` when
   the limit engages at all), else ``round_trip``.
"""

from __future__ import annotations

import math
from typing import Any

from .config import SimConfig
from .model.system import System

SATURATED = 0.9  # busy fraction from which a station counts as setting the pace
ENGAGES = 0.9  # an open-loop limiter counts once rate x round trip reaches this fraction of L

VOCABULARY = {
    "client_cpu": "the client's event loop (CPU) is saturated",
    "uplink": "the shared uplink bandwidth is saturated",
    "read_loop": "the broker's per-connection read loop is saturated",
    "partition": "a partition's stage (its lock) is saturated",
    "downlink": "the shared downlink bandwidth is saturated",
    "relay": "the relay on the path (link.relay: a proxy), one process for every connection, is saturated",
    "connection_window": "each connection's TCP window is full (window / RTT; with loss the Mathis window)",
    "host_cpu": "the cores of a host, shared by its client processes (and a co-located broker), are all busy",
    "broker_cpu": "the broker's cores (broker.cores), shared by its read loops and partition stages, are all busy",
    "round_trip": "each message waits a round trip and too few are in flight to fill any station (sync)",
    "window": "the producers' window of messages in flight (producer.window)",
    "limiter": "the concurrent task limit and its poll (producer.concurrent_task_limit)",
    "offered_load": "the open-loop rate: the system keeps up with what it is offered",
}

STATIONS = ("client_cpu", "uplink", "read_loop", "partition", "downlink")
PATH = ("client_cpu", "connection_window", "uplink", "relay", "read_loop", "partition", "downlink",  # in a message's order
        "host_cpu", "broker_cpu")  # (shared cores come last: their processes look busy because of them)


def connection_occupancy(config: SimConfig, carried: int, span: float) -> float | None:
    """Mean fraction of each connection's TCP window in use over ``span`` seconds, by
    Little's law: each of the ``carried`` messages (those that reached the broker)
    holds its place from entering the uplink until one RTT after leaving it, at least
    RTT + its serialization (exactly that when the uplink does not queue). None when
    connections have no window."""
    system = System(config)
    window = system.connection_messages
    if window is None or not span > 0:
        return None
    hold = config.link.rtt + system.uplink_time
    if system.segmented:  # bytes are held segment by segment: RTT + a segment's serialization
        hold = config.link.rtt + min(system.uplink_time, config.link.mss_bytes / system.uplink_bandwidth)
    return min(1.0, carried * hold / (system.clients * window * span))


def flow_ceiling(config: SimConfig) -> tuple[str | None, float]:
    """The producers' flow control and the most messages/s it lets through on an idle
    path: sync P / round trip; window P C / round trip; limiter P L / (poll + L CPU),
    and never more than P L / round trip. (None, inf) when nothing limits it: no
    window, or a limit that is never reached (L x CPU longer than a round trip, or an
    open-loop rate whose rate x round trip in flight stays under 90% of L)."""
    from .analytic import limiter_ceiling, limiter_engages, round_trip

    system = System(config)
    trip = round_trip(system)
    producers = system.producers
    flow = system.flow
    if flow == "sync":
        return "round_trip", producers / trip if trip > 0 else math.inf
    if flow == "window":
        return "window", producers * config.producer.window / trip if trip > 0 else math.inf
    limit = config.producer.concurrent_task_limit
    rate = config.producer.rate
    # an open-loop producer has about rate x round trip in flight (Little): a limit well
    # above that is never reached, and never paces it
    offered_in_flight = math.inf if rate is None else rate * trip
    if flow == "limit" and limiter_engages(system) and offered_in_flight >= ENGAGES * limit:
        ceiling = producers * limiter_ceiling(system)
        if trip > 0:
            ceiling = min(ceiling, producers * limit / trip)
        return "limiter", ceiling
    return None, math.inf


def limited_by(config: SimConfig, summary: dict[str, Any]) -> str:
    """What sets the pace of the run ``summary`` came from (see the module's rule)."""
    from .analytic import round_trip

    util = {("connection_window" if k == "connection" else k): v for k, v in summary["utilisation"].items()}
    throughput = summary["throughput_msgs_per_s"] or 0.0
    system = System(config)
    flow, ceiling = flow_ceiling(config)
    ratios = {}
    if flow is not None and ceiling > 0:
        ratios[flow] = throughput / ceiling
    rate = config.producer.rate
    if rate is not None:
        ratios["offered_load"] = throughput / (rate * system.producers)
    saturated = [name for name in PATH if util.get(name, 0.0) >= SATURATED]
    # a station past a saturated one is saturated only if it is the tighter of the two: the
    # one upstream is busy making a backlog for it (as a flood keeps its client CPU busy)
    station = saturated[-1] if saturated else (max(util, key=util.get) if util else None)
    if saturated and util[station] >= max(ratios.values(), default=0.0):
        return station
    if rate is not None and flow is not None and ratios[flow] >= ratios["offered_load"]:
        return flow  # nearer the flow control's ceiling than the offered rate
    if rate is not None:
        intended = summary.get("latency_from_intended_ms") or {}
        produced = summary.get("latency_ms") or {}
        wait = 0.0
        if intended.get("mean") is not None and produced.get("mean") is not None:
            wait = (intended["mean"] - produced["mean"]) / 1e3
        span = summary.get("makespan_s") or 0.0
        if wait <= max(2 * round_trip(system), 0.02 * span):
            return "offered_load"
    if flow is not None:
        return flow
    if station is not None and util[station] >= SATURATED:
        return station
    return "round_trip"
