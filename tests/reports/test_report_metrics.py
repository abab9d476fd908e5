"""Metrics against hand-computed values.

The equity curve used throughout: 100, 110, 99, 105, 120, 108 (one point per period).
Returns r = +0.1, -0.1, 105/99-1 = 0.0606061, 120/105-1 = 0.1428571, 108/120-1 = -0.1.
mean(r) = 0.1034632 / 5 = 0.0206926; sample std (ddof 1): squared deviations
0.0062897 + 0.0145667 + 0.0015931 + 0.0149242 + 0.0145667 = 0.0519403, / 4 = 0.0129851,
sqrt = 0.1139521.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports import metrics as m
from reports.results import RunResult
from risk.errors import DeleverageError

VALUES = [100.0, 110.0, 99.0, 105.0, 120.0, 108.0]


@pytest.fixture
def equity() -> pd.Series:
    return pd.Series(VALUES, index=pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC"))


def test_periods_per_year_from_bar_spacing() -> None:
    assert m.periods_per_year(pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")) == 365
    assert m.periods_per_year(pd.date_range("2024-01-01", periods=5, freq="1min", tz="UTC")) == 525_600
    assert m.periods_per_year(pd.date_range("2024-01-01", periods=5, freq="8h", tz="UTC")) == 1095
    # a missing bar does not change the median spacing
    idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC").delete(2)
    assert m.periods_per_year(idx) == 8760
    with pytest.raises(DeleverageError, match="at least 2"):
        m.periods_per_year(pd.DatetimeIndex(["2024-01-01"], tz="UTC"))


def test_total_return_and_cagr(equity: pd.Series) -> None:
    assert m.total_return(equity) == pytest.approx(0.08)
    # 12 periods a year, 5 returns: 1.08 ** (12 / 5) - 1 = exp(2.4 * 0.0769610) - 1 = 0.2028653
    assert m.cagr(equity, 12) == pytest.approx(0.2028653, abs=1e-6)
    assert m.cagr(pd.Series([100.0, 50.0, -5.0]), 12) == -1.0  # equity gone


def test_sharpe(equity: pd.Series) -> None:
    # 0.0206926 / 0.1139521 = 0.181590 per period; * sqrt(12) = 0.629048; * sqrt(365) = 3.469285
    assert m.sharpe(equity, 12) == pytest.approx(0.629048, abs=1e-5)
    assert m.sharpe(equity, 365) == pytest.approx(3.469285, abs=1e-5)


def test_sortino(equity: pd.Series) -> None:
    # downside deviation: sqrt(mean(min(r,0)^2)) = sqrt((0.01 + 0.01) / 5) = 0.0632456
    # sortino = mean * 12 / (0.0632456 * sqrt(12)) = 0.0206926 * sqrt(12) / 0.0632456 = 1.133386
    assert m.sortino(equity, 12) == pytest.approx(1.133386, abs=1e-5)


def test_max_drawdown_and_duration(equity: pd.Series) -> None:
    # 110 -> 99 and 120 -> 108 are both -10 %
    assert m.max_drawdown(equity) == pytest.approx(0.10)
    # the longest: peak 110 on day 1, back above it (120) on day 4 -> 3 days, 3 bars;
    # the unrecovered 120 -> 108 lasts 1 bar
    duration, bars = m.max_drawdown_duration(equity)
    assert duration == pd.Timedelta(days=3)
    assert bars == 3
    np.testing.assert_allclose(m.drawdown(equity).to_numpy(), [0, 0, 0.1, 1 - 105 / 110, 0, 0.1], atol=1e-12)


def test_unrecovered_drawdown_runs_to_the_last_bar() -> None:
    s = pd.Series([100.0, 101.0, 90.0, 95.0, 99.0, 100.5, 98.0],
                  index=pd.date_range("2024-01-01", periods=7, freq="h", tz="UTC"))
    # peak 101 at hour 1 never regained: 5 bars to hour 6
    assert m.max_drawdown_duration(s) == (pd.Timedelta(hours=5), 5)
    assert m.max_drawdown_duration(pd.Series([1.0, 2.0, 3.0])) == (None, 0)


def test_calmar(equity: pd.Series) -> None:
    # 0.2028653 / 0.10
    assert m.calmar(equity, 12) == pytest.approx(2.028653, abs=1e-5)


def test_trade_stats() -> None:
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    trades = pd.DataFrame({
        "close_time": [t0, t0, t0, t0, t0, pd.NaT],
        "pnl_net": [100.0, -50.0, 30.0, -20.0, 0.0, 999.0],
        "liquidated": [False, True, False, False, False, False],
    })
    stats = m.trade_stats(trades)
    # the open trade (no close_time) is not counted; 2 winners of 5 closed (0 is not a win)
    assert stats["trades"] == 5 and stats["open_trades"] == 1
    assert stats["win_rate"] == pytest.approx(0.4)
    # profit factor = (100 + 30) / (50 + 20)
    assert stats["profit_factor"] == pytest.approx(130 / 70)
    assert stats["liquidated_trades"] == 1
    only_wins = m.trade_stats(pd.DataFrame({"close_time": [t0], "pnl_net": [5.0], "liquidated": [False]}))
    assert only_wins["profit_factor"] == math.inf and only_wins["win_rate"] == 1.0
    none = m.trade_stats(pd.DataFrame({"close_time": [], "pnl_net": []}))
    assert none["trades"] == 0 and math.isnan(none["win_rate"]) and math.isnan(none["profit_factor"])


def test_exposure() -> None:
    assert m.exposure(pd.Series([0.0, 1.0, 1.0, -2.0, 0.0])) == pytest.approx(0.6)


def test_compute_metrics_measures_from_initial_cash() -> None:
    idx = pd.date_range("2024-01-02", periods=5, freq="D", tz="UTC")
    t = idx[2]
    result = RunResult(
        config={"initial_cash": 100.0},
        equity=pd.DataFrame({"equity": VALUES[1:], "position_qty": [1.0, 1.0, 0.0, 0.0, 1.0]}, index=idx),
        fees=pd.DataFrame({"time": [t, t], "symbol": ["X", "X"], "kind": ["trade", "liquidation"], "amount": [1.5, 2.5]}),
        funding=pd.DataFrame({"time": [t], "symbol": ["X"], "position_qty": [1.0], "price": [1.0], "rate": [1e-4], "amount": [-0.75]}),
        liquidations=pd.DataFrame({"time": [t]}),
    )
    got = m.compute_metrics(result)
    # the curve is 100 (initial cash, one bar before) + the five bars: the hand-computed series
    assert got["total_return"] == pytest.approx(0.08)
    assert got["sharpe"] == pytest.approx(3.469285, abs=1e-5)
    assert got["max_drawdown"] == pytest.approx(0.10)
    assert got["max_drawdown_duration"] == pd.Timedelta(days=3)
    assert got["exposure"] == pytest.approx(0.6)
    assert got["fees"] == pytest.approx(4.0)
    assert got["funding"] == pytest.approx(-0.75)
    assert got["liquidations"] == 1
    assert got["periods_per_year"] == 365
    assert got["trades"] == 0 and math.isnan(got["win_rate"])


def test_compute_metrics_rejects_a_single_bar() -> None:
    result = RunResult(config={}, equity=pd.DataFrame({"equity": [1.0]}, index=pd.DatetimeIndex(["2024-01-01"], tz="UTC")))
    with pytest.raises(DeleverageError, match="at least 2 bars"):
        m.compute_metrics(result)
