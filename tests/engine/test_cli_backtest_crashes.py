"""Inputs that used to crash `deleverage backtest` are one clear line: an absurd leverage is a
refused order, strategy parameters outside their limits are refused by the strategy's own
declaration, and an exception in the user's own strategy code is named as theirs."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.runner import RunConfig, UserStrategyError, run_backtest
from engine.strategy_ref import type_params
from strategies import CascadeFade, DcaGrid
from tests.engine.helpers import bars
from tests.engine.test_cli_backtest_options import write_bars


def test_leverage_near_the_float_limit_is_a_refused_order(tmp_path, capsys) -> None:
    data = write_bars(tmp_path / "b.csv")
    code = main(["backtest", "--data", str(data), "--no-funding", "--leverage", "1e308", "--json", "--no-report",
                 "--out", str(tmp_path / "o")])
    assert code == 0
    s = json.loads(capsys.readouterr().out)
    assert s["refused"] is True and s["fills"] == 0 and s["final_equity"] == 10_000.0
    assert "exceeds the venue maximum" in next(iter(s["orders_refused"]))


@pytest.mark.parametrize("cls, name, value", [
    (CascadeFade, "window", "0"), (CascadeFade, "stop", "-1"), (CascadeFade, "stop", "1"),
    (CascadeFade, "max_hold", "0"), (CascadeFade, "spike", "0"),
    (DcaGrid, "levels", "0"), (DcaGrid, "step", "0"), (DcaGrid, "step", "-0.02"), (DcaGrid, "take_profit", "0"),
])
def test_parameters_outside_their_limits_are_refused(cls, name, value) -> None:
    with pytest.raises(Exception) as info:
        type_params(cls, {name: value}, "--param")
    assert f"--param {name}=" in str(info.value) and f"{cls.__name__}.{name} must be" in str(info.value)
    # the same check at the start of a run (the Python API, optimizer sets)
    frame = bars([(100.0, 101.0, 99.0, 100.0)] * 5, freq="1h")
    typed = type_params(cls, {}, "--param")
    typed[name] = float(value) if "." in value or name in ("stop", "step", "spike", "take_profit") else int(value)
    with pytest.raises(Exception, match=f"{cls.__name__}.{name} must be"):
        run_backtest(frame, cls, RunConfig(strategy="x", params=typed, allow_no_funding=True))


def test_parameters_inside_their_limits_pass() -> None:
    assert type_params(DcaGrid, {"levels": "1", "step": "0.5"}) == {"levels": 1, "step": 0.5}
    assert type_params(CascadeFade, {"window": "1", "stop": "0.99", "risk": "0"}) == \
        {"window": 1, "stop": 0.99, "risk": 0.0}


def test_user_strategy_exception_is_the_users_error(tmp_path, capsys) -> None:
    strat = tmp_path / "boom.py"
    strat.write_text("import backtrader as bt\n\nclass Boom(bt.Strategy):\n    def next(self):\n"
                     "        if len(self) == 3:\n            raise ValueError('kaboom')\n")
    data = write_bars(tmp_path / "b.csv")
    code = main(["backtest", "--data", str(data), "--no-funding", "--strategy", f"{strat}:Boom", "--no-report",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"strategy Boom ({strat}, line 6, in next) raised ValueError: kaboom at bar 2021-01-01 02:00 UTC" in err
    assert "error in the strategy's own code, not in deleverage" in err
    assert "internal error" not in err and "bug" not in err


def test_an_exception_in_any_strategy_outside_deleverage_is_a_user_error() -> None:
    frame = bars([(100.0, 101.0, 99.0, 100.0)] * 5, freq="1h")
    with pytest.raises(UserStrategyError):
        run_backtest(frame, _raising(), RunConfig(strategy="x", allow_no_funding=True))


def _raising():
    import backtrader as bt

    class Raiser(bt.Strategy):  # defined in a test file: user code
        def next(self):
            return 1 / 0

    return Raiser
