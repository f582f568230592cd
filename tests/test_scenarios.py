"""Each scenario's quick variant reproduces the article's claim, on numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim import scenarios

QUICK: dict = {}


def quick(name: str):
    """The scenario's quick table, computed once per test session."""
    if name not in QUICK:
        QUICK[name] = scenarios.table(name, quick=True, workers=2, progress=False)
    return QUICK[name]


def test_every_scenario_is_registered():
    assert scenarios.names() == ["concurrent", "headline", "partitions", "saturation", "sequential"]
    for name, title in scenarios.describe():
        module = scenarios.get(name)
        assert title and module.__doc__ and "Calibration" in module.__doc__
        assert len(module.points(True)) < len(module.points(False)) or name == "headline"


def test_sequential_takes_n_round_trips():
    t = quick("sequential")
    pure = t[t["calibration"] == "pure network"].set_index(["rtt_ms", "messages"])
    assert pure.loc[(0.1, 10_000), "makespan_s"] == pytest.approx(1.0, rel=0.02)
    assert pure.loc[(10.0, 10_000), "makespan_s"] == pytest.approx(100.0, rel=0.02)
    # exact where theory is exact, and the costs of a real round trip add up too
    np.testing.assert_allclose(t["makespan_s"], t["theory_s"], rtol=1e-9)
    costs = t[t["calibration"] == "with costs"].set_index(["rtt_ms", "messages"])
    assert costs.loc[(0.1, 10_000), "makespan_s"] > 1.5  # 45 us of CPU dominates a 0.1 ms RTT


def test_concurrent_shows_both_regimes():
    t = quick("concurrent").set_index("window")
    # every point within 10% of the bent theory curve
    np.testing.assert_allclose(t["makespan_s"], t["theory_makespan_s"], rtol=0.10)
    # linear regime: C / round trip
    for c in (1, 10, 100):
        assert t.loc[c, "throughput_msgs_per_s"] == pytest.approx(t.loc[c, "window_over_rtt_msgs_per_s"], rel=0.05)
    # capped regime: more in flight adds nothing; the client CPU is the ceiling
    capped = t.loc[[1000, 2000], "throughput_msgs_per_s"]
    assert capped.max() / capped.min() < 1.02
    ceiling = t["ceiling_client_cpu_msgs_per_s"].iloc[0]
    assert 0.7 * ceiling < capped.min() <= ceiling
    assert (t["busiest_station"].loc[[1000, 2000]] == "client_cpu").all()


def test_saturation_reproduces_the_article():
    t = quick("saturation")
    limits = t[t["panel"] == "limit"].set_index(["path", "limit_label"])
    # no limit fails, near and far
    for path in ("near", "far"):
        assert limits.loc[(path, "none"), "timed_out"] > 0.2 * limits.loc[(path, "none"), "sent"]
    # 1000 works near but times out far; 500 and 250 work far
    assert limits.loc[("near", "1000"), "timed_out"] == 0
    assert limits.loc[("far", "1000"), "timed_out"] > 0
    for label in ("500", "250"):
        assert limits.loc[("far", label), "timed_out"] == 0
        assert limits.loc[("far", label), "delivered_fraction"] == 1.0
    # every timeout was stored anyway: a ghost
    np.testing.assert_array_equal(limits["ghosts"], limits["timed_out"])
    # the poll: about 10 L per second once the limit engages, beaten by an event-driven wait
    polls = t[t["panel"] == "poll"]
    sdk = polls[polls["poll_ms"] == 100].set_index("limit")
    ideal = polls[polls["poll_ms"] == 0].set_index("limit")
    for limit in (10, 100):
        assert sdk.loc[limit, "throughput_msgs_per_s"] == pytest.approx(10 * limit, rel=0.1)
        assert sdk.loc[limit, "throughput_msgs_per_s"] == pytest.approx(sdk.loc[limit, "theory_poll_msgs_per_s"], rel=0.05)
        assert ideal.loc[limit, "throughput_msgs_per_s"] > 2 * sdk.loc[limit, "throughput_msgs_per_s"]


def test_partitions_scale_until_the_lock_saturates():
    t = quick("partitions")
    simulated = t[t["kind"] == "simulated"]
    sim = simulated.pivot(index="producers", columns="partitions", values="throughput_msgs_per_s")
    ceiling = simulated.groupby("partitions")["ceiling_partition_msgs_per_s"].first()
    limiter = simulated.groupby("partitions")["limiter_msgs_per_s"].first()  # one producer's, at N = 1
    assert ceiling[1] == pytest.approx(1 / 55e-6) and ceiling[4] == pytest.approx(4 / 55e-6)
    # below its ceiling, each producer runs at its limiter's pace: 500 / (0.1 s + 500 x 35 us)
    assert limiter[1] == pytest.approx(500 / (0.1 + 500 * 35e-6))
    for p, last_linear in ((1, 4), (2, 8), (4, 16)):
        for n in sim.index[sim.index <= last_linear]:
            assert sim.loc[n, p] == pytest.approx(n * limiter[p], rel=0.05), (p, n)
        # past the knee: at the lock's ceiling, never above it
        for n in sim.index[sim.index >= 1.5 * last_linear]:
            assert 0.95 * ceiling[p] <= sim.loc[n, p] <= ceiling[p] * 1.001, (p, n)
    # two and four partitions coincide up to 8 producers, then part
    for n in (1, 2, 4, 6, 8):
        assert sim.loc[n, 4] == pytest.approx(sim.loc[n, 2], rel=0.02)
    assert sim.loc[16, 4] > 1.7 * sim.loc[16, 2]
    # the USL is drawn only where no hard knee is in the data: four partitions
    first = simulated.groupby("partitions").first()
    assert list(first["usl_drawn"]) == [False, False, True]
    assert (first["knee_rss"] * 4 < first["usl_rss"]).tolist() == [True, True, False]
    assert set(t.loc[t["kind"] == "usl", "partitions"]) == {4}
    assert first.loc[[1, 2], "knee_ceiling_msgs_per_s"].div(ceiling[[1, 2]]).between(0.95, 1.0).all()
    # the fits carry standard errors
    assert (first[["usl_lambda_se", "usl_sigma_se", "usl_kappa_se"]] > 0).all().all()


def test_headline_numbers():
    t = quick("headline").set_index("mode")
    assert t.loc["sync", "throughput_msgs_per_s"] == pytest.approx(30, rel=0.10)
    assert t.loc["nonblocking", "throughput_msgs_per_s"] == pytest.approx(22_000, rel=0.10)


def test_figures_are_byte_identical_across_runs(tmp_path):
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        proc = subprocess.run([sys.executable, "-m", "sim", "figures", "--quick", "--out", str(out)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""  # no progress bar in logs
        outs.append(out)
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == sorted(f"{n}.{ext}" for n in scenarios.names() for ext in ("csv", "png"))
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_scenario_command_and_redraw_from_csv(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sim", "scenario", "headline", "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    png = (tmp_path / "headline.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    redraw = tmp_path / "again"
    proc = subprocess.run([sys.executable, "-m", "sim", "scenario", "headline", "--from-csv",
                           str(tmp_path / "headline.csv"), "--out", str(redraw)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (redraw / "headline.png").read_bytes().startswith(b"\x89PNG")


def test_unknown_scenario_is_one_line(capsys):
    from sim.cli import main

    assert main(["scenario", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err and "sequential" in err


def test_committed_figures_exist_for_every_scenario():
    root = Path(__file__).resolve().parent.parent / "figures"
    for name in scenarios.names():
        assert (root / f"{name}.png").exists() and (root / f"{name}.csv").exists()


def test_notebooks_are_committed_without_outputs():
    import json

    notebooks = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
    assert [p.name for p in notebooks] == [
        "01-round-trips.ipynb", "02-saturation.ipynb", "03-partitions.ipynb", "04-what-if.ipynb"
    ]
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code and all(not c["outputs"] and c["execution_count"] is None for c in code), path.name
        assert any("import" in "".join(c["source"]) and "sim" in "".join(c["source"]) for c in code)


def test_no_legend_covers_data():
    """Every legend of every figure lies outside every Axes (data is drawn only
    inside them) and inside the figure (nothing cut off)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for name in scenarios.names():
        module = scenarios.get(name)
        fig = module.plot(quick(name))
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        frame = fig.bbox
        boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert legends, name
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for axes_box in boxes:
                assert not box.overlaps(axes_box), (name, box, axes_box)
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 + 0.5 and frame.y0 <= box.y0 and box.y1 <= frame.y1, (name, box)


def test_saturation_names_the_round_trips():
    fig = scenarios.get("saturation").plot(quick("saturation"))
    labels = [text.get_text() for ax in fig.axes if ax.get_legend() for text in ax.get_legend().get_texts()]
    assert any("near (RTT 33 ms)" in label for label in labels)
    assert any("far (RTT 300 ms, 2% loss)" in label for label in labels)


def test_headline_is_drawn_on_a_linear_axis_from_zero():
    t = quick("headline")
    fig = scenarios.get("headline").plot(t)
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0
    ratio = t.set_index("mode")["throughput_msgs_per_s"]
    assert f"{ratio['nonblocking'] / ratio['sync']:,.0f}x" in ax.get_title(loc="left")
