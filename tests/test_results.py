"""The summary and time series agree with the per-message table."""

import numpy as np
import pytest

from sim import build_config, run
from sim.results import flat_summary, latency_stats_ms


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


def test_nearest_rank_percentiles_include_the_nats_bench_ones():
    latency = np.arange(1, 10_001) / 1000.0  # 1 ms .. 10,000 ms
    stats = latency_stats_ms(latency)
    assert (stats["p75"], stats["p95"], stats["p9999"]) == pytest.approx((7500.0, 9500.0, 9999.0))


def test_tables_count_producers_clients_and_partitions_from_one():
    cfg = build_config({"clients": 2, "producers_per_client": 2, "broker.partitions": 3, "producer.messages": 6,
                        "link.rtt": "1ms"})
    table = run(cfg).messages
    assert sorted(table["producer"].unique()) == [1, 2, 3, 4]
    assert sorted(table["client"].unique()) == [1, 2]
    assert sorted(table["partition"].unique()) == [1, 2, 3]
    # producers 1 and 2 belong to client 1, 3 and 4 to client 2
    assert (table["client"] == (table["producer"] - 1) // 2 + 1).all()
    assert [c for c in table.columns if c.startswith("t_")] == [
        "t_intended_s", "t_created_s", "t_sent_s", "t_stored_s", "t_resolved_s"]


def test_per_client_rates_and_megabytes_per_second():
    """Poisson arrivals give each client its own count in 1 s; min, avg, max and
    stddev (population, as nats bench) must come out of those counts exactly."""
    cfg = build_config({"clients": 4, "producer.rate": 400, "producer.messages": None, "run.duration": "1s",
                        "producer.mode": "nonblocking", "link.rtt": "2ms", "producer.payload_bytes": 1000})
    result = run(cfg)
    s = result.summary
    acked = result.messages.groupby("client")["status"].apply(lambda x: (x == "acked").sum()).to_numpy()
    rates = acked / s["makespan_s"]
    assert len(set(acked)) > 1
    assert s["per_client_msgs_per_s"] == pytest.approx(
        {"min": rates.min(), "avg": rates.mean(), "max": rates.max(), "stddev": rates.std()})
    assert s["throughput_mb_per_s"] == pytest.approx(s["acked"] * 1000 / s["makespan_s"] / 1e6)
    summary_mode = run(cfg.replace({"run.records": "summary"})).summary
    assert summary_mode["per_client_msgs_per_s"] == s["per_client_msgs_per_s"]  # summary mode counts per client too
    assert summary_mode["throughput_mb_per_s"] == pytest.approx(s["throughput_mb_per_s"])


def test_short_repr_and_html_view():
    result = run(build_config({"producer.mode": "nonblocking", "producer.messages": 20_000}))
    text = repr(result)
    assert text.startswith("<Result: 20,000 sent, 20,000 acked, 0 timed out;") and text.endswith(">")
    assert text.endswith("limited by client_cpu>") and len(text) < 200 and "\n" not in text
    html = result._repr_html_()
    assert html.startswith("<table>") and html.endswith("</table>")
    # the same sentence as the text summary's "why" line
    from sim.report import explain

    assert "20,000" in html and "what limits it" in html and explain(result) in html
    assert f"{result.summary['throughput_msgs_per_s']:,.0f} msg/s" in html


def test_to_dict_is_the_json_and_carries_version_and_wall_time():
    import json

    import sim

    result = run(build_config({"producer.messages": 50, "link.rtt": "1ms"}))
    out = result.to_dict()
    assert out["sim_version"] == sim.__version__ and out["wall_s"] > 0
    assert out["config"]["link.rtt"] == 0.001
    assert {k: v for k, v in out.items() if k not in ("config", "sim_version", "wall_s")} == result.summary
    json.dumps(out, allow_nan=False)
    assert not hasattr(result, "to_json")


def test_cpu_per_message_sums_every_process_of_a_kind():
    """Each message costs its produce() and ack on a client, a read and a store at the broker:
    with constant costs the CPU per message is their sum, whatever the processes and flow."""
    cfg = build_config({"clients": 3, "producer.mode": "nonblocking", "producer.window": 20, "producer.messages": 700,
                        "broker.partitions": 2, "client.send_cpu": "40us", "client.ack_cpu": "10us",
                        "broker.read_cpu": "3us", "broker.service_time": "25us", "link.rtt": "2ms"})
    s = run(cfg).summary
    assert s["sent"] == 2100
    assert s["cpu_us_per_msg"] == pytest.approx({"client": 50.0, "broker": 28.0}, rel=1e-9)
    flat = flat_summary(s)
    assert (flat["client_cpu_us_per_msg"], flat["broker_cpu_us_per_msg"]) == pytest.approx((50.0, 28.0), rel=1e-9)
    assert "relay_cpu_us_per_msg" not in flat
    # one client alone: its busy fraction of the span is its CPU per message x throughput
    one = run(cfg.replace({"clients": 1})).summary
    assert one["utilisation"]["client_cpu"] == pytest.approx(
        one["cpu_us_per_msg"]["client"] * 1e-6 * one["sent"] / one["simulated_s"], rel=1e-9)


def test_cpu_per_message_counts_the_relay_and_the_collector():
    cfg = build_config({"producer.mode": "burst", "producer.messages": 5000, "client.gc_messages": 25,
                        "client.send_cpu": "30us", "client.ack_cpu": "5us", "client.host_cores": 2,
                        "broker.colocated": True, "link.relay": True, "link.relay_cpu": "4us",
                        "link.rtt": "1ms", "producer.ack_wait": "60s"})
    s = run(cfg).summary
    # the collector's CPU is the client's: produce() and ack, plus every full collection
    assert s["cpu_us_per_msg"]["client"] == pytest.approx(35.0 + s["client_gc"]["cpu_s"] / 5000 * 1e6, rel=1e-9)
    assert s["client_gc"]["full_collections"] == 2
    # a relay chunk carries one socket's bytes of one pass: at most one chunk per message each way
    assert 0 < s["cpu_us_per_msg"]["relay"] <= 2 * 4.0 + 1e-9
