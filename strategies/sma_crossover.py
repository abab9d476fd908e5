"""SMA crossover: long while the fast SMA of closes is above the slow one, short (or flat) below.

``target[i] = leverage x sign(SMA_fast - SMA_slow)`` at the close of bar i-1 (``short=False``:
negative becomes flat; equal SMAs: flat; 0 until the slow SMA has ``slow`` closes). Trades only
when the sign changes, so a crossover flips the position at the next bar's open. Indicators:
``ta.trend.sma_indicator``, computed once per bar frame and window
(:func:`strategies.base.cached_indicator`), so a sweep over ``fast``/``slow`` computes each SMA once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from ta.trend import sma_indicator

from risk.errors import DeleverageError
from strategies.base import SignalStrategy, cached_indicator, shift_target


class SmaCrossover(SignalStrategy):
    params = (("leverage", 1.0), ("fast", 10), ("slow", 30), ("short", True))
    ranges = {"leverage": (1.0, 100.0, None), "fast": (2, 100, 1), "slow": (5, 400, 1)}

    @classmethod
    def target_exposure(cls, bars: pd.DataFrame, **params: Any) -> np.ndarray:
        p = cls.resolve_params(params)
        fast, slow = int(p["fast"]), int(p["slow"])
        if not 1 <= fast < slow:
            raise DeleverageError(f"sma_crossover needs 1 <= fast < slow, got fast={fast}, slow={slow}")
        diff = _sma(bars, fast) - _sma(bars, slow)
        state = np.sign(np.nan_to_num(diff, nan=0.0))
        if not p["short"]:
            state = np.maximum(state, 0.0)
        return shift_target(state * float(p["leverage"]))


def _sma(bars: pd.DataFrame, window: int) -> np.ndarray:
    return cached_indicator(bars, "sma:close", window,
                            lambda: sma_indicator(bars["close"].astype("float64"), window).to_numpy())
