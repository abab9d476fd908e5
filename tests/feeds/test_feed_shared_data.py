"""Every file in ../shared/data loads with its loader, passes validation, and the PROVENANCE facts hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feeds import bitmex, exports
from feeds.build import build_frame
from feeds.detect import detect_format, load, validate_file
from feeds.liquidations import aggregate_liquidations

pytestmark = pytest.mark.shared_data

EXPECTED_FORMATS = {
    "binance_spot_btcusdt_1h_2020-03-05_2020-03-20.csv": "kline_export",
    "binance_spot_btcusdt_1h_2021-05-12_2021-05-26.csv": "kline_export",
    "binance_usdtm_btcusdt_forceorders_2024-12-04_2024-12-06.csv": "liquidation_event_export",
    "binance_usdtm_funding_btc_eth_2020-03_2021-04_2021-05.csv": "funding_export",
    "bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv": "bitmex_buckets",
    "bitmex_xbtusd_1m_2021-05-16_2021-05-22.csv": "bitmex_buckets",
    "bitmex_xbtusd_funding_2020-02-15_2020-04-15.csv": "bitmex_funding",
    "coinalyze_btc_perp_liquidations_daily_usd_2022-01-02_2024-09-20.csv": "coinalyze_liquidations",
    "coinalyze_btc_perp_open_interest_daily_usd_2022-01-02_2024-09-20.csv": "coinalyze_open_interest",
    "coinglass_btc_liquidations_1h_binance_bybit_okx_2025-11-23_2026-05-22.csv": "coinglass_liquidations",
    "hyperliquid_liquidations_with_fills_2023-02-28_2023-05-01.csv": "hyperliquid_liquidations",
}


def T(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_every_shared_file_is_detected_loads_and_validates(shared_data: Path) -> None:
    files = sorted(p.name for p in shared_data.glob("*.csv"))
    assert files == sorted(EXPECTED_FORMATS), "a new shared file needs a loader and an entry here"
    for name, fmt in EXPECTED_FORMATS.items():
        assert detect_format(shared_data / name) == fmt, name
        reports = validate_file(shared_data / name)
        assert reports and all(r.ok for r in reports), "\n".join(r.format() for r in reports)


def test_bitmex_2020_facts(shared_data: Path) -> None:
    bars = bitmex.load_buckets(shared_data / "bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv")
    assert len(bars) == 11_520 and bars.index.tz is not None
    assert (np.diff(bars.index.asi8) == 60_000_000_000).all()  # no missing minutes, strictly increasing
    assert bars["low"].min() == 3596.0 and bars["low"].idxmin() == T("2020-03-13 02:15")
    day = bars.loc["2020-03-12"]
    assert (day["open"].iloc[0], day["low"].min(), day["close"].iloc[-1]) == (7939.0, 4266.0, 4346.0)
    assert bars.loc[T("2020-03-12 10:47"), "low"] == 5600.0
    # quirk: open is the previous close on every bar, outside [low, high] on 341 bars
    assert (bars["open"].to_numpy()[1:] == bars["close"].to_numpy()[:-1]).all()
    outside = (bars["open"] > bars["high"]) | (bars["open"] < bars["low"])
    assert int(outside.sum()) == 341
    zero = bars.index[bars["volume"] == 0]
    assert len(zero) == 17 and all(t.date() == pd.Timestamp("2020-03-13").date() for t in zero)
    # volume: USD contracts kept exactly as quote_volume; base volume is an estimate, stated in attrs
    assert bars["quote_volume"].iloc[0] == 7_858_713
    assert any("estimate" in n for n in bars.attrs["notes"])


def test_bitmex_2021_facts_and_5m_aggregation(shared_data: Path) -> None:
    bars = bitmex.load_buckets(shared_data / "bitmex_xbtusd_1m_2021-05-16_2021-05-22.csv")
    assert len(bars) == 10_080
    assert (np.diff(bars.index.asi8) == 60_000_000_000).all()
    assert bars["low"].min() == 28_157.0 and bars["low"].idxmin() == T("2021-05-19 13:10")
    day = bars.loc["2021-05-19"]
    assert (day["open"].iloc[0], day["high"].max(), day["close"].iloc[-1]) == (42_854.5, 43_596.0, 36_811.0)
    assert int(((bars["open"] > bars["high"]) | (bars["open"] < bars["low"])).sum()) == 1339
    assert int((bars["volume"] == 0).sum()) == 1 and bars.loc[T("2021-05-22 21:39"), "volume"] == 0


def test_binance_spot_hourly_facts(shared_data: Path) -> None:
    b20 = exports.load_kline_export(shared_data / "binance_spot_btcusdt_1h_2020-03-05_2020-03-20.csv")
    b21 = exports.load_kline_export(shared_data / "binance_spot_btcusdt_1h_2021-05-12_2021-05-26.csv")
    assert (len(b20), len(b21)) == (384, 360)
    assert b20.loc[T("2020-03-13 02:00"), "low"] == 3782.13
    d = b20.loc["2020-03-12"]
    assert (d["open"].iloc[0], d["low"].min(), d["close"].iloc[-1]) == (7934.52, 4410.0, 4800.0)
    d = b21.loc["2021-05-19"]
    assert (d["open"].iloc[0], d["close"].iloc[-1]) == (42_849.78, 36_690.09)
    assert d["low"].min() == 30_000.0 and d["low"].idxmin() == T("2021-05-19 13:00")


def test_funding_facts(shared_data: Path) -> None:
    f = load(shared_data / "binance_usdtm_funding_btc_eth_2020-03_2021-04_2021-05.csv")
    assert len(f) == 552
    nominal = pd.DatetimeIndex(f["time"]).round("1min")  # calc_time carries a few ms of jitter
    btc = f[f["symbol"] == "BTCUSDT"].set_axis(nominal[f["symbol"] == "BTCUSDT"])["funding_rate"]
    eth = f[f["symbol"] == "ETHUSDT"].set_axis(nominal[f["symbol"] == "ETHUSDT"])["funding_rate"]
    assert btc.loc[T("2020-03-13 08:00")] == pytest.approx(-0.003)
    assert eth.loc[T("2020-03-13 08:00")] == pytest.approx(-0.002818, abs=1e-6)
    assert btc.loc[T("2021-05-19 16:00")] == pytest.approx(-0.000897, abs=1e-6)
    assert eth.loc[T("2021-05-19 16:00")] == pytest.approx(-0.003563, abs=1e-6)
    bx = bitmex.load_funding(shared_data / "bitmex_xbtusd_funding_2020-02-15_2020-04-15.csv")
    assert len(bx) == 183 and set(bx["interval_hours"]) == {8.0}
    r = bx.set_index("time")["funding_rate"]
    assert r.loc[T("2020-03-12 20:00")] == pytest.approx(-0.001691)
    capped = r.loc[T("2020-03-13 04:00"):T("2020-03-14 20:00")]
    assert len(capped) == 6 and (capped == -0.00375).all()


def test_force_order_events_aggregate_to_the_same_notional(shared_data: Path) -> None:
    ev = load(shared_data / "binance_usdtm_btcusdt_forceorders_2024-12-04_2024-12-06.csv")
    assert len(ev) == 1844 and ev.attrs["venue"] == "binance_usdm"
    longs, shorts = ev[ev["position_side"] == "long"], ev[ev["position_side"] == "short"]
    assert (len(longs), len(shorts)) == (729, 1115)
    assert longs["notional"].sum() == pytest.approx(7.58e6, rel=1e-3)
    assert shorts["notional"].sum() == pytest.approx(19.27e6, rel=1e-3)
    big = ev.loc[ev["notional"].idxmax()]
    assert big["time"] == T("2024-12-05 20:43:30.452") and big["qty"] == 25.443 and big["position_side"] == "short"
    for interval in ("1min", "1h"):
        bars = aggregate_liquidations(ev, interval)
        assert bars["liq_long_notional"].sum() == pytest.approx(longs["notional"].sum(), rel=1e-12)
        assert bars["liq_short_notional"].sum() == pytest.approx(shorts["notional"].sum(), rel=1e-12)
        assert bars["liq_long_count"].sum() + bars["liq_short_count"].sum() == 1844
    hourly = aggregate_liquidations(ev, "1h")
    assert hourly.loc[T("2024-12-04 20:00"), "liq_short_notional"] == pytest.approx(5.0e6, rel=0.02)


def test_hyperliquid_export(shared_data: Path) -> None:
    ev = load(shared_data / "hyperliquid_liquidations_with_fills_2023-02-28_2023-05-01.csv")
    assert len(ev) == 69 and ev["event_id"].nunique() == 62
    assert (ev["position_side"] == "long").sum() == 46 and (ev["position_side"] == "short").sum() == 23
    assert (ev["avg_price"] == ev["price"]).all() and ev.attrs["notes"]
    assert ev["notional"].sum() == pytest.approx(196_357, rel=1e-3)


def test_aggregates(shared_data: Path) -> None:
    cg = load(shared_data / "coinglass_btc_liquidations_1h_binance_bybit_okx_2025-11-23_2026-05-22.csv")
    assert len(cg) == 4318 and list(cg.columns) == ["liq_long_notional", "liq_short_notional"]
    assert cg.loc[T("2026-02-05 20:00"), "liq_long_notional"] == pytest.approx(134.5e6, rel=1e-3)
    day = cg.loc["2026-02-05", "liq_long_notional"].sum()
    assert day == pytest.approx(415e6, rel=0.01)
    liq = load(shared_data / "coinalyze_btc_perp_liquidations_daily_usd_2022-01-02_2024-09-20.csv",
               market="Binance:BTCUSDT")
    assert len(liq) == 993
    oi = load(shared_data / "coinalyze_btc_perp_open_interest_daily_usd_2022-01-02_2024-09-20.csv",
              market="Binance:BTCUSDT")
    # the 2022-05-08 close is stamped at the end of that day
    v = oi.set_index("time")["open_interest_notional"]
    assert v.loc[T("2022-05-09")] == pytest.approx(3.03e9, rel=0.01)
    assert v.loc[T("2024-08-04")] == pytest.approx(5.18e9, rel=0.01)


def test_build_frame_from_shared_files(shared_data: Path) -> None:
    frame = build_frame(symbol="XBTUSD", start="2020-03-12", end="2020-03-14", interval="5min",
                        klines=shared_data / "bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv",
                        funding=shared_data / "bitmex_xbtusd_funding_2020-02-15_2020-04-15.csv")
    assert len(frame) == 2 * 288 and frame.attrs["venue"] == "bitmex"
    assert frame["low"].min() == 3596.0 and frame["low"].idxmin() == T("2020-03-13 02:15")
    settled = frame["funding_rate"].dropna()
    assert list(settled.index.hour) == [4, 12, 20, 4, 12, 20]
    assert settled.loc[T("2020-03-13 04:00")] == -0.00375

