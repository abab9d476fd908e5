"""The stress report tells each verdict apart: survived (coloured by equity left on the one
fixed scale), liquidated, wiped out, no trade and refused (each its own colour), and shows the
plausibility warning; its tables are in words and units."""

from __future__ import annotations

import math
import re

import pandas as pd

from reports.stress_report import render_stress_html
from reports.verdicts import VERDICT_COLOURS, equity_colour

WARNING = ("implausible: ×45.8 of the initial equity in 2.2 days on reconstructed bars; more than one 10× position "
           "could make on this window's best move (+1,208 %)")


def _survival() -> pd.DataFrame:
    base = {"strategy": "buy_and_hold", "scenario": "519", "margin_mode": "isolated", "venue": "binance_usdm",
            "data_kind": "reconstructed", "liquidated_at": pd.NaT, "liquidation_price": math.nan, "max_drawdown": 0.1,
            "min_distance_to_liquidation": 0.2, "funding_paid": -0.0, "fees": 1.10944e-05, "refused": False,
            "warning": "", "fills": 2}
    rows = [
        {**base, "leverage": 2.0, "verdict": "survived", "survived": True, "equity_left": 1.5, "run_dir": "runs/a"},
        {**base, "leverage": 3.0, "verdict": "survived", "survived": True, "equity_left": 45.8, "run_dir": "runs/w",
         "warning": WARNING},
        {**base, "leverage": 5.0, "verdict": "wiped out", "survived": False, "equity_left": 0.002, "run_dir": "runs/b"},
        {**base, "leverage": 10.0, "verdict": "liquidated", "survived": False, "equity_left": 0.0, "run_dir": "runs/c",
         "liquidated_at": pd.Timestamp("2021-05-19T13:00Z"), "liquidation_price": 30000.0},
        {**base, "leverage": 25.0, "verdict": "no trade", "survived": False, "equity_left": 1.0, "run_dir": "runs/d",
         "fills": 0},
        {**base, "leverage": 200.0, "verdict": "refused", "survived": False, "refused": True, "equity_left": 1.0,
         "run_dir": "runs/e", "fills": 0},
    ]
    return pd.DataFrame(rows)


def _html() -> str:
    frontier = pd.DataFrame({"scenario": ["519"], "max_surviving_leverage": [3.0]})
    return render_stress_html({"strategy": "buy_and_hold", "wipeout": 0.1}, _survival(), frontier)


def test_every_verdict_is_labelled_and_counted() -> None:
    html = _html()
    assert ("2 of 6 cells survived; 1 were liquidated; 1 were wiped out (under 10 %); 1 never traded (no trade: not a "
            "survivor); 1 had every order refused by the broker (not counted as survived).") in html
    for label in ("✓ 150 %", "✗ liquidated", "✗ wiped out 0.2 %", "– no trade", "⊘ refused"):
        assert label in html, label


def test_one_colour_scale_and_a_colour_per_verdict() -> None:
    html = _html()
    # the grid table uses the heatmap's colours: survivors on the equity scale, others their own
    assert f"background:{equity_colour(1.5)}" in html and equity_colour(1.0) == "#f7f7f7"
    for verdict in ("liquidated", "wiped out", "no trade", "refused"):
        assert f'v-{verdict.replace(" ", "-")}" style="background:{VERDICT_COLOURS[verdict]}' in html
    assert 'id="verdict-legend"' in html


def test_the_implausible_cell_carries_its_warning() -> None:
    html = _html()
    assert 'id="plausibility-banner"' in html and "✓ 4,580 % ⚠" in html
    assert f'<li id="warning-1">buy_and_hold · 519 at 3×: {WARNING}</li>' in html.replace("&#x27;", "'")


def test_tables_are_in_words_and_units() -> None:
    html = _html()
    tables = " ".join(re.findall(r"<table[^>]*>.*?</table>", html, re.S))
    visible = re.sub(r"<[^>]+>", " ", tables)
    for raw in ("NaT", "True", "False", "nan", "e-05", "-0.00", "equity_left", "max_drawdown", "liquidated_at"):
        assert raw not in visible, raw
    assert "2021-05-19 13:00" in visible and "30,000.00 USDT" in visible
    assert "Equity left" in visible and "0.00 %" in visible  # fees of 1.1e-05 of the equity
    # the columns with one value for every cell are stated once, under the heading
    assert "Every cell: Margin: isolated · Data: reconstructed" in html


def test_an_auto_deleveraged_cell_gets_its_own_colour_in_the_heatmap() -> None:
    """An ADL verdict (a hedge closed by the venue, 2025-10-10 on Hyperliquid) used to stop the
    report: the heatmap's list of non-survivor verdicts lacked it (ValueError)."""
    from reports.stress_report import OTHER, heatmap_figure
    from reports.verdicts import ADL, VERDICTS

    assert set(OTHER) == set(VERDICTS) - {"survived"}
    s = _survival()
    s.loc[0, ["verdict", "equity_left"]] = [ADL, 1.1]
    fig = heatmap_figure(s, "519")
    codes = [v for row in fig.data[1].z for v in row if v == v]   # the non-survivor layer: index into OTHER
    assert OTHER.index(ADL) in codes
    frontier = pd.DataFrame({"scenario": ["519"], "max_surviving_leverage": [3.0]})
    html = render_stress_html({"strategy": "buy_and_hold", "wipeout": 0.1}, s, frontier)
    assert f'v-ADL" style="background:{VERDICT_COLOURS[ADL]}' in html
    assert "\\u25bc auto-deleveraged" in html  # the equity figure's marker legend (JSON-escaped ▼)
