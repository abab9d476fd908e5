"""``deleverage report``: a corrupt file, a directory mixing two results, and -o are one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.cli import main
from reports.results import read_parquet
from risk.errors import DeleverageError
from tests.cli_errors import one_line_error


@pytest.mark.parametrize("fixture, name", [("run_dir", "equity.parquet"), ("run_dir", "fills.parquet"),
                                           ("run_dir", "bars.parquet"), ("stress_dir", "survival.parquet"),
                                           ("stress_dir", "frontier.parquet"), ("opt_dir", "trials.parquet")])
@pytest.mark.parametrize("junk", [b"x\n", b"PAR1 this is not parquet at all PAR1"])
def test_a_corrupt_parquet_file_is_named(request, tmp_path, capsys, fixture, name, junk):
    src: Path = request.getfixturevalue(fixture)
    if not (src / name).exists():
        pytest.skip(f"{fixture} has no {name}")
    d = tmp_path / "d"
    shutil.copytree(src, d, ignore=shutil.ignore_patterns("runs", "report.html", "*.js"))
    (d / name).write_bytes(junk)
    assert main(["report", str(d)]) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"deleverage: error: {d / name}: not a readable Parquet file (")
    assert not (d / "report.html").exists()


def test_read_parquet_names_the_file(tmp_path):
    bad = tmp_path / "b.parquet"
    bad.write_bytes(b"garbage\n")
    with pytest.raises(DeleverageError, match=r"b\.parquet: not a readable Parquet file \(Parquet magic bytes not found"):
        read_parquet(bad)


def test_a_directory_with_two_results_is_refused(run_dir, opt_dir, tmp_path, capsys):
    """A run directory with an optimization's trials.parquet in it: a report of either would leave out the other."""
    d = tmp_path / "mixed"
    shutil.copytree(run_dir, d, ignore=shutil.ignore_patterns("report.html"))
    shutil.copy(opt_dir / "trials.parquet", d / "trials.parquet")
    assert main(["report", str(d)]) == 2
    assert (f"{d} holds more than one kind of result (trials.parquet: optimize, equity.parquet: run); expected one "
            "run, stress or optimization per directory") in one_line_error(capsys)


def test_output_must_be_html_and_is_never_overwritten_silently(opt_dir, tmp_path, capsys):
    csv = tmp_path / "x.csv"
    assert main(["report", str(opt_dir), "-o", str(csv)]) == 2
    assert f"-o {csv}: a report is an HTML page; expected a path ending in .html" in one_line_error(capsys)
    assert not csv.exists()
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    assert main(["report", str(opt_dir), "-o", str(mine)]) == 2
    assert f"-o {mine}: already exists; pass --overwrite to replace it" in one_line_error(capsys)
    assert main(["report", str(opt_dir), "-o", str(mine), "--overwrite"]) == 2
    assert f"-o {mine}: is not a deleverage report" in one_line_error(capsys)
    assert mine.read_text() == "<p>my notes</p>"
    # a report is replaced with --overwrite
    out = tmp_path / "o.html"
    assert main(["report", str(opt_dir), "-o", str(out)]) == 0
    first = out.read_text()
    capsys.readouterr()
    assert main(["report", str(opt_dir), "-o", str(out)]) == 2
    assert "already exists" in one_line_error(capsys)
    out.write_text(first.replace("</body>", "<!-- edited --></body>"))
    assert main(["report", str(opt_dir), "-o", str(out), "--overwrite"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text() == first
    assert main(["report", str(opt_dir), "--overwrite"]) == 2
    assert "--overwrite applies to -o PATH.html only" in one_line_error(capsys)
    assert main(["report", str(opt_dir), "-o", str(tmp_path / "none" / "r.html")]) == 2
    assert f"the folder {tmp_path / 'none'} does not exist" in one_line_error(capsys)
