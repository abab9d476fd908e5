"""Liquidation map: bands hold the hand-computed notional at the risk core's liquidation prices;
the naive ladder sits at P(1 -+ 1/lev); feed lines use only past bars; validation figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import risk
from feeds.cascade.liqmap import (LEVERAGE_GRID, LINE_COLUMNS, calibrated_mix, dense_band, densest_share,
                                  fit_force_orders, liquidation_map, map_lines, validate_force_orders)
from feeds.cascade.market import MARKET_THETA
from risk.errors import DeleverageError

THETA = {**MARKET_THETA, "lev_share": 1.0, "old_spread": 0.0}


def _flat(hours=12, price=40_000.0, oi=1e9):
    idx = pd.date_range("2024-03-01", periods=hours * 60, freq="1min", tz="UTC", name="open_time")
    f = pd.DataFrame({"open": price, "high": price, "low": price, "close": price, "volume": 1.0,
                      "quote_volume": price, "open_interest_notional": oi}, index=idx)
    f.attrs["venue"] = "binance_usdm"
    return f


def test_map_puts_the_oi_at_the_venue_liquidation_prices():
    f = _flat()
    at = "2024-03-01T12:00Z"
    m = liquidation_map(f, at, band_pct=0.5, range_pct=30.0, theta=THETA, method="model")
    assert "ESTIMATED" in m.attrs["label"] and m.attrs["kind"] == "estimate"
    # every position was opened at 40,000 (one OI level, no changes): 1 bn of longs and of shorts
    assert m["long_usd"].sum() + m["short_usd"].sum() <= 2e9 + 1
    from feeds.cascade.model import CascadeParams

    mix = CascadeParams().leverage_mix
    ts = pd.Timestamp(at).timestamp()
    total_w = sum(w for _, w in mix)
    for lev, w in mix:
        lp = risk.liquidation_price("binance_usdm", "long", 40_000.0, 50_000.0 / 40_000.0, 50_000.0 / lev,
                                    funding_rate=0.0001, timestamp=ts)
        band = m[(m["band_low"] <= lp) & (m["band_high"] > lp)]
        if band.empty:   # 3x: beyond the 30 % range
            continue
        assert float(band["long_usd"].iloc[0]) == pytest.approx(1e9 * w / total_w, rel=1e-9), lev
    lp10 = risk.liquidation_price("binance_usdm", "long", 40_000.0, 1.25, 5_000.0, funding_rate=0.0001, timestamp=ts)
    densest = m.loc[m["long_usd"].idxmax()]
    assert densest["band_low"] <= lp10 < densest["band_high"]  # 10x carries the largest weight (0.25) of the mix
    assert (m.loc[m["distance_pct"] > 0, "long_usd"] == 0).all() and (m.loc[m["distance_pct"] < 0, "short_usd"] == 0).all()


def test_ladder_levels_are_the_naive_formula():
    m = liquidation_map(_flat(), "2024-03-01T12:00Z", band_pct=0.5, range_pct=30.0, method="ladder", theta=THETA)
    for lev in (100, 50, 25, 10, 5):
        for col, level in (("long_usd", 40_000 * (1 - 1 / lev)), ("short_usd", 40_000 * (1 + 1 / lev))):
            band = m[(m["band_low"] <= level) & (m["band_high"] > level)]
            assert float(band[col].iloc[0]) == pytest.approx(0.2 * 1e9 * 2 * 0.5, rel=1e-9), (lev, col)
    assert m["long_usd"].sum() == pytest.approx(1e9) and m["short_usd"].sum() == pytest.approx(1e9)


def test_crossed_levels_are_removed_by_the_model_not_the_ladder():
    f = _flat(hours=12)
    f.loc["2024-03-01T06:00Z":"2024-03-01T06:59Z", "low"] = 38_000.0  # a -5 % wick: 25x .. 100x longs are gone
    model = liquidation_map(f, "2024-03-01T12:00Z", theta=THETA, method="model")
    calibrated = liquidation_map(f, "2024-03-01T12:00Z", theta=THETA)
    ladder = liquidation_map(f, "2024-03-01T12:00Z", method="ladder", theta=THETA)
    near = lambda m: m.loc[(m["distance_pct"] < 0) & (m["distance_pct"] > -5), "long_usd"].sum()  # noqa: E731
    assert near(model) == 0.0 and near(calibrated) == 0.0 and near(ladder) > 0


def test_dense_band_and_share_by_hand():
    idx = np.arange(-4, 5)
    m = pd.DataFrame({"band_low": 100 + idx - 0.5, "band_high": 100 + idx + 0.5, "mid": 100.0 + idx,
                      "distance_pct": idx * 1.0, "long_usd": [0, 5, 10, 9, 1, 0, 0, 0, 0],
                      "short_usd": [0, 0, 0, 0, 0, 2, 0, 0, 8]}, index=idx)
    # below the price, nearest first: -1 (9), -2 (10), -3 (5), -4 (0); dense = at least 0.5 x 10:
    # the run -1 .. -3, from band -1's top (99.5) to band -3's bottom (96.5)
    assert dense_band(m, "long") == (99.5, 96.5)
    assert dense_band(m, "short") == (103.5, 104.5)
    # densest long band -2 = [97.5, 98.5): 97.9 is in, 99.1 is not; densest short band +4: 103.9 is in
    realised = pd.DataFrame({"price": [97.9, 99.1, 103.9], "side": ["long", "long", "short"], "usd": [6.0, 2.0, 2.0]})
    share, cov = densest_share(m, realised, top=1)
    assert share == pytest.approx((6.0 + 2.0) / 10.0) and cov == pytest.approx(0.25)


def test_map_lines_use_only_the_past():
    f = _flat(hours=30)
    rng = np.random.default_rng(1)
    f["close"] = 40_000 * np.exp(np.cumsum(rng.normal(0, 0.001, len(f))))
    f["high"], f["low"], f["open"] = f["close"] * 1.001, f["close"] * 0.999, f["close"]
    a = map_lines(f, theta=THETA)
    g = f.copy()
    g.loc[g.index >= "2024-03-01T20:00Z", ["open", "high", "low", "close"]] *= 0.7
    b = map_lines(g, theta=THETA)
    before = a.index < "2024-03-01T20:00Z"
    for c in LINE_COLUMNS:
        np.testing.assert_array_equal(a.loc[before, c].to_numpy(), b.loc[before, c].to_numpy())
    assert a.loc[a.index < "2024-03-01T06:00Z", "liqmap_long_near_usd"].isna().all()
    assert a["liqmap_long_near_usd"].notna().sum() == 24 * 60
    # constant within each hour, and the band is below the price for longs
    hour = a.loc["2024-03-01T10:00Z":"2024-03-01T10:59Z", "liqmap_long_band_top"]
    assert hour.nunique() == 1 and hour.iloc[0] < a.loc["2024-03-01T09:59Z", "close"]


def test_bad_input():
    with pytest.raises(DeleverageError, match="no bars"):
        liquidation_map(_flat(), "2023-01-01T00:00Z", theta=THETA)
    with pytest.raises(DeleverageError, match="band_pct"):
        liquidation_map(_flat(), "2024-03-01T12:00Z", band_pct=0.0, theta=THETA)
    with pytest.raises(DeleverageError, match="method"):
        liquidation_map(_flat(), "2024-03-01T12:00Z", method="heat", theta=THETA)


def test_calibrated_map_weights_and_holding_time_by_hand():
    # volume proxy (no OI column): every hour adds 2 s x oi_turnover x quote volume of longs (s = 0.5:
    # 1 M USD) at the typical price; positions close at 1 / hold_hours; the mix is lev^power over LEVERAGE_GRID
    f = _flat(hours=3).drop(columns="open_interest_notional")
    f["quote_volume"] = 1e6 / 60  # 1 M USD per hour
    theta = {**THETA, "oi_turnover": 1.0}
    mix = calibrated_mix(1.0)
    assert [lev for lev, _ in mix] == list(LEVERAGE_GRID)
    assert [w for _, w in mix] == pytest.approx([lev / sum(LEVERAGE_GRID) for lev in LEVERAGE_GRID])
    m = liquidation_map(f, "2024-03-01T03:00Z", band_pct=0.1, range_pct=10.0, theta=theta,
                        calib={"power": 1.0, "hold_hours": 2.0})
    # three hours of 1 M USD of longs each, decayed by e^(-1/2) per later hour: 1 + e^-0.5 + e^-1
    longs = 1e6 * (1 + math.exp(-0.5) + math.exp(-1.0))
    ts = pd.Timestamp("2024-03-01T03:00Z").timestamp()
    lp = risk.liquidation_price("binance_usdm", "long", 40_000.0, 1.25, 50_000.0 / 125, funding_rate=0.0001, timestamp=ts)
    band = m[(m["band_low"] <= lp) & (m["band_high"] > lp)]
    assert float(band["long_usd"].iloc[0]) == pytest.approx(longs * 125 / sum(LEVERAGE_GRID), rel=1e-9)
    # levels of 2x .. 5x lie beyond the 10 % range; the rest is all there
    in_range = sum(w for lev, w in mix if lev >= 10)
    assert m["long_usd"].sum() == pytest.approx(longs * in_range, rel=1e-9)


def test_fit_picks_the_leverage_where_liquidations_happen():
    # flat bars: each leverage is one band. The realised longs sit at the 125x level (-0.40 %), so with
    # the one densest band scored the first power of the grid that makes 125x the densest wins (0.1:
    # at 0 every band ties and the lowest, 10x, is first)
    f = _flat(hours=8).drop(columns="open_interest_notional")
    hours = f.index[f.index.minute == 0][4:6]
    realised = pd.DataFrame({"time": hours + pd.Timedelta(minutes=30), "price": 40_000.0 * 0.99598,
                             "side": "long", "usd": 1e5})
    r = fit_force_orders(f, realised, hours, top=1, band_pct=0.1, range_pct=10.0, theta=THETA, holds=(2.0, 6.0))
    assert r["params"] == {"power": 0.1, "hold_hours": 2.0} and r["fit_share"] == pytest.approx(1.0)


@pytest.mark.shared_data
def test_validation_against_the_binance_force_orders(shared_data):
    r = validate_force_orders(shared_data / "binance_usdtm_btcusdt_forceorders_2024-12-04_2024-12-06.csv")
    assert r["events"] == 1844 and r["hours"] > 0
    assert 0.0 <= r["model"] <= 1.0 and 0.0 <= r["ladder"] <= 1.0 and math.isclose(r["uniform"], 0.25)
    # the figures stated in docs/cascade.md
    assert (round(r["model"], 3), round(r["ladder"], 3)) == (0.020, 0.490)
    o = r["out_of_sample"]
    assert o["fit"]["params"] == {"power": 1.7, "hold_hours": 2.0} and round(o["fit"]["fit_share"], 3) == 0.694
    assert (round(o["calibrated"], 3), round(o["model"], 3), round(o["ladder"], 3)) == (0.340, 0.026, 0.501)
    # the fit never sees the scored hours
    assert pd.Timestamp(o["fit_hours"][1]) < pd.Timestamp(o["test_hours"][0])
    from feeds.cascade.liqmap import liqmap_fit

    assert liqmap_fit() == o["fit"]["params"]  # the shipped fit is this one
