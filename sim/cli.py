"""The ``sim`` command line: argument parsing and printing only.

Every command calls a function of the package that a notebook can call too.
Heavy imports (numpy, pandas, the engine) happen inside the commands so that
``sim --help`` answers at once.

Exit codes: 0 done; 1 the question has no answer (``plan`` found nothing); 2 bad
input (one line naming what is wrong and what is allowed); 70 an internal
error (one line and a hint; ``--debug`` adds the traceback); 130 interrupted
(Ctrl-C). JSON output is strict: see :mod:`sim.jsonsafe`.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Sequence

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # sysexits' EX_SOFTWARE
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set link.rtt=10ms (repeatable; `sim list keys` shows every key and its default)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        help="read overrides from a TOML file (dotted keys or [producer]-style tables; default: none); --set wins",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sim",
        description="Simulate message producers sending to a broker over a network: throughput, "
        "latency and timeouts, and what limits them.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error, print the traceback too (also SIM_DEBUG=1; allowed anywhere)")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"sim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    simulate = commands.add_parser(
        "simulate",
        help="run one simulation and print its summary",
        description="Run one simulation of the configured system (defaults: the article's cloud case, "
        "a sync producer 33 ms from the broker) and print a summary.",
    )
    _add_config_options(simulate)
    simulate.add_argument("--json", action="store_true", help="print the summary and resolved config as one JSON object")
    simulate.add_argument("--engine", choices=("fast", "simpy"), default="fast",
                          help="fast (default) or simpy: the SimPy model, message for message the same, much slower")
    simulate.add_argument("--messages-csv", metavar="FILE", help="also write the per-message table as CSV")
    simulate.add_argument("--timeseries-csv", metavar="FILE", help="also write the per-bin time series as CSV")
    simulate.set_defaults(func=cmd_simulate)

    scenario = commands.add_parser(
        "scenario",
        help="run one scenario: its table (CSV) and figure (PNG)",
        description="Run one of the article's scenarios (`sim list scenarios` names them) and write "
        "NAME.csv and NAME.png.",
    )
    scenario.add_argument("name", help="the scenario")
    scenario.add_argument("--quick", action="store_true", help="the small variant (a few seconds)")
    scenario.add_argument("--out", default="out", metavar="DIR",
                          help="where to write NAME.csv and NAME.png (default: out/, created if missing)")
    scenario.add_argument("--from-csv", metavar="FILE", help="redraw the figure from a saved table instead of simulating")
    scenario.add_argument("--workers", type=int, metavar="N", help="processes to use (default: one per core)")
    scenario.set_defaults(func=cmd_scenario)

    figures = commands.add_parser(
        "figures",
        help="regenerate every scenario's figure",
        description="Run every scenario and write its table and figure, byte for byte reproducible.",
    )
    figures.add_argument("--quick", action="store_true", help="the small variants (for a preview or a test)")
    figures.add_argument("--out", metavar="DIR", help="default: figures/ (figures/quick/ with --quick)")
    figures.add_argument("--workers", type=int, metavar="N", help="processes to use (default: one per core)")
    figures.set_defaults(func=cmd_figures)

    sweep = commands.add_parser(
        "sweep",
        help="run a grid of configs with replications",
        description="Run the sweep a TOML file describes ([base] overrides, [factors] lists, replications, "
        "seed, output) and write its tidy table as CSV. See sim/examples/limit-sweep.toml.",
    )
    sweep.add_argument("file", metavar="FILE.toml", help="the sweep")
    sweep.add_argument("--out", metavar="FILE.csv", help="where to write the table (default: the file's output, "
                       "else out/NAME.csv, NAME being the sweep file's)")
    sweep.add_argument("--workers", type=int, metavar="N", help="processes (default: one per core)")
    sweep.add_argument("--backend", choices=["local", "dask"], default="local",
                       help="local process pool (default) or a Dask distributed cluster")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="with --backend dask: the scheduler to use "
                       "(default: start a LocalCluster on this machine)")
    sweep.add_argument("--no-cache", action="store_true", help="recompute every run instead of reusing cached ones")
    sweep.add_argument("--cache-dir", metavar="DIR", help="where runs are cached (default: the user cache "
                       "directory, `sim cache` shows it; also SIM_CACHE_DIR)")
    sweep.add_argument("--config", metavar="FILE.toml", help="overrides under the sweep's [base] (e.g. a calibration "
                       "from sim calibrate); the sweep file wins")
    sweep.set_defaults(func=cmd_sweep)

    cache = commands.add_parser(
        "cache",
        help="show or clear the cache of sweep runs",
        description="Every finished sweep run is cached under a hash of its config and of the simulator's "
        "source. `sim cache` shows where and how much; `sim cache clear` deletes it all.",
    )
    cache.add_argument("action", nargs="?", choices=["info", "clear"], default="info", help="default: info")
    cache.add_argument("--cache-dir", metavar="DIR", help="the cache to act on (default: the user cache directory)")
    cache.set_defaults(func=cmd_cache)

    planner = commands.add_parser(
        "plan",
        help="find the cheapest system that reaches a target rate",
        description="Which clients (producer processes), producers per client, partitions and in-flight limit "
        "reach --rate messages/s with no timeouts, the --p99 bound and no station busier than --max-busy? The "
        "search goes from one client up; analytic bounds prune, simulation confirms, and it stops at the first "
        "system that holds. Exit code 1 when nothing reaches the target. With --max-rate: the highest rate the "
        "--config/--set system sustains under the same test. Unset flags keep the value of --config/--set, "
        "else the simulator's default.",
    )
    planner.add_argument("--rate", type=float, metavar="MSG/S", help="target messages per second, all producers "
                         "together (no default: required unless --max-rate)")
    planner.add_argument("--rtt", metavar="DURATION", help="round trip to the broker, e.g. 80ms (default 33ms)")
    planner.add_argument("--payload", metavar="SIZE", help="payload per message (default 512B)")
    planner.add_argument("--p99", metavar="DURATION", help="p99 latency bound, from each message's intended send "
                         "time (default: no bound)")
    planner.add_argument("--ack-wait", metavar="DURATION", help="the SDK's ack_wait (default 15s)")
    planner.add_argument("--bandwidth", metavar="RATE", help="link bandwidth, e.g. 100Mbit/s (default 1Gbit/s)")
    planner.add_argument("--loss", metavar="P", help="packet loss rate (default 0)")
    planner.add_argument("--max-busy", metavar="FRACTION", default="80%", help="headroom: no station (nor a "
                         "connection's TCP window) busier than this, e.g. 0.8 or 80%% (default 80%%)")
    planner.add_argument("--max-producers", type=int, default=32, metavar="N", help="most producers in all (default 32)")
    planner.add_argument("--max-clients", type=int, default=16, metavar="N",
                         help="most clients, i.e. producer processes, each with its own event loop and connection "
                         "(default 16)")
    planner.add_argument("--max-processes", type=int, dest="max_clients", help=argparse.SUPPRESS)  # older name
    planner.add_argument("--max-rate", action="store_true", help="find the highest rate the --config/--set system "
                         "sustains (default: off)")
    _add_config_options(planner)
    planner.add_argument("--json", action="store_true", help="print one JSON object (default: text)")
    planner.add_argument("--workers", type=int, metavar="N", help="processes to simulate on (default: one per core)")
    planner.set_defaults(func=cmd_plan)

    measure = commands.add_parser(
        "measure",
        help="measure a real broker (NATS JetStream on loopback) into a CSV table",
        description="Start nats-server with JetStream on 127.0.0.1 (temporary store, free port), add round "
        "trips with a delay proxy, run each point's producers as separate processes, and write one CSV row per "
        "point and repeat. Needs pip install 'sim[nats]'.",
    )
    measure.add_argument("--suite", choices=["quick", "full", "proxy"], default="full",
                         help="quick: every mode once, under a minute; full (default): every mode, several RTTs, "
                         "windows, limits, overload bursts and producers x partitions, a few minutes; proxy: "
                         "points behind the delay proxy, to set its CPU beside the client's and the server's")
    measure.add_argument("--quick", action="store_const", const="quick", dest="suite", help="same as --suite quick")
    measure.add_argument("--repeats", type=int, metavar="N",
                         help="runs of each point (default: 1 quick, 2 full and proxy)")
    measure.add_argument("-o", "--out", default="measurements.csv", metavar="FILE.csv",
                         help="where to write the table (default: measurements.csv); rewritten after every row")
    measure.add_argument("--server-bin", metavar="PATH", help="the nats-server executable (default: the one "
                         "installed with sim[nats], else on PATH)")
    measure.add_argument("--quiet-cores", type=float, default=0.5, metavar="X",
                         help="before each point, wait until fewer than X cores are busy (default 0.5)")
    measure.add_argument("--quiet-wait", type=float, metavar="S",
                         help="but wait at most S seconds, then measure anyway (default: 3 quick, 60 full)")
    measure.add_argument("--pin-broker", action="store_true",
                         help="bind nats-server and the delay proxy to this machine's last core and the producers "
                         "to the others, so the kernel cannot queue the broker behind a busy producer (rows say "
                         "host_cores = the producers' cores, colocated = false, broker_cores = 1)")
    measure.set_defaults(func=cmd_measure)

    calibrate = commands.add_parser(
        "calibrate",
        help="fit the model's costs to a measurement table",
        description="Fit cost keys (default: every one) by least squares on log throughput and log p50, "
        "simulating every measured point under each candidate; write the fitted keys as a TOML file for --config.",
    )
    calibrate.add_argument("file", metavar="FILE.csv", help="a table written by sim measure")
    calibrate.add_argument("--fit", metavar="KEY,KEY...", help="the keys to fit (default: client.send_cpu, "
                           "client.ack_cpu, broker.read_cpu, broker.service_time; any cost, i.e. a duration key "
                           "such as a wake-up or jitter time, or a key ending in cv)")
    calibrate.add_argument("--config", metavar="FILE.toml", help="settings the fit starts from and keeps (e.g. a "
                           "mechanism switched on); the fitted keys are written with them")
    calibrate.add_argument("--targets", default="throughput,p50,p99", metavar="T,T...",
                           help="what each point compares, in logs: throughput, p50, p99, client_cpu (the producers' CPU per "
                           "message, column client_cpu_us_per_msg) (default: throughput,p50,p99)")
    calibrate.add_argument("--holdout-modes", metavar="MODE,MODE...",
                           help="modes kept out of the fit entirely and predicted (an out-of-sample check)")
    calibrate.add_argument("--holdout", type=float, default=0.3, metavar="F",
                           help="fraction of the points kept out of the fit and predicted afterwards (default 0.3)")
    calibrate.add_argument("--seed", type=int, default=1, help="which points are held out (default 1)")
    calibrate.add_argument("--start", choices=["data", "defaults"], default="data",
                           help="start from the CPU per message the table measured (default) or from the defaults")
    calibrate.add_argument("-o", "--out", default="calibrated.toml", metavar="FILE.toml",
                           help="where to write the calibration (default: calibrated.toml)")
    _add_cache_options(calibrate)
    calibrate.set_defaults(func=cmd_calibrate)

    validate = commands.add_parser(
        "validate",
        help="set a measurement table against the simulator under a calibration",
        description="Simulate every measured row under --config and print real against simulated throughput, "
        "p50, p99 and timeouts with errors, a summary by mode, and draw the comparison as a figure.",
    )
    validate.add_argument("file", metavar="FILE.csv", help="a table written by sim measure")
    validate.add_argument("--config", required=True, metavar="FILE.toml", help="the calibration (sim calibrate -o)")
    validate.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                          help="change one key of the calibration, e.g. --set client.host_slice=1.5ms (repeatable; "
                          "a row's own keys still win)")
    validate.add_argument("--json", action="store_true", help="print one JSON object per row, in order")
    validate.add_argument("--holdout-modes", metavar="MODE,MODE...",
                          help="the modes the calibration was not fitted on: their rows are reported as out of sample")
    validate.add_argument("--markdown", metavar="FILE.md",
                          help="also write the validation, with the accuracy targets, as Markdown")
    validate.add_argument("--figure", default="figures/validation.png", metavar="FILE.png",
                          help="where to draw real against simulated (default: figures/validation.png)")
    _add_cache_options(validate)
    validate.set_defaults(func=cmd_validate)

    listing = commands.add_parser(
        "list",
        help="list scenarios and configuration keys",
        description="List the scenarios and every configuration key with its default.",
    )
    listing.add_argument("what", nargs="?", choices=["all", "scenarios", "keys"], default="all",
                         help="what to list (default: all)")
    listing.set_defaults(func=cmd_list)
    return parser


# -- commands ---------------------------------------------------------------


def load_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Overrides from ``--config`` then ``--set`` (later wins)."""
    from .config import parse_assignments
    from .tomlconfig import read_overrides, warn_if_empty

    overrides: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        overrides.update(read_overrides(args.config))
        warn_if_empty(args.config, overrides)
    overrides.update(parse_assignments(args.assignments))
    return overrides


def cmd_simulate(args: argparse.Namespace) -> int:
    from .budget import check
    from .config import build_config
    from .errors import InputError, check_output_file
    from .jsonsafe import dumps
    from .report import format_summary
    from .results import run

    config = build_config(load_overrides(args))
    outputs = {flag: check_output_file(path, "--" + flag.replace("_", "-"))
               for flag, path in (("messages_csv", args.messages_csv), ("timeseries_csv", args.timeseries_csv))
               if path is not None}
    if "messages_csv" in outputs and config.run.records == "summary":
        raise InputError("--messages-csv needs the per-message records: not with run.records = summary")
    check(config, timeseries="timeseries_csv" in outputs, engine=args.engine)
    result = run(config, engine=args.engine)
    if "messages_csv" in outputs:
        result.messages.to_csv(outputs["messages_csv"])
    if "timeseries_csv" in outputs:
        result.timeseries.to_csv(outputs["timeseries_csv"], index=False)
    if args.json:
        print(dumps(result.to_dict(), indent=2))
    else:
        print(format_summary(result))
    return 0


def cmd_scenario(args: argparse.Namespace) -> int:
    from . import scenarios

    from .errors import InputError, check_output_dir

    scenarios.get(args.name)
    out = check_output_dir(args.out, "--out")
    if args.from_csv:
        frame = scenarios.read_table(args.from_csv)
        try:  # draw once before writing anything, so a wrong table leaves no file behind
            scenarios.get(args.name).plot(frame)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:120]
            raise InputError(f"--from-csv = {args.from_csv}: not a table of scenario {args.name} ({reason}); "
                             f"give a CSV that `sim scenario {args.name}` wrote") from None
        csv, png = scenarios.write(args.name, frame, out)
        print(f"{args.name}: wrote {csv} and {png}")
        return 0
    frame = scenarios.table(args.name, quick=args.quick, workers=_workers(args))
    csv, png = scenarios.write(args.name, frame, out)
    print(f"{args.name}: wrote {csv} and {png}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    import time

    from . import scenarios

    from .errors import check_output_dir

    out = check_output_dir(args.out or ("figures/quick" if args.quick else "figures"), "--out")
    for name in scenarios.names():
        start = time.perf_counter()
        frame = scenarios.table(name, quick=args.quick, workers=_workers(args))
        csv, png = scenarios.write(name, frame, out)
        print(f"{name:<12} {time.perf_counter() - start:6.1f} s  {png}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .errors import InputError, check_output_dir, check_output_file
    from .report import format_sweep
    from .sweep import check_size, load, run_sweep

    if args.scheduler and args.backend != "dask":
        raise InputError(f"--scheduler = {args.scheduler}: needs --backend dask")
    workers = _workers(args)
    sweep = load(args.file)
    if args.config is not None:
        import dataclasses

        from .tomlconfig import read_overrides

        sweep = dataclasses.replace(sweep, base={**read_overrides(args.config), **sweep.base})
    if args.out is not None:
        out = check_output_file(args.out, "--out")
    elif sweep.output is not None:
        out = check_output_file(sweep.output, f"{args.file}: output", create_parent=True)
    else:
        out = check_output_dir("out", "the default output directory") / f"{Path(args.file).stem}.csv"
        out = check_output_file(out, "the default output")
    cache = _cache(args)
    check_size(sweep)
    table = run_sweep(sweep, workers=workers, backend=args.backend, scheduler=args.scheduler, cache=cache)
    table.to_csv(out, index=False, float_format="%.9g")
    print(format_sweep(sweep, table, out))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .config import InputError, build_config
    from .units import parse_duration

    overrides = load_overrides(args)
    for flag, key in (("rtt", "link.rtt"), ("payload", "producer.payload_bytes"), ("ack_wait", "producer.ack_wait"),
                      ("bandwidth", "link.bandwidth"), ("loss", "link.loss")):
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
    build_config(overrides)  # bad values fail here, naming the key
    p99 = None
    if args.p99 is not None:
        try:
            p99 = parse_duration(args.p99)
        except ValueError as exc:
            raise InputError(f"--p99 = {args.p99}: {exc}") from None
    max_busy = _fraction("--max-busy", args.max_busy)
    if args.max_rate:
        return _plan_max_rate(build_config(overrides), p99, max_busy, args.json)
    if args.rate is None:
        raise InputError("--rate: give the target rate in messages per second (or use --max-rate)")
    from .plan import Request, plan

    request = Request(rate=args.rate, overrides=overrides, p99=p99, max_producers=args.max_producers,
                      max_clients=args.max_clients, seed=build_config(overrides).run.seed, max_busy=max_busy)
    result = plan(request, workers=_workers(args))
    if args.json:
        print(_dumps(result.to_json(), indent=2))
    else:
        from .report import format_plan

        print(format_plan(result))
    return 0 if result.feasible else 1


def _fraction(flag: str, text: str) -> float:
    """``0.8`` or ``80%`` as 0.8; one line naming the flag when it is not a fraction in (0, 1]."""
    from .config import InputError

    try:
        value = float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise InputError(f"{flag} = {text}: must be a fraction > 0 and <= 1, e.g. 0.8 or 80%")
    return value


def _plan_max_rate(config, p99, max_busy, as_json: bool) -> int:
    from .plan import max_rate

    found = max_rate(config, p99=p99, max_busy=max_busy)
    if as_json:
        print(_dumps(found.to_json(), indent=2))
        return 0 if found.rate > 0 else 1
    if found.rate <= 0:
        print("no rate held: even a trickle times out, misses the bound or runs a station past --max-busy")
        return 1
    o = found.outcome
    p99_text = "-" if o["p99_ms"] is None else f"{o['p99_ms']:,.1f} ms"
    print(f"highest sustainable rate: {found.rate:,.0f} msg/s (all producers), no station busier than "
          f"{max_busy:.0%}: p99 {p99_text} from intended send time, busiest {o['busiest_station']} at "
          f"{o['busiest_utilisation']:.0%}, limited by {o['limited_by']}")
    print("probed: " + ", ".join(f"{r:,.0f}{'' if h else ' (failed)'}" for r, h in found.probes))
    print(f"reproduce: {found.to_json()['at_max']['reproduce']}")
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from .config import InputError
    from .measure import measure
    from .measure.suites import DEFAULT_REPEATS, SUITES

    repeats = args.repeats if args.repeats is not None else DEFAULT_REPEATS[args.suite]
    if repeats < 1:
        raise InputError(f"--repeats = {repeats}: must be at least 1")
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (3.0 if args.suite == "quick" else 60.0)
    if quiet_wait < 0:
        raise InputError(f"--quiet-wait = {quiet_wait:g}: must be >= 0 seconds")
    if args.quiet_cores <= 0:
        raise InputError(f"--quiet-cores = {args.quiet_cores:g}: must be > 0")
    from .errors import check_output_file

    check_output_file(args.out, "--out")  # before minutes of measuring
    rows: list[dict] = []

    def save(row: dict) -> None:
        import pandas as pd

        rows.append(row)
        pd.DataFrame(rows).to_csv(args.out, index=False)

    table = measure(SUITES[args.suite](), repeats=repeats, on_row=save, server_bin=args.server_bin,
                    quiet_cores=args.quiet_cores, quiet_wait_s=quiet_wait, pin_broker=args.pin_broker)
    from .measure import format_table

    print(format_table(table, args.out))
    return 0


def _add_cache_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, metavar="N", help="processes to simulate on (default: one per core)")
    parser.add_argument("--no-cache", action="store_true", help="recompute every run instead of reusing cached ones")
    parser.add_argument("--cache-dir", metavar="DIR", help="where runs are cached (default: the user cache directory, "
                        "`sim cache` shows it; also SIM_CACHE_DIR)")


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import COST_KEYS, calibrate, format_fit, to_toml
    from .measure import read_table

    from .errors import check_output_file

    check_output_file(args.out, "--out")  # before the fit, which takes a while
    table = read_table(args.file)
    keys = COST_KEYS if args.fit is None else args.fit.split(",")
    base = {}
    if args.config:
        from .tomlconfig import read_overrides

        base = read_overrides(args.config)
    fit = calibrate(table, keys=keys, holdout=args.holdout, seed=args.seed, workers=_workers(args),
                    cache=_cache(args), from_data=args.start == "data", base=base,
                    targets=args.targets.split(","), holdout_modes=_modes(args.holdout_modes))
    with open(args.out, "w") as handle:
        handle.write(to_toml(fit, args.file))
    print(format_fit(fit))
    print(f"wrote {args.out}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .calibrate import draw, format_rows, format_summary, format_targets, markdown, summary_by_mode, validate
    from .measure import read_table
    from .tomlconfig import read_overrides

    from .errors import InputError, check_output_file

    if args.figure:
        check_output_file(args.figure, "--figure", create_parent=True)
    if args.markdown:
        check_output_file(args.markdown, "--markdown", create_parent=True)
    table = read_table(args.file)
    holdout_modes = _modes(args.holdout_modes)
    unknown = sorted(set(holdout_modes) - set(table["mode"]))
    if unknown:
        raise InputError(f"--holdout-modes = {','.join(unknown)}: no such mode in {args.file}")
    from .config import parse_assignments

    overrides = {**read_overrides(args.config), **parse_assignments(args.assignments)}
    rows = validate(table, overrides, workers=_workers(args), cache=_cache(args))
    if args.figure:
        draw(rows, args.figure)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(markdown(rows, args.file, args.config, overrides, holdout_modes, args.assignments))
    if args.json:
        records = [{k: _plain(v) for k, v in row.items()} for row in rows.to_dict(orient="records")]
        print(_dumps(records, indent=2))
        return 0
    print(format_rows(rows))
    print("\nby mode:")
    print(format_summary(summary_by_mode(rows)))
    print("\ntargets:")
    print(format_targets(rows, holdout_modes))
    if args.figure:
        print(f"drew {args.figure}")
    if args.markdown:
        print(f"wrote {args.markdown}")
    return 0


def _modes(text: str | None) -> list[str]:
    """A --holdout-modes list, checked against the modes a table can have."""
    from .errors import InputError
    from .measure.schema import MODES

    modes = [m.strip() for m in (text or "").split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            raise InputError(f"--holdout-modes = {mode}: allowed: {', '.join(MODES)}")
    return modes


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars to Python, NaN to null."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _cache(args: argparse.Namespace):
    """The cache directory a command's --no-cache / --cache-dir ask for (None: no cache), checked writable."""
    from .errors import check_output_dir
    from .sweep import default_cache_dir

    if getattr(args, "no_cache", False):
        return None
    return check_output_dir(getattr(args, "cache_dir", None) or default_cache_dir(), "--cache-dir")


def _dumps(value, **kwargs) -> str:
    from .jsonsafe import dumps

    return dumps(value, **kwargs)


def cmd_cache(args: argparse.Namespace) -> int:
    from .errors import InputError
    from .sweep import Cache, default_cache_dir

    directory = args.cache_dir or default_cache_dir()
    store = Cache(directory)
    if store.directory.exists() and not store.directory.is_dir():
        raise InputError(f"--cache-dir = {directory}: is a file, not a directory")
    if args.action == "clear":
        removed = store.clear()
        print(f"cache {store.directory}: removed {removed} run{'s' if removed != 1 else ''}")
        return 0
    runs, size = store.size()
    print(f"cache {store.directory}: {runs} run{'s' if runs != 1 else ''}, {size / 2**20:,.1f} MiB")
    return 0


def _workers(args: argparse.Namespace) -> int | None:
    from .config import InputError

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers = {args.workers}: must be at least 1")
    return args.workers


def cmd_list(args: argparse.Namespace) -> int:
    from . import scenarios
    from .config import describe_keys

    if args.what in ("all", "scenarios"):
        if args.what == "all":
            print("scenarios (sim scenario NAME):")
        for name, title in scenarios.describe():
            print(f"  {name:<12}  {title}" if args.what == "all" else f"{name:<12}  {title}")
    if args.what in ("all", "keys"):
        if args.what == "all":
            print("\nkeys (sim simulate --set KEY=VALUE):")
        rows = describe_keys()
        width = max(len(r["key"]) for r in rows)
        dwidth = max(len(r["default"]) for r in rows)
        indent = "  " if args.what == "all" else ""
        for r in rows:
            print(f"{indent}{r['key']:<{width}}  {r['default']:<{dwidth}}  {r['meaning']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure ends as one line on standard error and an exit code."""
    import os

    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line, for every command
    debug = "--debug" in argv or os.environ.get("SIM_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    try:
        import warnings

        from .errors import ConfigWarning, InputError

        args = build_parser().parse_args(argv)
        with warnings.catch_warnings():
            warnings.simplefilter("default", ConfigWarning)
            warnings.filterwarnings("ignore", module=r"(distributed|dask|tornado)(\..*)?$")  # not the user's
            warnings.showwarning = _show_warning
            return args.func(args)
    except InputError as exc:
        _say(f"sim: error: {exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _say("sim: interrupted")
        if from_command_line and "distributed" in sys.modules:
            _leave_now(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (sim ... | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SystemExit:
        raise
    except MemoryError:
        _say("sim: error: out of memory; use fewer messages, run.records = summary or a wider run.bin")
        return EXIT_INTERNAL
    except OSError as exc:  # the environment, not the simulator: a full disk, a vanished directory
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _say(f"sim: error: {where}{exc.strerror or exc}")
        return 1
    except BaseException as exc:  # noqa: BLE001  (a bug: one line, the traceback only on request)
        if debug:
            import traceback

            traceback.print_exc()
        text = " ".join(str(exc).split())[:200]
        _say(f"sim: internal error: {type(exc).__name__}{': ' + text if text else ''} (a bug: please report it "
             f"with the command line{'' if debug else '; --debug shows the traceback'})")
        return EXIT_INTERNAL


def _leave_now(code: int) -> None:
    """Exit at once, after the one line: no interpreter teardown, whose atexit hooks (Dask's, closing
    half-started workers) would print tracebacks of their own after an interrupt. Only after Dask ran: a plain
    exit lets multiprocessing release what it holds."""
    import logging
    import os

    logging.disable(logging.CRITICAL)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # standard error closed: nothing left to tell
        pass


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``sim: warning:`` line each (a ConfigWarning names the ignored key)."""
    _say(f"sim: warning: {message}")


if __name__ == "__main__":
    sys.exit(main())
