"""Per-message records in typed buffers, grown a chunk at a time.

One entry per message created; times that did not happen are NaN. The buffers
are ``array.array`` (8 bytes a time, 4 an index, 1 a status), turned into
numpy arrays once, at the end, without copying.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

CHUNK = 1 << 14
IN_FLIGHT, ACKED, TIMED_OUT = 0, 1, 2
STATUS_NAMES = ("in_flight", "acked", "timed_out")


class RecordBuffer:
    """Buffers the engine writes into.

    ``count`` messages exist; the buffers hold room for ``capacity``: whoever
    creates message ``count`` when it equals ``capacity`` calls ``grow()`` first.
    """

    def __init__(self, open_loop: bool):
        self.producer = array("i")
        self.partition = array("i")
        self.intended = array("d")
        self.created = array("d")
        self.sent = array("d")
        self.stored = array("d")
        self.resolved = array("d")
        self.status = array("b")
        self.open_loop = open_loop
        self.count = 0
        self.capacity = 0
        self._nan = array("d", [math.nan]) * CHUNK
        self._zero = array("i", [0]) * CHUNK
        self._in_flight = array("b", [IN_FLIGHT]) * CHUNK

    def grow(self) -> None:
        self.producer.extend(self._zero)
        self.partition.extend(self._zero)
        for buffer in (self.created, self.sent, self.stored, self.resolved):
            buffer.extend(self._nan)
        if self.open_loop:
            self.intended.extend(self._nan)
        self.status.extend(self._in_flight)
        self.capacity += CHUNK

    def finish(self, busy: dict, span: float, cut: bool) -> "Records":
        n = self.count
        for buffer in (self.producer, self.partition, self.created, self.sent, self.stored, self.resolved,
                       self.status, self.intended):
            del buffer[n:]
        return Records(
            producer=self.producer,
            partition=self.partition,
            intended=self.intended if self.open_loop else None,
            created=self.created,
            sent=self.sent,
            stored=self.stored,
            resolved=self.resolved,
            status=self.status,
            busy=busy,
            span=span,
            cut=cut,
        )


@dataclass
class Records:
    """The raw outcome of one run: per-message buffers and station busy times.

    ``intended`` is filled for open-loop producers only (otherwise it equals
    ``created``).
    """

    producer: array
    partition: array
    intended: array | None
    created: array
    sent: array
    stored: array
    resolved: array
    status: array
    busy: dict[str, list[float]] = field(default_factory=dict)
    span: float = 0.0  # simulated time covered: run.duration if the run was cut, else until the last server fell idle
    cut: bool = False  # run.duration stopped the run with work unfinished
