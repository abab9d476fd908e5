"""Benchmark: a 1,000-set grid on a year of seeded 1-minute bars (the issue's acceptance run).

    .venv/bin/python benchmarks/bench_optimize.py            # the full run (525,600 bars, 1,000 sets)
    .venv/bin/python benchmarks/bench_optimize.py --quick    # 50,000 bars, 27 sets: a smoke run

It runs the ``deleverage optimize`` command below in a subprocess (so the time includes start-up,
loading the data, every worker and writing the directory), prints the command, the wall time,
the rates and the per-fold summary, and writes ``bench.json`` into the output directory.
The README's figures come from this script.
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
           "--out", str(out), "--no-report"]
    if survive:
        cmd += ["--survive", survive]
    if workers:
        cmd += ["--workers", str(workers)]
    return cmd


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="50,000 bars and 27 sets")
    ap.add_argument("--bars", type=int, default=None, help="number of 1-minute bars (default 525,600; quick 50,000)")
    ap.add_argument("--survive", default="312,519", help="scenarios to survive (default 312,519; '' for none)")
    ap.add_argument("--workers", type=int, default=None, help="local pool size (default: CPU count)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-optimize")
    args = ap.parse_args(argv)
    bars = args.bars or (50_000 if args.quick else 525_600)
    if args.out.exists():
        shutil.rmtree(args.out)
    cmd = command(bars, args.out, args.quick, args.survive, args.workers)
    exe = [str(REPO / ".venv" / "bin" / "deleverage"), *cmd[1:]]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(exe, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
        return proc.returncode
    print(proc.stdout)
    summary = json.loads((args.out / "optimize.json").read_text())
    units = summary["evaluations"]["units"]
    sets = summary["trials"]
    chunk_bars = sum(c["bars"] for c in summary["walk_forward"]["chunks"])
    result = {
        "command": " ".join(cmd), "bars": bars, "parameter_sets": sets, "units": units,
        "wall_seconds": round(wall, 1), "optimizer_seconds": summary["seconds"],
        "sets_per_second": round(sets / wall, 2), "units_per_second": round(units / wall, 2),
        "bars_simulated_per_second": round(sets * chunk_bars / wall),
        "engine": summary["engine"], "executor": summary["executor"], "cpus": os.cpu_count(),
    }
    (args.out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
