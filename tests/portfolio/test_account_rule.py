"""risk.account: the account-level (cross) liquidation decision, on Binance's published two-position
example and on hand-made accounts; the compiled kernels agree with the Python ones."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk import account as A
from risk.formulas import liquidation_price_bracket, unrealized_pnl

K = A.jit_kernels(numba.njit)

# Binance, "How to calculate liquidation price of USDⓈ-M contracts" (cross-margin example;
# ../shared/research/mechanics.md §1.1): one wallet of 1,535,443.01 USDT,
# BTCUSDT long 109.488 at 32,481.98, mark 31,967.27, bracket 2.5 % / 16,300;
# ETHUSDT long 3,683.979 at 1,456.84, mark 1,335.18, bracket 10 % / 135,365.
W = 1_535_443.01
BTC = (109.488, 32_481.98, 31_967.27, 0.025, 16_300.0)
ETH = (3_683.979, 1_456.84, 1_335.18, 0.10, 135_365.0)


def _mm(q: float, price: float, mmr: float, cum: float) -> float:
    return q * price * mmr - cum


def test_binance_published_cross_example_through_the_account_kernels() -> None:
    qtys = np.array([BTC[0], ETH[0]])
    mms = np.array([_mm(BTC[0], BTC[2], BTC[3], BTC[4]), _mm(ETH[0], ETH[2], ETH[3], ETH[4])])
    upnls = np.array([unrealized_pnl(False, BTC[0], 1.0, BTC[1], BTC[2]),
                      unrealized_pnl(False, ETH[0], 1.0, ETH[1], ETH[2])])
    # at the marks the account is not breached (margin ratio below 100 %)
    assert A.next_to_liquidate(A.ORDER_LARGEST_LOSS, W, qtys, mms, upnls, False) == A.NONE
    ratio = A.account_margin_ratio(W, mms.sum(), upnls.sum())
    assert 0 < ratio < 1
    # TMM1 / UPNL1 of each position are the other one's (risk.account.others): Binance's LPs to the cent
    omm, oup = A.others(1, qtys, mms, upnls)
    assert (omm, oup) == (mms[0], upnls[0])
    lp_eth = liquidation_price_bracket(False, False, 1, ETH[0], 1.0, ETH[1], W, ETH[3], ETH[4], omm, oup)
    omm, oup = A.others(0, qtys, mms, upnls)
    lp_btc = liquidation_price_bracket(False, False, 1, BTC[0], 1.0, BTC[1], W, BTC[3], BTC[4], omm, oup)
    assert round(lp_eth, 2) == 1_153.26
    assert round(lp_btc, 2) == 26_316.89
    # the account trigger is the same condition: ETH a cent above its LP is fine, a cent below breaches
    for price, breached in ((lp_eth + 0.01, False), (lp_eth - 0.01, True)):
        mm_e = _mm(ETH[0], price, ETH[3], ETH[4])
        up_e = unrealized_pnl(False, ETH[0], 1.0, ETH[1], price)
        got = A.account_breached(W, mms[0] + mm_e, upnls[0] + up_e)
        assert bool(got) is breached
    # ... and when it breaches, the largest loss goes first: ETH (-(1,456.84 - 1,153.25) x 3,683.979 = -1.118M)
    # against BTC (-56,355 at its mark)
    mm_e = _mm(ETH[0], lp_eth - 0.01, ETH[3], ETH[4])
    up_e = unrealized_pnl(False, ETH[0], 1.0, ETH[1], lp_eth - 0.01)
    assert A.next_to_liquidate(A.ORDER_LARGEST_LOSS, W, qtys, np.array([mms[0], mm_e]),
                               np.array([upnls[0], up_e]), False) == 1


def test_largest_loss_first_then_reevaluated_and_all_on_hyperliquid() -> None:
    # wallet 1,000; A loses 900 (MM 50), B loses 100 (MM 40): balance 0 <= 90 -> breached, A first
    qtys, mms, upnls = np.array([1.0, -2.0]), np.array([50.0, 40.0]), np.array([-900.0, -100.0])
    assert A.next_to_liquidate(A.ORDER_LARGEST_LOSS, 1_000.0, qtys, mms, upnls, False) == 0
    # after A is closed at its price the wallet holds 1,000 - 900 = 100 - fee 10 = 90: B alone (balance
    # 90 - 100 = -10 <= 40) is still breached; with a wallet of 200 it is not (100 > 40)
    qtys2 = np.array([0.0, -2.0])
    assert A.next_to_liquidate(A.ORDER_LARGEST_LOSS, 90.0, qtys2, mms, upnls, True) == 1
    assert A.next_to_liquidate(A.ORDER_LARGEST_LOSS, 200.0, qtys2, mms, upnls, True) == A.NONE
    # Hyperliquid: once started every position goes, breached or not
    assert A.next_to_liquidate(A.ORDER_ALL, 200.0, qtys2, mms, upnls, True) == 1
    assert A.next_to_liquidate(A.ORDER_ALL, 200.0, qtys2, mms, upnls, False) == A.NONE
    # ties: the larger MM, then the lower index
    assert A.next_to_liquidate(A.ORDER_LARGEST_LOSS, 0.0, np.ones(3), np.array([1.0, 3.0, 3.0]),
                               np.array([-5.0, -5.0, -5.0]), False) == 1
    # no maintenance margin (no position) is never breached
    assert A.next_to_liquidate(A.ORDER_LARGEST_LOSS, -5.0, np.zeros(2), np.zeros(2), np.zeros(2), False) == A.NONE


def test_margin_ratio_series_by_hand() -> None:
    wallet = np.array([1_000.0, 1_000.0, 1_000.0])
    mm = np.array([[10.0, 30.0], [0.0, 0.0], [10.0, 0.0]])
    upnl = np.array([[-200.0, 0.0], [0.0, 0.0], [-1_000.0, 0.0]])
    account, per = A.margin_ratio_series(wallet, mm, upnl)
    assert account[0] == pytest.approx(40.0 / 800.0) and per[0] == pytest.approx([10 / 800, 30 / 800])
    assert math.isnan(account[1]) and np.isnan(per[1]).all()
    assert account[2] == math.inf and per[2, 0] == math.inf and math.isnan(per[2, 1])


def test_every_venue_has_an_account_rule_with_sources() -> None:
    from risk.venues import VENUES

    for venue in VENUES:
        rule = A.account_rule(venue)
        assert rule.sources and rule.assumptions
    assert A.account_rule("hyperliquid").order == A.ORDER_ALL
    assert A.account_rule("binance_usdm").order == A.ORDER_LARGEST_LOSS


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([-1.0, 0.0, 2.0]), st.floats(0, 500), st.floats(-2_000, 2_000)),
                min_size=1, max_size=5),
       st.floats(-1_000, 5_000), st.sampled_from([A.ORDER_LARGEST_LOSS, A.ORDER_ALL]), st.booleans())
def test_compiled_kernels_agree(rows: list[tuple[float, float, float]], wallet: float, rule: int,
                                started: bool) -> None:
    qtys, mms, upnls = (np.array(c, dtype=np.float64) for c in zip(*rows))
    assert K["next_to_liquidate"](rule, wallet, qtys, mms, upnls, started) == \
        A.next_to_liquidate(rule, wallet, qtys, mms, upnls, started)
    for k in range(len(rows)):
        assert K["others"](k, qtys, mms, upnls) == A.others(k, qtys, mms, upnls)
    assert K["account_breached"](wallet, mms.sum(), upnls.sum()) == A.account_breached(wallet, mms.sum(), upnls.sum())
    for takes in (True, False):
        assert K["account_backstop"](takes, wallet, mms.sum(), upnls.sum()) == \
            A.account_backstop(takes, wallet, mms.sum(), upnls.sum())
