"""Hyperliquid's backstop for a cross account with several positions, both portfolio engines, and
the rest of a breached Hyperliquid account closed at the market.

HL docs, trading/liquidations (research mechanics.md 1.6): "If the account equity drops below 2/3
of the maintenance margin without successful liquidation through the order book, the backstop
liquidator vault takes over: the position and its margin are transferred to the liquidator; the
maintenance margin is not returned." At bar resolution the book liquidation fails when the account
OPENS below that level (:func:`risk.account.account_backstop`): every cross position closes at its
trigger open, the cross margin left is the vault's (the last row's fee, paid to the fund), a pool
below 0 after a close is the fund's cover, and the account ends at 0.

Hand example (Hyperliquid from 2025-03-13: BTC maintenance 1.25 %, ETH 2 %, taker 0.045 %, no
clearance fee, lots 0.00001 / 0.0001): 10,040.60 USDC, targets BTC 8x and ETH 1x of the account
(gross 9, 1 + 9 x 0.00045 = 1.00405): q_BTC = 10,040.6 x 8 / 1.00405 x 0.999999 / 100,000 =
0.800007 -> 0.8 BTC at 100,000, q_ETH = 10,040.6 / 1.00405 x 0.999999 / 2,000 = 5.00004 -> 5 ETH at
2,000; entry fees (80,000 + 10,000) x 0.00045 = 40.5, wallet 10,000.10. Bar 2: BTC opens at X
(trades X - 100 .. X + 100), ETH at 1,900 (flat). At the opens the account's equity is
10,000.1 + 0.8 (X - 100,000) - 500 and its MM 0.0125 x 0.8 X + 0.02 x 5 x 1,900 = 0.01 X + 190.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.fast_portfolio import run_fast_portfolio
from engine.portfolio import Leg, PortfolioResult, PortfolioSpec, run_backtrader
from risk.account import account_backstop
from risk.formulas import BACKSTOP_MM_FRACTION
from tests.engine.helpers import bars
from tests.fast.helpers import gapped
from tests.portfolio.helpers import assert_conserved, assert_same, money_gap, random_targets, two_symbols

START = pd.Timestamp("2025-06-02 00:00", tz="UTC")
WALLET = 10_040.6 - 40.5


def flat(p: float) -> tuple[float, float, float, float]:
    return (p, p, p, p)


def run(x: float) -> tuple[PortfolioResult, PortfolioResult]:
    btc = bars([flat(100_000.0), flat(100_000.0), (x, x + 100.0, x - 100.0, x), flat(x)], start=START)
    eth = bars([flat(2_000.0), flat(2_000.0), flat(1_900.0), flat(1_900.0)], start=START)
    spec = PortfolioSpec([Leg("BTC", btc, np.array([8.0, 8.0, 8.0, 0.0])),
                          Leg("ETH", eth, np.array([1.0, 1.0, 1.0, 0.0]))],
                         venue="hyperliquid", cash=10_040.6, allow_no_funding=True)
    r, f = run_backtrader(spec), run_fast_portfolio(spec)
    assert_same(r, f)
    for res in (r, f):
        fills = res.events["fills"]
        assert fills["qty"].tolist()[:2] == [pytest.approx(0.8), pytest.approx(5.0)]
        assert_conserved(res, spec.cash)
    return r, f


def test_the_kernel_compares_the_margin_balance_at_the_opens_with_two_thirds_of_the_mm() -> None:
    assert BACKSTOP_MM_FRACTION == 2.0 / 3.0
    # X = 89,000: equity 700.1, MM 1,080 -> 700.1 < 720: the vault's
    assert account_backstop(True, WALLET, 890.0 + 190.0, -8_800.0 - 500.0)
    # X = 89,100: equity 780.1, MM 1,081 -> 780.1 >= 720.67: the book liquidation
    assert not account_backstop(True, WALLET, 891.0 + 190.0, -8_720.0 - 500.0)
    # not a backstop venue, or no maintenance margin: never
    assert not account_backstop(False, WALLET, 890.0 + 190.0, -8_800.0 - 500.0)
    assert not account_backstop(True, -5.0, 0.0, 0.0)


def test_an_account_opening_below_the_backstop_level_goes_to_the_vault() -> None:
    # X = 89,000 (above): 700.1 < 2/3 x 1,080 = 720. BTC (the larger loss, -8,800) first, at its open,
    # the pool 700.1 after it; ETH at its open 1,900 (-500); the 700.1 left is the vault's: ETH's row
    # fee and fund 700.1, the account ends at 0 (before: 700.1 kept, as on a successful liquidation)
    r, f = run(89_000.0)
    for res in (r, f):
        btc, eth = res.events["liquidations"].to_dict("records")
        assert (btc["symbol"], eth["symbol"]) == ("BTC", "ETH") and btc["account"] and eth["account"]
        assert btc["fill_price"] == 89_000.0 and btc["trigger_price"] == 89_000.0
        assert btc["realized_pnl"] == pytest.approx(-8_800.0, abs=1e-9)
        assert btc["fee"] == 0.0 and btc["insurance_fund"] == 0.0 and btc["insurance_cover"] == 0.0
        assert btc["equity_after"] == pytest.approx(700.1, abs=1e-9)
        # BTC's account-level price with ETH at its open: 10,000.1 - 500 + 0.8 (P - 100,000) = 190 + 0.01 P
        assert btc["liquidation_price"] == pytest.approx((80_000.0 - 10_000.1 + 500.0 + 190.0) / 0.79, rel=1e-12)
        assert btc["account_margin_ratio"] == pytest.approx(1_080.0 / 700.1, rel=1e-12)
        assert eth["fill_price"] == 1_900.0 and eth["realized_pnl"] == pytest.approx(-500.0, abs=1e-9)
        # ETH's level on the wallet after BTC's close, 1,200.1: 1,200.1 + 5 (P - 2,000) = 0.02 x 5 P
        assert eth["liquidation_price"] == pytest.approx((10_000.0 - 1_200.1) / 4.9, rel=1e-12)
        assert eth["fee"] == pytest.approx(700.1, abs=1e-9) and eth["insurance_fund"] == pytest.approx(700.1, abs=1e-9)
        assert eth["equity_after"] == pytest.approx(0.0, abs=1e-9) and eth["insurance_cover"] == 0.0
        assert res.insurance_fund == pytest.approx(700.1, abs=1e-9)
        assert res.summary["fees_total"] == pytest.approx(40.5 + 700.1, abs=1e-9)
        assert res.equity.tolist() == [pytest.approx(WALLET, abs=1e-9)] * 2 + [pytest.approx(0.0, abs=1e-9)] * 2
        assert (res.records["qty"][-1] == 0.0).all()


def test_above_the_backstop_level_the_account_keeps_its_margin_and_the_rest_closes_at_the_market() -> None:
    # X = 89,100: 780.1 >= 2/3 x 1,081 = 720.67, breached at the lows (BTC 89,000: 700.1 <= 1,080). BTC's
    # account-level price 89,480.89 (ETH at 1,900) lies above its open: filled at the open 89,100
    # (-8,720). ETH, the rest of the breached account (every cross position is closed), at the market:
    # its bar's only price 1,900 (-500). Before, at a level of its own, 1,779.57 on the wallet 1,280.1
    # after BTC ((10,000 - 1,280.1) / 4.9), a price the bar never traded: 1,101 USDC lost that the
    # market did not take. The account keeps 780.1; no fee, the fund untouched.
    r, f = run(89_100.0)
    for res in (r, f):
        btc, eth = res.events["liquidations"].to_dict("records")
        assert btc["liquidation_price"] == pytest.approx((80_000.0 - 10_000.1 + 500.0 + 190.0) / 0.79, rel=1e-12)
        assert btc["fill_price"] == 89_100.0 and btc["realized_pnl"] == pytest.approx(-8_720.0, abs=1e-9)
        assert eth["fill_price"] == 1_900.0 and eth["trigger_price"] == 1_900.0
        assert eth["realized_pnl"] == pytest.approx(-500.0, abs=1e-9)
        assert btc["fee"] == eth["fee"] == 0.0 and res.insurance_fund == 0.0
        assert eth["equity_after"] == pytest.approx(780.1, abs=1e-9)
        assert res.equity[-1] == pytest.approx(780.1, abs=1e-9)


def test_an_insolvent_account_goes_to_the_vault_and_the_fund_covers_the_pool() -> None:
    # X = 87,000: equity at the opens 10,000.1 - 10,400 - 500 = -899.9. BTC at its open: the pool
    # (ETH marked at 1,900) is -899.9 -> the fund's cover on BTC's row; ETH at 1,900 leaves 0: nothing to take
    r, f = run(87_000.0)
    for res in (r, f):
        btc, eth = res.events["liquidations"].to_dict("records")
        assert btc["fill_price"] == 87_000.0 and eth["fill_price"] == 1_900.0
        assert btc["insurance_cover"] == pytest.approx(899.9, abs=1e-9)
        assert btc["insurance_fund"] == pytest.approx(-899.9, abs=1e-9) and btc["fee"] == 0.0
        assert eth["insurance_cover"] == 0.0 and eth["fee"] == 0.0 and eth["insurance_fund"] == 0.0
        assert btc["equity_after"] == pytest.approx(0.0, abs=1e-9) and eth["equity_after"] == pytest.approx(0.0, abs=1e-9)
        assert res.insurance_fund == pytest.approx(-899.9, abs=1e-9)
        assert res.summary["insurance_cover_total"] == pytest.approx(899.9, abs=1e-9)
        assert res.equity[-1] == pytest.approx(0.0, abs=1e-9)


def test_parity_with_the_broker_on_gapped_bars_reaches_the_backstop() -> None:
    taken = 0
    for seed in range(3):
        btc, eth = two_symbols(seed + 20, 900, venue="hyperliquid")
        btc, eth = gapped(btc, seed), gapped(eth, seed + 100)
        choices = (-20.0, -10.0, 0.0, 10.0, 20.0)
        spec = PortfolioSpec([Leg("BTC", btc, random_targets(seed, 900, choices, 0.02)),
                              Leg("ETH", eth, random_targets(seed + 7, 900, choices, 0.02))], venue="hyperliquid")
        r, f = run_backtrader(spec), run_fast_portfolio(spec)
        assert_same(r, f)
        assert abs(money_gap(r, spec.cash)) < 1e-6 * spec.cash
        liqs = r.events["liquidations"]
        taken += int((liqs["fee"] > 0.0).sum())  # HL charges no clearance fee: a fee is the vault's take
    assert taken > 0
