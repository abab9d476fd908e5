"""Re-runs into an existing stress directory: refused unless --resume or --overwrite; a
kill -9 mid-run leaves only whole cells, and --resume then gives the cells an uninterrupted run
gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main

ARGS = ["stress", "buy_and_hold", "--scenarios", "312,519", "--leverage", "1,2,3,5,10,20", "--engine", "backtrader",
        "--workers", "1", "--no-report", "--json"]
CELLS = 12


def _records(path: Path) -> list[dict]:
    return sorted((json.loads(line) for line in (path / "cells.jsonl").read_text().splitlines()),
                  key=lambda r: r["run_dir"])


def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_cells(tmp_path, capsys) -> None:
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))",
           *ARGS, "--out", str(killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[2])
    log = killed / "cells.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(log.read_text().splitlines())
    assert 2 <= written < CELLS
    # no half cell under its final name: every run directory there is whole (has its cell.json)
    for cell in (killed / "runs").glob("*/x*"):
        assert (cell / "cell.json").exists() and (cell / "equity.parquet").exists()
    assert not (killed / "survival.parquet").exists()

    # the same command again is refused (the directory holds a run), then resumed
    assert main([*ARGS, "--out", str(killed)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*ARGS, "--out", str(killed), "--resume"]) == 0
    capsys.readouterr()
    assert not list(killed.rglob(".tmp-*")), "a temporary cell folder was left behind"

    whole = tmp_path / "whole"
    assert main([*ARGS, "--out", str(whole)]) == 0
    capsys.readouterr()
    pd.testing.assert_frame_equal(pd.read_parquet(killed / "survival.parquet"), pd.read_parquet(whole / "survival.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(killed / "frontier.parquet"), pd.read_parquet(whole / "frontier.parquet"))
    assert _records(killed) == _records(whole) and len(_records(whole)) == CELLS
    for rec in _records(whole):
        for table in ("equity", "fills", "liquidations"):
            pd.testing.assert_frame_equal(pd.read_parquet(killed / rec["run_dir"] / f"{table}.parquet"),
                                          pd.read_parquet(whole / rec["run_dir"] / f"{table}.parquet"))


def test_resume_with_other_options_is_refused_naming_them(tmp_path, capsys) -> None:
    out = tmp_path / "s"
    base = ["stress", "funding_carry", "--scenarios", "519", "--leverage", "3", "--workers", "1", "--no-report",
            "--json", "--out", str(out)]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base[:5], "3,10", *base[6:], "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--leverage: [3.0] there, [3.0, 10.0] now" in err and "Traceback" not in err
    assert main([*base, "--margin", "cross", "--wipeout", "20%", "--resume"]) == 2
    err = capsys.readouterr().err
    assert '--margin: "isolated" there, "cross" now' in err and "--wipeout: 0.1 there, 0.2 now" in err
    # nothing of the refused runs was written: the old cell is still the only one
    assert [r["leverage"] for r in _records(out)] == [3.0]


def test_overwrite_leaves_no_stale_cell_and_a_torn_line_is_rerun(tmp_path, capsys) -> None:
    out = tmp_path / "s"
    base = ["stress", "buy_and_hold", "--scenarios", "519", "--workers", "1", "--no-report", "--json", "--out", str(out)]
    assert main([*base, "--leverage", "2,3"]) == 0
    capsys.readouterr()
    assert main([*base, "--leverage", "5", "--overwrite"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (out / "runs" / "519").iterdir()) == ["x5"]
    assert pd.read_parquet(out / "survival.parquet")["leverage"].tolist() == [5.0]
    # a kill while the last line was being written: the torn line is dropped, that cell runs again
    log = out / "cells.jsonl"
    log.write_text(log.read_text()[:-40])
    (out / "runs" / "519" / ".tmp-x5-deadbeef").mkdir()
    assert main([*base, "--leverage", "5", "--resume"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["leverage"] for c in doc["survival"]] == [5.0] and len(_records(out)) == 1
    assert not list(out.rglob(".tmp-*"))


@pytest.mark.parametrize("setup, message", [
    (lambda p: p.write_text("x"), "is a file (it already exists); expected a directory"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")), "is not a stress run (no stress.json)"),
])
def test_out_that_is_not_a_stress_run_is_never_deleted(tmp_path, capsys, setup, message) -> None:
    out = tmp_path / "o"
    setup(out)
    assert main(["stress", "buy_and_hold", "--scenarios", "519", "--leverage", "2", "--no-report", "--overwrite",
                 "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert out.exists()


def test_demo_replaces_its_own_folder_but_not_another_out(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--scenarios", "ftx", "--leverage", "3", "--workers", "1", "--no-report"]
    assert main(args) == 0 and main(args) == 0  # runs/demo is the demo's own: a new demo replaces it
    out = capsys.readouterr()
    assert "not in the demo: liq_band_break" in out.err and "NO TRADE" in out.out
    assert len(_records(tmp_path / "runs" / "demo")) == 6  # the 6 reference strategies, once each
    assert main([*args, "--out", "mine"]) == 0 and main([*args, "--out", "mine"]) == 2
    assert "--resume" in capsys.readouterr().err
