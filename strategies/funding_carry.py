"""Funding carry: short the perpetual while funding is rich, collect what longs pay.

Goes short ``leverage`` x equity when the last settled funding rate (the feed's
``funding_rate`` column, forward-filled between settlements) is at or above ``entry_rate``
(fraction per funding interval; 0.0003 = 0.03 % per 8 h, three times BitMEX's and Binance's
0.01 % baseline) and back to flat when it falls below ``exit_rate``. A rate known at bar i-1's
close is acted on at bar i's open. This is the un-hedged version (no spot leg): it earns funding
and carries the full price risk of a short, which a squeeze liquidates.

Reads the bars' ``funding_rate`` column; on bars without one, a run settling a constant rate
(``--funding-rate``) shows it that rate on the bars holding a settlement (both engines:
:func:`strategies.base.signal_frame`); bars with no funding at all leave it flat.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from risk.errors import DeleverageError
from strategies.base import SignalStrategy, shift_target


class FundingCarry(SignalStrategy):
    params = (("leverage", 1.0), ("entry_rate", 0.0003), ("exit_rate", 0.0001))
    ranges = {"leverage": (1.0, 100.0, None), "entry_rate": (0.0001, 0.003, None), "exit_rate": (-0.001, 0.001, None)}

    @classmethod
    def target_exposure(cls, bars: pd.DataFrame, **params: Any) -> np.ndarray:
        p = cls.resolve_params(params)
        entry, exit_ = float(p["entry_rate"]), float(p["exit_rate"])
        if exit_ > entry:
            raise DeleverageError(f"funding_carry needs exit_rate <= entry_rate, got {exit_} > {entry}")
        if "funding_rate" not in bars.columns:
            return np.zeros(len(bars))
        rate = bars["funding_rate"].astype("float64").ffill().to_numpy()
        state = np.zeros(len(rate))
        short = False
        for j, r in enumerate(rate):
            if r == r:
                if r >= entry:
                    short = True
                elif r < exit_:
                    short = False
            state[j] = -1.0 if short else 0.0
        return shift_target(state * float(p["leverage"]))
