"""Causal alignment of liquidation events, funding and open interest; resampling rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feeds.errors import FeedError
from feeds.funding_rates import place_funding
from feeds.gaps import fill_gaps
from feeds.liquidations import aggregate_liquidations
from feeds.open_interest import place_open_interest
from feeds.resample import resample_bars


def T(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def events(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame({
        "time": pd.DatetimeIndex([T(t) for t, *_ in rows]), "venue": "binance_usdm", "symbol": "BTCUSDT",
        "position_side": [s for _, s, _, _ in rows], "order_side": ["sell" if s == "long" else "buy" for _, s, _, _ in rows],
        "price": [p for *_, p, _ in rows], "avg_price": [p for *_, p, _ in rows], "qty": [q for *_, q in rows],
        "notional": [p * q for *_, p, q in rows]})


def bars(n: int = 5, start: str = "2021-05-19 12:00", freq: str = "1min") -> pd.DataFrame:
    idx = pd.date_range(T(start), periods=n, freq=freq, name="open_time")
    price = 100.0 + np.arange(n)
    f = pd.DataFrame({"open": price, "high": price + 1, "low": price - 1, "close": price + 0.5,
                      "volume": np.full(n, 2.0)}, index=idx)
    f.attrs["interval"] = freq
    return f


def test_events_fall_in_the_bar_that_contains_them() -> None:
    ev = events([
        ("2021-05-19 12:00:30", "long", 100.0, 1.0),     # inside the 12:00 bar
        ("2021-05-19 12:00:59.999", "short", 101.0, 2.0),  # still 12:00
        ("2021-05-19 12:01:00", "long", 102.0, 3.0),     # exactly on the boundary: the 12:01 bar
        ("2021-05-19 12:03:10", "long", 99.0, 0.5),      # a bar with no trades (volume 0)
    ])
    b = bars()
    b.loc[T("2021-05-19 12:03"), "volume"] = 0.0
    agg = aggregate_liquidations(ev, "1min", index=b.index)
    assert list(agg["liq_long_count"]) == [1, 1, 0, 1, 0]
    assert list(agg["liq_short_count"]) == [1, 0, 0, 0, 0]
    assert list(agg["liq_long_qty"]) == [1.0, 3.0, 0.0, 0.5, 0.0]
    assert agg.loc[T("2021-05-19 12:00"), "liq_short_notional"] == 202.0
    assert agg.loc[T("2021-05-19 12:03"), "liq_long_notional"] == 49.5
    total = agg[["liq_long_notional", "liq_short_notional"]].to_numpy().sum()
    assert total == pytest.approx(ev["notional"].sum())
    sparse = aggregate_liquidations(ev, "1min")  # without an index: only bars with events
    assert list(sparse.index) == [T("2021-05-19 12:00"), T("2021-05-19 12:01"), T("2021-05-19 12:03")]


def test_event_in_a_missing_bar_is_an_error_not_dropped() -> None:
    b = bars().drop(T("2021-05-19 12:02"))
    ev = events([("2021-05-19 12:02:05", "long", 100.0, 1.0)])
    with pytest.raises(FeedError, match=r"at 2021-05-19T12:02:05Z.*bar 2021-05-19T12:02:00Z, which is missing"):
        aggregate_liquidations(ev, "1min", index=b.index)


def test_five_minute_aggregation_matches_one_minute_resampled() -> None:
    ev = events([("2021-05-19 12:00:30", "long", 100.0, 1.0), ("2021-05-19 12:04:59", "short", 100.0, 2.0),
                 ("2021-05-19 12:05:00", "long", 100.0, 4.0)])
    b1 = bars(10)
    one = b1.join(aggregate_liquidations(ev, "1min", index=b1.index))
    five = resample_bars(one, "5min")
    direct = aggregate_liquidations(ev, "5min", index=five.index)
    pd.testing.assert_frame_equal(five[direct.columns], direct, check_freq=False)
    assert list(five["liq_long_qty"]) == [1.0, 4.0]


def test_funding_jitter_lands_on_the_hour_bar() -> None:
    idx = pd.date_range(T("2021-05-19 07:58"), periods=5, freq="1min", name="open_time")
    fund = pd.DataFrame({"time": [T("2021-05-19 00:00:00.001"), T("2021-05-19 08:00:00.004"), T("2021-05-19 16:00")],
                         "symbol": "BTCUSDT", "funding_rate": [0.0001, -0.003, 0.0002], "interval_hours": 8.0})
    rate = place_funding(fund, idx, "1min", symbol="BTCUSDT")
    assert rate.isna().sum() == 4 and rate.loc[T("2021-05-19 08:00")] == -0.003
    with pytest.raises(FeedError, match="funding settlement missing"):
        place_funding(fund.drop(index=1), pd.date_range(T("2021-05-19 00:00"), periods=24 * 60, freq="1min"), "1min")


def test_open_interest_is_as_of_bar_close() -> None:
    idx = pd.date_range(T("2021-12-01 00:03"), periods=4, freq="1min", name="open_time")
    snaps = pd.DataFrame({"time": [T("2021-12-01 00:00"), T("2021-12-01 00:05")], "open_interest": [10.0, 20.0]})
    placed = place_open_interest(snaps, idx, "1min")
    # the 00:05 snapshot is first seen in the 00:05 bar, never in the 00:04 bar whose close it coincides with
    assert list(placed["open_interest"]) == [10.0, 10.0, 20.0, 20.0]
    early = place_open_interest(snaps.iloc[1:], idx, "1min")
    assert early["open_interest"].isna().tolist() == [True, True, False, False]


def test_resample_rules() -> None:
    b = bars(10)
    b["funding_rate"] = np.nan
    b.loc[T("2021-05-19 12:07"), "funding_rate"] = 0.0003
    b["open_interest"] = np.arange(10.0)
    b["mark_open"], b["mark_high"], b["mark_low"], b["mark_close"] = b["open"], b["high"] + 1, b["low"] - 1, b["close"]
    r = resample_bars(b, "5min")
    assert list(r.index) == [T("2021-05-19 12:00"), T("2021-05-19 12:05")]
    assert list(r["open"]) == [100.0, 105.0] and list(r["high"]) == [105.0, 110.0]
    assert list(r["low"]) == [99.0, 104.0] and list(r["close"]) == [104.5, 109.5]
    assert list(r["volume"]) == [10.0, 10.0] and list(r["open_interest"]) == [4.0, 9.0]
    assert np.isnan(r["funding_rate"].iloc[0]) and r["funding_rate"].iloc[1] == 0.0003
    assert list(r["mark_high"]) == [106.0, 111.0]
    with pytest.raises(FeedError, match=r"2021-05-19T12:05:00Z would be built from 4 of 5 1min bars"):
        resample_bars(b.drop(T("2021-05-19 12:06")), "5min")
    with pytest.raises(FeedError, match="cannot resample"):
        resample_bars(b, "90s")


def test_fill_gaps_only_on_request_and_says_how() -> None:
    b = bars(5).drop([T("2021-05-19 12:02"), T("2021-05-19 12:03")])
    filled = fill_gaps(b, "1min")
    assert len(filled) == 5 and filled.attrs["gap_fill"]["bars"] == 2
    row = filled.loc[T("2021-05-19 12:02")]
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (101.5, 101.5, 101.5, 101.5, 0.0)
