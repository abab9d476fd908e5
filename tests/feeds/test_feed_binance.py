"""Binance archive formats: CSV and ZIP, with and without header, ms and us timestamps, UM and COIN-M."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from feeds import binance
from feeds.detect import detect_format, load
from feeds.errors import FeedError, UnitMismatchError

UM_HEADER = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"
CM_HEADER = "open_time,open,high,low,close,volume,close_time,base_volume,count,taker_buy_volume,taker_buy_base_volume,ignore"
T0 = 1_621_382_400_000  # 2021-05-19T00:00Z


def kline_rows(n: int = 5, unit: int = 1, cm: bool = False, zero_volume: bool = False) -> list[str]:
    rows = []
    for i in range(n):
        o = (T0 + i * 60_000) * unit
        c = o + 60_000 * unit - 1
        price = 40_000.0 + 10 * i
        vol = 0.0 if zero_volume else 2.0
        if cm:  # volume in contracts of 100 USD, base_volume in BTC
            contracts = 8.0
            rows.append(f"{o},{price},{price + 20},{price - 20},{price + 5},{contracts},{c},{contracts * 100 / price:.8f},3,1,0.01,0")
        else:
            rows.append(f"{o},{price},{price + 20},{price - 20},{price + 5},{vol},{c},{vol * price},{0 if zero_volume else 3},1,{price},0")
    return rows


def archive(tmp_path: Path, market: str, kind: str, symbol: str, name: str, body: str, zipped: bool = True,
            interval: str | None = "1m") -> Path:
    d = tmp_path / "data" / "futures" / market / "daily" / kind / symbol
    if interval:
        d = d / interval
    d.mkdir(parents=True, exist_ok=True)
    if not zipped:
        p = d / (name + ".csv")
        p.write_text(body)
        return p
    p = d / (name + ".zip")
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr(name + ".csv", body)
    return p


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("zipped", [True, False])
@pytest.mark.parametrize("unit", [1, 1000])
def test_um_klines_any_layout(tmp_path: Path, header: bool, zipped: bool, unit: int) -> None:
    body = "\n".join(([UM_HEADER] if header else []) + kline_rows(unit=unit)) + "\n"
    p = archive(tmp_path, "um", "klines", "BTCUSDT", "BTCUSDT-1m-2021-05-19", body, zipped)
    assert detect_format(p) == "binance_klines"
    bars = load(p)
    assert len(bars) == 5 and bars.index[0] == pd.Timestamp("2021-05-19", tz="UTC")
    assert bars.index[1] - bars.index[0] == pd.Timedelta(minutes=1)
    assert bars.attrs["venue"] == "binance_usdm" and bars.attrs["symbol"] == "BTCUSDT" and bars.attrs["interval"] == "1min"
    assert bars["volume"].iloc[0] == 2.0 and bars["quote_volume"].iloc[0] == 80_000.0


def test_cm_klines_volume_is_coins(tmp_path: Path) -> None:
    p = archive(tmp_path, "cm", "klines", "BTCUSD_PERP", "BTCUSD_PERP-1m-2021-05-19",
                CM_HEADER + "\n" + "\n".join(kline_rows(cm=True)) + "\n")
    bars = load(p)
    assert bars.attrs["venue"] == "binance_coinm"
    assert bars["quote_volume"].iloc[0] == 800.0  # 8 contracts x 100 USD
    assert bars["volume"].iloc[0] == pytest.approx(800.0 / 40_000.0)
    with pytest.raises(UnitMismatchError, match="CM file.*market 'um'"):
        binance.load_klines(p, market="um")


def test_cm_file_read_as_um_fails_the_unit_check(tmp_path: Path) -> None:
    p = tmp_path / "BTCUSD_PERP-1m-2021-05-19.csv"  # header-less: only the values can tell
    p.write_text("\n".join(kline_rows(cm=True)) + "\n")
    with pytest.raises(UnitMismatchError, match=r"row 1 \(2021-05-19T00:00:00Z\), column 'volume': quote_volume / volume"):
        binance.load_klines(p, market="um")


def test_mark_index_premium(tmp_path: Path) -> None:
    body = "\n".join(kline_rows(zero_volume=True)) + "\n"
    mark = load(archive(tmp_path, "um", "markPriceKlines", "BTCUSDT", "BTCUSDT-1m-2021-05-19", body))
    assert list(mark.columns) == ["mark_open", "mark_high", "mark_low", "mark_close"]
    index = load(archive(tmp_path, "um", "indexPriceKlines", "BTCUSDT", "BTCUSDT-1m-2021-05-19", body))
    assert list(index.columns) == ["index_close"]
    with pytest.raises(FeedError, match=r"row 1 \(2021-05-19T00:00:00Z\), column 'close': premium index 40005 is not a premium"):
        load(archive(tmp_path, "um", "premiumIndexKlines", "BTCUSDT", "BTCUSDT-1m-2021-05-19", body))  # prices
    premiums = "".join(f"{T0 + i * 60_000},0.0001,0.0004,-0.0002,0.00015,0,{T0 + i * 60_000 + 59_999},0,0,0,0,0\n"
                       for i in range(5))
    prem = load(archive(tmp_path / "p", "um", "premiumIndexKlines", "BTCUSDT", "BTCUSDT-1m-2021-05-19", premiums))
    assert list(prem.columns) == ["premium_close"] and prem["premium_close"].iloc[0] == 0.00015
    renamed = tmp_path / "BTCUSDT-1m-2021-05-19.csv"
    renamed.write_text(body)
    with pytest.raises(FeedError, match="looks like a markPriceKlines"):
        load(renamed)


def test_close_time_in_other_unit(tmp_path: Path) -> None:
    rows = kline_rows()
    parts = rows[2].split(",")
    parts[6] = str(int(parts[6]) * 1000)
    rows[2] = ",".join(parts)
    p = archive(tmp_path, "um", "klines", "BTCUSDT", "BTCUSDT-1m-2021-05-19", "\n".join(rows) + "\n")
    with pytest.raises(FeedError, match=r"row 3, column 'close_time'.*mixed units"):
        load(p)


def test_funding_rate_file(tmp_path: Path) -> None:
    body = ("calc_time,funding_interval_hours,last_funding_rate\n"
            "1621382400000,8,0.00010000\n1621411200004,8,-0.00089700\n1621440000001,8,0.00005000\n")
    d = tmp_path / "data/futures/um/monthly/fundingRate/BTCUSDT"
    d.mkdir(parents=True)
    p = d / "BTCUSDT-fundingRate-2021-05.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("BTCUSDT-fundingRate-2021-05.csv", body)
    f = load(p)
    assert list(f["funding_rate"]) == [0.0001, -0.000897, 0.00005] and f.attrs["symbol"] == "BTCUSDT"
    assert f["time"].iloc[1] == pd.Timestamp("2021-05-19 08:00:00.004", tz="UTC")


def test_liquidation_snapshot(tmp_path: Path) -> None:
    body = ("time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,last_fill_quantity,accumulated_fill_quantity\n"
            "1621382430000,SELL,LIMIT,IOC,0.5,39000,39100,FILLED,0.5,0.5\n"
            "1621382490000,BUY,LIMIT,IOC,2,41000,40900,FILLED,1,2\n")
    p = archive(tmp_path, "um", "liquidationSnapshot", "BTCUSDT", "BTCUSDT-liquidationSnapshot-2021-05-19", body,
                interval=None)
    ev = load(p)
    assert list(ev["position_side"]) == ["long", "short"] and list(ev["order_side"]) == ["sell", "buy"]
    assert list(ev["qty"]) == [0.5, 2.0] and list(ev["notional"]) == [19_550.0, 81_800.0]
    cm = archive(tmp_path, "cm", "liquidationSnapshot", "BTCUSD_PERP", "BTCUSD_PERP-liquidationSnapshot-2021-05-19",
                 body, interval=None)
    ev = load(cm)
    assert list(ev["notional"]) == [50.0, 200.0]  # contracts x 100 USD
    assert ev["qty"].iloc[0] == pytest.approx(50.0 / 39_100)


def test_metrics_open_interest(tmp_path: Path) -> None:
    body = ("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
            "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n"
            "2021-12-01 00:05:00,BTCUSDT,1000.5,57000000,1.1,1.2,1.3,0.9\n"
            "2021-12-01 00:10:00,BTCUSDT,1001.5,57100000,1.1,1.2,1.3,0.9\n")
    p = archive(tmp_path, "um", "metrics", "BTCUSDT", "BTCUSDT-metrics-2021-12-01", body, interval=None)
    oi = load(p)
    assert oi["time"].iloc[0] == pd.Timestamp("2021-12-01 00:05", tz="UTC")
    assert list(oi["open_interest"]) == [1000.5, 1001.5] and oi["open_interest_notional"].iloc[1] == 57_100_000


def test_force_order_jsonl(tmp_path: Path) -> None:
    msgs = [
        {"e": "forceOrder", "E": 1621382430010, "o": {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014",
                                                      "p": "9910", "ap": "9910", "X": "FILLED", "l": "0.014", "z": "0.014",
                                                      "T": 1621382430005}},
        {"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "E": 1621382460010, "o": {
            "s": "BTCUSDT", "S": "BUY", "o": "LIMIT", "f": "IOC", "q": "1", "p": "10100", "ap": "10000", "X": "FILLED",
            "l": "1", "z": "1", "T": 1621382460000}}},
    ]
    p = tmp_path / "force.jsonl"
    p.write_text("\n".join(json.dumps(m) for m in msgs) + "\n")
    assert detect_format(p) == "binance_forceorder_jsonl"
    ev = load(p)
    assert list(ev["position_side"]) == ["long", "short"] and ev["notional"].iloc[1] == 10_000.0
    assert ev["event_time"].iloc[0] - ev["time"].iloc[0] == pd.Timedelta(milliseconds=5)
    p.write_text(json.dumps(msgs[0]) + "\n{not json\n")
    with pytest.raises(FeedError, match="force.jsonl: line 2: not valid JSON"):
        load(p)
