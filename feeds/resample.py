"""Resample canonical bars to a coarser interval (1m -> 5m, 1h, 1D ...), column by column.

Rules (:data:`feeds.schema.RESAMPLE_RULES`): OHLC for prices (first/max/min/last), sums for
flows (volume, quote_volume, liquidation counts/quantities/notionals), last for levels
(open interest, index, premium), and ``funding_rate`` = the sum of the settlements inside the
new bar, NaN when there is none. Output bars are labelled by their open on the UTC epoch
grid. An output bar built from fewer source bars than it spans (a gap, or a window edge) is
an error naming it, unless ``allow_partial=True`` (then the count is in ``attrs``); an output
bar with no source bar at all is not created (the gap stays a gap).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feeds.errors import FeedError, fmt_time, where
from feeds.schema import BAR_INDEX_NAME, RESAMPLE_RULES
from feeds.validate import infer_interval, interval_alias


def resample_bars(frame: pd.DataFrame, interval: str, *, allow_partial: bool = False) -> pd.DataFrame:
    label = frame.attrs.get("source_label") or frame.attrs.get("source") or "<frame>"
    target = pd.Timedelta(pd.tseries.frequencies.to_offset(interval))
    src = frame.attrs.get("interval")
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(src)) if src else infer_interval(frame.index)
    if step is None:
        raise FeedError(f"{label}: cannot tell the bar interval from fewer than 2 bars; expected at least 2 consecutive bars "
                        "(or the interval stated by the loader)")
    if target == step:
        return frame
    if target < step or target.value % step.value:
        raise FeedError(f"{label}: cannot resample {interval_alias(step)} bars to {interval}; expected a target interval "
                        f"that is a whole multiple of {interval_alias(step)}")
    unknown = [c for c in frame.columns if c not in RESAMPLE_RULES]
    if unknown:
        raise FeedError(f"{label}: no resampling rule for column(s) {unknown}; expected canonical columns only")
    groups = frame.resample(interval, label="left", closed="left", origin="epoch")
    counts = groups.size()
    present = counts.to_numpy() > 0
    expected = target.value // step.value
    partial = present & (counts.to_numpy() < expected)
    if partial.any() and not allow_partial:
        i = int(np.flatnonzero(partial)[0])
        raise FeedError(f"{where(label, None, None, counts.index[i])}: the {interval} bar {fmt_time(counts.index[i])} "
                        f"would be built from {counts.iloc[i]} of {expected} {interval_alias(step)} bars "
                        f"({int(partial.sum())} partial bars; a gap or a window edge); expected complete bars "
                        "(cut the window on the new grid, or allow_partial=True)")
    out = {}
    for c in frame.columns:
        rule = RESAMPLE_RULES[c]
        g = groups[c]
        if rule == "sum_settlements":
            out[c] = g.sum(min_count=1)
        elif rule == "sum":
            out[c] = g.sum()
        else:
            out[c] = getattr(g, rule)()
    result = pd.DataFrame(out, index=counts.index)[present]
    for c in frame.columns:
        if frame[c].dtype.kind in "iu":
            result[c] = result[c].astype(frame[c].dtype)
    result.index = pd.DatetimeIndex(result.index, name=BAR_INDEX_NAME)
    result.attrs = dict(frame.attrs)
    result.attrs["interval"] = interval
    result.attrs["resampled_from"] = interval_alias(step)
    if partial.any():
        result.attrs["partial_bars"] = int(partial.sum())
    return result
