"""Cost of the venue mechanics in the backtrader broker (issue 15): the same run with and
without partial liquidation, and with and without the 2025-10-10 ADL flow in the bars.

    .venv/bin/python benchmarks/bench_broker_mechanics.py

Prints bars per second (best of 3) of ``buy_and_hold`` on the 2025-10-10 scenario's Hyperliquid
bars (1,440 one-minute bars, a labelled reconstruction).
"""

from __future__ import annotations

import time

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
    for name, (frame, config) in cases.items():
        seconds = best_of(lambda: run_backtest(frame, BuyAndHold, config))
        print(f"{name:<48} {len(frame) / seconds:>9,.0f} bars/s  ({seconds * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
