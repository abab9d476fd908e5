"""Nothing lost: kill -9 in the middle, --resume, and the final table equals an uninterrupted run's."""

from __future__ import annotations

import json
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
from risk.errors import DeleverageError

REPO = Path(__file__).resolve().parents[2]
CLI_ARGS = ["optimize", "buy_and_hold", "--param", "leverage=1:19:2", "--param", "side=-1:1:2",
            "--data", "synthetic:2000:3", "--funding-rate", "0.0001", "--objective", "sharpe",
            "--engine", "backtrader", "--no-report", "--no-progress"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def _rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM evals").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_kill_9_then_resume_gives_the_uninterrupted_table(tmp_path):
    out = tmp_path / "killed"
    db = out / "trials.sqlite"
    proc = subprocess.Popen(_cli(*CLI_ARGS, "--workers", "2", "--out", str(out)), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _rows(db) < 8:
            assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
            assert time.monotonic() < deadline, "no rows appeared in trials.sqlite"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        try:  # the pool's workers too (they are ours), so nothing outlives the test
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL
    done_at_kill = _rows(db)
    assert 8 <= done_at_kill < 40, "the kill must land in the middle (40 units in all)"
    assert not (out / "trials.parquet").exists()

    # resuming without --resume is refused; with it the run finishes
    refused = subprocess.run(_cli(*CLI_ARGS, "--out", str(out)), cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = subprocess.run(_cli(*CLI_ARGS, "--workers", "2", "--out", str(out), "--resume"), cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "optimize.json").read_text())
    assert summary["evaluations"]["units"] == 40
    assert summary["evaluations"]["from_store"] >= done_at_kill
    assert summary["evaluations"]["computed_now"] == 40 - summary["evaluations"]["from_store"]

    # the uninterrupted reference: the same command's configuration, run in this process on one
    # worker (n_jobs 1 against the CLI's 2)
    from engine.cli import build_parser
    from engine.commands.optimize import build_config

    args = build_parser().parse_args(CLI_ARGS)
    optimize(build_config(args), tmp_path / "ref", executor=LocalExecutor(1))
    got = pd.read_parquet(out / "trials.parquet")
    want = pd.read_parquet(tmp_path / "ref" / "trials.parquet")
    assert len(want) == 20
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert want["chosen"].sum() == 1


class _Interrupting(LocalExecutor):
    """A local executor whose run is 'killed' (KeyboardInterrupt) after ``after`` results."""

    def __init__(self, after: int) -> None:
        super().__init__(1)
        self.after = after
        self.seen = 0

    def map(self, tasks, worker=None):
        for item in (super().map(tasks) if worker is None else super().map(tasks, worker)):
            if self.seen >= self.after:
                raise KeyboardInterrupt
            self.seen += 1
            yield item


def test_differential_evolution_resumes_to_the_same_search(tmp_path, config_factory):
    cfg = config_factory(method="de", ranges=(ParamRange("leverage", 1.0, 20.0, None), ParamRange("side", -1, 1, 2, True)),
                         popsize=4, maxiter=4, seed=11, objective="sharpe")
    ref = optimize(cfg, tmp_path / "ref", executor=LocalExecutor(1))
    assert len(ref.trials) > 8  # more than the initial population: it evolved
    assert set(ref.trials["param_side"]) <= {-1, 1}

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        optimize(cfg, out, executor=_Interrupting(after=9))
    with pytest.raises(DeleverageError, match="--resume"):
        optimize(cfg, out, executor=LocalExecutor(1))
    stored = _rows(out / "trials.sqlite")  # 9 batches of units (each committed when it came back)
    assert 9 <= stored < len(ref.trials) * 3
    resumed = optimize(cfg, out, resume=True, executor=LocalExecutor(1))
    pd.testing.assert_frame_equal(resumed.trials, ref.trials, check_exact=True)
    assert resumed.summary["evaluations"]["from_store"] == stored
    assert resumed.summary["differential_evolution"] == ref.summary["differential_evolution"]
    # the chosen set is the best feasible in-sample score
    t = ref.trials
    best = t[t["feasible"]]["score_in_sample"].max()
    assert t.loc[t["chosen"], "score_in_sample"].item() == best


def test_resume_with_different_options_is_refused(tmp_path, config_factory):
    cfg = config_factory(ranges=(ParamRange("leverage", 1.0, 2.0, 1.0),))
    optimize(cfg, tmp_path / "opt", executor=LocalExecutor(1))
    other = config_factory(ranges=(ParamRange("leverage", 1.0, 3.0, 1.0),))
    with pytest.raises(DeleverageError, match="differ.*ranges"):
        optimize(other, tmp_path / "opt", resume=True, executor=LocalExecutor(1))
    with pytest.raises(DeleverageError, match="nothing to continue"):
        optimize(cfg, tmp_path / "fresh", resume=True, executor=LocalExecutor(1))
    # resuming a finished run recomputes nothing and rewrites the same table
    before = pd.read_parquet(tmp_path / "opt" / "trials.parquet")
    again = optimize(cfg, tmp_path / "opt", resume=True, executor=LocalExecutor(1))
    assert again.summary["evaluations"]["computed_now"] == 0
    pd.testing.assert_frame_equal(again.trials, before, check_exact=True)
