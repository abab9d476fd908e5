from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports.downsample import bucket_sum, downsample_ohlc_extremes


def _bars(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.05, n))
    return pd.DataFrame({"close": close, "high": close + 0.1, "low": close - 0.1},
                        index=pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC"))


def test_a_one_bar_wick_survives() -> None:
    bars = _bars(100_000)
    bars.iloc[54_321, bars.columns.get_loc("low")] = 50.0   # one-bar wick down
    bars.iloc[77_777, bars.columns.get_loc("high")] = 200.0  # one-bar wick up
    out = downsample_ohlc_extremes(bars, 1000)
    assert len(out) <= 1000
    assert out["low"].min() == 50.0 and bars.index[54_321] in out.index
    assert out["high"].max() == 200.0 and bars.index[77_777] in out.index
    # first and last bars kept, rows are original rows in order
    assert out.index[0] == bars.index[0] and out.index[-1] == bars.index[-1]
    assert out.index.is_monotonic_increasing and out.index.is_unique
    pd.testing.assert_frame_equal(out, bars.loc[out.index])


def test_every_bucket_keeps_its_extremes() -> None:
    bars = _bars(10_000, seed=2)
    out = downsample_ohlc_extremes(bars, 400)  # 100 buckets of 100 bars, 4 rows each
    assert len(out) <= 400
    for start in range(0, 10_000, 100):
        bucket = bars.iloc[start:start + 100]
        kept = out.loc[bucket.index[0]:bucket.index[-1]]
        assert kept["low"].min() == bucket["low"].min()
        assert kept["high"].max() == bucket["high"].max()


def test_keep_rows_and_nans() -> None:
    bars = _bars(5_000, seed=3)
    bars["liquidation_price"] = np.nan
    bars.iloc[1000:2000, bars.columns.get_loc("liquidation_price")] = 90.0
    keep = np.zeros(len(bars), dtype=bool)
    keep[[17, 1234, 4321]] = True
    out = downsample_ohlc_extremes(bars, 200, low=["low", "liquidation_price"], high=["high", "liquidation_price"], keep=keep)
    assert {bars.index[i] for i in (17, 1234, 4321)} <= set(out.index)
    assert out["liquidation_price"].max() == 90.0  # an all-NaN bucket never wins, a valued one does
    with pytest.raises(ValueError, match="one flag per row"):
        downsample_ohlc_extremes(bars, 200, keep=keep[:10])


def test_small_frames_are_untouched() -> None:
    bars = _bars(300)
    assert downsample_ohlc_extremes(bars, 1000) is bars


def test_bucket_sum_keeps_totals() -> None:
    bars = _bars(10_000)
    flow = pd.DataFrame({"liq_long_notional": np.zeros(10_000)}, index=bars.index)
    flow.iloc[4_321, 0] = 1e9
    flow.iloc[17, 0] = 5.0
    summed, width = bucket_sum(flow, 500)
    assert len(summed) <= 501 and width == pd.Timedelta(minutes=20)
    assert summed["liq_long_notional"].sum() == pytest.approx(1e9 + 5.0)
    assert summed["liq_long_notional"].max() == pytest.approx(1e9)
    same, none = bucket_sum(flow.iloc[:100], 500)
    assert none is None and len(same) == 100
