"""``deleverage data``: validate data files and fetch public exchange data into the cache.

Examples::

    deleverage data validate ../shared/data/bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv
    deleverage data validate BTCUSDT-1m-2021-05-19.zip --format binance_klines --allow-gaps
    deleverage data fetch binance --market um --type klines --symbol BTCUSDT --interval 1m \\
        --start 2021-05-19 --end 2021-05-20
    deleverage data fetch bitmex --type trade --symbol XBTUSD --bin-size 1m --start 2020-03-12 --end 2020-03-14
    deleverage data formats
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands.backtest import utc_time


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("data", help="validate data files; fetch Binance archive / BitMEX data",
                                   description="Validate data files and fetch public exchange data.")
    sub = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    v = sub.add_parser("validate", help="load FILE(s), print the validation report; exit 1 on findings, "
                                        "2 when a file cannot be read")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--format", help="loader name (default: detected); see `deleverage data formats`")
    v.add_argument("--market", help="Coinalyze market (EXCHANGE:SYMBOL) or Binance market (um|cm)")
    v.add_argument("--symbol", help="symbol, when the file name does not say")
    v.add_argument("--volume-unit", choices=("base", "contracts", "quote"), help="unit of the volume column")
    v.add_argument("--allow-gaps", action="store_true", help="report gaps as warnings instead of errors")
    v.add_argument("--allow-outliers", action="store_true",
                   help="report suspected one-bar bad prints as warnings instead of errors")
    v.add_argument("--funding-unit", choices=("auto", "fraction", "percent"), default="auto",
                   help="unit of funding rates (default: detected from the whole file; ambiguous files are refused)")
    v.set_defaults(func=_validate)

    f = sub.add_parser("fetch", help="download into the Parquet cache (checksums verified, resumable)")
    f.add_argument("source", choices=("binance", "bitmex"))
    f.add_argument("--symbol", required=True)
    f.add_argument("--start", required=True, type=utc_time, help="first UTC day (YYYY-MM-DD)")
    f.add_argument("--end", required=True, type=utc_time, help="UTC day after the last one (exclusive)")
    f.add_argument("--market", choices=("um", "cm"), help="Binance: USDⓈ-M (um, default) or COIN-M (cm)")
    f.add_argument("--type", dest="data_type", default=None,
                   help="Binance: klines (default), markPriceKlines, indexPriceKlines, premiumIndexKlines, fundingRate, "
                        "liquidationSnapshot, metrics; BitMEX: trade (default) or funding")
    f.add_argument("--interval", help="Binance kline interval (1m, default, 5m, 1h, ...)")
    f.add_argument("--period", choices=("auto", "daily", "monthly"),
                   help="Binance: daily or monthly archive files (default auto: monthly for whole months)")
    f.add_argument("--bin-size", help="BitMEX trade binSize (1m, default, 5m, 1h, 1d)")
    f.add_argument("--cache", help="cache directory (default $DELEVERAGE_CACHE or ~/.cache/deleverage)")
    f.add_argument("--base-url", help="archive/API base URL (default $DELEVERAGE_BINANCE_URL / $DELEVERAGE_BITMEX_URL)")
    f.add_argument("--delay", help="BitMEX: seconds between requests (default 2, or $DELEVERAGE_BITMEX_DELAY)")
    f.add_argument("--allow-gaps", action="store_true",
                   help="keep kline/trade files whose bars have gaps (never filled; default: refuse them)")
    f.add_argument("--allow-outliers", action="store_true",
                   help="keep kline/trade files with suspected one-bar bad prints (default: refuse them)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=_fetch)

    fm = sub.add_parser("formats", help="list the file formats and their loader names")
    fm.set_defaults(func=_formats)


def _validate(args: argparse.Namespace) -> int:
    from engine.cli import cli_words
    from feeds.detect import validate_file

    kwargs: dict[str, Any] = {}
    if args.allow_gaps:
        kwargs["allow_gaps"] = True
    if args.allow_outliers:
        kwargs["allow_outliers"] = True
    if args.funding_unit != "auto":
        kwargs["funding_unit"] = args.funding_unit
    from risk.errors import DeleverageError

    for dest in ("symbol", "market"):
        value = getattr(args, dest)
        if value is not None and not value.strip():
            raise DeleverageError(f"--{dest} is empty; expected "
                                  + ("a symbol such as BTCUSDT" if dest == "symbol" else "um, cm or a Coinalyze EXCHANGE:SYMBOL"))
    if args.symbol is not None:
        kwargs["symbol"] = args.symbol
    if args.volume_unit:
        kwargs["volume_unit"] = args.volume_unit
    if args.market is not None:
        kwargs["market"] = args.market
    failed = unreadable = 0
    used: set[str] = set()
    read = 0
    for path in args.files:
        for report in validate_file(path, format=args.format, **kwargs):
            used |= report.options_used
            if report.rows == 0 and [i.check for i in report.issues] == ["format"]:
                # the file could not be read at all (a folder, a binary file, no data rows, unknown
                # format): one line on stderr, exit 2, and the other files are still validated
                print(f"deleverage: error: {cli_words(report.issues[0].message, 'data')}", file=sys.stderr)
                unreadable += 1
                continue
            print(cli_words(report.format(), "data"))
            failed += not report.ok
            read += 1
    for dest, what in (("allow_gaps", "bar files (funding and open-interest gaps are warnings already; events have "
                                      "no bar grid)"),
                       ("allow_outliers", "trade and mark-price bars")):
        if read and getattr(args, dest) and dest not in used:
            print(f"deleverage: error: --{dest.replace('_', '-')} does not apply to the file"
                  f"{'s' if len(args.files) > 1 else ''} given; it applies to {what}", file=sys.stderr)
            return 2
    return 2 if unreadable else 1 if failed else 0


# Options of `data fetch` that only one source (and some data types) reads; any other combination is an error.
_BINANCE_ONLY = ("market", "interval", "period")
_BITMEX_ONLY = ("bin_size", "delay")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _check_fetch_options(args: argparse.Namespace) -> None:
    from feeds import fetch
    from risk.errors import DeleverageError

    def refuse(dest: str, why: str) -> None:
        raise DeleverageError(f"{_flag(dest)} does not apply to {why}")

    if args.source == "binance":
        for dest in _BITMEX_ONLY:
            if getattr(args, dest) is not None:
                refuse(dest, "data fetch binance (it is a BitMEX option)")
        data_type = args.data_type or "klines"
        if data_type in fetch.DATA_TYPES and data_type not in fetch.DATA_TYPES_WITH_INTERVAL and args.interval is not None:
            refuse("interval", f"--type {data_type} (only the kline types have an interval)")
        if args.period is not None and args.period != "auto":
            if data_type in fetch.MONTHLY_ONLY and args.period != "monthly":
                refuse("period", f"--type {data_type} (the archive has monthly files only)")
            if data_type in fetch.DAILY_ONLY and args.period != "daily":
                refuse("period", f"--type {data_type} (the archive has daily files only)")
    else:
        for dest in _BINANCE_ONLY:
            if getattr(args, dest) is not None:
                refuse(dest, "data fetch bitmex (it is a Binance option)")
        if args.data_type == "funding" and args.bin_size is not None:
            refuse("bin_size", "--type funding (BitMEX funding has no bins)")


def _fetch(args: argparse.Namespace) -> int:
    from feeds import fetch

    _check_fetch_options(args)
    log = (lambda msg: print(msg, file=sys.stderr))
    if args.source == "binance":
        data_type = args.data_type or "klines"
        interval = args.interval or ("1m" if data_type in fetch.DATA_TYPES_WITH_INTERVAL else None)
        paths = fetch.fetch_binance(market=args.market or "um", data_type=data_type, symbol=args.symbol,
                                    start=args.start, end=args.end, interval=interval, period=args.period or "auto",
                                    cache=args.cache, base_url=args.base_url, progress=not args.no_progress, log=log,
                                    allow_gaps=args.allow_gaps, allow_outliers=args.allow_outliers)
    else:
        delay = None if args.delay is None else fetch.check_delay(args.delay)
        paths = fetch.fetch_bitmex(symbol=args.symbol, start=args.start, end=args.end, kind=args.data_type or "trade",
                                   bin_size=args.bin_size or "1m", cache=args.cache, base_url=args.base_url,
                                   progress=not args.no_progress, delay=delay, log=log, allow_gaps=args.allow_gaps,
                                   allow_outliers=args.allow_outliers)
    for p in paths:
        print(p)
    return 0


def _formats(args: argparse.Namespace) -> int:
    from feeds.detect import FORMATS

    for name, fmt in FORMATS.items():
        print(f"{name:30s} {fmt.kind:17s} {fmt.description}")
    return 0
