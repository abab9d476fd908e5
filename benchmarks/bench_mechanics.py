"""Timing of the venue-mechanics kernels (risk/partial.py, risk/adl.py); not a test.

    .venv/bin/python benchmarks/bench_mechanics.py

Per-call cost of the compiled kernels as the fast engine will use them (called from inside a
compiled loop, so no Python dispatch is counted), and of the exchange-level ADL over a
population of positions.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from risk import adl, partial
from risk.adl import AdlPosition, run_adl
from risk.venues import BINANCE_BTCUSDT_2024

N = 1_000_000


def main() -> None:
    k = {**partial.jit_kernels(numba.njit), **adl.jit_kernels(numba.njit)}
    step, qstep, hitp = k["partial_liquidation_step"], k["queue_step"], k["hit_probability"]
    t = BINANCE_BTCUSDT_2024
    floors, mmrs, cums = t.floors_array, t.mmrs_array, t.cums_array

    @numba.njit
    def loop_partial(n, prices):
        acc = 0.0
        for i in range(n):
            out = step(1, False, False, 1, 300.0, 1.0, 60_000.0, 1.8e6, prices[i % prices.shape[0]], floors, mmrs,
                       cums, 0.0, 0.0, 0.0125, 0.001, 2, 2, 0.2, 100_000.0, False)
            acc += out[0]
        return acc

    @numba.njit
    def loop_queue(n):
        acc = 0.0
        for i in range(n):
            frac, ahead, own = qstep(100.0 + (i % 7), 50.0, 120.0)
            acc += frac + hitp(0.1, 0.8, 1.0)
        return acc

    sweeps = {"not in liquidation (the per-bar common case)": np.linspace(55_000.0, 60_000.0, 1001),
              "in liquidation, partial close computed": np.linspace(54_560.0, 54_650.0, 1001)}
    loop_queue(10)
    for label, prices in sweeps.items():
        loop_partial(10, prices)
        t0 = time.perf_counter()
        loop_partial(N, prices)
        per = (time.perf_counter() - t0) / N
        print(f"partial_liquidation_step (Binance rule, 12 brackets), compiled, {label}: {per * 1e9:.0f} ns per call")
    t0 = time.perf_counter()
    loop_queue(N)
    per = (time.perf_counter() - t0) / N
    print(f"queue_step + hit_probability, compiled: {per * 1e9:.0f} ns per bar")

    rng = np.random.default_rng(0)
    for n in (1_000, 10_000):
        positions = [AdlPosition(f"acct{i:05d}", int(rng.choice([1, -1])), float(rng.uniform(0.01, 5.0)),
                                 float(rng.uniform(80_000.0, 120_000.0)), float(rng.uniform(1_000.0, 200_000.0)))
                     for i in range(n)]
        run_adl("bybit", "long", 50.0, 99_000.0, 150_000.0, positions[:10], insurance_fund=0.0, mark=96_000.0)
        t0 = time.perf_counter()
        out = run_adl("bybit", "long", 50.0, 99_000.0, 150_000.0, positions, insurance_fund=0.0, mark=96_000.0)
        print(f"run_adl over {n} positions (Bybit ranking): {(time.perf_counter() - t0) * 1000:.1f} ms, "
              f"{len(out.fills)} positions deleveraged")


if __name__ == "__main__":
    main()
