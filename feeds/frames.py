"""Small helpers the loaders share: build canonical frames, attach provenance, validate."""

from __future__ import annotations

import re
from typing import Any, Iterable

import numpy as np
import pandas as pd

from feeds.errors import FeedError, fmt_time, where
from feeds.schema import BAR_INDEX_NAME, EVENT_COLUMNS, VENUE_ALIASES
from feeds.timeparse import parse_times
from feeds.validate import validate_bars, validate_events, validate_funding, validate_open_interest


def canonical_venue(venue: str | None) -> str | None:
    """The :mod:`risk.venues` key for a venue spelling found in a file (unknown names pass through)."""
    if venue is None:
        return None
    return VENUE_ALIASES.get(str(venue).strip().lower(), str(venue))


_NAME_SYMBOL_RE = re.compile(r"(?<![a-z0-9])([a-z0-9]{2,12}(?:usdt|usdc|busd|usd)(?:_perp|_\d{6})?)(?![a-z0-9])")


def norm_symbol(symbol: Any) -> str:
    """``BTC/USDT``, ``btc-usdt`` and ``BTCUSDT`` are one symbol: upper case without separators."""
    return re.sub(r"[/\-\s]", "", str(symbol)).upper()


def symbol_in_name(path: Any) -> str | None:
    """The one market symbol a file name states (``bitmex_xbtusd_1m_...csv`` -> ``XBTUSD``), else None."""
    from pathlib import Path

    found = {m.upper() for m in _NAME_SYMBOL_RE.findall(Path(str(path)).name.lower())}
    return found.pop() if len(found) == 1 else None


def check_symbols(label: str, path: Any, given: str | None, values: Any = None, column: str = "symbol",
                  times: Any = None, one_per_file: bool = True) -> str | None:
    """The file's symbol, after checking that the option, the file name and the symbol column agree.

    ``given`` is the --symbol option (an empty one is an error), ``values`` the file's symbol column
    (every row must hold one symbol when ``one_per_file``; with a symbol in the file name or
    ``given`` every row must be that symbol). Returns the symbol as the file spells it (or ``given``).
    """
    if given is not None and not str(given).strip():
        raise FeedError(f"{label}: --symbol is empty; expected a symbol such as BTCUSDT")
    named = symbol_in_name(path)
    if given is not None and named is not None and norm_symbol(given) != named:
        raise FeedError(f"{label}: --symbol {given} contradicts the file name, which says {named}; expected the "
                        "file's own symbol (or a file named after it)")
    if values is None or not len(values):
        return given if given is not None else named
    col = np.asarray(pd.Series(values).astype("str"))
    normed = np.array([norm_symbol(v) for v in pd.unique(col)])
    first = col[0]
    want = norm_symbol(given) if given is not None else named
    if want is not None:
        lookup = dict(zip(pd.unique(col), normed))
        bad = np.array([lookup[v] != want for v in col])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            t = times[i] if times is not None else None
            said = f"--symbol {given}" if given is not None else f"the file name ({named})"
            raise FeedError(f"{where(label, i + 1, column, t)}: symbol {col[i]!r} contradicts {said}; expected "
                            f"only {want} in this file ({int(bad.sum())} {'row differs' if bad.sum() == 1 else 'rows differ'})")
    elif one_per_file and len(set(normed)) > 1:
        i = int(np.flatnonzero(col != first)[0])
        t = times[i] if times is not None else None
        raise FeedError(f"{where(label, i + 1, column, t)}: symbol {col[i]!r} differs from row 1 ({first!r}); expected "
                        "one symbol per file (split the file by symbol)")
    return given if given is not None else str(first)


def numeric(frame: pd.DataFrame, column: str, label: str) -> np.ndarray:
    """A column as float64, with an error naming the first cell that is not a number."""
    if column not in frame.columns:
        raise FeedError(f"{where(label, None, column)}: column not found; the file has {list(frame.columns)}")
    s = frame[column]
    if s.dtype.kind in "iufb":
        return s.to_numpy(dtype="float64")
    out = pd.to_numeric(s, errors="coerce")
    bad = out.isna() & s.notna() & (s.astype("str").str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise FeedError(f"{where(label, i + 1, column)}: {s.iloc[i]!r} is not a number; expected a number")
    return out.to_numpy(dtype="float64")


def cross_check_times(primary: pd.DatetimeIndex, frame: pd.DataFrame, column: str, label: str, **kw: Any) -> None:
    """Files that state a time twice (epoch and text) must agree row by row."""
    if column not in frame.columns:
        return
    other = parse_times(frame[column], file=label, column=column, **kw)
    diff = np.asarray(primary.asi8 != other.asi8)
    if diff.any():
        i = int(np.flatnonzero(diff)[0])
        raise FeedError(f"{where(label, i + 1, column)}: {frame[column].iloc[i]!r} disagrees with the epoch timestamp "
                        f"({fmt_time(primary[i])}); expected both columns to state the same instant")


def make_bars(index: pd.DatetimeIndex, columns: dict[str, np.ndarray], attrs: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(columns, index=pd.DatetimeIndex(index, name=BAR_INDEX_NAME), copy=False)
    frame.attrs.update({"kind": "real", **attrs})
    frame.attrs.setdefault("quirks", [])
    frame.attrs.setdefault("notes", [])
    return frame


def make_events(times: pd.DatetimeIndex, columns: dict[str, Any], attrs: dict[str, Any],
                extra: Iterable[str] = ()) -> pd.DataFrame:
    data = {"time": times}
    for c in EVENT_COLUMNS[1:]:
        data[c] = columns[c]
    for c in extra:
        data[c] = columns[c]
    frame = pd.DataFrame(data)
    for c in ("venue", "symbol", "position_side", "order_side"):
        frame[c] = frame[c].astype("str")
    frame.attrs.update({"kind": "real", "notes": [], **attrs})
    return frame


def apply_funding_unit(frame: pd.DataFrame, unit: str) -> str:
    """Bring a declared funding unit to fractions: ``"percent"`` divides ``funding_rate`` by 100 (noted).

    Returns the unit the validator should check for (``"auto"`` when nothing was declared).
    """
    from feeds.validate import FUNDING_UNITS

    if unit not in FUNDING_UNITS:
        raise FeedError(f"funding unit {unit!r}; expected one of {', '.join(FUNDING_UNITS)} (--funding-unit)")
    if unit == "percent" and "funding_rate" in frame.columns:
        frame["funding_rate"] = frame["funding_rate"].to_numpy(dtype="float64") / 100.0
        frame.attrs.setdefault("notes", [])
        frame.attrs["notes"] = list(frame.attrs["notes"]) + ["funding_rate declared in percent: divided by 100"]
    return unit


def add_finding(frame: pd.DataFrame, mask: np.ndarray, label: str, column: str | None, check: str, describe,
                times: Any = None, severity: str = "error", rows: list[int] | None = None) -> None:
    """Record a finding a loader made on the file's own columns (a check the canonical frame cannot repeat,
    e.g. taker-buy volume against volume); :func:`run_validator` adds it to the report, so ``data validate``
    reports it next to the other findings and a loading caller gets it as an error.

    ``mask`` marks the offending rows (the first is shown, with the count); ``rows`` maps positions to
    file rows when they differ (Coinalyze markets).
    """
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    if not len(hits):
        return
    i = int(hits[0])
    row = rows[i] if rows is not None else i + 1
    t = times[i] if times is not None else None
    more = "" if len(hits) == 1 else f" ({len(hits)} rows in total, first shown)"
    frame.attrs.setdefault("findings", [])
    frame.attrs["findings"] = list(frame.attrs["findings"]) + [
        {"severity": severity, "check": check, "message": f"{where(label, row, column, t)}: {describe(i)}{more}",
         "row": row, "column": column, "time": None if t is None else fmt_time(t)}]


def finish(frame: pd.DataFrame, kind: str, validate: bool, **vkw: Any) -> pd.DataFrame:
    """Validate a freshly loaded frame (rows = file rows) and raise on errors.

    ``funding_unit`` (``"auto"``, ``"fraction"``, ``"percent"``) is applied before validation, so a
    declared percentage is converted even when ``validate`` is False.
    """
    if "funding_unit" in vkw:
        vkw["funding_unit"] = apply_funding_unit(frame, vkw["funding_unit"])
    if not validate:
        return frame
    report = run_validator(frame, kind, **vkw)
    report.raise_if_errors()
    frame.attrs["validation"] = {k: str(v) for k, v in report.stats.items()}
    return frame


def run_validator(frame: pd.DataFrame, kind: str, **vkw: Any):
    label = frame.attrs.get("source_label")
    if kind not in ("bars", "mark", "index", "premium", "liquidation_bars"):
        vkw.pop("allow_outliers", None)
    if kind not in ("bars", "funding"):
        vkw.pop("funding_unit", None)
    report = _run_validator(frame, kind, label, **vkw)
    for f in frame.attrs.get("findings") or ():
        report.add(f["severity"], f["check"], f["message"], f.get("row"), f.get("column"), f.get("time"))
    return report


def _run_validator(frame: pd.DataFrame, kind: str, label: Any, **vkw: Any):
    if kind in ("bars", "mark", "index", "premium", "liquidation_bars"):
        if kind == "mark":
            vkw.setdefault("required", ("mark_open", "mark_high", "mark_low", "mark_close"))
        elif kind == "index":
            vkw.setdefault("required", ("index_close",))
        elif kind == "premium":
            vkw.setdefault("required", ("premium_close",))
        elif kind == "liquidation_bars":
            vkw.setdefault("required", ())
        vkw.setdefault("interval", frame.attrs.get("interval"))
        return validate_bars(frame, file=label, kind=kind, **vkw)
    if kind == "events":
        vkw.pop("allow_gaps", None)
        return validate_events(frame, file=label, **vkw)
    if kind == "funding":
        return validate_funding(frame, file=label, **vkw)
    if kind == "open_interest":
        return validate_open_interest(frame, file=label, **vkw)
    raise FeedError(f"unknown frame kind {kind!r}")
