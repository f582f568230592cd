"""Packaging: one version, ``sim --version``, and an sdist that carries and passes its tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import sim

ROOT = Path(__file__).resolve().parent.parent


def test_version_has_one_source():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'version = {attr = "sim.__version__"}' in text
    assert "\nversion =" not in text.split("[tool.setuptools.dynamic]")[0]


def test_version_flag(capsys):
    from sim.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"sim {sim.__version__}"


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    """The sdist, built from this tree by setuptools' own PEP 517 hook, unpacked."""
    out = tmp_path_factory.mktemp("sdist")
    proc = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.build_sdist({str(out)!r}))"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    name = proc.stdout.strip().splitlines()[-1]
    assert name == f"sim-{sim.__version__}.tar.gz"
    with tarfile.open(out / name) as archive:
        archive.extractall(out, filter="data")
    return out / f"sim-{sim.__version__}"


def test_sdist_carries_the_suite_and_what_it_reads(sdist):
    for path in ("tests/helpers.py", "tests/systems.py", "tests/_backend/test_backend.py",
                 "notebooks/01-round-trips.ipynb", "figures/partitions.csv", "figures/partitions.png",
                 "constraints.txt", "constraints-lowest.txt", "Makefile", "sim/examples/limit-sweep.toml",
                 "measurements/nats-loopback.csv", "sim/profiles/nats-loopback.toml"):
        assert (sdist / path).is_file(), path
    tracked = subprocess.run(["git", "ls-files", "tests", "notebooks", "figures", "measurements"], cwd=ROOT, capture_output=True,
                             text=True)
    if tracked.returncode == 0 and tracked.stdout:  # a git checkout: every tracked test file is in the sdist
        for path in tracked.stdout.split():
            assert (sdist / path).is_file(), path


def test_sdist_runs_its_tests(sdist):
    """Its whole suite collects, and a few fast modules pass, from the unpacked sdist alone."""
    env = {**os.environ, "PYTHONPATH": str(sdist)}
    collect = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", "tests"],
                             cwd=sdist, capture_output=True, text=True, env=env)
    assert collect.returncode == 0, collect.stdout[-3000:] + collect.stderr[-3000:]
    assert " error" not in collect.stdout
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_units.py",
                          "tests/test_results.py", "tests/test_oracle.py", "-x"],
                         cwd=sdist, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-3000:]
    # and it ran the sdist's own package, not this tree's
    where = subprocess.run([sys.executable, "-c", "import sim; print(sim.__file__)"], cwd=sdist, capture_output=True,
                           text=True, env=env)
    assert Path(where.stdout.strip()).resolve().is_relative_to(sdist.resolve())


def test_lowest_constraints_are_the_floors_of_pyproject():
    import re
    import tomllib

    floors = {}
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, floor = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", requirement).groups()
        floors[name.lower()] = floor
    pins = {}
    for line in (ROOT / "constraints-lowest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, pin = line.split("==")
            pins[name.lower()] = pin

    def padded(v):
        parts = [int(p) for p in v.split(".")]
        return parts + [0] * (3 - len(parts))

    assert set(pins) == set(floors)
    for name, floor in floors.items():
        assert padded(pins[name]) == padded(floor), (name, pins[name], floor)


def test_constraints_pin_every_runtime_dependency():
    import tomllib

    names = {line.split("==")[0].strip().lower().replace("_", "-")
             for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line.split("#")[0]}
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name = requirement.split(">")[0].split("<")[0].split("=")[0].strip().lower()
        assert name in names, name
