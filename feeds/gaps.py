"""Fill bar gaps, only when asked, and say how.

``method="flat"``: a missing bar becomes a no-trade bar: open = high = low = close = the
previous close (mark OHLC likewise from the previous mark close), volume, quote volume and
liquidation columns 0, ``funding_rate`` NaN, open interest / index / premium carried from the
previous bar (levels). The filled open times are listed in ``attrs["gap_fill"]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feeds.errors import FeedError
from feeds.schema import LIQ_COLUMNS, MARK_COLUMNS, PRICE_COLUMNS

FILL_METHODS = ("flat",)


def fill_gaps(frame: pd.DataFrame, interval: str, method: str = "flat") -> pd.DataFrame:
    if method not in FILL_METHODS:
        raise FeedError(f"unknown gap-fill method {method!r}; expected one of {FILL_METHODS}")
    if not len(frame):
        return frame
    full = pd.date_range(frame.index[0], frame.index[-1], freq=interval, name=frame.index.name)
    if len(full) == len(frame):
        return frame
    added = full.difference(frame.index)
    out = frame.reindex(full)
    new = np.asarray(out.index.isin(added))
    if "close" in out.columns:
        prev_close = out["close"].ffill()
        for c in PRICE_COLUMNS:
            out.loc[new, c] = prev_close[new]
    if "mark_close" in out.columns:
        prev_mark = out["mark_close"].ffill()
        for c in MARK_COLUMNS:
            out.loc[new, c] = prev_mark[new]
    for c in ("volume", "quote_volume", *LIQ_COLUMNS):
        if c in out.columns:
            out.loc[new, c] = 0
            if frame[c].dtype.kind in "iu":
                out[c] = out[c].astype(frame[c].dtype)
    for c in ("open_interest", "open_interest_notional", "index_close", "premium_close"):
        if c in out.columns:
            out[c] = out[c].ffill()
    out.attrs = dict(frame.attrs)
    out.attrs["gap_fill"] = {"method": method, "bars": int(new.sum()),
                             "first": str(added[0]), "last": str(added[-1])}
    return out
