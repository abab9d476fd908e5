"""``deleverage stress STRATEGY``: how a strategy survives each liquidation waterfall, at each leverage.

Runs every (scenario, leverage) combination in parallel, prints the survival table (survived
or liquidated, when, at what price, equity left, max drawdown, closest distance to
liquidation, funding, fees, and the insurance fund's cover when a liquidation was insolvent) and
the survival frontier (the highest leverage that survived each scenario), and writes a stress
directory with one run directory per cell and report.html.

Examples::

    deleverage stress buy_and_hold --scenarios 312,519 --leverage 1,2,3,5,10,20,50,100
    deleverage stress buy_and_hold --scenarios 312 --data real --leverage 0.5,1,2 --param entry_time=2020-03-12T00:00Z
    deleverage stress sma_crossover --param fast=12 --param slow=48 --margin cross --json
    deleverage stress --config my_stress.toml --leverage 5,10      # command line overrides the file
    deleverage stress buy_and_hold --out runs/s1 --resume          # finish a run that was interrupted
    deleverage stress --portfolio examples/portfolio_btc_eth.toml  # BTC + ETH on one cross wallet

A cell survived only if it traded, was never liquidated and kept at least the --wipeout floor
(default 10 %) of its equity; otherwise it is LIQUIDATED, WIPED OUT, NO TRADE (nothing was
tested) or REFUSED, and only survivors count toward the frontier. A second run into an --out
that holds a stress run is refused unless --resume (same options: finish the missing cells)
or --overwrite.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.commands.backtest import finite_number, positive_number
from risk.errors import DeleverageError

DEFAULT_SCENARIOS = "312,519"
DEFAULT_LEVERAGE = "1,2,3,5,10,20,50,100"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("stress", help="survival of a strategy through liquidation waterfalls at each leverage",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("strategy", nargs="?", help="strategy name (buy_and_hold, sma_crossover, breakout, cascade_fade, "
                   "funding_carry, dca_grid), path/to/file.py:ClassName or package.module:ClassName; "
                   "or [strategy] name in --config")
    p.add_argument("--scenarios", help=f"comma-separated built-in scenarios (default {DEFAULT_SCENARIOS}; "
                   "`all` for every built-in one)")
    p.add_argument("--leverage", help=f"comma-separated leverage levels (default {DEFAULT_LEVERAGE})")
    p.add_argument("--margin", choices=("isolated", "cross"), default=None, help="margin mode (default isolated)")
    p.add_argument("--venue", default=None, help="venue profile (default: each scenario's venue)")
    p.add_argument("--data", choices=("auto", "real", "reconstructed"), default=None,
                   help="auto (default): real bars where shipped (312, 519: BitMEX XBTUSD) or cached, the built-in "
                        "reconstruction elsewhere (labelled per cell); real: real bars or an error; reconstructed")
    p.add_argument("--data-path", default=None, help="file or folder of real data, or a `deleverage data fetch` cache "
                   "(default: the shipped bars, $DELEVERAGE_SHARED_DATA or ../shared/data, then the fetch cache)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="strategy parameter (repeatable)")
    p.add_argument("--config", type=Path, help="TOML file: [strategy] name, [params], [stress] (see engine/config.py)")
    p.add_argument("--cash", type=positive_number, default=None, help="initial equity (default 1 coin inverse, 10,000 linear)")
    p.add_argument("--funding-rate", type=finite_number, default=None,
                   help="constant funding rate per interval for bars without funding data (default 0.0001)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("--engine", choices=("auto", "fast", "backtrader"), default=None,
                   help="auto (default): the compiled fast engine for strategies with a signal form, else backtrader")
    p.add_argument("--out", type=Path, default=None, help="stress directory (default runs/stress-<strategy>-<time>)")
    add_rerun_options(p)
    p.add_argument("--partial-liquidation", action=argparse.BooleanOptionalAction, default=None,
                   help="the venue's partial liquidation runs before a full one (default off; both engines)")
    p.add_argument("--portfolio", type=Path, default=None, metavar="FILE.toml",
                   help="stress a portfolio on one cross wallet instead of one strategy: the TOML names the "
                        "symbols (weight, optional strategy or data file), venue and grid "
                        "(examples/portfolio_btc_eth.toml; --scenarios, --leverage, --data, --engine, --cash, "
                        "--out, --partial-liquidation override it; --workers, --resume and --overwrite work as for one "
                        "strategy)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (no table, no progress bar)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.set_defaults(func=run)


def run_portfolio(args: argparse.Namespace) -> int:
    """``--portfolio FILE.toml``: the portfolio grid (engine.portfolio_stress)."""
    from engine.config import parse_list
    from engine.portfolio_stress import check_spec, format_table, load_portfolio_toml, run_portfolio_stress

    if args.strategy or args.config:
        raise DeleverageError("--portfolio names its symbols and strategies in the TOML: give no STRATEGY or --config")
    spec = load_portfolio_toml(args.portfolio)
    if args.scenarios is not None:
        spec.scenarios = parse_list(args.scenarios, "--scenarios")
    if args.leverage is not None:
        spec.leverages = parse_list(args.leverage, "--leverage", float)
    if args.data:
        spec.data_kind = args.data
    if args.engine:
        spec.engine = args.engine
    if args.cash is not None:
        spec.cash = float(args.cash)
    if args.funding_rate is not None:
        spec.funding_rate = float(args.funding_rate)
    if args.wipeout is not None:
        spec.wipeout = parse_wipeout(args.wipeout)
    if args.workers is not None:
        if args.workers < 1:
            raise DeleverageError(f"--workers {args.workers}: expected at least 1")
        spec.workers = args.workers
    if args.partial_liquidation is not None:
        spec.partial_liquidation = bool(args.partial_liquidation)
    hints = {"--margin": "a portfolio's account is cross margin, on one wallet",
             "--venue": "set venue = \"...\" under [portfolio] in the TOML",
             "--param": "set a symbol's params = { ... } under its [[symbols]] entry, or [portfolio] params, in the TOML",
             "--data-path": "give a symbol its bars with data = \"FILE\" under its [[symbols]] entry in the TOML"}
    for name, value in (("--margin", args.margin if args.margin not in (None, "cross") else None),
                        ("--venue", args.venue), ("--param", args.param), ("--data-path", args.data_path)):
        if value:
            raise DeleverageError(f"{name} does not apply to --portfolio ({hints[name]})")
    check_spec(spec)
    out = args.out or Path("runs") / f"stress-portfolio-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"

    def announce() -> None:  # once every input is checked
        if not args.json:
            print(f"stress --portfolio {args.portfolio}: {len(spec.scenarios)} scenario(s) x {len(spec.leverages)} "
                  f"leverage level(s), --data {spec.data_kind} -> {out}", file=sys.stderr)

    table = run_portfolio_stress(spec, out, progress=None if not args.json else False, mode=run_mode(args),
                                 announce=announce)
    report = None
    if not args.no_report:
        from reports.portfolio_report import render_portfolio_stress

        report = render_portfolio_stress(out)
    if args.json:
        print(json.dumps({"stress_dir": str(out), "report": str(report) if report else None,
                          "cells": table.to_dict("records")}, indent=2, default=str))
    else:
        print(format_table(table, spec))
        print(f"\nstress directory: {out}")
        if report:
            print(f"report: {report}")
    sys.stdout.flush()
    return 0


def add_rerun_options(p: argparse.ArgumentParser) -> None:
    """``--wipeout``, ``--resume`` and ``--overwrite`` (shared with ``deleverage demo``)."""
    p.add_argument("--wipeout", default=None, metavar="FLOOR",
                   help="equity left under which a cell that was never liquidated is WIPED OUT, not survived: "
                        "a fraction or a percentage (default 0.1 = 10%%)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="finish the cells missing from an earlier run in --out (same options required)")
    again.add_argument("--overwrite", action="store_true", help="delete the earlier stress run in --out and start again")


def parse_wipeout(value: str | float | None) -> float:
    """``--wipeout`` as a fraction: ``0.1``, ``10%`` or ``10 %``; DeleverageError otherwise."""
    from engine.stress import DEFAULT_WIPEOUT
    from reports.verdicts import check_wipeout

    if value is None:
        return DEFAULT_WIPEOUT
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        return check_wipeout(number)
    except ValueError:
        raise DeleverageError(f"--wipeout {value!r}: expected a fraction of the initial equity in [0, 1) "
                              "or a percentage such as 10%") from None


def run_mode(args: argparse.Namespace) -> str:
    return "resume" if args.resume else "overwrite" if args.overwrite else "new"


def build_spec(args: argparse.Namespace) -> tuple[Any, Path | None]:
    """CLI > config file > defaults."""
    from engine.commands.backtest import parse_params
    from engine.config import load_config, parse_list
    from engine.stress import DEFAULT_FUNDING_RATE, StressSpec

    cfg = load_config(args.config) if args.config else {"strategy": {}, "params": {}, "stress": {}}
    st = cfg["stress"]
    strategy = args.strategy or cfg["strategy"].get("name")
    if not strategy:
        raise DeleverageError("no strategy given: pass STRATEGY or set [strategy] name in --config")
    from engine.strategy_ref import load_strategy, type_params

    cls = load_strategy(strategy)
    params = type_params(cls, cfg["params"], f"{args.config} [params]") if cfg["params"] else {}
    params.update(type_params(cls, parse_params(args.param), "--param"))
    where = f"config file {args.config}: [stress]"  # an empty list in the file is an error, never the default
    scen_value, scen_what = ((args.scenarios, "--scenarios") if args.scenarios is not None
                             else (st["scenarios"], f"{where} scenarios") if "scenarios" in st
                             else (DEFAULT_SCENARIOS, "--scenarios"))
    scenarios = parse_list(scen_value, scen_what)
    if scenarios == ["all"]:
        from feeds.scenarios import scenario_names

        scenarios = list(scenario_names())
    lev_value, lev_what = ((args.leverage, "--leverage") if args.leverage is not None
                           else (st["leverage"], f"{where} leverage") if "leverage" in st
                           else (DEFAULT_LEVERAGE, "--leverage"))
    leverages = parse_list(lev_value, lev_what, float)
    pick = lambda cli, key, default=None: cli if cli is not None else st.get(key, default)  # noqa: E731
    spec = StressSpec(
        strategy=strategy, params=params, scenarios=scenarios, leverages=leverages,
        margin_mode=pick(args.margin, "margin", "isolated"), venue=pick(args.venue, "venue"),
        data_kind=pick(args.data, "data", "auto"), data_path=pick(args.data_path, "data_path"),
        cash=pick(args.cash, "cash"), funding_rate=float(pick(args.funding_rate, "funding_rate", DEFAULT_FUNDING_RATE)),
        workers=pick(args.workers, "workers"), engine=pick(args.engine, "engine", "auto"),
        wipeout=parse_wipeout(args.wipeout),
        partial_liquidation=bool(pick(args.partial_liquidation, "partial_liquidation", False)),
    )
    spec.validate()
    out = args.out or (Path(st["out"]) if st.get("out") else None)
    return spec, out


def run(args: argparse.Namespace) -> int:
    from engine.stress import format_table, run_stress, to_json

    if getattr(args, "portfolio", None) is not None:
        return run_portfolio(args)
    spec, out = build_spec(args)
    from engine.strategy_ref import strategy_label

    label = "".join(c if c.isalnum() or c in "-_." else "_" for c in strategy_label(spec.strategy))
    out = out or Path("runs") / f"stress-{label}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    def announce() -> None:  # once every input is checked: bad input is one line with nothing before it
        if not args.json:
            cells = len(spec.scenarios) * len(spec.leverages)
            print(f"stress {spec.strategy}: {len(spec.scenarios)} scenario(s) x {len(spec.leverages)} leverage "
                  f"level(s) = {cells} runs, --data {spec.data_kind} -> {out}", file=sys.stderr)

    result = run_stress(spec, out, progress=None if not args.json else False, mode=run_mode(args), announce=announce)
    report = None
    if not args.no_report:
        from reports.html import render

        report = render(result.path)
    if args.json:
        print(json.dumps(to_json(result, report), indent=2, default=str))
    else:
        print(format_table(result))
        print(f"\nstress directory: {result.path}")
        if report:
            print(f"report: {report}")
    sys.stdout.flush()
    return 0
