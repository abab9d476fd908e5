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
from feeds.cascade.market import MARKET_THETA, inventory_from_oi
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
    calibrated = liquidation_map(f, "2024-03-01T12:00Z", theta=THETA, method="calibrated")
    ladder = liquidation_map(f, "2024-03-01T12:00Z", method="ladder", theta=THETA)
    near = lambda m: m.loc[(m["distance_pct"] < 0) & (m["distance_pct"] > -5), "long_usd"].sum()  # noqa: E731
    assert near(model) == 0.0 and near(calibrated) == 0.0 and near(ladder) > 0
    # the range map consumes the fraction `consume` of a crossed level: every level within 5 % (20x .. 125x,
    # 20x at 40,000 x 0.95 / 0.996 = 38,153 > 38,000) was crossed once, so half of it stays at 0.5
    calib = {"power": 1.0, "hold_hours": 48.0}
    whole = liquidation_map(_flat(hours=12), "2024-03-01T12:00Z", theta=THETA, calib={**calib, "consume": 0.5})
    half = liquidation_map(f, "2024-03-01T12:00Z", theta=THETA, calib={**calib, "consume": 0.5})
    gone = liquidation_map(f, "2024-03-01T12:00Z", theta=THETA, calib={**calib, "consume": 1.0})
    kept = liquidation_map(f, "2024-03-01T12:00Z", theta=THETA, calib={**calib, "consume": 0.0})
    assert whole.attrs["method"] == "range" and near(whole) > 0
    assert near(half) == pytest.approx(0.5 * near(whole), rel=1e-12)
    assert near(gone) == 0.0 and near(kept) == pytest.approx(near(whole), rel=1e-12)


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
    m = liquidation_map(f, "2024-03-01T03:00Z", band_pct=0.1, range_pct=10.0, theta=theta, method="calibrated",
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


def test_inventory_consume_fraction_by_hand():
    # one long lot of 1,000 USD at 100 with its level at 99 (one leverage): hour 1's low 98.5 crosses it,
    # hour 2's low 98.9 crosses it again. consume 0.5: 500 liquidated, then 250; 250 stays live
    ratios = {1: [(1.0, 0.99, 0.985)], -1: [(1.0, 1.01, 1.015)]}
    inv = inventory_from_oi([100.0, 100.0, 100.0], [100.0, 98.5, 98.9], [100.0, 100.0, 100.0], None,
                            [1.0, 1.0, 1.0], ((100.0, 1.0),), ratios, quote_volume=[500.0, 0.0, 0.0], oi_turnover=1.0,
                            hold_hours=0.0, consume=0.5)
    assert list(inv.side) == [1] and inv.usd.tolist() == [250.0] and inv.realised_usd == 750.0
    full = inventory_from_oi([100.0, 100.0, 100.0], [100.0, 98.5, 98.9], [100.0, 100.0, 100.0], None,
                             [1.0, 1.0, 1.0], ((100.0, 1.0),), ratios, quote_volume=[500.0, 0.0, 0.0], oi_turnover=1.0,
                             hold_hours=0.0)
    assert len(full.usd) == 0 and full.realised_usd == 1000.0   # the default removes crossed levels whole


def test_range_map_entries_over_the_hour_and_partial_consumption_by_hand():
    # volume proxy: every hour adds 1 M USD of longs (2 s x oi_turnover x quote volume, s = 0.5), split
    # equally over the hour's open, high, low and close. Hour 01:00 has a low of 39,000 (open = high =
    # close = 40,000): it crosses the 50x .. 125x levels of hour 00:00's entries (consume 0.5: half stays)
    # and puts a quarter of its own entries at 39,000. Positions close at 1 / 2 h (e^-0.5 per later hour).
    f = _flat(hours=3).drop(columns="open_interest_notional")
    f["quote_volume"] = 1e6 / 60
    f.loc["2024-03-01T01:30Z", "low"] = 39_000.0
    theta = {**THETA, "oi_turnover": 1.0}
    at = "2024-03-01T03:00Z"
    ts = pd.Timestamp(at).timestamp()
    w125 = 125 / sum(LEVERAGE_GRID)
    w25 = 25 / sum(LEVERAGE_GRID)
    r125 = risk.liquidation_price("binance_usdm", "long", 40_000.0, 1.25, 50_000.0 / 125, funding_rate=0.0001,
                                  timestamp=ts) / 40_000.0
    r25 = risk.liquidation_price("binance_usdm", "long", 40_000.0, 1.25, 50_000.0 / 25, funding_rate=0.0001,
                                 timestamp=ts) / 40_000.0
    r50 = risk.liquidation_price("binance_usdm", "long", 40_000.0, 1.25, 50_000.0 / 50, funding_rate=0.0001,
                                 timestamp=ts) / 40_000.0
    assert 40_000 * r25 < 39_000 < 40_000 * r50   # 25x (38,554) not crossed, 50x (39,357) crossed

    def at_level(m, level):
        return float(m.loc[(m["band_low"] <= level) & (m["band_high"] > level), "long_usd"].iloc[0])

    e1, e2 = math.exp(-0.5), math.exp(-1.0)
    for consume in (0.5, 1.0):
        m = liquidation_map(f, at, band_pct=0.1, range_pct=10.0, theta=theta, method="range",
                            calib={"power": 1.0, "hold_hours": 2.0, "consume": consume})
        # 125x level of entries at 40,000: hour 0 (crossed once, e^-1), 3/4 of hour 1 (e^-0.5), hour 2
        assert at_level(m, 40_000 * r125) == pytest.approx(1e6 * w125 * ((1 - consume) * e2 + 0.75 * e1 + 1.0), rel=1e-9)
        # 25x level of entries at 40,000: never crossed
        assert at_level(m, 40_000 * r25) == pytest.approx(1e6 * w25 * (e2 + 0.75 * e1 + 1.0), rel=1e-9)
        # 125x level of hour 1's quarter entered at the low (39,000)
        assert at_level(m, 39_000 * r125) == pytest.approx(1e6 * w125 * 0.25 * e1, rel=1e-9)
    # the calibrated map puts hour 1's whole 1 M at its typical price (high + low + close) / 3 = 39,666.67
    # and removes crossed levels whole: nothing at 39,000 x r125, hour 0's 125x level holds hour 2 only
    # (hour 1's typical-price entries sit at 39,666.67 x r125, another band)
    c = liquidation_map(f, at, band_pct=0.1, range_pct=10.0, theta=theta, method="calibrated",
                        calib={"power": 1.0, "hold_hours": 2.0})
    assert at_level(c, 39_000 * r125) == 0.0
    assert at_level(c, 40_000 * r125) == pytest.approx(1e6 * w125, rel=1e-9)
    assert at_level(c, 39_666.666666666664 * r125) == pytest.approx(1e6 * w125 * e1, rel=1e-9)


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
    # the default range map (entries over each hour's OHLC, partly consumed levels), fitted on the same hours:
    # it beats the ladder out of sample (the reason it is the default)
    assert o["fit_range"]["params"] == {"power": 1.1, "hold_hours": 6.0, "consume": 0.0}
    assert round(o["fit_range"]["fit_share"], 3) == 0.941 and round(o["fit_ladder"], 3) == 0.615
    assert round(o["range"], 3) == 0.710 and o["range"] > o["ladder"]
    # robustness check: fitted on the later hours, scored on the earlier
    v = o["reverse"]
    assert v["range"]["params"] == {"power": 1.8, "hold_hours": 1.0, "consume": 0.0}
    assert (round(v["range"]["score"], 3), round(v["calibrated"]["score"], 3)) == (0.888, 0.667)
    # the fit never sees the scored hours
    assert pd.Timestamp(o["fit_hours"][1]) < pd.Timestamp(o["test_hours"][0])
    from feeds.cascade.liqmap import liqmap_fit

    assert liqmap_fit() == o["fit"]["params"]  # the shipped fits are these ones
    assert liqmap_fit("range") == o["fit_range"]["params"]


@pytest.mark.shared_data
def test_validate_cli_with_post_hoc_sensitivity(shared_data, capsys):
    from engine.cli import main

    path = shared_data / "binance_usdtm_btcusdt_forceorders_2024-12-04_2024-12-06.csv"
    assert main(["liqmap", "--validate", str(path), "--sensitivity"]) == 0
    out = capsys.readouterr().out
    # the figures stated in docs/cascade.md
    assert "OUT OF SAMPLE" in out and "range 71.0%, calibrated 34.0%" in out and "naive ladder 50.1%" in out
    assert "reverse split" in out and "range 88.8%" in out
    assert "POST-HOC" in out and "16 of 27 points beat the naive ladder's 50.1% (range 22.7% .. 82.9%)" in out
    assert "90.6% in the fit window, 41.1% on the later hours" in out
    assert "| 2024-12-05 20:00 | 5.39 | 92.7% | 14.1% | 71.0% |" in out
