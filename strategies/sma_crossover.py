"""SMA crossover: long while the fast SMA of closes is above the slow one, short (or flat) below.

``target[i] = leverage x sign(SMA_fast - SMA_slow)`` at the close of bar i-1 (``short=False``:
negative becomes flat; equal SMAs: flat; 0 until the slow SMA has ``slow`` closes). Trades only
when the sign changes, so a crossover flips the position at the next bar's open. The SMAs come
from one cumulative sum of the closes per bar frame, in compiled code for one set or a whole
batch (:mod:`strategies.signals`; equal to ``ta.trend.sma_indicator`` up to floating-point
rounding).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from risk.errors import DeleverageError
from strategies.base import SignalStrategy
from strategies.signals import close_cumsum, sma_cross_targets


class SmaCrossover(SignalStrategy):
    params = (("leverage", 1.0), ("fast", 10), ("slow", 30), ("short", True))
    ranges = {"leverage": (1.0, 100.0, None), "fast": (2, 100, 1), "slow": (5, 400, 1)}

    @classmethod
    def target_exposure(cls, bars: pd.DataFrame, **params: Any) -> np.ndarray:
        p = cls.resolve_params(params)
        fast, slow = int(p["fast"]), int(p["slow"])
        if not 1 <= fast < slow:
            raise DeleverageError(f"sma_crossover needs 1 <= fast < slow, got fast={fast}, slow={slow}")
        return cls.target_exposure_batch(bars, [p])[0]

    @classmethod
    def target_exposure_batch(cls, bars: pd.DataFrame, params_list: list[dict[str, Any]]) -> np.ndarray:
        """The targets of many parameter sets, an (m, n) block, in one compiled call
        (:func:`strategies.signals.sma_cross_targets`, SMAs from one cumulative sum of the closes)."""
        ps = [cls.resolve_params(p) for p in params_list]
        fast = np.array([int(p["fast"]) for p in ps], dtype=np.int64)
        slow = np.array([int(p["slow"]) for p in ps], dtype=np.int64)
        bad = np.flatnonzero(~((1 <= fast) & (fast < slow)))
        if bad.size:
            k = int(bad[0])
            raise DeleverageError(f"sma_crossover needs 1 <= fast < slow, got fast={fast[k]}, slow={slow[k]}")
        out = np.empty((len(ps), len(bars)))
        sma_cross_targets(close_cumsum(bars), fast, slow, np.array([float(p["leverage"]) for p in ps]),
                          np.array([bool(p["short"]) for p in ps]), out)
        return out


