"""Downsampling for display that never smooths away an extreme.

A year of 1-minute bars (525,600 rows) is too much for a browser chart, but a liquidation
wick lasts one bar. :func:`downsample_ohlc_extremes` therefore does not average: it splits
the rows into equal buckets and keeps, from each bucket, the *original rows* holding the
first and last bar, the lowest low and the highest high (of every column named), plus every
row flagged by ``keep`` (liquidations, entries, exits). A line drawn through the kept rows
visits every bucket's extremes, so the drawn minimum and maximum equal the real ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def downsample_ohlc_extremes(
    frame: pd.DataFrame,
    max_points: int,
    low: str | Sequence[str] = "low",
    high: str | Sequence[str] = "high",
    keep: pd.Series | np.ndarray | None = None,
) -> pd.DataFrame:
    """Return at most about ``max_points`` original rows of ``frame`` (plus the ``keep`` rows).

    ``low``/``high`` name the column(s) whose per-bucket minimum/maximum row is kept (missing
    columns are ignored; NaNs never win). ``keep`` is a boolean mask aligned with ``frame``
    of rows kept unconditionally. Rows come back in their original order, without
    duplicates. A frame already within ``max_points`` is returned unchanged.
    """
    n = len(frame)
    if n <= max_points:
        return frame
    lows = [low] if isinstance(low, str) else list(low)
    highs = [high] if isinstance(high, str) else list(high)
    lows = [c for c in lows if c in frame.columns]
    highs = [c for c in highs if c in frame.columns]
    per_bucket = 2 + len(lows) + len(highs)
    n_buckets = max(1, max_points // per_bucket)
    bucket = (np.arange(n, dtype=np.int64) * n_buckets) // n
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], n] - 1
    chosen = [starts, ends]
    for col, fill, pick in [(c, np.inf, np.minimum) for c in lows] + [(c, -np.inf, np.maximum) for c in highs]:
        values = frame[col].to_numpy(dtype="float64", na_value=np.nan)
        values = np.where(np.isnan(values), fill, values)
        chosen.append(_arg_extreme(values, starts, pick))
    if keep is not None:
        mask = np.asarray(keep, dtype=bool)
        if mask.shape != (n,):
            raise ValueError(f"keep must have one flag per row ({n}), got shape {mask.shape}")
        chosen.append(np.flatnonzero(mask))
    rows = np.unique(np.concatenate(chosen))
    return frame.iloc[rows]


def _arg_extreme(values: np.ndarray, starts: np.ndarray, pick: np.ufunc) -> np.ndarray:
    """Position of the first per-bucket extreme (``pick`` is np.minimum or np.maximum)."""
    extreme = pick.reduceat(values, starts)
    bucket_sizes = np.diff(np.r_[starts, len(values)])
    is_extreme = values == np.repeat(extreme, bucket_sizes)
    positions = np.flatnonzero(is_extreme)
    # first hit per bucket: every bucket has at least one hit (its own extreme)
    bucket_of = np.searchsorted(starts, positions, side="right") - 1
    first = np.r_[True, bucket_of[1:] != bucket_of[:-1]]
    return positions[first]


def bucket_sum(frame: pd.DataFrame, max_points: int) -> tuple[pd.DataFrame, pd.Timedelta | None]:
    """Sum rows into at most ``max_points`` time buckets of equal width (for per-bar flows
    such as liquidation notionals, where the total per bucket is the honest figure).

    Returns the summed frame, labelled by bucket start, and the bucket width (None when the
    frame was small enough to keep per bar).
    """
    if len(frame) <= max_points or not isinstance(frame.index, pd.DatetimeIndex):
        return frame, None
    span = frame.index[-1] - frame.index[0]
    spacing = pd.Series(frame.index).diff().median()
    width = max(spacing, span / max_points)
    # round the width up to a whole number of the bar spacing
    width = spacing * int(np.ceil(width / spacing))
    summed = frame.resample(width, origin=frame.index[0], label="left").sum(min_count=1)
    return summed.dropna(how="all"), width
