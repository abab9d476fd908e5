"""Binance futures: the public data archive (data.binance.vision) and forceOrder recordings.

Archive files (CSV, or the archive's ZIP holding one CSV; with or without a header row; epoch
milliseconds or microseconds) for USDⓈ-M (``um``) and COIN-M (``cm``) futures:

==================== ======================================= ===============================
data type            loader                                  canonical output
==================== ======================================= ===============================
klines               :func:`load_klines`                     bars (OHLC, volume, quote_volume)
markPriceKlines      ``load_klines(kind="markPriceKlines")`` mark_open..mark_close
indexPriceKlines     ``load_klines(kind="indexPriceKlines")`` index_close
premiumIndexKlines   ``load_klines(kind="premiumIndexKlines")`` premium_close
fundingRate          :func:`load_funding`                    funding settlements
liquidationSnapshot  :func:`load_liquidation_snapshot`       liquidation events
metrics              :func:`load_metrics`                    open-interest snapshots
forceOrder stream    :func:`load_force_orders_jsonl`         liquidation events
==================== ======================================= ===============================

Market, data type, symbol and interval are read from the archive path
(``.../futures/um/daily/markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2021-05-19.zip``) when present,
and can always be named explicitly (a renamed mark-price file cannot be told from a trade
kline file by its name; an all-zero volume in a "klines" file is reported as that mix-up).

COIN-M units: kline ``volume`` is in contracts and ``base_volume`` in coins; the canonical
``volume`` is ``base_volume`` and ``quote_volume`` is contracts x contract size (USD).
liquidationSnapshot quantities are contracts: ``notional`` = contracts x contract size (USD)
and ``qty`` = notional / average price. metrics: ``sum_open_interest`` is contracts and
``sum_open_interest_value`` coins.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feeds.errors import FeedError, UnitMismatchError, where
from feeds.frames import add_finding, check_symbols, finish, make_bars, make_events, numeric
from feeds.readers import PathLike, open_text, read_csv
from feeds.timeparse import UNIT_FACTOR_NS, epoch_unit, parse_times

KLINE_KINDS = ("klines", "markPriceKlines", "indexPriceKlines", "premiumIndexKlines")
KLINE_COLUMNS_UM = ["open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
                    "taker_buy_volume", "taker_buy_quote_volume", "ignore"]
KLINE_COLUMNS_CM = ["open_time", "open", "high", "low", "close", "volume", "close_time", "base_volume", "count",
                    "taker_buy_volume", "taker_buy_base_volume", "ignore"]
FUNDING_COLUMNS = ["calc_time", "funding_interval_hours", "last_funding_rate"]
LIQ_SNAPSHOT_COLUMNS = ["time", "side", "order_type", "time_in_force", "original_quantity", "price", "average_price",
                        "order_status", "last_fill_quantity", "accumulated_fill_quantity"]
METRICS_COLUMNS = ["create_time", "symbol", "sum_open_interest", "sum_open_interest_value",
                   "count_toptrader_long_short_ratio", "sum_toptrader_long_short_ratio", "count_long_short_ratio",
                   "sum_taker_long_short_vol_ratio"]
VENUE = {"um": "binance_usdm", "cm": "binance_coinm"}

_FILE_RE = re.compile(r"^(?P<symbol>[A-Z0-9_]+)-(?P<what>[A-Za-z0-9]+)-(?P<date>\d{4}-\d{2}(?:-\d{2})?)\.(?:zip|csv)$")


def parse_archive_path(path: PathLike) -> dict[str, str]:
    """What an archive path says: market (um/cm), period, data_type, symbol, interval, date."""
    p = Path(path)
    info: dict[str, str] = {}
    m = _FILE_RE.match(p.name)
    if m:
        info["symbol"], info["date"] = m["symbol"], m["date"]
        what = m["what"]
        if re.fullmatch(r"\d+(m|h|d|w|mo|s)", what):
            info["interval"] = what
        else:
            info["data_type"] = what
    parts = p.parts
    for i, part in enumerate(parts):
        if part == "futures" and i + 3 < len(parts):
            info["market"] = parts[i + 1]
            info["period"] = parts[i + 2]
            info["data_type"] = parts[i + 3]
    if "market" not in info and "symbol" in info:
        info["market_guess"] = coin_market(info["symbol"])
    return info


def coin_market(symbol: str) -> str:
    """``cm`` for COIN-M symbols (``BTCUSD_PERP``, ``BTCUSD_210625``), else ``um``."""
    return "cm" if re.fullmatch(r"[A-Z0-9]+USD_(PERP|\d{6})", symbol) else "um"


def coinm_contract_size(symbol: str, contract_size: float | None = None) -> float:
    """USD per COIN-M contract: 100 for BTC contracts, 10 for the others (Binance's specs)."""
    if contract_size is not None:
        return float(contract_size)
    return 100.0 if symbol.startswith("BTCUSD_") else 10.0


def _pandas_interval(text: str) -> str:
    m = re.fullmatch(r"(\d+)(m|h|d|w|mo|s)", text)
    if not m:
        raise FeedError(f"unknown kline interval {text!r}; expected e.g. 1m, 5m, 1h, 1d")
    n, u = m.groups()
    suffix = {"s": "s", "m": "min", "h": "h", "d": "D", "w": "W", "mo": "MS"}[u]
    return n + suffix


def _resolve(path: PathLike, market: str | None, symbol: str | None, kind: str | None = None) -> tuple[str, str | None, dict]:
    info = parse_archive_path(path)
    market = market or info.get("market") or info.get("market_guess") or "um"
    if market not in VENUE:
        raise FeedError(f"{path}: unknown Binance futures market {market!r}; expected --market um (USDⓈ-M) or cm (COIN-M)")
    if symbol is not None:
        if not str(symbol).strip():
            raise FeedError(f"{path}: --symbol is empty; expected a symbol such as BTCUSDT")
        if info.get("symbol") and symbol != info["symbol"]:
            raise FeedError(f"{path}: --symbol {symbol} contradicts the file name, which says {info['symbol']}; "
                            "expected the file's own symbol")
    return market, symbol or info.get("symbol"), info


def load_klines(path: PathLike, *, kind: str | None = None, market: str | None = None, symbol: str | None = None,
                interval: str | None = None, contract_size: float | None = None, validate: bool = True,
                allow_gaps: bool = False, allow_outliers: bool = False) -> pd.DataFrame:
    """Load one archive kline file (any of :data:`KLINE_KINDS`) as canonical bars."""
    market, symbol, info = _resolve(path, market, symbol)
    kind = kind or (info.get("data_type") if info.get("data_type") in KLINE_KINDS else "klines")
    if kind not in KLINE_KINDS:
        raise FeedError(f"{path}: unknown kline kind {kind!r}; expected one of {KLINE_KINDS}")
    names = KLINE_COLUMNS_CM if market == "cm" else KLINE_COLUMNS_UM
    raw, label = read_csv(path, names=names)
    if raw.attrs.get("has_header"):
        header = list(pd.read_csv(open_text(path)[0], nrows=0).columns)
        if header and header[7] in ("quote_volume", "base_volume") and header[7] != names[7]:
            other = "cm" if header[7] == "base_volume" else "um"
            raise UnitMismatchError(
                f"{where(label, None, header[7])}: the header says this is a {other.upper()} file ({header[7]}) but it is "
                f"being loaded as market {market!r}; expected --market {other} (volume units differ: contracts vs coins)")
    interval = interval or info.get("interval")
    freq = _pandas_interval(interval) if interval else None
    open_t = parse_times(raw["open_time"], file=label, column="open_time")
    close_t = parse_times(raw["close_time"], file=label, column="close_time")
    if freq and len(raw) and not freq.endswith("MS"):
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
        unit = epoch_unit(float(raw["open_time"].iloc[0]))
        expected = open_t + step - pd.Timedelta(UNIT_FACTOR_NS[unit], unit="ns")
        bad = np.asarray(close_t != expected)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FeedError(f"{where(label, i + 1, 'close_time', open_t[i])}: close_time {raw['close_time'].iloc[i]} is not "
                            f"open_time + {interval} - 1 {unit}; expected {interval} bars with both times in the same unit")
    cols: dict[str, np.ndarray] = {}
    price = {c: numeric(raw, c, label) for c in ("open", "high", "low", "close")}
    notes: list[str] = []
    if kind == "klines":
        cols.update(price)
        if market == "cm":
            size = coinm_contract_size(symbol or "", contract_size)
            cols["volume"] = numeric(raw, "base_volume", label)
            cols["quote_volume"] = numeric(raw, "volume", label) * size
            notes.append(f"COIN-M: volume = base_volume (coins); quote_volume = contracts x {size:g} USD")
        else:
            cols["volume"] = numeric(raw, "volume", label)
            cols["quote_volume"] = numeric(raw, "quote_volume", label)
        if len(raw) > 1 and not cols["volume"].any() and not numeric(raw, "count", label).any():
            raise FeedError(f"{where(label, 1, 'volume')}: every bar has zero volume and zero trades: this looks like a "
                            "markPriceKlines / indexPriceKlines / premiumIndexKlines file; expected trade klines "
                            "(name the format, e.g. --format binance_markPriceKlines)")
    elif kind == "markPriceKlines":
        cols.update({f"mark_{c}": v for c, v in price.items()})
    elif kind == "indexPriceKlines":
        cols["index_close"] = price["close"]
    else:
        cols["premium_close"] = price["close"]
    findings: list[tuple] = []
    if kind == "klines":
        count = numeric(raw, "count", label)
        findings.append((count < 0, "count", "negative", lambda i: f"trade count {count[i]:g} is negative; expected >= 0"))
        findings.append((np.isfinite(count) & (count != np.round(count)), "count", "schema",
                         lambda i: f"trade count {count[i]:g} is not a whole number; expected a count of trades"))
        pairs = (("taker_buy_volume", "volume"), ("taker_buy_quote_volume", "quote_volume")) if market == "um" else (
            ("taker_buy_volume", "volume"), ("taker_buy_base_volume", "base_volume"))
        for part, whole in pairs:
            p_, w_ = numeric(raw, part, label), numeric(raw, whole, label)
            with np.errstate(invalid="ignore"):
                findings.append((p_ > w_ * (1 + 1e-9) + 1e-12, part, "volume",
                                 lambda i, p_=p_, w_=w_, part=part, whole=whole:
                                 f"{part} {p_[i]:g} exceeds {whole} {w_[i]:g}; expected the taker-buy part of the volume "
                                 "to be at most the volume"))
                findings.append((p_ < 0, part, "negative", lambda i, p_=p_: f"value {p_[i]:g} is negative; expected >= 0"))
    attrs: dict[str, Any] = {"source": str(path), "source_label": label, "format": f"binance_{kind}",
                             "venue": VENUE[market], "symbol": symbol, "interval": freq, "notes": notes,
                             "volume_unit": "coins" if market == "cm" else "base"}
    frame = make_bars(open_t, cols, attrs)
    frame_kind = {"klines": "bars", "markPriceKlines": "mark", "indexPriceKlines": "index",
                  "premiumIndexKlines": "premium"}[kind]
    frame.attrs["frame_kind"] = frame_kind
    for mask, column, check, describe in findings:
        add_finding(frame, mask, label, column, check, describe, times=open_t)
    return finish(frame, frame_kind, validate, allow_gaps=allow_gaps, allow_outliers=allow_outliers)


def load_funding(path: PathLike, *, market: str | None = None, symbol: str | None = None,
                 validate: bool = True, allow_gaps: bool = True, funding_unit: str = "auto") -> pd.DataFrame:
    """Archive ``fundingRate`` file (``calc_time,funding_interval_hours,last_funding_rate``)."""
    market, symbol, _ = _resolve(path, market, symbol)
    raw, label = read_csv(path, names=FUNDING_COLUMNS)
    if symbol is None:
        raise FeedError(f"{label}: cannot tell the symbol from the file name; pass symbol=")
    times = parse_times(raw["calc_time"], file=label, column="calc_time")
    frame = pd.DataFrame({"time": times, "venue": VENUE[market], "symbol": symbol,
                          "funding_rate": numeric(raw, "last_funding_rate", label),
                          "interval_hours": numeric(raw, "funding_interval_hours", label)})
    frame.attrs.update({"kind": "real", "source": str(path), "source_label": label, "format": "binance_fundingRate",
                        "venue": VENUE[market], "symbol": symbol, "frame_kind": "funding",
                        "funding_rate_column": "last_funding_rate", "interval_column": "funding_interval_hours"})
    return finish(frame, "funding", validate, allow_gaps=allow_gaps, funding_unit=funding_unit)


def load_liquidation_snapshot(path: PathLike, *, market: str | None = None, symbol: str | None = None,
                              contract_size: float | None = None, validate: bool = True) -> pd.DataFrame:
    """Archive ``liquidationSnapshot`` file as liquidation events (``accumulated_fill_quantity`` filled)."""
    market, symbol, _ = _resolve(path, market, symbol)
    raw, label = read_csv(path, names=LIQ_SNAPSHOT_COLUMNS)
    if symbol is None:
        raise FeedError(f"{label}: cannot tell the symbol from the file name; pass symbol=")
    times = parse_times(raw["time"], file=label, column="time")
    side = raw["side"].astype("str").str.strip().str.lower()
    bad = ~side.isin(["buy", "sell"]).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FeedError(f"{where(label, i + 1, 'side', times[i])}: {raw['side'].iloc[i]!r}; expected BUY or SELL")
    price = numeric(raw, "price", label)
    avg = numeric(raw, "average_price", label)
    qty = numeric(raw, "accumulated_fill_quantity", label)
    original = numeric(raw, "original_quantity", label)
    findings: list[tuple] = []
    findings.append((original <= 0, "original_quantity", "nonpositive",
                     lambda i: f"original_quantity {original[i]:g} is not positive; expected the order's quantity > 0"))
    with np.errstate(invalid="ignore"):
        over = (original > 0) & (qty > original * (1 + 1e-9))
    findings.append((over, "accumulated_fill_quantity", "fill",
                     lambda i: f"accumulated_fill_quantity {qty[i]:g} exceeds original_quantity {original[i]:g}; expected a "
                               "fill of at most the order's quantity"))
    if "last_fill_quantity" in raw.columns:
        last = numeric(raw, "last_fill_quantity", label)
        with np.errstate(invalid="ignore"):
            findings.append((last > qty * (1 + 1e-9), "last_fill_quantity", "fill",
                             lambda i: f"last_fill_quantity {last[i]:g} exceeds accumulated_fill_quantity {qty[i]:g}; "
                                       "expected the last fill to be part of the accumulated fill"))
    notes = []
    if market == "cm":
        size = coinm_contract_size(symbol, contract_size)
        notional = qty * size
        qty = notional / avg
        notes.append(f"COIN-M: quantities are contracts of {size:g} USD; notional = contracts x {size:g}, qty = notional / average_price")
    else:
        notional = avg * qty
    cols = {"venue": VENUE[market], "symbol": symbol, "position_side": np.where(side == "sell", "long", "short"),
            "order_side": side.to_numpy(), "price": price, "avg_price": avg, "qty": qty, "notional": notional}
    frame = make_events(times, cols, {"source": str(path), "source_label": label, "format": "binance_liquidationSnapshot",
                                      "venue": VENUE[market], "symbol": symbol, "frame_kind": "events"})
    frame.attrs["notes"] = notes
    for mask, column, check, describe in findings:
        add_finding(frame, mask, label, column, check, describe, times=times)
    return finish(frame, "events", validate)


def load_metrics(path: PathLike, *, market: str | None = None, symbol: str | None = None,
                 contract_size: float | None = None, validate: bool = True, allow_gaps: bool = True) -> pd.DataFrame:
    """Archive ``metrics`` file as open-interest snapshots.

    ``create_time`` is text without a zone (``2021-12-01 00:05:00``); Binance publishes it in
    UTC, and this loader says so explicitly (``assume_utc=True``).
    """
    given = symbol
    market, symbol, _ = _resolve(path, market, symbol)
    raw, label = read_csv(path, names=METRICS_COLUMNS)
    times = parse_times(raw["create_time"], file=label, column="create_time", assume_utc=True)
    symbol = check_symbols(label, path, given, raw["symbol"], times=times) or symbol
    oi = numeric(raw, "sum_open_interest", label)
    value = numeric(raw, "sum_open_interest_value", label)
    symbol = symbol or (str(raw["symbol"].iloc[0]) if len(raw) else None)
    if market == "cm":
        size = coinm_contract_size(symbol or "", contract_size)
        cols = {"open_interest": value, "open_interest_notional": oi * size}
    else:
        cols = {"open_interest": oi, "open_interest_notional": value}
    frame = pd.DataFrame({"time": times, **cols})
    frame.attrs.update({"kind": "real", "source": str(path), "source_label": label, "format": "binance_metrics",
                        "venue": VENUE[market], "symbol": symbol, "frame_kind": "open_interest"})
    return finish(frame, "open_interest", validate, allow_gaps=allow_gaps)


def load_force_orders_jsonl(path: PathLike, *, contract_size: float | None = None, validate: bool = True) -> pd.DataFrame:
    """Binance ``<symbol>@forceOrder`` websocket messages, one JSON object per line.

    Accepts the raw payload (``{"e": "forceOrder", "E": ..., "o": {...}}``) and the combined
    stream's envelope (``{"stream": ..., "data": {...}}``). ``time`` is the order's trade time
    ``o.T``, ``event_time`` the push time ``E``; ``qty`` is the filled quantity ``o.z``,
    ``avg_price`` ``o.ap``. COIN-M symbols (``BTCUSD_PERP``) are converted from contracts.
    Errors name the line number.
    """
    stream, label = open_text(path)
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    with stream:
        for n, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FeedError(f"{label}: line {n}: not valid JSON ({exc.msg}); expected one forceOrder message per line") from None
            msg = msg.get("data", msg) if isinstance(msg, dict) else msg
            o = msg.get("o") if isinstance(msg, dict) else None
            if not isinstance(o, dict) or msg.get("e", "forceOrder") != "forceOrder":
                raise FeedError(f"{label}: line {n}: expected a forceOrder event with an 'o' object, got {line.strip()[:80]!r}")
            missing = [k for k in ("s", "S", "p", "ap", "z", "T") if k not in o]
            if missing:
                raise FeedError(f"{label}: line {n}: forceOrder field(s) {missing} missing; expected s, S, p, ap, z, T")
            records.append({"E": msg.get("E", o["T"]), **o})
            lines.append(n)
    if not records:
        raise FeedError(f"{label}: no forceOrder messages found")
    raw = pd.DataFrame(records)
    times = parse_times(raw["T"], file=label, column="o.T")
    event_times = parse_times(raw["E"], file=label, column="E")
    side = raw["S"].astype("str").str.lower()
    bad = ~side.isin(["buy", "sell"]).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FeedError(f"{label}: line {lines[i]}: o.S {raw['S'].iloc[i]!r}; expected BUY or SELL")
    vals = {}
    for k in ("p", "ap", "z"):
        v = pd.to_numeric(raw[k], errors="coerce").to_numpy(dtype="float64")
        if np.isnan(v).any():
            i = int(np.flatnonzero(np.isnan(v))[0])
            raise FeedError(f"{label}: line {lines[i]}: o.{k} {raw[k].iloc[i]!r} is not a number")
        vals[k] = v
    symbols = raw["s"].astype("str").to_numpy()
    qty, notional = vals["z"].copy(), vals["ap"] * vals["z"]
    cm = np.array([coin_market(s) == "cm" for s in symbols])
    if cm.any():
        sizes = np.array([coinm_contract_size(s, contract_size) for s in symbols])
        notional = np.where(cm, vals["z"] * sizes, notional)
        qty = np.where(cm, notional / vals["ap"], qty)
    venues = np.where(cm, VENUE["cm"], VENUE["um"])
    cols = {"venue": venues, "symbol": symbols, "position_side": np.where(side == "sell", "long", "short"),
            "order_side": side.to_numpy(), "price": vals["p"], "avg_price": vals["ap"], "qty": qty, "notional": notional,
            "event_time": event_times}
    frame = make_events(times, cols, {"source": str(path), "source_label": label, "format": "binance_forceorder_jsonl",
                                      "venue": str(venues[0]) if len(set(venues)) == 1 else None,
                                      "symbol": str(symbols[0]) if len(set(symbols)) == 1 else None,
                                      "frame_kind": "events", "line_numbers": lines}, extra=("event_time",))
    if not validate:
        return frame
    from feeds.validate import validate_events
    report = validate_events(frame, file=label, rows=lines == list(range(1, len(lines) + 1)))
    report.raise_if_errors()
    return frame

