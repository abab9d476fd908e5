"""Partial liquidation and strategy-level ADL in the backtrader broker (issue 15).

Hand-made bars, hand-calculated events. The partial closes reuse the worked examples of
``tests/risk/test_partial_liquidation.py`` (the kernel's numbers), now reached through a run:
a market buy at bar 0's open, a wick in bar 1 whose low is the price the partial step is
evaluated and filled at (the bar's adverse extreme of the trigger series).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.errors import DeleverageError
from risk.formulas import unrealized_pnl
from tests.engine.helpers import bars, run

QUIET = (100_000.0, 100_500.0, 99_500.0, 100_000.0)
HL_START = pd.Timestamp("2025-10-10 00:00", tz="UTC")  # Hyperliquid BTC at 40x max: MM 1.25 %


def hl_bars(rows):
    return bars(rows, start=HL_START)


def _liq_rows(broker):
    return broker.events["liquidations"]


def _conserved(broker, cash, last_price):
    ev = broker.events
    realized = sum(f["realized_pnl"] for f in ev["fills"])
    fees = sum(f["amount"] for f in ev["fees"])
    funding = sum(f["amount"] for f in ev["funding"])
    cover = sum(row["insurance_cover"] for row in ev["liquidations"])  # the fund's cover of an insolvent one
    pos = broker.book(broker._primary).position
    open_pnl = unrealized_pnl(pos.inverse, pos.qty, pos.contract_size, pos.entry, last_price) if pos.qty else 0.0
    return broker.getvalue() - cash, realized - fees + funding + cover + open_pnl


# --- partial liquidation ---------------------------------------------------------------------

def test_hyperliquid_twenty_percent_slice_then_the_position_survives() -> None:
    """3 BTC long @100,000 at 10x (isolated 30,000; LP 91,139.24: 30,000 + 3(P - 100,000) =
    3P x 1.25 %). Bar 1 wicks to 91,000: notional 273,000 > 100k USDC, so 20 % = 0.6 BTC is sold
    at 91,000 (PnL -5,400, no fee); collateral 24,600 stays with the 2.4 BTC left, whose LP is
    (240,000 - 24,600) / (2.4 - 0.03) = 90,886.08 < 91,000: no full liquidation.
    Equity: 40,000 - 135 (entry taker fee 0.045 % of 300,000) - 5,400 + 2.4 x (92,000 - 100,000)
    = 15,265."""
    frame = hl_bars([QUIET, (99_000.0, 99_500.0, 91_000.0, 92_000.0), (92_000.0, 92_500.0, 91_500.0, 92_000.0)])
    broker, strat = run([frame], {0: {0: 3.0}}, cash=40_000.0, venue="hyperliquid", leverage=10.0,
                        partial_liquidation=True)
    (row,) = _liq_rows(broker)
    assert row["partial"] is True and row["qty"] == pytest.approx(0.6, abs=1e-9)
    assert row["qty_left"] == pytest.approx(2.4, abs=1e-9)
    assert row["liquidation_price"] == pytest.approx(91_139.2405, abs=1e-3)
    assert row["fill_price"] == 91_000.0 and row["fee"] == 0.0
    assert row["realized_pnl"] == pytest.approx(-5_400.0, rel=1e-12)
    pos = broker.book(broker._primary).position
    assert pos.qty == pytest.approx(2.4) and pos.collateral == pytest.approx(24_600.0, rel=1e-12)
    assert broker.book(broker._primary).liq_price == pytest.approx(215_400.0 / 2.37, rel=1e-9)
    assert broker.getvalue() == pytest.approx(15_265.0, rel=1e-12)
    assert strat.liquidations == [row]
    change, parts = _conserved(broker, 40_000.0, 92_000.0)
    assert change == pytest.approx(parts, rel=1e-12)


def test_hyperliquid_slice_not_enough_then_the_rest_whole() -> None:
    """Same position, bar 1 wicks to 90,900: the 0.6 BTC slice at 90,900 (PnL -5,460) leaves
    MB 24,540 + 2.4 x (90,900 - 100,000) = 2,700 <= MM 2.4 x 90,900 x 1.25 % = 2,727: the rest
    follows, at its own liquidation price (240,000 - 24,540) / 2.37 = 90,911.39 (a market fill
    venue; the bar opened above it). Realized 2.4 x (90,911.39 - 100,000) = -21,812.66; no
    clearance fee on Hyperliquid. Equity 40,000 - 135 - 5,460 - 21,812.66 = 12,592.34 (whole at
    once, at 91,139.24: 13,282.72)."""
    frame = hl_bars([QUIET, (99_000.0, 99_500.0, 90_900.0, 92_000.0), (92_000.0, 92_500.0, 91_500.0, 92_000.0)])
    broker, _ = run([frame], {0: {0: 3.0}}, cash=40_000.0, venue="hyperliquid", leverage=10.0,
                    partial_liquidation=True)
    first, rest = _liq_rows(broker)
    assert first["partial"] and first["qty"] == pytest.approx(0.6) and first["fill_price"] == 90_900.0
    lp2 = 215_460.0 / 2.37
    assert not rest["partial"] and rest["qty"] == pytest.approx(2.4) and rest["qty_left"] == 0.0
    assert rest["fill_price"] == pytest.approx(lp2, rel=1e-9)
    assert rest["realized_pnl"] == pytest.approx(2.4 * (lp2 - 100_000.0), rel=1e-9)
    assert broker.getvalue() == pytest.approx(40_000.0 - 135.0 - 5_460.0 + 2.4 * (lp2 - 100_000.0), rel=1e-12)
    assert broker.book(broker._primary).position.qty == 0.0
    # off (the default): one whole liquidation at 91,139.24
    broker, _ = run([frame], {0: {0: 3.0}}, cash=40_000.0, venue="hyperliquid", leverage=10.0)
    (whole,) = _liq_rows(broker)
    assert not whole["partial"] and whole["qty"] == pytest.approx(3.0)
    assert broker.getvalue() == pytest.approx(40_000.0 - 135.0 + 3 * (270_000.0 / 2.9625 - 100_000.0), rel=1e-9)


def test_bybit_fill_or_kill_steps_down_to_the_base_risk_limit() -> None:
    """75 BTC long @40,000 (3M USDT: the 1 % tier, Bybit values it at the entry) at 50x, isolated
    60,000; LP (bankruptcy-fill venue) from 60,000 + 75(P - 40,000) = 30,000: 39,600. Bar 1 wicks
    to 39,500: FOK of 75 - 2,000,000 / 40,000 = 25 BTC at 39,500 (PnL -12,500, taker fee
    0.075 % x 987,500 = 740.625, not to the insurance fund); 50 BTC left with 46,759.375
    (MM 10,000 at 0.5 %; MB 21,759.375 at 39,500): no full liquidation, new LP 39,264.81.
    Equity 70,000 - 2,250 - 12,500 - 740.625 + 50 x (39,700 - 40,000) = 39,509.375."""
    rows = [(40_000.0, 40_100.0, 39_900.0, 40_000.0), (39_900.0, 40_000.0, 39_500.0, 39_700.0)]
    broker, _ = run([bars(rows)], {0: {0: 75.0}}, cash=70_000.0, venue="bybit", leverage=50.0,
                    partial_liquidation=True)
    (row,) = _liq_rows(broker)
    assert row["partial"] and row["qty"] == pytest.approx(25.0) and row["qty_left"] == pytest.approx(50.0)
    assert row["liquidation_price"] == pytest.approx(39_600.0, rel=1e-12)
    assert row["fee"] == pytest.approx(740.625, rel=1e-12) and row["insurance_fund"] == 0.0
    assert broker.book(broker._primary).position.collateral == pytest.approx(46_759.375, rel=1e-12)
    assert broker.book(broker._primary).liq_price == pytest.approx(40_000.0 - 36_759.375 / 50, rel=1e-12)
    assert broker.getvalue() == pytest.approx(39_509.375, rel=1e-12)
    assert broker.insurance_fund == 0.0
    fee_rows = [f for f in broker.events["fees"] if f["kind"] == "liquidation"]
    assert [f["amount"] for f in fee_rows] == [pytest.approx(740.625)]


def test_binance_restoring_ioc_on_a_large_position() -> None:
    """300 BTC long @60,000 at 10x (isolated 1.8M) on Binance USD-M, 2024 brackets: the kernel's
    worked example. Bar 1 wicks to 54,600: one IOC of 39.439 BTC at 54,600, clearance fee
    1.25 % x 39.439 x 54,600 = 26,917.12 to the insurance fund, 260.561 BTC left and margin
    compliant (MB 153,082.88 > MM 153,082.61). Equity: 2,000,000 - 7,200 (entry fee 0.04 %)
    - 26,917.12 + 39.439 x (54,600 - 60,000) + 260.561 x (54,900 - 60,000) = 424,051.18."""
    start = pd.Timestamp(1_719_532_800, unit="s", tz="UTC")
    rows = [(60_000.0, 60_100.0, 59_900.0, 60_000.0), (59_000.0, 59_500.0, 54_600.0, 54_900.0)]
    broker, _ = run([bars(rows, start=start)], {0: {0: 300.0}}, cash=2_000_000.0, leverage=10.0,
                    partial_liquidation=True)
    (row,) = _liq_rows(broker)
    assert row["partial"] and row["qty"] == pytest.approx(39.439, abs=1e-9)
    assert row["fee"] == pytest.approx(0.0125 * 39.439 * 54_600, rel=1e-12)
    assert row["insurance_fund"] == pytest.approx(row["fee"], rel=1e-12)
    assert broker.insurance_fund == pytest.approx(26_917.1175, rel=1e-9)
    assert row["qty_left"] == pytest.approx(260.561, abs=1e-9)
    assert broker.getvalue() == pytest.approx(2_000_000.0 - 7_200.0 - 0.0125 * 39.439 * 54_600
                                              + 39.439 * (54_600.0 - 60_000.0) + 260.561 * (54_900.0 - 60_000.0),
                                              rel=1e-12)
    assert broker.getvalue() == pytest.approx(424_051.1825, rel=1e-12)


VENUE_CASES = {  # venue: (lot of the plan, cash, start): sizes large enough for the partial rules
    "binance_usdm": (50.0, 2_000_000.0, "2024-06-28"),
    "bybit": (50.0, 2_000_000.0, "2021-05-18"),
    "hyperliquid": (5.0, 200_000.0, "2025-10-10"),
    "bitmex": (1_000_000.0, 100.0, "2020-04-16 12:00"),
}


@settings(max_examples=25, deadline=None)
@given(venue=st.sampled_from(sorted(VENUE_CASES)), data=st.data())
def test_money_is_conserved_and_isolated_equity_floors_at_zero_with_partials(venue: str, data) -> None:
    unit, cash, start = VENUE_CASES[venue]
    n = data.draw(st.integers(4, 14))
    steps = data.draw(st.lists(st.floats(-0.04, 0.04), min_size=n, max_size=n))
    price, rows = 20_000.0, []
    for step in steps:
        close = price * (1 + step)
        wick = data.draw(st.floats(0.0, 0.08))
        rows.append((price, max(price, close) * (1 + wick / 4), min(price, close) * (1 - wick), close))
        price = close
    plan = {i: data.draw(st.integers(-3, 3)) * unit
            for i in data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=4))}
    lev = data.draw(st.sampled_from([5.0, 10.0, 20.0]))
    mode = data.draw(st.sampled_from(["isolated", "cross"]))
    broker, strat = run([bars(rows, start=pd.Timestamp(start, tz="UTC"))], {0: plan}, cash=cash, venue=venue,
                        leverage=lev, margin_mode=mode, partial_liquidation=True)
    change, parts = _conserved(broker, cash, rows[-1][3])
    assert np.isclose(change, parts, rtol=1e-9, atol=1e-9 * cash)
    assert len([f for f in broker.events["fills"] if f["kind"] == "liquidation"]) == len(_liq_rows(broker))
    for row in _liq_rows(broker):
        assert row["equity_after"] > -1e-9 * cash
    if mode == "isolated":
        assert broker.getvalue() > -1e-9 * cash
    assert strat.getposition(strat.data).size == broker.book(broker._primary).position.qty


# --- strategy-level ADL ----------------------------------------------------------------------

def _adl_bars(rows, short_flow, long_flow=None):
    frame = bars(rows)
    frame["adl_short_notional"] = np.asarray(short_flow, dtype=float)
    frame["adl_long_notional"] = np.zeros(len(rows)) if long_flow is None else np.asarray(long_flow, dtype=float)
    return frame


def test_a_profitable_short_is_auto_deleveraged_by_the_flow() -> None:
    """Hyperliquid, 1 BTC short @100,000 at 10x. Bar 1 closes at 95,000 with 50,000 USD of shorts
    ADL'd; at the front of the queue (quantile 1, the default assumption) the position's 95,000
    notional takes all of it: 50,000 / 95,000 of 1 BTC = 0.526315.., rounded down to the 0.00001
    lot: 0.52631 BTC bought back at the mark 95,000, PnL 0.52631 x 5,000 = 2,631.55, no fee.
    Bar 2 (flow 100,000 > the 0.47369 x 94,000 left) closes the rest at 94,000: PnL 2,842.14."""
    rows = [QUIET, (99_000.0, 99_500.0, 94_500.0, 95_000.0), (95_000.0, 95_500.0, 93_500.0, 94_000.0),
            (94_000.0, 94_500.0, 93_500.0, 94_000.0)]
    frame = _adl_bars(rows, [0.0, 50_000.0, 100_000.0, 0.0], long_flow=[0.0, 1e9, 0.0, 0.0])
    broker, strat = run([frame], {0: {0: -1.0}}, cash=20_000.0, venue="hyperliquid", leverage=10.0)
    first, second = broker.events["adl"]
    assert first["side"] == "short" and first["qty"] == pytest.approx(0.52631, abs=1e-12)
    assert first["price"] == 95_000.0 and first["fee"] == 0.0
    assert first["realized_pnl"] == pytest.approx(0.52631 * 5_000.0, rel=1e-12)
    assert first["quantile"] == 1.0 and first["lights"] == 5 and first["flow_notional"] == 50_000.0
    # Hyperliquid's sorting index for a short: (entry / mark) x notional / account value
    assert first["score"] == pytest.approx((100_000 / 95_000) * 95_000 / (10_000 + 5_000), rel=1e-12)
    assert first["qty_left"] == pytest.approx(0.47369, abs=1e-12)
    assert second["qty"] == pytest.approx(0.47369, abs=1e-12) and second["qty_left"] == 0.0
    assert second["realized_pnl"] == pytest.approx(0.47369 * 6_000.0, rel=1e-9)
    assert broker.book(broker._primary).position.qty == 0.0
    assert [f["kind"] for f in broker.events["fills"]] == ["trade", "adl", "adl"]
    assert strat.adls == broker.events["adl"]
    assert broker.getvalue() == pytest.approx(20_000.0 - 45.0 + 0.52631 * 5_000.0 + 0.47369 * 6_000.0, rel=1e-12)
    change, parts = _conserved(broker, 20_000.0, 94_000.0)
    assert change == pytest.approx(parts, rel=1e-12)
    assert not broker.events["liquidations"]


def test_adl_reaches_only_profitable_positions_and_respects_the_queue() -> None:
    """A losing short is not reached (bar 1 closes above its entry). With quantile 0.5 and a
    queue of 200,000 behind the flow, 100,000 ahead of the position absorbs a 60,000 flow:
    nothing; then a 150,000 flow hits it for 50,000 of its 95,000 notional."""
    rows = [QUIET, (100_000.0, 101_500.0, 100_000.0, 101_000.0), (99_000.0, 99_500.0, 94_500.0, 95_000.0),
            (95_000.0, 95_500.0, 94_500.0, 95_000.0)]
    frame = _adl_bars(rows, [0.0, 1e9, 60_000.0, 150_000.0])
    broker, _ = run([frame], {0: {0: -1.0}}, cash=20_000.0, venue="hyperliquid", leverage=10.0,
                    adl_quantile=0.5, adl_queue_notional=200_000.0)
    (event,) = broker.events["adl"]
    assert event["time"] == frame.index[3].to_pydatetime()
    assert event["qty"] == pytest.approx(0.52631, abs=1e-12) and event["quantile"] == 0.5 and event["lights"] == 3


def test_bybit_adl_charges_the_maker_fee() -> None:
    """Bybit charges its maker fee (-0.025 % on the shipped instrument: a rebate) to the ADL'd
    position: 0.5 BTC short closed at 38,000 -> fee -0.00025 x 19,000 = -4.75."""
    rows = [(40_000.0, 40_100.0, 39_900.0, 40_000.0), (39_000.0, 39_100.0, 37_900.0, 38_000.0)]
    frame = _adl_bars(rows, [0.0, 19_000.0])
    broker, _ = run([frame], {0: {0: -1.0}}, cash=10_000.0, venue="bybit", leverage=10.0)
    (event,) = broker.events["adl"]
    assert event["qty"] == pytest.approx(0.5) and event["fee"] == pytest.approx(-4.75, rel=1e-12)
    assert [f["amount"] for f in broker.events["fees"] if f["kind"] == "adl"] == [pytest.approx(-4.75)]


def test_bad_adl_flow_is_one_clear_error() -> None:
    frame = _adl_bars([QUIET, QUIET], [0.0, -5.0])
    with pytest.raises(DeleverageError, match=r"adl_short_notional row 1 .*expected a notional >= 0"):
        run([frame], {0: {0: -1.0}}, venue="hyperliquid")
    frame = bars([QUIET, QUIET])
    frame["adl_short_notional"] = 0.0
    with pytest.raises(DeleverageError, match=r"ADL flow column adl_long_notional"):
        run([frame], {0: {0: -1.0}}, venue="hyperliquid")


@pytest.mark.parametrize("venue,qty,cash,start", [
    ("binance_usdm", 0.5, 10_000.0, "2021-01-01"),   # clearance 1.25 % > bracket MM: whole (Binance: small users)
    ("bybit", 1.0, 10_000.0, "2021-01-01"),          # base risk limit: taken over whole
    ("hyperliquid", 0.5, 10_000.0, "2025-10-10"),    # 50,000 USDC notional <= 100k: whole
])
def test_small_positions_are_liquidated_whole_either_way(venue, qty, cash, start) -> None:
    rows = [(20_000.0, 20_100.0, 19_900.0, 20_000.0), (19_900.0, 20_000.0, 18_500.0, 18_700.0),
            (18_700.0, 18_800.0, 18_600.0, 18_700.0)]
    frame = bars(rows, start=pd.Timestamp(start, tz="UTC"))
    on, _ = run([frame], {0: {0: qty}}, cash=cash, venue=venue, leverage=20.0, partial_liquidation=True)
    off, _ = run([frame], {0: {0: qty}}, cash=cash, venue=venue, leverage=20.0)
    assert len(_liq_rows(off)) == 1 and not _liq_rows(on)[0]["partial"]
    assert _liq_rows(on) == _liq_rows(off) and on.getvalue() == off.getvalue()
    assert on.events["fees"] == off.events["fees"]
