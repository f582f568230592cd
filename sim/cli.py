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

    listing = commands.add_parser(
        "list", help="list configuration keys", description="List every configuration key with its default."
    )
    listing.add_argument("what", nargs="?", choices=["keys"], default="keys", help="what to list (default: keys)")
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


def cmd_list(args: argparse.Namespace) -> int:
    from .config import describe_keys

    rows = describe_keys()
    width = max(len(r["key"]) for r in rows)
    dwidth = max(len(r["default"]) for r in rows)
    for r in rows:
        print(f"{r['key']:<{width}}  {r['default']:<{dwidth}}  {r['meaning']}")
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
