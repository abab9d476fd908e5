"""The plain backtrader recipe: your own ``bt.Cerebro()`` with the perpetual broker and feed.

Run it::

    .venv/bin/python examples/plain_cerebro.py

It builds two hand-made 1-minute feeds (BTCUSDT and ETHUSDT, Binance USD-M), trades ETH (``data1``)
10x isolated with the leverage-aware sizer, and prints the account, the events and an analyzer.
"""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd

from engine.broker import PerpBroker
from engine.bt_data import PerpData
from engine.sizers import LeveragedPercent


def frame(start_price: float, n: int = 240, seed: int = 1) -> pd.DataFrame:
    """Seeded random-walk bars in the canonical schema (a demonstration, not market data)."""
    rng = np.random.default_rng(seed)
    close = start_price * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    opn = np.r_[start_price, close[:-1]]
    index = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="open_time")
    return pd.DataFrame({"open": opn, "high": np.maximum(opn, close) * 1.001, "low": np.minimum(opn, close) * 0.999,
                         "close": close, "volume": 1.0}, index=index)


class EthMomentum(bt.Strategy):
    params = (("period", 20),)

    def __init__(self):
        self.sma = bt.ind.SMA(self.data1.close, period=self.p.period)
        self.closed = []

    def notify_trade(self, trade):
        if trade.isclosed:
            self.closed.append(trade)

    def next(self):
        if not self.getposition(self.data1) and self.data1.close[0] > self.sma[0]:
            self.buy(data=self.data1)  # sized by LeveragedPercent: 50 % of the balance x 10
        elif self.getposition(self.data1) and self.data1.close[0] < self.sma[0]:
            self.close(data=self.data1)


def main() -> dict:
    cerebro = bt.Cerebro(stdstats=False)
    broker = PerpBroker(venue="binance_usdm", leverage=10, margin_mode="isolated", funding_rate=0.0001)
    broker.set_cash(10_000)
    cerebro.setbroker(broker)
    btc = PerpData.from_frame(frame(60_000.0, seed=1), name="BTCUSDT")
    eth = PerpData.from_frame(frame(2_000.0, seed=2), name="ETHUSDT")
    for data, symbol in ((btc, "BTCUSDT"), (eth, "ETHUSDT")):
        cerebro.adddata(data)
        broker.attach(data, symbol=symbol)  # venue, symbol, leverage, margin_mode per feed
    cerebro.addsizer(LeveragedPercent, percent=50)
    cerebro.addstrategy(EthMomentum)
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    [strategy] = cerebro.run()
    trades = strategy.analyzers.trades.get_analysis()
    out = {"equity": broker.getvalue(), "fills": len(broker.events["fills"]),
           "fees": sum(f["amount"] for f in broker.events["fees"]),
           "funding": sum(f["amount"] for f in broker.events["funding"]),
           "liquidations": len(broker.events["liquidations"]),
           "closed_trades": trades.get("total", {}).get("closed", 0),
           "net_pnl": trades.get("pnl", {}).get("net", {}).get("total", 0.0),
           "gross_pnl": trades.get("pnl", {}).get("gross", {}).get("total", 0.0),
           "closed_trade_fees": sum(t.commission for t in strategy.closed)}
    return out


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key:>13}: {value:,.6g}" if isinstance(value, float) else f"{key:>13}: {value}")
