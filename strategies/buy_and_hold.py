"""Leveraged buy-and-hold: the baseline every user wants.

Opens a long (or short, ``side=-1``) of ``leverage`` times equity **at the open** of the first
bar at or after ``entry_time`` (ISO UTC text; the first bar when empty; the runner enables
backtrader's cheat-on-open so an order from ``next_open`` fills at that bar's open) and holds
it to the end. After a liquidation it stays flat unless ``reenter`` is set.

Signal form (``reenter=False`` only): ``target[i] = side x leverage`` from the first bar at
or after ``entry_time``, 0 before.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from risk.errors import DeleverageError
from strategies.base import PerpStrategy, entry_index


class BuyAndHold(PerpStrategy):
    params = (("leverage", 1.0), ("side", 1), ("entry_time", ""), ("reenter", False))
    ranges = {"leverage": (1.0, 100.0, None)}

    @classmethod
    def target_exposure(cls, bars: pd.DataFrame, **params: Any) -> np.ndarray:
        p = cls.resolve_params(params)
        if p["reenter"]:
            raise DeleverageError("buy_and_hold with reenter=True reacts to its own liquidation: no signal form")
        out = np.zeros(len(bars))
        out[entry_index(bars, p["entry_time"]):] = float(p["side"]) * float(p["leverage"])
        return out

    def start(self) -> None:
        super().start()
        self._entered = False
        self._liquidated = False
        self._entry_dt = (datetime.fromisoformat(self.p.entry_time.replace("Z", "+00:00"))
                          .astimezone(timezone.utc).replace(tzinfo=None)) if self.p.entry_time else None

    def next_open(self) -> None:
        if self._entered and not (self.p.reenter and self._liquidated):
            return
        if self._entry_dt is not None and self.data.datetime.datetime(0) < self._entry_dt:
            return
        if self.getposition(self.data).size == 0:
            self.target_leverage(self.data, self.p.leverage, side=int(self.p.side), price=self.data.open[0])
            self._entered = True
            self._liquidated = False

    def notify_liquidation(self, event: dict[str, Any]) -> None:
        self._liquidated = True

    # backtrader calls prenext_open (not next_open) for the very first bar; the entry needs no
    # indicator history, so it may happen there too
    prenext_open = next_open
