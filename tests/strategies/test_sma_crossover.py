"""SMA crossover on hand-made closes: SMA(2) vs SMA(4), worked out by hand below."""

from __future__ import annotations

import numpy as np
import pytest

from risk.errors import DeleverageError
from strategies import SmaCrossover

# i:      0      1      2      3      4      5      6      7      8      9      10    11    12
CLOSES = [10000, 10000, 10000, 10000, 11000, 12000, 13000, 14000, 13000, 11000, 9000, 8000, 8000]
# SMA2 - SMA4 at i=3: 0 (flat); i=4: 10500-10250 > 0 (long from bar 5's open, 11000);
# i=8: 13500-13000 > 0; i=9: 12000-12750 < 0 (short from bar 10's open, 11000)
FEE = 0.0004


def test_target_exposure_by_hand(bars_factory) -> None:
    t = SmaCrossover.target_exposure(bars_factory(CLOSES), fast=2, slow=4, leverage=2.0)
    assert t.tolist() == [0, 0, 0, 0, 0, 2, 2, 2, 2, 2, -2, -2, -2]
    t = SmaCrossover.target_exposure(bars_factory(CLOSES), fast=2, slow=4, leverage=2.0, short=False)
    assert t.tolist() == [0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 0, 0, 0]


def test_backtrader_run_goes_long_then_flips_short_at_the_next_open(bars_factory, runner) -> None:
    result, _ = runner(SmaCrossover, bars_factory(CLOSES), fast=2, slow=4, leverage=2.0)
    fills = result.fills
    assert list(fills["side"]) == ["buy", "sell"]
    assert list(fills["time"].dt.hour) == [5, 10]
    assert list(fills["price"]) == [11000.0, 11000.0]
    q1 = np.floor(10000 * 2 / (1 + 2 * FEE) * 0.999999 / 11000 / 0.001) * 0.001
    assert fills["qty"].iloc[0] == pytest.approx(q1, abs=1e-9)
    # the long made nothing (bought 11000, marked 11000 at bar 9's close): equity = 10000 - fee
    equity = 10000 - q1 * 11000 * FEE
    # the flip's budget leaves room for the fee of its closing leg (q1 at 11000)
    q2 = np.floor((equity - q1 * 11000 * FEE) * 2 / (1 + 2 * FEE) * 0.999999 / 11000 / 0.001) * 0.001
    assert fills["qty"].iloc[1] == pytest.approx(q1 + q2, abs=1e-9)  # one order closes and reopens
    qty = result.equity["position_qty"].to_numpy()
    assert (qty[:5] == 0).all() and (qty[5:10] > 0).all() and (qty[10:] < 0).all()
    # the short gained 11000 -> 8000 on about 1.8 BTC
    assert result.summary["final_equity"] == pytest.approx(equity - q2 * 11000 * FEE + q2 * 3000, rel=1e-3)


def test_long_only_exits_instead_of_shorting(bars_factory, runner) -> None:
    result, _ = runner(SmaCrossover, bars_factory(CLOSES), fast=2, slow=4, leverage=2.0, short=False)
    assert list(result.fills["side"]) == ["buy", "sell"]
    assert (result.equity["position_qty"].to_numpy()[10:] == 0).all()


def test_bad_windows_are_refused(bars_factory) -> None:
    with pytest.raises(DeleverageError, match="fast < slow"):
        SmaCrossover.target_exposure(bars_factory(CLOSES), fast=5, slow=5)
    with pytest.raises(DeleverageError, match="no parameter"):
        SmaCrossover.target_exposure(bars_factory(CLOSES), fats=5)
