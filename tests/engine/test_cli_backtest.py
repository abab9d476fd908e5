"""`deleverage backtest` end to end: real files in, run directory out, summary as JSON."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from reports.results import RunResult


def test_backtest_real_312_files_json(shared_data, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["backtest", "--data", str(shared_data / "bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv"),
                 "--funding", str(shared_data / "bitmex_xbtusd_funding_2020-02-15_2020-04-15.csv"),
                 "--start", "2020-03-12", "--end", "2020-03-16", "--leverage", "25",
                 "--out", str(out), "--json", "--no-report"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["liquidated"] is True
    assert summary["first_liquidation_time"] == "2020-03-12T02:11:00+00:00"
    assert summary["first_liquidation_price"] == pytest.approx(7_939 / 1.04, rel=1e-12)
    result = RunResult.load(out)
    assert result.config["venue"] == "bitmex" and result.config["settle_currency"] == "BTC"
    assert result.config["funding_source"] == "feed" and result.config["trigger"] == "last"
    assert len(result.equity) == 4 * 1440
    assert (out / "bars.parquet").exists()


def test_backtest_errors_are_clear(tmp_path, capsys) -> None:
    assert main(["backtest", "--data", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err
    assert main(["backtest", "--scenario", "312", "--strategy", "nope"]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err
