"""Runs that never hold a position say so (NO TRADE), and a signal strategy reading funding sees the
constant rate the run settles (both engines)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.cli import main
from engine.fast import run_fast
from engine.runner import RunConfig, run_backtest
from strategies import FundingCarry
from tests.engine.helpers import bars
from tests.engine.test_cli_backtest_options import write_bars


@pytest.mark.parametrize("extra", [["--param", "entry_time=2030-01-01"], ["--leverage", "0.0001"],
                                   ["--cash", "0.000001"]])
def test_a_run_that_never_trades_says_no_trade(tmp_path, capsys, extra) -> None:
    data = write_bars(tmp_path / "b.csv")
    args = ["backtest", "--data", str(data), "--no-funding", *extra, "--no-report", "--out", str(tmp_path / "o")]
    assert main(args) == 0
    assert "NO TRADE: the strategy placed no order that filled" in capsys.readouterr().out
    assert main([*args, "--json", "--overwrite"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["no_trade"] is True and s["fills"] == 0 and s["refused"] is False


def test_a_run_that_trades_has_no_no_trade_line(tmp_path, capsys) -> None:
    data = write_bars(tmp_path / "b.csv")
    assert main(["backtest", "--data", str(data), "--no-funding", "--no-report", "--out", str(tmp_path / "o")]) == 0
    assert "NO TRADE" not in capsys.readouterr().out


def test_funding_carry_sees_the_constant_rate_on_both_engines() -> None:
    # 24 hourly bars at a flat 20,000 from 00:00; constant rate 0.001 settled at 00, 08 and 16 UTC
    frame = bars([(20_000.0, 20_000.0, 20_000.0, 20_000.0)] * 24, freq="1h")
    config = RunConfig(strategy="funding_carry", params={"leverage": 1.0, "entry_rate": 0.0005, "exit_rate": 0.0},
                       funding_rate=0.001, cash=10_000.0)
    slow = run_backtest(frame, FundingCarry, config)
    fast = run_fast(frame, FundingCarry, config)
    for result in (slow, fast):
        # the 00:00 rate is seen at that bar's close: the short fills at 01:00's open, 20,000
        fills = result.fills
        assert len(fills) == 1 and fills["time"].iloc[0].hour == 1 and fills["side"].iloc[0] == "sell"
        qty = abs(fills["qty"].iloc[0])
        assert qty == pytest.approx(0.499, abs=1e-12)  # 10,000 / 1.0004 x 0.999999 / 20,000 -> lot 0.001
        # the short receives 0.001 x 0.499 x 20,000 = 9.98 at 08:00 and 16:00
        assert list(result.funding["amount"]) == pytest.approx([9.98, 9.98], rel=1e-12)
    assert np.isclose(slow.summary["final_equity"], fast.summary["final_equity"], rtol=1e-12)
