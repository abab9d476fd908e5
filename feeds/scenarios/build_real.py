"""Build the real bars shipped in the package (``feeds/scenarios/shipped/*.parquet``).

The package carries the real BitMEX XBTUSD 1-minute bars of the 312 and 519 windows, so that
``--data real`` works on a machine without ``../shared``. This script is how they were made:
it reads the exchange files of ``shared/data`` (see ``shared/data/PROVENANCE.md``), keeps the
scenario window ``[start, end)`` and writes one Parquet file (zstd) per scenario with the
columns

* ``open, high, low, close`` (USD per BTC, float64, exactly the CSV values; BitMEX bucketed
  data: ``open`` is the previous bar's close),
* ``volume_usd_contracts`` (int64, XBTUSD contracts of 1 USD traded in the minute),
* ``funding_rate`` (float64, the settled BitMEX rate per 8 h on the settlement bar
  04:00/12:00/20:00 UTC, NaN elsewhere; NaN throughout when no funding file covers the window),

indexed by ``open_time`` (UTC). Nothing is filled, dropped or reordered: a window that the CSV
does not cover minute by minute is an error. The provenance (source repository and commit,
venue, symbol, file, what was converted) is written in the file's metadata and is in the
catalogue (``real_data.<asset>.<venue>.shipped``).

Run from a source checkout with ``../shared/data`` beside it::

    .venv/bin/python -m feeds.scenarios.build_real            # rebuild every shipped file
    .venv/bin/python -m feeds.scenarios.build_real --check    # rebuild in memory, compare with the shipped files
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from risk.errors import DeleverageError

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
SHIPPED_COLUMNS = ("open", "high", "low", "close", "volume_usd_contracts", "funding_rate")
_CSV_COLUMNS = ("timestamp_ms", "open", "high", "low", "close", "volume_usd_contracts")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_frame(bars_csv: Path, funding_csv: Path | None, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The shipped frame of one window from the shared CSVs (see the module docstring)."""
    raw = pd.read_csv(bars_csv)
    missing = [c for c in _CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise DeleverageError(f"{bars_csv}: missing columns {missing}; expected the BitMEX 1-minute CSV layout")
    idx = pd.DatetimeIndex(pd.to_datetime(raw["timestamp_ms"].astype("int64"), unit="ms", utc=True), name="open_time")
    frame = pd.DataFrame({c: raw[c].astype("float64").to_numpy() for c in ("open", "high", "low", "close")}, index=idx)
    frame["volume_usd_contracts"] = raw["volume_usd_contracts"].astype("int64").to_numpy()
    frame = frame.loc[(frame.index >= start) & (frame.index < end)]
    expected = pd.date_range(start, end, freq="1min", inclusive="left", name="open_time")
    if not frame.index.equals(expected):
        raise DeleverageError(f"{bars_csv}: covers {len(frame)} of the {len(expected)} minutes of {start} .. {end}; "
                              "expected every minute of the window, in order")
    frame["funding_rate"] = np.nan
    if funding_csv is not None:
        fund = pd.read_csv(funding_csv)
        times = pd.to_datetime(fund["funding_time_utc"], utc=True).dt.floor("1min")
        rates = pd.Series(fund["funding_rate"].astype("float64").to_numpy(), index=times)
        rates = rates[(rates.index >= start) & (rates.index < end)]
        frame.loc[rates.index, "funding_rate"] = rates.to_numpy()
    return frame[list(SHIPPED_COLUMNS)]


def targets() -> list[dict]:
    """(scenario, asset, venue, shipped spec) of every shipped file in the catalogue."""
    from feeds.scenarios import list_scenarios

    out = []
    for s in list_scenarios():
        for asset, venues in s.real_data.items():
            for venue, spec in venues.items():
                if "shipped" in spec:
                    out.append({"scenario": s, "asset": asset, "venue": venue, "spec": spec})
    return out


def build_one(t: dict, shared: Path) -> tuple[pd.DataFrame, dict]:
    s, spec = t["scenario"], t["spec"]
    bars_csv = shared / spec["file"]
    if not bars_csv.is_file():
        raise DeleverageError(f"{bars_csv}: not found; run from a checkout with ../shared/data (or pass --shared)")
    funding_csv = shared / spec["funding_file"] if spec.get("funding_file") else None
    if funding_csv is not None and not funding_csv.is_file():
        raise DeleverageError(f"{funding_csv}: not found")
    frame = build_frame(bars_csv, funding_csv, s.start, s.end)
    meta = dict(spec["shipped"]["provenance"])
    meta.update({"scenario": s.name, "window": f"{s.start.isoformat()} .. {s.end.isoformat()} (open times, [start, end))",
                 "converted_from": {spec["file"]: _sha256(bars_csv),
                                    **({spec["funding_file"]: _sha256(funding_csv)} if funding_csv else {})},
                 "columns": list(SHIPPED_COLUMNS)})
    return frame, meta


def write(frame: pd.DataFrame, meta: dict, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=True)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           b"deleverage.provenance": json.dumps(meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", compression_level=19)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data",
                        help="the shared data folder (default ../shared/data beside the checkout)")
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    args = parser.parse_args(argv)
    status = 0
    try:
        for t in targets():
            frame, meta = build_one(t, args.shared)
            path = SHIPPED_DIR / t["spec"]["shipped"]["file"]
            if args.check:
                shipped = pd.read_parquet(path)
                same = shipped.equals(frame)
                status |= not same
                print(f"{path.name}: {'identical to' if same else 'DIFFERS from'} a rebuild from {args.shared}")
            else:
                write(frame, meta, path)
                print(f"wrote {path} ({len(frame)} bars, {path.stat().st_size / 1024:.0f} KB; "
                      f"{int(frame['funding_rate'].notna().sum())} funding settlements)")
    except DeleverageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
