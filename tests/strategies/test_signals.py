"""Compiled signals (strategies.signals): the batched targets equal the one-set targets bit for
bit, and the SMAs from one cumulative sum equal ta's rolling mean up to rounding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ta.trend import sma_indicator

from risk.errors import DeleverageError
from strategies import SmaCrossover
from strategies.signals import close_cumsum
from tests.fast.helpers import random_bars


def _ta_targets(bars: pd.DataFrame, fast: int, slow: int, lev: float, short: bool) -> np.ndarray:
    close = bars["close"].astype("float64")
    diff = sma_indicator(close, fast).to_numpy() - sma_indicator(close, slow).to_numpy()
    state = np.sign(np.nan_to_num(diff, nan=0.0))
    if not short:
        state = np.maximum(state, 0.0)
    out = np.zeros(len(bars))
    out[1:] = (state * lev)[:-1]
    return out


def test_batched_targets_equal_single_targets_and_ta():
    bars = random_bars(3, n=4000)
    sets = [{"fast": f, "slow": s, "leverage": lev, "short": sh}
            for f, s, lev, sh in [(5, 30, 1.0, True), (2, 3, 2.5, False), (17, 400, 10.0, True), (50, 51, 3.0, True)]]
    block = SmaCrossover.target_exposure_batch(bars, sets)
    assert block.shape == (4, 4000)
    for row, p in zip(block, sets):
        one = SmaCrossover.target_exposure(bars, **p)
        assert one.tobytes() == row.tobytes()
        ref = _ta_targets(bars, p["fast"], p["slow"], p["leverage"], p["short"])
        assert np.array_equal(one, ref)
        assert np.count_nonzero(np.diff(one)) > 5  # it trades
    assert not np.any(block[1] < 0)  # short=False: never short


def test_sma_from_the_cumulative_sum_by_hand():
    idx = pd.date_range("2024-01-01", periods=5, freq="1min", tz="UTC")
    bars = pd.DataFrame({"close": [10.0, 12.0, 11.0, 15.0, 9.0]}, index=idx)
    c = close_cumsum(bars)
    assert c.tolist() == [0.0, 0.0, 2.0, 3.0, 8.0, 7.0]  # sums of close - 10
    # SMA(2) - SMA(3) at bar 3: (11 + 15) / 2 - (12 + 11 + 15) / 3 = 13 - 12.667 > 0 -> long from bar 4
    t = SmaCrossover.target_exposure(bars, fast=2, slow=3, leverage=2.0)
    # bar 2: 11.5 - 11 > 0 -> long from bar 3; bar 3 long -> bar 4 long
    assert t.tolist() == [0.0, 0.0, 0.0, 2.0, 2.0]


def test_a_refused_set_in_a_batch_raises_the_strategy_error():
    bars = random_bars(1, n=100)
    with pytest.raises(DeleverageError, match="fast < slow"):
        SmaCrossover.target_exposure_batch(bars, [{"fast": 5, "slow": 10}, {"fast": 10, "slow": 10}])


@pytest.mark.parametrize("window", [1, 3, 20, 200])
def test_donchian_bands_equal_ta_exactly(window):
    from ta.volatility import DonchianChannel

    from strategies.signals import rolling_extreme_before

    bars = random_bars(5, n=3000)
    high, low = bars["high"].astype("float64").copy(), bars["low"].astype("float64").copy()
    high.iloc[700] = np.nan  # a gap in the data: the windows holding it have no band
    ch = DonchianChannel(high, low, bars["close"].astype("float64"), window=window)
    ref_h = ch.donchian_channel_hband().shift(1).to_numpy()
    ref_l = ch.donchian_channel_lband().shift(1).to_numpy()
    got_h = rolling_extreme_before(high.to_numpy(), window, True)
    got_l = rolling_extreme_before(low.to_numpy(), window, False)
    assert np.array_equal(got_h, ref_h, equal_nan=True)
    assert np.array_equal(got_l, ref_l, equal_nan=True)
