"""Real bars for a scenario window: the BitMEX XBTUSD 1-minute files of 312 and 519.

Where the files are looked for: the ``data_path`` argument (a directory or the file itself),
and only there when it is given; otherwise, in order, ``$DELEVERAGE_SHARED_DATA`` and ``../shared/data`` beside a source
checkout. ``data_path`` may also be a canonical 1-minute bar file in Parquet (for example
BitMEX buckets fetched with ``deleverage data fetch``), which is sliced to the window. The
shared files are never copied into the package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from risk.errors import DeleverageError

_BITMEX_COLUMNS = ("timestamp_ms", "open", "high", "low", "close", "volume_usd_contracts")


def candidate_dirs(data_path: str | os.PathLike | None) -> list[Path]:
    if data_path is not None:  # an explicit location is the only place looked at
        p = Path(data_path)
        return [p.parent if p.is_file() else p]
    dirs: list[Path] = []
    if os.environ.get("DELEVERAGE_SHARED_DATA"):
        dirs.append(Path(os.environ["DELEVERAGE_SHARED_DATA"]))
    dirs.append(Path(__file__).resolve().parents[3] / "shared" / "data")
    return dirs


def find_file(name: str, data_path: str | os.PathLike | None) -> Path | None:
    if data_path is not None and Path(data_path).is_file():
        return Path(data_path)
    for d in candidate_dirs(data_path):
        if (d / name).is_file():
            return d / name
    return None


def load_bitmex_minutes(path: Path, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """BitMEX 1-minute buckets (shared-data CSV layout) sliced to [start, end), in the canonical schema."""
    raw = pd.read_csv(path)
    missing = [c for c in _BITMEX_COLUMNS if c not in raw.columns]
    if missing:
        raise DeleverageError(f"{path}: missing columns {missing}; expected the BitMEX 1-minute CSV layout {list(_BITMEX_COLUMNS)}")
    idx = pd.to_datetime(raw["timestamp_ms"].astype("int64"), unit="ms", utc=True)
    frame = pd.DataFrame({c: raw[c].astype(float).to_numpy() for c in ("open", "high", "low", "close")},
                         index=pd.DatetimeIndex(idx, name="open_time"))
    quote = raw["volume_usd_contracts"].astype(float).to_numpy()
    typical = (frame["high"] + frame["low"] + frame["close"]).to_numpy() / 3.0
    frame["volume"] = quote / typical
    frame["quote_volume"] = quote
    frame = frame.loc[(frame.index >= start) & (frame.index < end)]
    expected = int((end - start).total_seconds() // 60)
    if len(frame) != expected:
        raise DeleverageError(f"{path}: covers {len(frame)} of the {expected} minutes of the window {start} .. {end}; "
                              "expected the whole window")
    return frame


def attach_bitmex_funding(frame: pd.DataFrame, path: Path | None) -> bool:
    """Put the settled funding rates of the BitMEX funding CSV on their settlement bars (NaN elsewhere)."""
    frame["funding_rate"] = np.nan
    if path is None:
        return False
    raw = pd.read_csv(path)
    if "funding_time_utc" not in raw.columns or "funding_rate" not in raw.columns:
        raise DeleverageError(f"{path}: expected columns funding_time_utc, funding_rate")
    times = pd.to_datetime(raw["funding_time_utc"], utc=True).dt.floor("1min")
    rates = pd.Series(raw["funding_rate"].astype(float).to_numpy(), index=times)
    rates = rates[(rates.index >= frame.index[0]) & (rates.index <= frame.index[-1])]
    frame.loc[rates.index, "funding_rate"] = rates.to_numpy()
    return True


def real_bars(spec: dict[str, Any], start: pd.Timestamp, end: pd.Timestamp, data_path: Any,
              scenario: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    if data_path is not None and Path(data_path).suffix.lower() == ".parquet":
        return _canonical_parquet(Path(data_path), start, end)
    path = find_file(spec["file"], data_path)
    if path is None:
        looked = ", ".join(str(d) for d in candidate_dirs(data_path))
        raise DeleverageError(
            f"scenario {scenario}: real data file {spec['file']} not found (looked in {looked}). "
            f"Get it with `deleverage data fetch` or pass its path (--data-path / data_path=), "
            f"or set DELEVERAGE_SHARED_DATA; or use --data reconstructed.")
    frame = load_bitmex_minutes(path, start, end)
    funding_dir = None if data_path is None else (Path(data_path) if Path(data_path).is_dir() else Path(data_path).parent)
    funding_path = find_file(spec["funding_file"], funding_dir) if spec.get("funding_file") else None
    has_funding = attach_bitmex_funding(frame, funding_path)
    notes = ["volume = USD contracts / typical price (h+l+c)/3, an estimate",
             "BitMEX bucketed data: open is the previous bar's close"]
    if not has_funding:
        notes.append("no BitMEX funding history covers this window: funding_rate is NaN throughout (no settlement applied)")
    notes.append("no mark price in this file: a broker falls back to the last price to trigger liquidations "
                 "(harsher than BitMEX, whose mark followed the .BXBT index)")
    src = [str(path)] + ([str(funding_path)] if has_funding else [])
    return frame, {"source": src, "notes": notes, "quirks": ["open_is_previous_close"]}


def _canonical_parquet(path: Path, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, Any]]:
    if not path.is_file():
        raise DeleverageError(f"{path}: no such file")
    frame = pd.read_parquet(path)
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in frame.columns]
    if missing or not isinstance(frame.index, pd.DatetimeIndex):
        raise DeleverageError(f"{path}: expected a canonical bar frame (DatetimeIndex open_time, open/high/low/close/volume); missing {missing}")
    index = frame.index.tz_localize("UTC") if frame.index.tz is None else frame.index.tz_convert("UTC")
    frame = frame.set_axis(index.rename("open_time")).loc[(index >= start) & (index < end)]
    expected = int((end - start).total_seconds() // 60)
    if len(frame) != expected:
        raise DeleverageError(f"{path}: covers {len(frame)} of the {expected} minutes of the window {start} .. {end}; expected 1-minute bars over the whole window")
    notes = list(frame.attrs.get("notes", [])) if frame.attrs else []
    return frame, {"source": [str(path)], "notes": notes}
