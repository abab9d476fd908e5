"""Cost of the venue mechanics in both engines (issue 15): the same run with and without
partial liquidation, and with and without the 2025-10-10 ADL flow in the bars.

    .venv/bin/python benchmarks/bench_broker_mechanics.py

Prints bars per second (best of 3) of ``buy_and_hold`` on the 2025-10-10 scenario's Hyperliquid
bars (1,440 one-minute bars, a labelled reconstruction): the backtrader broker
(``run_backtest``), the fast engine end to end (``run_fast``: the full RunResult) and its
compiled pass alone (``simulate_arrays`` on bars prepared once, best of 50), after a warm-up
call (numba compile or cache load).
"""

from __future__ import annotations

import time

from engine import fast
from engine.runner import RunConfig, run_backtest
from feeds.scenarios import get_scenario
from strategies.buy_and_hold import BuyAndHold


def best_of(fn, n: int = 3) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    bars = get_scenario("2025-10-10").bars(venue="hyperliquid")
    plain = bars.drop(columns=["adl_long_notional", "adl_short_notional"])
    cases = {
        "long 3x, whole liquidation (default)": (plain, RunConfig("buy_and_hold", {"leverage": 3.0}, venue="hyperliquid")),
        "long 3x, --partial-liquidation": (plain, RunConfig("buy_and_hold", {"leverage": 3.0}, venue="hyperliquid",
                                                             partial_liquidation=True)),
        "long 30x (liquidated), --partial-liquidation": (plain, RunConfig("buy_and_hold", {"leverage": 30.0},
                                                                           venue="hyperliquid", cash=100_000.0,
                                                                           partial_liquidation=True)),
        "short 3x, no ADL flow": (plain, RunConfig("buy_and_hold", {"leverage": 3.0, "side": -1}, venue="hyperliquid")),
        "short 3x, with the ADL flow (ADL'd at 21:16)": (bars, RunConfig("buy_and_hold", {"leverage": 3.0, "side": -1},
                                                                          venue="hyperliquid")),
    }
    print(f"{'run':<48} {'backtrader':>14} {'run_fast':>14} {'compiled pass':>16}   (bars/s)")
    for name, (frame, config) in cases.items():
        slow = best_of(lambda: run_backtest(frame, BuyAndHold, config))
        fast.run_fast(frame, BuyAndHold, config)  # warm-up: compile or cache load
        full = best_of(lambda: fast.run_fast(frame, BuyAndHold, config))
        prepared = fast.prepare(frame, config)
        target = fast.exposure_of(BuyAndHold, frame, config.params)
        fast.simulate_arrays(prepared, target)
        kernel = best_of(lambda: fast.simulate_arrays(prepared, target), 50)
        n = len(frame)
        print(f"{name:<48} {n / slow:>14,.0f} {n / full:>14,.0f} {n / kernel:>16,.0f}")


if __name__ == "__main__":
    main()
