"""Sweeps: a base config, factors over any dotted keys, replications.

A sweep is the cartesian product of its factors' values, each point run
``replications`` times. Replication r of every point gets the same seed, the
r-th child of ``numpy.random.SeedSequence(seed)`` (common random numbers: the
points differ by their factors, not by luck), so results never depend on how
many workers ran them or in what order.

Runs go to a local process pool by default, or to a Dask distributed cluster
(``backend="dask"``; a ``LocalCluster`` on this machine when no scheduler
address is given). Each run's summary is cached on disk under a hash of its
full config and of the simulator's source as soon as the run finishes, so a
re-run only computes what changed and an interrupted sweep resumes where it
stopped. The cache lives in the user's cache directory (``platformdirs``;
``SIM_CACHE_DIR`` overrides it; ``sim cache clear`` empties it). An entry is
trusted only if it is whole: the right schema, its own config, a checksum
that matches and counts that add up; anything else is dropped with a
:class:`CacheWarning` and computed again.

Before anything runs, the sweep's size is checked: a grid of more than
:data:`MAX_RUNS` runs, or one whose runs would take more than
:data:`MAX_SWEEP_CPU_S` of CPU together, is refused with one line.

The result is one tidy DataFrame: the factor columns, ``replication``,
``seed``, every summary number, and for each number its mean and the
half-width of its 95% confidence interval over the point's replications
(``<metric>_mean``, ``<metric>_ci95``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .config import build_config
from .errors import ConfigWarning, InputError, show

_SOURCE_HASH: str | None = None
CACHE_SCHEMA = 1
MAX_RUNS = 1_000_000  # runs in one sweep
MAX_SWEEP_CPU_S = 7 * 86_400.0  # a week of CPU for a whole sweep


class CacheWarning(UserWarning):
    """A cache entry was damaged or tampered with; it is dropped and its run computed again."""


def default_cache_dir() -> Path:
    """Where runs are cached: ``SIM_CACHE_DIR``, else the user cache directory (``~/.cache/sim/runs`` on Linux)."""
    if os.environ.get("SIM_CACHE_DIR"):
        return Path(os.environ["SIM_CACHE_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("sim", appauthor=False)) / "runs"


@dataclass(frozen=True)
class Sweep:
    """What to run: ``base`` overrides, ``factors`` (key -> values), replications."""

    base: dict[str, Any] = field(default_factory=dict)
    factors: dict[str, list] = field(default_factory=dict)
    replications: int = 1
    seed: int | None = None  # default: the base config's run.seed
    output: str | None = None

    def __post_init__(self):
        for name in ("base", "factors"):
            table = getattr(self, name)
            if not isinstance(table, Mapping):
                raise InputError(f"{name} = {show(table)}: must be a table of dotted keys, e.g. "
                                 f"{{'link.rtt': {'[...]' if name == 'factors' else repr('10ms')}}}")
            for key in table:
                if not isinstance(key, str):
                    raise InputError(f"{name}: key {key!r} must be a dotted string such as 'link.rtt'")
        if not isinstance(self.replications, int) or isinstance(self.replications, bool) or self.replications < 1:
            raise InputError(f"replications = {show(self.replications)}: must be a whole number >= 1")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)
                                      or not 0 <= self.seed < 2**128):
            raise InputError(f"seed = {show(self.seed)}: must be a whole number >= 0 (or left out: run.seed)")
        if self.output is not None and (not isinstance(self.output, (str, os.PathLike)) or not str(self.output)):
            raise InputError(f"output = {show(self.output)}: must be a file name")
        for key, values in self.factors.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise InputError(f"factors.{key} = {show(values)}: must be a non-empty list of values")
        if "run.seed" in self.factors:
            raise InputError("factors.run.seed: seeds come from the sweep's replications; set `seed` instead")
        if self.size > MAX_RUNS:
            raise InputError(f"the sweep has {self.size:,} runs ({' x '.join(str(n) for n in self.shape)}); at most "
                             f"{MAX_RUNS:,}: use fewer factor values or replications")

    @property
    def shape(self) -> list[int]:
        """Values per factor, then replications."""
        return [len(v) for v in self.factors.values()] + [self.replications]

    @property
    def size(self) -> int:
        """How many runs: the grid's points times the replications."""
        return math.prod(self.shape)

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
        from .budget import check

        seeds = self.seeds()
        jobs = []
        with warnings.catch_warnings(record=True) as caught:  # one warning per ignored key, not one per run
            warnings.simplefilter("always", ConfigWarning)
            for point in self.points():
                for seed in seeds:
                    config = build_config({**self.base, **point, "run.seed": seed})
                    if seed == seeds[0]:
                        check(config)  # replications differ only by seed: one check per point
                    jobs.append(config.flat())
        for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, ConfigWarning)):
            warnings.warn(ConfigWarning(message), stacklevel=2)
        return jobs


def check_size(sweep: Sweep) -> None:
    """Refuse a sweep whose runs would take absurdly long together (estimated from a sample of its points)."""
    from .budget import estimate

    points = sweep.points()
    sample = points[:: max(1, len(points) // 20)]
    cpu = [estimate(build_config({**sweep.base, **point})).cpu_s for point in sample]
    total = sum(cpu) / len(cpu) * sweep.size
    if total > MAX_SWEEP_CPU_S:
        from .budget import _span

        raise InputError(f"the sweep's {sweep.size:,} runs would take about {_span(total)} of CPU; at most "
                         f"{_span(MAX_SWEEP_CPU_S)}: use fewer points, replications or messages")


def load(path: str | Path) -> Sweep:
    """A sweep from a TOML file with ``[base]``, ``[factors]``, ``replications``, ``seed``, ``output``."""
    from .tomlconfig import flatten, read_toml

    data = read_toml(str(path))
    known = {"base", "factors", "replications", "seed", "output"}
    for key in data:
        if key not in known:
            raise InputError(f"{path}: unknown entry {key!r}; a sweep file has {', '.join(sorted(known))}")
    for name in ("base", "factors"):
        if not isinstance(data.get(name, {}), dict):
            raise InputError(f"{path}: {name} = {show(data[name])}: must be a table ([{name}] with key = value lines)")
    sweep = Sweep(
        base=flatten(data.get("base", {})),
        factors=flatten(data.get("factors", {})),
        replications=data.get("replications", 1),
        seed=data.get("seed"),
        output=data.get("output"),
    )
    if not sweep.factors:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConfigWarning)
            build_config(sweep.base)  # a bad base is the error to report, not the missing factors
        warnings.warn(ConfigWarning(f"{path}: no [factors]: every run is the base config "
                                    f"({sweep.replications} replication{'s' if sweep.replications > 1 else ''})"),
                      stacklevel=2)
    return sweep


# -- running ---------------------------------------------------------------------


def simulate(flat_config: dict[str, Any]) -> dict[str, Any]:
    """One run, from a full dotted-key config to its flattened summary (worker side)."""
    from .results import flat_summary, run

    with warnings.catch_warnings():  # the parent warned once already when it built the jobs
        warnings.simplefilter("ignore", ConfigWarning)
        config = build_config(flat_config)
    return flat_summary(run(config).summary)


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
    """Run summaries on disk, one JSON file per config hash.

    An entry holds the schema version, its key, the full config and the summary with a SHA-256 of the
    summary; :meth:`get` trusts it only when all of that holds together and the counts add up.
    """

    def __init__(self, directory: str | Path | None):
        self.directory = None if directory is None else Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, flat_config: dict[str, Any]) -> dict[str, Any] | None:
        """The cached summary of this config, or None (nothing cached, or a damaged entry, which is dropped)."""
        if self.directory is None:
            return None
        key = cache_key(flat_config)
        path = self._path(key)
        if not path.exists() and not path.is_symlink():
            return None
        try:
            entry = json.loads(path.read_bytes().decode("utf-8"))
            return _valid_entry(entry, key, flat_config)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            warnings.warn(CacheWarning(f"cache entry {path} is damaged ({' '.join(problem.split())[:120]}); "
                                       "dropped, the run is computed again"), stacklevel=2)
            self._drop(path)
            return None

    def put(self, flat_config: dict[str, Any], result: dict[str, Any]) -> None:
        if self.directory is None:
            return
        key = cache_key(flat_config)
        path = self._path(key)
        self._drop(path) if path.is_dir() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"schema": CACHE_SCHEMA, "key": key, "config": flat_config, "summary": result,
                 "sha256": _checksum(result)}
        text = json.dumps(_jsonable(entry))  # key order kept: it is the column order of the table
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as f:
            f.write(text)
        os.replace(f.name, path)  # atomic: a reader sees the old entry or the whole new one

    @staticmethod
    def _drop(path: Path) -> None:
        import shutil

        try:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
        except OSError:
            pass

    def entries(self) -> list[Path]:
        """The files (or damaged entries) this cache holds: ``XX/<sha256>.json`` under the directory."""
        if self.directory is None or not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("??/*.json") if _ENTRY.fullmatch(p.name)
                      and p.parent.name == p.name[:2])

    def size(self) -> tuple[int, int]:
        """(runs, bytes) held."""
        files = self.entries()
        return len(files), sum(f.stat().st_size for f in files if f.is_file())

    def clear(self) -> int:
        """Delete every cached run (and its stray temporary files); return how many runs there were.

        Only what the cache itself wrote is touched, so pointing it at the wrong directory deletes nothing else.
        """
        entries = self.entries()
        for entry in entries:
            self._drop(entry)
        if self.directory is not None and self.directory.is_dir():
            for sub in self.directory.glob("??"):
                if sub.is_dir() and _HEX2.fullmatch(sub.name):
                    for stray in sub.glob("tmp*.tmp"):
                        self._drop(stray)
                    try:
                        sub.rmdir()  # only when empty
                    except OSError:
                        pass
        return len(entries)


_ENTRY = re.compile(r"[0-9a-f]{64}\.json")
_HEX2 = re.compile(r"[0-9a-f]{2}")


def _jsonable(value: Any) -> Any:
    """Non-finite floats as strings, so the cache file is strict JSON and reads back exactly."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def _canonical(value: Any) -> str:
    return json.dumps(_jsonable(value), sort_keys=True, default=str)


def _checksum(summary: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_jsonable(summary), sort_keys=True).encode()).hexdigest()


_COUNTS = ("sent", "acked", "timed_out", "ghosts", "stored", "in_flight", "dropped")


def _valid_entry(entry: Any, key: str, flat_config: dict[str, Any]) -> dict[str, Any]:
    """The summary of a cache entry, or ValueError saying what is wrong with it."""
    if not isinstance(entry, dict):
        raise ValueError(f"not an entry but {type(entry).__name__}")
    if entry.get("schema") != CACHE_SCHEMA:
        raise ValueError(f"schema {entry.get('schema')!r}, expected {CACHE_SCHEMA}")
    if entry.get("key") != key:
        raise ValueError("it belongs to another config")
    summary = entry.get("summary")
    if not isinstance(summary, dict) or entry.get("sha256") != _checksum(summary):
        raise ValueError("checksum mismatch")
    summary = _restore(summary)
    if _canonical(entry.get("config")) != _canonical(flat_config):
        raise ValueError("it holds another config")
    counts = {name: summary.get(name) for name in _COUNTS}
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in counts.values()):
        raise ValueError("counts are not whole numbers >= 0")
    if counts["acked"] + counts["timed_out"] + counts["in_flight"] + counts["dropped"] != counts["sent"]:
        raise ValueError("counts do not add up to sent")
    return summary


def run_sweep(
    sweep: Sweep,
    workers: int | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    cache: str | Path | bool | None = True,
    progress: bool | None = None,
):
    """Run every job of ``sweep``; return the tidy table (see the module docstring).

    ``cache``: a directory, True for :func:`default_cache_dir`, None or False for no cache. Each run is
    stored the moment it finishes.
    """
    jobs = sweep.jobs()
    store = Cache(default_cache_dir() if cache is True else (cache or None))
    results: list[dict[str, Any] | None] = [store.get(job) for job in jobs]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        def finished(position: int, result: dict[str, Any]) -> None:
            i = todo[position]
            results[i] = result
            store.put(jobs[i], result)

        _execute([jobs[i] for i in todo], workers, backend, scheduler, progress, finished)
    return _table(sweep, results)


def _execute(jobs: list[dict], workers: int | None, backend: str, scheduler: str | None, progress: bool | None,
             on_result: Callable[[int, dict], None] | None = None):
    if backend == "local":
        from .parallel import parallel_map

        return parallel_map(simulate, jobs, workers=workers, progress=progress, desc="sweep", on_result=on_result)
    if backend == "dask":
        return _execute_dask(jobs, workers, scheduler, progress, on_result)
    raise InputError(f"backend = {backend!r}: must be local or dask")


DASK_CONNECT_TIMEOUT_S = 10.0


def _execute_dask(jobs: list[dict], workers: int | None, scheduler: str | None, progress: bool | None,
                  on_result: Callable[[int, dict], None] | None = None):
    # Ctrl-C is held back until the cluster runs (from before the import, so that every thread Dask starts
    # keeps it blocked): its worker processes then ignore it, and only this process handles it, by closing
    # the cluster, instead of every half-started worker printing a traceback
    masked = None if scheduler else _block_interrupts()
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        _restore_interrupts(masked)
        raise InputError("backend = dask needs dask[distributed]: pip install 'sim[dask]'") from None
    from .parallel import default_workers
    from .progress import progress_bar

    with tempfile.TemporaryDirectory(prefix="sim-dask-") as scratch:
        if scheduler:
            cluster = None
            client = _connect(scheduler)
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
        interrupted = False
        try:
            if not scheduler:
                _restore_interrupts(masked)  # a Ctrl-C that came during the start is raised here
            futures = client.map(simulate, jobs, pure=False)
            index = {future.key: i for i, future in enumerate(futures)}
            results: list[Any] = [None] * len(futures)
            bar = progress_bar(len(futures), "sweep", progress)
            for future in as_completed(futures):
                i = index[future.key]
                results[i] = future.result()
                if on_result is not None:
                    on_result(i, results[i])
                bar.update()
            bar.close()
            return results
        except BaseException:
            # interrupted or failed: the cluster's teardown logs tracebacks of its own cancelled tasks, which
            # are not the user's concern; the one line about what happened comes from the caller
            import logging

            logging.disable(logging.CRITICAL)
            interrupted = True
            raise
        finally:
            try:
                client.close()
                if cluster is not None:
                    cluster.close()
            finally:
                if interrupted:
                    import logging

                    logging.disable(logging.NOTSET)


def _block_interrupts():
    """Block Ctrl-C in this thread, and so in every thread and process started from it until
    :func:`_restore_interrupts` (a blocked signal stays pending; the mask survives fork and exec)."""
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _restore_interrupts(previous) -> None:
    """Unblock Ctrl-C here; one that came meanwhile is raised now, as KeyboardInterrupt."""
    import signal

    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _connect(scheduler: str):
    """A client of the Dask scheduler at ``scheduler``, or one InputError line within the connect timeout."""
    import logging

    from dask.distributed import Client

    if not re.fullmatch(r"(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):\d{1,5}", scheduler):
        raise InputError(f"--scheduler = {scheduler}: expected a scheduler address such as tcp://10.0.0.5:8786")
    quiet = [logging.getLogger(name) for name in ("distributed", "distributed.client", "distributed.comm",
                                                   "distributed.core", "tornado", "asyncio")]
    levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.CRITICAL + 1)
    try:
        return Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"--scheduler = {scheduler}: cannot reach a Dask scheduler there within "
                         f"{DASK_CONNECT_TIMEOUT_S:g} s ({reason})") from None
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)


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

