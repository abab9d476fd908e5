"""Liquidation-band break: short the chain analysts describe (a key level breaks -> the long
band below is hit -> forced selling -> lower price), covering at the band's far edge.

Reads the liquidation-map feed lines (``liqmap_long_near_usd``, ``liqmap_long_band_top``,
``liqmap_long_band_bottom``: ESTIMATES from :func:`feeds.cascade.liqmap.map_lines`, e.g.
``deleverage liqmap --data bars.csv --lines bars+map.parquet``). At each bar close:

1. **Key level.** The lowest low of the previous ``lookback`` bars (not counting this bar).
2. **Break with a band in reach.** Flat, the close is below the key level, the nearest dense
   long band's near edge is below the close and within ``reach`` (fraction of the close), and
   the long notional within the map's near window is at least ``min_band_usd``: short
   ``leverage`` x equity at the next open.
3. **Exits**, from the bar after the fill, intrabar: a **limit buy at the band's far edge**
   (the forced selling has been absorbed there: take profit), a **stop-market buy**
   ``stop`` above the key level (the break failed), and a close at the next open after
   ``max_hold`` bars. Whichever fills first cancels the others.

It reacts to its own fills, so it has no signal form.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import backtrader as bt

from risk.errors import DeleverageError
from strategies.base import PerpStrategy

NEEDED = ("liqmap_long_near_usd", "liqmap_long_band_top", "liqmap_long_band_bottom")


class LiqBandBreak(PerpStrategy):
    params = (("leverage", 3.0), ("lookback", 24), ("reach", 0.05), ("min_band_usd", 0.0), ("stop", 0.02),
              ("max_hold", 48))
    ranges = {"leverage": (1.0, 50.0, None), "lookback": (3, 1440, 1), "reach": (0.002, 0.2, None),
              "min_band_usd": (0.0, 1e10, None), "stop": (0.002, 0.2, None), "max_hold": (1, 2880, 1)}

    def start(self) -> None:
        super().start()
        frame = getattr(self.data, "frame", None)
        missing = [c for c in NEEDED if frame is None or c not in frame.columns]
        if missing:
            raise DeleverageError(f"liq_band_break needs the liquidation-map lines {missing}: build them with "
                                  "`deleverage liqmap --data FILE --lines OUT.parquet` and backtest OUT.parquet")
        self._lows: deque[float] = deque(maxlen=int(self.p.lookback))
        self._entry: Any = None
        self._exits: list[Any] = []
        self._closing: Any = None
        self._held = 0
        self._key = math.nan
        self._target = math.nan
        self.signals: list[dict[str, Any]] = []

    def _log(self, what: str, **info: Any) -> None:
        self.signals.append({"time": self.data.datetime.datetime(0), "event": what, **info})

    def next(self) -> None:
        d = self.data
        if self.getposition(d).size:
            self._held += 1
            if self._closing is None and self._held >= int(self.p.max_hold):
                self._log("max_hold", price=d.close[0])
                self._exits = self.cancel_alive(self._exits)
                self._closing = self.target_qty(d, 0.0)
        elif self._entry is None and len(self._lows) == self._lows.maxlen:
            key = min(self._lows)
            top, bottom, near = d.liqmap_long_band_top[0], d.liqmap_long_band_bottom[0], d.liqmap_long_near_usd[0]
            c = d.close[0]
            if (c < key and top == top and bottom == bottom and bottom < top < c
                    and (c - top) / c <= float(self.p.reach) and near >= float(self.p.min_band_usd)):
                self._key, self._target = key, bottom
                self._log("break", price=c, key=key, band_top=top, band_bottom=bottom, near_usd=near)
                self._entry = self.target_leverage(d, float(self.p.leverage), side=-1)
        self._lows.append(d.low[0])

    def notify_order(self, order: Any) -> None:
        if order.status in (order.Submitted, order.Accepted):
            return
        if self._entry is not None and order.ref == self._entry.ref:
            self._entry = None
            if order.status == order.Completed:
                size = abs(order.executed.size)
                self._held = 0
                take = self.buy(data=self.data, size=size, exectype=bt.Order.Limit, price=self._target)
                stop = self.buy(data=self.data, size=size, exectype=bt.Order.Stop,
                                price=self._key * (1.0 + float(self.p.stop)))
                self._exits = [take, stop]
                self._log("entry", price=order.executed.price, target=self._target, stop=stop.created.price)
        elif self._closing is not None and order.ref == self._closing.ref:
            self._closing = None
        elif order.ref in [o.ref for o in self._exits] and order.status == order.Completed:
            kind = "band_far_edge" if order.exectype == bt.Order.Limit else "stop"
            self._log(kind, price=order.executed.price)
            self._exits = self.cancel_alive(self._exits)

    def notify_liquidation(self, event: dict[str, Any]) -> None:
        self._exits, self._entry, self._closing = [], None, None
        self._log("liquidated", price=event["fill_price"])
