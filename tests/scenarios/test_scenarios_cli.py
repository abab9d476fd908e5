from __future__ import annotations

import json

import pandas as pd
import pytest

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


BITMEX_312 = "bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv"


def _corrupt(shared_data, tmp_path, name, edit):
    lines = (shared_data / BITMEX_312).read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if "2020-03-12T10:00:00Z" in line)  # file row 4921 (after the header)
    edit(lines, i)
    path = tmp_path / f"{name}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cell(lines, i, col, value):  # columns: timestamp_ms, open_time_utc, open, high, low, close, volume_usd_contracts
    parts = lines[i].split(",")
    parts[col] = value
    lines[i] = ",".join(parts)


def _swap(lines, i):
    lines[i], lines[i + 1] = lines[i + 1], lines[i]


def _high_below_low(lines, i):
    parts = lines[i].split(",")
    parts[3], parts[4] = parts[4], parts[3]
    lines[i] = ",".join(parts)


@pytest.mark.parametrize("name,edit,said", [
    ("close", lambda ls, i: _cell(ls, i, 5, "-1"), "row 4921 (2020-03-12T10:00:00Z), column 'close': price -1 is not positive"),
    ("volume", lambda ls, i: _cell(ls, i, 6, "-5"), "row 4921 (2020-03-12T10:00:00Z), column 'quote_volume': value -5 is negative"),
    ("highlow", _high_below_low, "row 4921 (2020-03-12T10:00:00Z), column 'high'"),
    ("order", _swap, "row 4922 (2020-03-12T10:00:00Z): bar open time 2020-03-12T10:00:00Z is earlier than row 4921"),
    ("cell", lambda ls, i: _cell(ls, i, 5, "abc"), "row 4921, column 'close': 'abc' is not a number"),
])
def test_export_real_data_path_is_validated_like_any_loaded_file(shared_data, tmp_path, capsys, name, edit, said):
    # before: written and labelled "REAL bitmex bars" (close -1, negative volume, high < low, rows out of
    # order), or "internal error (ValueError: could not convert string to float: 'abc')"
    bad = _corrupt(shared_data, tmp_path, name, edit)
    out = tmp_path / "x.csv"
    assert main(["scenarios", "export", "312", "--data", "real", "--data-path", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: {said}" in err and "internal error" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    # the untouched file passes and gives the real 312 low
    assert main(["scenarios", "export", "312", "--data", "real", "--data-path", str(shared_data / BITMEX_312),
                 "--out", str(out)]) == 0
    frame = pd.read_csv(out, index_col="open_time", parse_dates=True)
    assert len(frame) == 3240 and frame["low"].min() == 3596.0 and frame.index.is_monotonic_increasing


def test_a_reconstruction_is_not_real_data(tmp_path, capsys):
    rec = tmp_path / "rec.parquet"
    assert main(["scenarios", "export", "312", "--out", str(rec)]) == 0
    capsys.readouterr()
    assert main(["scenarios", "export", "312", "--data", "real", "--data-path", str(rec), "--out", str(tmp_path / "x.csv")]) == 2
    assert f"{rec}: is a reconstruction (its metadata: kind 'reconstructed'" in capsys.readouterr().err
    # a canonical Parquet file is validated too, on its own rows
    real = tmp_path / "real.parquet"
    assert main(["scenarios", "export", "312", "--data", "real", "--out", str(real)]) == 0
    frame = pd.read_parquet(real)
    frame.iloc[5, frame.columns.get_loc("close")] = -1.0
    frame.to_parquet(real)
    capsys.readouterr()
    assert main(["scenarios", "export", "312", "--data", "real", "--data-path", str(real), "--out", str(tmp_path / "x.csv")]) == 2
    assert f"{real}: row 6 (2020-03-11T18:05:00Z), column 'close': price -1 is not positive" in capsys.readouterr().err


@pytest.mark.parametrize("argv,said", [
    (["--seed", "-1"], "--seed -1: expected a non-negative integer (0, 1, 2, ...)"),  # was internal ValueError
    (["--asset", "XRP"], "--asset XRP: scenario 312 has no such path; expected one of BTC, ETH"),
    (["--venue", "nosuch"], ("--venue nosuch: scenario 312 (BTC, --data reconstructed) has no such venue; "
                             "expected one of bitmex, binance_usdm")),
    (["--data", "real", "--seed", "3"], "--seed 3: only a reconstruction has a seed; --data real reads"),
    (["--data", "auto", "--seed", "3"], "--seed 3: only a reconstruction has a seed; --data auto reads"),  # 312 ships real bars
    (["--data-path", "."], "--data-path .: only read with --data real or auto"),
    (["--data", "auto", "--data-path", "/nonexistent"], "--data-path /nonexistent: no such file or folder"),
    (["--data", "real", "--data-path", "/nonexistent"], "--data-path /nonexistent: no such file or folder"),
])
@pytest.mark.parametrize("action", ["show", "export"])
def test_bad_options_are_one_line_before_any_output(tmp_path, capsys, argv, said, action):
    # before: show printed the whole facts section first; --seed -1 was an internal error; --seed with real
    # data and --data-path with a reconstruction were ignored; a missing --data-path gave a reconstruction
    out = tmp_path / "x.csv"
    extra = ["--out", str(out)] if action == "export" else []
    assert main(["scenarios", action, "312", *argv, *extra]) == 2
    got = capsys.readouterr()
    assert got.out == "" and got.err.strip() == f"deleverage: error: {got.err.strip().split('error: ', 1)[1]}"
    assert said in got.err and len(got.err.strip().splitlines()) == 1
    assert not out.exists()


def test_asset_and_venue_are_case_insensitive_like_the_scenario_name(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DELEVERAGE_CACHE", str(tmp_path / "empty-cache"))
    assert main(["scenarios", "show", "2024-08-05", "--asset", "eth"]) == 0
    out = capsys.readouterr().out
    assert "Figures (ETH, binance_usdm)" in out and "low        2024-08-05T06:45Z low   catalogue     2,118.00" in out
    assert main(["scenarios", "export", "LUNA", "--venue", "Binance_USDM", "--seed", "2", "--out", str(tmp_path / "l.csv")]) == 0
    meta = json.loads((tmp_path / "l.csv.meta.json").read_text())
    assert meta["venue"] == "binance_usdm" and meta["seed"] == 2 and meta["asset"] == "BTC"
    # a seed where --data auto finds no real bars (luna: nothing shipped, shared or cached) is the reconstruction's
    assert main(["scenarios", "export", "luna", "--data", "auto", "--seed", "2", "--out", str(tmp_path / "a.csv")]) == 0
    assert json.loads((tmp_path / "a.csv.meta.json").read_text())["kind"] == "reconstructed"


def test_the_library_checks_seed_and_data_path_too():
    from feeds.scenarios import get_scenario
    from risk.errors import DeleverageError

    s = get_scenario("312")
    for seed in (-1, 1.5, "3", True):
        with pytest.raises(DeleverageError, match=r"seed .*: expected a non-negative integer"):
            s.bars(seed=seed)
    with pytest.raises(DeleverageError, match="data_path /nonexistent: no such file or folder"):
        s.bars(data="auto", data_path="/nonexistent")
    with pytest.raises(DeleverageError, match="seed 2: only a reconstruction has a seed"):
        s.bars(data="real", seed=2)


@pytest.mark.parametrize("name", ["3ac", "312", "2024-08-05"])
def test_an_exported_reconstruction_reads_back_through_the_validator(tmp_path, capsys, name):
    # before: 3ac's row 721 "open 20400 is outside [low, high] = [20343.9, 20400]" (exit 1), and the
    # backtest refused the same file; 312 and 2024-08-05 had one such bar each
    out = tmp_path / f"{name}.csv"
    assert main(["scenarios", "export", name, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["data", "validate", str(out)]) == 0
    assert "result: OK (0 errors" in capsys.readouterr().out
