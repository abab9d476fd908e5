"""Issue 12, money and data: funding units from the whole file, too-short data, bad prints, what is left out.

Hand-made frames with hand-calculated findings; the real shared files for the funding unit
(research/mechanics.md 2.1-2.3: the base rate is 0.01 % per 8 h, 0.03 %/day).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feeds.build import build_frame, liquidation_left_out
from feeds.detect import load, validate_file
from feeds.errors import FeedError
from feeds.liquidations import aggregate_liquidations
from feeds.validate import detect_funding_unit, validate_bars, validate_events, validate_funding

FUNDING = "binance_usdtm_funding_btc_eth_2020-03_2021-04_2021-05.csv"
BITMEX = "bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv"


# ---------------------------------------------------------------- funding unit, from the file as a whole

@pytest.mark.parametrize("rates, hours, unit", [
    ([0.0001] * 5 + [0.0003, -0.0002], 8, "fraction"),      # 5 of 7 at the base rate 0.0001
    ([0.01] * 5 + [0.03, -0.02], 8, "percent"),               # the same file in percent: base rate written 0.01
    ([0.00015, 0.0002, 0.00012], 8, "fraction"),              # median 0.00015 = 1.5x base, no rate at base
    ([0.0025, 0.003, 0.0028], 8, "ambiguous"),                # median 0.0028 = 28x base: 0.28 % or 0.0028 %?
    ([0.006, 0.007, 0.0065], 8, "percent"),                   # median 65x base: as fractions 0.65 %/8 h
    ([0.0000125] * 3 + [0.00002], 1, "fraction"),             # Hyperliquid hourly base 0.01 %/8 = 0.00125 %/h
    ([0.00125] * 3 + [0.002], 1, "percent"),
    ([0.0, 0.0], 8, "fraction"),                              # nothing to tell: zero funding is zero in any unit
])
def test_detect_funding_unit(rates: list[float], hours: float, unit: str) -> None:
    assert detect_funding_unit(np.array(rates), hours)[0] == unit


def _calm_rows(shared_data: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader((shared_data / FUNDING).open()))
    header, body = rows[0], rows[1:]
    i = header.index("funding_rate")
    calm = [r for r in body if r[0] == "BTCUSDT" and abs(float(r[i])) < 0.0005][:30]
    assert len(calm) == 30 and max(abs(float(r[i])) for r in calm) * 100 < 0.05  # x100 stays under the 5 % check
    return header, calm


def test_calm_window_in_percent_is_refused_and_declared_unit_restores_it(shared_data: Path, tmp_path: Path) -> None:
    header, calm = _calm_rows(shared_data)
    i = header.index("funding_rate")
    frac = tmp_path / "fraction.csv"
    pct = tmp_path / "percent.csv"
    with frac.open("w", newline="") as f:
        csv.writer(f).writerows([header, *calm])
    with pct.open("w", newline="") as f:
        csv.writer(f).writerows([header, *[[*r[:i], repr(float(r[i]) * 100), *r[i + 1:]] for r in calm]])
    assert np.isclose(load(frac)["funding_rate"].to_numpy(), [float(r[i]) for r in calm]).all()
    with pytest.raises(FeedError) as exc:
        load(pct)
    msg = str(exc.value)
    assert "column 'funding_rate'" in msg and "look like percentages" in msg and "--funding-unit" in msg
    declared = load(pct, funding_unit="percent")
    np.testing.assert_allclose(declared["funding_rate"].to_numpy(), [float(r[i]) for r in calm], rtol=1e-12)
    assert any("percent" in n for n in declared.attrs["notes"])
    # the whole-file decision is what validate prints
    report = validate_file(pct)[0]
    assert not report.ok and report.stats["funding unit"].startswith("percent")


def test_ambiguous_funding_file_names_the_column_and_the_option(tmp_path: Path) -> None:
    path = tmp_path / "funding.csv"
    lines = ["symbol,calc_time_ms,calc_time_utc,funding_interval_hours,funding_rate"]
    for k in range(12):  # 2020-03-01 00:00 UTC = 1583020800000 ms, every 8 h; 0.25 %..0.36 %: 25-36x base
        t = 1583020800000 + k * 8 * 3_600_000
        lines.append(f"BTCUSDT,{t},{pd.Timestamp(t, unit='ms', tz='UTC'):%Y-%m-%dT%H:%M:%S.000Z},8,{0.0025 + 0.0001 * k:.4f}")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FeedError, match=r"column 'funding_rate': cannot tell whether the funding rates are fractions or "
                                        r"percentages.*--funding-unit fraction\|percent"):
        load(path)
    assert load(path, funding_unit="fraction")["funding_rate"].iloc[0] == pytest.approx(0.0025)


def test_real_funding_files_are_fractions(shared_data: Path) -> None:
    for name in (FUNDING, "bitmex_xbtusd_funding_2020-02-15_2020-04-15.csv"):
        report = validate_file(shared_data / name)[0]
        assert report.ok and report.stats["funding unit"].startswith("fraction"), report.format()


# ---------------------------------------------------------------- empty and too-short data

def test_header_only_files_are_refused(shared_data: Path, tmp_path: Path) -> None:
    for name in (BITMEX, FUNDING):
        path = tmp_path / name
        path.write_text((shared_data / name).read_text().splitlines()[0] + "\n")
        report = validate_file(path)[0]
        assert not report.ok and "no data rows (only a header line)" in report.errors[0].message


def test_one_bar_is_too_few(shared_data: Path, tmp_path: Path) -> None:
    path = tmp_path / BITMEX
    path.write_text("\n".join((shared_data / BITMEX).read_text().splitlines()[:2]) + "\n")
    with pytest.raises(FeedError, match=r"1 bar; expected at least 2 \(too few to tell the bar interval\)"):
        load(path)


def test_empty_frames_are_errors() -> None:
    empty_funding = pd.DataFrame({"time": pd.DatetimeIndex([], tz="UTC"), "symbol": [], "funding_rate": []})
    assert validate_funding(empty_funding).errors[0].check == "empty"
    bars = pd.DataFrame({c: [] for c in ("open", "high", "low", "close", "volume")},
                        index=pd.DatetimeIndex([], tz="UTC", name="open_time"))
    assert "0 bars; expected at least 2" in validate_bars(bars).errors[0].message


def test_one_row_symbol_is_in_the_funding_summary() -> None:
    t = pd.to_datetime(["2020-03-01T00:00Z", "2020-03-01T08:00Z", "2020-03-01T16:00Z", "2020-03-01T08:00Z"], utc=True)
    frame = pd.DataFrame({"time": t, "symbol": ["BTCUSDT", "BTCUSDT", "BTCUSDT", "ETHUSDT"],
                          "funding_rate": [0.0001, 0.0001, 0.0002, 0.0001], "interval_hours": 8.0})
    report = validate_funding(frame, file="f.csv")
    assert report.stats["BTCUSDT settlements"].startswith("3 from 2020-03-01T00:00:00Z")
    assert report.stats["ETHUSDT settlements"] == "1 at 2020-03-01T08:00:00Z (too few to check the schedule)"


# ---------------------------------------------------------------- suspected bad prints

def _bars(high: list[float], low: list[float], **extra: list[float]) -> pd.DataFrame:
    n = len(high)
    idx = pd.date_range("2020-03-12", periods=n, freq="1min", tz="UTC", name="open_time")
    close = [(h + lo) / 2 for h, lo in zip(high, low)]
    return pd.DataFrame({"open": close, "high": high, "low": low, "close": close, "volume": [1.0] * n, **extra}, index=idx)


def test_one_bar_high_100x_its_neighbours_is_an_error_with_the_row() -> None:
    bars = _bars([101, 102, 10_200, 103, 104], [99, 100, 100, 101, 102])
    report = validate_bars(bars, file="bars.csv")
    (err,) = report.errors
    # neighbours of row 3: highs 102 (row 2) and 103 (row 4): 10,200 / 103 = 99.03x
    assert err.check == "outlier" and err.row == 3 and err.column == "high"
    assert err.message.startswith("bars.csv: row 3 (2020-03-12T00:02:00Z), column 'high': high 10200 is 99x the highest "
                                  "price of its neighbouring bars (103)")
    assert "--allow-outliers" in err.message
    allowed = validate_bars(bars, file="bars.csv", allow_outliers=True)
    assert allowed.ok and allowed.warnings[0].check == "outlier"


def test_one_bar_low_spike_is_flagged_and_a_genuine_move_is_not() -> None:
    report = validate_bars(_bars([101, 100, 99, 98, 97], [99, 98, 0.5, 97, 96]), file="b")
    (err,) = report.errors
    assert err.row == 3 and err.column == "low" and "194x below the lowest price of its neighbouring bars (97)" in err.message
    # a level that doubles and stays (rows 3-5) is inside the neighbours' range: not a bad print
    assert validate_bars(_bars([100, 100, 200, 201, 202], [99, 99, 190, 195, 196]), file="b").ok
    # 9.8 % beyond the neighbours (the largest on the shared real files) is not a bad print either
    assert validate_bars(_bars([100, 100, 100, 100], [99, 99, 99 / 1.098, 99]), file="b").ok


def test_bars_far_from_their_mark_are_flagged() -> None:
    # two consecutive bad highs escape the neighbour check (each has the other as neighbour), not the mark check
    bars = _bars([100, 100, 160, 160, 100], [99, 99, 99, 99, 99], mark_open=[99.5] * 5, mark_high=[100.0] * 5,
                 mark_low=[99.0] * 5, mark_close=[99.5] * 5)
    report = validate_bars(bars, file="b")
    (err,) = report.errors
    assert err.row == 3 and "1.6x the highest price of its mark price (100)" in err.message
    assert "(2 rows in total, first shown)" in err.message


def test_real_bar_files_have_no_suspected_bad_prints(shared_data: Path) -> None:
    for name in (BITMEX, "bitmex_xbtusd_1m_2021-05-16_2021-05-22.csv", "binance_spot_btcusdt_1h_2020-03-05_2020-03-20.csv"):
        report = validate_file(shared_data / name)[0]
        assert not [i for i in report.issues if i.check == "outlier"], report.format()


def test_a_bad_print_in_a_real_file_is_refused_unless_allowed(shared_data: Path, tmp_path: Path) -> None:
    rows = list(csv.reader((shared_data / BITMEX).open()))[:200]
    rows[100][3] = repr(float(rows[100][3]) * 100)  # data row 100's high x100
    path = tmp_path / BITMEX
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(FeedError, match=r"row 100 \(2020-03-09T01:39:00Z\), column 'high': high 811350 is 99.9x"):
        load(path)
    assert len(load(path, allow_outliers=True)) == 199


# ---------------------------------------------------------------- what a liquidation file leaves out

def _events(symbols: list[str], minutes: list[int]) -> pd.DataFrame:
    t = pd.Timestamp("2020-03-12T00:00Z") + pd.to_timedelta(minutes, unit="min") + pd.Timedelta(seconds=30)
    n = len(symbols)
    return pd.DataFrame({"time": t, "venue": "binance_usdm", "symbol": symbols, "position_side": ["long"] * n,
                         "order_side": ["sell"] * n, "price": [100.0] * n, "avg_price": [100.0] * n,
                         "qty": [2.0] * n, "notional": [200.0] * n})


def test_other_symbol_events_are_counted_and_stated() -> None:
    events = _events(["BTCUSDT", "ETHUSDT", "BTCUSDT", "BTCUSDT"], [0, 1, 2, 30])
    idx = pd.date_range("2020-03-12", periods=5, freq="1min", tz="UTC")
    agg = aggregate_liquidations(events, "1min", index=idx, symbol="BTCUSDT")
    assert agg["liq_long_notional"].tolist() == [200.0, 0.0, 200.0, 0.0, 0.0]
    assert agg.attrs["events_other_symbols"] == {"ETHUSDT": 1} and agg.attrs["events_outside_window"] == 1
    assert liquidation_left_out(agg.attrs) == "; left out: 1 event of other symbols (ETHUSDT 1), 1 event outside the window"
    bars = _bars([101, 102, 103, 104, 105], [99, 100, 101, 102, 103])
    frame = build_frame(symbol="BTCUSDT", start="2020-03-12T00:00Z", end="2020-03-12T00:05Z", klines=bars,
                        liquidations=events)
    assert ("liquidations: 2 BTCUSDT events aggregated per bar by side; left out: 1 event of other symbols "
            "(ETHUSDT 1), 1 event outside the window") in frame.attrs["notes"]


def test_validate_lists_every_symbol_of_an_event_file() -> None:
    report = validate_events(_events(["BTCUSDT", "ETHUSDT", "BTCUSDT"], [0, 1, 2]), file="e.csv")
    assert report.stats["symbols"] == "BTCUSDT (2 events), ETHUSDT (1 event)"
