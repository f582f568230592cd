"""The model as SimPy processes: the readable statement of what ``sim`` simulates.

``run(config, engine="simpy")`` (or ``sim simulate --engine simpy``) runs it. It
is slow (a few SimPy events per message and station) and exact: the fast
engine must give every message the same times, to 1e-9 s, and the tests hold
it to that. It is also the place to try a new idea: subclass a piece, pass it
in, and compare.

The pieces, as the real system has them:

* a **producer** (the SDK's ``produce()`` caller) is a process; its
  :class:`FlowControl` decides when it may call ``produce()`` again: by default
  the policy of ``sim.model.flow`` the fast engine uses too (sync, a window of
  C, the SDK's drain-to-half limiter with its poll, or no limit);
* a **client** (an OS process) has one CPU, a :class:`simpy.Resource`, shared
  by its producers' ``produce()`` calls and by the processing of acks, and one
  TCP connection whose window is a :class:`simpy.Store` of tokens (whole
  messages), or, for messages longer than a segment, a :class:`Connection`
  whose window is a byte credit (a :class:`simpy.Container`);
* the **link** has a shared uplink and downlink (:class:`Station`) and RTT/2
  of propagation each way, plus each message's and ack's own ``link.jitter``
  (never overtaking the one before it on its connection: :meth:`SimPyModel.propagate`);
* the **broker** has a read loop per connection and a partition stage per
  partition, the partition lock (:class:`Station`). A read loop is a
  :class:`Station` of ``broker.read_cpu`` per message, or, when it runs in
  passes (``broker.read_mode = batched``, a ``broker.wakeup_cpu`` or a
  ``broker.read_cv``), a :class:`ReadLoop` process: each pass reads what has
  arrived, up to ``broker.read_bytes``, and hands each message to its partition
  as it parses it; the acks of one batched pass wait for one another
  (:class:`AckWrite`) and enter the downlink together;
* a **relay** on the path (``link.relay``: a proxy such as ``sim measure``'s) is a
  :class:`Relay` process: each message, and each ack, reaches it as it leaves the
  shared link and travels its RTT/2 once the relay's pass has copied it.

One message is one process that walks the path: the client CPU, the window,
the uplink, half an RTT, the read loop, the partition, the downlink, half an
RTT, the client CPU again for its ack, which counts only if it is processed
before the message's deadline (``producer.ack_wait`` after ``produce()``).

Ties, the rule both engines follow. At one instant a client finishes its CPU
job first (and whatever that lets its producers do at once), then takes the
acks arriving then, then fires its timers (starts, open-loop arrivals, limiter
polls, deadlines) in the order they were set; an ack processed at its deadline
is a timeout (within ``records.TIE_RTOL``). A station fed by several
connections serves messages that arrive at one instant in *connection order*:
the one made earlier on its connection first, then the lower client. SimPy
orders events at one instant by priority, then by scheduling order; the
priorities below encode that rule, and every station takes its next job only
once everything else due at that instant has happened.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop, heappush
from itertools import count

import simpy

from .config import SimConfig
from .model.aioclient import collected, collectors, uses_aio_client
from .model.flow import FlowPolicy, policy_for
from .model.hosts import CLIENT_CPU, PARTITION, READ_LOOP, RELAY, check_supported, layout, pool_busy
from .model.relay import pass_cost
from .model.records import ACKED, IN_FLIGHT, LATE, TIMED_OUT, RecordBuffer, Records
from .model.system import System

# SimPy priorities at one instant (lower first); simpy.events.NORMAL is 1.
ACK_ARRIVAL = 2  # after the CPU and all it sets off
TIMER = 3  # after the acks
# a station picks its next job after the clients' events, upstream stations first
UPLINK_PICK, READ_PICK, PARTITION_PICK, DOWNLINK_PICK = 4, 5, 6, 7
# with client.loop = iterations, a client's event loop starts its next iteration after the
# acks and timers of its instant (and what they set off), before the stations pick
LOOP_PICK = TIMER + 0.5
# a window in bytes: bytes freed at an instant come first (URGENT), then the backlog they
# let go (GATE_WAKE), then messages handed to the connection at that instant (NORMAL)
GATE_WAKE = 0.5
RELAY_PICK = 7.5  # a relay's pass starts after every other station's pick of the instant
POOL_PICK = 8  # a pool of shared cores grants what was asked at an instant after everything else


def at(env: simpy.Environment, delay: float, priority: int) -> simpy.Event:
    """An event ``delay`` from now that fires with ``priority`` among events at its instant."""
    event = simpy.Event(env)
    event._ok = True
    event._value = None
    env.schedule(event, priority, delay)
    return event


class Station:
    """A FIFO server shared by several streams: the uplink, a read loop, a
    partition's lock, the downlink. One job at a time, in order of arrival;
    jobs that arrive at one instant go in connection order ``key = (n, c)``.
    On shared cores (``cores``) each job asks for a core; with ``passes`` (a
    partition stage) the station asks once, and at the grant serves every job
    waiting then, one after the other. ``busy_s`` is its busy time and
    ``free_at`` when its last job ends."""

    def __init__(self, env: simpy.Environment, pick_priority: int, name: str, cores: "CorePool | None" = None,
                 core_key: tuple = (), passes: bool = False):
        self.env, self.pick_priority, self.name = env, pick_priority, name
        self.cores, self.core_key = cores, core_key  # the pool its jobs take a core from (None: its own core)
        # on shared cores, serve in passes: ask for a core, then take every job waiting at the grant
        self.passes = passes and cores is not None
        self.queue: list = []  # (arrival, key, order, done event, service)
        self.busy_s = 0.0
        self.free_at = 0.0
        self._order = count()
        self._wake: simpy.Event | None = None
        env.process(self._serve())

    def serve(self, key: tuple[int, int], service) -> simpy.Event:
        """Queue a job; the event fires when it has been served. ``service`` is
        seconds, or a callable drawn when the job starts (a random service time)."""
        done = self.env.event()
        heappush(self.queue, (self.env.now, key, next(self._order), done, service))
        if self._wake is not None:
            self._wake.succeed()
            self._wake = None
        return done

    def _serve(self):
        env = self.env
        while True:
            if not self.queue:
                self._wake = env.event()
                yield self._wake
            yield at(env, 0, self.pick_priority)  # let every arrival of this instant in
            if self.passes:  # a core first; then every job that waits at the grant, one after the other
                yield self.cores.request(self.core_key)
                jobs = [heappop(self.queue) for _ in range(len(self.queue))]
                for _, _, _, done, service in jobs:
                    seconds = service() if callable(service) else service
                    self.busy_s += seconds
                    self.cores.use(seconds)
                    yield env.timeout(seconds)
                    done.succeed()
                self.free_at = env.now
                self.cores.release(self.core_key)
                continue
            _, _, _, done, service = heappop(self.queue)
            seconds = service() if callable(service) else service
            self.busy_s += seconds
            if self.cores is not None and seconds > 0:
                yield self.cores.request(self.core_key)
                self.cores.use(seconds)
                yield env.timeout(seconds)
                self.cores.release(self.core_key)
            else:
                yield env.timeout(seconds)
            self.free_at = env.now
            done.succeed()


class ReadLoop:
    """A connection's read loop that runs in passes (see ``sim.model.broker_io``): it
    sleeps until bytes arrive, then reads what has arrived by then, up to ``cap``
    bytes (None: one message), and parses the messages that read completes, one after
    the other; a pass costs ``wakeup`` plus ``per_message`` for each, times ``factor()``."""

    def __init__(self, env, cap, message_bytes, wakeup, per_message, factor, cores: "CorePool | None" = None,
                 core_key: tuple = ()):
        self.env, self.cap, self.size = env, cap, message_bytes
        self.cores, self.core_key = cores, core_key  # shared cores: a pass is one request for all its CPU
        self.wakeup, self.per_message, self.factor = wakeup, per_message, factor
        self.buffer: deque = deque()  # (arrival, parsed event)
        self.partial = 0  # bytes of the head message read by an earlier pass
        self.busy_s = 0.0
        self.free_at = 0.0
        self.passes = 0  # passes run, and the most messages one of them parsed
        self.most = 0
        self._wake: simpy.Event | None = None
        env.process(self._run())

    def arrive(self) -> simpy.Event:
        """A message has arrived; the event fires when it is parsed, with the
        :class:`AckWrite` of its pass as value (None when acks are written one by one)."""
        parsed = self.env.event()
        self.buffer.append((self.env.now, parsed))
        if self._wake is not None:
            self._wake.succeed()
            self._wake = None
        return parsed

    def _take(self) -> int:
        """How many messages the pass starting now completes."""
        if self.cap is None:
            return 1
        now, size = self.env.now, self.size
        arrived = sum(1 for arrival, _ in self.buffer if arrival <= now)
        if size == 0:
            return arrived
        done = self.partial + min(self.cap, arrived * size - self.partial)
        count = done // size
        self.partial = done - count * size
        return count

    def _run(self):
        env = self.env
        while True:
            if not self.buffer:
                self._wake = env.event()
                yield self._wake
            yield at(env, 0, READ_PICK)  # let every arrival of this instant in
            pooled = self.cores is not None and (self.wakeup > 0 or self.per_message > 0)
            if pooled:  # the pass waits for a core, then reads what has arrived by its grant
                yield self.cores.request(self.core_key)
            start = env.now
            count = self._take()
            factor = self.factor()
            self.passes += 1
            self.most = max(self.most, count)
            write = AckWrite(env, count) if self.cap is not None and count else None
            seconds = self.wakeup * factor  # the pass's CPU, summed as the engine sums it
            for _ in range(count):
                seconds = seconds + self.per_message * factor
            if pooled:
                self.cores.use(seconds)
            end = start + self.wakeup * factor
            for _ in range(count):
                end = end + self.per_message * factor
            self.busy_s += end - start
            if self.wakeup * factor > 0:
                yield env.timeout(self.wakeup * factor)
            step = self.per_message * factor
            for _ in range(count):
                if step > 0:
                    yield env.timeout(step)
                _, parsed = self.buffer.popleft()
                parsed.succeed(write)
            if pooled:
                self.cores.release(self.core_key)
            self.free_at = env.now


class Relay:
    """One relay process for the whole path (``sim.model.relay``): a socket per connection
    each way. It sleeps until bytes wait; a pass then reads every socket with bytes
    waiting, one chunk each (uplink sockets by connection, then downlink sockets), for
    ``wakeup`` per pass and ``cpu`` per chunk: with shared cores ``cores`` it asks for one
    core for the whole pass; chunk k is done ``cpu`` after chunk k - 1 (the first, ``cpu``
    after the pass's wake-up), and what it carries goes on then. The next pass starts when
    this one ends."""

    def __init__(self, env: simpy.Environment, clients: int, cpu: float, cores: "CorePool | None" = None,
                 wakeup: float = 0.0):
        self.env, self.cpu, self.cores, self.wakeup = env, cpu, cores, wakeup
        self.sockets = ([deque() for _ in range(clients)], [deque() for _ in range(clients)])  # events waiting
        self.busy_s = 0.0
        self.free_at = 0.0
        self.passes = 0
        self._wake: simpy.Event | None = None
        env.process(self._run())

    def arrive(self, way: int, c: int) -> simpy.Event:
        """A message (way 0) or an ack (way 1) of connection c reaches the relay now; the
        event fires when its chunk is done."""
        done = self.env.event()
        self.sockets[way][c].append(done)
        if self._wake is not None:
            self._wake.succeed()
            self._wake = None
        return done

    def _run(self):
        env, cpu = self.env, self.cpu
        while True:
            if not any(socket for sockets in self.sockets for socket in sockets):
                self._wake = env.event()
                yield self._wake
            yield at(env, 0, RELAY_PICK)  # let every arrival of this instant in
            pooled = self.cores is not None and (cpu > 0 or self.wakeup > 0)
            if pooled:  # one core for the whole pass; it reads what waits at its grant
                yield self.cores.request((RELAY, 0))
            chunks = []
            for sockets in self.sockets:
                for socket in sockets:
                    if socket:
                        chunks.append(list(socket))
                        socket.clear()
            if pooled:
                self.cores.use(pass_cost(self.wakeup, cpu, len(chunks)))
            start = env.now
            if self.wakeup > 0:
                yield env.timeout(self.wakeup)
            for chunk in chunks:
                if cpu > 0:
                    yield env.timeout(cpu)
                for done in chunk:
                    done.succeed()
            self.busy_s += env.now - start
            self.passes += 1
            if pooled:
                self.cores.release((RELAY, 0))
            self.free_at = env.now


class AckWrite:
    """The acks of one batched pass: written together once the last of them is stored."""

    def __init__(self, env: simpy.Environment, size: int):
        self.unstored = size
        self.written = env.event()

    def stored(self) -> simpy.Event:
        self.unstored -= 1
        if not self.unstored:
            self.written.succeed()
        return self.written


class CorePool:
    """A host's cores, shared by serial stations (client CPUs, read loops, partition stages):
    ``cores`` servers taken first come, first served. A station asks with ``request(key)``
    once it has work, without saying how much: what is asked is granted once everything else
    at the instant has happened, earlier requests first, then in ``key`` order (client CPUs,
    read loops, partition stages, the relay: ``sim.model.hosts``), while a core is free. The
    station decides its job when granted (taking in what reached it by then), says its CPU
    seconds with ``use(seconds)`` and calls ``release(key)`` when done.

    With a time slice (``slice_`` > 0, ``client.host_slice``): a grant that waited in the queue
    starts the station's run; a station that releases its core and asks again at the same
    instant, less than ``slice_`` after its run's grant, keeps it: that request is granted at
    the instant's pick ahead of every request waiting."""

    def __init__(self, env: simpy.Environment, cores: int, slice_: float = 0.0):
        self.env, self.idle = env, cores
        self.waiting: list = []  # (asked at, key, event)
        self.busy_s = 0.0  # CPU seconds of the jobs granted
        self._pick_at: float | None = None
        self.slice = slice_
        self.kept: list = []  # (key, event): requests that keep the core they just released
        self.run_start: dict = {}  # key -> when its run was granted
        self.released: dict = {}  # key -> when it last released its core

    def use(self, seconds: float) -> None:
        self.busy_s += seconds

    def request(self, key: tuple) -> simpy.Event:
        """A core: the event fires when it is granted."""
        granted = self.env.event()
        now = self.env.now
        if self.slice and self.released.get(key) == now and now - self.run_start[key] < self.slice:
            heappush(self.kept, (key, granted))
        else:
            heappush(self.waiting, (now, key, granted))
        self._pick_later()
        return granted

    def release(self, key: tuple | None = None) -> None:
        """The station ``key`` is done with its core (the key may be left out without a slice)."""
        self.idle += 1
        if self.slice:
            if key is None:
                raise ValueError("CorePool.release: with a time slice (client.host_slice), say which "
                                 "station releases its core: release(key)")
            self.released[key] = self.env.now
        self._pick_later()

    def _pick_later(self) -> None:
        if self._pick_at != self.env.now:
            self._pick_at = self.env.now
            at(self.env, 0, POOL_PICK).callbacks.append(self._pick)

    def _pick(self, _event) -> None:
        self._pick_at = None
        while self.idle and self.kept:  # runs that go on, on the core each just released
            _, granted = heappop(self.kept)
            self.idle -= 1
            granted.succeed()
        for key, granted in self.kept:  # (a core went to another at this instant: they wait)
            heappush(self.waiting, (self.env.now, key, granted))
        self.kept.clear()
        while self.idle and self.waiting:
            _, key, granted = heappop(self.waiting)
            self.idle -= 1
            if self.slice:
                self.run_start[key] = self.env.now
            granted.succeed()


class FlowControl:
    """When a producer may call ``produce()``: the SDK's in-flight control.

    ``before(producer)`` and ``after(producer)`` are generators run by the
    producer's process before each ``produce()`` and right after it returns.
    Subclass it to try another policy."""

    def before(self, producer: "Producer"):
        yield from ()

    def after(self, producer: "Producer"):
        yield from ()


class PolicyControl(FlowControl):
    """A policy of ``sim.model.flow`` (the one the fast engine uses), as SimPy waits."""

    def __init__(self, policy: FlowPolicy):
        self.policy = policy

    def before(self, producer):
        while producer.in_flight >= self.policy.cap:
            yield producer.changed()

    def after(self, producer):
        policy = self.policy
        wait = None if policy.pause is None else policy.pause(producer.in_flight)
        if wait is None:
            return
        if wait > 0:  # sleep, then look again
            while True:
                yield at(producer.env, wait, TIMER)
                if policy.may_resume(producer.in_flight):
                    return
        while not policy.may_resume(producer.in_flight):
            yield producer.changed()


def flow_control(system: System) -> FlowControl:
    """The policy the config asks for."""
    return PolicyControl(policy_for(system))


class Producer:
    """One ``produce()`` caller: its messages in flight and the event that fires
    when that count changes."""

    def __init__(self, env: simpy.Environment, index: int, client: "Client"):
        self.env, self.index, self.client = env, index, client
        self.in_flight = 0
        self.turn: simpy.Event | None = None  # with event-loop iterations: waiting to produce
        self.intended: float | None = None
        self.made = 0  # messages produced so far
        self.waiting: deque = deque()  # its messages not yet timed out, oldest first (some acked)
        self._changed = env.event()

    def changed(self) -> simpy.Event:
        return self._changed

    def resolved(self) -> None:
        self.in_flight -= 1
        if self.client.collector is not None:
            self.client.collector.freed()
        event, self._changed = self._changed, self.env.event()
        event.succeed()


class Connection:
    """A client's TCP connection when its window counts bytes (messages longer than one
    segment: ``System.segmented``); the rule is ``sim.model.network.ByteWindow``'s.

    The window is a byte credit, a :class:`simpy.Container` of ``link.window_bytes`` (or the
    Mathis window). A message that finds credit for all its bytes, with nothing waiting
    ahead of it, is one job on the uplink. Otherwise its bytes join the backlog, which goes
    as one job of as many bytes as there is credit, whenever there is some. A job's
    segments (``link.mss_bytes`` each, the last shorter) leave the uplink one after the
    other as it is serialized, and each gives its credit back one RTT after it left."""

    def __init__(self, model: "SimPyModel", window: int):
        self.model, self.env = model, model.env
        system = model.system
        self.credit = simpy.Container(self.env, capacity=window, init=window)
        self.size, self.mss, self.bandwidth = system.message_bytes, system.config.link.mss_bytes, \
            system.uplink_bandwidth
        self.backlog: deque = deque()  # (key, event: its last byte left the uplink) of messages that wait
        self.head_left = 0  # bytes of the first one not yet sent
        self.queued = 0  # bytes waiting
        self.waking = False

    def write(self, key) -> simpy.Event:
        """Hand a message over; the event fires when its last byte has left the uplink."""
        left = self.env.event()
        if not self.backlog and self.credit.level >= self.size:
            self.credit.get(self.size)
            self.send(key, self.size, [(self.size, left)])
            return left
        if not self.backlog:
            self.head_left = self.size
        self.backlog.append((key, left))
        self.queued += self.size
        if self.credit.level > 0:
            self.send_backlog()
        return left

    def send_backlog(self) -> None:
        size = min(self.credit.level, self.queued)
        self.credit.get(size)
        self.queued -= size
        key, ends, offset, rest = self.backlog[0][0], [], 0, size
        while rest:
            step = min(self.head_left, rest)
            offset += step
            rest -= step
            self.head_left -= step
            if not self.head_left:
                ends.append((offset, self.backlog.popleft()[1]))
                self.head_left = self.size if self.backlog else 0
        self.send(key, size, ends)

    def send(self, key, size: int, ends: list) -> None:
        env, bandwidth, mss = self.env, self.bandwidth, self.mss

        def service() -> float:  # the uplink starts serializing the job now
            k = mss
            while k < size:
                self.segment_leaves(k / bandwidth, mss)
                k += mss
            self.segment_leaves(size / bandwidth, size - (k - mss))
            for offset, left in ends:
                left._ok, left._value = True, None
                env.schedule(left, simpy.events.NORMAL, offset / bandwidth)
            return size / bandwidth

        self.model.uplink.serve(key, service)

    def segment_leaves(self, after: float, nbytes: int) -> None:
        env, rtt = self.env, self.model.config.link.rtt

        def acked(_):
            at(env, rtt, simpy.events.URGENT).callbacks.append(lambda _: self.release(nbytes))

        at(env, after, simpy.events.URGENT).callbacks.append(acked)

    def release(self, nbytes: int) -> None:
        self.credit.put(nbytes)
        if self.backlog and not self.waking:
            self.waking = True
            at(self.env, 0, GATE_WAKE).callbacks.append(self.wake)

    def wake(self, _) -> None:
        self.waking = False
        if self.backlog and self.credit.level > 0:
            self.send_backlog()


class Client:
    """An OS process: one CPU for its producers and their acks, one connection."""

    def __init__(self, env: simpy.Environment, index: int, window: int | None, cores: CorePool | None = None):
        self.index = index
        self.connection: Connection | None = None  # set when the window counts bytes
        # with link.jitter: (time, event) of the latest arrival each way, which a later one never beats
        self.last = [(-math.inf, None), (-math.inf, None)]
        self.cpu = simpy.Resource(env, 1)
        self.cores = cores  # its host's cores, when shared (None: a core of its own)
        self.cpu_busy_s = 0.0
        self.cpu_free_at = 0.0
        self.sent = 0  # messages made on this connection so far: the next one's place n
        self.collector = None  # its garbage collector (sim.model.aioclient.Collector), with client.gc_messages
        self.producers: list[Producer] = []
        self.window = None
        if window is not None:  # the TCP window, counted in messages
            self.window = simpy.Store(env)
            self.window.items.extend(range(window))

    def run_on_cpu(self, env, seconds: float):
        with self.cpu.request() as request:
            yield request
            self.cpu_busy_s += seconds
            if self.cores is not None and seconds > 0:  # then a core of its host
                yield self.cores.request((CLIENT_CPU, self.index))
                self.cores.use(seconds)
                yield env.timeout(seconds)
                self.cores.release((CLIENT_CPU, self.index))
            else:
                yield env.timeout(seconds)
            self.cpu_free_at = env.now


class SimPyModel:
    """The model of ``config`` as SimPy processes; :meth:`run` returns its Records.

    ``policy`` replaces the flow control of every producer: a :class:`FlowControl`,
    or a policy of ``sim.model.flow`` such as ``Window(4)``."""

    def __init__(self, config: SimConfig, policy: FlowControl | FlowPolicy | None = None):
        self.config = config
        self.system = system = System(config)
        self.env = env = simpy.Environment()
        self.streams = system.streams()
        if isinstance(policy, FlowPolicy):
            policy = PolicyControl(policy)
        self.policy = policy if policy is not None else flow_control(system)
        cfg = config
        check_supported(system)
        self.hosts = hosts = layout(system)  # shared cores: sim.model.hosts
        self.core_pools = [CorePool(env, cores, cfg.client.host_slice) for cores in hosts.cores]
        on = [None if i is None else self.core_pools[i] for i in hosts.client_pool]
        broker = None if hosts.broker_pool is None else self.core_pools[hosts.broker_pool]
        self.clients = [Client(env, c, system.uplink_window, on[c]) for c in range(system.clients)]
        if system.segmented:
            for client in self.clients:
                client.connection = Connection(self, int(system.window_bytes))
        self.producers = [Producer(env, j, self.clients[system.client_of(j)]) for j in range(system.producers)]
        for producer in self.producers:
            producer.client.producers.append(producer)
        for client, collector in zip(self.clients, collectors(system) or []):
            client.collector = collector
        self.uplink = Station(env, UPLINK_PICK, "uplink")
        self.read_loops = [Station(env, READ_PICK, f"read_loop[{c}]", broker, (READ_LOOP, c))
                           for c in range(system.clients)]
        if system.read_passes:
            factors = system.read_factors()
            self.read_loops = [
                ReadLoop(env, system.read_cap_bytes, system.message_bytes, cfg.broker.wakeup_cpu,
                         cfg.broker.read_cpu, factors[c].__next__, broker, (READ_LOOP, c))
                for c in range(system.clients)]
        # on shared cores a partition stage serves in passes: every message waiting at its grant
        self.partitions = [Station(env, PARTITION_PICK, f"partition[{p}]", broker if cfg.broker.service_time > 0
                                   else None, (PARTITION, p), passes=True)
                           for p in range(system.partitions)]
        self.downlink = Station(env, DOWNLINK_PICK, "downlink")
        self.relay = Relay(env, system.clients, cfg.link.relay_cpu, broker,
                           cfg.link.relay_wakeup_cpu) if cfg.link.relay else None
        self.half_rtt = cfg.link.rtt / 2
        self.messages: list[dict] = []
        self.processes: list[simpy.Process] = []
        self.loops: list[EventLoop] = []  # client.loop = iterations: each client's event loop

    # -- producers ------------------------------------------------------------------
    def producer(self, producer: Producer):
        env, p = self.env, self.config.producer
        j = producer.index
        gaps = self.streams.arrival_gaps[j]
        choose = self.streams.partitions[j]
        start = self.streams.start_times[j]
        yield at(env, start, TIMER)  # a producer starts on a timer, like every other timer
        next_arrival = start + next(gaps) if gaps is not None else None
        made = 0
        while p.messages is None or made < p.messages:
            yield from self.policy.before(producer)
            if next_arrival is not None and next_arrival > env.now:
                yield at(env, next_arrival - env.now, TIMER)
            message = {
                "producer": j, "partition": next(choose), "created": env.now,
                "intended": next_arrival if next_arrival is not None else env.now,
                "sent": math.nan, "stored": math.nan, "resolved": math.nan, "status": IN_FLIGHT,
            }
            if next_arrival is not None:
                next_arrival += next(gaps)
            self.messages.append(message)
            made = producer.made = made + 1
            producer.in_flight += 1
            producer.waiting.append(message)
            # the deadline is set now, before anything else happens at this instant
            at(env, p.ack_wait, TIMER).callbacks.append(lambda _, m=message: self.expire(producer, m))
            returned = env.event()
            self.processes.append(env.process(self.message(producer, message, returned)))
            yield returned  # produce() returns once the client's CPU has sent it
            yield from self.policy.after(producer)

    def expire(self, producer: Producer, message: dict) -> None:
        """A deadline falls due: the producer's watchdog times out, at once, every one
        of its messages whose deadline has come (the first due is ``message``)."""
        now, ack_wait = self.env.now, self.config.producer.ack_wait
        waiting = producer.waiting
        while waiting and (waiting[0]["status"] != IN_FLIGHT or waiting[0]["created"] + ack_wait <= now):
            late = waiting.popleft()
            if late["status"] == IN_FLIGHT:
                late["status"] = TIMED_OUT
                late["resolved"] = late["created"] + ack_wait
                producer.resolved()

    # -- one message ------------------------------------------------------------------
    def message(self, producer: Producer, message: dict, returned: simpy.Event, loop: "EventLoop | None" = None):
        env, cfg, client = self.env, self.config, producer.client
        if loop is not None:  # client.loop = iterations: the loop writes it, ``returned`` gives its place
            key = yield returned
        else:
            key = (client.sent, client.index)  # its place on its connection, then the client
            client.sent += 1
            yield from client.run_on_cpu(env, message.get("send_cost", cfg.client.send_cpu))
            message["sent"] = env.now
            returned.succeed()
        if client.connection is not None:  # a window in bytes
            yield client.connection.write(key)
        else:
            if client.window is not None:
                token = yield client.window.get()
            yield self.uplink.serve(key, self.system.uplink_time)
            if client.window is not None:  # the window reopens one RTT after the message left
                env.process(self.reopen(client.window, token))
        if self.relay is not None:  # through the relay, then RTT/2 on to the broker
            yield self.relay.arrive(0, client.index)
        if self.streams.uplink_jitter is not None:
            yield from self.propagate(client, 0, simpy.events.NORMAL)
        else:
            yield env.timeout(self.half_rtt)
        reader = self.read_loops[client.index]
        if isinstance(reader, ReadLoop):
            write = yield reader.arrive()
        else:
            write = None
            yield reader.serve(key, cfg.broker.read_cpu)
        p = message["partition"]
        yield self.partitions[p].serve(key, self.streams.service[p].__next__)
        message["stored"] = env.now
        if write is not None:  # the acks of one pass leave together, once all are stored
            yield write.stored()
        yield self.downlink.serve(key, self.system.downlink_time)
        if self.relay is not None:
            yield self.relay.arrive(1, client.index)
        if self.streams.downlink_jitter is not None:
            yield from self.propagate(client, 1, ACK_ARRIVAL)
        else:
            yield at(env, self.half_rtt, ACK_ARRIVAL)
        if loop is not None:  # the loop reads it in its next iteration
            loop.arrived(message)
            return
        yield from client.run_on_cpu(env, message.get("ack_cost", cfg.client.ack_cpu))
        if message["status"] == IN_FLIGHT and env.now < (message["created"] + cfg.producer.ack_wait) * LATE:
            message["status"] = ACKED
            message["resolved"] = env.now
            producer.resolved()

    def propagate(self, client: Client, way: int, priority: int):
        """Half an RTT and this message's (way 0) or ack's (way 1) own link.jitter, but never
        ahead of the one before it on its connection: TCP delivers in order."""
        env = self.env
        draws = (self.streams.uplink_jitter, self.streams.downlink_jitter)[way][client.index]
        delay = next(draws)
        own = env.now + self.half_rtt + delay  # the sums SimPy's clock makes below
        ahead, ahead_arrived = client.last[way]
        if own < ahead:
            yield ahead_arrived  # arrives with the one ahead of it, just after it
            return
        arrived = env.event()
        client.last[way] = (own, arrived)
        yield at(env, self.half_rtt, priority)
        yield at(env, delay, priority)
        arrived._ok, arrived._value = True, None
        env.schedule(arrived, priority, 0)

    def reopen(self, window: simpy.Store, token):
        yield self.env.timeout(self.config.link.rtt)
        yield window.put(token)

    # -- the asyncio client (sim.model.aioclient): tasks, iterations, bursts, drawn costs ----
    def aio_producer(self, producer: Producer):
        """A producer whose produce() creates a task (sim.model.aioclient). With event-loop
        iterations it waits until it may produce, then its loop makes the call at the start
        of its next iteration (one per iteration); one job at a time, it makes the call at
        once and waits for it to return. A burst creates all its tasks at its start."""
        env, p = self.env, self.config.producer
        j = producer.index
        gaps = self.streams.arrival_gaps[j]
        start = self.streams.start_times[j]
        yield at(env, start, TIMER)
        if p.mode == "burst":
            for _ in range(p.messages):
                self.aio_create(producer)
            return
        loop = self.loops[producer.client.index] if self.loops else None
        next_arrival = start + next(gaps) if gaps is not None else None
        while p.messages is None or producer.made < p.messages:
            yield from self.policy.before(producer)
            if next_arrival is not None and next_arrival > env.now:
                yield at(env, next_arrival - env.now, TIMER)
                continue  # look again
            if loop is not None:
                producer.intended = next_arrival
                producer.turn = env.event()
                loop.poke(env.now)
                yield producer.turn  # the loop made the call at its iteration's start
            else:
                message, returned = self.aio_create(producer, next_arrival)
                yield returned  # one job at a time: produce() returns when its job ends
            if next_arrival is not None:
                next_arrival += next(gaps)
            yield from self.policy.after(producer)

    def aio_create(self, producer: Producer, intended: float | None = None, created: float | None = None):
        """produce(): a new message and its task, created now (or at ``created``, the start
        of the loop's iteration)."""
        env, cfg = self.env, self.config
        j = producer.index
        created = env.now if created is None else created
        message = {
            "producer": j, "partition": next(self.streams.partitions[j]), "created": created,
            "intended": intended if intended is not None else created,
            "sent": math.nan, "stored": math.nan, "resolved": math.nan, "status": IN_FLIGHT,
        }
        if self.streams.client_cpu is not None:
            message["send_cost"], message["ack_cost"] = next(self.streams.client_cpu[j])
        self.messages.append(message)
        producer.made += 1
        producer.in_flight += 1
        producer.waiting.append(message)
        collector = producer.client.collector
        if collector is not None:  # a full collection runs in this message's publish
            pause = collector.made(sum(p.in_flight for p in producer.client.producers))
            if pause:
                message["send_cost"] = message.get("send_cost", cfg.client.send_cpu) + pause
        deadline = max(0.0, created + cfg.producer.ack_wait - env.now)
        at(env, deadline, TIMER).callbacks.append(lambda _, m=message: self.expire(producer, m))
        returned = env.event()
        loop = self.loops[producer.client.index] if self.loops else None
        if loop is not None and self.config.producer.mode == "burst":
            loop.ready.append((message, returned))
            loop.poke(env.now)
        self.processes.append(env.process(self.message(producer, message, returned, loop)))
        return message, returned

    # -- a run ------------------------------------------------------------------------
    def run(self) -> Records:
        env, cfg = self.env, self.config
        self.loops = []
        if uses_aio_client(self.system):
            if cfg.client.loop == "iterations":
                self.loops = [EventLoop(self, client) for client in self.clients]
            producers = [env.process(self.aio_producer(producer)) for producer in self.producers]
        else:
            producers = [env.process(self.producer(producer)) for producer in self.producers]
        end = math.inf if cfg.run.duration is None else cfg.run.duration
        if cfg.run.duration is None:
            env.run()
        else:
            env.run(until=end)
        # the run was cut when a producer or a message still had something to do
        stopped = any(process.is_alive for process in producers + self.processes)
        return self._records(stopped, end)

    def _records(self, stopped: bool, end: float) -> Records:
        cfg = self.config
        buffer = RecordBuffer.for_config(cfg)
        for m, message in enumerate(self.messages):
            if m == buffer.capacity:
                buffer.count = m
                buffer.grow()
            for name in ("producer", "partition", "created", "sent", "stored", "resolved", "status"):
                getattr(buffer, name)[m] = message[name]
            if buffer.open_loop:
                buffer.intended[m] = message["intended"]
        buffer.count = len(self.messages)
        stations = [self.uplink, self.downlink, *self.read_loops, *self.partitions]  # (ReadLoop too has both)
        if self.relay is not None:
            stations.append(self.relay)
        free = [s.free_at for s in stations] + [c.cpu_free_at for c in self.clients]
        span = end if stopped else max(free)
        unfinished = any(m["status"] == IN_FLIGHT for m in self.messages) or any(
            cfg.producer.messages is None or producer.made < cfg.producer.messages for producer in self.producers)
        busy = {
            "client_cpu": [c.cpu_busy_s for c in self.clients],
            "uplink": [self.uplink.busy_s],
            "read_loop": [s.busy_s for s in self.read_loops],
            "partition": [s.busy_s for s in self.partitions],
            "downlink": [self.downlink.busy_s],
            **({"relay": [self.relay.busy_s]} if self.relay is not None else {}),
            **pool_busy(self.hosts, [pool.busy_s for pool in self.core_pools]),
        }
        out = buffer.finish(busy, span, stopped and unfinished, end)
        if self.clients and self.clients[0].collector is not None:
            out.collections = collected([c.collector for c in self.clients])
        return out


class EventLoop:
    """A client's asyncio event loop, iteration by iteration (client.loop = iterations).

    It sleeps until something is due (a task waiting for its first step, a producer
    that may produce, an ack arrived); then an iteration at s: the wake-up if it slept,
    one produce() call of each producer that may produce (a sync one's publish runs
    now, a task's in the next iteration), every publish due, every ack arrived by s
    (each resolves its message when its processing ends), and one write at the end.
    What it makes ready acts in the next iteration."""

    def __init__(self, model: SimPyModel, client: Client):
        self.model, self.client, self.env = model, client, model.env
        self.producers = client.producers  # (in producer order)
        self.ready: list = []  # (message, returned event): tasks waiting for their first step
        self.inbox: list = []  # messages whose ack has arrived
        self.last_end = -math.inf
        self._wake: simpy.Event | None = None
        self.process = self.env.process(self.run())

    def poke(self, now: float) -> None:
        if self._wake is not None:
            self._wake.succeed()
            self._wake = None

    def arrived(self, message: dict) -> None:
        self.inbox.append(message)
        self.poke(self.env.now)

    def _due(self) -> bool:
        return bool(self.ready or self.inbox or any(p.turn is not None for p in self.producers))

    def run(self):
        env, model = self.env, self.model
        cfg, client = model.config, self.client
        sync = cfg.producer.mode == "sync"
        send_cpu, ack_cpu, wakeup = cfg.client.send_cpu, cfg.client.ack_cpu, cfg.client.wakeup_cpu
        growth = cfg.client.wakeup_growth
        cap = math.inf if cfg.client.wakeup_max is None else cfg.client.wakeup_max
        while True:
            slept = False
            while not self._due():
                self._wake = env.event()
                yield self._wake
                slept = True
            yield at(env, 0, LOOP_PICK)  # let every ack, timer and producer of this instant act first
            # (right after an iteration, the next starts where it ended: the sum, not the clock's ulps)
            s = env.now if slept or self.last_end == -math.inf else self.last_end
            wake = 0.0  # the wake-up's CPU, if it slept: more the longer it slept (since 0 if never run)
            if s > self.last_end:
                wake = min(wakeup + growth * (s - max(self.last_end, 0.0)), cap) if growth else wakeup
            wake += cfg.client.iteration_cpu  # the poll and turn every iteration pays
            batch, self.ready = self.ready, []
            for producer in self.producers:  # one produce() of each producer that may produce
                if producer.turn is not None:
                    message, returned = model.aio_create(producer, producer.intended, created=s)
                    (batch if sync else self.ready).append((message, returned))
                    turn, producer.turn = producer.turn, None
                    turn.succeed()
            core = 0.0
            if client.cores is not None:  # shared cores: the iteration runs once it has a core,
                core = wake + sum(m.get("send_cost", send_cpu) for m, _ in batch) + sum(
                    m.get("ack_cost", ack_cpu) for m in self.inbox)
                if core > 0:  # and reads the acks that have arrived by then
                    yield client.cores.request((CLIENT_CPU, client.index))
                    s = env.now
            acks, self.inbox = self.inbox, []
            t, busy = s, 0.0
            if wake:
                t += wake
                busy += wake
            events = []
            for message, returned in batch:
                cost = message.get("send_cost", send_cpu)
                t += cost
                busy += cost
            for message in acks:
                cost = message.get("ack_cost", ack_cpu)
                t += cost
                busy += cost
                events.append((t, "ack", message))
            if batch:
                events.append((t, "write", batch))
            self.last_end = client.cpu_free_at = t
            client.cpu_busy_s += busy
            if core > 0:
                client.cores.use(busy)
            for time, kind, x in events:
                yield env.timeout(max(0.0, time - env.now))
                if kind == "ack":
                    self.resolve(x, time)
                    continue
                for message, returned in x:
                    message["sent"] = time
                    returned.succeed((client.sent, client.index))
                    client.sent += 1
            if env.now < t:  # an iteration of wake-up alone still takes its time
                yield env.timeout(t - env.now)
            if core > 0:
                client.cores.release((CLIENT_CPU, client.index))

    def resolve(self, message: dict, t: float) -> None:
        model = self.model
        if message["status"] == IN_FLIGHT and t < (message["created"] + model.config.producer.ack_wait) * LATE:
            message["status"] = ACKED
            message["resolved"] = t
            model.producers[message["producer"]].resolved()


def run_simpy(config: SimConfig, policy: FlowControl | FlowPolicy | None = None) -> Records:
    """Run ``config`` through the SimPy model."""
    return SimPyModel(config, policy).run()


__all__ = ["FlowControl", "PolicyControl", "Producer", "Client", "Connection", "Station", "ReadLoop", "AckWrite", "Relay",
           "CorePool", "SimPyModel", "EventLoop", "run_simpy", "flow_control"]
