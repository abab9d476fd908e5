"""A liquidation never leaves the account below zero (issue 12, item 1).

Before the fix, a cross-margin liquidation on Binance USD-M / COIN-M charged the full clearance
fee (1.25 % of the notional) against the maintenance margin left in the wallet (0.4 %), so the
account ended at -30.04 USDT on 519 at 5x. The clearance fee is now capped at the margin left
after the close (``risk.formulas.liquidation_clearance``): the isolated position's collateral
plus its realised PnL, or in cross mode the wallet. Both engines, every venue, both modes.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.runner import RunConfig
import pandas as pd

from risk.formulas import fill_beyond_bankruptcy, liquidation_clearance, notional
from tests.fast.helpers import assert_parity, random_bars, random_targets, run_both

VENUES = {  # venue: (start inside a dated tier table, cash in the settle currency)
    "binance_usdm": ("2021-05-18 00:00", 10_000.0),
    "binance_coinm": ("2021-05-18 00:00", 1.0),
    "bitmex": ("2020-04-16 12:00", 1.0),
    "bybit": ("2021-05-18 00:00", 10_000.0),
    "okx": ("2021-05-18 00:00", 10_000.0),
    "hyperliquid": ("2023-03-01 00:00", 10_000.0),
}


def test_clearance_fee_is_capped_at_the_margin_left() -> None:
    # linear, 0.5 BTC closed at 18,000: notional 9,000 USDT, fee at 1.25 % = 112.50 USDT
    assert liquidation_clearance(False, False, 1, 0.5, 1.0, 18_000.0, 18_000.0, 0.0125, 500.0) == (112.5, 112.5)
    # only 36.00 USDT left (the maintenance margin at 0.4 %): the fee takes all of it, no more
    assert liquidation_clearance(False, False, 1, 0.5, 1.0, 18_000.0, 18_000.0, 0.0125, 36.0) == (36.0, 36.0)
    # nothing left (or a gap beyond it): no fee
    assert liquidation_clearance(False, False, 1, 0.5, 1.0, 18_000.0, 18_000.0, 0.0125, -3.0) == (0.0, 0.0)
    # inverse: 100,000 USD contracts at 40,000 = 2.5 BTC notional, fee 0.03125 BTC, capped at 0.01
    fee, fund = liquidation_clearance(False, True, 1, 100_000.0, 1.0, 40_000.0, 40_000.0, 0.0125, 0.01)
    assert math.isclose(notional(True, 100_000.0, 1.0, 40_000.0), 2.5) and (fee, fund) == (0.01, 0.01)
    # bankruptcy venues charge no fee; the fund keeps uPnL(fill -> liq price): long 10,000 USD
    # contracts taken over at 9,000 with the liquidation price 9,100: 10,000 * (1/9,000 - 1/9,100) BTC
    fee, fund = liquidation_clearance(True, True, 1, 10_000.0, 1.0, 9_000.0, 9_100.0, 0.0, 0.0)
    assert fee == 0.0 and math.isclose(fund, 10_000.0 * (1 / 9_000 - 1 / 9_100), rel_tol=1e-12)


def test_cross_long_on_binance_floors_at_zero_in_both_engines() -> None:
    """5x cross long on a steady fall: at the liquidation price the wallet holds about the
    maintenance margin (0.4 % of the notional), less than the 1.25 % clearance fee; the fee takes
    what is left and the account ends at exactly zero, the fee going to the insurance fund."""
    bars = random_bars(3, 600, vol=0.0005, wick_rate=0.0)
    bars[["open", "high", "low", "close"]] = bars[["open", "high", "low", "close"]].to_numpy() * \
        np.linspace(1.0, 0.7, len(bars))[:, None]
    for col in ("open", "high", "low", "close"):
        bars[f"mark_{col}"] = bars[col]
    config = RunConfig(strategy="exposure", venue="binance_usdm", margin_mode="cross", leverage=5.0, cash=10_000.0)
    targets = np.zeros(len(bars))
    targets[1:] = 5.0
    slow, fast = run_both(bars, config, targets=targets)
    assert_parity(slow, fast, 10_000.0)
    for result in (slow, fast):
        liq = result.liquidations.iloc[0]
        assert liq["equity_after"] == 0.0 or abs(liq["equity_after"]) < 1e-9
        full_fee = notional(False, liq["qty"], 1.0, liq["fill_price"]) * 0.0125
        assert 0.0 < liq["fee"] < full_fee  # capped: what was left, not 1.25 % of the notional
        assert liq["insurance_fund"] == liq["fee"]


@st.composite
def case(draw: st.DrawFn) -> tuple:
    venue = draw(st.sampled_from(sorted(VENUES)))
    mode = draw(st.sampled_from(["isolated", "cross"]))
    seed = draw(st.integers(min_value=0, max_value=10_000))
    mark = draw(st.booleans())
    return venue, mode, seed, mark


@settings(max_examples=25, deadline=None)
@given(case())
def test_equity_after_any_liquidation_is_not_negative(args: tuple) -> None:
    venue, mode, seed, mark = args
    start, cash = VENUES[venue]
    bars = random_bars(seed, 800, start=start, mark=mark, venue=venue, vol=0.004, wick_rate=0.03)
    targets = random_targets(seed, len(bars), (-50.0, -20.0, -10.0, 10.0, 20.0, 50.0), p_change=0.02)
    config = RunConfig(strategy="exposure", venue=venue, margin_mode=mode, leverage=50.0, cash=cash)
    slow, fast = run_both(bars, config, targets=targets)
    assert_parity(slow, fast, cash)
    for result in (slow, fast):
        after = result.liquidations["equity_after"].to_numpy() if len(result.liquidations) else np.array([])
        assert (after >= -1e-9 * cash).all(), (venue, mode, after.min())


def test_an_exit_past_bankruptcy_on_an_isolated_position_is_the_liquidations() -> None:
    """10x isolated long of 5 BTC from 20,000 (10,000 USDT). At bar 3 the strategy exits at the
    open, but the last price opens at 17,800, past the bankruptcy price (about 18,010), while the
    mark opens at 19,200 (above the liquidation price, about 18,090) and then wicks to 18,000.
    Filled at 17,800 the exit would lose 5 x 2,200 = 11,000 USDT, more than the 10,000 posted:
    the account would end below zero. The liquidation takes the position instead (at the
    liquidation price: the mark opened above it), in both engines, and equity stays >= 0."""
    last = [(20_000, 20_010, 19_990, 20_000), (20_000, 20_010, 19_990, 20_000),
            (20_000, 20_000, 19_000, 19_000), (17_800, 18_100, 17_700, 18_000)] + [(18_000, 18_010, 17_990, 18_000)] * 4
    mark = [(20_000, 20_010, 19_990, 20_000), (20_000, 20_010, 19_990, 20_000),
            (20_000, 20_000, 19_200, 19_200), (19_200, 19_200, 18_000, 18_050)] + [(18_050, 18_060, 18_040, 18_050)] * 4
    index = pd.date_range("2021-05-18 01:00", periods=len(last), freq="1min", tz="UTC", name="open_time")
    bars = pd.DataFrame(last, columns=["open", "high", "low", "close"], index=index, dtype=float)
    bars["volume"] = 1.0
    bars[["mark_open", "mark_high", "mark_low", "mark_close"]] = np.asarray(mark, dtype=float)
    bars["funding_rate"] = np.nan
    targets = np.array([0.0, 10.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    config = RunConfig(strategy="exposure", venue="binance_usdm", margin_mode="isolated", leverage=10.0,
                       cash=10_000.0)
    slow, fast = run_both(bars, config, targets=targets)
    assert_parity(slow, fast, 10_000.0)
    for result in (slow, fast):
        assert len(result.liquidations) == 1
        liq = result.liquidations.iloc[0]
        assert liq["time"] == index[3]
        assert fill_beyond_bankruptcy(True, 1, liq["bankruptcy_price"], 17_800.0)
        assert liq["fill_price"] == liq["liquidation_price"]  # the mark opened above it: no gap
        assert 18_000 < liq["liquidation_price"] < 18_200 and 17_900 < liq["bankruptcy_price"] < liq["liquidation_price"]
        assert result.summary["final_equity"] >= 0.0
        assert list(result.fills["kind"]) == ["trade", "liquidation"]  # the exit never filled at 17,800
