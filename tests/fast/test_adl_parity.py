"""Strategy-level ADL in the fast engine: parity with the backtrader broker at 1e-9 (issue 15).

Hand-made flows (``adl_long_notional`` / ``adl_short_notional`` per bar) on every venue's ranking
score, long and short, isolated and cross; the 2025-10-10 scenario on Hyperliquid (its ADL flow
is a labelled reconstruction from published aggregates) with a short through both engines; and a
hypothesis property: money is conserved in the fast engine with partial liquidation and ADL on,
and the broker agrees with it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.fast import run_fast, select_engine
from engine.runner import RunConfig, mechanics_needing_backtrader
from engine.strategy_ref import run_params
from feeds.scenarios import get_scenario
from risk.errors import DeleverageError
from strategies.buy_and_hold import BuyAndHold
from tests.engine.helpers import bars
from tests.fast.helpers import assert_parity, run_both

QUIET = (100_000.0, 100_500.0, 99_500.0, 100_000.0)


def _flow_frame(rows, short_flow, long_flow=None, start="2025-10-10"):
    frame = bars(rows, start=pd.Timestamp(start, tz="UTC"))
    frame["adl_short_notional"] = np.asarray(short_flow, dtype=float)
    frame["adl_long_notional"] = np.zeros(len(rows)) if long_flow is None else np.asarray(long_flow, dtype=float)
    return frame


def test_a_profitable_short_is_deleveraged_by_the_flow_in_both_engines() -> None:
    """Hyperliquid, a 10x short from 20,000 USDC at 100,000 (q = 1.99103 BTC). Bar 1 closes at
    95,000 with 50,000 USD of shorts ADL'd: at the front of the queue (quantile 1, the default)
    position (95,000 q of notional) takes all of it: 50,000 / 95,000 = 0.52631 BTC (lot-rounded
    down) bought back at the mark, PnL 5,000 per BTC, no fee. Bar 2's 1e9 flow closes the rest
    at 94,000. The long flow of bar 1 does not touch a short."""
    rows = [QUIET, (99_000.0, 99_500.0, 94_500.0, 95_000.0), (95_000.0, 95_500.0, 93_500.0, 94_000.0), QUIET]
    frame = _flow_frame(rows, [0.0, 50_000.0, 1e9, 0.0], long_flow=[0.0, 1e9, 0.0, 0.0])
    cfg = RunConfig(strategy="exposure", venue="hyperliquid", leverage=10.0, cash=20_000.0, allow_no_funding=True)
    slow, fast = run_both(frame, cfg, targets=np.full(4, -10.0))
    assert_parity(slow, fast, 20_000.0)
    q = fast.fills["qty"].iloc[0]
    first_qty = math.floor(50_000.0 / 95_000.0 / 1e-5 + 1e-9) * 1e-5
    assert first_qty == pytest.approx(0.52631, abs=1e-12)
    first, second = fast.adl.itertuples()
    assert first.side == "short" and first.qty == pytest.approx(first_qty, abs=1e-12) and first.price == 95_000.0
    assert first.realized_pnl == pytest.approx(first_qty * 5_000.0, rel=1e-9) and first.fee == 0.0
    assert first.quantile == 1.0 and first.lights == 5 and first.flow_notional == 50_000.0
    # Hyperliquid's sorting index for a short: (entry / mark) x notional / account value, the
    # account value of the isolated position being its margin (q x 100,000 / 10) + its uPnL
    value = q * 100_000.0 / 10.0 + q * 5_000.0
    assert first.score == pytest.approx((100_000 / 95_000) * q * 95_000 / value, rel=1e-12)
    assert first.score == pytest.approx(100_000 / 15_000, rel=1e-12)
    assert second.qty == pytest.approx(q - first_qty, abs=1e-12) and second.qty_left == 0.0
    assert fast.fills["kind"].tolist() == ["trade", "adl", "adl"]
    assert fast.summary["adl_events"] == 2 and not fast.summary["liquidated"]
    assert fast.summary["adl_notional"] == pytest.approx(slow.summary["adl_notional"], rel=1e-12)


def test_the_queue_ahead_absorbs_a_flow_in_both_engines() -> None:
    """Quantile 0.5 with 200,000 of queue: 100,000 ranked ahead absorbs a 60,000 flow; a losing
    short (bar 1 closes above the entry) is never reached; a 150,000 flow then hits the position
    for 50,000 of notional."""
    rows = [QUIET, (100_000.0, 101_500.0, 100_000.0, 101_000.0), (99_000.0, 99_500.0, 94_500.0, 95_000.0),
            (95_000.0, 95_500.0, 94_500.0, 95_000.0)]
    frame = _flow_frame(rows, [0.0, 1e9, 60_000.0, 150_000.0])
    cfg = RunConfig(strategy="exposure", venue="hyperliquid", leverage=10.0, cash=20_000.0, allow_no_funding=True,
                    adl_quantile=0.5, adl_queue_notional=200_000.0)
    slow, fast = run_both(frame, cfg, targets=np.full(4, -10.0))
    assert_parity(slow, fast, 20_000.0)
    (event,) = fast.adl.itertuples()
    assert event.time == frame.index[3] and event.quantile == 0.5 and event.lights == 3
    assert event.qty == pytest.approx(math.floor(50_000.0 / 95_000.0 / 1e-5 + 1e-9) * 1e-5, abs=1e-12)


@pytest.mark.parametrize("venue,start,price", [
    ("binance_usdm", "2021-05-18", 40_000.0),   # score_binance
    ("bybit", "2021-05-18", 40_000.0),          # PnL % x effective leverage; the maker fee
    ("bitmex", "2021-05-18", 40_000.0),         # inverse contracts, the same score
    ("okx", "2021-05-18", 40_000.0),
    ("hyperliquid", "2025-10-10", 100_000.0),
])
@pytest.mark.parametrize("mode", ["isolated", "cross"])
@pytest.mark.parametrize("side", [1, -1])
def test_every_venue_score_and_close_match_the_broker(venue: str, start: str, price: float, mode: str,
                                                      side: int) -> None:
    """A 5x position that moves 4 % in its favour meets a flow of about half its notional on its
    side, then one larger than what is left."""
    good = price * (1 + side * 0.04)
    rows = [(price, price * 1.001, price * 0.999, price), (price, max(price, good) * 1.001, min(price, good) * 0.999, good),
            (good, good * 1.001, good * 0.999, good), (good, good * 1.001, good * 0.999, good)]
    cash = 1.0 if venue == "bitmex" else 10_000.0
    quote = cash * 5 * (price if venue == "bitmex" else 1.0)
    flows = [0.0, quote * 0.5, quote * 10, 0.0]
    zero = [0.0] * 4
    frame = _flow_frame(rows, flows if side < 0 else zero, flows if side > 0 else zero, start=start)
    cfg = RunConfig(strategy="exposure", venue=venue, leverage=5.0, margin_mode=mode, cash=cash, allow_no_funding=True)
    slow, fast = run_both(frame, cfg, targets=np.full(4, side * 5.0))
    assert_parity(slow, fast, cash)
    adl = fast.adl
    assert len(adl) == 2 and adl["qty_left"].iloc[-1] == 0.0
    assert (adl["side"] == ("long" if side > 0 else "short")).all()
    assert (adl["score"] > 0).all()
    assert np.allclose(adl["score"], slow.adl["score"], rtol=1e-9)
    if venue == "bybit":
        fee = fast.fees[fast.fees["kind"] == "adl"]["amount"]
        assert len(fee) == 2 and (fee < 0).all()  # the maker rebate on the shipped instrument


@pytest.fixture(scope="module")
def hl_1010() -> pd.DataFrame:
    return get_scenario("2025-10-10").bars(venue="hyperliquid")


@pytest.mark.parametrize("leverage", [2.0, 10.0])
def test_20251010_short_on_hyperliquid_both_engines(hl_1010: pd.DataFrame, leverage: float) -> None:
    """The stress cell of ``stress buy_and_hold --param side=-1 --scenarios 2025-10-10 --venue
    hyperliquid --leverage 2,10``: the short is auto-deleveraged whole at 21:16 by the
    reconstructed flow, on both engines, with the same numbers; auto picks the fast engine now."""
    params = run_params(BuyAndHold, {"side": -1}, leverage)
    cfg = RunConfig(strategy="buy_and_hold", params=params, venue="hyperliquid", leverage=leverage)
    assert mechanics_needing_backtrader(cfg, hl_1010) == []
    assert select_engine(BuyAndHold, "auto", params, mechanics_needing_backtrader(cfg, hl_1010)) == "fast"
    slow, fast = run_both(hl_1010, cfg, strategy=BuyAndHold)
    assert_parity(slow, fast, cfg.cash)
    (event,) = fast.adl.itertuples()
    assert event.time == pd.Timestamp("2025-10-10 21:16", tz="UTC") and event.side == "short"
    assert event.qty_left == 0.0 and event.realized_pnl > 0
    assert not fast.summary["liquidated"] and fast.summary["adl_events"] == 1
    notes = fast.config["announcements"]
    assert any("ADL flow" in a and "RECONSTRUCTION" in a for a in notes)
    assert notes == slow.config["announcements"]


def test_bad_flow_is_one_error_line_in_the_fast_engine() -> None:
    frame = _flow_frame([QUIET, QUIET], [0.0, -5.0])
    cfg = RunConfig(strategy="exposure", venue="hyperliquid", allow_no_funding=True)
    with pytest.raises(DeleverageError, match=r"adl_short_notional row 1 .*expected a notional >= 0"):
        run_fast(frame, np.full(2, -1.0), cfg)
    frame = bars([QUIET, QUIET])
    frame["adl_short_notional"] = 0.0
    with pytest.raises(DeleverageError, match=r"ADL flow column adl_long_notional"):
        run_fast(frame, np.full(2, -1.0), cfg)


VENUES = {  # venue: (cash, start, price)
    "binance_usdm": (2_000_000.0, "2024-06-28", 20_000.0),
    "bybit": (2_000_000.0, "2021-05-18", 20_000.0),
    "hyperliquid": (400_000.0, "2025-10-10", 20_000.0),
    "bitmex": (100.0, "2020-04-16 12:00", 20_000.0),
    "okx": (200_000.0, "2021-05-18", 20_000.0),
}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(venue=st.sampled_from(sorted(VENUES)), data=st.data())
def test_money_is_conserved_with_partial_liquidation_and_adl(venue: str, data) -> None:
    """Random wicky bars, random target changes and a random ADL flow on both sides, partial
    liquidation on: the fast engine's equity change is exactly its fills' realized PnL - fees +
    funding + the insurance fund's cover + the open position's PnL at the last mark, no
    liquidation leaves negative equity, and the broker agrees with every event."""
    cash, start, price = VENUES[venue]
    n = data.draw(st.integers(4, 12))
    steps = data.draw(st.lists(st.floats(-0.04, 0.04), min_size=n, max_size=n))
    rows = []
    for step in steps:
        close = price * (1 + step)
        wick = data.draw(st.floats(0.0, 0.08))
        rows.append((price, max(price, close) * (1 + wick / 3), min(price, close) * (1 - wick), close))
        price = close
    targets = np.zeros(n)
    level = 0.0
    for i in range(n):
        if data.draw(st.booleans()):
            level = data.draw(st.sampled_from([-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0]))
        targets[i] = level
    quote = cash * 10 * (price if venue == "bitmex" else 1.0)
    flow = lambda: [data.draw(st.sampled_from([0.0, 0.0, 0.05, 0.3, 2.0])) * quote for _ in range(n)]  # noqa: E731
    frame = _flow_frame(rows, flow(), flow(), start=start)
    frame["funding_rate"] = np.where(np.arange(n) % 3 == 1, data.draw(st.floats(-0.002, 0.002)), np.nan)
    mode = data.draw(st.sampled_from(["isolated", "cross"]))
    cfg = RunConfig(strategy="exposure", venue=venue, leverage=10.0, margin_mode=mode, cash=cash,
                    partial_liquidation=True, adl_quantile=data.draw(st.sampled_from([None, 0.5, 0.9])),
                    adl_queue_notional=data.draw(st.sampled_from([0.0, quote])))
    slow, fast = run_both(frame, cfg, targets=targets)
    s = fast.summary
    parts = (fast.fills["realized_pnl"].sum() - fast.fees["amount"].sum() + fast.funding["amount"].sum()
             + fast.liquidations["insurance_cover"].sum() + fast.equity["unrealized_pnl"].iloc[-1])
    assert s["final_equity"] - cash == pytest.approx(parts, rel=1e-9, abs=1e-9 * cash)
    assert len(fast.fills[fast.fills["kind"] == "liquidation"]) == len(fast.liquidations)
    assert len(fast.fills[fast.fills["kind"] == "adl"]) == len(fast.adl)
    assert (fast.liquidations["equity_after"] > -1e-9 * cash).all()
    assert_parity(slow, fast, cash)
