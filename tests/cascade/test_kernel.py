"""The kernel's helpers keep CPython's semantics (feeds/cascade/kernel.py): bisect with ties and
NaN, math.exp / float ** overflow errors, int() of NaN / inf, min/max with NaN; ADL resumes the
same step at stage 4; the simulator state handed back and forth stays consistent."""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.cascade import CascadeParams, Shock, simulate
from feeds.cascade import kernel as K

LEVELS = np.array([-1.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 2.0])  # ties on purpose


@pytest.mark.parametrize("x", [-2.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, math.nan, math.inf, -math.inf])
def test_bisect_matches_the_bisect_module_including_ties(x):
    lv = LEVELS.tolist()
    assert K.bisect_left(LEVELS, x) == bisect.bisect_left(lv, x)
    assert K.bisect_right(LEVELS, x) == bisect.bisect_right(lv, x)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=0, max_size=12), st.integers(-6, 6))
def test_bisect_property(values, x):
    a = sorted(float(v) for v in values)
    arr = np.array(a, dtype=np.float64)
    assert K.bisect_left(arr, float(x)) == bisect.bisect_left(a, float(x))
    assert K.bisect_right(arr, float(x)) == bisect.bisect_right(a, float(x))


def _py(fn, *args):
    try:
        return fn(*args)
    except (OverflowError, ValueError) as exc:
        return type(exc)


@pytest.mark.parametrize("v", [0.0, -1.5, 709.0, 709.79, 710.0, 1e300, -1e300, -800.0, math.inf, -math.inf, math.nan])
def test_exp_raises_where_math_exp_does(v):
    want, got = _py(math.exp, v), _py(K.py_exp, v)
    if isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == want  # same value, or the same exception type


@pytest.mark.parametrize("a, b", [(2.0, 0.5), (0.0, 1.0), (1e300, 1.5), (1e200, 1.5), (1e205, 1.5), (math.inf, 1.0),
                                  (math.nan, 0.5), (3.0, 1.5)])
def test_pow_raises_where_float_pow_does(a, b):
    want, got = _py(lambda x, y: x ** y, a, b), _py(K.py_pow, a, b)
    if isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == want


@pytest.mark.parametrize("v", [0.0, 2.7, -2.7, 12001.49, math.nan, math.inf, -math.inf])
def test_int_truncates_and_raises_like_int(v):
    assert _py(K.py_int, v) == _py(int, v)


@pytest.mark.parametrize("a, b", [(1.0, 2.0), (2.0, 1.0), (1.0, 1.0), (math.nan, 1.0), (1.0, math.nan), (0.0, -0.0)])
def test_min_max_follow_cpython_with_nan(a, b):
    for k_fn, py_fn in ((K.py_min, min), (K.py_max, max)):
        got, want = k_fn(a, b), py_fn(a, b)
        assert (math.isnan(got) and math.isnan(want)) or (got == want and math.copysign(1, got) == math.copysign(1, want))


def test_seq_sum_is_left_to_right():
    a = np.array([1e16, 1.0, -1e16, 1.0])
    assert K.seq_sum(a) == sum(a.tolist()) == 1.0 != math.fsum(a)  # rounded as Python's sum, not exactly (2.0)
    assert K.seq_sum(np.zeros(0)) == 0.0


def test_ou_path_recursion():
    z = np.array([1.0, -0.5, 2.0])
    phi, sd = 0.9, math.sqrt(1 - 0.81)
    acc, want = 0.0, []
    for v in z:
        acc = phi * acc + sd * v
        want.append(acc)
    assert K.ou_path(z, phi, sd).tolist() == want


def test_adl_resumes_the_same_step_at_stage_4(monkeypatch):
    """The kernel hands ADL to Python only with the fund exhausted and a backlog (stage 3), Python
    leaves the fund at 0, and the run goes on (the same step's stage 4 onwards: the full path is
    there; the golden sets binance_adl / bitmex_adl_tau pin the numbers)."""
    import feeds.cascade.model as model

    calls = []
    real = model._adl_step

    def spy(p, st, *bins):
        calls.append(float(st[K.S_FUND]))
        assert st[K.S_FUND] < 0 and (st[K.S_BLQ] > 0 or st[K.S_BSQ] > 0)
        real(p, st, *bins)
        assert st[K.S_FUND] == 0.0

    monkeypatch.setattr(model, "_adl_step", spy)
    p = CascadeParams(minutes=90, dt_s=10.0, price0=40_000.0, long_oi_usd=12e9, short_oi_usd=6e9, depth_usd=60e6,
                      engine_rate=0.1, buyer_strength=0.02, insurance_fund_usd=0.0,
                      shocks=(Shock(0.0, 5.0, 600e6), Shock(60.0, 5.0, -900e6)))
    bars = simulate(p, 3)
    s = bars.attrs["summary"]
    assert calls and len(calls) <= s["adl_runs"] <= 2 * len(calls)  # one or both sides per ADL step
    assert s["insurance_fund_end_usd"] == 0.0 and s["insurance_fund_min_usd"] == 0.0  # floored at 0 after ADL
    assert (bars["open_interest"] > 0).all() and bars["close"].notna().all()
