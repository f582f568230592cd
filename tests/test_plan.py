"""The planner: its recommendation keeps its promise, with headroom, and reproduces exactly;
an impossible request says why; the maximum rate does not flip on noise."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from sim import build_config
from sim.analytic import capacities, round_trip
from sim.cli import build_parser, main
from sim.plan import Request, max_rate, plan, prune
from sim.tomlconfig import read_overrides


def simulate_json(settings: dict, capsys, **changes) -> dict:
    argv = ["simulate", "--json"]
    for key, value in {**settings, **changes}.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def summary_of(out: dict, rec: dict) -> dict:
    """The summary keys of a `sim simulate --json` object (it adds the config and run metadata)."""
    assert set(rec["summary"]) <= set(out) and "config" not in rec["summary"]
    return {key: out[key] for key in rec["summary"]}


def plan_json(argv: list[str], capsys, code: int = 0) -> dict:
    assert main(["plan", *argv, "--json", "--workers", "2"]) == code
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def answer_20k():
    """`sim plan --rate 20000 --rtt 80ms --p99 500ms --json`, run once for the tests below."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["plan", "--rate", "20000", "--rtt", "80ms", "--p99", "500ms", "--json", "--workers", "2"])
    assert code == 0
    return json.loads(out.getvalue())


def test_recommendation_reproduces_exactly_in_simulate(answer_20k, capsys):
    rec = answer_20k["recommendation"]
    settings = rec["set"]
    assert settings["run.seed"] == 1 and float(settings["run.duration"]) > 0
    out = simulate_json(settings, capsys)
    config = out["config"]
    assert summary_of(out, rec) == rec["summary"]  # the same summary, byte for byte
    assert config["clients"] == rec["clients"] and config["producers_per_client"] == rec["producers_per_client"]
    # the text reproduce line is that command; its msg/s is the summary's
    assert rec["reproduce"] == "sim simulate " + " ".join(f"--set {k}={v}" for k, v in settings.items())
    assert main(["plan", "--rate", "20000", "--rtt", "80ms", "--p99", "500ms", "--workers", "2"]) == 0
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if line.startswith("reproduce: "))
    assert line == f"reproduce: {rec['reproduce']}"
    argv = shlex.split(line[len("reproduce: sim "):])
    assert main([*argv, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert summary_of(again, rec) == rec["summary"]
    assert f"{rec['summary']['throughput_msgs_per_s']:,.0f} msg/s" in text


def test_recommendation_leaves_headroom_and_meets_its_promise(answer_20k, capsys):
    rec = answer_20k["recommendation"]
    assert answer_20k["feasible"] is True and rec["meets_target"] is True
    assert answer_20k["max_busy"] == 0.8
    # one event loop would be 90% busy at 20,000 msg/s: the planner needs two
    assert rec["clients"] == 2
    assert max(rec["summary"]["utilisation"].values()) <= 0.8
    assert rec["headroom"] == pytest.approx(1 - rec["busiest_utilisation"])
    settings = rec["set"]
    producers = settings["clients"] * settings["producers_per_client"]
    assert settings["producer.rate"] * producers == pytest.approx(20_000)
    # the same system with two other seeds: no timeouts, the bound, the headroom
    for seed in (11, 12):
        out = simulate_json(settings, capsys, **{"run.seed": seed})
        assert out["timed_out"] == 0
        assert out["latency_from_intended_ms"]["p99"] <= 500
        assert max(out["utilisation"].values()) <= 0.8
        assert out["limited_by"] == "offered_load"
    # and it is the cheapest that held: nothing simulated with fewer clients met the target
    assert not any(c["meets_target"] for c in answer_20k["candidates"] if c["clients"] < rec["clients"])


def test_one_vocabulary_clients_not_processes(answer_20k, capsys):
    for candidate in answer_20k["candidates"]:
        assert {"clients", "producers_per_client", "busiest_station", "headroom", "limited_by"} <= set(candidate)
        assert not any("process" in key for key in candidate)
    assert "bottleneck" not in answer_20k["recommendation"]
    assert main(["plan", "--rate", "20000", "--rtt", "80ms", "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "process" not in text and "clients prod/client" in text


def test_max_busy_bounds_every_station_of_the_recommendation(capsys):
    answer = plan_json(["--rate", "20000", "--rtt", "20ms", "--max-busy", "50%"], capsys)
    rec = answer["recommendation"]
    assert max(rec["summary"]["utilisation"].values()) <= 0.5
    assert rec["clients"] >= 2  # 20,000 x 45 us = 0.9 CPU: at least two event loops at 45%


def test_max_rate_stays_under_max_busy():
    """The issue's CPU-bound system: 4 event loops of 45 us per message saturate at 88,889 msg/s."""
    config = build_config({"clients": 4, "producers_per_client": 4, "broker.partitions": 8, "link.rtt": "20ms",
                           "producer.mode": "nonblocking"})
    found = max_rate(config)
    assert found.outcome["busiest_utilisation"] <= 0.8
    assert 0.95 * 0.8 * 88_889 <= found.rate <= 0.8 * 88_889
    assert max(found.outcome["summary"]["utilisation"].values()) <= 0.8


def test_max_rate_json_reproduces_its_run(capsys):
    answer = plan_json(["--max-rate", "--set", "link.bandwidth=100Mbit/s", "--set", "producer.mode=nonblocking",
                        "--set", "clients=2"], capsys)
    at_max = answer["at_max"]
    # 100 Mbit/s carries 17,781 messages of 703 B a second; at most 80% of it
    assert 0.95 * 0.8 * 17_781 <= answer["max_rate_msgs_per_s"] <= 0.8 * 17_781
    assert at_max["busiest_station"] == "uplink" and at_max["busiest_utilisation"] <= 0.8
    assert summary_of(simulate_json(at_max["set"], capsys), at_max) == at_max["summary"]
    assert at_max["reproduce"] == "sim simulate " + " ".join(f"--set {k}={v}" for k, v in at_max["set"].items())


def test_an_infeasible_plan_agrees_with_its_best_rate_and_prints_no_empty_table(capsys):
    argv = ["--rate", "88889", "--rtt", "20ms", "--max-clients", "4", "--max-producers", "16"]
    answer = plan_json(argv, capsys, code=1)
    assert answer["feasible"] is False and answer["limited_by"] == "client_cpu"
    assert answer["best_rate_msgs_per_s"] < 88_889
    assert main(["plan", *argv]) == 1
    text = capsys.readouterr().out
    assert "no plan" in text and "client cpu" in text
    assert "simulated" not in text and "clients prod/client" not in text  # no table of nothing


def test_a_far_lossy_target_needs_more_connections():
    request = Request(rate=600, overrides={"link.rtt": "300ms", "link.loss": 0.02})
    result = plan(request, workers=2, progress=False)
    assert result.feasible
    rec = result.recommendation
    # one connection carries ~57 msg/s at this loss and RTT; at most 80% of it: at least 14 clients
    assert rec.clients >= 14
    assert rec.outcome["timed_out"] == 0
    assert rec.outcome["summary"]["utilisation"]["connection"] <= 0.8


def test_infeasible_request_names_the_bottleneck_and_the_best_rate(capsys):
    answer = plan_json(["--rate", "300000", "--rtt", "20ms", "--max-clients", "2", "--max-producers", "4"], capsys,
                       code=1)
    assert answer["limited_by"] == "client_cpu"
    assert "client cpu" in answer["reason"] and "300,000" in answer["reason"]
    # two event loops of 45 us per message, at most 80% busy: at most ~35,600 msg/s
    assert 0.95 * 0.8 * 44_444 <= answer["best_rate_msgs_per_s"] <= 0.8 * 44_445


# -- issue: wrong reasons, slow searches, noise ----------------------------------------------


def test_a_round_trip_above_the_p99_bound_is_named(capsys):
    answer = plan_json(["--rate", "100", "--rtt", "80ms", "--p99", "1ms", "--max-processes", "1"], capsys, code=1)
    assert answer["limited_by"] == "round_trip"
    assert "round trip" in answer["reason"] and "p99" in answer["reason"]
    assert "cpu" not in answer["reason"]


def test_an_ack_wait_below_the_round_trip_is_named(capsys):
    answer = plan_json(["--rate", "100", "--rtt", "20s"], capsys, code=1)
    assert answer["limited_by"] == "ack_wait"
    assert "ack_wait" in answer["reason"] and "connection" not in answer["reason"]


def test_a_huge_search_space_stops_at_the_first_size_that_holds(capsys):
    answer = plan_json(["--rate", "5000", "--rtt", "20ms", "--max-processes", "1000", "--max-producers", "3000"],
                       capsys)
    rec = answer["recommendation"]
    assert rec["clients"] == 1
    assert answer["combinations"] > 80_000
    assert answer["considered"] <= 96  # one size: 3 producers per client x 4 partition counts x 8 limits
    # its limit is never reached (it shared the run without one): simulated again, it reproduces exactly
    assert rec["concurrent_task_limit"] > rec["max_in_flight"] and "same_run_as_limit" not in rec
    assert summary_of(simulate_json(rec["set"], capsys), rec) == rec["summary"]


def test_a_limit_above_the_most_in_flight_gives_the_same_run():
    from sim.plan import max_in_flight
    from sim.results import run

    base = {"producer.mode": "nonblocking", "clients": 2, "producers_per_client": 2, "producer.rate": 2000,
            "producer.messages": None, "run.duration": "1s", "link.rtt": "20ms", "broker.service_dist": "exponential"}
    free = run(build_config(base))
    most = max_in_flight(free.arrays)
    assert 40 <= most <= 120  # about 2,000 x 20 ms = 40 on average, Poisson bursts above
    above = run(build_config({**base, "producer.concurrent_task_limit": most + 1}))
    for key, values in free.arrays.items():
        np.testing.assert_array_equal(values, above.arrays[key])
    below = run(build_config({**base, "producer.concurrent_task_limit": most // 2, "producer.limiter_poll": "5ms"}))
    assert below.summary["latency_from_intended_ms"]["max"] > free.summary["latency_from_intended_ms"]["max"]


def test_max_rate_does_not_flip_on_poisson_noise():
    """One sync producer 10 ms away: about 1 / round trip = 99.4 msg/s, whatever the seed."""
    rates = []
    for seed in (1, 2, 3):
        config = build_config({"link.rtt": "10ms", "run.seed": seed})
        found = max_rate(config)
        rates.append(found.rate)
        assert found.outcome["limited_by"] == "round_trip"
    capacity = 1 / round_trip(build_config({"link.rtt": "10ms"}))
    for rate in rates:
        assert 0.93 * capacity <= rate <= 1.03 * capacity, rates  # the verdict lets a backlog grow 1%/s


def test_one_progress_bar_covers_the_whole_search(monkeypatch):
    import tqdm.std  # sim.progress's bar outside Jupyter

    bars = []
    real = tqdm.std.tqdm

    class Counting(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(tqdm.std, "tqdm", Counting)
    result = plan(Request(rate=20_000, overrides={"link.rtt": "80ms"}), workers=1, progress=True)
    assert result.feasible
    assert len(bars) == 1 and bars[0].total == result.combinations
    assert bars[0].n == bars[0].total  # full when the search stops early


def test_every_plan_flag_states_its_default():
    parser = build_parser()
    planner = parser._subparsers._group_actions[0].choices["plan"]
    for action in planner._actions:
        if action.help in (None, "==SUPPRESS==") or action.dest == "help":
            continue
        assert "default" in action.help, action.option_strings


# -- a calibrated profile -------------------------------------------------------------------


def test_plan_sizes_a_calibrated_profile_and_reproduces_it(tmp_path, capsys):
    """Any TOML that `sim simulate --config` takes: here a slower client, a nearer broker."""
    profile = tmp_path / "calibrated.toml"
    profile.write_text('[client]\nsend_cpu = "90us"\nack_cpu = 2.5e-05\n\n[link]\nrtt = "2ms"\n'
                       'bandwidth = "10Gbit/s"\n\n[broker]\nservice_time = "12us"\n')
    assert main(["simulate", "--config", str(profile), "--set", "producer.messages=10"]) == 0
    capsys.readouterr()
    answer = plan_json(["--config", str(profile), "--rate", "10000"], capsys)
    rec = answer["recommendation"]
    # 115 us of CPU per message: 10,000 msg/s is 1.15 event loops; at most 80% busy: two clients
    assert rec["clients"] == 2
    assert rec["set"]["client.send_cpu"] == "90us" and rec["set"]["client.ack_cpu"] == 2.5e-05
    out = simulate_json(rec["set"], capsys)
    assert out["config"]["client.send_cpu"] == pytest.approx(90e-6)
    assert summary_of(out, rec) == rec["summary"]


PROFILES = sorted((Path(__file__).parent.parent / "sim" / "profiles").glob("*.toml"))


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_plan_with_each_shipped_profile_reproduces(profile, capsys):
    assert main(["simulate", "--config", str(profile), "--set", "producer.messages=10"]) == 0
    capsys.readouterr()
    config = build_config(read_overrides(str(profile)))
    rate = 0.2 * min(capacities(config.replace({"producer.mode": "nonblocking"})).values())
    answer = plan_json(["--config", str(profile), "--rate", f"{rate:.0f}", "--max-clients", "4"], capsys)
    rec = answer["recommendation"]
    assert max(rec["summary"]["utilisation"].values()) <= 0.8
    assert summary_of(simulate_json(rec["set"], capsys), rec) == rec["summary"]


def test_prune_rules_out_what_theory_forbids():
    config = build_config({"producer.mode": "nonblocking", "producer.rate": 30_000, "producer.messages": None,
                           "run.duration": "1s"})
    assert prune(config, Request(rate=30_000))[0] == "client_cpu"
    assert prune(config.replace({"producer.rate": 20_000}), Request(rate=20_000))[0] == "client_cpu"  # 90% > 80%
    assert prune(config.replace({"producer.rate": 20_000}), Request(rate=20_000, max_busy=0.95)) is None
    small_limit = config.replace({"producer.rate": 5000, "producer.concurrent_task_limit": 100})
    assert prune(small_limit, Request(rate=5000))[0] == "limiter"
    assert prune(config.replace({"producer.rate": 100}), Request(rate=100, p99=0.01))[0] == "round_trip"


def test_plan_bad_input_is_one_line(capsys):
    for argv, word in ((["plan", "--rtt", "80ms"], "--rate"), (["plan", "--rate", "-5", "--rtt", "1ms"], "--rate"),
                       (["plan", "--rate", "100", "--rtt", "fast"], "link.rtt"),
                       (["plan", "--rate", "100", "--p99", "soon"], "--p99"),
                       (["plan", "--rate", "100", "--max-busy", "120%"], "--max-busy"),
                       (["plan", "--rate", "100", "--max-busy", "lots"], "--max-busy"),
                       (["plan", "--rate", "100", "--max-clients", "0"], "--max-clients")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and word in err, err
