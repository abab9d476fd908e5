"""A plain backtrader strategy, as a user brings it: no deleverage base class.

Run it (the reconstructed 312 waterfall, 10x isolated on Binance USD-M)::

    deleverage backtest --scenario 312 --strategy examples/my_strategy.py:SmaCross --leverage 10 --no-report
    deleverage stress examples/my_strategy.py:SmaCross --scenarios 312,519 --leverage 1,3,10
    deleverage optimize examples/my_strategy.py:SmaCross --data synthetic:3000:1 --param fast=5:20:5 \\
        --no-funding --no-report

``--leverage`` sets the feed's leverage on the perpetual broker; the strategy could also set it
itself with ``self.broker.set_leverage(self.data, 10)``. Orders are sized by
:class:`engine.sizers.LeveragedPercent`: ``percent`` of the equity times the feed's leverage,
in contracts (USD contracts on inverse instruments such as BitMEX XBTUSD).
"""

import backtrader as bt

from engine.sizers import LeveragedPercent


class SmaCross(bt.Strategy):
    """Long when the fast SMA is above the slow one, flat otherwise; a 5 % protective stop."""

    params = (("fast", 10), ("slow", 30), ("percent", 95.0), ("stop", 0.05))
    ranges = {"fast": (5, 30, 5), "slow": (20, 80, 10)}  # optimize's default search space

    def __init__(self):
        self.setsizer(LeveragedPercent(percent=self.p.percent))
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))
        self.stop_order = None

    def next(self):
        if not self.position and self.cross > 0:
            self.buy()
        elif self.position and self.cross < 0:
            if self.stop_order is not None:
                self.cancel(self.stop_order)
            self.close()

    def notify_order(self, order):
        if order.status == order.Completed and order.isbuy() and self.position.size > 0:
            self.stop_order = self.sell(exectype=bt.Order.Stop, size=self.position.size,
                                        price=order.executed.price * (1 - self.p.stop))
        elif order.status in (order.Completed, order.Canceled) and order is self.stop_order:
            self.stop_order = None
