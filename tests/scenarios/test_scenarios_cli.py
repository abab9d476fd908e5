from __future__ import annotations

import json

import pandas as pd

from engine.cli import main


def test_list_show_export(tmp_path, capsys):
    assert main(["scenarios", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("312", "519", "luna", "3ac", "ftx", "2024-08-05", "2025-10-10", "2021-07-26", "2021-04-18"):
        assert f"\n{name} " in out
    assert "RECONSTRUCTIONS" in out
    assert main(["scenarios", "show", "312"]) == 0
    out = capsys.readouterr().out
    assert "RECONSTRUCTION of 312" in out and "3,596.00" in out and "LedgerPrime" in out
    target = tmp_path / "519.csv"
    assert main(["scenarios", "export", "519", "--out", str(target)]) == 0
    frame = pd.read_csv(target, index_col="open_time", parse_dates=True)
    assert len(frame) == 2160 and frame["low"].min() == 30000.0
    meta = json.loads((tmp_path / "519.csv.meta.json").read_text())
    assert meta["kind"] == "reconstructed" and meta["scenario"] == "519"
    assert main(["scenarios", "export", "519", "--out", str(tmp_path / "x.txt")]) == 2
    assert "expected a .csv or .parquet" in capsys.readouterr().err


def test_show_prints_the_paths_own_high_and_low_against_its_envelope(capsys):
    # before: "peak catalogue 58,350 reconstructed 58,350" while the bars reached 196,695 (seed 3)
    from feeds.scenarios import get_scenario

    assert main(["scenarios", "show", "2024-08-05", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    bars = get_scenario("2024-08-05").bars(seed=3)
    assert f"last  high {bars['high'].max():,.2f} at {bars['high'].idxmax():%Y-%m-%d %H:%M}, low 49,513.00 at 2024-08-05 06:45" in out
    assert f"mark  high {bars['mark_high'].max():,.2f}, low {bars['mark_low'].min():,.2f}" in out
    # 49,513 / 1.05 = 47,155.24 and 60,000 x 1.05 = 63,000
    assert "envelope    waypoints 49,513.00 .. 60,000.00; the reconstruction stays within 5% (47,155.24 .. 63,000.00): inside" in out
    assert bars["high"].max() < 63_000.0
    # a venue with only an ADL flow shows the figures of the path it runs on
    assert main(["scenarios", "show", "2025-10-10", "--venue", "hyperliquid"]) == 0
    out = capsys.readouterr().out
    assert "Figures (BTC, binance_usdm path, with hyperliquid's ADL flow)" in out and "low        2025-10-10T21:20Z low   catalogue   104,600.00" in out
