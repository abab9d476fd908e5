from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main


def test_report_command_writes_and_prints_the_path(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = run_dir / "report.html"
    target.unlink(missing_ok=True)
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert target.stat().st_size > 3_000_000


def test_report_command_output_option(opt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.html"
    assert main(["report", str(opt_dir), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out) and out.exists()


def test_report_command_bad_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run, stress or optimization directory" in capsys.readouterr().err


def test_no_report_option() -> None:
    import argparse

    from engine.commands.report import add_no_report_option, report_after

    parser = argparse.ArgumentParser()
    add_no_report_option(parser)
    assert report_after(parser.parse_args(["--no-report"]), "/does/not/matter") is None
