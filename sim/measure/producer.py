"""One producer process: its own event loop and its own connection to the broker.

Run as ``python -m sim.measure.producer SPEC_JSON``. It takes turns with the
parent, one line each way: it connects and prints ``ready``; on a line from
standard input it probes the request round trip and prints ``probed``; on the
next, it produces and prints ``done``; on the next, it probes again and
prints one JSON line with what happened. The parent starts every producer's
run at once, when all have probed, and reads the server's and the proxy's CPU
time between ``go`` and the last ``done``: the probes' requests are not
counted in any process's CPU per message. Times come from
``time.perf_counter`` (the system's monotonic clock on Linux), so the parent
can line up several producers.

The modes follow the SDK's ``produce()`` (memphis-py) over nats-py's JetStream
publish; the ack timer starts when the message is produced:

- ``sync``: await each publish;
- ``window``: at most C in flight, a new one as soon as any resolves;
- ``limit``: the SDK's drain-to-half rule at L, waking as soon as at most L/2 remain;
- ``limit_poll``: the same rule checked every 100 ms, as the SDK does;
- ``unbounded``: one task per message and ``sleep(0)``, no limit;
- ``burst``: create all N tasks, then gather them.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time

LIMITER_POLL_S = 0.1


class GcClock:
    """The interpreter's cyclic garbage collections while it is installed: count, time and longest, per generation.

    A collection runs inside whatever allocated last, so it stops the event loop for its whole length.
    """

    def __init__(self):
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        g, spent = info["generation"], time.perf_counter() - self._start
        self.count[g] += 1
        self.seconds[g] += spent
        self.longest[g] = max(self.longest[g], spent)

    def summary(self) -> dict:
        return {"count": self.count, "seconds": [round(v, 7) for v in self.seconds],
                "longest": [round(v, 7) for v in self.longest]}


class Tally:
    def __init__(self):
        self.latencies: list[float] = []
        self.timeouts = 0
        self.late_acks = 0
        self.errors = 0
        self.last_error = ""
        self.first_start = float("inf")
        self.last_end = float("-inf")


async def produce(spec: dict) -> dict:
    import nats

    nc = await nats.connect(spec["url"], allow_reconnect=False, connect_timeout=10)
    js = nc.jetstream()
    payload = b"x" * spec["payload_bytes"]
    subjects = [f"{spec['subject_prefix']}.{p}" for p in range(1, spec["partitions"] + 1)]
    n, mode, ack_wait = spec["messages"], spec["mode"], spec["ack_wait_s"]
    tally = Tally()
    clock = time.perf_counter

    async def one(k: int, start: float) -> None:
        try:
            await js.publish(subjects[k % len(subjects)], payload, timeout=max(1e-3, start + ack_wait - clock()))
            end = clock()
            if end - start > ack_wait:
                # nats-py starts its timer once the publish is written, the model at produce():
                # an ack processed after the deadline is a timeout (the message is stored: a ghost)
                tally.timeouts += 1
                tally.late_acks += 1
            else:
                tally.latencies.append(end - start)
        except asyncio.TimeoutError:
            end = clock()
            tally.timeouts += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported, never hidden
            end = clock()
            tally.errors += 1
            tally.last_error = f"{type(exc).__name__}: {exc}"[:200]
        if end > tally.last_end:
            tally.last_end = end

    async def turn(word: str) -> None:
        """Say ``word`` to the parent, then wait for its next line."""
        sys.stdout.write(word + "\n")
        sys.stdout.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    await turn("ready")
    probes = await probe(nc, spec["probes"])
    await turn("probed")
    collections = GcClock()
    gc.callbacks.append(collections)
    cpu0 = time.process_time()
    tally.first_start = clock()
    tasks: set[asyncio.Task] = set()

    def start_task(k: int) -> asyncio.Task:
        task = asyncio.create_task(one(k, clock()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    if mode == "sync":
        for k in range(n):
            await one(k, clock())
    elif mode == "window":
        room = asyncio.Semaphore(spec["window"])
        for k in range(n):
            await room.acquire()
            start_task(k).add_done_callback(lambda _: room.release())
            await asyncio.sleep(0)
    elif mode in ("limit", "limit_poll"):
        limit = spec["limit"]
        drained = asyncio.Event()

        def check(_task) -> None:
            if len(tasks) <= limit / 2:
                drained.set()

        for k in range(n):
            start_task(k).add_done_callback(check)
            if len(tasks) >= limit:
                if mode == "limit_poll":
                    while len(tasks) > limit / 2:
                        await asyncio.sleep(LIMITER_POLL_S)
                else:
                    drained.clear()
                    if len(tasks) > limit / 2:
                        await drained.wait()
            await asyncio.sleep(0)
    elif mode == "unbounded":
        for k in range(n):
            start_task(k)
            await asyncio.sleep(0)
    elif mode == "burst":
        for k in range(n):
            start_task(k)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    while tasks:
        await asyncio.gather(*list(tasks))
    cpu = time.process_time() - cpu0
    gc.callbacks.remove(collections)
    await turn("done")
    probes += await probe(nc, spec["probes"])
    await nc.close()
    return report(n, tally, cpu, probes, collections.summary())


def report(sent: int, tally: Tally, cpu_s: float, probes: list[float], collections: dict) -> dict:
    """What one producer process prints when it is done (one JSON line)."""
    return {
        "sent": sent, "acked": len(tally.latencies), "timeouts": tally.timeouts, "late_acks": tally.late_acks,
        "errors": tally.errors, "last_error": tally.last_error, "first_start": tally.first_start,
        "last_end": tally.last_end, "cpu_s": cpu_s, "latencies_s": [round(v, 7) for v in tally.latencies],
        "request_rtts_s": probes, "gc": collections,
    }


async def probe(nc, count: int) -> list[float]:
    """Round trips of the cheapest request the broker answers (``$JS.API.INFO``) on this connection.

    A publish's round trip without the append, from the same process, connection and event loop,
    just before and just after the run.
    """
    out = []
    for _ in range(count):
        start = time.perf_counter()
        await nc.request("$JS.API.INFO", b"", timeout=10)
        out.append(round(time.perf_counter() - start, 7))
    return out


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    try:
        out = asyncio.run(produce(spec))
    except Exception as exc:  # noqa: BLE001 - the parent turns this into one line
        out = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0 if "error" not in out else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
