"""The analytic module: closed forms, bounds, MVA and the USL fit, against the simulator and each other."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import build_config, run
from sim.analytic import (
    EXACT_MVA_LIMIT,
    bounds,
    connection_rate,
    exact_mva_cells,
    fit_knee,
    fit_usl,
    limiter_ceiling,
    mathis_rate,
    mva,
    mva_for,
    mva_multiclass,
    mva_schweitzer,
    round_trip,
    sync_makespan,
    usl,
    window_makespan,
)
from sim.stats import mean_ci95, t975
from tests.helpers import pure_network
from tests.systems import random_overrides


def test_closed_forms_match_the_engine_where_exact():
    cfg = build_config({"producer.messages": 200, "link.rtt": "12ms", "client.send_cpu": "50us"})
    assert run(cfg).summary["makespan_s"] == pytest.approx(sync_makespan(cfg), rel=1e-12)
    nb = pure_network(producer__mode="nonblocking", producer__window=7, producer__messages=100, link__rtt="3ms")
    assert run(nb).summary["makespan_s"] == pytest.approx(window_makespan(nb, 7), rel=1e-12)
    assert round_trip(pure_network(link__rtt="5ms")) == 0.005


def test_ceilings():
    cfg = build_config({"producer.mode": "nonblocking", "producer.concurrent_task_limit": 100})
    assert limiter_ceiling(cfg) == pytest.approx(100 / (0.1 + 100 * 35e-6))
    # 1000 produce() calls take longer than a round trip: the limit never engages
    assert limiter_ceiling(cfg, 1000) == math.inf
    assert mathis_rate(1460, 0.1, 0.01) == pytest.approx(14600 * math.sqrt(1.5) / 0.1)
    lossy = build_config({"link.rtt": "100ms", "link.loss": 0.01, "link.window_bytes": "inf"})
    assert connection_rate(lossy) == pytest.approx(mathis_rate(1460, 0.1, 0.01))
    small = build_config({"link.rtt": "100ms", "link.window_bytes": "64KiB"})
    assert connection_rate(small) == pytest.approx(65536 / 0.1)


def test_bounds_name_the_bottleneck_and_the_knee():
    cfg = build_config({"clients": 4, "broker.service_time": "100us", "producer.mode": "nonblocking",
                        "producer.window": 50})
    b = bounds(cfg)
    assert b.bottleneck == "partition"
    assert b.max_throughput == pytest.approx(10_000)
    assert b.population == 200
    assert b.knee == pytest.approx((b.total_demand + b.delay) / 100e-6)
    assert b.throughput(10) == pytest.approx(10 / (b.total_demand + 0.033))
    assert b.throughput() == pytest.approx(min(200 / (b.total_demand + 0.033), 10_000))
    assert b.response(200) == pytest.approx(max(b.total_demand, 200 * 100e-6 - 0.033))


def replicate_throughput(config, seeds, warmup):
    values = []
    for seed in seeds:
        table = run(config.replace({"run.seed": seed})).messages
        end = config.run.duration
        done = table["t_resolved_s"][(table["status"] == "acked") & (table["t_resolved_s"] >= warmup)]
        values.append(len(done) / (end - warmup))
    return mean_ci95(values)


@pytest.mark.parametrize("window,clients,partitions", [(3, 2, 1), (10, 2, 1), (4, 3, 2)])
def test_simulation_with_exponential_service_agrees_with_mva(window, clients, partitions):
    """A product-form loop: exponential partition service, propagation as the delay."""
    cfg = pure_network(
        producer__mode="nonblocking", producer__window=window, producer__messages=None,
        clients=clients, broker__partitions=partitions, broker__service_time="1ms",
        broker__service_dist="exponential", link__rtt="10ms", run__duration="30s",
        producer__partitioning="key" if partitions > 1 else "round_robin", producer__key_space=100_000,
    )
    expected = mva_for(cfg).total_throughput
    seeds = np.random.SeedSequence(2026).generate_state(12).tolist()
    mean, half = replicate_throughput(cfg, seeds, warmup=2.0)
    assert abs(mean - expected) <= half, (mean, half, expected)
    assert half < 0.02 * expected  # and the interval is tight enough to mean something


def ctmc_throughput(rates, delays, populations):
    """Throughputs of a closed multi-class network of processor-sharing stations and a
    delay, solved by brute force from the global balance equations."""
    stations, classes = rates.shape
    nodes = stations + 1  # the last node is the delay
    states = []
    for placement in itertools.product(*[list(_splits(p, nodes)) for p in populations]):
        # a class is never found at a station it does not visit
        if all(placement[c][k] == 0 or rates[k, c] > 0 for c in range(classes) for k in range(stations)):
            states.append(placement)
    index = {s: i for i, s in enumerate(states)}
    q = np.zeros((len(states), len(states)))
    for s, i in index.items():
        for c in range(classes):
            for k in range(nodes):
                n_ck = s[c][k]
                if n_ck == 0:
                    continue
                if k < stations:
                    total = sum(s[cc][k] for cc in range(classes))
                    rate = rates[k, c] * n_ck / total
                    nxt = k + 1  # stations in series, then the delay
                else:
                    rate = n_ck / delays[c]
                    nxt = 0
                # skip stations this class does not visit
                while nxt < stations and rates[nxt, c] == 0:
                    nxt += 1
                moved = [list(x) for x in s]
                moved[c][k] -= 1
                moved[c][nxt if nxt < nodes else stations] += 1
                j = index[tuple(tuple(x) for x in moved)]
                q[i, j] += rate
    np.fill_diagonal(q, -q.sum(axis=1))
    a = np.vstack([q.T, np.ones(len(states))])
    b = np.zeros(len(states) + 1)
    b[-1] = 1
    pi = np.linalg.lstsq(a, b, rcond=None)[0]
    return [sum(pi[i] * s[c][stations] / delays[c] for s, i in index.items()) for c in range(classes)]


def _splits(total, parts):
    if parts == 1:
        yield (total,)
        return
    for first in range(total + 1):
        for rest in _splits(total - first, parts - 1):
            yield (first,) + rest


def test_multiclass_mva_matches_the_global_balance_solution():
    # two queueing stations in series, two classes with different demands, a delay
    demands = np.array([[0.02, 0.05], [0.04, 0.0]])  # station x class (class 1 skips station 1)
    delays = [0.1, 0.3]
    populations = [3, 2]
    rates = np.where(demands > 0, 1 / np.where(demands > 0, demands, 1), 0)
    exact = ctmc_throughput(rates, delays, populations)
    result = mva_multiclass({"a": demands[0], "b": demands[1]}, delays, populations)
    np.testing.assert_allclose(result.throughput, exact, rtol=1e-9)


def test_single_class_mva_small_cases():
    # one customer: no queueing, X = 1 / (D + Z)
    assert mva({"a": 0.2, "b": 0.3}, 0.5, 1).total_throughput == pytest.approx(1.0)
    # many customers: the bottleneck caps it
    assert mva({"a": 0.2, "b": 0.3}, 0.5, 200).total_throughput == pytest.approx(1 / 0.3, rel=1e-6)
    # identical classes add up to one class
    one = mva({"a": 0.01}, 0.05, 12).total_throughput
    two = mva_multiclass({"a": (0.01, 0.01)}, (0.05, 0.05), (6, 6)).total_throughput
    assert one == pytest.approx(two, rel=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_every_simulated_throughput_respects_the_bounds(seed):
    overrides = random_overrides(seed)
    overrides["producer.rate"] = None  # closed loop: the bounds are for a finite population
    config = build_config(overrides)
    s = run(config).summary
    if not s["acked"]:
        return
    b = bounds(config)
    measured = s["throughput_msgs_per_s"]
    # random service times average to their mean only in the long run: allow the
    # sampling error of a few hundred draws at the partition
    slack = 1.0 if config.broker.service_dist == "deterministic" else 1.0 + 4 / math.sqrt(s["acked"])
    assert measured <= b.throughput() * slack * (1 + 1e-9)


@pytest.mark.parametrize("sigma,kappa", [(0.05, 0.001), (0.2, 0.0), (0.0, 0.02), (0.3, 0.05), (0.0, 0.0)])
def test_usl_fit_recovers_known_parameters(sigma, kappa):
    n = np.arange(1, 11)
    fit = fit_usl(n, usl(n, 1200.0, sigma, kappa))
    assert fit.lam == pytest.approx(1200.0, rel=1e-6)
    assert fit.sigma == pytest.approx(sigma, abs=1e-6)
    assert fit.kappa == pytest.approx(kappa, abs=1e-7)
    if kappa > 0:
        assert fit.peak == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=1e-4)


def test_usl_fit_with_noise_stays_close():
    rng = np.random.default_rng(7)
    n = np.array([1, 2, 3, 4, 6, 8, 12, 16])
    x = usl(n, 500.0, 0.08, 0.004) * (1 + rng.normal(0, 0.01, n.size))
    fit = fit_usl(n, x)
    assert fit.sigma == pytest.approx(0.08, abs=0.02)
    assert fit.kappa == pytest.approx(0.004, abs=0.002)


def test_usl_fit_is_a_least_squares_minimum_on_noisy_curves():
    """No start of an independent solver finds a smaller squared error (the
    hand-written fit this replaced stalled on the kappa = 0 bound)."""
    from scipy.optimize import curve_fit

    rng = np.random.default_rng(11)
    n = np.arange(1, 13, dtype=float)
    for _ in range(60):
        lam, sigma, kappa = rng.uniform(100, 1000), rng.uniform(0, 0.3), rng.choice([0.0, rng.uniform(0, 0.01)])
        x = usl(n, lam, sigma, kappa) * (1 + rng.normal(0, 0.03, n.size))
        fit = fit_usl(n, x)
        assert fit.rss == pytest.approx(float(((fit(n) - x) ** 2).sum()), rel=1e-9)
        for start in ([lam, sigma, kappa], [x[0], 0.0, 0.0], [x[0], 0.5, 0.05]):
            try:
                p, _ = curve_fit(usl, n, x, p0=start, bounds=([0, 0, 0], [np.inf, np.inf, np.inf]), max_nfev=20000)
            except RuntimeError:
                continue
            assert fit.rss <= float(((usl(n, *p) - x) ** 2).sum()) * (1 + 1e-6)


def test_usl_standard_errors_cover_the_truth():
    """Over many noisy curves the fitted sigma lies within 1.96 standard errors
    of the true one about 95% of the time (the errors are honest, not decorative)."""
    rng = np.random.default_rng(5)
    n = np.arange(1, 17, dtype=float)
    inside, trials = 0, 200
    for _ in range(trials):
        x = usl(n, 400.0, 0.05, 0.002) + rng.normal(0, 4.0, n.size)
        fit = fit_usl(n, x)
        inside += abs(fit.sigma - 0.05) <= 1.96 * fit.sigma_se
    assert 0.88 <= inside / trials <= 0.99


def test_knee_fit_recovers_a_hard_knee_the_usl_cannot_follow():
    n = np.arange(1, 17, dtype=float)
    x = np.minimum(4200 * n, 18_000.0)
    knee = fit_knee(n, x)
    assert knee.lam == pytest.approx(4200) and knee.ceiling == pytest.approx(18_000) and knee.rss == pytest.approx(0)
    assert knee.knee == pytest.approx(18_000 / 4200)
    assert fit_usl(n, x).rss > 1e6  # the smooth curve misses the corner
    # and on a straight line the two-line bound is just the line
    line = fit_knee(n, 100 * n)
    assert line.lam == pytest.approx(100) and line.ceiling == pytest.approx(1600)


def test_usl_fit_rejects_too_few_points():
    with pytest.raises(ValueError):
        fit_usl([1, 2], [1.0, 2.0])


def test_t_quantiles():
    assert t975(9) == pytest.approx(2.2622, abs=1e-4)
    assert t975(60) == pytest.approx(2.0003, abs=1e-3)
    assert t975(10_000) == pytest.approx(1.96, abs=1e-3)
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.3027 * 1 / math.sqrt(3), rel=1e-4)


def random_network(rng):
    classes, stations = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    demands = {f"s{j}": tuple(rng.uniform(0, 1, classes) * (rng.random(classes) < 0.8)) for j in range(stations)}
    delays = tuple(rng.uniform(0, 3, classes))
    populations = tuple(int(p) for p in rng.integers(0, 9, classes))
    return demands, delays, populations


def test_schweitzer_mva_is_within_its_documented_error_of_exact_mva():
    """The error documented in mva_schweitzer: at most 10% in throughput on random
    networks; exact for a single customer; the bottleneck's 1 / D_max at large populations."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(200):
        demands, delays, populations = random_network(rng)
        exact = mva_multiclass(demands, delays, populations)
        approx = mva_schweitzer(demands, delays, populations)
        assert approx.method == "schweitzer" and exact.method == "exact"
        if exact.total_throughput > 0:
            worst = max(worst, abs(approx.total_throughput / exact.total_throughput - 1))
        else:
            assert approx.total_throughput == 0
    assert 0.0 < worst <= 0.101
    one = mva_schweitzer({"a": (0.2,), "b": (0.3,)}, (0.5,), (1,))
    assert one.total_throughput == pytest.approx(1.0, rel=1e-9)
    many = mva_schweitzer({"a": (0.2,), "b": (0.3,)}, (0.5,), (2000,))
    assert many.total_throughput == pytest.approx(1 / 0.3, rel=1e-3)


def test_schweitzer_error_on_the_simulators_own_loops():
    worst = 0.0
    for clients, window, partitions, service, rtt in itertools.product(
        (1, 2, 3), (1, 5, 20, 60), (1, 2), ("5us", "100us", "400us"), ("1ms", "33ms")
    ):
        if clients == 3 and window > 20:
            continue
        cfg = build_config({"producer.mode": "nonblocking", "producer.window": window, "clients": clients,
                            "broker.partitions": partitions, "broker.service_time": service, "link.rtt": rtt})
        exact, approx = mva_for(cfg, "exact"), mva_for(cfg, "schweitzer")
        worst = max(worst, abs(approx.total_throughput / exact.total_throughput - 1))
    assert 0.0 < worst <= 0.067


def test_mva_for_switches_to_schweitzer_when_exact_would_be_too_large():
    small = build_config({"producer.mode": "nonblocking", "producer.window": 50, "clients": 2})
    assert mva_for(small).method == "exact"
    big = build_config({"producer.mode": "nonblocking", "producer.window": 500, "clients": 4,
                        "broker.service_time": "100us", "link.rtt": "5ms"})
    stations = 2 * 4 + 3  # client CPUs, read loops, uplink, one partition, downlink
    assert exact_mva_cells(stations, [500] * 4) == stations * 501**4 > EXACT_MVA_LIMIT
    result = mva_for(big)
    assert result.method == "schweitzer"
    # 2,000 messages in flight against a 100 us partition: far past the knee, at the bottleneck's rate
    assert result.total_throughput == pytest.approx(1 / 100e-6, rel=1e-3)
    with pytest.raises(ValueError):
        mva_for(small, "linearizer")
