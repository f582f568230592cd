"""The hosts loop: every station in global time order, for systems whose processes
share cores (``sim.model.hosts``).

The other loops let each client, and each station, run ahead on its own (a
client to the end of a lookahead window, a read loop over everything that has
reached it), because what one does cannot change another's times before the
lookahead has passed. Shared cores break that: a client's job may wait for a
core that another client, or the co-located broker, holds, at any instant. So
this loop keeps one heap of events and lets everything that asks a core ask in
time order:

* ``CLIENT``: a client runs its own events as far as it can be sure of its acks
  (as in ``sim.loops.events``), and stops when its CPU waits for a core;
* ``UPLINK`` / ``GATE_UP``: a message enters its connection's TCP window and the
  shared uplink;
* ``READ_ARRIVE`` / ``READ_DONE``, ``PART_DONE``: the read loop of each
  connection and the stage of each partition. A read loop takes one message
  at a time: it asks its pool for a core when the message has arrived and the
  loop is free. A partition stage on shared cores asks for a core when it has
  messages and is idle, and at its grant serves every message waiting then,
  one after the other (one pass); with a core of its own it serves them one
  at a time. A partition's departure enters the shared downlink at once;
* ``READ_PASS`` / ``PARSED``, ``ACKS_WRITTEN``: a read loop in passes
  (``sim.model.broker_io``) starts a pass once every arrival of its instant is
  in; the pass asks its pool for one core, takes what has arrived by the
  grant and is laid out from it; each message reaches its partition when
  parsed. The acks of a pass are written at its last store, and those written
  at one instant enter the downlink in connection order;
* ``RELAY_PASS``: a relay on the path (``sim.model.relay``) starts a pass once
  every arrival of its instant is in (after the acks written then), asks the
  broker's pool for one core for the whole pass, reads every socket with bytes
  waiting at the grant, and is laid out from it; each chunk's messages go on to their
  read loops, its acks to their clients, RTT/2 after the chunk is done. A
  client looks ahead no further than the earliest an ack the relay holds for it
  could reach it;
* ``GRANT``: once everything else at an instant has happened, each pool grants
  its free cores to the requests waiting, first come first served
  (``CorePool.grant_due``); the station granted decides its job then, so it
  takes in what reached it while it waited (``sim.model.hosts``). With a time
  slice (``client.host_slice``), a station that asks again as its job ends, within
  its slice, keeps its core ahead of those waiting (``SlicedCorePool``). The next
  ``GRANT`` of a pool is due when its head request is made and a core is free.

At one instant the heap runs the clients first, then the uplink, the read
loops, the partitions, and the pools last; messages go in connection order
(their place n on their connection, then the client), as in every loop. Any
system runs here (shared cores or not); it is the only loop that runs a system
whose pools bind. It keeps every message record (summary mode folds them at
the end).
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop, heappush
from itertools import count

from ..model.aioclient import AioClients, uses_aio_client
from ..model.broker_io import AckWrites, ReadLoops
from ..model.hosts import CLIENT_CPU, PARTITION, READ_LOOP, RELAY, core_pool, layout, pool_busy, pooled_client_side
from ..model.network import PathJitter
from ..model.records import MESSAGE, PLACE, TIME, RecordBuffer, Records
from ..model.relay import DOWN, UP, Relay, relayed
from ..model.station import Station
from ..model.system import System
from .common import finish
from .events import WholeMessageGate

UPLINK, CLIENT, READ_ARRIVE, READ_DONE, PART_DONE, GATE_UP, GRANT = range(7)
READ_PASS, PARSED, ACKS_WRITTEN = 7, 8, 9
RELAY_PASS = 10
CLIENTS_FIRST, UPLINK_NEXT, READS, PARTITIONS, POOLS_LAST = range(5)
PASSES = 2.5  # a read pass starts once every arrival of its instant is in, before the partitions
PARSE = 2.75  # then what the passes parse at that instant reaches its partition, in connection order
WRITES = 3.5  # the acks written at an instant enter the downlink after every store of that instant
RELAYS = 3.75  # a relay's pass starts once every arrival of its instant is in, before the pools grant
INF = math.inf


def run_hosts(system: System) -> Records:
    return HostsLoop(system).run()


class _Serial:
    """A serial station whose jobs may wait for a core: its queue and its job in service."""

    __slots__ = ("queue", "current", "free", "busy", "jobs")

    def __init__(self):
        self.queue: deque = deque()  # (key, m) arrived, not started
        self.current = None  # (key, m) in service (or waiting for its core)
        self.free = 0.0  # when its last job ended
        self.busy = 0.0
        self.jobs = 0


class HostsLoop(WholeMessageGate):
    gate_rank, gate_kind = UPLINK_NEXT, GATE_UP

    def __init__(self, system: System):
        cfg = system.config
        self.system = system
        self.streams = streams = system.streams()
        self.records = records = RecordBuffer.for_config(cfg)
        self.records.compact_at = 1 << 62  # this loop keeps every record until the end
        self.layout = lay = layout(system)
        self.pools = [core_pool(k, cfg.client.host_slice) for k in lay.cores]  # (a time slice: SlicedCorePool)
        self.client_pool = lay.client_pool
        self.broker_pool = lay.broker_pool
        if uses_aio_client(system):  # the asyncio client (sim.model.aioclient), its work on the pools
            self.state = aio = AioClients(system, streams, records)
            self.advance, self.granted = aio.advance, aio.granted
            aio.ask, aio.pooled = self.ask_client, [pool is not None for pool in lay.client_pool]
        else:
            self.advance, self.state, self.granted = pooled_client_side(system, streams, records, self.ask_client)
        self.clients, self.partitions = system.clients, system.partitions
        path = system.path_times
        self.rtt, self.half_rtt, self.window, self.read_cpu = path.rtt, path.half_rtt, path.uplink_window, path.read_cpu
        self.down_time, self.end = path.downlink_time, path.end
        self.heap: list = []
        self.tick = count(1).__next__
        self.deterministic = cfg.broker.service_dist == "deterministic"
        self.service_time = cfg.broker.service_time
        self.draw = [s.__next__ for s in streams.service]
        self.up, self.down = Station(path.uplink_time), Station(path.downlink_time)
        self.reads = [_Serial() for _ in range(self.clients)]
        self.parts = [_Serial() for _ in range(self.partitions)]
        self.wake_time = [INF] * self.clients
        # a wake-up of each client known to be in the heap, not yet run (a client whose work waits
        # for a core gives the same next timer again and again: one heap entry for it is enough)
        self.parked = [INF] * self.clients
        # read loops in passes (sim.model.broker_io): a pass is one job, one core request
        self.io = ReadLoops(system) if system.read_passes else None
        self.writes = AckWrites() if system.read_cap_bytes is not None else None
        self.reading = [False] * self.clients  # a pass of the loop is due, waits for its core or runs
        b = cfg.broker
        # on shared cores a station asks for a core when it has work that may cost CPU, and decides
        # its job at the grant: a read pass, a partition's pass over what waits, a relay's pass
        self.pass_pooled = self.broker_pool is not None and (b.wakeup_cpu > 0 or b.read_cpu > 0)
        self.part_pooled = self.broker_pool is not None and b.service_time > 0
        self.written: list = []  # acks written at this instant: (key, m), into the downlink in key order
        self.jitter = system.jitter > 0  # link.jitter: each message and ack late by its own draw, in order
        if self.jitter:
            self.late = PathJitter(streams, self.clients, self.half_rtt)
        self.uplink_scheduled = [False] * self.clients
        self.grant_at = [INF] * len(self.pools)  # the pending GRANT event of each pool
        # a relay on the path (sim.model.relay): one serial process for every connection, both ways
        self.relay = Relay(system) if relayed(system) else None
        self.relay_running = False  # a pass waits for its core or runs
        self.relay_wake = INF  # the pending wake-up of the idle relay
        self.relay_asked = INF  # when that pass asked for its core
        if self.relay is not None:
            self.run_client, self.uplink, self.to_downlink = (self.relay_run_client, self.relay_uplink,
                                                               self.relay_to_downlink)
        if self.window is not None:
            self.released = [[-INF] * self.window for _ in range(self.clients)]
            self.entered = [0] * self.clients
            self.waiting = [deque() for _ in range(self.clients)]

    # -- pools ---------------------------------------------------------------------------
    def ask(self, pool: int, t: float, key: tuple) -> None:
        """Station ``key`` has work from t and wants a core of ``pool``; it decides its job when granted."""
        cores = self.pools[pool]
        cores.request(t, key)
        soonest = cores.next_grant()
        if soonest < self.grant_at[pool]:
            self.grant_at[pool] = soonest
            heappush(self.heap, (soonest, POOLS_LAST, pool, GRANT, pool))

    def ask_client(self, c: int, t: float) -> None:
        self.ask(self.client_pool[c], t, (CLIENT_CPU, c))

    def grant(self, pool: int, now: float) -> None:
        if now != self.grant_at[pool]:
            return
        heap = self.heap

        def settle(key: tuple, start: float) -> tuple[float, float]:
            """The station ``key`` has a core from ``start`` (= now): it decides its job now."""
            kind, i = key
            if kind == CLIENT_CPU:
                done = self.granted(i, start)
                self.wake(i, now)  # its next event is known now (this job's end, or one of its own before)
                return done
            if kind == PARTITION:
                return self.part_pass(i, start)
            if kind == READ_LOOP and self.io is not None:
                return self.run_pass(i, start)
            if kind == RELAY:
                chunks = self.relay.take(start)
                return self.relay_pass(start, chunks), self.relay.cost(chunks)
            cost = self.read_cpu  # a read loop one message at a time: the message it asked with
            done = start + cost
            station = self.reads[i]
            station.free = done
            key, m = station.current
            heappush(heap, (done, READS, key, READ_DONE, m))
            return done, cost

        self.pools[pool].grant_due(now, settle)
        soonest = self.pools[pool].next_grant()
        self.grant_at[pool] = soonest
        if soonest < INF:
            heappush(self.heap, (soonest, POOLS_LAST, pool, GRANT, pool))

    # -- the clients ----------------------------------------------------------------------
    def wake(self, c: int, t: float) -> None:
        if t < self.wake_time[c]:
            self.wake_time[c] = t
            parked = self.parked[c]
            if t == parked:
                return
            if t > parked or parked == INF:  # (an earlier entry is popped before the one remembered)
                self.parked[c] = t
            heappush(self.heap, (t, CLIENTS_FIRST, self.tick(), CLIENT, c))

    def run_client(self, c: int, now: float) -> None:
        self.advance_client(c, now, max(self.down.free, now) + self.down_time + self.half_rtt)

    def advance_client(self, c: int, now: float, horizon: float) -> None:
        """Client c's events up to ``horizon`` (as far as it can be sure of its acks); its
        first write, if any, is put on the uplink's schedule."""
        self.wake(c, self.advance(c, horizon, now))
        out = self.state.outgoing[c]
        if out and not self.uplink_scheduled[c]:
            self.uplink_scheduled[c] = True
            heappush(self.heap, (out[0][TIME], UPLINK_NEXT, out[0][PLACE] * self.clients + c, UPLINK, c))

    # -- the connection's TCP window: WholeMessageGate (gate, reopen); then the uplink ------------
    def uplink(self, c: int, key: int, m: int, now: float) -> None:
        self.to_broker(c, key, m, self.leave_uplink(c, now))

    def leave_uplink(self, c: int, now: float) -> float:
        """A message of connection c enters the shared uplink at ``now``: when it leaves it
        (its TCP window place reopens one RTT after)."""
        departure = self.up.serve(now)
        if self.window is not None:
            self.released[c][self.entered[c] % self.window] = departure + self.rtt
            self.entered[c] += 1
        return departure

    def to_broker(self, c: int, key: int, m: int, departure: float) -> None:
        """Message m leaves the uplink (or the relay) at ``departure`` for its read loop, RTT/2
        later, plus its own jitter but never ahead of the one before it on its connection."""
        arrival = self.late.reach_broker(c, departure) if self.jitter else departure + self.half_rtt
        heappush(self.heap, (arrival, READS, key, READ_ARRIVE, m))

    # -- read loops in passes: a pass reads what has arrived, asks one core for all of it ----
    def pass_arrive(self, now: float, key: int, m: int) -> None:
        c = self.client_of(m)
        self.io.buffers[c].append((now, key, m))
        if not self.reading[c]:
            self.reading[c] = True
            heappush(self.heap, (now, PASSES, c, READ_PASS, c))

    def pass_due(self, c: int, now: float) -> None:
        """Connection c's loop may start a pass (bytes arrived, or its last pass ended). On
        shared cores it asks for a core and reads what has arrived by its grant."""
        io = self.io
        if not io.buffers[c]:
            self.reading[c] = False
            return
        if self.pass_pooled:
            self.ask(self.broker_pool, now, (READ_LOOP, c))
        else:
            self.run_pass(c, now)

    def run_pass(self, c: int, start: float) -> tuple[float, float]:
        """The pass starts at ``start`` (its grant, on shared cores): it reads what has
        arrived by then, and each message reaches its partition as it is parsed; the loop
        looks for more when the pass ends. Returns that end and the pass's CPU seconds."""
        io = self.io
        count = io.take(c, start)
        factor = io.factors[c]()
        cost = io.cost(count, factor)
        parsed = io.lay_out(c, start, count, factor)
        if self.writes is not None:
            self.writes.open(parsed)
        heap = self.heap
        for t, key, m in parsed:
            heappush(heap, (t, PARSE, key, PARSED, m))
        end = io.free[c]
        heappush(heap, (end, PASSES, c, READ_PASS, c))
        return end, cost

    # -- the broker: read loops and partition stages, one job at a time each ------------------
    def start_read(self, c: int, now: float, key: int, m: int) -> None:
        """Message m starts its read: one message per request for a core (fixed when it asks)."""
        station = self.reads[c]
        station.current = (key, m)
        cost = self.read_cpu
        station.jobs += 1
        if cost > 0 and self.broker_pool is not None:
            self.ask(self.broker_pool, now, (READ_LOOP, c))
        else:
            station.free = now + cost
            heappush(self.heap, (now + cost, READS, key, READ_DONE, m))

    def start_part(self, p: int, now: float, key: int, m: int) -> None:
        """A partition with a core of its own starts message m's service."""
        station = self.parts[p]
        station.current = (key, m)
        cost = self.service_time if self.deterministic else self.draw[p]()
        station.busy += cost  # (used only for drawn service times)
        station.jobs += 1
        station.free = now + cost
        heappush(self.heap, (now + cost, PARTITIONS, key, PART_DONE, m))

    def part_pass(self, p: int, start: float) -> tuple[float, float]:
        """A partition on shared cores has a core from ``start``: it serves every message
        waiting at it then, one after the other (a service time drawn for each, in arrival
        order), each stored at its own end; returns the pass's end and CPU seconds."""
        station = self.parts[p]
        queue, heap = station.queue, self.heap
        t, total = start, 0.0
        for key, m in queue:
            cost = self.service_time if self.deterministic else self.draw[p]()
            total += cost
            t = t + cost
            heappush(heap, (t, PARTITIONS, key, PART_DONE, m))
        station.busy += total
        station.jobs += len(queue)
        station.current = len(queue)  # its messages not yet stored
        queue.clear()
        station.free = t
        return t, total

    def client_of(self, m: int) -> int:
        return self.state.client_of[self.records.producer[m]]

    def read_arrive(self, now: float, key: int, m: int) -> None:
        c = self.client_of(m)
        station = self.reads[c]
        if station.current is None:
            self.start_read(c, now, key, m)
        else:
            station.queue.append((key, m))

    def read_done(self, now: float, key: int, m: int) -> None:
        c = self.client_of(m)
        station = self.reads[c]
        station.current = None
        if station.queue:
            self.start_read(c, now, *station.queue.popleft())
        self.to_partition(now, key, m)

    def to_partition(self, now: float, key: int, m: int) -> None:
        p = self.records.partition[m]
        part = self.parts[p]
        if self.part_pooled:  # shared cores: it waits; a partition with nothing to do asks for a core
            part.queue.append((key, m))
            if part.current is None:
                part.current = 0
                self.ask(self.broker_pool, now, (PARTITION, p))
            return
        if part.current is None:
            self.start_part(p, now, key, m)
        else:
            part.queue.append((key, m))

    def part_done(self, now: float, key: int, m: int) -> None:
        p = self.records.partition[m]
        station = self.parts[p]
        if self.part_pooled:  # the pass's last store ends it: it asks again if messages wait
            station.current -= 1
            if not station.current:
                station.current = None
                if station.queue:
                    station.current = 0
                    self.ask(self.broker_pool, now, (PARTITION, p))
        else:
            station.current = None
            if station.queue:
                self.start_part(p, now, *station.queue.popleft())
        self.records.stored[m] = now
        if self.writes is not None:  # the ack waits for the last store of its pass
            written = self.writes.stored(m, now)
            if written:
                if not self.written:
                    heappush(self.heap, (now, WRITES, 0, ACKS_WRITTEN, 0))
                self.written.extend((k, n) for _, k, n in written)
            return
        self.to_downlink(now, m)

    def write_acks(self, now: float) -> None:
        """The acks written at ``now`` enter the downlink, in connection order."""
        written, self.written = sorted(self.written), []
        for _, m in written:
            self.to_downlink(now, m)

    def to_downlink(self, now: float, m: int) -> None:
        self.to_client(self.client_of(m), m, self.down.serve(now))

    def to_client(self, c: int, m: int, departure: float) -> None:
        """The ack of m leaves the downlink (or the relay) at ``departure`` for its client, RTT/2
        later (and its jitter, in order per connection)."""
        arrival = self.late.reach_client(c, departure) if self.jitter else departure + self.half_rtt
        self.state.inbox[c].append((arrival, m))
        self.wake(c, arrival)

    # -- a relay on the path (sim.model.relay): one process, passes over every socket ----------
    # (with a relay, __init__ puts the three methods below in place of run_client, uplink and
    # to_downlink, so that a system without one runs exactly the code above)
    def relay_run_client(self, c: int, now: float) -> None:
        """``run_client``, looking no further ahead than the earliest an ack the relay holds
        for c could reach it."""
        horizon = max(self.down.free, now) + self.down_time + self.half_rtt
        held = self.relay.ack_bound(c, now) + self.half_rtt
        self.advance_client(c, now, held if held < horizon else horizon)

    def relay_uplink(self, c: int, key: int, m: int, now: float) -> None:
        """``uplink``: the message reaches the relay as it leaves the uplink."""
        self.relay_enter(UP, c, self.leave_uplink(c, now), key, m)

    def relay_to_downlink(self, now: float, m: int) -> None:
        """``to_downlink``: the ack reaches the relay as it leaves the downlink."""
        self.relay_enter(DOWN, self.client_of(m), self.down.serve(now), 0, m)

    def relay_enter(self, way: int, c: int, arrival: float, key: int, m: int) -> None:
        self.relay.enter(way, c, arrival, key, m)
        if not self.relay_running and arrival < self.relay_wake:
            self.relay_wake = arrival
            heappush(self.heap, (arrival, RELAYS, 0, RELAY_PASS, 0))

    def relay_due(self, now: float, ended: int) -> None:
        """The relay may start a pass: bytes reached it while it slept (``ended`` 0), or
        its pass ended (1)."""
        if ended:
            self.relay_running = False
        elif self.relay_running or now != self.relay_wake:
            return  # (a wake-up overtaken by an earlier one)
        self.relay_wake = INF
        relay = self.relay
        soonest = relay.next_arrival()
        if soonest > now:  # nothing waits yet
            if soonest < INF:
                self.relay_wake = soonest
                heappush(self.heap, (soonest, RELAYS, 0, RELAY_PASS, 0))
            return
        self.relay_running = True
        if relay.costs and self.broker_pool is not None:  # one core for the whole pass, read at its grant
            self.relay_asked = now
            self.ask(self.broker_pool, now, (RELAY, 0))
        else:
            self.relay_pass(now, relay.take(now))

    def relay_pass(self, start: float, chunks: list) -> float:
        """The pass starts at ``start`` (its grant, on shared cores) with the chunks waiting
        then: each chunk's messages and acks go on when it is done; the relay looks for more
        bytes when the pass ends (returned)."""
        if start > self.relay_asked:
            self.relay.waited += start - self.relay_asked
        for done, way, c, items in self.relay.lay_out(start, chunks):
            if way == UP:
                for _, key, m in items:
                    self.to_broker(c, key, m, done)
            else:
                for _, _, m in items:
                    self.to_client(c, m, done)
        end = self.relay.free
        heappush(self.heap, (end, RELAYS, 0, RELAY_PASS, 1))
        return end

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> Records:
        heap = self.heap
        for c in range(self.clients):
            self.run_client(c, 0.0)
        cut = False
        while heap:
            now, _, key, kind, x = heappop(heap)
            if now >= self.end:
                cut = True
                break
            if kind == CLIENT:
                if now == self.parked[x]:
                    self.parked[x] = INF
                if now >= self.wake_time[x]:
                    self.wake_time[x] = INF
                    self.run_client(x, now)
            elif kind == UPLINK:
                out = self.state.outgoing[x]
                m = out.popleft()[MESSAGE]
                if out:
                    heappush(heap, (out[0][TIME], UPLINK_NEXT, out[0][PLACE] * self.clients + x, UPLINK, x))
                else:
                    self.uplink_scheduled[x] = False
                self.gate(x, key, m, now)
            elif kind == READ_ARRIVE:
                if self.io is None:
                    self.read_arrive(now, key, x)
                else:
                    self.pass_arrive(now, key, x)
            elif kind == READ_PASS:
                self.pass_due(x, now)
            elif kind == PARSED:
                self.to_partition(now, key, x)
            elif kind == ACKS_WRITTEN:
                self.write_acks(now)
            elif kind == READ_DONE:
                self.read_done(now, key, x)
            elif kind == PART_DONE:
                self.part_done(now, key, x)
            elif kind == GRANT:
                self.grant(x, now)
            elif kind == RELAY_PASS:
                self.relay_due(now, x)
            else:  # GATE_UP
                self.reopen(x, now)
        stations = (self.up, self.down, *self.reads, *self.parts)
        free = [s.free for s in stations]
        if self.io is not None:
            free[2:2 + self.clients] = self.io.free
        # busy = jobs x service for a constant service time, as in every loop
        parts = [s.jobs * self.service_time if self.deterministic else s.busy for s in self.parts]
        reads = list(self.io.busy) if self.io is not None else [s.jobs * self.read_cpu for s in self.reads]
        busy = {"uplink": [self.up.busy], "read_loop": reads,
                "partition": parts, "downlink": [self.down.busy]}
        if self.relay is not None:
            free.append(self.relay.free)
            busy["relay"] = [self.relay.busy]
        busy.update(pool_busy(self.layout, [pool.busy for pool in self.pools]))
        return finish(self.records, self.state, cut, self.end, free, busy)
