"""`deleverage data validate` prints the report and exits non-zero on errors."""

from __future__ import annotations

from pathlib import Path


from engine.cli import main


def test_validate_ok_and_failing(shared_data: Path, tmp_path: Path, capsys) -> None:
    good = shared_data / "bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv"
    assert main(["data", "validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert "bitmex_buckets (bars), 11520 rows" in out and "missing bars: 0" in out and "result: OK" in out
    bad = tmp_path / "bad.csv"
    lines = good.read_text().splitlines()[:20]
    lines[5], lines[6] = lines[6], lines[5]
    bad.write_text("\n".join(lines) + "\n")
    assert main(["data", "validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "ERROR [unsorted]" in out and "bad.csv: row 6 (2020-03-09T00:04:00Z)" in out and "result: FAILED" in out


def test_validate_unknown_format_and_formats_list(tmp_path: Path, capsys) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    assert main(["data", "validate", str(odd)]) == 2  # cannot be read: one line on stderr
    err = capsys.readouterr().err
    assert "cannot tell the format" in err and err.count("\n") == 1
    assert main(["data", "formats"]) == 0
    assert "binance_klines" in capsys.readouterr().out
