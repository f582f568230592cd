"""`limited_by`: what sets a run's pace, in the summary JSON and the text "why" line."""

from __future__ import annotations

import math
import random

import pytest

from sim import build_config, run
from sim.analytic import bounds, limiter_ceiling, round_trip
from sim.cli import main
from sim.limits import VOCABULARY, flow_ceiling
from sim.report import format_summary

CASES = {
    # 64 KiB of 703 B messages per 100 ms round trip: 93 messages, at most 930 msg/s
    "window_bytes": ({"producer.mode": "nonblocking", "producer.messages": 5000, "link.rtt": "100ms",
                      "link.window_bytes": "64KiB"}, "connection_window"),
    # L = 500 with the 100 ms poll: about 500 / (0.1 s + 500 x 35 us) = 4,255 msg/s
    "limiter_poll": ({"producer.mode": "nonblocking", "producer.messages": 20000,
                      "producer.concurrent_task_limit": 500}, "limiter"),
    "sync": ({"producer.messages": 300}, "round_trip"),
    "window": ({"producer.mode": "nonblocking", "producer.messages": 20000, "producer.window": 100}, "window"),
    # 45 us of CPU per message: at most 22,222 msg/s
    "cpu_bound": ({"producer.mode": "nonblocking", "producer.messages": 50000}, "client_cpu"),
    # 2% loss 300 ms away: the Mathis window, 17 messages per round trip
    "lossy": ({"producer.mode": "nonblocking", "producer.messages": 20000, "link.rtt": "300ms", "link.loss": 0.02},
              "connection_window"),
    "open_loop": ({"producer.mode": "nonblocking", "producer.rate": 5000, "producer.messages": None,
                   "run.duration": "2s"}, "offered_load"),
    "open_loop_overloaded": ({"producer.mode": "nonblocking", "producer.rate": 30000, "producer.messages": None,
                              "run.duration": "1s"}, "client_cpu"),
    # L = 1000 far above the ~800 messages 10,000 msg/s keeps in flight 80 ms away: never reached
    "open_loop_limit_unreached": ({"producer.mode": "nonblocking", "producer.rate": 10000, "producer.messages": None,
                                   "run.duration": "2s", "link.rtt": "80ms", "producer.concurrent_task_limit": 1000},
                                  "offered_load"),
    # L = 500 with its poll: about 4,255 msg/s of the 10,000 offered
    "open_loop_limited": ({"producer.mode": "nonblocking", "producer.rate": 10000, "producer.messages": None,
                           "run.duration": "2s", "link.rtt": "80ms", "producer.concurrent_task_limit": 500},
                          "limiter"),
    "partition": ({"producer.mode": "nonblocking", "producer.window": 2000, "producer.messages": 20000, "clients": 4,
                   "broker.service_time": "100us", "link.rtt": "5ms"}, "partition"),
}


@pytest.fixture(scope="module")
def results():
    return {name: run(build_config(overrides)) for name, (overrides, _) in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_limited_by_names_what_sets_the_pace(results, name):
    result = results[name]
    expected = CASES[name][1]
    assert result.summary["limited_by"] == expected
    assert expected in VOCABULARY
    why = [line for line in format_summary(result).splitlines() if line.strip().startswith("why")]
    assert len(why) == 1 and f"({expected})" in why[0], why


def test_the_numbers_behind_each_limit(results):
    s = {name: r.summary for name, r in results.items()}
    # the TCP window: full nearly all the time, the rate window / RTT
    assert s["window_bytes"]["utilisation"]["connection"] > 0.97
    assert s["window_bytes"]["throughput_msgs_per_s"] == pytest.approx(930, rel=0.01)
    assert s["lossy"]["utilisation"]["connection"] > 0.97
    assert s["lossy"]["timed_out"] > 15_000  # its backlog outgrows ack_wait
    assert s["limiter_poll"]["throughput_msgs_per_s"] == pytest.approx(500 / (0.1 + 500 * 35e-6), rel=0.03)
    assert s["cpu_bound"]["utilisation"]["client_cpu"] > 0.97
    assert s["partition"]["utilisation"]["partition"] > 0.97
    # with nothing near its limit, the window occupancy is Little's law: rate x (RTT + serialization) / window
    cfg = results["open_loop"].config
    window = 4 * 2**20 // 703
    expected = s["open_loop"]["stored"] * (0.033 + 703 / 125e6) / (window * results["open_loop"].records.span)
    assert s["open_loop"]["utilisation"]["connection"] == pytest.approx(expected, rel=1e-9)
    assert cfg.producer.rate == 5000


def test_the_lossy_why_line_names_the_mathis_window_and_the_timeouts(results):
    text = format_summary(results["lossy"])
    assert "Mathis window" in text and "timed out" in text.splitlines()[-1]
    assert "busiest: uplink" not in text


def test_open_loop_text_shows_latency_from_intended_time_and_a_growing_backlog(results):
    steady = format_summary(results["open_loop"])
    assert "(from intended send time)" in steady and "backlog" not in steady
    overloaded = format_summary(results["open_loop_overloaded"])
    lines = [line for line in overloaded.splitlines() if "(from intended send time)" in line]
    assert len(lines) == 1
    # p99 from intended time is far above the one from produce(): the application-side queue
    s = results["open_loop_overloaded"].summary
    assert s["latency_from_intended_ms"]["p99"] > 5 * s["latency_ms"]["p99"]
    growth = [line for line in overloaded.splitlines() if line.strip().startswith("backlog")]
    # 30,000 offered, about 22,222 drained: the backlog grows by about 7,800 msg/s
    assert len(growth) == 1 and "grows by ~7,7" in growth[0], growth


def test_an_ack_wait_shorter_than_a_round_trip_is_named(capsys):
    assert main(["simulate", "--set", "producer.ack_wait=10ms", "--set", "producer.messages=20"]) == 0
    why = capsys.readouterr().out.splitlines()[-1]
    assert "20 timed out: ack_wait (10ms) is shorter than a round trip (33.1 ms)" in why


def test_a_limiter_with_no_poll_and_no_cost_still_holds_l_per_round_trip():
    """No poll and no CPU: the drain-to-half rule refills the moment half are acked, so
    the limit allows no more than L per round trip (and the analytic ceiling is not 1 / 0)."""
    config = build_config({"producer.mode": "nonblocking", "producer.concurrent_task_limit": 4,
                           "producer.limiter_poll": 0, "client.send_cpu": 0, "producer.messages": 400})
    assert limiter_ceiling(config) == math.inf
    flow, ceiling = flow_ceiling(config)
    assert flow == "limiter" and ceiling == pytest.approx(4 / round_trip(config))
    summary = run(config).summary
    assert summary["limited_by"] == "limiter"
    assert summary["throughput_msgs_per_s"] <= ceiling


def test_summary_mode_names_the_same_limit(results):
    for name in ("window_bytes", "limiter_poll", "open_loop", "cpu_bound"):
        overrides = {**CASES[name][0], "run.records": "summary"}
        summary = run(build_config(overrides)).summary
        assert summary["limited_by"] == results[name].summary["limited_by"]
        assert summary["utilisation"] == results[name].summary["utilisation"]


def test_json_carries_limited_by_and_connection(capsys):
    assert main(["simulate", "--json", "--set", "producer.messages=50"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["limited_by"] == "round_trip"
    assert "connection" in out["utilisation"]


# -- against analytic bounds on random systems -----------------------------------------------


def ceilings(config) -> dict[str, float]:
    """Messages/s each candidate limit allows, from analytic.bounds and the flow control."""
    out = {}
    for kind, demand in bounds(config).demands.items():
        if demand > 0:
            out["connection_window" if kind == "connection" else kind] = 1 / demand
    flow, ceiling = flow_ceiling(config)
    if flow is not None:
        out[flow] = ceiling
    if config.producer.rate is not None:
        out["offered_load"] = config.producer.rate * config.clients * config.producers_per_client
    return out


def random_system(seed: int):
    """A random system whose tightest limit is clearly tighter (1.6 x) than the next one,
    run long enough (30 round trips, and about 4,000 messages) for start-up not to matter."""
    r = random.Random(seed)
    while True:
        mode = r.choice(["sync", "nonblocking", "nonblocking", "nonblocking", "nonblocking"])
        ov = {
            "clients": r.randint(1, 3),
            "producers_per_client": r.randint(1, 3),
            "producer.mode": mode,
            "producer.messages": None,
            "producer.payload_bytes": r.randint(100, 4000),
            "producer.start_jitter": r.uniform(0, 2e-3),
            "client.send_cpu": r.uniform(10e-6, 200e-6),
            "client.ack_cpu": r.uniform(0, 40e-6),
            "link.rtt": r.uniform(1e-3, 40e-3),
            "link.bandwidth": r.choice([r.uniform(1e6, 20e6), 125e6, 125e6]),
            "link.window_bytes": r.choice([None, None, r.randint(4_000, 200_000)]),
            "link.loss": r.choice([0.0, 0.0, 0.0, r.uniform(1e-4, 0.05)]),
            "broker.partitions": r.randint(1, 3),
            "broker.read_cpu": r.uniform(0, 100e-6),
            "broker.service_time": r.uniform(10e-6, 400e-6),
            "broker.service_dist": r.choice(["deterministic", "exponential"]),
            "run.seed": r.randint(0, 2**31),
            "run.duration": 1.0,  # set below, once the pace is known
        }
        if mode == "nonblocking" and r.random() < 0.5:
            ov["producer.window"] = r.randint(1, 60)
        if r.random() < 0.5:
            ov["producer.rate"] = math.exp(r.uniform(math.log(20), math.log(10000)))
        config = build_config(ov)
        limits = sorted(ceilings(config).items(), key=lambda kv: kv[1])
        (best, rate), (_, second) = limits[0], limits[1]
        if second < 1.6 * rate or not math.isfinite(rate) or rate > 30_000:
            continue
        trip = config.link.rtt
        duration = max(30 * trip, 4000 / rate)
        return config.replace({"run.duration": duration}), best


@pytest.mark.parametrize("seed", range(60))
def test_limited_by_agrees_with_the_analytic_bounds_on_random_systems(seed):
    config, expected = random_system(seed)
    summary = run(config).summary
    assert summary["timed_out"] == 0
    assert summary["limited_by"] == expected, (config.flat(), summary["utilisation"], ceilings(config))
