"""The report of a run produced by the real engine (engine.runner)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from report_helpers import array, figures
from reports import metrics as m
from reports.html import render
from reports.run_report import load_run


def test_real_run_report(real_run_dir: Path) -> None:
    result, bars = load_run(real_run_dir)
    assert len(result.liquidations) == 1, "the wick should liquidate the 10x long"
    html = render(real_run_dir).read_text()
    fig = figures(html)["run-chart"]
    by_name = {t.get("name"): t for t in fig["data"]}
    liq_y = array(by_name["liquidation"]["y"])
    assert liq_y[0] == pytest.approx(result.liquidations["fill_price"].iloc[0])
    # the liquidation price is drawn while the position is open, and the wick reaches below it
    drawn = array(by_name["liquidation price"]["y"])
    assert np.nanmax(drawn) == pytest.approx(result.equity["liquidation_price"].max())
    assert array(by_name["bar low (wick)"]["y"]).min() == bars["low"].min() < np.nanmin(drawn)
    metrics = m.compute_metrics(result)
    assert metrics["liquidations"] == 1
    assert metrics["total_return"] == pytest.approx(result.summary["total_return"])
    # measured from the initial cash, so at least the engine's drawdown (measured from bar 1)
    assert 0.9 < metrics["max_drawdown"] and metrics["max_drawdown"] >= result.summary["max_drawdown"] - 1e-12
    assert f"{metrics['total_return'] * 100:.2f} %" in html
    assert "backtrader" in html  # config engine + summary analyzers
