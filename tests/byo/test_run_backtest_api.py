"""From Python: ``run_backtest`` with extra analyzers, a sizer and several feeds; the plain
``bt.Cerebro()`` + ``PerpBroker`` + ``PerpData`` recipe of examples/plain_cerebro.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import backtrader as bt
import pytest

from engine.runner import RunConfig, run_backtest
from engine.sizers import LeveragedPercent
from tests.engine.helpers import bars

ROOT = Path(__file__).resolve().parents[2]


class BuyEth(bt.Strategy):
    def next(self):
        if len(self) == 1:
            self.buy(data=self.data1)


def test_run_backtest_takes_analyzers_a_sizer_and_more_feeds() -> None:
    # ETH feed at 4x: LeveragedPercent(50) sizes 50 % of the 10,000 balance x 4 / (1 + 4 x 0.04 %)
    # = 19,968.05 USDT of notional at the 2,000 close: 9.984 ETH (floored to the 0.001 lot)
    btc = bars([(60_000.0,) * 4] * 5)
    eth = bars([(2_000.0,) * 4] * 2 + [(2_100.0,) * 4] * 3)
    config = RunConfig(strategy="BuyEth", venue="binance_usdm", leverage=1.0, cash=10_000.0, allow_no_funding=True)
    result = run_backtest(btc, BuyEth, config, analyzers={"sqn": bt.analyzers.SQN,
                                                          "returns": (bt.analyzers.Returns, {"tann": 1})},
                          sizer=(LeveragedPercent, {"percent": 50}),
                          feeds=[(eth, {"symbol": "ETHUSDT", "leverage": 4.0})])
    [fill] = result.fills.itertuples()
    assert (fill.symbol, fill.qty, fill.price) == ("ETHUSDT", pytest.approx(9.984), 2_000.0)
    fee = 9.984 * 2_000 * 0.0004
    # the account equity: the ETH gain marked at 2,100 less the fee
    assert result.summary["final_equity"] == pytest.approx(10_000 + 9.984 * 100 - fee, rel=1e-12)
    assert set(result.summary["analyzers"]) == {"sqn", "returns"}
    assert result.summary["analyzers"]["returns"]["rtot"] == pytest.approx(
        __import__("math").log(result.summary["final_equity"] / 10_000), rel=1e-9)
    assert result.broker.book(result.strategy.data1).leverage == 4.0


def test_the_plain_cerebro_recipe_runs() -> None:
    spec = importlib.util.spec_from_file_location("plain_cerebro_example", ROOT / "examples" / "plain_cerebro.py")
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = module  # backtrader looks strategy classes' modules up
    spec.loader.exec_module(module)
    out = module.main()
    assert out["fills"] > 10 and out["closed_trades"] > 5
    # every fill pays the taker fee; the closed trades' net PnL is the gross less their fees
    assert out["fees"] > 0 and out["net_pnl"] < out["gross_pnl"]
    assert out["gross_pnl"] - out["net_pnl"] == pytest.approx(out["closed_trade_fees"], rel=1e-9)


def test_the_worked_example_file_runs_in_backtest(capsys, tmp_path) -> None:
    from engine.cli import main

    code = main(["backtest", "--scenario", "312", "--strategy", str(ROOT / "examples" / "my_strategy.py") + ":SmaCross",
                 "--leverage", "3", "--no-report", "--out", str(tmp_path / "run")])
    assert code == 0
    assert "SmaCross" in capsys.readouterr().out
