"""The calibration events of the cascade simulator: inputs for ``from_market`` and real targets.

Five events (``deleverage cascade calibrate --loo``):

=========  ====================================================  ===========================================
event      market input (bars before ``at``)                      targets
=========  ====================================================  ===========================================
312        real BitMEX XBTUSD 1m + BitMEX funding (shared data)   price path of the real bars; BitMEX long
                                                                  liquidations ~1.2 bn USD (both legs;
                                                                  LedgerPrime > 700 M in leg 1 + Skew ~450 M
                                                                  early 03-13, secondary)
519        real BitMEX XBTUSD 1m + Binance BTCUSDT funding        price path of the real bars (no BitMEX
           (market-wide sentiment; BitMEX 2021 funding absent)    liquidation or OI figure exists)
luna       RECONSTRUCTED BTCUSDT bars (published waypoints)      published low; Coinalyze daily liquidations
           + Coinalyze daily OI, all markets (real)              by side and OI change, all markets (real)
ftx        as luna                                                as luna
2024-08-05 as luna                                                as luna
=========  ====================================================  ===========================================

The daily events have no real traded volume (the reconstruction's volume is an assumed shape),
so their depth is the dated published book depth (``book_depth_usd``, Kaiko figures in
mechanics.md 3.4) times the calibrated ``book_k``; the minute events use the volume/volatility
proxy. Coinalyze liquidation totals come from throttled public feeds and undercount (events.md):
they are targets as published, not corrected (``calibrate --free liq_capture`` fits the share of
the simulated notional they report instead, an option: docs/cascade.md).
The CoinGlass hourly file (2025-11 .. 2026-05) is **not** an event here: it is kept for the
out-of-sample check (:func:`feeds.cascade.fit.coinglass_check`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from risk.errors import DeleverageError

COINALYZE_OI = "coinalyze_btc_perp_open_interest_daily_usd_2022-01-02_2024-09-20.csv"
COINALYZE_LIQ = "coinalyze_btc_perp_liquidations_daily_usd_2022-01-02_2024-09-20.csv"
BITMEX_312 = "bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv"
BITMEX_519 = "bitmex_xbtusd_1m_2021-05-16_2021-05-22.csv"
BITMEX_FUNDING = "bitmex_xbtusd_funding_2020-02-15_2020-04-15.csv"
BINANCE_FUNDING = "binance_usdtm_funding_btc_eth_2020-03_2021-04_2021-05.csv"
COINGLASS = "coinglass_btc_liquidations_1h_binance_bybit_okx_2025-11-23_2026-05-22.csv"


@dataclass(frozen=True)
class Event:
    name: str
    at: str
    minutes: int
    dt_s: float
    kind: str                              # "minute" (real bars) or "daily" (reconstruction + Coinalyze)
    halts: tuple[tuple[float, float], ...] = ()
    book_depth_usd: float | None = None    # published book depth per 1 % (daily events)
    book_depth_source: str = ""
    liq_long_usd: float | None = None
    liq_short_usd: float | None = None
    liq_source: str = ""
    days: tuple[str, str] | None = None    # Coinalyze days: OI from the close of days[0] - 1 to days[1]
    notes: tuple[str, ...] = field(default_factory=tuple)


EVENTS: dict[str, Event] = {
    "312": Event("312", "2020-03-12T10:00Z", 18 * 60, 10.0, "minute",
                 halts=((16 * 60 + 16.0, 16 * 60 + 40.0),),  # BitMEX's own tweet: requests delayed 02:16-02:40 UTC
                 liq_long_usd=1.2e9, liq_source="BitMEX longs, both legs: LedgerPrime > 700 M in leg 1; Skew ~450 M early 03-13 (secondary)",
                 notes=("halt 02:16-02:40 UTC 03-13 is a published venue fact (BitMEX), not a fitted value",)),
    "519": Event("519", "2021-05-19T12:00Z", 240, 5.0, "minute",
                 notes=("funding: Binance BTCUSDT (BitMEX 2021 funding is not in shared data)",)),
    "luna": Event("luna", "2022-05-09T12:00Z", 84 * 60, 60.0, "daily", book_depth_usd=12.5e3 * 34_500 / 2,
                  book_depth_source="Kaiko: BTC 2 % depth on major exchanges ~11-14k BTC (Oct 2022), taken as 12.5k BTC / 2 per 1 % at 34.5k",
                  days=("2022-05-09", "2022-05-12")),
    "ftx": Event("ftx", "2022-11-08T12:00Z", 36 * 60, 60.0, "daily", book_depth_usd=12.5e3 * 20_600 / 2,
                 book_depth_source="Kaiko: BTC 2 % depth ~11-14k BTC before FTX (Oct 2022), 12.5k BTC / 2 per 1 % at 20.6k",
                 days=("2022-11-08", "2022-11-09")),
    "2024-08-05": Event("2024-08-05", "2024-08-05T02:00Z", 22 * 60, 60.0, "daily", book_depth_usd=290e6 + 191e6,
                        book_depth_source="Kaiko US venues 1 % depth ~290 M (May 2025) + Binance BTCUSDT perp bids within 1 % ~191 M (2025-05-19)",
                        days=("2024-08-05", "2024-08-05")),
}


def _shared(data_path: Any = None) -> Path:
    """``data_path`` when given, else the first shared-data folder that exists
    (``$DELEVERAGE_SHARED_DATA``, then ``../shared/data``; see feeds.scenarios.real)."""
    from feeds.scenarios.real import candidate_dirs

    dirs = candidate_dirs(data_path)
    for d in dirs:
        if d.is_dir():
            return d
    raise DeleverageError(f"cannot find the shared data folder (looked in {', '.join(map(str, dirs))}); pass --data-path")


def _need(folder: Path, name: str) -> Path:
    p = folder / name
    if not p.is_file():
        raise DeleverageError(f"{p}: missing (needed by the cascade calibration; see shared/data/PROVENANCE.md)")
    return p


@lru_cache(maxsize=4)
def coinalyze(folder: str) -> tuple[pd.Series, pd.DataFrame]:
    """All-market daily sums: OI close (USD) and liquidations by side (USD), over the markets
    reported on every day of the file's event windows (a market missing on one day is left out
    of that window's sums by :func:`coinalyze_window`)."""
    oi = pd.read_csv(_need(Path(folder), COINALYZE_OI))
    lq = pd.read_csv(_need(Path(folder), COINALYZE_LIQ))
    oi["market"] = oi["exchange"] + ":" + oi["symbol_on_exchange"]
    lq["market"] = lq["exchange"] + ":" + lq["symbol_on_exchange"]
    return oi, lq


def coinalyze_window(days: tuple[str, str], folder: Path) -> dict[str, float]:
    """OI at the close of the day before ``days[0]`` and at the close of ``days[1]``, and the
    liquidations by side over ``days`` (all markets present on every one of those days)."""
    oi, lq = coinalyze(str(folder))
    d0 = (pd.Timestamp(days[0]) - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    span = pd.date_range(d0, days[1], freq="D").strftime("%Y-%m-%d")
    w = oi[oi["date_utc"].isin(span)]
    markets = [m for m, g in w.groupby("market") if g["date_utc"].nunique() == len(span)]
    w = w[w["market"].isin(markets)]
    by_day = w.groupby("date_utc")["oi_close_usd"].sum()
    l_span = pd.date_range(days[0], days[1], freq="D").strftime("%Y-%m-%d")
    lw = lq[lq["date_utc"].isin(l_span)]
    return {"oi_before_usd": float(by_day.loc[d0]), "oi_after_usd": float(by_day.loc[days[1]]),
            "oi_change": float(by_day.loc[days[1]] / by_day.loc[d0] - 1.0), "markets": len(markets),
            "liq_long_usd": float(lw["liq_long_usd"].sum()), "liq_short_usd": float(lw["liq_short_usd"].sum()),
            "oi_daily": by_day}


def _funding_bitmex(folder: Path) -> pd.Series:
    f = pd.read_csv(_need(folder, BITMEX_FUNDING))
    return pd.Series(f["funding_rate"].to_numpy(), index=pd.to_datetime(f["funding_time_utc"], utc=True))


def _funding_binance(folder: Path) -> pd.Series:
    f = pd.read_csv(_need(folder, BINANCE_FUNDING))
    f = f[f["symbol"] == "BTCUSDT"]
    t = pd.to_datetime(f["calc_time_ms"], unit="ms", utc=True).dt.floor("min")
    return pd.Series(f["funding_rate"].to_numpy(), index=t)


def _place(frame: pd.DataFrame, col: str, series: pd.Series) -> pd.DataFrame:
    """Sparse values on the bars whose open is at or just after each time (never filled here)."""
    out = frame.copy()
    vals = np.full(len(out), np.nan)
    pos = out.index.searchsorted(series.index)
    for p, v in zip(pos, series.to_numpy()):
        if p < len(out):
            vals[p] = v
    out[col] = vals
    return out


def market_frame(ev: Event, data_path: Any = None) -> pd.DataFrame:
    """The bars ``from_market`` reads for ``ev`` (window and lookback) and the real path after ``at``."""
    folder = _shared(data_path)
    from feeds.detect import load

    if ev.name == "312":
        bars = load(_need(folder, BITMEX_312))
        return _place(bars, "funding_rate", _funding_bitmex(folder))
    if ev.name == "519":
        bars = load(_need(folder, BITMEX_519))
        return _place(bars, "funding_rate", _funding_binance(folder))
    from feeds.scenarios import get_scenario

    bars = get_scenario(ev.name).bars()
    win = coinalyze_window(ev.days, folder)
    oi = win["oi_daily"]
    # daily close of OI, known at the start of the next UTC day
    oi_t = pd.Series(oi.to_numpy(), index=pd.to_datetime(oi.index, utc=True) + pd.Timedelta(days=1))
    oi_t = pd.concat([pd.Series([oi.iloc[0]], index=[bars.index[0]]), oi_t[oi_t.index > bars.index[0]]])
    out = _place(bars, "open_interest_notional", oi_t)
    out.attrs = dict(bars.attrs)
    out.attrs["notes"] = list(bars.attrs.get("notes", [])) + ["open_interest_notional: Coinalyze all-market daily close (real)"]
    return out


def targets(ev: Event, data_path: Any = None, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """Real figures to meet: peak-to-trough (from the start price), time to trough (min after
    ``at``), liquidated notional by side (USD), OI change (all markets, USD)."""
    folder = _shared(data_path)
    frame = market_frame(ev, data_path) if frame is None else frame
    t0 = pd.Timestamp(ev.at)
    win = frame.loc[(frame.index >= t0) & (frame.index < t0 + pd.Timedelta(minutes=ev.minutes))]
    if len(win) != ev.minutes:
        raise DeleverageError(f"event {ev.name}: the bars cover {len(win)} of its {ev.minutes} minutes")
    before = frame.loc[frame.index < t0]
    price0 = float(before["close"].iloc[-1])
    low = win["low"].to_numpy()
    k = int(np.argmin(low))
    peak = max(price0, float(win["high"].to_numpy()[: k + 1].max()))
    out: dict[str, Any] = {"peak_to_trough": float(low[k] / peak - 1.0), "time_to_trough_min": k, "price0": price0,
                           "price_basis": "real bars" if ev.kind == "minute" else
                           "published low; start price and path between waypoints from the RECONSTRUCTION",
                           "liq_long_usd": ev.liq_long_usd, "liq_short_usd": ev.liq_short_usd, "oi_change": None,
                           "liq_source": ev.liq_source, "oi_before_usd": None,
                           # the liquidation figures come from throttled public feeds (Coinalyze), which undercount
                           "liq_throttled": bool(ev.days)}
    if ev.days:
        c = coinalyze_window(ev.days, folder)
        out.update(liq_long_usd=c["liq_long_usd"], liq_short_usd=c["liq_short_usd"], oi_change=c["oi_change"],
                   oi_before_usd=c["oi_before_usd"],
                   liq_source=f"Coinalyze daily, {c['markets']} BTC perp markets, {ev.days[0]}..{ev.days[1]}")
    return out
