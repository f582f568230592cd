"""Sweeps: a base config, factors over any dotted keys, replications.

A sweep is the cartesian product of its factors' values, each point run
``replications`` times. Replication r of every point gets the same seed, the
r-th child of ``numpy.random.SeedSequence(seed)`` (common random numbers: the
points differ by their factors, not by luck), so results never depend on how
many workers ran them or in what order.

Runs go to a local process pool by default, or to a Dask distributed cluster
(``backend="dask"``; a ``LocalCluster`` on this machine when no scheduler
address is given). Each run's summary is cached on disk under a hash of its
full config and of the simulator's source, so a re-run only computes what
changed.

The result is one tidy DataFrame: the factor columns, ``replication``,
``seed``, every summary number, and for each number its mean and the
half-width of its 95% confidence interval over the point's replications
(``<metric>_mean``, ``<metric>_ci95``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .config import InputError, build_config

DEFAULT_CACHE = ".sim-cache"
_SOURCE_HASH: str | None = None


@dataclass(frozen=True)
class Sweep:
    """What to run: ``base`` overrides, ``factors`` (key -> values), replications."""

    base: dict[str, Any] = field(default_factory=dict)
    factors: dict[str, list] = field(default_factory=dict)
    replications: int = 1
    seed: int | None = None  # default: the base config's run.seed
    output: str | None = None

    def __post_init__(self):
        if not isinstance(self.replications, int) or isinstance(self.replications, bool) or self.replications < 1:
            raise InputError(f"replications = {self.replications!r}: must be a whole number >= 1")
        for key, values in self.factors.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise InputError(f"factors.{key} = {values!r}: must be a non-empty list of values")
        if "run.seed" in self.factors:
            raise InputError("factors.run.seed: seeds come from the sweep's replications; set `seed` instead")

    def points(self) -> list[dict[str, Any]]:
        keys = list(self.factors)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.factors[k] for k in keys))]

    def seeds(self) -> list[int]:
        import numpy as np

        root = self.seed if self.seed is not None else build_config(self.base).run.seed
        return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(root).spawn(self.replications)]

    def jobs(self) -> list[dict[str, Any]]:
        """Every run's full dotted-key config, point by point, replication by replication.

        All are validated first, so a bad value stops the sweep before anything runs.
        """
        seeds = self.seeds()
        jobs = []
        for point in self.points():
            for seed in seeds:
                config = build_config({**self.base, **point, "run.seed": seed})
                jobs.append(config.flat())
        return jobs


def load(path: str | Path) -> Sweep:
    """A sweep from a TOML file with ``[base]``, ``[factors]``, ``replications``, ``seed``, ``output``."""
    from .tomlconfig import flatten, read_toml

    data = read_toml(str(path))
    known = {"base", "factors", "replications", "seed", "output"}
    for key in data:
        if key not in known:
            raise InputError(f"{path}: unknown entry {key!r}; a sweep file has {', '.join(sorted(known))}")
    factors = data.get("factors", {})
    return Sweep(
        base=flatten(data.get("base", {})),
        factors=flatten(factors),
        replications=data.get("replications", 1),
        seed=data.get("seed"),
        output=data.get("output"),
    )


# -- running ---------------------------------------------------------------------


def simulate(flat_config: dict[str, Any]) -> dict[str, Any]:
    """One run, from a full dotted-key config to its flattened summary (worker side)."""
    from .results import flat_summary, run

    return flat_summary(run(build_config(flat_config)).summary)


def source_hash() -> str:
    """A hash of the simulator's own source: cached results die with any change to it."""
    global _SOURCE_HASH
    if _SOURCE_HASH is None:
        digest = hashlib.sha256()
        root = Path(__file__).resolve().parent
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
        _SOURCE_HASH = digest.hexdigest()[:16]
    return _SOURCE_HASH


def cache_key(flat_config: dict[str, Any]) -> str:
    text = json.dumps(flat_config, sort_keys=True, default=str)
    return hashlib.sha256(f"{source_hash()}\n{text}".encode()).hexdigest()


class Cache:
    """Run summaries on disk, one JSON file per config hash."""

    def __init__(self, directory: str | Path | None):
        self.directory = None if directory is None else Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, flat_config: dict[str, Any]) -> dict[str, Any] | None:
        if self.directory is None:
            return None
        try:
            return json.loads(self._path(cache_key(flat_config)).read_text())
        except (OSError, ValueError):
            return None

    def put(self, flat_config: dict[str, Any], result: dict[str, Any]) -> None:
        if self.directory is None:
            return
        path = self._path(cache_key(flat_config))
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
            json.dump(result, handle)
        os.replace(handle.name, path)


def run_sweep(
    sweep: Sweep,
    workers: int | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    cache: str | Path | None = DEFAULT_CACHE,
    progress: bool | None = None,
):
    """Run every job of ``sweep``; return the tidy table (see the module docstring)."""
    jobs = sweep.jobs()
    store = Cache(cache)
    results: list[dict[str, Any] | None] = [store.get(job) for job in jobs]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        fresh = _execute([jobs[i] for i in todo], workers, backend, scheduler, progress)
        for i, result in zip(todo, fresh):
            results[i] = result
            store.put(jobs[i], result)
    return _table(sweep, results)


def _execute(jobs: list[dict], workers: int | None, backend: str, scheduler: str | None, progress: bool | None):
    if backend == "local":
        from .parallel import parallel_map

        return parallel_map(simulate, jobs, workers=workers, progress=progress, desc="sweep")
    if backend == "dask":
        return _execute_dask(jobs, workers, scheduler, progress)
    raise InputError(f"backend = {backend!r}: must be local or dask")


def _execute_dask(jobs: list[dict], workers: int | None, scheduler: str | None, progress: bool | None):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError("backend = dask needs dask[distributed]: pip install 'sim[dask]'") from None
    from tqdm import tqdm

    from .parallel import default_workers

    with tempfile.TemporaryDirectory(prefix="sim-dask-") as scratch:
        if scheduler:
            cluster = None
            client = Client(scheduler)
        else:
            cluster = LocalCluster(
                n_workers=workers or default_workers(),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address=None,
                local_directory=scratch,
                silence_logs=40,
            )
            client = Client(cluster)
        try:
            futures = client.map(simulate, jobs, pure=False)
            bar = tqdm(total=len(futures), desc="sweep", disable=None if progress is None else not progress, leave=False)
            for _ in as_completed(futures):
                bar.update()
            bar.close()
            return client.gather(futures)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _table(sweep: Sweep, results: Sequence[dict[str, Any]]):
    import pandas as pd

    from .stats import mean_ci95

    seeds = sweep.seeds()
    rows = []
    i = 0
    for point_index, point in enumerate(sweep.points()):
        for replication, seed in enumerate(seeds):
            rows.append({**point, "point": point_index, "replication": replication, "seed": seed, **results[i]})
            i += 1
    table = pd.DataFrame(rows)
    metrics = [c for c in table.columns if c not in set(sweep.factors) | {"point", "replication", "seed"}
               and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]
    stats = {}
    for metric in metrics:
        grouped = table.groupby("point")[metric]
        pairs = grouped.apply(lambda v: mean_ci95([x for x in v if x == x]))
        stats[f"{metric}_mean"] = table["point"].map(pairs.map(lambda p: p[0]))
        stats[f"{metric}_ci95"] = table["point"].map(pairs.map(lambda p: p[1]))
    return pd.concat([table, pd.DataFrame(stats)], axis=1)


def summarize(table, factors: Sequence[str]):
    """One row per grid point: its factors and every ``_mean`` / ``_ci95`` column."""
    columns = [c for c in table.columns if c.endswith(("_mean", "_ci95"))]
    return table.groupby("point", sort=True)[list(factors) + columns].first().reset_index(drop=True)

