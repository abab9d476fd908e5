"""Benchmark: the batched sweep against the per-set path on the same work, in one run.

    .venv/bin/python benchmarks/bench_optimize.py            # 525,600 bars, 1,000 sets, 312 and 519 required
    .venv/bin/python benchmarks/bench_optimize.py --quick    # 50,000 bars, 27 sets: a smoke run
    .venv/bin/python benchmarks/bench_optimize.py --baseline-tree /tmp/main-tree   # also time another checkout
    .venv/bin/python benchmarks/bench_optimize.py --kernel   # one batch in-process: signals, pass with/without scores

It runs the ``deleverage optimize`` command below twice in subprocesses (so each time includes
start-up, loading the data, every worker and writing the directory):

- **per-set path**: ``--batch 1``: one worker task and one compiled call per unit (parameter set
  x segment), as the optimizer worked before batching;
- **batched**: the default: the units of a segment go to the workers in batches, each batch one
  compiled call over many target arrays (``engine.fast.simulate_batch``), indicators once per
  chunk.

It checks that both write the same trials table (every column, scores bit for bit), prints the
wall times, the speed-up and the bars simulated per second (parameter sets x bars of the
walk-forward chunks + the scenarios' bars, over the wall time), the machine's load average
before and after (the machine may be shared), and writes ``bench.json`` into ``--out``.
With ``--baseline-tree DIR`` (e.g. ``git archive main | tar -x -C DIR``) the same command also
runs on that source tree (with this venv's packages) as a third column. The figures of
``docs/sweeps.md`` come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def command(bars: int, out: Path, quick: bool, survive: str, workers: int | None) -> list[str]:
    if quick:
        grid = ["--param", "fast=5:15:5", "--param", "slow=60:100:20", "--param", "leverage=1:9:4"]
    else:  # 10 x 10 x 10 = 1,000 sets
        grid = ["--param", "fast=5:50:5", "--param", "slow=100:550:50", "--param", "leverage=1:10:1"]
    cmd = ["deleverage", "optimize", "sma_crossover", *grid, "--data", f"synthetic:{bars}:7",
           "--funding-rate", "0.0001", "--objective", "sharpe", "--walk-forward", "1",
           "--out", str(out), "--no-report", "--no-progress"]
    if survive:
        cmd += ["--survive", survive]
    if workers:
        cmd += ["--workers", str(workers)]
    return cmd


def run_once(cmd: list[str], tree: Path | None = None) -> tuple[float, subprocess.CompletedProcess]:
    if tree is None:
        exe = [str(REPO / ".venv" / "bin" / "deleverage"), *cmd[1:]]
        env, cwd = None, REPO
    else:
        exe = [str(REPO / ".venv" / "bin" / "python"), "-c",
               "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))", *cmd[1:]]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        cwd = tree
    t0 = time.perf_counter()
    proc = subprocess.run(exe, cwd=cwd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, proc


def kernel(sets: int = 24, repeat: int = 5) -> dict:
    """One batch in this process on the first half-year chunk of ``synthetic:525600:7``: the
    compiled signals of ``sets`` random sma_crossover sets, the compiled pass without and with
    the score accumulators (median of ``repeat`` warm calls), and the whole ``evaluate_batch``."""
    import importlib
    import statistics

    import numpy as np

    from engine import fast
    from strategies import SmaCrossover

    ev = importlib.import_module("engine.optimize.evaluate")
    rng = np.random.default_rng(0)
    pts = [{"fast": int(rng.integers(5, 51)), "slow": int(rng.integers(100, 551)),
            "leverage": int(rng.integers(1, 11))} for _ in range(sets)]
    task = {"strategy": "sma_crossover", "data": "synthetic:525600:7", "start": 0, "stop": 262_800,
            "objective": "sharpe", "run": {"funding_rate": 0.0001}}
    bars = ev.segment_bars(task)
    prepared = ev._prepared(task, bars, ev.run_config(SmaCrossover, pts[0], task["run"]))

    def med(fn) -> float:
        fn()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    block = SmaCrossover.target_exposure_batch(bars, pts)
    n = sets * len(bars)
    sig = med(lambda: SmaCrossover.target_exposure_batch(bars, pts))
    plain = med(lambda: fast.simulate_batch(prepared, block, threads=1))
    scored = med(lambda: fast.simulate_batch(prepared, block, score=True, threads=1))
    whole = med(lambda: ev.evaluate_batch({**task, "keys": [str(i) for i in range(sets)], "points": pts}))
    report = {"sets": sets, "bars": len(bars), "signals_seconds": round(sig, 4),
              "pass_seconds": round(plain, 4), "pass_bars_per_second": round(n / plain),
              "pass_with_scores_seconds": round(scored, 4), "pass_with_scores_bars_per_second": round(n / scored),
              "evaluate_batch_seconds": round(whole, 4), "ms_per_set_and_chunk": round(1000 * whole / sets, 2),
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="50,000 bars and 27 sets")
    ap.add_argument("--bars", type=int, default=None, help="number of 1-minute bars (default 525,600; quick 50,000)")
    ap.add_argument("--survive", default="312,519", help="scenarios to survive (default 312,519; '' for none)")
    ap.add_argument("--workers", type=int, default=None, help="local pool size (default: CPU count)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-optimize")
    ap.add_argument("--baseline-tree", type=Path, default=None,
                    help="also run the command on this source tree (e.g. an export of main) for comparison")
    ap.add_argument("--kernel", action="store_true", help="only time one batch in this process (no sweep)")
    args = ap.parse_args(argv)
    if args.kernel:
        kernel()
        return 0
    import pandas as pd

    bars = args.bars or (50_000 if args.quick else 525_600)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    runs = {"per_set": ["--batch", "1"], "batched": []}
    if args.baseline_tree is not None:
        runs = {"baseline_tree": [], **runs}
    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    for label, extra in runs.items():
        out = args.out / label
        cmd = command(bars, out, args.quick, args.survive, args.workers) + extra
        print("$ " + " ".join(cmd), flush=True)
        wall, proc = run_once(cmd, args.baseline_tree if label == "baseline_tree" else None)
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
            return proc.returncode
        summary = json.loads((out / "optimize.json").read_text())
        sets = summary["trials"]
        chunk_bars = sum(c["bars"] for c in summary["walk_forward"]["chunks"])
        table = pd.read_parquet(out / "trials.parquet")
        results[label] = {"command": " ".join(cmd), "wall_seconds": round(wall, 2),
                          "optimizer_seconds": summary["seconds"], "units": summary["evaluations"]["units"],
                          "parameter_sets": sets, "sets_per_second": round(sets / wall, 2),
                          "bars_simulated_per_second": round(sets * chunk_bars / wall),
                          "engine": summary["engine"], "executor": summary["executor"], "_table": table}
        print(f"  {label}: {wall:.1f} s, {sets * chunk_bars / wall / 1e6:.1f} M bars/s (chunk bars x sets / wall)",
              flush=True)
    load_after = os.getloadavg()
    a, b = results["per_set"].pop("_table"), results["batched"].pop("_table")
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # raises when any score differs by a bit
    identical = bool((a["score_in_sample"].to_numpy().tobytes() == b["score_in_sample"].to_numpy().tobytes())
                     and (a["score_out_of_sample"].to_numpy().tobytes() == b["score_out_of_sample"].to_numpy().tobytes()))
    if "baseline_tree" in results:
        base = results["baseline_tree"].pop("_table")
        results["baseline_tree"]["same_table_as_batched"] = bool(base.equals(b))
    speedup = results["per_set"]["wall_seconds"] / results["batched"]["wall_seconds"]
    report = {"bars": bars, "survive": args.survive, "runs": results, "speedup_batched_vs_per_set": round(speedup, 2),
              "tables_identical": identical, "cpus": os.cpu_count(),
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in load_after]}
    (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
