"""Hyperliquid's backstop on a gap: when the bar OPENS past the backstop level (equity below 2/3 of
the maintenance margin there, the book never having traded between the liquidation price and the
open), the liquidator vault takes the isolated position and all its margin; the margin left after
the close goes to the insurance fund, booked as the liquidation's fee (``fee`` / ``insurance_fund``
rows), and the isolated position, or a cross account holding only this position, ends with 0
(:func:`risk.formulas.backstop_charge`, the one kernel of the broker, the fast engine and
simulate_arrays; a cross account with several positions: :func:`risk.account.account_backstop`,
tests/portfolio/test_portfolio_backstop.py).

Source: "If the account equity drops below 2/3 of the maintenance margin without successful
liquidation through the order book, the backstop liquidator vault takes over: the position and its
margin are transferred to the liquidator; the maintenance margin is not returned"
(hyperliquid.gitbook.io/hyperliquid-docs/trading/liquidations; research mechanics.md 1.6, whose
worked example these bars follow: 1 BTC long at 100,000, isolated margin 10,000, mmr 1.25 %,
liquidation price 91,139.24, backstop level about 90,756).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine import fast
from engine.runner import RunConfig
from risk.formulas import BACKSTOP_MM_FRACTION, backstop_charge, liquidation_exit_price
from risk.venues import venue_rules
from tests.engine.helpers import bars
from tests.fast.helpers import assert_parity, run_both


def test_kernel_by_hand() -> None:
    assert BACKSTOP_MM_FRACTION == 2.0 / 3.0
    lp = 90_000.0 / 0.9875  # 91,139.24: 1 BTC long, 10,000 margin, equity = MM = 1.25 % x price
    # open 90,500: margin left 500 < 2/3 x 1.25 % x 90,500 = 754.17 -> all 500 to the fund
    assert backstop_charge(True, 1, lp, 90_500.0, 90_500.0, 500.0, 1_131.25, 0.0, 0.0, False) == (500.0, 500.0)
    # a fee already charged grows to the margin left, the fund by the same amount
    assert backstop_charge(True, 1, lp, 90_500.0, 90_500.0, 500.0, 1_131.25, 100.0, 100.0, False) == (500.0, 500.0)
    # open 91,000: 1,000 >= 2/3 x 1,137.5 = 758.33 -> unchanged
    assert backstop_charge(True, 1, lp, 91_000.0, 91_000.0, 1_000.0, 1_137.5, 0.0, 0.0, False) == (0.0, 0.0)
    # no gap (filled at the liquidation price): unchanged whatever the margin left
    assert backstop_charge(True, 1, lp, 95_000.0, lp, 1_139.24, 1_139.24, 0.0, 0.0, False) == (0.0, 0.0)
    # past bankruptcy (fill floored at 90,000, not the open): nothing left to take, unchanged
    assert backstop_charge(True, 1, lp, 89_000.0, 90_000.0, 0.0, 1_125.0, 0.0, -1_000.0, False) == (0.0, -1_000.0)
    # not a backstop venue / cross / insolvent: unchanged
    assert backstop_charge(False, 1, lp, 90_500.0, 90_500.0, 500.0, 1_131.25, 0.0, 0.0, False) == (0.0, 0.0)
    assert backstop_charge(True, 1, lp, 90_500.0, 90_500.0, -5.0, 1_131.25, -5.0, -5.0, True) == (-5.0, -5.0)
    # a short: 1 BTC at 100,000, 10,000 margin, liquidation price 110,000 / 1.0125 = 108,641.98;
    # open 109,300: margin left 700 < 2/3 x 1,366.25 = 910.83 -> 700 to the fund; open 108,700: 9,300
    # ... margin left 1,300 >= 906 -> unchanged
    slp = 110_000.0 / 1.0125
    assert liquidation_exit_price(-1, slp, 109_300.0) == 109_300.0
    assert backstop_charge(True, -1, slp, 109_300.0, 109_300.0, 700.0, 1_366.25, 0.0, 0.0, False) == (700.0, 700.0)
    assert backstop_charge(True, -1, slp, 108_700.0, 108_700.0, 1_300.0, 1_358.75, 0.0, 0.0, False) == (0.0, 0.0)
    assert venue_rules("hyperliquid").backstop_takes_margin
    assert not any(venue_rules(v).backstop_takes_margin for v in ("binance_usdm", "bitmex", "bybit", "okx"))


def _run(opn: float, low: float, mode: str = "isolated"):
    rows = [(100_000.0, 100_010.0, 99_990.0, 100_000.0), (100_000.0, 100_010.0, 99_990.0, 100_000.0),
            (opn, opn + 50.0, low, opn), (opn, opn + 10.0, opn - 10.0, opn)]
    frame = bars(rows, funding={}, start=pd.Timestamp("2025-06-02 00:00", tz="UTC"))  # no funding settles
    config = RunConfig(strategy="exposure", venue="hyperliquid", margin_mode=mode, leverage=10.0, cash=10_045.02)
    targets = np.full(len(rows), 10.0)
    slow, quick = run_both(frame, config, targets=targets)
    assert_parity(slow, quick, 10_045.02)
    arrays = fast.simulate_arrays(fast.prepare(frame, config), targets)
    return slow, quick, arrays


@pytest.mark.parametrize("opn, low, fill, fee, equity", [
    # (a) opens at 90,500, past the backstop level 90,000 / (1 - 2/3 x 1.25 %) = 90,756.30: the
    # margin left 10,000 - 9,500 = 500 < 2/3 x 1,131.25 = 754.17 -> the vault takes it (fee and fund
    # 500), equity = the cash outside the position, 0.02
    (90_500.0, 90_400.0, 90_500.0, 500.0, 0.020000000000436557),
    # just past the level: 90,756 -> 756 < 2/3 x 1,134.45 = 756.30 -> taken
    (90_756.0, 90_700.0, 90_756.0, 756.0, 0.020000000000436557),
    # (b) opens at 91,000 (past the liquidation price, above the backstop level): 1,000 >= 758.33,
    # the trader keeps the margin left, as before: equity 0.02 + 1,000
    (91_000.0, 90_900.0, 91_000.0, 0.0, 1_000.0200000000004),
    # just above the level: 90,757 -> 757 >= 2/3 x 1,134.4625 = 756.31 -> kept
    (90_757.0, 90_700.0, 90_757.0, 0.0, 757.0200000000004),
    # (c) no gap (opens 95,000, low 90,000): filled at the liquidation price 91,139.24, equity = MM
    # there (1,139.24) kept, as before
    (95_000.0, 90_000.0, 91_139.24050632911, 0.0, 1_139.2605063291085),
])
def test_hyperliquid_isolated_long_gap_past_the_backstop(opn: float, low: float, fill: float, fee: float,
                                                         equity: float) -> None:
    """10x isolated BTC long on Hyperliquid (taker 0.045 %, lot 0.00001, mmr 1.25 % from 2025-03-13),
    10,045.02 USDC: q = 10,045.02 x 10 / (1 + 10 x 0.00045) x 0.999999 / 100,000 = 1.000001 -> 1 BTC,
    entry fee 45, isolated margin 10,000, cash outside the position 10,045.02 - 45 - 10,000 = 0.02.
    Liquidation price 90,000 / (1 - 0.0125) = 91,139.24, bankruptcy 90,000, backstop level
    90,000 / (1 - 2/3 x 0.0125) = 90,756.30 (mechanics.md 1.6's example). No clearance fee on HL."""
    slow, quick, arrays = _run(opn, low)
    for result in (slow, quick):
        [liq] = result.liquidations.to_dict("records")
        assert liq["qty"] == 1.0 and liq["bankruptcy_price"] == 90_000.0
        assert math.isclose(liq["liquidation_price"], 90_000.0 / 0.9875, rel_tol=1e-12)
        assert liq["fill_price"] == pytest.approx(fill, rel=1e-12)
        assert liq["fee"] == pytest.approx(fee, rel=1e-12, abs=1e-9)
        assert liq["insurance_fund"] == pytest.approx(fee, rel=1e-12, abs=1e-9)  # fill = exit, only the fee
        assert liq["equity_after"] == pytest.approx(equity, rel=1e-9)
        assert liq["realized_pnl"] == pytest.approx(fill - 100_000.0, rel=1e-12)
        s = result.summary
        assert s["final_equity"] == pytest.approx(equity, rel=1e-9)
        assert s["insurance_fund"] == pytest.approx(fee, rel=1e-12, abs=1e-9)
        assert s["fees_total"] == pytest.approx(45.0 + fee, rel=1e-12)
        fees = result.fees
        liq_fees = fees[fees["kind"] == "liquidation"]["amount"].tolist()
        assert liq_fees == ([pytest.approx(fee, rel=1e-12)] if fee else [])
    assert arrays["insurance_fund"] == pytest.approx(fee, rel=1e-12, abs=1e-9)
    assert arrays["final_equity"] == pytest.approx(equity, rel=1e-9)


@pytest.mark.parametrize("opn, fee, equity", [
    # open 90,500: the wallet's equity there 10,000.02 - 9,500 = 500.02 < 2/3 x 1,131.25 = 754.17 ->
    # the vault takes the position and the whole cross margin: fee and fund 500.02, equity 0
    (90_500.0, 500.02000000000044, 0.0),
    # open 91,000 (past the liquidation price 91,139.22, above the backstop level): 1,000.02 >=
    # 2/3 x 1,137.5 = 758.33 -> the trader keeps it, as before
    (91_000.0, 0.0, 1_000.0200000000004),
])
def test_hyperliquid_cross_single_position_gap_past_the_backstop(opn: float, fee: float, equity: float) -> None:
    """Cross mode, one position (the account's cross margin is the whole wallet, 10,000.02 after
    the entry fee): liquidation price 91,139.22, bankruptcy 89,999.98. A bar opening past the
    backstop level: the vault takes the position and the cross margin, the account ends at 0."""
    slow, quick, arrays = _run(opn, opn - 100.0, mode="cross")
    for result in (slow, quick):
        [liq] = result.liquidations.to_dict("records")
        assert liq["fill_price"] == opn and liq["bankruptcy_price"] == pytest.approx(89_999.98, rel=1e-12)
        assert liq["fee"] == pytest.approx(fee, rel=1e-12, abs=1e-9)
        assert liq["insurance_fund"] == pytest.approx(fee, rel=1e-12, abs=1e-9)
        assert liq["equity_after"] == pytest.approx(equity, abs=1e-9)
        assert result.summary["final_equity"] == pytest.approx(equity, abs=1e-9)
        assert result.summary["fees_total"] == pytest.approx(45.0 + fee, rel=1e-12)
    assert arrays["insurance_fund"] == pytest.approx(fee, rel=1e-12, abs=1e-9)
    assert arrays["final_equity"] == pytest.approx(equity, abs=1e-9)


@pytest.mark.parametrize("opn, fee, equity", [(90_500.0, 500.02000000000044, 1_000.0),
                                              (91_000.0, 0.0, 2_000.0200000000004)])
def test_hyperliquid_cross_position_beside_an_isolated_one(opn: float, fee: float, equity: float) -> None:
    """The broker with two feeds: the BTC long cross (the account's only cross position), an ETH long
    isolated (5 ETH at 2,000, 10x: 1,000 of isolated margin, its bars flat). Cash 11,049.52 less the
    fees 45 + 4.5 and the isolated 1,000: the cross margin is 10,000.02, as in the test above, so the
    levels are the same (liquidation 91,139.22, bankruptcy 89,999.98). Opening at 90,500 the vault
    takes the BTC position and the cross margin 500.02; the isolated ETH position keeps its 1,000
    (equity 1,000; before, the backstop was off whenever the broker had a second feed: 1,500.02).
    At 91,000 the cross margin left, 1,000.02, is kept: equity 2,000.02."""
    import backtrader as bt

    from engine.broker import PerpBroker
    from engine.bt_data import PerpData
    from tests.engine.helpers import Script

    start = pd.Timestamp("2025-06-02 00:00", tz="UTC")
    btc = bars([(100_000.0, 100_010.0, 99_990.0, 100_000.0)] * 2 + [(opn, opn + 50.0, opn - 100.0, opn)]
               + [(opn, opn + 10.0, opn - 10.0, opn)], start=start)
    eth = bars([(2_000.0, 2_000.0, 2_000.0, 2_000.0)] * 4, start=start)
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    broker = PerpBroker(venue="hyperliquid", leverage=10.0, allow_no_funding=True)
    broker.set_cash(11_049.52)
    broker.set_coo(True)
    cerebro.setbroker(broker)
    for frame, symbol, mode in ((btc, "BTC", "cross"), (eth, "ETH", "isolated")):
        data = PerpData.from_frame(frame, name=symbol)
        cerebro.adddata(data)
        broker.attach(data, symbol=symbol, margin_mode=mode)
    cerebro.addstrategy(Script, plan={0: {0: 1.0}, 1: {0: 5.0}})
    cerebro.run()
    [liq] = broker.events["liquidations"]
    assert liq["symbol"] == "BTC" and liq["fill_price"] == opn
    assert liq["liquidation_price"] == pytest.approx(91_139.22, abs=0.01)
    assert liq["bankruptcy_price"] == pytest.approx(89_999.98, rel=1e-12)
    assert liq["fee"] == pytest.approx(fee, rel=1e-12, abs=1e-9)
    assert liq["insurance_fund"] == pytest.approx(fee, rel=1e-12, abs=1e-9)
    assert broker.insurance_fund == pytest.approx(fee, rel=1e-12, abs=1e-9)
    assert broker.getvalue() == pytest.approx(equity, abs=1e-6)
