"""Performance metrics of a run, as pure functions over stored results.

Return-based ratios (Sharpe, Sortino, CAGR, Calmar, max drawdown) are computed with
`empyrical-reloaded <https://github.com/stefan-jansen/empyrical-reloaded>`_, the maintained
fork of Quantopian's *empyrical*; durations, trade statistics and exposure are computed here
with pandas because empyrical has no equivalent.

Conventions
-----------
- Returns are simple per-bar returns of the equity curve; the risk-free rate is 0.
- ``periods_per_year`` is always explicit. :func:`periods_per_year` derives it from the bar
  spacing of a 24/7 market: ``365 days / median bar spacing`` (525,600 for 1-minute bars).
- Drawdowns are reported as **positive fractions** (0.25 = equity 25 % below its peak).
- Sharpe = ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``.
- Sortino = ``mean(r) * periods_per_year / (sqrt(mean(min(r, 0)**2)) * sqrt(periods_per_year))``.
- CAGR = ``(equity[-1] / equity[0]) ** (periods_per_year / n_returns) - 1``.
- Calmar = ``CAGR / max_drawdown``.
"""

from __future__ import annotations

import math
from typing import Any

import empyrical
import numpy as np
import pandas as pd

from risk.errors import DeleverageError

from .results import insurance_cover_total

SECONDS_PER_YEAR = 365 * 24 * 3600  # crypto perpetuals trade 24/7


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year implied by the median spacing of ``index`` (a 24/7 market)."""
    if len(index) < 2:
        raise DeleverageError(f"cannot derive the bar spacing from {len(index)} bar(s): need at least 2")
    spacing = pd.Series(index).diff().dropna().median()
    seconds = spacing.total_seconds()
    if not seconds > 0:
        raise DeleverageError(f"bar spacing must be positive, found {spacing} (is the index sorted and unique?)")
    return SECONDS_PER_YEAR / seconds


def returns(equity: pd.Series) -> pd.Series:
    """Simple per-bar returns of an equity curve (the first bar has none)."""
    equity = pd.Series(equity, dtype="float64")
    return equity.pct_change().iloc[1:]


def total_return(equity: pd.Series) -> float:
    """``equity[-1] / equity[0] - 1``."""
    return float(equity.iloc[-1] / equity.iloc[0] - 1.0)


def cagr(equity: pd.Series, periods_per_year: float) -> float:
    """Compound annual growth rate (empyrical ``annual_return``); -100 % once equity is gone.

    Annualising a window of hours (a waterfall scenario) overflows; such a CAGR is reported as
    NaN ("not meaningful") instead of infinity.
    """
    if equity.iloc[-1] <= 0:
        return -1.0
    with np.errstate(over="ignore", invalid="ignore"):
        value = float(empyrical.annual_return(returns(equity), annualization=periods_per_year))
    return value if math.isfinite(value) else math.nan


def sharpe(equity: pd.Series, periods_per_year: float) -> float:
    """Annualised Sharpe ratio of the per-bar returns, risk-free rate 0 (empyrical)."""
    return float(empyrical.sharpe_ratio(returns(equity), annualization=periods_per_year))


def sortino(equity: pd.Series, periods_per_year: float) -> float:
    """Annualised Sortino ratio, target return 0 (empyrical)."""
    return float(empyrical.sortino_ratio(returns(equity), annualization=periods_per_year))


def max_drawdown(equity: pd.Series) -> float:
    """Largest peak-to-trough fall as a positive fraction of the peak (empyrical)."""
    return float(-empyrical.max_drawdown(returns(equity)))


def calmar(equity: pd.Series, periods_per_year: float) -> float:
    """CAGR divided by max drawdown (empyrical); NaN without a drawdown."""
    with np.errstate(over="ignore", invalid="ignore"):  # annualising hours overflows, as in cagr()
        value = float(empyrical.calmar_ratio(returns(equity), annualization=periods_per_year))
    return value if math.isfinite(value) else math.nan


def score_from_moments(objective: str, m: dict[str, float], growth: float, periods_per_year: float) -> float:
    """An optimizer objective (``sharpe``, ``sortino``, ``calmar``, ``return``) from running
    accumulators of a curve's per-bar simple returns, without the curve: the formulas above
    (empyrical's) on sums the fast engine accumulates bar by bar (``engine.fast.MOMENT_KEYS``).

    ``m``: ``returns`` (n, the number of returns: bars), ``returns_valid`` (those not NaN),
    ``returns_sum`` and ``returns_sumsq`` (compensated sums of r and r^2 over the valid ones),
    ``returns_down_sumsq`` (sum of min(r, 0)^2), ``returns_min``/``returns_max``,
    ``max_drawdown_from_start`` (positive fraction, the start included in the running peak);
    ``growth`` the final equity over the starting one. The same conventions as :func:`sharpe`,
    :func:`sortino`, :func:`calmar`, :func:`total_return`: NaN for fewer than 2 returns, a
    sample standard deviation (ddof=1) that is 0 when every return is equal, Calmar NaN without
    a drawdown. Equal to those functions on the same curve up to floating-point rounding of the
    sums (tests/optimize/test_optimize_moments.py: 1e-9 relative). Non-finite results -> NaN.
    """
    if objective == "return":
        value = growth - 1.0
        return value if math.isfinite(value) else math.nan
    n, nv = m["returns"], m["returns_valid"]
    if n < 2 or nv < 1:
        return math.nan
    mean = m["returns_sum"] / nv
    if objective == "sharpe":
        if nv < 2:
            return math.nan
        if m["returns_min"] == m["returns_max"]:
            std = 0.0
        else:
            std = math.sqrt(max(0.0, (m["returns_sumsq"] - m["returns_sum"] * mean) / (nv - 1)))
        value = mean / std * math.sqrt(periods_per_year) if std > 0.0 else (
            math.nan if mean == 0.0 else math.inf)
    elif objective == "sortino":
        down = math.sqrt(m["returns_down_sumsq"] / nv) * math.sqrt(periods_per_year)
        value = mean * periods_per_year / down if down > 0.0 else math.nan
    elif objective == "calmar":
        dd = m["max_drawdown_from_start"]
        if not dd > 0.0 or not growth >= 0.0:
            return math.nan
        try:
            value = (growth ** (1.0 / (n / periods_per_year)) - 1.0) / dd
        except OverflowError:
            return math.nan
    else:
        raise DeleverageError(f"objective must be sharpe, sortino, calmar or return, got {objective!r}")
    return value if math.isfinite(value) else math.nan


def drawdown(equity: pd.Series) -> pd.Series:
    """Drawdown per bar as a positive fraction of the running peak."""
    equity = pd.Series(equity, dtype="float64")
    return 1.0 - equity / equity.cummax()


def max_drawdown_duration(equity: pd.Series) -> tuple[pd.Timedelta | None, int]:
    """Longest time spent below a previous peak: ``(duration, bars)``.

    A drawdown starts at the bar of the peak and ends at the first bar whose equity is back at
    or above it; an unrecovered drawdown ends at the last bar. ``duration`` is the time
    between those bars (None when the index is not a DatetimeIndex) and ``bars`` the number of
    bars between them. ``(Timedelta(0), 0)`` when equity never falls.
    """
    values = np.asarray(equity, dtype="float64")
    if len(values) == 0:
        return None, 0
    peak_pos = 0
    best = (0, 0)  # (start, end) positions
    underwater = False
    for i in range(1, len(values)):
        if values[i] >= values[peak_pos]:
            if underwater and i - peak_pos > best[1] - best[0]:
                best = (peak_pos, i)
            peak_pos = i
            underwater = False
        else:
            underwater = True
    if underwater and len(values) - 1 - peak_pos > best[1] - best[0]:
        best = (peak_pos, len(values) - 1)
    bars = best[1] - best[0]
    if isinstance(equity.index, pd.DatetimeIndex):
        return equity.index[best[1]] - equity.index[best[0]], bars
    return None, bars


def trade_stats(trades: pd.DataFrame) -> dict[str, float]:
    """Closed-trade statistics from a trades table (column ``pnl_net``, ``close_time``).

    ``win_rate`` = winners / closed trades (a zero-PnL trade is not a winner);
    ``profit_factor`` = gross profit / gross loss (inf without a loss, NaN without trades).
    """
    if len(trades) and "close_time" in trades:
        closed = trades[pd.notna(trades["close_time"])]
    else:
        closed = trades
    pnl = pd.Series(closed["pnl_net"], dtype="float64") if len(closed) else pd.Series(dtype="float64")
    wins = pnl[pnl > 0]
    losses = pnl[pnl < 0]
    n = len(pnl)
    gross_loss = -losses.sum()
    if n == 0:
        profit_factor = math.nan
    elif gross_loss == 0:
        profit_factor = math.inf if wins.sum() > 0 else math.nan
    else:
        profit_factor = float(wins.sum() / gross_loss)
    liquidated = int(pd.Series(closed["liquidated"]).fillna(False).astype(bool).sum()) if n and "liquidated" in closed else 0
    return {
        "trades": n,
        "open_trades": int(len(trades) - n),
        "win_rate": float(len(wins) / n) if n else math.nan,
        "profit_factor": profit_factor,
        "gross_profit": float(wins.sum()),
        "gross_loss": float(gross_loss),
        "liquidated_trades": liquidated,
    }


def exposure(position_qty: pd.Series) -> float:
    """Fraction of bars that end with an open position."""
    qty = pd.Series(position_qty, dtype="float64").fillna(0.0)
    return float((qty != 0).mean()) if len(qty) else math.nan


def equity_curve(result: Any) -> pd.Series:
    """The run's equity with the starting cash as the point one bar before the first bar.

    The first stored bar already includes that bar's PnL and fees, so returns are measured
    from ``config["initial_cash"]`` when the config has it.
    """
    equity = pd.Series(result.equity["equity"], dtype="float64")
    initial = result.config.get("initial_cash") if isinstance(result.config, dict) else None
    if initial is None or len(equity) < 2:
        return equity
    step = equity.index[1] - equity.index[0]
    start = pd.Series([float(initial)], index=[equity.index[0] - step])
    return pd.concat([start, equity])


def compute_metrics(result: Any) -> dict[str, Any]:
    """All headline metrics of a :class:`reports.results.RunResult`, in display order."""
    eq = result.equity
    if "equity" not in eq or len(eq) < 2:
        raise DeleverageError(f"the equity table needs an 'equity' column and at least 2 bars, found {len(eq)} row(s)")
    ppy = periods_per_year(eq.index)
    curve = equity_curve(result)
    duration, dd_bars = max_drawdown_duration(curve)
    stats = trade_stats(result.trades)
    metrics: dict[str, Any] = {
        "total_return": total_return(curve),
        "cagr": cagr(curve, ppy),
        "sharpe": sharpe(curve, ppy),
        "sortino": sortino(curve, ppy),
        "calmar": calmar(curve, ppy),
        "max_drawdown": max_drawdown(curve),
        "max_drawdown_duration": duration,
        "max_drawdown_bars": dd_bars,
        "trades": stats["trades"],
        "win_rate": stats["win_rate"],
        "profit_factor": stats["profit_factor"],
        "exposure": exposure(eq["position_qty"]) if "position_qty" in eq else math.nan,
        "fees": float(pd.Series(result.fees["amount"], dtype="float64").sum()) if len(result.fees) else 0.0,
        "funding": float(pd.Series(result.funding["amount"], dtype="float64").sum()) if len(result.funding) else 0.0,
        "insurance_cover": insurance_cover_total(result.liquidations),
        "liquidations": int(len(result.liquidations)),
        "final_equity": float(curve.iloc[-1]),
        "periods_per_year": ppy,
        "bars": int(len(eq)),
    }
    return metrics
