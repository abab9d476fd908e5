"""Cost of the perpetual broker against stock backtrader on the same strategy and bars.

    .venv/bin/python benchmarks/bench_broker.py [--bars 200000] [--repeat 3]

Runs an SMA(50)/SMA(200) long/flat crossover on seeded 1-minute bars three ways, with
stdstats off and no analyzers in all three:

1. stock: ``bt.feeds.PandasData`` + stock ``BackBroker`` (0.04 % commission);
2. stock broker on our array feed: ``engine.bt_data.PerpData`` + ``BackBroker``;
3. ours: ``PerpData`` + ``engine.broker.PerpBroker`` (Binance USDT-M, isolated 5x, funding
   settled every 8 h, liquidation checked every bar, every event recorded).

Prints the median wall time of each and the ratio ours / stock (target: at most 1.2).
"""

from __future__ import annotations

import argparse
import statistics
import time

import backtrader as bt
import numpy as np
import pandas as pd

from engine.broker import PerpBroker
from engine.bt_data import PerpData


def seeded_bars(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    opn = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 0.0006, n)) * close
    index = pd.date_range("2021-01-01", periods=n, freq="1min", tz="UTC", name="open_time")
    return pd.DataFrame({"open": opn, "high": np.maximum(opn, close) + spread,
                         "low": np.minimum(opn, close) - spread, "close": close, "volume": 1.0}, index=index)


class SmaCross(bt.Strategy):
    params = (("fast", 50), ("slow", 200), ("size", 1.0))

    def __init__(self) -> None:
        self.cross = bt.indicators.CrossOver(bt.indicators.SMA(period=self.p.fast),
                                             bt.indicators.SMA(period=self.p.slow))

    def next(self) -> None:
        if self.cross[0] > 0 and not self.position:
            self.buy(size=self.p.size)
        elif self.cross[0] < 0 and self.position:
            self.close()


def run(kind: str, frame: pd.DataFrame) -> tuple[float, float, int]:
    cerebro = bt.Cerebro(stdstats=False)
    if kind == "stock":
        cerebro.adddata(bt.feeds.PandasData(dataname=frame.tz_convert(None)))
        cerebro.broker.setcommission(commission=0.0004)
        cerebro.broker.set_cash(100_000.0)
    else:
        data = PerpData.from_frame(frame)
        cerebro.adddata(data)
        if kind == "ours":
            broker = PerpBroker(venue="binance_usdm", leverage=5, funding_rate=0.0001)
            cerebro.setbroker(broker)
            broker.attach(data)
        else:
            cerebro.broker.setcommission(commission=0.0004)
        cerebro.broker.set_cash(100_000.0)
    cerebro.addstrategy(SmaCross)
    t0 = time.perf_counter()
    strat = cerebro.run()[0]
    elapsed = time.perf_counter() - t0
    trades = len([o for o in strat.broker.orders if o.status == bt.Order.Completed])
    return elapsed, strat.broker.getvalue(), trades


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frame = seeded_bars(args.bars)
    results = {}
    for kind in ("stock", "stock-broker+array-feed", "ours"):
        times = []
        for _ in range(args.repeat):
            elapsed, value, fills = run(kind, frame)
            times.append(elapsed)
        results[kind] = statistics.median(times)
        print(f"{kind:26s} {results[kind]:7.2f} s  {args.bars / results[kind]:9,.0f} bars/s  fills {fills}  final value {value:,.2f}")
    print(f"ours / stock wall time: {results['ours'] / results['stock']:.2f}  (target <= 1.2)")
    print(f"ours / stock broker on the same array feed: {results['ours'] / results['stock-broker+array-feed']:.2f}")


if __name__ == "__main__":
    main()
