"""A TCP proxy on loopback that adds a round-trip delay, and the PING/PONG probe that measures it.

Run as ``python -m sim.measure.proxy TARGET_PORT ADDED_RTT_S``: it listens on a
free port of 127.0.0.1, prints that port on one line, and forwards every
connection to 127.0.0.1:TARGET_PORT. Each direction of each connection keeps
one FIFO of (due time, bytes) and one timer: bytes read at t leave at
t + RTT/2, in order, so the path behaves like propagation delay with no
bandwidth limit.

asyncio timers are not exact: the default loop waits in epoll, whose timeout
is whole milliseconds rounded up, so a timer fires up to 1 ms late per hop
(a 2.5 ms hop takes 3 ms). The proxy's loop waits in select(2) instead, whose
timeout has microsecond resolution (a proxy has a handful of sockets, so
select's cost does not matter). Timers are still late by the scheduler's
wake-up and by whatever else the loop is doing, so the RTT the proxy really
adds is measured with PING/PONG (:func:`ping_rtts`) and recorded, never
assumed.
"""

from __future__ import annotations

import asyncio
import collections
import selectors
import socket
import sys
import time

_CHUNK = 256 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader to writer, each chunk ``delay`` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    fifo: collections.deque[tuple[float, bytes]] = collections.deque()
    ready = asyncio.Event()
    closed = False

    async def read() -> None:
        nonlocal closed
        try:
            while data := await reader.read(_CHUNK):
                fifo.append((loop.time() + delay, data))
                ready.set()
        except (ConnectionError, OSError):
            pass
        closed = True
        ready.set()

    reading = asyncio.ensure_future(read())
    try:
        while True:
            if not fifo:
                if closed:
                    break
                ready.clear()
                await ready.wait()
                continue
            wait = fifo[0][0] - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            now = loop.time()
            batch = []
            while fifo and fifo[0][0] <= now:
                batch.append(fifo.popleft()[1])
            if batch:
                writer.write(b"".join(batch))
                await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        reading.cancel()
        writer.close()


async def serve(target_port: int, added_rtt: float, announce=print) -> None:
    one_way = added_rtt / 2

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        for w in (client_writer, server_writer):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(_pump(client_reader, server_writer, one_way), _pump(server_reader, client_writer, one_way))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    announce(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def ping_rtts(port: int, count: int = 50, timeout: float = 10.0) -> list[float]:
    """Round trips (seconds) of ``count`` NATS PING/PONG exchanges through 127.0.0.1:``port``.

    A raw socket speaks just enough of the protocol (read INFO, send CONNECT),
    so the figure is the path plus the server's cheapest reply, with no client
    library in it.
    """
    rtts = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = conn.makefile("rb")
        if not stream.readline().startswith(b"INFO"):
            raise OSError("no INFO line from the server")
        conn.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        _expect_pong(stream)
        for _ in range(count):
            start = time.perf_counter()
            conn.sendall(b"PING\r\n")
            _expect_pong(stream)
            rtts.append(time.perf_counter() - start)
    return rtts


def _expect_pong(stream) -> None:
    while True:
        line = stream.readline()
        if not line:
            raise OSError("connection closed while waiting for PONG")
        if line.startswith(b"PONG"):
            return
        if line.startswith(b"-ERR"):
            raise OSError(line.decode(errors="replace").strip())


def main(argv: list[str]) -> int:
    target_port, added_rtt = int(argv[0]), float(argv[1])

    def announce(port: int) -> None:
        sys.stdout.write(f"{port}\n")
        sys.stdout.flush()

    try:
        loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
        loop.run_until_complete(serve(target_port, added_rtt, announce))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
