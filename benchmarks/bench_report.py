"""Benchmark the run report on a year of 1-minute bars (525,600 bars).

    .venv/bin/python benchmarks/bench_report.py [--bars N] [--browser]

Builds a synthetic run directory in the stored format (with bars.parquet), then measures
the report build (load + metrics + downsampling + HTML) and the file size; with
``--browser`` also the time headless Chromium takes to load and draw it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reports.page import plotly_js  # noqa: E402
from reports.run_report import render_run  # noqa: E402
from reports.synthetic import write_synthetic_run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=525_600)
    parser.add_argument("--browser", action="store_true", help="also time loading the page in headless Chromium")
    args = parser.parse_args()
    plotly_js()  # read the bundle once, outside the timing (as in a long-running process)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = write_synthetic_run(Path(tmp) / "run", n_bars=args.bars)
        t1 = time.perf_counter()
        out = render_run(run)
        t2 = time.perf_counter()
        size = out.stat().st_size
        print(f"bars                 {args.bars:,}")
        print(f"write synthetic run  {t1 - t0:.2f} s")
        print(f"build report         {t2 - t1:.2f} s")
        print(f"report size          {size / 1e6:.2f} MB (plotly.js {len(plotly_js()) / 1e6:.2f} MB, data and page {(size - len(plotly_js())) / 1e6:.2f} MB)")
        if args.browser:
            from reports.browser import open_report

            t3 = time.perf_counter()
            result = open_report(out, budget_ms=30_000)
            t4 = time.perf_counter()
            print(f"chromium load+draw   {t4 - t3:.2f} s wall (charts drawn {result.charts_drawn} of {result.charts_expected}, errors {len(result.page_errors)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
