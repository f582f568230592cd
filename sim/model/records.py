"""Per-message records in typed buffers, grown a chunk at a time.

One entry per message created; times that did not happen are NaN. The buffers
are ``array.array`` (8 bytes a time, 4 an index, 1 a status: 41 bytes a
message, 49 with open-loop arrivals), turned into numpy arrays once, at the
end, without copying.

With ``run.records = summary`` the buffers hold only messages still under way:
now and then the engine hands :meth:`RecordBuffer.compact` the messages some
queue still refers to; every other message is finished, and is folded into a
:class:`Tally` (counts, fixed-memory latency histograms, per-bin counts) and
dropped. The survivors are renumbered in their order, so that a tie between
two messages goes the same way as with full records.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from ..histogram import LogHistogram

CHUNK = 1 << 14
COMPACT_AT = 1 << 17  # summary mode folds finished messages once this many exist (bounds the transient peak)


class Status(IntEnum):
    """A message's outcome, as the status buffer stores it (one byte)."""

    IN_FLIGHT = 0
    ACKED = 1
    TIMED_OUT = 2


# plain ints for the hot loops
IN_FLIGHT, ACKED, TIMED_OUT = int(Status.IN_FLIGHT), int(Status.ACKED), int(Status.TIMED_OUT)


class Sent(NamedTuple):
    """What a client hands its connection when a produce() call returns, and what the
    network queues carry: ``outgoing[c]`` holds these, in order. The hot loops build and
    unpack them as plain tuples in this field order (a NamedTuple costs about five times
    as much to build); other code reads them by the indices below."""

    time: float  # when produce() returned
    place: int  # its place n on its connection: (place, client) is the tie key at every merge
    client: int
    message: int  # its number in the records
    partition: int  # 0-based


TIME, PLACE, CLIENT, MESSAGE, PARTITION = range(len(Sent._fields))
# An ack reaching a client is ``(arrival time, message)`` in ``inbox[c]``.


def renumbered(sent: tuple, mapping) -> tuple:
    """A :class:`Sent` entry with its message renumbered (summary mode's compaction)."""
    return (*sent[:MESSAGE], int(mapping[sent[MESSAGE]]), *sent[MESSAGE + 1:])

# An ack processed at its deadline is a timeout. Deadlines and ack times are sums of
# different terms, so "at" has a tolerance: an ack counts as on time only before
# deadline * LATE, i.e. more than about 450 float64 ulps before it. Every loop and the
# SimPy model compare with this one factor.
TIE_RTOL = 1e-13
LATE = 1.0 - TIE_RTOL
STATUS_NAMES = tuple(status.name.lower() for status in Status)
FIELDS = (("producer", "i"), ("partition", "i"), ("created", "d"), ("sent", "d"), ("stored", "d"),
          ("resolved", "d"), ("status", "b"))


class RecordBuffer:
    """Buffers the engine writes into.

    ``count`` messages exist; the buffers hold room for ``capacity``: whoever
    creates message ``count`` when it equals ``capacity`` calls ``grow()`` first.
    """

    def __init__(self, open_loop: bool, summary: bool = False, bin_width: float = 0.1, clients: int = 1,
                 producers_per_client: int = 1):
        for name, code in FIELDS:
            setattr(self, name, array(code))
        self.intended = array("d")
        self.open_loop = open_loop
        self.count = 0
        self.capacity = 0
        self._fill = {"d": array("d", [math.nan]) * CHUNK, "i": array("i", [0]) * CHUNK,
                      "b": array("b", [IN_FLIGHT]) * CHUNK}
        self.tally = Tally(open_loop, bin_width, clients, producers_per_client) if summary else None
        self.compact_at = COMPACT_AT  # with a tally: compact once this many messages exist

    @classmethod
    def for_config(cls, cfg) -> "RecordBuffer":
        """Empty records for a run of ``cfg`` (a SimConfig)."""
        return cls(open_loop=cfg.producer.rate is not None, summary=cfg.run.records == "summary",
                   bin_width=cfg.run.bin, clients=cfg.clients, producers_per_client=cfg.producers_per_client)

    def _buffers(self):
        yield from ((getattr(self, name), code) for name, code in FIELDS)
        if self.open_loop:
            yield self.intended, "d"

    def grow(self) -> None:
        for buffer, code in self._buffers():
            buffer.extend(self._fill[code])
        self.capacity += CHUNK

    def arrays(self, stop: int | None = None) -> dict[str, np.ndarray]:
        """The first ``stop`` (default: all) messages as numpy arrays (copies)."""
        n = self.count if stop is None else stop
        out = {name: np.array(getattr(self, name)[:n]) for name, _ in FIELDS}
        out["intended"] = np.array(self.intended[:n]) if self.open_loop else out["created"]
        return out

    def compact(self, live: np.ndarray) -> np.ndarray:
        """Fold every message but the ``live`` ones into the tally; keep those, renumbered
        0, 1, ... in their order. Returns the old-to-new numbering (-1: folded)."""
        keep = np.unique(live)
        mapping = np.full(self.count, -1, dtype=np.int64)
        mapping[keep] = np.arange(keep.size)
        kept = self._fold_all_but(mapping < 0, keep)
        for (buffer, _), values in zip(self._buffers(), kept):
            del buffer[:]
            buffer.frombytes(values.tobytes())
        self.count = self.capacity = keep.size
        self.compact_at = max(COMPACT_AT, 4 * keep.size)
        return mapping

    def _fold_all_but(self, folded: np.ndarray, keep: np.ndarray, stored_until: float = math.inf) -> list[np.ndarray]:
        """Fold the ``folded`` messages into the tally; return copies of the ``keep`` ones.
        (The numpy views on the buffers end with this call, so the buffers can change.)"""
        views = {name: np.frombuffer(getattr(self, name), dtype=_NUMPY[code])[: self.count] for name, code in FIELDS}
        views["intended"] = (np.frombuffer(self.intended, dtype=np.float64)[: self.count] if self.open_loop
                             else views["created"])
        if folded.all():
            self.tally.add(views, stored_until)
        else:
            self.tally.add({name: values[folded] for name, values in views.items()}, stored_until)
        return [np.frombuffer(buffer, dtype=_NUMPY[code])[: self.count][keep].copy()
                for buffer, code in self._buffers()]

    def finish(self, busy: dict, span: float, cut: bool, end: float = math.inf) -> "Records":
        """Close the records. A message computed ahead counts as stored only if that
        happened by the end of the span and before ``end`` (run.duration: nothing at or
        after it happens)."""
        stored_until = min(span, math.nextafter(end, -math.inf))
        n = self.count
        for buffer, _ in self._buffers():
            del buffer[n:]
        if self.tally is not None:  # fold what is left, then keep nothing per message
            self._fold_all_but(np.ones(n, dtype=bool), np.zeros(0, dtype=np.int64), stored_until=stored_until)
            for buffer, _ in self._buffers():
                del buffer[:]
            self.count = 0
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
            tally=self.tally,
            stored_until=stored_until,
        )


_NUMPY = {"d": np.float64, "i": np.int32, "b": np.int8}


class Tally:
    """What a summary needs of finished messages, in memory that does not grow with them:
    counts (also acked per client), the latency histograms, the latest resolution and
    per-bin counts. Summary mode keeps one as it goes; with full records the results
    make one from them, so that both modes summarise by one path."""

    def __init__(self, open_loop: bool, bin_width: float, clients: int = 1, producers_per_client: int = 1,
                 histograms: bool = True):
        """``histograms``: keep the latency histograms (full records give exact percentiles
        from the messages themselves, and need none)."""
        self.sent = self.acked = self.timed_out = self.ghosts = self.stored = self.in_flight = 0
        self.last_resolution = math.nan
        self.latency = LogHistogram() if histograms else None
        self.from_intended = LogHistogram() if open_loop and histograms else None
        self.bin_width = bin_width
        self.bins = {name: np.zeros(0, dtype=np.int64) for name in ("sent", "acked", "timed_out")}
        self.producers_per_client = producers_per_client
        self.acked_by_client = np.zeros(clients, dtype=np.int64)

    def add(self, a: dict[str, np.ndarray], stored_until: float = math.inf) -> None:
        status = a["status"]
        acked = status == ACKED
        timed_out = status == TIMED_OUT
        stored = ~np.isnan(a["stored"]) & (a["stored"] <= stored_until)
        self.sent += status.size
        self.acked += int(acked.sum())
        self.timed_out += int(timed_out.sum())
        self.ghosts += int((timed_out & stored).sum())
        self.stored += int(stored.sum())
        self.in_flight += int((status == IN_FLIGHT).sum())
        resolved = a["resolved"][acked | timed_out]
        if resolved.size:
            self.last_resolution = float(np.nanmax([self.last_resolution, resolved.max()]))
        if self.latency is not None:
            self.latency.add((a["resolved"] - a["created"])[acked])
        if acked.any():
            self.acked_by_client += np.bincount(a["producer"][acked] // self.producers_per_client,
                                                minlength=self.acked_by_client.size)
        if self.from_intended is not None:
            self.from_intended.add((a["resolved"] - a["intended"])[acked])
        self._count("sent", a["created"])
        self._count("acked", a["resolved"][acked])
        self._count("timed_out", a["resolved"][timed_out])

    def _count(self, name: str, times: np.ndarray) -> None:
        if not times.size:
            return
        index = bin_index(times, self.bin_width)
        low = int(index.min())
        counts = np.bincount(index - low)  # (offset: no temporary as long as the whole run)
        high = low + counts.size
        bins = self.bins[name]
        if high > bins.size:
            bins = self.bins[name] = np.concatenate([bins, np.zeros(high - bins.size, dtype=np.int64)])
        bins[low:high] += counts


def bin_index(times: np.ndarray, width: float) -> np.ndarray:
    """The time-series bin of each time: bin k holds [k * width, (k + 1) * width).
    Both record modes count with this one function, so they agree at bin edges."""
    return np.floor(np.asarray(times, dtype=np.float64) / width).astype(np.int64)


@dataclass
class Records:
    """The raw outcome of one run: per-message buffers (or, in summary mode, a
    :class:`Tally` of them) and station busy times.

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
    tally: Tally | None = None  # summary mode: the folded messages
    stored_until: float = math.inf  # a store computed ahead, after this, did not happen in the run
    # with client.gc_messages: (full garbage collections, their CPU seconds) over every client
    collections: tuple[int, float] | None = None
