"""The insurance fund's result of a solvent liquidation whose bar gapped through the liquidation
price: the fee paid to it plus ``uPnL(trader's fill -> the fund's market exit)`` of the closed
quantity, the exit being the liquidation price, or the trigger open when the bar gapped through it
(:func:`risk.formulas.liquidation_charge`, :func:`risk.formulas.liquidation_exit_price`).

Before, the engines booked the fund as if it always closed at the liquidation price: a Binance
position gapping past its bankruptcy price gave the fund its capped clearance fee (0 here) instead
of the loss of closing at the open (-2,500 USDT below), and a BitMEX position taken over at its
bankruptcy price gave it ``uPnL(bankruptcy -> liquidation price)`` (0.057 XBT below) even when the
bar opened below the liquidation price (0.0109 XBT) or below bankruptcy (-0.234 XBT). The trader's
side (fill, fee, realized PnL, equity per bar, fees) is the same as before, bit for bit: the
figures asserted here are the ones both engines gave before the change.

Sources: Binance FAQ "Insurance Fund" (360033525371): the fund takes over bankrupt positions,
"losses funded by the fund, profits credited to it"; BitMEX liquidation
(https://www.bitmex.com/app/liquidation): the engine takes the position over at the bankruptcy
price, "fills better than bankruptcy go to the insurance fund; if it cannot fill at bankruptcy it
spends the fund to aggress the book".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine import fast
from engine.runner import RunConfig
from risk.formulas import liquidation_charge, liquidation_exit_price
from tests.engine.helpers import bars
from tests.fast.helpers import assert_parity, run_both


def test_kernel_by_hand() -> None:
    # the market exit: the liquidation price, or the open when the bar gapped through it (not floored)
    assert liquidation_exit_price(1, 18_080.0, 18_500.0) == 18_080.0
    assert liquidation_exit_price(1, 18_080.0, 17_500.0) == 17_500.0
    assert liquidation_exit_price(-1, 21_900.0, 21_000.0) == 21_900.0
    assert liquidation_exit_price(-1, 21_900.0, 22_500.0) == 22_500.0
    # Binance long 5 BTC filled at bankruptcy 18,000 (margin left 0: no fee), the open 17,500:
    # the fund closes at 17,500: 5 x (17,500 - 18,000) = -2,500
    assert liquidation_charge(False, False, 1, 5.0, 1.0, 18_000.0, 18_080.0, 17_500.0, 0.0125, 0.0, False) == \
        (0.0, -2_500.0)
    # a short 5 BTC filled at bankruptcy 22,000, the open 22,500: -5 x (22,500 - 22,000) = -2,500
    assert liquidation_charge(False, False, -1, 5.0, 1.0, 22_000.0, 21_900.0, 22_500.0, 0.0125, 0.0, False) == \
        (0.0, -2_500.0)
    # no gap, or a gap not past bankruptcy (the trader filled at the open): the fee, as before
    assert liquidation_charge(False, False, 1, 0.5, 1.0, 18_000.0, 18_000.0, 18_500.0, 0.0125, 500.0, False) == \
        (112.5, 112.5)
    assert liquidation_charge(False, False, 1, 0.5, 1.0, 17_900.0, 18_000.0, 17_900.0, 0.0125, 500.0, False) == \
        (111.875, 111.875)
    # BitMEX long 10,000 contracts taken over at 9,000, liquidation price 9,100: no gap 10,000 x
    # (1/9,000 - 1/9,100) = 0.0122100 XBT; the open 9,050: 10,000 x (1/9,000 - 1/9,050) = 0.0061387;
    # the open 8,900, past bankruptcy: 10,000 x (1/9,000 - 1/8,900) = -0.0124844
    for opn, fund in ((9_200.0, 10_000 * (1 / 9_000 - 1 / 9_100)), (9_050.0, 10_000 * (1 / 9_000 - 1 / 9_050)),
                      (8_900.0, 10_000 * (1 / 9_000 - 1 / 8_900))):
        fee, got = liquidation_charge(True, True, 1, 10_000.0, 1.0, 9_000.0, 9_100.0, opn, 0.0, 0.0, False)
        assert fee == 0.0 and math.isclose(got, fund, rel_tol=1e-12)
    # insolvent: unchanged, the cover (the exit does not enter)
    assert liquidation_charge(False, False, 1, 24.39, 1.0, 20_000.0, 20_610.0, 19_000.0, 0.0125, -14_634.0, True) == \
        (-14_634.0, -14_634.0)


def _gap_run(venue: str, start: str, cash: float, rows: list[tuple[float, float, float, float]]):
    frame = bars(rows, funding={}, start=pd.Timestamp(start, tz="UTC"))  # no funding settles
    config = RunConfig(strategy="exposure", venue=venue, margin_mode="isolated", leverage=10.0, cash=cash)
    targets = np.full(len(rows), 10.0)
    slow, quick = run_both(frame, config, targets=targets)
    assert_parity(slow, quick, cash)
    arrays = fast.simulate_arrays(fast.prepare(frame, config), targets)
    return slow, quick, arrays


def test_binance_isolated_long_gapping_past_bankruptcy() -> None:
    """10x isolated long on Binance USDT-M (taker 0.04 %, lot 0.001), 10,041 USDT: q = 10,041 x 10 /
    (1 + 10 x 0.0004) x 0.999999 / 20,000 = 5.0004 -> 5.000 BTC, notional 100,000, entry fee 40,
    isolated margin 100,000 / 10 = 10,000, bankruptcy price 20,000 - 10,000 / 5 = 18,000 (the
    liquidation price 18,080.40). Bar 2 opens at 17,500, below bankruptcy: the trader is filled at
    18,000 and loses exactly the margin (realized -10,000, no margin left: clearance fee 0, equity
    10,041 - 40 - 10,000 = 1). The fund takes the position over at 18,000 and closes it at the open
    17,500: 5 x (17,500 - 18,000) = -2,500 USDT (before: 0, the capped fee only)."""
    rows = [(20_000.0, 20_010.0, 19_990.0, 20_000.0), (20_000.0, 20_010.0, 19_990.0, 20_000.0),
            (17_500.0, 17_600.0, 17_400.0, 17_550.0), (17_550.0, 17_600.0, 17_500.0, 17_550.0)]
    slow, quick, arrays = _gap_run("binance_usdm", "2021-05-18 00:00", 10_041.0, rows)
    for result in (slow, quick):
        [liq] = result.liquidations.to_dict("records")
        assert liq["qty"] == 5.0 and liq["bankruptcy_price"] == 18_000.0 and liq["fill_price"] == 18_000.0
        assert liq["insurance_fund"] == -2_500.0
        assert result.summary["insurance_fund"] == -2_500.0
        # the trader's side, as before (bit for bit)
        assert (liq["fee"], liq["realized_pnl"], liq["equity_after"], liq["insurance_cover"]) == \
            (0.0, -10_000.0, 1.0, 0.0)
        assert liq["liquidation_price"] == 18080.402010050253
        s = result.summary
        assert (s["final_equity"], s["fees_total"], s["insurance_cover_total"]) == (1.0, 40.0, 0.0)
        assert result.equity["equity"].tolist() == [10_001.0, 10_001.0, 1.0, 1.0]
    assert arrays["insurance_fund"] == -2_500.0 and arrays["final_equity"] == 1.0


BITMEX_ROWS = [(10_000.0, 10_010.0, 9_990.0, 10_000.0), (10_000.0, 10_010.0, 9_990.0, 10_000.0)]


@pytest.mark.parametrize("opn, fund", [
    # 99,255 x (1.1 / 10,000 - 1 / 9,100) = 10.91805 - 10.907142857 = 0.010907143 XBT
    (9_100.0, 0.01090714285714191),
    # 99,255 x (1.1 / 10,000 - 1 / 8,900) = 10.91805 - 11.152247191 = -0.234197191 XBT
    (8_900.0, -0.23419719101123734),
    # no gap (open 9,500, low 9,100): uPnL(bankruptcy -> liquidation price), as before
    (9_500.0, 0.05707162500000139),
])
def test_bitmex_inverse_long_gapping_through_the_liquidation_price(opn: float, fund: float) -> None:
    """10x isolated XBTUSD long (inverse, 1 USD contracts, taker 0.075 %), 1 XBT: q = 1 x 10 /
    (1 + 10 x 0.00075) x 0.999999 x 10,000 = 99,255.5 -> 99,255 contracts, entry fee 9.9255 x 0.075 %
    = 0.007444125 XBT, margin 9.9255 / 10 = 0.99255 XBT, bankruptcy price 99,255 / (0.99255 + 9.9255)
    = 10,000 / 1.1 = 9,090.91, liquidation price 9,138.68 (MM with the taker fee). BitMEX takes the
    position over at the bankruptcy price: the trader loses the margin whatever the open. The fund
    closes it at the market: at the liquidation price when the bar did not gap (99,255 x (1.1 / 10,000
    - 1 / 9,138.68) = 0.0570716 XBT, the booking of before), at the open when it did: 9,100 (below
    the liquidation price, above bankruptcy) 0.0109071 XBT, 8,900 (below bankruptcy) -0.2341972 XBT
    (before: 0.0570716 in both)."""
    low = opn - 400.0 if opn > 9_138.68 else opn - 50.0
    rows = BITMEX_ROWS + [(opn, opn + 50.0, low, opn), (opn, opn + 10.0, opn - 10.0, opn)]
    slow, quick, arrays = _gap_run("bitmex", "2020-04-16 12:00", 1.0, rows)
    for result in (slow, quick):
        [liq] = result.liquidations.to_dict("records")
        assert liq["qty"] == 99_255.0
        assert math.isclose(liq["bankruptcy_price"], 10_000 / 1.1, rel_tol=1e-12)
        assert liq["insurance_fund"] == pytest.approx(fund, rel=1e-12)
        assert math.isclose(liq["insurance_fund"],
                            99_255 * (1 / liq["bankruptcy_price"] - 1 / min(opn, liq["liquidation_price"])),
                            rel_tol=1e-9)
        assert result.summary["insurance_fund"] == pytest.approx(fund, rel=1e-12)
        # the trader's side, as before (bit for bit)
        assert (liq["fill_price"], liq["fee"], liq["realized_pnl"], liq["equity_after"]) == \
            (9090.909090909092, 0.0, -0.9925499999999986, 5.875000001376307e-06)
        s = result.summary
        assert (s["final_equity"], s["fees_total"], s["insurance_cover_total"]) == \
            (5.875000001376307e-06, 0.007444125, 0.0)
        assert result.equity["equity"].tolist() == [0.992555875, 0.992555875, 5.875000001376307e-06,
                                                    5.875000001376307e-06]
    assert arrays["insurance_fund"] == pytest.approx(fund, rel=1e-12)
    assert arrays["final_equity"] == 5.875000001376307e-06
