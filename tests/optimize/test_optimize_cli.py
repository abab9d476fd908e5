"""The ``deleverage optimize`` command: output directory, report, errors, Ctrl-C."""

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

from engine.cli import main

REPO = Path(__file__).resolve().parents[2]
BASE = ["optimize", "buy_and_hold", "--data", "synthetic:3000:3", "--funding-rate", "0.0001", "--objective", "return",
        "--workers", "1", "--no-progress"]


def test_cli_writes_the_directory_and_the_report(tmp_path, capsys):
    out = tmp_path / "opt"
    code = main([*BASE, "--param", "leverage=1:19:9", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "3 parameter sets" in printed
    assert "WARNING: fold 0's in-sample winner was LIQUIDATED out of sample" in printed
    trials = pd.read_parquet(out / "trials.parquet")
    assert list(trials.columns) == ["trial_id", "param_leverage", "fold", "score_in_sample", "score_out_of_sample",
                                    "feasible", "liquidated_in", "chosen", "error"]
    assert list(trials["param_leverage"]) == [1.0, 10.0, 19.0]
    assert list(trials["liquidated_in"]) == ["", "out_of_sample", "out_of_sample"]
    cfg = json.loads((out / "optimize.json").read_text())
    assert cfg["strategy"] == "buy_and_hold" and cfg["objective"] == "return" and cfg["method"] == "grid"
    assert cfg["param_ranges"] == {"leverage": {"low": 1.0, "high": 19.0, "step": 9.0, "integer": False}}
    assert cfg["walk_forward"]["scheme"] == "rolling" and cfg["folds"] == 1
    assert cfg["data"]["spec"] == "synthetic:3000:3" and cfg["data"]["bars"] == 3000
    assert cfg["engine"] in ("fast", "backtrader")
    with sqlite3.connect(out / "trials.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM evals").fetchone()[0] == 6
    html = (out / "report.html").read_text()
    assert 'id="winner-banner"' in html and "LIQUIDATED out of sample" in html


def test_cli_declared_ranges_and_de(tmp_path, capsys):
    """No --param: the strategy's declared ranges (buy_and_hold: leverage 1..100, continuous)."""
    out = tmp_path / "de"
    assert main([*BASE, "--method", "de", "--popsize", "3", "--maxiter", "2", "--seed", "3", "--out", str(out),
                 "--no-report"]) == 0
    trials = pd.read_parquet(out / "trials.parquet")
    assert trials["param_leverage"].between(1.0, 100.0).all()
    assert trials["param_leverage"].nunique() == len(trials) >= 3
    cfg = json.loads((out / "optimize.json").read_text())
    assert cfg["param_ranges"]["leverage"] == {"low": 1.0, "high": 100.0, "step": None, "integer": False}
    assert cfg["differential_evolution"][0]["nfev"] >= len(trials)


@pytest.mark.parametrize("args, message", [
    (["--param", "speed=1:2"], "has no parameter 'speed'"),
    (["--param", "leverage=5:1"], "LOW <= HIGH"),
    (["--param", "leverage=1:2:1", "--set", "leverage=3"], "both searched"),
    (["--param", "leverage=1:2:1", "--walk-forward", "-1"], "--walk-forward"),
    (["--param", "leverage=1:2:1", "--walk-forward", "400"], "chunks of"),
    (["--param", "leverage=1:2:1", "--survive", "nosuchwaterfall"], "nosuchwaterfall"),
    (["--param", "leverage=1:2:1", "--resume"], "--resume needs --out"),
])
def test_cli_bad_input_is_a_clear_error(tmp_path, capsys, args, message):
    assert main([*BASE, *args, "--out", str(tmp_path / "x")] if "--resume" not in args else [*BASE, *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_unknown_strategy_and_missing_funding(tmp_path, capsys):
    assert main(["optimize", "nope", "--data", "synthetic:100:1"]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err
    assert main(["optimize", "buy_and_hold", "--data", "synthetic:3000:3", "--param", "leverage=1:2:1",
                 "--workers", "1", "--out", str(tmp_path / "nf"), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "fails with its default parameters" in err and "funding" in err


def test_ctrl_c_stops_cleanly_and_resume_finishes(tmp_path):
    out = tmp_path / "int"
    args = [*BASE, "--param", "leverage=1:19:1", "--param", "side=-1:1:2", "--engine", "backtrader",
            "--out", str(out), "--no-report"]
    # SIGINT back to its default in the child (a suite started with `&` inherits it ignored)
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    db = out / "trials.sqlite"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert proc.poll() is None and time.monotonic() < deadline
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    if conn.execute("SELECT COUNT(*) FROM evals").fetchone()[0] >= 4:
                        break
            except sqlite3.Error:
                pass
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert "interrupted" in err and "--resume" in err
    assert main([*args[:-1], "--resume", "--no-report"]) == 0
    assert len(pd.read_parquet(out / "trials.parquet")) == 38
