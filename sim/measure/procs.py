"""Child processes of a measurement: started so they cannot outlive us, stopped by pid.

Every helper process (the broker, the delay proxy, each producer) is started
with ``PR_SET_PDEATHSIG``: if this process dies, even by SIGKILL, the kernel
sends the child SIGKILL, so nothing is left running. Normal shutdown stops
each child by its own pid (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: best effort
        pass
    # Ctrl-C goes to the parent only; the parent stops its children in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def spawn(argv: list[str], cpus: set[int] | None = None, **kwargs) -> subprocess.Popen:
    """Start ``argv`` as a child that dies with this process and ignores Ctrl-C; with ``cpus``,
    bound to those cores (set before exec, so every thread it starts inherits it)."""
    def setup() -> None:
        _die_with_parent()
        os.sched_setaffinity(0, cpus)

    return subprocess.Popen(argv, preexec_fn=_die_with_parent if cpus is None else setup, **kwargs)


def pinned_cores() -> tuple[set[int], set[int]]:
    """How ``sim measure --pin-broker`` splits this machine: (the broker's and the delay
    proxy's core: the last one this process may use, the producers' cores: the others)."""
    from ..config import InputError

    if not hasattr(os, "sched_getaffinity"):
        raise InputError("--pin-broker: needs a system that binds processes to cores (Linux)")
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        raise InputError(f"--pin-broker: needs at least 2 cores, this process may use {len(usable)}")
    return {usable[-1]}, set(usable[:-1])


def stop(process: subprocess.Popen | None, grace: float = 3.0) -> None:
    """Stop one child by its pid: SIGTERM, wait, then SIGKILL; always reaped."""
    if process is None or process.poll() is not None:
        return
    try:
        process.terminate()
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    finally:
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(pid: int) -> bool:
    """True when ``pid`` is a running (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, from /proc (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from the first line of /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])
    return total - idle, total


def busy_cores(interval: float = 0.5) -> float:
    """How many cores were busy, on average, over the next ``interval`` seconds."""
    busy0, total0 = cpu_times()
    time.sleep(interval)
    busy1, total1 = cpu_times()
    cores = os.cpu_count() or 1
    return cores * (busy1 - busy0) / max(1, total1 - total0)


def load_average() -> float:
    return os.getloadavg()[0]
