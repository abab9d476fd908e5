"""A stress cell whose every order the broker refused is shown as refused, not as liquidated."""

from __future__ import annotations

import math

import pandas as pd

from reports.stress_report import render_stress_html


def test_refused_cell_is_labelled_refused() -> None:
    rows = [
        {"strategy": "buy_and_hold", "scenario": "519", "leverage": 10.0, "survived": True, "refused": False,
         "equity_left": 0.8, "run_dir": "cells/a"},
        {"strategy": "buy_and_hold", "scenario": "519", "leverage": 50.0, "survived": False, "refused": False,
         "equity_left": 0.0, "run_dir": "cells/b", "liquidated_at": "2021-05-19T13:00:00Z", "liquidation_price": 30000.0},
        {"strategy": "buy_and_hold", "scenario": "519", "leverage": 200.0, "survived": False, "refused": True,
         "equity_left": 1.0, "run_dir": "cells/c"},
    ]
    survival = pd.DataFrame(rows)
    frontier = pd.DataFrame({"scenario": ["519"], "max_surviving_leverage": [10.0]})
    html = render_stress_html({"strategy": "buy_and_hold"}, survival, frontier)
    assert "⊘ refused" in html
    assert "1 of 3 cells survived; 1 were liquidated; the broker refused every order in 1" in html
    assert not math.isnan(frontier["max_surviving_leverage"][0])
