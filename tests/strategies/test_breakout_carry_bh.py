"""Breakout/breakdown at a key level, funding carry and buy-and-hold on hand-made bars."""

from __future__ import annotations

import numpy as np
import pytest

from risk.errors import DeleverageError
from strategies import Breakout, BuyAndHold, FundingCarry

FEE = 0.0004
#         0      1      2      3      4      5      6      7
LEVEL = [76000, 77000, 76500, 74000, 73000, 74600, 76000, 76200]
# close 76000 > 75000 at bar 0: long from bar 1; 74000 < 75000 at bar 3: breakdown, exit (or
# short) from bar 4; 76000 at bar 6: reclaimed, long again from bar 7.


@pytest.mark.parametrize("mode, low_side", [("exit", 0.0), ("short", -1.0)])
def test_fixed_level_breakdown_exits_or_shorts(bars_factory, runner, mode, low_side) -> None:
    bars = bars_factory(LEVEL)
    t = Breakout.target_exposure(bars, level=75000, mode=mode, leverage=3.0)
    assert t.tolist() == [0, 3, 3, 3, 3 * low_side, 3 * low_side, 3 * low_side, 3]
    result, _ = runner(Breakout, bars, level=75000, mode=mode, leverage=3.0)
    qty = result.equity["position_qty"].to_numpy()
    assert qty[0] == 0 and (qty[1:4] > 0).all() and (qty[7] > 0)
    assert (np.sign(qty[4:7]) == low_side).all()
    fills = result.fills
    assert fills["price"].iloc[0] == 76000.0  # bar 1 opens at bar 0's close
    # the exit/short fills at bar 4's open = bar 3's close
    assert fills.loc[fills["time"].dt.hour == 4, "price"].tolist() == [74000.0]


def test_buffer_band_ignores_a_shallow_dip(bars_factory) -> None:
    closes = [76000, 74600, 74300, 76000]  # 74600 and 74300 are inside the band 74250..75750
    t = Breakout.target_exposure(bars_factory(closes), level=75000, buffer=0.01, mode="exit")
    assert t.tolist() == [0, 1, 1, 1]
    t = Breakout.target_exposure(bars_factory([76000, 74200, 75500, 75800]), level=75000, buffer=0.01)
    # 74200 < 74250 breaks down; 75500 is inside the band (stays out); 75800 > 75750 reclaims
    assert t.tolist() == [0, 1, 0, 0]


def test_donchian_breakout_and_breakdown(bars_factory) -> None:
    closes = [100, 101, 102, 101, 103, 102, 101, 99, 98, 100]
    # lookback 3: bar 4 closes 103 over the prior high 102 (bars 1..3): breakout, long from 5;
    # bar 7 closes 99 under the prior low 101 (bars 4..6 lows 101, 101, 100?) -> see lows below
    bars = bars_factory(closes)
    t = Breakout.target_exposure(bars, lookback=3, mode="short", leverage=2.0)
    lows = bars["low"].to_numpy()
    assert lows[4:7].min() == 101  # bodies: 101-103, 102-103, 101-102
    assert t.tolist() == [0, 0, 0, 0, 0, 2, 2, 2, -2, -2]
    with pytest.raises(DeleverageError, match="mode"):
        Breakout.target_exposure(bars, mode="sideways")


def _funding_bars(bars_factory):
    closes = [10000.0] * 30
    rate = np.full(30, np.nan)
    rate[[0, 8, 16, 24]] = [0.0001, 0.0005, 0.0002, 0.00005]
    return bars_factory(closes, funding_rate=rate)


def test_funding_carry_shorts_while_rich_and_collects(bars_factory, runner) -> None:
    bars = _funding_bars(bars_factory)
    t = FundingCarry.target_exposure(bars, leverage=2.0)
    expect = np.zeros(30)
    expect[9:25] = -2.0  # 0.05 % at bar 8 >= 0.03 %: short from 9; 0.02 % keeps it; 0.005 % < 0.01 %: flat from 25
    assert t.tolist() == expect.tolist()
    result, _ = runner(FundingCarry, bars, leverage=2.0)
    qty = result.equity["position_qty"].to_numpy()
    assert (qty[9:25] < 0).all() and (qty[:9] == 0).all() and (qty[25:] == 0).all()
    funding = result.funding
    # the short is open at the 16:00 settlement (and closes at 01:00 next day, after the 00:00 one)
    assert list(funding["time"].dt.hour) == [16, 0]
    q = -qty[10]
    assert funding["amount"].tolist() == pytest.approx([q * 10000 * 0.0002, q * 10000 * 0.00005])
    assert result.summary["funding_total"] > 0


def test_funding_carry_without_funding_column_stays_flat(bars_factory) -> None:
    assert not FundingCarry.target_exposure(bars_factory([1.0, 2.0, 3.0])).any()


def test_buy_and_hold_signal_and_run(bars_factory, runner) -> None:
    closes = [10000, 10100, 10200, 10300, 10400]
    bars = bars_factory(closes)
    t = BuyAndHold.target_exposure(bars, leverage=3.0, entry_time="2024-01-01T02:00Z")
    assert t.tolist() == [0, 0, 3, 3, 3]
    result, _ = runner(BuyAndHold, bars, leverage=3.0, entry_time="2024-01-01T02:00Z")
    q = np.floor(10000 * 3 / (1 + 3 * FEE) * 0.999999 / 10100 / 0.001) * 0.001
    assert result.fills["qty"].tolist() == pytest.approx([q])
    assert result.fills["time"].dt.hour.tolist() == [2]
    assert result.summary["final_equity"] == pytest.approx(10000 - q * 10100 * FEE + q * 300, rel=1e-12)
    with pytest.raises(DeleverageError, match="reenter"):
        BuyAndHold.target_exposure(bars, reenter=True)
