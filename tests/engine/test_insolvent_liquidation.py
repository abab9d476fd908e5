"""A position whose margin a funding payment took entirely (funding larger than the margin) is
liquidated at the market, the bar's open, and the insurance fund covers the shortfall; it is never
"filled" at its bankruptcy price, which then lies beyond the entry (before the fix: a long closed at
20,600 on a bar trading 19,950..20,100; on the QA run 151,197 against a market of 30,200)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runner import RunConfig
from risk.formulas import liquidation_charge, liquidation_fill
from tests.engine.helpers import bars
from tests.fast.helpers import assert_parity, run_both


def frame():
    # hourly bars; 01:00 settles a funding rate of 5 % (the largest a file or --funding-rate may hold)
    rows = [(20_000.0, 20_100.0, 19_900.0, 20_000.0), (20_000.0, 20_100.0, 19_950.0, 20_050.0),
            (20_050.0, 20_150.0, 20_000.0, 20_100.0), (20_100.0, 20_200.0, 20_050.0, 20_150.0)]
    return bars(rows, funding={1: 0.05}, freq="1h")


def test_kernels_by_hand() -> None:
    # long 24.39 BTC from 20,000 with collateral -14,634 (9,756 margin - 24,390 funding):
    # bankruptcy price 20,000 + 14,634 / 24.39 = 20,600, above the open: insolvent, filled at the open
    assert liquidation_fill(False, 1, 20_610.0, 20_600.0, 20_000.0, -14_634.0) == (20_000.0, True)
    assert liquidation_fill(True, 1, 20_610.0, 20_600.0, 20_000.0, -14_634.0) == (20_000.0, True)
    assert liquidation_fill(False, -1, 19_390.0, 19_400.0, 20_000.0, -14_634.0) == (20_000.0, True)
    # margin left: the usual rule (liquidation price; gap: the open, floored at bankruptcy)
    assert liquidation_fill(False, 1, 19_700.0, 19_600.0, 20_000.0, 9_756.0) == (19_700.0, False)
    assert liquidation_fill(False, 1, 19_700.0, 19_600.0, 19_500.0, 9_756.0) == (19_600.0, False)
    # negative collateral but the position in profit (bankruptcy below the open): the usual rule
    assert liquidation_fill(False, 1, 19_700.0, 19_600.0, 20_000.0, -100.0) == (19_700.0, False)
    # the fund covers the shortfall, no clearance fee; otherwise the clearance of liquidation_clearance
    assert liquidation_charge(False, False, 1, 24.39, 1.0, 20_000.0, 20_610.0, 0.0125, -14_634.0, True) == \
        (-14_634.0, -14_634.0)
    assert liquidation_charge(False, False, 1, 0.5, 1.0, 18_000.0, 18_000.0, 0.0125, 500.0, False) == (112.5, 112.5)


def test_funding_larger_than_the_margin_liquidates_at_the_open_both_engines() -> None:
    config = RunConfig(strategy="exposure", venue="binance_usdm", leverage=50.0, cash=10_000.0)
    slow, fast = run_both(frame(), config, targets=np.array([50.0, 50.0, 50.0, 50.0]))
    assert_parity(slow, fast, 10_000.0)
    for result in (slow, fast):
        liq = result.liquidations.iloc[0]
        # notional 10,000 x 50 / (1 + 50 x 0.0004 taker) x 0.999999 = 490,195.59 -> 24.509 BTC (lot 0.001)
        assert liq["qty"] == pytest.approx(24.509, abs=1e-12)
        assert liq["fill_price"] == 20_000.0  # bar 1's open, inside its range 19,950..20,100
        assert liq["trigger_price"] == 19_950.0
        assert liq["bankruptcy_price"] == pytest.approx(20_600.0, rel=1e-12)
        s = result.summary
        assert s["funding_total"] == pytest.approx(-24.509 * 20_000.0 * 0.05, rel=1e-12)  # -24,509
        # margin 490,180 / 50 = 9,803.6 - 24,509 funding = -14,705.4 (bankruptcy 20,000 + 14,705.4 / 24.509
        # = 20,600): the insurance fund pays it back
        assert liq["insurance_fund"] == pytest.approx(-14_705.4, rel=1e-9)
        assert s["insurance_fund"] == pytest.approx(-14_705.4, rel=1e-9)
        # what was never posted as margin is left: 10,000 - 196.072 entry fee - 9,803.6 margin = 0.328
        assert s["final_equity"] == pytest.approx(0.328, abs=1e-6)


def test_bankruptcy_venue_insolvent_fill_is_the_open_too() -> None:
    config = RunConfig(strategy="exposure", venue="bybit", leverage=50.0, cash=10_000.0)
    slow, fast = run_both(frame(), config, targets=np.array([50.0, 50.0, 50.0, 50.0]))
    assert_parity(slow, fast, 10_000.0)
    liq = slow.liquidations.iloc[0]
    assert liq["fill_price"] == 20_000.0 and liq["bankruptcy_price"] > 20_100.0
    assert 0.0 <= slow.summary["final_equity"] < 1.0


@pytest.mark.parametrize("venue", ["hyperliquid", "binance_usdm", "okx"])
def test_an_insolvent_position_gets_no_partial_step(venue) -> None:
    config = RunConfig(strategy="exposure", venue=venue, leverage=40.0, cash=10_000.0, partial_liquidation=True)
    slow, fast = run_both(frame(), config, targets=np.array([40.0, 40.0, 40.0, 40.0]))
    assert_parity(slow, fast, 10_000.0)
    liq = slow.liquidations
    assert len(liq) == 1 and not liq["partial"].iloc[0]  # the whole position at once
    assert liq["fill_price"].iloc[0] == 20_000.0 and liq["insurance_fund"].iloc[0] < 0.0
    assert liq["equity_after"].iloc[0] >= 0.0
