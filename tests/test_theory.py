"""Closed forms the engine must reproduce exactly (or within the stated error)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import sim
from sim import build_config
from tests.helpers import PURE_NETWORK, pure_network

ENGINE = "fast"


@pytest.fixture(autouse=True, params=["fast", "simpy"])
def engine(request, monkeypatch):
    """Every closed form holds in both engines."""
    monkeypatch.setattr(sys.modules[__name__], "ENGINE", request.param)
    return request.param


def run(config):
    return sim.run(config, engine=ENGINE)


@pytest.mark.parametrize("rtt", [1e-4, 1e-2, 0.033])
@pytest.mark.parametrize("n", [1, 17, 1000])
def test_sync_batch_takes_n_round_trips(n, rtt):
    result = run(pure_network(producer__messages=n, link__rtt=rtt))
    assert result.summary["makespan_s"] == pytest.approx(n * rtt, rel=1e-12)
    acked_at = result.messages["t_resolved_s"].to_numpy()
    np.testing.assert_allclose(acked_at, rtt * np.arange(1, n + 1), rtol=1e-12)
    assert result.summary["acked"] == n


@pytest.mark.parametrize("n,c", [(1000, 7), (100, 100), (10, 3), (1, 5), (999, 1), (5000, 64)])
def test_window_takes_ceil_n_over_c_round_trips(n, c):
    rtt = 0.01
    result = run(pure_network(producer__mode="nonblocking", producer__window=c, producer__messages=n, link__rtt=rtt))
    assert result.summary["makespan_s"] == pytest.approx(math.ceil(n / c) * rtt, rel=1e-12)
    # message i leaves in round i // c
    acked_at = result.messages["t_resolved_s"].to_numpy()
    np.testing.assert_allclose(acked_at, rtt * (np.arange(n) // c + 1), rtol=1e-12)


def test_article_numbers_ten_thousand_messages():
    """10,000 sync messages: 1 s at 0.1 ms RTT, 100 s at 10 ms."""
    for rtt, expected in ((1e-4, 1.0), (1e-2, 100.0)):
        result = run(pure_network(producer__messages=10_000, link__rtt=rtt))
        assert result.summary["makespan_s"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("bandwidth", [1e6, 12.5e6, 125e6])
def test_sync_round_trip_adds_serialization_of_message_and_ack(bandwidth):
    n, rtt = 200, 0.005
    cfg = pure_network(
        producer__messages=n,
        link__rtt=rtt,
        link__bandwidth=bandwidth,
        producer__payload_bytes=512,
        producer__overhead_bytes=191,
        broker__ack_bytes=103,
    )
    round_trip = rtt + 703 / bandwidth + 103 / bandwidth
    assert run(cfg).summary["makespan_s"] == pytest.approx(n * round_trip, rel=1e-12)


def test_sync_round_trip_is_the_sum_of_every_stage():
    """N * (RTT + send CPU + read + service + serialization + ack CPU), all deterministic."""
    cfg = build_config(
        {
            "producer.messages": 300,
            "link.rtt": "7.3ms",
            "link.bandwidth": "100Mbit/s",
            "client.send_cpu": "80us",
            "client.ack_cpu": "15us",
            "broker.read_cpu": "2us",
            "broker.service_time": "20us",
        }
    )
    stages = 7.3e-3 + 80e-6 + 15e-6 + 2e-6 + 20e-6 + (703 + 103) / 12.5e6
    assert run(cfg).summary["makespan_s"] == pytest.approx(300 * stages, rel=1e-12)


def test_ack_exactly_at_the_deadline_is_a_timeout_and_the_message_a_ghost():
    n, rtt = 50, 2.0**-6  # dyadic, so created + rtt/2 + rtt/2 == created + ack_wait exactly
    result = run(pure_network(producer__messages=n, link__rtt=rtt, producer__ack_wait=rtt))
    s = result.summary
    assert (s["acked"], s["timed_out"], s["ghosts"], s["stored"]) == (0, n, n, n)
    # each timeout frees the sync producer, so message i starts at i * ack_wait
    np.testing.assert_allclose(result.messages["t_created_s"], rtt * np.arange(n), rtol=1e-12)


def test_sync_timeouts_make_ghosts_when_ack_wait_is_shorter_than_the_round_trip():
    n, rtt, ack_wait = 40, 0.02, 0.015
    result = run(pure_network(producer__messages=n, link__rtt=rtt, producer__ack_wait=ack_wait))
    assert result.summary["timed_out"] == n
    assert result.summary["ghosts"] == n
    assert result.summary["makespan_s"] == pytest.approx(n * ack_wait, rel=1e-12)
    np.testing.assert_allclose(result.messages["t_stored_s"], ack_wait * np.arange(n) + rtt / 2, rtol=1e-12)


@pytest.mark.parametrize("limit", [10, 50, 250, 1000])
def test_drain_to_half_limit_with_100ms_poll_gives_ten_times_the_limit(limit):
    """Zero CPU, 1 ms RTT: each poll period sends one batch of L."""
    batches = 20
    cfg = pure_network(
        producer__mode="nonblocking",
        producer__concurrent_task_limit=limit,
        producer__messages=batches * limit,
        link__rtt="1ms",
    )
    s = run(cfg).summary
    # batches leave at 0, 0.1, ..., and the last one is acked one RTT later
    assert s["makespan_s"] == pytest.approx((batches - 1) * 0.1 + 1e-3, rel=1e-9)
    assert s["throughput_msgs_per_s"] == pytest.approx(limit / 0.1, rel=0.06)


def test_limiter_ceiling_with_cpu_cost_is_l_over_poll_plus_l_cpu():
    limit, cpu, poll = 100, 100e-6, 0.1
    batches = 30
    cfg = pure_network(
        producer__mode="nonblocking",
        producer__concurrent_task_limit=limit,
        producer__messages=batches * limit,
        client__send_cpu=cpu,
        link__rtt="20ms",
    )
    s = run(cfg).summary
    # every cycle: L sends back to back, then one poll sleep that begins after the L-th send
    assert s["makespan_s"] == pytest.approx(batches * limit * cpu + (batches - 1) * poll + 20e-3, rel=1e-9)
    assert s["throughput_msgs_per_s"] == pytest.approx(limit / (poll + limit * cpu), rel=0.03)


def test_event_driven_limiter_resumes_when_half_the_tasks_are_done():
    """poll = 0: sends 1 ms apart, so acks come back 1 ms apart too."""
    limit, rtt, cpu, n = 40, 0.1005, 1e-3, 4000
    cfg = pure_network(
        producer__mode="nonblocking",
        producer__concurrent_task_limit=limit,
        producer__limiter_poll=0,
        producer__messages=n,
        client__send_cpu=cpu,
        link__rtt=rtt,
    )
    result = run(cfg)
    created = result.messages["t_created_s"].to_numpy()
    np.testing.assert_allclose(created[:limit], cpu * np.arange(limit), rtol=1e-12)
    # L in flight after the 40th send; the 20th ack (sent at 20 ms) brings it to L/2
    assert created[limit] == pytest.approx(limit // 2 * cpu + rtt, rel=1e-12)
    # never more than L in flight
    resolved = np.sort(result.messages["t_resolved_s"].to_numpy())
    in_flight_at_creation = np.arange(n) + 1 - np.searchsorted(resolved, created, side="right")
    assert in_flight_at_creation.max() == limit
    # each cycle sends L/2 .. L messages per round trip plus the sends themselves
    rate = result.summary["throughput_msgs_per_s"]
    assert limit / 2 / rtt < rate < limit / rtt


@pytest.mark.parametrize("bandwidth,window,rtt", [(100e6, 100_000, 0.01), (5e6, 100_000, 0.01), (50e6, 64_000, 0.05)])
def test_bulk_transfer_through_one_connection_gets_min_of_bandwidth_and_window_over_rtt(bandwidth, window, rtt):
    n = 20_000
    cfg = build_config(
        {
            **PURE_NETWORK,
            "producer.mode": "nonblocking",
            "producer.messages": n,
            "producer.payload_bytes": 1000,
            "producer.overhead_bytes": 0,
            "broker.ack_bytes": 0,
            "link.rtt": rtt,
            "link.bandwidth": bandwidth,
            "link.window_bytes": window,
            "producer.ack_wait": "1h",
        }
    )
    result = run(cfg)
    expected = min(bandwidth, window / rtt)
    assert result.summary["acked"] == n
    assert n * 1000 / result.summary["makespan_s"] == pytest.approx(expected, rel=0.02)


def test_lossy_connection_is_capped_by_the_mathis_bound():
    rtt, loss, mss = 0.05, 1e-3, 1460
    cfg = build_config(
        {
            **PURE_NETWORK,
            "producer.mode": "nonblocking",
            "producer.messages": 20_000,
            "producer.payload_bytes": 700,
            "producer.overhead_bytes": 0,
            "broker.ack_bytes": 0,
            "link.rtt": rtt,
            "link.bandwidth": "1Gbit/s",
            "link.loss": loss,
            "producer.ack_wait": "1h",
        }
    )
    mathis = mss / rtt * math.sqrt(1.5 / loss)  # bytes/s
    s = run(cfg).summary
    assert s["acked"] == 20_000
    assert s["acked"] * 700 / s["makespan_s"] == pytest.approx(mathis, rel=0.02)


def test_client_cpu_bound_nonblocking_rate_is_one_over_send_plus_ack_cpu():
    cfg = build_config(
        {"producer.mode": "nonblocking", "producer.messages": 50_000, "client.send_cpu": "35us", "client.ack_cpu": "10us"}
    )
    s = run(cfg).summary
    # the CPU does 45 us per message, and the last acks come back one round trip after the last send
    assert s["makespan_s"] == pytest.approx(50_000 * 45e-6 + 0.033, rel=0.005)
    assert s["utilisation"]["client_cpu"] > 0.98


def test_open_loop_constant_rate_below_capacity_has_constant_latency():
    n, rate, rtt = 100, 100.0, 0.01
    cfg = pure_network(
        producer__mode="nonblocking",
        producer__rate=rate,
        producer__arrivals="constant",
        producer__messages=n,
        link__rtt=rtt,
    )
    result = run(cfg)
    np.testing.assert_allclose(result.messages["t_created_s"], np.arange(1, n + 1) / rate, rtol=1e-9)
    assert result.summary["makespan_s"] == pytest.approx(n / rate + rtt, rel=1e-9)
    assert result.summary["latency_ms"]["max"] == pytest.approx(rtt * 1e3, rel=1e-9)


def test_duration_stops_an_endless_producer_without_allocating_for_its_batch():
    cfg = build_config(
        {"producer.mode": "nonblocking", "producer.window": 100, "producer.messages": 10**9, "run.duration": "2s"}
    )
    result = run(cfg)
    s = result.summary
    assert s["makespan_s"] == 2.0
    assert s["sent"] < 100_000  # ~ 2 s * 100 / 33 ms
    assert s["in_flight"] == 100
    assert len(result.records.created) == s["sent"]


def test_the_sequential_scenario_draws_the_pure_network_these_closed_forms_use(engine):
    """The figure's 'pure network' line is N x RTT only if its calibration is this one."""
    from sim.scenarios.sequential import CALIBRATIONS

    assert CALIBRATIONS["pure network"] == PURE_NETWORK
