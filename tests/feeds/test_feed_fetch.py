"""`deleverage data fetch` end to end against a loopback HTTP server in the archive's exact layout."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import urllib.parse
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main
from feeds.fetch import ChecksumError, binance_paths, fetch_binance, fetch_bitmex
from feeds.errors import FeedError

T0 = 1_621_382_400_000  # 2021-05-19


class Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    drop_after: dict[str, int] = {}  # path -> bytes to send before dropping the connection (once)
    ranges: list[str] = []
    buckets: list[dict] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        url = urllib.parse.urlparse(self.path)
        if url.path.startswith("/api/v1/"):
            return self._api(url)
        path = self.root / url.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        start = 0
        if rng:
            self.ranges.append(rng)
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.drop_after.pop(url.path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(2)  # drop midway
            return
        self.wfile.write(body)

    def _api(self, url) -> None:
        q = dict(urllib.parse.parse_qsl(url.query))
        start, count = int(q["start"]), int(q["count"])
        lo, hi = pd.Timestamp(q["startTime"]), pd.Timestamp(q["endTime"])
        rows = [b for b in self.buckets if lo <= pd.Timestamp(b["timestamp"]) <= hi]
        body = json.dumps(rows[start:start + count]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server(tmp_path: Path):
    root = tmp_path / "www"
    root.mkdir()
    handler = type("H", (Handler,), {"root": root, "drop_after": {}, "ranges": [], "buckets": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def publish_klines(root: Path, rel: str, day: int, checksum: str | None = None) -> bytes:
    rows = []
    for i in range(1440):
        o = T0 + day * 86_400_000 + i * 60_000
        p = 40_000.0 + (i % 50)
        rows.append(f"{o},{p},{p + 10},{p - 10},{p + 1},1.5,{o + 59_999},{1.5 * p},7,0.7,{0.7 * p},0")
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    name = Path(rel).name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:  # stored: big enough to cut midway
        zf.writestr(name.replace(".zip", ".csv"),
                    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                    "taker_buy_quote_volume,ignore\n" + "\n".join(rows) + "\n")
    data = path.read_bytes()
    digest = checksum or hashlib.sha256(data).hexdigest()
    (root / (rel + ".CHECKSUM")).write_text(f"{digest}  {name}\n")
    return data


def test_archive_paths() -> None:
    paths = binance_paths(market="um", data_type="klines", symbol="BTCUSDT", interval="1m",
                          start="2021-04-30", end="2021-06-02")
    assert paths == ["data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-04-30.zip",
                     "data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05.zip",
                     "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-06-01.zip"]
    assert binance_paths(market="cm", data_type="fundingRate", symbol="BTCUSD_PERP", start="2021-05-03",
                         end="2021-05-04") == ["data/futures/cm/monthly/fundingRate/BTCUSD_PERP/BTCUSD_PERP-fundingRate-2021-05.zip"]


def test_fetch_verifies_resumes_and_caches(server, tmp_path: Path, capsys) -> None:
    base, handler = server
    rels = [f"data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05-{d}.zip" for d in (19, 20)]
    blobs = [publish_klines(handler.root, rel, k) for k, rel in enumerate(rels)]
    handler.drop_after["/" + rels[1]] = len(blobs[1]) // 3
    cache = tmp_path / "cache"
    argv = ["data", "fetch", "binance", "--symbol", "BTCUSDT", "--start", "2021-05-19", "--end", "2021-05-21",
            "--cache", str(cache), "--base-url", base, "--no-progress"]
    assert main(argv) == 2  # interrupted: clear error, partial file kept
    err = capsys.readouterr().err
    assert "download interrupted" in err and "run the same command again to resume" in err
    part = cache / "raw" / "binance" / (rels[1] + ".part")
    assert 0 < part.stat().st_size < len(blobs[1])
    assert main(argv) == 0  # resumes with a Range request, checksum verified
    assert handler.ranges == [f"bytes={part.stat().st_size if part.exists() else len(blobs[1]) // 3}-"]
    raw = cache / "raw" / "binance" / rels[1]
    assert raw.read_bytes() == blobs[1]
    out = capsys.readouterr().out.split()
    assert len(out) == 2 and all(p.endswith(".parquet") for p in out)
    frame = pd.read_parquet(out[1])
    assert len(frame) == 1440 and frame.index[0] == pd.Timestamp("2021-05-20", tz="UTC")
    assert frame.attrs["symbol"] == "BTCUSDT" and frame.attrs["venue"] == "binance_usdm"
    paths = fetch_binance(market="um", data_type="klines", symbol="BTCUSDT", interval="1m", start="2021-05-19",
                          end="2021-05-21", cache=cache, base_url=base, progress=False)
    assert [str(p) for p in paths] == out  # cached: no new requests
    assert handler.ranges == [handler.ranges[0]]


def test_wrong_checksum_is_a_clear_error(server, tmp_path: Path) -> None:
    base, handler = server
    rel = "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05-19.zip"
    publish_klines(handler.root, rel, 0, checksum="0" * 64)
    with pytest.raises(ChecksumError, match=r"BTCUSDT-1m-2021-05-19.zip: SHA-256 [0-9a-f]{64} does not match 0{64}"):
        fetch_binance(market="um", data_type="klines", symbol="BTCUSDT", interval="1m", start="2021-05-19",
                      end="2021-05-20", cache=tmp_path / "c", base_url=base, progress=False)
    assert not (tmp_path / "c" / "raw" / "binance" / rel).exists()
    with pytest.raises(FeedError, match="HTTP 404"):
        fetch_binance(market="um", data_type="klines", symbol="ETHUSDT", interval="1m", start="2021-05-19",
                      end="2021-05-20", cache=tmp_path / "c", base_url=base, progress=False)


def test_bitmex_buckets_paginated(server, tmp_path: Path) -> None:
    base, handler = server
    day = pd.Timestamp("2020-03-13", tz="UTC")
    handler.buckets[:] = [{"timestamp": (day + pd.Timedelta(minutes=i + 1)).isoformat().replace("+00:00", "Z"),
                           "symbol": "XBTUSD", "open": 5000.0 + i, "high": 5010.0 + i, "low": 4990.0 + i,
                           "close": 5001.0 + i, "trades": 3, "volume": 10_000, "homeNotional": 10_000 / (5000.0 + i),
                           "foreignNotional": 10_000} for i in range(1440)]
    paths = fetch_bitmex(symbol="XBTUSD", start="2020-03-13", end="2020-03-14", cache=tmp_path / "c", base_url=base,
                         progress=False, delay=0, count=500)
    frame = pd.read_parquet(paths[0])
    assert len(frame) == 1440 and frame.index[0] == day  # close-stamped buckets relabelled by open
    assert frame["quote_volume"].iloc[0] == 10_000 and frame["volume"].iloc[0] == pytest.approx(2.0)


FETCH = ["--start", "2021-05-19", "--end", "2021-05-20", "--no-progress"]


@pytest.mark.parametrize("argv, message", [
    (["bitmex", "--symbol", "XBTUSD", "--delay", "-1"],
     "--delay '-1': expected a finite number of seconds >= 0 (the pause between BitMEX requests)"),
    (["bitmex", "--symbol", "XBTUSD", "--delay", "nan"],
     "--delay 'nan': expected a finite number of seconds >= 0 (the pause between BitMEX requests)"),
    (["binance", "--symbol", "BTCUSDT", "--base-url", "notaurl"],
     "--base-url 'notaurl': expected an http:// or https:// URL with a host, such as https://data.binance.vision"),
    (["binance", "--symbol", "BTCUSDT", "--interval", "7q"],
     "--interval '7q': expected a Binance kline interval, one of 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, "
     "3d, 1w, 1mo"),
    (["binance", "--symbol", ""], "--symbol is empty; expected a binance symbol such as BTCUSDT or BTCUSD_PERP"),
    (["binance", "--symbol", "../../etc"],
     "--symbol '../../etc': expected a binance symbol in upper-case letters, digits and '_' such as BTCUSDT or "
     "BTCUSD_PERP"),
    (["bitmex", "--symbol", "xbtusd"],
     "--symbol 'xbtusd': expected a bitmex symbol in upper-case letters, digits and '_' such as XBTUSD "
     "(did you mean 'XBTUSD'?)"),
    (["bitmex", "--symbol", "ETHUSD"],
     "--symbol 'ETHUSD': BitMEX trade buckets are converted from contracts only for the inverse contracts whose "
     "contract size deleverage knows; expected one of XBTUSD"),
    # options the source or data type does not read (C)
    (["binance", "--symbol", "BTCUSDT", "--bin-size", "1m"], "--bin-size does not apply to data fetch binance"),
    (["binance", "--symbol", "BTCUSDT", "--delay", "1"], "--delay does not apply to data fetch binance"),
    (["bitmex", "--symbol", "XBTUSD", "--interval", "1m"], "--interval does not apply to data fetch bitmex"),
    (["bitmex", "--symbol", "XBTUSD", "--period", "daily"], "--period does not apply to data fetch bitmex"),
    (["bitmex", "--symbol", "XBTUSD", "--market", "cm"], "--market does not apply to data fetch bitmex"),
    (["binance", "--symbol", "BTCUSDT", "--type", "fundingRate", "--interval", "1h"],
     "--interval does not apply to --type fundingRate (only the kline types have an interval)"),
    (["binance", "--symbol", "BTCUSDT", "--type", "metrics", "--period", "monthly"],
     "--period does not apply to --type metrics (the archive has daily files only)"),
    (["bitmex", "--symbol", "XBTUSD", "--type", "funding", "--bin-size", "5m"],
     "--bin-size does not apply to --type funding (BitMEX funding has no bins)"),
    (["bitmex", "--symbol", "XBTUSD", "--type", "funding", "--allow-gaps"], "--allow-gaps does not apply to --type funding"),
    (["binance", "--symbol", "BTCUSDT", "--market", "cm"],
     "--symbol BTCUSDT is a USDⓈ-M symbol but --market is cm; expected --market um (COIN-M symbols end in USD_PERP or "
     "USD_YYMMDD)"),
    (["binance", "--symbol", "BTCUSD_PERP"],
     "--symbol BTCUSD_PERP is a COIN-M symbol but --market is um; expected --market cm"),
    (["bitmex", "--symbol", "XBTUSD", "--start", "2021-05-20", "--end", "2021-05-19"],
     "--end 2021-05-19 is not after --start 2021-05-20; expected a window of at least one day"),  # was: nothing, exit 0
    (["binance", "--symbol", "BTCUSDT", "--start", "2021-05-19T05:00", "--end", "2021-05-20"],
     "--start '2021-05-19T05:00': expected a UTC date such as 2021-05-19 (fetch works on whole days)"),
    (["binance", "--symbol", "BTCUSDT", "--type", "metrics", "--allow-outliers"],
     "--allow-outliers does not apply to --type metrics"),
])
def test_fetch_bad_options_are_one_line_before_any_request(server, tmp_path: Path, capsys, argv, message) -> None:
    base, handler = server
    extra = [] if "--base-url" in argv else ["--base-url", base]
    handler.buckets[:] = [{"timestamp": "2021-05-19T00:01:00Z"}]  # a request would reach the loader
    window = [] if "--start" in argv else FETCH[:4]
    assert main(["data", "fetch", *argv, *window, "--no-progress", *extra, "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deleverage: error: " + message) and err.count("\n") == 1
    assert "internal error" not in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()  # refused before anything was downloaded or written


def test_fetch_gap_names_the_fetch_option_and_allow_gaps_keeps_the_file(server, tmp_path: Path, capsys) -> None:
    base, handler = server
    rel = "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-05-19.zip"
    path = handler.root / rel
    publish_klines(handler.root, rel, 0)
    with zipfile.ZipFile(path) as zf:
        name = zf.namelist()[0]
        lines = zf.read(name).decode().splitlines()
    del lines[1 + 100]  # the 00:100 minute (01:40) is missing
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name, "\n".join(lines) + "\n")
    (handler.root / (rel + ".CHECKSUM")).write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    argv = ["data", "fetch", "binance", "--symbol", "BTCUSDT", *FETCH, "--base-url", base, "--cache", str(tmp_path / "c")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "row 101 (2021-05-19T01:41:00Z): gap of 1 missing 1min bars" in err and "(allow with --allow-gaps)" in err
    assert "fill_gaps" not in err and "allow_gaps" not in err
    assert main([*argv, "--allow-gaps"]) == 0
    out = capsys.readouterr().out.split()
    frame = pd.read_parquet(out[0])
    assert len(frame) == 1439 and pd.Timestamp("2021-05-19T01:40Z") not in frame.index  # kept as a gap, not filled
