"""Partial liquidation in the fast engine: parity with the backtrader broker at 1e-9 (issue 15).

Hand-made bars: a quiet bar 0 whose open fills the target, a wick in bar 1 just through the
position's liquidation price (read from the engine's own bar-0 record), a quiet bar 2. Every
venue's rule (Binance's restoring IOC, BitMEX's and Bybit's risk-limit FOK, OKX's two-tier steps
on a multi-tier table, Hyperliquid's 20 % slice and its 30 s cooldown), long and short, isolated
and cross; each case asserts that the venue's partial row is there (the test fails if the rule
never fires) and that fills, fees, funding, liquidation rows (``partial``, ``qty_left``), adl rows
and per-bar equity agree between the engines to 1e-9 relative.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from engine.fast import run_fast, select_engine
from engine.runner import RunConfig
from risk.instrument import TierTable
from risk.venues import INSTRUMENTS
from strategies.buy_and_hold import BuyAndHold
from tests.engine.helpers import bars
from tests.fast.helpers import assert_parity, run_both

# venue: (cash, target leverage, start (tier table in force), entry price, wick depths below the LP)
CASES = {
    "hyperliquid": (400_000.0, 10.0, "2025-10-10", 100_000.0, (0.0002, 0.003)),
    "bybit": (80_000.0, 40.0, "2021-05-18", 40_000.0, (0.0002, 0.003)),
    "binance_usdm": (1_807_200.0, 10.0, "2024-06-28", 60_000.0, (0.0002, 0.001)),
    "bitmex": (6.5, 50.0, "2020-04-16 12:00", 10_000.0, (0.0002, 0.01)),
    "okx": (300_000.0, 20.0, "2021-05-18", 30_000.0, (0.0002, 0.001)),
}

# OKX ships one bracket (risk.venues.OKX_BTC_USDT_SWAP_TABLE), with which every liquidation is whole;
# the tier steps need a table with tiers: the hand-made one of tests/risk/test_partial_liquidation.py
# (OKX's published structure, +0.5 % per 1M USDT tier), put in place for both engines.
OKX_TIERS = TierTable(effective_from="2020-01-01", floors=(0.0, 1e6, 2e6, 3e6, 4e6, 5e6),
                      mmrs=(0.004, 0.009, 0.014, 0.019, 0.024, 0.029), max_leverages=(125,) * 6,
                      source="hand-made test table with OKX's published +0.5 % per tier structure")


@pytest.fixture
def okx_tiers(monkeypatch):
    key = ("okx", "BTC-USDT-SWAP")
    monkeypatch.setitem(INSTRUMENTS, key, dataclasses.replace(INSTRUMENTS[key], tier_tables=(OKX_TIERS,)))


def _quiet(p: float) -> tuple[float, float, float, float]:
    return (p, p * 1.0005, p * 0.9995, p)


def _wick_frame(cfg: RunConfig, side: int, start: str, price: float, depth: float, freq: str = "1min"):
    """Bars 0-2; bar 1's adverse extreme is ``depth`` beyond the liquidation price of the position
    filled at bar 0's open, and it closes 0.2 % on the safe side of it."""
    t0 = pd.Timestamp(start, tz="UTC")
    lev = cfg.leverage
    probe = run_fast(bars([_quiet(price)] * 3, start=t0, freq=freq), np.full(3, side * lev), cfg)
    lp = float(probe.equity["liquidation_price"].iloc[0])
    ext, close = lp * (1 - side * depth), lp * (1 + side * 0.002)
    opn = price * (1 - side * 0.001)
    row = (opn, max(opn, ext, close), min(opn, ext, close), close)
    return bars([_quiet(price), row, _quiet(close)], start=t0, freq=freq), lp


@pytest.mark.parametrize("venue", sorted(CASES))
@pytest.mark.parametrize("mode", ["isolated", "cross"])
@pytest.mark.parametrize("side", [1, -1])
def test_every_venue_partial_rule_matches_the_broker(venue: str, mode: str, side: int, request) -> None:
    if venue == "okx":
        request.getfixturevalue("okx_tiers")
    cash, lev, start, price, depths = CASES[venue]
    cfg = RunConfig(strategy="exposure", venue=venue, leverage=lev, margin_mode=mode, cash=cash,
                    allow_no_funding=True, partial_liquidation=True)
    partial_rows = 0
    for depth in depths:
        frame, lp = _wick_frame(cfg, side, start, price, depth)
        slow, fast = run_both(frame, cfg, targets=np.full(3, side * lev))
        assert_parity(slow, fast, cash)
        liq = fast.liquidations
        assert len(liq) >= 1 and liq["liquidation_price"].iloc[0] == pytest.approx(lp, rel=1e-12)
        partial_rows += int(liq["partial"].sum())
        first = liq.iloc[0]
        if first["partial"]:
            # the slice filled at the bar's adverse extreme, without trade fee; what is left is open
            assert first["fill_price"] == first["trigger_price"] == (frame["low"].iloc[1] if side > 0
                                                                      else frame["high"].iloc[1])
            held = abs(fast.fills["qty"].iloc[0])
            assert first["qty"] + first["qty_left"] == pytest.approx(held, rel=1e-12)
            assert fast.fills["kind"].tolist()[1] == "liquidation" and fast.fills["fee"].iloc[1] == 0.0
        assert fast.summary["partial_liquidations"] == int(liq["partial"].sum())
    assert partial_rows >= 1, f"{venue}: the partial rule never fired"


def test_off_by_default_the_liquidation_is_whole_in_both_engines() -> None:
    cash, lev, start, price, _ = CASES["hyperliquid"]
    cfg = RunConfig(strategy="exposure", venue="hyperliquid", leverage=lev, cash=cash, allow_no_funding=True)
    frame, _ = _wick_frame(cfg, 1, start, price, 0.0002)
    slow, fast = run_both(frame, cfg, targets=np.full(3, lev))
    assert_parity(slow, fast, cash)
    assert fast.liquidations["partial"].tolist() == [False] and fast.liquidations["qty_left"].tolist() == [0.0]


def test_hyperliquid_slice_numbers() -> None:
    """39.8 BTC long at 10x (isolated): a wick to 0.02 % below the LP sells 20 % (lot-rounded
    down) at the wick, PnL (wick - entry) x slice, no fee; the 80 % left keeps collateral
    IM + PnL and survives: one row, partial, and the rest marked at the close."""
    cash, lev, start, price, _ = CASES["hyperliquid"]
    cfg = RunConfig(strategy="exposure", venue="hyperliquid", leverage=lev, cash=cash, allow_no_funding=True,
                    partial_liquidation=True)
    frame, lp = _wick_frame(cfg, 1, start, price, 0.0002)
    fast = run_fast(frame, np.full(3, lev), cfg)
    qty = fast.fills["qty"].iloc[0]
    entry = fast.fills["price"].iloc[0]
    (row,) = fast.liquidations.itertuples()
    wick = frame["low"].iloc[1]
    assert row.qty == pytest.approx(math.floor(qty * 0.2 / 1e-5 + 1e-9) * 1e-5, abs=1e-12)
    assert row.fill_price == wick and row.fee == 0.0 and row.insurance_fund == 0.0
    assert row.realized_pnl == pytest.approx(row.qty * (wick - entry), rel=1e-12)
    assert row.qty_left == pytest.approx(qty - row.qty, abs=1e-12)
    fee0 = fast.fees["amount"].iloc[0]
    close = frame["close"].iloc[2]
    assert fast.summary["final_equity"] == pytest.approx(
        cash - fee0 + row.realized_pnl + row.qty_left * (close - entry), rel=1e-12)


@pytest.mark.parametrize("freq,rows", [("10s", [True, False]), ("40s", [True, True])])
def test_hyperliquid_cooldown_30s(freq: str, rows: list[bool]) -> None:
    """10-second bars: the second wick (20 s after the slice) is inside the 30 s cooldown, so the
    venue's order is for the entire position; 40-second bars: the cooldown is over, another 20 %
    slice. Same in both engines."""
    cash, lev, start, price, _ = CASES["hyperliquid"]
    cfg = RunConfig(strategy="exposure", venue="hyperliquid", leverage=lev, cash=cash, allow_no_funding=True,
                    partial_liquidation=True)
    frame, lp = _wick_frame(cfg, 1, start, price, 0.0002, freq=freq)
    after = run_fast(frame, np.full(3, lev), cfg).equity["liquidation_price"].iloc[1]
    wick2 = after * (1 - 0.0002)
    c = frame["close"].iloc[1]
    frame = pd.concat([frame.iloc[:2], bars([(c, c, wick2, c), _quiet(c)], start=frame.index[2], freq=freq)])
    slow, fast = run_both(frame, cfg, targets=np.full(4, lev))
    assert_parity(slow, fast, cash)
    assert fast.liquidations["partial"].tolist() == rows
    assert fast.liquidations["time"].tolist() == [frame.index[1], frame.index[2]]


def test_a_signal_strategy_with_partial_liquidation_runs_on_the_fast_engine() -> None:
    assert select_engine(BuyAndHold, "auto", {}) == "fast"
    assert select_engine(BuyAndHold, "fast", {}) == "fast"


def test_hyperliquid_no_slice_past_the_backstop_level_in_both_engines() -> None:
    """A wick past the bankruptcy price is Hyperliquid's backstop (account equity below 2/3 of the
    maintenance margin: the whole position, no 20 % market slice; risk.partial.BACKSTOP_MM_FRACTION,
    HL docs: liquidations). Isolated 20x long from 400,000 USDC at 20,000: q = 396.43171 BTC, entry
    fee q x 20,000 x 0.045 % = 3,567.88539, collateral q x 1,000 (5 %), bankruptcy 19,000,
    liquidation price (20,000 - 1,000) / (1 - 1.25 %) = 19,240.506329. Bar 1 closes at 19,300
    (above it); bar 2 wicks to 17,000: MB there = q x (1,000 - 3,000) < 0 < 2/3 MM. The whole
    position is liquidated at the liquidation price (the open 19,300 did not gap through it):
    realized q x (19,240.506329 - 20,000) = -301,087.374684, no fee, fund 0, equity
    400,000 - 3,567.88539 - 301,087.374684 = 95,344.739926 (the MM at the liquidation price:
    the vault keeping it is not modelled, as with partial liquidation off).

    Before the fix the 20 % slice (79.28634 BTC) filled at the wick, 3,000 below the entry per BTC:
    realized -237,859.02, the row's equity -63,428.66 (the rest marked at 19,300), and the rest
    (collateral 158,572.69 for 317.14537 BTC, bankruptcy 19,500, above the bar's open) closed at
    19,500 with the fund booking -63,429.07."""
    cash = 400_000.0
    cfg = RunConfig(strategy="exposure", venue="hyperliquid", leverage=20.0, cash=cash, allow_no_funding=True,
                    margin_mode="isolated", partial_liquidation=True)
    rows = [(20_000.0,) * 4, (20_000.0, 20_000.0, 19_300.0, 19_300.0), (19_300.0, 19_300.0, 17_000.0, 19_300.0),
            (19_300.0,) * 4]
    slow, fast = run_both(bars(rows, start=pd.Timestamp("2025-10-10", tz="UTC")), cfg, targets=np.full(4, 20.0))
    assert_parity(slow, fast, cash)
    q = 396.43171
    lp = 19_000.0 / 0.9875
    for result in (slow, fast):
        assert result.fills["qty"].tolist() == [pytest.approx(q, abs=1e-9)] * 2
        assert result.fees["amount"].tolist() == [pytest.approx(q * 20_000 * 0.00045, rel=1e-12)]
        (row,) = result.liquidations.itertuples()
        assert not row.partial and row.qty == pytest.approx(q, abs=1e-9) and row.qty_left == 0.0
        assert row.trigger_price == 17_000.0 and row.bankruptcy_price == pytest.approx(19_000.0, rel=1e-12)
        assert row.fill_price == pytest.approx(lp, rel=1e-12) == row.liquidation_price
        assert row.fee == 0.0 and row.insurance_fund == 0.0 and row.insurance_cover == 0.0
        assert row.realized_pnl == pytest.approx(-301_087.374684, rel=1e-10)
        assert row.equity_after == pytest.approx(95_344.739926, rel=1e-10)
        assert result.summary["final_equity"] == pytest.approx(95_344.739926, rel=1e-10)
        assert result.summary["partial_liquidations"] == 0 and result.summary["insurance_fund"] == 0.0
