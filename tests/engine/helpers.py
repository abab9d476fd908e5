"""Hand-made candles and a scripted strategy for broker scenario tests."""

from __future__ import annotations

from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from engine.broker import PerpBroker
from engine.bt_data import PerpData

START = pd.Timestamp("2021-01-01 00:00", tz="UTC")


def bars(rows: list[tuple[float, float, float, float]], *, mark: list[tuple[float, float, float, float]] | None = None,
         funding: dict[int, float] | None = None, start: pd.Timestamp = START, freq: str = "1min") -> pd.DataFrame:
    """A canonical bar frame from (open, high, low, close) rows; optional mark OHLC rows and
    ``{bar index: funding rate settled in that bar}``."""
    index = pd.date_range(start, periods=len(rows), freq=freq, tz="UTC", name="open_time")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    frame["volume"] = 1.0
    if mark is not None:
        frame[["mark_open", "mark_high", "mark_low", "mark_close"]] = np.asarray(mark, dtype=float)
    if funding is not None:
        rate = np.full(len(rows), np.nan)
        for i, r in funding.items():
            rate[i] = r
        frame["funding_rate"] = rate
    return frame


class Script(bt.Strategy):
    """Sets target quantities at the open of given bars: ``plan = {data_index: {bar: qty}}``;
    records notifications."""

    params = (("plan", None), ("leverage", None))

    def start(self) -> None:
        self.broker.add_listener(self)
        self.orders: list[Any] = []
        self.liquidations: list[dict] = []
        self.fundings: list[dict] = []
        self.adls: list[dict] = []
        self.bar = -1

    def prenext_open(self) -> None:
        self.next_open()

    def next_open(self) -> None:
        self.bar += 1
        for i, plan in (self.p.plan or {}).items():
            if self.bar in plan:
                data = self.datas[i]
                delta = plan[self.bar] - self.getposition(data).size
                if delta > 0:
                    self.buy(data=data, size=delta)
                elif delta < 0:
                    self.sell(data=data, size=-delta)

    def notify_order(self, order: Any) -> None:
        if order.status in (order.Completed, order.Margin, order.Canceled):
            self.orders.append((order.getstatusname(), bool(order.info.get("liquidation")),
                                order.executed.price, order.info.get("rejection")))

    def notify_liquidation(self, event: dict) -> None:
        self.liquidations.append(event)

    def notify_funding(self, event: dict) -> None:
        self.fundings.append(event)

    def notify_adl(self, event: dict) -> None:
        self.adls.append(event)


def run(frames: list[pd.DataFrame], plan: dict[int, dict[int, float]], *, cash: float = 10_000.0,
        venue: str = "binance_usdm", symbols: list[str | None] | None = None, leverage: float = 20.0,
        margin_mode: str = "isolated", funding_rate: float | None = None,
        allow_no_funding: bool = True, **broker_params: Any) -> tuple[PerpBroker, Script]:
    """Run ``Script`` over ``frames`` (one feed each) and return the broker and the strategy."""
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    broker = PerpBroker(venue=venue, leverage=leverage, margin_mode=margin_mode, funding_rate=funding_rate,
                        allow_no_funding=allow_no_funding, **broker_params)
    broker.set_cash(cash)
    broker.set_coo(True)
    cerebro.setbroker(broker)
    for i, frame in enumerate(frames):
        data = PerpData.from_frame(frame, name=f"d{i}")
        cerebro.adddata(data)
        symbol = symbols[i] if symbols else None
        broker.attach(data, symbol=symbol)
    cerebro.addstrategy(Script, plan=plan)
    strategies = cerebro.run()
    return broker, strategies[0]
