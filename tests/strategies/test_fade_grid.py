"""Cascade fade and DCA grid (no signal form) on hand-made bars with expected events."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import CascadeFade, DcaGrid

FEE = 0.0004


def _cascade(wick_low: float | None = None, rally: bool = False):
    """Quiet 1 M liquidations for 10 bars, a 10 M spike at bar 10, 8 M at 11, 2 M at 12 (a green bar)."""
    n = 24
    closes = np.full(n, 10000.0)
    closes[10], closes[11], closes[12] = 9500.0, 9300.0, 9400.0  # bar 12 closes up: exhaustion
    closes[13:] = 9400.0
    if rally:
        closes[14:] = 10000.0
    lows = None
    if wick_low is not None:
        lows = np.minimum(closes, np.concatenate([[closes[0]], closes[:-1]]))
        lows[15] = wick_low
    liq = np.full(n, 1e6)
    liq[10], liq[11], liq[12] = 10e6, 8e6, 2e6
    return closes, lows, liq


def test_fade_buys_after_exhaustion_and_the_hard_stop_exits(bars_factory, runner) -> None:
    closes, lows, liq = _cascade(wick_low=9000.0)
    bars = bars_factory(closes, lows=lows, liq_long_notional=liq)
    result, strat = runner(CascadeFade, bars, leverage=2.0, window=5, spike=5.0, exhaust=0.3, stop=0.03)
    events = [(s["event"], s["time"].hour) for s in strat.signals]
    assert events == [("spike", 10), ("exhausted", 12), ("entry", 13), ("stop", 15)]
    fills = result.fills
    assert fills["side"].tolist() == ["buy", "sell"]
    assert fills["price"].tolist() == pytest.approx([9400.0, 9400.0 * 0.97])
    q = np.floor(10000 * 2 / (1 + 2 * FEE) * 0.999999 / 9400 / 0.001) * 0.001
    assert fills["qty"].tolist() == pytest.approx([q, q])
    assert not result.summary["liquidated"]
    loss = q * 9400 * 0.03 + q * 9400 * FEE + q * 9400 * 0.97 * FEE
    assert result.summary["final_equity"] == pytest.approx(10000 - loss, rel=1e-9)


def test_the_hard_stop_beats_liquidation_at_high_leverage(bars_factory, runner) -> None:
    closes, lows, liq = _cascade(wick_low=8400.0)  # -10.6 %: beyond a 20x long's liquidation price
    bars = bars_factory(closes, lows=lows, liq_long_notional=liq)
    stopped, _ = runner(CascadeFade, bars, leverage=20.0, window=5, stop=0.03)
    assert not stopped.summary["liquidated"]
    assert stopped.fills["price"].iloc[-1] == pytest.approx(9400 * 0.97)
    unprotected, _ = runner(CascadeFade, bars, leverage=20.0, window=5, stop=0.5)
    assert unprotected.summary["liquidated"]
    assert unprotected.liquidations["time"].dt.hour.tolist() == [15]


def test_fade_takes_profit_on_the_rebound(bars_factory, runner) -> None:
    closes, lows, liq = _cascade(rally=True)
    bars = bars_factory(closes, liq_long_notional=liq, highs=np.maximum(closes, 10000.0))
    result, strat = runner(CascadeFade, bars, leverage=2.0, window=5, take_profit=0.05)
    # bar 14 closes 10000 >= 9400 x 1.05 = 9870: closed at bar 15's open
    assert [(s["event"], s["time"].hour) for s in strat.signals] == [
        ("spike", 10), ("exhausted", 12), ("entry", 13), ("take_profit", 14)]
    assert result.fills["price"].tolist() == pytest.approx([9400.0, 10000.0])
    assert result.fills["time"].dt.hour.tolist() == [13, 15]


def test_fade_without_liquidation_column_uses_the_down_bar_proxy(bars_factory, runner) -> None:
    closes, _, _ = _cascade()
    bars = bars_factory(closes)  # volume 10 per bar: proxy = 10 x close on down bars only
    _, strat = runner(CascadeFade, bars, leverage=2.0, window=5)
    assert strat.uses_proxy
    # bar 10 (down, 95 k) after 5 quiet bars of 0: a spike; bar 11 down (93 k) raises the peak;
    # bar 12 closes up with 0: exhausted
    assert [(s["event"], s["time"].hour) for s in strat.signals][:3] == [("spike", 10), ("exhausted", 12), ("entry", 13)]


def test_grid_averages_down_then_takes_profit_and_restarts(bars_factory, runner) -> None:
    #          0      1     2     3     4     5     6     7     8     9
    closes = [10000, 9900, 9790, 9700, 9590, 9500, 9700, 9900, 9900, 9900]
    bars = bars_factory(closes)
    result, strat = runner(DcaGrid, bars, leverage=3.0, levels=3, step=0.02, take_profit=0.01)
    fills = result.fills
    # tranche 1 at bar 0's open 10000; 9790 <= 9800 at bar 2: tranche 2 at bar 3's open (9790);
    # 9590 <= 9594.2 at bar 4: tranche 3 at bar 5's open (9590); the average entry
    # 3 / (1/10000 + 1/9790 + 1/9590) = 9791.3 (equal-value tranches), +1 % = 9889.2: bar 7's
    # 9900 closes the grid at bar 8's open; a new cycle starts at bar 9's open
    assert fills["time"].dt.hour.tolist() == [0, 3, 5, 8, 9]
    assert fills["side"].tolist() == ["buy", "buy", "buy", "sell", "buy"]
    assert fills["price"].tolist() == [10000, 9790, 9590, 9900, 9900]
    value = 10000 * 3 / 3 / (1 + 3 * FEE) * 0.999999
    assert fills["qty"].iloc[:3].tolist() == pytest.approx([value / p for p in (10000, 9790, 9590)], abs=0.001)
    assert fills["qty"].iloc[3] == pytest.approx(fills["qty"].iloc[:3].sum())
    assert strat.cycles == 2


def test_grid_at_high_leverage_is_liquidated_and_stays_dead(bars_factory, runner) -> None:
    closes = list(10000 * 0.98 ** np.arange(12)) + [9000.0] * 4
    result, strat = runner(DcaGrid, bars_factory(closes), leverage=10.0, levels=5, step=0.02)
    assert result.summary["liquidated"]
    liq_time = result.liquidations["time"].iloc[0]
    assert (result.fills["time"] <= liq_time).all()  # nothing after the liquidation
    assert result.summary["final_equity"] < 10000 * 0.05  # the whole grid margin is lost
