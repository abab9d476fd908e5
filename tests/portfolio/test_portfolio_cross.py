"""A portfolio on one cross wallet, both engines: hand-made accounts (the venue's account-level
liquidation through the shared wallet), funding per symbol, parity on random bars, money
conservation across symbols.

Binance USDⓈ-M 2021 brackets (risk.venues): BTCUSDT 0-50k 0.4 %, ..., 1M-10M 2.5 % / cum 16,300;
ETHUSDT 0-10k 0.5 %, 10k-100k 0.65 % / cum 15; taker 0.04 %, clearance fee 1.25 %. Sizing
(engine.portfolio): q = E x |t| / (1 + sum |t_j| x taker) x 0.999999 / price, down to the 0.001 lot.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fast_portfolio import run_fast_portfolio
from engine.portfolio import Leg, PortfolioSpec, run_backtrader, run_portfolio
from risk.errors import DeleverageError
from tests.engine.helpers import bars
from tests.portfolio.helpers import assert_same, money_gap, random_targets, spec_of, two_symbols

TAKER, CLEAR = 0.0004, 0.0125


def flat(p: float) -> tuple[float, float, float, float]:
    return (p, p, p, p)


def lot(q: float) -> float:
    return math.floor(q / 0.001 + 1e-9) * 0.001


def both(spec: PortfolioSpec):
    r, f = run_backtrader(spec), run_fast_portfolio(spec)
    assert_same(r, f)
    return r, f


def test_a_large_btc_loss_is_liquidated_through_the_shared_wallet_and_eth_survives() -> None:
    # 200,000 USDT; targets BTC 9x, ETH 0.5x (gross 9.5): q_BTC = 200,000 x 9 / 1.0038 x 0.999999 / 60,000 -> 29.886,
    # q_ETH = 200,000 x 0.5 / 1.0038 x 0.999999 / 3,000 -> 33.207; fees 717.264 + 39.8484; wallet 199,242.8876.
    q_b, q_e = lot(200_000 * 9 / (1 + 9.5 * TAKER) * 0.999999 / 60_000), lot(200_000 * 0.5 / (1 + 9.5 * TAKER) * 0.999999 / 3_000)
    assert (q_b, q_e) == (pytest.approx(29.886), pytest.approx(33.207))
    wallet = 200_000 - (q_b * 60_000 + q_e * 3_000) * TAKER
    btc = bars([flat(60_000.0), flat(60_000.0), (60_000.0, 60_000.0, 54_000.0, 58_000.0), flat(58_000.0)])
    eth = bars([flat(3_000.0)] * 4)
    r, _ = both(spec_of(btc, eth, np.full(4, 9.0), np.full(4, 0.5), cash=200_000.0, allow_no_funding=True))
    # bar 2, BTC at its low 54,000: uPnL -179,316, MM 29.886 x 54,000 x 2.5 % - 16,300 = 24,046.1; ETH MM
    # 33.207 x 3,000 x 0.65 % - 15 = 632.5365; margin balance 19,926.89 <= 24,678.64: the account is breached
    mm_b, mm_e = q_b * 54_000 * 0.025 - 16_300, q_e * 3_000 * 0.0065 - 15
    balance = wallet + q_b * (54_000 - 60_000)
    [liq] = r.events["liquidations"].to_dict("records")
    assert liq["symbol"] == "BTCUSDT" and liq["account"]
    assert liq["account_margin_ratio"] == pytest.approx((mm_b + mm_e) / balance, rel=1e-12)
    # BTC (the largest loss) closes at its cross price with TMM1 = ETH's MM, UPNL1 = 0:
    # (W - TMM1 + cum - Q E) / (Q mmr - Q) = 54,163.07
    lp = (wallet - mm_e + 16_300 - q_b * 60_000) / (q_b * 0.025 - q_b)
    assert liq["fill_price"] == pytest.approx(lp, rel=1e-12) and lp == pytest.approx(54_163.07, abs=0.01)
    # the clearance fee (1.25 % of 1.6187M = 20,234) is below what BTC's 2.5 % bracket held back: the
    # account keeps 4,566.51 after it, above ETH's maintenance (632.54): re-evaluated, ETH stays open
    fee = q_b * lp * CLEAR
    assert liq["fee"] == pytest.approx(fee, rel=1e-12)
    assert liq["equity_after"] == pytest.approx(wallet + q_b * (lp - 60_000) - fee, rel=1e-9)
    assert r.records["qty"][-1].tolist() == [0.0, pytest.approx(q_e)]
    account, per = r.margin_ratios()
    assert account[-1] == pytest.approx(mm_e / liq["equity_after"], rel=1e-9) and math.isnan(per[-1, 0])


def test_a_small_account_loses_both_positions_when_the_clearance_fee_takes_the_rest() -> None:
    # 10,000 USDT, BTC 2x (0.332 BTC), ETH 1x (3.329 ETH), wallet 9,988.0372. BTC's low 30,000 breaches the
    # account; BTC closes at (9,988.0372 - 49.935 - 19,920) / (0.332 x 0.004 - 0.332) = 30,186.70 (bracket 1,
    # TMM1 = ETH's 3.329 x 3,000 x 0.5 %). The clearance fee (1.25 % of 10,022 = 125.28) is capped at the 90.02
    # left: the account is at 0 and ETH, flat all bar, is liquidated too, at its bankruptcy price 3,000.
    wallet = 10_000 - (0.332 * 60_000 + 3.329 * 3_000) * TAKER
    btc = bars([flat(60_000.0), flat(60_000.0), (60_000.0, 60_000.0, 30_000.0, 35_000.0), flat(35_000.0)])
    eth = bars([flat(3_000.0)] * 4)
    r, _ = both(spec_of(btc, eth, np.full(4, 2.0), np.full(4, 1.0), allow_no_funding=True))
    first, second = r.events["liquidations"].to_dict("records")
    lp = (wallet - 3.329 * 3_000 * 0.005 - 0.332 * 60_000) / (0.332 * 0.004 - 0.332)
    assert first["symbol"] == "BTCUSDT" and first["fill_price"] == pytest.approx(lp, rel=1e-12)
    assert first["fee"] == pytest.approx(wallet + 0.332 * (lp - 60_000), rel=1e-9)  # capped: all that was left
    assert first["equity_after"] == pytest.approx(0.0, abs=1e-6)
    assert second["symbol"] == "ETHUSDT" and second["fill_price"] == pytest.approx(3_000.0)
    assert second["fee"] == 0.0 and r.equity[-1] == pytest.approx(0.0, abs=1e-6)
    # the same positions isolated-style (one symbol alone at 2x of 10,000) would not reach 30,186 only if
    # ETH's margin stood apart: in cross the wallet is one, so the ETH position went with it
    assert r.summary["liquidated_symbols"] == ["BTCUSDT", "ETHUSDT"]


def test_hyperliquid_closes_every_cross_position_once_breached() -> None:
    # Hyperliquid (risk.account.ORDER_ALL): after BTC, ETH is closed too, although the account would hold it
    btc = bars([flat(60_000.0), flat(60_000.0), (60_000.0, 60_000.0, 53_000.0, 58_000.0), flat(58_000.0)])
    eth = bars([flat(3_000.0)] * 4)
    spec = PortfolioSpec([Leg("BTC", btc, np.full(4, 9.0)), Leg("ETH", eth, np.full(4, 0.5))], venue="hyperliquid",
                         cash=200_000.0, allow_no_funding=True)
    r, _ = both(spec)
    liqs = r.events["liquidations"]
    assert liqs["symbol"].tolist() == ["BTC", "ETH"] and liqs["account"].all()
    assert (r.records["qty"][-1] == 0).all()


def test_funding_is_settled_per_symbol_at_its_own_settlements() -> None:
    # BTC settles 0.0001 at bar 1 (a long pays q x 60,000 x 0.0001), ETH -0.0003 at bar 2 (the long receives)
    btc = bars([flat(60_000.0)] * 4, funding={1: 0.0001})
    eth = bars([flat(3_000.0)] * 4, funding={2: -0.0003})
    r, _ = both(spec_of(btc, eth, np.full(4, 2.0), np.full(4, 1.0)))
    fund = r.events["funding"].to_dict("records")
    assert [(f["symbol"], f["time"].minute) for f in fund] == [("BTCUSDT", 1), ("ETHUSDT", 2)]
    assert fund[0]["amount"] == pytest.approx(-0.332 * 60_000 * 0.0001, rel=1e-12)
    assert fund[1]["amount"] == pytest.approx(3.329 * 3_000 * 0.0003, rel=1e-12)
    wallet = 10_000 - (0.332 * 60_000 + 3.329 * 3_000) * TAKER
    assert r.equity[-1] == pytest.approx(wallet + fund[0]["amount"] + fund[1]["amount"], rel=1e-12)
    assert r.summary["symbols"]["BTCUSDT"]["funding_total"] == pytest.approx(fund[0]["amount"])


@pytest.mark.parametrize("seed,venue,choices", [
    (0, "binance_usdm", (-3.0, -1.5, -0.5, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0)),
    (1, "binance_usdm", (-20.0, -5.0, 0.0, 5.0, 10.0, 20.0)),
    (2, "binance_usdm", (-4.0, -1.0, 0.0, 1.0, 4.0, 6.0)),
    (3, "hyperliquid", (-10.0, -2.0, 0.0, 2.0, 10.0)),
])
def test_parity_with_the_broker_on_random_bars(seed: int, venue: str, choices: tuple[float, ...]) -> None:
    btc, eth = two_symbols(seed, 1500, venue=venue)
    legs = ("BTC", "ETH") if venue == "hyperliquid" else ("BTCUSDT", "ETHUSDT")
    spec = PortfolioSpec([Leg(legs[0], btc, random_targets(10 * seed, 1500, choices)),
                          Leg(legs[1], eth, random_targets(10 * seed + 1, 1500, choices))], venue=venue)
    r, f = both(spec)
    assert len(r.events["fills"]) > 3 and len(r.events["funding"]) > 0
    assert abs(money_gap(r, spec.cash)) < 1e-6 * spec.cash


def test_parity_covers_account_liquidations() -> None:
    hits = 0
    for seed in range(4, 8):
        btc, eth = two_symbols(seed, 1200)
        spec = spec_of(btc, eth, random_targets(seed, 1200, (0.0, 10.0, 20.0, -20.0)),
                       random_targets(seed + 50, 1200, (0.0, 10.0, -10.0, 20.0)))
        r, _ = both(spec)
        hits += len(r.events["liquidations"])
    assert hits > 0


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([(-2.0, 0.0, 1.0, 3.0), (-20.0, 0.0, 10.0, 25.0)]),
       st.floats(1_000.0, 1_000_000.0))
def test_money_is_conserved_across_symbols(seed: int, choices: tuple[float, ...], cash: float) -> None:
    btc, eth = two_symbols(seed % 97, 600)
    spec = spec_of(btc, eth, random_targets(seed, 600, choices, 0.03), random_targets(seed + 1, 600, choices, 0.03),
                   cash=cash)
    f = run_fast_portfolio(spec)
    assert abs(money_gap(f, cash)) <= 1e-7 * cash
    # every liquidation row is a fill of kind liquidation, each fee row's symbol traded
    assert len(f.events["liquidations"]) == int((f.events["fills"]["kind"] == "liquidation").sum())
    # the fund's net: the clearance fees it received less its cover of insolvent liquidations
    cover = f.events["liquidations"]["insurance_cover"]
    assert f.insurance_fund == pytest.approx(f.events["fees"].loc[f.events["fees"]["kind"] == "liquidation",
                                                                  "amount"].sum() - cover.sum(), abs=1e-9)
    assert (cover >= 0.0).all() and f.summary["insurance_cover_total"] == pytest.approx(cover.sum(), abs=1e-9)


def test_bad_portfolios_are_refused_with_one_line() -> None:
    btc, eth = two_symbols(0, 50)
    t = np.zeros(50)
    with pytest.raises(DeleverageError, match="ETHUSDT bars are not on the time index of BTCUSDT"):
        run_portfolio(spec_of(btc, eth.iloc[1:], t, t[1:]))
    with pytest.raises(DeleverageError, match="expected at least two"):
        run_portfolio(PortfolioSpec([Leg("BTCUSDT", btc, t)]))
    with pytest.raises(DeleverageError, match=r"ETHUSDT target has shape \(49,\), expected \(50,\)"):
        run_portfolio(spec_of(btc, eth, t, t[1:]))
    with pytest.raises(DeleverageError, match="appears twice"):
        run_portfolio(spec_of(btc, btc, t, t).__class__([Leg("BTCUSDT", btc, t), Leg("BTCUSDT", eth, t)]))
    with pytest.raises(DeleverageError, match="inverse contract"):
        run_portfolio(PortfolioSpec([Leg("BTCUSD_PERP", btc, t), Leg("ETHUSD_PERP", eth, t)], venue="binance_coinm"))
