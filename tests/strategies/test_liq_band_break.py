"""Liquidation-band break on hand-made bars with hand-set map lines and expected events."""

from __future__ import annotations

import numpy as np
import pytest

from risk.errors import DeleverageError
from strategies import REGISTRY, LiqBandBreak

FEE = 0.0004
MAKER = 0.0002


def _bars(bars_factory, lows_after=None, band=(9700.0, 9500.0), near=50e6, n=16):
    """10 bars at 10,000 (lows 9,950: the key level), bar 10 breaks to 9,900 with a dense long
    band 9,700..9,500 below; the following bars are given by ``lows_after``."""
    closes = np.full(n, 10000.0)
    lows = np.full(n, 9950.0)
    highs = np.full(n, 10000.0)
    closes[10], lows[10] = 9900.0, 9900.0
    for i, (c, lo, hi) in enumerate(lows_after or []):
        closes[11 + i], lows[11 + i], highs[11 + i] = c, lo, hi
    for j in range(11 + len(lows_after or []), n):
        closes[j], lows[j], highs[j] = closes[j - 1], closes[j - 1], closes[j - 1]
    top = np.full(n, band[0])
    bottom = np.full(n, band[1])
    return bars_factory(closes, lows=lows, highs=highs, liqmap_long_near_usd=np.full(n, near),
                        liqmap_long_band_top=top, liqmap_long_band_bottom=bottom)


def test_break_shorts_and_covers_at_the_band_far_edge(bars_factory, runner):
    # bar 11 opens 9,900 (the fill), bar 12 falls through the band to 9,450: the limit buy at 9,500 fills
    bars = _bars(bars_factory, [(9800.0, 9780.0, 9900.0), (9480.0, 9450.0, 9800.0)])
    result, strat = runner(LiqBandBreak, bars, leverage=3.0, lookback=10, reach=0.05, stop=0.02)
    assert [(s["event"], s["time"].hour) for s in strat.signals] == [("break", 10), ("entry", 11), ("band_far_edge", 12)]
    br = strat.signals[0]
    assert br["key"] == 9950.0 and br["band_top"] == 9700.0 and br["band_bottom"] == 9500.0
    fills = result.fills
    assert fills["side"].tolist() == ["sell", "buy"]
    assert fills["price"].tolist() == pytest.approx([9900.0, 9500.0])
    q = np.floor(10000 * 3 / (1 + 3 * FEE) * 0.999999 / 9900 / 0.001) * 0.001
    assert fills["qty"].tolist() == pytest.approx([q, q])
    gain = q * (9900 - 9500) - q * 9900 * FEE - q * 9500 * MAKER  # the limit buy pays the maker fee
    assert result.summary["final_equity"] == pytest.approx(10000 + gain, rel=1e-9)


def test_failed_break_is_stopped_above_the_key_level(bars_factory, runner):
    # bar 12 rallies to 10,200: the stop at 9,950 x 1.02 = 10,149 fills
    bars = _bars(bars_factory, [(9900.0, 9880.0, 9950.0), (10150.0, 9900.0, 10200.0)])
    result, strat = runner(LiqBandBreak, bars, leverage=3.0, lookback=10, stop=0.02)
    assert [s["event"] for s in strat.signals] == ["break", "entry", "stop"]
    assert result.fills["price"].tolist() == pytest.approx([9900.0, 9950.0 * 1.02])
    assert result.summary["final_equity"] < 10000


@pytest.mark.parametrize("kw", [dict(band=(9000.0, 8800.0)),   # band 9 % below: out of reach (5 %)
                                dict(near=1e6)])                # band too thin for min_band_usd
def test_no_trade_without_a_dense_band_in_reach(bars_factory, runner, kw):
    bars = _bars(bars_factory, **kw)
    result, strat = runner(LiqBandBreak, bars, leverage=3.0, lookback=10, reach=0.05, min_band_usd=10e6)
    assert strat.signals == [] and result.fills.empty


def test_needs_the_map_lines(bars_factory, runner):
    bars = bars_factory(np.full(12, 10000.0))
    with pytest.raises(DeleverageError, match="liqmap"):
        runner(LiqBandBreak, bars, lookback=3)
    assert REGISTRY["liq_band_break"] is LiqBandBreak
