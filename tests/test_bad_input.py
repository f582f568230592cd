"""Bad input: one clear line naming the key, the value and what is allowed; exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sim import ConfigError, build_config
from sim.cli import main

NB = ["producer.mode=nonblocking"]

# (assignments, the key the message must name, a word the message must contain)
CASES = [
    (NB + ["producer.window=-5"], "producer.window", ">= 1"),
    (NB + ["producer.window=0"], "producer.window", ">= 1"),
    (NB + ["producer.window=2.5"], "producer.window", "whole number"),
    (NB + ["producer.concurrent_task_limit=0"], "producer.concurrent_task_limit", ">= 1"),
    (["producer.messages=0"], "producer.messages", ">= 1"),
    (["producer.messages=-1"], "producer.messages", ">= 1"),
    (["producer.messages=1.5"], "producer.messages", "whole number"),
    (["producer.messages=abc"], "producer.messages", "number"),
    (["producer.rate=0"], "producer.rate", "> 0"),
    (["producer.rate=-10"], "producer.rate", "> 0"),
    (["producer.rate=nan"], "producer.rate", "NaN"),
    (["producer.rate=inf"], "producer.rate", "finite"),
    (["producer.ack_wait=0"], "producer.ack_wait", "> 0"),
    (["producer.ack_wait=-1s"], "producer.ack_wait", "> 0"),
    (["producer.ack_wait=10parsecs"], "producer.ack_wait", "unit"),
    (["producer.ack_wait=inf"], "producer.ack_wait", "finite"),
    (["producer.limiter_poll=-0.1"], "producer.limiter_poll", ">= 0"),
    (["producer.mode=fast"], "producer.mode", "sync"),
    (["producer.partitioning=random"], "producer.partitioning", "round_robin"),
    (["producer.payload_bytes=-1"], "producer.payload_bytes", ">= 0"),
    (["producer.payload_bytes=12apples"], "producer.payload_bytes", "unit"),
    (["producer.payload_bytes=0.5B"], "producer.payload_bytes", "whole number"),
    (["producer.partitioning=fixed", "producer.partition=3", "broker.partitions=2"], "producer.partition", "at most"),
    (["producer.arrivals=constant"], "producer.arrivals", "producer.rate"),
    (["producer.start_jitter=-1ms"], "producer.start_jitter", ">= 0"),
    (["clients=0"], "clients", ">= 1"),
    (["clients=two"], "clients", "number"),
    (["producers_per_client=-1"], "producers_per_client", ">= 1"),
    (["client.send_cpu=-5us"], "client.send_cpu", ">= 0"),
    (["client.ack_cpu=nan"], "client.ack_cpu", "finite"),
    (["link.rtt=-1ms"], "link.rtt", ">= 0"),
    (["link.rtt=10 parsecs"], "link.rtt", "unit"),
    (["link.bandwidth=0"], "link.bandwidth", "> 0"),
    (["link.bandwidth=-5MB/s"], "link.bandwidth", "> 0"),
    (["link.bandwidth=100furlongs/s"], "link.bandwidth", "unit"),
    (["link.bandwidth=nan"], "link.bandwidth", "bandwidth"),
    (["link.loss=1"], "link.loss", "< 1"),
    (["link.loss=1.5"], "link.loss", "< 1"),
    (["link.loss=-0.1"], "link.loss", ">= 0"),
    (["link.loss=nan"], "link.loss", "NaN"),
    (["link.window_bytes=0"], "link.window_bytes", ">= 1"),
    (["link.mss_bytes=0"], "link.mss_bytes", ">= 1"),
    (["broker.partitions=0"], "broker.partitions", ">= 1"),
    (["broker.read_cpu=-1us"], "broker.read_cpu", ">= 0"),
    (["broker.service_time=-1us"], "broker.service_time", ">= 0"),
    (["broker.service_dist=gamma"], "broker.service_dist", "lognormal"),
    (["broker.service_dist=lognormal", "broker.service_cv=0"], "broker.service_cv", "> 0"),
    (["broker.service_cv=0.5"], "broker.service_cv", "lognormal"),
    (["run.seed=-1"], "run.seed", ">= 0"),
    (["run.seed=true"], "run.seed", "number"),
    (["run.duration=0"], "run.duration", "> 0"),
    (["run.bin=0"], "run.bin", "> 0"),
    (["producer.windw=5"], "producer.windw", "did you mean producer.window"),
    (["foo.bar=1"], "foo.bar", "unknown key"),
    (["producer=1"], "producer", "unknown key"),
    (["link.rtt"], "link.rtt", "KEY=VALUE"),
    (["producer.window=5"], "producer.window", "nonblocking"),
    (NB + ["producer.window=5", "producer.concurrent_task_limit=10"], "producer.concurrent_task_limit", "not both"),
    (["producer.messages=none"], "producer.messages", "run.duration"),
]


def test_the_table_is_long_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("assignments,key,word", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_cli_rejects_with_one_clear_line(assignments, key, word, capsys):
    argv = ["simulate"]
    for item in assignments:
        argv += ["--set", item]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("sim: error: ")
    assert key in line
    assert word in line, line
    assert "Traceback" not in err


@pytest.mark.parametrize("assignments,key,word", CASES[:12])
def test_python_api_raises_config_error(assignments, key, word):
    from sim.config import parse_assignments

    with pytest.raises(ConfigError) as info:
        build_config(parse_assignments(assignments))
    assert info.value.key == key


def test_wrong_python_types_are_config_errors():
    for overrides, key in [
        ({"producer.window": [1, 2], "producer.mode": "nonblocking"}, "producer.window"),
        ({"link.rtt": object()}, "link.rtt"),
        ({"clients": None}, "clients"),
        ({"link.bandwidth": True}, "link.bandwidth"),
    ]:
        with pytest.raises(ConfigError) as info:
            build_config(overrides)
        assert info.value.key == key


def test_missing_and_broken_config_files(tmp_path, capsys):
    assert main(["simulate", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("link = [\n")
    assert main(["simulate", "--config", str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[link]\nrtt = "fast"\n')
    assert main(["simulate", "--config", str(wrong)]) == 2
    assert "link.rtt = fast" in capsys.readouterr().err


def test_unknown_command_and_option_are_one_line_with_exit_2():
    for argv in (["frobnicate"], ["simulate", "--sett", "x=1"], []):
        proc = subprocess.run([sys.executable, "-m", "sim", *argv], capture_output=True, text=True)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr


def test_bad_value_end_to_end_has_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "sim", "simulate", "--set", "link.loss=2"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "sim: error: link.loss = 2: must be < 1 (allowed: a number >= 0 and < 1)"
    )
