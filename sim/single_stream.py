"""One message in flight at a time: a plain loop, no windows, no merges.

With a single producer that waits for each ack (sync, or a window of one),
every station sees one message at a time, in order: each message's path is
computed straight through, one after the other. A timeout breaks that
picture (the next message leaves while the late one is still under way), so
then this returns None and the caller runs the general loop instead.
"""

from __future__ import annotations

import numpy as np

from .model.records import ACKED, LATE, RecordBuffer, Records
from .model.system import UNBOUNDED, System


def applies(system: System) -> bool:
    return system.producers == 1 and system.in_flight_cap == 1


def run_single_stream(system: System) -> Records | None:
    cfg = system.config
    rtt, half_rtt, up_time, down_time, _, read_cpu, end = system.path_times
    send_cpu, ack_cpu, ack_wait = cfg.client.send_cpu, cfg.client.ack_cpu, cfg.producer.ack_wait
    streams = system.streams()
    open_loop = cfg.producer.rate is not None
    records = RecordBuffer(open_loop=open_loop, summary=cfg.run.records == "summary", bin_width=cfg.run.bin)
    choose = streams.partitions[0].__next__
    service = streams.service
    gap = streams.arrival_gaps[0].__next__ if open_loop else None
    rec_partition, rec_intended = records.partition, records.intended
    rec_created, rec_sent, rec_stored = records.created, records.sent, records.stored
    rec_resolved, rec_status = records.resolved, records.status

    deterministic = cfg.broker.service_dist == "deterministic"
    service_time = cfg.broker.service_time
    n_partitions = system.partitions
    part_free = [0.0] * n_partitions
    part_busy = [0.0] * n_partitions
    cpu_free = up_free = read_free = down_free = 0.0
    t = streams.start_times[0]
    next_arrival = t + gap() if open_loop else 0.0
    remaining = UNBOUNDED if cfg.producer.messages is None else cfg.producer.messages
    m = capacity = 0
    folded = 0  # summary mode: messages already folded into the tally (m restarts from 0 then)
    reached = 0  # how far the last message got: 1 sent, 2 stored, 3 its ack at the client, 4 acked
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
        deadline = t + ack_wait
        # a message still under way at the cut may have timed out before it: then the
        # next message left earlier than this loop assumes, and the general loop takes over
        timeout_before_cut = deadline < end
        reached = 0
        sent = cpu_free = (cpu_free if cpu_free > t else t) + send_cpu
        if sent >= end:
            if timeout_before_cut:
                return None
            m += 1
            break
        rec_sent[m] = sent
        reached = 1
        departure = up_free = (up_free if up_free > sent else sent) + up_time
        arrival = departure + half_rtt
        ready = read_free = (read_free if read_free > arrival else arrival) + read_cpu
        duration = service_time if deterministic else next(service[p])
        part_busy[p] += duration
        stored = part_free[p] = (part_free[p] if part_free[p] > ready else ready) + duration
        rec_stored[m] = stored
        m += 1
        if stored >= end:
            if timeout_before_cut:
                return None
            break
        reached = 2
        arrival = (down_free if down_free > stored else stored) + down_time
        down_free = arrival
        arrival += half_rtt
        if arrival >= end:
            if timeout_before_cut:
                return None
            break
        reached = 3
        done = cpu_free = (cpu_free if cpu_free > arrival else arrival) + ack_cpu
        if done >= deadline * LATE:
            return None  # a timeout: the next message would leave before this ack is in
        if done >= end:
            break
        rec_status[m - 1] = ACKED
        rec_resolved[m - 1] = done
        reached = 4
        t = done
    records.count = m
    # only the last message can have stopped part way (at ``reached``)
    total = folded + m
    partial = total > 0 and reached < 4
    full = total - partial
    last = reached if partial else 0
    unfinished = total < remaining or partial
    span = end if unfinished else max(cpu_free, up_free, read_free, down_free, *part_free)
    busy = {
        "client_cpu": [total * send_cpu + (full + (last >= 3)) * ack_cpu],
        "uplink": [(full + (last >= 1)) * up_time],
        "read_loop": [(full + (last >= 1)) * read_cpu],
        "partition": part_busy,
        "downlink": [(full + (last >= 2)) * down_time],
    }
    return records.finish(busy, span, unfinished)
