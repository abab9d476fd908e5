"""The fast engine's public entry points: supports, run_fast with a class or an array,
prepare + simulate_arrays (summary numbers equal to run_fast's), and its refusals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine import fast
from engine.runner import RunConfig
from risk.errors import DeleverageError
from strategies import Breakout, BuyAndHold, CascadeFade, DcaGrid, FundingCarry, PerpStrategy, SignalStrategy, SmaCrossover
from tests.fast.helpers import random_bars, random_targets


def test_supports_names_the_signal_strategies() -> None:
    assert all(fast.supports(c) for c in (BuyAndHold, SmaCrossover, Breakout, FundingCarry))
    assert not any(fast.supports(c) for c in (CascadeFade, DcaGrid, PerpStrategy, SignalStrategy))
    assert not fast.supports(BuyAndHold, {"reenter": True})  # reacts to its own liquidation
    assert fast.supports(BuyAndHold, {"leverage": 3.0})


def test_run_fast_with_a_class_equals_run_fast_with_its_targets() -> None:
    bars = random_bars(3, 2000, funding="column")
    config = RunConfig(strategy="sma_crossover", params={"leverage": 4.0, "fast": 10, "slow": 40},
                       cash=5_000.0)
    by_class = fast.run_fast(bars, SmaCrossover, config)
    targets = SmaCrossover.target_exposure(bars, leverage=4.0, fast=10, slow=40)
    by_array = fast.run_fast(bars, targets, config)
    pd.testing.assert_frame_equal(by_class.equity, by_array.equity)
    pd.testing.assert_frame_equal(by_class.fills, by_array.fills)
    assert by_class.config["engine"] == "fast" and by_class.summary["engine"] == "fast"
    assert len(by_class.fills) == np.count_nonzero(np.diff(np.r_[0.0, targets]))


@pytest.mark.parametrize("venue,mode,cash", [("binance_usdm", "isolated", 10_000.0), ("bitmex", "cross", 1.0)])
def test_simulate_arrays_matches_the_run_result_summary(venue, mode, cash) -> None:
    bars = random_bars(5, 3000, venue=venue, start="2021-05-18")
    config = RunConfig(strategy="exposure", venue=venue, margin_mode=mode, cash=cash)
    prepared = fast.prepare(bars, config)
    for seed in (1, 2, 3):
        targets = random_targets(seed, len(bars), (-10.0, -3.0, 0.0, 3.0, 10.0, 40.0), p_change=0.01)
        lean = fast.simulate_arrays(prepared, targets, equity=True)
        result = fast.run_fast(bars, targets, config)
        full = result.summary
        np.testing.assert_array_equal(lean["equity"], result.equity["equity"].to_numpy())
        for key in ("final_equity", "total_return", "funding_total", "fees_total", "insurance_fund",
                    "max_drawdown", "first_liquidation_price", "first_liquidation_trigger"):
            a, b = lean[key], full[key]
            if b is None:
                assert lean["liquidations"] == 0 and math.isnan(a)
            else:
                assert a == pytest.approx(b, rel=1e-12, abs=1e-12 * cash), key
        assert lean["liquidations"] == full["liquidations"] and lean["fills"] == full["fills"]
        assert lean["liquidated"] == full["liquidated"]
        if full["liquidated"]:
            assert bars.index[lean["first_liquidation_bar"]].isoformat() == full["first_liquidation_time"]
        else:
            assert lean["first_liquidation_bar"] == -1
        if full["min_distance_to_liquidation"] is None:
            assert math.isnan(lean["min_distance_to_liquidation"])
        else:
            assert lean["min_distance_to_liquidation"] == pytest.approx(full["min_distance_to_liquidation"], rel=1e-12)


def test_simulate_arrays_on_a_frame_needs_the_config() -> None:
    bars = random_bars(1, 200)
    with pytest.raises(DeleverageError, match="config is required"):
        fast.simulate_arrays(bars, np.zeros(len(bars)))
    res = fast.simulate_arrays(bars, np.zeros(len(bars)), RunConfig(strategy="x"))
    assert res["final_equity"] == 10_000.0 and res["fills"] == 0 and res["max_drawdown"] == 0.0


def test_refusals() -> None:
    bars = random_bars(1, 100, funding=None)
    config = RunConfig(strategy="x")
    with pytest.raises(DeleverageError, match="no funding_rate column"):
        fast.run_fast(bars, np.zeros(100), config)
    ok = RunConfig(strategy="x", allow_no_funding=True)
    with pytest.raises(DeleverageError, match="expected \\(100,\\)"):
        fast.run_fast(bars, np.zeros(99), ok)
    with pytest.raises(DeleverageError, match="no signal form"):
        fast.run_fast(bars, CascadeFade, ok)
    with pytest.raises(DeleverageError, match="cash must be positive"):
        fast.run_fast(bars, np.zeros(100), RunConfig(strategy="x", cash=0.0, allow_no_funding=True))


def test_a_hand_checked_isolated_liquidation() -> None:
    """10x long on Binance USD-M, 10,000 USDT at 40,000: the numbers worked by hand."""
    index = pd.date_range("2021-05-18 01:00", periods=4, freq="1min", tz="UTC", name="open_time")
    bars = pd.DataFrame({"open": [40_000.0, 40_000.0, 40_000.0, 37_000.0],
                         "high": [40_000.0, 40_100.0, 40_000.0, 37_100.0],
                         "low": [40_000.0, 39_900.0, 36_000.0, 36_900.0],
                         "close": [40_000.0, 40_000.0, 37_000.0, 37_000.0], "volume": 1.0}, index=index)
    targets = np.array([0.0, 10.0, 10.0, 10.0])
    result = fast.run_fast(bars, targets, RunConfig(strategy="x", cash=10_000.0, allow_no_funding=True))
    # qty = floor(10,000 x 10 / (1 + 10 x 0.0004) x 0.999999 / 40,000, lot 0.001) = 2.490
    [buy, liq] = result.fills.to_dict("records")
    assert buy["qty"] == pytest.approx(2.490) and buy["price"] == 40_000.0
    assert buy["fee"] == pytest.approx(2.49 * 40_000 * 0.0004)
    # isolated margin 9,960; 99,600 notional is in the 0.5 % bracket (cum 50):
    # LP = (W + cum - Q E) / (Q mmr - Q) = (9,960 + 50 - 99,600) / (2.49 x 0.005 - 2.49)
    lp = (9_960.0 + 50.0 - 99_600.0) / (2.49 * 0.005 - 2.49)
    [event] = result.liquidations.to_dict("records")
    assert event["liquidation_price"] == pytest.approx(lp, rel=1e-12)
    assert event["fill_price"] == pytest.approx(lp, rel=1e-12) and event["trigger_price"] == 36_000.0
    assert event["time"] == index[2]
    remaining = 9_960.0 + 2.49 * (lp - 40_000.0)
    assert event["fee"] == pytest.approx(min(2.49 * lp * 0.0125, remaining), rel=1e-12)
    assert event["fee"] == pytest.approx(remaining, rel=1e-12)  # 1.25 % of ~90k exceeds what is left
    # the clearance fee takes what is left of the isolated margin: the account keeps its free balance
    assert result.summary["final_equity"] == pytest.approx(10_000.0 - 9_960.0 - buy["fee"], abs=1e-8)


def test_rejected_orders_are_counted_as_the_broker_refuses_them() -> None:
    """The orders backtrader's PerpBroker refuses (venue leverage limit, margin) are the ones the fast
    engine counts; targets above Binance's bracket limits (100x and 150x of 10,000 USDT) are refused."""
    from engine.fast import ExposureStrategy
    from engine.runner import run_backtest

    refusals: list[str] = []

    class Watched(ExposureStrategy):
        def notify_order(self, order) -> None:
            if order.status in (order.Margin, order.Rejected):
                refusals.append(str(order.info.get("rejection", "")))

    bars = random_bars(4, 2000)
    targets = random_targets(4, len(bars), (-150.0, -10.0, -3.0, 0.0, 3.0, 10.0, 100.0), p_change=0.01)
    config = RunConfig(strategy="exposure", cash=10_000.0)
    slow = run_backtest(bars, Watched, RunConfig(**{**config.__dict__, "params": {"exposure": targets}}))
    result = fast.run_fast(bars, targets, config)
    lean = fast.simulate_arrays(fast.prepare(bars, config), targets)
    by_limit = sum("exceeds the venue maximum" in r for r in refusals)
    by_margin = sum(r.startswith("needs") for r in refusals)
    by_min = sum("below the minimum" in r for r in refusals)
    assert by_limit + by_margin + by_min == len(refusals) and by_limit >= 3
    assert result.summary["orders_rejected"] == {"margin": by_margin, "leverage_limit": by_limit,
                                                 "min_notional": by_min}
    assert (lean["rejected_margin"], lean["rejected_leverage"]) == (by_margin, by_limit)
    assert len(result.fills) == len(slow.fills)
