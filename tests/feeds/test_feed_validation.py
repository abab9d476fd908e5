"""Every bad input of issue 3 item 4 gives an error naming the problem, the file, the row and the column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feeds import bitmex, exports
from feeds.errors import FeedError, UnitMismatchError
from feeds.generic import load_table
from feeds.validate import validate_bars

HEADER = "timestamp_ms,open_time_utc,symbol,open,high,low,close,volume_base,volume_quote"
T0 = 1_583_712_000_000  # 2020-03-09T00:00Z


def bar_lines(n: int = 6, start: int = T0, step: int = 3_600_000) -> list[list]:
    rows = []
    for i in range(n):
        t = start + i * step
        iso = pd.Timestamp(t, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append([t, iso, "BTC/USDT", 100.0 + i, 102.0 + i, 99.0 + i, 101.0 + i, 10.0, 10.0 * (100.5 + i)])
    return rows


def write(tmp_path: Path, rows: list[list], header: str = HEADER, name: str = "bars.csv") -> Path:
    p = tmp_path / name
    p.write_text(header + "\n" + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return p


def load_bad(tmp_path: Path, rows: list[list], **kw) -> str:
    path = write(tmp_path, rows)
    with pytest.raises(FeedError) as exc:
        exports.load_kline_export(path, **kw)
    return str(exc.value)


def test_good_file_loads(tmp_path: Path) -> None:
    frame = exports.load_kline_export(write(tmp_path, bar_lines()))
    assert len(frame) == 6 and str(frame.index.tz) == "UTC" and frame.index.name == "open_time"
    assert frame.attrs["validation"]["interval"] == "1h"


def test_unsorted(tmp_path: Path) -> None:
    rows = bar_lines()
    rows[3], rows[4] = rows[4], rows[3]
    msg = load_bad(tmp_path, rows)
    assert "bars.csv: row 5 (2020-03-09T03:00:00Z)" in msg and "unsorted" in msg


def test_duplicate(tmp_path: Path) -> None:
    rows = bar_lines()
    rows[3] = [rows[2][0], rows[2][1], *rows[3][2:]]
    msg = load_bad(tmp_path, rows)
    assert "row 4 (2020-03-09T02:00:00Z)" in msg and "duplicate" in msg


def test_gap_counted_and_largest_reported(tmp_path: Path) -> None:
    rows = bar_lines(12)
    del rows[9:11]  # 2 missing hours after 08:00
    del rows[2]  # 1 missing hour after 01:00
    msg = load_bad(tmp_path, rows)
    assert "row 3 (2020-03-09T03:00:00Z)" in msg and "gap of 1 missing 1h bars" in msg
    assert "2 gaps, 3 missing bars in total, largest 2 after 2020-03-09T08:00:00Z" in msg
    frame = exports.load_kline_export(write(tmp_path, rows), allow_gaps=True)  # allowed: a warning, not filled
    assert len(frame) == 9


def test_high_below_low(tmp_path: Path) -> None:
    rows = bar_lines()
    rows[2][4] = 98.0  # high < low 101
    msg = load_bad(tmp_path, rows)
    assert "row 3 (2020-03-09T02:00:00Z), column 'high': high 98 is below low 101" in msg


def test_close_outside_range(tmp_path: Path) -> None:
    rows = bar_lines()
    rows[1][6] = 150.0
    msg = load_bad(tmp_path, rows)
    assert "row 2 (2020-03-09T01:00:00Z), column 'close': close 150 is outside [low, high] = [100, 103]" in msg


def test_open_outside_range_needs_the_venue_quirk(tmp_path: Path) -> None:
    rows = bar_lines()
    rows[4][3] = 90.0
    msg = load_bad(tmp_path, rows)
    assert "row 5" in msg and "column 'open'" in msg and "(for BitMEX buckets, whose open is the previous close, use --format bitmex_buckets)" in msg
    assert "open_is_previous_close" not in msg


def test_bitmex_quirk_still_checks_that_open_is_the_previous_close(tmp_path: Path) -> None:
    header = "timestamp_ms,open_time_utc,open,high,low,close,volume_usd_contracts"
    rows = [[T0 + i * 60_000, pd.Timestamp(T0 + i * 60_000, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
             100.0, 101.0, 99.0, 100.0, 50_000] for i in range(4)]
    rows[2][2] = 120.0  # outside [99, 101] and not the previous close 100
    path = write(tmp_path, rows, header)
    with pytest.raises(FeedError, match=r"row 3 \(2020-03-09T00:02:00Z\), column 'open': open 120 .* not the previous close"):
        bitmex.load_buckets(path)


def test_nonpositive_price(tmp_path: Path) -> None:
    rows = bar_lines()
    rows[3][5] = 0.0
    rows[3][3] = 0.0
    msg = load_bad(tmp_path, rows)
    assert "row 4 (2020-03-09T03:00:00Z), column 'open': price 0 is not positive" in msg


def test_nan(tmp_path: Path) -> None:
    rows = bar_lines()
    rows[2][6] = ""
    msg = load_bad(tmp_path, rows)
    assert "row 3 (2020-03-09T02:00:00Z), column 'close': value is NaN" in msg


def test_missing_time_zone(tmp_path: Path) -> None:
    p = tmp_path / "naive.csv"
    p.write_text("open_time,open,high,low,close,volume\n2020-03-09 00:00:00,1,2,0.5,1.5,3\n2020-03-09 00:01:00,1,2,0.5,1.5,3\n")
    with pytest.raises(FeedError, match=r"naive.csv: row 1, column 'open_time': .* has no time zone"):
        load_table(p)
    assert len(load_table(p, assume_utc=True)) == 2  # stated explicitly, accepted


def test_mixed_time_zones(tmp_path: Path) -> None:
    p = tmp_path / "mixed.csv"
    p.write_text("open_time,open,high,low,close,volume\n2020-03-09T00:00:00Z,1,2,0.5,1.5,3\n"
                 "2020-03-09T00:01:00Z,1,2,0.5,1.5,3\n2020-03-09T01:02:00+01:00,1,2,0.5,1.5,3\n")
    with pytest.raises(FeedError, match=r"mixed.csv: row 3, column 'open_time': .*zone \+01:00.*mixed time zones"):
        load_table(p)
    p.write_text("open_time,open,high,low,close,volume\n2020-03-09T00:00:00Z,1,2,0.5,1.5,3\n2020-03-09 00:01:00,1,2,0.5,1.5,3\n")
    with pytest.raises(FeedError, match=r"row 2, column 'open_time': .*has no time zone.*mixed time zones"):
        load_table(p)


def test_mixed_epoch_units(tmp_path: Path) -> None:
    rows = bar_lines()
    rows[4][0] = rows[4][0] * 1000  # microseconds
    msg = load_bad(tmp_path, rows)
    assert "row 5, column 'timestamp_ms'" in msg and "epoch us" in msg and "mixed units" in msg


def test_epoch_and_text_disagree(tmp_path: Path) -> None:
    rows = bar_lines()
    rows[2][1] = "2020-03-09T05:00:00Z"
    msg = load_bad(tmp_path, rows)
    assert "row 3, column 'open_time_utc'" in msg and "disagrees" in msg


def test_contracts_claimed_as_coins(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "bitmex_xbtusd_1m_2021-05-16_2021-05-22.csv"
    with pytest.raises(UnitMismatchError, match=r"row \d+ \(2021-05-16T.*column 'volume'.*expected volume in base units"):
        bitmex.load_buckets(src, volume_unit="base")
    mapping = {"open_time": "timestamp_ms", "volume": "volume_usd_contracts"}
    with pytest.raises(UnitMismatchError, match="looks like contracts"):
        load_table(src, mapping=mapping, volume_unit="base", open_is_previous_close=True)
    ok = load_table(src, mapping=mapping, volume_unit="contracts", inverse=True, contract_size=1.0,
                    open_is_previous_close=True)
    assert ok["quote_volume"].iloc[0] == 3_798_522


def test_vwap_unit_check(tmp_path: Path) -> None:
    rows = bar_lines()
    rows[2][7], rows[2][8] = rows[2][8], rows[2][7]  # quote and base swapped on one row
    msg = load_bad(tmp_path, rows)
    assert "row 3 (2020-03-09T02:00:00Z), column 'volume': quote_volume / volume" in msg


def test_funding_in_percent(tmp_path: Path) -> None:
    p = tmp_path / "funding.csv"
    p.write_text("symbol,calc_time_ms,calc_time_utc,funding_interval_hours,funding_rate\n"
                 "BTCUSDT,1583020800000,2020-03-01T00:00:00.000Z,8,0.01\n"
                 "BTCUSDT,1583049600000,2020-03-01T08:00:00.000Z,8,-0.3\n")
    with pytest.raises(UnitMismatchError, match=r"funding.csv: row 2 \(2020-03-01T08:00:00Z\), column 'funding_rate': "
                                                  r"funding rate -0.3 exceeds 0.05.*percentage"):
        exports.load_funding_export(p)


def test_report_without_rows_names_timestamp() -> None:
    idx = pd.date_range("2021-01-01", periods=3, freq="1min", tz="UTC", name="open_time")
    frame = pd.DataFrame({"open": 1.0, "high": [2.0, 2.0, 0.5], "low": 1.0, "close": 1.0, "volume": 1.0}, index=idx)
    report = validate_bars(frame, rows=False, file="built")
    assert not report.ok
    assert report.errors[0].message.startswith("built: at 2021-01-01T00:02:00Z, column 'high': high 0.5 is below low 1")
    naive = frame.tz_localize(None)
    assert validate_bars(naive).errors[0].check == "timezone"
    assert np.isnan(frame.assign(close=np.nan)["close"]).all()
