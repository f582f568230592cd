"""Faults during long runs: a killed parent, a damaged cache, an interrupted sweep, Ctrl-C, an absent scheduler.

Each test runs ``sim`` as a real process (so signals and process trees are the
real ones), in its own session, on temporary files, and stops whatever it
started by its own process ids.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import sim.sweep as sweep_module
from sim.sweep import Cache, CacheWarning, Sweep, run_sweep

SIM = [sys.executable, "-m", "sim"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def start(argv: list[str], tmp_path: Path, **kwargs) -> subprocess.Popen:
    """``sim ARGV`` in a new session (its own process group, as a shell job would be)."""
    env = {**ENV, "SIM_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.Popen(SIM + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=tmp_path, env=env, **kwargs)


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (children, grandchildren, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            fields = stat.rsplit(b")", 1)[1].split()
            if fields[0] not in (b"Z", b"X"):
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in (b"Z", b"X"):
            out.add(pid)
    return out


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill_all(proc: subprocess.Popen, extra: set[int] = frozenset()) -> None:
    for pid in {proc.pid, *extra}:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)


def write_sweep(tmp_path: Path, messages: int, points: int, replications: int = 1) -> Path:
    """A sweep whose every run takes about ``messages`` x 1.5 us of CPU."""
    path = tmp_path / "long.toml"
    path.write_text(
        f"replications = {replications}\nseed = 7\n[base]\n\"producer.mode\" = \"nonblocking\"\n"
        f"\"producer.window\" = 50\n\"producer.messages\" = {messages}\n\"link.rtt\" = \"1ms\"\n"
        f"[factors]\n\"broker.service_time\" = [{', '.join(f'{5 + i}e-6' for i in range(points))}]\n")
    return path


def test_workers_die_with_their_parent(tmp_path):
    sweep = write_sweep(tmp_path, messages=20_000_000, points=4)  # each run: tens of seconds
    proc = start(["sweep", str(sweep), "--workers", "2", "--out", str(tmp_path / "x.csv")], tmp_path)
    workers: set[int] = set()
    try:
        # the pool's workers (under a forkserver, grandchildren) at work
        workers = wait_for(lambda: descendants(proc.pid) if len(descendants(proc.pid)) >= 3 else None, 60,
                           "the worker processes")
        time.sleep(1.0)
        assert proc.poll() is None, proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: not alive(workers), 10, f"workers {sorted(alive(workers))} to end after their parent")
    finally:
        kill_all(proc, alive(workers))


def test_ctrl_c_during_a_sweep_exits_130_with_one_line_and_keeps_finished_runs(tmp_path):
    sweep = write_sweep(tmp_path, messages=200_000, points=30)  # about 0.3 s a run
    out = tmp_path / "x.csv"
    proc = start(["sweep", str(sweep), "--workers", "2", "--out", str(out)], tmp_path)
    cache = Cache(tmp_path / "cache")
    workers: set[int] = set()
    try:
        wait_for(lambda: len(cache.entries()) >= 3, 120, "three runs cached while the sweep goes on")
        workers = descendants(proc.pid)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C: the whole foreground group
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130, stderr
        assert stderr.strip().splitlines() == ["sim: interrupted"], stderr
        assert not out.exists()
        wait_for(lambda: not alive(workers), 10, "the workers to end")
    finally:
        if proc.poll() is None:
            kill_all(proc, alive(workers))
    cached = len(cache.entries())
    assert 3 <= cached < 30
    # the sweep resumes: only the runs not cached are computed again
    calls = []
    original = sweep_module._execute

    def counting(jobs, *args):
        calls.append(len(jobs))
        return original(jobs, *args)

    loaded = sweep_module.load(sweep)
    try:
        sweep_module._execute = counting
        table = run_sweep(loaded, workers=2, cache=tmp_path / "cache", progress=False)
    finally:
        sweep_module._execute = original
    assert calls == [30 - cached]
    assert len(table) == 30 and table["acked"].eq(200_000).all()


@pytest.mark.parametrize("delay", [0.25, 0.5, 1.5])  # from loading the command line to the middle of the run
def test_ctrl_c_during_a_run_exits_130_with_one_line(tmp_path, delay):
    proc = start(["simulate", "--set", "producer.mode=nonblocking", "--set", "producer.window=100",
                  "--set", "producer.messages=50000000", "--json"], tmp_path)
    try:
        time.sleep(delay)  # (earlier than about 0.1 s, Python itself is still starting: not ours to catch)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            kill_all(proc)
    # a shell reports 130 both for exit(130) and for a death by SIGINT (-2 here), which is what Python does
    # when the signal lands while it is still starting up or tearing down: then it must print nothing else
    assert proc.returncode in (130, -signal.SIGINT), stderr
    lines = stderr.strip().splitlines()
    assert lines == ["sim: interrupted"] or (proc.returncode == -signal.SIGINT and lines == []), stderr
    assert stdout == ""


@pytest.mark.parametrize("delay", [0.3, 2.0])
def test_ctrl_c_during_figures_exits_130_with_one_line(tmp_path, delay):
    proc = start(["figures", "--quick", "--workers", "2", "--out", str(tmp_path / "figs")], tmp_path)
    workers: set[int] = set()
    try:
        time.sleep(delay)
        workers = descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            kill_all(proc, alive(workers))
    if proc.returncode == 0:  # (a very fast machine finished first)
        return
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["sim: interrupted"], stderr
    wait_for(lambda: not alive(workers), 10, "the workers to end")


# -- the cache: damaged entries are found, dropped with a warning and computed again --------------------------------

SMALL = Sweep(base={"producer.mode": "nonblocking", "producer.messages": 200, "broker.service_dist": "exponential"},
              factors={"clients": [1, 2, 3]}, replications=2, seed=5)


def _damage_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _damage_list(path: Path) -> None:
    path.write_text("[]")


def _damage_empty_dict(path: Path) -> None:
    path.write_text("{}")


def _damage_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "x").write_text("y")


def _damage_hand_edit(path: Path) -> None:
    entry = json.loads(path.read_text())
    entry["summary"]["acked"] = -999
    path.write_text(json.dumps(entry))


def _damage_consistent_forgery(path: Path) -> None:
    # a hand edit that also recomputes the checksum: caught because the counts no longer add up
    entry = json.loads(path.read_text())
    entry["summary"]["acked"] += 5
    entry["sha256"] = sweep_module._checksum(entry["summary"])
    path.write_text(json.dumps(entry))


def _damage_binary(path: Path) -> None:
    path.write_bytes(b"\xff\xfe\x00garbage")


def _damage_old_schema(path: Path) -> None:
    entry = json.loads(path.read_text())
    entry["schema"] = 0
    path.write_text(json.dumps(entry))


def _damage_swapped(path: Path) -> None:
    # another run's entry under this run's name
    others = [p for p in path.parent.parent.glob("??/*.json") if p != path]
    path.write_bytes(others[0].read_bytes())


DAMAGE = [_damage_truncate, _damage_list, _damage_empty_dict, _damage_directory, _damage_hand_edit,
          _damage_consistent_forgery, _damage_binary, _damage_old_schema, _damage_swapped]


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__[len("_damage_"):] for d in DAMAGE])
def test_a_damaged_cache_entry_is_dropped_and_recomputed(tmp_path, damage):
    first = run_sweep(SMALL, workers=1, cache=tmp_path, progress=False)
    entries = Cache(tmp_path).entries()
    assert len(entries) == 6
    victim = entries[0]
    damage(victim)
    calls = []
    original = sweep_module._execute

    def counting(jobs, *args):
        calls.append(len(jobs))
        return original(jobs, *args)

    sweep_module._execute = counting
    try:
        with pytest.warns(CacheWarning, match="damaged"):
            again = run_sweep(SMALL, workers=1, cache=tmp_path, progress=False)
    finally:
        sweep_module._execute = original
    assert calls == [1]  # only the damaged run
    pd.testing.assert_frame_equal(first, again)
    # and the entry is whole again
    assert victim.is_file()
    assert json.loads(victim.read_text())["schema"] == sweep_module.CACHE_SCHEMA


def test_a_damaged_entry_through_the_command_is_one_warning_line(tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text('[base]\n"producer.messages" = 20\n[factors]\nclients = [1, 2]\n')
    argv = ["sweep", str(sweep), "--workers", "1", "--out", str(tmp_path / "s.csv"), "--cache-dir",
            str(tmp_path / "c")]
    first = subprocess.run(SIM + argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    entry = sorted((tmp_path / "c").glob("??/*.json"))[0]
    entry.write_text("{}")
    second = subprocess.run(SIM + argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim: warning: cache entry") and "damaged" in lines[0], lines


def test_cache_command_shows_and_clears(tmp_path, capsys):
    from sim.cli import main

    run_sweep(SMALL, workers=1, cache=tmp_path / "c", progress=False)
    assert main(["cache", "--cache-dir", str(tmp_path / "c")]) == 0
    assert "6 runs" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(tmp_path / "c")]) == 0
    assert "removed 6 runs" in capsys.readouterr().out
    assert Cache(tmp_path / "c").entries() == []


def test_the_default_cache_is_the_user_cache_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("SIM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sweep_module.default_cache_dir() == tmp_path / "xdg" / "sim" / "runs"
    monkeypatch.setenv("SIM_CACHE_DIR", str(tmp_path / "mine"))
    assert sweep_module.default_cache_dir() == tmp_path / "mine"


def test_sweep_output_goes_to_out_not_the_working_directory(tmp_path):
    sweep = tmp_path / "grid.toml"
    sweep.write_text('[base]\n"producer.messages" = 5\n[factors]\nclients = [1, 2]\n')
    proc = subprocess.run(SIM + ["sweep", str(sweep), "--workers", "1"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**ENV, "SIM_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "grid.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "grid.toml", "out"]


# -- an unreachable Dask scheduler: one line, soon -------------------------------------------------------------------


def test_unreachable_dask_scheduler_is_one_line_within_the_timeout(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sweep = tmp_path / "s.toml"
    sweep.write_text('[base]\n"producer.messages" = 5\n[factors]\nclients = [1, 2]\n')
    began = time.monotonic()
    proc = subprocess.run(SIM + ["sweep", str(sweep), "--backend", "dask", "--scheduler", f"tcp://127.0.0.1:{port}",
                                 "--out", str(tmp_path / "x.csv"), "--no-cache"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    took = time.monotonic() - began
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach a Dask scheduler" in lines[0] and str(port) in lines[0], proc.stderr
    assert took < sweep_module.DASK_CONNECT_TIMEOUT_S + 15


def test_dask_workers_die_with_their_parent(tmp_path):
    sweep = write_sweep(tmp_path, messages=20_000_000, points=2)
    proc = start(["sweep", str(sweep), "--backend", "dask", "--workers", "2", "--no-cache",
                  "--out", str(tmp_path / "x.csv")], tmp_path)
    workers: set[int] = set()
    try:
        workers = wait_for(lambda: descendants(proc.pid) if len(descendants(proc.pid)) >= 2 else None, 60,
                           "the Dask worker processes")
        time.sleep(2.0)
        assert proc.poll() is None, proc.stderr.read()
        workers = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: not alive(workers), 30, f"Dask workers {sorted(alive(workers))} to end after their parent")
    finally:
        kill_all(proc, alive(workers))


def test_cache_clear_touches_only_its_own_files(tmp_path, capsys):
    from sim.cli import main

    home = tmp_path / "home"
    (home / "go").mkdir(parents=True)
    (home / "go" / "main.go").write_text("package main\n")
    (home / "ab").mkdir()
    (home / "ab" / "notes.json").write_text("{}")
    (home / "x.json").write_text("{}")
    run_sweep(SMALL, workers=1, cache=home, progress=False)
    assert main(["cache", "clear", "--cache-dir", str(home)]) == 0
    assert "removed 6 runs" in capsys.readouterr().out
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert left == ["ab", "ab/notes.json", "go", "go/main.go", "x.json"]
