"""A position whose margin a funding payment took entirely (funding larger than the margin) is
liquidated at the market, the bar's open, and the insurance fund covers the shortfall; it is never
"filled" at its bankruptcy price, which then lies beyond the entry (before the fix: a long closed at
20,600 on a bar trading 19,950..20,100; on the QA run 151,197 against a market of 30,200).

The cover is its own recorded kind, not a fee: the liquidation row's ``insurance_cover`` (> 0,
credited to the account) and the summary's ``insurance_cover_total``; the row's fee is 0, no fee
row is written for it and ``fees_total`` (what the account paid) stays >= 0 (before: a liquidation
fee of -14,705.4, so ``fees_total`` read -14,509.33, "fees earned"). ``insurance_fund`` (the
fund's net) is -cover: what it paid out."""

from __future__ import annotations

import numpy as np
import pytest

from engine.cli import main
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
    # the fund covers the shortfall, no clearance fee (the charge is -cover: the engines book it as the
    # fund's cover credited to the account, not as a fee); otherwise the clearance of liquidation_clearance
    assert liquidation_charge(False, False, 1, 24.39, 1.0, 20_000.0, 20_610.0, 20_000.0, 0.0125, -14_634.0, True) == \
        (-14_634.0, -14_634.0)
    assert liquidation_charge(False, False, 1, 0.5, 1.0, 18_000.0, 18_000.0, 18_500.0, 0.0125, 500.0, False) == \
        (112.5, 112.5)


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
        # = 20,600): the insurance fund pays it back, credited as its cover, not as a (negative) fee
        assert liq["insurance_cover"] == pytest.approx(14_705.4, rel=1e-9)
        assert liq["fee"] == 0.0
        assert s["insurance_cover_total"] == pytest.approx(14_705.4, rel=1e-9)
        # the fund's net is what it paid out
        assert liq["insurance_fund"] == pytest.approx(-14_705.4, rel=1e-9)
        assert s["insurance_fund"] == pytest.approx(-s["insurance_cover_total"], rel=1e-12)
        # fees are what the account paid: the entry's taker fee 490,180 x 0.04 % = 196.072 only
        assert s["fees_total"] == pytest.approx(196.072, rel=1e-12) and s["fees_total"] >= 0.0
        assert result.fees["kind"].tolist() == ["trade"] and (result.fees["amount"] >= 0.0).all()
        # what was never posted as margin is left: 10,000 - 196.072 entry fee - 9,803.6 margin = 0.328
        assert s["final_equity"] == pytest.approx(0.328, abs=1e-6)
        # money is conserved with the cover: 0 realized - 196.072 fees - 24,509 funding + 14,705.4 cover
        explained = (result.fills["realized_pnl"].sum() - result.fees["amount"].sum()
                     + result.funding["amount"].sum() + result.liquidations["insurance_cover"].sum())
        assert s["final_equity"] - 10_000.0 == pytest.approx(explained, abs=1e-9)
        assert explained == pytest.approx(-9_999.672, abs=1e-9)
        # per bar: the fee ledger holds no cover (196.072 throughout), and the trade's net includes it
        assert result.equity["fees_cum"].tolist() == [pytest.approx(196.072, rel=1e-12)] * 4
        assert result.trades["fees"].iloc[0] == pytest.approx(196.072, rel=1e-12)
        assert result.trades["pnl_net"].iloc[0] == pytest.approx(-9_999.672, abs=1e-9)
    assert slow.summary["insurance_cover_total"] == pytest.approx(fast.summary["insurance_cover_total"], rel=1e-12)


def test_bankruptcy_venue_insolvent_fill_is_the_open_too() -> None:
    config = RunConfig(strategy="exposure", venue="bybit", leverage=50.0, cash=10_000.0)
    slow, fast = run_both(frame(), config, targets=np.array([50.0, 50.0, 50.0, 50.0]))
    assert_parity(slow, fast, 10_000.0)
    for result in (slow, fast):
        liq = result.liquidations.iloc[0]
        assert liq["fill_price"] == 20_000.0 and liq["bankruptcy_price"] > 20_100.0
        assert 0.0 <= result.summary["final_equity"] < 1.0
        # Bybit takes the position over with no fee: the cover is the fund's, and no fee is negative
        assert liq["fee"] == 0.0 and liq["insurance_cover"] > 0.0
        assert result.summary["fees_total"] >= 0.0 and (result.fees["amount"] >= 0.0).all()
        assert result.summary["insurance_fund"] == pytest.approx(-liq["insurance_cover"], rel=1e-12)


@pytest.mark.parametrize("venue", ["hyperliquid", "binance_usdm", "okx"])
def test_an_insolvent_position_gets_no_partial_step(venue) -> None:
    config = RunConfig(strategy="exposure", venue=venue, leverage=40.0, cash=10_000.0, partial_liquidation=True)
    slow, fast = run_both(frame(), config, targets=np.array([40.0, 40.0, 40.0, 40.0]))
    assert_parity(slow, fast, 10_000.0)
    liq = slow.liquidations
    assert len(liq) == 1 and not liq["partial"].iloc[0]  # the whole position at once
    assert liq["fill_price"].iloc[0] == 20_000.0 and liq["insurance_fund"].iloc[0] < 0.0
    assert liq["insurance_cover"].iloc[0] == pytest.approx(-liq["insurance_fund"].iloc[0], rel=1e-12)
    assert liq["fee"].iloc[0] == 0.0 and slow.summary["fees_total"] >= 0.0
    assert liq["equity_after"].iloc[0] >= 0.0


def test_a_solvent_liquidation_is_unchanged_and_has_no_cover() -> None:
    # a wick to 19,500 liquidates the 50x long with margin left (0.1 % funding only): the figures the
    # engines gave before the cover had its own kind, bit for bit, and a cover of 0
    rows = [(20_000.0, 20_100.0, 19_900.0, 20_000.0), (20_000.0, 20_100.0, 19_950.0, 20_050.0),
            (20_050.0, 20_150.0, 19_500.0, 19_900.0), (19_900.0, 20_000.0, 19_850.0, 19_950.0)]
    expected = {
        # clearance fee capped at the margin left (Binance), or the bankruptcy takeover (Bybit, no fee)
        "binance_usdm": (0.3279999999995198, 3740.1788686868776, 3544.1068686868775, -490.18, 19764.60430326357,
                         3544.1068686868775, -5769.3131313131225),
        "bybit": (0.1599999999980355, 361.44, 2409.6, -481.92, 19620.0, 0.0, -9156.48),
    }
    for venue, (equity, fees, fund, funding, fill, fee, pnl) in expected.items():
        config = RunConfig(strategy="exposure", venue=venue, leverage=50.0, cash=10_000.0)
        slow, fast = run_both(bars(rows, funding={1: 0.001}, freq="1h"), config, targets=np.full(4, 50.0))
        assert_parity(slow, fast, 10_000.0)
        for result in (slow, fast):
            s = result.summary
            assert (s["final_equity"], s["fees_total"], s["insurance_fund"], s["funding_total"]) == \
                (equity, fees, fund, funding)
            [liq] = result.liquidations.to_dict("records")
            assert (liq["fill_price"], liq["fee"], liq["realized_pnl"]) == (fill, fee, pnl)
            assert liq["insurance_cover"] == 0.0 and s["insurance_cover_total"] == 0.0


def test_backtest_prints_the_cover_apart_from_the_fees(tmp_path, capsys) -> None:
    # the same bars as frame(), as a file with its 5 % funding at 01:00: buy_and_hold at 50x
    path = tmp_path / "bars.csv"
    path.write_text("open_time,open,high,low,close,volume,funding_rate\n"
                    "2021-01-01T00:00:00Z,20000,20100,19900,20000,10,\n"
                    "2021-01-01T01:00:00Z,20000,20100,19950,20050,10,0.05\n"
                    "2021-01-01T02:00:00Z,20050,20150,20000,20100,10,\n"
                    "2021-01-01T03:00:00Z,20100,20200,20050,20150,10,\n")
    out = tmp_path / "run"
    assert main(["backtest", "--data", str(path), "--leverage", "50", "--funding-unit", "fraction", "--no-report",
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    [insolvent] = [line for line in lines if "INSOLVENT" in line]
    assert "insurance fund covered 14,705.4 USDT (credited to the account, not a fee)" in insolvent
    [money] = [line for line in lines if line.startswith("  funding ")]
    assert money == "  funding -24,509 USDT, fees 196.072 USDT, fills 2, insurance fund's cover +14,705.4 USDT"
    # the stored run the reports read: the summary and the liquidation row carry the cover, the fees none
    from reports.results import RunResult

    stored = RunResult.load(out)
    assert stored.summary["fees_total"] == pytest.approx(196.072, rel=1e-12)
    assert stored.summary["insurance_cover_total"] == pytest.approx(14_705.4, rel=1e-9)
    assert stored.liquidations["insurance_cover"].tolist() == [pytest.approx(14_705.4, rel=1e-9)]
    assert (stored.fees["amount"] >= 0.0).all()


def test_the_reports_show_the_cover_apart_from_the_fees(tmp_path) -> None:
    from engine.runner import save_run
    from reports.html import render_run
    from reports.results import RunResult

    config = RunConfig(strategy="exposure", venue="binance_usdm", leverage=50.0, cash=10_000.0)
    _, fast = run_both(frame(), config, targets=np.full(4, 50.0))
    page = render_run(save_run(fast, tmp_path / "run", frame())).read_text()
    # the metrics table: the fees paid (the entry's 196.07) and the cover on its own row
    assert "Fees paid (USDT)</td><td class=\"\">196.07</td>" in page
    assert "Insurance fund&#x27;s cover, credited (USDT)</td><td class=\"\">14,705.40</td>" in page
    assert "Insurance fund&#x27;s cover (USDT)</th>" in page  # the liquidations table's column
    # a run directory written before the column existed reads a cover of 0
    path = tmp_path / "run"
    liq = RunResult.load(path).liquidations.drop(columns=["insurance_cover"])
    liq.to_parquet(path / "liquidations.parquet")
    assert RunResult.load(path).liquidations["insurance_cover"].tolist() == [0.0]
    render_run(path)
