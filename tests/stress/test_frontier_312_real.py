"""Acceptance: leveraged buy-and-hold through the real 312 on BitMEX XBTUSD, from 2020-03-12 00:00.

Hand calculation (BitMEX isolated, inverse contract, trigger on last price: the shared file
has no mark price):

    entry E = 7,939.0 (open of the 2020-03-12 00:00 bar)
    LP_long = E / (1 + IM - MM),   IM = 1/L,
    MM = 0.5 % (base) + 0.075 % (taker fee) + 0.01 % (funding cost: the last rate, 2020-03-11
         20:00, is +0.01 %, paid by longs) = 0.585 %
    real low after entry: 3,596.0 (2020-03-13 02:15)

    L = 0.5:  LP = 7939 / (1 + 2     - 0.00585) = 2,651.5  < 3,596  survives
    L = 0.75: LP = 7939 / (1 + 1.333 - 0.00585) = 3,410.9  < 3,596  survives
    L = 1:    LP = 7939 / (1 + 1     - 0.00585) = 3,981.1  > 3,596  liquidated
    L = 2:    LP = 7939 / (1 + 0.5   - 0.00585) = 5,313.4  > 3,596  liquidated

so the survival frontier is 0.75x: even an unleveraged (1x) long on BitMEX was liquidated in
312. Later funding settlements move the isolated collateral (and the funding term of MM) by
well under 1 % of the price, far from the 5 % and 10 % margins above.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.stress import StressSpec, load_scenario, run_stress

pytestmark = pytest.mark.shared_data

E = 7939.0
MM = 0.005 + 0.00075 + 0.0001
LOW = 3596.0
LEVERAGES = [0.5, 0.75, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0]


def lp(leverage: float) -> float:
    return E / (1.0 + 1.0 / leverage - MM)


@pytest.fixture(scope="module")
def stress_312(shared_data, tmp_path_factory):
    scenario = load_scenario("312", "real", str(shared_data))
    spec = StressSpec(strategy="buy_and_hold", params={"entry_time": "2020-03-12T00:00Z"}, scenarios=["312"],
                      leverages=LEVERAGES, venue="bitmex", data_kind="real", data_path=str(shared_data), workers=2)
    return scenario.bars, run_stress(spec, tmp_path_factory.mktemp("s312"), inputs=[scenario], progress=False)


def test_the_real_bars_are_what_the_hand_calculation_uses(stress_312) -> None:
    bars, _ = stress_312
    entry = pd.Timestamp("2020-03-12T00:00Z")
    assert bars.attrs["kind"] == "real"
    assert bars.loc[entry, "open"] == E
    after = bars.loc[entry:]
    assert after["low"].min() == LOW
    assert after["low"].idxmin() == pd.Timestamp("2020-03-13T02:15Z")


def test_frontier_equals_the_hand_calculation(stress_312) -> None:
    bars, result = stress_312
    expected = max(lev for lev in LEVERAGES if lp(lev) < LOW)
    assert expected == 0.75
    assert result.frontier["max_surviving_leverage"].tolist() == [0.75]
    surv = result.survival.set_index("leverage")
    assert surv.loc[[0.5, 0.75], "survived"].all()
    assert not surv.loc[LEVERAGES[2:], "survived"].any()
    assert (surv["data_kind"] == "real").all() and (surv["venue"] == "bitmex").all()


@pytest.mark.parametrize("leverage", [1.0, 2.0, 5.0])
def test_liquidation_price_and_time_match_the_formula(stress_312, leverage) -> None:
    bars, result = stress_312
    row = result.survival.set_index("leverage").loc[leverage]
    assert row["liquidation_price"] == pytest.approx(lp(leverage), rel=0.005)
    # liquidated in the first bar after entry whose low reaches the liquidation price in force
    after = bars.loc["2020-03-12T00:00Z":]
    first = after.index[np.argmax(after["low"].to_numpy() <= row["liquidation_price"])]
    assert row["liquidated_at"] == first
    assert row["equity_left"] < 0.01 and row["max_drawdown"] > 0.99


def test_one_x_dies_in_the_early_hours_of_march_13(stress_312) -> None:
    _, result = stress_312
    row = result.survival.set_index("leverage").loc[1.0]
    assert pd.Timestamp("2020-03-13T01:30Z") <= row["liquidated_at"] <= pd.Timestamp("2020-03-13T02:15Z")
    survivor = result.survival.set_index("leverage").loc[0.5]
    assert pd.isna(survivor["liquidated_at"]) and math.isnan(survivor["liquidation_price"])
    # 0.5x: an unlevered half-position loses ~ (1 - 3596/7939)/2 at worst, in BTC terms it is
    # an inverse contract: the drawdown is measured in BTC equity
    assert 0.3 < survivor["max_drawdown"] < 0.7
