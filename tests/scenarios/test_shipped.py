"""The real 312 and 519 minutes shipped in the package (issue 13).

* without ``../shared`` and with an empty fetch cache (a fresh machine), ``--data real`` finds
  the shipped bars, and says where they came from (provenance in attrs and ``scenarios show``);
* the shipped files are exactly what ``feeds/scenarios/build_real.py`` makes of the shared CSVs
  (same bars as the shared-data loader), and the windows match events.md;
* ``deleverage stress buy_and_hold --scenarios 312 --data real --venue bitmex --leverage 0.5,1``
  gives the README's real-312 liquidation (1x: 2020-03-13 01:57 UTC at 3,976.99; hand formula
  LP = 7939 / (1 + 1/L - 0.585 %), tests/stress/test_frontier_312_real.py) and 0.5x survives;
* ``deleverage demo`` runs 312 and 519 on the real bars and says so in its table, cells and report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main
from feeds.scenarios import get_scenario

E, MM = 7939.0, 0.005 + 0.00075 + 0.0001


@pytest.fixture
def fresh_machine(tmp_path, monkeypatch):
    """No shared data anywhere, an empty fetch cache."""
    from feeds.scenarios import real

    monkeypatch.setattr(real, "shared_dirs", lambda: [tmp_path / "no-shared"])
    monkeypatch.setenv("DELEVERAGE_SHARED_DATA", str(tmp_path / "no-shared"))
    monkeypatch.setenv("DELEVERAGE_CACHE", str(tmp_path / "empty-cache"))
    return tmp_path


@pytest.mark.parametrize("name,bars,low,low_time,settlements", [
    ("312", 3240, 3596.0, "2020-03-13 02:15Z", 7),
    ("519", 2160, 28157.0, "2021-05-19 13:10Z", 0),
])
def test_real_bars_on_a_fresh_machine(fresh_machine, name, bars, low, low_time, settlements):
    s = get_scenario(name)
    assert [src["kind"] for src in s.real_sources()] == ["shipped"]
    b = s.bars(data="real")
    assert b.attrs["kind"] == "real" and b.attrs["origin"] == "package" and b.attrs["venue"] == "bitmex"
    assert len(b) == bars and b.index[0] == s.start and b.index[-1] == s.end - pd.Timedelta(minutes=1)
    # the windows hold the events.md figures: BitMEX lows 3,596.0 at 02:15 (312) and 28,157 at 13:10 (519)
    assert b["low"].min() == low and b["low"].idxmin() == pd.Timestamp(low_time)
    assert int(b["funding_rate"].notna().sum()) == settlements
    prov = b.attrs["provenance"]
    assert {"venue", "symbol", "origin", "source_repository", "file", "funding", "converted"} <= set(prov)
    assert prov["symbol"] == "XBTUSD" and "PROVENANCE.md" in prov["file"]
    assert get_scenario(name).bars(data="auto").attrs["kind"] == "real"
    assert get_scenario("ftx").bars(data="auto").attrs["kind"] == "reconstructed"  # nothing real for ftx


def test_scenarios_show_prints_provenance_and_realism(fresh_machine, capsys):
    assert main(["scenarios", "show", "312", "--data", "real"]) == 0
    out = capsys.readouterr().out
    assert "shipped in the package" in out and "sxiaojian88/bitmex-xbtusd-history" in out
    assert "REAL bitmex XBTUSD bars" in out and "converted" in out
    assert "Realism of this real path" in out and "vr60" in out
    assert main(["scenarios", "show", "519"]) == 0  # the reconstruction, against the real minutes
    out = capsys.readouterr().out
    assert "Realism of this reconstructed path" in out and "vs the real bitmex XBTUSD minutes" in out
    assert "band ±0.05" in out and "local block bootstrap" in out


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["312", "519"])
def test_shipped_bars_equal_the_shared_csv(shared_data, name):
    from feeds.scenarios.build_real import main as build

    s = get_scenario(name)
    shipped = s.bars(data="real")
    shared = s.bars(data="real", data_path=shared_data)
    assert shipped.attrs["origin"] == "package" and shared.attrs["origin"] != "package"
    cols = ["open", "high", "low", "close", "volume", "quote_volume", "funding_rate"]
    pd.testing.assert_frame_equal(shipped[cols], shared[cols], check_freq=False)
    assert build(["--shared", str(shared_data), "--check"]) == 0


def test_stress_real_312_on_a_fresh_machine(fresh_machine, capsys):
    out_dir = fresh_machine / "s312"
    assert main(["stress", "buy_and_hold", "--scenarios", "312", "--data", "real", "--venue", "bitmex",
                 "--leverage", "0.5,1", "--out", str(out_dir), "--no-report", "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "312: bitmex XBTUSD [real, package]" in text
    surv = pd.read_parquet(out_dir / "survival.parquet").set_index("leverage")
    assert bool(surv.loc[0.5, "survived"]) and not bool(surv.loc[1.0, "survived"])
    # README real-312 table: 1x liquidated at 2020-03-13 01:57 UTC, liquidation price 3,976.99
    assert surv.loc[1.0, "liquidated_at"] == pd.Timestamp("2020-03-13 01:57Z")
    assert surv.loc[1.0, "liquidation_price"] == pytest.approx(3976.99, abs=0.01)
    assert surv.loc[1.0, "liquidation_price"] == pytest.approx(E / (1 + 1 - MM), rel=0.005)  # funding moves MM a little
    assert (surv["data_kind"] == "real").all()


def test_demo_uses_the_real_bars_for_312_and_519(fresh_machine, capsys):
    out_dir = fresh_machine / "demo"
    assert main(["demo", "--scenarios", "312,519,ftx", "--leverage", "3", "--strategies", "buy_and_hold",
                 "--out", str(out_dir), "--workers", "1"]) == 0
    cap = capsys.readouterr()
    assert "312 REAL bitmex (package)" in cap.err and "519 REAL bitmex (package)" in cap.err
    assert "ftx RECONSTRUCTED" in cap.err
    rows = {line.split()[1]: line.split()[2] for line in cap.out.splitlines() if line.startswith("buy_and_hold ")}
    assert rows == {"312": "real", "519": "real", "ftx": "recon"}
    cells = [json.loads(line) for line in (out_dir / "cells.jsonl").read_text().splitlines()]
    assert {c["scenario"]: c["data_kind"] for c in cells} == {"312": "real", "519": "real", "ftx": "reconstructed"}
    assert {c["scenario"]: c["venue"] for c in cells}["519"] == "bitmex"  # the venue of the real bars
    report = Path(out_dir / "report.html").read_text(encoding="utf-8")
    assert "data: real, reconstructed" in report
