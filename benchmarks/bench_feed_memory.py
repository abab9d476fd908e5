"""Peak memory of loading a year of 1-minute bars with every canonical column.

Generates 525,600 seeded bars (every column of feeds.schema.BAR_COLUMNS), writes them to
Parquet (and CSV with ``--csv``) in a temp dir, then, in a fresh child process, loads the file
through the generic loader with full validation and reports the child's peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the child, which includes importing
pandas/pyarrow), so generating the data does not count.

    .venv/bin/python benchmarks/bench_feed_memory.py [--csv] [--rows 525600]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 400


def generate(rows: int, seed: int = 7):
    import numpy as np
    import pandas as pd

    from feeds.schema import BAR_COLUMNS, LIQ_COLUMNS

    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-01-01", periods=rows, freq="1min", tz="UTC", name="open_time")
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0, 5e-4, rows)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 2e-4, rows)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    vol = rng.gamma(2.0, 5.0, rows)
    cols = {"open": open_, "high": high, "low": low, "close": close, "volume": vol,
            "mark_open": open_, "mark_high": high, "mark_low": low, "mark_close": close,
            "index_close": close * 0.9999, "premium_close": rng.normal(0, 1e-4, rows),
            "funding_rate": np.where((idx.hour % 8 == 0) & (idx.minute == 0), 1e-4, np.nan),
            "open_interest": 50_000 + np.cumsum(rng.normal(0, 5, rows)),
            "quote_volume": vol * (high + low + close) / 3, "open_interest_notional": None}
    cols["open_interest_notional"] = cols["open_interest"] * close
    for c in LIQ_COLUMNS:
        cols[c] = rng.poisson(0.3, rows).astype("int64") if c.endswith("count") else rng.exponential(1.0, rows)
    frame = pd.DataFrame({c: cols[c] for c in BAR_COLUMNS}, index=idx)
    frame.attrs.update({"interval": "1min", "symbol": "BTCUSDT", "venue": "binance_usdm"})
    return frame


def child(path: str) -> None:
    from feeds.generic import load_table

    t = time.perf_counter()
    frame = load_table(path, assume_utc=False)
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"{peak:.1f}|{len(frame)} rows x {frame.shape[1]} columns loaded and validated in {elapsed:.1f} s; "
          f"frame {frame.memory_usage(deep=True).sum() / 2**20:.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=525_600)
    parser.add_argument("--csv", action="store_true", help="also measure CSV")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    sys.path.insert(0, str(ROOT))
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        frame = generate(args.rows)
        paths = [Path(tmp) / "bars.parquet"]
        frame.to_parquet(paths[0])
        if args.csv:
            paths.append(Path(tmp) / "bars.csv")
            frame.to_csv(paths[1], date_format="%Y-%m-%dT%H:%M:%SZ")
        del frame
        for path in paths:
            out = subprocess.run([sys.executable, __file__, "--child", str(path)], cwd=ROOT, capture_output=True,
                                 text=True, check=True)
            peak_text, text = out.stdout.strip().split("|", 1)
            peak = float(peak_text)
            worst = max(worst, peak)
            print(f"{path.suffix[1:]:8s} {text}; peak RSS {peak:.0f} MB (limit {LIMIT_MB} MB)")
    print(f"peak RSS {worst:.0f} MB: {'OK' if worst < LIMIT_MB else 'OVER the limit'}")
    return 0 if worst < LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
