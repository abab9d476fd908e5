"""Optuna as a search method: --method tpe and --method nsga2 (two objectives).

Seeded (two runs, equal tables), resumable (an interrupted run and a kill -9 of the CLI, then
--resume, end with the uninterrupted run's table and study), the study stored in
DIR/optuna.sqlite, and infeasible sets (liquidated in a required waterfall) told to the sampler
as violated constraints.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from engine.optimize import LocalExecutor, ParamRange, optimize
from tests.optimize.test_optimize_resume import _Interrupting

optuna = pytest.importorskip("optuna")

REPO = Path(__file__).resolve().parents[2]
RANGES = (ParamRange("leverage", 1.0, 19.0, None), ParamRange("side", -1, 1, 2, True))


def _study(out: Path, fold: int = 0):
    return optuna.load_study(study_name=f"fold-{fold}", storage=f"sqlite:///{out / 'optuna.sqlite'}")


@pytest.mark.parametrize("method", ["tpe", "nsga2"])
def test_seeded_runs_give_equal_tables_and_the_study_is_stored(tmp_path, config_factory, method):
    cfg = config_factory(method=method, ranges=RANGES, trials=12, popsize=4, seed=3, objective="sharpe",
                         survive=("synthetic:1500:5",))
    a = optimize(cfg, tmp_path / "a", executor=LocalExecutor(1))
    b = optimize(cfg, tmp_path / "b", executor=LocalExecutor(1))
    pd.testing.assert_frame_equal(a.trials, b.trials, check_exact=True)
    study = _study(tmp_path / "a")
    assert len(study.trials) == 12
    distinct = {tuple(sorted(t.user_attrs["params"].items())) for t in study.trials}
    assert len(a.trials) == len(distinct) >= 8  # NSGA-II may ask a point twice: one row
    assert a.summary["optuna"][0]["trials"] == 12
    # every trial's point is a row of the table; the constraint is the table's infeasibility
    table = a.trials.set_index(["param_leverage", "param_side"])
    for t in study.trials:
        p = t.user_attrs["params"]
        row = table.loc[(p["leverage"], p["side"])]
        assert t.user_attrs["constraint"] == [0.0 if bool(row["feasible"]) else 1.0]
        if t.state == optuna.trial.TrialState.COMPLETE:
            values = t.values
            assert values[0] == row["score_in_sample"]
            if method == "nsga2":
                assert len(values) == 2 and 0.0 <= values[1] <= 1.0
    if method == "nsga2":
        return
    # a different seed asks other points
    c = optimize(config_factory(method=method, ranges=RANGES, trials=12, popsize=4, seed=4, objective="sharpe",
                                survive=("synthetic:1500:5",)), tmp_path / "c", executor=LocalExecutor(1))
    assert not c.trials[["param_leverage"]].equals(a.trials[["param_leverage"]])


def test_infeasible_sets_are_constraints_and_never_chosen(tmp_path, config_factory):
    # synthetic:3000:3 wicks 18 % in its second half: a long at high leverage is liquidated there
    cfg = config_factory(method="tpe", ranges=(ParamRange("leverage", 1.0, 19.0, None),), trials=16, popsize=4,
                         seed=0, objective="return", walk_forward=0, survive=("synthetic:3000:3",),
                         fixed={"side": 1})
    res = optimize(cfg, tmp_path / "o", executor=LocalExecutor(1))
    t = res.trials
    assert (~t["feasible"]).any() and t["feasible"].any()
    assert t.loc[t["chosen"], "feasible"].all()
    violated = [tr for tr in _study(tmp_path / "o").trials if tr.user_attrs["constraint"][0] > 0]
    assert len(violated) == int((~t["feasible"]).sum())


def test_nsga2_second_objective_is_the_worst_distance_to_liquidation(tmp_path, config_factory):
    cfg = config_factory(method="nsga2", ranges=(ParamRange("leverage", 1.0, 19.0, None),), trials=8, popsize=4,
                         seed=1, objective="return", walk_forward=0, survive=("synthetic:1500:5",),
                         fixed={"side": 1})
    optimize(cfg, tmp_path / "o", executor=LocalExecutor(1))
    done = [t for t in _study(tmp_path / "o").trials if t.state == optuna.trial.TrialState.COMPLETE]
    by_lev = sorted((t.user_attrs["params"]["leverage"], t.values[1]) for t in done)
    # a long's liquidation price is nearer at higher leverage: the distance falls as leverage rises
    dists = [d for _, d in by_lev]
    assert dists == sorted(dists, reverse=True) and dists[0] > dists[-1]
    # by hand for 1x: the distance is at least the wick-free room of an unlevered long (> 50 %)
    assert by_lev[0][0] < 3 and by_lev[0][1] > 0.3


def test_interrupted_tpe_resumes_to_the_same_table_and_study(tmp_path, config_factory):
    cfg = config_factory(method="tpe", ranges=RANGES, trials=16, popsize=4, seed=7, objective="sortino")
    ref = optimize(cfg, tmp_path / "ref", executor=LocalExecutor(1), batch=1)
    out = tmp_path / "int"
    with pytest.raises(KeyboardInterrupt):
        optimize(cfg, out, executor=_Interrupting(after=10), batch=1)
    resumed = optimize(cfg, out, resume=True, executor=LocalExecutor(1), batch=1)
    pd.testing.assert_frame_equal(resumed.trials, ref.trials, check_exact=True)
    assert resumed.summary["evaluations"]["from_store"] == 10
    a, b = _study(out), _study(tmp_path / "ref")
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.values for t in a.trials] == [t.values for t in b.trials]


def _rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM evals").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_kill_9_during_tpe_then_resume_gives_the_uninterrupted_table(tmp_path):
    args = ["optimize", "buy_and_hold", "--param", "leverage=1:19", "--param", "side=-1:1:2", "--method", "tpe",
            "--trials", "16", "--popsize", "4", "--seed", "5", "--data", "synthetic:2000:3", "--funding-rate",
            "0.0001", "--objective", "sharpe", "--engine", "backtrader", "--no-report", "--no-progress"]
    out = tmp_path / "killed"
    db = out / "trials.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args, "--workers", "2", "--out", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while _rows(db) < 8:
            assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
            assert time.monotonic() < deadline, "no rows appeared in trials.sqlite"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    done_at_kill = _rows(db)
    assert 8 <= done_at_kill < 32  # 16 sets x 2 chunks
    resumed = subprocess.run([sys.executable, "-m", "engine.cli", *args, "--workers", "2", "--out", str(out),
                              "--resume"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    from engine.cli import build_parser
    from engine.commands.optimize import build_config

    optimize(build_config(build_parser().parse_args(args)), tmp_path / "ref", executor=LocalExecutor(1))
    got = pd.read_parquet(out / "trials.parquet")
    want = pd.read_parquet(tmp_path / "ref" / "trials.parquet")
    assert len(want) == 16 and math.isfinite(float(want["score_in_sample"].max()))
    pd.testing.assert_frame_equal(got, want, check_exact=True)
