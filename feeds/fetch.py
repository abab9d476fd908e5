"""Download public data into a local Parquet cache: Binance's data archive and BitMEX's API.

Binance (``https://data.binance.vision``, override with ``DELEVERAGE_BINANCE_URL`` or
``base_url=``): files live at
``data/futures/{um|cm}/{daily|monthly}/{data_type}/{SYMBOL}/[{interval}/]{SYMBOL}-{interval|data_type}-{date}.zip``
with a sibling ``.CHECKSUM`` file holding ``<sha256>  <file name>``. Every ZIP is verified
against it; an interrupted download leaves ``<file>.zip.part`` and the next run resumes it
with an HTTP ``Range`` request. ``period="auto"`` takes monthly files for whole calendar
months inside the window and daily files for the rest (``fundingRate`` is monthly only).

BitMEX (``https://www.bitmex.com``, override with ``DELEVERAGE_BITMEX_URL``):
``/api/v1/trade/bucketed?binSize=1m&symbol=XBTUSD&startTime=..&endTime=..&count=1000&start=N``
(one cache file per UTC day; a rerun skips finished days) and ``/api/v1/funding`` (one file per
month), paginated with ``start``. ``delay`` seconds between requests respect the API's limit.

Cache (``~/.cache/deleverage``, override with ``DELEVERAGE_CACHE`` or ``cache=``): the raw file
under ``raw/`` (Binance layout kept) and the loaded, validated canonical frame as Parquet
under ``parquet/`` at the same relative path. Nothing here runs unless a user asks for it;
the tests point it at a server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from feeds.errors import FeedError, fmt_time

BINANCE_URL = "https://data.binance.vision"
BITMEX_URL = "https://www.bitmex.com"
DATA_TYPES_WITH_INTERVAL = ("klines", "markPriceKlines", "indexPriceKlines", "premiumIndexKlines")
DATA_TYPES = (*DATA_TYPES_WITH_INTERVAL, "fundingRate", "liquidationSnapshot", "metrics")
MONTHLY_ONLY = ("fundingRate",)
DAILY_ONLY = ("liquidationSnapshot", "metrics")
CHUNK = 1 << 16
# Binance futures kline intervals (the archive's folder names); anything else is not in the archive.
KLINE_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1mo")
_SYMBOL_RE = {"binance": re.compile(r"[A-Z0-9][A-Z0-9_]*"), "bitmex": re.compile(r"\.?[A-Z0-9][A-Z0-9_]*")}
_SYMBOL_EXAMPLE = {"binance": "BTCUSDT or BTCUSD_PERP", "bitmex": "XBTUSD"}


class ChecksumError(FeedError):
    """A downloaded file does not match the archive's published SHA-256."""


def cache_dir(cache: str | Path | None = None) -> Path:
    return Path(cache or os.environ.get("DELEVERAGE_CACHE") or Path.home() / ".cache" / "deleverage").expanduser()


def check_symbol(symbol: str, source: str) -> str:
    """``symbol`` as the venue spells it (upper case letters, digits, ``_``), or a FeedError naming --symbol.

    The symbol becomes part of the URL and of the cache path, so a path (``../x``), an empty string
    or a lower-case spelling the venue does not know is refused before any request.
    """
    text = str(symbol)
    if not text.strip():
        raise FeedError(f"--symbol is empty; expected a {source} symbol such as {_SYMBOL_EXAMPLE[source]}")
    if not _SYMBOL_RE[source].fullmatch(text):
        hint = f" (did you mean {text.upper()!r}?)" if _SYMBOL_RE[source].fullmatch(text.upper()) else ""
        raise FeedError(f"--symbol {text!r}: expected a {source} symbol in upper-case letters, digits and '_' such as "
                        f"{_SYMBOL_EXAMPLE[source]}{hint}")
    return text


def check_interval(interval: str) -> str:
    if interval not in KLINE_INTERVALS:
        raise FeedError(f"--interval {interval!r}: expected a Binance kline interval, one of {', '.join(KLINE_INTERVALS)}")
    return interval


def check_base_url(url: str, example: str = BINANCE_URL) -> str:
    """An http(s) URL with a host (``--base-url`` / ``$DELEVERAGE_*_URL``), or a FeedError."""
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FeedError(f"--base-url {url!r}: expected an http:// or https:// URL with a host, such as {example}")
    return str(url).rstrip("/")


def check_delay(delay: Any, what: str = "--delay") -> float:
    try:
        value = float(delay)
    except (TypeError, ValueError):
        raise FeedError(f"{what} {delay!r}: expected a number of seconds >= 0") from None
    if not math.isfinite(value) or value < 0:
        raise FeedError(f"{what} {delay!r}: expected a finite number of seconds >= 0 (the pause between BitMEX requests)")
    return value


def _day(t: Any, option: str = "") -> pd.Timestamp:
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if ts != ts.normalize():
        shown = repr(t) if isinstance(t, str) else fmt_time(ts)
        raise FeedError(f"{option + ' ' if option else ''}{shown}: expected a UTC date such as 2021-05-19 (fetch works "
                        "on whole days)")
    return ts


def binance_paths(*, market: str, data_type: str, symbol: str, start: Any, end: Any, interval: str | None = None,
                  period: str = "auto") -> list[str]:
    """Relative archive paths covering the days ``[start, end)``."""
    if market not in ("um", "cm"):
        raise FeedError(f"market {market!r}; expected 'um' (USDⓈ-M) or 'cm' (COIN-M)")
    if data_type not in DATA_TYPES:
        raise FeedError(f"Binance data type {data_type!r} (--type); expected one of {', '.join(DATA_TYPES)}")
    if data_type in DATA_TYPES_WITH_INTERVAL and not interval:
        raise FeedError(f"{data_type} needs an interval (1m, 5m, 1h, ...)")
    check_symbol(symbol, "binance")
    from feeds.binance import coin_market

    if coin_market(symbol) != market:
        other = coin_market(symbol)
        raise FeedError(f"--symbol {symbol} is a {'COIN-M' if other == 'cm' else 'USDⓈ-M'} symbol but --market is "
                        f"{market}; expected --market {other} (COIN-M symbols end in USD_PERP or USD_YYMMDD)")
    if data_type in DATA_TYPES_WITH_INTERVAL:
        check_interval(str(interval))
    if period not in ("auto", "daily", "monthly"):
        raise FeedError(f"period {period!r}; expected auto, daily or monthly")
    s, e = _day(start, "--start"), _day(end, "--end")
    if e <= s:
        raise FeedError(f"--end {e.date()} is not after --start {s.date()}; expected a window of at least one day")
    if data_type in MONTHLY_ONLY:
        period = "monthly"
    elif data_type in DAILY_ONLY:
        period = "daily"
    what = interval if data_type in DATA_TYPES_WITH_INTERVAL else data_type
    sub = f"{symbol}/{interval}" if data_type in DATA_TYPES_WITH_INTERVAL else symbol

    def path(kind: str, stamp: str) -> str:
        return f"data/futures/{market}/{kind}/{data_type}/{sub}/{symbol}-{what}-{stamp}.zip"

    out: list[str] = []
    day = s
    while day < e:
        month_start = day.replace(day=1)
        month_end = month_start + pd.offsets.MonthBegin(1)
        whole_month = day == month_start and month_end <= e
        if period == "monthly" or (period == "auto" and whole_month):
            out.append(path("monthly", day.strftime("%Y-%m")))
            day = month_end
        else:
            out.append(path("daily", day.strftime("%Y-%m-%d")))
            day = day + pd.Timedelta(days=1)
    return out


def _open(url: str, headers: dict[str, str] | None = None, timeout: float = 60.0):
    req = urllib.request.Request(url, headers={"User-Agent": "deleverage-fetch", **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            return exc
        hint = " (the archive has no such file: check symbol, market, data type and dates)" if exc.code == 404 else ""
        raise FeedError(f"{url}: HTTP {exc.code} {exc.reason}{hint}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        raise FeedError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)})") from None


def read_checksum(url: str) -> str:
    """The SHA-256 published in ``url`` (text ``<hex>  <file name>``)."""
    with _open(url) as resp:
        text = resp.read().decode("utf-8", "replace").strip()
    digest = text.split()[0].lower() if text else ""
    if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
        raise ChecksumError(f"{url}: expected '<sha256>  <file name>', got {text[:100]!r}")
    return digest


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, *, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming a partial file with HTTP Range."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    resp = _open(url, {"Range": f"bytes={have}-"} if have else None)
    status = getattr(resp, "status", None) or resp.getcode()
    if status == 416:  # the partial file already holds every byte
        resp.close()
        part.replace(dest)
        return dest
    if status == 200:
        have = 0  # the server ignored the Range: start over
    length = resp.headers.get("Content-Length")
    total = have + int(length) if length is not None else None
    got = have
    try:
        with resp, open(part, "ab" if have else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, disable=not progress,
                file=sys.stderr, leave=False) as bar:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                out.write(block)
                got += len(block)
                bar.update(len(block))
    except (http.client.IncompleteRead, ConnectionError, socket.timeout, OSError) as exc:
        raise FeedError(f"{url}: download interrupted after {got} bytes ({type(exc).__name__}); the partial file is "
                        f"kept at {part}; run the same command again to resume") from None
    if total is not None and got < total:
        raise FeedError(f"{url}: download interrupted after {got} of {total} bytes; the partial file is kept at "
                        f"{part}; run the same command again to resume")
    part.replace(dest)
    return dest


def _loader_for(data_type: str) -> Callable[..., pd.DataFrame]:
    from feeds import binance

    if data_type in DATA_TYPES_WITH_INTERVAL:
        return lambda p, **kw: binance.load_klines(p, kind=data_type, **kw)
    return {"fundingRate": binance.load_funding, "liquidationSnapshot": binance.load_liquidation_snapshot,
            "metrics": binance.load_metrics}[data_type]


def fetch_binance(*, market: str, data_type: str, symbol: str, start: Any, end: Any, interval: str | None = None,
                  period: str = "auto", cache: str | Path | None = None, base_url: str | None = None,
                  progress: bool = True, log: Callable[[str], None] | None = None, allow_gaps: bool = False,
                  allow_outliers: bool = False) -> list[Path]:
    """Download, verify and convert the archive files for the window; returns the Parquet paths.

    ``allow_gaps`` / ``allow_outliers`` (kline types only) keep a file whose bars have gaps or
    suspected bad prints (reported as warnings by ``deleverage data validate``; never filled).
    """
    if data_type not in DATA_TYPES_WITH_INTERVAL:
        for flag, value in (("--allow-gaps", allow_gaps), ("--allow-outliers", allow_outliers)):
            if value:
                raise FeedError(f"{flag} does not apply to --type {data_type} (only kline files are checked for "
                                f"{'gaps' if flag == '--allow-gaps' else 'bad prints'} when fetched)")
    checks = {k: True for k, v in (("allow_gaps", allow_gaps), ("allow_outliers", allow_outliers)) if v}
    base = check_base_url(base_url or os.environ.get("DELEVERAGE_BINANCE_URL") or BINANCE_URL)
    root = cache_dir(cache)
    log = log or (lambda msg: None)
    results = []
    for rel in binance_paths(market=market, data_type=data_type, symbol=symbol, start=start, end=end,
                             interval=interval, period=period):
        raw = root / "raw" / "binance" / rel
        parquet = (root / "parquet" / "binance" / rel).with_suffix(".parquet")
        if parquet.exists():
            log(f"cached   {parquet}")
            results.append(parquet)
            continue
        url = f"{base}/{rel}"
        expected = read_checksum(url + ".CHECKSUM")
        if not (raw.exists() and sha256(raw) == expected):
            download(url, raw, progress=progress)
        actual = sha256(raw)
        if actual != expected:
            raw.unlink()
            raise ChecksumError(f"{url}: SHA-256 {actual} does not match {expected} published in {url}.CHECKSUM; "
                                "the corrupt file was removed, run again to download it afresh")
        frame = _loader_for(data_type)(raw, market=market, symbol=symbol, **checks)
        from feeds.generic import save_frame

        save_frame(frame, parquet)
        log(f"fetched  {rel} (sha256 ok, {len(frame)} rows) -> {parquet}")
        results.append(parquet)
    return results


def _bitmex_pages(base: str, endpoint: str, params: dict[str, Any], delay: float, count: int) -> list[dict]:
    rows: list[dict] = []
    start = 0
    while True:
        q = urllib.parse.urlencode({**params, "count": count, "start": start, "reverse": "false"})
        url = f"{base}/api/v1/{endpoint}?{q}"
        with _open(url) as resp:
            try:
                page = json.loads(resp.read().decode("utf-8"))
            except json.JSONDecodeError:
                raise FeedError(f"{url}: response is not JSON") from None
        if not isinstance(page, list):
            raise FeedError(f"{url}: expected a JSON list, got {str(page)[:200]}")
        rows += page
        if len(page) < count:
            return rows
        start += count
        if delay:
            time.sleep(delay)


def fetch_bitmex(*, symbol: str, start: Any, end: Any, kind: str = "trade", bin_size: str = "1m",
                 cache: str | Path | None = None, base_url: str | None = None, progress: bool = True,
                 delay: float | None = None, count: int = 1000,
                 log: Callable[[str], None] | None = None, allow_gaps: bool = False,
                 allow_outliers: bool = False) -> list[Path]:
    """BitMEX trade buckets (``kind="trade"``, one file per UTC day) or funding (one per month).

    ``allow_gaps`` / ``allow_outliers`` (trade buckets only) keep a day whose buckets have gaps or
    suspected bad prints (never filled).
    """
    from tqdm import tqdm

    from feeds import bitmex
    from feeds.generic import save_frame

    if kind not in ("trade", "funding"):
        raise FeedError(f"BitMEX data type {kind!r} (--type); expected trade or funding")
    if bin_size not in bitmex.BIN_SIZES:
        raise FeedError(f"--bin-size {bin_size!r}: expected a BitMEX binSize, one of {', '.join(bitmex.BIN_SIZES)}")
    check_symbol(symbol, "bitmex")
    if kind == "funding":
        for flag, value in (("--allow-gaps", allow_gaps), ("--allow-outliers", allow_outliers)):
            if value:
                raise FeedError(f"{flag} does not apply to --type funding (only trade buckets are checked for "
                                f"{'gaps' if flag == '--allow-gaps' else 'bad prints'} when fetched)")
    if kind == "trade":
        from risk.venues import INSTRUMENTS

        known = sorted(s for (v, s), inst in INSTRUMENTS.items() if v == "bitmex" and inst.inverse)
        if symbol not in known:
            raise FeedError(f"--symbol {symbol!r}: BitMEX trade buckets are converted from contracts only for the inverse "
                            f"contracts whose contract size deleverage knows; expected one of {', '.join(known)}")
    base = check_base_url(base_url or os.environ.get("DELEVERAGE_BITMEX_URL") or BITMEX_URL, BITMEX_URL)
    delay = (check_delay(os.environ.get("DELEVERAGE_BITMEX_DELAY", 2.0), "DELEVERAGE_BITMEX_DELAY") if delay is None
             else check_delay(delay))
    root = cache_dir(cache)
    log = log or (lambda msg: None)
    s, e = _day(start, "--start"), _day(end, "--end")
    if e <= s:
        raise FeedError(f"--end {e.date()} is not after --start {s.date()}; expected a window of at least one day")
    if kind == "trade":
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(bitmex.BIN_SIZES[bin_size]))
        chunks = [(d, d + pd.Timedelta(days=1), d.strftime("%Y-%m-%d")) for d in pd.date_range(s, e, freq="D", inclusive="left")]
    else:
        months = pd.date_range(s.replace(day=1), e, freq="MS")
        chunks = [(max(m, s), min(m + pd.offsets.MonthBegin(1), e), m.strftime("%Y-%m")) for m in months if m < e]
    out = []
    for lo, hi, stamp in tqdm(chunks, desc=f"bitmex {kind} {symbol}", disable=not progress, file=sys.stderr, leave=False):
        name = f"{symbol}-{bin_size}-{stamp}" if kind == "trade" else f"{symbol}-funding-{stamp}"
        rel = f"bitmex/{'trade_bucketed/' + symbol + '/' + bin_size if kind == 'trade' else 'funding/' + symbol}/{name}"
        parquet = root / "parquet" / (rel + ".parquet")
        if parquet.exists():
            log(f"cached   {parquet}")
            out.append(parquet)
            continue
        if kind == "trade":  # buckets are stamped by close: the day's bars close in (lo, hi]
            params = {"binSize": bin_size, "symbol": symbol, "startTime": (lo + step).isoformat().replace("+00:00", "Z"),
                      "endTime": hi.isoformat().replace("+00:00", "Z")}
            rows = _bitmex_pages(base, "trade/bucketed", params, delay, count)
        else:
            params = {"symbol": symbol, "startTime": lo.isoformat().replace("+00:00", "Z"),
                      "endTime": (hi - pd.Timedelta(milliseconds=1)).isoformat().replace("+00:00", "Z")}
            rows = _bitmex_pages(base, "funding", params, delay, count)
        raw = root / "raw" / (rel + ".json")
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps(rows))
        if not rows:
            raise FeedError(f"{base}: BitMEX returned no {kind} rows for {symbol} {stamp}")
        frame = (bitmex.load_buckets(raw, symbol=symbol, bin_size=bin_size, allow_gaps=allow_gaps,
                                     allow_outliers=allow_outliers) if kind == "trade"
                 else bitmex.load_funding(raw, symbol=symbol))
        save_frame(frame, parquet)
        log(f"fetched  {rel} ({len(frame)} rows) -> {parquet}")
        out.append(parquet)
    return out
