"""sim calibrate and sim validate on data the simulator made with known parameters."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sim.calibrate import (calibrate, format_fit, format_rows, row_config, simulate_configs, summary_by_mode, to_toml,
                           validate)
from sim.cli import main
from sim.config import InputError, build_config
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


def synthetic_table(truth=TRUTH, points=POINTS, client_cpu: bool = False) -> pd.DataFrame:
    rows = []
    for repeat, point in enumerate(points):
        # (producers and broker on one host, as `sim measure` runs them, the row says so; with cores to
        # spare, as these costs are what is fitted: tests/test_hosts.py covers rows whose cores bind)
        row = {"window": None, "limit": None, "ack_wait_s": 15.0, "payload_bytes": 512, "host_cores": 16,
               "colocated": True, **point}
        summary = simulate_configs([row_config(row, truth)], workers=1, cache=None)[0]
        row.update(throughput_msgs_per_s=summary["throughput_msgs_per_s"], p50_ms=summary["latency_p50_ms"],
                   p99_ms=summary["latency_p99_ms"], timeouts=summary["timed_out"], stored=summary["stored"],
                   client_cpu_us_per_msg=summary["client_cpu_us_per_msg"] if client_cpu else float("nan"),
                   server_cpu_us_per_msg=float("nan"), repeat=0)
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
    assert "client CPU" not in format_fit(fit)  # its table measured none


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


def test_the_clients_cpu_tells_its_costs_from_the_brokers():
    """Sync round trips see only the sum of every cost; the producers' measured CPU per message
    says how much of it is the client's, so the fit recovers both sides."""
    sync_points = [dict(mode="sync", rtt_ms=rtt, producers=1, partitions=1, messages=50) for rtt in (0.05, 0.5, 2.0)]
    truth = {"client.send_cpu": 30e-6, "broker.service_time": 20e-6}
    table = synthetic_table(truth, sync_points, client_cpu=True)
    assert table["client_cpu_us_per_msg"].to_numpy() == pytest.approx(30 + 10)  # send + the default 10 us ack
    keys = list(truth)
    blind = calibrate(table, keys=keys, holdout=0, workers=1, cache=None, progress=False, from_data=False,
                      targets=["throughput", "p50"])
    assert blind.tangled == [keys]
    fit = calibrate(table, keys=keys, holdout=0, workers=1, cache=None, progress=False, from_data=False,
                    targets=["throughput", "p50", "client_cpu"])
    assert not fit.tangled and fit.rms_log_error < 0.01
    for key, value in truth.items():
        assert fit.values[key] == pytest.approx(value, rel=0.05), key
    report = format_fit(fit)
    assert "fitted points: median |error| throughput 0%, p50 0%, client CPU 0%;" in report, report
    # a row without the column (an older table's NaN) compares nothing there: the others still fit
    table.loc[0, "client_cpu_us_per_msg"] = float("nan")
    again = calibrate(table, keys=keys, holdout=0, workers=1, cache=None, progress=False, from_data=False,
                      targets=["throughput", "p50", "client_cpu"])
    for key, value in truth.items():
        assert again.values[key] == pytest.approx(value, rel=0.05), key
    # and a table with none of it says so in one line
    table["client_cpu_us_per_msg"] = float("nan")
    with pytest.raises(InputError, match="--targets = client_cpu: the table has no client_cpu_us_per_msg"):
        calibrate(table, keys=keys, holdout=0, workers=1, cache=None, progress=False, from_data=False,
                  targets=["client_cpu"])


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


def test_validate_sets_the_clients_cpu_against_the_measured_one():
    measured = synthetic_table(points=POINTS[:3], client_cpu=True)
    rows = validate(measured, TRUTH, workers=1, cache=None)
    assert rows["sim_client_cpu_us_per_msg"].to_numpy() == pytest.approx(measured["client_cpu_us_per_msg"], rel=1e-12)
    # a sync round trip costs the client its produce() and its ack
    assert rows["sim_client_cpu_us_per_msg"].iloc[0] == pytest.approx(30 + 12, rel=1e-9)
    assert "cpu real" in format_rows(rows).splitlines()[0]
    assert summary_by_mode(rows)["median_client_cpu_error"].to_numpy() == pytest.approx(0, abs=1e-12)
    slower = validate(measured, {**TRUTH, "client.send_cpu": 2 * 30e-6}, workers=1, cache=None)
    assert summary_by_mode(slower)["median_client_cpu_error"].iloc[-1] > 0.4
    # a table without the column: no such column in the rows' lines, NaN in the summary
    blind = validate(measured.drop(columns="client_cpu_us_per_msg"), TRUTH, workers=1, cache=None)
    assert "cpu real" not in format_rows(blind)
    assert summary_by_mode(blind)["median_client_cpu_error"].isna().all()


@pytest.mark.parametrize("argv, message", [
    (["--fit", "client.nope"], "--fit = client.nope: not a config key"),
    (["--fit", "link.rtt"], "--fit = link.rtt: not a cost the fit can move"),
    (["--fit", "clients"], "--fit = clients: not a cost the fit can move"),
    (["--targets", "p42"], "--targets = p42: allowed: throughput, p50, p99"),
    (["--holdout-modes", "turbo"], "--holdout-modes = turbo: allowed: sync, window"),
    (["--holdout-modes", "burst"], "--holdout-modes = burst: no such mode in the table"),
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


def test_a_mode_held_out_entirely_is_predicted_out_of_sample(table):
    fit = calibrate(table, keys=list(TRUTH), holdout=0, holdout_modes=["limit"], workers=1, cache=None,
                    progress=False, from_data=False)
    assert list(fit.holdout["mode"]) == ["limit"] and "limit" not in set(fit.train["mode"])
    row = fit.holdout.iloc[0]
    assert row["sim_throughput_msgs_per_s"] == pytest.approx(row["throughput_msgs_per_s"], rel=0.05)
    assert "# modes held out of the fit entirely: limit" in to_toml(fit, "t.csv")


def test_fit_bounds_say_what_can_move():
    from sim.calibrate import BOUNDS_CV, BOUNDS_S, fit_bounds

    assert fit_bounds("client.send_cpu") == (*BOUNDS_S, "duration")
    assert fit_bounds("broker.service_cv") == (*BOUNDS_CV, "cv")
    assert fit_bounds("link.jitter") == (1e-7, 5e-3, "duration")
    for key in ("link.rtt", "producer.ack_wait", "link.bandwidth", "clients"):
        with pytest.raises(Exception, match="not a cost the fit can move"):
            fit_bounds(key)


def test_a_wake_up_growth_is_fitted_from_sync_points_at_several_round_trips(tmp_path):
    """Sync at 0.05 to 20 ms: each ack wakes a loop that slept about one round trip, so the
    round trips' spread tells client.wakeup_growth; it is written as a plain number."""
    from sim.calibrate import BOUNDS_GROWTH, fit_bounds

    assert fit_bounds("client.wakeup_growth") == (*BOUNDS_GROWTH, "growth")
    assert fit_bounds("client.wakeup_max") == (1e-6, 5e-3, "duration")
    truth = {"client.loop": "iterations", "client.wakeup_cpu": 60e-6, "client.wakeup_growth": 0.02}
    points = [dict(mode="sync", rtt_ms=rtt, producers=1, partitions=1, messages=40) for rtt in (0.05, 1, 5, 20)]
    data = synthetic_table(truth=truth, points=points)
    base = {"client.loop": "iterations", "client.wakeup_cpu": "60us"}
    fit = calibrate(data, keys=["client.wakeup_growth"], holdout=0, base=base, workers=1, cache=None,
                    progress=False, from_data=False)
    assert fit.values["client.wakeup_growth"] == pytest.approx(0.02, rel=0.05)
    path = tmp_path / "c.toml"
    path.write_text(to_toml(fit, "t.csv"))
    assert build_config(read_overrides(str(path))).client.wakeup_growth == pytest.approx(
        fit.values["client.wakeup_growth"], rel=1e-3)


def test_a_cv_is_fitted_from_p99_and_written_as_a_number(tmp_path):
    """A lognormal partition stage: only the tail tells its cv; the fit finds it from p99."""
    truth = {"broker.service_time": 150e-6, "broker.service_dist": "lognormal", "broker.service_cv": 1.5}
    points = [dict(mode="window", rtt_ms=1.0, window=w, producers=1, partitions=1, messages=3000) for w in (4, 8)]
    data = synthetic_table(truth=truth, points=points)
    base = {"broker.service_time": "150us", "broker.service_dist": "lognormal"}
    fit = calibrate(data, keys=["broker.service_cv"], holdout=0, base=base, workers=1, cache=None, progress=False,
                    from_data=False)
    assert fit.values["broker.service_cv"] == pytest.approx(1.5, rel=0.10)
    path = tmp_path / "c.toml"
    path.write_text(to_toml(fit, "t.csv"))
    overrides = read_overrides(str(path))
    assert overrides["broker.service_dist"] == "lognormal" and isinstance(overrides["broker.service_cv"], float)
    assert build_config(overrides).broker.service_cv == pytest.approx(fit.values["broker.service_cv"], rel=1e-3)


def _validated(**columns):
    base = dict(mode="window", producers=1, throughput_msgs_per_s=1000.0, sim_throughput_msgs_per_s=1000.0,
                p50_ms=1.0, sim_p50_ms=1.0, p99_ms=2.0, sim_p99_ms=2.0, timeouts=0, sim_timeouts=0,
                client_cpu_us_per_msg=100.0)
    n = max(len(v) for v in columns.values())
    return pd.DataFrame({k: columns.get(k, [v] * n) for k, v in base.items()})


def test_targets_count_what_the_issue_asks():
    from sim.calibrate import targets

    rows = _validated(
        sim_throughput_msgs_per_s=[1100.0, 800.0, 1000.0, 1050.0],  # errors +10%, -20%, 0, +5%
        client_cpu_us_per_msg=[800.0, 800.0, 10.0, 10.0],  # 80% busy: the first two are CPU-bound
        sim_p50_ms=[1.1, 1.3, 1.0, 0.85],  # within 20%: 2 of the 3 without timeouts
        sim_p99_ms=[2.0, 3.0, 2.0, 2.5],  # within 30%: 2 of the 3 without timeouts
        timeouts=[0, 0, 30, 0], sim_timeouts=[0, 0, 100, 1],  # 100/30 > 3: missed; one false alarm
    )
    got = {t["name"]: t for t in targets(rows)}
    assert got["median |throughput error|"]["value"] == pytest.approx(0.075)
    assert got["median |throughput error|"]["holds"]
    assert got["median |throughput error|, CPU-bound rows"]["value"] == pytest.approx(0.15)
    assert got["median |throughput error|, CPU-bound rows"]["rows"] == 2
    # the row with timeouts has no latency to compare
    assert got["p50 within 20%"]["value"] == pytest.approx(2 / 3) and got["p50 within 20%"]["rows"] == 3
    assert not got["p50 within 20%"]["holds"]
    assert got["p99 within 30%"]["value"] == pytest.approx(2 / 3) and got["p99 within 30%"]["holds"]
    assert got["timeouts within 3x where real ones occur"]["value"] == 0
    assert not got["timeouts within 3x where real ones occur"]["holds"]
    assert got["no timeouts predicted where none occur"]["value"] == 1


def test_validate_writes_markdown_with_out_of_sample_targets(table, tmp_path, capsys):
    csv = tmp_path / "m.csv"
    table.to_csv(csv, index=False)
    toml = tmp_path / "c.toml"
    toml.write_text('[client]\nsend_cpu = "30us"\nack_cpu = "12us"\n[broker]\nservice_time = "20us"\n')
    md = tmp_path / "V.md"
    assert main(["validate", str(csv), "--config", str(toml), "--figure", "", "--workers", "1", "--no-cache",
                 "--holdout-modes", "limit,sync", "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "out of sample (limit, sync):" in out and f"wrote {md}" in out
    text = md.read_text()
    assert "| out of sample | median \\|throughput error\\| | 0% | <= 12% | 2 | meets it |" in text
    assert "| all | median \\|throughput error\\| | 0% | <= 12% | 6 | meets it |" in text
    assert text.count("\n") > 20 and "sim validate" in text


def test_validate_set_changes_a_key_of_the_calibration(table, tmp_path, capsys):
    """--set on top of --config: the rows are simulated with the changed key (a dearer client is
    slower, exactly as the same calibration written with that key), and the page says so."""
    csv = tmp_path / "m.csv"
    table.to_csv(csv, index=False)
    toml = tmp_path / "c.toml"
    toml.write_text('[client]\nsend_cpu = "30us"\nack_cpu = "12us"\n[broker]\nservice_time = "20us"\n')
    dearer = tmp_path / "d.toml"
    dearer.write_text('[client]\nsend_cpu = "90us"\nack_cpu = "12us"\n[broker]\nservice_time = "20us"\n')
    md = tmp_path / "V.md"

    def rows(*argv):
        assert main(["validate", str(csv), "--figure", "", "--workers", "1", "--no-cache", "--json", *argv]) == 0
        return json.loads(capsys.readouterr().out)

    base = rows("--config", str(toml))
    changed = rows("--config", str(toml), "--set", "client.send_cpu=90us")
    assert changed == rows("--config", str(dearer))
    assert all(c["sim_throughput_msgs_per_s"] <= b["sim_throughput_msgs_per_s"] for b, c in zip(base, changed))
    assert any(c["sim_throughput_msgs_per_s"] < 0.9 * b["sim_throughput_msgs_per_s"] for b, c in zip(base, changed))
    assert main(["validate", str(csv), "--config", str(toml), "--set", "client.send_cpu=90us", "--figure", "",
                 "--workers", "1", "--no-cache", "--markdown", str(md)]) == 0
    capsys.readouterr()
    text = md.read_text()
    assert f"--config {toml} --set client.send_cpu=90us --markdown" in text and "`client.send_cpu = 90us`" in text
    assert main(["validate", str(csv), "--config", str(toml), "--set", "client.send_cpu=fast", "--figure", ""]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "client.send_cpu" in err[0]


def test_pooled_points_are_simulated_in_the_setting_their_rows_were_measured_in():
    """A point's repeats pool into one row that keeps the host's cores, the co-located broker
    and the proxy (so the fit simulates what `sim validate` simulates row by row)."""
    from sim.calibrate import pool_points

    base = {"mode": "window", "window": 100, "producers": 2, "partitions": 1, "messages": 20000, "ack_wait_s": 15.0,
            "payload_bytes": 512, "host_cores": 2, "colocated": True, "p50_ms": 4.0, "p99_ms": 9.0, "timeouts": 0}
    rows = [{**base, "rtt_ms": 1.25, "added_rtt_target_ms": 1, "added_rtt_ms": 1.21, "throughput_msgs_per_s": 28000.0},
            {**base, "rtt_ms": 1.45, "added_rtt_target_ms": 1, "added_rtt_ms": 1.41, "throughput_msgs_per_s": 24000.0},
            {**base, "rtt_ms": 0.03, "added_rtt_target_ms": 0, "added_rtt_ms": 0.0, "throughput_msgs_per_s": 30000.0}]
    pooled = pool_points(pd.DataFrame(rows))
    assert len(pooled) == 2 and list(pooled["repeats"]) == [2, 1]
    proxied = pooled.iloc[0]
    assert proxied["throughput_msgs_per_s"] == 26000.0 and proxied["added_rtt_ms"] == pytest.approx(1.31)
    configs = [row_config(row, {"link.relay_cpu": 13e-6}) for _, row in pooled.iterrows()]
    assert [c["client.host_cores"] for c in configs] == [2, 2]
    assert [c["broker.colocated"] for c in configs] == [True, True]
    assert [c["link.relay"] for c in configs] == [True, False]
    assert [c["link.relay_cpu"] for c in configs] == [13e-6, 0.0]
    pinned = pool_points(pd.DataFrame([{**r, "colocated": False, "host_cores": 1, "broker_cores": 1} for r in rows]))
    assert {row_config(row, {})["broker.cores"] for _, row in pinned.iterrows()} == {1}
