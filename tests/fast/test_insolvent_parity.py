"""Insolvent liquidations on random paths, both engines: funding settlements of up to 5 % on
positions of 20-50x (larger than their margin) leave positions bankrupt at a bar's open, which the
venues close at the market with the insurance fund covering the shortfall. The cover is its own
recorded kind (the liquidation row's ``insurance_cover``, the summary's ``insurance_cover_total``),
never a fee: every liquidation fee is >= 0, money is conserved with it (equity change = realized
PnL - fees + funding + cover + open PnL), the fund's net entry of an insolvent row is -cover, and
the broker and the compiled engine agree on every row at 1e-9. Hand-calculated figures:
tests/engine/test_insolvent_liquidation.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.fast import simulate_arrays
from engine.runner import RunConfig
from tests.engine.helpers import bars
from tests.fast.helpers import assert_parity, run_both

CASH = 10_000.0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(venue=st.sampled_from(["binance_usdm", "bybit", "okx", "hyperliquid"]), data=st.data())
def test_covers_are_their_own_kind_and_money_is_conserved(venue: str, data) -> None:
    n = data.draw(st.integers(4, 10))
    price, rows = 20_000.0, []
    for _ in range(n):
        close = price * (1 + data.draw(st.floats(-0.01, 0.01)))
        wick = data.draw(st.floats(0.0, 0.02))
        rows.append((price, max(price, close) * (1 + wick), min(price, close) * (1 - wick), close))
        price = close
    targets = np.zeros(n)
    level = data.draw(st.sampled_from([-40.0, -25.0, 25.0, 40.0]))
    for i in range(n):
        if i and data.draw(st.integers(0, 4)) == 0:
            level = data.draw(st.sampled_from([-40.0, -25.0, 0.0, 20.0, 25.0, 40.0]))
        targets[i] = level
    # settlements mostly against the position held into the bar (a long pays a positive rate)
    funding = {i: float(np.sign(targets[i - 1]) or 1.0) * data.draw(st.sampled_from([0.05, 0.03, 0.001, -0.05]))
               for i in data.draw(st.sets(st.integers(1, n - 1), min_size=1, max_size=3))}
    cfg = RunConfig(strategy="exposure", venue=venue, leverage=40.0, cash=CASH,
                    margin_mode=data.draw(st.sampled_from(["isolated", "cross"])),
                    partial_liquidation=data.draw(st.booleans()))
    slow, fast = run_both(bars(rows, funding=funding, freq="1h"), cfg, targets=targets)
    assert_parity(slow, fast, CASH)
    for result in (slow, fast):
        s, liq = result.summary, result.liquidations
        cover = liq["insurance_cover"]
        parts = (result.fills["realized_pnl"].sum() - result.fees["amount"].sum() + result.funding["amount"].sum()
                 + cover.sum() + result.equity["unrealized_pnl"].iloc[-1])
        assert s["final_equity"] - CASH == pytest.approx(parts, rel=1e-9, abs=1e-9 * CASH)
        # fees are what the account paid: no liquidation fee is negative, and the cover is not among them
        liq_fees = result.fees[result.fees["kind"] == "liquidation"]["amount"]
        assert (liq_fees >= 0.0).all() and (liq["fee"] >= 0.0).all() and (cover >= 0.0).all()
        assert s["insurance_cover_total"] == pytest.approx(cover.sum(), abs=1e-9)
        assert s["fees_total"] == pytest.approx(result.fees["amount"].sum(), abs=1e-9)
        # the fund paid the cover: an insolvent row's fund entry is -cover, with no fee charged
        covered = liq[cover > 0.0]
        assert (covered["fee"] == 0.0).all() and (covered["insurance_fund"] == -covered["insurance_cover"]).all()
        assert s["insurance_fund"] == pytest.approx(liq["insurance_fund"].sum(), abs=1e-9)
        assert (liq["equity_after"] > -1e-9 * CASH).all()


def test_an_account_wiped_out_in_its_first_bar_gives_nan_drawdown_not_a_crash() -> None:
    """The shrunk hypothesis example (its 2.2e-313 'price change' is no subnormal price: 20,000 x
    (1 + 2.2e-313) == 20,000 exactly, so the loaders' positive-finite bars are all it needs).
    Binance cross 40x short from 10,000 USDT at 20,000: 19.685 BTC, entry fee 19.685 x 20,000 x
    0.04 % = 157.48. Bar 0's high 20,390.625 passes the liquidation price 20,362.416978: the close
    there realizes 19.685 x (20,000 - 20,362.416978) = -7,134.178218, the margin left
    10,000 - 157.48 - 7,134.178218 = 2,708.341782 is below the clearance fee (1.25 % x 19.685 x
    20,362.42 = 5,010.7), so the capped fee takes it all: equity 0 at every bar's end. The running
    peak of the bar-end equity is then 0 and 1 - 0 / 0 is undefined: ``max_drawdown`` is NaN in both
    engines (numpy's nanmax of all-NaN, without warnings), where the compiled pass raised
    ZeroDivisionError; the optimizer's score moments skip the 0 / 0 returns the same way."""
    rows = [(20_000.0, 20_390.625, 19_609.375, 20_000.0)] + [(20_000.0, 20_100.0, 19_900.0, 20_000.0)] * 3
    targets = np.array([-40.0, 25.0, 0.0, 0.0])
    cfg = RunConfig(strategy="exposure", venue="binance_usdm", leverage=40.0, cash=CASH, margin_mode="cross")
    frame = bars(rows, funding={1: -0.05}, freq="1h")
    slow, fast = run_both(frame, cfg, targets=targets)
    assert_parity(slow, fast, CASH)
    for result in (slow, fast):
        (row,) = result.liquidations.itertuples()
        assert row.qty == pytest.approx(19.685, abs=1e-9) and row.fill_price == pytest.approx(20_362.416978, rel=1e-9)
        assert row.realized_pnl == pytest.approx(-7_134.178218, rel=1e-9)
        assert row.fee == pytest.approx(2_708.341782, rel=1e-9) and row.equity_after == 0.0
        assert (result.equity["equity"] == 0.0).all() and result.summary["final_equity"] == 0.0
        assert np.isnan(result.summary["max_drawdown"])
    res = simulate_arrays(frame, targets, cfg, score=True)
    assert res["final_equity"] == 0.0 and np.isnan(res["max_drawdown"])
    m = res["moments"]  # one valid return, 0 / 10,000 - 1 = -1; then 0 / 0 (skipped)
    assert (m["returns"], m["returns_valid"], m["returns_sum"], m["max_drawdown_from_start"]) == (4, 1, -1.0, 1.0)
