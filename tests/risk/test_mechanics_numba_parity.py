"""Every kernel of risk/partial.py and risk/adl.py compiles with numba.njit and gives the Python numbers.

Like tests/risk/test_numba_parity.py for risk/formulas.py: the fast engine will compile the same
functions (``risk.partial.jit_kernels``, ``risk.adl.jit_kernels``), not a second copy.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from risk import adl, partial
from risk.venues import BINANCE_BTCUSDT_2024, BITMEX_XBTUSD_TABLES

numba = pytest.importorskip("numba")

T = BINANCE_BTCUSDT_2024
B = BITMEX_XBTUSD_TABLES[0]
OKX_F = np.array([0.0, 1e6, 2e6, 3e6, 4e6])
OKX_M = np.array([0.0045, 0.0095, 0.0145, 0.0195, 0.0245])
Z5 = np.zeros(5)


def _public(module):
    return sorted(name for name, fn in inspect.getmembers(module, inspect.isfunction)
                  if fn.__module__ == module.__name__ and not name.startswith("_")
                  and name in module.KERNELS)


def _step(rule, inverse, mm_on_entry, side, qty, cs, entry, wallet, price, t, fee, lot, cooldown=False):
    return (rule, inverse, mm_on_entry, side, qty, cs, entry, wallet, price, t[0], t[1], t[2], 0.0, 0.0, fee, lot,
            2, 2, 0.2, 100_000.0, cooldown)


TB = (T.floors_array, T.mmrs_array, T.cums_array)
BB = (B.floors_array, B.mmrs_array + 0.00075, B.cums_array)
OK = (OKX_F, OKX_M, Z5)

PARTIAL_CASES = {
    "margin_balance": [(False, 1, 300.0, 1.0, 60_000.0, 54_600.0, 1.8e6, 0.0, 0.0),
                       (True, -1, 3e6, 1.0, 10_000.0, 10_200.0, 6.0, 0.5, -0.1)],
    "position_maintenance": [(False, False, 300.0, 1.0, 60_000.0, 54_600.0, *TB),
                             (True, True, 3e6, 1.0, 10_000.0, 9_900.0, *BB)],
    "position_tier": [(False, False, 300.0, 1.0, 60_000.0, 54_600.0, T.floors_array),
                      (True, True, 3e6, 1.0, 10_000.0, 9_900.0, B.floors_array)],
    "lot_ceil": [(39.43834, 0.001), (2.0, 1.0), (0.3, 0.0)],
    "lot_floor": [(0.6000001, 0.00001), (7.9, 1.0), (0.3, 0.0)],
    "partial_liquidation_step": [
        _step(partial.RULE_RESTORE, False, False, 1, 300.0, 1.0, 60_000.0, 1.8e6, 54_600.0, TB, 0.0125, 0.001),
        _step(partial.RULE_RESTORE, False, False, 1, 2.0, 1.0, 60_000.0, 6_000.0, 57_261.0, TB, 0.0125, 0.001),
        _step(partial.RULE_STEP_DOWN, True, True, 1, 3e6, 1.0, 10_000.0, 6.0, 9_900.0, BB, 0.00075, 1.0),
        _step(partial.RULE_TIER_STEPS, False, False, 1, 15_000.0, 0.01, 31_000.0, 190_000.0, 30_000.0, OK, 0.0005, 1.0),
        _step(partial.RULE_FRACTION, False, False, 1, 3.0, 1.0, 100_000.0, 30_000.0, 90_900.0,
              (np.array([0.0]), np.array([0.0125]), np.array([0.0])), 0.0, 0.00001),
        _step(partial.RULE_FRACTION, False, False, -1, 3.0, 1.0, 100_000.0, 30_000.0, 109_000.0,
              (np.array([0.0]), np.array([0.0125]), np.array([0.0])), 0.0, 0.00001, True),
        _step(partial.RULE_WHOLE, False, False, 1, 2.0, 1.0, 60_000.0, 6_000.0, 50_000.0, TB, 0.0125, 0.001),
        _step(partial.RULE_RESTORE, False, False, 1, 2.0, 1.0, 60_000.0, 6_000.0, 59_000.0, TB, 0.0125, 0.001),
    ],
}

POP = np.array([0.1, 0.5, 0.5, 2.0, 3.0])
ADL_CASES = {
    "score_binance": [(40.2, 4.27, 0.1342 * 44.47), (-5.0, 100.0, 3.0), (10.0, -20.0, 1.0)],
    "effective_leverage": [(False, -1, 2.0, 1.0, 96_000.0, 120_000.0), (True, 1, 1e5, 1.0, 41_000.0, 38_000.0),
                           (False, 1, 1.0, 1.0, 100.0, math.nan), (False, 1, 1.0, 1.0, 90.0, 95.0)],
    "score_pnl_leverage": [(False, -1, 2.0, 1.0, 110_000.0, 96_000.0, 120_000.0, True),
                           (False, -1, 2.0, 1.0, 90_000.0, 96_000.0, 110_000.0, True),
                           (False, -1, 2.0, 1.0, 90_000.0, 96_000.0, 110_000.0, False),
                           (True, 1, 5_000.0, 1.0, 7_890.08, 8_100.0, 7_735.37, True),
                           (False, 1, 0.0, 1.0, 1.0, 1.0, 0.5, True)],
    "score_hyperliquid": [(-1, 110_000.0, 96_000.0, 192_000.0, 40_000.0), (1, 90_000.0, 96_000.0, 96_000.0, 0.0)],
    "rank_quantile": [(0.5, POP), (5.0, POP), (0.0, POP), (1.0, np.zeros(0))],
    "indicator_lights": [(0.2, 5), (0.2000001, 5), (1.0, 5), (0.01, 5), (0.0, 5)],
    "bankrupt_deficit": [(False, 1, 1.0, 1.0, 99_000.0, 96_000.0), (True, -1, 1e5, 1.0, 41_000.0, 42_000.0),
                         (False, 1, 1.0, 1.0, 99_000.0, 99_500.0)],
    "allocate": [(2.5, np.array([1.0, 2.0, 3.0, 1.0]), np.array([0.5, 0.9, 0.5, math.nan]), np.array([3, 0, 1, 2])),
                 (10.0, np.array([1.0, 2.0]), np.array([0.1, 0.2]), np.array([0, 1]))],
    "queue_step": [(100.0, 50.0, 120.0), (100.0, 50.0, 80.0), (100.0, 50.0, 500.0), (0.0, 0.0, 10.0)],
    "adl_close_qty": [(2.0, 200_000.0, 0.9, 1e6, 150_000.0), (2.0, 200_000.0, 0.9, 1e6, 50_000.0),
                      (2.0, 200_000.0, 1.0, 1e6, 1e9), (1.0, 0.0, 0.5, 1e6, 1e9)],
    "hit_probability": [(0.1, 0.8, 1.0), (0.3, 0.8, 1.0), (0.05, 0.6, 0.8), (0.5, 0.9, 0.9)],
}


@pytest.fixture(scope="module")
def compiled():
    return {**partial.jit_kernels(numba.njit), **adl.jit_kernels(numba.njit)}


def test_every_kernel_has_cases():
    assert set(_public(partial)) == set(partial.KERNELS) == set(PARTIAL_CASES)
    assert set(_public(adl)) == set(adl.KERNELS) == set(ADL_CASES)


def _same(got, expected, name, args):
    if isinstance(expected, tuple):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            _same(g, e, name, args)
    elif isinstance(expected, np.ndarray):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got), (name, args)
    else:
        assert got == pytest.approx(expected, rel=1e-12, abs=0), (name, args)


@pytest.mark.parametrize("name", sorted({**PARTIAL_CASES, **ADL_CASES}))
def test_numba_gives_the_python_numbers(compiled, name):
    module = partial if name in PARTIAL_CASES else adl
    cases = {**PARTIAL_CASES, **ADL_CASES}[name]
    python_fn = getattr(module, name)
    jit_fn = compiled[name]
    assert isinstance(jit_fn, numba.core.registry.CPUDispatcher)
    for args in cases:
        _same(jit_fn(*args), python_fn(*args), name, args)
