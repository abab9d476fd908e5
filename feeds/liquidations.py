"""Liquidation events into per-bar counts, quantities and notionals by side, aligned causally.

An event belongs to the bar that contains its ``time``: ``floor(time, interval)`` on the UTC
grid, so an event at 12:00:30 is in the 12:00 bar (seen by the strategy when that bar
closes) and one at exactly 12:01:00.000 is in the 12:01 bar. Bars without events get 0
(no liquidation observed); an event whose bar is not in the target bar index is an error,
never dropped. The sum of the per-bar notionals equals the sum of the events' notionals. What is
left out (events of other symbols, events outside the window) is counted in ``attrs`` and
:func:`feeds.build.build_frame` states it in the frame's notes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feeds.errors import FeedError, fmt_time, where
from feeds.schema import BAR_INDEX_NAME, LIQ_COLUMNS, LIQ_SIDES


def bar_of(times: pd.DatetimeIndex | pd.Series, interval: str) -> pd.DatetimeIndex:
    """The open time of the bar (of ``interval``, on the UTC epoch grid) containing each time."""
    return pd.DatetimeIndex(times).as_unit("ns").floor(pd.tseries.frequencies.to_offset(interval))


def aggregate_liquidations(events: pd.DataFrame, interval: str = "1min", *, index: pd.DatetimeIndex | None = None,
                           symbol: str | None = None, time_column: str = "time") -> pd.DataFrame:
    """Per-bar ``liq_{long,short}_{count,qty,notional}`` from an event frame.

    Parameters
    ----------
    events:
        Liquidation events (:data:`feeds.schema.EVENT_COLUMNS`), as a loader returns them.
    interval:
        Bar length (pandas alias: ``"1min"``, ``"5min"``, ``"1h"``).
    index:
        Target bar open times. When given the result is aligned on it (0 where no event) and an
        event falling in a bar that is not in ``index`` but inside its span raises; events
        outside ``[index[0], index[-1] + interval)`` are excluded (the caller's window).
        When None the result has one row per bar that holds at least one event.
    symbol:
        Keep only this symbol; required when the events hold several.
    time_column:
        ``"time"`` (the trade time, default) or ``"event_time"`` (when the venue pushed it).
    """
    label = events.attrs.get("source_label") or events.attrs.get("source") or "<events>"
    other: dict[str, int] = {}
    if symbol is not None:
        sym = events["symbol"].astype("str").to_numpy()
        names, counts = np.unique(sym[sym != symbol], return_counts=True)
        other = {str(n): int(c) for n, c in zip(names, counts)}
        events = events[sym == symbol]
    else:
        symbols = pd.unique(events["symbol"].astype("str"))
        if len(symbols) > 1:
            raise FeedError(f"{label}: events hold {len(symbols)} symbols {list(symbols)[:8]}; pass symbol=")
    times = pd.DatetimeIndex(events[time_column]).as_unit("ns")
    bars = bar_of(times, interval)
    given_index = index
    if index is not None:
        index = pd.DatetimeIndex(index).as_unit("ns")
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(interval))
    keep = np.ones(len(events), dtype=bool)
    if index is not None:
        if len(index):
            keep = np.asarray((bars >= index[0]) & (bars <= index[-1]))
        else:
            keep[:] = False
        missing = keep & ~np.asarray(bars.isin(index))
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise FeedError(f"{where(label, None, time_column, times[i])}: liquidation event falls in the {interval} bar "
                            f"{fmt_time(bars[i])}, which is missing from the bars; expected a bar for every event "
                            f"({int(missing.sum())} events affected; fill the bar gaps or cut the window)")
    pos = events["position_side"].astype("str").to_numpy()[keep]
    qty = events["qty"].to_numpy(dtype="float64")[keep]
    notional = events["notional"].to_numpy(dtype="float64")[keep]
    b = bars[keep]
    out_index = index if index is not None else pd.DatetimeIndex(np.unique(b.asi8)).tz_localize("UTC")
    out_index = pd.DatetimeIndex(out_index, name=BAR_INDEX_NAME)
    where_bar = out_index.get_indexer(b)
    n = len(out_index)
    cols: dict[str, np.ndarray] = {}
    for side in LIQ_SIDES:
        m = pos == side
        cols[f"liq_{side}_count"] = np.bincount(where_bar[m], minlength=n).astype("int64")
        cols[f"liq_{side}_qty"] = np.bincount(where_bar[m], weights=qty[m], minlength=n)
        cols[f"liq_{side}_notional"] = np.bincount(where_bar[m], weights=notional[m], minlength=n)
    if given_index is not None:
        out_index = pd.DatetimeIndex(given_index, name=BAR_INDEX_NAME)
    frame = pd.DataFrame({c: cols[c] for c in LIQ_COLUMNS}, index=out_index)
    frame.attrs.update({"source": events.attrs.get("source"), "interval": interval, "frame_kind": "liquidation_bars",
                        "events_used": int(keep.sum()), "events_outside_window": int((~keep).sum()),
                        "events_other_symbols": other,
                        "alignment": f"floor({time_column}, {interval}); bar labelled by open; known at bar close"})
    if step <= pd.Timedelta(0):
        raise FeedError(f"interval {interval!r} must be positive")
    return frame
