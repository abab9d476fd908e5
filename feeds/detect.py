"""Pick the loader for a file: detected from its path and header, or named explicitly.

:data:`FORMATS` is the explicit registry (format name -> loader, frame kind). Detection reads
only the file name, the archive path and the first line; when it cannot decide it says so
and lists the names to pass (``format=`` / ``--format``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from feeds import binance, bitmex, exports, generic
from feeds.errors import FeedError
from feeds.readers import PathLike, check_delimiter, check_path, first_line, open_text
from feeds.schema import BAR_INDEX_NAME, REQUIRED_BAR_COLUMNS
from feeds.validate import ValidationReport


@dataclass(frozen=True)
class Format:
    name: str
    loader: Callable[..., pd.DataFrame]
    kind: str  # bars | mark | index | premium | events | funding | open_interest | liquidation_bars
    description: str


def _fmt(name: str, loader: Callable[..., pd.DataFrame], kind: str, description: str) -> Format:
    return Format(name, loader, kind, description)


FORMATS: dict[str, Format] = {f.name: f for f in (
    _fmt("binance_klines", functools.partial(binance.load_klines, kind="klines"), "bars",
         "Binance archive klines (um/cm, CSV or ZIP)"),
    _fmt("binance_markPriceKlines", functools.partial(binance.load_klines, kind="markPriceKlines"), "mark",
         "Binance archive mark-price klines"),
    _fmt("binance_indexPriceKlines", functools.partial(binance.load_klines, kind="indexPriceKlines"), "index",
         "Binance archive index-price klines"),
    _fmt("binance_premiumIndexKlines", functools.partial(binance.load_klines, kind="premiumIndexKlines"), "premium",
         "Binance archive premium-index klines"),
    _fmt("binance_fundingRate", binance.load_funding, "funding", "Binance archive fundingRate"),
    _fmt("binance_liquidationSnapshot", binance.load_liquidation_snapshot, "events",
         "Binance archive liquidationSnapshot"),
    _fmt("binance_metrics", binance.load_metrics, "open_interest", "Binance archive metrics (open interest)"),
    _fmt("binance_forceorder_jsonl", binance.load_force_orders_jsonl, "events",
         "Binance forceOrder websocket recording (JSON lines)"),
    _fmt("bitmex_buckets", bitmex.load_buckets, "bars", "BitMEX trade buckets (API JSON/CSV, shared CSV)"),
    _fmt("bitmex_funding", bitmex.load_funding, "funding", "BitMEX funding history"),
    _fmt("kline_export", exports.load_kline_export, "bars", "normalised kline export (timestamp_ms, volume_base, ...)"),
    _fmt("funding_export", exports.load_funding_export, "funding", "normalised funding export (calc_time_ms, ...)"),
    _fmt("liquidation_event_export", exports.load_event_export, "events",
         "liquidation-event export (Binance forceOrder CSV recording)"),
    _fmt("hyperliquid_liquidations", exports.load_event_export, "events", "Hyperliquid liquidations with fills"),
    _fmt("coinglass_liquidations", exports.load_coinglass_liquidations, "liquidation_bars",
         "CoinGlass hourly aggregated liquidations"),
    _fmt("coinalyze_liquidations", exports.load_coinalyze_liquidations, "liquidation_bars",
         "Coinalyze daily liquidations per market (--market EXCHANGE:SYMBOL)"),
    _fmt("coinalyze_open_interest", exports.load_coinalyze_open_interest, "open_interest",
         "Coinalyze daily open interest per market (--market EXCHANGE:SYMBOL)"),
    _fmt("generic", generic.load_table, "bars", "any CSV/Parquet bars with the canonical columns (open_time, open, high, low, close, volume, ...)"),
)}

# header signature (a set of column names that must all be present) -> format
_HEADER_SIGNATURES: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"liquidation_id", "liquidated_position_side"}), "hyperliquid_liquidations"),
    (frozenset({"liquidated_position_side", "order_side", "notional_quote"}), "liquidation_event_export"),
    (frozenset({"liq_long_usd", "liq_short_usd", "coinalyze_symbol"}), "coinalyze_liquidations"),
    (frozenset({"oi_close_usd", "coinalyze_symbol"}), "coinalyze_open_interest"),
    (frozenset({"liq_long_usd", "liq_short_usd", "liq_total_usd"}), "coinglass_liquidations"),
    (frozenset({"calc_time_ms", "funding_rate"}), "funding_export"),
    (frozenset({"calc_time", "last_funding_rate"}), "binance_fundingRate"),
    (frozenset({"funding_time_utc", "funding_interval"}), "bitmex_funding"),
    (frozenset({"fundingInterval", "fundingRate"}), "bitmex_funding"),
    (frozenset({"volume_usd_contracts"}), "bitmex_buckets"),
    (frozenset({"homeNotional", "foreignNotional"}), "bitmex_buckets"),
    (frozenset({"volume_base", "timestamp_ms"}), "kline_export"),
    (frozenset({"create_time", "sum_open_interest"}), "binance_metrics"),
    (frozenset({"side", "average_price", "accumulated_fill_quantity"}), "binance_liquidationSnapshot"),
    (frozenset({"open_time", "close_time", "count"}), "binance_klines"),
)


def detect_format(path: PathLike) -> str:
    """The name of the format of ``path`` (see :data:`FORMATS`), or a FeedError saying what to pass."""
    p = check_path(path)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson") or p.name.endswith(".jsonl.gz"):
        return "binance_forceorder_jsonl"
    if suffix == ".parquet":
        return "generic"
    info = binance.parse_archive_path(p)
    data_type = info.get("data_type")
    if data_type in binance.KLINE_KINDS:
        return f"binance_{data_type}"
    if data_type in ("fundingRate", "liquidationSnapshot", "metrics"):
        return f"binance_{data_type}"
    if suffix == ".json":
        stream, _ = open_text(p)
        with stream:
            text = stream.read(4000)
        if '"fundingRate"' in text:
            return "bitmex_funding"
        if '"homeNotional"' in text or '"open"' in text:
            return "bitmex_buckets"
        if '"forceOrder"' in text:
            return "binance_forceorder_jsonl"
    line = first_line(p)
    if line.startswith("{"):
        try:
            if "forceOrder" in json.dumps(json.loads(line)):
                return "binance_forceorder_jsonl"
        except json.JSONDecodeError:
            pass
    check_delimiter(line, str(p))
    header = {h.strip().strip('"') for h in line.split(",")}
    for signature, name in _HEADER_SIGNATURES:
        if signature <= header:
            return name
    if info.get("interval") and len(line.split(",")) == 12:  # header-less archive klines named SYMBOL-1m-DATE
        return "binance_klines"
    if {BAR_INDEX_NAME, *REQUIRED_BAR_COLUMNS} <= header:  # our own canonical bar schema (feeds/schema.py)
        return "generic"
    raise FeedError(f"{p}: cannot tell the format from its name and first line ({line[:80]!r}); "
                    f"name it with format= / --format, one of: {', '.join(FORMATS)}")


# Options a command passes to every loader; each loader that cannot use one drops it when it is at
# its default, and refuses it otherwise (say, --funding-unit percent for a file of bars without funding).
OPTION_DEFAULTS: dict[str, Any] = {"allow_outliers": False, "funding_unit": "auto", "allow_gaps": False}
OPTION_FLAGS: dict[str, str] = {"allow_outliers": "--allow-outliers", "funding_unit": "--funding-unit",
                                "allow_gaps": "--allow-gaps", "market": "--market", "symbol": "--symbol",
                                "volume_unit": "--volume-unit"}


def loader_kwargs(name: str, path: PathLike, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` without the shared options the format's loader does not take (error if one was set).

    Any other option the loader does not take (``--market`` for a kline export, ``--volume-unit``
    for a funding file, ...) is an error naming the option, never passed on to fail inside the loader.
    """
    import inspect

    params = inspect.signature(FORMATS[name].loader).parameters
    out = dict(kwargs)
    for key in list(out):
        if key in params:
            continue
        value = out.pop(key)
        if key in OPTION_DEFAULTS and (value == OPTION_DEFAULTS[key] or value is None):
            continue
        flag = OPTION_FLAGS.get(key, f"{key}=")
        raise FeedError(f"{path}: {flag} does not apply to a {name} file ({FORMATS[name].description})")
    return out


def call_loader(name: str, path: PathLike, **kwargs: Any) -> pd.DataFrame:
    """``FORMATS[name].loader(path, **kwargs)``; a loader tripping over the file's content is a FeedError.

    Loaders check what they expect and raise FeedErrors naming row and column; anything that still
    slips through on malformed input (a column missing from the header, a cell pandas cannot
    convert) is reported as the file not being in that format, never as a traceback.
    """
    fmt = FORMATS[name]
    try:
        return fmt.loader(path, **kwargs)
    except KeyError as exc:
        raise FeedError(f"{path}: column {exc.args[0]!r} not found; expected the {name} layout "
                        f"({fmt.description})") from None
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        text = " ".join(str(exc).split())[:200]
        raise FeedError(f"{path}: cannot read it as {name} ({text}); expected the {name} layout "
                        f"({fmt.description})") from None


def load(path: PathLike, format: str | None = None, **kwargs: Any) -> pd.DataFrame:
    """Load ``path`` with the named or detected loader (keyword arguments go to the loader)."""
    name = format or detect_format(path)
    if name not in FORMATS:
        raise FeedError(f"unknown format {name!r}; expected one of: {', '.join(FORMATS)}")
    frame = call_loader(name, path, **loader_kwargs(name, path, kwargs))
    frame.attrs.setdefault("format", name)
    return frame


def validate_file(path: PathLike, format: str | None = None, **kwargs: Any) -> list[ValidationReport]:
    """Load without raising and return one report per table in the file (per market for Coinalyze).

    Errors that stop parsing (a bad timestamp, a missing column) become a one-finding report.
    """
    from feeds.frames import run_validator

    vkw = {k: kwargs.pop(k) for k in ("allow_gaps", "allow_outliers") if k in kwargs}
    try:
        name = format or detect_format(path)
        fmt = FORMATS.get(name)
        if fmt is None:
            raise FeedError(f"unknown format {name!r}; expected one of: {', '.join(FORMATS)}")
        if name.startswith("coinalyze") and "market" not in kwargs:
            markets = exports.coinalyze_markets(path)  # reads the market column (a FeedError when absent)
        else:
            markets = [kwargs.pop("market", None)] if name.startswith("coinalyze") else [None]
        reports = []
        loader_opts = loader_kwargs(name, path, kwargs)
        for market in markets:
            extra = {"market": market} if market is not None else {}
            frame = call_loader(name, path, validate=False, **extra, **loader_opts)
            kind = frame.attrs.get("frame_kind", fmt.kind)
            opts = dict(vkw)
            if loader_opts.get("funding_unit", "auto") != "auto" and "funding_rate" not in frame.columns:
                raise FeedError(f"{path}: --funding-unit does not apply to this {name} file: it has no funding_rate "
                                "column")
            if "funding_unit" in loader_opts:  # the loader applied a declared unit; the validator checks it
                opts["funding_unit"] = loader_opts["funding_unit"]
            if name.startswith("coinalyze"):
                opts["rows"] = False
                if kind == "liquidation_bars":
                    opts["nan_ok"] = ("liq_long_notional", "liq_short_notional")
            if kind == "open_interest":
                opts.setdefault("allow_gaps", True)
            if name == "binance_forceorder_jsonl":  # rows are lines when the file has no blank lines
                opts["rows"] = frame.attrs.get("line_numbers") == list(range(1, len(frame) + 1))
            report = run_validator(frame, kind, **opts)
            report.kind = f"{name} ({report.kind})"
            # funding and open-interest gaps are warnings anyway and events have no grid: --allow-gaps changes
            # nothing there; bad prints are looked for in trade and mark bars only
            if vkw.get("allow_gaps") and kind in ("bars", "mark", "index", "premium", "liquidation_bars"):
                report.options_used.add("allow_gaps")
            if vkw.get("allow_outliers") and kind in ("bars", "mark"):
                report.options_used.add("allow_outliers")
            reports.append(report)
        return reports
    except FeedError as exc:
        report = ValidationReport(file=str(path), kind=format or "unknown format")
        report.add("error", "format", str(exc))
        return [report]
