"""Liquidation map: the ESTIMATED notional that would be liquidated per price band and side.

``liquidation_map(frame, at)`` uses the same leveraged inventory as the simulator
(:func:`feeds.cascade.market.from_market`: positions from the OI history, or the volume-profile
proxy, over the calibrated leverage mix, minus those already liquidated by the path before
``at``), with each position's liquidation price from the risk core's venue formulas. Band ``i``
covers ``[price x (1 + (i - 0.5) w), price x (1 + (i + 0.5) w))`` with ``w = band_pct / 100``:
``long_usd`` is the notional of longs whose liquidation price lies in the band (hit when the
mark falls into it), ``short_usd`` the same for shorts (hit on the way up).

``method="range"`` (the default) spreads each hour's new positions equally over the hour's
open, high, low and close (positions are opened all through the hour, not at one typical
price), and a later hour's low (high) crossing a long (short) level liquidates only the
fraction ``consume`` of it (the rest stays live: positions opened at other prices of the hour,
or re-opened after the cross); leverage weights ``lev^power`` over :data:`LEVERAGE_GRID` and
positions closing at ``1 / hold_hours``. Its three parameters are fitted
(:func:`fit_force_orders`) on the earlier part of the Binance forceOrder recording and scored
on the later part; shipped in ``fitted.json`` key ``liqmap.range``.

``method="calibrated"`` is the previous default: the same walk with every entry at the hour's
typical price and crossed levels removed whole, ``power`` and ``hold_hours`` fitted the same way
(``fitted.json`` key ``liqmap``). ``method="model"`` keeps the cascade simulator's leverage mix
and its 48 h holding time.

``method="ladder"`` is the naive fixed-leverage ladder of public heatmap tools: the same
entries, each spread equally over 100/50/25/10/5x with levels L = P (1 - 1/lev) (longs) and
P (1 + 1/lev) (shorts), no maintenance margin, no removal of levels the path already crossed.

Both are **estimates of unobservable positions, not exchange data** (frames say so in
``attrs["label"]``). :func:`map_lines` turns maps into feed columns for strategies, computed
every hour from the bars before that hour only (no look-ahead).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from feeds.cascade.market import HOLD_HOURS, MARKET_THETA, _utc, check_bars, hourly, inventory_from_oi, long_share
from feeds.cascade.model import CascadeParams, _lev_ratios
from feeds.schema import LIQMAP_COLUMNS
from risk.errors import DeleverageError

LADDER_LEVERAGE = (100, 50, 25, 10, 5)
# leverage grid of the calibrated map (Binance BTCUSDT allows up to 125x on small positions)
LEVERAGE_GRID = (2, 3, 5, 10, 20, 25, 50, 75, 100, 125)
# before any fit: the simulator's holding time and a flat mix
LIQMAP_DEFAULT = {"power": 0.0, "hold_hours": 48.0}
RANGE_DEFAULT = {"power": 0.0, "hold_hours": 48.0, "consume": 1.0}
METHODS = ("calibrated", "range", "model", "ladder")


def liqmap_fit(method: str = "calibrated") -> dict[str, Any]:
    """The shipped calibration of the map (``fitted.json`` key ``liqmap``; the ``range`` family
    under ``liqmap.range``), or the defaults."""
    from feeds.cascade.fit import fitted

    data = (fitted() or {}).get("liqmap") or {}
    if method == "range":
        return {**RANGE_DEFAULT, **(data.get("range") or {}).get("params", {})}
    return {**LIQMAP_DEFAULT, **data.get("params", {})}


def _params(method: str, calib: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters of a fitted map family: ``calib`` over the family's defaults, or the shipped fit."""
    if calib is None:
        return liqmap_fit(method)
    return {**(RANGE_DEFAULT if method == "range" else LIQMAP_DEFAULT), **calib}


def calibrated_mix(power: float) -> tuple[tuple[float, float], ...]:
    """Weights proportional to ``lev ** power`` over :data:`LEVERAGE_GRID` (summing to 1)."""
    w = np.array([float(lev) ** power for lev in LEVERAGE_GRID])
    w /= w.sum()
    return tuple((float(lev), float(x)) for lev, x in zip(LEVERAGE_GRID, w))
LINE_COLUMNS = LIQMAP_COLUMNS  # feeds.schema: the loader keeps them, engine.bt_data makes them lines


def _lots(frame: pd.DataFrame, at: pd.Timestamp, lookback_hours: float, venue: str, theta: dict[str, float],
          method: str, calib: dict[str, Any] | None = None) -> tuple[float, np.ndarray, np.ndarray, np.ndarray,
                                                                     pd.DataFrame, np.ndarray]:
    """(price at ``at``, side, liquidation price, USD, hourly bars, leverage) of the estimated live positions."""
    check_bars(frame, "the liquidation map")
    hist = frame.loc[(frame.index < at) & (frame.index >= at - pd.Timedelta(hours=lookback_hours))]
    if len(hist) == 0:
        raise DeleverageError(f"--at {at.isoformat()}: no bars in the {lookback_hours:g} h before it "
                              f"(the data covers {frame.index[0].isoformat()} .. {frame.index[-1].isoformat()})")
    h = hourly(hist)
    if len(h) < 2:
        raise DeleverageError(f"--at {at.isoformat()}: only {len(h)} hour(s) of bars before it; need at least 2")
    price = float(hist["close"].iloc[-1])
    base = CascadeParams(start=at.isoformat(), price0=price, venue=venue)
    s = long_share(h)
    has_oi = "oi_usd" in h and h["oi_usd"].notna().all()
    typical = ((h["high"] + h["low"] + h["close"]) / 3.0).to_numpy()
    qv = h["quote_volume"].to_numpy() if "quote_volume" in h else np.ones(len(h))
    if method == "ladder":
        mix = tuple((float(lev), 1.0) for lev in LADDER_LEVERAGE)
        ratios = {1: [(0.2, 1.0 - 1.0 / lev, 0.0) for lev, _ in mix], -1: [(0.2, 1.0 + 1.0 / lev, 0.0) for lev, _ in mix]}
        # no removal of crossed levels: the history's lows/highs are not consulted
        lo = np.full(len(h), np.inf)     # a long is hit when low <= its level: never
        hi = np.full(len(h), -np.inf)    # a short when high >= its level: never
    elif method in ("model", "calibrated", "range"):
        extra: dict[str, Any] = {}
        if method == "model":
            mix, hold = base.leverage_mix, HOLD_HOURS
        else:
            c = _params(method, calib)
            mix, hold = calibrated_mix(float(c["power"])), float(c["hold_hours"])
            if method == "range":
                # an hour's positions opened across its range (open, high, low, close equally), and a
                # crossed level only partly consumed (fraction ``consume``; the rest stays live)
                op = hist["open"] if "open" in hist else hist["close"]
                o = op.resample("1h").first().reindex(h.index).to_numpy()
                entries = np.column_stack([o, h["high"].to_numpy(), h["low"].to_numpy(), h["close"].to_numpy()])
                extra = {"entries": entries, "consume": float(c["consume"])}
        ratios = {sd: _lev_ratios(venue, None, base.start_ts.timestamp(), price, base.position_usd, mix, sd) for sd in (1, -1)}
        lo, hi = h["low"].to_numpy(), h["high"].to_numpy()
        extra["hold_hours"] = hold
    else:
        raise DeleverageError(f"liquidation map method {method!r}: expected one of {', '.join(METHODS)}")
    inv = inventory_from_oi(typical, lo, hi, h["oi_usd"].to_numpy() if has_oi else None, s, mix, ratios,
                            quote_volume=qv, oi_turnover=theta["oi_turnover"], old_spread=theta["old_spread"],
                            **({} if method == "ladder" else extra))
    k = theta["lev_share"] if method != "ladder" else 1.0
    lev_index = {float(lev): i for i, (lev, _) in enumerate(mix)}
    r = np.array([ratios[int(sd)][lev_index[float(lv)]][1] for sd, lv in zip(inv.side, inv.leverage)]) if len(inv.side) else np.zeros(0)
    return price, inv.side, inv.price * r, inv.usd * k, h, inv.leverage


def liquidation_map(frame: pd.DataFrame, at: Any, *, band_pct: float = 0.5, range_pct: float = 20.0,
                    venue: str | None = None, lookback_hours: float = 72.0, method: str = "range",
                    theta: dict[str, float] | None = None, calib: dict[str, Any] | None = None) -> pd.DataFrame:
    """Bands (rows) with ``band_low``, ``band_high``, ``mid``, ``distance_pct`` (band centre vs the
    price at ``at``), ``long_usd``, ``short_usd``; ``attrs`` hold the price, key levels and the
    label. Bands span +-``range_pct`` around the price."""
    if not 0 < band_pct <= 10 or not band_pct < range_pct <= 90:
        raise DeleverageError(f"band_pct {band_pct!r} must be in (0, 10] and range_pct {range_pct!r} in (band_pct, 90]")
    if theta is None:
        from feeds.cascade.fit import market_theta

        theta = market_theta()
    th = {**MARKET_THETA, **theta}
    t0 = _utc(at)
    venue = venue or frame.attrs.get("venue") or "binance_usdm"
    if venue == "binance_usdtm":
        venue = "binance_usdm"
    if method in ("range", "calibrated"):
        calib = _params(method, calib)
    price, side, liq, usd, h, _ = _lots(frame, t0, lookback_hours, venue, th, method, calib)
    out = _bands(price, side, liq, usd, band_pct, range_pct)
    day = h.iloc[-24:]
    keys = {"price": price, "24h_high": float(day["high"].max()), "24h_low": float(day["low"].min())}
    for col, name in (("long_usd", "densest_long_band"), ("short_usd", "densest_short_band")):
        if out[col].max() > 0:
            keys[name] = float(out.loc[out[col].idxmax(), "mid"])
    out.attrs.update({
        "kind": "estimate", "method": method, "at": t0.isoformat(), "price": price, "venue": venue,
        "band_pct": band_pct, "key_levels": keys, **({"params": dict(calib)} if method in ("range", "calibrated") else {}),
        "label": ("ESTIMATED liquidation map (model of unobservable positions from "
                  + ("the OI history" if "oi_usd" in h else "a volume-profile proxy")
                  + {"model": ", venue formulas and the cascade simulator's leverage mix",
                     "calibrated": ", venue formulas and the leverage mix calibrated on realised liquidations",
                     "range": ", venue formulas, entries across each hour's range, crossed levels "
                              f"{float((calib or {}).get('consume', 1.0)):.0%} consumed and the leverage mix calibrated "
                              "on realised liquidations",
                     "ladder": ", naive fixed-leverage ladder 100/50/25/10/5x"}[method] + "): not exchange data"),
    })
    return out


def _bands(price: float, side: np.ndarray, liq: np.ndarray, usd: np.ndarray, band_pct: float,
           range_pct: float) -> pd.DataFrame:
    """Sum ``usd`` by band of ``band_pct`` around ``price`` (longs below, shorts above)."""
    w = band_pct / 100.0
    n = int(round(range_pct / band_pct))
    idx = np.arange(-n, n + 1)
    lo_edge = price * (1 + (idx - 0.5) * w)
    hi_edge = price * (1 + (idx + 0.5) * w)
    band = np.floor((liq / price - 1.0) / w + 0.5).astype(np.int64) if len(liq) else np.zeros(0, np.int64)
    out = pd.DataFrame({"band_low": lo_edge, "band_high": hi_edge, "mid": price * (1 + idx * w),
                        "distance_pct": idx * band_pct, "long_usd": 0.0, "short_usd": 0.0}, index=pd.Index(idx, name="band"))
    ok = (band >= -n) & (band <= n)
    for sd, col in ((1, "long_usd"), (-1, "short_usd")):
        m = ok & (side == sd)
        if m.any():
            sums = np.bincount(band[m] + n, weights=usd[m], minlength=2 * n + 1)
            out[col] = sums
    # a long can only be hit below the price, a short above
    out.loc[out["distance_pct"] > 0, "long_usd"] = out.loc[out["distance_pct"] > 0, "long_usd"] * 0.0
    out.loc[out["distance_pct"] < 0, "short_usd"] = out.loc[out["distance_pct"] < 0, "short_usd"] * 0.0
    return out


def dense_band(m: pd.DataFrame, side: str, dense_frac: float = 0.5) -> tuple[float, float] | None:
    """Nearest run of contiguous bands on ``side`` ("long": below, "short": above) whose
    notional each reach ``dense_frac`` x the side's densest band: (near edge, far edge)."""
    col = f"{side}_usd"
    sub = m[m["distance_pct"] < 0].iloc[::-1] if side == "long" else m[m["distance_pct"] > 0]
    top = float(sub[col].max()) if len(sub) else 0.0
    if top <= 0:
        return None
    dense = (sub[col] >= dense_frac * top).to_numpy()
    i = int(np.argmax(dense))
    j = i
    while j + 1 < len(dense) and dense[j + 1]:
        j += 1
    if side == "long":
        return float(sub["band_high"].iloc[i]), float(sub["band_low"].iloc[j])
    return float(sub["band_low"].iloc[i]), float(sub["band_high"].iloc[j])


def map_lines(frame: pd.DataFrame, *, within_pct: float = 5.0, every: str = "1h", band_pct: float = 0.5,
              range_pct: float = 20.0, lookback_hours: float = 72.0, min_hours: float = 6.0,
              venue: str | None = None, theta: dict[str, float] | None = None, method: str = "range") -> pd.DataFrame:
    """``frame`` plus the liquidation-map feed columns (:data:`LINE_COLUMNS`): long (short)
    notional within ``within_pct`` below (above) the price, and the edges of the nearest dense
    long band below / short band above. Recomputed at every ``every`` boundary from the bars
    before it and held until the next one; NaN until ``min_hours`` of history exist."""
    if theta is None:
        from feeds.cascade.fit import market_theta

        theta = market_theta()
    out = frame.copy()
    vals = {c: np.full(len(out), np.nan) for c in LINE_COLUMNS}
    starts = out.index.floor(every)
    first = out.index[0] + pd.Timedelta(hours=min_hours)
    bounds = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
    for k, i in enumerate(bounds):
        t = starts[i]
        if t < first:
            continue
        j = bounds[k + 1] if k + 1 < len(bounds) else len(out)
        m = liquidation_map(frame, t, band_pct=band_pct, range_pct=range_pct, venue=venue,
                            lookback_hours=lookback_hours, theta=theta, method=method)
        near = m["distance_pct"].abs() <= within_pct
        vals["liqmap_long_near_usd"][i:j] = float(m.loc[near, "long_usd"].sum())
        vals["liqmap_short_near_usd"][i:j] = float(m.loc[near, "short_usd"].sum())
        lb = dense_band(m, "long")
        sb = dense_band(m, "short")
        if lb:
            vals["liqmap_long_band_top"][i:j], vals["liqmap_long_band_bottom"][i:j] = lb
        if sb:
            vals["liqmap_short_band_bottom"][i:j], vals["liqmap_short_band_top"][i:j] = sb
    for c, v in vals.items():
        out[c] = v
    out.attrs = dict(frame.attrs)
    out.attrs.setdefault("notes", [])
    out.attrs["notes"] = list(out.attrs["notes"]) + [
        f"liqmap_*: ESTIMATED liquidation-map lines (feeds.cascade.liqmap, every {every}, within {within_pct:g} %), not exchange data"]
    return out


def densest_share(m: pd.DataFrame, realised: pd.DataFrame, top: int = 10) -> tuple[float, float]:
    """Share of ``realised`` liquidation notional (columns ``price``, ``side`` long/short,
    ``usd``) that fell in the map's ``top`` densest bands of its side, and the share of the
    mapped range those bands cover (what a uniform guess would get)."""
    got = tot = 0.0
    for side, col in (("long", "long_usd"), ("short", "short_usd")):
        r = realised[realised["side"] == side]
        if r.empty:
            continue
        cand = m[m[col] > 0]
        best = cand.nlargest(top, col)
        inside = np.zeros(len(r), bool)
        for lo, hi in zip(best["band_low"], best["band_high"]):
            inside |= (r["price"].to_numpy() >= lo) & (r["price"].to_numpy() < hi)
        got += float(r["usd"].to_numpy()[inside].sum())
        tot += float(r["usd"].sum())
    coverage = top / max(1, (len(m) - 1) // 2)
    return (got / tot if tot > 0 else math.nan), coverage


def force_order_bars(path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly bars built from the fill prices of a Binance forceOrder recording (liquidation
    orders are real trades; hours the recorder missed are absent, never filled) and the
    realised liquidations (``price`` = average fill price, ``side``, ``usd``).

    The recording has no traded volume, so every recorded hour weighs the same in the
    volume-profile inventory (for the model and the ladder alike)."""
    raw = pd.read_csv(path)
    need = {"timestamp_ms", "liquidated_position_side", "avg_fill_price", "notional_quote"}
    missing = sorted(need - set(raw.columns))
    if missing:
        raise DeleverageError(f"{path}: missing column(s) {missing}; expected the shared forceOrder layout (PROVENANCE.md 6)")
    t = pd.to_datetime(raw["timestamp_ms"], unit="ms", utc=True)
    px = raw["avg_fill_price"].astype(float)
    g = px.groupby(t.dt.floor("1h"))
    bars = pd.DataFrame({"open": g.first(), "high": g.max(), "low": g.min(), "close": g.last()})
    bars["volume"] = 1.0 / bars["close"]
    bars["quote_volume"] = 1.0
    bars.index.name = "open_time"
    bars.attrs.update({"venue": "binance_usdm", "kind": "real (liquidation fills only)"})
    realised = pd.DataFrame({"time": t, "price": px, "side": raw["liquidated_position_side"], "usd": raw["notional_quote"].astype(float)})
    return bars, realised


FIT_POWERS = tuple(round(x, 2) for x in np.arange(-2.0, 2.01, 0.1))
FIT_HOLDS = (1.0, 2.0, 3.0, 6.0, 12.0, 24.0, 48.0)
FIT_CONSUMES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)  # method "range": fraction of a crossed level liquidated
FIT_SPLIT = 10  # recorded hours: the first 10 (16:00 12-04 .. 01:00 12-05) fit, the rest is scored


def _pooled(bars: pd.DataFrame, realised: pd.DataFrame, hours, method: str, top: int, band_pct: float,
            range_pct: float, theta: dict[str, float], calib: dict[str, Any] | None = None) -> tuple[float, float]:
    """(share of realised notional in the ``top`` densest bands, realised USD) pooled over ``hours``:
    the map at each hour's start (bars before it only) against the liquidations inside the hour."""
    got = tot = 0.0
    for h in hours:
        r = realised[(realised["time"] >= h) & (realised["time"] < h + pd.Timedelta(hours=1))]
        if r.empty:
            continue
        m = liquidation_map(bars, h, band_pct=band_pct, range_pct=range_pct, method=method, theta=theta, calib=calib)
        share, _ = densest_share(m, r, top)
        if not math.isnan(share):
            total = float(r["usd"].sum())
            got += share * total
            tot += total
    return (got / tot if tot else math.nan), tot


def fit_force_orders(bars: pd.DataFrame, realised: pd.DataFrame, hours, *, top: int = 10, band_pct: float = 0.25,
                     range_pct: float = 10.0, theta: dict[str, float] | None = None,
                     powers=FIT_POWERS, holds=FIT_HOLDS, method: str = "calibrated",
                     consumes=FIT_CONSUMES) -> dict[str, Any]:
    """Fit the map's ``power`` (leverage weights ``lev^power`` over :data:`LEVERAGE_GRID`) and
    ``hold_hours`` (positions close at ``1 / hold_hours``), and for ``method="range"`` also
    ``consume`` (the fraction of a crossed level liquidated), by grid search: the point whose maps
    put the largest share of the realised liquidation notional of ``hours`` into their ``top``
    densest bands (ties: the first in grid order). Only ``hours`` (and the bars before each) are read."""
    th = {**MARKET_THETA, **(theta if theta is not None else _market_theta())}
    flat = np.array([1.0 / len(LEVERAGE_GRID)] * len(LEVERAGE_GRID))
    weights = {pw: np.array([w for _, w in calibrated_mix(pw)]) / flat for pw in powers}
    lev_pos = {float(lev): i for i, lev in enumerate(LEVERAGE_GRID)}
    best = None
    grid = []
    w = band_pct / 100.0
    n = int(round(range_pct / band_pct))
    for hold, cons in itertools.product(holds, consumes if method == "range" else (None,)):
        per_hour = []
        for h in hours:
            r = realised[(realised["time"] >= h) & (realised["time"] < h + pd.Timedelta(hours=1))]
            if r.empty:
                continue
            c = {"power": 0.0, "hold_hours": hold, **({} if cons is None else {"consume": cons})}
            price, side, liq, usd, _, lev = _lots(bars, _utc(h), 72.0, "binance_usdm", th, method, c)
            li = np.array([lev_pos[float(x)] for x in lev], dtype=np.int64)
            band = np.floor((liq / price - 1.0) / w + 0.5).astype(np.int64)
            rb = np.floor((r["price"].to_numpy() / price - 1.0) / w + 0.5).astype(np.int64)
            per_hour.append((side, band, usd, li, r["side"].to_numpy(), rb, r["usd"].to_numpy()))
        for pw in powers:
            got = tot = 0.0
            for side, band, usd, li, r_side, rb, r_usd in per_hour:
                u = usd * weights[pw][li]
                for sd, name, keep in ((1, "long", lambda b: b <= 0), (-1, "short", lambda b: b >= 0)):
                    sel = r_side == name
                    if not sel.any():
                        continue
                    m = (side == sd) & (band >= -n) & (band <= n) & keep(band)
                    sums = np.bincount(band[m] + n, weights=u[m], minlength=2 * n + 1)
                    order = np.argsort(-sums, kind="stable")[:top]   # as densest_share: the top bands with notional
                    dense = np.zeros(2 * n + 1, bool)
                    dense[order[sums[order] > 0]] = True
                    b = rb[sel] + n
                    inside = (b >= 0) & (b <= 2 * n)
                    inside[inside] = dense[b[inside]]
                    got += float(r_usd[sel][inside].sum())
                    tot += float(r_usd[sel].sum())
            score = got / tot if tot else 0.0
            point = (float(pw), float(hold)) + (() if cons is None else (float(cons),))
            grid.append(point + (score,))
            if best is None or score > best[-1] + 1e-12:
                best = point + (score,)
    params = {"power": best[0], "hold_hours": best[1], **({"consume": best[2]} if method == "range" else {})}
    return {"params": params, "fit_share": best[-1], "mix": [list(x) for x in calibrated_mix(best[0])],
            "grid_points": len(grid), "grid": grid}


def _market_theta() -> dict[str, float]:
    from feeds.cascade.fit import market_theta

    return market_theta()


def validate_force_orders(path, *, top: int = 10, band_pct: float = 0.25, range_pct: float = 10.0,
                          min_hours: int = 6, theta: dict[str, float] | None = None,
                          split: int = FIT_SPLIT) -> dict[str, Any]:
    """Score the maps against a Binance forceOrder recording.

    * ``model`` / ``ladder`` (as before): pooled over every recorded hour with ``min_hours`` of
      recorded history, the share of the realised notional in the ``top`` densest bands.
    * ``out_of_sample``: the range map's ``power``, ``hold_hours`` and ``consume`` and the
      calibrated map's ``power`` and ``hold_hours`` are fitted (:func:`fit_force_orders`) on the
      recorded hours before index ``split`` (each with at least two recorded hours before it)
      and scored, with the ladder and the simulator-mix model, on the hours from ``split`` on
      (never seen by the fits). ``out_of_sample["reverse"]`` is a robustness check: fitted on the
      later hours, scored on the earlier ones."""
    bars, realised = force_order_bars(path)
    th = {**MARKET_THETA, **(theta if theta is not None else _market_theta())}
    hours = bars.index[min_hours:]
    out: dict[str, Any] = {}
    for method in ("model", "ladder"):
        out[method], total = _pooled(bars, realised, hours, method, top, band_pct, range_pct, th)
    out.update({"hours": int(len(hours)), "realised_usd": total, "top_bands": top, "band_pct": band_pct,
                "uniform": top * band_pct / range_pct, "events": int(len(realised))})
    fit_hours, test_hours = bars.index[2:split], bars.index[split:]
    f = fit_force_orders(bars, realised, fit_hours, top=top, band_pct=band_pct, range_pct=range_pct, theta=th)
    fr = fit_force_orders(bars, realised, fit_hours, top=top, band_pct=band_pct, range_pct=range_pct, theta=th,
                          method="range")
    for x in (f, fr):
        x.pop("grid")
    oos = {"fit_hours": [str(fit_hours[0]), str(fit_hours[-1]), int(len(fit_hours))],
           "test_hours": [str(test_hours[0]), str(test_hours[-1]), int(len(test_hours))], "fit": f, "fit_range": fr}
    for method in ("range", "calibrated", "model", "ladder"):
        c = {"calibrated": f["params"], "range": fr["params"]}.get(method)
        oos[method], oos["test_usd"] = _pooled(bars, realised, test_hours, method, top, band_pct, range_pct, th, c)
    oos["fit_ladder"], oos["fit_usd"] = _pooled(bars, realised, fit_hours, "ladder", top, band_pct, range_pct, th)
    # robustness check (not a replacement): the same fits on the later hours, scored on the earlier ones
    rev: dict[str, Any] = {}
    for method in ("range", "calibrated"):
        g = fit_force_orders(bars, realised, test_hours, top=top, band_pct=band_pct, range_pct=range_pct, theta=th,
                             method=method)
        rev[method] = {"params": g["params"], "fit_share": g["fit_share"],
                       "score": _pooled(bars, realised, fit_hours, method, top, band_pct, range_pct, th, g["params"])[0]}
    rev["ladder"] = oos["fit_ladder"]
    oos["reverse"] = rev
    out["out_of_sample"] = oos
    return out


SENSITIVITY_GRID = {"power": (1.1, 1.5, 2.0), "hold_hours": (2.0, 6.0, 24.0), "consume": (0.0, 0.5, 1.0)}


def sensitivity_force_orders(path, *, top: int = 10, band_pct: float = 0.25, range_pct: float = 10.0,
                             theta: dict[str, float] | None = None, split: int = FIT_SPLIT) -> dict[str, Any]:
    """POST-HOC checks of the range map on the later hours (after its pre-registered score):
    the share at every point of :data:`SENSITIVITY_GRID`, the range map with ``consume`` fixed at 1
    (only the entries over the hour's range fitted), and the figure per scored hour."""
    bars, realised = force_order_bars(path)
    th = {**MARKET_THETA, **(theta if theta is not None else _market_theta())}
    fit_hours, test_hours = bars.index[2:split], bars.index[split:]
    grid = []
    for pw, hold, cons in itertools.product(*SENSITIVITY_GRID.values()):
        c = {"power": pw, "hold_hours": hold, "consume": cons}
        grid.append((c, _pooled(bars, realised, test_hours, "range", top, band_pct, range_pct, th, c)[0]))
    ladder = _pooled(bars, realised, test_hours, "ladder", top, band_pct, range_pct, th)[0]
    f1 = fit_force_orders(bars, realised, fit_hours, top=top, band_pct=band_pct, range_pct=range_pct, theta=th,
                          method="range", consumes=(1.0,))
    only_entries = _pooled(bars, realised, test_hours, "range", top, band_pct, range_pct, th, f1["params"])[0]
    shipped = liqmap_fit("range")
    per_hour = []
    for h in test_hours:
        r = realised[(realised["time"] >= h) & (realised["time"] < h + pd.Timedelta(hours=1))]
        row = {"hour": str(h), "usd": float(r["usd"].sum())}
        for method, c in (("range", shipped), ("calibrated", None), ("ladder", None)):
            m = liquidation_map(bars, h, band_pct=band_pct, range_pct=range_pct, method=method, theta=th, calib=c)
            row[method] = densest_share(m, r, top)[0]
        per_hour.append(row)
    return {"grid": grid, "ladder": ladder, "entries_only": {"params": f1["params"], "fit_share": f1["fit_share"],
                                                              "score": only_entries}, "per_hour": per_hour}


def ship(result: dict[str, Any], path) -> None:
    """Write the out-of-sample fit of :func:`validate_force_orders` into ``fitted.json`` key ``liqmap``."""
    import json
    from pathlib import Path

    p = Path(path)
    data = json.loads(p.read_text()) if p.is_file() else {}
    oos = result["out_of_sample"]
    data["liqmap"] = {"params": oos["fit"]["params"], "fit_share": oos["fit"]["fit_share"], "fit_hours": oos["fit_hours"],
                      "test_hours": oos["test_hours"], "test_share": {m: oos[m] for m in ("range", "calibrated", "model", "ladder")},
                      "grid": {"power": [FIT_POWERS[0], FIT_POWERS[-1], len(FIT_POWERS)], "hold_hours": list(FIT_HOLDS),
                               "leverage": list(LEVERAGE_GRID)},
                      # the default family: entries over each hour's open/high/low/close, partly consumed levels
                      "range": {"params": oos["fit_range"]["params"], "fit_share": oos["fit_range"]["fit_share"],
                                "test_share": oos["range"], "grid": {"consume": list(FIT_CONSUMES)},
                                "reverse_split": oos["reverse"]},
                      "source": "binance_usdtm_btcusdt_forceorders_2024-12-04_2024-12-06.csv (shared data)"}
    p.write_text(json.dumps(data, indent=1, default=float))
