"""Breakdown / breakout at key levels: a lost support triggers an exit or a short.

Two ways to say where the level is:

- ``level > 0``: a fixed key level (say 75,000). A close below ``level x (1 - buffer)`` is a
  **breakdown**, a close above ``level x (1 + buffer)`` a **breakout** (reclaim); closes inside
  the band keep the previous state.
- ``level = 0``: a Donchian channel (the bands of ``ta.volatility.DonchianChannel``, computed
  in compiled code by :mod:`strategies.signals`) of the ``lookback`` bars *before* the current one: a close under their lowest low is a breakdown, a close over
  their highest high a breakout.

The state starts unknown (flat) until the first breakout or breakdown. ``mode`` says what is
held (signed ``leverage`` multiples): ``"exit"``: long after a breakout, flat after a breakdown;
``"short"``: long after a breakout, short after a breakdown; ``"short_only"``: flat after a
breakout, short after a breakdown. The decision at bar i-1's close is held from bar i's open.

Stops (both engines, :mod:`risk.path`): ``stop_loss`` (a fraction: the stop sits that far from
the entry bar's open, below a long, above a short) and ``trailing_stop`` (a fraction of the best
price since the entry); 0 = none. After a stop the position stays flat until the state changes.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import pandas as pd

from risk.errors import DeleverageError
from strategies.base import SignalStrategy, cached_indicator, levels_from_entry, shift_target
from strategies.signals import rolling_extreme_before

MODES = {"exit": (1.0, 0.0), "short": (1.0, -1.0), "short_only": (0.0, -1.0)}


class Breakout(SignalStrategy):
    params = (("leverage", 1.0), ("level", 0.0), ("buffer", 0.0), ("lookback", 20), ("mode", "exit"),
              ("stop_loss", 0.0), ("trailing_stop", 0.0))
    ranges = {"leverage": (1.0, 100.0, None), "buffer": (0.0, 0.05, None), "lookback": (5, 500, 1)}

    @classmethod
    def target_exposure(cls, bars: pd.DataFrame, **params: Any) -> np.ndarray:
        p = cls.resolve_params(params)
        if p["mode"] not in MODES:
            raise DeleverageError(f"breakout mode must be one of {', '.join(MODES)}, got {p['mode']!r}")
        up_side, down_side = MODES[p["mode"]]
        close = bars["close"].to_numpy(dtype=np.float64)
        level, buffer = float(p["level"]), float(p["buffer"])
        if level > 0:
            up = np.full(len(close), level * (1.0 + buffer))
            down = np.full(len(close), level * (1.0 - buffer))
        else:
            lookback = int(p["lookback"])
            if lookback < 1:
                raise DeleverageError(f"breakout lookback must be at least 1 bar, got {lookback}")
            hband, lband = _donchian(bars, lookback)
            # the channel of the previous `lookback` bars (ta's includes the current bar)
            up = hband * (1.0 + buffer)
            down = lband * (1.0 - buffer)
        state = _state(close, up, down, up_side, down_side)
        return shift_target(state * float(p["leverage"]))

    @classmethod
    def exit_levels(cls, bars: pd.DataFrame, **params: Any) -> dict[str, Any] | None:
        p = cls.resolve_params(params)
        stop, trail = float(p["stop_loss"]), float(p["trailing_stop"])
        if not 0.0 <= stop < 1.0 or not 0.0 <= trail < 1.0:
            raise DeleverageError(f"breakout stop_loss and trailing_stop are fractions in [0, 1), got {stop} and {trail}")
        if stop == 0.0 and trail == 0.0:
            return None
        levels: dict[str, Any] = {}
        if stop > 0.0:
            levels["stop_loss"] = levels_from_entry(cls.target_exposure(bars, **params),
                                                    bars["open"].to_numpy(dtype=np.float64), stop)
        if trail > 0.0:
            levels["trailing_stop"] = trail
        return levels


def _donchian(bars: pd.DataFrame, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """The Donchian bands of the ``lookback`` bars before each bar (cached per frame and window):
    ``ta.volatility.DonchianChannel``'s high/low bands shifted by one bar, computed in compiled
    code (:func:`strategies.signals.rolling_extreme_before`, the same numbers)."""
    high = cached_indicator(bars, "donchian_high:high", lookback, lambda: rolling_extreme_before(
        bars["high"].to_numpy(dtype=np.float64), lookback, True))
    low = cached_indicator(bars, "donchian_low:low", lookback, lambda: rolling_extreme_before(
        bars["low"].to_numpy(dtype=np.float64), lookback, False))
    return high, low


@numba.njit(cache=True)
def _state(close: np.ndarray, up: np.ndarray, down: np.ndarray, up_side: float, down_side: float) -> np.ndarray:
    """The held state after each close: up_side above ``up``, down_side below ``down``, else the last."""
    state = np.zeros(close.shape[0])
    current = 0.0
    for j in range(close.shape[0]):
        if close[j] > up[j]:
            current = up_side
        elif close[j] < down[j]:
            current = down_side
        state[j] = current
    return state
