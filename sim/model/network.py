"""The network and the broker, one window at a time.

Given everything the clients' produce() calls finished before a window's end,
these classes push it through the connections' TCP windows, the shared
uplink, the broker's read loops and partition stages and the shared downlink,
and hand each client the acks that reach it. Every station is a
:class:`~sim.model.station.Station` (a first-come first-served server, where
the queueing arithmetic lives); this module routes messages between them.

* :class:`ScalarNetwork` routes with Python lists: best when a window holds a
  few messages.
* :class:`VectorNetwork` routes with numpy arrays and has each station serve
  its whole window as one batch: best when windows hold many messages.

Both take a station's arrivals in time order and give the same times, bit for
bit. Ties follow one rule in every loop: messages reaching
a station at the same instant are served in *connection order*, the one made
earlier on its connection (its place n) first, then the lower client c. So a
queue entry carries ``(time, n, c, m, ...)`` and sorting entries sorts them by
that rule; the message number m, which depends on the order the loop visited
the clients in, never decides.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop, heappush

import numpy as np

from .broker_io import AckWrites, ReadLoops
from .records import CLIENT, MESSAGE, PLACE, TIME, renumbered
from .station import Station

INF = math.inf


class WindowEngaged(Exception):
    """A timeout let a producer exceed its flow control on a connection whose window in
    bytes was left out because it could not bind (``System.byte_window_binds``): the run
    starts again with the window on."""


class ByteWindow:
    """One connection's TCP window counted in bytes, for messages longer than a segment
    (``System.segmented``); the same arithmetic serves the window loop and the event loop.

    At most ``size`` bytes of the connection may be unacknowledged: a byte counts from the
    moment it is handed to the uplink until one RTT after it leaves it. A message that
    finds room for all its bytes, with nothing waiting ahead of it, goes as one job on the
    uplink (as when the window does not bind). Otherwise its bytes join the connection's
    *backlog*, and the backlog goes as much at a time as the window allows, the moment it
    allows it (a job may end one message and begin the next: it is a byte stream).
    A job of s bytes starting its serialization at ``start`` sends its bytes in segments of
    ``mss`` (the last one shorter): segment k leaves at ``start + (its end) / bandwidth`` and
    frees its bytes one RTT later. A message reaches the broker when its last byte does.

    At one instant, releases come first, then the backlog, then messages arriving then (in
    the order they were made). A job is ``(time, n, c, bytes, ends)``: n and c of its first
    message (the tie key at the uplink), ``ends`` the ``(offset, Sent entry)`` of every
    message whose last byte it carries, offsets counted from the job's first byte.
    """

    __slots__ = ("message_bytes", "mss", "bandwidth", "rtt", "free", "releases", "backlog", "head_left", "queued")

    def __init__(self, size: int, message_bytes: int, mss: int, bandwidth: float, rtt: float):
        self.message_bytes, self.mss, self.bandwidth, self.rtt = message_bytes, mss, bandwidth, rtt
        self.free = size  # bytes the window has room for now
        self.releases: deque = deque()  # (time, bytes) a segment frees, in time order
        self.backlog: deque = deque()  # Sent entries whose bytes wait, the first maybe partly sent
        self.head_left = 0  # bytes of backlog[0] not yet sent
        self.queued = 0  # bytes in the backlog

    def next_release(self) -> float:
        """When the backlog may move next (inf if nothing waits, or no byte is in flight)."""
        return self.releases[0][0] if self.backlog and self.releases else INF

    def _released(self, t: float) -> None:
        releases = self.releases
        while releases and releases[0][0] <= t:
            self.free += releases.popleft()[1]

    def arrive(self, entry: tuple, t: float, jobs: list) -> None:
        """Message ``entry`` is handed to the connection at ``t``; append the jobs it starts."""
        self._released(t)
        size = self.message_bytes
        if not self.backlog and self.free >= size:
            self.free -= size
            jobs.append((t, entry[PLACE], entry[CLIENT], size, ((size, entry),)))
            return
        if not self.backlog:
            self.head_left = size
        self.backlog.append(entry)
        self.queued += size
        if self.free > 0:
            self._send(t, jobs)

    def reopen(self, t: float, jobs: list) -> None:
        """Releases due at ``t`` let (more of) the backlog go."""
        self._released(t)
        if self.backlog and self.free > 0:
            self._send(t, jobs)

    def _send(self, t: float, jobs: list) -> None:
        size = self.free if self.free < self.queued else self.queued
        self.free -= size
        self.queued -= size
        backlog, first = self.backlog, self.backlog[0]
        ends, offset, left = [], 0, size
        while left:
            if self.head_left <= left:
                offset += self.head_left
                left -= self.head_left
                ends.append((offset, backlog.popleft()))
                self.head_left = self.message_bytes if backlog else 0
            else:
                self.head_left -= left
                offset += left
                left = 0
        jobs.append((t, first[PLACE], first[CLIENT], size, tuple(ends)))

    def left_uplink(self, job: tuple, start: float) -> list:
        """The uplink began serializing ``job`` at ``start``: record when its segments
        free their bytes; return ``(departure, entry)`` of each message it ends."""
        size, bandwidth, mss, rtt, releases = job[3], self.bandwidth, self.mss, self.rtt, self.releases
        k = mss
        while k < size:
            releases.append((start + k / bandwidth + rtt, mss))
            k += mss
        releases.append((start + size / bandwidth + rtt, size - (k - mss)))
        return [(start + offset / bandwidth, entry) for offset, entry in job[4]]


class _Network:
    def __init__(self, system, streams, records, clients, bytes_gate: bool = False):
        cfg = system.config
        self.clients, self.partitions = system.clients, system.partitions
        path = system.path_times
        self.rtt, self.half_rtt, self.window, self.read_cpu = path.rtt, path.half_rtt, path.uplink_window, path.read_cpu
        self.up_time, self.down_time = path.uplink_time, path.downlink_time
        self.records = records
        self.inbox, self.outgoing = clients.inbox, clients.outgoing
        self.service = streams.service
        self.deterministic = cfg.broker.service_dist == "deterministic"
        self.service_time = cfg.broker.service_time
        # the stations: the shared uplink and downlink, a read loop per connection, a lock per partition
        self.up = Station(self.up_time)
        self.down = Station(self.down_time)
        self.reads = [Station(self.read_cpu) for _ in range(self.clients)]
        self.parts = [Station(self.service_time if self.deterministic else None) for _ in range(self.partitions)]
        # produce() done, waiting for the connection's TCP window: records.Sent entries
        self.gate = [deque() for _ in range(self.clients)]
        # Without timeouts a connection's pipe holds only messages in flight (an acked one
        # was released before its ack came back), so a window at least as large as what
        # its producers may have in flight never closes.
        window = self.window
        self.gate_binds = [
            window is not None and len(clients.producers_of[c]) * system.in_flight_cap > window
            for c in range(self.clients)
        ]
        self.timed_out = clients.timed_out if window is not None else [False] * self.clients
        # the window in bytes, when messages go in segments (System.segmented)
        self.bytes = None
        self.bytes_idle = path.window_bytes is not None and not (bytes_gate or system.byte_window_binds)
        if self.bytes_idle:
            self.timed_out = clients.timed_out  # a timeout may let the window bind: WindowEngaged
        elif path.window_bytes is not None:
            self.bandwidth = system.uplink_bandwidth
            self.bytes = [ByteWindow(int(path.window_bytes), system.message_bytes, path.mss_bytes, self.bandwidth,
                                     self.rtt) for _ in range(self.clients)]
            self.up = Station(None)  # jobs of any size
        # link.jitter: each message and ack is late by its own draw, but a connection delivers in order
        self.jitter = path.jitter
        self.read_path = bool(self.read_cpu) or self.jitter  # arrivals go through the per-window queues
        if self.jitter:
            late = PathJitter(streams, self.clients, self.half_rtt)
            self.reach_broker, self.reach_client = late.reach_broker, late.reach_client
        self.io = self.writes = None  # read loops in passes (sim.model.broker_io): the scalar network only

    def _admit_bytes(self, until: float) -> list:
        """admit() when the windows count bytes: the jobs that enter the uplink before ``until``."""
        jobs = []
        for c, gate in enumerate(self.bytes):
            out, waiting = self.outgoing[c], self.gate[c]
            if out:
                waiting.extend(out)
                out.clear()
            while True:
                arrival = waiting[0][TIME] if waiting else INF
                if gate.backlog:
                    release = gate.next_release()
                    if release <= arrival:
                        if release >= until:
                            break
                        gate.reopen(release, jobs)
                        continue
                if arrival >= until:
                    break
                gate.arrive(waiting.popleft(), arrival, jobs)
        return jobs

    def _bytes_next(self) -> float:
        soonest = INF
        for c, gate in enumerate(self.bytes):
            waiting = self.gate[c]
            soonest = min(soonest, gate.next_release(), waiting[0][TIME] if waiting else INF)
        return soonest

    def admit(self, until: float) -> list:
        """What enters the uplink before ``until``: (time, n, c, m, p), n being m's
        place in its connection, whose window holds n until message n - window leaves it."""
        if self.bytes is not None:
            return self._admit_bytes(until)
        if self.bytes_idle and any(self.timed_out):
            raise WindowEngaged
        batch = []
        window, released = self.window, self.released
        for c in range(self.clients):
            out, waiting = self.outgoing[c], self.gate[c]
            if not waiting and not (self.gate_binds[c] or self.timed_out[c]):
                if out:
                    batch.extend(out)
                    out.clear()
                continue
            if out:
                waiting.extend(out)
                out.clear()
            ring = released[c]
            while waiting:
                entry = waiting[0]
                t = entry[TIME]
                release = ring[entry[PLACE] % window]  # INF while that message is still on its way
                if release > t:
                    t = release
                if t >= until:
                    break
                waiting.popleft()
                ring[entry[PLACE] % window] = INF
                batch.append((t, *entry[PLACE:]))
        return batch

    def gate_next(self) -> float:
        """When the first message held by a TCP window can enter the uplink."""
        if self.bytes is not None:
            return self._bytes_next()
        soonest = INF
        for c, waiting in enumerate(self.gate):
            if waiting:
                head = waiting[0]
                soonest = min(soonest, max(head[TIME], self.released[c][head[PLACE] % self.window]))
        return soonest

    def live(self) -> list[int]:
        """Every message some queue of the network still refers to."""
        backlog = [entry[MESSAGE] for gate in self.bytes for entry in gate.backlog] if self.bytes is not None else []
        return [entry[MESSAGE] for queue in self.gate for entry in queue] + backlog + self._queued()

    def renumber(self, mapping) -> None:
        queues = list(self.gate) + ([gate.backlog for gate in self.bytes] if self.bytes is not None else [])
        for queue in queues:
            items = [renumbered(e, mapping) for e in queue]
            queue.clear()
            queue.extend(items)
        self._renumber_queues(mapping)

    def free_times(self) -> list[float]:
        free = [station.free for station in (self.up, self.down, *self.reads, *self.parts)]
        return free + self.io.free if self.io is not None else free

    def busy(self) -> dict:
        reads = list(self.io.busy) if self.io is not None else [s.busy for s in self.reads]
        return {"uplink": [self.up.busy], "read_loop": reads,
                "partition": [s.busy for s in self.parts], "downlink": [self.down.busy]}


class PathJitter:
    """``link.jitter`` on every connection: each message and ack is late by its own draw
    (the connection's seeded streams), but a connection delivers in order, so none arrives
    ahead of the one before it. Every loop that draws jitter uses this one rule."""

    __slots__ = ("half_rtt", "up", "down", "last_up", "last_down")

    def __init__(self, streams, clients: int, half_rtt: float):
        self.half_rtt = half_rtt
        self.up = [draws.__next__ for draws in streams.uplink_jitter]
        self.down = [draws.__next__ for draws in streams.downlink_jitter]
        self.last_up = [-INF] * clients
        self.last_down = [-INF] * clients

    def reach_broker(self, c: int, departure: float) -> float:
        """When a message of connection c that left the uplink at ``departure`` reaches the
        broker: RTT/2 and its draw later, behind any earlier message of its connection."""
        t = departure + self.half_rtt + self.up[c]()
        if t < self.last_up[c]:
            t = self.last_up[c]
        self.last_up[c] = t
        return t

    def reach_client(self, c: int, departure: float) -> float:
        """The same for an ack of connection c that left the downlink at ``departure``."""
        t = departure + self.half_rtt + self.down[c]()
        if t < self.last_down[c]:
            t = self.last_down[c]
        self.last_down[c] = t
        return t


class ScalarNetwork(_Network):
    """One message at a time."""

    def __init__(self, system, streams, records, clients, bytes_gate: bool = False):
        super().__init__(system, streams, records, clients, bytes_gate)
        window = self.window
        self.released = [[-INF] * window for _ in range(self.clients)] if window is not None else None
        self.to_read = [deque() for _ in range(self.clients)]  # (arrival, n, m, p)
        self.to_partition = [[] for _ in range(self.partitions)]  # (arrival, n, c, m)
        self.to_downlink: list = []  # a heap of (stored, n, c, m)
        if system.read_passes:  # the read loops' buffers replace to_read; keys are (n, c)
            self.io = ReadLoops(system)
            self.writes = AckWrites() if system.read_cap_bytes is not None else None

    def _queued(self) -> list[int]:
        ids = [e[2] for q in self.to_read for e in q]
        if self.io is not None:
            ids += self.io.live() + (self.writes.live() if self.writes is not None else [])
        return ids + [e[3] for q in (*self.to_partition, self.to_downlink) for e in q]

    def _renumber_queues(self, mapping) -> None:
        for queue in self.to_read:
            items = [(e[0], e[1], int(mapping[e[2]]), e[3]) for e in queue]
            queue.clear()
            queue.extend(items)
        if self.io is not None:
            self.io.renumber(mapping)
            if self.writes is not None:
                self.writes.renumber(mapping)
        for queue in (*self.to_partition, self.to_downlink):
            items = [(e[0], e[1], e[2], int(mapping[e[3]])) for e in queue]
            queue.clear()
            queue.extend(items)

    def uplink(self, batch: list) -> None:
        if not batch:
            return
        batch.sort()
        window, released, rtt, half_rtt = self.window, self.released, self.rtt, self.half_rtt
        if self.bytes is not None:  # jobs of bytes: the messages they end, and when
            batch, departures = self._serve_jobs(batch)
        else:
            departures = self.up.serve_all([entry[TIME] for entry in batch])
        if window is not None:
            for (_, n, c, _, _), d in zip(batch, departures):
                released[c][n % window] = d + rtt
        if self.io is not None:
            arrive = self.io.arrive
            if self.jitter:
                reach = self.reach_broker
                for (_, n, c, m, _), d in zip(batch, departures):
                    arrive(c, reach(c, d), (n, c), m)
            else:
                for (_, n, c, m, _), d in zip(batch, departures):
                    arrive(c, d + half_rtt, (n, c), m)
            return
        if self.read_path:
            to_read = self.to_read
            if self.jitter:
                reach = self.reach_broker
                for (_, n, c, m, p), d in zip(batch, departures):
                    to_read[c].append((reach(c, d), n, m, p))
                return
            for (_, n, c, m, p), d in zip(batch, departures):
                to_read[c].append((d + half_rtt, n, m, p))
            return
        # No read-loop cost: each partition's arrivals come straight off the uplink, so the
        # partition is computed here too; the downlink still waits for the window its acks
        # fall in. Adding half an RTT can round two departures to one arrival: then
        # connection order decides.
        arrivals = [(d + half_rtt, n, c, m, p) for (_, n, c, m, p), d in zip(batch, departures)]
        if any(a[0] == b[0] for a, b in zip(arrivals, arrivals[1:])):
            arrivals.sort()
        stored, to_downlink, parts, service = self.records.stored, self.to_downlink, self.parts, self.service
        deterministic = self.deterministic
        for t, n, c, m, p in arrivals:
            t = parts[p].serve(t) if deterministic else parts[p].serve(t, next(service[p]))
            stored[m] = t
            heappush(to_downlink, (t, n, c, m))

    def _serve_jobs(self, jobs: list) -> tuple[list, list]:
        """The uplink serves jobs of bytes (in order); returns the Sent entries of the
        messages they end and those messages' departures (in order)."""
        up, bandwidth, gates = self.up, self.bandwidth, self.bytes
        entries, departures = [], []
        for job in jobs:
            t = job[0]
            start = up.free if up.free > t else t
            up.serve(t, job[3] / bandwidth)
            for d, entry in gates[job[2]].left_uplink(job, start):
                entries.append(entry)
                departures.append(d)
        return entries, departures

    def broker(self, until: float, client_next: list) -> None:
        """Read loops and partitions (when reading costs time), then the downlink, up to ``until``."""
        if self.io is not None:
            self._read_passes(until)
            self._partitions(until)
        elif self.read_path:
            self._read_loops(until)
            self._partitions(until)
        self._downlink(until, client_next)

    def _read_passes(self, until: float) -> None:
        """Every pass of the read loops that starts before ``until`` (it reads only what
        has arrived by its start, all of it known by now)."""
        io, writes, to_partition, partition = self.io, self.writes, self.to_partition, self.records.partition
        for c in range(self.clients):
            while True:
                start = io.next_pass(c)
                if start >= until:
                    break
                parsed = io.read(c, start)
                if writes is not None:
                    writes.open(parsed)
                for t, (n, _), m in parsed:
                    to_partition[partition[m]].append((t, n, c, m))

    def _read_loops(self, until: float) -> None:
        to_partition = self.to_partition
        for c, queue in enumerate(self.to_read):
            if not queue or queue[0][0] >= until:
                continue
            taken = []
            while queue and queue[0][0] < until:
                taken.append(queue.popleft())
            done = self.reads[c].serve_all([entry[0] for entry in taken])
            for (_, k, m, p), t in zip(taken, done):
                to_partition[p].append((t, k, c, m))

    def _partitions(self, until: float) -> None:
        stored, to_downlink = self.records.stored, self.to_downlink
        for p, queue in enumerate(self.to_partition):
            if not queue:
                continue
            queue.sort()  # read loops may reorder messages of different connections
            taken = _take_sorted(queue, until)
            if not taken:
                continue
            n = len(taken)
            times = [entry[0] for entry in taken]
            if self.deterministic:
                done = self.parts[p].serve_all(times)
            else:
                draw = self.service[p]
                done = self.parts[p].serve_each(times, [next(draw) for _ in range(n)])
            if self.writes is not None:  # the acks of a pass are written when its last is stored
                for (_, _, _, m), t in zip(taken, done):
                    stored[m] = t
                    for written, (k, c), n in self.writes.stored(m, t):
                        heappush(to_downlink, (written, k, c, n))
                continue
            for (_, k, c, m), t in zip(taken, done):
                stored[m] = t
                heappush(to_downlink, (t, k, c, m))

    def _downlink(self, until: float, client_next: list) -> None:
        # a heap: a busy partition's acks may lie far ahead, and re-sorting that backlog
        # every window would cost time quadratic in it
        to_downlink = self.to_downlink
        if not to_downlink or to_downlink[0][0] >= until:
            return
        taken = []
        while to_downlink and to_downlink[0][0] < until:
            taken.append(heappop(to_downlink))
        half_rtt, inbox, jitter = self.half_rtt, self.inbox, self.jitter
        for (_, _, c, m), d in zip(taken, self.down.serve_all([entry[0] for entry in taken])):
            t = self.reach_client(c, d) if jitter else d + half_rtt
            inbox[c].append((t, m))
            if t < client_next[c]:
                client_next[c] = t

    def next_time(self) -> float:
        soonest = self.gate_next()
        for queue in self.to_read:
            if queue and queue[0][0] < soonest:
                soonest = queue[0][0]
        if self.io is not None:
            soonest = min(soonest, *(self.io.next_pass(c) for c in range(self.clients)))
        for queue in self.to_partition:
            if queue:
                soonest = min(soonest, min(queue)[0] if self.read_path or self.io is not None else queue[0][0])
        if self.to_downlink:  # a heap: its first entry is the earliest
            soonest = min(soonest, self.to_downlink[0][0])
        return soonest


def _take_sorted(queue: list, until: float) -> list:
    """Remove from the sorted list ``queue`` and return its entries (times first) before ``until``."""
    n = 0
    while n < len(queue) and queue[n][0] < until:
        n += 1
    taken = queue[:n]
    del queue[:n]
    return taken


def _take_before(chunks: list, until: float):
    """Pop from ``chunks`` (tuples of equal-length arrays, times first, in time order)
    every entry before ``until``; return them concatenated (or None)."""
    taken = []
    while chunks:
        chunk = chunks[0]
        times = chunk[0]
        if times[-1] < until:
            taken.append(chunk)
            chunks.pop(0)
            continue
        cut = int(np.searchsorted(times, until, side="left"))
        if cut:
            taken.append(tuple(a[:cut] for a in chunk))
            chunks[0] = tuple(a[cut:] for a in chunk)
        break
    if not taken:
        return None
    if len(taken) == 1:
        return taken[0]
    return tuple(np.concatenate(parts) for parts in zip(*taken))


VECTOR_REFUSES = ("the vector network computes neither a TCP window in bytes that may bind (messages "
                  "longer than link.mss_bytes) nor link.jitter; use loop='windows' or the default")


class VectorNetwork(_Network):
    """Each station's window at once, with numpy."""

    def __init__(self, system, streams, records, clients, bytes_gate: bool = False):
        super().__init__(system, streams, records, clients, bytes_gate)
        if self.bytes is not None or self.jitter:
            raise ValueError(VECTOR_REFUSES)
        window = self.window
        self.released = np.full((self.clients, window), -INF) if window is not None else None
        # chunks of arrays, times first, then the tie key (n, c) where there is a merge ahead
        self.to_read = [[] for _ in range(self.clients)]  # chunks (arrival, n, m, p)
        self.pending = [None] * self.partitions  # (arrival, n, c, m) not yet served, when reading costs time
        self.departed = [[] for _ in range(self.partitions)]  # chunks (stored, n, c, m)

    def _queued(self) -> list[int]:
        ids = [chunk[2] for chunks in self.to_read for chunk in chunks]
        ids += [chunk[3] for chunks in self.departed for chunk in chunks]
        ids += [pending[3] for pending in self.pending if pending is not None]
        return np.concatenate(ids).tolist() if ids else []

    def _renumber_queues(self, mapping) -> None:
        for chunks in self.to_read:
            chunks[:] = [(chunk[0], chunk[1], mapping[chunk[2]], chunk[3]) for chunk in chunks]
        for chunks in self.departed:
            chunks[:] = [(*chunk[:3], mapping[chunk[3]]) for chunk in chunks]
        self.pending = [None if p is None else (*p[:3], mapping[p[3]]) for p in self.pending]

    def uplink(self, batch: list) -> None:
        if not batch:
            return
        times, places, conns, ids, parts = zip(*batch)
        times = np.array(times, dtype=float)
        places, conns, ids, parts = (np.array(column, dtype=np.int64) for column in (places, conns, ids, parts))
        order = np.lexsort((conns, places, times))  # time, then connection order
        times, places, conns, ids, parts = times[order], places[order], conns[order], ids[order], parts[order]
        departures = self.up.serve_batch(times)
        if self.window is not None:
            self.released[conns, places % self.window] = departures + self.rtt
        arrivals = departures + self.half_rtt
        if self.read_cpu:
            for c in np.unique(conns).tolist():
                mine = conns == c
                self.to_read[c].append((arrivals[mine], places[mine], ids[mine], parts[mine]))
        else:  # no read-loop cost: partitions take the uplink's order (see ScalarNetwork.uplink)
            if arrivals.size > 1 and (arrivals[1:] == arrivals[:-1]).any():
                order = np.lexsort((conns, places, arrivals))  # arrivals rounded together
                arrivals, places, conns, ids, parts = (x[order] for x in (arrivals, places, conns, ids, parts))
            self._serve_partitions(arrivals, places, conns, ids, parts)

    def _serve_partitions(self, arrivals, places, conns, ids, parts) -> None:
        stored = np.frombuffer(self.records.stored, dtype=np.float64)
        for p in range(self.partitions):
            if self.partitions > 1:
                mine = parts == p
                a, k, c, m = arrivals[mine], places[mine], conns[mine], ids[mine]
            else:
                a, k, c, m = arrivals, places, conns, ids
            if a.size:
                self._serve(p, a, k, c, m, stored)

    def _serve(self, p: int, arrivals, places, conns, ids, stored) -> None:
        """Partition p serves ``arrivals`` (in time order); its acks wait for the downlink."""
        station = self.parts[p]
        done = station.serve_batch(arrivals, None if self.deterministic else self.service[p].take(arrivals.size))
        stored[ids] = done
        self.departed[p].append((done, places, conns, ids))

    def broker(self, until: float, client_next: list) -> None:
        if self.read_cpu:
            self._read_loops(until)
        heads = [taken for p in range(self.partitions) if (taken := _take_before(self.departed[p], until)) is not None]
        if not heads:
            return
        if len(heads) == 1:
            stored, _, conns, ids = heads[0]
        else:
            stored, places, conns, ids = (np.concatenate(parts) for parts in zip(*heads))
            order = np.lexsort((conns, places, stored))
            stored, conns, ids = stored[order], conns[order], ids[order]
        departures = self.down.serve_batch(stored)
        arrivals = departures + self.half_rtt
        if self.clients == 1:
            self.inbox[0].extend(zip(arrivals.tolist(), ids.tolist()))
            client_next[0] = min(client_next[0], float(arrivals[0]))
            return
        order = np.argsort(conns, kind="stable")
        counts = np.bincount(conns, minlength=self.clients).tolist()
        arrivals, ids = arrivals[order].tolist(), ids[order].tolist()
        start = 0
        for c, count in enumerate(counts):
            if count:
                self.inbox[c].extend(zip(arrivals[start : start + count], ids[start : start + count]))
                client_next[c] = min(client_next[c], arrivals[start])
                start += count

    def _read_loops(self, until: float) -> None:
        fresh = []
        for c in range(self.clients):
            taken = _take_before(self.to_read[c], until)
            if taken is None:
                continue
            arrivals, places, ids, parts = taken
            done = self.reads[c].serve_batch(arrivals)
            fresh.append((done, places, np.full(ids.size, c, dtype=np.int64), ids, parts))
        stored = np.frombuffer(self.records.stored, dtype=np.float64)
        for p in range(self.partitions):
            pieces = [(d[q], k[q], c[q], m[q]) for d, k, c, m, part in fresh if (q := part == p).any()]
            if self.pending[p] is not None:
                pieces.insert(0, self.pending[p])
            if not pieces:
                continue
            a, k, c, m = (np.concatenate(x) for x in zip(*pieces)) if len(pieces) > 1 else pieces[0]
            order = np.lexsort((c, k, a))  # read loops may reorder messages of different connections
            a, k, c, m = a[order], k[order], c[order], m[order]
            cut = int(np.searchsorted(a, until, side="left"))
            self.pending[p] = (a[cut:], k[cut:], c[cut:], m[cut:]) if cut < a.size else None
            if not cut:
                continue
            self._serve(p, a[:cut], k[:cut], c[:cut], m[:cut], stored)

    def next_time(self) -> float:
        soonest = self.gate_next()
        for chunks in (*self.to_read, *self.departed):
            if chunks:
                soonest = min(soonest, float(chunks[0][0][0]))
        for pending in self.pending:
            if pending is not None:
                soonest = min(soonest, float(pending[0][0]))
        return soonest
