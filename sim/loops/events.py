"""The event loop, for systems without lookahead (zero RTT, unlimited bandwidth).

A binary heap orders the merges that the window loop (``sim.engine``) orders by
windows:

* ``UPLINK``: the head of a client's outgoing queue enters its connection and,
  at that instant, the shared uplink and (computed ahead) its read loop; it
  reaches its partition as a ``PART_ARRIVE`` event.
* The shared downlink merges the partitions' departures, taking the earliest as
  soon as no partition can still produce an earlier one (``DOWN_WAKE`` when it
  must wait for time to pass).
* ``CLIENT``: a client runs its own events as far as it can be sure of its
  acks: none still to be computed can arrive before the downlink's busy-until
  time plus one ack's serialization and half an RTT.
* ``GATE_UP``: a connection's TCP window reopens.
* ``READ``: a read loop that runs in passes (``sim.model.broker_io``) starts
  one; it hands the messages it parses to their partitions (``PART_ARRIVE``).
  When the acks of a pass are written together, the downlink merges the
  written acks instead of the partitions' departures.

At one instant the heap runs the clients first, then what enters the uplink,
then partition arrivals, then the downlink (the order in which the window loop
takes them); within each, messages go in connection order (their place n on
their connection, then the client: the tie rule of ``sim.model.network``), and
client wake-ups in the order they were scheduled. A heap entry is
``(time, rank, key, kind, x)``.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heapify, heappop, heappush
from itertools import count

import numpy as np

from ..model.broker_io import AckWrites, ReadLoops
from ..model.clients import replace_items
from ..model.network import ByteWindow, PathJitter, WindowEngaged
from ..model.records import MESSAGE, PLACE, TIME, Records, renumbered
from ..model.station import Station
from ..model.system import System
from .common import begin_run, finish

UPLINK, CLIENT, PART_ARRIVE, DOWN_WAKE, GATE_UP = range(5)
READ = 5
# the rank of each kind at one instant (the second field of a heap entry)
CLIENTS_FIRST, UPLINK_NEXT, PARTITIONS_THEN, DOWNLINK_LAST = range(4)
READS_NEXT = 1.5  # a read pass starts after what enters the uplink, before partitions take arrivals
INF = math.inf


def run_events(system: System, bytes_gate: bool = False) -> Records:
    return EventLoop(system, bytes_gate).run()


class WholeMessageGate:
    """A connection's TCP window counted in whole messages, for a loop with an event heap:
    message n enters the uplink once message n - window has been released (one RTT after
    it left). The loop provides ``window`` (None: no window), ``waiting``, ``released``,
    ``entered``, ``heap``, ``uplink(c, key, m, now)``, and the rank and kind of its
    window-reopening event (``gate_rank``, ``gate_kind``)."""

    def gate(self, c: int, key: int, m: int, now: float) -> None:
        if self.window is None:
            self.uplink(c, key, m, now)
        elif self.waiting[c]:
            self.waiting[c].append((key, m))
        else:
            release = self.released[c][self.entered[c] % self.window]
            if release <= now:
                self.uplink(c, key, m, now)
            else:
                self.waiting[c].append((key, m))
                heappush(self.heap, (release, self.gate_rank, key, self.gate_kind, c))

    def reopen(self, c: int, now: float) -> None:
        """Let the head of c's TCP window queue in; the next one gets its own event, so
        that messages of several connections let in at one instant go in connection order."""
        queue, window = self.waiting[c], self.window
        if queue and self.released[c][self.entered[c] % window] <= now:
            self.uplink(c, *queue.popleft(), now)
        if queue:
            heappush(self.heap, (max(now, self.released[c][self.entered[c] % window]), self.gate_rank,
                                 queue[0][0], self.gate_kind, c))


class EventLoop(WholeMessageGate):
    """The heap and the stations of one run; each method handles one kind of event."""

    gate_rank, gate_kind = UPLINK_NEXT, GATE_UP

    def __init__(self, system: System, bytes_gate: bool = False):
        cfg = system.config
        self.streams, self.records, self.advance, self.state = begin_run(system)
        self.clients, self.partitions = system.clients, system.partitions
        path = system.path_times
        self.rtt, self.half_rtt, self.window, self.read_cpu = path.rtt, path.half_rtt, path.uplink_window, path.read_cpu
        self.up_time, self.down_time, self.end = path.uplink_time, path.downlink_time, path.end
        self.heap: list = []
        self.tick = count(1).__next__
        deterministic = cfg.broker.service_dist == "deterministic"
        self.up, self.down = Station(self.up_time), Station(self.down_time)
        self.reads = [Station(self.read_cpu) for _ in range(self.clients)]
        self.parts = [Station(cfg.broker.service_time if deterministic else None) for _ in range(self.partitions)]
        self.draw = None if deterministic else [s.__next__ for s in self.streams.service]
        self.part_pending = [0] * self.partitions  # PART_ARRIVE events not yet handled
        self.departed = [deque() for _ in range(self.partitions)]  # (stored, key, m): acks not yet on the downlink
        # shortest time from "now" until a message not yet on the uplink reaches a partition
        self.lookahead = self.up_time + self.half_rtt + self.read_cpu
        # read loops in passes, and (batched) acks written a pass at a time
        self.io = ReadLoops(system) if system.read_passes else None
        self.writes = AckWrites() if system.read_cap_bytes is not None else None
        self.ready: list = []  # (written, key, m): acks written, not yet on the downlink
        self.min_service = cfg.broker.service_time if deterministic else 0.0
        self.wake_at = INF  # the pending DOWN_WAKE
        self.wake_time = [INF] * self.clients  # each client's pending CLIENT event
        self.uplink_scheduled = [False] * self.clients
        if self.window is not None:
            self.released = [[-INF] * self.window for _ in range(self.clients)]
            self.entered = [0] * self.clients
            self.waiting = [deque() for _ in range(self.clients)]
        # the window in bytes, when messages go in segments (sim.model.network.ByteWindow)
        self.bytes = None
        # a window in bytes that cannot bind is left out until a timeout (WindowEngaged)
        self.bytes_idle = path.window_bytes is not None and not (bytes_gate or system.byte_window_binds)
        if path.window_bytes is not None and not self.bytes_idle:
            self.bandwidth = system.uplink_bandwidth
            self.bytes = [ByteWindow(int(path.window_bytes), system.message_bytes, path.mss_bytes, self.bandwidth,
                                     self.rtt) for _ in range(self.clients)]
            self.gate_at = [INF] * self.clients  # each connection's pending GATE_UP
            self.up = Station(None)
            self.lookahead = self.half_rtt + self.read_cpu  # a job may end a message a byte after it starts
        # link.jitter: each message and ack late by its own draw, in order on its connection
        self.jitter = path.jitter
        if self.jitter:
            self.late = PathJitter(self.streams, self.clients, self.half_rtt)
        if self.io is not None:  # (a pass's cost may be drawn near 0)
            self.lookahead = self.half_rtt + (0.0 if self.bytes is not None else self.up_time)
        self.via_to_broker = self.jitter or self.io is not None
        if self.writes is not None:  # acks written a pass at a time (the default path keeps its checks)
            self.partition, self.merge_downlink = self.partition_written, self.merge_writes
        self.prune_at = 1024

    # -- the clients ------------------------------------------------------------------
    def run_client(self, c: int, now: float) -> None:
        horizon = max(self.down.free, now) + self.down_time + self.half_rtt
        t = self.advance(c, horizon, now)
        if t < self.wake_time[c]:
            self.wake_time[c] = t
            heappush(self.heap, (t, CLIENTS_FIRST, self.tick(), CLIENT, c))
        out = self.state.outgoing[c]
        if out and not self.uplink_scheduled[c]:
            self.uplink_scheduled[c] = True
            heappush(self.heap, (out[0][TIME], UPLINK_NEXT, out[0][PLACE] * self.clients + c, UPLINK, c))

    # -- the connection's TCP window and the uplink -----------------------------------------
    def to_uplink(self, c: int, key: int, m: int, now: float, entry: tuple = ()) -> None:
        if self.bytes_idle and self.state.timed_out[c]:
            raise WindowEngaged
        if self.bytes is not None:
            jobs: list = []
            self.bytes[c].arrive(entry, now, jobs)
            self.serve_jobs(c, jobs, now)
        else:
            self.gate(c, key, m, now)

    def reopen_bytes(self, c: int, now: float) -> None:
        """A GATE_UP of a window in bytes: releases due now let its backlog go."""
        if now != self.gate_at[c]:
            return  # superseded
        self.gate_at[c] = INF
        jobs: list = []
        self.bytes[c].reopen(now, jobs)
        self.serve_jobs(c, jobs, now)

    def serve_jobs(self, c: int, jobs: list, now: float) -> None:
        """Jobs of connection c's bytes enter the uplink now; the messages they end go on."""
        gate, up, clients = self.bytes[c], self.up, self.clients
        for job in jobs:
            start = up.free if up.free > now else now
            up.serve(now, job[3] / self.bandwidth)
            for departure, entry in gate.left_uplink(job, start):
                self.to_broker(c, entry[PLACE] * clients + c, entry[MESSAGE], departure)
        t = gate.next_release()
        if t < self.gate_at[c]:
            self.gate_at[c] = t
            heappush(self.heap, (t, UPLINK_NEXT, gate.backlog[0][PLACE] * clients + c, GATE_UP, c))

    def uplink(self, c: int, key: int, m: int, now: float) -> None:
        departure = self.up.serve(now)
        if self.window is not None:
            self.released[c][self.entered[c] % self.window] = departure + self.rtt
            self.entered[c] += 1
        if self.via_to_broker:
            self.to_broker(c, key, m, departure)
            return
            return
        ready = self.reads[c].serve(departure + self.half_rtt)
        # the partition takes it at its arrival, among whatever else arrives then (in
        # connection order): adding half an RTT can round two departures to one arrival
        p = self.records.partition[m]
        self.part_pending[p] += 1
        heappush(self.heap, (ready, PARTITIONS_THEN, key, PART_ARRIVE, m))

    def to_broker(self, c: int, key: int, m: int, departure: float) -> None:
        """Message m left the uplink at ``departure``: its read loop and then its partition."""
        arrival = self.late.reach_broker(c, departure) if self.jitter else departure + self.half_rtt
        if self.io is not None:  # the read loop runs in passes (READ events)
            self.part_pending[self.records.partition[m]] += 1
            if self.io.arrive(c, arrival, key, m):
                heappush(self.heap, (self.io.next_pass(c), READS_NEXT, c, READ, c))
            return
        ready = self.reads[c].serve(arrival)
        p = self.records.partition[m]  # (as in uplink)
        self.part_pending[p] += 1
        heappush(self.heap, (ready, PARTITIONS_THEN, key, PART_ARRIVE, m))

    def read_pass(self, c: int, now: float) -> None:
        """Connection c's read loop runs a pass: its messages reach their partitions as
        each is parsed; the loop's next pass is due when this one ends, if more has come."""
        io = self.io
        parsed = io.read(c, now)
        if self.writes is not None:
            self.writes.open(parsed)
        heap = self.heap
        for t, key, m in parsed:
            heappush(heap, (t, PARTITIONS_THEN, key, PART_ARRIVE, m))
        if io.buffers[c]:
            heappush(heap, (io.next_pass(c), READS_NEXT, c, READ, c))

    # -- the partitions and the downlink ----------------------------------------------------
    def partition(self, p: int, key: int, m: int, now: float) -> None:
        self.part_pending[p] -= 1
        stored = self.parts[p].serve(now) if self.draw is None else self.parts[p].serve(now, self.draw[p]())
        self.records.stored[m] = stored
        self.departed[p].append((stored, key, m))
        self.merge_downlink(now)

    def partition_written(self, p: int, key: int, m: int, now: float) -> None:
        """partition() when the acks of a pass are written together: an ack waits in its
        pass until the last of them is stored, then all go to the downlink's merge."""
        self.part_pending[p] -= 1
        stored = self.parts[p].serve(now) if self.draw is None else self.parts[p].serve(now, self.draw[p]())
        self.records.stored[m] = stored
        for entry in self.writes.stored(m, stored):
            heappush(self.ready, entry)
        self.merge_writes(now)

    def next_departure_bound(self, q: int, now: float) -> float:
        """No ack not yet computed leaves partition q before this: its next arrival
        (a pending event, or a message entering the uplink from now on) or its
        busy-until time, plus the shortest service."""
        soonest = now if self.part_pending[q] else now + self.lookahead
        return max(self.parts[q].free, soonest) + self.min_service

    def merge_downlink(self, now: float, settled: bool = False) -> None:
        """Put the earliest departures on the downlink while no partition can still
        produce an earlier one, or an equal one that goes first by the tie rule.
        ``settled``: everything at this instant that could leave a partition now has
        (the DOWN_WAKE rank comes last), so a departure at ``now`` may go."""
        departed = self.departed
        horizon = min((self.next_departure_bound(q, now) for q in range(self.partitions) if not departed[q]),
                      default=INF)
        while True:
            heads = [queue for queue in departed if queue]
            if not heads:
                return
            source = min(heads, key=lambda queue: queue[0])
            stored, _, m = source[0]
            if stored > horizon or (stored == horizon and not (settled and stored <= now)):
                if stored < self.wake_at:
                    self.wake_at = stored
                    heappush(self.heap, (stored, DOWNLINK_LAST, self.tick(), DOWN_WAKE, 0))
                return
            source.popleft()
            if not source:
                horizon = min(horizon, self.next_departure_bound(self.records.partition[m], now))
            self.downlink(m, stored)

    def merge_writes(self, now: float, settled: bool = False) -> None:
        """Acks written a pass at a time: the earliest written go on the downlink while no
        pass still open can be written earlier; an open pass has a message not yet stored,
        so it is written no earlier than that message's partition can next store one."""
        ready = self.ready
        horizon = min(self.next_departure_bound(q, now) for q in range(self.partitions))
        while ready:
            written, _, m = ready[0]
            if written > horizon or (written == horizon and not (settled and written <= now)):
                if written < self.wake_at:
                    self.wake_at = written
                    heappush(self.heap, (written, DOWNLINK_LAST, self.tick(), DOWN_WAKE, 0))
                return
            heappop(ready)
            self.downlink(m, written)

    def downlink(self, m: int, entry: float) -> None:
        c = self.state.client_of[self.records.producer[m]]
        departure = self.down.serve(entry)
        arrival = self.late.reach_client(c, departure) if self.jitter else departure + self.half_rtt
        self.state.inbox[c].append((arrival, m))
        if arrival < self.wake_time[c]:
            self.wake_time[c] = arrival
            heappush(self.heap, (arrival, CLIENTS_FIRST, self.tick(), CLIENT, c))

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> Records:
        heap, records = self.heap, self.records
        for c in range(self.clients):
            self.run_client(c, 0.0)
        cut = False
        while heap:
            now, _, key, kind, x = heappop(heap)
            if now >= self.end:
                cut = True
                break
            self.handle(now, key, kind, x)
            if records.tally is not None and records.count >= records.compact_at:
                self.compact()
            if len(heap) > self.prune_at:
                self.prune_at = self.prune()
        stations = (self.up, self.down, *self.reads, *self.parts)
        free = [s.free for s in stations]
        read_busy = [s.busy for s in self.reads]
        if self.io is not None:
            free += self.io.free
            read_busy = list(self.io.busy)
        return finish(records, self.state, cut, self.end, free,
                      {"uplink": [self.up.busy], "read_loop": read_busy,
                       "partition": [s.busy for s in self.parts], "downlink": [self.down.busy]})

    def handle(self, now: float, key: int, kind: int, x: int) -> None:
        if kind == UPLINK:
            out = self.state.outgoing[x]
            entry = out.popleft()
            if out:
                heappush(self.heap, (out[0][TIME], UPLINK_NEXT, out[0][PLACE] * self.clients + x, UPLINK, x))
            else:
                self.uplink_scheduled[x] = False
            self.to_uplink(x, key, entry[MESSAGE], now, entry)
        elif kind == CLIENT:
            if now >= self.wake_time[x]:
                self.wake_time[x] = INF
                self.run_client(x, now)
        elif kind == PART_ARRIVE:
            self.partition(self.records.partition[x], key, x, now)
        elif kind == DOWN_WAKE:
            if now == self.wake_at:
                self.wake_at = INF
                self.merge_downlink(now, settled=True)
        elif self.bytes is not None and kind == GATE_UP:  # GATE_UP of a window in bytes
            self.reopen_bytes(x, now)
        elif kind == GATE_UP:
            self.reopen(x, now)
        else:  # READ
            self.read_pass(x, now)

    def compact(self) -> None:
        """Summary mode: fold finished messages into the tally, renumber the rest."""
        heap = self.heap
        live = [e[4] for e in heap if e[3] == PART_ARRIVE] + [m for q in self.departed for _, _, m in q]
        if self.window is not None:
            live += [m for q in self.waiting for _, m in q]
        if self.bytes is not None:
            live += [entry[MESSAGE] for gate in self.bytes for entry in gate.backlog]
        if self.io is not None:
            live += self.io.live() + [m for _, _, m in self.ready]
            if self.writes is not None:
                live += self.writes.live()
        mapping = self.records.compact(np.array(self.state.live() + live, dtype=np.int64))
        self.state.renumber(mapping)
        heap[:] = [(*e[:4], int(mapping[e[4]])) if e[3] == PART_ARRIVE else e for e in heap]
        heapify(heap)
        for q in self.departed:
            replace_items(q, [(t, key, int(mapping[m])) for t, key, m in q])
        if self.window is not None:
            for q in self.waiting:
                replace_items(q, [(key, int(mapping[m])) for key, m in q])
        if self.bytes is not None:
            for gate in self.bytes:
                replace_items(gate.backlog, [renumbered(entry, mapping) for entry in gate.backlog])
        if self.io is not None:
            self.io.renumber(mapping)
            self.ready[:] = [(t, key, int(mapping[m])) for t, key, m in self.ready]
            heapify(self.ready)
            if self.writes is not None:
                self.writes.renumber(mapping)

    def prune(self) -> int:
        """Drop superseded client wake-ups (a client needs only its earliest, ``wake_time``):
        an ack arriving first leaves the later one in the heap, and the heap would grow
        with every message acked within one ack_wait. Returns the next size to prune at."""
        kept, woken = [], set()
        for entry in self.heap:
            if entry[3] == CLIENT:
                c = entry[4]
                if entry[0] != self.wake_time[c] or c in woken:
                    continue
                woken.add(c)
            kept.append(entry)
        self.heap[:] = kept
        heapify(self.heap)
        return max(1024, 2 * len(self.heap))
