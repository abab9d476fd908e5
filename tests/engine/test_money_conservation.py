"""Money is conserved: every change of equity is a fill's realized PnL, a fee, a funding payment,
the insurance fund's cover of an insolvent liquidation (its own kind, never a fee) or the
unrealized PnL of the open position (hypothesis over random bars, orders and funding; insolvent
paths on purpose, both engines: tests/fast/test_insolvent_parity.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.formulas import unrealized_pnl
from tests.engine.helpers import bars, run


@st.composite
def scenario(draw: st.DrawFn) -> dict:
    n = draw(st.integers(min_value=4, max_value=25))
    venue = draw(st.sampled_from(["binance_usdm", "bitmex"]))
    steps = draw(st.lists(st.floats(min_value=-0.04, max_value=0.04), min_size=n, max_size=n))
    price = 20_000.0
    rows = []
    for step in steps:
        close = price * (1 + step)
        wick = draw(st.floats(min_value=0.0, max_value=0.06))
        rows.append((price, max(price, close) * (1 + wick / 4), min(price, close) * (1 - wick), close))
        price = close
    funding = {i: draw(st.floats(min_value=-0.003, max_value=0.003))
               for i in draw(st.sets(st.integers(min_value=0, max_value=n - 1), max_size=5))}
    unit = 10_000.0 if venue == "bitmex" else 0.5  # contracts of 1 USD, or BTC
    plan = {i: draw(st.integers(min_value=-3, max_value=3)) * unit
            for i in draw(st.sets(st.integers(min_value=0, max_value=n - 1), min_size=1, max_size=6))}
    return {
        "rows": rows, "funding": funding, "plan": plan, "venue": venue,
        "cash": 1.0 if venue == "bitmex" else 10_000.0,
        "leverage": draw(st.sampled_from([2.0, 5.0, 10.0, 25.0])),
        "mode": draw(st.sampled_from(["isolated", "cross"])),
    }


@settings(max_examples=60, deadline=None)
@given(scenario())
def test_equity_change_is_fills_fees_funding_and_open_pnl(case: dict) -> None:
    frame = bars(case["rows"], funding=case["funding"])
    broker, strat = run([frame], {0: case["plan"]}, cash=case["cash"], venue=case["venue"],
                        leverage=case["leverage"], margin_mode=case["mode"])
    ev = broker.events
    realized = sum(f["realized_pnl"] for f in ev["fills"])
    fees = sum(f["amount"] for f in ev["fees"])
    funding = sum(f["amount"] for f in ev["funding"])
    cover = sum(row["insurance_cover"] for row in ev["liquidations"])
    book = broker.book(broker._primary)
    pos = book.position
    open_pnl = unrealized_pnl(pos.inverse, pos.qty, pos.contract_size, pos.entry, case["rows"][-1][3]) if pos.qty else 0.0
    change = broker.getvalue() - case["cash"]
    assert np.isclose(change, realized - fees + funding + cover + open_pnl, rtol=1e-9, atol=1e-9 * case["cash"])
    # a liquidation fee is what the account pays (>= 0); the cover is credited, and is the fund's payout
    assert all(f["amount"] >= 0.0 for f in ev["fees"] if f["kind"] == "liquidation")
    assert all(row["insurance_cover"] >= 0.0 for row in ev["liquidations"])
    clearance = sum(f["amount"] for f in ev["fees"] if f["kind"] == "liquidation")
    assert np.isclose(broker.insurance_fund, sum(row["insurance_fund"] for row in ev["liquidations"]),
                      rtol=1e-12, atol=1e-12 * case["cash"])
    if case["venue"] == "binance_usdm":  # the clearance fee is the fund's (BitMEX: the takeover margin)
        assert np.isclose(broker.insurance_fund, clearance - cover, rtol=1e-9, atol=1e-9 * case["cash"])
    # the recorded equity curve ends where the broker does, and the fee and funding ledgers
    # recorded per bar add up to the event rows
    assert broker._rec["equity"][-1] == broker.getvalue()
    assert np.isclose(broker._rec_fees[-1], fees) and np.isclose(broker._rec_funding[-1], funding)
    # fills carry fees and liquidation fills are marked
    assert all(f["kind"] in ("trade", "liquidation") for f in ev["fills"])
    assert len([f for f in ev["fills"] if f["kind"] == "liquidation"]) == len(ev["liquidations"])
    # isolated losses never exceed the posted margin: equity stays non-negative
    if case["mode"] == "isolated":
        assert broker.getvalue() > -1e-9 * case["cash"]
    # backtrader's position and the risk position agree
    assert strat.getposition(strat.data).size == pos.qty
