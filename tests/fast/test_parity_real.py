"""Parity of the fast engine with the backtrader path on the real 312 and 519 bars (../shared/data).

312: BitMEX XBTUSD 1-minute bars 2020-03-09 .. 03-16 with BitMEX's own funding settlements,
run on the BitMEX profile (inverse, MM at entry + taker fee + costly funding, bankruptcy fill)
and on Binance COIN-M (inverse, MM at mark, tiered). 519: the 2021-05-16 .. 05-22 XBTUSD bars
run on Binance USD-M (linear) with Binance's BTCUSDT funding of those days, and on BitMEX with
a constant rate. The real files have no mark price, so the trigger is the last price.

Each reference strategy runs its own backtrader implementation (BuyAndHold's ``next_open``,
SignalStrategy for the others) against its signal form on the fast engine; random targets run
ExposureStrategy against run_fast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.runner import RunConfig
from strategies import Breakout, BuyAndHold, SmaCrossover
from tests.fast.helpers import assert_parity, binance_funding, random_targets, run_both

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def bars312(shared_data) -> pd.DataFrame:
    from feeds.build import build_frame

    return build_frame(symbol="XBTUSD", start="2020-03-09", end="2020-03-17",
                       klines=shared_data / "bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv",
                       funding=shared_data / "bitmex_xbtusd_funding_2020-02-15_2020-04-15.csv")


@pytest.fixture(scope="module")
def bars519(shared_data) -> pd.DataFrame:
    from feeds.build import build_frame

    frame = build_frame(symbol="XBTUSD", start="2021-05-16", end="2021-05-23",
                        klines=shared_data / "bitmex_xbtusd_1m_2021-05-16_2021-05-22.csv")
    return frame


@pytest.fixture(scope="module")
def bars519_binance(bars519, shared_data) -> pd.DataFrame:
    frame = bars519.copy()
    frame["funding_rate"] = binance_funding(shared_data, "BTCUSDT", frame.index)
    assert np.count_nonzero(~np.isnan(frame["funding_rate"])) == 21  # 3 a day for 7 days
    return frame


def test_real_bars_are_the_events(bars312, bars519) -> None:
    assert len(bars312) == 11_520 and bars312["low"].min() == 3_596.0
    assert len(bars519) == 10_080 and bars519["low"].min() == 28_157.0
    assert bars312["funding_rate"].notna().sum() == 24  # BitMEX 04/12/20 h settlements, 8 days


@pytest.mark.parametrize("leverage,mode", [(2.0, "isolated"), (10.0, "isolated"), (3.0, "cross")])
def test_312_buy_and_hold_bitmex(bars312, leverage, mode) -> None:
    config = RunConfig(strategy="buy_and_hold", params={"leverage": leverage, "entry_time": "2020-03-10T00:00Z"},
                       venue="bitmex", margin_mode=mode, cash=1.0)
    slow, fast = run_both(bars312, config, strategy=BuyAndHold)
    assert_parity(slow, fast, 1.0)
    assert len(fast.liquidations) == 1  # every one of these longs dies in the crash
    assert fast.liquidations["time"].iloc[0].strftime("%Y-%m-%d") in ("2020-03-12", "2020-03-13")
    assert len(fast.funding) >= 4


def test_312_sma_crossover_coinm(bars312) -> None:
    config = RunConfig(strategy="sma_crossover", params={"leverage": 20.0, "fast": 20, "slow": 90},
                       venue="binance_coinm", cash=1.0)
    slow, fast = run_both(bars312, config, strategy=SmaCrossover)
    assert_parity(slow, fast, 1.0)
    assert len(fast.fills) >= 50 and len(fast.funding) >= 10  # 20x, both sides, through the crash


def test_312_random_targets_bitmex_cross(bars312) -> None:
    targets = random_targets(7, len(bars312), (-10.0, -5.0, -2.0, 0.0, 2.0, 5.0, 10.0, 25.0), p_change=0.003)
    config = RunConfig(strategy="exposure", venue="bitmex", margin_mode="cross", cash=1.0)
    slow, fast = run_both(bars312, config, targets=targets)
    assert_parity(slow, fast, 1.0)
    assert len(fast.fills) >= 10 and len(fast.liquidations) == 1  # cross: the crash takes the whole wallet
    assert fast.summary["final_equity"] < 0.01


@pytest.mark.parametrize("mode", ["isolated", "cross"])
def test_519_buy_and_hold_binance(bars519_binance, mode) -> None:
    config = RunConfig(strategy="buy_and_hold", params={"leverage": 10.0, "entry_time": "2021-05-18T00:00Z"},
                       venue="binance_usdm", margin_mode=mode, cash=10_000.0)
    slow, fast = run_both(bars519_binance, config, strategy=BuyAndHold)
    assert_parity(slow, fast, 10_000.0)
    [liq] = fast.liquidations.to_dict("records")
    assert liq["time"].strftime("%Y-%m-%d") == "2021-05-19"
    assert fast.funding["rate"].tolist() == bars519_binance["funding_rate"].dropna().loc[:liq["time"]].tolist()[-len(fast.funding):]


@pytest.mark.parametrize("strategy,params", [
    (SmaCrossover, {"leverage": 5.0, "fast": 15, "slow": 60}),
    (Breakout, {"leverage": 8.0, "lookback": 60}),
])
def test_519_signal_strategies_binance(bars519_binance, strategy, params) -> None:
    config = RunConfig(strategy=strategy.__name__, params=params, venue="binance_usdm", cash=10_000.0)
    slow, fast = run_both(bars519_binance, config, strategy=strategy)
    assert_parity(slow, fast, 10_000.0)
    assert len(fast.fills) >= 20 and len(fast.funding) >= 5


def test_519_random_targets_bitmex_constant_funding(bars519) -> None:
    targets = random_targets(11, len(bars519), (-20.0, -5.0, -2.0, 0.0, 2.0, 5.0, 20.0), p_change=0.004)
    config = RunConfig(strategy="exposure", venue="bitmex", cash=1.0, funding_rate=0.0001)
    slow, fast = run_both(bars519, config, targets=targets)
    assert_parity(slow, fast, 1.0)
    assert len(fast.fills) >= 8 and len(fast.funding) >= 3 and len(fast.liquidations) >= 1
