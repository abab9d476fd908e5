"""Real bars for a scenario window: the shared BitMEX files of 312 and 519, and the fetch cache.

Where the files are looked for: the ``data_path`` argument (a directory, the file itself, or a
``deleverage data fetch`` cache directory), and only there when it is given; otherwise, in
order, the real bars shipped in the package (``feeds/scenarios/shipped``: BitMEX XBTUSD 1-minute
of the 312 and 519 windows with the funding the shared data has, converted by
:mod:`feeds.scenarios.build_real`), the shared data (``$DELEVERAGE_SHARED_DATA`` and ``../shared/data`` beside a source
checkout: the BitMEX XBTUSD 1-minute CSVs of 312 and 519), then the fetch cache
(:func:`feeds.fetch.cache_dir`: ``$DELEVERAGE_CACHE`` or ``~/.cache/deleverage``).
``data_path`` may also be a canonical 1-minute bar file in Parquet, which is sliced to the window.
The shared CSVs are never copied into the package (only the converted windows are).

From the fetch cache (the Parquet files ``feeds.fetch`` writes under ``parquet/``):

* ``binance_usdm``: ``klines`` 1m (required), ``markPriceKlines`` 1m and ``fundingRate``
  (used when cached), daily or monthly archive files, whichever the cache holds for each day;
* ``bitmex``: ``trade_bucketed`` 1m day files (required) and the monthly ``funding`` files.

:func:`cached_bars` builds the canonical frame with :func:`feeds.build.build_frame`; when the
cache does not cover the whole window, :func:`fetch_commands` gives the exact
``deleverage data fetch ...`` commands that would fill it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from risk.errors import DeleverageError


def candidate_dirs(data_path: str | os.PathLike | None) -> list[Path]:
    if data_path is not None:  # an explicit location is the only place looked at
        p = Path(data_path)
        return [p.parent if p.is_file() else p]
    return shared_dirs()


def shared_dirs() -> list[Path]:
    """Where the shared data is looked for: ``$DELEVERAGE_SHARED_DATA``, then ``../shared/data``."""
    dirs: list[Path] = []
    if os.environ.get("DELEVERAGE_SHARED_DATA"):
        dirs.append(Path(os.environ["DELEVERAGE_SHARED_DATA"]))
    dirs.append(Path(__file__).resolve().parents[3] / "shared" / "data")
    return dirs


def find_file(name: str, data_path: str | os.PathLike | None) -> Path | None:
    if data_path is not None and Path(data_path).is_file():
        return Path(data_path)
    for d in candidate_dirs(data_path):
        if (d / name).is_file():
            return d / name
    return None


def load_bitmex_minutes(path: Path, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """BitMEX 1-minute buckets (shared-data CSV layout) sliced to [start, end), in the canonical schema.

    Read and validated by the BitMEX loader (:func:`feeds.bitmex.load_buckets`): a bad cell, a
    non-positive price, high below low, a negative volume or rows out of order is one error naming
    the file, row and column."""
    from feeds.bitmex import load_buckets

    loaded = load_buckets(path)
    frame = pd.DataFrame({c: loaded[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume", "quote_volume")},
                         index=loaded.index.as_unit("us"))  # as the shipped and reconstructed bars
    frame = frame.loc[(frame.index >= start) & (frame.index < end)]
    expected = int((end - start).total_seconds() // 60)
    if len(frame) != expected:
        raise DeleverageError(f"{path}: covers {len(frame)} of the {expected} minutes of the window {start} .. {end}; "
                              "expected the whole window")
    return frame


def attach_bitmex_funding(frame: pd.DataFrame, path: Path | None) -> bool:
    """Put the settled funding rates of the BitMEX funding CSV on their settlement bars (NaN elsewhere);
    the file is read and validated by :func:`feeds.bitmex.load_funding`."""
    frame["funding_rate"] = np.nan
    if path is None:
        return False
    from feeds.bitmex import load_funding

    loaded = load_funding(path)
    times = pd.DatetimeIndex(loaded["time"]).floor("1min")
    rates = pd.Series(loaded["funding_rate"].to_numpy(float), index=times)
    rates = rates[(rates.index >= frame.index[0]) & (rates.index <= frame.index[-1])]
    frame.loc[rates.index, "funding_rate"] = rates.to_numpy()
    return True


def shipped_path(spec: dict[str, Any]) -> Path | None:
    """The Parquet file shipped in the package for this real-data spec (None when it has none)."""
    if "shipped" not in spec:
        return None
    path = Path(__file__).resolve().parent / "shipped" / spec["shipped"]["file"]
    return path if path.is_file() else None


def shipped_bars(spec: dict[str, Any], start: pd.Timestamp, end: pd.Timestamp,
                 scenario: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The real bars shipped in the package (built by :mod:`feeds.scenarios.build_real`)."""
    path = shipped_path(spec)
    if path is None:
        raise DeleverageError(f"scenario {scenario}: the shipped real bars {spec.get('shipped', {}).get('file')} are "
                              "missing from the package (reinstall it, or rebuild them with "
                              "`python -m feeds.scenarios.build_real`)")
    raw = pd.read_parquet(path)
    index = pd.DatetimeIndex(raw.index, name="open_time")
    expected = pd.date_range(start, end, freq="1min", inclusive="left")
    if not index.equals(expected):
        raise DeleverageError(f"{path}: covers {index[0]} .. {index[-1]} ({len(index)} bars); expected the "
                              f"{len(expected)} minutes of {start} .. {end}")
    frame = pd.DataFrame({c: raw[c].to_numpy(float) for c in ("open", "high", "low", "close")}, index=index)
    quote = raw["volume_usd_contracts"].to_numpy(float)
    frame["volume"] = quote / ((frame["high"] + frame["low"] + frame["close"]).to_numpy() / 3.0)
    frame["quote_volume"] = quote
    frame["funding_rate"] = raw["funding_rate"].to_numpy(float)
    prov = dict(spec["shipped"]["provenance"])
    notes = ["volume = USD contracts / typical price (h+l+c)/3, an estimate",
             "BitMEX bucketed data: open is the previous bar's close"]
    if not frame["funding_rate"].notna().any():
        notes.append("no BitMEX funding history covers this window: funding_rate is NaN throughout "
                     "(a run settles its stated constant rate instead)")
    notes.append("no mark price in this file: a broker falls back to the last price to trigger liquidations "
                 "(harsher than BitMEX, whose mark followed the .BXBT index)")
    return frame, {"source": [f"package: feeds/scenarios/shipped/{path.name} ({prov['file']})"],
                   "provenance": prov, "origin": "package", "notes": notes, "quirks": ["open_is_previous_close"]}


def real_bars(spec: dict[str, Any], start: pd.Timestamp, end: pd.Timestamp, data_path: Any,
              scenario: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    if data_path is not None and Path(data_path).suffix.lower() == ".parquet":
        return _canonical_parquet(Path(data_path), start, end)
    path = find_file(spec["file"], data_path)
    if path is None:
        looked = ", ".join(str(d) for d in candidate_dirs(data_path))
        raise DeleverageError(
            f"scenario {scenario}: real data file {spec['file']} not found (looked in {looked}). "
            f"Get it with `deleverage data fetch` or pass its path (--data-path / data_path=), "
            f"or set DELEVERAGE_SHARED_DATA; or use --data reconstructed.")
    frame = load_bitmex_minutes(path, start, end)
    funding_dir = None if data_path is None else (Path(data_path) if Path(data_path).is_dir() else Path(data_path).parent)
    funding_path = find_file(spec["funding_file"], funding_dir) if spec.get("funding_file") else None
    has_funding = attach_bitmex_funding(frame, funding_path)
    notes = ["volume = USD contracts / typical price (h+l+c)/3, an estimate",
             "BitMEX bucketed data: open is the previous bar's close"]
    if not has_funding:
        notes.append("no BitMEX funding history covers this window: funding_rate is NaN throughout (no settlement applied)")
    notes.append("no mark price in this file: a broker falls back to the last price to trigger liquidations "
                 "(harsher than BitMEX, whose mark followed the .BXBT index)")
    src = [str(path)] + ([str(funding_path)] if has_funding else [])
    return frame, {"source": src, "notes": notes, "quirks": ["open_is_previous_close"]}


def _canonical_parquet(path: Path, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, Any]]:
    if not path.is_file():
        raise DeleverageError(f"{path}: no such file")
    frame = pd.read_parquet(path)
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in frame.columns]
    if missing or not isinstance(frame.index, pd.DatetimeIndex):
        raise DeleverageError(f"{path}: expected a canonical bar frame (DatetimeIndex open_time, open/high/low/close/volume); missing {missing}")
    if frame.attrs.get("kind") == "reconstructed":  # `scenarios export` wrote it: not exchange bars
        raise DeleverageError(f"{path}: is a reconstruction (its metadata: kind 'reconstructed', "
                              f"{str(frame.attrs.get('label', ''))[:60]}...); --data real expects exchange bars")
    index = frame.index.tz_localize("UTC") if frame.index.tz is None else frame.index.tz_convert("UTC")
    frame = frame.set_axis(index.rename("open_time"))
    # the loaders' validation (feeds.frames.finish), on the file's own rows: one error naming file, row, column
    from feeds.frames import finish

    frame.attrs["source_label"] = str(path)
    finish(frame, "bars", True, funding_unit="fraction")  # canonical frames hold funding as fractions
    frame = frame.loc[(index >= start) & (index < end)]
    expected = int((end - start).total_seconds() // 60)
    if len(frame) != expected:
        raise DeleverageError(f"{path}: covers {len(frame)} of the {expected} minutes of the window {start} .. {end}; expected 1-minute bars over the whole window")
    notes = list(frame.attrs.get("notes", [])) if frame.attrs else []
    return frame, {"source": [str(path)], "notes": notes}


# --- the `deleverage data fetch` cache ---------------------------------------------------------

CACHE_VENUES = ("binance_usdm", "bitmex")
BINANCE_USDM_SINCE = pd.Timestamp("2019-09-10", tz="UTC")  # BTCUSDT perpetual launch (2019-09-08) + settling


def default_cache() -> Path:
    from feeds.fetch import cache_dir

    return cache_dir()


def is_cache_root(path: Any) -> bool:
    """A directory laid out like the fetch cache (``parquet/binance`` or ``parquet/bitmex`` inside)."""
    p = Path(path)
    return p.is_dir() and ((p / "parquet" / "binance").is_dir() or (p / "parquet" / "bitmex").is_dir())


def fetch_days(start: pd.Timestamp, end: pd.Timestamp) -> tuple[str, str]:
    """``--start`` and ``--end`` (exclusive) UTC days covering ``[start, end)``."""
    first = start.floor("D")
    after = (end - pd.Timedelta(1, "ns")).floor("D") + pd.Timedelta(days=1)
    return f"{first:%Y-%m-%d}", f"{after:%Y-%m-%d}"


def _days(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    a, b = fetch_days(start, end)
    return pd.date_range(a, b, freq="D", inclusive="left", tz="UTC")


def _binance_file(root: Path, rel: str) -> Path:  # feeds.fetch.fetch_binance: parquet/binance/<archive path>.parquet
    return (root / "parquet" / "binance" / rel).with_suffix(".parquet")


def _binance_files(root: Path, data_type: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp,
                   interval: str | None) -> tuple[list[Path], list[Path]]:
    """(files found in time order, files missing): per day the monthly file if cached, else the daily one."""
    from feeds.fetch import MONTHLY_ONLY, binance_paths

    found: list[Path] = []
    missing: list[Path] = []
    for day in _days(start, end):
        nxt = day + pd.Timedelta(days=1)
        monthly = _binance_file(root, binance_paths(market="um", data_type=data_type, symbol=symbol, start=day, end=nxt,
                                                    interval=interval, period="monthly")[0])
        options = [monthly] if data_type in MONTHLY_ONLY else [
            monthly, _binance_file(root, binance_paths(market="um", data_type=data_type, symbol=symbol, start=day,
                                                       end=nxt, interval=interval, period="daily")[0])]
        hit = next((f for f in options if f.is_file()), None)
        target, bucket = (hit, found) if hit is not None else (options[-1], missing)
        if target not in bucket:
            bucket.append(target)
    return found, missing


def _bitmex_files(root: Path, kind: str, symbol: str, start: pd.Timestamp,
                  end: pd.Timestamp) -> tuple[list[Path], list[Path]]:
    # feeds.fetch.fetch_bitmex: parquet/bitmex/trade_bucketed/SYM/1m/SYM-1m-DAY, parquet/bitmex/funding/SYM/SYM-funding-MONTH
    if kind == "trade":
        files = [root / "parquet" / "bitmex" / "trade_bucketed" / symbol / "1m" / f"{symbol}-1m-{d:%Y-%m-%d}.parquet"
                 for d in _days(start, end)]
    else:
        months = sorted({f"{d:%Y-%m}" for d in _days(start, end)})
        files = [root / "parquet" / "bitmex" / "funding" / symbol / f"{symbol}-funding-{m}.parquet" for m in months]
    return [f for f in files if f.is_file()], [f for f in files if not f.is_file()]


def cache_plan(venue: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp,
               root: Path | None = None) -> dict[str, Any]:
    """The cached files of each role for the window: ``{"root", "klines", "mark", "funding", "missing"}``.

    A role maps to its files only when they cover every day (month) of the window, else to ``[]``;
    ``missing`` lists the price files still to fetch (empty when the window is covered).
    """
    root = Path(root) if root is not None else default_cache()
    plan: dict[str, Any] = {"root": root, "klines": [], "mark": [], "funding": [], "missing": []}
    if venue == "binance_usdm":
        roles = {"klines": ("klines", "1m"), "mark": ("markPriceKlines", "1m"), "funding": ("fundingRate", None)}
        for role, (data_type, interval) in roles.items():
            found, missing = _binance_files(root, data_type, symbol, start, end, interval)
            plan[role] = [] if missing else found
            if role == "klines":
                plan["missing"] = missing
    elif venue == "bitmex":
        for role, kind in (("klines", "trade"), ("funding", "funding")):
            found, missing = _bitmex_files(root, kind, symbol, start, end)
            plan[role] = [] if missing else found
            if role == "klines":
                plan["missing"] = missing
    else:
        raise DeleverageError(f"`deleverage data fetch` does not download {venue} data; expected one of {CACHE_VENUES}")
    return plan


def fetch_commands(venue: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp,
                   cache: Path | None = None) -> list[str]:
    """The ``deleverage data fetch`` commands that put the window's data in the cache (price first)."""
    a, b = fetch_days(start, end)
    tail = f" --start {a} --end {b}" + (f" --cache {cache}" if cache is not None else "")
    if venue == "binance_usdm":
        return [f"deleverage data fetch binance --market um --type {t} --symbol {symbol}"
                + (" --interval 1m" if t != "fundingRate" else "") + tail
                for t in ("klines", "markPriceKlines", "fundingRate")]
    if venue == "bitmex":
        return [f"deleverage data fetch bitmex --type trade --symbol {symbol} --bin-size 1m" + tail,
                f"deleverage data fetch bitmex --type funding --symbol {symbol}" + tail]
    return []


def cached_bars(venue: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp, root: Path | None = None,
                scenario: str = "") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The canonical 1-minute frame of the window built from the fetch cache (see the module docstring)."""
    from feeds.build import build_frame, load_source
    from feeds.errors import FeedError

    plan = cache_plan(venue, symbol, start, end, root)
    if plan["missing"]:
        raise DeleverageError(f"scenario {scenario}: real {venue} {symbol} 1-minute bars for {start:%Y-%m-%d %H:%M} .. "
                              f"{end:%Y-%m-%d %H:%M} UTC are "
                              + missing_message(venue, symbol, start, end, plan, cache=None if root is None else plan["root"]))
    notes: list[str] = []
    loaded: dict[str, pd.DataFrame] = {}
    for role in ("klines", "mark", "funding"):
        if not plan[role]:
            continue
        try:
            loaded[role] = load_source(plan[role], role)
        except FeedError as exc:
            if role == "klines":
                raise DeleverageError(f"scenario {scenario}: cached {venue} {symbol} bars in {plan['root']}: {exc}") from None
            notes.append(f"cached {role} files not used: {exc}")
    if "funding" in loaded:  # a month file fetched for a shorter window may not reach this one's ends
        times = pd.DatetimeIndex(loaded["funding"]["time"])
        hours = loaded["funding"]["interval_hours"].to_numpy(float) if "interval_hours" in loaded["funding"] else np.array([])
        every = pd.Timedelta(hours=float(np.nanmedian(hours)) if np.isfinite(hours).any() else 8.0)
        if not len(times) or times.min() >= start + every or times.max() < end - every:
            span = f"{times.min():%Y-%m-%d %H:%M} .. {times.max():%Y-%m-%d %H:%M}" if len(times) else "nothing"
            notes.append(f"cached funding files not used: they hold {span}, not the whole window "
                         f"(`{fetch_commands(venue, symbol, start, end)[-1]}` refreshes them after deleting them)")
            del loaded["funding"]

    def build(roles: list[str]) -> pd.DataFrame:
        return build_frame(symbol=symbol, start=start, end=end, interval="1min", venue=venue,
                           **{r: loaded[r] for r in ["klines", *roles]})

    optional = [r for r in ("mark", "funding") if r in loaded]
    try:
        frame = build(optional)
    except FeedError as exc:
        if not optional:
            raise DeleverageError(f"scenario {scenario}: cached {venue} {symbol} bars in {plan['root']}: {exc}") from None
        try:
            build([])
        except FeedError as exc2:  # the price files themselves are at fault
            raise DeleverageError(f"scenario {scenario}: cached {venue} {symbol} bars in {plan['root']}: {exc2}") from None
        kept = []
        for role in optional:
            try:
                build([role])
                kept.append(role)
            except FeedError as bad:
                notes.append(f"cached {role} files not used: {bad}")
        frame = build(kept)
    used = {role: [str(p) for p in plan[role]] for role in ("klines", *optional)
            if role == "klines" or role in frame.attrs["sources"]}
    if "mark" not in used:
        notes.append("no mark price cached for the window: a broker falls back to the last price to trigger liquidations"
                     + (f" (get it with `{fetch_commands(venue, symbol, start, end)[1]}`)" if venue == "binance_usdm" else
                        " (BitMEX's mark followed the .BXBT index; `deleverage data fetch` does not download it)"))
    if "funding" not in used:
        frame["funding_rate"] = np.nan
        notes.append("no funding history cached for the window: funding_rate is NaN throughout (no settlement applied)")
    extras = {"source": [p for files in used.values() for p in files], "sources": used, "origin": "fetch cache",
              "cache": str(plan["root"]), "notes": list(frame.attrs.get("notes", [])) + notes,
              "quirks": list(frame.attrs.get("quirks", [])), "window": frame.attrs.get("window")}
    return frame, extras


def missing_message(venue: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp,
                    plan: dict[str, Any], cache: Path | None = None) -> str:
    missing = plan["missing"]
    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    cmds = fetch_commands(venue, symbol, start, end, cache)
    return (f"not in the fetch cache {plan['root']} (missing {missing[0]}{more}); get it with:\n  "
            + "\n  ".join(cmds) + ("\n(the first command is the price; the others add mark price and funding)"
                                   if venue == "binance_usdm" else "\n(the first is the price; the second adds funding)"))


# --- a scenario's real data: where it is, and what to fetch when it is not ---------------------

def venues_order(self: Any, asset: str, venue: str | None) -> list[str]:
    """The venue asked for, else the scenario's default venue first, then its other venues with a path."""
    if venue:
        return [venue]
    known = set(self.paths.get(asset, {})) | set(self.real_data.get(asset, {}))
    return [v for v in dict.fromkeys([self.default_venue, *self.venues, *self.real_data.get(asset, {})]) if v in known]


def real_sources(self: Any, asset: str, venue: str | None, data_path: Any) -> list[dict[str, Any]]:
    """Where real bars of the whole window are, in the order ``bars(data="real")`` takes them.

    ``data_path`` when given (a canonical Parquet file, a folder of shared-layout files, or a
    fetch cache folder) and only there; else the bars shipped in the package (``kind="shipped"``),
    the shared data, then the fetch cache. Each entry:
    ``{"venue", "symbol", "origin", "files", ...}``; ``[]`` when nothing covers the window.
    """
    shared = self.real_data.get(asset, {})
    order = venues_order(self, asset, venue)
    out: list[dict[str, Any]] = []
    roots = [default_cache()]
    look_shared = True
    if data_path is not None:
        p = Path(data_path)
        if p.suffix.lower() == ".parquet":
            v = venue or self.default_venue
            return [{"venue": v, "symbol": self.venue_symbol(asset, v), "origin": "data_path", "kind": "parquet",
                     "files": [str(p)]}]
        roots = [p] if is_cache_root(p) else []
        look_shared = not roots
    if data_path is None:  # the bars shipped in the package (312, 519), then the shared files
        for v in order:
            if v in shared and (path := shipped_path(shared[v])) is not None:
                out.append({"venue": v, "symbol": self.venue_symbol(asset, v), "kind": "shipped",
                            "origin": "package", "files": [str(path)],
                            "provenance": shared[v]["shipped"]["provenance"]})
    if look_shared:
        for v in order:
            if v in shared and (path := find_file(shared[v]["file"], data_path)) is not None:
                out.append({"venue": v, "symbol": self.venue_symbol(asset, v), "kind": "shared",
                            "origin": "data_path" if data_path is not None else "shared data", "files": [str(path)]})
    for root in roots:
        for v in order:
            if v not in CACHE_VENUES or (v == "binance_usdm" and self.start < BINANCE_USDM_SINCE):
                continue
            plan = cache_plan(v, self.venue_symbol(asset, v), self.start, self.end, root)
            if not plan["missing"]:
                files = [str(f) for role in ("klines", "mark", "funding") for f in plan[role]]
                out.append({"venue": v, "symbol": self.venue_symbol(asset, v), "kind": "cache",
                            "origin": "fetch cache", "root": str(root), "files": files,
                            "roles": [r for r in ("klines", "mark", "funding") if plan[r]],
                            "explicit_root": data_path is not None})
    return out


def missing_error(self: Any, asset: str, venue: str | None, data_path: Any) -> DeleverageError:
    """The error when nothing covers the window: what was looked at, and the fetch commands that get it."""
    lines = [f"scenario {self.name}: no real {asset} 1-minute data found for the window "
             f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC"
             + (f" in {data_path}" if data_path is not None else "")]
    shared = self.real_data.get(asset, {})
    order = venues_order(self, asset, venue)
    explicit_root = data_path is not None and is_cache_root(data_path)
    for v in order:
        if v in shared and not explicit_root:
            looked = ", ".join(str(d) for d in candidate_dirs(data_path))
            lines.append(f"- {v}: shared file {shared[v]['file']} not found (looked in {looked}"
                         + ("; set DELEVERAGE_SHARED_DATA or pass data_path=)" if data_path is None else ")"))
    cache_venue = next((v for v in order if v in CACHE_VENUES), None)
    if cache_venue is not None and (data_path is None or explicit_root):
        sym = self.venue_symbol(asset, cache_venue)
        root = Path(data_path) if explicit_root else None
        plan = cache_plan(cache_venue, sym, self.start, self.end, root)
        lines.append(f"- {cache_venue} {sym}: " + missing_message(cache_venue, sym, self.start, self.end, plan,
                                                                     cache=root).replace("\n", "\n  "))
    elif cache_venue is not None:
        cmds = fetch_commands(cache_venue, self.venue_symbol(asset, cache_venue), self.start, self.end)
        lines.append(f"- get it with `{cmds[0]}` (then run without data_path, or pass the cache folder)")
    else:
        lines.append(f"- `deleverage data fetch` downloads {' and '.join(CACHE_VENUES)} only, not "
                     f"{', '.join(order) or venue}")
    lines.append("Or pass a file (data_path= / --data-path), or use data='reconstructed'.")
    return DeleverageError("\n".join(lines))
