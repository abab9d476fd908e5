"""``deleverage backtest``: run one strategy on a file of bars (or a built-in scenario).

Examples::

    deleverage backtest --data bars.parquet --strategy buy_and_hold --venue binance_usdm \\
        --leverage 10 --margin isolated --cash 10000 --funding-rate 0.0001 --out runs/bh10
    deleverage backtest --scenario 312 --data-kind real --strategy buy_and_hold --leverage 25 --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from risk.errors import DeleverageError

# Strategy parameters that are a look-back in bars: the strategy cannot signal before it has seen
# that many bars (its warm-up). The backtest refuses data that is not longer than the warm-up.
WARMUP_PARAMS: tuple[str, ...] = ("slow", "lookback", "window")
MIN_BARS = 2  # one bar gives no interval and no return


def positive_number(text: str) -> float:
    """argparse type: a finite number > 0 (``inf``, ``nan``, ``0``, ``-3`` and words are refused)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected a finite number > 0") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number > 0")
    return value


def funding_rate_number(text: str) -> float:
    """argparse type of ``--funding-rate``: a finite fraction per interval (it may be negative) within
    the range a funding file may hold (:data:`feeds.validate.MAX_ABS_FUNDING`, 5 % per interval);
    ``5`` (500 %) or ``0.5`` are refused, as they would be in a file."""
    import math

    from feeds.validate import MAX_ABS_FUNDING

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected a funding rate as a fraction per "
                                         "interval (0.0001 = 0.01 %)") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite funding rate (fraction per interval)")
    if abs(value) > MAX_ABS_FUNDING:
        raise argparse.ArgumentTypeError(
            f"{text!r} is {value:.4%} per interval; expected a fraction per interval within "
            f"+-{MAX_ABS_FUNDING:g} (+-{MAX_ABS_FUNDING:.0%}, the range a funding file may hold; 0.0001 = 0.01 %)")
    return value


# the type every command's --funding-rate uses (stress and optimize import it under this name)
finite_number = funding_rate_number


def utc_time(text: str) -> str:
    """argparse type: a UTC date or time pandas can read (``2020-03-12``, ``2020-03-12T06:00Z``)."""
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        ts = None
    if ts is None or pd.isna(ts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date or time; expected UTC such as 2020-03-12 or "
                                         "2020-03-12T06:00Z")
    if ts.tzinfo is not None and ts.utcoffset().total_seconds() != 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not in UTC; expected UTC such as 2020-03-12T06:00Z")
    return text


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
    parser.add_argument("--cash", type=positive_number, default=None,
                        help="starting equity in settle currency (default 10,000 USDT, or 1 coin for inverse)")
    parser.add_argument("--funding-rate", type=funding_rate_number, default=None,
                        help="constant funding rate per interval (a fraction within +-0.05) for bars without a "
                        "funding_rate column (bars with one: an error)")
    parser.add_argument("--no-funding", action="store_true",
                        help="settle no funding (bars with a funding_rate column: the column is left out)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("backtest", help="run a strategy on bars and write a run directory",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="CSV or Parquet file of bars in the canonical schema (feeds/schema.py)")
    src.add_argument("--scenario", help="a built-in scenario name (see `deleverage scenarios list`)")
    p.add_argument("--format", default=None,
                   help="format of --data when detection is not enough (see `deleverage data formats`)")
    p.add_argument("--funding", type=Path, help="funding history to place on the bars (any supported format; a file, "
                   "or a folder of funding files), settled on the bar holding each settlement at the bars' own interval")
    p.add_argument("--mark", type=Path, help="mark-price klines (liquidation then triggers on the mark)")
    p.add_argument("--liquidations", type=Path, help="liquidation events or per-bar aggregates")
    p.add_argument("--start", type=utc_time,
                   help="window start (UTC, e.g. 2020-03-12); with --end builds the frame from all sources")
    p.add_argument("--end", type=utc_time, help="window end (UTC, exclusive)")
    p.add_argument("--data-kind", choices=("real", "reconstructed"), default=None,
                   help="with --scenario: real bars (when available) or the reconstruction (default)")
    p.add_argument("--data-path", default=None,
                   help="with --scenario --data-kind real: file or folder of the real data (default ../shared/data)")
    p.add_argument("--funding-unit", choices=("auto", "fraction", "percent"), default="auto",
                   help="unit of the funding rates in --funding (or in the bars' funding_rate column): "
                        "auto detects it from the whole file and refuses an ambiguous one")
    p.add_argument("--allow-outliers", action="store_true",
                   help="keep suspected one-bar bad prints (a bar 1.5x outside its neighbours and its mark/index)")
    p.add_argument("--strategy", default="buy_and_hold",
                   help="a reference strategy name, path/to/file.py:ClassName or package.module:ClassName "
                   "(any backtrader Strategy subclass)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="strategy parameter (repeatable)")
    p.add_argument("--leverage", type=positive_number, default=None,
                   help="the feed's leverage (and the strategy's leverage parameter when it declares one)")
    add_run_options(p)
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/backtest-<time>); "
                   "must be new or empty unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--partial-liquidation", action=argparse.BooleanOptionalAction, default=False,
                   help="the venue's partial liquidation runs before a full one (risk/partial.py, both engines; "
                        "default off: whole-position liquidation)")
    p.add_argument("--adl-quantile", type=float, default=None, metavar="Q",
                   help="with an ADL flow in the bars: the position's assumed rank quantile on its side, in (0, 1] "
                        "(default 1: the front of the queue, the worst case)")
    p.add_argument("--adl-queue-notional", type=float, default=0.0, metavar="USD",
                   help="with an ADL flow: assumed notional of the rest of the side's ADL queue (default 0)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.set_defaults(func=run)


def load_bars(args: argparse.Namespace) -> tuple[Any, dict[str, Any], str | None]:
    """Bars, their provenance and the scenario's default venue (None for files)."""
    if args.scenario:
        from feeds.scenarios import get_scenario

        scenario = get_scenario(args.scenario)
        from feeds.scenarios import ADL_FLOWS

        # a venue with an ADL flow in this scenario (2025-10-10 on Hyperliquid) gets its bars with the flow
        flow_venue = args.venue if (scenario.name, args.venue) in ADL_FLOWS else None
        bars = scenario.bars(data=args.data_kind or "reconstructed", data_path=args.data_path, venue=flow_venue)
        return bars, {"kind": bars.attrs.get("kind"), "sources": bars.attrs.get("source"),
                      "label": bars.attrs.get("label", scenario.title), "scenario": scenario.name}, scenario.default_venue
    from feeds.build import build_frame
    from feeds.detect import load

    extra = {"funding": args.funding, "mark": args.mark, "liquidations": args.liquidations}
    opts = {"allow_outliers": args.allow_outliers, "funding_unit": args.funding_unit}
    if args.data.is_file():
        _, kind = file_kind(args.data, args.format)
        check_file_kind("--data", args.data, kind, ("bars",))
    for name, path in extra.items():
        if path is not None and not Path(path).exists():
            raise DeleverageError(f"--{name} {path}: file not found; expected an existing file or folder")
        if path is not None and Path(path).is_file():
            check_file_kind(f"--{name}", path, file_kind(path)[1], EXTRA_KINDS[name])
        elif path is not None and Path(path).is_dir():  # a folder: each data file in it (feeds.build.folder_files)
            from feeds.build import folder_files
            from feeds.errors import FeedError

            try:
                members = folder_files(path)
            except FeedError as exc:
                raise DeleverageError(f"--{name} {exc}") from None
            for member in members:
                check_file_kind(f"--{name} {path}:", member, file_kind(member)[1], EXTRA_KINDS[name])
    if args.start or args.end or any(extra.values()):
        if not (args.start and args.end):
            raise DeleverageError("--funding/--mark/--liquidations build a frame over a window: give --start and --end")
        probe = load(args.data, format=args.format, validate=False, **opts)
        symbol = args.symbol or probe.attrs.get("symbol")
        if not symbol:
            raise DeleverageError(f"{args.data}: the file does not name its symbol; pass --symbol")
        load_options = {"mark": {"allow_outliers": args.allow_outliers},
                        "funding": {"funding_unit": args.funding_unit}}
        bars = build_frame(symbol=str(symbol), start=args.start, end=args.end, klines=probe,
                           venue=args.venue or probe.attrs.get("venue"), allow_outliers=args.allow_outliers,
                           load_options={k: v for k, v in load_options.items() if extra.get(k) is not None},
                           **{k: v for k, v in extra.items() if v is not None})
    else:
        bars = load(args.data, format=args.format, **opts)
    sources = bars.attrs.get("sources") or [str(args.data)]
    return bars, {"kind": bars.attrs.get("kind", "real"), "sources": sources,
                  "label": str(args.data)}, bars.attrs.get("venue")


def warmup_bars(strategy_cls: Any, params: dict[str, Any]) -> tuple[int, str | None]:
    """The strategy's warm-up in bars (its largest look-back parameter) and that parameter's name."""
    from engine.strategy_ref import param_defaults

    defaults = param_defaults(strategy_cls)  # any bt.Strategy (user classes too)
    best, name = 0, None
    for key in WARMUP_PARAMS:
        value = params.get(key, defaults.get(key))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > best:
            best, name = int(value), key
    return best, name


def check_length(bars: Any, label: str, strategy: str, strategy_cls: Any, params: dict[str, Any]) -> None:
    """Refuse bars too short to run on: fewer than :data:`MIN_BARS`, or not longer than the warm-up."""
    n = len(bars)
    if n < MIN_BARS:
        raise DeleverageError(f"{label}: {n} bar{'' if n == 1 else 's'}; expected at least {MIN_BARS} "
                              "(too few bars for the interval and a return)")
    need, name = warmup_bars(strategy_cls, params)
    if name is not None and n <= need:
        raise DeleverageError(f"{label}: {n} bars; {strategy} needs more than {name}={need} bars of warm-up before "
                              f"its first signal (give a longer window, or a smaller --param {name}=...)")


KIND_WORDS = {"events": "liquidation events", "funding": "funding rates", "mark": "mark-price klines",
              "index": "index-price klines", "premium": "premium-index klines", "open_interest": "open interest",
              "liquidation_bars": "per-bar liquidation aggregates", "bars": "price bars"}
# what each --funding/--mark/--liquidations file must hold (frame kinds of feeds.detect.FORMATS)
EXTRA_KINDS = {"funding": ("funding",), "mark": ("mark",), "liquidations": ("events", "liquidation_bars")}


def file_kind(path: Path, fmt: str | None = None) -> tuple[str, str]:
    """``(format, kind)`` of a data file as feeds.detect sees it (kind: bars, funding, mark, events, ...)."""
    from feeds.detect import FORMATS, detect_format

    name = fmt or detect_format(path)
    spec = FORMATS.get(name)
    return name, (spec.kind if spec is not None else "bars")


def check_file_kind(option: str, path: Path, kind: str, expected: tuple[str, ...]) -> None:
    if kind not in expected:
        want = " or ".join(KIND_WORDS.get(k, k) for k in expected)
        raise DeleverageError(f"{option} {path}: holds {KIND_WORDS.get(kind, kind)}, not {want}; "
                              f"expected a file of {want}")


def check_options(args: argparse.Namespace) -> None:
    """Options that contradict each other, or that have no effect in this combination: one line each,
    before any data is read (a run never silently ignores an option)."""
    if args.scenario:
        given = [flag for flag, on in (
            ("--start", args.start), ("--end", args.end), ("--funding", args.funding), ("--mark", args.mark),
            ("--liquidations", args.liquidations), ("--format", args.format),
            ("--funding-unit", args.funding_unit != "auto"), ("--allow-outliers", args.allow_outliers)) if on]
        if given:
            raise DeleverageError(f"{', '.join(given)}: not read with --scenario {args.scenario} (a built-in "
                                  "scenario has its own window and sources); expected them with --data FILE only")
        if args.data_path is not None and args.data_kind != "real":
            raise DeleverageError("--data-path: read only with --scenario NAME --data-kind real (the reconstruction "
                                  "needs no files); add --data-kind real or drop --data-path")
    else:
        if args.data_kind is not None:
            raise DeleverageError(f"--data-kind {args.data_kind}: goes with --scenario NAME; --data {args.data} "
                                  "is used as it is")
        if args.data_path is not None:
            raise DeleverageError("--data-path goes with --scenario NAME --data-kind real; with --data FILE give "
                                  "the file")
        if bool(args.start) != bool(args.end):
            given = "--start" if args.start else "--end"
            raise DeleverageError(f"{given}: a window needs both --start and --end (UTC; --end exclusive)")
    if args.no_funding:
        clash = [flag for flag, on in (("--funding-rate", args.funding_rate is not None),
                                        ("--funding", args.funding is not None)) if on]
        if clash:
            raise DeleverageError(f"--no-funding with {' and '.join(clash)}: contradictory (settle no funding, "
                                  "or settle that funding); expected one of them")
    if args.funding is not None and args.funding_rate is not None:
        raise DeleverageError(f"--funding-rate with --funding {args.funding}: two funding sources; expected the "
                              "file or the constant rate, not both")
    if args.adl_quantile is not None and not 0.0 < args.adl_quantile <= 1.0:
        raise DeleverageError(f"--adl-quantile: expected a fraction in (0, 1], got {args.adl_quantile:g}")
    if not (args.adl_queue_notional >= 0.0 and math.isfinite(args.adl_queue_notional)):
        raise DeleverageError(f"--adl-queue-notional: expected a notional >= 0, got {args.adl_queue_notional:g}")


def check_adl_options(bars: Any, label: str, args: argparse.Namespace) -> None:
    """``--adl-quantile`` / ``--adl-queue-notional`` are read only when the bars carry an ADL flow."""
    if "adl_long_notional" in bars.columns or "adl_short_notional" in bars.columns:
        return
    given = [flag for flag, on in (("--adl-quantile", args.adl_quantile is not None),
                                    ("--adl-queue-notional", args.adl_queue_notional != 0.0)) if on]
    if given:
        raise DeleverageError(f"{', '.join(given)}: {label} has no ADL flow (adl_long_notional / "
                              "adl_short_notional columns), so there is no ADL queue to place the position in; "
                              "expected bars with an ADL flow (e.g. --scenario 2025-10-10 --venue hyperliquid)")


def check_funding(bars: Any, label: str, args: argparse.Namespace) -> Any:
    """The run's one funding source, in this command's words; returns the bars to run on.

    Bars carrying a ``funding_rate`` column settle it, so a constant ``--funding-rate`` would be
    ignored: an error. ``--no-funding`` on such bars really switches funding off (the column is
    left out of the run, and the run says so). Bars without funding need a stated choice."""
    has = "funding_rate" in bars.columns
    if has and args.funding_rate is not None:
        raise DeleverageError(f"--funding-rate {args.funding_rate:g}: {label} already carries funding rates (a "
                              "funding_rate column), which would be settled instead; expected no --funding-rate "
                              "(settle the bars' rates), or --no-funding to settle none")
    if has and args.no_funding:
        bars = bars.drop(columns=["funding_rate"])
        bars.attrs.setdefault("notes", [])
        bars.attrs["notes"] = list(bars.attrs["notes"]) + [
            "--no-funding: the funding rates in the bars are left out, no funding is settled"]
        return bars
    if not has and args.funding_unit != "auto" and not args.scenario:
        raise DeleverageError(f"--funding-unit {args.funding_unit}: {label} has no funding rates to read in that "
                              "unit; expected it with --funding FILE or bars with a funding_rate column")
    if has or args.funding_rate is not None or args.no_funding:
        return bars
    raise DeleverageError(f"{label}: the bars have no funding rates; expected --funding FILE (with --start and --end), "
                          "a constant --funding-rate RATE per interval, or --no-funding to settle none")


def prepare_out(out: Path, overwrite: bool) -> None:
    """``--out`` must be a new or empty folder (or a previous run with ``--overwrite``), and writable."""
    if out.exists() and not out.is_dir():
        raise DeleverageError(f"--out {out}: is an existing file; expected a folder for the run directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DeleverageError(f"--out {out}: already holds files (a previous run?); expected a new or empty folder "
                                  "(pass --overwrite to replace the run in it)")
        if not (out / "config.json").exists():
            raise DeleverageError(f"--out {out}: holds files that are not a deleverage run; expected a run directory "
                                  "to overwrite (nothing was changed)")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DeleverageError(f"--out {out}: {parent} is a file; expected a folder path")
    import os

    if not os.access(parent, os.W_OK | os.X_OK):
        raise DeleverageError(f"--out {out}: cannot write in {parent} (no permission); expected a writable folder")


def write_run(result: Any, out: Path, bars: Any, overwrite: bool) -> Path:
    """Write the run into a temporary sibling folder, then move it into place (never a half-written run)."""
    import os
    import shutil

    from engine.runner import save_run

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_run(result, tmp, bars)
        if out.exists():
            if any(out.iterdir()) and not overwrite:  # appeared while the backtest ran
                raise DeleverageError(f"--out {out}: was filled while the backtest ran; the run is not written")
            out.rename(old)
        tmp.rename(out)
    except OSError as exc:
        raise DeleverageError(f"--out {out}: cannot write the run directory ({exc.strerror or exc}); "
                              "expected a writable folder") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def run(args: argparse.Namespace) -> int:
    from collections import Counter

    from engine.runner import RunConfig, run_backtest, watch_refusals
    from risk.venues import get_instrument
    from engine.strategy_ref import load_strategy, run_params, type_params

    check_options(args)
    cls = load_strategy(args.strategy)
    params = type_params(cls, parse_params(args.param), "--param")
    if "leverage" in params and args.leverage is not None:
        raise DeleverageError(f"--param leverage={params['leverage']:g} with --leverage {args.leverage:g}: two "
                              "leverages; expected one of them (--leverage sets the strategy's leverage parameter)")
    params = run_params(cls, params, args.leverage)
    leverage = float(params.get("leverage", args.leverage if args.leverage is not None else 1.0))
    out = args.out or Path("runs") / f"backtest-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    prepare_out(out, args.overwrite)
    bars, info, scenario_venue = load_bars(args)
    label = f"--data {args.data}" if args.data else f"--scenario {args.scenario}"
    check_length(bars, label, args.strategy, cls, params)
    bars = check_funding(bars, label, args)
    check_adl_options(bars, label, args)
    venue = args.venue or scenario_venue or "binance_usdm"
    inst = get_instrument(venue, args.symbol)
    cash = args.cash if args.cash is not None else (1.0 if inst.inverse else 10_000.0)
    config = RunConfig(strategy=args.strategy, params=params, venue=venue, symbol=inst.symbol,
                       leverage=leverage, margin_mode=args.margin, cash=cash,
                       funding_rate=args.funding_rate, allow_no_funding=args.no_funding,
                       partial_liquidation=args.partial_liquidation, adl_quantile=args.adl_quantile,
                       adl_queue_notional=args.adl_queue_notional)
    strategy_cls, refusals = watch_refusals(cls)
    result = run_backtest(bars, strategy_cls, config, data_info=info)
    path = write_run(result, out, bars, args.overwrite)
    report = None
    if not args.no_report:
        from reports.html import render_run

        report = render_run(path)
    s = result.summary
    refused = Counter(refusals)
    all_refused = bool(refusals) and not s["fills"]
    if args.json:
        print(json.dumps({"run_dir": str(path), "report": str(report) if report else None, **s,
                          "refused": all_refused, "orders_refused": dict(refused),
                          "no_trade": not s["fills"] and not refusals}, indent=2, default=str))
    else:
        ccy = inst.settle_currency
        kind = info.get("kind") or "real"
        print(f"{args.strategy} on {info.get('label')} [{kind} data], {venue} {inst.symbol}, "
              f"{config.margin_mode}, leverage {config.leverage:g}")
        for note in result.config.get("announcements", []):
            print(f"  note: {note}")
        for note in bars.attrs.get("notes") or []:
            if "left out" in str(note):
                print(f"  data: {note}")
        if all_refused:
            why = "; ".join(f"{n} order(s) refused: {reason}" for reason, n in refused.most_common(3))
            print(f"  REFUSED: the broker rejected every order, no position was ever held ({why})")
        elif refusals:
            print(f"  note: {len(refusals)} order(s) refused: " + "; ".join(refused))
        if not s["fills"] and not refusals:
            print("  NO TRADE: the strategy placed no order that filled; no position was ever held (an entry "
                  "after the data, a position smaller than the venue's lot, or no signal in these bars)")
        print(f"  equity {s['initial_cash']:,.6g} -> {s['final_equity']:,.6g} {ccy} "
              f"({s['total_return']:+.2%}), max drawdown {s['max_drawdown']:.2%}")
        if s.get("partial_liquidations"):
            print(f"  partial liquidations: {s['partial_liquidations']} (the venue's rule closed part of the position)")
        if s.get("adl_events"):
            print(f"  AUTO-DELEVERAGED: {s['adl_events']} ADL close(s), {s['adl_notional']:,.2f} notional "
                  f"(see adl.parquet)")
        if s["liquidated"]:
            print(f"  LIQUIDATED at {s['first_liquidation_time']}: trigger {s['first_liquidation_trigger']:,.2f}, "
                  f"fill {s['first_liquidation_price']:,.2f}")
        cover = s.get("insurance_cover_total") or 0.0
        if cover > 0.0:
            print(f"  INSOLVENT: funding took more than the position's margin; it was closed at the market and the "
                  f"insurance fund covered {cover:,.6g} {ccy} (credited to the account, not a fee)")
        line = f"  funding {s['funding_total']:+,.6g} {ccy}, fees {s['fees_total']:,.6g} {ccy}, fills {s['fills']}"
        if cover > 0.0:
            line += f", insurance fund's cover +{cover:,.6g} {ccy}"
        print(line)
        print(f"  run directory: {path}")
        if report:
            print(f"  report: {report}")
    sys.stdout.flush()
    return 0
