"""One message in flight at a time: a plain loop, no windows, no merges.

With a single producer that waits for each ack (sync, or a window of one),
every station sees one message at a time, in order: each message's path is
computed straight through, one after the other. A timeout breaks that
picture (the next message leaves while the late one is still under way), so
then this returns None and the caller runs the general loop instead.
"""

from __future__ import annotations

import numpy as np

from ..model.records import ACKED, LATE, RecordBuffer, Records
from ..model.station import Station
from ..model.system import UNBOUNDED, System


def applies(system: System) -> bool:
    """One producer, one message in flight, the default client, and a TCP window that
    holds the whole message."""
    from ..model.aioclient import uses_aio_client

    return system.producers == 1 and system.in_flight_cap == 1 and not uses_aio_client(system) and not (
        system.segmented and system.message_bytes > system.window_bytes)


def run_single_stream(system: System) -> Records | None:
    cfg = system.config
    streams = system.streams()
    records = RecordBuffer.for_config(cfg)
    deterministic = cfg.broker.service_dist == "deterministic"
    # the stations: the client's CPU (sends and acks), the uplink, the read loop, the partitions, the downlink
    cpu, up, read, down = Station(None), Station(system.uplink_time), Station(cfg.broker.read_cpu), \
        Station(system.downlink_time)
    parts = [Station(cfg.broker.service_time if deterministic else None) for _ in range(system.partitions)]
    stations = (cpu, up, read, down, *parts)
    outcome = _run(system, streams, records, stations, deterministic)
    if outcome is None:
        return None
    unfinished = outcome
    end = system.path_times.end
    span = end if unfinished else max(s.free for s in stations)
    busy = {"client_cpu": [cpu.busy], "uplink": [up.busy], "read_loop": [read.busy],
            "partition": [s.busy for s in parts], "downlink": [down.busy]}
    return records.finish(busy, span, unfinished, end)


def _run(system: System, streams, records: RecordBuffer, stations, deterministic: bool) -> bool | None:
    """Every message, one after the other; True if the run was cut with work unfinished,
    None on a timeout (the next message would leave before this one's ack is in)."""
    cfg = system.config
    cpu, up, read, down, *parts = stations
    half_rtt, end = cfg.link.rtt / 2, system.path_times.end
    send_cpu, ack_cpu, ack_wait = cfg.client.send_cpu, cfg.client.ack_cpu, cfg.producer.ack_wait
    open_loop = cfg.producer.rate is not None
    choose = streams.partitions[0].__next__
    draws = [s.__next__ for s in streams.service]
    jitter = streams.uplink_jitter is not None
    if jitter:  # (one message at a time: each arrives after the one before)
        up_jitter, down_jitter = streams.uplink_jitter[0].__next__, streams.downlink_jitter[0].__next__
    gap = streams.arrival_gaps[0].__next__ if open_loop else None
    rec_partition, rec_intended = records.partition, records.intended
    rec_created, rec_sent, rec_stored = records.created, records.sent, records.stored
    rec_resolved, rec_status = records.resolved, records.status
    t = streams.start_times[0]
    next_arrival = t + gap() if open_loop else 0.0
    remaining = UNBOUNDED if cfg.producer.messages is None else cfg.producer.messages
    m = capacity = 0
    folded = 0  # summary mode: messages already folded into the tally (m restarts from 0 then)
    acked = True  # did the last message finish?
    while folded + m < remaining:
        if open_loop and next_arrival > t:
            t = next_arrival
        if t >= end:
            break
        if m == capacity:
            records.count = m
            if records.tally is not None and m >= records.compact_at:
                records.compact(np.zeros(0, dtype=np.int64))  # every message so far is done
                folded += m
                m = 0
            records.grow()
            capacity = records.capacity
        p = choose()
        rec_partition[m] = p  # (the producer, 0, is what the buffer holds already)
        if open_loop:
            rec_intended[m] = next_arrival
            next_arrival += gap()
        rec_created[m] = t
        m += 1
        acked = False
        deadline = t + ack_wait
        sent = cpu.serve(t, send_cpu)
        if sent >= end:
            break
        rec_sent[m - 1] = sent
        ready = read.serve(up.serve(sent) + half_rtt + up_jitter() if jitter else up.serve(sent) + half_rtt)
        stored = rec_stored[m - 1] = parts[p].serve(ready) if deterministic else parts[p].serve(ready, draws[p]())
        if stored >= end:
            break
        arrival = down.serve(stored) + half_rtt + down_jitter() if jitter else down.serve(stored) + half_rtt
        if arrival >= end:
            break
        done = cpu.serve(arrival, ack_cpu)
        if done >= deadline * LATE:
            return None  # a timeout
        if done >= end:
            break
        rec_status[m - 1] = ACKED
        rec_resolved[m - 1] = done
        acked = True
        t = done
    records.count = m
    if not acked and deadline < end:
        # stopped part way by the cut, but it timed out before it: then the next message
        # left earlier than this loop assumes, and the general loop takes over
        return None
    return folded + m < remaining or not acked
