"""BitMEX: trade buckets (``/api/v1/trade/bucketed``) and funding history (``/api/v1/funding``).

Accepted files: the API's JSON (a list of objects, as ``deleverage data fetch`` and most
scrapers save it), CSV with the API's field names, and the normalised CSV of
``../shared/data`` (``timestamp_ms, open_time_utc, open, high, low, close,
volume_usd_contracts``).

Venue facts the loader applies (and records in ``attrs``):

* The API stamps a bucket with its **close** time; canonical bars are labelled by their open,
  so ``open_time = timestamp - binSize`` for API files. The shared CSV is already open-labelled
  (its ``timestamp_ms`` is the bar open).
* ``open`` of a bucket is the previous bucket's close, so it can lie outside ``[low, high]``:
  the quirk ``open_is_previous_close`` is recorded and validation checks exactly that instead
  of ``low <= open <= high``.
* ``volume`` is in contracts. XBTUSD is inverse with 1 contract = 1 USD, so
  ``quote_volume`` = contracts (exact) and the canonical base ``volume`` is ``homeNotional``
  (BTC) when the file has it, else ``quote_volume / ((high + low + close) / 3)``, an estimate
  noted in ``attrs["notes"]``. Telling the loader the wrong unit (``volume_unit="base"`` for
  a contracts column) fails the unit check of :mod:`feeds.validate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feeds.errors import FeedError, where
from feeds.frames import check_symbols, cross_check_times, finish, make_bars, numeric
from feeds.readers import PathLike, read_csv
from feeds.timeparse import parse_times

BIN_SIZES = {"1m": "1min", "5m": "5min", "1h": "1h", "1d": "1D"}
VOLUME_UNITS = ("contracts", "base", "quote")


def _read(path: PathLike) -> tuple[pd.DataFrame, str]:
    p = Path(path)
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise FeedError(f"{p}: cannot read as JSON ({exc}); expected the API's list of objects") from None
        if not isinstance(data, list):
            raise FeedError(f"{p}: expected a JSON list of objects (the API response), got {type(data).__name__}")
        return pd.DataFrame(data), str(p)
    return read_csv(p)


def _instrument(symbol: str | None) -> tuple[float | None, bool]:
    try:
        from risk.venues import get_instrument

        inst = get_instrument("bitmex", symbol)
        return inst.contract_size, inst.inverse
    except Exception:  # unknown to the risk registry: the caller must say
        return None, True


def load_buckets(path: PathLike, *, symbol: str | None = None, bin_size: str | None = None,
                 volume_unit: str | None = None, contract_size: float | None = None, validate: bool = True,
                 allow_gaps: bool = False, allow_outliers: bool = False) -> pd.DataFrame:
    """Load BitMEX trade buckets as canonical bars (see the module docstring)."""
    raw, label = _read(path)
    cols = set(raw.columns)
    notes: list[str] = []
    if "timestamp_ms" in cols:  # shared CSV, open-labelled
        open_t = parse_times(raw["timestamp_ms"], file=label, column="timestamp_ms")
        cross_check_times(open_t, raw, "open_time_utc", label)
        vol_col = "volume_usd_contracts" if "volume_usd_contracts" in cols else "volume"
        found_unit = "contracts" if "contract" in vol_col else None
    elif "timestamp" in cols:  # API field names, close-labelled
        close_t = parse_times(raw["timestamp"], file=label, column="timestamp")
        if bin_size is None:
            if len(close_t) < 2:
                raise FeedError(f"{label}: cannot infer binSize from fewer than 2 buckets; expected at least 2 buckets")
            step = pd.Timedelta(int(np.median(np.diff(close_t.asi8))), unit="ns")
            bin_size = next((k for k, v in BIN_SIZES.items() if pd.Timedelta(pd.tseries.frequencies.to_offset(v)) == step), None)
            if bin_size is None:
                raise FeedError(f"{label}: buckets are {step} apart; expected binSize 1m, 5m, 1h or 1d")
        open_t = close_t - pd.Timedelta(pd.tseries.frequencies.to_offset(BIN_SIZES[bin_size]))
        notes.append("BitMEX stamps buckets with their close time; open_time = timestamp - binSize")
        vol_col, found_unit = "volume", "contracts"
    else:
        raise FeedError(f"{label}: expected BitMEX bucket columns (timestamp or timestamp_ms, open, high, low, close, "
                        f"volume); found {sorted(cols)}")
    symbol = check_symbols(label, path, symbol, raw["symbol"] if "symbol" in cols else None, times=open_t) or "XBTUSD"
    volume_unit = volume_unit or found_unit or "contracts"
    if volume_unit not in VOLUME_UNITS:
        raise FeedError(f"{label}: --volume-unit {volume_unit!r}; expected one of {', '.join(VOLUME_UNITS)}")
    o, h, lo, c = (numeric(raw, k, label) for k in ("open", "high", "low", "close"))
    vol = numeric(raw, vol_col, label)
    out: dict[str, np.ndarray] = {"open": o, "high": h, "low": lo, "close": c}
    if volume_unit == "base":
        out["volume"] = vol
    else:
        size, inverse = _instrument(symbol)
        size = contract_size or size
        if size is None:
            raise FeedError(f"{where(label, None, vol_col)}: contract size of {symbol} is unknown (deleverage knows the "
                            "BitMEX contract XBTUSD); expected an XBTUSD file, or --volume-unit quote for a USD column")
        if not inverse:
            raise FeedError(f"{label}: {symbol} is not an inverse contract; only inverse USD contracts are converted")
        quote = vol * size if volume_unit == "contracts" else vol
        out["quote_volume"] = quote
        if "homeNotional" in cols:
            out["volume"] = numeric(raw, "homeNotional", label)
        else:
            out["volume"] = quote / ((h + lo + c) / 3.0)
            notes.append("volume (base) = quote_volume / ((high + low + close) / 3): an estimate, the file has contracts only")
    attrs: dict[str, Any] = {"source": str(path), "source_label": label, "format": "bitmex_buckets", "venue": "bitmex",
                             "symbol": symbol, "interval": BIN_SIZES.get(bin_size or "", None), "notes": notes,
                             "quirks": ["open_is_previous_close"], "volume_unit": volume_unit, "frame_kind": "bars"}
    frame = make_bars(open_t, out, attrs)
    return finish(frame, "bars", validate, allow_gaps=allow_gaps, allow_outliers=allow_outliers)


def _interval_hours(values: pd.Series, label: str, column: str) -> np.ndarray:
    """BitMEX encodes the funding interval as a time after 2000-01-01 (``2000-01-01T08:00:00Z`` = 8 h)."""
    t = parse_times(values, file=label, column=column)
    return ((t - pd.Timestamp("2000-01-01", tz="UTC")) / pd.Timedelta(hours=1)).to_numpy(dtype="float64")


def load_funding(path: PathLike, *, symbol: str | None = None, validate: bool = True,
                 allow_gaps: bool = True, funding_unit: str = "auto") -> pd.DataFrame:
    """BitMEX funding history (API JSON/CSV, or the shared CSV) as funding settlements."""
    raw, label = _read(path)
    cols = set(raw.columns)
    if "funding_time_utc" in cols:
        tcol, icol, rcol = "funding_time_utc", "funding_interval", "funding_rate"
    elif "timestamp" in cols and "fundingRate" in cols:
        tcol, icol, rcol = "timestamp", "fundingInterval", "fundingRate"
    else:
        raise FeedError(f"{label}: expected BitMEX funding columns (timestamp, symbol, fundingInterval, fundingRate); "
                        f"found {sorted(cols)}")
    times = parse_times(raw[tcol], file=label, column=tcol)
    given = check_symbols(label, path, symbol, raw["symbol"] if "symbol" in cols else None, times=times,
                          one_per_file=False)
    symbols = raw["symbol"].astype("str").to_numpy() if "symbol" in cols else np.full(len(raw), given or "XBTUSD")
    hours = _interval_hours(raw[icol], label, icol) if icol in cols else np.full(len(raw), 8.0)
    frame = pd.DataFrame({"time": times, "venue": "bitmex", "symbol": symbols, "funding_rate": numeric(raw, rcol, label),
                          "interval_hours": hours})
    frame.attrs.update({"kind": "real", "source": str(path), "source_label": label, "format": "bitmex_funding",
                        "venue": "bitmex", "symbol": str(symbols[0]) if len(symbols) else symbol, "frame_kind": "funding",
                        "funding_rate_column": rcol, "interval_column": icol})
    return finish(frame, "funding", validate, allow_gaps=allow_gaps, funding_unit=funding_unit)
