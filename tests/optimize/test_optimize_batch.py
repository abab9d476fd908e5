"""Batched evaluation: the same trials table, bit for bit, from one task per unit (--batch 1)
and from batches (automatic and a small fixed size), on the fast engine with stress scenarios;
evaluate_batch's records equal one evaluate() each."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd

from engine.optimize import LocalExecutor, ParamRange, optimize

E = importlib.import_module("engine.optimize.evaluate")


def test_batched_and_per_set_paths_give_the_same_table(tmp_path, config_factory):
    cfg = config_factory(strategy="sma_crossover", ranges=(ParamRange("fast", 5, 15, 5, True),
                                                           ParamRange("slow", 40, 80, 20, True),
                                                           ParamRange("leverage", 1.0, 9.0, 4.0)),
                         objective="sharpe", survive=("synthetic:1500:5",))
    per_set = optimize(cfg, tmp_path / "one", executor=LocalExecutor(1), batch=1)
    auto = optimize(cfg, tmp_path / "auto", executor=LocalExecutor(1))
    small = optimize(cfg, tmp_path / "small", executor=LocalExecutor(2), batch=4)
    assert len(per_set.trials) == 27 and per_set.summary["engine"] == "fast"
    for other in (auto, small):
        pd.testing.assert_frame_equal(per_set.trials, other.trials, check_exact=True)
        a = per_set.trials["score_in_sample"].to_numpy()
        b = other.trials["score_in_sample"].to_numpy()
        assert a.tobytes() == b.tobytes()


def test_evaluate_batch_records_equal_single_evaluations():
    task = {"strategy": "breakout", "data": "synthetic:3000:3", "start": 0, "stop": 1500, "objective": "sortino",
            "run": {"strategy": "breakout", "funding_rate": 0.0001, "leverage": 1.0}, "engine": "auto",
            "segment": "chunk:0"}
    points = [{"lookback": lb, "mode": "short", "leverage": lev, "stop_loss": sl}
              for lb in (10, 40) for lev in (1.0, 5.0) for sl in (0.0, 0.003)]
    points.append({"lookback": 0, "mode": "nope", "leverage": 1.0, "stop_loss": 0.0})  # refused by the strategy
    keys = [f"k{i}" for i in range(len(points))]
    batch = E.evaluate_batch({**task, "keys": keys, "points": points, "threads": 1})
    for key, point, rec in zip(keys, points, batch):
        one = E.evaluate({**task, "key": key, "params": point})
        for field in ("key", "bars", "engine", "error", "liquidated"):
            assert one[field] == rec[field], field
        for field in ("score", "min_distance"):
            assert np.array_equal(np.float64(one[field]), np.float64(rec[field]), equal_nan=True), field
    assert batch[-1]["error"] and "mode" in batch[-1]["error"]
    assert sum(1 for r in batch if r["error"] is None) == 8


def test_a_store_written_before_min_distance_gains_the_column(tmp_path):
    import sqlite3

    from engine.optimize.store import TrialStore

    db = tmp_path / "trials.sqlite"
    with sqlite3.connect(db) as conn:  # the schema before this column existed
        conn.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                           "CREATE TABLE evals (key TEXT PRIMARY KEY, params TEXT NOT NULL, segment TEXT NOT NULL,"
                           " score REAL, liquidated INTEGER NOT NULL, bars INTEGER, engine TEXT, error TEXT,"
                           " seconds REAL, finished_at REAL);"
                           "INSERT INTO evals VALUES ('old', '{}', 'chunk:0', 1.5, 0, 10, 'fast', NULL, 0.1, 0);")
    store = TrialStore(db)
    store.put_many([({"key": "new", "score": float("nan"), "liquidated": True, "bars": 10, "engine": "fast",
                      "min_distance": 0.25}, "{}", "chunk:0")])
    got = store.get_many(["old", "new"])
    store.close()
    assert got["old"]["score"] == 1.5 and np.isnan(got["old"]["min_distance"])
    assert np.isnan(got["new"]["score"]) and got["new"]["liquidated"] and got["new"]["min_distance"] == 0.25
