"""Turn a column of timestamps (epoch numbers or ISO text) into a UTC ``DatetimeIndex``.

Epoch numbers: the unit is detected per value from its magnitude (seconds < 1e11 <=
milliseconds < 1e14 <= microseconds < 1e17 <= nanoseconds), so Binance's millisecond files
and its newer microsecond files both load; a file that mixes units is an error naming the
first row whose unit differs. Text: every value must carry a time zone (``Z`` or an offset
such as ``+00:00``), and all values must carry the same one; text without a zone is accepted
only when the caller states the venue's convention (``assume_utc=True``, e.g. Binance
``metrics.create_time``, documented as UTC). Nothing is guessed silently.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from feeds.errors import FeedError, show, where

UNIT_BOUNDS: tuple[tuple[float, str], ...] = ((1e11, "s"), (1e14, "ms"), (1e17, "us"), (np.inf, "ns"))
UNIT_FACTOR_NS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
MAX_NS = 9.2e18  # datetime64[ns] ends in April 2262 (int64 nanoseconds)
_TZ_RE = re.compile(r"(Z|[+-]\d\d:?\d\d)$")


def epoch_unit(value: float) -> str:
    """The epoch unit a positive number of this magnitude is in (``"s"``, ``"ms"``, ``"us"``, ``"ns"``)."""
    for bound, unit in UNIT_BOUNDS:
        if abs(value) < bound:
            return unit
    return "ns"


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def parse_epoch(values: pd.Series, *, file: str | None, column: str, unit: str | None = None) -> pd.DatetimeIndex:
    """Epoch numbers to UTC; ``unit`` None means detect it (and refuse a file that mixes units)."""
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = _first(bad)
        raise FeedError(f"{where(file, i + 1, column)}: expected an epoch timestamp, got {show(values.iloc[i])}")
    if unit is None:
        units = np.select([np.abs(arr) < b for b, _ in UNIT_BOUNDS[:-1]], [u for _, u in UNIT_BOUNDS[:-1]], "ns")
        first_unit = units[0]
        mixed = units != first_unit
        if mixed.any():
            i = _first(mixed)
            raise FeedError(
                f"{where(file, i + 1, column)}: timestamp {values.iloc[i]} looks like epoch {units[i]} but row 1 "
                f"({values.iloc[0]}) looks like epoch {first_unit}; expected one unit per file (mixed units)")
        unit = str(first_unit)
    if unit not in UNIT_FACTOR_NS:
        raise FeedError(f"{where(file, None, column)}: unknown epoch unit {unit!r}; expected one of s, ms, us, ns")
    huge = np.abs(arr) * UNIT_FACTOR_NS[unit] >= MAX_NS
    if huge.any():
        i = _first(huge)
        raise FeedError(f"{where(file, i + 1, column)}: timestamp {show(values.iloc[i])} is out of range as epoch {unit} "
                        "(after the year 2262); expected an epoch timestamp in s, ms, us or ns")
    ints = values.to_numpy(dtype="int64") if values.dtype.kind in "iu" else np.round(arr).astype("int64")
    ns = ints * UNIT_FACTOR_NS[unit] if unit != "s" or values.dtype.kind in "iu" else np.round(arr * 1e9).astype("int64")
    return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")


def parse_text(values: pd.Series, *, file: str | None, column: str, assume_utc: bool = False) -> pd.DatetimeIndex:
    """ISO-8601 text to UTC, refusing missing or mixed time zones (see the module docstring)."""
    text = values if values.dtype == "str" else values.astype("str")
    if text.str.endswith("Z").all():  # fast path: every value in UTC 'Z' notation
        try:
            return pd.DatetimeIndex(pd.to_datetime(text, utc=True, format="ISO8601")).as_unit("ns")
        except (ValueError, TypeError):
            pass  # fall through to the row-by-row diagnosis
    text = text.str.strip()
    suffix = text.str.extract(_TZ_RE, expand=False)
    has_tz = suffix.notna().to_numpy()
    if has_tz.any() and not has_tz.all():
        i = _first(has_tz != has_tz[0])
        state = "has a time zone" if has_tz[0] else "has no time zone"
        raise FeedError(
            f"{where(file, i + 1, column)}: timestamp {text.iloc[i]!r} {'has a time zone' if not has_tz[0] else 'has no time zone'} "
            f"but row 1 ({text.iloc[0]!r}) {state}; expected every timestamp in UTC with the same zone (mixed time zones)")
    if not has_tz.any() and not assume_utc:
        raise FeedError(
            f"{where(file, 1, column)}: timestamp {text.iloc[0]!r} has no time zone; expected UTC text such as "
            "'2020-03-13T02:15:00Z' (write the zone, Z or +00:00, into the file: a zone is never guessed)")
    if has_tz.any():
        norm = suffix.str.replace(":", "", regex=False).replace({"Z": "+0000", "-0000": "+0000"})
        distinct = norm.to_numpy()
        diff = distinct != distinct[0]
        if diff.any():
            i = _first(diff)
            raise FeedError(
                f"{where(file, i + 1, column)}: timestamp {text.iloc[i]!r} is in zone {suffix.iloc[i]} but row 1 "
                f"({text.iloc[0]!r}) is in zone {suffix.iloc[0]}; expected one time zone per file (mixed time zones)")
    try:
        out = pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        i = _first(parsed.isna().to_numpy())
        raise FeedError(f"{where(file, i + 1, column)}: cannot parse {text.iloc[i]!r}; expected an ISO-8601 timestamp") from None
    return pd.DatetimeIndex(out).as_unit("ns")


def parse_times(values: pd.Series, *, file: str | None, column: str, unit: str | None = None,
                assume_utc: bool = False) -> pd.DatetimeIndex:
    """Parse a timestamp column of any supported kind into a tz-aware UTC ``DatetimeIndex`` (ns)."""
    if len(values) == 0:
        return pd.DatetimeIndex([], tz="UTC").as_unit("ns")
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        if values.isna().any():
            i = _first(values.isna().to_numpy())
            raise FeedError(f"{where(file, i + 1, column)}: missing timestamp; expected a UTC time")
        return pd.DatetimeIndex(values).tz_convert("UTC").as_unit("ns")
    if values.dtype.kind == "M":
        if not assume_utc:
            raise FeedError(f"{where(file, 1, column)}: timestamps have no time zone (naive datetime64); "
                            "expected tz-aware UTC times (a zone is never guessed)")
        return pd.DatetimeIndex(values).tz_localize("UTC").as_unit("ns")
    if values.dtype.kind in "iuf":
        return parse_epoch(values, file=file, column=column, unit=unit)
    text = values if values.dtype == "str" else values.astype("str")
    first = str(text.iloc[0]).strip()
    if not first[:1].isdigit() or not first.replace(".", "", 1).lstrip("-").isdigit():
        if not first.lstrip("-").replace(".", "", 1).isdigit():
            return parse_text(text, file=file, column=column, assume_utc=assume_utc) if not text.str.fullmatch(
                r"\s*-?\d+(\.\d+)?\s*").any() else _mixed_numeric(text, file, column)
    text = text.str.strip()
    numeric = text.str.fullmatch(r"-?\d+(\.\d+)?").to_numpy()
    if numeric.all():
        floats = text.astype("float64")
        huge = np.abs(floats.to_numpy()) >= MAX_NS
        if huge.any():  # beyond int64 in any unit
            i = _first(huge)
            raise FeedError(f"{where(file, i + 1, column)}: timestamp {text.iloc[i]!r} is out of range (after the year "
                            "2262 in any epoch unit); expected an epoch timestamp in s, ms, us or ns")
        return parse_epoch(floats if not text.str.fullmatch(r"-?\d+").all() else text.astype("int64"),
                           file=file, column=column, unit=unit)
    if numeric.any():
        i = _first(~numeric)
        raise FeedError(f"{where(file, i + 1, column)}: timestamp {show(text.iloc[i])} is not an epoch number like row 1 "
                        f"({text.iloc[0]}); expected one timestamp format per file")
    return parse_text(text, file=file, column=column, assume_utc=assume_utc)


def _mixed_numeric(text: pd.Series, file: str | None, column: str) -> pd.DatetimeIndex:
    numeric = text.str.fullmatch(r"\s*-?\d+(\.\d+)?\s*").to_numpy()
    i = _first(numeric)
    raise FeedError(f"{where(file, i + 1, column)}: timestamp {show(text.iloc[i])} is an epoch number but row 1 "
                    f"({show(text.iloc[0])}) is text; expected one timestamp format per file")
