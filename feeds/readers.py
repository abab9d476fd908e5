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
CSV_CHUNK_ROWS = 65_536


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
    opts: dict = {"dtype": dtype}
    if names is not None:
        opts.update(header=0 if has_header else None, names=names)
    try:
        # Chunks keep the parser's peak near the size of the result (one pass over the text;
        # ``pd.read_csv`` in one go peaks at about 4x the frame for wide numeric files).
        chunks = list(pd.read_csv(source, chunksize=CSV_CHUNK_ROWS, **opts))
        if not chunks:
            raise FeedError(f"{label}: no data rows; expected a CSV with at least one data row")
        frame = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
        del chunks
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
            return read_parquet_lean(p), str(p)
        except Exception as exc:  # pyarrow raises several types
            raise FeedError(f"{p}: cannot read as Parquet ({exc})") from None
    return read_csv(p, **kwargs)


def read_parquet_lean(path: Path) -> pd.DataFrame:
    """Read Parquet one column at a time into an unconsolidated frame (index columns stay columns).

    ``pd.read_parquet`` holds the Arrow table and the converted frame at once (about 3.5x the
    frame at peak); column by column the peak is the frame plus one column. ``attrs`` written
    by pandas are restored.
    """
    import json

    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    data = {}
    for name in names:
        col = pq.read_table(path, columns=[name]).column(0)
        data[name] = col.to_pandas()
        del col
    frame = pd.DataFrame(data, copy=False)
    meta = pf.schema_arrow.metadata or {}
    if b"PANDAS_ATTRS" in meta:
        try:
            frame.attrs.update(json.loads(meta[b"PANDAS_ATTRS"]))
        except ValueError:
            pass
    return frame
