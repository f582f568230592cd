"""Run a :class:`~sim.model.system.System` and fill its per-message records.

Every station is a first-come first-served server computed by arithmetic
(Lindley: ``start = max(arrival, free); free = start + service``), which is only
right when the station takes its arrivals in time order. Three loops guarantee
that order.

**Windows** (the usual one). Propagation is a delay no message can beat: a
message that enters the uplink at time t reaches the broker no earlier than
t + uplink serialization + RTT/2, and an ack that leaves a partition at t
reaches its client no earlier than t + downlink serialization + RTT/2. So time
is cut into windows of that length, the *lookahead*, and within one window the
two sides cannot affect each other:

* the clients side (``sim.model.clients``): each client runs its own events up
  to the window's end; then the connections' TCP windows and the shared uplink
  take everything produce() finished in the window, merged in time order;
* the broker side: read loops, partition stages and the shared downlink take
  the arrivals that fall in the window, each station in time order, and hand
  the acks to the clients for a later window.

Whatever falls beyond a window waits for the next one; windows with nothing
in them are skipped. The broker side is computed message by message, or, when
windows carry many messages, station by station with numpy
(``sim.model.network``).

**Events** (``sim.loops.events``): with no lookahead (zero RTT and unlimited
bandwidth) a heap of events orders the merges instead.

**A single stream** (``sim.loops.single``): one synchronous producer has one
message in flight at a time; nothing merges, and a plain loop does it.

Ties at a merge go in connection order (see ``sim.model.network``); within a
client, see ``sim.model.clients``. The SimPy model in ``sim.simpy_model`` is
the oracle all of them are checked against, message by message.
"""

from __future__ import annotations

from .loops.common import check_time_range, lookahead
from .loops.events import run_events
from .loops.single import applies, run_single_stream
from .loops.windows import expected_batch, run_windows
from .model.records import ACKED, IN_FLIGHT, STATUS_NAMES, TIMED_OUT, Records
from .model.system import System

__all__ = ["ACKED", "IN_FLIGHT", "STATUS_NAMES", "TIMED_OUT", "Records", "run_records", "lookahead", "expected_batch"]


def run_records(system: System, loop: str | None = None) -> Records:
    """Simulate ``system`` once.

    By default: a plain loop when one message is in flight at a time
    (``sim.loops.single``), else the window loop, its network computed with
    numpy when windows carry many messages, and the event loop when there is no
    lookahead. ``loop`` forces one: "single", "events", "windows" (the network
    message by message) or "vectors" (the network with numpy).
    """
    if loop not in (None, "events", "windows", "vectors", "single"):
        raise ValueError(f"unknown loop {loop!r}")
    check_time_range(system)
    if loop in (None, "single"):
        if applies(system):
            records = run_single_stream(system)
            if records is not None:  # None: a timeout, which needs the general loop
                return records
            loop = None
        elif loop == "single":
            raise ValueError("the single-stream loop needs exactly one producer with one message in flight, "
                             "and the default client (client.loop = per_message, no burst, client.cpu_cv = 0)")
    if loop == "events" or (loop is None and lookahead(system) <= 0):
        return run_events(system)
    if lookahead(system) <= 0:
        raise ValueError("the window loop needs a lookahead > 0 (a round trip or a finite bandwidth)")
    network = {None: None, "windows": "scalar", "vectors": "vector"}[loop]
    return run_windows(system, network)


