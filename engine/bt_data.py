"""The backtrader data feed for perpetuals: OHLCV plus mark, index, funding, open interest and
the liquidation feed, loaded from a canonical bar frame (see :mod:`feeds.schema`).

The feed reads plain numpy arrays rather than going through ``bt.feeds.PandasData``: the
pandas feed is a large share of backtrader's time (research/stack.md measured 6.5k bars/s for
PandasData against 11.2k for an array feed on the same bars).

Columns the frame lacks become NaN lines; ``has_mark`` and ``has_funding`` tell the broker
whether to trigger on the mark and settle funding from the feed.
"""

from __future__ import annotations

import math
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from feeds.schema import ADL_FLOW_COLUMNS, BAR_INDEX_NAME, LIQMAP_COLUMNS, MARK_COLUMNS, REQUIRED_BAR_COLUMNS
from risk.errors import DeleverageError

EXTRA_LINES = (
    "mark_open", "mark_high", "mark_low", "mark_close", "index_close", "funding_rate",
    "open_interest", "liq_long_notional", "liq_short_notional", "adl_long_notional", "adl_short_notional",
)
ADL_COLUMNS = ADL_FLOW_COLUMNS  # quote notional auto-deleveraged per bar, by the side of the positions closed
# liquidation-map lines (feeds.cascade.liqmap.map_lines); only frames that carry them get them
LIQMAP_LINES = LIQMAP_COLUMNS
_UNIX_EPOCH_ORDINAL = 719163.0  # datetime(1970, 1, 1).toordinal(): backtrader's date2num origin


def unix_seconds(dtnum: float | np.ndarray) -> float | np.ndarray:
    """backtrader date numbers (days) to Unix seconds (UTC)."""
    return (dtnum - _UNIX_EPOCH_ORDINAL) * 86400.0


def bar_times(frame: pd.DataFrame, name: str = "") -> np.ndarray:
    """Check that ``frame`` is a canonical bar frame an engine can run on and return its bar
    open times as backtrader date numbers (days; 1970-01-01 is 719,163)."""
    missing = [c for c in REQUIRED_BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise DeleverageError(f"bar frame {name} lacks required columns {missing}; "
                              f"expected {list(REQUIRED_BAR_COLUMNS)} (see feeds/schema.py)")
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DeleverageError(f"bar frame {name}: the index must be a DatetimeIndex named {BAR_INDEX_NAME!r}")
    if index.tz is None:
        raise DeleverageError(f"bar frame {name}: the index has no time zone; expected UTC")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise DeleverageError(f"bar frame {name}: timestamps must be strictly increasing")
    seconds = index.tz_convert("UTC").as_unit("ns").asi8.astype(np.float64) / 1e9
    return _UNIX_EPOCH_ORDINAL + seconds / 86400.0


def bar_timeframe(frame: pd.DataFrame) -> tuple[int, int]:
    """backtrader's (timeframe, compression) of the frame's bars: minutes (seconds below one
    minute), compression from ``attrs["interval"]`` or else the most common spacing of the index."""
    seconds = None
    interval = frame.attrs.get("interval")
    if interval:
        try:
            seconds = pd.Timedelta(str(interval).replace("m", "min") if str(interval).endswith("m")
                                   else str(interval)).total_seconds()
        except ValueError:
            seconds = None
    if not seconds and len(frame) > 1:
        steps = np.diff(frame.index.as_unit("ns").asi8) / 1e9
        values, counts = np.unique(steps, return_counts=True)
        seconds = float(values[np.argmax(counts)])
    if not seconds or seconds <= 0:
        return bt.TimeFrame.Minutes, 1
    if seconds < 60 or seconds % 60:
        return bt.TimeFrame.Seconds, max(1, int(round(seconds)))
    return bt.TimeFrame.Minutes, int(seconds // 60)


class OpenTimeResampler(bt.resamplerfilter.Resampler):
    """backtrader's Resampler for bars labelled by their **open** time (as PerpData's are).

    Stock backtrader treats a bar's time as its close: 1-minute bars opened 00:00 ... 00:59
    would be split as {00:00} and {00:01 ... 01:00}, labelled 01:00. Here a resampled bar holds
    the subbars *opened* inside its period (``boundoff=1``: 00:00 ... 00:59 for 1 hour) and is
    labelled by the period's open (00:00), like the venues' klines. Used by
    :meth:`PerpData.resample` (so ``cerebro.resampledata(perp_data, ...)`` gets it).
    """

    params = (("boundoff", 1),)

    def __call__(self, data: Any, fromcheck: bool = False, forcedata: Any = None) -> bool:
        stacked = len(data._barstack)
        out = super().__call__(data, fromcheck=fromcheck, forcedata=forcedata)
        if len(data._barstack) > stacked:
            period = _period_seconds(self.p.timeframe, self.p.compression)
            if period:
                bar = data._barstack[-1]
                i = _BAR_DT_INDEX
                # the open of the period holding the bar's last instant (its last subbar's open, or the
                # boundary backtrader adjusted it to): whole seconds, so labels are exact
                seconds = round(bar[i] * 86400.0)
                bar[i] = ((seconds - 1) // period) * period / 86400.0
        return out


def _period_seconds(timeframe: int, compression: int) -> int:
    unit = {bt.TimeFrame.Seconds: 1, bt.TimeFrame.Minutes: 60, bt.TimeFrame.Days: 86400}.get(timeframe)
    return int(unit * compression) if unit else 0


_BAR_DT_INDEX = 6  # datetime is the 7th value of a resampled bar (close, low, high, open, volume, oi, datetime)


def adl_flow_arrays(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The bars' ADL flow ``(adl_long_notional, adl_short_notional)`` as float arrays, or None
    when the frame has neither column. Both columns, >= 0 in every bar, or one error line naming
    the column and row (the broker and the fast engine read the flow through this)."""
    if not any(c in frame.columns for c in ADL_COLUMNS):
        return None
    out = []
    for c in ADL_COLUMNS:
        values = (frame[c].to_numpy(dtype=np.float64, na_value=np.nan) if c in frame.columns
                  else np.empty(0))
        bad = np.flatnonzero(~(values >= 0.0))
        if c not in frame.columns or len(bad):
            row = "" if c not in frame.columns else f" row {int(bad[0])} ({frame.index[bad[0]]})"
            raise DeleverageError(
                f"bar frame {name}: ADL flow column {c}{row}: expected a notional >= 0 in every bar "
                f"(both {' and '.join(ADL_COLUMNS)}; write 0 for bars without ADL)")
        out.append(np.ascontiguousarray(values))
    return out[0], out[1]


class PerpData(bt.feed.DataBase):
    """A preloaded perpetual-futures feed. Build it with :meth:`from_frame`."""

    lines = EXTRA_LINES
    params = (("frame_name", ""),)

    def __init__(self) -> None:
        super().__init__()
        self._columns: list[list[float]] = []
        self._n = 0
        self._i = 0
        self.has_mark = False
        self.has_funding = False
        self.has_adl = False
        self.placed_funding: np.ndarray | None = None  # a constant rate the broker placed on the funding line
        self.attrs: dict = {}

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, name: str = "") -> "PerpData":
        """Create a feed from a canonical bar frame (UTC DatetimeIndex labelled by bar open)."""
        if cls is PerpData and any(c in frame.columns for c in LIQMAP_LINES):
            cls = PerpDataLiqmap
        extra = EXTRA_LINES + (LIQMAP_LINES if issubclass(cls, PerpDataLiqmap) else ())
        dtnum = bar_times(frame, name)
        n = len(frame)
        nan = np.full(n, math.nan)

        def col(name_: str) -> np.ndarray:
            if name_ in frame.columns:
                return frame[name_].to_numpy(dtype=np.float64, na_value=np.nan)
            return nan

        timeframe, compression = bar_timeframe(frame)
        feed = cls(name=name, frame_name=name, timeframe=timeframe, compression=compression)
        order = ["datetime", "open", "high", "low", "close", "volume", "openinterest", *extra]
        arrays = {
            "datetime": dtnum, "open": col("open"), "high": col("high"), "low": col("low"),
            "close": col("close"), "volume": col("volume"), "openinterest": col("open_interest"),
        }
        arrays.update({line: col(line) for line in extra})
        feed._order = order
        feed._line_objs = [getattr(feed.lines, name_) for name_ in order]
        feed._columns = [arrays[name_].tolist() for name_ in order]
        feed._n = n
        feed.has_mark = all(c in frame.columns for c in MARK_COLUMNS)
        feed.has_funding = "funding_rate" in frame.columns
        feed.has_adl = adl_flow_arrays(frame, name) is not None
        feed.attrs = dict(frame.attrs)
        feed.frame = frame
        return feed

    def times(self) -> np.ndarray:
        """The bars' open times as backtrader date numbers (days)."""
        return np.asarray(self._columns[0], dtype=np.float64)

    def set_line_values(self, line: str, values: np.ndarray) -> None:
        """Replace the values of one line before the run (the broker places a constant funding
        rate on the funding line this way)."""
        if len(values) != self._n:
            raise DeleverageError(f"{line}: expected {self._n} values, got {len(values)}")
        self._columns[self._order.index(line)] = np.asarray(values, dtype=np.float64).tolist()
        if line == "funding_rate":
            self.placed_funding = np.asarray(values, dtype=np.float64)

    def start(self) -> None:
        super().start()
        self._i = 0

    def resample(self, **kwargs: Any) -> None:
        """Resample by bar open time (:class:`OpenTimeResampler`)."""
        self.addfilter(OpenTimeResampler, **kwargs)

    def clone(self, **kwargs: Any) -> Any:
        """A clone whose resampling also labels by open time."""
        clone = super().clone(**kwargs)
        clone.resample = lambda **kw: clone.addfilter(OpenTimeResampler, **kw)
        return clone

    def _load(self) -> bool:
        i = self._i
        if i >= self._n:
            return False
        for line, values in zip(self._line_objs, self._columns):
            line[0] = values[i]
        self._i = i + 1
        return True


class PerpDataLiqmap(PerpData):
    """PerpData plus the liquidation-map lines (chosen by ``PerpData.from_frame`` when the frame has them)."""

    lines = LIQMAP_LINES
