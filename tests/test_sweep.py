"""Sweeps: seeds, the tidy table, caching, the Dask backend, the command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim.sweep as sweep_module
from sim.cli import main
from sim.stats import mean_ci95
from sim.sweep import Sweep, load, run_sweep, summarize

BASE = {"producer.mode": "nonblocking", "producer.messages": 1500, "broker.service_dist": "exponential",
        "broker.service_time": "40us"}
SMALL = Sweep(base=BASE, factors={"clients": [1, 2], "producer.window": [5, 50]}, replications=3, seed=99)
EXAMPLE = Path(__file__).resolve().parent.parent / "sim" / "examples" / "limit-sweep.toml"


def test_results_do_not_depend_on_workers_or_order():
    one = run_sweep(SMALL, workers=1, cache=None, progress=False)
    two = run_sweep(SMALL, workers=2, cache=None, progress=False)
    pd.testing.assert_frame_equal(one, two)
    reordered = Sweep(base=BASE, factors={"producer.window": [50, 5], "clients": [2, 1]}, replications=3, seed=99)
    three = run_sweep(reordered, workers=2, cache=None, progress=False)
    key = ["clients", "producer.window", "replication"]
    a = one.sort_values(key).reset_index(drop=True)
    b = three.sort_values(key).reset_index(drop=True)
    pd.testing.assert_series_equal(a["throughput_msgs_per_s"], b["throughput_msgs_per_s"])


def test_tidy_table_with_means_and_confidence_intervals():
    table = run_sweep(SMALL, workers=2, cache=None, progress=False)
    assert len(table) == 4 * 3
    for column in ("clients", "producer.window", "replication", "seed", "throughput_msgs_per_s", "latency_p99_ms",
                   "timed_out", "throughput_msgs_per_s_mean", "throughput_msgs_per_s_ci95"):
        assert column in table
    # common random numbers: replication r has the same seed at every point
    assert table.groupby("replication")["seed"].nunique().eq(1).all()
    assert table["seed"].nunique() == 3
    for _, rows in table.groupby("point"):
        mean, half = mean_ci95(list(rows["throughput_msgs_per_s"]))
        assert rows["throughput_msgs_per_s_mean"].iloc[0] == pytest.approx(mean)
        assert rows["throughput_msgs_per_s_ci95"].iloc[0] == pytest.approx(half)
    points = summarize(table, ["clients", "producer.window"])
    assert len(points) == 4
    # stochastic service: replications differ
    assert (points["throughput_msgs_per_s_ci95"] > 0).all()


def test_cache_runs_only_what_changed(tmp_path, monkeypatch):
    calls = []
    original = sweep_module._execute

    def counting(jobs, *args):
        calls.append(len(jobs))
        return original(jobs, *args)

    monkeypatch.setattr(sweep_module, "_execute", counting)
    first = run_sweep(SMALL, workers=1, cache=tmp_path, progress=False)
    again = run_sweep(SMALL, workers=1, cache=tmp_path, progress=False)
    pd.testing.assert_frame_equal(first, again)
    grown = Sweep(base=BASE, factors={"clients": [1, 2], "producer.window": [5, 50, 500]}, replications=3, seed=99)
    run_sweep(grown, workers=1, cache=tmp_path, progress=False)
    run_sweep(SMALL, workers=1, cache=None, progress=False)
    assert calls == [12, 6, 12]


def test_dask_local_cluster_gives_the_local_result():
    local = run_sweep(SMALL, workers=2, cache=None, progress=False)
    distributed = run_sweep(SMALL, workers=2, cache=None, backend="dask", progress=False)
    pd.testing.assert_frame_equal(local, distributed)


def test_sweep_command_and_example_file(tmp_path, capsys):
    out = tmp_path / "example.csv"
    assert main(["sweep", str(EXAMPLE), "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "27 runs (9 points x 3 replications)" in printed
    table = pd.read_csv(out)
    assert len(table) == 27 and set(table["clients"]) == {1, 2, 4}
    # more processes, more throughput, at every limit
    means = table.groupby(["producer.concurrent_task_limit", "clients"])["throughput_msgs_per_s"].mean()
    for limit in (250, 1000, 4000):
        assert np.all(np.diff(means.loc[limit].to_numpy()) > 0)


@pytest.mark.parametrize(
    "text,word",
    [
        ('replications = 0\n[factors]\nclients = [1]\n', "replications"),
        ('[factors]\nclients = 3\n', "factors.clients"),
        ('[factors]\n"link.rttt" = ["1ms"]\n', "link.rttt"),
        ('[base]\n"link.rtt" = "soon"\n', "link.rtt"),
        ('colour = "blue"\n', "colour"),
        ('[factors]\n"run.seed" = [1, 2]\n', "run.seed"),
    ],
)
def test_bad_sweep_files_are_one_line(tmp_path, capsys, text, word):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "x.csv"), "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and word in err, err


def test_example_file_loads():
    sweep = load(EXAMPLE)
    assert sweep.replications == 3 and len(sweep.points()) == 9 and sweep.output == "out/limit-sweep.csv"
