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
