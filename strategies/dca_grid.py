"""Leveraged DCA / grid: average down on every ``step`` drop, take profit on a bounce. The
classic account-killer.

At the open of the first bar at or after ``entry_time`` (ISO UTC; the first bar when empty)
the grid starts a cycle: it buys the first of ``levels`` tranches, each worth
``leverage / levels`` x the equity at the cycle's start, with the feed's leverage set to
``leverage`` (so the full grid posts the whole equity as margin). Then, at each bar close:

- close at or above ``take_profit`` over the average entry: close everything (next open) and,
  with ``restart``, start a new cycle at the following open;
- else, close at or below ``step`` under the last buy's fill and fewer than ``levels`` tranches
  filled: buy the next tranche (next open).

A liquidation ends the grid: it stays flat for the rest of the run (what is left of the
equity is what the margin mode did not put at risk). It reacts to its own fills and
liquidation, so it has no signal form.
"""

from __future__ import annotations

import math
from typing import Any

from risk.formulas import notional
from strategies.base import PerpStrategy, entry_index


class DcaGrid(PerpStrategy):
    params = (("leverage", 5.0), ("levels", 5), ("step", 0.02), ("take_profit", 0.01), ("entry_time", ""),
              ("restart", True))
    ranges = {"leverage": (1.0, 100.0, None), "levels": (1, 20, 1), "step": (0.002, 0.1, None),
              "take_profit": (0.002, 0.1, None)}
    limits = {"leverage": (0.0, False, None, False), "levels": (1, True, None, False), "step": (0.0, False, 1.0, False),
              "take_profit": (0.0, False, None, False)}

    def start(self) -> None:
        super().start()
        frame = getattr(self.data, "frame", None)
        self._entry_i = entry_index(frame, self.p.entry_time) if frame is not None else 0
        self._cycle_equity = math.nan
        self._start_next = True
        self._dead = False
        self._pending: Any = None
        self._closing = False
        self.filled = 0
        self._last_buy = math.nan
        self.cycles = 0

    def _tranche(self, price: float) -> Any:
        d = self.data
        inst = self.broker.book(d).instrument
        lev = float(self.p.leverage)
        value = self._cycle_equity * lev / int(self.p.levels) / (1.0 + lev * max(inst.taker_fee, 0.0)) * 0.999999
        qty = value / notional(inst.inverse, 1.0, inst.contract_size, price)
        return self.target_qty(d, self.getposition(d).size + qty)

    def next_open(self) -> None:
        d = self.data
        if self._dead or self._pending is not None or not self._start_next or self.getposition(d).size:
            return
        if len(d) - 1 < self._entry_i:
            return
        self._cycle_equity = self.broker.getvalue()
        self.broker.set_leverage(d, float(self.p.leverage))
        self._start_next = False
        self._closing = False
        self.cycles += 1
        self._pending = self._tranche(d.open[0])

    prenext_open = next_open

    def next(self) -> None:
        d = self.data
        if self._dead or self._pending is not None or not self.getposition(d).size:
            return
        avg = self.broker.book(d).position.entry
        close = d.close[0]
        if close >= avg * (1.0 + float(self.p.take_profit)):
            self._closing = True
            self._pending = self.target_qty(d, 0.0)
        elif self.filled < int(self.p.levels) and close <= self._last_buy * (1.0 - float(self.p.step)):
            self._pending = self._tranche(close)

    def notify_order(self, order: Any) -> None:
        # backtrader notifies a clone of the order: match by ref
        if order.status in (order.Submitted, order.Accepted) or self._pending is None or order.ref != self._pending.ref:
            return
        self._pending = None
        if order.status == order.Completed:
            if self._closing:
                self.filled, self._last_buy = 0, math.nan
                self._start_next = bool(self.p.restart)
            else:
                self.filled += 1
                self._last_buy = order.executed.price
        elif not self._closing:
            self.filled = int(self.p.levels)  # a rejected tranche (no margin left): stop adding

    def notify_liquidation(self, event: dict[str, Any]) -> None:
        self._dead = True
        self._pending = None
