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


if __name__ == "__main__":
    main()
