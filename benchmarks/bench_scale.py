"""Benchmark: a 100,000-set random search over a year of 1-minute bars, 312 and 519 required.

    .venv/bin/python benchmarks/bench_scale.py                    # the full run: 100,000 sets
    .venv/bin/python benchmarks/bench_scale.py --sets 5000        # a part of it (the rate extrapolates)
    .venv/bin/python benchmarks/bench_scale.py --kill-after 60    # kill -9 the run after 60 s, then --resume

It runs ``deleverage optimize sma_crossover --method random`` (the command is printed) in a
subprocess on 525,600 seeded 1-minute bars (``synthetic:525600:7``), walk-forward 1 (two
half-year chunks) with the 312 and 519 waterfalls required, polls the resident memory of the
whole process tree (the optimizer and its pool workers; ``psutil``) every 0.25 s, and prints the
wall time, the peak memory (``peak_pss_mb``: the tree's proportional set size, shared pages
counted once; ``peak_rss_mb``: the RSS sum, which counts the pages the forked workers share with
the parent once per process, so it overstates the tree), the sets per second, the bars simulated per second and, for a
partial run, the time 100,000 sets would take at that rate. With ``--kill-after`` the run is
killed with SIGKILL after that many seconds and continued with ``--resume``; the times of both
legs and the units taken from the store are reported. The machine's load average before and after
is printed (a shared machine slows every figure down). Writes ``bench.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FULL = 100_000


def command(sets: int, out: Path, workers: int | None, objective: str, seed: int) -> list[str]:
    cmd = ["deleverage", "optimize", "sma_crossover", "--method", "random", "--trials", str(sets), "--seed", str(seed),
           "--param", "fast=5:50", "--param", "slow=100:550", "--param", "leverage=1:10",
           "--data", "synthetic:525600:7", "--funding-rate", "0.0001", "--objective", objective,
           "--walk-forward", "1", "--survive", "312,519", "--out", str(out), "--no-report", "--no-progress"]
    if workers:
        cmd += ["--workers", str(workers)]
    return cmd


def _tree_memory(proc) -> tuple[int, int]:
    """(RSS sum, PSS sum) of the process tree in bytes. PSS counts a page shared by k processes
    as 1/k in each (forked pool workers share the parent's pages), so the PSS sum is the tree's
    physical memory; the RSS sum counts every shared page once per process."""
    import psutil

    try:
        p = psutil.Process(proc.pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    rss = pss = 0
    for q in procs:
        try:
            info = q.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return rss, pss


def run_leg(cmd: list[str], kill_after: float | None) -> dict:
    exe = [str(REPO / ".venv" / "bin" / "deleverage"), *cmd[1:]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(exe, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    peak = peak_pss = 0
    killed = False
    while proc.poll() is None:
        rss, pss = _tree_memory(proc)
        peak, peak_pss = max(peak, rss), max(peak_pss, pss)
        if kill_after is not None and time.perf_counter() - t0 > kill_after:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.25)
    out, err = proc.communicate()
    return {"seconds": round(time.perf_counter() - t0, 1), "peak_pss_mb": round(peak_pss / 2**20),
            "peak_rss_mb": round(peak / 2**20), "killed": killed,
            "returncode": proc.returncode, "stdout": out, "stderr": err}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", type=int, default=FULL, help=f"parameter sets drawn (default {FULL:,})")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--objective", default="sharpe")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kill-after", type=float, default=None, help="SIGKILL the run after this many seconds, then resume")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-scale")
    args = ap.parse_args(argv)
    if args.out.exists():
        shutil.rmtree(args.out)
    run_dir = args.out / "run"
    cmd = command(args.sets, run_dir, args.workers, args.objective, args.seed)
    print("$ " + " ".join(cmd), flush=True)
    load_before = os.getloadavg()
    legs = [run_leg(cmd, args.kill_after)]
    if legs[0]["killed"]:
        print(f"  killed with SIGKILL after {legs[0]['seconds']} s; resuming", flush=True)
        legs.append(run_leg(cmd + ["--resume"], None))
    last = legs[-1]
    if last["returncode"] != 0:
        print(last["stdout"], last["stderr"], sep="\n", file=sys.stderr)
        return last["returncode"] or 1
    load_after = os.getloadavg()
    summary = json.loads((run_dir / "optimize.json").read_text())
    wall = sum(leg["seconds"] for leg in legs)
    sets = summary["trials"]
    chunk_bars = sum(c["bars"] for c in summary["walk_forward"]["chunks"])
    report = {
        "command": " ".join(cmd), "parameter_sets": sets, "units": summary["evaluations"]["units"],
        "wall_seconds": wall, "legs": [{k: v for k, v in leg.items() if k not in ("stdout", "stderr")} for leg in legs],
        "from_store_on_resume": summary["evaluations"]["from_store"] if len(legs) > 1 else 0,
        "peak_pss_mb": max(leg["peak_pss_mb"] for leg in legs),
        "peak_rss_mb": max(leg["peak_rss_mb"] for leg in legs),
        "sets_per_second": round(sets / wall, 1), "bars_simulated_per_second": round(sets * chunk_bars / wall),
        "projected_seconds_for_100000_sets": round(wall * FULL / sets, 0),
        "executor": summary["executor"], "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before], "load_average_after": [round(x, 2) for x in load_after],
        "feasible_sets": int(sum(f["feasible"] for f in summary["per_fold"])),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
