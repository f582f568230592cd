"""The shipped calibrations against the real broker's measurements they were fitted to.

Each profile in ``sim/profiles`` fitted to a table in ``measurements`` was fitted without
the limiter, polling-limiter and burst rows (``--holdout-modes``): on those rows, out of
sample, it meets every accuracy target (``sim.calibrate.targets``), as its
``VALIDATION*.md`` page says. A change to the model that moves the simulated rows must
keep that, or refit the profile and say so.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim.calibrate import targets, validate
from sim.tomlconfig import read_overrides

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT = ("limit", "limit_poll", "burst")
# profile -> (the table it was fitted to, its validation page)
FITTED = {"nats-loopback": ("nats-loopback.csv", "VALIDATION.md"),
          "nats-loopback-pinned": ("nats-loopback-pinned.csv", "VALIDATION-pinned.md")}


@pytest.mark.parametrize("profile", sorted(FITTED))
def test_a_shipped_profile_meets_every_target_out_of_sample(profile):
    table_name, page = FITTED[profile]
    table = pd.read_csv(ROOT / "measurements" / table_name)
    rows = validate(table, read_overrides(str(ROOT / "sim" / "profiles" / f"{profile}.toml")), workers=None, cache=None)
    held = rows[rows["mode"].isin(HELD_OUT)]
    assert len(held) == 22 and set(held["mode"]) == set(HELD_OUT)
    missed = [f"{t['name']}: {t['shown']} ({t['target']})" for t in targets(held) if not t["holds"]]
    assert not missed, missed
    # and the committed page says what this run gives
    text = (ROOT / "measurements" / page).read_text()
    for t in targets(held):
        assert f"| out of sample | {t['name'].replace('|', chr(92) + '|')} | {t['shown']} |" in text, t["name"]
