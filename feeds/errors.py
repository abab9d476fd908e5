"""Errors raised by the feeds: every one names the file, the row, the column and what was expected.

Rows are **1-based data rows** (the header line, when there is one, is not counted), so
``row 5`` is the fifth record of the file; the bar's or event's timestamp is added when it
is known. Loaders never reorder, fill or drop data, so a row number always points back into
the file.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from risk.errors import DeleverageError


class FeedError(DeleverageError):
    """A data file cannot be turned into a canonical feed (bad format, bad values, bad units)."""


class UnitMismatchError(FeedError):
    """The values do not match the unit the loader was told (contracts vs coins, % vs fraction)."""


def show(value: Any) -> str:
    """A cell as a user reads it: ``'sell'``, ``12.5``, ``an empty cell`` (never ``np.str_('sell')``)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if value is None or (isinstance(value, float) and value != value):
        return "an empty cell"
    if isinstance(value, str):
        return repr(str(value))
    return str(value)


def fmt_time(ts: Any) -> str:
    """ISO-8601 UTC text of a timestamp (``2020-03-13T02:15:00Z``; milliseconds when not whole)."""
    if ts is None or (not isinstance(ts, str) and pd.isna(ts)):
        return "NaT"
    if isinstance(ts, str):
        return ts
    t = pd.Timestamp(ts)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    text = t.isoformat(timespec="milliseconds" if t.microsecond else "seconds")
    return text.replace(".000", "") + "Z"


def where(file: str | None, row: int | None = None, column: str | None = None, time: Any = None) -> str:
    """``file: row 5 (2020-03-13T02:15:00Z), column 'high'`` (parts that are None are left out)."""
    parts = [str(file) if file else "<frame>"]
    loc = []
    if row is not None:
        loc.append(f"row {row}" + (f" ({fmt_time(time)})" if time is not None else ""))
    elif time is not None:
        loc.append(f"at {fmt_time(time)}")
    if column is not None:
        loc.append(f"column {column!r}")
    return parts[0] + (": " + ", ".join(loc) if loc else "")
