"""The command line: output format, JSON keys, files, help."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from sim.cli import main

JSON_KEYS = {"sent", "acked", "timed_out", "ghosts", "stored", "in_flight", "makespan_s", "throughput_msgs_per_s",
             "latency_ms"}


def run_json(*assignments, capsys):
    argv = ["simulate", "--json"]
    for a in assignments:
        argv += ["--set", a]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_json_has_the_documented_keys(capsys):
    out = run_json("producer.messages=300", "link.rtt=10ms", capsys=capsys)
    assert JSON_KEYS <= set(out)
    assert set(out["latency_ms"]) >= {"p50", "p99", "p999", "max"}
    assert out["sent"] == out["acked"] == out["stored"] == 300
    assert out["throughput_msgs_per_s"] == pytest.approx(out["acked"] / out["makespan_s"])
    assert out["config"]["link.rtt"] == 0.01


def test_json_is_reproducible(capsys):
    """Same seed, same JSON, except the wall time the run took (documented as the one exception)."""
    args = ("producer.mode=nonblocking", "producer.messages=500", "broker.service_dist=exponential", "clients=2")
    first, second = run_json(*args, capsys=capsys), run_json(*args, capsys=capsys)
    assert first.pop("wall_s") > 0 and second.pop("wall_s") > 0
    assert first == second


def test_json_names_the_version_and_nats_bench_numbers(capsys):
    import sim

    out = run_json("producer.mode=nonblocking", "producer.window=50", "producer.messages=2000", "clients=3",
                   "producer.payload_bytes=1000", capsys=capsys)
    assert out["sim_version"] == sim.__version__
    assert set(out["latency_ms"]) == {"p50", "p75", "p95", "p99", "p999", "p9999", "max", "mean"}
    lat = out["latency_ms"]
    assert lat["p50"] <= lat["p75"] <= lat["p95"] <= lat["p99"] <= lat["p999"] <= lat["p9999"] <= lat["max"]
    # 1000 B of payload per acked message
    assert out["throughput_mb_per_s"] == pytest.approx(out["throughput_msgs_per_s"] * 1000 / 1e6)
    per_client = out["per_client_msgs_per_s"]
    assert per_client["min"] <= per_client["avg"] <= per_client["max"]
    # the clients' rates add up to the whole
    assert 3 * per_client["avg"] == pytest.approx(out["throughput_msgs_per_s"])


def test_text_summary_names_the_bottleneck(capsys):
    assert main(["simulate", "--set", "producer.mode=nonblocking", "--set", "producer.messages=20000"]) == 0
    out = capsys.readouterr().out
    assert "throughput" in out and "latency ms" in out
    assert "limited by the client CPU" in out


def test_config_file_and_set_override_it(tmp_path, capsys):
    path = tmp_path / "system.toml"
    path.write_text('clients = 2\n"producer.messages" = 50\n[link]\nrtt = "2ms"\n')
    assert main(["simulate", "--json", "--config", str(path), "--set", "link.rtt=4ms"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["clients"] == 2
    assert out["config"]["link.rtt"] == 0.004
    assert out["sent"] == 100


def test_csv_outputs(tmp_path, capsys):
    messages, series = tmp_path / "m.csv", tmp_path / "t.csv"
    assert main(["simulate", "--set", "producer.messages=40", "--messages-csv", str(messages),
                 "--timeseries-csv", str(series)]) == 0
    table = pd.read_csv(messages)
    assert len(table) == 40 and "latency_s" in table
    ts = pd.read_csv(series)
    assert ts["acked"].sum() == 40


def test_list_keys_shows_every_documented_key(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for key in ("producer.mode", "producer.concurrent_task_limit", "producer.limiter_poll", "link.window_bytes",
                "broker.service_cv", "broker.ack_bytes", "producer.overhead_bytes", "run.duration", "clients",
                "producers_per_client"):
        assert key in out


@pytest.mark.parametrize("argv", [["--help"], ["simulate", "--help"], ["list", "--help"]])
def test_help_everywhere(argv):
    proc = subprocess.run([sys.executable, "-m", "sim", *argv], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "usage: sim" in proc.stdout


def test_help_does_not_import_numpy():
    code = "import sys, sim.cli; sim.cli.build_parser(); print('numpy' in sys.modules, 'pydantic' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False", "False"]
