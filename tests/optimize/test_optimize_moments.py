"""The optimizer's objectives from the compiled pass's running accumulators
(engine.fast.MOMENT_KEYS -> reports.metrics.score_from_moments) equal the report metrics
(empyrical, reports.metrics) on the run's equity curve, for every --objective; and a hand-made
curve's accumulators by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine import fast
from engine.optimize.evaluate import OBJECTIVES, score_fast, score_moments
from engine.runner import RunConfig
from reports import metrics
from tests.fast.helpers import random_bars, random_targets


def _close(a: float, b: float) -> bool:
    if a != a or b != b:
        return a != a and b != b
    return a == pytest.approx(b, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed,levels,venue", [(1, (-5.0, 0.0, 3.0, 10.0), "binance_usdm"),
                                               (2, (-40.0, 0.0, 25.0, 50.0), "bybit"),  # liquidations
                                               (3, (0.0,), "binance_usdm"),  # never exposed: flat curve
                                               (4, (-2.0, 2.0), "bitmex")])
def test_moment_scores_equal_the_report_metrics_on_the_equity_curve(seed, levels, venue):
    bars = random_bars(seed, n=3000)
    cash = 10_000.0 if venue != "bitmex" else 1.0
    p = fast.prepare(bars, RunConfig(strategy="x", venue=venue, cash=cash, funding_rate=1e-4))
    exposure = random_targets(seed, len(bars), levels, 0.01)
    with_eq = fast.simulate_arrays(p, exposure, equity=True)
    with_m = fast.simulate_arrays(p, exposure, score=True)
    assert with_m["final_equity"] == with_eq["final_equity"]  # the accumulators change nothing else
    if seed == 2:
        assert with_m["liquidated"]
    for objective in OBJECTIVES:
        a = score_moments(p, with_m, cash, objective)
        b = score_fast(p, with_eq["equity"], cash, objective)
        assert _close(a, b), (objective, a, b)
    if levels == (0.0,):
        assert all(math.isnan(score_moments(p, with_m, cash, o)) for o in ("sharpe", "sortino", "calmar"))


def test_moments_of_a_hand_made_curve():
    # cash 100, equity 110, 99, 99, 108.9: returns 0.1, -0.1, 0, 0.1
    idx = pd.date_range("2024-01-01", periods=4, freq="1min", tz="UTC")
    curve = pd.Series([100.0, 110.0, 99.0, 99.0, 108.9],
                      index=idx.insert(0, idx[0] - pd.Timedelta("1min")))
    r = np.array([0.1, -0.1, 0.0, 0.1])
    m = {"returns": 4, "returns_valid": 4, "returns_sum": r.sum(), "returns_sumsq": (r * r).sum(),
         "returns_down_sumsq": 0.01, "returns_min": -0.1, "returns_max": 0.1,
         "max_drawdown_from_start": 0.1}  # the peak 110 to 99
    ppy = 525_600.0
    # sharpe: mean 0.025, sample std sqrt(0.0075) ... by formula
    mean, std = 0.025, math.sqrt((0.03 - 4 * 0.025 ** 2) / 3)
    assert metrics.score_from_moments("sharpe", m, 1.089, ppy) == pytest.approx(mean / std * math.sqrt(ppy))
    # sortino: mean x ppy / (sqrt(0.01 / 4) x sqrt(ppy))
    assert metrics.score_from_moments("sortino", m, 1.089, ppy) == pytest.approx(mean * ppy / (0.05 * math.sqrt(ppy)))
    assert metrics.score_from_moments("return", m, 1.089, ppy) == pytest.approx(0.089)
    for objective, fn in (("sharpe", metrics.sharpe), ("sortino", metrics.sortino)):
        assert metrics.score_from_moments(objective, m, 1.089, ppy) == pytest.approx(fn(curve, ppy), rel=1e-12)
    # calmar on a curve of hours annualises to overflow: NaN, as reports.metrics.calmar
    assert math.isnan(metrics.score_from_moments("calmar", m, 1.089, ppy))
    assert metrics.score_from_moments("calmar", m, 1.089, 4.0) == pytest.approx(metrics.calmar(curve, 4.0))
    # equal returns: zero dispersion, the Sharpe ratio is undefined
    flat = dict(m, returns_min=0.01, returns_max=0.01)
    assert math.isnan(metrics.score_from_moments("sharpe", flat, 1.0, ppy))
