"""The ``deleverage`` command.

Each subcommand lives in ``engine/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking the
parsed arguments and returning an exit code). The registry below is explicit.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from risk.errors import DeleverageError

# name of the module in engine.commands, in the order they appear in --help
COMMAND_MODULES: tuple[str, ...] = (
    "backtest",
    "stress", "demo",
    "report",
    "optimize",
    "data",
    "scenarios", "cascade",
    "liqmap",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deleverage",
        description="Backtest leveraged perpetual-futures strategies and stress them through liquidation waterfalls.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"engine.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DeleverageError as exc:
        print(f"deleverage: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
