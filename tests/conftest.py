"""Shared fixtures.

``shared_data`` points at the real exchange data in ``../shared/data`` (or
``$DELEVERAGE_SHARED_DATA``). Tests that need it skip with a clear reason when it is absent,
unless ``DELEVERAGE_REQUIRE_SHARED=1`` (set by ``.ci/run``), in which case they fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    env = os.environ.get("DELEVERAGE_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        reason = f"real exchange data not found at {path} (set DELEVERAGE_SHARED_DATA or place ../shared beside the repo)"
        if os.environ.get("DELEVERAGE_REQUIRE_SHARED") == "1":
            pytest.fail(reason + "; DELEVERAGE_REQUIRE_SHARED=1 makes it mandatory")
        pytest.skip(reason)
    return path
