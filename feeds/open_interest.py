"""Open-interest snapshots placed on bars "as of the bar close".

A bar's ``open_interest`` is the last snapshot whose time is strictly before the bar's close,
i.e. inside the bar or earlier; a snapshot stamped exactly at 12:05:00 is first seen in the
12:05 bar. Bars before the first snapshot are NaN. ``max_staleness`` (optional) turns values
older than that into NaN instead of carrying them; how old they are is reported in
``attrs``. This is an as-of join of a level, not a fill of missing data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feeds.schema import BAR_INDEX_NAME


def place_open_interest(snapshots: pd.DataFrame, index: pd.DatetimeIndex, interval: str, *,
                        max_staleness: str | pd.Timedelta | None = None) -> pd.DataFrame:
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(interval))
    index = pd.DatetimeIndex(index).as_unit("ns")
    times = pd.DatetimeIndex(snapshots["time"]).as_unit("ns").asi8
    closes = (index + step).asi8
    k = np.searchsorted(times, closes, side="left") - 1
    have = k >= 0
    out = pd.DataFrame(index=pd.DatetimeIndex(index, name=BAR_INDEX_NAME))
    age = np.where(have, closes - times[np.maximum(k, 0)], np.iinfo("int64").max)
    if max_staleness is not None:
        have &= age <= pd.Timedelta(max_staleness).value
    for c in ("open_interest", "open_interest_notional"):
        if c in snapshots.columns:
            v = snapshots[c].to_numpy(dtype="float64")
            out[c] = np.where(have, v[np.maximum(k, 0)], np.nan)
    if have.any():
        out.attrs["open_interest_max_age"] = str(pd.Timedelta(int(age[have].max()), unit="ns"))
    return out
