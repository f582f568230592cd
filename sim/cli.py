"""The ``sim`` command line: argument parsing and printing only.

Every command calls a function of the package that a notebook can call too.
Heavy imports (numpy, pandas, the engine) happen inside the commands so that
``sim --help`` answers at once. Bad input prints one line and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

EXIT_BAD_INPUT = 2


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
        help="override one config key, e.g. --set link.rtt=10ms (repeatable; `sim list keys` shows all keys)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        help="read overrides from a TOML file (dotted keys or [producer]-style tables); --set wins",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sim",
        description="Simulate message producers sending to a broker over a network: throughput, "
        "latency and timeouts, and what limits them.",
    )
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
    scenario.add_argument("--out", default=".", metavar="DIR", help="where to write NAME.csv and NAME.png (default: .)")
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
    from .tomlconfig import read_overrides

    overrides: dict[str, Any] = {}
    if getattr(args, "config", None):
        overrides.update(read_overrides(args.config))
    overrides.update(parse_assignments(args.assignments))
    return overrides


def cmd_simulate(args: argparse.Namespace) -> int:
    from .config import build_config
    from .results import run
    from .report import format_summary

    config = build_config(load_overrides(args))
    result = run(config)
    if args.messages_csv:
        result.messages.to_csv(args.messages_csv)
    if args.timeseries_csv:
        result.timeseries.to_csv(args.timeseries_csv, index=False)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, allow_nan=False))
    else:
        print(format_summary(result))
    return 0


def cmd_scenario(args: argparse.Namespace) -> int:
    from . import scenarios

    scenarios.get(args.name)
    if args.from_csv:
        frame = scenarios.read_table(args.from_csv)
    else:
        frame = scenarios.table(args.name, quick=args.quick, workers=_workers(args))
    csv, png = scenarios.write(args.name, frame, args.out)
    print(f"{args.name}: wrote {csv} and {png}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    import time

    from . import scenarios

    out = args.out or ("figures/quick" if args.quick else "figures")
    for name in scenarios.names():
        start = time.perf_counter()
        frame = scenarios.table(name, quick=args.quick, workers=_workers(args))
        csv, png = scenarios.write(name, frame, out)
        print(f"{name:<12} {time.perf_counter() - start:6.1f} s  {png}")
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
    parser = build_parser()
    args = parser.parse_args(argv)
    from .config import InputError

    try:
        return args.func(args)
    except InputError as exc:
        print(f"sim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("sim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
