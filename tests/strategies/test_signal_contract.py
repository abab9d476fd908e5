"""The signal-form contract of strategies/base.py, for every reference signal strategy:
causality (bar k's close/high/low/volume/extra columns never change target[:k+1]) and the
backtrader run holding exactly sign(target) at every bar (trading only when it changes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies import REGISTRY, SIGNAL_STRATEGIES

PARAMS = {
    "buy_and_hold": {"leverage": 2.0, "entry_time": "2024-01-01T05:00Z"},
    "sma_crossover": {"leverage": 2.0, "fast": 3, "slow": 8},
    "breakout": {"leverage": 2.0, "lookback": 6, "mode": "short"},
    "funding_carry": {"leverage": 2.0, "entry_rate": 0.0002, "exit_rate": 0.0},
}


def _walk(n: int = 160, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 10000 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    opens = np.concatenate([[10000.0], close[:-1]])
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="open_time")
    rate = np.full(n, np.nan)
    rate[::8] = rng.normal(0.0001, 0.0003, len(rate[::8]))
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.001,
                         "low": np.minimum(opens, close) * 0.999, "close": close, "volume": 5.0,
                         "funding_rate": rate, "liq_long_notional": rng.exponential(1e6, n)}, index=index)


def test_every_signal_strategy_is_covered() -> None:
    assert set(SIGNAL_STRATEGIES) == set(PARAMS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_target_is_causal(name: str) -> None:
    cls = REGISTRY[name]
    bars = _walk()
    base = cls.target_exposure(bars, **PARAMS[name])
    assert base.dtype == np.float64 and base.shape == (len(bars),)
    assert len(np.unique(base)) >= 2  # the test data makes it trade
    for k in (10, 40, 77, 120, 159):
        bumped = bars.copy()
        for col in ("close", "high", "low", "volume", "funding_rate", "liq_long_notional"):
            bumped.iloc[k, bumped.columns.get_loc(col)] = bars[col].iloc[k] * (0.5 if k % 2 else 1.7) \
                if bars[col].iloc[k] == bars[col].iloc[k] else 0.01
        bumped.iloc[k, bumped.columns.get_loc("low")] = min(bumped["low"].iloc[k], bumped["close"].iloc[k])
        bumped.iloc[k, bumped.columns.get_loc("high")] = max(bumped["high"].iloc[k], bumped["close"].iloc[k])
        again = cls.target_exposure(bumped, **PARAMS[name])
        assert np.array_equal(again[:k + 1], base[:k + 1]), f"{name}: bar {k} leaked into target[:{k + 1}]"
        # truncating the future does not change the past either
        assert np.array_equal(cls.target_exposure(bars.iloc[:k + 1], **PARAMS[name]), base[:k + 1])


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_backtrader_holds_the_target(name: str, runner) -> None:
    cls = REGISTRY[name]
    bars = _walk()
    target = cls.target_exposure(bars, **PARAMS[name])
    result, _ = runner(cls, bars, **PARAMS[name])
    assert not result.summary["liquidated"]
    qty = result.equity["position_qty"].to_numpy()
    assert np.array_equal(np.sign(qty), np.sign(target))
    changes = int((np.diff(np.concatenate([[0.0], target])) != 0).sum())
    assert len(result.fills) == changes
    # exposure at each change is |target| x equity at the fill (fee room aside)
    fills = result.fills.set_index("time")
    eq = result.equity["equity"].shift(1).fillna(10_000.0)
    for t, row in fills.iterrows():
        i = bars.index.get_loc(t)
        if target[i]:
            assert abs(qty[i]) * bars["open"].iloc[i] == pytest.approx(abs(target[i]) * eq.iloc[i], rel=3e-3)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_ranges_name_declared_parameters(name: str) -> None:
    cls = REGISTRY[name]
    defaults = cls.param_defaults()
    assert "leverage" in cls.ranges
    for key, (low, high, step) in cls.ranges.items():
        assert key in defaults and low < high and (step is None or step > 0)
        assert low <= defaults[key] <= high or key == "leverage" and defaults[key] >= low
