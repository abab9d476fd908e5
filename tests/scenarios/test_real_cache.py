"""``Scenario.bars(data="real")`` finds what ``deleverage data fetch`` put in the cache.

The cache is written by the real ``fetch_binance`` / ``fetch_bitmex`` against the loopback
server of tests/feeds/test_feed_fetch.py (archive layout, checksums, BitMEX API pages), so
the layout the scenarios read is the one fetch writes. No internet.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main
from feeds.fetch import fetch_binance, fetch_bitmex
from feeds.generic import save_frame
from feeds.scenarios import get_scenario
from risk.errors import DeleverageError
from tests.feeds.test_feed_fetch import server  # noqa: F401  (the loopback archive/API fixture)

KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                "taker_buy_quote_volume,ignore")
DIP = pd.Timestamp("2021-07-26 01:30", tz="UTC")  # one bar with a deep wick, to find again


def _ms(t: pd.Timestamp) -> int:
    return t.value // 1_000_000


def _price(o_ms: int) -> float:
    return 38_000.0 + ((o_ms // 60_000) % 1000) * 0.25


def _publish(root: Path, rel: str, text: str) -> None:
    """A ZIP in the archive layout with its .CHECKSUM sibling."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(path.name.replace(".zip", ".csv"), text)
    (root / (rel + ".CHECKSUM")).write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")


def _kline_day(day: str, mark: bool) -> str:
    rows = [KLINE_HEADER]
    for t in pd.date_range(day, periods=1440, freq="1min", tz="UTC"):
        o = _ms(t)
        p = _price(o) + (2.0 if mark else 0.0)
        low = 36_123.5 if (t == DIP and not mark) else p - 5
        vol = "0" if mark else "1.5"
        rows.append(f"{o},{p},{p + 5},{low},{p + 1},{vol},{o + 59_999},{0 if mark else 1.5 * p},{0 if mark else 7},"
                    f"0,0,0")
    return "\n".join(rows) + "\n"


def _funding_month(month: str) -> str:
    rows = ["calc_time,funding_interval_hours,last_funding_rate"]
    start = pd.Timestamp(month, tz="UTC")
    for t in pd.date_range(start, start + pd.offsets.MonthBegin(1), freq="8h", inclusive="left"):
        rate = -0.00025 if t == pd.Timestamp("2021-07-26", tz="UTC") else 0.0001
        rows.append(f"{_ms(t)},8,{rate}")
    return "\n".join(rows) + "\n"


@pytest.fixture()
def binance_cache(server, tmp_path: Path) -> Path:  # noqa: F811
    """Binance USD-M BTCUSDT 2021-07-25..26: klines, markPriceKlines (daily) and fundingRate (monthly)."""
    base, handler = server
    for day in ("2021-07-25", "2021-07-26"):
        for kind in ("klines", "markPriceKlines"):
            _publish(handler.root, f"data/futures/um/daily/{kind}/BTCUSDT/1m/BTCUSDT-1m-{day}.zip",
                     _kline_day(day, mark=kind != "klines"))
    _publish(handler.root, "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2021-07.zip",
             _funding_month("2021-07"))
    cache = tmp_path / "cache"
    for kind in ("klines", "markPriceKlines", "fundingRate"):
        fetch_binance(market="um", data_type=kind, symbol="BTCUSDT", interval="1m", start="2021-07-25",
                      end="2021-07-27", cache=cache, base_url=base, progress=False)
    return cache


def test_scenario_uses_the_fetch_cache(binance_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("DELEVERAGE_CACHE", str(binance_cache))
    s = get_scenario("2021-07-26")  # window 2021-07-25 22:00 .. 07-26 04:00, Binance USD-M, no shared data
    bars = s.bars(data="real")
    assert len(bars) == 360 and bars.index[0] == pd.Timestamp("2021-07-25 22:00", tz="UTC")
    assert bars["open"].iloc[0] == 38_210.0  # the cached kline, not a reconstruction
    assert bars["low"].min() == 36_123.5 and bars["low"].idxmin() == DIP
    assert bars.loc[DIP, "low"] == 36_123.5 and bars.loc[DIP, "mark_low"] == 38_009.5  # the mark has no wick
    assert bars.loc["2021-07-26 00:00", "funding_rate"] == -0.00025 and bars["funding_rate"].notna().sum() == 1
    a = bars.attrs
    assert a["kind"] == "real" and a["venue"] == "binance_usdm" and a["symbol"] == "BTCUSDT"
    assert a["origin"] == "fetch cache" and a["cache"] == str(binance_cache)
    assert set(a["sources"]) == {"klines", "mark", "funding"}
    assert [Path(p).name for p in a["sources"]["klines"]] == ["BTCUSDT-1m-2021-07-25.parquet", "BTCUSDT-1m-2021-07-26.parquet"]
    assert all(Path(p).is_relative_to(binance_cache / "parquet" / "binance") for p in a["source"])
    assert [r["origin"] for r in s.real_sources()] == ["fetch cache"]


def test_cached_funding_short_of_the_window_is_left_out_and_said(binance_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("DELEVERAGE_CACHE", str(binance_cache))
    f = binance_cache / "parquet/binance/data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2021-07.parquet"
    fr = pd.read_parquet(f)
    save_frame(fr[fr["time"] < pd.Timestamp("2021-07-20", tz="UTC")], f)  # as if fetched for an earlier window
    bars = get_scenario("2021-07-26").bars(data="real")
    assert set(bars.attrs["sources"]) == {"klines", "mark"} and bars["funding_rate"].isna().all()
    assert any("cached funding files not used" in n and "--type fundingRate" in n for n in bars.attrs["notes"])


def test_window_not_covered_names_the_fetch_command(binance_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("DELEVERAGE_CACHE", str(binance_cache))
    with pytest.raises(DeleverageError) as err:
        get_scenario("2021-04-18").bars(data="real")  # nothing cached for April
    msg = str(err.value)
    assert ("deleverage data fetch binance --market um --type klines --symbol BTCUSDT --interval 1m "
            "--start 2021-04-17 --end 2021-04-19") in msg
    assert "no real BTC 1-minute data" in msg and str(binance_cache) in msg
    # half covered: the second day's klines are gone
    (binance_cache / "parquet/binance/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-07-26.parquet").unlink()
    with pytest.raises(DeleverageError, match=r"missing \S+BTCUSDT-1m-2021-07-26.parquet(.|\n)*--start 2021-07-25 --end 2021-07-27"):
        get_scenario("2021-07-26").bars(data="real")


def test_data_path_wins_over_the_cache(binance_cache: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DELEVERAGE_CACHE", str(binance_cache))
    s = get_scenario("2021-07-26")
    mine = s.bars().copy()  # any canonical frame will do: the reconstruction, shifted
    mine[["open", "high", "low", "close"]] += 1000.0
    # a valid bar frame (it is validated like any loaded file): the shifted quote volume, the bar's
    # range holding open and close (a waypoint price is set exactly, its bar's extreme via exp(log))
    mine["quote_volume"] = mine["volume"] * mine["close"]
    mine["high"] = mine[["open", "high", "close"]].max(axis=1)
    mine["low"] = mine[["open", "low", "close"]].min(axis=1)
    mine.attrs = {"kind": "real"}  # a reconstruction's own metadata is refused as real data (test_scenarios_cli)
    path = save_frame(mine, tmp_path / "mine.parquet")
    bars = s.bars(data="real", data_path=path)
    assert bars["open"].iloc[0] == mine["open"].iloc[0] != 38_210.0
    assert bars.attrs["origin"] == "data_path" and bars.attrs["source"] == [str(path)]
    # a cache folder given as data_path is read as a cache, whatever DELEVERAGE_CACHE says
    monkeypatch.setenv("DELEVERAGE_CACHE", str(tmp_path / "empty"))
    assert s.bars(data="real", data_path=binance_cache)["open"].iloc[0] == 38_210.0


def test_bitmex_cache_after_shipped_and_shared_data(server, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    from feeds.scenarios import real

    base, handler = server
    start = pd.Timestamp("2020-03-11", tz="UTC")
    handler.buckets[:] = [{"timestamp": (start + pd.Timedelta(minutes=i + 1)).isoformat().replace("+00:00", "Z"),
                           "symbol": "XBTUSD", "open": 5000.0 + i, "high": 5010.0 + i, "low": 4990.0 + i,
                           "close": 5000.0 + i + 1, "trades": 3, "volume": 10_000, "homeNotional": 10_000 / (5000.0 + i),
                           "foreignNotional": 10_000} for i in range(3 * 1440)]
    cache = tmp_path / "cache"
    fetch_bitmex(symbol="XBTUSD", start="2020-03-11", end="2020-03-14", cache=cache, base_url=base, progress=False,
                 delay=0)
    handler.buckets[:] = [{"timestamp": t.isoformat().replace("+00:00", "Z"), "symbol": "XBTUSD",
                           "fundingInterval": "2000-01-01T08:00:00.000Z", "fundingRate": -0.00375 if t.hour == 4 else 0.0001}
                          for t in pd.date_range("2020-03-11 04:00", "2020-03-13 20:00", freq="8h", tz="UTC")]
    fetch_bitmex(symbol="XBTUSD", start="2020-03-11", end="2020-03-14", kind="funding", cache=cache, base_url=base,
                 progress=False, delay=0)
    monkeypatch.setenv("DELEVERAGE_CACHE", str(cache))
    s = get_scenario("312")  # 2020-03-11 18:00 .. 03-14 00:00, BitMEX
    assert s.bars(data="real").attrs["origin"] == "package"  # the bars shipped in the package come first
    monkeypatch.setattr(real, "shipped_path", lambda spec: None)
    if real.find_file(s.real_data["BTC"]["bitmex"]["file"], None) is not None:
        assert s.bars(data="real").attrs["origin"] == "shared data"  # the shared CSV comes before the cache
    monkeypatch.setattr(real, "shared_dirs", lambda: [tmp_path / "no-shared"])
    bars = s.bars(data="real")
    assert bars.attrs["origin"] == "fetch cache" and bars.attrs["venue"] == "bitmex"
    assert bars["open"].iloc[0] == 5000.0 + 18 * 60 and bars["low"].min() == 4990.0 + 18 * 60
    assert bars.loc["2020-03-13 04:00", "funding_rate"] == -0.00375 and bars["funding_rate"].notna().sum() == 7
    assert "mark_close" not in bars and any("no mark price" in n for n in bars.attrs["notes"])
    assert set(bars.attrs["sources"]) == {"klines", "funding"}


def test_scenarios_show_says_where_real_data_is(binance_cache: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DELEVERAGE_CACHE", str(binance_cache))
    assert main(["scenarios", "show", "2021-07-26"]) == 0
    out = capsys.readouterr().out
    assert f"binance_usdm BTCUSDT from the fetch cache {binance_cache} (klines, mark, funding)" in out
    assert main(["scenarios", "show", "2021-04-18"]) == 0
    out = capsys.readouterr().out
    assert "none found" in out and "deleverage data fetch binance --market um --type klines --symbol BTCUSDT" in out
