"""``deleverage report DIR``: render a run, stress or optimization directory to DIR/report.html.

Other commands (backtest, stress, optimize) call :func:`add_no_report_option` on their parser
and :func:`report_after` once their directory is written, so the report is made at the end of
every run unless ``--no-report`` is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write DIR/report.html for a run, stress or optimization directory",
        description="Render one self-contained, offline HTML report (plotly.js inlined) for a run directory "
        "(equity.parquet), a stress directory (survival.parquet; also each cell's run page) or an "
        "optimization directory (trials.parquet). Prints the report's path.",
    )
    parser.add_argument("directory", metavar="DIR", help="run, stress or optimization directory")
    parser.add_argument("-o", "--output", metavar="PATH.html",
                        help="write the report here instead of DIR/report.html (an .html path; an existing file "
                        "only with --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="with -o: replace the report already at PATH.html (never a file that is not a report)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from risk.errors import DeleverageError
    from reports.html import legacy_warning, render

    if args.overwrite and not args.output:
        raise DeleverageError("--overwrite applies to -o PATH.html only (DIR/report.html is always rewritten)")
    path = render(Path(args.directory), args.output, overwrite=args.overwrite)
    warning = legacy_warning(args.directory)
    if warning:
        print(f"warning: {args.directory}: {warning}", file=sys.stderr)
    print(path)
    return 0


def add_no_report_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-report`` to a command that writes a run, stress or optimization directory."""
    parser.add_argument("--no-report", action="store_true", help="do not write report.html at the end")


def report_after(args: argparse.Namespace, directory: str | Path) -> Path | None:
    """Render ``directory``'s report unless ``--no-report``; print and return its path."""
    if getattr(args, "no_report", False):
        return None
    from reports.html import render

    path = render(Path(directory))
    print(f"report: {path}")
    return path
