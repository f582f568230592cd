"""A measurement session: one broker, delay proxies, producer processes, one row per point.

``Session`` owns every process it starts (the server, one proxy per added
RTT, the producers of the current point) and stops each by its pid when it
closes, whatever happened: an error, Ctrl-C, a failed test.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import math
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass

from . import procs
from .proxy import ping_rtts
from .server import MeasureError, NatsServer, version

SUBJECT_PREFIX = "sim"


@dataclass(frozen=True)
class Point:
    """One measured system; ``messages`` is the total over all producers."""

    mode: str
    added_rtt_ms: float = 0.0
    messages: int = 1000
    window: int | None = None
    limit: int | None = None
    producers: int = 1
    partitions: int = 1
    ack_wait_s: float = 15.0
    payload_bytes: int = 512

    def label(self) -> str:
        flow = f" C={self.window}" if self.window else f" L={self.limit}" if self.limit else ""
        return (f"{self.mode}{flow} +{self.added_rtt_ms:g}ms {self.messages} msgs "
                f"{self.producers}x{self.partitions}")


def stream_name(p: int) -> str:
    return f"SIM_P{p}"


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: the smallest value that a fraction ``q`` of the values do not exceed."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


class Session:
    """``with Session() as s: s.measure(point, repeat)`` -> one CSV row (a dict)."""

    def __init__(self, server_bin: str | None = None, quiet_cores: float = 0.5, quiet_wait_s: float = 60.0,
                 point_timeout_s: float = 600.0, pin_broker: bool = False):
        self.server = NatsServer(server_bin)
        # --pin-broker: the server and the delay proxy on one core, the producers on the others
        self.broker_cpus, self.producer_cpus = procs.pinned_cores() if pin_broker else (None, None)
        self.server.cpus = self.broker_cpus
        self.quiet_cores = quiet_cores
        self.quiet_wait_s = quiet_wait_s
        self.point_timeout_s = point_timeout_s
        self.proxies: dict[float, tuple[subprocess.Popen, int]] = {}
        self.producers: list[subprocess.Popen] = []
        self.server_version = ""
        self.client_version = ""

    # -- lifetime -------------------------------------------------------------

    def __enter__(self) -> "Session":
        try:
            import nats
        except ImportError:
            raise MeasureError("sim measure needs nats-py: install the extra with pip install 'sim[nats]'") from None
        from importlib.metadata import PackageNotFoundError, version as package_version

        try:
            self.client_version = f"nats-py {package_version('nats-py')}"
        except PackageNotFoundError:
            self.client_version = f"nats-py {getattr(nats, '__version__', 'unknown')}"
        self.server_version = version(self.server.binary)
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            for process in self.producers:
                procs.stop(process, grace=1.0)
            self.producers = []
            for process, _ in self.proxies.values():
                procs.stop(process, grace=1.0)
            self.proxies = {}
        finally:
            self.server.stop()

    def pids(self) -> list[int]:
        """Every process this session started that may still be running."""
        out = [p.pid for p in self.producers] + [p.pid for p, _ in self.proxies.values()]
        return out + ([self.server.pid] if self.server.pid else [])

    # -- the path ---------------------------------------------------------------

    def port_for(self, added_rtt_ms: float) -> int:
        """The port to connect to for ``added_rtt_ms``: the server itself for 0, else a delay proxy."""
        if added_rtt_ms <= 0:
            return self.server.port
        if added_rtt_ms not in self.proxies:
            process = procs.spawn([sys.executable, "-m", "sim.measure.proxy", str(self.server.port),
                                   repr(added_rtt_ms / 1e3)], cpus=self.broker_cpus, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
            self.proxies[added_rtt_ms] = (process, 0)
            line = _read_line(process, 15.0, "delay proxy")
            try:
                port = int(line)
            except ValueError:
                raise MeasureError(f"delay proxy did not start: {line.strip()[:200] or 'no output'}") from None
            self.proxies[added_rtt_ms] = (process, port)
        return self.proxies[added_rtt_ms][1]

    def path_rtt(self, port: int, added_rtt_ms: float) -> list[float]:
        count = int(min(40, max(7, 400 / max(added_rtt_ms, 1e-3))))
        try:
            return ping_rtts(port, count)
        except OSError as exc:
            raise MeasureError(f"PING/PONG through 127.0.0.1:{port} failed: {exc}") from None

    # -- one point --------------------------------------------------------------

    def wait_quiet(self) -> tuple[float, float]:
        """Wait (up to quiet_wait_s) until fewer than quiet_cores cores are busy; (busy cores, seconds waited)."""
        start = time.monotonic()
        while True:
            busy = procs.busy_cores(0.5)
            waited = time.monotonic() - start
            if busy < self.quiet_cores or waited >= self.quiet_wait_s:
                return busy, waited

    def reset_streams(self, partitions: int) -> None:
        asyncio.run(self._admin(partitions, reset=True))

    def stored(self, partitions: int) -> int:
        return asyncio.run(self._admin(partitions, reset=False))

    async def _admin(self, partitions: int, reset: bool) -> int:
        import nats
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        nc = await nats.connect(self.server.url, allow_reconnect=False, connect_timeout=10)
        try:
            js = nc.jetstream()
            if reset:
                for name in await js.streams_info():
                    await js.delete_stream(name.config.name)
                for p in range(1, partitions + 1):
                    await js.add_stream(StreamConfig(name=stream_name(p), subjects=[f"{SUBJECT_PREFIX}.{p}"],
                                                     storage=StorageType.FILE))
                return 0
            total = 0
            for p in range(1, partitions + 1):
                try:
                    total += (await js.stream_info(stream_name(p))).state.messages
                except NotFoundError:
                    pass
            return total
        finally:
            await nc.close()

    def measure(self, point: Point, repeat: int = 0) -> dict:
        busy_before, waited = self.wait_quiet()
        load1 = procs.load_average()
        self.reset_streams(point.partitions)
        port = self.port_for(point.added_rtt_ms)
        direct = sorted(self.path_rtt(self.server.port, 0.0))
        path = sorted(self.path_rtt(port, point.added_rtt_ms)) if port != self.server.port else direct
        # request probes before and after the run, 0.3 s each way: as long an exposure to a busy
        # machine as a short run, so the two see the same preemptions
        probes = int(min(2000, max(5, 0.3 / (percentile(path, 0.5) + 1e-4))))
        proxy = self.proxies[point.added_rtt_ms][0] if port != self.server.port else None
        results = self._run_producers(point, port, probes, proxy)
        request = sorted(v for o in results["outputs"] for v in o["request_rtts_s"])
        stored = self._settled_stored(point.partitions)
        return self._row(point, repeat, results, (path, direct, request), stored, busy_before, waited, load1)

    def _run_producers(self, point: Point, port: int, probes: int, proxy: subprocess.Popen | None = None) -> dict:
        """Run the point's producers; their outputs, and the CPU the server and the proxy (if any) spent meanwhile."""
        shares = [point.messages // point.producers + (1 if i < point.messages % point.producers else 0)
                  for i in range(point.producers)]
        base = {"url": f"nats://127.0.0.1:{port}", "mode": point.mode, "window": point.window,
                "limit": point.limit, "ack_wait_s": point.ack_wait_s, "payload_bytes": point.payload_bytes,
                "partitions": point.partitions, "subject_prefix": SUBJECT_PREFIX, "probes": probes}
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.producers = [
            procs.spawn([sys.executable, "-m", "sim.measure.producer", json.dumps({**base, "messages": share})],
                        cpus=self.producer_cpus, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, env=env)
            for share in shares
        ]
        try:
            self._turn("ready", 30.0, "producer did not connect")
            self._tell("probe")
            self._turn("probed", 60.0, "producer failed before its run")
            # the run: every producer starts at once; the probes' requests fall outside the CPU counts
            proxy0 = procs.cpu_seconds(proxy.pid) if proxy is not None else math.nan
            server0, machine0, wall0 = self.server.cpu_seconds(), procs.cpu_times(), time.monotonic()
            self._tell("go")
            self._turn("done", self.point_timeout_s, "producer failed", point)
            server1, machine1, wall1 = self.server.cpu_seconds(), procs.cpu_times(), time.monotonic()
            proxy1 = procs.cpu_seconds(proxy.pid) if proxy is not None else math.nan
            self._tell("probe")
            outputs = []
            for process in self.producers:
                remaining = max(1.0, self.point_timeout_s - (time.monotonic() - wall0))
                try:
                    out, err = process.communicate(timeout=remaining)
                except subprocess.TimeoutExpired:
                    raise MeasureError(f"point {point.label()} did not finish within {self.point_timeout_s:g} s") from None
                lines = out.strip().splitlines()
                if not lines:
                    raise MeasureError(f"producer died: {_last(err) or f'exit code {process.returncode}'}")
                data = json.loads(lines[-1])
                if "error" in data:
                    raise MeasureError(f"producer failed: {data['error']}")
                outputs.append(data)
        finally:
            for process in self.producers:
                procs.stop(process, grace=1.0)
            self.producers = []
        cores = os.cpu_count() or 1
        busy = cores * (machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1])
        return {"outputs": outputs, "server_cpu_s": server1 - server0, "proxy_cpu_s": proxy1 - proxy0,
                "busy_cores": busy, "wall_s": wall1 - wall0}

    def _tell(self, word: str) -> None:
        for process in self.producers:
            process.stdin.write(word + "\n")
            process.stdin.flush()

    def _turn(self, word: str, timeout: float, failure: str, point: Point | None = None) -> None:
        """Wait (up to ``timeout`` seconds in all) until every producer has said ``word``."""
        start = time.monotonic()
        for process in self.producers:
            remaining = max(1.0, timeout - (time.monotonic() - start))
            try:
                line = _read_line(process, remaining, "producer")
            except MeasureError:
                if point is not None and process.poll() is None:
                    raise MeasureError(f"point {point.label()} did not finish within {timeout:g} s") from None
                raise
            if line.strip() != word:
                raise MeasureError(f"{failure}: {_error_of(line, process)}")

    def _settled_stored(self, partitions: int, patience_s: float = 3.0) -> int:
        """Stored messages, read until two reads 0.2 s apart agree (late appends of timed-out messages)."""
        deadline = time.monotonic() + patience_s
        last = self.stored(partitions)
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.stored(partitions)
            if now == last:
                break
            last = now
        return last

    def _row(self, point, repeat, results, rtts, stored, busy_before, waited, load1) -> dict:
        path, direct, request = rtts
        outputs = results["outputs"]
        latencies = sorted(v for o in outputs for v in o["latencies_s"])
        acked = len(latencies)
        first = min(o["first_start"] for o in outputs)
        last = max(o["last_end"] for o in outputs)
        makespan = last - first if last > first else math.nan
        sent = sum(o["sent"] for o in outputs)
        rtt_ms = percentile(path, 0.5) * 1e3
        full = sum(o["gc"]["count"][2] for o in outputs)
        return {
            "mode": point.mode,
            "rtt_ms": round(rtt_ms, 4),
            "window": point.window,
            "limit": point.limit,
            "producers": point.producers,
            "partitions": point.partitions,
            "messages": sent,
            "ack_wait_s": point.ack_wait_s,
            "payload_bytes": point.payload_bytes,
            "throughput_msgs_per_s": round(acked / makespan, 3) if acked and makespan > 0 else 0.0,
            "p50_ms": round(percentile(latencies, 0.5) * 1e3, 4),
            "p99_ms": round(percentile(latencies, 0.99) * 1e3, 4),
            "timeouts": sum(o["timeouts"] for o in outputs),
            "stored": stored,
            "client_cpu_us_per_msg": round(sum(o["cpu_s"] for o in outputs) / sent * 1e6, 3),
            "server_cpu_us_per_msg": round(results["server_cpu_s"] / sent * 1e6, 3),
            # NaN when the point has no proxy (no added RTT)
            "proxy_cpu_us_per_msg": round(results["proxy_cpu_s"] / sent * 1e6, 3),
            # the producers' full (oldest-generation) garbage collections during the run: how many,
            # how long one stopped its event loop (mean, NaN when none ran), and all collections' time
            "client_gc_full": full,
            "client_gc_full_ms": round(sum(o["gc"]["seconds"][2] for o in outputs) / full * 1e3, 4) if full else math.nan,
            "client_gc_us_per_msg": round(sum(sum(o["gc"]["seconds"]) for o in outputs) / sent * 1e6, 3),
            "repeat": repeat,
            # pinned (--pin-broker): the producers' cores, and the broker's (with the proxy) apart
            "host_cores": len(self.producer_cpus) if self.producer_cpus else os.cpu_count() or 1,
            "colocated": self.broker_cpus is None,
            "broker_cores": len(self.broker_cpus) if self.broker_cpus else math.nan,
            # more columns: how the point was measured
            "added_rtt_target_ms": point.added_rtt_ms,
            "added_rtt_ms": round((percentile(path, 0.5) - percentile(direct, 0.5)) * 1e3, 4),
            "rtt_p99_ms": round(percentile(path, 0.99) * 1e3, 4),
            "request_rtt_ms": round(percentile(request, 0.5) * 1e3, 4),
            "request_rtt_mean_ms": round(sum(request) / len(request) * 1e3, 4),
            "acked": acked,
            "errors": sum(o["errors"] for o in outputs),
            "late_acks": sum(o["late_acks"] for o in outputs),
            "p999_ms": round(percentile(latencies, 0.999) * 1e3, 4),
            "makespan_s": round(makespan, 6),
            "busy_cores": round(results["busy_cores"], 3),
            "busy_cores_before": round(busy_before, 3),
            "quiet_wait_s": round(waited, 2),
            "load1": round(load1, 2),
            "server": f"nats-server {self.server_version}",
            "client": self.client_version,
            "measured_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _read_line(process: subprocess.Popen, timeout: float, what: str) -> str:
    """One line of a child's stdout, or a MeasureError naming what went wrong."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise MeasureError(f"{what} gave no sign of life within {timeout:g} s")
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=5)
        err = process.stderr.read() if process.stderr else ""
        raise MeasureError(f"{what} exited (code {process.returncode}): {_last(err) or 'no message'}")
    return line


def _error_of(line: str, process: subprocess.Popen) -> str:
    try:
        return json.loads(line)["error"]
    except (ValueError, KeyError, TypeError):
        return line.strip()[:200] or "no output"


def _last(text: str) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""
