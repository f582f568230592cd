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
from .loops.hosts import run_hosts
from .loops.single import applies, run_single_stream
from .loops.windows import expected_batch, run_windows, scalar_only
from .model.hosts import check_supported, shares_cores
from .model.hosts import unsupported as hosts_unsupported
from .model.relay import relayed
from .model.records import ACKED, IN_FLIGHT, STATUS_NAMES, TIMED_OUT, Records
from .model.network import WindowEngaged
from .model.system import System

__all__ = ["ACKED", "IN_FLIGHT", "STATUS_NAMES", "TIMED_OUT", "Records", "run_records", "lookahead", "expected_batch",
           "allowed_loops"]


def run_records(system: System, loop: str | None = None) -> Records:
    """Simulate ``system`` once.

    By default: a plain loop when one message is in flight at a time
    (``sim.loops.single``), else the window loop, its network computed with
    numpy when windows carry many messages, and the event loop when there is no
    lookahead; the hosts loop (``sim.loops.hosts``) when processes share cores,
    which no other loop can run, and when a relay is on the path (``link.relay``,
    ``sim.model.relay``), likewise. ``loop`` forces one: "single", "events",
    "windows" (the network message by message), "vectors" (the network with
    numpy) or "hosts" (every station in global time order); :func:`allowed_loops`
    says which take ``system`` (a TCP window in bytes that may bind, and link.jitter,
    are computed by the event loop and the scalar network only).
    """
    if loop not in (None, "events", "windows", "vectors", "single", "hosts"):
        raise ValueError(f"unknown loop {loop!r}")
    check_time_range(system)
    if relayed(system):  # a relay on the path: only the hosts loop takes it
        if loop not in (None, "hosts"):
            raise ValueError(f"loop {loop!r} cannot run a relay on the path (link.relay): one process serves "
                             "every connection in both directions; use loop='hosts' (the default for it)")
        check_supported(system)
        return run_hosts(system)
    if system.read_passes:
        loop = _read_pass_loop(system, loop)
    if loop == "vectors" and scalar_only(system):
        raise ValueError("loop 'vectors' computes neither a TCP window in bytes that may bind (messages longer "
                         "than link.mss_bytes, a window under producers x in-flight x message bytes) nor "
                         "link.jitter; use 'windows', 'events' or the default")
    check_supported(system)
    if loop == "hosts" and (reason := hosts_unsupported(system)) is not None:
        raise ValueError(f"loop 'hosts' does not take {reason}")
    if loop == "hosts" or shares_cores(system):
        if loop not in (None, "hosts"):
            raise ValueError(
                f"loop {loop!r} cannot run processes that share cores (client.host_cores, broker.cores, "
                "broker.colocated with fewer cores than processes): it lets each client and station run "
                "ahead on its own; use loop='hosts' (the default for such systems)")
        return run_hosts(system)
    if loop in (None, "single"):
        if applies(system):
            records = run_single_stream(system)
            if records is not None:  # None: a timeout, which needs the general loop
                return records
            loop = None
        elif loop == "single":
            raise ValueError("the single-stream loop needs exactly one producer with one message in flight, "
                             "the default client (client.loop = per_message, no burst, client.cpu_cv = 0) "
                             "and a TCP window that holds the whole message")
    if loop != "events" and lookahead(system) <= 0 and loop is not None:
        raise ValueError("the window loop needs a lookahead > 0 (a round trip or a finite bandwidth)")
    try:
        return _general(system, loop, bytes_gate=False)
    except WindowEngaged:  # a timeout let a window in bytes bind: again, with it on
        return _general(system, "windows" if loop == "vectors" else loop, bytes_gate=True)


def _general(system: System, loop: str | None, bytes_gate: bool) -> Records:
    if loop == "events" or (loop is None and lookahead(system) <= 0):
        return run_events(system, bytes_gate)
    network = {None: "scalar" if bytes_gate else None, "windows": "scalar", "vectors": "vector"}[loop]
    return run_windows(system, network, bytes_gate)


def allowed_loops(system: System) -> list[str]:
    """The loops ``run_records(system, loop=...)`` accepts for ``system``."""
    if shares_cores(system) or relayed(system):
        return ["hosts"]
    out = ["events"]
    if lookahead(system) > 0:
        out.append("windows")
        if not scalar_only(system):
            out.append("vectors")
    if applies(system):
        out.append("single")
    if system.read_passes:
        out = [name for name in out if name in READ_PASS_LOOPS]
    return out


# the loops that run read loops in passes (sim.model.broker_io)
READ_PASS_LOOPS = ("events", "windows", "hosts")


def _read_pass_loop(system: System, loop: str | None) -> str:
    """Read loops that run in passes (``broker.read_mode = batched``, a
    ``broker.wakeup_cpu`` or a ``broker.read_cv``) are taken by the event loop, by
    the window loop with its network message by message, and by the hosts loop; by default the window
    loop when there is a lookahead, the hosts loop when processes share cores."""
    if loop not in (None, *READ_PASS_LOOPS):
        raise ValueError(
            f"loop {loop!r} does not run read loops in passes (broker.read_mode = batched, broker.wakeup_cpu > 0 "
            f"or broker.read_cv > 0); allowed: {', '.join(READ_PASS_LOOPS)} or the default")
    if loop is None:
        if shares_cores(system):
            return "hosts"
        return "events" if lookahead(system) <= 0 else "windows"
    return loop
