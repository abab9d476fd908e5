"""from_market: inventory from a hand-made OI series equals the hand sum; split, depth and
volatility from the bars before ``at`` only; bad input gives one clear error."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from feeds.cascade.market import MARKET_THETA, depth_proxy, from_market, hourly, inventory_from_oi, long_share
from feeds.cascade.model import lev_ratios, CascadeParams
from risk.errors import DeleverageError

# one leverage, liquidation at 0.91 x entry (long) / 1.09 x entry (short): a hand-set ratio table
MIX = ((10.0, 1.0),)
RATIOS = {1: [(1.0, 0.91, 0.90)], -1: [(1.0, 1.09, 1.10)]}


def _walk(oi, price, low, high, share=0.5, **kw):
    return inventory_from_oi(price, low, high, oi, np.full(len(price), share), MIX, RATIOS, **kw)


def test_inventory_follows_the_oi_series_by_hand():
    #          h0     h1     h2     h3
    price = [100.0, 110.0, 105.0, 90.0]
    low = [99.0, 105.0, 101.0, 89.0]     # h3's low 89 <= 91 (lot @100) and <= 100.1 (lot @110): both longs liquidated
    high = [101.0, 108.0, 108.0, 95.0]   # never reaches a short's 109 / 119.9
    oi = [1000.0, 1500.0, 1200.0, 1200.0]
    inv = _walk(oi, price, low, high)
    # h0: 1000 long + 1000 short @100; h1: +500 each @110; h2: -300 OI = 600 of positions, pro rata
    # over 3000: x0.8 -> long 800 @100 + 400 @110, short the same; h3: both long lots liquidated (1200)
    longs = inv.usd[inv.side > 0]
    shorts = dict(zip(inv.price[inv.side < 0], inv.usd[inv.side < 0]))
    assert len(longs) == 0
    assert shorts == pytest.approx({100.0: 800.0, 110.0: 400.0})
    assert inv.realised_usd == pytest.approx(1200.0)


def test_an_oi_drop_explained_by_liquidations_removes_nothing_more():
    price = [100.0, 100.0, 90.0]
    low = [99.0, 99.0, 89.0]
    high = [101.0, 101.0, 91.0]
    oi = [1000.0, 1000.0, 500.0]       # -500 OI = 1000 of positions: the 1000 of liquidated longs
    inv = _walk(oi, price, low, high)
    assert inv.realised_usd == pytest.approx(1000.0)
    assert inv.totals() == pytest.approx((0.0, 1000.0))


def test_long_share_tilts_the_split():
    price, low, high = [100.0, 101.0], [99.0, 100.0], [101.0, 102.0]
    inv = _walk([1000.0, 1200.0], price, low, high, share=0.7)
    assert inv.totals() == pytest.approx((2 * 0.7 * 1200.0, 2 * 0.3 * 1200.0))


def test_volume_proxy_without_open_interest():
    # 3 hours of 1000 USD volume, turnover 0.1, hold 48 h: lots decay by exp(-1/48) each hour
    price, low, high = [100.0] * 3, [99.0] * 3, [101.0] * 3
    inv = inventory_from_oi(price, low, high, None, np.full(3, 0.5), MIX, RATIOS, quote_volume=[1000.0] * 3,
                            oi_turnover=0.1, hold_hours=48.0)
    k = math.exp(-1 / 48)
    assert inv.totals()[0] == pytest.approx(100.0 * (1 + k + k * k))


def _frame(hours=30, funding=None, oi=2e9, vol=0.0005):
    idx = pd.date_range("2024-01-01", periods=hours * 60, freq="1min", tz="UTC", name="open_time")
    rng = np.random.default_rng(0)
    close = 40_000 * np.exp(np.cumsum(rng.normal(0, vol, len(idx))))
    f = pd.DataFrame({"open": close, "high": close * 1.0005, "low": close * 0.9995, "close": close,
                      "volume": 10.0, "quote_volume": 10.0 * close}, index=idx)
    if oi is not None:
        f["open_interest_notional"] = oi
    if funding is not None:
        f["funding_rate"] = np.nan
        f.loc[f.index.hour % 8 == 0, "funding_rate"] = funding
    f.attrs["venue"] = "binance_usdm"
    return f


def test_from_market_split_from_funding_and_totals():
    theta = {**MARKET_THETA, "lev_share": 0.5, "old_spread": 0.0}
    f = _frame(funding=0.0004, vol=1e-6)   # a quiet path: no position is liquidated
    p, info = from_market(f, "2024-01-02T00:00Z", theta=theta, details=True)
    s = 0.5 + 0.25 * math.tanh((0.0004 - 0.0001) / 0.0003)
    assert info["long_share"] == pytest.approx(s) and info["split_source"] == "funding_rate"
    # constant OI of 2 bn: every position opened in the first hour; lev_share 0.5 of each side
    assert info["realised_liquidations_usd"] == 0.0
    assert p.long_oi_usd == pytest.approx(0.5 * 2 * s * 2e9) and p.short_oi_usd == pytest.approx(0.5 * 2 * (1 - s) * 2e9)
    assert p.price0 == pytest.approx(float(f["close"].iloc[24 * 60 - 1]))
    assert p.insurance_fund_usd == pytest.approx(0.05 * (p.long_oi_usd + p.short_oi_usd))


def test_from_market_uses_only_bars_before_at():
    f = _frame()
    at = "2024-01-02T00:00Z"
    g = f.copy()
    g.loc[g.index >= at, ["open", "high", "low", "close"]] *= 0.5
    g.loc[g.index >= at, "open_interest_notional"] = 9e9
    a, b = from_market(f, at, theta=MARKET_THETA), from_market(g, at, theta=MARKET_THETA)
    assert a == b


def test_depth_proxy_by_hand():
    idx = pd.date_range("2024-01-01", periods=48, freq="1h", tz="UTC")
    close = 100 * np.exp(np.tile([0.0, 0.01], 24))
    h = pd.DataFrame({"close": close, "quote_volume": 1e6}, index=idx)
    D, vday, sigma = depth_proxy(h, 0.05)
    r = np.diff(np.log(close))
    assert sigma == pytest.approx(np.std(r, ddof=1) * math.sqrt(24) * 100)
    assert vday == pytest.approx(24e6) and D == pytest.approx(0.05 * 24e6 / sigma)


def test_lev_ratios_match_the_risk_core():
    import risk

    p = CascadeParams(price0=40_000.0, leverage_mix=((20.0, 1.0),))
    w, r_l, _ = lev_ratios(p, 1)[0]
    q = 50_000.0 / 40_000.0
    lp = risk.liquidation_price("binance_usdm", "long", 40_000.0, q, 50_000.0 / 20, funding_rate=0.0001,
                                timestamp=p.start_ts.timestamp())
    assert w == 1.0 and 40_000.0 * r_l == pytest.approx(lp, rel=1e-9)


def test_bad_input_is_one_clear_error():
    f = _frame()
    with pytest.raises(DeleverageError, match="no bars in the 72 h before it"):
        from_market(f, "2023-01-01T00:00Z", theta=MARKET_THETA)
    with pytest.raises(DeleverageError, match="--at 'soon'"):
        from_market(f, "soon", theta=MARKET_THETA)
    with pytest.raises(DeleverageError, match="only 2 hours"):
        from_market(f, "2024-01-01T02:00Z", theta=MARKET_THETA)
    nov = _frame(oi=None).drop(columns=["volume", "quote_volume"])
    with pytest.raises(DeleverageError, match="neither open interest nor traded volume"):
        from_market(nov, "2024-01-02T00:00Z", theta=MARKET_THETA)


def test_hourly_and_share_defaults():
    h = hourly(_frame(hours=3, oi=None))
    assert len(h) == 3 and "oi_usd" not in h
    assert (long_share(h) == 0.5).all()


def test_liquidations_inside_the_history_are_removed_where_they_happen():
    # as above but h1 trades to 111 (short @100 liquidated at 109) and h2 down to 100 (long @110 at 100.1)
    inv = _walk([1000.0, 1500.0, 1200.0, 1200.0], [100.0, 110.0, 105.0, 90.0], [99.0, 105.0, 100.0, 89.0],
                [101.0, 111.0, 108.0, 95.0])
    # h1: -1000 short @100; +500 each @110. h2: -500 long @110; -300 OI = 600 positions, 500 of them the
    # liquidation, 100 more pro rata over 1500 live. h3: the long @100 (933.3) is liquidated.
    k = 1 - 100 / 1500
    assert inv.totals() == pytest.approx((0.0, 500 * k))
    assert inv.realised_usd == pytest.approx(1000 + 500 + 1000 * k)


def test_sell_flow_unit_scales_with_leveraged_longs_over_depth():
    """flow_oi_exp a: the exogenous flow terms are theta x (L / D0)^a in units of depth, i.e.
    theta x D0^(1-a) x L^a USD per minute; a = 0 is depth units. By hand from the totals."""
    f = _frame(funding=0.0004, vol=1e-6)
    at = "2024-01-02T00:00Z"
    theta = {**MARKET_THETA, "lev_share": 0.5, "old_spread": 0.0, "flow_rate": 0.2, "flow_excite": 0.05,
             "flow_noise": 0.1}
    p0 = from_market(f, at, theta={**theta, "flow_oi_exp": 0.0}, depth_usd=1e8)
    assert (p0.flow_rate, p0.flow_excite, p0.flow_noise) == (0.2, 0.05, 0.1)
    p = from_market(f, at, theta={**theta, "flow_oi_exp": 0.5}, depth_usd=1e8)
    unit = math.sqrt(p.long_oi_usd / 1e8)
    assert p.flow_rate == pytest.approx(0.2 * unit, rel=1e-12)
    assert p.flow_excite == pytest.approx(0.05 * unit, rel=1e-12) and p.flow_noise == pytest.approx(0.1 * unit, rel=1e-12)
    # twice the leveraged longs at the same depth: the flow's USD rate grows by 2^0.5; scaled
    # together with the depth it grows by exactly the scale (the path stays scale-free)
    q = from_market(f, at, theta={**theta, "flow_oi_exp": 0.5}, depth_usd=1e8, long_oi_usd=2 * p.long_oi_usd)
    assert q.flow_rate * q.depth_usd == pytest.approx(math.sqrt(2) * p.flow_rate * p.depth_usd, rel=1e-12)
    r = from_market(f, at, theta={**theta, "flow_oi_exp": 0.5}, depth_usd=1e9, long_oi_usd=10 * p.long_oi_usd)
    assert r.flow_rate == pytest.approx(p.flow_rate, rel=1e-12)
