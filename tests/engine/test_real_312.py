"""312 on the real BitMEX XBTUSD 1-minute bars (../shared/data) with the BitMEX profile.

Leveraged longs opened at the 2020-03-12 00:00 open (7,939.0). XBTUSD is inverse: an isolated
long of leverage L posts 1/L of the position's coin value, and BitMEX's maintenance is
0.50 % (base, in force until 2020-04-17) + 0.075 % exit taker fee + the funding rate when it
is a cost, valued at entry:

    liquidation  LP = E / (1 + 1/L - MM)        bankruptcy  BP = E / (1 + 1/L)

BitMEX takes the position over at the bankruptcy price. The file has no mark price, so the
trigger is the last-price low of each minute (the broker says so in the run's config).

Because the collateral is in the coin, an inverse long dies much sooner than a linear one:
even 2x (BP = 7,939/1.5 = 5,292.67) is liquidated on 2020-03-12 (low 5,244 at 23:23) and 1x
(LP = 7,939/1.99425 = 3,980.94 before funding) on 2020-03-13 01:57 (low 3,900), ahead of the 02:15
wick to 3,596.0; 0.5x (BP = 2,646.3) survives.
"""

from __future__ import annotations

import pandas as pd
import pytest

from engine.runner import RunConfig, run_backtest
from strategies import BuyAndHold

E = 7_939.0
MM = 0.005 + 0.00075


@pytest.fixture(scope="module")
def bars312(shared_data):
    from feeds.build import build_frame

    return build_frame(symbol="XBTUSD", start="2020-03-12", end="2020-03-16",
                       klines=shared_data / "bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv",
                       funding=shared_data / "bitmex_xbtusd_funding_2020-02-15_2020-04-15.csv")


def _run(bars, leverage):
    return run_backtest(bars, BuyAndHold, RunConfig(strategy="buy_and_hold", params={"leverage": leverage},
                                                    venue="bitmex", cash=1.0))


def _first_below(bars: pd.DataFrame, level: float, after: str | None = None) -> pd.Timestamp:
    lows = bars["low"] if after is None else bars.loc[after:, "low"]
    return lows[lows <= level].index[0]


@pytest.mark.parametrize("leverage", [25, 50, 100])
def test_high_leverage_longs_die_before_the_first_funding(bars312, leverage) -> None:
    result = _run(bars312, leverage)
    assert result.fills.iloc[0]["price"] == E
    [liq] = result.liquidations.to_dict("records")
    lp = E / (1 + 1 / leverage - MM)
    assert liq["liquidation_price"] == pytest.approx(lp, rel=1e-12)
    assert liq["fill_price"] == pytest.approx(E / (1 + 1 / leverage), rel=1e-12)
    assert liq["time"] == _first_below(bars312, lp)
    assert liq["time"] < pd.Timestamp("2020-03-12 04:00", tz="UTC")
    assert result.config["trigger"] == "last"


def test_10x_long_dies_after_paying_the_0400_funding(bars312) -> None:
    result = _run(bars312, 10)
    contracts = result.fills.iloc[0]["qty"]
    [funding] = result.funding.to_dict("records")[:1]
    # 04:00 settlement: +0.01 %, long pays contracts/price x rate from its isolated margin
    assert funding["time"] == pd.Timestamp("2020-03-12 04:00", tz="UTC")
    assert funding["rate"] == pytest.approx(0.0001)
    assert funding["amount"] == pytest.approx(-contracts / funding["price"] * 0.0001, rel=1e-12)
    collateral = contracts / E / 10 + funding["amount"]
    mm = MM + 0.0001  # the last funding rate is a cost to a long: BitMEX adds it to maintenance
    lp = contracts / (collateral + contracts / E * (1 - mm))
    assert _first_below(bars312, E / (1 + 0.1 - MM)) >= funding["time"]  # not breached before 04:00
    [liq] = result.liquidations.to_dict("records")
    assert liq["liquidation_price"] == pytest.approx(lp, rel=1e-12)
    assert liq["time"] == _first_below(bars312, lp, after="2020-03-12 04:00")
    assert liq["time"] == pd.Timestamp("2020-03-12 10:19", tz="UTC")


def test_2x_and_1x_longs_are_liquidated_and_half_x_survives(bars312) -> None:
    two = _run(bars312, 2)
    [liq2] = two.liquidations.to_dict("records")
    assert liq2["time"].date() == pd.Timestamp("2020-03-12").date()
    assert liq2["trigger_price"] <= liq2["liquidation_price"]
    one = _run(bars312, 1)
    [liq1] = one.liquidations.to_dict("records")
    # 1x: LP about 3,977 after the funding received on the 12th; the 01:57 low of 3,900 is below it
    assert liq1["time"] == pd.Timestamp("2020-03-13 01:57", tz="UTC")
    assert 3_950 < liq1["liquidation_price"] < E / (2 - MM)
    half = _run(bars312, 0.5)
    assert half.liquidations.empty
    assert half.summary["min_distance_to_liquidation"] > 0.2
    # the 0.5x long received the negative funding of 312 (-0.1691 %, then the -0.375 % cap)
    assert half.summary["funding_total"] > 0
