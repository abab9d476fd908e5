"""`deleverage backtest`: contradictory or ineffective options are one clear line, and the funding
source chosen is the one settled (``--no-funding`` really switches off the bars' funding)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from engine.cli import main


def write_bars(path, n=12, funding=None):
    """``n`` hourly bars from 2021-01-01 00:00 UTC: open 20,000, close 20,000 + 100 per bar; a
    ``funding_rate`` column with ``funding`` at 08:00 when given."""
    times = pd.date_range("2021-01-01", periods=n, freq="h", tz="UTC")
    opens = [20_000.0 + 100.0 * i for i in range(n)]
    closes = [o + 100.0 for o in opens]
    frame = pd.DataFrame({"open_time": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times], "open": opens,
                          "high": [c + 50.0 for c in closes], "low": [o - 50.0 for o in opens], "close": closes,
                          "volume": 10.0})
    if funding is not None:
        frame["funding_rate"] = [funding if t.hour in (0, 8, 16) else None for t in times]
    frame.to_csv(path, index=False)
    return path


def run_json(capsys, *args):
    try:
        code = main(["backtest", *map(str, args), "--json", "--no-report"])
    except SystemExit as exc:  # argparse refuses an option's value
        code = exc.code
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def test_no_funding_switches_off_the_bars_funding(tmp_path, capsys) -> None:
    data = write_bars(tmp_path / "f.csv", funding=0.003)
    code, settled, _ = run_json(capsys, "--data", data, "--funding-unit", "fraction", "--out", tmp_path / "a")
    assert code == 0
    code, off, _ = run_json(capsys, "--data", data, "--funding-unit", "fraction", "--no-funding",
                            "--out", tmp_path / "b")
    assert code == 0
    # buy_and_hold 1x fills at the first open (20,000); qty = 10,000 / (1 + 0.0005) * 0.999999 / 20,000
    qty = 10_000.0 / 1.0005 * 0.999999 / 20_000.0
    qty = math.floor(qty * 1000) / 1000  # rounded down to the BTCUSDT lot, 0.001
    assert qty == 0.499
    # the 00:00 settlement is paid before the fill (flat); 08:00 is paid at open 20,800: -0.499 * 20,800 * 0.01
    assert settled["funding_total"] == pytest.approx(-0.499 * 20_800.0 * 0.003, rel=1e-12)
    assert off["funding_total"] == 0.0
    assert settled["final_equity"] - off["final_equity"] == pytest.approx(-0.499 * 20_800.0 * 0.003, rel=1e-9)


@pytest.mark.parametrize("extra, needle", [
    (["--no-funding", "--funding-rate", "0.001"], "--no-funding with --funding-rate: contradictory"),
    (["--funding-rate", "0.001"], "--funding-rate 0.001: --data"),
])
def test_funding_rate_on_bars_with_funding_is_refused(tmp_path, capsys, extra, needle) -> None:
    data = write_bars(tmp_path / "f.csv", funding=0.0001)
    code, _, err = run_json(capsys, "--data", data, *extra, "--out", tmp_path / "o")
    assert code == 2 and needle in err and "Traceback" not in err


@pytest.mark.parametrize("rate", ["5", "0.0501", "-0.06"])
def test_funding_rate_outside_the_file_range_is_refused(tmp_path, capsys, rate) -> None:
    data = write_bars(tmp_path / "b.csv")
    code, _, err = run_json(capsys, "--data", data, "--funding-rate", rate, "--out", tmp_path / "o")
    assert code == 2 and "--funding-rate" in err and "within +-0.05" in err


def test_funding_rate_at_the_limit_runs(tmp_path, capsys) -> None:
    data = write_bars(tmp_path / "b.csv")
    code, s, _ = run_json(capsys, "--data", data, "--funding-rate", "0.05", "--out", tmp_path / "o")
    assert code == 0
    assert s["funding_total"] == pytest.approx(-0.499 * 20_800.0 * 0.05, rel=1e-12)


def test_no_funding_with_a_funding_file_is_refused(tmp_path, capsys) -> None:
    data = write_bars(tmp_path / "b.csv")
    code, _, err = run_json(capsys, "--data", data, "--funding", data, "--no-funding", "--start", "2021-01-01",
                            "--end", "2021-01-02", "--out", tmp_path / "o")
    assert code == 2 and "--no-funding with --funding: contradictory" in err


@pytest.mark.parametrize("extra, needle", [
    (["--start", "2020-03-12", "--end", "2020-03-13"], "--start, --end: not read with --scenario 312"),
    (["--funding-unit", "percent"], "--funding-unit: not read with --scenario 312"),
    (["--allow-outliers"], "--allow-outliers: not read with --scenario 312"),
    (["--format", "generic"], "--format: not read with --scenario 312"),
    (["--funding-rate", "0.01"], "--funding-rate 0.01: --scenario 312 already carries funding rates"),
    (["--data-path", "/tmp"], "--data-path: read only with --scenario NAME --data-kind real"),
    (["--no-funding", "--funding-rate", "0.01"], "contradictory"),
])
def test_scenario_options_that_would_be_ignored_are_errors(tmp_path, capsys, extra, needle) -> None:
    code, _, err = run_json(capsys, "--scenario", "312", *extra, "--out", tmp_path / "o")
    assert code == 2 and needle in err, err


@pytest.mark.parametrize("extra, needle", [
    (["--data-kind", "real", "--no-funding"], "--data-kind real: goes with --scenario"),
    (["--funding-unit", "percent", "--no-funding"], "--funding-unit percent: --data"),
    (["--param", "leverage=5", "--leverage", "3", "--no-funding"], "--param leverage=5 with --leverage 3"),
    (["--adl-quantile", "0.5", "--no-funding"], "--adl-quantile: --data"),
    (["--adl-queue-notional", "1000", "--no-funding"], "--adl-queue-notional: --data"),
    (["--start", "2021-01-01", "--no-funding"], "--start: a window needs both --start and --end"),
])
def test_data_options_that_would_be_ignored_are_errors(tmp_path, capsys, extra, needle) -> None:
    data = write_bars(tmp_path / "b.csv")
    code, _, err = run_json(capsys, "--data", data, *extra, "--out", tmp_path / "o")
    assert code == 2 and needle in err, err


def test_wrong_file_kinds_name_the_file_and_its_kind(tmp_path, capsys) -> None:
    bars = write_bars(tmp_path / "b.csv")
    funding = tmp_path / "funding.csv"
    funding.write_text("symbol,calc_time_ms,calc_time_utc,funding_interval_hours,funding_rate\n"
                       "BTCUSDT,1609459200000,2021-01-01T00:00:00.000Z,8,0.0001\n"
                       "BTCUSDT,1609488000000,2021-01-01T08:00:00.000Z,8,0.0001\n")
    window = ["--start", "2021-01-01", "--end", "2021-01-01T12:00Z"]
    code, _, err = run_json(capsys, "--data", bars, "--funding", bars, *window, "--out", tmp_path / "o")
    assert code == 2 and f"--funding {bars}: holds price bars, not funding rates" in err
    code, _, err = run_json(capsys, "--data", bars, "--mark", funding, *window, "--out", tmp_path / "o")
    assert code == 2 and f"--mark {funding}: holds funding rates, not mark-price klines" in err
    code, _, err = run_json(capsys, "--data", funding, "--no-funding", "--out", tmp_path / "o")
    assert code == 2 and f"--data {funding}: holds funding rates, not price bars" in err


def test_liquidation_files_as_data_say_what_they_hold(shared_data, tmp_path, capsys) -> None:
    for name, kind in (("binance_usdtm_btcusdt_forceorders_2024-12-04_2024-12-06.csv", "liquidation events"),
                       ("hyperliquid_liquidations_with_fills_2023-02-28_2023-05-01.csv", "liquidation events"),
                       ("coinglass_btc_liquidations_1h_binance_bybit_okx_2025-11-23_2026-05-22.csv",
                        "per-bar liquidation aggregates")):
        code, _, err = run_json(capsys, "--data", shared_data / name, "--no-funding", "--out", tmp_path / "o")
        assert code == 2 and f"{name}: holds {kind}, not price bars" in err, err


def test_a_missing_extra_file_is_named(tmp_path, capsys) -> None:
    data = write_bars(tmp_path / "b.csv")
    code, _, err = run_json(capsys, "--data", data, "--funding", tmp_path / "nope.csv", "--start", "2021-01-01",
                            "--end", "2021-01-02", "--out", tmp_path / "o")
    assert code == 2 and f"--funding {tmp_path / 'nope.csv'}: file not found" in err
