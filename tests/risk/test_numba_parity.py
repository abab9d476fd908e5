"""Every public kernel of risk/formulas.py compiles with numba.njit and gives the Python numbers.

The fast engine compiles the very same functions (no second copy). ``jit_kernels`` is how:
kernels that call kernels need their callees compiled too.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from risk import formulas
from risk.venues import BINANCE_BTCUSD_PERP_2021, BINANCE_BTCUSDT_2021, BITMEX_XBTUSD_TABLES

numba = pytest.importorskip("numba")

PUBLIC = sorted(name for name, fn in inspect.getmembers(formulas, inspect.isfunction)
                if fn.__module__ == formulas.__name__ and not name.startswith("_") and name not in ("jit_kernels", "clone_into"))

T = BINANCE_BTCUSDT_2021
C = BINANCE_BTCUSD_PERP_2021
B = BITMEX_XBTUSD_TABLES[0]

CASES = {
    "notional": [(False, 2.0, 1.0, 60_000.0), (True, 1_000.0, 100.0, 50_000.0)],
    "unrealized_pnl": [(False, -2.0, 1.0, 60_000.0, 57_000.0), (True, 1_000.0, 100.0, 50_000.0, 45_000.0), (False, 0.0, 1.0, 1.0, 2.0)],
    "average_entry": [(False, 1.0, 100.0, 3.0, 200.0), (True, 1.0, 100.0, 3.0, 200.0)],
    "initial_margin": [(120_000.0, 20.0)],
    "maintenance_margin": [(120_000.0, 0.005, 50.0)],
    "margin_ratio": [(522.0, 1_000.0), (1.0, 0.0), (1.0, -5.0)],
    "tier_index": [(50_000.0, T.floors_array), (50_000.5, T.floors_array), (1e12, T.floors_array), (0.0, T.floors_array)],
    "cumulative_amounts": [(T.floors_array, T.mmrs_array), (C.floors_array, C.mmrs_array)],
    "liquidation_price_bracket": [
        (False, False, 1, 2.0, 1.0, 60_000.0, 6_000.0, 0.005, 50.0, 0.0, 0.0),
        (False, False, -1, 2.0, 1.0, 60_000.0, 6_000.0, 0.005, 50.0, 0.0, 0.0),
        (True, False, 1, 1_000.0, 100.0, 50_000.0, 0.1, 0.005, 0.0, 0.0, 0.0),
        (True, True, -1, 10_000.0, 1.0, 10_000.0, 0.0415, 0.00585, 0.0, 0.0, 0.0),
        (False, True, 1, 1.0, 1.0, 20_000.0, 400.0, 0.005, 0.0, 0.0, 0.0),
        (False, False, 1, 1.0, 1.0, 60_000.0, 60_000.0, 0.004, 0.0, 0.0, 0.0),  # NaN: cannot be liquidated
        (False, False, 1, 0.0, 1.0, 60_000.0, 6_000.0, 0.005, 50.0, 0.0, 0.0),  # NaN: no position
    ],
    "liquidation_price_tiered": [
        (False, False, 1, 1_000.0, 1.0, 60_000.0, 20_000_000.0, T.floors_array, T.mmrs_array, T.cums_array, 0.0, 0.0),
        (False, False, -1, 2.0, 1.0, 60_000.0, 6_000.0, T.floors_array, T.mmrs_array, T.cums_array, 100.0, -50.0),
        (True, False, 1, 30_000.0, 100.0, 50_000.0, 3.0, C.floors_array, C.mmrs_array, C.cums_array, 0.0, 0.0),
        (True, True, 1, 3_000_000.0, 1.0, 10_000.0, 30.0, B.floors_array, B.mmrs_array, B.cums_array, 0.0, 0.0),
    ],
    "bankruptcy_price": [(False, 1, 2.0, 1.0, 60_000.0, 6_000.0, 0.0, 0.0), (True, -1, 10_000.0, 1.0, 10_000.0, 0.04, 0.0, 0.0),
                         (False, 1, 1.0, 1.0, 100.0, 200.0, 0.0, 0.0)],
    "is_breached": [(1, 57_000.0, 56_999.0, 60_000.0), (-1, 62_000.0, 60_000.0, 61_000.0), (1, math.nan, 1.0, 2.0)],
    "funding_payment": [(False, 2.0, 1.0, 60_000.0, 0.0007), (True, -1_000.0, 100.0, 50_000.0, 0.0001)],
    "trade_fee": [(120_000.0, 0.0004), (120_000.0, -0.00025)],
    "next_funding_time": [(737_000.0, np.array([0.0, 8.0, 16.0])), (737_000.5, np.array([4.0, 12.0, 20.0])),
                          (737_000.9, np.array([0.0, 8.0, 16.0]))],
    "funding_schedule": [(737_000.0 + np.arange(30) / 24.0, np.array([0.0, 8.0, 16.0]), 0.0001),
                         (737_000.01 + np.arange(100) / 1440.0 * 7.0, np.array([4.0, 12.0, 20.0]), -0.0002)],
    "effective_mmr": [(0.005, True, 0.00075, True, 1, 0.0001), (0.005, True, 0.00075, True, -1, 0.0001),
                      (0.004, False, 0.0005, False, 1, 0.01)],
    "liquidation_fill_price": [(False, 1, 57_261.0, 57_000.0, 58_000.0), (False, 1, 57_261.0, 57_000.0, 56_000.0),
                               (False, -1, 62_711.0, 63_000.0, 62_800.0), (True, 1, 9_655.0, 9_615.0, 9_000.0),
                               (False, 1, math.nan, 57_000.0, 58_000.0)],
    "fill_beyond_bankruptcy": [(True, 1, 18_000.0, 17_800.0), (True, 1, 18_000.0, 18_100.0),
                               (True, -1, 22_000.0, 22_100.0), (False, 1, 18_000.0, 17_800.0),
                               (True, 1, math.nan, 17_800.0)],
    "liquidation_clearance": [(False, False, 1, 0.5, 1.0, 18_000.0, 18_000.0, 0.0125, 500.0),
                              (False, False, 1, 0.5, 1.0, 18_000.0, 18_000.0, 0.0125, 36.0),
                              (False, True, -1, 100_000.0, 1.0, 40_000.0, 40_000.0, 0.0125, -1.0),
                              (True, True, 1, 10_000.0, 1.0, 9_000.0, 9_100.0, 0.0, 0.0),
                              (True, False, 1, 1.0, 1.0, 9_000.0, math.nan, 0.0, 0.0)],
    "liquidation_fill": [(False, 1, 20_610.0, 20_600.0, 20_000.0, -14_634.0),
                         (True, -1, 19_390.0, 19_400.0, 20_000.0, -1.0),
                         (False, 1, 19_700.0, 19_600.0, 19_500.0, 9_756.0),
                         (False, 1, 19_700.0, 19_600.0, 20_000.0, -100.0),
                         (True, -1, 21_000.0, math.nan, 20_000.0, -5.0)],
    "liquidation_exit_price": [(1, 18_080.0, 18_500.0), (1, 18_080.0, 17_500.0), (-1, 21_900.0, 22_300.0),
                               (-1, 21_900.0, 21_000.0), (1, 18_080.0, math.nan)],
    "liquidation_charge": [(False, False, 1, 24.39, 1.0, 20_000.0, 20_610.0, 20_000.0, 0.0125, -14_634.0, True),
                           (True, False, 1, 24.39, 1.0, 20_000.0, 20_610.0, 20_000.0, 0.0, 3.0, True),
                           (False, False, 1, 0.5, 1.0, 18_000.0, 18_000.0, 18_500.0, 0.0125, 500.0, False),
                           (True, True, 1, 10_000.0, 1.0, 9_000.0, 9_100.0, 9_200.0, 0.0, 0.0, False),
                           # gaps: past bankruptcy (Binance, the fund closes at 17,500), past the
                           # liquidation price (BitMEX, at 9,050), past bankruptcy (BitMEX, at 8,900)
                           (False, False, 1, 5.0, 1.0, 18_000.0, 18_080.0, 17_500.0, 0.0125, 0.0, False),
                           (True, True, 1, 10_000.0, 1.0, 9_000.0, 9_100.0, 9_050.0, 0.0, 0.0, False),
                           (True, True, 1, 10_000.0, 1.0, 9_000.0, 9_100.0, 8_900.0, 0.0, 0.0, False),
                           (False, False, -1, 5.0, 1.0, 22_000.0, 21_900.0, 22_500.0, 0.0125, 0.0, False),
                           (True, False, 1, 1.0, 1.0, 9_000.0, math.nan, 8_000.0, 0.0, 0.0, False)],
    # Hyperliquid's backstop (1 BTC long, 10,000 margin, liquidation price 91,139.24): open 90,500
    # past the backstop level (500 < 754.17: taken), 91,000 above it, no gap, a short, insolvent
    "backstop_charge": [(True, 1, 91_139.24, 90_500.0, 90_500.0, 500.0, 1_131.25, 0.0, 0.0, False),
                        (True, 1, 91_139.24, 91_000.0, 91_000.0, 1_000.0, 1_137.5, 0.0, 0.0, False),
                        (True, 1, 91_139.24, 95_000.0, 91_139.24, 1_139.24, 1_139.24, 0.0, 0.0, False),
                        (True, -1, 108_641.98, 109_300.0, 109_300.0, 700.0, 1_366.25, 10.0, 10.0, False),
                        (False, 1, 91_139.24, 90_500.0, 90_500.0, 500.0, 1_131.25, 0.0, 0.0, False),
                        (True, 1, 91_139.24, 80_000.0, 80_000.0, -5.0, 1_000.0, -5.0, -5.0, True),
                        (True, 1, math.nan, 90_500.0, 90_500.0, 500.0, 1_131.25, 0.0, 0.0, False)],
}


@pytest.fixture(scope="module")
def compiled():
    return formulas.jit_kernels(numba.njit)


def test_every_public_kernel_is_listed_and_has_cases():
    assert set(PUBLIC) == set(formulas.KERNELS) == set(CASES)


@pytest.mark.parametrize("name", PUBLIC)
def test_numba_gives_the_python_numbers(compiled, name):
    python_fn = getattr(formulas, name)
    jit_fn = compiled[name]
    assert isinstance(jit_fn, numba.core.registry.CPUDispatcher)
    for args in CASES[name]:
        expected = python_fn(*args)
        got = jit_fn(*args)
        if isinstance(expected, np.ndarray):
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
        elif isinstance(expected, float) and math.isnan(expected):
            assert math.isnan(got), (name, args)
        else:
            assert got == pytest.approx(expected, rel=1e-12, abs=0), (name, args)


def test_plain_njit_of_a_composed_kernel_needs_jit_kernels():
    """Why jit_kernels exists: numba cannot type a Python callee found in the globals."""
    with pytest.raises(numba.core.errors.TypingError):
        numba.njit(formulas.liquidation_price_tiered)(False, False, 1, 2.0, 1.0, 60_000.0, 6_000.0,
                                                      T.floors_array, T.mmrs_array, T.cums_array, 0.0, 0.0)
    assert not isinstance(formulas.tier_index, numba.core.registry.CPUDispatcher)  # module left untouched
