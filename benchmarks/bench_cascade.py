"""Timing of the cascade simulator and of the scenario reconstructions (not a test).

    .venv/bin/python benchmarks/bench_cascade.py
"""

from __future__ import annotations

import time

from feeds.cascade import preset, simulate
from feeds.scenarios import list_scenarios


def main() -> None:
    p = preset("519")
    simulate(p, 0)  # warm-up (imports, inventory)
    t = time.perf_counter()
    n = 10
    for seed in range(n):
        simulate(p, seed)
    per = (time.perf_counter() - t) / n
    print(f"simulate 519 preset ({p.minutes} min at {p.dt_s:g}-s steps): {per * 1000:.0f} ms per run")
    t = time.perf_counter()
    bars = 0
    for s in list_scenarios():
        for asset, venues in s.paths.items():
            for venue in venues:
                bars += len(s.bars(asset=asset, venue=venue))
    print(f"all scenario reconstructions: {bars} bars in {time.perf_counter() - t:.2f} s")
    try:
        from feeds.cascade.events import EVENTS, market_frame
        from feeds.cascade.liqmap import liquidation_map
        from feeds.cascade.market import from_market

        frame = market_frame(EVENTS["519"])
    except Exception as exc:  # shared data absent
        print(f"from_market / liquidation_map: skipped ({exc})")
        return
    from_market(frame, EVENTS["519"].at)
    t = time.perf_counter()
    for _ in range(n):
        p = from_market(frame, EVENTS["519"].at, minutes=240)
    print(f"from_market on real BitMEX 519 bars (72 h before 12:00): {(time.perf_counter() - t) / n * 1000:.0f} ms")
    t = time.perf_counter()
    simulate(p, 0)
    print(f"simulate from_market 519 (240 min, backlog engine): {(time.perf_counter() - t) * 1000:.0f} ms")
    t = time.perf_counter()
    for _ in range(n):
        liquidation_map(frame, EVENTS["519"].at)
    print(f"liquidation_map (81 bands): {(time.perf_counter() - t) / n * 1000:.0f} ms")


if __name__ == "__main__":
    main()
