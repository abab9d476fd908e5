"""Compiled signals: the reference strategies' target arrays for many parameter sets at once.

A sweep asks for the same signal form with thousands of parameter sets on one chunk of bars.
Here each form is one ``numba`` function that fills an ``(m, n)`` block of target arrays from
inputs prepared once per bar frame (:func:`strategies.base.cached_indicator`), so no per-set
indicator array is ever built. A strategy's own ``target_exposure`` calls the same function
with one set, so the one-set and the batched targets are the same numbers bit for bit (the
optimizer's ``--batch 1`` and batched tables are equal).

- :func:`sma_cross_targets` (``sma_crossover``): SMA(w) at bar i from one cumulative sum of the
  closes, ``(C[i+1] - C[i+1-w]) / w`` with ``C[k] = sum_{j<k} (close_j - close_0)`` (the first
  close subtracted to keep the sum small: the sums stay exact to ~1e-16 of the price range), NaN
  before the window is full, as ``ta.trend.sma_indicator``; the target rule of
  :mod:`strategies.sma_crossover`. The difference from ``ta``'s rolling mean is floating-point
  rounding only (``tests/strategies/test_signals.py`` compares them).
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

from strategies.base import cached_indicator


def close_cumsum(bars: pd.DataFrame) -> np.ndarray:
    """``C`` of the module docstring (length n + 1, ``C[0] = 0``), computed once per bar frame."""
    def compute() -> np.ndarray:
        close = bars["close"].to_numpy(dtype=np.float64)
        out = np.zeros(close.shape[0] + 1)
        if close.shape[0]:
            np.cumsum(close - close[0], out=out[1:])
        return out

    return cached_indicator(bars, "cumsum:close-close0", 0, compute)


@numba.njit(cache=True, nogil=True)
def sma_cross_targets(csum: np.ndarray, fast: np.ndarray, slow: np.ndarray, leverage: np.ndarray,
                      short: np.ndarray, out: np.ndarray) -> None:
    """Row j of ``out`` (m, n) = the ``sma_crossover`` target of set j: ``leverage[j] x
    sign(SMA(fast[j]) - SMA(slow[j]))`` decided at bar i-1's close, held from bar i's open;
    0 while either SMA is undefined and at bar 0; negative -> 0 when ``short[j]`` is false."""
    m, n = out.shape
    for j in range(m):
        f, s, lev, allow_short = fast[j], slow[j], leverage[j], short[j]
        row = out[j]
        row[0] = 0.0
        w = max(f, s)
        for i in range(n - 1):
            state = 0.0
            if i >= w - 1:
                top = csum[i + 1]
                diff = (top - csum[i + 1 - f]) / f - (top - csum[i + 1 - s]) / s
                if diff > 0.0:
                    state = 1.0
                elif diff < 0.0:
                    state = -1.0 if allow_short else 0.0
            row[i + 1] = state * lev


@numba.njit(cache=True, nogil=True)
def rolling_extreme_before(values: np.ndarray, window: int, highest: bool) -> np.ndarray:
    """The highest (``highest``) or lowest of the ``window`` values *before* each position, NaN
    until ``window`` values precede it: ``ta``'s Donchian band (rolling max/min over ``window``
    bars, full windows only) shifted by one bar, the same numbers exactly (max and min do not
    round). A NaN inside the window makes that window's band NaN, as pandas' rolling max/min
    does with full windows required. O(n) with a monotonic queue of positions."""
    n = values.shape[0]
    out = np.full(n, np.nan)
    if window < 1:
        return out
    queue = np.empty(n, dtype=np.int64)
    head = 0
    tail = 0
    last_nan = -1
    for i in range(n):
        v = values[i]
        if v != v:
            last_nan = i
        else:
            if highest:
                while tail > head and values[queue[tail - 1]] <= v:
                    tail -= 1
            else:
                while tail > head and values[queue[tail - 1]] >= v:
                    tail -= 1
            queue[tail] = i
            tail += 1
        while tail > head and queue[head] <= i - window:
            head += 1
        # the band over values[i - window + 1 .. i] is the band before position i + 1
        if i + 1 < n and i >= window - 1 and last_nan <= i - window and tail > head:
            out[i + 1] = values[queue[head]]
    return out
