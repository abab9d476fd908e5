"""Walk-forward scores, robustness (survive scenarios) and the in-sample winner liquidated out of sample."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from engine.optimize import LocalExecutor, ParamRange, optimize
from engine.optimize.evaluate import load_bars
from engine.runner import RunConfig, run_backtest
from reports import metrics
from strategies import REGISTRY


def _by_leverage(table: pd.DataFrame, fold: int | None = None) -> pd.DataFrame:
    t = table if fold is None else table[table["fold"] == fold]
    return t.set_index("param_leverage")


def test_scores_are_the_report_metrics_of_each_chunk(tmp_path, config_factory):
    """Fold 0 in sample = the first half of the bars, out of sample = the second half; the score
    is reports.metrics' total return of that run, recomputed here independently."""
    cfg = config_factory(ranges=(ParamRange("leverage", 1.0, 4.0, 3.0),), engine="backtrader")
    res = optimize(cfg, tmp_path / "opt", executor=LocalExecutor(1))
    bars = load_bars(cfg.data)
    assert len(bars) == 3000
    t = _by_leverage(res.trials)
    assert list(t.index) == [1.0, 4.0]
    for lev in (1.0, 4.0):
        for part, col in ((bars.iloc[:1500], "score_in_sample"), (bars.iloc[1500:], "score_out_of_sample")):
            run = run_backtest(part, REGISTRY["buy_and_hold"], RunConfig(
                strategy="buy_and_hold", params={"leverage": lev}, funding_rate=0.0001, analyzers=False))
            expected = metrics.total_return(metrics.equity_curve(run))
            assert t.loc[lev, col] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # a 4x long earns about 4x the 1x long's in-sample return (before fees and funding)
    assert 3.5 < t.loc[4.0, "score_in_sample"] / t.loc[1.0, "score_in_sample"] < 4.1
    assert res.summary["walk_forward"]["chunks"][0]["bars"] == 1500
    assert res.summary["engine"] == "backtrader"


def test_engine_auto_uses_the_fast_engine_when_the_strategy_has_a_signal_form(tmp_path, config_factory):
    from engine.optimize.evaluate import fast_supported

    from engine.optimize import resolve_ranges

    ranges = resolve_ranges(REGISTRY["sma_crossover"], [("fast", (5, 10, 5))])
    assert ranges == [ParamRange("fast", 5.0, 10.0, 5.0, integer=True)]
    cfg = config_factory(strategy="sma_crossover", ranges=tuple(ranges),
                         fixed={"slow": 30, "leverage": 2.0})
    res = optimize(cfg, tmp_path / "opt", executor=LocalExecutor(1))
    expected = "fast" if fast_supported(REGISTRY["sma_crossover"]) else "backtrader"
    assert res.summary["engine"] == expected
    assert list(res.trials["param_fast"]) == [5, 10]
    assert res.trials["param_fast"].dtype == np.int64
    assert res.trials["score_in_sample"].notna().all()


def test_in_sample_winner_liquidated_out_of_sample_is_flagged(tmp_path, config_factory):
    cfg = config_factory()
    res = optimize(cfg, tmp_path / "opt", executor=LocalExecutor(1))
    t = _by_leverage(res.trials)
    assert list(t.index) == [1.0, 4.0, 7.0, 10.0, 13.0, 16.0, 19.0]
    # in sample: more leverage, more return, nobody liquidated
    assert t["score_in_sample"].is_monotonic_increasing
    winner = t["score_in_sample"].idxmax()
    assert winner == 19.0
    # the 18 % wick in the second half liquidates every long above ~5x
    assert t.loc[19.0, "liquidated_in"] == "out_of_sample"
    assert t.loc[19.0, "score_out_of_sample"] < -0.9
    assert t.loc[1.0, "liquidated_in"] == "" and t.loc[4.0, "liquidated_in"] == ""
    assert t.loc[1.0, "score_out_of_sample"] > -0.2
    # no scenario required: out-of-sample liquidation does not make a set infeasible (no look-ahead)
    assert t["feasible"].all()
    assert t.loc[19.0, "chosen"] and t["chosen"].sum() == 1
    fold = res.summary["per_fold"][0]
    assert fold["in_sample_winner"]["params"] == {"leverage": 19.0}
    assert fold["in_sample_winner"]["liquidated_out_of_sample"] is True

    # the report says so
    from reports.html import render

    html = render(tmp_path / "opt").read_text()
    assert "LIQUIDATED out of sample" in html
    assert "leverage=19" in html


def test_a_set_liquidated_in_a_required_scenario_is_infeasible(tmp_path, config_factory):
    """Survive the whole series (it holds the wick): high leverage is infeasible, so the chosen
    set is the best in-sample one that survives, not the in-sample winner."""
    cfg = config_factory(survive=("synthetic:3000:3",))
    res = optimize(cfg, tmp_path / "opt", executor=LocalExecutor(1))
    t = _by_leverage(res.trials)
    assert t.loc[1.0, "feasible"] and t.loc[4.0, "feasible"]
    assert not t.loc[19.0, "feasible"]
    assert t.loc[19.0, "liquidated_in"] == "synthetic:3000:3,out_of_sample"
    chosen = t[t["chosen"]]
    assert len(chosen) == 1
    lev = chosen.index[0]
    assert t.loc[lev, "feasible"]
    # the best feasible in-sample score, and every better one is infeasible
    assert (t.loc[t["score_in_sample"] > t.loc[lev, "score_in_sample"], "feasible"] == False).all()  # noqa: E712
    # entered at the series' first bar (lower price), a 7x long survives the wick that
    # liquidates a 7x long entered at the second half's start: survival depends on the path
    assert lev == 7.0
    assert [lv for lv in t.index if not t.loc[lv, "feasible"]] == [10.0, 13.0, 16.0, 19.0]
    assert t.loc[7.0, "liquidated_in"] == "out_of_sample"
    assert res.summary["per_fold"][0]["chosen"]["liquidated_out_of_sample"] is True


def test_walk_forward_rolls_chunk_by_chunk(tmp_path, config_factory):
    """K=3: four chunks; fold k's out-of-sample chunk is fold k+1's in-sample chunk."""
    cfg = config_factory(walk_forward=3, ranges=(ParamRange("leverage", 2.0, 6.0, 4.0),))
    res = optimize(cfg, tmp_path / "opt", executor=LocalExecutor(1))
    t = res.trials
    assert sorted(t["fold"].unique()) == [0, 1, 2]
    assert len(t) == 6  # 2 sets x 3 folds
    assert [c["bars"] for c in res.summary["walk_forward"]["chunks"]] == [750, 750, 750, 750]
    for lev in (2.0, 6.0):
        s = t[t["param_leverage"] == lev].set_index("fold")
        assert s.loc[0, "score_out_of_sample"] == s.loc[1, "score_in_sample"]
        assert s.loc[1, "score_out_of_sample"] == s.loc[2, "score_in_sample"]
        assert s.loc[0, "score_in_sample"] != s.loc[1, "score_in_sample"]
    # units: 2 sets x 4 chunks, each simulated once
    assert res.summary["evaluations"]["units"] == 8
    assert t.groupby("fold")["chosen"].sum().tolist() == [1, 1, 1]


def test_no_walk_forward_has_no_out_of_sample_score(tmp_path, config_factory):
    cfg = config_factory(walk_forward=0, ranges=(ParamRange("leverage", 1.0, 2.0, 1.0),))
    res = optimize(cfg, tmp_path / "opt", executor=LocalExecutor(1))
    assert "fold" not in res.trials.columns
    assert res.trials["score_out_of_sample"].isna().all()
    assert res.summary["walk_forward"]["chunks"][0]["bars"] == 3000


def test_scenario_library_312(tmp_path, config_factory):
    """--survive 312 (the library's reconstruction): a 10x long is liquidated, a 1x long is not."""
    cfg = config_factory(ranges=(ParamRange("leverage", 1.0, 10.0, 9.0),), survive=("312",))
    res = optimize(cfg, tmp_path / "opt", executor=LocalExecutor(1))
    t = _by_leverage(res.trials)
    assert "312" in t.loc[10.0, "liquidated_in"].split(",")
    assert not t.loc[10.0, "feasible"]
    assert t.loc[1.0, "feasible"] and "312" not in t.loc[1.0, "liquidated_in"]
    assert t.loc[1.0, "chosen"]
