"""Engine speed on the same work: a plain SMA(50)/SMA(200) crossover over a year of seeded 1-minute bars.

    .venv/bin/python benchmarks/bench_engines.py            # 525,600 bars, several minutes
    .venv/bin/python benchmarks/bench_engines.py --bars 100000 --skip-slow

Measured, in one process on the same bars:

- stock backtrader: ``bt.feeds.PandasData``, plain commission scheme, ``stdstats=False``, long/flat
  on ``CrossOver(SMA50, SMA200)``;
- our backtrader path: ``engine.runner.run_backtest`` with ``strategies.SmaCrossover`` (long/flat,
  1x, no funding, no analyzers): PerpBroker, array feed, risk bookkeeping;
- our fast path, SMA crossover: the strategy's signal (``SmaCrossover.target_exposure``) plus the
  compiled pass (``engine.fast.simulate_arrays`` on arrays prepared once), the same long/flat 1x work;
  also ``engine.fast.run_fast`` end to end (the full RunResult with its DataFrames);
- our fast path with the full risk model: the compiled pass alone on bars with a mark OHLC that
  differs from the last price and a funding column (settlements every 8 h), long/short on
  Binance USD-M: tiered margin, funding, mark-price intrabar liquidation, taker fees, clearance
  fee, isolated margin (5x long/short from 1M USDT, so a position is open nearly every bar; one deep
  wick near the end liquidates it);
- vectorbt (``MA.run``, crossings in numpy, ``Portfolio.from_signals``, final value): first call in
  the process (cold: its numba compilation or cache load) and later calls (warm);
- backtesting.py (``Backtest.run`` with the classic ``SmaCross``).

Compiled paths are timed after a warm-up call (compile time is printed separately); the rest
once (``--repeat`` for more). Prints bars per second and ratios.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAST, SLOW = 50, 200


def make_bars(n: int, seed: int = 7) -> pd.DataFrame:
    """Seeded 1-minute OHLCV (GBM, 0.07 % per minute) from 2023-01-01, plus mark OHLC and funding
    columns used only by the full-risk-model run."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2023-01-01", periods=n, freq="1min", tz="UTC", name="open_time")
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0007, n)))
    open_ = np.r_[30_000.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0003, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0003, n)))
    wick = rng.random(n) < 0.0005
    low = np.where(wick, low * (1 - rng.uniform(0.02, 0.1, n)), low)
    frame = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                          "volume": rng.uniform(1, 50, n)}, index=index)
    return frame


def with_risk_columns(bars: pd.DataFrame, seed: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(bars)
    frame = bars.copy()
    m_close = frame["close"].to_numpy() * (1 + rng.normal(0, 0.0003, n))
    m_open = np.r_[m_close[0], m_close[:-1]]
    frame["mark_open"] = m_open
    frame["mark_high"] = np.maximum(m_open, m_close) * (1 + np.abs(rng.normal(0, 0.0003, n)))
    frame["mark_low"] = np.minimum(m_open, m_close) * (1 - np.abs(rng.normal(0, 0.0003, n)))
    frame["mark_close"] = m_close
    # one deep wick (-30 % on mark and last) near the end: the position is liquidated there (an
    # all-in position's liquidation leaves only the free balance, so earlier it would end the year)
    deep = n - n // 50
    for col in ("low", "mark_low"):
        values = frame[col].to_numpy().copy()
        values[deep] *= 0.70
        frame[col] = values
    idx = frame.index
    at = (idx.minute == 0) & np.isin(idx.hour, (0, 8, 16))
    frame["funding_rate"] = np.where(at, rng.normal(1e-4, 2e-4, n), np.nan)
    return frame


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


# --- engines ---------------------------------------------------------------------------------

def stock_backtrader(bars: pd.DataFrame) -> tuple[float, int]:
    import backtrader as bt

    class StockSma(bt.Strategy):
        params = (("fast", FAST), ("slow", SLOW))

        def __init__(self) -> None:
            self.cross = bt.indicators.CrossOver(bt.indicators.SMA(self.data.close, period=self.p.fast),
                                                 bt.indicators.SMA(self.data.close, period=self.p.slow))
            self.trades = 0

        def next(self) -> None:
            if self.cross[0] > 0 and not self.position:
                self.buy(size=self.broker.getvalue() / self.data.close[0] * 0.99)
                self.trades += 1
            elif self.cross[0] < 0 and self.position:
                self.close()

    cerebro = bt.Cerebro(stdstats=False)
    frame = bars[["open", "high", "low", "close", "volume"]].copy()
    frame.index = frame.index.tz_localize(None)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.broker.setcash(10_000.0)
    cerebro.addstrategy(StockSma)
    strat = cerebro.run()[0]
    return cerebro.broker.getvalue(), strat.trades


def our_backtrader(bars: pd.DataFrame) -> tuple[float, int]:
    from engine.runner import RunConfig, run_backtest
    from strategies import SmaCrossover

    config = RunConfig(strategy="sma_crossover", params={"fast": FAST, "slow": SLOW, "short": False, "leverage": 1.0},
                       cash=10_000.0, allow_no_funding=True, analyzers=False)
    result = run_backtest(bars, SmaCrossover, config)
    return result.summary["final_equity"], int((result.fills["side"] == "buy").sum())


def vectorbt_run(bars: pd.DataFrame) -> tuple[float, int]:
    import vectorbt as vbt

    close = bars["close"].copy()
    close.index = close.index.tz_localize(None)  # a tz-aware index costs vectorbt 0.2 s per array check
    fast = vbt.MA.run(close, FAST).ma.to_numpy()
    slow = vbt.MA.run(close, SLOW).ma.to_numpy()
    # crossings with numpy: vectorbt's own ma_crossed_above/below take ~1.4 s per 100k bars
    # even warm under pandas 3, 15x its from_signals
    above = np.nan_to_num(fast - slow, nan=0.0) > 0
    prev = np.r_[False, above[:-1]]
    valid = ~np.isnan(slow) & ~np.isnan(np.r_[np.nan, slow[:-1]])
    entries = pd.Series(above & ~prev & valid, index=close.index)
    exits = pd.Series(~above & prev & valid, index=close.index)
    pf = vbt.Portfolio.from_signals(close, entries, exits, init_cash=10_000.0, freq="1min")
    return float(pf.final_value()), int(pf.trades.count())


def backtesting_run(bars: pd.DataFrame) -> tuple[float, int]:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    def sma(values: Any, n: int) -> Any:
        return pd.Series(values).rolling(n).mean()

    class SmaCross(Strategy):
        def init(self) -> None:
            self.sma1 = self.I(sma, self.data.Close, FAST)
            self.sma2 = self.I(sma, self.data.Close, SLOW)

        def next(self) -> None:
            if crossover(self.sma1, self.sma2):
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()

    frame = bars[["open", "high", "low", "close", "volume"]].copy()
    frame.columns = ["Open", "High", "Low", "Close", "Volume"]
    frame.index = frame.index.tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(frame, SmaCross, cash=1e7, commission=0.0).run()
    return float(stats["Equity Final [$]"]), int(stats["# Trades"])


# --- the run ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bars", type=int, default=525_600, help="number of 1-minute bars (default: a year)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each slow engine (median)")
    ap.add_argument("--skip-slow", action="store_true", help="skip both backtrader runs")
    args = ap.parse_args(argv)

    import numba

    from engine import fast
    from engine.runner import RunConfig
    from strategies import SmaCrossover

    n = args.bars
    bars = make_bars(n)
    risky = with_risk_columns(bars)
    print(f"{n:,} seeded 1-minute bars, SMA({FAST})/SMA({SLOW}) crossover; numpy {np.__version__}, "
          f"pandas {pd.__version__}, numba {numba.__version__}")
    rows: list[tuple[str, float | None, str]] = []

    def record(name: str, seconds: float | None, note: str = "") -> None:
        rows.append((name, seconds, note))
        rate = f"{n / seconds:>14,.0f} bars/s" if seconds else f"{'-':>14} bars/s"
        print(f"  {name:<52} {seconds if seconds is not None else math.nan:>9.3f} s {rate}  {note}", flush=True)

    # fast path: compile (or load the numba cache) first
    plain_cfg = RunConfig(strategy="sma_crossover", params={"fast": FAST, "slow": SLOW, "short": False,
                                                            "leverage": 1.0}, cash=10_000.0, allow_no_funding=True)
    t0 = time.perf_counter()
    prepared = fast.prepare(bars, plain_cfg)
    fast.simulate_arrays(prepared, np.zeros(n))
    print(f"  fast engine first call (compile or cache load + prepare): {time.perf_counter() - t0:.2f} s")

    def fast_sma() -> dict[str, Any]:
        target = SmaCrossover.target_exposure(bars, fast=FAST, slow=SLOW, short=False, leverage=1.0)
        return fast.simulate_arrays(prepared, target)

    sec, res = timed(fast_sma, 5)
    record("fast path, SMA crossover (signal + compiled pass)", sec,
           f"final {res['final_equity']:,.2f}, {res['fills']} fills")
    sec_fast_sma = sec
    sec, res = timed(lambda: fast.run_fast(bars, SmaCrossover, plain_cfg), 3)
    record("fast path, SMA crossover, run_fast (full RunResult)", sec,
           f"final {res.summary['final_equity']:,.2f}")

    # 5x long/short from 1M USDT: a position is open (almost) every bar all year
    risk_cfg = RunConfig(strategy="sma_crossover", params={"fast": FAST, "slow": SLOW, "short": True, "leverage": 5.0},
                         venue="binance_usdm", margin_mode="isolated", cash=1_000_000.0)
    rprep = fast.prepare(risky, risk_cfg)
    rtarget = SmaCrossover.target_exposure(risky, **risk_cfg.params)
    fast.simulate_arrays(rprep, rtarget)
    sec, res = timed(lambda: fast.simulate_arrays(rprep, rtarget), 20)
    full = fast.run_fast(risky, rtarget, risk_cfg)
    open_share = float(np.mean(full.equity["position_qty"].to_numpy() != 0))
    record("fast path, full risk model (compiled pass, 5x, mark, funding)", sec,
           f"position open {open_share:.1%} of bars, {res['fills']} fills, {res['liquidations']} liquidations, "
           f"{len(full.funding)} funding settlements, final {res['final_equity']:,.0f}")
    sec_full = sec

    # vectorbt, cold then warm
    sec_vbt = None
    try:
        sec, res = timed(lambda: vectorbt_run(bars))
        record("vectorbt, first call (cold)", sec, f"final {res[0]:,.2f}, {res[1]} trades")
        sec, res = timed(lambda: vectorbt_run(bars), 3)
        record("vectorbt, warm", sec, f"final {res[0]:,.2f}, {res[1]} trades")
        sec_vbt = sec
    except Exception as exc:  # noqa: BLE001 - report and go on
        record("vectorbt", None, f"FAILED: {type(exc).__name__}: {exc}"[:160])

    sec_bts = None
    try:
        sec, res = timed(lambda: backtesting_run(bars), args.repeat)
        record("backtesting.py", sec, f"final {res[0]:,.2f}, {res[1]} trades")
        sec_bts = sec
    except Exception as exc:  # noqa: BLE001
        record("backtesting.py", None, f"FAILED: {type(exc).__name__}: {exc}"[:160])

    sec_stock = sec_ours = None
    if not args.skip_slow:
        sec, res = timed(lambda: stock_backtrader(bars), args.repeat)
        record("stock backtrader (PandasData, plain commission)", sec, f"final {res[0]:,.2f}, {res[1]} entries")
        sec_stock = sec
        sec, res = timed(lambda: our_backtrader(bars), args.repeat)
        record("our backtrader path (run_backtest, SmaCrossover)", sec, f"final {res[0]:,.2f}, {res[1]} entries")
        sec_ours = sec

    print("\nratios")
    if sec_bts:
        print(f"  fast full risk model vs backtesting.py:     {sec_bts / sec_full:,.0f}x faster (target >= 100x)")
        print(f"  fast SMA crossover vs backtesting.py:       {sec_bts / sec_fast_sma:,.0f}x faster")
    if sec_vbt:
        print(f"  fast full risk model vs vectorbt warm:      {sec_vbt / sec_full:,.1f}x faster")
    if sec_stock:
        print(f"  fast full risk model vs stock backtrader:   {sec_stock / sec_full:,.0f}x faster")
        print(f"  fast SMA crossover vs stock backtrader:     {sec_stock / sec_fast_sma:,.0f}x faster")
    if sec_stock and sec_ours:
        print(f"  our backtrader path / stock backtrader:     {sec_ours / sec_stock:.2f}x wall time (target <= 1.2x)")
    print(f"  fast full risk model: {n / sec_full / 1e6:,.1f} M bars/s on one core (target >= 20 M)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
