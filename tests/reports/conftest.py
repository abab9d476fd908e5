"""Fixtures for the report tests: run, stress and optimization directories built in the
stored formats (synthetic), and a run directory written by the real engine when it exists."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reports.synthetic import write_synthetic_optimization, write_synthetic_run, write_synthetic_stress


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("run") / "run", n_bars=3000)


@pytest.fixture(scope="session")
def stress_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_stress(tmp_path_factory.mktemp("stress") / "stress", scenarios=("312", "519", "ftx"),
                                  leverages=(2, 5, 10, 20), n_bars=400)


@pytest.fixture(scope="session")
def opt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_optimization(tmp_path_factory.mktemp("opt") / "opt", folds=2)


def figures(html: str) -> dict[str, dict[str, Any]]:
    """The plotly figure specs embedded in a report, by div id."""
    found = re.findall(r'<script type="application/json" data-figure="([^"]+)"[^>]*>(.*?)</script>', html, re.S)
    return {key: json.loads(text.replace("<\\/", "</")) for key, text in found}


def array(value: Any) -> np.ndarray:
    """Decode a plotly JSON array (a list or a base64 typed array)."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value, dtype="float64")
