"""Helpers for the report tests: read the figures embedded in a report."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np
import pandas as pd


def figures(html: str) -> dict[str, dict[str, Any]]:
    """The plotly figure specs embedded in a report, by div id."""
    found = re.findall(r'<script type="application/json" data-figure="([^"]+)"[^>]*>(.*?)</script>', html, re.S)
    return {key: json.loads(text.replace("<\\/", "</")) for key, text in found}


def array(value: Any) -> np.ndarray:
    """Decode a plotly JSON array (a list or a base64 typed array)."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value, dtype="float64")


def store_cover_as_fee(run_dir: Any) -> None:
    """Rewrite a stored liquidations table the way the engines wrote it before 8edc9b2: the
    insurance fund's cover as a negative liquidation fee, and no ``insurance_cover`` column."""
    path = run_dir / "liquidations.parquet"
    liq = pd.read_parquet(path)
    liq["fee"] = -liq["insurance_cover"]
    liq.drop(columns=["insurance_cover"]).to_parquet(path)
