"""Validation of canonical frames, with findings that name the file, row, column and expectation.

Each ``validate_*`` function returns a :class:`ValidationReport`; nothing is changed in the
data. ``report.raise_if_errors()`` turns errors into a :class:`~feeds.errors.FeedError`.
Loaders call it, so a loaded frame is a valid frame; ``deleverage data validate FILE``
prints the report instead.

Rows: when ``rows=True`` (the default for a frame straight out of a loader) position ``i``
of the frame is data row ``i + 1`` of ``file``; otherwise findings name the timestamp only.

Checks on bars: the index is a tz-aware UTC ``DatetimeIndex``; timestamps strictly
increasing (unsorted and duplicate rows are errors); on the bar grid; gaps counted with the
largest reported (an error unless ``allow_gaps``; ``fill_gaps`` in :mod:`feeds.gaps`
fills them only on request); no NaN outside :data:`~feeds.schema.SPARSE_COLUMNS`; prices
strictly positive and flows non-negative; ``high >= low`` and ``close`` (and ``open``) inside
``[low, high]``, the same for mark OHLC (a venue whose ``open`` is the previous close, such as
BitMEX buckets, says so with ``open_is_previous_close=True`` and the count is reported);
units (``quote_volume / volume`` must be a price inside the bar's range; without a quote
column, a per-bar notional beyond what any venue trades means the volume is not in base
units; funding rates above ``max_abs_funding`` per interval are percentages, not fractions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd

from feeds.errors import FeedError, UnitMismatchError, fmt_time, show, where
from feeds.schema import (
    EVENT_COLUMNS,
    LIQ_COLUMNS,
    MARK_COLUMNS,
    NON_NEGATIVE_COLUMNS,
    ORDER_SIDE_FOR,
    POSITION_SIDES,
    POSITIVE_COLUMNS,
    PRICE_COLUMNS,
    REQUIRED_BAR_COLUMNS,
    SPARSE_COLUMNS,
)

MAX_ABS_FUNDING = 0.05  # 5 % per interval: far above any venue cap; larger values are percentages
# The usual base (interest) rate: 0.03 %/day, i.e. 0.01 % per 8 h on Binance, BitMEX and Hyperliquid
# (research/mechanics.md sections 2.1-2.3); per interval of h hours it is 0.0001 * h / 8. Most calm
# settlements print exactly this rate (Binance, BitMEX: the clamp returns the interest rate).
BASE_FUNDING_PER_8H = 0.0001
FUNDING_UNITS: tuple[str, ...] = ("auto", "fraction", "percent")
# Median |rate| over the file, in multiples of the base rate: up to FRACTION_MAX_MEDIAN the file is in
# fractions (real medians: 1.0-1.7x on the shared Binance/BitMEX files), from PERCENT_MIN_MEDIAN on it
# is in percent (as fractions that would be >= 0.5 % per 8 h on the median settlement, 550 %/yr);
# in between the unit is ambiguous and must be declared.
FRACTION_MAX_MEDIAN = 10.0
PERCENT_MIN_MEDIAN = 50.0
BASE_RATE_MIN_SHARE = 0.05  # share of settlements exactly at the base rate that identifies the unit
# A one-bar print is suspect when its high (low) lies this factor above (below) the range of both
# neighbouring bars and, where present, of the same bar's mark (index) price. The largest one-bar
# excursion on the shared real 1m/1h files is 1.098 (BitMEX 2020-03-13 02:36 low, 9.8 % below).
OUTLIER_FACTOR = 1.5
MIN_BARS = 2  # fewer bars cannot give an interval, a grid or a return
# Largest plausible traded notional per minute of bar on one market (quote units). The busiest
# BTC perpetual minutes trade a few hundred million USD; a per-minute median above this means
# the volume column is not in base units (e.g. USD contracts read as coins).
MAX_MEDIAN_NOTIONAL_PER_MINUTE = 2e9
VWAP_TOLERANCE = 0.01  # quote_volume / volume may sit 1 % outside [low, high] (rounding in exports)
NOTIONAL_TOLERANCE = 0.01  # event notional vs avg_price * qty
# A premium index is a small fraction of the index price (Binance's stay within a few %); a value beyond
# this is a price, i.e. a klines / mark / index file read as premiumIndexKlines.
MAX_ABS_PREMIUM = 0.5
# open_interest_notional / open_interest is the price of one coin in quote units; no listed asset trades
# outside this range, so a ratio beyond it means the two columns are not coins and quote.
IMPLIED_PRICE_RANGE = (1e-8, 1e7)


@dataclass(frozen=True)
class Issue:
    """One finding. ``message`` is complete on its own (it already names file/row/column)."""

    severity: str  # "error" | "warning"
    check: str  # short name: unsorted, duplicate, gap, grid, nan, nonpositive, negative, ohlc, unit, side, schema, timezone
    message: str
    row: int | None = None
    column: str | None = None
    time: Any = None


@dataclass
class ValidationReport:
    """Findings for one frame, plus summary statistics (``stats``)."""

    file: str
    kind: str
    rows: int = 0
    issues: list[Issue] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    # validation options that changed something for this table (not printed): "allow_gaps", "allow_outliers"
    options_used: set[str] = field(default_factory=set)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, severity: str, check: str, message: str, row: int | None = None,
            column: str | None = None, time: Any = None) -> None:
        self.issues.append(Issue(severity, check, message, row, column, time))

    def format(self) -> str:
        lines = [f"{self.file}: {self.kind}, {self.rows} rows"]
        for key, value in self.stats.items():
            lines.append(f"  {key}: {value}")
        for issue in self.issues:
            lines.append(f"  {issue.severity.upper()} [{issue.check}] {issue.message}")
        lines.append(f"  result: {'OK' if self.ok else 'FAILED'} ({len(self.errors)} errors, {len(self.warnings)} warnings)")
        return "\n".join(lines)

    def raise_if_errors(self) -> None:
        errors = self.errors
        if not errors:
            return
        cls = UnitMismatchError if all(e.check == "unit" for e in errors) else FeedError
        text = "; ".join(e.message for e in errors[:5])
        more = f" (and {len(errors) - 5} more findings)" if len(errors) > 5 else ""
        raise cls(text + more)


def _row(pos: int, rows: bool) -> int | None:
    return pos + 1 if rows else None


def _count_note(n: int) -> str:
    return "" if n == 1 else f" ({n} rows in total, first shown)"


def _flag(report: ValidationReport, mask: np.ndarray, index: pd.Index, rows: bool, column: str | None,
          check: str, describe, severity: str = "error") -> int:
    """Add one finding for the first True in ``mask`` (with the total count); return the count."""
    hits = np.flatnonzero(mask)
    if not len(hits):
        return 0
    i = int(hits[0])
    t = index[i] if isinstance(index, pd.DatetimeIndex) else None
    msg = f"{where(report.file, _row(i, rows), column, t)}: {describe(i)}{_count_note(len(hits))}"
    report.add(severity, check, msg, _row(i, rows), column, t)
    return len(hits)


def check_time_index(report: ValidationReport, idx: pd.Index, rows: bool, *, unique: bool = True,
                     label: str = "timestamp") -> bool:
    """Tz-aware UTC, sorted, (unique). Returns True when the index is sorted and unique."""
    if not isinstance(idx, pd.DatetimeIndex):
        report.add("error", "schema", f"{where(report.file)}: expected a DatetimeIndex of UTC {label}s, got {type(idx).__name__}")
        return False
    if idx.tz is None:
        report.add("error", "timezone", f"{where(report.file, 1 if rows else None)}: {label}s have no time zone; expected tz-aware UTC")
        return False
    idx = idx.as_unit("ns")
    if len(idx) and idx.hasnans:
        _flag(report, np.asarray(idx.isna()), idx, rows, None, "nan", lambda i: f"missing {label}; expected a UTC time")
        return False
    ns = idx.asi8
    d = np.diff(ns)
    back = d < 0
    _flag(report, np.r_[False, back], idx, rows, None, "unsorted",
          lambda i: f"{label} {fmt_time(idx[i])} is earlier than " + (f"row {i}" if rows else f"the previous {label}")
                    + f" ({fmt_time(idx[i - 1])}); "
                    f"expected {label}s in increasing order (the file is unsorted)")
    dup = d == 0
    if unique:
        _flag(report, np.r_[False, dup], idx, rows, None, "duplicate",
              lambda i: f"duplicate {label} {fmt_time(idx[i])} (same as the previous row); expected each {label} once")
    return not back.any() and (not unique or not dup.any())


def infer_interval(idx: pd.DatetimeIndex) -> pd.Timedelta | None:
    """The most common positive step between consecutive timestamps."""
    if len(idx) < 2:
        return None
    d = np.diff(idx.as_unit("ns").asi8)
    d = d[d > 0]
    if not len(d):
        return None
    values, counts = np.unique(d, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def interval_alias(step: pd.Timedelta | None) -> str | None:
    if step is None:
        return None
    text = pd.tseries.frequencies.to_offset(step).freqstr
    return text if text[:1].isdigit() else "1" + text


def check_gaps(report: ValidationReport, idx: pd.DatetimeIndex, step: pd.Timedelta, rows: bool,
               allow_gaps: bool, label: str = "bar") -> None:
    """Off-grid steps are errors; gaps are counted, the largest reported (error unless allowed)."""
    idx = idx.as_unit("ns")
    ns = idx.asi8
    d = np.diff(ns)
    s = step.value
    off = (d % s) != 0
    _flag(report, np.r_[False, off], idx, rows, None, "grid",
          lambda i: f"{label} at {fmt_time(idx[i])} is {interval_alias(pd.Timedelta(int(d[i - 1])))} after the previous one; "
                    f"expected steps that are multiples of {interval_alias(step)}")
    if step <= pd.Timedelta(days=1) and len(ns):
        misaligned = (ns % s) != 0
        _flag(report, misaligned, idx, rows, None, "grid",
              lambda i: f"{label} at {fmt_time(idx[i])} is not on the {interval_alias(step)} grid; "
                        f"expected {label} open times that are multiples of {interval_alias(step)} (UTC)")
    big = (d > s) & ~off  # an off-grid step is a grid error above, not a gap of a whole number of bars
    n_gaps = int(big.sum())
    missing = int(((d[big] // s) - 1).sum()) if n_gaps else 0
    report.stats["gaps"] = n_gaps
    report.stats[f"missing {label}s"] = missing
    if n_gaps:
        j = int(np.argmax(np.where(big, d, 0)))
        largest = int(d[j] // s - 1)
        first = int(np.flatnonzero(big)[0])
        report.stats["largest gap"] = (f"{largest} {label}s missing after {fmt_time(idx[j])} "
                                        f"(next {label} {fmt_time(idx[j + 1])})")
        msg = (f"{where(report.file, _row(first + 1, rows), None, idx[first + 1])}: gap of "
               f"{int(d[first] // s - 1)} missing {interval_alias(step)} {label}s before this row "
               f"(previous {label} {fmt_time(idx[first])}); {n_gaps} gaps, {missing} missing {label}s in total, "
               f"largest {largest} after {fmt_time(idx[j])}; expected consecutive {label}s "
               f"(allow with allow_gaps / --allow-gaps, or fill with fill_gaps / --fill-gaps)")
        report.add("warning" if allow_gaps else "error", "gap", msg, _row(first + 1, rows), None, idx[first + 1])


def _numeric(report: ValidationReport, frame: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    ok = []
    for c in columns:
        if c not in frame.columns:
            continue
        if frame[c].dtype.kind not in "iufb":
            bad = pd.to_numeric(frame[c], errors="coerce").isna() & frame[c].notna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                report.add("error", "schema", f"{where(report.file, i + 1, c)}: {show(frame[c].iloc[i])} is not a number; expected a number", i + 1, c)
                continue
        ok.append(c)
    return ok


def check_values(report: ValidationReport, frame: pd.DataFrame, rows: bool, *, nan_ok: Iterable[str] = ()) -> None:
    """NaN, positivity and non-negativity of the canonical numeric columns present."""
    idx = frame.index
    nan_ok = set(nan_ok) | set(SPARSE_COLUMNS)
    for c in frame.columns:
        if c not in (*REQUIRED_BAR_COLUMNS, *SPARSE_COLUMNS, *MARK_COLUMNS, *LIQ_COLUMNS, "quote_volume"):
            continue
        v = frame[c].to_numpy(dtype="float64", na_value=np.nan)
        nan = np.isnan(v)
        if nan.any():
            if c in nan_ok:
                if c not in SPARSE_COLUMNS:
                    _flag(report, nan, idx, rows, c, "nan",
                          lambda i: "no value (NaN); kept as NaN (unknown), never filled", severity="warning")
            else:
                _flag(report, nan, idx, rows, c, "nan", lambda i: "value is NaN; expected a number (missing values are never filled)")
        inf = np.isinf(v)
        _flag(report, inf, idx, rows, c, "nan", lambda i: f"value is {v[i]}; expected a finite number")
        if c in POSITIVE_COLUMNS:
            _flag(report, v <= 0, idx, rows, c, "nonpositive", lambda i: f"price {v[i]:g} is not positive; expected a price > 0")
        elif c in NON_NEGATIVE_COLUMNS:
            _flag(report, v < 0, idx, rows, c, "negative", lambda i: f"value {v[i]:g} is negative; expected >= 0")


def check_ohlc(report: ValidationReport, frame: pd.DataFrame, rows: bool, names: tuple[str, str, str, str],
               *, open_is_previous_close: bool = False) -> None:
    o, h, low_name, c = names
    if not all(n in frame.columns for n in names):
        return
    idx = frame.index
    O, H, L, C = (frame[n].to_numpy(dtype="float64", na_value=np.nan) for n in names)
    _flag(report, H < L, idx, rows, h, "ohlc", lambda i: f"{h} {H[i]:g} is below {low_name} {L[i]:g}; expected {h} >= {low_name}")
    outside_c = (C > H) | (C < L)
    _flag(report, outside_c, idx, rows, c, "ohlc",
          lambda i: f"{c} {C[i]:g} is outside [{low_name}, {h}] = [{L[i]:g}, {H[i]:g}]; expected {low_name} <= {c} <= {h}")
    outside_o = (O > H) | (O < L)
    if open_is_previous_close:
        prev_close = np.r_[np.nan, C[:-1]]
        not_prev = outside_o & ~np.isclose(O, prev_close, rtol=0, atol=1e-9) & ~np.isnan(prev_close)
        _flag(report, not_prev, idx, rows, o, "ohlc",
              lambda i: f"{o} {O[i]:g} is outside [{low_name}, {h}] = [{L[i]:g}, {H[i]:g}] and is not the previous "
                        f"{c} {prev_close[i]:g}; expected {o} = previous {c} (venue quirk open_is_previous_close)")
        report.stats[f"{o} outside range (open = previous close, venue quirk)"] = int(outside_o.sum())
    else:
        _flag(report, outside_o, idx, rows, o, "ohlc",
              lambda i: f"{o} {O[i]:g} is outside [{low_name}, {h}] = [{L[i]:g}, {H[i]:g}]; expected {low_name} <= {o} <= {h} "
                        "(for BitMEX buckets, whose open is the previous close, use --format bitmex_buckets)")


def check_volume_units(report: ValidationReport, frame: pd.DataFrame, rows: bool, step: pd.Timedelta | None) -> None:
    """Contracts/quote read as base units (and the reverse) show up as an impossible VWAP or notional."""
    if not {"volume", "low", "high", "close"} <= set(frame.columns):
        return
    vol = frame["volume"].to_numpy(dtype="float64", na_value=np.nan)
    idx = frame.index
    if "quote_volume" in frame.columns:
        q = frame["quote_volume"].to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            vwap = q / vol
        lo = frame["low"].to_numpy(dtype="float64") * (1 - VWAP_TOLERANCE)
        hi = frame["high"].to_numpy(dtype="float64") * (1 + VWAP_TOLERANCE)
        bad = (vol > 0) & (q > 0) & ((vwap < lo) | (vwap > hi))
        _flag(report, bad, idx, rows, "volume", "unit",
              lambda i: f"quote_volume / volume = {vwap[i]:.6g} is not a price inside the bar's range "
                        f"[{lo[i] / (1 - VWAP_TOLERANCE):g}, {hi[i] / (1 + VWAP_TOLERANCE):g}]; expected volume in base units "
                        "and quote_volume in quote units (contracts vs coins mix-up?)")
        return
    if step is None:
        return
    minutes = max(step / pd.Timedelta(minutes=1), 1e-9)
    close = frame["close"].to_numpy(dtype="float64")
    per_minute = vol * close / minutes
    traded = per_minute[vol > 0]
    if not len(traded):
        return
    median = float(np.median(traded))
    if median > MAX_MEDIAN_NOTIONAL_PER_MINUTE:
        i = int(np.flatnonzero((vol > 0) & (per_minute > MAX_MEDIAN_NOTIONAL_PER_MINUTE))[0])
        msg = (f"{where(report.file, _row(i, rows), 'volume', idx[i])}: volume {vol[i]:g} x close {close[i]:g} = "
               f"{vol[i] * close[i]:.3g} quote per bar; the median over the file is {median:.3g} quote per minute, beyond "
               f"any venue ({MAX_MEDIAN_NOTIONAL_PER_MINUTE:.0e}); expected volume in base units (coins): the column "
               "looks like contracts or quote currency (declare it with --volume-unit contracts or quote)")
        report.add("error", "unit", msg, _row(i, rows), "volume", idx[i])


def detect_funding_unit(rates: np.ndarray, interval_hours: float = 8.0) -> tuple[str, str]:
    """``("fraction" | "percent" | "ambiguous", why)`` for a file's funding rates taken as a whole.

    Decided on the file, not per value: the share of settlements exactly at the usual base rate
    (0.01 % per 8 h, as a fraction 0.0001 or as percent 0.01) and the median magnitude against
    that base rate (:data:`FRACTION_MAX_MEDIAN`, :data:`PERCENT_MIN_MEDIAN`).
    """
    r = np.abs(rates[np.isfinite(rates)])
    r = r[r > 0]
    if not len(r):
        return "fraction", "no non-zero rate"
    base = BASE_FUNDING_PER_8H * (interval_hours if np.isfinite(interval_hours) and interval_hours > 0 else 8.0) / 8.0
    at_frac = int(np.isclose(r, base, rtol=1e-6, atol=0).sum())
    at_pct = int(np.isclose(r, base * 100, rtol=1e-6, atol=0).sum())
    need = max(1, int(np.ceil(BASE_RATE_MIN_SHARE * len(r))))
    if at_pct >= need and at_pct > at_frac:
        return "percent", f"{at_pct} of {len(r)} rates are {base * 100:g}, the base rate {base:g} written in percent"
    if at_frac >= need:
        return "fraction", f"{at_frac} of {len(r)} rates are the base rate {base:g}"
    median = float(np.median(r))
    ratio = median / base
    if ratio <= FRACTION_MAX_MEDIAN:
        return "fraction", f"median |rate| {median:.4g} is {ratio:.3g}x the base rate {base:g}"
    if ratio >= PERCENT_MIN_MEDIAN:
        return "percent", (f"median |rate| {median:.4g} is {ratio:.3g}x the base rate {base:g}: as a fraction that is "
                           f"{median:.3%} per interval on the median settlement")
    return "ambiguous", (f"median |rate| {median:.4g} is {ratio:.3g}x the base rate {base:g} and no rate sits at the "
                         f"base rate; as a fraction that is {median:.3%} per interval, as percent {median:.4g} %")


def check_funding_magnitude(report: ValidationReport, frame: pd.DataFrame, rows: bool, column: str = "funding_rate",
                            max_abs: float = MAX_ABS_FUNDING, unit: str = "auto",
                            interval_hours: float | None = None) -> None:
    """Funding rates must be fractions per interval: the unit is detected from the file as a whole.

    ``unit="fraction"`` (declared) skips the detection but still refuses values above ``max_abs``;
    ``"percent"`` means the loader has already divided by 100.
    """
    if column not in frame.columns:
        return
    r = frame[column].to_numpy(dtype="float64", na_value=np.nan)
    idx = frame.index if isinstance(frame.index, pd.DatetimeIndex) else pd.DatetimeIndex(frame["time"]) if "time" in frame else frame.index
    name = frame.attrs.get("funding_rate_column") or column
    declare = "declare the unit with --funding-unit fraction|percent (funding_unit= in Python)"
    n_big = _flag(report, np.abs(r) > max_abs, idx, rows, name, "unit",
                  lambda i: f"funding rate {r[i]:g} exceeds {max_abs:g} per interval (no venue's cap is that high); "
                            f"expected a fraction (0.0001 = 0.01 %): this looks like a percentage; "
                            f"{declare if unit == 'auto' else 'the file does not hold fractions'}")
    if n_big:
        return
    if interval_hours is None:
        if "interval_hours" in frame.columns and np.isfinite(frame["interval_hours"].to_numpy(dtype="float64")).any():
            interval_hours = float(np.nanmedian(frame["interval_hours"].to_numpy(dtype="float64")))
        else:
            t = idx[np.isfinite(r)] if isinstance(idx, pd.DatetimeIndex) else None
            interval_hours = (float(np.median(np.diff(t.asi8))) / 3.6e12) if t is not None and len(t) > 1 else 8.0
    if unit != "auto":  # declared: the loader has already divided percentages by 100
        as_written = r * 100.0 if unit == "percent" else r
        found, why = detect_funding_unit(as_written, interval_hours)
        report.stats["funding unit"] = f"{unit} (declared with --funding-unit" + (
            "; divided by 100)" if unit == "percent" else ")")
        # only a declared percentage is checked: "fraction" is also what callers declare for frames whose
        # funding was converted on load (feeds.build), where a window of a few settlements decides nothing
        if unit == "percent" and found == "fraction":
            report.add("error", "unit", f"{where(report.file, None, name)}: --funding-unit {unit} contradicts the file, "
                       f"whose rates are {found}s: {why}; expected --funding-unit {found} (or auto)", None, name)
        return
    found, why = detect_funding_unit(r, interval_hours)
    report.stats["funding unit"] = f"{found} ({why})"
    if found == "percent":
        report.add("error", "unit", f"{where(report.file, None, name)}: the funding rates look like percentages, not "
                   f"fractions: {why}; expected fractions (0.0001 = 0.01 %); {declare}", None, name)
    elif found == "ambiguous":
        report.add("error", "unit", f"{where(report.file, None, name)}: cannot tell whether the funding rates are "
                   f"fractions or percentages: {why}; {declare}", None, name)


def check_outliers(report: ValidationReport, frame: pd.DataFrame, rows: bool, allow: bool,
                   names: tuple[str, str] = ("high", "low"), factor: float = OUTLIER_FACTOR) -> None:
    """Suspected bad prints: a high (low) ``factor`` beyond both neighbours' range, or beyond the bar's mark/index.

    Neighbours: a genuine move stays (the bars after it trade at the new level, so it is inside
    the neighbours' range); a one-bar spike that reverts does not. Mark/index (last-price bars
    only, where the frame has them): a trade ``factor`` away from the venue's own reference
    price of the same bar. An error unless ``allow`` (then a warning); the data is never changed.
    """
    h_name, l_name = names
    if h_name not in frame.columns or l_name not in frame.columns or len(frame) < 2:
        return
    H = frame[h_name].to_numpy(dtype="float64", na_value=np.nan)
    L = frame[l_name].to_numpy(dtype="float64", na_value=np.nan)
    how = "allowed with --allow-outliers" if allow else "pass --allow-outliers (allow_outliers=True) to keep it"
    sev = "warning" if allow else "error"
    refs: list[tuple[str, np.ndarray, np.ndarray]] = []
    with np.errstate(invalid="ignore"):
        refs.append(("its neighbouring bars", np.fmax(np.r_[np.nan, H[:-1]], np.r_[H[1:], np.nan]),
                     np.fmin(np.r_[np.nan, L[:-1]], np.r_[L[1:], np.nan])))
    if h_name == "high":
        if "mark_high" in frame.columns and "mark_low" in frame.columns:
            refs.append(("its mark price", frame["mark_high"].to_numpy(dtype="float64", na_value=np.nan),
                         frame["mark_low"].to_numpy(dtype="float64", na_value=np.nan)))
        elif "index_close" in frame.columns:
            ix = frame["index_close"].to_numpy(dtype="float64", na_value=np.nan)
            refs.append(("its index price", ix, ix))
    total = 0
    for ref, ref_hi, ref_lo in refs:
        with np.errstate(invalid="ignore"):
            up = H > ref_hi * factor
            down = (L > 0) & (L * factor < ref_lo)
        what = "a one-bar spike that reverts" if ref == "its neighbouring bars" else "a trade far from the venue's reference"
        total += _flag(report, up, frame.index, rows, h_name, "outlier",
                       lambda i: f"{h_name} {H[i]:g} is {H[i] / ref_hi[i]:.3g}x the highest price of {ref} "
                                 f"({ref_hi[i]:g}); {what} is a suspected bad print; expected prices within {factor:g}x "
                                 f"of it ({how})", severity=sev)
        total += _flag(report, down, frame.index, rows, l_name, "outlier",
                       lambda i: f"{l_name} {L[i]:g} is {ref_lo[i] / L[i]:.3g}x below the lowest price of {ref} "
                                 f"({ref_lo[i]:g}); {what} is a suspected bad print; expected prices within {factor:g}x "
                                 f"of it ({how})", severity=sev)
    if total:
        report.stats[f"suspected bad prints ({h_name}/{l_name})"] = total


def validate_bars(frame: pd.DataFrame, *, file: str | None = None, rows: bool = True, interval: str | None = None,
                  allow_gaps: bool = False, open_is_previous_close: bool | None = None,
                  required: Iterable[str] = REQUIRED_BAR_COLUMNS, nan_ok: Iterable[str] = (),
                  kind: str = "bars", allow_outliers: bool = False, funding_unit: str = "auto",
                  min_bars: int = MIN_BARS) -> ValidationReport:
    """Validate a canonical bar frame (or a partial one: ``required=()`` for liquidation-only bars).

    ``open_is_previous_close`` defaults to ``"open_is_previous_close" in frame.attrs["quirks"]``.
    """
    file = file or frame.attrs.get("source_label") or frame.attrs.get("source") or "<frame>"
    report = ValidationReport(file=str(file), kind=kind, rows=len(frame))
    missing = [c for c in required if c not in frame.columns]
    if missing:
        report.add("error", "schema", f"{where(report.file)}: missing column(s) {missing}; expected {list(required)}")
        return report
    if len(frame) < min_bars:
        report.add("error", "empty", f"{where(report.file)}: {len(frame)} bar{'' if len(frame) == 1 else 's'}; expected at "
                   f"least {min_bars} (too few to tell the bar interval)")
        return report
    if open_is_previous_close is None:
        open_is_previous_close = "open_is_previous_close" in frame.attrs.get("quirks", ())
    idx = frame.index
    sorted_ok = check_time_index(report, idx, rows, label="bar open time")
    if len(frame):
        report.stats["first bar"] = fmt_time(idx[0]) if isinstance(idx, pd.DatetimeIndex) and idx.tz else idx[0]
        report.stats["last bar"] = fmt_time(idx[-1]) if isinstance(idx, pd.DatetimeIndex) and idx.tz else idx[-1]
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(interval)) if interval else (
        infer_interval(idx) if isinstance(idx, pd.DatetimeIndex) else None)
    report.stats["interval"] = interval_alias(step)
    if sorted_ok and step is not None and isinstance(idx, pd.DatetimeIndex) and idx.tz is not None:
        check_gaps(report, idx, step, rows, allow_gaps)
    _numeric(report, frame, frame.columns)
    if report.errors and any(e.check == "schema" for e in report.errors):
        return report
    check_values(report, frame, rows, nan_ok=nan_ok)
    check_ohlc(report, frame, rows, PRICE_COLUMNS, open_is_previous_close=bool(open_is_previous_close))
    check_ohlc(report, frame, rows, MARK_COLUMNS)
    check_outliers(report, frame, rows, allow_outliers)
    check_outliers(report, frame, rows, allow_outliers, names=("mark_high", "mark_low"))
    check_volume_units(report, frame, rows, step)
    check_funding_magnitude(report, frame, rows, unit=funding_unit)
    if "premium_close" in frame.columns:
        p = frame["premium_close"].to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            _flag(report, np.abs(p) > MAX_ABS_PREMIUM, frame.index, rows, "close", "unit",
                  lambda i: f"premium index {p[i]:g} is not a premium (a small fraction of the index price, such as "
                            f"0.0003; at most {MAX_ABS_PREMIUM:g}); this looks like a price: expected a premiumIndexKlines "
                            "file (or --format binance_klines, binance_markPriceKlines, binance_indexPriceKlines)")
    if "volume" in frame.columns:
        report.stats["zero-volume bars"] = int((frame["volume"] == 0).sum())
    return report


def validate_events(frame: pd.DataFrame, *, file: str | None = None, rows: bool = True,
                    check_notional: bool = True) -> ValidationReport:
    """Validate a liquidation-event frame (schema :data:`~feeds.schema.EVENT_COLUMNS`)."""
    file = file or frame.attrs.get("source_label") or frame.attrs.get("source") or "<frame>"
    report = ValidationReport(file=str(file), kind="liquidation events", rows=len(frame))
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        report.add("error", "schema", f"{where(report.file)}: missing column(s) {missing}; expected {list(EVENT_COLUMNS)}")
        return report
    times = pd.DatetimeIndex(frame["time"]).as_unit("ns")
    check_time_index(report, times, rows, unique=False, label="event time")
    if len(frame):
        report.stats["first event"] = fmt_time(times[0])
        report.stats["last event"] = fmt_time(times[-1])
    dup = frame.duplicated(keep="first").to_numpy()
    _flag(report, dup, times, rows, None, "duplicate",
          lambda i: "identical to an earlier row (a recorder writing an event twice?); expected each event once")
    pos = frame["position_side"].astype("str").to_numpy()
    order = frame["order_side"].astype("str").to_numpy()
    _flag(report, ~np.isin(pos, POSITION_SIDES), times, rows, "position_side", "side",
          lambda i: f"{show(pos[i])} is not a position side; expected 'long' or 'short'")
    _flag(report, ~np.isin(order, ("buy", "sell")), times, rows, "order_side", "side",
          lambda i: f"{show(order[i])} is not an order side; expected 'buy' or 'sell'")
    expected = np.array([ORDER_SIDE_FOR.get(p, "?") for p in pos])
    _flag(report, np.isin(pos, POSITION_SIDES) & (expected != order), times, rows, "order_side", "side",
          lambda i: f"order side {show(order[i])} does not close a {pos[i]} position; expected {show(expected[i])} "
                    "(a forced sell closes a long, a forced buy closes a short)")
    for c in ("price", "avg_price", "qty", "notional"):
        if c not in _numeric(report, frame, [c]):
            continue
        v = frame[c].to_numpy(dtype="float64", na_value=np.nan)
        _flag(report, np.isnan(v) | np.isinf(v), times, rows, c, "nan", lambda i: f"value is {v[i]}; expected a number")
        _flag(report, v <= 0, times, rows, c, "nonpositive", lambda i: f"{c} {v[i]:g} is not positive; expected > 0")
    if check_notional and not report.errors:
        ap = frame["avg_price"].to_numpy(dtype="float64")
        q = frame["qty"].to_numpy(dtype="float64")
        n = frame["notional"].to_numpy(dtype="float64")
        rel = np.abs(n - ap * q) / n
        _flag(report, rel > NOTIONAL_TOLERANCE, times, rows, "notional", "unit",
              lambda i: f"notional {n[i]:g} differs from avg_price x qty = {ap[i]:g} x {q[i]:g} = {ap[i] * q[i]:g}; "
                        "expected qty in base units and notional in quote units (contracts vs coins?)")
    if not len(frame):
        report.add("error", "empty", f"{where(report.file)}: no liquidation events; expected at least one")
    if len(frame):
        names, counts = np.unique(frame["symbol"].astype("str").to_numpy(), return_counts=True)
        report.stats["symbols"] = ", ".join(f"{n} ({c} event{'' if c == 1 else 's'})" for n, c in
                                            sorted(zip(names, counts), key=lambda nc: -nc[1]))
        for side in POSITION_SIDES:
            m = pos == side
            report.stats[f"{side} liquidations"] = f"{int(m.sum())} events, notional {frame['notional'].to_numpy()[m].sum():,.2f}"
    return report


def validate_funding(frame: pd.DataFrame, *, file: str | None = None, rows: bool = True, allow_gaps: bool = True,
                     max_abs: float = MAX_ABS_FUNDING, funding_unit: str = "auto") -> ValidationReport:
    """Validate funding settlements: sorted, unique per symbol, on schedule, fractions.

    A funding file is a list of settlements, often for a few separate windows, so missed
    settlements are warnings here (``allow_gaps=False`` makes them errors);
    :func:`feeds.funding_rates.place_funding` checks that the backtest window itself has every
    settlement.
    """
    file = file or frame.attrs.get("source_label") or frame.attrs.get("source") or "<frame>"
    report = ValidationReport(file=str(file), kind="funding settlements", rows=len(frame))
    for c in ("time", "funding_rate"):
        if c not in frame.columns:
            report.add("error", "schema", f"{where(report.file)}: missing column {c!r}; expected time, funding_rate")
            return report
    if not len(frame):
        report.add("error", "empty", f"{where(report.file)}: no funding settlements; expected at least one")
        return report
    symbols = frame["symbol"].astype("str").to_numpy() if "symbol" in frame.columns else np.full(len(frame), "")
    times = pd.DatetimeIndex(frame["time"]).as_unit("ns")
    hours_all = (frame["interval_hours"].to_numpy(dtype="float64", na_value=np.nan) if "interval_hours" in frame.columns
                 else np.full(len(frame), np.nan))
    icol = frame.attrs.get("interval_column") or "interval_hours"
    bad_hours = np.isfinite(hours_all) & (hours_all <= 0)
    _flag(report, bad_hours | np.isinf(hours_all), times, rows, icol, "schema",
          lambda i: f"funding interval {hours_all[i]:g} hours; expected a positive number of hours (8 on most venues)")
    for sym in pd.unique(symbols):
        m = symbols == sym
        sub_idx = times[m]
        positions = np.flatnonzero(m)
        sub = ValidationReport(file=report.file, kind=report.kind)
        sorted_ok = check_time_index(sub, sub_idx, False, label="settlement time")
        interval_h = None
        stated = hours_all[positions]
        stated = stated[np.isfinite(stated) & (stated > 0)]
        if len(stated):
            values, counts = np.unique(stated, return_counts=True)
            interval_h = float(values[np.argmax(counts)])  # the interval most settlements state
        if sorted_ok and len(sub_idx) > 1:
            seen = infer_interval(sub_idx.round("1min"))
            if interval_h and seen is not None and seen != pd.Timedelta(hours=interval_h):
                k = int(np.flatnonzero(np.isfinite(hours_all[positions]) & (hours_all[positions] == interval_h))[0])
                row = _row(int(positions[k]), rows)
                report.add("error", "schema", f"{where(report.file, row, icol, sub_idx[k])}: funding interval "
                           f"{interval_h:g} hours, but the {sym or ''} settlements are {interval_alias(seen)} apart (the "
                           f"most common step); expected the interval the settlements follow", row, icol, sub_idx[k])
            step = pd.Timedelta(hours=interval_h) if interval_h else seen
            nominal = sub_idx.round("1min")
            d = np.diff(nominal.asi8)
            big = d > step.value
            n_gaps = int(big.sum())
            report.stats[f"{sym or 'all'} settlements"] = (f"{int(m.sum())} from {fmt_time(sub_idx[0])} to "
                                                           f"{fmt_time(sub_idx[-1])}, every {interval_alias(step)}, {n_gaps} gaps")
            if n_gaps:
                k = int(np.flatnonzero(big)[0]) + 1
                msg = (f"{where(report.file, _row(int(positions[k]), rows), None, sub_idx[k])}: {sym} settlement comes "
                       f"{pd.Timedelta(int(d[k - 1]))} after the previous one ({fmt_time(sub_idx[k - 1])}); expected one every "
                       f"{interval_alias(step)} ({n_gaps} gaps for {sym})")
                report.add("warning" if allow_gaps else "error", "gap", msg, _row(int(positions[k]), rows), None, sub_idx[k])
        elif sorted_ok and len(sub_idx) == 1:
            report.stats[f"{sym or 'all'} settlements"] = (f"1 at {fmt_time(sub_idx[0])} (too few to check the "
                                                           "schedule)")
        for issue in sub.issues:  # re-map per-symbol positions to file rows
            if issue.time is not None and issue.row is None:
                k = int(np.flatnonzero(sub_idx == issue.time)[-1])
                row = _row(int(positions[k]), rows)
                at = where(report.file, None, issue.column, issue.time)
                msg = (where(report.file, row, issue.column, issue.time) + issue.message[len(at):]
                       if issue.message.startswith(at) else issue.message)
                report.add(issue.severity, issue.check, msg + (f" (symbol {sym})" if sym else ""), row, issue.column, issue.time)
            else:
                report.add(issue.severity, issue.check, issue.message, issue.row, issue.column, issue.time)
    if "funding_rate" in _numeric(report, frame, ["funding_rate"]):
        r = frame["funding_rate"].to_numpy(dtype="float64", na_value=np.nan)
        _flag(report, np.isnan(r), times, rows, "funding_rate", "nan", lambda i: "funding rate is NaN; expected a number")
        check_funding_magnitude(report, frame.set_axis(times), rows, max_abs=max_abs, unit=funding_unit)
    return report


def validate_open_interest(frame: pd.DataFrame, *, file: str | None = None, rows: bool = True,
                           allow_gaps: bool = True) -> ValidationReport:
    """Validate open-interest snapshots: sorted, unique, non-negative, no NaN."""
    file = file or frame.attrs.get("source_label") or frame.attrs.get("source") or "<frame>"
    report = ValidationReport(file=str(file), kind="open interest", rows=len(frame))
    if "time" not in frame.columns:
        report.add("error", "schema", f"{where(report.file)}: missing column 'time'")
        return report
    times = pd.DatetimeIndex(frame["time"]).as_unit("ns")
    if check_time_index(report, times, rows, label="snapshot time") and len(times) > 1:
        step = infer_interval(times)
        check_gaps(report, times, step, rows, allow_gaps, label="snapshot")
        report.stats["interval"] = interval_alias(step)
    cols = [c for c in ("open_interest", "open_interest_notional") if c in frame.columns]
    if not cols:
        report.add("error", "schema", f"{where(report.file)}: expected open_interest and/or open_interest_notional")
    for c in _numeric(report, frame, cols):
        v = frame[c].to_numpy(dtype="float64", na_value=np.nan)
        _flag(report, np.isnan(v), times, rows, c, "nan", lambda i: "value is NaN; expected a number (never filled)")
        _flag(report, v < 0, times, rows, c, "negative", lambda i: f"open interest {v[i]:g} is negative; expected >= 0")
        _flag(report, v == 0, times, rows, c, "nonpositive",
              lambda i: "open interest 0; expected > 0 (a listed perpetual always has open positions; a 0 is most "
                        "likely a missing value)")
    if {"open_interest", "open_interest_notional"} <= set(frame.columns) and not report.errors:
        oi = frame["open_interest"].to_numpy(dtype="float64", na_value=np.nan)
        value = frame["open_interest_notional"].to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            implied = value / oi
            lo, hi = IMPLIED_PRICE_RANGE
            bad = np.isfinite(implied) & ((implied < lo) | (implied > hi))
        _flag(report, bad, times, rows, "open_interest_notional", "unit",
              lambda i: f"open_interest_notional / open_interest = {value[i]:g} / {oi[i]:g} = {implied[i]:.4g} is not a "
                        f"price of one coin (expected between {lo:g} and {hi:g} quote per coin); expected open_interest in "
                        "coins and open_interest_notional in quote currency")
    return report
