"""``deleverage optimize``: input errors are one line before any work, and one-point searches run."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from engine.cli import main
from engine.optimize import parse_param, resolve_ranges
from risk.errors import DeleverageError
from strategies import REGISTRY
from tests.cli_errors import one_line_error

SMA = ["optimize", "sma_crossover", "--data", "synthetic:600:5", "--no-funding", "--workers", "1", "--no-progress",
       "--no-report", "--walk-forward", "0"]




def test_a_one_value_range_is_one_point(tmp_path, capsys):
    """fast=5:5 (LOW == HIGH) searches the one value; its score is the one a two-value grid gives it."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*SMA, "--param", "fast=5:5", "--set", "slow=20", "--out", str(one)]) == 0
    assert main([*SMA, "--param", "fast=5:6:1", "--set", "slow=20", "--out", str(two)]) == 0
    a = pd.read_parquet(one / "trials.parquet")
    b = pd.read_parquet(two / "trials.parquet")
    assert list(a["param_fast"]) == [5] and list(b["param_fast"]) == [5, 6]
    assert a["score_in_sample"].iloc[0] == b["score_in_sample"].iloc[0]
    assert bool(a["chosen"].iloc[0])
    # every range a single value under random too
    rnd = tmp_path / "rnd"
    assert main([*SMA, "--param", "fast=5:5", "--set", "slow=20", "--method", "random", "--trials", "3",
                 "--out", str(rnd)]) == 0
    r = pd.read_parquet(rnd / "trials.parquet")
    assert list(r["param_fast"]) == [5] and r["score_in_sample"].iloc[0] == a["score_in_sample"].iloc[0]


def test_a_step_larger_than_the_range_is_refused():
    cls = REGISTRY["sma_crossover"]
    with pytest.raises(DeleverageError, match=r"--param fast=5:20:100: STEP 100 is larger than HIGH - LOW = 15"):
        resolve_ranges(cls, [parse_param("fast=5:20:100")])
    (r,) = resolve_ranges(cls, [parse_param("fast=5:20:15")])  # exactly the range: both ends
    assert r.values() == [5, 20]


@pytest.mark.parametrize("args, expected", [
    (["--param", "fast=5:20:100"], "--param fast=5:20:100: STEP 100 is larger than HIGH - LOW = 15"),
    (["--method", "random", "--seed", "-1"], "--seed -1: expected a whole number from 0 to 4294967295"),
    (["--method", "tpe", "--seed", "-1"], "--seed -1: expected a whole number from 0 to 4294967295"),
    (["--method", "de", "--seed", "4294967296"], "--seed 4294967296: expected a whole number from 0 to 4294967295"),
    (["--data", "synthetic:1000:-1"], "data 'synthetic:1000:-1': SEED -1 is out of range"),
])
def test_bad_numbers_are_one_line(tmp_path, capsys, args, expected):
    assert main([*SMA, *args, "--out", str(tmp_path / "x")]) == 2
    line = one_line_error(capsys)
    assert expected in line
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, expected", [
    (["--venue", "nope"], "--venue nope: unknown venue 'nope'; known: binance_usdm"),
    (["--workers", "0"], "--workers 0: expected a whole number of at least 1"),
    (["--trials", "5"], "--trials 5 has no effect with --method grid; it applies to --method random, tpe, nsga2 only"),
    (["--method", "de", "--trials", "5"], "--trials 5 has no effect with --method de"),
    (["--method", "random", "--popsize", "5"], "--popsize 5 has no effect with --method random"),
    (["--method", "random", "--maxiter", "5"], "--maxiter 5 has no effect with --method random"),
    (["--method", "random", "--grid-points", "5"], "--grid-points 5 has no effect with --method random"),
    (["--seed", "3"], "--seed 3 has no effect with --method grid"),
    (["--param", "fast=5:20:5", "--grid-points", "4"], "--grid-points 4 has no effect: every searched range has a STEP"),
    (["--scenario-data", "real"], "--scenario-data real has no effect without a built-in scenario in --survive"),
    (["--survive", "312,312"], "--survive '312,312': 312 is given twice"),
    (["--survive", "312,"], "--survive '312,': item 2 is empty"),
    (["--survive", ""], "--survive: empty list"),
    (["--batch", "0"], "--batch must be at least 1, got 0"),
    (["--funding-rate", "0.0001"], "--no-funding has no effect with --funding-rate 0.0001"),
])
def test_option_errors_are_one_line_before_any_work(tmp_path, capsys, args, expected):
    assert main([*SMA, *args, "--out", str(tmp_path / "x")]) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "x").exists()


def test_leverage_is_the_strategys_leverage_parameter(tmp_path, capsys):
    """sma_crossover declares a leverage parameter: --leverage 3 is --set leverage=3 (as stress
    --leverage sets it per cell), and scores differently from the default leverage 1."""
    base = [*SMA, "--param", "fast=5:10:5", "--set", "slow=20", "--objective", "return"]
    runs = {}
    for name, extra in (("default", []), ("lev1", ["--leverage", "1"]), ("lev3", ["--leverage", "3"]),
                        ("set3", ["--set", "leverage=3"])):
        assert main([*base, *extra, "--out", str(tmp_path / name)]) == 0
        runs[name] = pd.read_parquet(tmp_path / name / "trials.parquet")["score_in_sample"].tolist()
    capsys.readouterr()
    assert runs["lev1"] == runs["default"]
    assert runs["lev3"] == runs["set3"]
    assert runs["lev3"] != runs["lev1"]
    cfg = json.loads((tmp_path / "lev3" / "optimize.json").read_text())
    assert cfg["fixed_params"]["leverage"] == 3.0 and cfg["config"]["run"]["leverage"] == 3.0
    # searched or fixed as well: --leverage would be ignored, so it is an error
    for extra, how in ((["--param", "leverage=1:2:1"], "searched (--param leverage)"),
                       (["--set", "leverage=2"], "fixed (--set leverage)")):
        assert main([*SMA, "--param", "fast=5:10:5", *extra, "--leverage", "3", "--out", str(tmp_path / "y")]) == 2
        assert f"--leverage 3 has no effect: sma_crossover's leverage parameter is {how}" in one_line_error(capsys)


def test_out_must_be_new_empty_or_an_earlier_optimization(tmp_path, capsys):
    args = [*SMA, "--param", "fast=5:10:5", "--set", "slow=20"]
    # a backtest run directory: never written into
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "equity.parquet").write_bytes(b"x")
    assert main([*args, "--out", str(run)]) == 2
    assert "holds no optimization (config.json, equity.parquet)" in one_line_error(capsys)
    assert main([*args, "--out", str(run), "--overwrite"]) == 2
    assert "nothing was changed" in one_line_error(capsys)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "equity.parquet"]
    # an optimization: refused again without --resume/--overwrite; --overwrite replaces it
    opt = tmp_path / "opt"
    assert main([*args, "--out", str(opt)]) == 0
    first = pd.read_parquet(opt / "trials.parquet")
    capsys.readouterr()
    assert main([*args, "--out", str(opt)]) == 2
    assert "already holds an optimization (trials.sqlite): pass --resume to continue it, --overwrite" \
        in one_line_error(capsys)
    assert main([*SMA, "--param", "fast=5:15:5", "--set", "slow=20", "--out", str(opt), "--overwrite"]) == 0
    capsys.readouterr()
    again = pd.read_parquet(opt / "trials.parquet")
    assert list(first["param_fast"]) == [5, 10] and list(again["param_fast"]) == [5, 10, 15]
    assert again["score_in_sample"].iloc[:2].tolist() == first["score_in_sample"].tolist()
    assert json.loads((opt / "optimize.json").read_text())["evaluations"]["from_store"] == 0  # nothing kept
    # an optimization with a foreign file beside it: neither resumed nor overwritten
    (opt / "notes.txt").write_text("mine")
    for flag in ("--resume", "--overwrite"):
        assert main([*args, "--out", str(opt), flag]) == 2
        assert "holds an optimization and other files (notes.txt)" in one_line_error(capsys)
    assert (opt / "notes.txt").read_text() == "mine" and (opt / "trials.sqlite").exists()
