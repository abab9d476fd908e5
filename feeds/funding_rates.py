"""Funding settlements placed on bars.

The ``funding_rate`` column holds the rate settled inside a bar and NaN in every other bar
(the broker settles funding exactly where it is not NaN). A settlement goes to the bar that
contains its instant, ``floor(time, interval)``: no rounding to the nominal hour first, so
Binance's ``calc_time`` 08:00:00.004 (a few ms of jitter) is in the 08:00 bar. Two
settlements in one bar (only with coarse bars) are summed.

Coverage is checked for the window: every settlement the schedule (``interval_hours``)
implies between the first and last bar must be present, and the file must reach both ends
of the window, or :class:`~feeds.errors.FeedError` names the missing settlement time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feeds.errors import FeedError, fmt_time, where
from feeds.liquidations import bar_of


def place_funding(funding: pd.DataFrame, index: pd.DatetimeIndex, interval: str, *, symbol: str | None = None,
                  require_complete: bool = True) -> pd.Series:
    """A ``funding_rate`` series on ``index`` (NaN off-settlement)."""
    label = funding.attrs.get("source_label") or funding.attrs.get("source") or "<funding>"
    if symbol is not None and "symbol" in funding.columns:
        sel = funding["symbol"].astype("str").to_numpy() == symbol
        if not sel.any():
            known = list(pd.unique(funding["symbol"].astype("str")))
            raise FeedError(f"{label}: no funding settlements for symbol {symbol!r}; the file has {known}")
        funding = funding[sel]
    elif "symbol" in funding.columns and funding["symbol"].nunique() > 1:
        raise FeedError(f"{label}: funding for several symbols {list(pd.unique(funding['symbol']))}; pass symbol=")
    times = pd.DatetimeIndex(funding["time"]).as_unit("ns")
    index = pd.DatetimeIndex(index).as_unit("ns")
    rates = funding["funding_rate"].to_numpy(dtype="float64")
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(interval))
    out = pd.Series(np.nan, index=index, name="funding_rate")
    if not len(index):
        return out
    start, end = index[0], index[-1] + step
    inside = np.asarray((times >= start) & (times < end))
    bars = bar_of(times[inside], interval)
    pos = index.get_indexer(bars)
    if (pos < 0).any():
        k = int(np.flatnonzero(pos < 0)[0])
        t = times[inside][k]
        raise FeedError(f"{where(label, None, 'time', t)}: funding settlement falls in bar {fmt_time(bars[k])}, which is "
                        "missing from the bars; expected a bar for every settlement")
    sums = np.bincount(pos, weights=rates[inside], minlength=len(index))
    hits = np.bincount(pos, minlength=len(index)) > 0
    out[hits] = sums[hits]
    if require_complete:
        hours = funding["interval_hours"].to_numpy(dtype="float64") if "interval_hours" in funding.columns else None
        every = pd.Timedelta(hours=float(np.nanmedian(hours))) if hours is not None and np.isfinite(hours).any() else None
        if every is None and len(times) > 1:
            every = pd.Timedelta(int(np.median(np.diff(times.asi8))), unit="ns")
        _check_coverage(label, times, start, end, every)
    return out


def _check_coverage(label: str, times: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp,
                    every: pd.Timedelta | None) -> None:
    if every is None:
        return
    tol = pd.Timedelta(minutes=1)
    nominal = times.round("1min")
    before = nominal[nominal <= start]
    after = nominal[nominal >= end - every]
    window = nominal[(nominal >= start) & (nominal < end)]
    if not len(before) and (not len(window) or window[0] - start >= every):
        first = fmt_time(times[0]) if len(times) else "none"
        raise FeedError(f"{label}: funding does not cover the window start {fmt_time(start)} (first settlement {first}); "
                        f"expected a settlement within {every} of the start (pass require_complete=False to accept)")
    if not len(after) and end - start > every:
        last = fmt_time(times[-1]) if len(times) else "none"
        raise FeedError(f"{label}: funding ends at {last}, before the window end {fmt_time(end)}; expected settlements "
                        f"every {every} up to the end (pass require_complete=False to accept)")
    seq = nominal[(nominal >= start - every) & (nominal < end + every)]
    if len(seq) > 1:
        d = np.diff(seq.asi8)
        big = d > (every + tol).value
        if big.any():
            k = int(np.flatnonzero(big)[0])
            raise FeedError(f"{where(label, None, 'time', seq[k] + every)}: funding settlement missing (previous "
                            f"{fmt_time(seq[k])}, next {fmt_time(seq[k + 1])}); expected one every {every}")
