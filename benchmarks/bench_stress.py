"""Wall time of the acceptance stress run: buy-and-hold, 8 scenarios x 8 leverage levels.

    .venv/bin/python benchmarks/bench_stress.py [--data reconstructed|real] [--workers N] [--out DIR]
        [--engine auto|fast|backtrader]

Uses the first 8 built-in scenarios (reconstructed; nothing downloaded) and leverage
1, 2, 3, 5, 10, 20, 50, 100; prints the wall time of loading the scenarios and of the grid.
No report is rendered (that is the reports' own cost).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from engine.stress import StressSpec, load_scenario, run_stress
from feeds.scenarios import scenario_names


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="reconstructed")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--engine", choices=("auto", "fast", "backtrader"), default="auto")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    names = list(scenario_names())[:8]
    t0 = time.perf_counter()
    inputs = [load_scenario(n, args.data) for n in names]
    t1 = time.perf_counter()
    spec = StressSpec(strategy="buy_and_hold", scenarios=names, leverages=[1, 2, 3, 5, 10, 20, 50, 100],
                      data_kind=args.data, workers=args.workers, engine=args.engine)
    out = args.out or tempfile.mkdtemp(prefix="bench-stress-")
    result = run_stress(spec, out, inputs=inputs)
    t2 = time.perf_counter()
    bars = sum(len(i.bars) for i in inputs)
    print(f"scenarios: {', '.join(names)} ({bars} bars in all)")
    print(f"cpus: {os.cpu_count()}, workers: {args.workers or os.cpu_count()}")
    print(f"load scenarios: {t1 - t0:.1f} s; 64-cell grid: {t2 - t1:.1f} s ({(t2 - t1) / 64:.2f} s per cell)")
    print(result.frontier.to_string(index=False))


if __name__ == "__main__":
    main()
