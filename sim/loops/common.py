"""What every loop of the fast engine shares: the lookahead, the clients and
records a run starts from, and how a run is closed.

The loops (``windows``, ``events``, ``single``) only decide the order in which
the components act; the components (``sim.model``) hold the arithmetic.
"""

from __future__ import annotations

import math

from ..errors import InputError
from ..model.aioclient import aio_client_side, collected, uses_aio_client
from ..model.clients import client_side
from ..model.records import IN_FLIGHT, RecordBuffer, Records
from ..model.system import System


def lookahead(system: System) -> float:
    """The shortest time between one side acting and the other side feeling it."""
    half_rtt = system.config.link.rtt / 2
    width = half_rtt + min(system.uplink_time, system.downlink_time)
    if system.segmented:
        # a window in bytes: a job may be one byte long, and its release (one RTT after it
        # leaves) must not fall in the window that sent it
        width = min(width, system.config.link.rtt + 1 / system.uplink_bandwidth)
    return width


RESOLUTION = 2.0**40  # a run's times may reach this many times its largest per-message step


def check_time_range(system: System) -> None:
    """Refuse a run whose clock would reach times where float64 cannot resolve the
    model's own steps (past 2^40 steps, a step is known to 2^-12 only)."""
    cfg = system.config
    steps = [cfg.link.rtt / 2, system.uplink_time, system.downlink_time, cfg.client.send_cpu,
             cfg.client.ack_cpu, cfg.broker.read_cpu, cfg.broker.service_time, cfg.client.wakeup_cpu,
             cfg.broker.wakeup_cpu]
    step = max((s for s in steps if math.isfinite(s)), default=0.0)
    if step <= 0:
        return  # nothing takes time: every time is a start time or an arrival time
    limit = step * RESOLUTION
    for key, value in (("producer.start_jitter", cfg.producer.start_jitter), ("run.duration", cfg.run.duration)):
        if value is not None and value > limit:
            raise InputError(
                f"{key} = {value:g} s: too large for float64 time to resolve the model's steps "
                f"({step:.3g} s); allowed: at most {limit:.3g} s")


def begin_run(system: System):
    """The pieces every loop starts from: random streams, empty records, the clients."""
    cfg = system.config
    streams = system.streams()
    records = RecordBuffer.for_config(cfg)
    if uses_aio_client(system):  # event-loop iterations, bursts, drawn CPU costs: sim.model.aioclient
        advance, clients_state = aio_client_side(system, streams, records)
    else:
        advance, clients_state = client_side(system, streams, records)
    return streams, records, advance, clients_state


def finish(records: RecordBuffer, clients, cut: bool, end: float, free: list, busy: dict) -> Records:
    """Close the records: ``free`` lists the network and broker servers' busy-until
    times, ``busy`` their busy seconds by station."""
    if cut:
        span = end
    else:  # when the last server fell idle (every ack, even a late one, ends on a client CPU)
        span = max(free + clients.cpu_free)
    unfinished = any(r > 0 for r in clients.remaining) or IN_FLIGHT in records.status[: records.count]
    out = records.finish({"client_cpu": clients.cpu_busy, **busy}, span, cut and unfinished, end)
    collectors = getattr(clients, "collectors", None)
    if collectors is not None:
        out.collections = collected(collectors)
    return out
