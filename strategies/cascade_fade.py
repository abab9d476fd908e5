"""Liquidation-cascade fade: buy after a spike of long liquidations exhausts, with a hard stop.

At each bar close the strategy reads the long-liquidation notional of the bar
(``liq_long_notional``; bars without that column use a stated proxy, the quote volume of down
bars, ``volume x close`` when ``close < open``, else 0):

1. **Spike.** Flat and not armed: a bar whose value exceeds ``spike`` x the mean of the
   previous ``window`` bars (and ``min_notional``) arms the fade and records the peak.
2. **Exhaustion.** Armed: the peak follows new highs; the first bar whose value is at most
   ``exhaust`` x the peak *and* closes up (``close > open``: buyers are back) triggers a long of
   ``leverage`` x equity (or, with ``risk > 0``, the risk-budget size that loses ``risk`` x
   equity at the stop, capped at ``leverage``), filled at the next bar's open. No exhaustion
   within ``window`` bars disarms.
3. **Exits.** When the entry fills, a **hard stop** (stop-market order ``stop`` below the
   fill) is placed; it works from the bar after the fill, intrabar, and a stop above the
   liquidation price gets its chance before the liquidation (the broker checks stops first).
   A close at or above ``take_profit`` over the fill, or ``max_hold`` bars in the trade,
   closes the position at the next open (and cancels the stop).

It reacts to its own fills and stops, so it has no signal form (no ``target_exposure``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import backtrader as bt

from strategies.base import PerpStrategy


class CascadeFade(PerpStrategy):
    params = (("leverage", 2.0), ("spike", 5.0), ("window", 60), ("min_notional", 0.0), ("exhaust", 0.3),
              ("stop", 0.03), ("take_profit", 0.05), ("max_hold", 240), ("risk", 0.0))
    ranges = {"leverage": (1.0, 100.0, None), "spike": (2.0, 20.0, None), "window": (10, 1440, 1),
              "exhaust": (0.05, 0.9, None), "stop": (0.005, 0.2, None), "take_profit": (0.005, 0.5, None),
              "max_hold": (10, 2880, 1), "risk": (0.0, 0.1, None)}
    limits = {"leverage": (0.0, False, None, False), "spike": (0.0, False, None, False), "window": (1, True, None, False),
              "min_notional": (0.0, True, None, False), "exhaust": (0.0, False, 1.0, True),
              "stop": (0.0, False, 1.0, False), "take_profit": (0.0, False, None, False),
              "max_hold": (1, True, None, False), "risk": (0.0, True, 1.0, False)}

    def start(self) -> None:
        super().start()
        frame = getattr(self.data, "frame", None)
        self.uses_proxy = frame is None or "liq_long_notional" not in frame.columns
        self._hist: deque[float] = deque(maxlen=int(self.p.window))
        self._armed = False
        self._peak = 0.0
        self._armed_bars = 0
        self._entry: Any = None
        self._exits: list[Any] = []
        self._closing: Any = None
        self._held = 0
        self._fill = float("nan")
        self.signals: list[dict[str, Any]] = []  # what happened when (for reports and tests)

    def _pressure(self) -> float:
        d = self.data
        if not self.uses_proxy:
            x = d.liq_long_notional[0]
            return x if x == x else 0.0
        return d.volume[0] * d.close[0] if d.close[0] < d.open[0] else 0.0

    def _log(self, what: str, **info: Any) -> None:
        self.signals.append({"time": self.data.datetime.datetime(0), "event": what, **info})

    def next(self) -> None:
        d = self.data
        x = self._pressure()
        position = self.getposition(d).size
        if position:
            self._held += 1
            if self._closing is None:
                if d.close[0] >= self._fill * (1.0 + float(self.p.take_profit)):
                    self._log("take_profit", price=d.close[0])
                elif self._held >= int(self.p.max_hold):
                    self._log("max_hold", price=d.close[0])
                else:
                    return self._hist.append(x)
                self._exits = self.cancel_alive(self._exits)
                self._closing = self.target_qty(d, 0.0)
        elif self._entry is None:
            if self._armed:
                self._peak = max(self._peak, x)
                self._armed_bars += 1
                if x <= float(self.p.exhaust) * self._peak and d.close[0] > d.open[0]:
                    self._armed = False
                    self._log("exhausted", pressure=x, peak=self._peak)
                    self._enter()
                elif self._armed_bars > int(self.p.window):
                    self._armed = False
                    self._log("disarmed")
            elif len(self._hist) == self._hist.maxlen:
                mean = sum(self._hist) / len(self._hist)
                if x > 0.0 and x > float(self.p.spike) * mean and x >= float(self.p.min_notional):
                    self._armed, self._peak, self._armed_bars = True, x, 0
                    self._log("spike", pressure=x, mean=mean)
        self._hist.append(x)

    def _enter(self) -> None:
        d = self.data
        if float(self.p.risk) > 0:
            self.broker.set_leverage(d, float(self.p.leverage))
            self._entry = self.target_risk(d, float(self.p.risk), d.close[0] * (1.0 - float(self.p.stop)))
        else:
            self._entry = self.target_leverage(d, float(self.p.leverage))

    def notify_order(self, order: Any) -> None:
        if order.status in (order.Submitted, order.Accepted):
            return
        # backtrader notifies a clone of the order: match by ref
        if self._entry is not None and order.ref == self._entry.ref:
            self._entry = None
            if order.status == order.Completed:
                fill, size = order.executed.price, abs(order.executed.size)
                self._held = 0
                stop = self.sell(data=self.data, size=size, exectype=bt.Order.Stop,
                                 price=fill * (1.0 - float(self.p.stop)))
                self._fill = fill
                self._exits = [stop]
                self._log("entry", price=fill)
        elif self._closing is not None and order.ref == self._closing.ref:
            self._closing = None
        elif order.ref in [o.ref for o in self._exits] and order.status == order.Completed:
            self._log("stop", price=order.executed.price)
            self._exits = []

    def notify_liquidation(self, event: dict[str, Any]) -> None:
        self._exits, self._entry, self._closing = [], None, None
        self._log("liquidated", price=event["fill_price"])
