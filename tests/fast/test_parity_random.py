"""Parity of the fast engine with the backtrader path on seeded random bars.

Each case runs the same random target array through backtrader (``ExposureStrategy``, the
signal-form semantics of strategies.base) and through ``engine.fast.run_fast``, and compares
every fill (time, side, qty, price, fee, realized PnL), funding settlement, liquidation (time,
trigger, liquidation/bankruptcy/fill price, fee), fee row and the per-bar equity frame within
1e-9 relative. The cases cover linear and inverse contracts, isolated and cross margin,
funding from the feed and at a constant rate, a mark series that differs from the last price
(and no mark), each venue's liquidation fill rule, margin rejections, flips, and tier tables
that change during the run (BitMEX 2020-04-17, Binance 2024-06-28).
"""

from __future__ import annotations

import pytest

from engine.runner import RunConfig
from tests.fast.helpers import assert_parity, random_bars, random_targets, run_both

LEVELS = (-20.0, -10.0, -5.0, -3.0, -2.0, 0.0, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)

# venue, margin mode, mark series?, funding ("column" or a constant rate), start, cash
CASES = [
    ("binance_usdm", "isolated", True, "column", "2024-06-27 12:00", 10_000.0),
    ("binance_usdm", "cross", True, "column", "2021-05-18 00:00", 10_000.0),
    ("binance_usdm", "isolated", False, 0.0003, "2021-05-18 00:00", 10_000.0),
    ("bitmex", "isolated", True, "column", "2020-04-16 12:00", 1.0),
    ("bitmex", "cross", False, 0.0002, "2020-04-16 12:00", 1.0),
    ("binance_coinm", "isolated", True, "column", "2021-05-18 00:00", 1.0),
    ("binance_coinm", "cross", True, -0.0001, "2021-05-18 00:00", 1.0),
    ("bybit", "cross", True, "column", "2021-05-18 00:00", 10_000.0),
    ("bybit", "isolated", False, "column", "2021-05-18 00:00", 10_000.0),
    ("okx", "isolated", True, "column", "2021-05-18 00:00", 10_000.0),
    ("hyperliquid", "cross", False, 0.0001, "2023-03-01 00:00", 10_000.0),
]


def _case(venue, mode, mark, funding, start, cash, seed):
    bars = random_bars(seed, 3000, start=start, mark=mark, funding="column" if funding == "column" else None,
                       venue=venue)
    targets = random_targets(seed, len(bars), LEVELS, p_change=0.01)
    config = RunConfig(strategy="exposure", venue=venue, margin_mode=mode, cash=cash,
                       funding_rate=None if funding == "column" else float(funding))
    return bars, targets, config


def _mark_only(bars, liquidations) -> int:
    """Liquidations the last price alone would not have triggered (its extreme stayed on the safe side)."""
    count = 0
    for row in liquidations.itertuples():
        bar = bars.loc[row.time]
        if (row.side == "long" and bar["low"] > row.liquidation_price) or \
                (row.side == "short" and bar["high"] < row.liquidation_price):
            count += 1
    return count


@pytest.mark.parametrize("venue,mode,mark,funding,start,cash", CASES,
                         ids=[f"{c[0]}-{c[1]}-{'mark' if c[2] else 'last'}-{'feed' if c[3] == 'column' else 'const'}"
                              for c in CASES])
def test_random_parity(venue, mode, mark, funding, start, cash) -> None:
    totals = {"fills": 0, "funding": 0, "liquidations": 0, "mark_only": 0}
    for seed in (1, 2):
        bars, targets, config = _case(venue, mode, mark, funding, start, cash, seed)
        slow, fast = run_both(bars, config, targets=targets)
        assert_parity(slow, fast, cash)
        assert fast.config["trigger"] == ("mark" if mark else "last")
        assert fast.config["funding_source"] == ("feed" if funding == "column" else f"constant {funding:g}")
        totals["fills"] += len(fast.fills)
        totals["funding"] += len(fast.funding)
        totals["liquidations"] += len(fast.liquidations)
        totals["mark_only"] += _mark_only(bars, fast.liquidations)
    # the two seeds exercised the risk model: trades, funding, liquidations, and with a mark
    # series at least one liquidation that only the mark price triggered
    assert totals["fills"] >= 15 and totals["funding"] >= 3 and totals["liquidations"] >= 1, totals
    if mark:
        assert totals["mark_only"] >= 1, totals
    else:
        assert totals["mark_only"] == 0, totals
