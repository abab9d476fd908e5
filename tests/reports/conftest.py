"""Fixtures for the report tests: run, stress and optimization directories built in the
stored formats (synthetic), and run, stress and optimization directories written by the real
engine, stress and optimizer (for the browser test)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# pytest runs in importlib mode: make report_helpers.py (beside this file) importable
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reports.synthetic import write_synthetic_optimization, write_synthetic_run, write_synthetic_stress


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("run") / "run", n_bars=3000)


@pytest.fixture(scope="session")
def stress_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_stress(tmp_path_factory.mktemp("stress") / "stress", scenarios=("312", "519", "ftx"),
                                  leverages=(2, 5, 10, 20), n_bars=400)


@pytest.fixture(scope="session")
def opt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_optimization(tmp_path_factory.mktemp("opt") / "opt", folds=2)


@pytest.fixture(scope="session")
def real_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory written by the real engine: leveraged buy-and-hold over synthetic bars
    whose one-bar wick liquidates it."""
    from engine.runner import RunConfig, run_backtest, save_run
    from reports.synthetic import synthetic_bars
    from strategies.buy_and_hold import BuyAndHold

    bars = synthetic_bars(2000, wick_at=0.6, wick_depth=0.2)
    config = RunConfig(strategy="buy_and_hold", params={"leverage": 10.0}, venue="binance_usdm", symbol="BTCUSDT",
                       leverage=10.0, cash=10_000.0, funding_rate=0.0001)
    result = run_backtest(bars, BuyAndHold, config, data_info={"kind": "simulated", "sources": ["reports.synthetic"],
                                                               "label": "synthetic bars with a wick"})
    return save_run(result, tmp_path_factory.mktemp("real") / "run", bars)


@pytest.fixture(scope="session")
def real_stress_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``deleverage stress`` over two built-in scenarios at two leverages (real command)."""
    from engine.cli import main

    out = tmp_path_factory.mktemp("real-stress") / "stress"
    assert main(["stress", "buy_and_hold", "--scenarios", "312,519", "--leverage", "2,10", "--workers", "1",
                 "--out", str(out), "--no-report", "--json"]) == 0
    return out


@pytest.fixture(scope="session")
def real_opt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``deleverage optimize`` of the SMA crossover on seeded bars, walk-forward 1 (real command)."""
    from engine.cli import main

    out = tmp_path_factory.mktemp("real-opt") / "opt"
    assert main(["optimize", "sma_crossover", "--param", "fast=5:15:5", "--param", "slow=30:50:10",
                 "--data", "synthetic:20000:7", "--walk-forward", "1", "--funding-rate", "0.0001",
                 "--workers", "1", "--no-progress", "--no-report", "--out", str(out)]) == 0
    return out
