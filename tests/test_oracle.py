"""The engine against the naive SimPy reference model, message by message."""

from __future__ import annotations

import math

import pytest

from sim.engine import STATUS_NAMES, run_records
from sim.model.system import System
from sim.results import Result
from tests.reference_model import run_reference
from tests.systems import random_config

SEEDS = list(range(12))


def compare(config, loop: str = "windows") -> dict:
    """Assert per-message agreement; return what the system exercised."""
    result = Result(config, run_records(System(config), loop=loop))
    table = result.messages
    reference = run_reference(config)
    assert len(table) == len(reference)
    for row in table.itertuples():
        ref = reference[(row.producer, row.seq)]
        assert row.partition == ref["partition"] + 1
        assert row.status == ref["status"], (row.Index, row.status, ref["status"])
        for ours, theirs in (
            (row.t_intended, ref["intended"]),
            (row.t_created, ref["created"]),
            (row.t_sent, ref["sent"]),
            (row.t_stored, ref["stored"]),
            (row.t_resolved, ref["resolved"]),
        ):
            if math.isnan(theirs):
                assert math.isnan(ours), (row.Index, ours, theirs)
            else:
                assert abs(ours - theirs) <= 1e-9, (row.Index, ours, theirs)
    status = table["status"]
    return {
        "timeouts": int((status == "timed_out").sum()),
        "ghosts": int(table["ghost"].sum()),
        "cut": bool(result.records.cut),
        "partitions": config.broker.partitions,
        "clients": config.clients,
    }


@pytest.mark.parametrize("loop", ["windows", "vectors", "events"])
@pytest.mark.parametrize("seed", SEEDS)
def test_engine_matches_reference(seed, loop):
    compare(random_config(seed), loop)


def test_random_systems_exercise_every_mechanism():
    """The oracle systems are not all easy: some time out, some are cut short."""
    seen = [compare(random_config(seed)) for seed in SEEDS[:8]]
    assert sum(s["timeouts"] > 0 for s in seen) >= 1
    assert sum(s["partitions"] > 1 and s["clients"] > 1 for s in seen) >= 3


def test_status_names_cover_reference():
    assert set(STATUS_NAMES) == {"in_flight", "acked", "timed_out"}
