"""The planner: its recommendation keeps its promise; an impossible request says why."""

from __future__ import annotations

import json

import pytest

from sim import build_config
from sim.cli import main
from sim.plan import Request, max_rate, plan, prune


def simulate_json(settings: dict, capsys, **changes) -> dict:
    argv = ["simulate", "--json"]
    for key, value in {**settings, **changes}.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_recommendation_simulated_independently_meets_its_promise(capsys):
    assert main(["plan", "--rate", "20000", "--rtt", "80ms", "--p99", "500ms", "--json", "--workers", "2"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["feasible"] is True
    rec = answer["recommendation"]
    assert rec["meets_target"] is True
    settings = rec["set"]
    producers = settings["clients"] * settings["producers_per_client"]
    assert settings["producer.rate"] * producers == pytest.approx(20_000)
    # the same system through `sim simulate`, with the planner's seed and with two others
    for seed in (settings["run.seed"], 11, 12):
        out = simulate_json(settings, capsys, **{"run.seed": seed})
        duration = float(settings["run.duration"])
        assert out["timed_out"] == 0
        assert out["acked"] / duration >= 0.97 * 20_000
        assert out["latency_from_intended_ms"]["p99"] <= 500
    # and it is the cheapest that held: nothing simulated with fewer processes met the target
    cheaper = [c for c in answer["candidates"] if c["processes"] < rec["processes"]]
    assert not any(c["meets_target"] for c in cheaper)


def test_a_far_lossy_target_needs_more_connections():
    request = Request(rate=600, overrides={"link.rtt": "300ms", "link.loss": 0.02})
    result = plan(request, workers=2, progress=False)
    assert result.feasible
    rec = result.recommendation
    # one connection carries ~57 msg/s at this loss and RTT: at least 11 processes
    assert rec.processes >= 11
    assert rec.outcome["timed_out"] == 0


def test_infeasible_request_names_the_bottleneck_and_the_best_rate(capsys):
    code = main(["plan", "--rate", "300000", "--rtt", "20ms", "--max-processes", "2", "--max-producers", "4",
                 "--json"])
    assert code == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["feasible"] is False
    assert answer["bottleneck"] == "client_cpu"
    assert "client cpu" in answer["reason"] and "300,000" in answer["reason"]
    # two event loops of 45 us per message: at most ~44,000 msg/s
    assert 0.9 * 44_444 <= answer["best_rate_msgs_per_s"] <= 44_445
    code = main(["plan", "--rate", "300000", "--rtt", "20ms", "--max-processes", "2", "--max-producers", "4"])
    assert code == 1
    assert "no plan" in capsys.readouterr().out


def test_max_rate_finds_the_edge():
    config = build_config({"producer.mode": "nonblocking", "clients": 2, "link.rtt": "20ms",
                           "broker.service_time": "100us", "broker.partitions": 1})
    found = max_rate(config)
    # the partition (100 us per message) caps the whole system at 10,000 msg/s
    assert 0.9 * 10_000 <= found.rate <= 10_000 * 1.001
    assert found.outcome["holds"]
    assert any(not held for _, held in found.probes)


def test_prune_rules_out_what_theory_forbids():
    config = build_config({"producer.mode": "nonblocking", "producer.rate": 30_000, "producer.messages": None,
                           "run.duration": "1s"})
    assert "client_cpu" in prune(config, Request(rate=30_000))
    small_limit = config.replace({"producer.rate": 5000, "producer.concurrent_task_limit": 100})
    assert "limit of 100" in prune(small_limit, Request(rate=5000))
    assert "round trip" in prune(config.replace({"producer.rate": 100}), Request(rate=100, p99=0.01))


def test_plan_bad_input_is_one_line(capsys):
    for argv, word in ((["plan", "--rtt", "80ms"], "--rate"), (["plan", "--rate", "-5", "--rtt", "1ms"], "--rate"),
                       (["plan", "--rate", "100", "--rtt", "fast"], "link.rtt"),
                       (["plan", "--rate", "100", "--p99", "soon"], "--p99")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and word in err, err
