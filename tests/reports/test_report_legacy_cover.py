"""A run directory stored before the insurance fund's cover became its own kind (8edc9b2) booked
the cover of an insolvent liquidation as a negative liquidation fee and has no
``insurance_cover`` column: its report and ``deleverage report`` say so, naming the row, and show
the stored numbers unchanged. A run stored today never carries the note (its liquidation fee is 0
and the cover is booked as insurance_cover)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.cli import main
from engine.fast import run_fast
from engine.runner import RunConfig, save_run
from reports.results import legacy_cover_note
from tests.engine.test_insolvent_liquidation import frame
from tests.reports.report_helpers import store_cover_as_fee


def _insolvent_run(path):
    # 50x long through a 5 % funding settlement: liquidated at 20,000 with the fund covering 14,705.4
    # (tests/engine/test_insolvent_liquidation.py)
    config = RunConfig(strategy="exposure", venue="binance_usdm", leverage=50.0, cash=10_000.0)
    result = run_fast(frame(), np.array([50.0, 50.0, 50.0, 50.0]), config)
    assert result.liquidations["insurance_cover"].iloc[0] == pytest.approx(14_705.4, rel=1e-9)
    return save_run(result, path, frame())


def test_a_run_stored_today_has_no_note(tmp_path, capsys):
    run = _insolvent_run(tmp_path / "run")
    assert legacy_cover_note(pd.read_parquet(run / "liquidations.parquet")) == ""
    assert main(["report", str(run)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert "stored by an earlier deleverage" not in (run / "report.html").read_text()


def test_a_run_stored_with_the_cover_as_a_negative_fee_is_named(tmp_path, capsys):
    run = _insolvent_run(tmp_path / "run")
    store_cover_as_fee(run)
    summary = (run / "summary.json").read_text()
    assert main(["report", str(run)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (f"warning: {run}: stored by an earlier deleverage: liquidation row 1 has fee -14705.4 < 0, the insurance "
            "fund's cover booked as a negative fee") in err
    assert "re-run to book it as insurance_cover" in err
    html = (run / "report.html").read_text()
    assert 'id="plausibility-banner"' in html and "liquidation row 1 has fee -14705.4 &lt; 0" in html
    assert (run / "summary.json").read_text() == summary  # stored numbers are never rewritten


def test_the_note_counts_every_negative_row():
    liq = pd.DataFrame({"fee": [1.5, -2.0, 0.0, -3.0]})
    assert legacy_cover_note(liq).startswith("stored by an earlier deleverage: liquidation row 2 (and 1 more) has fee -2 < 0")
    assert legacy_cover_note(pd.DataFrame({"fee": [0.0, 112.5]})) == ""
    assert legacy_cover_note(pd.DataFrame()) == ""
