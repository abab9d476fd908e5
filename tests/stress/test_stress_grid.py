"""The stress grid on hand-made scenarios (Binance USD-M BTCUSDT, isolated, 10,000 USDT).

Hand calculation: an isolated long of q BTC opened at E = 10,000 with leverage L (collateral
q*E/L; q = 10,000 x L / (1 + L x 0.04 %) / E, rounded down to 0.001) is liquidated at
LP = (q*E*(1 - 1/L) - cum) / (q*(1 - MMR)), with Binance's bracket of the notional q*E:
below 50,000 USDT MMR 0.4 %, cum 0; 50,000-250,000 MMR 0.5 %, cum 50:

    L = 2:  0.5020 E      L = 5 (49,980 notional):  0.8032 E
    L = 10 (99,600 notional, second bracket): (99,600 x 0.9 - 50) / (9.960 x 0.995) = 9,040.2 (q = 9.960)

Scenario "wick15": entry 10,000, a wick to 8,500 at bar 3 -> 10x dies (9,036), 5x and 2x live.
Scenario "crash30": a wick to 7,000 at bar 4 -> 10x and 5x die, 2x lives.
Frontier: wick15 -> 5x, crash30 -> 2x.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine.stress import SURVIVAL_COLUMNS, ScenarioInput, StressSpec, run_stress
from risk.errors import DeleverageError


def _bars(low_at: int, low: float, n: int = 8) -> pd.DataFrame:
    close = np.full(n, 10000.0)
    lows = close.copy()
    lows[low_at] = low
    index = pd.date_range("2024-03-01", periods=n, freq="1h", tz="UTC", name="open_time")
    frame = pd.DataFrame({"open": close, "high": close, "low": lows, "close": close, "volume": 1.0,
                          "funding_rate": np.nan}, index=index)
    frame.attrs["kind"] = "simulated"
    return frame


INPUTS = [ScenarioInput("wick15", _bars(3, 8500.0), title="15 % wick"),
          ScenarioInput("crash30", _bars(4, 7000.0), title="30 % crash")]


def _spec(**kw) -> StressSpec:
    base = dict(strategy="buy_and_hold", scenarios=["wick15", "crash30"], leverages=[2.0, 5.0, 10.0],
                venue="binance_usdm", workers=1)
    base.update(kw)
    return StressSpec(**base)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    return run_stress(_spec(), tmp_path_factory.mktemp("grid"), inputs=INPUTS, progress=False)


def test_survival_and_frontier_match_the_hand_calculation(grid) -> None:
    s = grid.survival.set_index(["scenario", "leverage"])
    assert s["survived"].to_dict() == {("wick15", 2.0): True, ("wick15", 5.0): True, ("wick15", 10.0): False,
                                       ("crash30", 2.0): True, ("crash30", 5.0): False, ("crash30", 10.0): False}
    assert grid.frontier.to_dict("list") == {"scenario": ["wick15", "crash30"], "max_surviving_leverage": [5.0, 2.0]}
    q10 = np.floor(10000 * 10 / (1 + 10 * 0.0004) * 0.999999 / 10000 / 0.001) * 0.001
    assert q10 == pytest.approx(9.960)
    assert s.loc[("wick15", 10.0), "liquidation_price"] == pytest.approx(
        (q10 * 10000 * 0.9 - 50) / (q10 * 0.995), rel=1e-6)
    assert s.loc[("crash30", 5.0), "liquidation_price"] == pytest.approx(10000 * 0.8 / 0.996, rel=1e-4)
    assert s.loc[("wick15", 10.0), "liquidated_at"] == pd.Timestamp("2024-03-01T03:00Z")
    assert s.loc[("crash30", 5.0), "liquidated_at"] == pd.Timestamp("2024-03-01T04:00Z")
    # a survivor's equity: only the entry fee was lost (flat prices); 2x: q = 1.998 BTC
    fee = 1.998 * 10000 * 0.0004 / 10000
    assert s.loc[("wick15", 2.0), "equity_left"] == pytest.approx(1 - fee, rel=1e-12)
    assert s.loc[("wick15", 2.0), "fees"] == pytest.approx(fee, rel=1e-9)
    # closest distance to liquidation of the 5x that survived the 15 % wick, on closes (mark = close)
    assert s.loc[("wick15", 5.0), "min_distance_to_liquidation"] == pytest.approx(1 - 0.8 / 0.996, rel=1e-3)
    assert s.loc[("wick15", 5.0), "max_drawdown"] == pytest.approx(0.0, abs=1e-9)  # closes never moved
    assert (grid.survival["data_kind"] == "simulated").all()


def test_stress_directory_format(grid) -> None:
    path = grid.path
    survival = pd.read_parquet(path / "survival.parquet")
    assert tuple(survival.columns) == SURVIVAL_COLUMNS and len(survival) == 6
    assert str(survival["liquidated_at"].dtype).startswith("datetime64") and survival["survived"].dtype == bool
    frontier = pd.read_parquet(path / "frontier.parquet")
    assert list(frontier.columns) == ["scenario", "max_surviving_leverage"]
    config = json.loads((path / "stress.json").read_text())
    assert config["leverages"] == [2.0, 5.0, 10.0] and config["scenarios"] == ["wick15", "crash30"]
    assert "funding_rate column" in config["funding"]["wick15"]
    assert len((path / "cells.jsonl").read_text().splitlines()) == 6
    for run_dir in survival["run_dir"]:
        assert (path / run_dir / "equity.parquet").exists() and (path / run_dir / "bars.parquet").exists()


def test_parallel_and_serial_runs_agree(grid, tmp_path) -> None:
    again = run_stress(_spec(workers=2), tmp_path, inputs=INPUTS, progress=False)
    pd.testing.assert_frame_equal(again.survival.drop(columns="run_dir"), grid.survival.drop(columns="run_dir"))


def test_bars_without_funding_settle_the_stated_constant(tmp_path) -> None:
    bars = _bars(3, 9990.0, n=20).drop(columns="funding_rate")
    result = run_stress(_spec(leverages=[2.0], funding_rate=0.001), tmp_path, inputs=[ScenarioInput("flat", bars)],
                        progress=False)
    config = json.loads((tmp_path / "stress.json").read_text())
    assert config["funding"]["flat"].startswith("constant 0.001")
    # settlements at 00:00, 08:00, 16:00: the first bar (00:00) opens the position at its open,
    # so 08:00 and 16:00 are paid: 2 x 0.1 % of 2x notional
    notional = 2 / (1 + 2 * 0.0004) * 0.999999
    assert result.survival["funding_paid"].iloc[0] == pytest.approx(-2 * 0.001 * notional, rel=1e-3)


def test_bad_specs_are_refused(tmp_path) -> None:
    with pytest.raises(DeleverageError, match="unknown strategy"):
        run_stress(_spec(strategy="moon"), tmp_path, inputs=INPUTS)
    with pytest.raises(DeleverageError, match="finite numbers > 0"):
        run_stress(_spec(leverages=[0.0]), tmp_path, inputs=INPUTS)
    with pytest.raises(DeleverageError, match="no parameter"):
        run_stress(_spec(params={"levrage": 3}), tmp_path, inputs=INPUTS)
    with pytest.raises(DeleverageError, match="--leverage"):
        run_stress(_spec(params={"leverage": 3}), tmp_path, inputs=INPUTS)
