"""Exports of the kinds in ``../shared/data``: normalised klines, funding, liquidation events,
and hourly/daily liquidation and open-interest aggregates (CoinGlass, Coinalyze).

Conventions of these files (see ``shared/data/PROVENANCE.md``): ``timestamp_ms`` is epoch
milliseconds UTC (the bar/bucket open for bars, the event time for events); ``*_utc``
columns state the same instant as text and are cross-checked row by row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from feeds.errors import FeedError, fmt_time, show, where
from feeds.frames import (add_finding, canonical_venue, check_symbols, cross_check_times, finish, make_bars, make_events,
                          numeric)
from feeds.readers import PathLike, read_csv
from feeds.timeparse import parse_times


def decimals(values: np.ndarray) -> np.ndarray:
    """How many decimals each float is written with (its shortest repr: ``2920.3125`` -> 4, ``1e-05`` -> 5)."""
    out = np.zeros(len(values), dtype="int64")
    for k, v in enumerate(np.asarray(values, dtype="float64").tolist()):
        if v != v or v in (float("inf"), float("-inf")):
            continue
        text = repr(v)
        mant, _, exp = text.partition("e")
        frac = mant.partition(".")[2].rstrip("0") if "." in mant else ""
        out[k] = max(0, len(frac) - (int(exp) if exp else 0))
    return out


def _time(raw: pd.DataFrame, label: str, epoch: str, text: str | None) -> pd.DatetimeIndex:
    if epoch in raw.columns:
        t = parse_times(raw[epoch], file=label, column=epoch)
        if text:
            cross_check_times(t, raw, text, label)
        return t
    if text and text in raw.columns:
        return parse_times(raw[text], file=label, column=text)
    raise FeedError(f"{label}: expected a {epoch!r} column; found {list(raw.columns)}")


def load_kline_export(path: PathLike, *, symbol: str | None = None, venue: str | None = None,
                      interval: str | None = None, validate: bool = True, allow_gaps: bool = False,
                      allow_outliers: bool = False) -> pd.DataFrame:
    """Normalised kline export (``timestamp_ms, open_time_utc, symbol, open, high, low, close,
    volume_base, volume_quote[, trade_count]``), e.g. the CryptoDataDownload Binance spot files."""
    raw, label = read_csv(path)
    t = _time(raw, label, "timestamp_ms", "open_time_utc")
    cols = {k: numeric(raw, k, label) for k in ("open", "high", "low", "close")}
    cols["volume"] = numeric(raw, "volume_base", label)
    if "volume_quote" in raw.columns:
        cols["quote_volume"] = numeric(raw, "volume_quote", label)
    symbol = check_symbols(label, path, symbol, raw["symbol"] if "symbol" in raw.columns else None, times=t)
    symbol = symbol.replace("/", "") if symbol is not None else None
    frame = make_bars(t, cols, {"source": str(path), "source_label": label, "format": "kline_export",
                                "venue": venue, "symbol": symbol, "interval": interval, "volume_unit": "base",
                                "frame_kind": "bars"})
    return finish(frame, "bars", validate, allow_gaps=allow_gaps, allow_outliers=allow_outliers)


def load_funding_export(path: PathLike, *, venue: str = "binance_usdm", validate: bool = True,
                        allow_gaps: bool = True, funding_unit: str = "auto") -> pd.DataFrame:
    """Normalised funding export (``symbol, calc_time_ms, calc_time_utc, funding_interval_hours, funding_rate``).

    Several symbols may share a file; each is validated on its own schedule.
    """
    raw, label = read_csv(path)
    t = _time(raw, label, "calc_time_ms", "calc_time_utc")
    frame = pd.DataFrame({"time": t, "venue": canonical_venue(venue), "symbol": raw["symbol"].astype("str").to_numpy(),
                          "funding_rate": numeric(raw, "funding_rate", label),
                          "interval_hours": numeric(raw, "funding_interval_hours", label)})
    frame.attrs.update({"kind": "real", "source": str(path), "source_label": label, "format": "funding_export",
                        "venue": canonical_venue(venue), "symbol": None, "frame_kind": "funding",
                        "interval_column": "funding_interval_hours"})
    return finish(frame, "funding", validate, allow_gaps=allow_gaps, funding_unit=funding_unit)


def load_event_export(path: PathLike, *, validate: bool = True) -> pd.DataFrame:
    """Liquidation-event export: the Binance forceOrder recording and the Hyperliquid export.

    Columns: ``timestamp_ms`` (event time), ``venue``, ``symbol``, ``liquidated_position_side``,
    ``order_side``, ``price``, ``avg_fill_price``, the quantity (``filled_qty_base`` or
    ``qty_base``), ``notional_quote``; optional ``event_time_ms`` and ``liquidation_id``.
    Hyperliquid rows are single fills at ``price`` (``avg_fill_price`` is empty), so
    ``avg_price`` = ``price`` there, as ``attrs["notes"]`` says; one liquidation can have several
    fills, grouped by ``event_id`` (= ``liquidation_id``).
    """
    raw, label = read_csv(path)
    t = _time(raw, label, "timestamp_ms", "time_utc")
    if "symbol" in raw.columns:  # a file named after one symbol holds only that symbol
        check_symbols(label, path, None, raw["symbol"], times=t, one_per_file=False)
    qcol = next((c for c in ("filled_qty_base", "qty_base") if c in raw.columns), None)
    if qcol is None:
        raise FeedError(f"{label}: expected a quantity column filled_qty_base or qty_base; found {list(raw.columns)}")
    price = numeric(raw, "price", label)
    notes: list[str] = []
    avg = numeric(raw, "avg_fill_price", label) if "avg_fill_price" in raw.columns else np.full(len(raw), np.nan)
    venues = raw["venue"].astype("str").map(lambda v: canonical_venue(v)).to_numpy()
    fills = np.isnan(avg) & (venues == "hyperliquid")
    if fills.any():
        avg = np.where(fills, price, avg)
        notes.append("Hyperliquid rows are single fills: avg_price = price (the fill price)")
    extra: dict[str, Any] = {}
    if "event_time_ms" in raw.columns:
        extra["event_time"] = parse_times(raw["event_time_ms"], file=label, column="event_time_ms")
    if "liquidation_id" in raw.columns:
        extra["event_id"] = raw["liquidation_id"].to_numpy()
    cols = {"venue": venues, "symbol": raw["symbol"].astype("str").to_numpy(),
            "position_side": raw["liquidated_position_side"].astype("str").str.strip().str.lower().to_numpy(),
            "order_side": raw["order_side"].astype("str").str.strip().str.lower().to_numpy(),
            "price": price, "avg_price": avg, "qty": numeric(raw, qcol, label),
            "notional": numeric(raw, "notional_quote", label), **extra}
    uv = pd.unique(venues)
    us = pd.unique(cols["symbol"])
    fmt = "hyperliquid_liquidations" if "liquidation_id" in raw.columns else "liquidation_event_export"
    frame = make_events(t, cols, {"source": str(path), "source_label": label, "format": fmt,
                                  "venue": str(uv[0]) if len(uv) == 1 else None,
                                  "symbol": str(us[0]) if len(us) == 1 else None, "frame_kind": "events"},
                        extra=tuple(extra))
    frame.attrs["notes"] = notes
    return finish(frame, "events", validate)


def load_coinglass_liquidations(path: PathLike, *, validate: bool = True, allow_gaps: bool = False) -> pd.DataFrame:
    """CoinGlass aggregated liquidation history (hourly buckets labelled by open, USD).

    Output: liquidation bars with ``liq_long_notional`` / ``liq_short_notional`` only (the
    export has no counts or quantities; those columns are absent, not zero). ``liq_total_usd``
    must equal long + short.
    """
    raw, label = read_csv(path)
    t = _time(raw, label, "timestamp_ms", "open_time_utc")
    long_, short = numeric(raw, "liq_long_usd", label), numeric(raw, "liq_short_usd", label)
    if "liq_total_usd" in raw.columns:
        total = numeric(raw, "liq_total_usd", label)
        # each cell is rounded to the decimals it is written with: the sum may be off by half a unit of each
        tol = sum(0.5 * 10.0 ** -decimals(v) for v in (long_, short, total)) + 1e-12 * np.abs(total)
        diff = total - (long_ + short)
        with np.errstate(invalid="ignore"):
            bad = np.abs(diff) > tol
        checked = True
    else:
        checked = False
    frame = make_bars(t, {"liq_long_notional": long_, "liq_short_notional": short},
                      {"source": str(path), "source_label": label, "format": "coinglass_liquidations",
                       "venue": "coinglass:binance+bybit+okx", "symbol": "BTC", "interval": "1h",
                       "frame_kind": "liquidation_bars"})
    if checked:
        add_finding(frame, bad, label, "liq_total_usd", "sum",
                    lambda i: f"liq_total_usd {show(total[i])} is not liq_long_usd + liq_short_usd = {show(long_[i])} + "
                              f"{show(short[i])} = {long_[i] + short[i]:.{max(decimals(long_[i:i + 1])[0], decimals(short[i:i + 1])[0])}f} "
                              f"(off by {diff[i]:+.6g} USD, more than the rounding of the cells, {tol[i]:.2g}); expected the "
                              "total to be the sum of the sides", times=t)
    return finish(frame, "liquidation_bars", validate, allow_gaps=allow_gaps)


def _markets(raw: pd.DataFrame) -> np.ndarray:
    return (raw["exchange"].astype("str") + ":" + raw["symbol_on_exchange"].astype("str")).to_numpy()


def coinalyze_markets(path: PathLike) -> list[str]:
    """The markets (``exchange:symbol_on_exchange``) in a Coinalyze long-format export."""
    raw, _ = read_csv(path)
    return list(pd.unique(_markets(raw)))


def _select(raw: pd.DataFrame, label: str, market: str | None) -> tuple[pd.DataFrame, np.ndarray]:
    markets = _markets(raw)
    known = list(pd.unique(markets))
    if market is None:
        if len(known) == 1:
            market = known[0]
        else:
            raise FeedError(f"{label}: holds {len(known)} markets; name one with --market, one of {known}")
    rows = np.flatnonzero(markets == market)
    if not len(rows):
        raise FeedError(f"{label}: no rows for market {market!r}; expected one of {known}")
    return raw.iloc[rows], rows


def _check_dates(sub: pd.DataFrame, t: pd.DatetimeIndex, label: str, rows: np.ndarray) -> None:
    """Coinalyze states each day twice (``date_utc`` text and ``timestamp_ms``): they must agree row by row."""
    if "date_utc" not in sub.columns:
        return
    stated = sub["date_utc"].astype("str").str.strip().to_numpy()
    days = np.asarray(t.strftime("%Y-%m-%d"))
    diff = (stated != days) | (t != t.normalize())
    if diff.any():
        i = int(np.flatnonzero(diff)[0])
        raise FeedError(f"{where(label, int(rows[i]) + 1, 'date_utc')}: {show(stated[i])} disagrees with timestamp_ms "
                        f"{sub['timestamp_ms'].iloc[i]} ({fmt_time(t[i])}); expected both columns to state the same UTC day "
                        f"({int(diff.sum())} {'row disagrees' if diff.sum() == 1 else 'rows disagree'})")


def _rows_note(frame: pd.DataFrame, rows: np.ndarray) -> None:
    frame.attrs["file_rows"] = (rows + 1).tolist()


def load_coinalyze_liquidations(path: PathLike, *, market: str | None = None, validate: bool = True,
                                allow_gaps: bool = False) -> pd.DataFrame:
    """Coinalyze daily liquidation history (long format) for one ``market`` (``"Binance:BTCUSDT"``).

    Days for which Coinalyze returned nothing are NaN (unknown), reported as warnings and never
    filled. Values are USD (``convert_to_usd=true``).
    """
    raw, label = read_csv(path)
    sub, rows = _select(raw, label, market)
    t = _time(sub, label, "timestamp_ms", None)
    _check_dates(sub, t, label, rows)
    frame = make_bars(t, {"liq_long_notional": numeric(sub, "liq_long_usd", label),
                          "liq_short_notional": numeric(sub, "liq_short_usd", label)},
                      {"source": str(path), "source_label": f"{label}[{market or sub['exchange'].iloc[0]}]",
                       "format": "coinalyze_liquidations", "venue": "coinalyze", "symbol": market, "interval": "1D",
                       "frame_kind": "liquidation_bars"})
    _rows_note(frame, rows)
    return finish(frame, "liquidation_bars", validate, allow_gaps=allow_gaps, rows=False,
                  nan_ok=("liq_long_notional", "liq_short_notional"))


def load_coinalyze_open_interest(path: PathLike, *, market: str | None = None, validate: bool = True,
                                 allow_gaps: bool = False) -> pd.DataFrame:
    """Coinalyze daily open-interest close (USD) for one market, as snapshots.

    The close of day D is known at the end of the day, so the snapshot is stamped
    D+1 00:00 UTC (never earlier): placed on bars it appears on the first bar of D+1.
    """
    raw, label = read_csv(path)
    sub, rows = _select(raw, label, market)
    t = _time(sub, label, "timestamp_ms", None)
    _check_dates(sub, t, label, rows)
    t = t + pd.Timedelta(days=1)
    frame = pd.DataFrame({"time": t, "open_interest_notional": numeric(sub, "oi_close_usd", label)})
    frame.attrs.update({"kind": "real", "source": str(path), "source_label": f"{label}[{market}]",
                        "format": "coinalyze_open_interest", "venue": "coinalyze", "symbol": market,
                        "frame_kind": "open_interest",
                        "notes": ["daily close stamped at the end of its day (timestamp_ms + 1 day)"]})
    _rows_note(frame, rows)
    return finish(frame, "open_interest", validate, allow_gaps=allow_gaps, rows=False)
