"""Deterministic reconstruction of a 1-minute path from published waypoints.

A reconstruction is **not data**: it is a seeded random path that passes exactly through the
catalogue's waypoints (open, key level breaks, the lows and highs at their minutes, closes),
carries the published funding prints at the venue's settlement bars, spreads the published
liquidation totals over the minutes in which price moved against the liquidated side, and
derives a mark price that smooths the last price (plus the published last-vs-index gaps).
Every frame it returns says so in ``attrs["kind"] == "reconstructed"`` and ``attrs["label"]``.

Construction (all in log price on a 10-second grid, six ticks per 1-minute bar):

1. Waypoints are placed on the grid: ``open`` at the bar's first tick, ``close`` at its last
   (shared with the next bar's open, as in BitMEX bucketed data), ``low``/``high`` at the
   bar's middle tick.
2. Between consecutive waypoints: a Brownian bridge around the straight line, with volatility
   ``vol_per_sqrt_min`` plus 15 % of the segment's move per sqrt-minute (fast segments are noisier).
3. Extremes are enforced by reflection: a ``low`` waypoint is the minimum of its two
   adjacent segments, a ``high`` the maximum; the ``low`` figure (the trough) is the minimum
   of the whole window and the ``peak`` figure the maximum between the peak and the trough.
   So every waypoint is met to floating-point precision.
4. Mark = exponential moving average (30 s) of the index, where index = last x exp(basis) and
   basis interpolates the catalogue's published last-vs-index gaps in log space (0 elsewhere).
5. Volume follows the tick-by-tick absolute moves, scaled to the catalogue's (assumed) median level.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pandas as pd

from risk.errors import DeleverageError
from risk.venues import venue_rules

TICK_SECONDS = 10
TICKS_PER_BAR = 60 // TICK_SECONDS
MARK_WINDOW_SECONDS = 30.0
BASELINE_FUNDING = 0.0001  # interest-only funding (0.01 %/8 h): the venues' resting rate

_AT_OFFSET = {"open": 0, "close": TICKS_PER_BAR, "low": TICKS_PER_BAR // 2, "high": TICKS_PER_BAR // 2}


def parse_time(text: str, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise DeleverageError(f"{what}: cannot parse time {text!r}; expected ISO-8601 UTC such as 2020-03-12T10:00Z") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def stable_seed(*parts: object) -> int:
    """A seed derived from names (stable across runs and Python versions, unlike hash())."""
    return zlib.crc32("|".join(str(p) for p in parts).encode())


def _tick_of(ts: pd.Timestamp, start: pd.Timestamp, what: str, n_ticks: int) -> int:
    seconds = (ts - start).total_seconds()
    k = int(round(seconds / TICK_SECONDS))
    if k < 0 or k > n_ticks - 1:
        raise DeleverageError(f"{what}: time {ts} lies outside the scenario window")
    return k


def waypoint_ticks(spec: dict[str, Any], start: pd.Timestamp, n_ticks: int, what: str) -> list[dict[str, Any]]:
    """Waypoints with their grid tick ``k`` and log price ``y``, validated (sorted, distinct, consistent extremes)."""
    out = []
    for i, w in enumerate(spec["waypoints"]):
        at = w.get("at", "close")
        if at not in _AT_OFFSET:
            raise DeleverageError(f"{what}: waypoint {i} has at={at!r}; expected one of {sorted(_AT_OFFSET)}")
        if not (isinstance(w.get("price"), (int, float)) and w["price"] > 0):
            raise DeleverageError(f"{what}: waypoint {i} needs a positive price, got {w.get('price')!r}")
        bar = parse_time(w["time"], f"{what} waypoint {i}")
        k = _tick_of(bar, start, f"{what} waypoint {i}", n_ticks + TICKS_PER_BAR) + _AT_OFFSET[at]
        if k > n_ticks - 1:
            raise DeleverageError(f"{what}: waypoint {i} ({w['time']} {at}) lies after the window's end")
        out.append({**w, "at": at, "k": k, "y": math.log(w["price"]), "bar_time": bar})
    ks = [w["k"] for w in out]
    if any(b <= a for a, b in zip(ks, ks[1:])):
        raise DeleverageError(f"{what}: waypoints must be in strictly increasing time order (on a {TICK_SECONDS}-s grid)")
    if ks[0] != 0 or ks[-1] != n_ticks - 1:
        raise DeleverageError(f"{what}: the first waypoint must be the window's first open and the last one its last close")
    for i, w in enumerate(out):
        neighbours = [out[j]["price"] for j in (i - 1, i + 1) if 0 <= j < len(out)]
        if w["at"] == "low" and any(p < w["price"] for p in neighbours):
            raise DeleverageError(f"{what}: low waypoint at {w['time']} ({w['price']}) is above a neighbouring waypoint")
        if w["at"] == "high" and any(p > w["price"] for p in neighbours):
            raise DeleverageError(f"{what}: high waypoint at {w['time']} ({w['price']}) is below a neighbouring waypoint")
    figs = {w["figure"]: w for w in out if "figure" in w}
    if "low" in figs and any(w["price"] < figs["low"]["price"] for w in out):
        raise DeleverageError(f"{what}: the 'low' figure must be the lowest waypoint")
    if "peak" in figs and "low" in figs:
        p, lo = figs["peak"], figs["low"]
        if any(w["price"] > p["price"] for w in out if p["k"] <= w["k"] <= lo["k"]):
            raise DeleverageError(f"{what}: the 'peak' figure must be the highest waypoint before the trough")
    return out


def _bridge(rng: np.random.Generator, y0: float, y1: float, n: int, vol_per_sqrt_min: float) -> np.ndarray:
    """Log path of n+1 points from y0 to y1 (both included): straight line plus a Brownian bridge."""
    minutes = n * TICK_SECONDS / 60.0
    sigma = vol_per_sqrt_min + 0.15 * abs(y1 - y0) / math.sqrt(max(minutes, 30.0))
    steps = rng.standard_normal(n) * sigma * math.sqrt(TICK_SECONDS / 60.0)
    walk = np.concatenate([[0.0], np.cumsum(steps)])
    frac = np.arange(n + 1) / n
    return y0 + (y1 - y0) * frac + walk - frac * walk[-1]


def _reflect_above(y: np.ndarray, lo: int, hi: int, level: float) -> None:
    seg = y[lo:hi + 1]
    seg[:] = level + np.abs(seg - level)


def _reflect_below(y: np.ndarray, lo: int, hi: int, level: float) -> None:
    seg = y[lo:hi + 1]
    seg[:] = level - np.abs(seg - level)


def log_path(wps: list[dict[str, Any]], n_ticks: int, vol: float, rng: np.random.Generator) -> np.ndarray:
    """The constrained log-price path on the tick grid (see the module docstring)."""
    y = np.empty(n_ticks)
    for a, b in zip(wps, wps[1:]):
        y[a["k"]:b["k"] + 1] = _bridge(rng, a["y"], b["y"], b["k"] - a["k"], vol)
    # local extremes: reflect, then clip (the reflections of two neighbours could interact)
    for i, w in enumerate(wps):
        lo = wps[i - 1]["k"] if i > 0 else w["k"]
        hi = wps[i + 1]["k"] if i + 1 < len(wps) else w["k"]
        if w["at"] == "low":
            _reflect_above(y, lo, hi, w["y"])
        elif w["at"] == "high":
            _reflect_below(y, lo, hi, w["y"])
    figs = {w["figure"]: w for w in wps if "figure" in w}
    if "low" in figs:
        _reflect_above(y, 0, n_ticks - 1, figs["low"]["y"])
        if "peak" in figs and figs["peak"]["k"] < figs["low"]["k"]:
            _reflect_below(y, figs["peak"]["k"], figs["low"]["k"], figs["peak"]["y"])
    for i, w in enumerate(wps):
        lo = wps[i - 1]["k"] if i > 0 else w["k"]
        hi = wps[i + 1]["k"] if i + 1 < len(wps) else w["k"]
        if w["at"] == "low":
            np.maximum(y[lo:hi + 1], w["y"], out=y[lo:hi + 1])
        elif w["at"] == "high":
            np.minimum(y[lo:hi + 1], w["y"], out=y[lo:hi + 1])
    if "low" in figs:
        np.maximum(y, figs["low"]["y"], out=y)
    for w in wps:  # exact pass-through (reflection keeps them; this removes float drift)
        y[w["k"]] = w["y"]
    return y


def ema(values: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average seeded with the first value (vectorised via scipy.signal.lfilter)."""
    from scipy.signal import lfilter

    out, _ = lfilter([alpha], [1.0, alpha - 1.0], values, zi=np.array([(1.0 - alpha) * values[0]]))
    return out


def _bars_ohlc(ticks: np.ndarray, n_bars: int) -> tuple[np.ndarray, ...]:
    idx = np.arange(n_bars)[:, None] * TICKS_PER_BAR + np.arange(TICKS_PER_BAR + 1)[None, :]
    window = ticks[idx]
    return window[:, 0], window.max(axis=1), window.min(axis=1), window[:, -1]


def reconstruct(spec: dict[str, Any], *, start: pd.Timestamp, end: pd.Timestamp, venue: str,
                seed: int, what: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Reconstruct the 1-minute frame of one (asset, venue) path spec; returns (frame, attrs extras)."""
    n_bars = int((end - start).total_seconds() // 60)
    if n_bars <= 0:
        raise DeleverageError(f"{what}: window end must be after its start")
    n_ticks = n_bars * TICKS_PER_BAR + 1
    wps = waypoint_ticks(spec, start, n_ticks, what)
    rng = np.random.default_rng(seed)
    y = log_path(wps, n_ticks, float(spec.get("vol_per_sqrt_min", 0.001)), rng)
    last = np.exp(y)
    for w in wps:  # the published figure itself, not exp(log(price))
        last[w["k"]] = w["price"]

    # mark: index = last * exp(basis), smoothed
    tick_sec = np.arange(n_ticks) * TICK_SECONDS
    basis = np.zeros(n_ticks)
    if spec.get("basis"):
        bt = np.array([(parse_time(b["time"], f"{what} basis") - start).total_seconds() for b in spec["basis"]])
        bv = np.log1p(np.array([float(b["value"]) for b in spec["basis"]]))
        if np.any(np.diff(bt) <= 0):
            raise DeleverageError(f"{what}: basis points must be in increasing time order")
        basis = np.interp(tick_sec, bt, bv, left=0.0, right=0.0)
    index = last * np.exp(basis)
    alpha = 1.0 - math.exp(-TICK_SECONDS / MARK_WINDOW_SECONDS)
    mark = ema(index, alpha)

    o, h, lo, c = _bars_ohlc(last, n_bars)
    mo, mh, ml, mc = _bars_ohlc(mark, n_bars)
    index_close = index[TICKS_PER_BAR::TICKS_PER_BAR]
    times = pd.date_range(start, periods=n_bars, freq="1min", name="open_time")

    dy = np.diff(y).reshape(n_bars, TICKS_PER_BAR)
    activity = np.abs(dy).sum(axis=1)
    med = float(np.median(activity)) or 1.0
    volume = float(spec.get("volume_per_min", 1.0)) * activity / med

    cols: dict[str, np.ndarray] = {
        "open": o, "high": h, "low": lo, "close": c, "volume": volume, "quote_volume": volume * c,
        "mark_open": mo, "mark_high": mh, "mark_low": ml, "mark_close": mc, "index_close": index_close,
    }

    # funding at the venue's settlement bars: published print, else the stated default
    rules = venue_rules(venue)
    prints = {parse_time(f["time"], f"{what} funding"): float(f["rate"]) for f in spec.get("funding", [])}
    default = spec.get("funding_default", {}).get("rate", BASELINE_FUNDING)
    funding = np.full(n_bars, np.nan)
    assumed_at: list[str] = []
    settle = (times.minute == 0) & np.isin(times.hour, rules.funding_hours_utc)
    if rules.funding_hours_utc == tuple(range(24)):
        settle = times.minute == 0
    for i in np.flatnonzero(settle):
        t = times[i]
        if t in prints:
            funding[i] = prints.pop(t)
        else:
            funding[i] = default
            assumed_at.append(t.strftime("%Y-%m-%dT%H:%MZ"))
    if prints:
        raise DeleverageError(f"{what}: funding prints at {sorted(str(t) for t in prints)} are not {venue} settlement times inside the window")
    cols["funding_rate"] = funding

    # liquidations: published totals spread over the minutes that moved against the side
    scopes = []
    if spec.get("liquidations"):
        down = np.clip(-dy, 0, None).sum(axis=1)
        up = np.clip(dy, 0, None).sum(axis=1)
        liq = {"long": np.zeros(n_bars), "short": np.zeros(n_bars)}
        for j, entry in enumerate(spec["liquidations"]):
            side = entry["side"]
            if side not in liq:
                raise DeleverageError(f"{what}: liquidation {j} side must be 'long' or 'short', got {side!r}")
            a = parse_time(entry["start"], what)
            b = parse_time(entry["end"], what)
            inside = (times >= a) & (times < b)
            if not inside.any():
                raise DeleverageError(f"{what}: liquidation {j} window {entry['start']}..{entry['end']} has no bar in the scenario")
            weight = np.where(inside, down if side == "long" else up, 0.0)
            if weight.sum() <= 0:
                weight = inside.astype(float)
            liq[side] += float(entry["usd"]) * weight / weight.sum()
            scopes.append(f"{side} {entry['usd']:.4g} USD {entry['start']}..{entry['end']}: {entry['scope']}")
        for side in sorted({e["side"] for e in spec["liquidations"]}):  # a side without a published total stays absent
            cols[f"liq_{side}_notional"] = liq[side]
            cols[f"liq_{side}_qty"] = liq[side] / c

    # open interest (quote), distributed like the cumulative liquidations between published points
    oi_scope = None
    if spec.get("open_interest"):
        pts = [(parse_time(p["time"], f"{what} open_interest"), float(p["usd"])) for p in spec["open_interest"]]
        pos = np.array([min(max(int((t - start).total_seconds() // 60), 0), n_bars - 1) for t, _ in pts])
        vals = np.array([v for _, v in pts])
        liq_total = cols.get("liq_long_notional", np.zeros(n_bars)) + cols.get("liq_short_notional", np.zeros(n_bars))
        oi = np.full(n_bars, vals[0])
        for (i0, v0), (i1, v1) in zip(zip(pos, vals), zip(pos[1:], vals[1:])):
            seg = liq_total[i0 + 1:i1 + 1]
            frac = np.cumsum(seg) / seg.sum() if seg.sum() > 0 else np.arange(1, i1 - i0 + 1) / (i1 - i0)
            oi[i0 + 1:i1 + 1] = v0 + (v1 - v0) * frac
        oi[pos[-1]:] = vals[-1]
        cols["open_interest_notional"] = oi
        cols["open_interest"] = oi / c
        oi_scope = "; ".join(f"{p['time']}: {p['usd']:.4g} USD ({p.get('basis', p['source'])})" for p in spec["open_interest"])

    frame = pd.DataFrame(cols, index=times)
    extras = {
        "funding_assumed_at": assumed_at,
        "funding_default": default,
        "liquidation_scope": scopes,
        "open_interest_scope": oi_scope,
        "waypoints": len(wps),
        "assumptions": [f"{w['time']} {w['at']} {w['price']}: {w.get('basis', '')}".strip()
                        for w in wps if w["source"] == "assumed" or "basis" in w],
    }
    return frame, extras
