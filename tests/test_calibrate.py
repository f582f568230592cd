"""sim calibrate and sim validate on data the simulator made with known parameters."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sim.calibrate import calibrate, row_config, simulate_configs, to_toml, validate
from sim.cli import main
from sim.config import build_config
from sim.measure import COLUMNS
from sim.tomlconfig import read_overrides

TRUTH = {"client.send_cpu": 30e-6, "client.ack_cpu": 12e-6, "broker.service_time": 20e-6}

# points where each key shapes something: round trips (all costs), a CPU-bound flood (the client's
# split between produce and ack shows in its latency), four producers on one partition (its lock)
POINTS = [
    dict(mode="sync", rtt_ms=0.05, producers=1, partitions=1, messages=200),
    dict(mode="unbounded", rtt_ms=0.05, producers=1, partitions=1, messages=1500),
    dict(mode="window", rtt_ms=1.0, window=100, producers=4, partitions=1, messages=4000),
    dict(mode="window", rtt_ms=2.0, window=10, producers=1, partitions=1, messages=500),
    dict(mode="limit", rtt_ms=2.0, limit=100, producers=1, partitions=1, messages=1500),
    dict(mode="window", rtt_ms=0.2, window=50, producers=2, partitions=2, messages=2000),
]


def synthetic_table(truth=TRUTH, points=POINTS) -> pd.DataFrame:
    rows = []
    for repeat, point in enumerate(points):
        row = {"window": None, "limit": None, "ack_wait_s": 15.0, "payload_bytes": 512, **point}
        summary = simulate_configs([row_config(row, truth)], workers=1, cache=None)[0]
        row.update(throughput_msgs_per_s=summary["throughput_msgs_per_s"], p50_ms=summary["latency_p50_ms"],
                   p99_ms=summary["latency_p99_ms"], timeouts=summary["timed_out"], stored=summary["stored"],
                   client_cpu_us_per_msg=float("nan"), server_cpu_us_per_msg=float("nan"), repeat=0,
                   host_cores=2, colocated=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    assert set(COLUMNS) <= set(table.columns)
    return table


@pytest.fixture(scope="module")
def table():
    return synthetic_table()


@pytest.fixture(scope="module")
def fit(table):
    return calibrate(table, keys=list(TRUTH), holdout=0, workers=1, cache=None, progress=False, from_data=False)


def test_calibration_recovers_known_parameters_within_5_percent(fit):
    for key, value in TRUTH.items():
        assert fit.values[key] == pytest.approx(value, rel=0.05), key
        assert fit.start[key] != pytest.approx(value, rel=0.05)  # it had somewhere to go
    # only the unbounded flood's p50 sees how the client's cost splits between produce and ack, so
    # the fit may name the pair as hard to tell apart; each is still recovered within 5%
    assert fit.rms_log_error < 0.01 and not fit.undetermined


def test_held_out_points_are_predicted(table):
    held = calibrate(table, keys=list(TRUTH), holdout=0.5, seed=3, workers=1, cache=None, progress=False,
                     from_data=False)
    # stratified by mode, each mode keeping a point in the fit: two of the three window points
    assert len(held.holdout) == 2 and len(held.train) == 4
    assert list(held.holdout["mode"]) == ["window", "window"] and "window" in set(held.train["mode"])
    for _, row in held.holdout.iterrows():
        assert row["sim_throughput_msgs_per_s"] == pytest.approx(row["throughput_msgs_per_s"], rel=0.05)


def test_keys_the_data_cannot_tell_apart_are_named():
    """Sync round trips see only the sum of the client's two costs."""
    sync_only = synthetic_table(points=[dict(mode="sync", rtt_ms=rtt, producers=1, partitions=1, messages=50)
                                        for rtt in (0.05, 0.5, 2.0)])
    fit = calibrate(sync_only, keys=["client.send_cpu", "client.ack_cpu"], holdout=0, workers=1, cache=None,
                    progress=False, from_data=False)
    assert fit.tangled == [["client.send_cpu", "client.ack_cpu"]]
    total = fit.values["client.send_cpu"] + fit.values["client.ack_cpu"]
    # the combination is still fitted: it also absorbs the partition stage, left at its 5 us default
    assert total == pytest.approx(30e-6 + 12e-6 + (20e-6 - 5e-6), rel=0.05)


def test_the_toml_works_with_config_everywhere(fit, tmp_path, capsys):
    path = tmp_path / "calibrated.toml"
    path.write_text(to_toml(fit, "synthetic.csv"))
    overrides = read_overrides(str(path))
    assert set(overrides) == set(TRUTH)
    config = build_config(overrides)
    assert config.client.send_cpu == pytest.approx(fit.values["client.send_cpu"], rel=1e-3)
    assert main(["simulate", "--config", str(path), "--set", "producer.messages=20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["client.send_cpu"] == pytest.approx(config.client.send_cpu)
    sweep = tmp_path / "s.toml"
    sweep.write_text('[base]\n"producer.messages" = 10\n[factors]\n"link.rtt" = ["1ms", "2ms"]\n')
    out = tmp_path / "s.csv"
    assert main(["sweep", str(sweep), "--config", str(path), "--out", str(out), "--workers", "1", "--no-cache"]) == 0
    assert len(pd.read_csv(out)) == 2
    assert main(["plan", "--max-rate", "--config", str(path), "--set", "producer.mode=nonblocking",
                 "--set", "producer.concurrent_task_limit=100", "--set", "link.rtt=20ms", "--json"]) in (0, 1)


def test_validate_json_and_figure(table, tmp_path, capsys):
    csv = tmp_path / "m.csv"
    table.to_csv(csv, index=False)
    toml = tmp_path / "c.toml"
    toml.write_text('[client]\nsend_cpu = "30us"\nack_cpu = "12us"\n[broker]\nservice_time = "20us"\n')
    figure = tmp_path / "v.png"
    assert main(["validate", str(csv), "--config", str(toml), "--json", "--figure", str(figure),
                 "--workers", "1", "--no-cache"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["mode"] for r in records] == list(table["mode"])
    for record in records:
        assert record["sim_throughput_msgs_per_s"] == pytest.approx(record["throughput_msgs_per_s"], rel=1e-9)
        assert record["sim_p50_ms"] == pytest.approx(record["p50_ms"], rel=1e-9)
        assert {"sim_p99_ms", "sim_timeouts"} <= set(record)
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert main(["validate", str(csv), "--config", str(toml), "--figure", str(figure), "--workers", "1",
                 "--no-cache"]) == 0
    text = capsys.readouterr().out
    assert "by mode:" in text and "all" in text


def test_validate_matches_the_direct_simulation(table):
    rows = validate(table, TRUTH, workers=1, cache=None)
    assert list(rows["sim_timeouts"]) == [0] * len(table)


@pytest.mark.parametrize("argv, message", [
    (["--fit", "client.nope"], "--fit = client.nope: not a config key"),
    (["--fit", "link.rtt"], "--fit = link.rtt: not a cost key"),
    (["--holdout", "1.5"], "--holdout = 1.5: must be >= 0 and < 1"),
])
def test_calibrate_bad_input_is_one_line(table, tmp_path, capsys, argv, message):
    csv = tmp_path / "m.csv"
    table.to_csv(csv, index=False)
    assert main(["calibrate", str(csv), "-o", str(tmp_path / "c.toml"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_table_without_the_schema_is_one_line(tmp_path, capsys):
    csv = tmp_path / "m.csv"
    csv.write_text("mode,rtt_ms\nsync,1\n")
    assert main(["calibrate", str(csv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing column(s) window, limit" in err[0]


def test_a_bad_row_is_named(table, tmp_path, capsys):
    bad = table.copy()
    bad.loc[1, "mode"] = "turbo"
    csv = tmp_path / "m.csv"
    bad.to_csv(csv, index=False)
    toml = tmp_path / "c.toml"
    toml.write_text("")
    assert main(["validate", str(csv), "--config", str(toml), "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "sim: error: row 2: mode = turbo: must be one of sync, window, limit, limit_poll, unbounded, burst"
