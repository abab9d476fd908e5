"""The stress picks the compiled fast engine for signal strategies and says so; its survival
table equals the backtrader path's."""

from __future__ import annotations

import numpy as np
import pytest

from engine.stress import StressSpec, run_stress
from risk.errors import DeleverageError


def _table(tmp_path, engine: str):
    spec = StressSpec(strategy="buy_and_hold", scenarios=["312", "519"], leverages=[2.0, 10.0], workers=1,
                      engine=engine)
    spec.validate()
    result = run_stress(spec, tmp_path / engine, progress=False)
    return result.survival


def test_auto_runs_fast_and_matches_backtrader(tmp_path) -> None:
    fast = _table(tmp_path, "auto")
    slow = _table(tmp_path, "backtrader")
    assert set(fast["engine"]) == {"fast"} and set(slow["engine"]) == {"backtrader"}
    assert list(fast["survived"]) == list(slow["survived"]) == [False, False, True, False]
    assert list(fast["liquidated_at"]) == list(slow["liquidated_at"])
    for col in ("liquidation_price", "equity_left", "max_drawdown", "funding_paid", "fees"):
        assert np.allclose(fast[col].astype(float), slow[col].astype(float), rtol=1e-9, equal_nan=True), col


def test_fast_engine_refused_for_strategies_without_signal_form() -> None:
    with pytest.raises(DeleverageError, match="no signal form"):
        StressSpec(strategy="cascade_fade", scenarios=["312"], leverages=[2.0], engine="fast").validate()


def test_scenario_entry_time_rule_is_shared_with_the_optimizer() -> None:
    from engine.optimize.evaluate import evaluate
    from engine.stress import scenario_params
    from strategies import REGISTRY

    entry = "2020-03-12T06:00:00+00:00"
    assert scenario_params(REGISTRY["buy_and_hold"], {"leverage": 2.0}, entry) == {"leverage": 2.0, "entry_time": entry}
    assert scenario_params(REGISTRY["buy_and_hold"], {"entry_time": "x"}, entry) == {"entry_time": "x"}
    assert "entry_time" not in scenario_params(REGISTRY["sma_crossover"], {}, entry)
    # the optimizer's survive-scenario run of buy-and-hold 10x on 312 enters at the scenario's
    # entry time, as the stress cell does, and is liquidated there too
    record = evaluate({"key": "k", "strategy": "buy_and_hold", "params": {"leverage": 10.0}, "data": "scenario:312",
                       "objective": "return", "run": {"venue": "bitmex", "cash": 1.0, "leverage": 10.0}})
    assert record["error"] is None and record["liquidated"] is True
