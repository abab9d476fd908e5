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


# Leading bytes of files that are not text (a renamed download is the usual cause).
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "a gzip archive"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PAR1", "a Parquet file"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x7fELF", "a program (ELF binary)"),
)
DELIMITERS: dict[str, str] = {";": "semicolon", "\t": "TAB", "|": "pipe"}


def check_path(path: PathLike, what: str = "file") -> Path:
    """``path`` exists and is a regular file, or a FeedError naming it."""
    p = Path(path)
    if p.is_dir():
        raise FeedError(f"{p}: is a directory; expected a data {what} (CSV, ZIP or Parquet), not a folder")
    if not p.exists():
        raise FeedError(f"{p}: file not found")
    return p


def _sniff_binary(head: bytes, label: str, expected: str) -> None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            raise FeedError(f"{label}: the file is {name}, not text; expected {expected} "
                            "(unpack it or give it its real extension)")
    if b"\x00" in head:
        raise FeedError(f"{label}: the file is binary (it holds NUL bytes), not text; expected {expected}")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the end of the sample
            raise FeedError(f"{label}: byte {exc.start + 1} (0x{head[exc.start]:02x}) is not UTF-8 text; "
                            f"expected {expected} in UTF-8") from None


def open_text(path: PathLike) -> tuple[io.TextIOBase, str]:
    """Open a CSV/JSONL file or the single member of a ZIP as text; returns (stream, label).

    A directory, a missing file, or a binary file (gzip, Parquet, a program, ...) under a text
    name is a FeedError that says what the file is.
    """
    p = check_path(path)
    if p.suffix.lower() == ".zip":
        try:
            zf = zipfile.ZipFile(p)
        except zipfile.BadZipFile:
            raise FeedError(f"{p}: not a valid ZIP archive (truncated download?); expected a ZIP holding one CSV") from None
        members = [m for m in zf.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise FeedError(f"{p}: expected a ZIP holding exactly one CSV file, found {len(members)}: {members[:5]}")
        with zf.open(members[0]) as raw:
            _sniff_binary(raw.read(4096), f"{p}:{members[0]}", "a CSV file inside the ZIP")
        return io.TextIOWrapper(zf.open(members[0]), encoding="utf-8-sig"), f"{p}:{members[0]}"
    with open(p, "rb") as raw:
        _sniff_binary(raw.read(4096), str(p), "a text file (comma-separated values or JSON lines)")
    return open(p, encoding="utf-8-sig", newline=""), str(p)


def first_line(path: PathLike) -> str:
    stream, label = open_text(path)
    try:
        with stream:
            return stream.readline().strip()
    except UnicodeDecodeError as exc:
        raise FeedError(f"{label}: the first line is not UTF-8 text ({exc.reason}); expected a text file") from None


def check_delimiter(line: str, label: str) -> None:
    """Refuse a header line separated by ``;``, TAB or ``|`` instead of commas, naming the delimiter."""
    if "," in line:
        return
    for sep, name in DELIMITERS.items():
        if line.count(sep) >= 2:
            raise FeedError(f"{label}: line 1 is separated by {name}s ({line.count(sep) + 1} fields), not commas; "
                            "expected comma-separated values (save the file as CSV with ',' as the delimiter)")


def check_field_counts(path: PathLike, label: str) -> None:
    """Every record of the CSV has the first line's field count, or a FeedError naming the physical line."""
    stream, _ = open_text(path)
    with stream:
        _physical_lines(label, stream)


def _physical_lines(label: str, stream: io.TextIOBase) -> tuple[list[int], int]:
    """For each CSV record, the physical line it starts on (quoted fields may hold newlines) and its field count.

    Returns ``(start_lines, width)`` after checking that every record has as many fields as the
    first one; a record with more or fewer is a FeedError naming its physical line.
    """
    import csv

    reader = csv.reader(stream)
    starts: list[int] = []
    width = None
    start = 1
    try:
        for rec in reader:
            if not rec:  # blank line: pandas skips it too
                start = reader.line_num + 1
                continue
            if width is None:
                width = len(rec)
            elif len(rec) != width:
                span = f"line {start}" if reader.line_num == start else f"lines {start}-{reader.line_num}"
                raise FeedError(f"{label}: {span} (record {len(starts) + 1}) has {len(rec)} fields, the first line has "
                                f"{width}; expected {width} comma-separated fields on every line"
                                + (" (a quoted field holds a line break)" if reader.line_num != start else ""))
            starts.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise FeedError(f"{label}: line {reader.line_num}: cannot parse as CSV ({exc}); expected comma-separated "
                        "values") from None
    except UnicodeDecodeError as exc:
        raise FeedError(f"{label}: after line {reader.line_num}: not UTF-8 text ({exc.reason}); expected a text file") from None
    return starts, width or 0


def read_csv(path: PathLike, *, names: list[str] | None = None, dtype: dict | None = None) -> tuple[pd.DataFrame, str]:
    """Read a CSV (or zipped CSV). With ``names`` the header is detected and replaced by them.

    Returns the frame (RangeIndex: position ``i`` is data row ``i + 1``) and the label.
    """
    stream, label = open_text(path)
    with stream:
        try:
            head = stream.readline()
        except UnicodeDecodeError as exc:
            raise FeedError(f"{label}: line 1 is not UTF-8 text ({exc.reason}); expected a text file") from None
    if not head.strip():
        raise FeedError(f"{label}: the file is empty; expected a CSV with a header line and data rows")
    check_delimiter(head.strip(), label)
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
        frame = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True) if chunks else None
        del chunks
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        check_field_counts(path, label)  # names the physical line when a record has too many fields
        text = " ".join(str(exc).split())
        raise FeedError(f"{label}: cannot parse as CSV ({text}); expected comma-separated values") from None
    finally:
        if source is not path:
            source.close()  # type: ignore[attr-defined]
    if frame is not None and frame.isna().to_numpy().any():
        # pandas fills a record with too few fields with NaN: tell a short record (an error naming its
        # physical line) from an empty cell (kept, and judged by the validation)
        check_field_counts(path, label)
    if frame is None or not len(frame):
        raise FeedError(f"{label}: no data rows (only a header line); expected a CSV with at least one data row")
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
