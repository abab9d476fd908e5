"""Initial conditions of a SIMULATED cascade from market data (``from_market``).

Given a canonical bar frame (:mod:`feeds.schema`) and a moment ``at``, only the bars **before**
``at`` are used (nothing from the future leaks in):

* **Leveraged inventory from the open-interest history** (:func:`inventory_from_oi`). The bars
  are taken hourly. Every hour: (1) positions whose liquidation price the hour traded through
  are removed (realised liquidations: longs when the low reaches ``entry x r_long(L)``, shorts
  when the high reaches ``entry x r_short(L)``, ``r`` from the risk core's venue formulas);
  (2) an OI increase dOI adds ``2 s dOI`` of longs and ``2 (1 - s) dOI`` of shorts entered at the
  hour's typical price (H+L+C)/3, over the leverage mix; (3) a decrease removes what the
  realised liquidations have not already taken, pro rata from every live position. The OI level
  at the first hour (positions entered before the history) is spread lognormally around the
  first price (``old_spread``). With ``s = 0.5`` both sides hold the OI; the side totals are
  then multiplied by ``lev_share`` (the share of OI that is leveraged speculation, calibrated).
* **No open-interest column** (e.g. BitMEX minute buckets): a volume-profile proxy. Every hour
  adds ``oi_turnover x quote volume`` at the typical price, and live positions close at the
  rate ``1 / hold_hours`` (``hold_hours`` = 48); ``oi_turnover`` is calibrated.
* **Long/short split** ``s``: ``long_short_ratio`` column r when present (s = r / (1 + r)); else
  the funding rate f per 8 h (as-of, hourly venues x 8): s = 0.5 + 0.25 tanh((f - 0.01 %) / 0.03 %)
  (crowded longs pay); else the premium of last over index p: s = 0.5 + 0.25 tanh(p / 0.1 %);
  else 0.5.
* **Engine**: backlog-proportional with the venue's execution timescale
  (``ENGINE_TAU_S[venue] / engine_mult``, ``engine_mult`` calibrated); mark smoothing: the venue's.
* **Depth** (USD that moves the price 1 %): ``depth_k x V / sigma``, V the mean daily quote
  volume and sigma the daily volatility in percent (hourly log-return std x sqrt(24) x 100)
  over the lookback: the Amihud / Kyle proxy (a day's volume moves the price about one daily
  sigma), with ``depth_k`` calibrated across events (:mod:`feeds.cascade.calib`).
* **Exogenous sell flow in units of the market's leverage**: the model's flow terms
  (``flow_rate``, ``flow_excite``, ``flow_noise``) are in units of depth; ``from_market``
  multiplies them by ``(L / D0)^flow_oi_exp`` (L the leveraged long OI, D0 the depth), so the
  sell flow is ``theta x D0^(1-a) x L^a`` USD per minute: with ``a`` > 0 a market holding more
  leveraged longs per unit of depth also sells harder when the news hits (holders de-risking,
  stops), ``a`` calibrated. Scaling OI and depth together still scales every flow by the same
  factor (the path stays scale-free).
* **De-risking**: a share ``derisk_close`` (calibrated) of the directed part of that flow (burst
  and momentum sellers, not the noise) closes existing positions instead of opening new ones;
  ``lev_share`` of the closed notional leaves the leveraged inventory (the closers are a
  cross-section of the open interest), the rest is unleveraged OI. Open interest can then fall,
  as it does in every waterfall, by more than what is liquidated. **Momentum shorts**: a share
  ``momentum_short_share`` (calibrated) of the momentum sellers' flow that does not close longs
  opens new leveraged shorts at the current price, which a rebound squeezes. ``fair_tau_min`` (the value
  buyers' fair-value EMA, 120 min) is a structural parameter that is not fitted.
* **Background volatility** of the simulated price: the hourly log-return std before ``at``
  per sqrt(minute).

The structural parameters (``theta``) default to the shipped cross-event fit
(``feeds/cascade/fitted.json``). Nothing is hand-set per event; every input can be overridden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from feeds.cascade.model import CascadeParams, _lev_ratios
from risk.errors import DeleverageError

HOLD_HOURS = 48.0
FUND_FRACTION = 0.05  # insurance fund as a share of the leveraged OI (Binance ~1 bn vs ~20 bn OI, 2021)

# structural parameters of from_market, and their defaults before any fit
MARKET_THETA: dict[str, float] = {
    "depth_k": 0.03, "oi_turnover": 0.15, "lev_share": 0.5, "old_spread": 0.06,
    "flow_rate": 0.3, "flow_tau_min": 60.0, "flow_excite": 0.02, "buyer_strength": 0.05,
    "rebuild_share": 0.2, "engine_mult": 1.0, "depth_kappa": 5.0, "depth_tau_s": 1800.0, "book_k": 1.0,
    "flow_noise": 0.1, "flow_oi_exp": 0.0, "derisk_close": 0.0, "fair_tau_min": 120.0, "momentum_short_share": 0.0,
}


@dataclass
class MarketInventory:
    """Live leveraged lots (before ``lev_share``): entry price, leverage, USD at entry, side."""

    side: np.ndarray
    price: np.ndarray
    leverage: np.ndarray
    usd: np.ndarray
    realised_usd: float            # removed by realised liquidations over the history
    long_share: float              # s at the last hour

    def totals(self) -> tuple[float, float]:
        return float(self.usd[self.side > 0].sum()), float(self.usd[self.side < 0].sum())


def _utc(ts: Any, what: str = "--at") -> pd.Timestamp:
    try:
        t = pd.Timestamp(ts)
    except (ValueError, TypeError):
        raise DeleverageError(f"{what} {ts!r}: expected an ISO time such as 2021-05-19T12:00Z") from None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def hourly(frame: pd.DataFrame) -> pd.DataFrame:
    """Hourly close/high/low, quote volume, OI notional (as-of), funding (as-of), premium, L/S ratio."""
    out = pd.DataFrame({"close": frame["close"].resample("1h").last(), "high": frame["high"].resample("1h").max(),
                        "low": frame["low"].resample("1h").min()})
    if "quote_volume" in frame:
        out["quote_volume"] = frame["quote_volume"].resample("1h").sum()
    elif "volume" in frame:
        out["quote_volume"] = (frame["volume"] * frame["close"]).resample("1h").sum()
    if "open_interest_notional" in frame and frame["open_interest_notional"].notna().any():
        out["oi_usd"] = frame["open_interest_notional"].resample("1h").last()
    elif "open_interest" in frame and frame["open_interest"].notna().any():
        out["oi_usd"] = (frame["open_interest"] * frame["close"]).resample("1h").last()
    for col in ("funding_rate", "premium_close", "long_short_ratio"):
        if col in frame and frame[col].notna().any():
            out[col] = frame[col].resample("1h").last()
    out = out.dropna(subset=["close"])
    for col in ("oi_usd", "funding_rate", "premium_close", "long_short_ratio"):
        if col in out:
            out[col] = out[col].ffill()
    return out


def long_share(h: pd.DataFrame, venue_hourly_funding: bool = False) -> np.ndarray:
    """s per hour (see the module docstring)."""
    if "long_short_ratio" in h and h["long_short_ratio"].notna().any():
        r = h["long_short_ratio"].fillna(1.0).to_numpy()
        return r / (1.0 + r)
    if "funding_rate" in h and h["funding_rate"].notna().any():
        f = h["funding_rate"].fillna(0.0001).to_numpy() * (8.0 if venue_hourly_funding else 1.0)
        return 0.5 + 0.25 * np.tanh((f - 0.0001) / 0.0003)
    if "premium_close" in h and h["premium_close"].notna().any():
        return 0.5 + 0.25 * np.tanh(h["premium_close"].fillna(0.0).to_numpy() / 0.001)
    return np.full(len(h), 0.5)


def inventory_from_oi(price: Sequence[float], low: Sequence[float], high: Sequence[float],
                      oi_usd: Sequence[float] | None, share: Sequence[float],
                      leverage_mix: Sequence[tuple[float, float]], ratios: dict[int, list[tuple[float, float, float]]],
                      quote_volume: Sequence[float] | None = None, oi_turnover: float = 0.0,
                      hold_hours: float = HOLD_HOURS, old_spread: float = 0.0,
                      entries: Sequence[Sequence[float]] | None = None, consume: float = 1.0) -> MarketInventory:
    """Walk an hourly history (typical ``price``, ``low``, ``high``) and return the live lots.

    ``ratios[side]`` = [(weight, liquidation/entry, bankruptcy/entry)] per leverage of
    ``leverage_mix`` (:func:`feeds.cascade.model.lev_ratios`). With ``oi_usd`` the OI path is
    followed exactly (hand-checkable); without it the volume-profile proxy is used.

    ``entries`` (optional, one row of k prices per hour, e.g. open/high/low/close): an hour's new
    positions are split equally over these entry prices instead of all at ``price``.
    ``consume`` (default 1): the fraction of a lot's notional liquidated when a later hour's
    low (longs) / high (shorts) crosses its level; the rest stays live (the liquidation map's
    partly consumed levels)."""
    price = np.asarray(price, float)
    low, high = np.asarray(low, float), np.asarray(high, float)
    share = np.asarray(share, float)
    levs = np.array([lev for lev, _ in leverage_mix], float)
    n_lev = len(levs)
    w = {s: np.array([r[0] for r in ratios[s]]) for s in (1, -1)}
    rl = {s: np.array([r[1] for r in ratios[s]]) for s in (1, -1)}
    lots_p: list[float] = []
    lots_s: list[int] = []
    usd: list[np.ndarray] = []   # per lot: USD per leverage

    def add(side: int, px: float, amount: float) -> None:
        if amount > 0:
            lots_p.append(px)
            lots_s.append(side)
            usd.append(amount * w[side])

    def add_hour(side: int, i: int, amount: float) -> None:
        if entries is None:
            add(side, price[i], amount)
        else:
            row = entries[i]
            for px in row:
                add(side, float(px), amount / len(row))

    realised = 0.0
    prev_oi = None
    for i in range(len(price)):
        # 1. realised liquidations this hour
        liq = 0.0
        if usd:
            P = np.array(lots_p)
            S = np.array(lots_s)
            U = np.vstack(usd)
            lp = np.where(S[:, None] > 0, P[:, None] * rl[1][None, :], P[:, None] * rl[-1][None, :])
            hit = np.where(S[:, None] > 0, low[i] <= lp, high[i] >= lp) & ~np.isnan(lp)
            liq = float(U[hit].sum()) * consume
            if liq > 0:
                U[hit] = U[hit] * (1.0 - consume)
                usd = list(U)
            realised += liq
        if oi_usd is not None:
            oi = float(oi_usd[i])
            if prev_oi is None:
                # positions opened before the history: spread around the first price
                if old_spread > 0:
                    zs = np.array([-1.5, -0.75, 0.0, 0.75, 1.5])
                    ws = np.exp(-0.5 * zs ** 2)
                    ws /= ws.sum()
                    for z, wz in zip(zs, ws):
                        add(1, price[i] * math.exp(old_spread * z), 2 * share[i] * oi * wz)
                        add(-1, price[i] * math.exp(old_spread * z), 2 * (1 - share[i]) * oi * wz)
                else:
                    add(1, price[i], 2 * share[i] * oi)
                    add(-1, price[i], 2 * (1 - share[i]) * oi)
            else:
                d = oi - prev_oi
                if d > 0:
                    add_hour(1, i, 2 * share[i] * d)
                    add_hour(-1, i, 2 * (1 - share[i]) * d)
                else:
                    rest = -2 * d - liq           # both sides hold the OI: 2 x |dOI| of positions closed
                    total = float(sum(u.sum() for u in usd))
                    if rest > 0 and total > 0:
                        k = max(0.0, 1.0 - rest / total)
                        usd = [u * k for u in usd]
            prev_oi = oi
        else:
            if usd and hold_hours > 0:
                k = math.exp(-1.0 / hold_hours)
                usd = [u * k for u in usd]
            vol = float(quote_volume[i]) if quote_volume is not None else 0.0
            add_hour(1, i, 2 * share[i] * oi_turnover * vol)
            add_hour(-1, i, 2 * (1 - share[i]) * oi_turnover * vol)
    if not usd:
        return MarketInventory(np.zeros(0, int), np.zeros(0), np.zeros(0), np.zeros(0), realised,
                               float(share[-1]) if len(share) else 0.5)
    U = np.vstack(usd)
    S = np.repeat(np.array(lots_s), n_lev)
    P = np.repeat(np.array(lots_p), n_lev)
    L = np.tile(levs, len(lots_p))
    u = U.ravel()
    keep = u > 0
    return MarketInventory(S[keep], P[keep], L[keep], u[keep], realised, float(share[-1]))


def depth_proxy(h: pd.DataFrame, depth_k: float) -> tuple[float, float, float]:
    """(depth USD per 1 %, mean daily quote volume, daily sigma in %) from hourly bars."""
    if "quote_volume" not in h or not (h["quote_volume"] > 0).any():
        raise DeleverageError("the bars before --at have no traded volume: cannot estimate the book depth; "
                              "pass depth_usd= (--set depth_usd=...)")
    r = np.diff(np.log(h["close"].to_numpy()))
    if len(r) < 6:
        raise DeleverageError("need at least 6 hours of bars before --at to estimate volatility and depth")
    sigma = float(np.std(r, ddof=1) * math.sqrt(24.0) * 100.0)
    vday = float(h["quote_volume"].sum() / (len(h) / 24.0))
    return _depth(depth_k, vday, sigma), vday, sigma


def _depth(depth_k: float, vday: float, sigma: float) -> float:
    return depth_k * vday / max(sigma, 1e-6)


@dataclass(frozen=True)
class MarketState:
    """What ``from_market`` reads from the bars before ``at``, independent of ``theta``: the
    leveraged inventory at unit scale (volume proxy: ``oi_turnover`` = 1, linear in it), the
    split, the volume and volatility behind the depth proxy, the background noise. Building it is
    the expensive part; :func:`params_from_state` applies a ``theta`` to it (the calibration
    builds each event's state once and evaluates thousands of ``theta``)."""

    base: CascadeParams
    has_oi: bool
    inv: MarketInventory
    oi_last_usd: float
    split_source: str
    hours_used: int
    noise: float
    vday: float                    # mean daily quote volume (nan without volume)
    sigma: float                   # daily volatility in % (nan with too few hours)
    depth_error: str               # why the depth proxy cannot be built ("" when it can)
    old_spread: float


def check_bars(frame: pd.DataFrame, what: str) -> None:
    """One clear error unless ``frame`` is price bars (a UTC time index and close/high/low): a
    liquidation-event file (``attrs["frame_kind"] == "events"``) is named as such."""
    src = frame.attrs.get("source_label") or frame.attrs.get("source")
    where = f"{src}: " if src else ""
    if frame.attrs.get("frame_kind") == "events":
        raise DeleverageError(f"{where}holds liquidation events, not price bars; {what} needs bars (OHLC, canonical bar "
                              "schema, feeds/schema.py) before --at")
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.index.tz is None:
        raise DeleverageError(f"{where}{what}: the frame needs a UTC DatetimeIndex (canonical bar schema, feeds/schema.py)")
    for col in ("close", "high", "low"):
        if col not in frame:
            raise DeleverageError(f"{where}{what}: the frame lacks column {col!r} (canonical bar schema, feeds/schema.py)")


def market_state(frame: pd.DataFrame, at: Any, *, minutes: int = 240, venue: str | None = None,
                 symbol: str | None = None, lookback_hours: float = 72.0, dt_s: float = 5.0,
                 old_spread: float = MARKET_THETA["old_spread"]) -> MarketState:
    """The theta-free part of :func:`from_market` (see :class:`MarketState`)."""
    t0 = _utc(at)
    check_bars(frame, "the cascade's initial conditions (from_market)")
    hist = frame.loc[(frame.index < t0) & (frame.index >= t0 - pd.Timedelta(hours=lookback_hours))]
    if len(hist) == 0:
        first, last = frame.index[0], frame.index[-1]
        raise DeleverageError(f"--at {t0.isoformat()}: no bars in the {lookback_hours:g} h before it "
                              f"(the data covers {first.isoformat()} .. {last.isoformat()})")
    venue = venue or frame.attrs.get("venue") or "binance_usdm"
    if venue == "binance_usdtm":
        venue = "binance_usdm"
    price0 = float(hist["close"].iloc[-1])
    h = hourly(hist)
    if len(h) < 6:
        raise DeleverageError(f"--at {t0.isoformat()}: only {len(h)} hour{'s' if len(h) != 1 else ''} of bars before it; need at least 6")
    base = CascadeParams(start=t0.isoformat(), minutes=int(minutes), price0=price0, venue=venue, symbol=symbol, dt_s=dt_s)
    from risk.venues import venue_rules

    hourly_funding = venue_rules(venue).funding_hours_utc == tuple(range(24))
    s = long_share(h, hourly_funding)
    ratios = {side: _lev_ratios(venue, symbol, base.start_ts.timestamp(), price0, base.position_usd, base.leverage_mix, side)
              for side in (1, -1)}
    typical = ((h["high"] + h["low"] + h["close"]) / 3.0).to_numpy()
    has_oi = "oi_usd" in h and h["oi_usd"].notna().all()
    inv = inventory_from_oi(typical, h["low"].to_numpy(), h["high"].to_numpy(),
                            h["oi_usd"].to_numpy() if has_oi else None, s, base.leverage_mix, ratios,
                            quote_volume=h["quote_volume"].to_numpy() if "quote_volume" in h else None,
                            oi_turnover=1.0, old_spread=old_spread)
    r_h = np.diff(np.log(h["close"].to_numpy()))
    noise = float(np.std(r_h, ddof=1) / math.sqrt(60.0)) if len(r_h) > 2 else 0.001  # pre-event volatility per sqrt(min)
    try:
        _, vday, sigma = depth_proxy(h, 1.0)
        depth_error = ""
    except DeleverageError as e:
        vday, sigma, depth_error = float("nan"), float("nan"), str(e)
    split = ("long_short_ratio" if "long_short_ratio" in h else "funding_rate" if "funding_rate" in h else
             "premium_close" if "premium_close" in h else "none (0.5)")
    return MarketState(base, bool(has_oi), inv, float(h["oi_usd"].iloc[-1]) if has_oi else float("nan"), split,
                       len(h), noise, vday, sigma, depth_error, float(old_spread))


def from_market(frame: pd.DataFrame, at: Any, *, minutes: int = 240, venue: str | None = None,
                symbol: str | None = None, lookback_hours: float = 72.0, theta: dict[str, float] | None = None,
                depth_usd: float | None = None, long_oi_usd: float | None = None, short_oi_usd: float | None = None,
                halts: Sequence[tuple[float, float]] = (), dt_s: float = 5.0, details: bool = False,
                **overrides: Any):
    """CascadeParams for a SIMULATED cascade starting at ``at`` from the bars before it.

    ``theta``: structural parameters (default: the shipped cross-event fit). ``depth_usd`` and
    the OI totals override the proxies; other keyword arguments override CascadeParams fields.
    With ``details=True`` returns ``(params, info)`` where ``info`` documents every input."""
    th = _theta(theta)
    state = market_state(frame, at, minutes=minutes, venue=venue, symbol=symbol, lookback_hours=lookback_hours,
                         dt_s=dt_s, old_spread=th["old_spread"])
    return params_from_state(state, th, depth_usd=depth_usd, long_oi_usd=long_oi_usd, short_oi_usd=short_oi_usd,
                             halts=halts, details=details, **overrides)


def _theta(theta: dict[str, float] | None) -> dict[str, float]:
    if theta is None:
        from feeds.cascade.fit import market_theta

        theta = market_theta()
    return {**MARKET_THETA, **theta}


def params_from_state(state: MarketState, theta: dict[str, float] | None = None, *, depth_usd: float | None = None,
                      long_oi_usd: float | None = None, short_oi_usd: float | None = None,
                      halts: Sequence[tuple[float, float]] = (), details: bool = False, **overrides: Any):
    """CascadeParams from a :class:`MarketState` under ``theta`` (see :func:`from_market`)."""
    th = _theta(theta)
    if th["old_spread"] != state.old_spread:
        raise DeleverageError(f"theta old_spread {th['old_spread']:g} differs from the state's {state.old_spread:g}: "
                              "build the state with it (market_state(..., old_spread=...))")
    inv = state.inv
    scale = 1.0 if state.has_oi else th["oi_turnover"]     # the volume proxy is linear in the turnover
    lg, sh = inv.totals()
    lg, sh = lg * scale, sh * scale
    if not state.has_oi and lg + sh <= 0:
        raise DeleverageError("the bars before --at have neither open interest nor traded volume: cannot build the "
                              "leveraged inventory; pass long_oi_usd= and short_oi_usd=")
    k = th["lev_share"]
    L = float(long_oi_usd) if long_oi_usd is not None else lg * k
    S = float(short_oi_usd) if short_oi_usd is not None else sh * k
    entries = tuple((int(sd), float(pr), float(u) * scale, float(lv)) for sd, pr, u, lv in zip(inv.side, inv.price, inv.usd, inv.leverage))
    if depth_usd is None:
        if state.depth_error:
            raise DeleverageError(state.depth_error)
        D, vday, sigma = _depth(th["depth_k"], state.vday, state.sigma), state.vday, state.sigma
    else:
        D, vday, sigma = float(depth_usd), float("nan"), float("nan")
    from feeds.cascade.model import ENGINE_TAU_S

    base, venue = state.base, state.base.venue
    # the exogenous sell flow's unit: D0 x (leveraged long OI / D0)^flow_oi_exp (0: depth units, as
    # the model's; 1: a share of the leveraged longs per minute, whoever holds them de-risks)
    unit = (L / D) ** th["flow_oi_exp"] if L > 0 else 1.0
    params = base.with_(
        long_oi_usd=L, short_oi_usd=S, entries=entries, depth_usd=D, insurance_fund_usd=FUND_FRACTION * (L + S),
        engine_tau_s=ENGINE_TAU_S.get(venue, 60.0) / th["engine_mult"], mark_window_s=None,
        buyer_strength=th["buyer_strength"], depth_kappa=th["depth_kappa"], depth_tau_s=th["depth_tau_s"],
        flow_rate=th["flow_rate"] * unit, flow_tau_min=th["flow_tau_min"], flow_excite=th["flow_excite"] * unit,
        rebuild_share=th["rebuild_share"], flow_noise=th["flow_noise"] * unit,
        derisk_close=th["derisk_close"], momentum_short_share=th["momentum_short_share"], derisk_lev_share=min(1.0, th["lev_share"]), fair_tau_s=60.0 * th["fair_tau_min"], noise_per_sqrt_min=state.noise, shocks=(),
        halts=tuple(tuple(map(float, x)) for x in halts),
    )
    if overrides:
        params = CascadeParams.from_dict({**params.to_dict(), **overrides})
    if not details:
        return params
    info = {"at": base.start_ts.isoformat(), "price0": base.price0, "venue": venue, "hours_used": state.hours_used,
            "oi_source": "open interest history" if state.has_oi else f"volume-profile proxy (turnover {th['oi_turnover']:.3g}, hold {HOLD_HOURS:g} h)",
            "oi_last_usd": state.oi_last_usd,
            "long_share": inv.long_share, "split_source": state.split_source,
            "leveraged_long_usd": L, "leveraged_short_usd": S, "realised_liquidations_usd": inv.realised_usd * scale * k,
            "depth_usd": D, "depth_source": "override" if depth_usd is not None else f"proxy depth_k {th['depth_k']:.3g} x V/sigma",
            "daily_quote_volume_usd": vday, "daily_sigma_pct": sigma, "theta": th}
    return params, info
