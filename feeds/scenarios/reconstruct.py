"""Deterministic reconstruction of a 1-minute path from published waypoints.

A reconstruction is **not data**: it is a seeded random path that passes exactly through the
catalogue's waypoints (open, key level breaks, the lows and highs at their minutes, closes),
carries the published funding prints at the venue's settlement bars, spreads the published
liquidation totals over the minutes in which price moved against the liquidated side, and
derives a mark price from the index (last x the published last-vs-index gaps, smoothed).
Every frame it returns says so in ``attrs["kind"] == "reconstructed"`` and ``attrs["label"]``.

Construction. The minutes between waypoints are **real minutes**, drawn from the real BitMEX
XBTUSD 1-minute bars shipped in the package (``feeds/scenarios/shipped``; for 312 and 519 the
scenario's own window, for every other scenario both windows pooled):

1. Each real minute is a triple (multiplied by the path's ``minute_scale`` where the catalogue
   gives one: ETH moves more than BTC): its close-to-close log return ``r`` and its two wicks in log
   units, ``u = ln(high / max(open, close))`` and ``d = ln(min(open, close) / low)``.
2. Waypoints become knots of the close path on the minute grid: ``open`` of bar i fixes the
   close of bar i-1 (BitMEX bucketed data: open = previous close), ``close`` of bar i fixes its
   close; a ``low`` (``high``) of bar i fixes its low (high): the segment into it ends on that
   bar, whose real minute (the draw's last) keeps its own wick, so the bar closes where that
   real minute closed relative to its extreme; or, when both neighbouring waypoints are within
   ``SPIKE_BARS`` bars (a one-minute wick such as 2021-07-26's), on the line between them.
3. Between consecutive knots: a **local block bootstrap**. Blocks of consecutive real minutes
   (geometric lengths, mean ``BLOCK_MINUTES``) each start within ``LOCAL_MINUTES`` of the same
   time relative to its window's fall start (``scenario.fall_start``) as the minute they fill,
   so calm hours before a fall are filled with calm real hours and the fall with falling
   ones. Of ``max(BOOTSTRAP_CANDIDATES, CANDIDATE_MINUTES // minutes)`` such draws (short
   segments, the crash minutes between close waypoints, get many more) the one whose reach
   (summed return, or the last minute's extreme) is nearest to the knots' log move is kept,
   scaled by (move / its reach) within [1/2, 2] when the signs agree, and the rest of the gap
   spread over its minutes in proportion to ``|r| + median |r|``; so the segment meets its end
   knot exactly and keeps the real volatility clustering, short-lag autocorrelation and
   wicks. Seeded: same seed, same path.
4. Extremes: a ``low`` waypoint is the minimum of its two adjacent segments and a ``high`` the
   maximum (reflection of the close path about the level, wicks kept inside the level); the
   ``low`` figure is the minimum of the whole window, the ``peak`` figure the maximum between
   the peak and the trough. Every waypoint is met to floating-point precision.
   **Envelope**: a draw is chosen by its reach only, so between its ends it may wander far (a
   crash-and-rebound block scaled up to 2x; reflected about the window's low, its dip became a
   runaway: 2024-08-05 seed 3 reached 196,695 against waypoints of 49,513..60,000). When the
   finished bars leave the envelope (the lowest and highest waypoint -/+ ``ENVELOPE`` = 5 %), each
   segment holding an offending bar is redrawn, from the same generator, among draws whose bars
   stay inside (and inside what the reflection about its levels maps into the envelope); if none
   of ``REDRAW_ROUNDS`` x the usual draws does, the nearest one is pulled towards the straight
   line between its ends. A path already inside is left exactly as drawn.
5. Inside each minute a 10-second path (six ticks) visits open, the two extremes (the one in the
   direction of the close last) and close; index = last x exp(basis), the basis interpolating the
   catalogue's published last-vs-index gaps in log space (0 elsewhere), never below the
   published index low (``index_low``) where the catalogue gives one; mark = 30-s EMA of the index.
6. Volume follows the tick-by-tick absolute moves (at least 5 % of the median), scaled to the
   catalogue's (assumed) median level.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
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
BLOCK_MINUTES = 90          # mean length of a bootstrap block of consecutive real minutes
LOCAL_MINUTES = 45          # local bootstrap: blocks start within 45 min of the same time relative to the fall
BOOTSTRAP_CANDIDATES = 16   # local-bootstrap draws per segment; the one nearest to the segment's move is kept
CANDIDATE_MINUTES = 2000    # short segments get more draws: max(BOOTSTRAP_CANDIDATES, CANDIDATE_MINUTES // minutes)
SPIKE_BARS = 2              # an extreme with both neighbouring waypoints this close is a one-minute wick
MEDIAN_WEIGHT = 1.0         # the gap is spread in proportion to |r| + MEDIAN_WEIGHT x median |r|
MAX_SCALE = 2.0             # a draw is scaled by at most 2x (or 1/2) to meet its move
ENVELOPE = 0.05             # a reconstruction stays within 5 % of its lowest and highest waypoint
ENVELOPE_ROUNDS = 6         # rounds of redrawing the segments whose bars leave it
REDRAW_ROUNDS = 8           # a redrawn segment draws up to 8 x the usual number of candidates
SHIPPED_POOLS = {"312": "312_bitmex_xbtusd_1m.parquet", "519": "519_bitmex_xbtusd_1m.parquet"}


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
        out.append({**w, "at": at, "k": k, "y": math.log(w["price"]), "bar_time": bar, "bar": k // TICKS_PER_BAR
                    if at != "close" else k // TICKS_PER_BAR - 1})
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


@dataclass(frozen=True)
class MinutePool:
    """Real 1-minute bars as (return, upper wick, lower wick) triples, with window boundaries."""

    r: np.ndarray
    u: np.ndarray
    d: np.ndarray
    segments: tuple[tuple[int, int], ...]  # [start, end) of each real window in the arrays
    names: tuple[str, ...]
    falls: tuple[int, ...] = ()  # array index of each window's fall start (scenario.fall_start)

    @property
    def median_abs(self) -> float:
        return float(np.median(np.abs(self.r))) or 1e-4


def _triples(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    o, h, lo, c = (np.log(frame[k].to_numpy(float)) for k in ("open", "high", "low", "close"))
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    return c - o, np.clip(h - top, 0.0, None), np.clip(bottom - lo, 0.0, None)


@lru_cache(maxsize=8)
def minute_pool(names: tuple[str, ...]) -> MinutePool:
    """The pool of real minutes of the shipped windows ``names`` (``"312"``, ``"519"``)."""
    from feeds.scenarios import get_scenario

    folder = Path(__file__).resolve().parent / "shipped"
    rs, us, ds, segs, falls, pos = [], [], [], [], [], 0
    for name in names:
        path = folder / SHIPPED_POOLS[name]
        if not path.is_file():
            raise DeleverageError(f"{path}: the shipped real minutes the reconstruction bootstraps from are missing "
                                  "(reinstall the package, or rebuild them with `python -m feeds.scenarios.build_real`)")
        frame = pd.read_parquet(path)
        r, u, d = _triples(frame)
        rs.append(r), us.append(u), ds.append(d)
        segs.append((pos, pos + len(r)))
        falls.append(pos + int(np.searchsorted(frame.index, get_scenario(name).fall_start)))
        pos += len(r)
    return MinutePool(np.concatenate(rs), np.concatenate(us), np.concatenate(ds), tuple(segs), tuple(names),
                      tuple(falls))


def pool_for(scenario: str) -> tuple[str, ...]:
    """The real windows a scenario's reconstruction draws from: its own if shipped, else all of them."""
    return (scenario,) if scenario in SHIPPED_POOLS else tuple(SHIPPED_POOLS)


def _draw(rng: np.random.Generator, pool: MinutePool, n: int) -> np.ndarray:
    """Indices of n pool minutes: a stationary bootstrap (geometric blocks, within one window)."""
    out = np.empty(n, dtype=np.int64)
    lengths = np.array([b - a for a, b in pool.segments], dtype=float)
    filled = 0
    while filled < n:
        a, b = pool.segments[int(rng.choice(len(lengths), p=lengths / lengths.sum()))]
        first = int(rng.integers(a, b))
        take = min(int(rng.geometric(1.0 / BLOCK_MINUTES)), n - filled, b - first)
        out[filled:filled + take] = np.arange(first, first + take)
        filled += take
    return out


def _draw_local(rng: np.random.Generator, pool: MinutePool, n: int, rel: int | None) -> np.ndarray:
    """Indices of n pool minutes: a local block bootstrap.

    Blocks of consecutive real minutes (geometric lengths, mean ``BLOCK_MINUTES``, never across
    two windows); each block starts within ``LOCAL_MINUTES`` of the same time, relative to its
    window's fall start, as the minute it fills (``rel`` = the segment's first minute relative to
    the reconstructed fall start), so the calm hours before a fall draw calm real hours and the
    fall draws falling ones. Without ``rel``: anywhere in the pool.
    """
    if rel is None or not pool.falls:
        return _draw(rng, pool, n)
    out = np.empty(n, dtype=np.int64)
    filled = 0
    while filled < n:
        j = int(rng.integers(len(pool.segments)))
        a, b = pool.segments[j]
        centre = pool.falls[j] + rel + filled
        lo, hi = max(a, centre - LOCAL_MINUTES), min(b, centre + LOCAL_MINUTES + 1)
        if hi - lo < 1:  # outside this window's span: nearest end of the window
            lo, hi = (max(a, b - 2 * LOCAL_MINUTES), b) if centre >= b else (a, min(b, a + 2 * LOCAL_MINUTES))
        first = int(rng.integers(lo, hi))
        take = min(int(rng.geometric(1.0 / BLOCK_MINUTES)), n - filled, b - first)
        out[filled:filled + take] = np.arange(first, first + take)
        filled += take
    return out


def _reach(pool: MinutePool, cand: np.ndarray, extreme: str | None) -> float:
    """How far a draw of real minutes reaches: its summed return, or into a low (high) its last minute's low (high)."""
    r = pool.r[cand]
    if extreme == "low":
        return float(r.sum() - max(r[-1], 0.0) - pool.d[cand[-1]])
    if extreme == "high":
        return float(r.sum() + max(-r[-1], 0.0) + pool.u[cand[-1]])
    return float(r.sum())


def _fit(pool: MinutePool, idx: np.ndarray, n: int, move: float, extreme: str | None) -> tuple[np.ndarray, float]:
    """(returns, scale) of the drawn minutes ``idx`` made to meet ``move`` (see :func:`_segment`)."""
    r = pool.r[idx].copy()
    total = _reach(pool, idx, extreme)
    scale = 1.0
    if total * move > 0:
        scale = float(np.clip(move / total, 1.0 / MAX_SCALE, MAX_SCALE))
        r *= scale
    free = slice(0, n - 1) if extreme and n > 1 else slice(0, n)
    if extreme and n > 1:  # what the last minute adds beyond its close, kept
        tail = scale * (max(r[-1] / scale, 0.0) + pool.d[idx[-1]]) if extreme == "low" else \
            -scale * (max(-r[-1] / scale, 0.0) + pool.u[idx[-1]])
        target = move + tail - r[-1]  # what the other minutes must sum to
    else:
        target = move
    weight = np.abs(r[free]) + MEDIAN_WEIGHT * pool.median_abs
    r[free] += (target - r[free].sum()) * weight / weight.sum()
    return r, scale


def _segment(rng: np.random.Generator, pool: MinutePool, n: int, move: float,
             rel: int | None = None, extreme: str | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(pool indices, returns, scale) of the n minutes of one segment.

    Of ``BOOTSTRAP_CANDIDATES`` local block-bootstrap draws (:func:`_draw_local`) the one whose
    reach is nearest to ``move`` is kept, scaled by ``move / its reach`` within
    [1/MAX_SCALE, MAX_SCALE] when the signs agree (autocorrelation and variance ratios do not
    change with scale), the rest of the gap spread over its minutes in proportion to
    ``|r| + median |r|`` (so the correction lands on the active minutes, as real drops do).

    ``extreme=None``: the reach is the summed return, and the segment ends on its end knot exactly.
    ``extreme="low"`` (``"high"``): the segment ends on a low (high) waypoint's bar, and the
    reach is that last minute's low (high) relative to the segment's start:
    ``sum r - max(r_last, 0) - d_last`` (``sum r + max(-r_last, 0) + u_last``). The last minute
    keeps its own real wick, so the bar closes where its real minute closed relative to its
    extreme (a waterfall's low is often a long wick, 13:10 on 2021-05-19 closed 5 % above it),
    and the gap is spread over the other minutes only.

    Only the reach is matched: between its ends a draw may wander far (a crash and its rebound,
    scaled up to 2x); :func:`minute_path` redraws such a segment with :func:`_segment_within`.
    """
    idx, gap = None, math.inf
    for _ in range(max(BOOTSTRAP_CANDIDATES, CANDIDATE_MINUTES // n)):
        cand = _draw_local(rng, pool, n, rel)
        g = abs(_reach(pool, cand, extreme) - move)
        if g < gap:
            idx, gap = cand, g
    r, scale = _fit(pool, idx, n, move, extreme)
    return idx, r, scale


def _excess(pool: MinutePool, idx: np.ndarray, r: np.ndarray, wick: float, start: float,
            band: tuple[float, float], extreme: str | None) -> float:
    """How far (log) the bars of a segment drawn from ``start`` go outside ``band`` (0: inside).
    The extreme side of an extreme's own bar is not counted (it is set to the waypoint)."""
    path = start + np.cumsum(r)
    prev = np.concatenate(([start], path[:-1]))
    top = np.maximum(prev, path) + pool.u[idx] * wick
    bottom = np.minimum(prev, path) - pool.d[idx] * wick
    if extreme == "low":
        bottom[-1] = band[0]
    elif extreme == "high":
        top[-1] = band[1]
    return max(float(top.max()) - band[1], band[0] - float(bottom.min()), 0.0)


def _segment_within(rng: np.random.Generator, pool: MinutePool, n: int, move: float, rel: int | None,
                    extreme: str | None, start: float, band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, float]:
    """(pool indices, returns, wick scale) of a segment redrawn inside ``band`` (log bounds).

    As :func:`_segment`, but of the draws whose bars stay inside the band the one nearest in
    reach is kept, drawing up to ``REDRAW_ROUNDS`` times as many; if none does, the draw that
    goes least far outside is pulled towards the straight line between its ends (its deviation
    from the line and its wicks multiplied by the largest factor that fits, found by bisection).
    """
    tries = max(BOOTSTRAP_CANDIDATES, CANDIDATE_MINUTES // n)
    best, nearest = None, None
    for _ in range(REDRAW_ROUNDS):
        for _ in range(tries):
            cand = _draw_local(rng, pool, n, rel)
            r, scale = _fit(pool, cand, n, move, extreme)
            over = _excess(pool, cand, r, scale, start, band, extreme)
            if over <= 0.0:
                gap = abs(_reach(pool, cand, extreme) - move)
                if best is None or gap < best[0]:
                    best = (gap, cand, r, scale)
            elif nearest is None or over < nearest[0]:
                nearest = (over, cand, r, scale)
        if best is not None:
            return best[1], best[2], best[3]
    _, idx, r, scale = nearest
    path = start + np.cumsum(r)
    line = start + (path[-1] - start) * np.arange(1, n + 1) / n

    def shrunk(f: float) -> np.ndarray:
        return np.diff(np.concatenate(([start], line + f * (path - line))))

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if _excess(pool, idx, shrunk(mid), scale * mid, start, band, extreme) <= 0.0:
            lo = mid
        else:
            hi = mid
    return idx, shrunk(lo), scale * lo


def _knots(wps: list[dict[str, Any]], n_bars: int, pool: MinutePool,
           rng: np.random.Generator, spikes: set[int] | None = None,
           extremes: dict[int, tuple[float, str]] | None = None) -> list[tuple[int, float]]:
    """(index on the close path X_0..X_n, log price) of every waypoint; X_i is bar i's open.

    The bars of one-minute wicks are added to ``spikes``. A low (high) waypoint's knot is the
    close of its bar, a real wick away from the level; ``extremes`` receives {knot: (level, "low"
    or "high")} for these, so that :func:`minute_path` can let the segment's last real minute set
    that close instead (the value here is then only used for the lines of one-minute wicks)."""
    knots: dict[int, float] = {}
    for j, w in enumerate(wps):
        bar = w["bar"]
        if w["at"] == "open":
            knots[bar] = w["y"]
        elif w["at"] == "close":
            knots[bar + 1] = w["y"]
    big = np.flatnonzero(pool.u + pool.d + np.abs(pool.r) > 0.01)
    for j, w in enumerate(wps):
        if w["at"] in ("low", "high") and (w["bar"] + 1) not in knots:
            k = int(rng.choice(big)) if len(big) else int(rng.integers(len(pool.r)))
            wick = max(float(pool.d[k] if w["at"] == "low" else pool.u[k]), 1e-4)
            knots[w["bar"] + 1] = w["y"] + wick if w["at"] == "low" else w["y"] - wick
            if extremes is not None:
                extremes[w["bar"] + 1] = (w["y"], w["at"])
            before = max((i for i in knots if i <= w["bar"]), default=None)
            after = min((i for i in knots if i > w["bar"] + 1), default=None)
            if before is not None and after is not None and after - before <= SPIKE_BARS + 1:
                # a one-minute wick between close neighbours (2021-07-26): the bar closes on their line
                line = knots[before] + (knots[after] - knots[before]) * (w["bar"] + 1 - before) / (after - before)
                knots[w["bar"] + 1] = max(line, w["y"] + 1e-4) if w["at"] == "low" else min(line, w["y"] - 1e-4)
                if spikes is not None:
                    spikes.add(w["bar"])
                if extremes is not None:
                    extremes.pop(w["bar"] + 1, None)
    return sorted(knots.items())


def _reflect(x: np.ndarray, lo: int, hi: int, level: float, above: bool) -> None:
    seg = x[lo:hi + 1]
    seg[:] = level + np.abs(seg - level) if above else level - np.abs(seg - level)


def _fill(j: int, knots: list[tuple[int, float]], targets: list[float], x: np.ndarray, u: np.ndarray,
          d: np.ndarray, extremes: dict[int, tuple[float, str]], pool: MinutePool, rng: np.random.Generator,
          fall: int | None, band: tuple[float, float] | None = None) -> str | None:
    """Fill segment j (knot j to knot j + 1) of the close path and its wicks; the segment's kind
    ("low"/"high" when it ends on an extreme's bar, else None). ``band``: redraw within these log
    bounds (:func:`_segment_within`); None: the plain draw (:func:`_segment`)."""
    (a, _), (b, _) = knots[j], knots[j + 1]
    yb = targets[j + 1]
    ya = float(x[a])  # an extreme's knot is where the previous segment's last real minute closed
    kind = None
    if b in extremes and b - a >= 2:
        level, kind = extremes[b]
        yb = level
    rel = None if fall is None else a - fall
    if band is None:
        idx, r, scale = _segment(rng, pool, b - a, yb - ya, rel, kind)
        wick = scale
    else:
        idx, r, wick = _segment_within(rng, pool, b - a, yb - ya, rel, kind, ya, band)
    x[a + 1:b + 1] = ya + np.cumsum(r)
    u[a:b], d[a:b] = pool.u[idx] * wick, pool.d[idx] * wick
    if kind:
        # the close stays strictly on its side of the level (a wick of at least 1e-4)
        x[b] = max(x[b], level + 1e-4) if kind == "low" else min(x[b], level - 1e-4)
        knots[j + 1] = (b, float(x[b]))
    return kind


def envelope(wps: list[dict[str, Any]]) -> tuple[float, float]:
    """(lowest, highest) log price a reconstruction may reach: the lowest and highest waypoint,
    widened by ``ENVELOPE`` (5 %)."""
    ys = [w["y"] for w in wps]
    return min(ys) - math.log1p(ENVELOPE), max(ys) + math.log1p(ENVELOPE)


def minute_path(wps: list[dict[str, Any]], n_bars: int, pool: MinutePool,
                rng: np.random.Generator, fall: int | None = None) -> tuple[np.ndarray, ...]:
    """Log open/high/low/close of the n bars (see the module docstring, steps 2-4, and the envelope).

    ``fall``: the bar of the fall start (each block of real minutes comes from about the same
    time relative to a real fall; None: from anywhere in the pool).
    """
    spikes: set[int] = set()
    extremes: dict[int, tuple[float, str]] = {}
    knots = _knots(wps, n_bars, pool, rng, spikes, extremes)
    targets = [y for _, y in knots]
    pos = [k for k, _ in knots]
    if pos[0] != 0 or pos[-1] != n_bars:
        raise DeleverageError("the first waypoint must be the window's first open and the last one its last close")

    def around(w: dict[str, Any]) -> tuple[int, int]:  # knots either side of the waypoint's bar
        i = int(np.searchsorted(pos, w["bar"], side="right"))
        return pos[max(i - 1, 0)], pos[min(i, len(pos) - 1)] if pos[min(i, len(pos) - 1)] > w["bar"] else pos[-1]

    figs = {w["figure"]: w for w in wps if "figure" in w}
    constraints = []  # (first bar, last bar, level, above, exempt bar)
    for w in wps:
        if w["at"] in ("low", "high"):
            lo, hi = around(w)
            constraints.append((lo, hi, w["y"], w["at"] == "low", w["bar"]))
    if "low" in figs:
        constraints.append((0, n_bars, figs["low"]["y"], True, figs["low"]["bar"]))
        if "peak" in figs and figs["peak"]["bar"] < figs["low"]["bar"]:
            p = figs["peak"]
            lo, _ = around(p)
            constraints.append((lo, figs["low"]["bar"] + 1, p["y"], False, p["bar"]))

    x = np.empty(n_bars + 1)
    u = np.empty(n_bars)
    d = np.empty(n_bars)
    x[0] = knots[0][1]
    for j in range(len(knots) - 1):
        _fill(j, knots, targets, x, u, d, extremes, pool, rng, fall)
    out = _shape(x.copy(), u, d, wps, knots, constraints, spikes, n_bars)

    # the envelope: a draw whose bars leave it (a crash-and-rebound block scaled up, then reflected
    # about the window's low into a runaway) is redrawn, segment by segment, within a band; a path
    # already inside is left exactly as drawn
    env_lo, env_hi = envelope(wps)
    for _ in range(ENVELOPE_ROUNDS):
        _, h, low, _ = out
        bad = np.flatnonzero((h > env_hi) | (low < env_lo))
        if not len(bad):
            return (*out, spikes)
        todo = sorted({int(np.searchsorted(pos, i, side="right")) - 1 for i in bad})
        while todo:
            j = todo.pop(0)
            a, b = pos[j], pos[j + 1]
            seg_lo, seg_hi = env_lo, env_hi
            for c_lo, c_hi, level, above, _ in constraints:  # what a later reflection about a level maps inside
                if c_lo <= b and c_hi >= a:
                    if above:
                        seg_lo = max(seg_lo, 2 * level - env_hi)
                    else:
                        seg_hi = min(seg_hi, 2 * level - env_lo)
            kind = _fill(j, knots, targets, x, u, d, extremes, pool, rng, fall, band=(seg_lo, seg_hi))
            if kind and j + 1 < len(knots) - 1 and j + 1 not in todo:  # the next segment starts where this one ended
                todo = sorted([*todo, j + 1])
        out = _shape(x.copy(), u, d, wps, knots, constraints, spikes, n_bars)
    _, h, low, _ = out
    if ((h > env_hi) | (low < env_lo)).any():
        raise DeleverageError(f"the reconstruction leaves its envelope ({math.exp(env_lo):,.6g} .. {math.exp(env_hi):,.6g}, "
                              f"the waypoints +-{ENVELOPE:.0%}) after {ENVELOPE_ROUNDS} redraws; use another seed")
    return (*out, spikes)


def _shape(x: np.ndarray, u: np.ndarray, d: np.ndarray, wps: list[dict[str, Any]], knots: list[tuple[int, float]],
           constraints: list[tuple[int, int, float, bool, int]], spikes: set[int], n_bars: int) -> tuple[np.ndarray, ...]:
    """Log open/high/low/close from the drawn close path ``x`` (modified) and wicks: the
    extremes' reflections, the exact pass-through and the waypoints' own extremes (step 4)."""
    for _ in range(8):  # reflect until no constraint is broken (neighbouring reflections may interact)
        broken = False
        for lo, hi, level, above, _ in constraints:
            seg = x[lo:hi + 1]
            if (seg < level).any() if above else (seg > level).any():
                _reflect(x, lo, hi, level, above)
                broken = True
        if not broken:
            break
    for lo, hi, level, above, _ in constraints:  # what is left: clipped strictly inside (no ties with the extreme)
        seg = x[lo:hi + 1]
        np.maximum(seg, level + 1e-5, out=seg) if above else np.minimum(seg, level - 1e-5, out=seg)
    for k, y in knots:  # exact pass-through (reflection keeps the knots; this removes float drift)
        x[k] = y
    o, c = x[:-1], x[1:]
    h = np.maximum(o, c) + u
    low = np.minimum(o, c) - d
    for lo, hi, level, above, exempt in constraints:  # wicks stay inside the level, halfway to the body
        bars = np.arange(lo, min(hi, n_bars))
        bars = bars[bars != exempt]
        if above:
            body = np.minimum(o[bars], c[bars])
            low[bars] = np.where(low[bars] <= level, level + 0.5 * (body - level), low[bars])
        else:
            body = np.maximum(o[bars], c[bars])
            h[bars] = np.where(h[bars] >= level, level - 0.5 * (level - body), h[bars])
    for w in wps:
        if w["at"] == "low":
            low[w["bar"]] = w["y"]
        elif w["at"] == "high":
            h[w["bar"]] = w["y"]
        if w["bar"] in spikes:  # a one-minute wick has no other wick
            (h if w["at"] == "low" else low)[w["bar"]] = (np.maximum if w["at"] == "low" else np.minimum)(
                o[w["bar"]], c[w["bar"]])
    return o, h, low, c


def tick_path(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray,
              extreme_bars: dict[int, str], spikes: set[int] = frozenset()) -> np.ndarray:
    """A 10-s path (six ticks a bar, shared ends) visiting open, both extremes and close.

    The extreme against the bar's direction comes first (ticks 2 and 4); a waypoint's extreme
    sits at the bar's middle tick (3), the other extreme on the side of the close. A one-minute
    wick (``spikes``) is one tick: open until tick 2, the extreme at 3, the close from tick 4.
    """
    n = len(o)
    down = c < o
    first_pos = np.full(n, 2)
    second_pos = np.full(n, 4)
    first_val = np.where(down, h, low)
    second_val = np.where(down, low, h)
    for bar, at in extreme_bars.items():
        if at == "low":  # low at tick 3; the high before it on a down bar, after it on an up bar
            first_val[bar], second_val[bar] = (h[bar], low[bar]) if down[bar] else (low[bar], h[bar])
            first_pos[bar], second_pos[bar] = (1, 3) if down[bar] else (3, 5)
        else:
            first_val[bar], second_val[bar] = (low[bar], h[bar]) if not down[bar] else (h[bar], low[bar])
            first_pos[bar], second_pos[bar] = (1, 3) if not down[bar] else (3, 5)
    ticks = np.empty(n * TICKS_PER_BAR + 1)
    k = np.arange(TICKS_PER_BAR + 1)[None, :].astype(float)
    p1, p2 = first_pos[:, None], second_pos[:, None]
    v0, v1, v2, v3 = o[:, None], first_val[:, None], second_val[:, None], c[:, None]
    seg = np.where(k <= p1, v0 + (v1 - v0) * k / p1,
                   np.where(k <= p2, v1 + (v2 - v1) * (k - p1) / (p2 - p1),
                            v2 + (v3 - v2) * (k - p2) / (TICKS_PER_BAR - p2)))
    ticks[:-1] = seg[:, :-1].reshape(-1)
    ticks[-1] = c[-1]
    for bar in spikes:
        k0 = bar * TICKS_PER_BAR
        ticks[k0 + 1:k0 + 3] = o[bar]
        ticks[k0 + 3] = low[bar] if extreme_bars[bar] == "low" else h[bar]
        ticks[k0 + 4:k0 + 6] = c[bar]
    return ticks


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
                seed: int, what: str, pool: tuple[str, ...] | None = None,
                fall_start: pd.Timestamp | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Reconstruct the 1-minute frame of one (asset, venue) path spec; returns (frame, attrs extras).

    ``pool``: the shipped real windows to bootstrap minutes from (default: both, 312 and 519).
    """
    n_bars = int((end - start).total_seconds() // 60)
    if n_bars <= 0:
        raise DeleverageError(f"{what}: window end must be after its start")
    n_ticks = n_bars * TICKS_PER_BAR + 1
    wps = waypoint_ticks(spec, start, n_ticks, what)
    rng = np.random.default_rng(seed)
    minutes = minute_pool(tuple(pool) if pool else tuple(SHIPPED_POOLS))
    beta = float(spec.get("minute_scale", {}).get("value", 1.0))
    if beta != 1.0:  # an asset that moves more than BTC (ETH): the real BTC minutes scaled by its beta
        minutes = MinutePool(minutes.r * beta, minutes.u * beta, minutes.d * beta, minutes.segments, minutes.names,
                             minutes.falls)
    fall = None if fall_start is None else int((fall_start - start).total_seconds() // 60)
    lo_o, lo_h, lo_l, lo_c, spikes = minute_path(wps, n_bars, minutes, rng, fall=fall)
    extremes = {w["bar"]: w["at"] for w in wps if w["at"] in ("low", "high")}
    y = tick_path(lo_o, lo_h, lo_l, lo_c, extremes, spikes)
    last = np.exp(y)
    o, h, lo, c = np.exp(lo_o), np.exp(lo_h), np.exp(lo_l), np.exp(lo_c)
    for w in wps:  # the published figure itself, not exp(log(price))
        {"open": o, "close": c, "low": lo, "high": h}[w["at"]][w["bar"]] = w["price"]
        last[w["k"]] = w["price"]
    # exp(log) of a bar's extreme can sit a rounding error inside a published open/close set just
    # above: a published high/low keeps its figure and bounds the open/close; elsewhere the range
    # widens to hold them (at most a few ulps), so every bar has low <= open, close <= high
    for w in wps:
        if w["at"] == "high":
            b = w["bar"]
            o[b], c[b] = min(o[b], h[b]), min(c[b], h[b])
        elif w["at"] == "low":
            b = w["bar"]
            o[b], c[b] = max(o[b], lo[b]), max(c[b], lo[b])
    np.maximum(h, np.maximum(o, c), out=h)
    np.minimum(lo, np.minimum(o, c), out=lo)

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
    if spec.get("index_low"):  # the published index (spot) low: the index never went below it
        np.maximum(index, float(spec["index_low"]["price"]), out=index)
    alpha = 1.0 - math.exp(-TICK_SECONDS / MARK_WINDOW_SECONDS)
    mark = ema(index, alpha)

    mo, mh, ml, mc = _bars_ohlc(mark, n_bars)
    index_close = index[TICKS_PER_BAR::TICKS_PER_BAR]
    times = pd.date_range(start, periods=n_bars, freq="1min", name="open_time")

    dy = np.diff(y).reshape(n_bars, TICKS_PER_BAR)
    activity = np.abs(dy).sum(axis=1)
    med = float(np.median(activity)) or 1.0
    # a flat real minute (a halt) keeps a trickle: 5 % of the median level (volume is shape only)
    volume = float(spec.get("volume_per_min", 1.0)) * np.maximum(activity, 0.05 * med) / med

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
        "bootstrap": (f"minutes between waypoints: local block bootstrap (mean {BLOCK_MINUTES} min) of the real BitMEX "
                      f"XBTUSD minutes of {' and '.join(minutes.names)} shipped in the package"
                      + (f", scaled by {beta:g} ({spec['minute_scale'].get('basis', '')})" if beta != 1.0 else "")),
        "assumptions": [f"{w['time']} {w['at']} {w['price']}: {w.get('basis', '')}".strip()
                        for w in wps if w["source"] == "assumed" or "basis" in w],
    }
    return frame, extras
