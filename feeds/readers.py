"""Read a table from CSV, a ZIP holding one CSV (the Binance archive's files), or Parquet.

Header rows are detected (a first line whose first field is not a number is a header), so
the archive's older header-less files and its newer files with a header both load. The
returned label (``archive.zip:inner.csv``) is what error messages name.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd

from feeds.errors import FeedError

PathLike = str | Path


def _is_number(text: str) -> bool:
    try:
        float(text.strip().strip('"'))
    except ValueError:
        return False
    return True


def open_text(path: PathLike) -> tuple[io.TextIOBase, str]:
    """Open a CSV/JSONL file or the single member of a ZIP as text; returns (stream, label)."""
    p = Path(path)
    if not p.exists():
        raise FeedError(f"{p}: file not found")
    if p.suffix.lower() == ".zip":
        try:
            zf = zipfile.ZipFile(p)
        except zipfile.BadZipFile:
            raise FeedError(f"{p}: not a valid ZIP archive (truncated download?); expected a ZIP holding one CSV") from None
        members = [m for m in zf.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise FeedError(f"{p}: expected a ZIP holding exactly one CSV file, found {len(members)}: {members[:5]}")
        return io.TextIOWrapper(zf.open(members[0]), encoding="utf-8"), f"{p}:{members[0]}"
    return open(p, encoding="utf-8", newline=""), str(p)


def first_line(path: PathLike) -> str:
    stream, _ = open_text(path)
    with stream:
        return stream.readline().strip()


def read_csv(path: PathLike, *, names: list[str] | None = None, dtype: dict | None = None) -> tuple[pd.DataFrame, str]:
    """Read a CSV (or zipped CSV). With ``names`` the header is detected and replaced by them.

    Returns the frame (RangeIndex: position ``i`` is data row ``i + 1``) and the label.
    """
    stream, label = open_text(path)
    with stream:
        head = stream.readline()
    if not head.strip():
        raise FeedError(f"{label}: the file is empty; expected a CSV with at least one data row")
    has_header = not _is_number(head.split(",")[0])
    source: object = path
    if Path(path).suffix.lower() == ".zip":
        stream, _ = open_text(path)
        source = stream
    try:
        if names is None:
            frame = pd.read_csv(source, dtype=dtype)
        else:
            frame = pd.read_csv(source, header=0 if has_header else None, names=names, dtype=dtype)
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise FeedError(f"{label}: cannot parse as CSV ({exc}); expected comma-separated values") from None
    finally:
        if source is not path:
            source.close()  # type: ignore[attr-defined]
    frame.attrs["has_header"] = has_header
    return frame, label


def read_any(path: PathLike, **kwargs) -> tuple[pd.DataFrame, str]:
    """CSV, zipped CSV or Parquet by suffix."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        if not p.exists():
            raise FeedError(f"{p}: file not found")
        try:
            return pd.read_parquet(p), str(p)
        except Exception as exc:  # pyarrow raises several types
            raise FeedError(f"{p}: cannot read as Parquet ({exc})") from None
    return read_csv(p, **kwargs)
