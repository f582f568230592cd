"""Scenarios: one module per curve the project reproduces, found by name.

A scenario is a module in this package that defines

* a docstring: the part of the article it reproduces and its calibration;
* ``TITLE``: one line;
* ``points(quick: bool) -> list[Point]``: its parameter grid (``quick`` is a
  smaller variant for tests and previews);
* ``finish(table) -> table`` (optional): derived and theory columns;
* ``plot(table) -> Figure``: the figure, drawn from the table alone.

Dropping such a module here adds it to ``sim list``, ``sim scenario`` and
``sim figures``. Simulating the grid is separate from plotting, so a figure can
be redrawn from a saved CSV.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import InputError


@dataclass(frozen=True)
class Point:
    """One run of a scenario: the table columns that label it, and its config overrides."""

    labels: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name: str):
    if name not in names():
        raise InputError(f"scenario {name!r} is unknown; there are: {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{name}")


def describe() -> list[tuple[str, str]]:
    """(name, title) of every scenario."""
    return [(name, get(name).TITLE) for name in names()]


def measure(point: Point) -> dict[str, Any]:
    """Run one point: its labels, then every number of the run's summary, flattened."""
    from ..config import build_config
    from ..results import flat_summary, run

    row = flat_summary(run(build_config(point.overrides)).summary)
    row["client_cpu_busy"] = row.get("utilisation_client_cpu")
    return {**point.labels, **row}


def table(name: str, quick: bool = False, workers: int | None = None, progress: bool | None = None):
    """The scenario's tidy table: one row per point (plus its theory columns)."""
    import pandas as pd

    from ..parallel import parallel_map

    module = get(name)
    rows = parallel_map(measure, module.points(quick), workers=workers, progress=progress, desc=name)
    frame = pd.DataFrame(rows)
    finish = getattr(module, "finish", None)
    return finish(frame) if finish else frame


def write(name: str, frame, out: str | Path) -> tuple[Path, Path]:
    """Save the table as ``NAME.csv`` and its figure as ``NAME.png`` in ``out``."""
    from ..plotting import save

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"{name}.csv"
    frame.to_csv(csv, index=False, float_format="%.9g")
    png = save(get(name).plot(frame), out / f"{name}.png")
    return csv, png


def read_table(path: str | Path):
    """A table saved by :func:`write`, ready for ``plot``."""
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the table: {exc}") from None
