"""Timing of the cascade simulator and of the scenario reconstructions (not a test).

    .venv/bin/python benchmarks/bench_cascade.py
    .venv/bin/python benchmarks/bench_cascade.py --baseline-tree /tmp/old   # + the same simulate
        timings on another checkout (e.g. ``git worktree add /tmp/old <commit>``), for before/after

The per-run times of ``simulate`` are the median of ``--runs`` runs after one warm-up run (the
warm-up includes numba's compile or cache load, timed separately in a fresh process: ``first
simulate``, with the on-disk cache and with an empty one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _median_ms(fn, runs: int) -> float:
    out = []
    for i in range(runs):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000.0


def simulate_timings(runs: int) -> dict[str, float]:
    """Per-run ms of ``simulate`` on the legacy presets and on the from_market 519 / 312 parameters."""
    from feeds.cascade import simulate
    from feeds.cascade.fit import preset

    cases = {"preset 519 (240 min, 5-s steps)": preset("519"), "preset 312 (1080 min, 5-s steps)": preset("312")}
    try:
        from feeds.cascade.calib import params_for
        from feeds.cascade.events import EVENTS
        from feeds.cascade.fit import market_theta

        cases["from_market 519 (240 min, 5-s steps)"] = params_for(EVENTS["519"], market_theta())
        cases["from_market 312 (1080 min, 10-s steps)"] = params_for(EVENTS["312"], market_theta())
    except Exception as exc:  # shared data absent
        print(f"from_market cases skipped ({exc})", file=sys.stderr)
    out = {}
    for name, p in cases.items():
        simulate(p, 0)  # warm-up (imports, inventory cache, compile or cache load)
        out[name] = _median_ms(lambda i, p=p: simulate(p, i), runs)
    if len(cases) > 2:
        out["calibration objective (5 events, from_market + simulate; mean of 20 random parameter sets)"] = \
            _objective_ms(20)
        out["calibration objective at the shipped fit (5 events x the fit's 3 seeds; mean of 20 calls)"] = \
            _shipped_objective_ms(20)
        out["calibration objective at the shipped fit, building each run's bar frame (simulate, not simulate_summary)"] = \
            _shipped_objective_ms(20, frame=True)
    return out


def _shipped_objective_ms(n: int, frame: bool = False) -> float:
    """Mean ms of one evaluation as the fit makes them (``calib._objective``, seeds 0, 1, 2) at
    the shipped theta; ``frame``: with ``simulate`` (the bar frame built and read) in place of
    ``simulate_summary``, i.e. the evaluation before the summary path."""
    import math

    from feeds.cascade import calib
    from feeds.cascade.fit import market_theta

    if not hasattr(calib, "simulate_summary"):
        return float("nan")
    if frame:
        def via_frame(p, seed=0, max_adl_rounds=None):   # the bound only stops runs that exceed it
            bars = calib.simulate(p, seed=seed)
            return bars.attrs["summary"], bars.attrs["inventory"], float(bars["close"].iloc[-1])

        saved, calib.simulate_summary = calib.simulate_summary, via_frame
        try:
            return _shipped_objective_ms(n)
        finally:
            calib.simulate_summary = saved

    th = market_theta()
    names = tuple(k for k in calib.BOUNDS if k in th)
    z = [math.log(th[k]) if k in calib.LOG_SCALE else th[k] for k in names]
    calib._objective(z, names, tuple(calib.EVENTS), (0, 1, 2), None)
    t = time.perf_counter()
    for _ in range(n):
        calib._objective(z, names, tuple(calib.EVENTS), (0, 1, 2), None)
    return (time.perf_counter() - t) / n * 1000.0


def _objective_ms(n: int) -> float:
    """Mean ms of one evaluation of the cross-event calibration's objective (calib._objective:
    from_market + simulate on all five events) over ``n`` parameter sets drawn uniformly in the
    fit's bounds (fixed seed), i.e. what differential evolution calls ~3,400 times."""
    import math

    import numpy as np

    from feeds.cascade import calib

    names = tuple(calib.BOUNDS)
    bounds = [(math.log(calib.BOUNDS[k][0]), math.log(calib.BOUNDS[k][1])) if k in calib.LOG_SCALE else calib.BOUNDS[k]
              for k in names]
    rng = np.random.default_rng(11)
    zs = [[rng.uniform(a, b) for a, b in bounds] for _ in range(n)]
    calib._objective(zs[0], names, tuple(calib.EVENTS), (0,), None)
    t = time.perf_counter()
    for z in zs:
        calib._objective(z, names, tuple(calib.EVENTS), (0,), None)
    return (time.perf_counter() - t) / n * 1000.0


def first_call_s(tree: str | None = None, cold: bool = False) -> float:
    """Wall time of the first ``simulate`` in a fresh interpreter (imports excluded); ``cold``:
    with an empty numba cache (NUMBA_CACHE_DIR in a temporary folder), i.e. the compile."""
    import tempfile

    code = ("import time; from feeds.cascade import simulate, preset; p = preset('519'); "
            "t = time.perf_counter(); simulate(p, 0); print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, **({"PYTHONPATH": tree} if tree else {}), **({"NUMBA_CACHE_DIR": tmp} if cold else {}))
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-tree", help="another checkout of the project to time simulate on as well")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--simulate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.simulate_only:  # child run on a baseline tree
        print(json.dumps(simulate_timings(args.runs)))
        return
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    now = simulate_timings(args.runs)
    base = None
    if args.baseline_tree:
        res = subprocess.run([sys.executable, __file__, "--simulate-only", "--runs", str(args.runs)],
                             capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=args.baseline_tree), check=True)
        base = json.loads(res.stdout.strip().splitlines()[-1])
    for name, ms in now.items():
        line = f"{'' if name.startswith('calibration') else 'simulate '}{name}: {ms:.1f} ms per run"
        if base and name in base:
            line += f"  (baseline {base[name]:.1f} ms, {base[name] / ms:.1f}x)"
        print(line)
    print(f"first simulate in a fresh process: {first_call_s():.2f} s with numba's cache, "
          f"{first_call_s(cold=True):.2f} s compiling (empty cache)"
          + (f"  (baseline {first_call_s(args.baseline_tree):.2f} s)" if args.baseline_tree else ""))

    from feeds.scenarios import list_scenarios

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
    n = args.runs
    from_market(frame, EVENTS["519"].at)
    t = time.perf_counter()
    for _ in range(n):
        from_market(frame, EVENTS["519"].at, minutes=240)
    print(f"from_market on real BitMEX 519 bars (72 h before 12:00): {(time.perf_counter() - t) / n * 1000:.0f} ms")
    t = time.perf_counter()
    for _ in range(n):
        liquidation_map(frame, EVENTS["519"].at)
    print(f"liquidation_map (81 bands): {(time.perf_counter() - t) / n * 1000:.0f} ms")


if __name__ == "__main__":
    main()
