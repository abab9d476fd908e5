"""User strategies (issue 11 §1): ``file.py:Class`` and ``module:Class`` in backtest, stress (parallel
cells) and optimize (local pool; the Dask LocalCluster test is in test_user_strategies_dask.py), typed
parameters (issue 12), and a user ``SignalStrategy`` picked up by the fast engine.

The hand-made scenarios and their hand calculation are those of tests/stress/test_stress_grid.py:
an isolated long of 10,000 x L / (1 + L x 0.04 %) / 10,000 BTC opened at 10,000 dies in "wick15"
(wick to 8,500) at 10x only, and in "crash30" (7,000) at 5x and 10x.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.cli import main
from engine.stress import ScenarioInput, StressSpec, run_stress
from engine.strategy_ref import load_strategy, portable_ref, type_params
from risk.errors import DeleverageError

USER_CODE = '''
import backtrader as bt
import numpy as np

from engine.sizers import LeveragedPercent
from strategies.base import SignalStrategy


class HoldLong(bt.Strategy):
    """Plain backtrader: buy once with the leverage-aware sizer and hold."""

    params = (("leverage", 1.0), ("percent", 100.0), ("note", "x"), ("entry_time", ""), ("flag", False))
    ranges = {"leverage": (1.0, 10.0, 3.0)}

    def __init__(self):
        self.setsizer(LeveragedPercent(percent=self.p.percent, leverage=self.p.leverage))

    def next(self):
        if len(self) == 1 and not self.position:
            self.buy()


class UserSignal(SignalStrategy):
    """A user's signal strategy: long ``leverage`` from the first open."""

    params = (("leverage", 1.0),)

    @classmethod
    def target_exposure(cls, bars, **params):
        p = cls.resolve_params(params)
        return np.full(len(bars), float(p["leverage"]))


class NotAStrategy:
    pass
'''


@pytest.fixture(scope="module")
def user_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("user") / "my_strats.py"
    path.write_text(textwrap.dedent(USER_CODE))
    return path


def _bars(low_at: int, low: float, n: int = 8) -> pd.DataFrame:
    close = np.full(n, 10000.0)
    lows = close.copy()
    lows[low_at] = low
    index = pd.date_range("2024-03-01", periods=n, freq="1h", tz="UTC", name="open_time")
    frame = pd.DataFrame({"open": close, "high": close, "low": lows, "close": close, "volume": 1.0,
                          "funding_rate": np.nan}, index=index)
    frame.attrs["kind"] = "simulated"
    return frame


INPUTS = [ScenarioInput("wick15", _bars(3, 8500.0)), ScenarioInput("crash30", _bars(4, 7000.0))]
EXPECTED = {("wick15", 2.0): True, ("wick15", 5.0): True, ("wick15", 10.0): False,
            ("crash30", 2.0): True, ("crash30", 5.0): False, ("crash30", 10.0): False}


def test_references_load_files_and_modules_with_one_line_errors(user_file: Path) -> None:
    cls = load_strategy(f"{user_file}:HoldLong")
    assert cls.__name__ == "HoldLong" and load_strategy(f"{user_file}:HoldLong") is cls  # loaded once
    assert load_strategy("strategies.sma_crossover:SmaCrossover").__name__ == "SmaCrossover"
    assert load_strategy("buy_and_hold").__name__ == "BuyAndHold"
    assert portable_ref("examples/my_strategy.py:SmaCross") == f"{Path('examples/my_strategy.py').resolve()}:SmaCross"
    for ref, message in [(f"{user_file.parent}/nope.py:X", "nope.py not found"),
                         (f"{user_file}:Missing", "has no class 'Missing'; strategies there: HoldLong, UserSignal"),
                         (f"{user_file}:NotAStrategy", "is not a backtrader Strategy subclass"),
                         ("no_such_pkg.mod:X", "no module named 'no_such_pkg'"),
                         ("nope", "unknown strategy 'nope'")]:
        with pytest.raises(DeleverageError, match=message):
            load_strategy(ref)


def test_parameters_are_typed_from_the_class_defaults(user_file: Path) -> None:
    cls = load_strategy(f"{user_file}:HoldLong")
    typed = type_params(cls, {"leverage": "5", "percent": "50", "note": "12", "entry_time": "2024-03-01T02:00Z",
                              "flag": "yes"})
    assert typed == {"leverage": 5.0, "percent": 50.0, "note": "12", "entry_time": "2024-03-01T02:00Z", "flag": True}
    assert isinstance(typed["leverage"], float)
    sma = load_strategy("sma_crossover")
    assert type_params(sma, {"fast": "12", "slow": 48.0}) == {"fast": 12, "slow": 48}
    for params, message in [({"fast": "abc"}, r"--param fast=abc: SmaCrossover.fast expects a whole number"),
                            ({"fast": "1.5"}, "expects a whole number"),
                            ({"fast": True}, "expects a whole number"),
                            ({"leverage": "inf"}, "expects a finite number"),
                            ({"nope": "1"}, "has no parameter.*nope; its parameters are: leverage, fast, slow")]:
        with pytest.raises(DeleverageError, match=message):
            type_params(sma, params)
    with pytest.raises(DeleverageError, match=r"entry_time expects an ISO-8601 UTC time"):
        type_params(load_strategy("buy_and_hold"), {"entry_time": "garbage"})


@pytest.mark.parametrize("argv, message", [
    (["backtest", "--scenario", "312", "--strategy", "sma_crossover", "--param", "fast=abc"],
     "--param fast=abc: SmaCrossover.fast expects a whole number (default 10), got 'abc'"),
    (["backtest", "--scenario", "312", "--strategy", "buy_and_hold", "--param", "entry_time=garbage"],
     "--param entry_time=garbage: BuyAndHold.entry_time expects an ISO-8601 UTC time"),
    (["backtest", "--scenario", "312", "--strategy", "buy_and_hold", "--param", "nope=1"],
     "--param: BuyAndHold has no parameter(s) nope"),
    (["stress", "sma_crossover", "--param", "slow=abc"], "--param slow=abc: SmaCrossover.slow expects a whole number"),
    (["optimize", "sma_crossover", "--data", "synthetic:500:1", "--set", "slow=abc"],
     "--set slow=abc: SmaCrossover.slow expects a whole number (default 30), got 'abc'"),
    (["optimize", "sma_crossover", "--data", "synthetic:500:1", "--set", "nope=3"],
     "--set: SmaCrossover has no parameter(s) nope"),
    (["backtest", "--scenario", "312", "--strategy", "missing_file.py:X"], "file missing_file.py not found"),
])
def test_cli_parameter_and_reference_errors_are_one_line(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert len(captured.err.strip().splitlines()) == 1


def test_toml_params_are_typed_and_named(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('[strategy]\nname = "sma_crossover"\n[params]\nfast = "abc"\n')
    assert main(["stress", "--config", str(cfg)]) == 2
    assert f"{cfg} [params] fast=abc: SmaCrossover.fast expects a whole number" in capsys.readouterr().err


def test_backtest_runs_a_user_file_from_the_cli(user_file: Path, tmp_path: Path, capsys) -> None:
    frame = _bars(3, 8500.0)
    data = tmp_path / "bars.parquet"
    frame.to_parquet(data)
    code = main(["backtest", "--data", str(data), "--strategy", f"{user_file}:HoldLong", "--leverage", "10",
                 "--param", "percent=100", "--no-report", "--json",
                 "--out", str(tmp_path / "run")])
    assert code == 0
    import json

    summary = json.loads(capsys.readouterr().out)
    assert summary["liquidated"] and summary["fills"] == 2  # 10x dies in the 8,500 wick (LP 9,040.2)
    assert summary["first_liquidation_time"].startswith("2024-03-01T03:00")


def test_stress_runs_a_user_file_in_parallel_cells(user_file: Path, tmp_path: Path) -> None:
    spec = StressSpec(strategy=f"{user_file}:HoldLong", scenarios=["wick15", "crash30"], leverages=[2.0, 5.0, 10.0],
                      venue="binance_usdm", workers=2)
    result = run_stress(spec, tmp_path / "plain", inputs=INPUTS, progress=False)
    got = {(r.scenario, r.leverage): bool(r.survived) for r in result.survival.itertuples()}
    assert got == EXPECTED
    assert set(result.survival["engine"]) == {"backtrader"}


def test_a_user_signal_strategy_runs_on_the_fast_engine_like_the_reference(user_file: Path, tmp_path: Path) -> None:
    from engine.fast import select_engine

    cls = load_strategy(f"{user_file}:UserSignal")
    assert select_engine(cls, "auto", {"leverage": 5.0}) == "fast"
    spec = StressSpec(strategy=f"{user_file}:UserSignal", scenarios=["wick15", "crash30"], leverages=[2.0, 5.0, 10.0],
                      venue="binance_usdm", workers=1)
    user = run_stress(spec, tmp_path / "user", inputs=INPUTS, progress=False)
    ref = run_stress(StressSpec(strategy="buy_and_hold", scenarios=["wick15", "crash30"], leverages=[2.0, 5.0, 10.0],
                                venue="binance_usdm", workers=1), tmp_path / "ref", inputs=INPUTS, progress=False)
    assert set(user.survival["engine"]) == {"fast"}
    assert {(r.scenario, r.leverage): bool(r.survived) for r in user.survival.itertuples()} == EXPECTED
    np.testing.assert_array_equal(user.survival["equity_left"].to_numpy(), ref.survival["equity_left"].to_numpy())


def optimize_config(user_file: Path):
    from engine.optimize import OptimizeConfig, ParamRange

    return OptimizeConfig(strategy=f"{user_file}:HoldLong", ranges=(ParamRange("leverage", 1.0, 7.0, 3.0),),
                          data="synthetic:600:3", method="grid", objective="return", walk_forward=1,
                          run={"funding_rate": 0.0001}, engine="backtrader")


def test_optimize_a_user_class_on_the_local_pool(user_file: Path, tmp_path: Path) -> None:
    from engine.optimize import LocalExecutor, optimize

    cfg = optimize_config(user_file)
    pooled = optimize(cfg, tmp_path / "pool", executor=LocalExecutor(2))
    inproc = optimize(cfg, tmp_path / "one", executor=LocalExecutor(1))
    assert len(pooled.trials) == 3
    pd.testing.assert_frame_equal(pooled.trials.drop(columns=[c for c in pooled.trials if "second" in c]),
                                  inproc.trials.drop(columns=[c for c in inproc.trials if "second" in c]))
    assert (pooled.trials["error"].fillna("") == "").all()
    # the synthetic series' 18 % wick (second half) liquidates the 7x long out of sample
    assert list(pooled.trials["liquidated_in"]) == ["", "", "out_of_sample"]
