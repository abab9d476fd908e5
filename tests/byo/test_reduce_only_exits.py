"""A resting exit admitted without margin (it only reduced the position when submitted) is
cancelled, never filled, once its position is gone: filling it would open exposure nobody checked.

Found running ``examples/my_strategy.py`` on the real 312: the strategy cancels its stop and
closes in the bar the stop was submitted (backtrader cannot cancel an order that is still in the
submitted queue), so the stop stayed alive and, hours later, opened a 58,703-contract short.
"""

from __future__ import annotations

import backtrader as bt

from engine.broker import PerpBroker
from engine.bt_data import PerpData
from tests.engine.helpers import bars


class StopThenClose(bt.Strategy):
    """Buys 0.5 BTC at bar 0; when the buy completes, places a sell stop at 19,000; at the next
    bar cancels it (too early: still submitted) and closes at the market."""

    def start(self) -> None:
        self.events: list[tuple[int, str, str, float]] = []
        self.bar = -1
        self.stop_order = None

    def next_open(self) -> None:
        self.bar += 1
        if self.bar == 0:
            self.buy(size=0.5)
        elif self.bar == 1:
            self.cancel(self.stop_order)
            self.close()

    prenext_open = next_open

    def notify_order(self, order) -> None:
        self.events.append((self.bar, order.ordtypename(), order.getstatusname(), order.size))
        if order.status == order.Completed and order.isbuy():
            self.stop_order = self.sell(exectype=bt.Order.Stop, size=0.5, price=19_000.0)


def test_a_stale_reduce_only_stop_is_cancelled_not_filled_as_a_new_short() -> None:
    rows = [(20_000, 20_050, 19_950, 20_000), (20_000, 20_050, 19_950, 20_000),
            (20_000, 20_050, 19_950, 20_000), (19_500, 19_600, 18_500, 18_600), (18_600, 18_700, 18_500, 18_600)]
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    broker = PerpBroker(venue="binance_usdm", leverage=10.0, margin_mode="isolated", allow_no_funding=True)
    broker.set_cash(10_000.0)
    broker.set_coo(True)
    cerebro.setbroker(broker)
    data = PerpData.from_frame(bars(rows), name="d0")
    cerebro.adddata(data)
    broker.attach(data)
    cerebro.addstrategy(StopThenClose)
    strat = cerebro.run()[0]
    # the close fills (reducing: never refused for margin) and the position is flat
    assert ("Sell", "Completed", -0.5) in [(t, s, q) for _, t, s, q in strat.events]
    assert broker.book(data).position.qty == 0.0
    # bar 3 trades through 19,000: the stale stop is cancelled with its reason, not filled
    cancelled = [o for o in broker.orders if o.exectype == bt.Order.Stop]
    assert len(cancelled) == 1 and cancelled[0].status == bt.Order.Canceled
    assert "reduce-only" in cancelled[0].info["rejection"]
    assert [f["side"] for f in broker.events["fills"]] == ["buy", "sell"]
