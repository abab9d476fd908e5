"""Parameter ranges, keys, the worker record and the command's input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.optimize import ParamRange, evaluate, parse_param, resolve_ranges, unit_key
from engine.optimize.run import chunk_edges
from risk.errors import DeleverageError
from strategies import REGISTRY


def test_parse_param():
    assert parse_param("fast=5:50:5") == ("fast", (5.0, 50.0, 5.0))
    assert parse_param("leverage=1:20") == ("leverage", (1.0, 20.0, None))
    assert parse_param("slow") == ("slow", None)
    for bad in ("fast=5", "fast=a:b", "=1:2", "fast=1:2:3:4"):
        with pytest.raises(DeleverageError, match="--param"):
            parse_param(bad)


def test_declared_ranges_are_used_when_none_is_given():
    cls = REGISTRY["sma_crossover"]
    ranges = resolve_ranges(cls, [])
    assert [(r.name, r.low, r.high, r.step, r.integer) for r in ranges] == [
        (name, float(lo), float(hi), None if st is None else float(st), isinstance(dict(cls.params._getpairs())[name], int))
        for name, (lo, hi, st) in cls.ranges.items()]
    # a bare name takes the declared range; a given range overrides it
    (slow,) = resolve_ranges(cls, [("slow", None)])
    assert (slow.low, slow.high, slow.step, slow.integer) == (float(cls.ranges["slow"][0]), float(cls.ranges["slow"][1]),
                                                              float(cls.ranges["slow"][2]), True)
    (fast,) = resolve_ranges(cls, [("fast", (5, 50, 5))])
    assert fast.values() == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert all(type(v) is int for v in fast.values())


def test_range_errors():
    cls = REGISTRY["sma_crossover"]
    with pytest.raises(DeleverageError, match="no parameter 'speed'"):
        resolve_ranges(cls, [("speed", (1, 2, 1))])
    with pytest.raises(DeleverageError, match="LOW <= HIGH"):
        resolve_ranges(cls, [("fast", (9, 2, 1))])
    with pytest.raises(DeleverageError, match="STEP must be positive"):
        resolve_ranges(cls, [("fast", (2, 9, 0))])
    with pytest.raises(DeleverageError, match="integer"):
        resolve_ranges(cls, [("fast", (2.5, 9, 1))])
    with pytest.raises(DeleverageError, match="not numeric"):
        resolve_ranges(cls, [("short", (0, 1, 1))])
    with pytest.raises(DeleverageError, match="twice"):
        resolve_ranges(cls, [("fast", (2, 9, 1)), ("fast", (2, 9, 1))])


def test_values_and_snapping():
    lev = ParamRange("leverage", 1.0, 2.0, 0.1)
    assert lev.values() == [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0]  # no 1.2000000000000002
    assert lev.snap(1.26) == 1.3 and lev.snap(0.3) == 1.0 and lev.snap(7.0) == 2.0
    assert ParamRange("x", 0.0, 1.0, 0.3).values() == [0.0, 0.3, 0.6, 0.9]
    assert ParamRange("x", 0.0, 1.0, 0.3).snap(1.0) == 0.9  # never past the last grid value
    assert ParamRange("x", 1.0, 3.0, None).values(grid_points=5) == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert ParamRange("n", 1, 3, None, integer=True).values(grid_points=10) == [1, 2, 3]
    assert ParamRange("x", 2.0, 2.0, None).values() == [2.0]


def test_unit_key_is_stable_and_canonical():
    a = unit_key({"fast": 5, "leverage": 1.5}, "chunk:0")
    assert a == unit_key({"leverage": 1.5, "fast": 5}, "chunk:0")
    assert a != unit_key({"fast": 5, "leverage": 1.5}, "chunk:1")
    assert a != unit_key({"fast": 6, "leverage": 1.5}, "chunk:0")
    # the same key in every process: a fixed text, hashed with sha256 (no Python hash seed)
    assert unit_key({"x": 1}, "chunk:0") == __import__("hashlib").sha256(b'{"x":1}|chunk:0').hexdigest()[:32]


def test_chunk_edges():
    assert chunk_edges(3000, 1) == [0, 1500, 3000]
    assert chunk_edges(1000, 2) == [0, 333, 667, 1000]
    assert chunk_edges(1000, 0) == [0, 1000]
    with pytest.raises(DeleverageError, match="chunks of 9 bars"):
        chunk_edges(27, 2)


def test_fast_lean_path_equals_run_fast():
    """The optimizer's fast path (equity only, arrays prepared once) scores exactly like a full
    run_fast result, liquidation included."""
    from engine.optimize.evaluate import fast_supported, load_bars, score_equity, simulate, run_config
    from reports.metrics import equity_curve

    cls = REGISTRY["buy_and_hold"]
    if not fast_supported(cls):
        pytest.skip("engine.fast is not available")
    from engine import fast

    bars = load_bars("synthetic:3000:3")
    run = {"funding_rate": 0.0001}
    for lev in (2.0, 19.0):
        params = {"leverage": lev}
        task = {"data": "synthetic:3000:3", "start": None, "stop": None, "run": run}
        curve, liquidated = simulate(cls, bars, params, run, "fast", task)
        full = fast.run_fast(bars, cls, run_config(cls, params, run))
        assert liquidated == bool(len(full.liquidations))
        np.testing.assert_array_equal(curve.to_numpy(), equity_curve(full).to_numpy())
        assert (curve.index == equity_curve(full).index).all()
        for objective in ("sharpe", "sortino", "calmar", "return"):
            assert score_equity(curve, objective) == score_equity(equity_curve(full), objective) or (
                math.isnan(score_equity(curve, objective)) and math.isnan(score_equity(equity_curve(full), objective)))
    assert liquidated  # 19x is liquidated by the wick


def test_an_invalid_parameter_set_is_recorded_not_raised():
    rec = evaluate({"key": "k", "strategy": "sma_crossover", "params": {"fast": 30, "slow": 10, "leverage": 1.0},
                    "data": "synthetic:500:1", "start": None, "stop": None, "objective": "sharpe",
                    "run": {"funding_rate": 0.0001}, "engine": "auto"})
    assert rec["key"] == "k" and math.isnan(rec["score"]) and rec["liquidated"] is False
    assert "fast < slow" in rec["error"]
    assert rec["bars"] == 500
