"""The plot helpers draw what their data says, on the Axes they are given or pyplot's current one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sim import build_config, run
from sim.plotting import plot_latency_percentiles, plot_sweep, plot_timeseries


@pytest.fixture(scope="module")
def result():
    return run(build_config({"producer.mode": "nonblocking", "producer.window": 200, "producer.messages": 5000,
                             "broker.service_dist": "exponential", "broker.service_time": "100us"}))


def test_latency_percentiles_hdr_style(result):
    ax = Figure().subplots()
    assert plot_latency_percentiles(result, ax=ax, label="run") is ax
    (line,) = ax.get_lines()
    x, y = line.get_xdata(), line.get_ydata()
    # x = 1 / (1 - q): the point at 1 / (1 - 0.99) is the nearest-rank p99 of the summary
    i = np.argmin(np.abs(x - 100.0))
    assert x[i] == pytest.approx(100.0)
    assert y[i] == pytest.approx(result.summary["latency_ms"]["p99"])
    assert np.all(np.diff(y) >= 0) and ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:4] == ["0%", "90%", "99%", "99.9%"]
    # from an array of seconds too, unacked (NaN) ignored
    ax2 = plot_latency_percentiles(np.array([0.002, np.nan, 0.001, 0.003, 0.004]), ax=Figure().subplots())
    assert list(ax2.get_lines()[0].get_ydata()) == pytest.approx([1.0, 2.0, 3.0])


def test_timeseries_draws_throughput_and_in_flight(result):
    ax = plot_timeseries(result, ax=Figure().subplots())
    ts = result.timeseries
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), ts["throughput_msgs_per_s"])
    np.testing.assert_array_equal(ax.right_ax.get_lines()[0].get_ydata(), ts["in_flight"])


def test_sweep_plot_uses_the_confidence_columns_or_computes_them():
    table = pd.DataFrame({"clients": [1, 1, 1, 2, 2, 2], "limit": [5] * 6,
                          "throughput_msgs_per_s": [10.0, 12.0, 14.0, 20.0, 22.0, 24.0]})
    ax = plot_sweep(table, "clients", ax=Figure().subplots())
    line = ax.get_lines()[0]
    assert list(line.get_ydata()) == pytest.approx([12.0, 22.0])
    # error bars: mean +/- t(0.975, 2) x s / sqrt(3) = 4.3027 x 2 / sqrt(3)
    bars = ax.collections[0].get_segments()
    half = 4.3027 * 2 / np.sqrt(3)
    assert [seg[1][1] - seg[0][1] for seg in bars] == pytest.approx([2 * half] * 2, rel=1e-4)
    with pytest.raises(ValueError, match="nope"):
        plot_sweep(table, "nope", ax=Figure().subplots())


def test_helpers_default_to_pyplots_current_axes(result):
    import matplotlib

    matplotlib.use("Agg", force=True)  # the test's own choice, outside the package
    import matplotlib.pyplot as plt

    try:
        ax = plot_timeseries(result)
        assert ax is plt.gca() or ax.figure is plt.gcf()
    finally:
        plt.close("all")


def test_a_million_latencies_are_thinned_but_keep_the_named_percentiles():
    from sim.results import latency_stats_ms

    latency = np.random.default_rng(1).exponential(0.01, 1_000_000)
    line = plot_latency_percentiles(latency, ax=Figure().subplots()).get_lines()[0]
    x, y = line.get_xdata(), line.get_ydata()
    assert 1000 < x.size <= 5000
    stats = latency_stats_ms(latency)
    for name, q in (("p99", 0.99), ("p999", 0.999), ("p9999", 0.9999)):
        i = np.argmin(np.abs(x - 1 / (1 - q)))
        assert x[i] == pytest.approx(1 / (1 - q)) and y[i] == pytest.approx(stats[name]), name
