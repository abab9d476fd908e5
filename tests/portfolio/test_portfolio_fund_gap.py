"""A solvent account-level liquidation gapping past the position's bankruptcy price, both portfolio
engines: the trader's fill is floored at the account-level bankruptcy price and the insurance fund,
which takes the rest over, closes it at the trigger open; its result is the clearance fee plus
``uPnL(bankruptcy -> open)`` (risk.formulas.liquidation_charge, the single-position rule of
tests/engine/test_insurance_fund_gap.py). Before, the fund was booked the capped clearance fee only
(+49.78 below instead of -4,977.8064). The account's side is the same as before, bit for bit.

Binance USDⓈ-M 2021 brackets (risk.venues): BTCUSDT 50k-250k 0.5 % / cum 50; ETHUSDT 0-10k 0.5 %;
taker 0.04 %, clearance fee 1.25 %, lot 0.001. Sizing (engine.portfolio):
q = E x |t| / (1 + sum |t_j| x taker) x 0.999999 / price, down to the lot.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.fast_portfolio import run_fast_portfolio
from engine.portfolio import run_backtrader
from tests.engine.helpers import bars
from tests.portfolio.helpers import assert_same, money_gap, spec_of


def flat(p: float) -> tuple[float, float, float, float]:
    return (p, p, p, p)


def lot(q: float, step: float = 0.001) -> float:
    return math.floor(q / step + 1e-9) * step


def run(opn: float):
    btc = bars([flat(20_000.0), (opn, opn + 200.0, opn - 100.0, opn + 100.0), flat(opn + 100.0), flat(opn + 100.0)])
    eth = bars([flat(1_000.0)] * 4)
    spec = spec_of(btc, eth, np.full(4, 10.0), np.full(4, 1.0), cash=10_000.0, allow_no_funding=True)
    r, f = run_backtrader(spec), run_fast_portfolio(spec)
    assert_same(r, f)
    return spec, r, f


def test_btc_gapping_past_its_account_bankruptcy_price() -> None:
    # 10,000 USDT, BTC 10x + ETH 1x (1 + 11 x 0.04 % = 1.0044): q_BTC = 100,000 / 1.0044 x 0.999999 / 20,000
    # -> 4.978, q_ETH = 10,000 / 1.0044 x 0.999999 / 1,000 -> 9.956; fees 39.824 + 3.9824: wallet 9,956.1936
    q_b, q_e = lot(100_000 / 1.0044 * 0.999999 / 20_000), lot(10_000 / 1.0044 * 0.999999 / 1_000)
    assert (q_b, q_e) == (pytest.approx(4.978), pytest.approx(9.956))
    wallet = 10_000 - (q_b * 20_000 + q_e * 1_000) * 0.0004
    assert wallet == pytest.approx(9_956.1936, abs=1e-9)
    # bar 1: BTC opens at 17,000 (low 16,900), ETH flat. The margin behind BTC (ETH at its extreme,
    # 1,000): 9,956.1936 - MM_ETH 9,956 x 0.5 % (49.78) + 0 = 9,906.4136 > 0: solvent; bankruptcy price
    # 20,000 - 9,906.4136 / 4.978 = 18,009.961, above the open: BTC is filled at 18,009.961, realized
    # -9,906.4136; the cross pool left is ETH's MM, 49.78, the clearance fee (capped). The fund closes
    # BTC at the open: 49.78 + 4.978 x (17,000 - 18,009.961) = 49.78 - 14,934 + 9,906.4136 = -4,977.8064.
    margin = wallet - q_e * 1_000 * 0.005
    assert margin == pytest.approx(9_906.4136, abs=1e-9)
    spec, r, f = run(17_000.0)
    for res in (r, f):
        btc_liq, eth_liq = res.events["liquidations"].to_dict("records")
        assert btc_liq["symbol"] == "BTCUSDT" and btc_liq["account"] and not btc_liq["partial"]
        assert btc_liq["bankruptcy_price"] == pytest.approx(20_000 - margin / q_b, rel=1e-12)
        assert btc_liq["fill_price"] == btc_liq["bankruptcy_price"]
        assert btc_liq["insurance_fund"] == pytest.approx(49.78 + q_b * (17_000 - btc_liq["bankruptcy_price"]),
                                                          abs=1e-9)
        assert btc_liq["insurance_fund"] == pytest.approx(-4_977.8064, abs=1e-9)
        # ETH next, on an empty wallet: no margin, bankrupt at its open 1,000: closed there, nothing to cover
        assert eth_liq["symbol"] == "ETHUSDT" and eth_liq["insurance_fund"] == 0.0 and eth_liq["insurance_cover"] == 0.0
        assert res.insurance_fund == pytest.approx(-4_977.8064, abs=1e-9)
        assert res.summary["insurance_fund"] == res.insurance_fund
        # the account's side, as before (bit for bit)
        assert (btc_liq["fill_price"], btc_liq["fee"], btc_liq["realized_pnl"], btc_liq["equity_after"]) == \
            (18009.96110887907, 49.78000000000884, -9906.41359999999, 0.0)
        assert (btc_liq["insurance_cover"], res.summary["insurance_cover_total"]) == (0.0, 0.0)
        assert res.summary["fees_total"] == 93.58640000000884
        assert res.equity.tolist() == [9956.193599999999, 0.0, 0.0, 0.0]
        assert abs(money_gap(res, spec.cash)) < 1e-9 * spec.cash
        # the fund's net: the clearance it received, less the cover it paid out, plus its gap result
        liq_fees = res.events["fees"].query("kind == 'liquidation'")["amount"].sum()
        gap = q_b * (17_000 - btc_liq["bankruptcy_price"])
        assert res.insurance_fund == pytest.approx(liq_fees - 0.0 + gap, abs=1e-9)


def test_a_gap_not_past_bankruptcy_books_the_fee_only() -> None:
    # the open 18,050 is below the liquidation price (18,090.37) but above bankruptcy (18,009.96): BTC
    # fills at the open, where the fund's exit is too: it gets the capped clearance fee only, as before
    _, r, f = run(18_050.0)
    for res in (r, f):
        btc_liq = res.events["liquidations"].to_dict("records")[0]
        assert btc_liq["fill_price"] == 18_050.0
        assert btc_liq["insurance_fund"] == btc_liq["fee"] == 249.09359999999947
        assert res.insurance_fund == 249.09359999999947
