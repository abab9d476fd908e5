"""The open-interest bookkeeping every cascade run must satisfy (shared by the cascade tests)."""

from __future__ import annotations

import pytest


def assert_oi_conserved(inv: dict) -> None:
    """Per side: initial + opened = live + triggered + removed by ADL + de-risked, and the live
    quantity read back from the bins equals the running total."""
    for side in ("long", "short"):
        initial = inv[f"{side}_initial_qty"] + inv[f"{side}_opened_qty"]
        parts = (inv[f"{side}_live_qty"] + inv[f"{side}_triggered_qty"] + inv[f"{side}_removed_by_adl_qty"]
                 + inv[f"{side}_derisked_qty"])
        assert parts == pytest.approx(initial, rel=1e-9), side
        assert inv[f"{side}_live_from_bins_qty"] == pytest.approx(inv[f"{side}_live_qty"], rel=1e-9, abs=1e-6), side
