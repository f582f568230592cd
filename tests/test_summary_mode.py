"""run.records = summary: the same summary as full records, in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from sim import build_config, run
from sim.config import InputError
from sim.engine import allowed_loops, run_records
from sim.model.system import System
from sim.results import Result
from tests.systems import random_overrides

EXACT = ("sent", "acked", "timed_out", "ghosts", "stored", "in_flight", "dropped", "makespan_s", "simulated_s",
         "busiest_station", "bottleneck")


def compare(full, summary):
    a, b = full.summary, summary.summary
    for key in EXACT:
        assert a[key] == b[key], key
    for key in ("latency_ms", "latency_from_intended_ms"):
        if key not in a:
            continue
        for stat, value in a[key].items():
            if value is None:
                assert b[key][stat] is None
            elif stat in ("max",):
                assert b[key][stat] == pytest.approx(value, rel=1e-12)
            elif stat == "mean":
                assert b[key][stat] == pytest.approx(value, rel=1e-9)
            else:  # percentiles from the histogram: within its bucket width
                assert b[key][stat] == pytest.approx(value, rel=0.006), (key, stat)
    ts_a, ts_b = full.timeseries, summary.timeseries
    for column in ("sent", "acked", "timed_out", "in_flight"):
        np.testing.assert_array_equal(ts_a[column].to_numpy(), ts_b[column].to_numpy(), err_msg=column)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("loop", [None, "vectors", "events"])
def test_summary_mode_gives_the_full_summary(seed, loop, compact_often):
    overrides = random_overrides(seed)
    full_config = build_config(overrides)
    summary_config = full_config.replace({"run.records": "summary"})
    if loop == "vectors" and loop not in allowed_loops(System(full_config)):
        loop = "windows"  # (a TCP window in bytes that may bind is the scalar network's)
    full = Result(full_config, run_records(System(full_config), loop=loop))
    summary = Result(summary_config, run_records(System(summary_config), loop=loop))
    compare(full, summary)


def test_compaction_happens_and_keeps_only_live_messages(compact_often):
    config = build_config({"clients": 3, "producer.mode": "nonblocking", "producer.window": 40,
                           "producer.messages": 3000, "broker.partitions": 2, "run.records": "summary"})
    records = run_records(System(config))
    assert records.tally.sent == 9000 and len(records.created) == 0
    compare(run(config.replace({"run.records": "full"})), Result(config, records))


def test_single_stream_summary(compact_often):
    config = build_config({"producer.messages": 2000, "link.rtt": "1ms", "run.records": "summary"})
    compare(run(config.replace({"run.records": "full"})), run(config))


def test_per_message_table_is_refused_in_summary_mode():
    result = run(build_config({"producer.messages": 10, "run.records": "summary"}))
    assert result.summary["acked"] == 10
    with pytest.raises(InputError, match="run.records"):
        result.messages
