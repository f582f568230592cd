"""A relay on the path: one user-space process that reads every byte and writes it on.

A proxy, a sidecar, a TLS terminator: something between the clients and the
broker that holds every connection's two sockets and copies bytes from one to
the other. ``sim measure``'s delay proxy (``sim.measure.proxy``: one asyncio
process, on the same cores as the producers and the broker) is one, and on a
loopback measurement it spends about as much CPU per message as the broker.
``link.relay = true`` puts one on the path; ``link.relay_cpu`` is its CPU per
*chunk*, what one pass reads from one socket (one direction of one
connection), covering the read and the later write of those bytes.

Where it sits. A message that leaves the shared uplink at d reaches the relay
at d; once its chunk is done it travels its RTT/2 (and its ``link.jitter``,
never ahead of the one before it on its connection) to the broker's read
loop. An ack that leaves the shared downlink at d reaches the relay at d, and
travels its RTT/2 (and jitter) to its client once its chunk is done. So with a
relay the one-way delay comes after the relay, not before; the connection's
TCP window in whole messages still reopens one RTT after the message left the
uplink (a TCP window in bytes with a relay is not taken yet).

Passes. There is one relay for the whole path (every connection, both
directions) and it is serial, one core at a time. It sleeps until bytes wait;
a pass starts at s once every arrival of that instant is in, and reads every
socket with bytes waiting by s, one chunk per socket (all of its waiting
messages, or acks). It costs ``link.relay_wakeup_cpu`` (the pass's own turn:
the poll for ready sockets, its event loop) plus ``relay_cpu`` per chunk. Its
chunks are laid out in a fixed order (uplink sockets by connection, then
downlink sockets by connection) after the pass's wake-up: chunk k (from 0) is
done at ``start + relay_wakeup_cpu + relay_cpu + ... + relay_cpu`` (k + 1
terms, summed left to right as the SimPy model's clock sums them); what it
carries goes on then. When a pass ends the next starts at once if bytes wait
(what arrived during the pass), else the relay sleeps again. With both costs
0 every chunk is done at s. The wake-up is what makes a busy relay cheaper per
message: its passes read more sockets, and its chunks more messages.

Cores. With shared cores (``sim.model.hosts``) the relay takes its cores from
the broker's pool (a co-located broker's: client host 1's; ``broker.cores``:
the broker's): a pass is ONE request for a core, for all its chunks; it reads
the sockets with bytes waiting at its grant (what came while it waited is in)
and is laid out from the grant; at one instant the relay's request comes after
the clients', the read loops' and the partitions'. Without a pool it has a
core of its own.

Its CPU per message lies between 0 (a busy relay whose chunks carry many
messages each) and 2 x (``relay_wakeup_cpu`` + ``relay_cpu``) (one message per
chunk and one chunk per pass each way, as an idle path has it): the analytic
round trip counts that, the core
bound the optimistic 0 (``sim.model.hosts.pool_demands``).

:class:`Relay` is the arithmetic both the hosts loop (``sim.loops.hosts``) and
the checks use; the SimPy model's :class:`sim.simpy_model.Relay` states the
same rule as a process.
"""

from __future__ import annotations

import math
from collections import deque

INF = math.inf
UP, DOWN = 0, 1  # the two directions: client to broker (messages), broker to client (acks)


def relayed(system) -> bool:
    """Does every byte of ``system`` go through a relay (``link.relay``)?"""
    return system.config.link.relay


def pass_cost(wakeup: float, cpu: float, chunks: int) -> float:
    """The CPU seconds of a pass of ``chunks`` chunks, summed as its layout sums them."""
    t = 0.0 + wakeup
    for _ in range(chunks):
        t = t + cpu
    return t


def unsupported(system) -> str | None:
    """What in ``system`` a relay does not combine with yet, or None."""
    if relayed(system) and system.segmented:
        return "a TCP window in bytes"
    return None


def check_supported(system) -> None:
    """Refuse, in one line naming both keys, a relay together with a TCP window in bytes
    (messages longer than ``link.mss_bytes`` under a finite window)."""
    from ..errors import ConfigError
    from ..config import format_value

    if unsupported(system) is None:
        return
    link = system.config.link
    window = format_value("link.window_bytes", link.window_bytes)
    raise ConfigError("link.relay", "true",
                      f"a relay does not yet combine with a TCP window in bytes ({system.message_bytes} B messages "
                      f"are longer than link.mss_bytes = {link.mss_bytes} and link.window_bytes = {window}"
                      f"{' with link.loss' if link.loss > 0 else ''} is finite); set link.window_bytes = inf "
        "or link.relay = false")


class Relay:
    """The relay's sockets and passes.

    :meth:`enter` hands it a message (``UP``) or an ack (``DOWN``) of connection c that
    reaches it at ``arrival`` (in arrival order per socket); :meth:`take` starts a pass at
    s and returns its chunks; :meth:`lay_out` runs them from the pass's start (its
    grant, on shared cores) and says when each chunk is done."""

    __slots__ = ("cpu", "wakeup", "sockets", "held", "busy", "free", "passes", "chunks", "most", "waited")

    def __init__(self, system):
        self.cpu = system.config.link.relay_cpu
        self.wakeup = system.config.link.relay_wakeup_cpu
        n = system.clients
        # per direction and connection: (arrival, key, m) that reached it (or will) and wait for a pass
        self.sockets = ([deque() for _ in range(n)], [deque() for _ in range(n)])
        self.held = [0] * n  # acks of each connection in a pass that waits for its core
        self.busy = 0.0  # seconds of passes
        self.free = 0.0  # when its last pass ended
        self.passes = 0
        self.chunks = 0
        self.most = 0  # the most chunks one pass read
        self.waited = 0.0  # seconds its passes waited for a core (kept by the loop)

    def enter(self, way: int, c: int, arrival: float, key, m: int) -> None:
        self.sockets[way][c].append((arrival, key, m))

    def take(self, s: float) -> list:
        """The chunks of the pass starting at s: ``[(way, c, [(arrival, key, m), ...]), ...]``,
        every socket with bytes waiting by s, uplink sockets first, each by connection."""
        chunks = []
        for way in (UP, DOWN):
            for c, socket in enumerate(self.sockets[way]):
                if socket and socket[0][0] <= s:
                    items = []
                    while socket and socket[0][0] <= s:
                        items.append(socket.popleft())
                    chunks.append((way, c, items))
                    if way == DOWN:
                        self.held[c] += len(items)
        return chunks

    def cost(self, chunks: list) -> float:
        return pass_cost(self.wakeup, self.cpu, len(chunks))

    @property
    def costs(self) -> bool:
        """Does a pass cost CPU (so that, on shared cores, it needs a core)?"""
        return self.cpu > 0 or self.wakeup > 0

    def lay_out(self, start: float, chunks: list) -> list:
        """The pass runs from ``start``: ``[(done, way, c, items), ...]``, chunk k done at
        start + relay_wakeup_cpu + (k + 1) x relay_cpu (summed)."""
        t, cpu, held = start + self.wakeup, self.cpu, self.held
        out = []
        for way, c, items in chunks:
            t = t + cpu
            out.append((t, way, c, items))
            if way == DOWN:
                held[c] -= len(items)
        self.free = t
        self.busy += t - start
        self.passes += 1
        self.chunks += len(chunks)
        if len(chunks) > self.most:
            self.most = len(chunks)
        return out

    def next_arrival(self) -> float:
        """When the next byte reaches it, of those it knows about (inf: none)."""
        heads = [socket[0][0] for sockets in self.sockets for socket in sockets if socket]
        return min(heads) if heads else INF

    def ack_bound(self, c: int, now: float) -> float:
        """The earliest an ack of connection c the relay holds (or will hold: it has left
        the broker) can be done with it, as known at ``now``: every ack of c still to come
        out of it reaches its client no earlier than this + RTT/2."""
        if self.held[c]:
            return now  # in a pass that waits for its core: granted at now or later
        socket = self.sockets[DOWN][c]
        if socket:
            head = socket[0][0]
            return head if head > now else now
        return INF
