"""Partial liquidation at the account level, both engines: with ``partial_liquidation`` the position
the account rule picks gets the venue's partial step first (risk.partial.partial_liquidation_step,
judged in the account: wallet, the others' MM and uPnL at their extremes), once per position and bar;
the account is then re-evaluated (or, when the venue's full liquidation follows, the rest closes
whole at its new account-level price). Parity fast vs broker at 1e-9.

Binance USDⓈ-M 2021 brackets (risk.venues): BTCUSDT ..., 1M-10M 2.5 % / cum 16,300; ETHUSDT 10k-100k
0.65 % / cum 15; taker 0.04 %; clearance fee 1.25 %; lot 0.001. Binance's partial rule (RULE_RESTORE,
risk.partial: the smallest close, in lots, that leaves the position margin compliant after the
clearance fee; sources in risk.partial.PARTIAL_RULES["binance_usdm"]).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.fast_portfolio import run_fast_portfolio
from engine.portfolio import Leg, PortfolioSpec, run_backtrader
from tests.engine.helpers import bars
from tests.portfolio.helpers import assert_same, money_gap, random_targets, spec_of, two_symbols

TAKER, CLEAR = 0.0004, 0.0125


def flat(p: float) -> tuple[float, float, float, float]:
    return (p, p, p, p)


def lot(q: float) -> float:
    return math.floor(q / 0.001 + 1e-9) * 0.001


def test_binance_restores_the_account_with_a_slice_of_btc_and_both_positions_stay_open() -> None:
    # the account of test_portfolio_cross (200,000 USDT, BTC 9x + ETH 0.5x, BTC wicks to 54,000): without
    # the partial rule BTC is closed whole at 54,163.07; with it, the smallest slice that restores the account
    q_b, q_e = lot(200_000 * 9 / (1 + 9.5 * TAKER) * 0.999999 / 60_000), lot(200_000 * 0.5 / (1 + 9.5 * TAKER) * 0.999999 / 3_000)
    wallet = 200_000 - (q_b * 60_000 + q_e * 3_000) * TAKER
    btc = bars([flat(60_000.0), flat(60_000.0), (60_000.0, 60_000.0, 54_000.0, 58_000.0), flat(58_000.0)])
    eth = bars([flat(3_000.0)] * 4)
    spec = spec_of(btc, eth, np.full(4, 9.0), np.full(4, 0.5), cash=200_000.0, allow_no_funding=True,
                   partial_liquidation=True)
    r, f = run_backtrader(spec), run_fast_portfolio(spec)
    assert_same(r, f)
    # in the account at 54,000: mb = W + uPnL_BTC - MM_ETH = 19,294.35; the slice q must leave
    # mb - 1.25 % x 54,000 q > 2.5 % x 54,000 (29.886 - q) - 16,300, i.e. 675 q > 4,751.75: q > 7.0396 -> 7.040
    mm_e = q_e * 3_000 * 0.0065 - 15
    mb = wallet + q_b * (54_000 - 60_000) - mm_e
    q = (0.025 * 54_000 * q_b - 16_300 - mb) / (0.025 * 54_000 - CLEAR * 54_000)
    assert q == pytest.approx(7.0396, abs=1e-4)
    [liq] = f.events["liquidations"].to_dict("records")
    assert liq["partial"] and liq["account"] and liq["symbol"] == "BTCUSDT"
    assert liq["qty"] == pytest.approx(math.ceil(q / 0.001) * 0.001) and liq["fill_price"] == 54_000.0
    assert liq["fee"] == pytest.approx(7.04 * 54_000 * CLEAR, rel=1e-12)
    assert liq["qty_left"] == pytest.approx(q_b - 7.04)
    assert f.insurance_fund == pytest.approx(liq["fee"], rel=1e-12)
    assert f.records["qty"][-1].tolist() == [pytest.approx(q_b - 7.04), pytest.approx(q_e)]
    assert abs(money_gap(f, spec.cash)) < 1e-9 * spec.cash
    # and the whole close without the rule (unchanged)
    spec.partial_liquidation = False
    [whole] = run_fast_portfolio(spec).events["liquidations"].to_dict("records")
    assert not whole["partial"] and whole["qty"] == pytest.approx(q_b)


@pytest.mark.parametrize("seed,venue,cash,choices", [
    (4, "hyperliquid", 200_000.0, (0.0, 10.0, 20.0, -20.0)),
    (6, "hyperliquid", 200_000.0, (0.0, 10.0, 20.0, -20.0)),
    (7, "hyperliquid", 1_000_000.0, (0.0, 5.0, 10.0, -10.0)),
    # small Binance accounts: the clearance fee (1.25 %) exceeds the small brackets' maintenance rates,
    # so the restoring slice never helps and every account liquidation stays whole
    (6, "binance_usdm", 10_000.0, (0.0, 10.0, 20.0, -20.0)),
])
def test_parity_with_the_broker_on_liquidation_heavy_random_bars(seed: int, venue: str, cash: float,
                                                                 choices: tuple[float, ...]) -> None:
    n = 1200
    btc, eth = two_symbols(seed, n, venue=venue)
    legs = ("BTC", "ETH") if venue == "hyperliquid" else ("BTCUSDT", "ETHUSDT")
    spec = PortfolioSpec([Leg(legs[0], btc, random_targets(seed, n, choices)),
                          Leg(legs[1], eth, random_targets(seed + 50, n, choices))],
                         venue=venue, cash=cash, partial_liquidation=True)
    r, f = run_backtrader(spec), run_fast_portfolio(spec)
    assert_same(r, f)
    liq = f.events["liquidations"]
    assert len(liq) > 0 and liq["account"].all()
    if venue == "hyperliquid":  # 20 % slices of positions above 100k USDC, no fee, a 30 s cooldown
        slices = liq[liq["partial"]]
        # seed 6's one account liquidation (ETH long, 04:12) is past the backstop level: the trigger
        # 2,837.11 is below the bankruptcy price 2,853.65, so the whole position goes, no slice
        # (risk.partial.BACKSTOP_MM_FRACTION; before, a slice filled there past bankruptcy)
        assert (len(slices) > 0) == (seed != 6) and (slices["fee"] == 0.0).all()
        before = (slices["qty"] + slices["qty_left"]).to_numpy()
        assert slices["qty"].to_numpy() == pytest.approx(0.2 * before, rel=1e-4)  # 20 %, in whole lots
    else:
        assert not liq["partial"].any()
    assert abs(money_gap(f, spec.cash)) < 1e-7 * spec.cash
