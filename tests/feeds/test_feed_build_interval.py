"""``build_frame`` takes the bars' own interval, and ``backtest --funding FOLDER`` settles a
folder of funding files on hourly bars at the right bars (hand-made bars, hand-computed payments)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from engine.cli import main
from feeds.build import build_frame
from tests.cli_errors import one_line_error

# Binance fundingRate layout (the shared file's header); 8-hourly, a few ms of calc_time jitter
FUNDING_HEADER = "symbol,calc_time_ms,calc_time_utc,funding_interval_hours,funding_rate"
RATES = {"2020-12-31T16:00:00.003Z": 0.0001, "2021-01-01T00:00:00.004Z": 0.001,
         "2021-01-01T08:00:00.002Z": 0.002, "2021-01-01T16:00:00.001Z": -0.0005,
         "2021-01-02T00:00:00.004Z": 0.0003}


def write_bars(path, n=24, times=None):
    """``n`` hourly bars from 2021-01-01 00:00 UTC: open 20,000 + 100 per bar, close open + 100; no funding."""
    times = pd.date_range("2021-01-01", periods=n, freq="h", tz="UTC") if times is None else pd.DatetimeIndex(times)
    opens = [20_000.0 + 100.0 * i for i in range(len(times))]
    closes = [o + 100.0 for o in opens]
    frame = pd.DataFrame({"open_time": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times], "open": opens,
                          "high": [c + 50.0 for c in closes], "low": [o - 50.0 for o in opens], "close": closes,
                          "volume": 10.0})
    frame.to_csv(path, index=False)
    return path


def write_funding(path, times):
    lines = [FUNDING_HEADER]
    for t in times:
        ms = int(pd.Timestamp(t).value // 1_000_000)
        lines.append(f"BTCUSDT,{ms},{t},8,{RATES[t]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def funding_folder(tmp_path):
    """Two files whose names sort against their time order (the folder is read in time order)."""
    folder = tmp_path / "funding"
    folder.mkdir()
    keys = list(RATES)
    write_funding(folder / "a_later.csv", keys[3:])
    write_funding(folder / "b_earlier.csv", keys[:3])
    (folder / "README.md").write_text("not data\n")
    return folder


def run_json(capsys, *args):
    try:
        code = main(["backtest", *map(str, args), "--json", "--no-report"])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def test_build_frame_keeps_hourly_bars_and_places_funding_on_them(tmp_path) -> None:
    bars = write_bars(tmp_path / "h.csv")
    frame = build_frame(symbol="BTCUSDT", start="2021-01-01", end="2021-01-02", klines=bars,
                        funding=funding_folder(tmp_path))
    assert frame.attrs["interval"] == "1h" and len(frame) == 24  # nothing resampled
    placed = frame["funding_rate"].dropna()
    assert [t.strftime("%H:%M") for t in placed.index] == ["00:00", "08:00", "16:00"]
    assert placed.tolist() == [0.001, 0.002, -0.0005]
    assert frame["open"].iloc[8] == 20_800.0 and frame["open"].iloc[16] == 21_600.0


def test_backtest_funding_folder_on_hourly_bars_settles_hand_computed_payments(tmp_path, capsys) -> None:
    bars = write_bars(tmp_path / "h.csv")
    code, s, err = run_json(capsys, "--data", bars, "--funding", funding_folder(tmp_path), "--start", "2021-01-01",
                            "--end", "2021-01-02", "--strategy", "buy_and_hold", "--symbol", "BTCUSDT", "--out", tmp_path / "run")
    assert code == 0, err
    # buy_and_hold 1x fills at the first open, 20,000 (taker fee 0.04 %): qty = 10,000 / 1.0004 * 0.999999 /
    # 20,000 = 0.49980, down to the 0.001 lot: 0.499. The 00:00 settlement is paid before the fill (flat); 08:00 at the
    # open 20,800 (longs pay 0.2 %): -0.499 * 20,800 * 0.002 = -20.7584; 16:00 at 21,600 (-0.05 %: longs
    # receive): +0.499 * 21,600 * 0.0005 = +5.3892; the 2021-01-02 00:00 settlement is after the window.
    assert math.floor(10_000.0 / 1.0004 * 0.999999 / 20_000.0 * 1000) / 1000 == 0.499
    assert s["funding_total"] == pytest.approx(-20.7584 + 5.3892, rel=1e-12)
    assert s["funding_total"] == pytest.approx(-15.3692, rel=1e-12)


def test_backtest_empty_funding_folder_is_one_line(tmp_path, capsys) -> None:
    bars = write_bars(tmp_path / "h.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no data here\n")
    assert main(["backtest", "--data", str(bars), "--funding", str(empty), "--start", "2021-01-01", "--end",
                 "2021-01-02", "--strategy", "buy_and_hold", "--symbol", "BTCUSDT", "--out", str(tmp_path / "b"), "--no-report"]) == 2
    line = one_line_error(capsys)
    assert f"--funding {empty}: the folder holds no data files" in line


def test_backtest_funding_folder_with_bars_in_it_names_the_file(tmp_path, capsys) -> None:
    bars = write_bars(tmp_path / "h.csv")
    folder = funding_folder(tmp_path)
    write_bars(folder / "c_bars.csv")
    assert main(["backtest", "--data", str(bars), "--funding", str(folder), "--start", "2021-01-01", "--end",
                 "2021-01-02", "--strategy", "buy_and_hold", "--symbol", "BTCUSDT", "--out", str(tmp_path / "a"), "--no-report"]) == 2
    line = one_line_error(capsys)
    assert f"--funding {folder}: {folder / 'c_bars.csv'}: holds price bars, not funding rates" in line


def test_bars_with_no_regular_interval_are_one_line(tmp_path, capsys) -> None:
    times = list(pd.date_range("2021-01-01", periods=24, freq="h", tz="UTC"))
    times[5] = times[5] + pd.Timedelta(minutes=30)  # 05:30 instead of 05:00
    bars = write_bars(tmp_path / "odd.csv", times=times)
    assert main(["backtest", "--data", str(bars), "--funding", str(funding_folder(tmp_path)), "--start",
                 "2021-01-01", "--end", "2021-01-02", "--strategy", "buy_and_hold", "--symbol", "BTCUSDT", "--out", str(tmp_path / "a"),
                 "--no-report"]) == 2
    line = one_line_error(capsys)
    assert (f"klines: {bars} has no regular bar interval: the bar at 2021-01-01T05:30:00Z is 90min after the "
            "previous one (the most common step is 1h; 2 step(s) off that grid); expected bars on one interval") in line


def test_window_off_the_hourly_grid_is_one_line(tmp_path, capsys) -> None:
    bars = write_bars(tmp_path / "h.csv")
    assert main(["backtest", "--data", str(bars), "--funding", str(funding_folder(tmp_path)), "--start",
                 "2021-01-01T00:30Z", "--end", "2021-01-02", "--strategy", "buy_and_hold", "--symbol", "BTCUSDT", "--out",
                 str(tmp_path / "a"), "--no-report"]) == 2
    line = one_line_error(capsys)
    assert "is not on the 1h grid of the bars; expected start and end that are multiples of 1h (UTC)" in line


@pytest.mark.shared_data
def test_real_hourly_spot_bars_with_a_folder_of_real_binance_funding(shared_data, tmp_path, capsys) -> None:
    """The reproduction: the shared Binance spot hours and the shared Binance USD-M funding file in a folder."""
    import shutil

    folder = tmp_path / "funding"
    folder.mkdir()
    shutil.copy(shared_data / "binance_usdtm_funding_btc_eth_2020-03_2021-04_2021-05.csv", folder)
    code, s, err = run_json(capsys, "--data", shared_data / "binance_spot_btcusdt_1h_2020-03-05_2020-03-20.csv",
                            "--funding", folder, "--start", "2020-03-11", "--end", "2020-03-12",
                            "--strategy", "buy_and_hold", "--out", tmp_path / "run")
    assert code == 0, err
    # fill at the 00:00 open 7,894.56: qty = 10,000 / 1.0004 * 0.999999 / 7,894.56 = 1.26619 -> 1.266 (lot 0.001);
    # 00:00 (0.0001) is settled before the fill; 08:00 0.0001 at the open 7,860.93, 16:00 0.00022898 at 7,778.76
    qty = math.floor(10_000.0 / 1.0004 * 0.999999 / 7_894.56 * 1000) / 1000
    assert qty == 1.266
    expected = -(1.266 * 7_860.93 * 0.0001 + 1.266 * 7_778.76 * 0.00022898)
    assert expected == pytest.approx(-(0.995194 + 2.254974), abs=1e-6)  # 3.250168
    assert s["funding_total"] == pytest.approx(expected, rel=1e-9)
