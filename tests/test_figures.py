"""`sim figures` reproduces every committed file in figures/, byte for byte.

The full set is regenerated into a temporary folder (about 13 s of CPU on two
workers) and compared with the committed one: tables always, images when the
packages that draw them are the ones pinned in constraints.txt (another
matplotlib, FreeType or Pillow may move a pixel, and a lowest-versions run is
not expected to match those bytes).
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from sim import scenarios

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "figures"
# what the PNG bytes depend on
DRAWING = ("matplotlib", "pillow", "kiwisolver", "numpy", "fonttools")


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, value = line.split("==")
            out[name.strip().lower().replace("_", "-")] = value.strip()
    return out


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("figures")
    proc = subprocess.run([sys.executable, "-m", "sim", "figures", "--out", str(out)], capture_output=True, text=True,
                          cwd=tmp_path_factory.getbasetemp())
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_same_files(regenerated):
    expected = sorted(f"{n}.{ext}" for n in scenarios.names() for ext in ("csv", "png"))
    assert sorted(p.name for p in regenerated.iterdir()) == expected
    # (figures/validation.png is `sim validate`'s, drawn from a user's measurements, not `sim figures`')
    assert sorted(p.name for p in COMMITTED.iterdir() if p.is_file() and p.name != "validation.png") == expected


def test_tables_are_byte_identical(regenerated):
    for name in scenarios.names():
        ours, theirs = (regenerated / f"{name}.csv").read_bytes(), (COMMITTED / f"{name}.csv").read_bytes()
        assert ours == theirs, f"figures/{name}.csv is stale: run `make figures` and commit it"


def test_images_are_byte_identical_under_the_pinned_versions(regenerated):
    pinned = pins()
    differ = {name: (version(name), pinned.get(name)) for name in DRAWING if version(name) != pinned.get(name)}
    if differ:
        pytest.skip(f"not the pinned drawing packages (installed, pinned): {differ}")
    for name in scenarios.names():
        ours, theirs = (regenerated / f"{name}.png").read_bytes(), (COMMITTED / f"{name}.png").read_bytes()
        assert ours == theirs, f"figures/{name}.png differs: run `make figures` and commit it"
