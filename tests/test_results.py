"""The summary and time series agree with the per-message table."""

import numpy as np
import pytest

from sim import build_config, run
from sim.results import latency_stats_ms


def test_nearest_rank_percentiles():
    latency = np.arange(1, 1001) / 1000.0  # 1 ms .. 1000 ms
    stats = latency_stats_ms(latency)
    assert stats["p50"] == pytest.approx(500.0)
    assert stats["p99"] == pytest.approx(990.0)
    assert stats["p999"] == pytest.approx(999.0)
    assert stats["max"] == pytest.approx(1000.0)
    assert latency_stats_ms(np.zeros(0))["p99"] is None


def test_time_series_adds_up_to_the_summary():
    cfg = build_config({"producer.mode": "nonblocking", "producer.concurrent_task_limit": 300, "producer.messages": 5000,
                        "clients": 2, "link.rtt": "40ms"})
    result = run(cfg)
    ts, s = result.timeseries, result.summary
    assert ts["sent"].sum() == s["sent"]
    assert ts["acked"].sum() == s["acked"]
    assert ts["timed_out"].sum() == s["timed_out"]
    assert ts["in_flight"].iloc[-1] == s["in_flight"] == 0
    assert np.all(np.diff(ts["t_s"]) == pytest.approx(0.1))
    assert (ts["throughput_msgs_per_s"] == ts["acked"] / 0.1).all()
    # the limiter holds at most L in flight per producer at every bin edge
    assert ts["in_flight"].max() <= 2 * 300


def test_open_loop_latency_from_intended_time_shows_coordinated_omission():
    """A sync producer offered more than one message per round trip falls behind."""
    cfg = build_config({"producer.rate": 100, "producer.messages": 200, "link.rtt": "20ms"})
    s = run(cfg).summary
    assert s["latency_ms"]["max"] == pytest.approx(s["latency_ms"]["p50"], rel=0.01)  # each waits one RTT
    assert s["latency_from_intended_ms"]["max"] > 10 * s["latency_ms"]["max"]  # but the backlog grows


def test_utilisation_names_the_partition_when_it_is_the_bottleneck():
    cfg = build_config({"producer.mode": "nonblocking", "producer.window": 2000, "producer.messages": 20000,
                        "clients": 4, "broker.service_time": "100us", "link.rtt": "5ms"})
    s = run(cfg).summary
    assert s["bottleneck"] == "partition"
    assert s["throughput_msgs_per_s"] == pytest.approx(1 / 100e-6, rel=0.02)
