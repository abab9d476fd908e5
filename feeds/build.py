"""One call from files (or frames) to a backtest-ready canonical bar frame.

:func:`build_frame` loads price klines, mark/index/premium klines, funding settlements,
liquidation events (or per-bar liquidation aggregates) and open-interest snapshots, cuts them
to ``[start, end)``, brings everything to ``interval`` with the causal rules of
:mod:`feeds.schema`, validates the result and records where every column came from in
``attrs["sources"]``. The engine hands the frame to its backtrader feed
(``engine.bt_data.PerpData``); this module never imports backtrader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from feeds.detect import detect_format, load
from feeds.errors import FeedError, fmt_time
from feeds.frames import canonical_venue
from feeds.funding_rates import place_funding
from feeds.gaps import fill_gaps as _fill_gaps
from feeds.liquidations import aggregate_liquidations
from feeds.open_interest import place_open_interest
from feeds.resample import resample_bars
from feeds.schema import BAR_COLUMNS, LIQ_COLUMNS, MARK_COLUMNS
from feeds.validate import infer_interval, interval_alias, validate_bars

Source = str | Path | pd.DataFrame | Sequence[str | Path]


def _utc(t: Any, name: str) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")  # parameters are documented as UTC
    return ts.tz_convert("UTC")


def _labels(frames: list[pd.DataFrame]) -> str:
    return " + ".join(str(f.attrs.get("source_label") or f.attrs.get("source")) for f in frames)


# what a folder source is read for: its data files (hidden files and other names, such as a README, are not data)
DATA_SUFFIXES = (".csv", ".zip", ".parquet", ".json", ".jsonl", ".ndjson", ".gz")


def folder_files(folder: str | Path) -> list[Path]:
    """The data files directly in ``folder`` (by name; :data:`DATA_SUFFIXES`, no hidden files), or
    a FeedError naming the folder when it holds none."""
    root = Path(folder)
    files = sorted(p for p in root.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(DATA_SUFFIXES))
    if not files:
        raise FeedError(f"{root}: the folder holds no data files; expected one or more files "
                        f"({', '.join(DATA_SUFFIXES)}) directly in it")
    return files


def load_source(src: Source, role: str, **kwargs: Any) -> pd.DataFrame:
    """A frame as is, or one or more files loaded (each validated) and concatenated in the given order.

    A folder stands for the data files directly in it (:func:`folder_files`), taken in the order of
    their first timestamp; like listed files they must not overlap."""
    if isinstance(src, pd.DataFrame):
        return src
    paths = [src] if isinstance(src, (str, Path)) else list(src)
    if not paths:
        raise FeedError(f"{role}: no files given")
    frames = []
    for entry in paths:
        group = []
        for p in folder_files(entry) if Path(entry).is_dir() else [entry]:
            fmt = kwargs.get("format") or detect_format(p)
            accepted = {k: v for k, v in kwargs.items() if k != "format"}
            if fmt == "generic":
                accepted.setdefault("kind", {"klines": "bars", "mark": "mark"}.get(role, role))
            group.append(load(p, format=fmt, **accepted))
        if Path(entry).is_dir():
            group.sort(key=lambda f: _first_time(f))
        frames += group
    if len(frames) == 1:
        return frames[0]
    time_of = (lambda f: f.index) if isinstance(frames[0].index, pd.DatetimeIndex) else (lambda f: pd.DatetimeIndex(f["time"]))
    for a, b in zip(frames, frames[1:]):
        if len(a) and len(b) and time_of(b)[0] <= time_of(a)[-1]:
            raise FeedError(f"{role}: {b.attrs.get('source_label')} starts at {fmt_time(time_of(b)[0])}, not after the end of "
                            f"{a.attrs.get('source_label')} ({fmt_time(time_of(a)[-1])}); expected files in time order "
                            "without overlap")
    out = pd.concat(frames, axis=0, ignore_index=not isinstance(frames[0].index, pd.DatetimeIndex))
    out.attrs = dict(frames[0].attrs)
    out.attrs["source"] = [str(f.attrs.get("source")) for f in frames]
    out.attrs["source_label"] = _labels(frames)
    return out


def _first_time(frame: pd.DataFrame) -> pd.Timestamp:
    times = frame.index if isinstance(frame.index, pd.DatetimeIndex) else pd.DatetimeIndex(frame["time"])
    return times.min() if len(times) else pd.Timestamp.max.tz_localize("UTC")


def liquidation_left_out(attrs: dict[str, Any]) -> str:
    """``"; left out: 3 events of other symbols (ETHUSDT 3), 12 outside the window"`` (empty when none)."""
    parts = []
    other = attrs.get("events_other_symbols") or {}
    if other:
        listed = ", ".join(f"{k} {v}" for k, v in sorted(other.items(), key=lambda kv: -kv[1])[:5])
        n = sum(other.values())
        parts.append(f"{n} event{'' if n == 1 else 's'} of other symbols ({listed}{', ...' if len(other) > 5 else ''})")
    if attrs.get("events_outside_window"):
        n = attrs["events_outside_window"]
        parts.append(f"{n} event{'' if n == 1 else 's'} outside the window")
    return "; left out: " + ", ".join(parts) if parts else ""


def _interval_of(frame: pd.DataFrame) -> pd.Timedelta:
    src = frame.attrs.get("interval")
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(src)) if src else infer_interval(frame.index)
    if step is None:
        raise FeedError(f"{frame.attrs.get('source_label')}: cannot tell the bar interval from {len(frame)} bar(s); "
                        "expected at least 2 consecutive bars")
    return step


def bar_interval(frame: pd.DataFrame, role: str = "klines") -> str:
    """The interval of the bars in ``frame`` as an alias (``"1h"``): the loader's (``attrs["interval"]``)
    or the most common step between bars (:func:`feeds.validate.infer_interval`), as the loaders
    detect it. Bars whose steps are not all whole multiples of it (gaps are) have no regular
    interval: a FeedError naming the file and the first bar off that grid. (Unsorted or repeated
    bar times are left to the validation, which names them as such.)"""
    step = _interval_of(frame)
    idx = pd.DatetimeIndex(frame.index).as_unit("ns")
    d = np.diff(idx.asi8)
    off = np.flatnonzero((d > 0) & (d % step.value != 0))
    if len(off):
        k = int(off[0])
        raise FeedError(f"{role}: {frame.attrs.get('source_label')} has no regular bar interval: the bar at "
                        f"{fmt_time(idx[k + 1])} is {interval_alias(pd.Timedelta(int(d[k])))} after the previous one "
                        f"(the most common step is {interval_alias(step)}; {len(off)} step(s) off that grid); "
                        "expected bars on one interval")
    return interval_alias(step)


def _to_window(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, interval: str, role: str,
               *, allow_partial: bool = False) -> pd.DataFrame:
    step = _interval_of(frame)
    cut = frame[(frame.index >= start) & (frame.index < end)]
    cut.attrs = dict(frame.attrs)
    cut.attrs["interval"] = interval_alias(step)
    target = pd.Timedelta(pd.tseries.frequencies.to_offset(interval))
    if step > target:
        raise FeedError(f"{role}: {frame.attrs.get('source_label')} has {interval_alias(step)} bars; cannot build "
                        f"{interval} bars from them (expected bars of {interval} or finer)")
    if step < target:
        cut = resample_bars(cut, interval, allow_partial=allow_partial)
    return cut


def _align(part: pd.DataFrame, index: pd.DatetimeIndex, role: str) -> pd.DataFrame:
    missing = index.difference(part.index)
    if len(missing):
        raise FeedError(f"{role}: {part.attrs.get('source_label')} has no bar at {fmt_time(missing[0])} "
                        f"({len(missing)} of {len(index)} bars of the window missing); expected it to cover every price bar")
    return part.reindex(index)


def build_frame(*, symbol: str, start: Any, end: Any, klines: Source, mark: Source | None = None,
                index_price: Source | None = None, premium: Source | None = None, funding: Source | None = None,
                liquidations: Source | None = None, open_interest: Source | None = None, interval: str | None = None,
                venue: str | None = None, allow_gaps: bool = False, fill_gaps: str | None = None,
                funding_complete: bool = True, open_interest_max_staleness: str | None = None,
                load_options: dict[str, dict[str, Any]] | None = None, allow_outliers: bool = False) -> pd.DataFrame:
    """Build the canonical bar frame of ``symbol`` over ``[start, end)`` (UTC) at ``interval``.

    ``interval`` None (the default) is the price bars' own interval (:func:`bar_interval`: the
    loader's, or the most common step; bars with no regular interval are an error), so nothing is
    resampled; a coarser ``interval`` resamples them, a finer one is an error.

    Each source is a path, a list of paths (concatenated in order, must not overlap) or an
    already loaded frame. ``liquidations`` may be events (aggregated per bar) or per-bar
    aggregates (CoinGlass/Coinalyze; they must not be coarser than ``interval``).
    ``load_options`` passes loader keywords per role (``{"klines": {"format": "bitmex_buckets"}}``).
    Gaps in the price bars are an error unless ``allow_gaps`` or ``fill_gaps="flat"``; suspected
    one-bar bad prints (:func:`feeds.validate.check_outliers`) unless ``allow_outliers``. Funding
    units are decided when each file is loaded (on the file as a whole, never on the window).
    Every component must cover the whole window; funding must have every scheduled
    settlement (``funding_complete=False`` relaxes that). Returns a validated frame whose
    ``attrs`` hold ``sources`` (role -> files), ``symbol``, ``venue``, ``interval``, ``window``.
    """
    opts = load_options or {}
    start_t, end_t = _utc(start, "start"), _utc(end, "end")
    if end_t <= start_t:
        raise FeedError(f"window end {fmt_time(end_t)} is not after start {fmt_time(start_t)}")
    sources: dict[str, Any] = {}
    notes: list[str] = []
    bars_src = load_source(klines, "klines", **opts.get("klines", {}))
    if interval is None:
        interval = bar_interval(bars_src, "klines")
    target = pd.Timedelta(pd.tseries.frequencies.to_offset(interval))
    if start_t.value % target.value or end_t.value % target.value:
        raise FeedError(f"window [{fmt_time(start_t)}, {fmt_time(end_t)}) is not on the {interval} grid of the bars; "
                        f"expected start and end that are multiples of {interval} (UTC)")
    file_symbol = bars_src.attrs.get("symbol")
    if file_symbol and str(file_symbol) != symbol:
        raise FeedError(f"klines: {bars_src.attrs.get('source_label')} is for {file_symbol!r}; expected {symbol!r}")
    sources["klines"] = bars_src.attrs.get("source")
    notes += list(bars_src.attrs.get("notes") or [])
    quirks = list(bars_src.attrs.get("quirks") or [])
    bars = _to_window(bars_src, start_t, end_t, interval, "klines", allow_partial=allow_gaps or bool(fill_gaps))
    if not len(bars):
        raise FeedError(f"klines: {bars_src.attrs.get('source_label')} has no bars in [{fmt_time(start_t)}, {fmt_time(end_t)})")
    if bars.index[0] != start_t or bars.index[-1] != end_t - target:
        raise FeedError(f"klines: {bars_src.attrs.get('source_label')} covers {fmt_time(bars.index[0])} .. "
                        f"{fmt_time(bars.index[-1])} of the window; expected bars from {fmt_time(start_t)} to "
                        f"{fmt_time(end_t - target)}")
    if fill_gaps:
        bars = _fill_gaps(bars, interval, fill_gaps)
    else:
        report = validate_bars(bars, rows=False, interval=interval, allow_gaps=allow_gaps,
                               open_is_previous_close="open_is_previous_close" in quirks, file=f"klines {sources['klines']}",
                               allow_outliers=allow_outliers, funding_unit="fraction")
        report.raise_if_errors()
    frame = bars[[c for c in BAR_COLUMNS if c in bars.columns and c not in LIQ_COLUMNS]].copy()
    idx = frame.index
    for role, src, cols in (("mark", mark, MARK_COLUMNS), ("index_price", index_price, ("index_close",)),
                            ("premium", premium, ("premium_close",))):
        if src is None:
            continue
        part = load_source(src, role, **opts.get(role, {}))
        sources[role] = part.attrs.get("source")
        part = _align(_to_window(part, start_t, end_t, interval, role), idx, role)
        for c in cols:
            if c not in part.columns:
                raise FeedError(f"{role}: {part.attrs.get('source_label')} has no {c!r} column")
            frame[c] = part[c].to_numpy()
    if funding is not None:
        fund = load_source(funding, "funding", **opts.get("funding", {}))
        sources["funding"] = fund.attrs.get("source")
        frame["funding_rate"] = place_funding(fund, idx, interval, symbol=symbol,
                                              require_complete=funding_complete).to_numpy()
        notes.append("funding_rate: settlement placed on the bar containing its time (floor), NaN elsewhere")
    if open_interest is not None:
        oi = load_source(open_interest, "open_interest", **opts.get("open_interest", {}))
        sources["open_interest"] = oi.attrs.get("source")
        placed = place_open_interest(oi, idx, interval, max_staleness=open_interest_max_staleness)
        for c in placed.columns:
            frame[c] = placed[c].to_numpy()
        notes.append("open_interest: last snapshot before each bar close (as-of)")
    if liquidations is not None:
        liq = load_source(liquidations, "liquidations", **opts.get("liquidations", {}))
        sources["liquidations"] = liq.attrs.get("source")
        if "time" in liq.columns:
            agg = aggregate_liquidations(liq, interval, index=idx, symbol=symbol)
            notes.append(f"liquidations: {agg.attrs['events_used']} {symbol} events aggregated per bar by side"
                         + liquidation_left_out(agg.attrs))
        else:
            agg = _align(_to_window(liq, start_t, end_t, interval, "liquidations"), idx, "liquidations")
        for c in LIQ_COLUMNS:
            if c in agg.columns:
                frame[c] = agg[c].to_numpy()
    frame.attrs = {"kind": "real", "source": sources, "sources": sources, "symbol": symbol,
                   "venue": canonical_venue(venue or bars_src.attrs.get("venue")), "interval": interval,
                   "window": [fmt_time(start_t), fmt_time(end_t)], "quirks": quirks, "notes": notes,
                   "format": "canonical"}
    if "gap_fill" in bars.attrs:
        frame.attrs["gap_fill"] = bars.attrs["gap_fill"]
    report = validate_bars(frame, rows=False, interval=interval, allow_gaps=allow_gaps or bool(fill_gaps),
                           file=f"built frame {symbol}", allow_outliers=allow_outliers, funding_unit="fraction")
    report.raise_if_errors()
    return frame
