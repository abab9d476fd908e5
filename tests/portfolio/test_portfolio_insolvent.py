"""An insolvent position in a cross portfolio, both engines: when the account-level liquidation picks
a position with no margin behind it (the wallet less the others' MM plus their uPnL, the others at
their extremes: what its account-level levels are solved in) and it is already bankrupt at its bar's
open (a funding payment, or the others' loss, took all the margin), it is closed at its trigger open,
gets no partial step, and the insurance fund covers the cross pool's shortfall: the liquidation
row's ``insurance_cover`` (credited to the account, not a fee: the row's fee is 0 and ``fees_total``
stays >= 0; before, a negative liquidation fee) and a negative fund entry, ``insurance_fund`` the
fund's net (risk.formulas.liquidation_fill / liquidation_charge, the single-position rule of
tests/engine/test_insolvent_liquidation.py). Before, the compiled portfolio filled
it at its bankruptcy price, beyond the entry (BTC "sold" at 20,179 on a bar trading 19,950..20,100;
at 20,546 on a bar trading 16,900..17,200), and the broker judged it with the others at their marks
and gave it the partial step.

Binance USDⓈ-M 2021 brackets (risk.venues): BTCUSDT 50k-250k 0.5 % / cum 50; ETHUSDT 0-10k 0.5 %,
10k-100k 0.65 % / cum 15; taker 0.04 %, clearance fee 1.25 %, lot 0.001. Sizing (engine.portfolio):
q = E x |t| / (1 + sum |t_j| x taker) x 0.999999 / price, down to the lot.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.fast_portfolio import run_fast_portfolio
from engine.portfolio import Leg, PortfolioResult, PortfolioSpec, run_backtrader
from tests.engine.helpers import bars
from tests.portfolio.helpers import assert_conserved, assert_same, money_gap, spec_of

TAKER, CLEAR = 0.0004, 0.0125


def flat(p: float) -> tuple[float, float, float, float]:
    return (p, p, p, p)


def lot(q: float, step: float = 0.001) -> float:
    return math.floor(q / step + 1e-9) * step


def both(spec: PortfolioSpec) -> tuple[PortfolioResult, PortfolioResult]:
    r, f = run_backtrader(spec), run_fast_portfolio(spec)
    assert_same(r, f)
    return r, f


def funding_frames():
    # hourly bars; BTC settles 5 % at 01:00 (the largest rate a file may hold); ETH carries no funding
    btc = bars([flat(20_000.0), (20_000.0, 20_100.0, 19_950.0, 20_050.0), flat(20_050.0), flat(20_050.0)],
               funding={1: 0.05}, freq="1h")
    eth = bars([flat(1_000.0), (1_000.0, 1_010.0, 990.0, 1_005.0), flat(1_005.0), flat(1_005.0)], freq="1h")
    return btc, eth


@pytest.mark.parametrize("partial", [False, True])
def test_funding_beyond_the_wallet_closes_both_at_their_opens_and_the_fund_covers(partial: bool) -> None:
    # 10,000 USDT, BTC 24x + ETH 1x (gross 25, 1 + 25 x 0.04 % = 1.01): q_BTC = 240,000 / 1.01 x 0.999999 /
    # 20,000 -> 11.881, q_ETH = 10,000 / 1.01 x 0.999999 / 1,000 -> 9.900; fees 95.048 + 3.96: wallet 9,900.992
    q_b, q_e = lot(10_000 * 24 / 1.01 * 0.999999 / 20_000), lot(10_000 / 1.01 * 0.999999 / 1_000)
    assert (q_b, q_e) == (pytest.approx(11.881), pytest.approx(9.9))
    wallet = 10_000 - (q_b * 20_000 + q_e * 1_000) * TAKER
    assert wallet == pytest.approx(9_900.992, abs=1e-9)
    btc, eth = funding_frames()
    spec = spec_of(btc, eth, np.full(4, 24.0), np.full(4, 1.0), cash=10_000.0, allow_no_funding=True,
                   partial_liquidation=partial)
    r, f = both(spec)
    # bar 1: BTC pays 11.881 x 20,000 x 5 % = 11,881 at the open: the wallet is -1,980.008
    [fund] = f.events["funding"].to_dict("records")
    assert fund["amount"] == pytest.approx(-11_881.0, rel=1e-12)
    w1 = wallet - 11_881.0
    assert w1 == pytest.approx(-1_980.008, abs=1e-9)
    for res in (r, f):
        btc_liq, eth_liq = res.events["liquidations"].to_dict("records")
        # at the extremes BTC (uPnL -594.05 at 19,950) is the larger loss; the margin behind it is
        # W - MM_ETH(990) + uPnL_ETH(990) = -1,980.008 - 49.005 - 99 = -2,128.013: bankrupt at
        # 20,000 + 2,128.013 / 11.881 = 20,179.11, above its open 20,000 -> closed at the open (the
        # old compiled portfolio sold it at 20,179.11, a realized +2,128.01 the market never paid)
        assert btc_liq["symbol"] == "BTCUSDT" and btc_liq["account"] and not btc_liq["partial"]
        assert btc_liq["bankruptcy_price"] == pytest.approx(20_000 + 2_128.013 / q_b, rel=1e-12)
        assert btc_liq["fill_price"] == 20_000.0 and btc_liq["realized_pnl"] == 0.0
        # the cross pool after the close: the wallet plus ETH's uPnL at its close (9.9 x 5 = 49.5)
        # = -1,930.508, paid back to zero by the fund: its cover of 1,930.508, no clearance fee
        assert btc_liq["fee"] == 0.0 and btc_liq["insurance_cover"] == pytest.approx(1_930.508, abs=1e-9)
        assert btc_liq["insurance_fund"] == -btc_liq["insurance_cover"]
        assert btc_liq["equity_after"] == pytest.approx(0.0, abs=1e-9)
        # ETH next on the empty account: wallet -49.5 (its uPnL at the close was counted), bankrupt at
        # 1,000 + 49.5 / 9.9 = 1,005 above its open 1,000 -> closed at 1,000, the fund covers 49.5
        assert eth_liq["symbol"] == "ETHUSDT" and not eth_liq["partial"]
        assert eth_liq["bankruptcy_price"] == pytest.approx(1_005.0, rel=1e-12)
        assert eth_liq["fill_price"] == 1_000.0 and eth_liq["realized_pnl"] == 0.0
        assert eth_liq["fee"] == 0.0 and eth_liq["insurance_cover"] == pytest.approx(49.5, abs=1e-9)
        assert eth_liq["insurance_fund"] == -eth_liq["insurance_cover"]
        # the fund paid the whole shortfall the funding left; the account ends at 0
        assert res.insurance_fund == pytest.approx(w1, abs=1e-9)
        assert res.summary["insurance_cover_total"] == pytest.approx(-w1, abs=1e-9)  # 1,980.008
        # the fees are the entries' taker fees only: 10,000 - 9,900.992 = 99.008 (before: -1,881.5)
        assert res.summary["fees_total"] == pytest.approx(99.008, abs=1e-9)
        assert res.summary["symbols"]["BTCUSDT"]["insurance_cover_total"] == pytest.approx(1_930.508, abs=1e-9)
        assert res.summary["symbols"]["ETHUSDT"]["insurance_cover_total"] == pytest.approx(49.5, abs=1e-9)
        assert res.equity.tolist() == [pytest.approx(wallet, abs=1e-9), 0.0, 0.0, 0.0]
        assert_conserved(res, spec.cash)


def test_a_wick_on_the_other_symbol_leaves_a_gapped_position_insolvent() -> None:
    # 10,000 USDT, BTC 10x + ETH 5x (1 + 15 x 0.04 % = 1.006): q_BTC 4.970, q_ETH 49.701; fees 39.76 +
    # 19.8804: wallet 9,940.3596. Bar 1: BTC gaps from 20,000 to 17,000 (low 16,900); ETH wicks from
    # 1,000 to 750 and closes back at 1,000. No funding.
    q_b, q_e = lot(100_000 / 1.006 * 0.999999 / 20_000), lot(50_000 / 1.006 * 0.999999 / 1_000)
    assert (q_b, q_e) == (pytest.approx(4.97), pytest.approx(49.701))
    wallet = 10_000 - (q_b * 20_000 + q_e * 1_000) * TAKER
    assert wallet == pytest.approx(9_940.3596, abs=1e-9)
    btc = bars([flat(20_000.0), (17_000.0, 17_200.0, 16_900.0, 17_100.0), flat(17_100.0), flat(17_100.0)])
    eth = bars([flat(1_000.0), (1_000.0, 1_010.0, 750.0, 1_000.0), flat(1_000.0), flat(1_000.0)])
    spec = spec_of(btc, eth, np.full(4, 10.0), np.full(4, 5.0), cash=10_000.0, allow_no_funding=True)
    r, f = both(spec)
    # at the extremes: BTC -15,407 (16,900), ETH -12,425.25 (750); BTC, the larger loss, is picked. The
    # margin behind it, ETH at its low: 9,940.3596 - MM_ETH(750) (37,275.75 x 0.65 % - 15 = 227.292375)
    # - 12,425.25 = -2,712.182775 <= 0; its bankruptcy price 20,000 + 2,712.182775 / 4.97 = 20,545.71 is
    # above its open 17,000: closed at 17,000. (With ETH at its mark close the margin would be +9,632:
    # the old broker then filled it at 20,545.71, 3,546 above the market, as the old compiled portfolio.)
    margin = wallet - (q_e * 750 * 0.0065 - 15) - q_e * 250
    assert margin == pytest.approx(-2_712.182775, abs=1e-9)
    for res in (r, f):
        btc_liq, eth_liq = res.events["liquidations"].to_dict("records")
        assert btc_liq["symbol"] == "BTCUSDT" and btc_liq["trigger_price"] == 16_900.0
        assert btc_liq["bankruptcy_price"] == pytest.approx(20_000 - margin / q_b, rel=1e-12)
        assert btc_liq["fill_price"] == 17_000.0
        assert btc_liq["realized_pnl"] == pytest.approx(q_b * (17_000 - 20_000), abs=1e-9)  # -14,910
        # pool after the close: 9,940.3596 - 14,910 + ETH's uPnL at its close (0) = -4,969.6404: the fund's
        assert btc_liq["fee"] == 0.0 and btc_liq["insurance_cover"] == pytest.approx(4_969.6404, abs=1e-9)
        assert btc_liq["insurance_fund"] == -btc_liq["insurance_cover"]
        # ETH on the empty wallet: no margin, bankrupt at its entry 1,000 = its open: closed at 1,000 with
        # nothing left to cover (fee 0, fund 0)
        assert eth_liq["symbol"] == "ETHUSDT" and eth_liq["fill_price"] == 1_000.0
        assert eth_liq["bankruptcy_price"] == pytest.approx(1_000.0, rel=1e-12)
        assert eth_liq["fee"] == 0.0 and eth_liq["insurance_fund"] == 0.0 and eth_liq["realized_pnl"] == 0.0
        assert eth_liq["insurance_cover"] == 0.0
        assert res.insurance_fund == pytest.approx(-4_969.6404, abs=1e-9)
        assert res.summary["insurance_cover_total"] == pytest.approx(4_969.6404, abs=1e-9)
        assert res.summary["fees_total"] == pytest.approx(59.6404, abs=1e-9)  # the entries' 39.76 + 19.8804
        assert res.equity[-1] == pytest.approx(0.0, abs=1e-9)
        assert_conserved(res, spec.cash)


def test_hyperliquid_gives_an_insolvent_position_no_partial_slice() -> None:
    # Hyperliquid (20 % slices of positions above 100k USDC; every cross position closed once breached):
    # BTC 24x + ETH 1x as above, taker 0.045 %; the funding leaves the wallet below zero, so BTC
    # (237k USDC) is closed whole at its open; the old path first sliced 20 % at the low 19,950 with
    # the account at -1,572 after it. The account opens below 2/3 of its MM: the vault takes both
    # positions at their opens (risk.account.account_backstop), with the same figures
    btc, eth = funding_frames()
    spec = PortfolioSpec([Leg("BTC", btc, np.full(4, 24.0)), Leg("ETH", eth, np.full(4, 1.0))], venue="hyperliquid",
                         cash=10_000.0, allow_no_funding=True, partial_liquidation=True)
    r, f = both(spec)
    fills = f.events["fills"]
    q_b, q_e = fills["qty"].iloc[0], fills["qty"].iloc[1]
    assert q_b == pytest.approx(lot(240_000 / 1.01125 * 0.999999 / 20_000, 1e-5), abs=2e-5)
    wallet = 10_000 - (q_b * 20_000 + q_e * 1_000) * 0.00045
    w1 = wallet - q_b * 20_000 * 0.05
    assert w1 < 0.0
    for res in (r, f):
        liq = res.events["liquidations"]
        assert liq["symbol"].tolist() == ["BTC", "ETH"] and not liq["partial"].any()
        assert liq["fill_price"].tolist() == [20_000.0, 1_000.0]
        assert liq["qty"].tolist() == [pytest.approx(q_b), pytest.approx(q_e)]
        # the covers: the pool after BTC (wallet + ETH's uPnL at its close, q_ETH x 5), then ETH's 5 q_ETH
        assert liq["insurance_cover"].tolist() == [pytest.approx(-(w1 + 5 * q_e), abs=1e-9),
                                                   pytest.approx(5 * q_e, abs=1e-9)]
        assert (liq["fee"] == 0.0).all() and (liq["insurance_fund"] == -liq["insurance_cover"]).all()
        assert (liq["equity_after"] >= -1e-9).all()
        assert res.insurance_fund == pytest.approx(w1, abs=1e-9) and res.equity[-1] == pytest.approx(0.0, abs=1e-9)
        assert res.summary["insurance_cover_total"] == pytest.approx(-w1, abs=1e-9)
        assert_conserved(res, spec.cash)


def test_solvent_account_liquidations_are_unchanged() -> None:
    # not insolvent: the usual rule, the very figures of before (bit for bit)
    # (1) test_portfolio_cross's account: BTC closed at its account-level price 54,163.07, ETH survives
    btc = bars([flat(60_000.0), flat(60_000.0), (60_000.0, 60_000.0, 54_000.0, 58_000.0), flat(58_000.0)])
    eth = bars([flat(3_000.0)] * 4)
    r, f = both(spec_of(btc, eth, np.full(4, 9.0), np.full(4, 0.5), cash=200_000.0, allow_no_funding=True))
    for res in (r, f):
        [liq] = res.events["liquidations"].to_dict("records")
        assert liq["fill_price"] == 54163.072629839546 and liq["fee"] == 20233.96985769231
        assert liq["realized_pnl"] == -174442.41138461532
        assert res.equity[-1] == 4566.506357692371 and res.insurance_fund == 20233.96985769231
        assert liq["insurance_cover"] == 0.0 and res.summary["insurance_cover_total"] == 0.0
        assert res.summary["fees_total"] == sum(res.events["fees"]["amount"])
    # (2) a gap with margin left behind BTC (ETH only 1x): the trigger open 14,000 floored at the
    # bankruptcy price 17,561.85, the clearance fee capped at the 198.28 left; ETH then at its
    # bankruptcy price 995 on the empty account, its trigger open 990. The account's figures are those
    # of before, bit for bit; the fund now books its loss closing each at its open
    # (risk.formulas.liquidation_charge, tests/portfolio/test_portfolio_fund_gap.py): q_BTC = 80,000 /
    # 1.0036 x 0.999999 / 20,000 -> 3.985, q_ETH -> 9.964; 198.2836 + 3.985 x (14,000 - 17,561.849235)
    # + 9.964 x (990 - 995) = 198.2836 - 14,193.9692 - 49.82 = -14,045.5056 (before: 198.2836, the fee only)
    btc = bars([flat(20_000.0), (14_000.0, 14_200.0, 13_800.0, 14_100.0), flat(14_100.0), flat(14_100.0)])
    eth = bars([flat(1_000.0), (990.0, 1_000.0, 980.0, 995.0), flat(995.0), flat(995.0)])
    spec = spec_of(btc, eth, np.full(4, 8.0), np.full(4, 1.0), allow_no_funding=True)
    r, f = both(spec)
    for res in (r, f):
        first, second = res.events["liquidations"].to_dict("records")
        assert first["fill_price"] == 17561.849234629863 and first["bankruptcy_price"] == 17561.849234629863
        assert first["fee"] == 198.28360000000248 and first["realized_pnl"] == -9716.030799999997
        assert second["fill_price"] == 995.0 and second["fee"] == 0.0 and second["realized_pnl"] == -49.82
        assert first["insurance_fund"] == pytest.approx(198.2836 + 3.985 * (14_000 - 17561.849234629863), abs=1e-9)
        assert second["insurance_fund"] == pytest.approx(9.964 * (990 - 995), abs=1e-9)
        assert res.insurance_fund == pytest.approx(-14_045.5056, abs=1e-9)
        assert first["insurance_cover"] == 0.0 and second["insurance_cover"] == 0.0
        assert res.summary["insurance_cover_total"] == 0.0
        assert res.equity.tolist() == [9964.1344, 0.0, 0.0, 0.0]
        assert abs(money_gap(res, spec.cash)) < 1e-9 * spec.cash


def test_the_portfolio_report_shows_the_cover_apart_from_the_fees(tmp_path) -> None:
    from reports.portfolio_report import render_portfolio_run

    btc, eth = funding_frames()
    spec = spec_of(btc, eth, np.full(4, 24.0), np.full(4, 1.0), cash=10_000.0, allow_no_funding=True)
    f = run_fast_portfolio(spec)
    page = render_portfolio_run(f.save(tmp_path / "run")).read_text()
    # the fund covered 1,930.508 (BTC) + 49.5 (ETH) = 1,980.008: a note, a column of the liquidations
    # and one of the events per symbol; the fees column holds the entries' taker fees only
    assert "the insurance fund covered 1,980.01 of the account" in page
    assert page.count("insurance fund&#x27;s cover</th>") == 2
    assert ">1,930.51<" in page and ">49.50<" in page
    assert "stored by an earlier deleverage" not in page


def test_a_portfolio_run_stored_with_the_cover_as_a_negative_fee_is_named(tmp_path) -> None:
    """The layout before 8edc9b2: the cover booked as a negative liquidation fee, no insurance_cover."""
    from reports.portfolio_report import render_portfolio_run
    from tests.reports.report_helpers import store_cover_as_fee

    btc, eth = funding_frames()
    spec = spec_of(btc, eth, np.full(4, 24.0), np.full(4, 1.0), cash=10_000.0, allow_no_funding=True)
    run = run_fast_portfolio(spec).save(tmp_path / "run")
    store_cover_as_fee(run)
    page = render_portfolio_run(run).read_text()
    assert ('id="legacy-banner">⚠ stored by an earlier deleverage: liquidation row 1 (and 1 more) has fee -1930.51 &lt; 0'
            in page)
