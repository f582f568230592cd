"""Producer flow control: when a producer may call ``produce()`` again.

One small protocol, read by the client (``sim.model.clients``) at three moments:

* before a ``produce()``: with ``cap`` messages in flight the producer waits
  until one resolves;
* right after a ``produce()`` returns: ``pause(in_flight)`` says whether the
  producer goes on (None), waits until ``may_resume`` holds, checking each time
  a message resolves (0.0), or sleeps that many seconds and then checks (> 0);
* while paused: ``may_resume(in_flight)``.

The SimPy model builds its policies from the same objects
(``sim.simpy_model.flow_control``). A new policy is one class here.
"""

from __future__ import annotations

from .system import UNBOUNDED, System


class FlowPolicy:
    """No limit: every ``produce()`` goes at once (nonblocking without a limit)."""

    cap: int = UNBOUNDED
    pause = None  # a policy that may pause after produce() defines pause(in_flight)

    def may_resume(self, in_flight: int) -> bool:
        return True


class Window(FlowPolicy):
    """At most ``cap`` messages in flight, a new one as soon as one resolves
    (the article's C drivers; sync is a window of one)."""

    def __init__(self, cap: int):
        self.cap = cap


class Limiter(FlowPolicy):
    """The SDK's ``concurrent_task_limit`` L: once L tasks are in flight, wait until
    at most L/2 remain, looking every ``poll`` seconds (0: the moment it happens)."""

    def __init__(self, limit: int, poll: float):
        self.limit, self.poll = limit, poll

    def pause(self, in_flight: int) -> float | None:
        return self.poll if in_flight >= self.limit else None

    def may_resume(self, in_flight: int) -> bool:
        return 2 * in_flight <= self.limit


def policy_for(system: System) -> FlowPolicy:
    """The policy the config asks for."""
    p = system.config.producer
    if system.flow in ("sync", "window"):
        return Window(system.in_flight_cap)
    if system.flow == "limit":
        return Limiter(p.concurrent_task_limit, p.limiter_poll)
    return FlowPolicy()
