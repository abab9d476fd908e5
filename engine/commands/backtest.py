"""``deleverage backtest``: run one strategy on a file of bars (or a built-in scenario).

Examples::

    deleverage backtest --data bars.parquet --strategy buy_and_hold --venue binance_usdm \\
        --leverage 10 --margin isolated --cash 10000 --funding-rate 0.0001 --out runs/bh10
    deleverage backtest --scenario 312 --data-kind real --strategy buy_and_hold --leverage 25 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from risk.errors import DeleverageError


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["fast=10", "entry_time=2020-03-12T00:00Z"]`` -> ``{name: text}``; the values are typed
    against the strategy's own defaults by :func:`engine.strategy_ref.type_params`."""
    from engine.strategy_ref import split_params

    return split_params(items, "--param")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by commands that run a strategy (venue, margin, cash, funding)."""
    parser.add_argument("--venue", default=None, help="binance_usdm, binance_coinm, bitmex, bybit, okx, hyperliquid")
    parser.add_argument("--symbol", default=None, help="instrument on the venue (default: its BTC perpetual)")
    parser.add_argument("--margin", choices=("isolated", "cross"), default="isolated")
    parser.add_argument("--cash", type=float, default=None,
                        help="starting equity in settle currency (default 10,000 USDT, or 1 coin for inverse)")
    parser.add_argument("--funding-rate", type=float, default=None,
                        help="constant funding rate per interval for bars without a funding_rate column")
    parser.add_argument("--no-funding", action="store_true", help="allow bars without funding data and settle none")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("backtest", help="run a strategy on bars and write a run directory",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="CSV or Parquet file of bars in the canonical schema (feeds/schema.py)")
    src.add_argument("--scenario", help="a built-in scenario name (see `deleverage scenarios list`)")
    p.add_argument("--format", default=None,
                   help="format of --data when detection is not enough (see `deleverage data formats`)")
    p.add_argument("--funding", type=Path, help="funding history to place on the bars (any supported format)")
    p.add_argument("--mark", type=Path, help="mark-price klines (liquidation then triggers on the mark)")
    p.add_argument("--liquidations", type=Path, help="liquidation events or per-bar aggregates")
    p.add_argument("--start", help="window start (UTC, e.g. 2020-03-12); with --end builds the frame from all sources")
    p.add_argument("--end", help="window end (UTC, exclusive)")
    p.add_argument("--data-kind", choices=("real", "reconstructed"), default="reconstructed",
                   help="with --scenario: real bars (when available) or the reconstruction")
    p.add_argument("--strategy", default="buy_and_hold",
                   help="a reference strategy name, path/to/file.py:ClassName or package.module:ClassName "
                   "(any backtrader Strategy subclass)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="strategy parameter (repeatable)")
    p.add_argument("--leverage", type=float, default=None,
                   help="the feed's leverage (and the strategy's leverage parameter when it declares one)")
    add_run_options(p)
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/backtest-<time>)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.set_defaults(func=run)


def load_bars(args: argparse.Namespace) -> tuple[Any, dict[str, Any], str | None]:
    """Bars, their provenance and the scenario's default venue (None for files)."""
    if args.scenario:
        from feeds.scenarios import get_scenario

        scenario = get_scenario(args.scenario)
        bars = scenario.bars(data=args.data_kind)
        return bars, {"kind": bars.attrs.get("kind"), "sources": bars.attrs.get("source"),
                      "label": bars.attrs.get("label", scenario.title), "scenario": scenario.name}, scenario.default_venue
    from feeds.build import build_frame
    from feeds.detect import load

    extra = {"funding": args.funding, "mark": args.mark, "liquidations": args.liquidations}
    if args.start or args.end or any(extra.values()):
        if not (args.start and args.end):
            raise DeleverageError("--funding/--mark/--liquidations build a frame over a window: give --start and --end")
        probe = load(args.data, format=args.format, validate=False)
        symbol = args.symbol or probe.attrs.get("symbol")
        if not symbol:
            raise DeleverageError(f"{args.data}: the file does not name its symbol; pass --symbol")
        bars = build_frame(symbol=str(symbol), start=args.start, end=args.end, klines=probe,
                           venue=args.venue or probe.attrs.get("venue"),
                           **{k: v for k, v in extra.items() if v is not None})
    else:
        bars = load(args.data, format=args.format)
    sources = bars.attrs.get("sources") or [str(args.data)]
    return bars, {"kind": bars.attrs.get("kind", "real"), "sources": sources,
                  "label": str(args.data)}, bars.attrs.get("venue")


def run(args: argparse.Namespace) -> int:
    from engine.runner import RunConfig, run_backtest, save_run
    from risk.venues import get_instrument
    from engine.strategy_ref import load_strategy, run_params, type_params

    cls = load_strategy(args.strategy)
    params = type_params(cls, parse_params(args.param), "--param")
    params = run_params(cls, params, args.leverage)
    leverage = float(params.get("leverage", args.leverage if args.leverage is not None else 1.0))
    bars, info, scenario_venue = load_bars(args)
    venue = args.venue or scenario_venue or "binance_usdm"
    inst = get_instrument(venue, args.symbol)
    cash = args.cash if args.cash is not None else (1.0 if inst.inverse else 10_000.0)
    config = RunConfig(strategy=args.strategy, params=params, venue=venue, symbol=inst.symbol,
                       leverage=leverage, margin_mode=args.margin, cash=cash,
                       funding_rate=args.funding_rate, allow_no_funding=args.no_funding)
    result = run_backtest(bars, cls, config, data_info=info)
    out = args.out or Path("runs") / f"backtest-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    path = save_run(result, out, bars)
    report = None
    if not args.no_report:
        from reports.html import render_run

        report = render_run(path)
    if args.json:
        print(json.dumps({"run_dir": str(path), "report": str(report) if report else None, **result.summary},
                         indent=2, default=str))
    else:
        s = result.summary
        ccy = inst.settle_currency
        kind = info.get("kind") or "real"
        print(f"{args.strategy} on {info.get('label')} [{kind} data], {venue} {inst.symbol}, "
              f"{config.margin_mode}, leverage {config.leverage:g}")
        for note in result.config.get("announcements", []):
            print(f"  note: {note}")
        print(f"  equity {s['initial_cash']:,.6g} -> {s['final_equity']:,.6g} {ccy} "
              f"({s['total_return']:+.2%}), max drawdown {s['max_drawdown']:.2%}")
        if s["liquidated"]:
            print(f"  LIQUIDATED at {s['first_liquidation_time']}: trigger {s['first_liquidation_trigger']:,.2f}, "
                  f"fill {s['first_liquidation_price']:,.2f}")
        print(f"  funding {s['funding_total']:+,.6g} {ccy}, fees {s['fees_total']:,.6g} {ccy}, fills {s['fills']}")
        print(f"  run directory: {path}")
        if report:
            print(f"  report: {report}")
    sys.stdout.flush()
    return 0
