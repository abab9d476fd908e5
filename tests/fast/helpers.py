"""Bars, targets and the comparison used by the fast-engine parity tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.fast import ExposureStrategy, run_fast
from engine.runner import RunConfig, run_backtest
from reports.results import RunResult
from risk.venues import venue_rules

REL = 1e-9

EVENT_KEYS = {
    "fills": ("time", "side", "kind"),
    "funding": ("time",),
    "liquidations": ("time", "side"),
    "fees": ("time", "kind"),
    "adl": ("time", "side"),
}


def random_bars(seed: int, n: int = 3000, *, start: str = "2021-05-18 00:00", price: float = 40_000.0,
                mark: bool = True, funding: str | None = "column", venue: str = "binance_usdm",
                vol: float = 0.0025, wick_rate: float = 0.01) -> pd.DataFrame:
    """Seeded 1-minute bars with wicks on the last price and (optionally) a mark series that differs
    from it (its own noise and its own, rarer wicks), and a ``funding_rate`` column holding a random
    rate at the venue's funding hours (NaN elsewhere)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=n, freq="1min", tz="UTC", name="open_time")
    close = price * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.r_[price, close[:-1]]
    body_hi, body_lo = np.maximum(open_, close), np.minimum(open_, close)
    high = body_hi * (1 + np.abs(rng.normal(0, vol / 2, n)))
    low = body_lo * (1 - np.abs(rng.normal(0, vol / 2, n)))
    wick = rng.random(n) < wick_rate
    depth = rng.uniform(0.02, 0.12, n)
    down = rng.random(n) < 0.5
    low = np.where(wick & down, body_lo * (1 - depth), low)
    high = np.where(wick & ~down, body_hi * (1 + depth), high)
    frame = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                          "volume": rng.uniform(1, 100, n)}, index=index)
    if mark:
        m_close = close * (1 + rng.normal(0, 0.0015, n))
        m_open = np.r_[price, m_close[:-1]]
        m_hi, m_lo = np.maximum(m_open, m_close), np.minimum(m_open, m_close)
        m_high = m_hi * (1 + np.abs(rng.normal(0, vol / 3, n)))
        m_low = m_lo * (1 - np.abs(rng.normal(0, vol / 3, n)))
        mwick = rng.random(n) < wick_rate / 2
        mdepth = rng.uniform(0.02, 0.08, n)
        mdown = rng.random(n) < 0.5
        m_low = np.where(mwick & mdown, m_lo * (1 - mdepth), m_low)
        m_high = np.where(mwick & ~mdown, m_hi * (1 + mdepth), m_high)
        frame["mark_open"], frame["mark_high"], frame["mark_low"], frame["mark_close"] = m_open, m_high, m_low, m_close
    if funding == "column":
        hours = venue_rules(venue).funding_hours_utc
        at = (index.minute == 0) & np.isin(index.hour, hours)
        frame["funding_rate"] = np.where(at, rng.normal(1e-4, 4e-4, n), np.nan)
    frame.attrs = {"kind": "simulated", "source": f"tests.fast.helpers.random_bars(seed={seed})"}
    return frame


def gapped(frame: pd.DataFrame, seed: int, size: float = 0.03) -> pd.DataFrame:
    """Bars whose opens gap from the previous close (last and mark), the extremes widened to hold them."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for o, h, l, c in (("open", "high", "low", "close"), ("mark_open", "mark_high", "mark_low", "mark_close")):
        if o not in out:
            continue
        jump = 1.0 + rng.normal(0.0, size, len(out)) * (rng.random(len(out)) < 0.05)
        opens = np.r_[out[o].iloc[0], out[c].to_numpy()[:-1] * jump[1:]]
        out[o] = opens
        out[h] = np.maximum(out[h].to_numpy(), opens)
        out[l] = np.minimum(out[l].to_numpy(), opens)
    return out


def random_targets(seed: int, n: int, levels: tuple[float, ...], p_change: float = 0.004) -> np.ndarray:
    """Piecewise-constant signed leverage: at each bar, with probability ``p_change``, a new level."""
    rng = np.random.default_rng(seed + 10_000)
    out = np.zeros(n)
    level = 0.0
    for i in range(1, n):
        if rng.random() < p_change:
            level = float(rng.choice(levels))
        out[i] = level
    return out


def run_both(bars: pd.DataFrame, config: RunConfig, *, strategy: type | None = None,
             targets: np.ndarray | None = None) -> tuple[RunResult, RunResult]:
    """The backtrader path and the fast path on the same bars: a strategy class (its backtrader
    implementation against its signal form) or a target array (ExposureStrategy against run_fast)."""
    if strategy is not None:
        slow = run_backtest(bars, strategy, config)
        fast = run_fast(bars, strategy, config)
    else:
        assert targets is not None
        cfg = RunConfig(**{**config.__dict__, "params": {"exposure": targets}})
        slow = run_backtest(bars, ExposureStrategy, cfg)
        fast = run_fast(bars, targets, config)
    return slow, fast


def _close(a: np.ndarray, b: np.ndarray, floor: float) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    both_nan = np.isnan(a) & np.isnan(b)
    same_inf = np.isinf(a) & (a == b)
    tol = REL * np.maximum(np.abs(a), np.abs(b)) + floor
    with np.errstate(invalid="ignore"):
        return both_nan | same_inf | (np.abs(a - b) <= tol)


def assert_parity(slow: RunResult, fast: RunResult, cash: float) -> None:
    """Same fills, funding, liquidations, fees and per-bar equity, within 1e-9 relative
    (plus 1e-12 of the starting cash for amounts that are zero on one side)."""
    floor = 1e-12 * cash
    assert fast.config["engine"] == "fast" and slow.config["engine"] == "backtrader"
    for name, keys in EVENT_KEYS.items():
        a, b = getattr(slow, name), getattr(fast, name)
        assert list(a.columns) == list(b.columns), name
        assert len(a) == len(b), f"{name}: backtrader {len(a)} rows, fast {len(b)} rows\n{a}\n{b}"
        for key in keys:
            assert list(a[key]) == list(b[key]), f"{name}.{key} differ"
        for col in a.columns:
            if col in keys or a[col].dtype == object or col == "symbol":
                continue
            ok = _close(a[col].to_numpy(), b[col].to_numpy(), floor)
            assert ok.all(), f"{name}.{col} differ at rows {np.flatnonzero(~ok)[:5]}: " \
                             f"{a[col].to_numpy()[~ok][:3]} vs {b[col].to_numpy()[~ok][:3]}"
    ea, eb = slow.equity, fast.equity
    assert list(ea.columns) == list(eb.columns)
    assert (ea.index == eb.index).all()
    for col in ea.columns:
        ok = _close(ea[col].to_numpy(), eb[col].to_numpy(), floor)
        assert ok.all(), f"equity.{col} differs at {ea.index[~ok][:3].tolist()}: " \
                         f"{ea[col].to_numpy()[~ok][:3]} vs {eb[col].to_numpy()[~ok][:3]}"
    for key in ("final_equity", "insurance_cover_total"):
        fe_a, fe_b = slow.summary[key], fast.summary[key]
        assert abs(fe_a - fe_b) <= REL * abs(fe_a) + floor, (key, fe_a, fe_b)
    for key in ("liquidations", "fills", "first_liquidation_time", "bars"):
        assert slow.summary[key] == fast.summary[key], key
    assert len(slow.trades) == len(fast.trades)


def shared_file(shared: Path, name: str) -> Path:
    return shared / name


def binance_funding(shared: Path, symbol: str, index: pd.DatetimeIndex) -> np.ndarray:
    """Binance USD-M settlements placed in the minute bar holding them (calc_time has ms jitter)."""
    raw = pd.read_csv(shared / "binance_usdtm_funding_btc_eth_2020-03_2021-04_2021-05.csv")
    raw = raw[raw["symbol"] == symbol]
    times = pd.to_datetime(raw["calc_time_ms"], unit="ms", utc=True).dt.floor("1min")
    rates = pd.Series(raw["funding_rate"].to_numpy(dtype=float), index=times)
    out = np.full(len(index), np.nan)
    pos = index.get_indexer(rates.index)
    keep = pos >= 0
    out[pos[keep]] = rates.to_numpy()[keep]
    return out


def summary_of(result: RunResult) -> dict[str, Any]:
    return {k: result.summary[k] for k in ("final_equity", "liquidations", "fills", "funding_total", "fees_total")}
