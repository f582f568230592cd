"""The broker's I/O: read loops that read in passes, and the writes of their acks.

A connection's read loop (one goroutine per client connection in nats-server)
sleeps until bytes arrive, then runs a *pass*: one read of everything that has
arrived on its connection, up to ``broker.read_bytes``, and the parse of the
messages that read completes, each handed to its partition as soon as it is
parsed (the server queues a message for its stream from inside the parse, not
after the read). A pass costs ``broker.wakeup_cpu`` (the wake-up and the read)
plus ``broker.read_cpu`` per message it completes, all scaled by one draw of
mean 1 when ``broker.read_cv`` is set. When it ends, the loop starts the next
pass at once if more bytes have arrived, or sleeps until they do.

Bytes, not messages, fill a read: with 703-byte messages a 64 KiB read holds 93
whole messages and the head of a 94th, which the next read finishes. A message
larger than the read buffer takes several passes, the last of which parses it.

The acks of the messages of one pass leave the broker together, in one write,
once the last of them is stored (the server flushes a client's outbound buffer
once per pass of its read loop): :class:`AckWrites` holds each ack until its
pass is complete. They then enter the downlink at that instant, in connection
order.

With ``broker.read_mode = per_message`` a pass reads one message (whatever its
bytes) and its ack is written alone: with no wake-up cost and no variability
that is exactly the plain read-loop station of ``broker.read_cpu`` per message,
which the loops use then instead of this module.

Times are summed as the SimPy model's clock sums them: a pass starting at s
parses its j-th message at ``s + wakeup x f + read_cpu x f + ... + read_cpu x f``
(f the pass's factor), left to right.
"""

from __future__ import annotations

import math
from collections import deque

INF = math.inf


class ReadLoops:
    """Every connection's read loop. A message reaches its loop with
    :meth:`arrive`; :meth:`read` runs the pass that starts at a given time and
    returns the messages it parses, with their parse times."""

    def __init__(self, system):
        b = system.config.broker
        self.wakeup, self.per_message = b.wakeup_cpu, b.read_cpu
        self.cap = system.read_cap_bytes  # None: one message per pass
        self.message_bytes = system.message_bytes
        n = system.clients
        self.buffers = [deque() for _ in range(n)]  # (arrival, key, m): arrived or on its way, not yet parsed
        self.partial = [0] * n  # bytes of the head message read by an earlier pass
        self.free = [0.0] * n  # when the loop's current pass ends
        self.busy = [0.0] * n  # seconds of passes
        self.passes = [0] * n
        self.factors = [f.__next__ for f in system.read_factors()]

    def arrive(self, c: int, arrival: float, key, m: int) -> bool:
        """Message m reaches connection c's loop at ``arrival`` (in arrival order per
        connection); True if it is the only one buffered (the loop needs a wake-up)."""
        buffer = self.buffers[c]
        buffer.append((arrival, key, m))
        return len(buffer) == 1

    def next_pass(self, c: int) -> float:
        """When connection c's next pass starts, as far as what has reached it tells."""
        buffer = self.buffers[c]
        if not buffer:
            return INF
        head = buffer[0][0]
        free = self.free[c]
        return free if free > head else head

    def read(self, c: int, start: float) -> list:
        """Run connection c's pass at ``start`` (= :meth:`next_pass`): it reads what has
        arrived by ``start``; returns ``[(parsed, key, m), ...]`` of the messages it completes."""
        count = self.take(c, start)
        return self.lay_out(c, start, count, self.factors[c]())

    def take(self, c: int, start: float) -> int:
        """How many messages connection c's pass starting at ``start`` completes (it reads
        what has arrived by then; the bytes of a message it cuts stay read)."""
        buffer, size, cap = self.buffers[c], self.message_bytes, self.cap
        if cap is None:
            count = 1
        else:
            partial = self.partial[c]
            arrived = 0
            for entry in buffer:  # (stop once the read buffer would be full)
                if entry[0] > start or (size and arrived * size - partial >= cap):
                    break
                arrived += 1
            if size == 0:
                count = arrived
            else:
                read = min(cap, arrived * size - partial)
                done = partial + read
                count = done // size
                self.partial[c] = done - count * size
        return count

    def cost(self, count: int, factor: float) -> float:
        """The CPU seconds of a pass of ``count`` messages and factor ``factor``, summed
        as :meth:`lay_out` sums them."""
        t = self.wakeup * factor
        step = self.per_message * factor
        for _ in range(count):
            t = t + step
        return t

    def lay_out(self, c: int, start: float, count: int, factor: float) -> list:
        """Connection c's pass of ``count`` messages runs from ``start`` (when it has its
        core): ``[(parsed, key, m), ...]``."""
        buffer = self.buffers[c]
        t = start + self.wakeup * factor
        step = self.per_message * factor
        out = []
        popleft = buffer.popleft
        for _ in range(count):
            t = t + step
            _, key, m = popleft()
            out.append((t, key, m))
        self.free[c] = t
        self.busy[c] += t - start
        self.passes[c] += 1
        return out

    def live(self) -> list[int]:
        return [m for buffer in self.buffers for _, _, m in buffer]

    def renumber(self, mapping) -> None:
        for buffer in self.buffers:
            items = [(t, key, int(mapping[m])) for t, key, m in buffer]
            buffer.clear()
            buffer.extend(items)


class AckWrites:
    """The acks of one pass, held until the last of them is stored, then written at once.

    :meth:`open` registers a pass's messages; :meth:`stored` reports one stored and
    returns, when it completes its pass, every ack of the pass as ``(written, key, m)``
    (written = the latest of their stored times), else nothing."""

    def __init__(self):
        self.pass_of: dict[int, list] = {}  # message -> [unstored, latest stored, [(key, m), ...]]

    def open(self, parsed: list) -> None:
        if not parsed:
            return
        group = [len(parsed), -INF, [(key, m) for _, key, m in parsed]]
        pass_of = self.pass_of
        for _, _, m in parsed:
            pass_of[m] = group

    def stored(self, m: int, t: float) -> list:
        group = self.pass_of.pop(m)
        group[0] -= 1
        if t > group[1]:
            group[1] = t
        if group[0]:
            return []
        written = group[1]
        return [(written, key, n) for key, n in group[2]]

    def _groups(self) -> list:
        return list({id(g): g for g in self.pass_of.values()}.values())

    def live(self) -> list[int]:
        """Every message of a pass not yet written (stored or not)."""
        return [m for group in self._groups() for _, m in group[2]]

    def renumber(self, mapping) -> None:
        for group in self._groups():
            group[2] = [(key, int(mapping[m])) for key, m in group[2]]
        self.pass_of = {int(mapping[m]): g for m, g in self.pass_of.items()}
