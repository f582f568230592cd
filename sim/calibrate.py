"""Fit the model's costs to measurements of a real broker, and check the fit.

``calibrate(table)`` fits chosen keys (by default every cost key: the client's
CPU per produce and per ack, the broker's read loop and partition stage) by
least squares on log throughput and log p50, with the simulator in the loop:
each evaluation simulates every measured point (runs go through the sweep
machinery's process pool and cache), and ``scipy.optimize.least_squares``
moves the keys, in log space and within bounds. What the rows give directly
(RTT, producers, partitions, modes, messages, ack_wait, payload) is taken from
them, never fitted (:func:`sim.measure.row_overrides`).

Repeats of a point are pooled (medians) before fitting. Uncertainties come
from the Jacobian at the optimum (1 sigma, relative, in log space); keys that
move the simulated points only together (a near-null direction of the
Jacobian) or not at all are reported as not told apart by the data. A
fraction of the points can be held out of the fit and predicted afterwards.

``validate(table, overrides)`` simulates every row under a calibration and sets
real against simulated throughput, p50, p99 and timeouts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .config import InputError, build_config, known_keys
from .measure.schema import PATH_DEFAULTS, row_overrides

COST_KEYS = ("client.send_cpu", "client.ack_cpu", "broker.read_cpu", "broker.service_time")
BOUNDS_S = (1e-7, 5e-4)  # 0.1 us to 500 us per message: a loopback broker and a Python client stay well inside
BOUNDS_CV = (1e-3, 5.0)  # a coefficient of variation: from nearly constant to very heavy-tailed
BOUNDS_GROWTH = (1e-4, 0.5)  # CPU per second slept (client.wakeup_growth): from nearly none to half the sleep
_FLOOR = 1e-6  # stands for zero throughput or latency inside a log
_STEP = 0.02  # forward-difference step in log space (2%)
# Residuals are log errors; beyond ~20% (0.2) a point counts linearly, not quadratically, so a few
# points the model cannot reproduce (a busy event loop, a preempted run) do not drag every key.
LOSS_SCALE = 0.2
_POINT_KEYS = ("mode", "window", "limit", "producers", "partitions", "messages", "ack_wait_s", "payload_bytes")
# the setting a point was measured in (sim.measure.schema maps them): the same for its repeats,
# or (the proxy's measured added RTT) a median over them
_SETTING_KEYS = ("host_cores", "colocated", "broker_cores", "added_rtt_target_ms")
_SETTING_MEASURED = ("added_rtt_ms",)
# what a fit compares, per point: the measured column and the summary key
TARGETS = {"throughput": ("throughput_msgs_per_s", "throughput_msgs_per_s"),
           "p50": ("p50_ms", "latency_p50_ms"), "p99": ("p99_ms", "latency_p99_ms"),
           # the producers' CPU per message: it tells the client's costs from the broker's, which
           # throughput and latency alone can trade (rows without the column compare nothing)
           "client_cpu": ("client_cpu_us_per_msg", "client_cpu_us_per_msg")}
DEFAULT_TARGETS = ("throughput", "p50", "p99")


def fit_bounds(key: str) -> tuple[float, float, str]:
    """``(low, high, kind)`` of a key the fit may move, kind "duration", "cv" or "growth".

    Any cost (a duration: a CPU time, a service or wake-up time, a jitter) can be fitted,
    within 0.1 us .. 500 us (a jitter or a wake-up's cap up to 5 ms), any coefficient of variation (a key
    ending in ``cv``) within 0.001 .. 5, and a wake-up's growth (CPU per second slept) within 0.0001 .. 0.5. What a row measures itself (RTT, counts, modes) is not a cost."""
    from .config import describe_keys
    from .units import DURATION_HELP

    allowed = {row["key"]: row["allowed"] for row in describe_keys()}
    if key not in allowed:
        raise InputError(f"--fit = {key}: not a config key (`sim list keys` shows them)")
    if key.endswith("cv"):
        return (*BOUNDS_CV, "cv")
    if key.endswith("growth"):
        return (*BOUNDS_GROWTH, "growth")
    if allowed[key].startswith(DURATION_HELP) and key not in _MEASURED_KEYS:
        return (*_WIDER.get(key, BOUNDS_S), "duration")
    raise InputError(f"--fit = {key}: not a cost the fit can move; allowed: a duration key (a CPU, service, "
                     f"wake-up or jitter time, e.g. {', '.join(COST_KEYS)}), a key ending in cv or "
                     "client.wakeup_growth")


# costs that may reach past 500 us: a path's delay spread grows with its delay (a proxy adding 20 ms
# spreads by ~0.6 ms)
_WIDER = {"link.jitter": (1e-7, 5e-3), "client.wakeup_max": (1e-6, 5e-3),
          "client.host_slice": (1e-5, 2e-2),  # a scheduler's slice: 0.75-24 ms in Linux
          "client.gc_pause": (1e-4, 0.1)}  # a full garbage collection: 7-14 ms measured for nats-py
# durations every row sets from what it measured, or that are not costs
_MEASURED_KEYS = {"link.rtt", "producer.ack_wait", "producer.limiter_poll", "producer.start_jitter", "run.duration",
                  "run.bin"}


def check_keys(keys: Sequence[str]) -> list[str]:
    keys = [k.strip() for k in keys if k.strip()]
    if not keys:
        raise InputError("--fit: name at least one key")
    for key in keys:
        fit_bounds(key)
    if len(set(keys)) != len(keys):
        raise InputError(f"--fit = {','.join(keys)}: a key is named twice")
    return keys


def check_targets(targets: Sequence[str]) -> list[str]:
    targets = [t.strip() for t in targets if t.strip()]
    for target in targets:
        if target not in TARGETS:
            raise InputError(f"--targets = {target}: allowed: {', '.join(TARGETS)}")
    if not targets or len(set(targets)) != len(targets):
        raise InputError(f"--targets = {','.join(targets)}: name each of {', '.join(TARGETS)} at most once, at least one")
    return targets


def pool_points(table):
    """One row per measured point: medians over its repeats. What describes the setting a
    point ran in (its host's cores, a co-located broker, the proxy's added RTT) is kept, so
    that a pooled point is simulated as its rows are."""
    frame = table.copy()
    rtt_group = "added_rtt_target_ms" if "added_rtt_target_ms" in frame.columns else "rtt_ms"
    frame["_rtt_group"] = frame[rtt_group].round(3)
    keys = [k for k in (*_POINT_KEYS, *_SETTING_KEYS) if k in frame.columns] + ["_rtt_group"]
    numeric = ["rtt_ms", "throughput_msgs_per_s", "p50_ms", "p99_ms", "timeouts"]
    numeric += [k for k in (*_SETTING_MEASURED, "client_cpu_us_per_msg") if k in frame.columns]
    pooled = frame.groupby(keys, dropna=False, sort=False)[numeric].median().reset_index()
    pooled["repeats"] = frame.groupby(keys, dropna=False, sort=False).size().to_numpy()
    return pooled.drop(columns="_rtt_group")


def row_config(row: Mapping[str, Any], overrides: Mapping[str, Any], where: str = "row") -> dict[str, Any]:
    """The full dotted-key config that simulates one row under a calibration's ``overrides``."""
    flat = {**PATH_DEFAULTS, **overrides, **row_overrides(row, where)}
    return build_config(flat).flat()


def simulate_configs(configs: list[dict], workers: int | None = None, cache: str | None = ".sim-cache",
                     progress: bool | None = False) -> list[dict]:
    """Summaries of full configs: the sweep machinery's worker function, process pool and cache."""
    from .parallel import parallel_map
    from .sweep import Cache, simulate

    store = Cache(cache)
    results = [store.get(c) for c in configs]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        fresh = parallel_map(simulate, [configs[i] for i in todo], workers=workers, progress=progress,
                             desc="simulate")
        for i, summary in zip(todo, fresh):
            results[i] = summary
            store.put(configs[i], summary)
    return results


def _log(value: float) -> float:
    return math.log(max(float(value), _FLOOR)) if value == value else math.log(_FLOOR)


@dataclass
class Fit:
    """What ``calibrate`` found."""

    keys: list[str]
    values: dict[str, float]
    rel_uncertainty: dict[str, float]  # 1 sigma, relative
    start: dict[str, float]
    undetermined: list[str]  # keys the data do not move at all
    tangled: list[list[str]]  # groups of keys the data cannot tell apart
    train: Any  # pooled points used in the fit, with sim_ columns
    holdout: Any  # pooled points held out, with sim_ columns (may be empty)
    rms_log_error: float
    evaluations: int
    base: dict[str, Any] = field(default_factory=dict)
    excluded: int = 0  # overload points (timeouts), validated but not fitted
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    holdout_modes: list[str] = field(default_factory=list)

    def overrides(self) -> dict[str, Any]:
        return {**self.base, **self.values}


def calibrate(table, keys: Sequence[str] = COST_KEYS, holdout: float = 0.3, seed: int = 1,
              base: Mapping[str, Any] | None = None, workers: int | None = None, cache: str | None = ".sim-cache",
              progress: bool | None = None, max_evaluations: int = 25, from_data: bool = True,
              tolerance: float = 1e-4, targets: Sequence[str] = DEFAULT_TARGETS,
              holdout_modes: Sequence[str] = ()) -> Fit:
    """Fit ``keys`` to the measured ``table`` (see the module docstring).

    ``targets``: what each point compares (log throughput, log p50, log p99, and with
    ``client_cpu`` the log of the producers' CPU per message).
    ``holdout_modes``: modes kept out of the fit entirely, to be predicted: an
    out-of-sample check on kinds of points the fit has not seen (``holdout`` then
    draws its fraction from the other modes)."""
    from scipy.optimize import least_squares

    keys = check_keys(list(keys))
    targets = check_targets(list(targets))
    if not 0 <= holdout < 1:
        raise InputError(f"--holdout = {holdout:g}: must be >= 0 and < 1")
    base = dict(base or {})
    points = pool_points(table)
    for i, row in points.iterrows():
        row_config(row, base, where=f"point {i}")  # bad rows fail before anything runs
    unknown = sorted(set(holdout_modes) - set(points["mode"]))
    if unknown:
        raise InputError(f"--holdout-modes = {','.join(unknown)}: no such mode in the table; it has "
                         f"{', '.join(dict.fromkeys(points['mode']))}")
    # overload points (any timeout, or nothing acked) have no p50 to fit and a throughput set by the
    # deadline; they are validated, not fitted
    overloaded = (points["timeouts"] > 0) | ~(points["throughput_msgs_per_s"] > 0) | ~(points["p50_ms"] > 0)
    excluded = points[overloaded].reset_index(drop=True)
    points = points[~overloaded].reset_index(drop=True)
    out_of_sample = points["mode"].isin(list(holdout_modes)).to_numpy()
    if out_of_sample.all():
        raise InputError("no point to fit: every point timed out, acked nothing or is of a held-out mode")
    others = points[~out_of_sample]
    held_index = sorted(list(points.index[out_of_sample]) + [int(others.index[i]) for i in
                                                             _holdout(others.reset_index(drop=True), holdout, seed)])
    held = points.iloc[held_index].reset_index(drop=True)
    train = points.drop(index=points.index[held_index]).reset_index(drop=True)

    start_config = build_config({**PATH_DEFAULTS, **base})
    bounds = {k: fit_bounds(k) for k in keys}
    defaults = {k: float(_get(start_config, k) or 0.0) for k in {*COST_KEYS, *keys}}  # (none: off, 0)
    start = {k: v for k, v in (data_start(table, keys, defaults) if from_data else defaults).items() if k in keys}
    for k in keys:  # a key off by default (0) starts inside its range
        lo_k, hi_k, _ = bounds[k]
        if not start[k] > 0:
            start[k] = math.sqrt(lo_k * hi_k) if bounds[k][2] in ("cv", "growth") else 10e-6
        start[k] = min(max(start[k], lo_k), hi_k)
    lo = np.log([bounds[k][0] for k in keys])
    hi = np.log([bounds[k][1] for k in keys])
    x0 = np.log([start[k] for k in keys])
    memo: dict[tuple, np.ndarray] = {}
    columns = [TARGETS[t] for t in targets]
    for target, (column, _) in zip(targets, columns):
        if column not in train.columns or not (train[column] > 0).any():
            raise InputError(f"--targets = {target}: the table has no {column} to fit it to")
    real = np.array([[_log(r[column]) for column, _ in columns] for _, r in train.iterrows()]).ravel()
    # a point without a measured value (an older table's NaN) compares nothing there
    known = np.array([[r[column] > 0 for column, _ in columns] for _, r in train.iterrows()]).ravel()

    least_wakeup = start_config.client.wakeup_cpu

    def theta(x) -> dict[str, float]:
        out = {k: float(math.exp(v)) for k, v in zip(keys, x)}
        if "client.wakeup_max" in out:  # a cap is never below the wake-up after no sleep
            out["client.wakeup_max"] = max(out["client.wakeup_max"], out.get("client.wakeup_cpu", least_wakeup))
        return out

    def evaluate(xs: list[np.ndarray]) -> list[np.ndarray]:
        wanted = [tuple(np.round(x, 12)) for x in xs]
        missing = [w for w in dict.fromkeys(wanted) if w not in memo]
        configs = [row_config(r, {**base, **theta(w)}) for w in missing for _, r in train.iterrows()]
        summaries = simulate_configs(configs, workers=workers, cache=cache, progress=progress) if configs else []
        n = len(train)
        for j, w in enumerate(missing):
            sims = summaries[j * n:(j + 1) * n]
            memo[w] = np.where(known, np.array([[_log(s[key]) for _, key in columns] for s in sims]).ravel() - real, 0.0)
        return [memo[w] for w in wanted]

    def residuals(x):
        return evaluate([x])[0]

    def jacobian(x):
        steps = np.where(x + _STEP <= hi, _STEP, -_STEP)
        shifted = [x + np.eye(len(x))[i] * steps[i] for i in range(len(x))]
        r0, *rs = evaluate([x] + shifted)
        return np.column_stack([(r - r0) / step for r, step in zip(rs, steps)])

    x0 = _search(x0, lambda xs: [_robust_cost(r) for r in evaluate(xs)], lo, hi)
    solution = least_squares(residuals, x0, jac=jacobian, bounds=(lo, hi), method="trf", x_scale=1.0,
                             loss="soft_l1", f_scale=LOSS_SCALE,
                             xtol=tolerance, ftol=tolerance ** 2, gtol=1e-10, max_nfev=max_evaluations)
    x = solution.x
    values = theta(x)
    jac = jacobian(x)
    r = residuals(x)
    rel, undetermined, tangled = _uncertainty(keys, jac, r)
    fit = Fit(keys=keys, values=values, rel_uncertainty=rel, start=start, undetermined=undetermined,
              tangled=tangled, train=train, holdout=held, rms_log_error=float(np.sqrt(np.mean(r[known] ** 2))),
              evaluations=len(memo), base=base, excluded=len(excluded), targets=targets,
              holdout_modes=list(holdout_modes))
    fit.train = _with_sims(train, fit.overrides(), workers, cache)
    fit.holdout = _with_sims(held, fit.overrides(), workers, cache)
    return fit


def _robust_cost(r: np.ndarray) -> float:
    """The soft-L1 cost least_squares minimises: quadratic for small residuals, linear for large."""
    z = (r / LOSS_SCALE) ** 2
    return float(LOSS_SCALE ** 2 * np.sum(2 * (np.sqrt(1 + z) - 1)))


def _holdout(points, fraction: float, seed: int) -> list[int]:
    """Which points to hold out: ``fraction`` of each mode's points, drawn with ``seed``.

    Stratified by mode, and every mode keeps at least one point in the fit, so that a
    held-out check never asks the fit about a kind of point it has not seen.
    """
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for _, group in points.groupby("mode", sort=False):
        index = list(group.index)
        n = min(int(round(fraction * len(index))), len(index) - 1)
        held += [index[i] for i in rng.permutation(len(index))[:n]]
    return sorted(held)


def _search(x, cost, lo, hi, passes: int = 4) -> np.ndarray:
    """A coarse search before the local fit: move one key at a time by a factor of 1/4 .. 4.

    A cost key only matters once its station is busy, so the fit's surface has flat regions
    where a local method would stall; from the best of these moves the local fit starts in
    the right basin. Each pass evaluates every move at once (in parallel), then takes the best.
    """
    steps = np.log([0.25, 0.5, 2.0, 4.0])
    best = cost([x])[0]
    for _ in range(passes):
        moves = [np.clip(x + np.eye(len(x))[i] * step, lo, hi) for i in range(len(x)) for step in steps]
        costs = cost(moves)
        j = int(np.argmin(costs))
        if costs[j] >= best * (1 - 1e-6):
            break
        x, best = moves[j], costs[j]
    return x


def data_start(table, keys: Sequence[str], defaults: Mapping[str, float]) -> dict[str, float]:
    """Start values from what the rows measured directly: CPU time per message.

    The producers' CPU per message, where the client is the bottleneck (unbounded and burst
    rows), is shared between ``client.send_cpu`` and ``client.ack_cpu`` in the defaults'
    proportion; the server's CPU per message likewise between ``broker.read_cpu`` and
    ``broker.service_time``. A key with no such data starts at its default.
    """
    start = dict(defaults)
    pairs = ((("client.send_cpu", "client.ack_cpu"), "client_cpu_us_per_msg", ("unbounded", "burst")),
             (("broker.read_cpu", "broker.service_time"), "server_cpu_us_per_msg", None))
    for pair, column, modes in pairs:
        if column not in table.columns:
            continue
        rows = table if modes is None else table[table["mode"].isin(modes)]
        rows = rows[rows["messages"] >= 1000] if "messages" in rows.columns else rows
        values = rows[column].to_numpy(float)
        values = values[np.isfinite(values) & (values > 0)]
        if not values.size:
            continue
        total = float(np.median(values)) * 1e-6
        weight = sum(defaults[k] for k in pair)
        for key in pair:
            if key in keys and weight > 0:
                start[key] = total * defaults[key] / weight
    return start


def _get(config, key: str):
    group, _, name = key.partition(".")
    return getattr(getattr(config, group), name) if name else getattr(config, group)


def _uncertainty(keys, jac, r):
    """Relative 1-sigma uncertainties, keys the data do not move, groups they cannot tell apart."""
    m, n = jac.shape
    scale = np.linalg.norm(jac, axis=0)
    biggest = scale.max() if n else 0.0
    undetermined = [k for k, s in zip(keys, scale) if s <= 1e-6 * max(biggest, 1e-12)]
    dof = max(1, m - n)
    s2 = float(r @ r) / dof
    _, sv, vt = np.linalg.svd(jac, full_matrices=False)
    cov = (vt.T / np.maximum(sv, 1e-300) ** 2) @ vt * max(s2, 1e-12)
    rel = {}
    for i, k in enumerate(keys):
        sigma = math.sqrt(max(cov[i, i], 0.0))
        rel[k] = math.inf if k in undetermined or sigma > 30 else float(math.expm1(sigma))
    tangled: list[list[str]] = []
    if n > 1 and sv.size and sv[0] > 0:
        for value, vector in zip(sv, vt):
            if value < 1e-3 * sv[0]:
                group = [k for k, c in zip(keys, vector) if abs(c) > 0.2 and k not in undetermined]
                if len(group) > 1 and group not in tangled:
                    tangled.append(group)
        sd = np.sqrt(np.maximum(np.diag(cov), 1e-300))
        corr = cov / np.outer(sd, sd)
        for i in range(n):
            for j in range(i + 1, n):
                pair = [keys[i], keys[j]]
                if abs(corr[i, j]) > 0.95 and not any(set(pair) <= set(g) for g in tangled) \
                        and keys[i] not in undetermined and keys[j] not in undetermined:
                    tangled.append(pair)
    return rel, undetermined, tangled


def _with_sims(rows, overrides, workers, cache):
    rows = rows.copy()
    if rows.empty:
        for c in ("sim_throughput_msgs_per_s", "sim_p50_ms", "sim_p99_ms", "sim_timeouts", "sim_client_cpu_us_per_msg"):
            rows[c] = []
        return rows
    configs = [row_config(r, overrides, where=f"row {i}") for i, r in rows.iterrows()]
    sims = simulate_configs(configs, workers=workers, cache=cache)
    rows["sim_throughput_msgs_per_s"] = [s["throughput_msgs_per_s"] for s in sims]
    rows["sim_p50_ms"] = [s["latency_p50_ms"] for s in sims]
    rows["sim_p99_ms"] = [s["latency_p99_ms"] for s in sims]
    rows["sim_timeouts"] = [int(s["timed_out"]) for s in sims]
    rows["sim_client_cpu_us_per_msg"] = [s.get("client_cpu_us_per_msg", math.nan) for s in sims]
    return rows


def validate(table, overrides: Mapping[str, Any], workers: int | None = None, cache: str | None = ".sim-cache",
             progress: bool | None = None):
    """Every measured row with its simulated throughput, p50, p99 and timeouts (``sim_`` columns)."""
    for i, row in table.iterrows():
        row_config(row, overrides, where=f"row {i + 1}")
    return _with_sims(table, dict(overrides), workers, cache)


# -- output ---------------------------------------------------------------------


def error(sim: float, real: float) -> float:
    """Relative error of the simulation: sim / real - 1 (nan when real is 0)."""
    return sim / real - 1 if real else math.nan


def to_toml(fit: Fit, source: str) -> str:
    """The calibration as a TOML file that ``--config`` reads (simulate, plan, sweep)."""
    lines = [f"# sim calibrate: the model's costs fitted to {source}",
             f"# {len(fit.train)} points fitted, {len(fit.holdout)} held out, {fit.excluded} with timeouts left out; "
             f"rms log error {fit.rms_log_error:.3f}; fitted on {', '.join(fit.targets)}"]
    if fit.holdout_modes:
        lines.append(f"# modes held out of the fit entirely: {', '.join(fit.holdout_modes)}")
    lines.append("# value  # 1-sigma relative uncertainty, and the value it started from")
    for key in fit.keys:
        if key in fit.undetermined:
            lines.append(f"# {key}: the data do not move it; left at its start value")
    for group in fit.tangled:
        lines.append(f"# not told apart by the data: {', '.join(group)} (only their combination is fitted)")
    groups: dict[str, list[str]] = {}
    for key in {**fit.base, **fit.values}:
        group, _, name = key.partition(".")
        if key not in fit.values:  # what the fit started from and kept
            groups.setdefault(group, []).append(f"{name} = {_toml_value(fit.base[key])}  # given, not fitted")
            continue
        unc = fit.rel_uncertainty[key]
        note = "undetermined" if not math.isfinite(unc) else f"+-{unc:.0%}"
        groups.setdefault(group, []).append(
            f"{name} = {_toml_value(_shown(key, fit.values[key]))}  # {note}; start {_shown(key, fit.start[key])}")
    for group, entries in groups.items():
        lines += ["", f"[{group}]", *entries]
    return "\n".join(lines) + "\n"


def _shown(key: str, value: float) -> str | float:
    """A fitted value as the config takes it: a duration in us, or a plain number (a cv)."""
    return float(f"{value:.4g}") if key.endswith(("cv", "growth")) else f"{value * 1e6:.4g}us"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if math.isfinite(value) else '"inf"'
    return f'"{value}"'


def format_fit(fit: Fit) -> str:
    lines = [f"fitted {len(fit.keys)} key(s) to {len(fit.train)} points ({fit.evaluations} simulated parameter "
             f"sets); rms log error of {', '.join(fit.targets)}: {fit.rms_log_error:.3f}"]
    if fit.excluded:
        lines.append(f"  ({fit.excluded} overload point(s) with timeouts left out of the fit; sim validate shows them)")
    if fit.holdout_modes:
        lines.append(f"  (modes held out of the fit: {', '.join(fit.holdout_modes)})")
    for key in fit.keys:
        unc = fit.rel_uncertainty[key]
        shown = "not determined by the data" if not math.isfinite(unc) else f"+- {unc:.0%}"
        lines.append(f"  {key:<22} {_shown(key, fit.values[key])!s:>10}  {shown}  (start {_shown(key, fit.start[key])})")
    for group in fit.tangled:
        lines.append(f"  cannot tell apart: {', '.join(group)}: the data fix only their combination")
    for name, rows in (("fitted points", fit.train), ("held-out points", fit.holdout)):
        if len(rows):
            tp = [abs(error(s, r)) for s, r in zip(rows["sim_throughput_msgs_per_s"], rows["throughput_msgs_per_s"])]
            p50 = [abs(error(s, r)) for s, r in zip(rows["sim_p50_ms"], rows["p50_ms"])]
            cpu = ""
            if "client_cpu_us_per_msg" in rows.columns and (rows["client_cpu_us_per_msg"] > 0).any():
                errors = [abs(error(s, r)) for s, r in zip(rows["sim_client_cpu_us_per_msg"],
                                                           rows["client_cpu_us_per_msg"]) if r > 0]
                cpu = f", client CPU {np.nanmedian(errors):.0%}"
            lines.append(f"{name}: median |error| throughput {np.nanmedian(tp):.0%}, p50 {np.nanmedian(p50):.0%}{cpu}; "
                         f"throughput within 15% on {sum(e <= 0.15 for e in tp)} of {len(tp)}")
    if len(fit.holdout):
        lines.append("held out (not used in the fit):")
        lines.append(format_rows(fit.holdout))
    return "\n".join(lines)


def format_rows(rows) -> str:
    """One line per row: real against simulated throughput, p50, p99, timeouts and, where the
    table measured it, the producers' CPU per message (us)."""
    cpu = "client_cpu_us_per_msg" in rows.columns and "sim_client_cpu_us_per_msg" in rows.columns
    head = (f"  {'mode':<10} {'C/L':>5} {'rtt':>6} {'PxP':>4} {'msgs':>6} | {'msg/s real':>10} {'sim':>9} {'err':>5} | "
            f"{'p50 real':>8} {'sim':>8} {'err':>5} | {'p99 real':>8} {'sim':>8} | {'t/o real':>8} {'sim':>6}"
            + (f" | {'cpu real':>8} {'sim':>6}" if cpu else ""))
    out = [head]
    for _, r in rows.iterrows():
        flow = r["limit"] if _missing(r["window"]) else r["window"]
        flow = "" if _missing(flow) else f"{int(flow)}"
        out.append(
            f"  {r['mode']:<10} {flow:>5} {r['rtt_ms']:6.2f} {int(r['producers'])}x{int(r['partitions'])} "
            f"{int(r['messages']):6d} | {r['throughput_msgs_per_s']:10,.0f} {r['sim_throughput_msgs_per_s']:9,.0f} "
            f"{_pct(error(r['sim_throughput_msgs_per_s'], r['throughput_msgs_per_s']))} | "
            f"{r['p50_ms']:8.2f} {r['sim_p50_ms']:8.2f} {_pct(error(r['sim_p50_ms'], r['p50_ms']))} | "
            f"{r['p99_ms']:8.2f} {r['sim_p99_ms']:8.2f} | {int(r['timeouts']):8d} {int(r['sim_timeouts']):6d}"
            + (f" | {r['client_cpu_us_per_msg']:8.1f} {r['sim_client_cpu_us_per_msg']:6.1f}" if cpu else ""))
    return "\n".join(out)


def _missing(value) -> bool:
    """None or NaN: an empty cell, as a table read from CSV or built in Python has it."""
    return value is None or value != value


def _pct(value: float) -> str:
    return "  n/a" if value != value else f"{value:+5.0%}" if abs(value) < 9.995 else f"{value:+5.0f}x"


def summary_by_mode(rows):
    """Per mode: rows, median |throughput error|, rows within 15%, median p50 error, p50 below real, p99/p50,
    timeouts, and the median error of the producers' CPU per message (where the table has it)."""
    import pandas as pd

    frame = rows.assign(
        tp_err=[error(s, r) for s, r in zip(rows["sim_throughput_msgs_per_s"], rows["throughput_msgs_per_s"])],
        p50_err=[error(s, r) for s, r in zip(rows["sim_p50_ms"], rows["p50_ms"])],
        real_tail=rows["p99_ms"] / rows["p50_ms"],
        sim_tail=rows["sim_p99_ms"] / rows["sim_p50_ms"],
        cpu_err=[error(s, r) for s, r in zip(rows.get("sim_client_cpu_us_per_msg", np.full(len(rows), np.nan)),
                                            rows.get("client_cpu_us_per_msg", np.full(len(rows), np.nan)))],
    )
    out = []
    for mode, group in list(frame.groupby("mode", sort=False)) + [("all", frame)]:
        out.append({
            "mode": mode, "rows": len(group),
            "median_abs_throughput_error": float(np.nanmedian(group["tp_err"].abs())),
            "throughput_within_15pct": int((group["tp_err"].abs() <= 0.15).sum()),
            "median_p50_error": float(np.nanmedian(group["p50_err"])),
            "p50_below_real": int((group["p50_err"] < 0).sum()),
            "median_real_p99_over_p50": float(np.nanmedian(group["real_tail"])),
            "median_sim_p99_over_p50": float(np.nanmedian(group["sim_tail"])),
            "real_timeouts": int(group["timeouts"].sum()), "sim_timeouts": int(group["sim_timeouts"].sum()),
            "median_client_cpu_error": float(np.nanmedian(group["cpu_err"])) if group["cpu_err"].notna().any()
            else math.nan,
        })
    return pd.DataFrame(out)


def format_summary(summary) -> str:
    lines = [f"  {'mode':<10} {'rows':>4} {'|tp err| p50':>12} {'within 15%':>10} {'p50 err':>8} {'p50 < real':>10} "
             f"{'p99/p50 real':>12} {'sim':>5} {'t/o real':>8} {'sim':>6} {'cpu err':>7}"]
    for _, s in summary.iterrows():
        lines.append(f"  {s['mode']:<10} {s['rows']:4d} {s['median_abs_throughput_error']:12.0%} "
                     f"{s['throughput_within_15pct']:>5d} of {s['rows']:<2d} {s['median_p50_error']:+8.0%} "
                     f"{s['p50_below_real']:>4d} of {s['rows']:<3d} {s['median_real_p99_over_p50']:12.2f} "
                     f"{s['median_sim_p99_over_p50']:5.2f} {s['real_timeouts']:8d} {s['sim_timeouts']:6d} "
                     f"{_pct(s['median_client_cpu_error']):>7}")
    return "\n".join(lines)


# -- the targets, out of sample ------------------------------------------------

CPU_BOUND = 0.7  # a row whose producer processes were this busy (CPU s per s, each) is CPU-bound


def cpu_bound(rows) -> np.ndarray:
    """Rows whose client processes were busy most of the time: throughput x client CPU per
    message / processes >= 0.7 core each (needs the table's client_cpu_us_per_msg)."""
    if "client_cpu_us_per_msg" not in rows.columns:
        return np.zeros(len(rows), dtype=bool)
    busy = (rows["throughput_msgs_per_s"].to_numpy(float) * rows["client_cpu_us_per_msg"].to_numpy(float) * 1e-6
            / rows["producers"].to_numpy(float))
    return np.nan_to_num(busy) >= CPU_BOUND


def targets(rows) -> list[dict]:
    """How ``rows`` (validated: ``sim_`` columns) meet the model's accuracy targets: each with
    its value, the target, the rows it counts, and whether it holds."""
    tp = np.array([error(s, r) for s, r in zip(rows["sim_throughput_msgs_per_s"], rows["throughput_msgs_per_s"])])
    has_latency = (rows["p50_ms"].to_numpy(float) > 0) & (rows["timeouts"].to_numpy(float) == 0)
    p50 = np.array([error(s, r) for s, r in zip(rows["sim_p50_ms"], rows["p50_ms"])])[has_latency]
    p99 = np.array([error(s, r) for s, r in zip(rows["sim_p99_ms"], rows["p99_ms"])])[has_latency]
    moving = rows["throughput_msgs_per_s"].to_numpy(float) > 0
    tp_abs = np.abs(tp[moving])
    cpu = np.abs(tp[moving & cpu_bound(rows)])
    real_t = rows["timeouts"].to_numpy(float)
    sim_t = rows["sim_timeouts"].to_numpy(float)
    with_timeouts = real_t > 0
    ratio = sim_t[with_timeouts] / real_t[with_timeouts]
    within_3 = int(((ratio >= 1 / 3) & (ratio <= 3)).sum())
    false_alarms = int((sim_t[~with_timeouts] > 0).sum())

    def share(values, limit):
        return float(np.mean(np.abs(values) <= limit)) if values.size else math.nan

    def median(values):
        return float(np.median(values)) if values.size else math.nan

    out = [
        dict(name="median |throughput error|", value=median(tp_abs), target="<= 12%", rows=int(tp_abs.size),
             holds=median(tp_abs) <= 0.12, shown=_share_text(median(tp_abs))),
        dict(name="median |throughput error|, CPU-bound rows", value=median(cpu), target="<= 15%", rows=int(cpu.size),
             holds=bool(cpu.size) and median(cpu) <= 0.15, shown=_share_text(median(cpu))),
        dict(name="p50 within 20%", value=share(p50, 0.20), target=">= 70% of rows", rows=int(p50.size),
             holds=share(p50, 0.20) >= 0.70, shown=_share_text(share(p50, 0.20))),
        dict(name="p99 within 30%", value=share(p99, 0.30), target=">= 60% of rows", rows=int(p99.size),
             holds=share(p99, 0.30) >= 0.60, shown=_share_text(share(p99, 0.30))),
        dict(name="timeouts within 3x where real ones occur", value=within_3, target="every such row",
             rows=int(with_timeouts.sum()), holds=within_3 == int(with_timeouts.sum()),
             shown=f"{within_3} of {int(with_timeouts.sum())}"),
        dict(name="no timeouts predicted where none occur", value=false_alarms, target="0 rows",
             rows=int((~with_timeouts).sum()), holds=false_alarms == 0,
             shown=f"{false_alarms} of {int((~with_timeouts).sum())} predict some"),
    ]
    for entry in out:
        entry["holds"] = bool(entry["holds"])
    return out


def _share_text(value: float) -> str:
    return "n/a" if value != value else f"{value:.0%}"


def format_targets(rows, holdout_modes: Sequence[str] = ()) -> str:
    """The targets on every row and, with ``holdout_modes``, on the rows of those modes alone."""
    sets = [("all rows", rows)]
    if holdout_modes:
        sets.insert(0, (f"out of sample ({', '.join(holdout_modes)})", rows[rows["mode"].isin(list(holdout_modes))]))
    lines = []
    for title, subset in sets:
        lines.append(f"  {title}:")
        for t in targets(subset):
            lines.append(f"    {t['name']:<45} {t['shown']:>22}  target {t['target']:<16} over {t['rows']:>3} rows  "
                         f"{'meets it' if t['holds'] else 'MISSES it'}")
    return "\n".join(lines)


def markdown(rows, source: str, config: str, overrides: Mapping[str, Any], holdout_modes: Sequence[str] = (),
             assignments: Sequence[str] = ()) -> str:
    """The validation as a Markdown page (measurements/VALIDATION.md): how it was made, the
    targets (out of sample first), the summary by mode and every row. ``assignments`` are the
    ``--set KEY=VALUE`` given on top of ``config`` (already in ``overrides``)."""
    keys = ", ".join(f"`{k} = {v}`" for k, v in overrides.items())
    out = ["# Validation: the simulator against a real broker", "",
           f"Generated by `sim validate {source} --config {config}"
           + "".join(f" --set {a}" for a in assignments)
           + (f" --holdout-modes {','.join(holdout_modes)}" if holdout_modes else "") + " --markdown ...`;"
           " do not edit by hand.", "",
           f"Calibration (`{config}`): {keys or 'the defaults'}.", ""]
    if holdout_modes:
        out += [f"The calibration was fitted without the rows of {', '.join(holdout_modes)}: those rows are "
                "out of sample.", ""]
    out += ["## Targets", "", "| rows | measure | value | target | rows counted | |", "|---|---|---|---|---|---|"]
    sets = [("all", rows)]
    if holdout_modes:
        sets.insert(0, ("out of sample", rows[rows["mode"].isin(list(holdout_modes))]))
    for title, subset in sets:
        for t in targets(subset):
            name = t["name"].replace("|", "\\|")  # a bar inside a cell would end it
            out.append(f"| {title} | {name} | {t['shown']} | {t['target']} | {t['rows']} | "
                       f"{'meets it' if t['holds'] else '**misses it**'} |")
    out += ["", "CPU-bound rows: the producer processes were busy at least "
            f"{CPU_BOUND:.0%} of the time (throughput x client CPU per message / processes). p50 and p99 count "
            "the rows without timeouts.", "", "## By mode", "", "```", format_summary(summary_by_mode(rows)), "```",
            "", "## Every row", "", "```", format_rows(rows), "```", ""]
    return "\n".join(out)


def draw(rows, path: str) -> str:
    """figures/validation.png: real against simulated throughput and p50, one colour per mode."""
    import os

    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.8))
    axes = fig.subplots(1, 2)
    panels = (("throughput_msgs_per_s", "sim_throughput_msgs_per_s", "throughput (msg/s)"),
              ("p50_ms", "sim_p50_ms", "p50 latency (ms)"))
    for ax, (real, sim, label) in zip(axes, panels):
        x = rows[real].to_numpy(float)
        y = rows[sim].to_numpy(float)
        ok = (x > 0) & (y > 0)
        for mode in dict.fromkeys(rows["mode"]):
            pick = ok & (rows["mode"] == mode).to_numpy()
            ax.scatter(x[pick], y[pick], s=22, label=mode, alpha=0.85)
        if ok.any():
            lo, hi = min(x[ok].min(), y[ok].min()) / 1.5, max(x[ok].max(), y[ok].max()) * 1.5
            line = np.geomspace(lo, hi, 50)
            ax.plot(line, line, color="black", lw=1)
            ax.fill_between(line, line * 0.85, line * 1.15, color="grey", alpha=0.2, lw=0, label="within 15%")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"real {label}")
        ax.set_ylabel(f"simulated {label}")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("NATS JetStream on loopback: measured against simulated, one point per row")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    return path
