"""Generic CSV or Parquet with a column mapping, and the canonical Parquet/CSV this package writes.

``mapping`` maps canonical names to the file's names, e.g. for bars
``{"open_time": "ts", "open": "o", "high": "h", "low": "l", "close": "c", "volume": "vol"}``
(the time column is ``open_time`` for bars, ``time`` for events, funding and open interest).
Canonical names the mapping leaves out are looked up under their own name. Units are stated,
never guessed: ``time_unit`` (epoch s/ms/us/ns; detected from magnitude when None),
``assume_utc`` for text without a zone, and ``volume_unit``:

* ``"base"``: the volume column is in coins (canonical);
* ``"quote"``: it is quote currency: ``quote_volume`` = it and ``volume`` = quote / typical
  price ``(h + l + c) / 3`` (an estimate, noted);
* ``"contracts"``: with ``contract_size`` and ``inverse``: linear contracts are
  ``contracts x contract_size`` coins; inverse contracts are ``contracts x contract_size``
  quote (then as ``"quote"``).

A wrong claim fails the unit check in :mod:`feeds.validate` (e.g. USD contracts declared as
coins give a per-minute notional no venue trades).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feeds.errors import FeedError, where
from feeds.frames import canonical_venue, finish, make_bars, make_events, numeric
from feeds.readers import PathLike, read_any
from feeds.schema import BAR_COLUMNS, BAR_INDEX_NAME, EVENT_COLUMNS, EVENT_OPTIONAL_COLUMNS, LIQMAP_COLUMNS
from feeds.timeparse import parse_times

TABLE_KINDS = ("bars", "events", "funding", "open_interest", "mark", "liquidation_bars")


def _col(raw: pd.DataFrame, mapping: dict[str, str], name: str, label: str, required: bool = True) -> str | None:
    src = mapping.get(name, name)
    if src in raw.columns:
        return src
    if required:
        raise FeedError(f"{where(label, None, src)}: column not found; the file has {list(raw.columns)}; expected the "
                        f"canonical column {name!r} (rename the file's column to {name!r})")
    return None


def load_table(path: PathLike, *, kind: str = "bars", mapping: dict[str, str] | None = None,
               time_unit: str | None = None, assume_utc: bool = False, volume_unit: str = "base",
               contract_size: float = 1.0, inverse: bool = False, venue: str | None = None,
               symbol: str | None = None, interval: str | None = None, open_is_previous_close: bool = False,
               validate: bool = True, allow_gaps: bool = False, allow_outliers: bool = False,
               funding_unit: str = "auto") -> pd.DataFrame:
    """Load a CSV/Parquet file of ``kind`` (one of :data:`TABLE_KINDS`) through ``mapping``."""
    if kind not in TABLE_KINDS:
        raise FeedError(f"unknown table kind {kind!r}; expected one of {TABLE_KINDS}")
    mapping = dict(mapping or {})
    raw, label = read_any(path)
    if BAR_INDEX_NAME in (raw.index.names or []) or raw.index.name in ("time",):
        raw = raw.reset_index()
    tname = BAR_INDEX_NAME if kind in ("bars", "mark", "liquidation_bars") else "time"
    tcol = _col(raw, mapping, tname, label)
    times = parse_times(raw[tcol], file=label, column=tcol, unit=time_unit, assume_utc=assume_utc)
    attrs: dict[str, Any] = {"source": str(path), "source_label": label, "format": f"generic_{kind}",
                             "venue": canonical_venue(venue), "symbol": symbol, "interval": interval,
                             "frame_kind": kind, "notes": []}
    for key in ("venue", "symbol", "interval", "kind", "quirks"):
        if key in raw.attrs and attrs.get(key) is None:
            attrs[key] = raw.attrs[key]
    if kind in ("bars", "mark", "liquidation_bars"):
        cols: dict[str, np.ndarray] = {}
        for name in BAR_COLUMNS:
            src = _col(raw, mapping, name, label, required=(kind == "bars" and name in ("open", "high", "low", "close", "volume"))
                       or (kind == "mark" and name.startswith("mark_")))
            if src is not None:
                cols[name] = numeric(raw, src, label)
        if kind == "bars":
            for name in LIQMAP_COLUMNS:  # feed lines of `deleverage liqmap --lines`, kept as written
                src = _col(raw, mapping, name, label, required=False)
                if src is not None:
                    cols[name] = numeric(raw, src, label)
            if volume_unit != "base" and "quote_volume" in cols:
                raise FeedError(f"{where(label, None, _col(raw, mapping, 'volume', label))}: --volume-unit {volume_unit} "
                                "contradicts the file, which has both volume and quote_volume (volume in base units, "
                                "quote_volume in quote); expected --volume-unit base (or none)")
            _convert_volume(cols, volume_unit, contract_size, inverse, attrs)
        if open_is_previous_close:
            attrs["quirks"] = list(attrs.get("quirks") or []) + ["open_is_previous_close"]
        frame = make_bars(times, cols, attrs)
        extra = {"funding_unit": funding_unit} if kind == "bars" else {}
        return finish(frame, kind, validate, allow_gaps=allow_gaps, allow_outliers=allow_outliers, **extra)
    if kind == "events":
        cols2: dict[str, Any] = {}
        for name in EVENT_COLUMNS[1:]:
            src = _col(raw, mapping, name, label, required=name not in ("venue", "symbol"))
            if src is None:
                value = venue if name == "venue" else symbol
                if value is None:
                    raise FeedError(f"{label}: no {name!r} column; pass {name}= or mapping")
                cols2[name] = np.full(len(raw), value)
            elif name in ("price", "avg_price", "qty", "notional"):
                cols2[name] = numeric(raw, src, label)
            else:
                cols2[name] = raw[src].astype("str").str.strip().str.lower().to_numpy() if name.endswith("side") \
                    else raw[src].astype("str").to_numpy()
        extra = [n for n in EVENT_OPTIONAL_COLUMNS if _col(raw, mapping, n, label, required=False)]
        for n in extra:
            src = _col(raw, mapping, n, label)
            cols2[n] = parse_times(raw[src], file=label, column=src, unit=time_unit, assume_utc=assume_utc) \
                if n == "event_time" else raw[src].to_numpy()
        cols2["venue"] = np.array([canonical_venue(v) for v in cols2["venue"]])
        if volume_unit == "contracts":
            notional = cols2["qty"] * contract_size if inverse else cols2["qty"] * contract_size * cols2["avg_price"]
            cols2["qty"] = notional / cols2["avg_price"] if inverse else cols2["qty"] * contract_size
            attrs["notes"].append(f"qty given in contracts of {contract_size:g} ({'inverse' if inverse else 'linear'})")
        frame = make_events(times, cols2, attrs, extra=extra)
        return finish(frame, "events", validate)
    if kind == "funding":
        rate = _col(raw, mapping, "funding_rate", label)
        hours_col = _col(raw, mapping, "interval_hours", label, required=False)
        sym_col = _col(raw, mapping, "symbol", label, required=False)
        frame = pd.DataFrame({"time": times, "venue": canonical_venue(venue),
                              "symbol": raw[sym_col].astype("str").to_numpy() if sym_col else symbol,
                              "funding_rate": numeric(raw, rate, label),
                              "interval_hours": numeric(raw, hours_col, label) if hours_col else np.nan})
        frame.attrs.update({"kind": "real", **attrs})
        return finish(frame, "funding", validate, allow_gaps=allow_gaps, funding_unit=funding_unit)
    cols3 = {n: numeric(raw, src, label) for n in ("open_interest", "open_interest_notional")
             if (src := _col(raw, mapping, n, label, required=False))}
    if not cols3:
        raise FeedError(f"{label}: expected an open_interest or open_interest_notional column (or a mapping)")
    frame = pd.DataFrame({"time": times, **cols3})
    frame.attrs.update({"kind": "real", **attrs})
    return finish(frame, "open_interest", validate, allow_gaps=True)


def _convert_volume(cols: dict[str, np.ndarray], unit: str, size: float, inverse: bool, attrs: dict[str, Any]) -> None:
    attrs["volume_unit"] = unit
    if unit == "base":
        return
    typical = (cols["high"] + cols["low"] + cols["close"]) / 3.0
    if unit == "contracts":
        if not inverse:
            cols["volume"] = cols["volume"] * size
            attrs["notes"].append(f"volume = contracts x {size:g} (linear)")
            return
        cols["volume"] = cols["volume"] * size
        attrs["notes"].append(f"quote volume = contracts x {size:g} (inverse)")
    elif unit != "quote":
        raise FeedError(f"volume_unit {unit!r}; expected 'base', 'quote' or 'contracts'")
    cols["quote_volume"] = cols["volume"]
    cols["volume"] = cols["quote_volume"] / typical
    attrs["notes"].append("volume (base) = quote volume / ((high + low + close) / 3): an estimate")


def save_frame(frame: pd.DataFrame, path: PathLike) -> Path:
    """Write a canonical frame to Parquet (index and provenance ``attrs`` kept)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in frame.attrs.items() if isinstance(v, (str, int, float, list, type(None)))}
    out = frame.copy(deep=False)
    out.attrs = keep
    tmp = p.with_suffix(p.suffix + ".tmp")
    out.to_parquet(tmp)
    tmp.replace(p)
    return p
