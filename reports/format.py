"""How every report writes a value: percent with a space, amounts without exponents or
``-0.00``, times in UTC, yes/no for flags, labels in words (never snake_case), quantities with
their unit, and a configuration as a readable table.

Shared by the run, stress and optimization reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

DASH = "–"


def missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _decimals(value: float, significant: int = 4) -> int:
    """Decimals that show ``significant`` digits of a number under 100 (at least 2)."""
    a = abs(value)
    if a == 0 or a >= 100:
        return 2
    return min(8, max(2, significant - 1 - math.floor(math.log10(a))))  # 8: one satoshi


def fmt_amount(value: Any, unit: str = "", digits: int | None = None) -> str:
    """A money amount or price: thousands separators, no exponent (``0.00001109``), never
    ``-0.00``; ``unit`` appended after a space."""
    if missing(value):
        return DASH
    v = float(value)
    if math.isinf(v):
        text = "∞" if v > 0 else "−∞"
    else:
        d = _decimals(v) if digits is None else digits
        v = round(v, d)
        if v == 0:
            v, d = 0.0, min(d, 2)  # no "-0.00", no "0.00000000" for float noise
        text = f"{v:,.{d}f}"
    return f"{text} {unit}".rstrip()


def fmt_pct(value: Any, digits: int = 1) -> str:
    """A fraction as a percentage (``0.0123`` -> ``1.2 %``), never ``-0.0 %``."""
    if missing(value):
        return DASH
    v = float(value) * 100
    if math.isinf(v):
        return "∞ %" if v > 0 else "−∞ %"
    v = round(v, digits)
    if v == 0:
        v = 0.0
    return f"{v:,.{digits}f} %"


def fmt_count(value: Any, one: str = "", many: str = "") -> str:
    """An integer count with separators; with ``one``/``many`` the noun too."""
    if missing(value):
        return DASH
    n = int(value)
    text = f"{n:,}"
    return f"{text} {one if n == 1 else many}".rstrip() if one else text


def times_word(n: int) -> str:
    """``once``, ``twice``, ``3 times`` (never ``1×``, which reads as leverage)."""
    return {1: "once", 2: "twice"}.get(int(n), f"{int(n):,} times")


def fmt_time(value: Any) -> str:
    """A time as ``2020-03-12 10:41 UTC`` (seconds when not zero); ``–`` when missing."""
    if missing(value):
        return DASH
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC" if ts.second else "%Y-%m-%d %H:%M UTC")


def fmt_bool(value: Any) -> str:
    return DASH if missing(value) else ("yes" if bool(value) else "no")


def fmt_leverage(value: Any) -> str:
    return DASH if missing(value) else f"{float(value):g}×"


LABELS = {
    # run config / summary
    "strategy": "Strategy", "params": "Strategy parameters", "venue": "Venue", "symbol": "Symbol",
    "leverage": "Leverage", "margin_mode": "Margin mode", "cash": "Initial equity", "initial_cash": "Initial equity",
    "funding_rate": "Constant funding rate (per interval)", "allow_no_funding": "Run without funding data",
    "analyzers": "backtrader analyzers", "settle_currency": "Settle currency", "inverse": "Inverse contract",
    "contract_size": "Contract size", "engine": "Engine", "venue_title": "Venue profile",
    "liquidation_fill": "Liquidation fills at", "trigger": "Liquidation triggers on", "funding_source": "Funding from",
    "announcements": "Venue announcements", "data": "Data", "kind": "Kind", "sources": "Sources", "label": "Label",
    "scenario": "Scenario", "final_equity": "Final equity", "total_return": "Total return",
    "max_drawdown": "Max drawdown", "liquidated": "Liquidated", "liquidations": "Liquidations",
    "first_liquidation_time": "First liquidation", "first_liquidation_price": "First liquidation fill price",
    "first_liquidation_trigger": "First liquidation trigger price", "funding_total": "Funding (cash flow)",
    "fees_total": "Fees", "insurance_fund": "Insurance fund's result (fees in, covers and gap losses out)",
    "insurance_cover_total": "Insurance fund's cover (credited to the account, not a fee)",
    "min_distance_to_liquidation": "Closest distance to liquidation", "fills": "Fills", "bars": "Bars",
    "start": "First bar", "end": "Last bar",
    "orders_rejected": "Orders refused", "margin": "for margin", "leverage_limit": "over the venue's leverage limit",
    "backtrader": "backtrader", "trades_total": "Trades (backtrader)", "trades_closed": "Trades closed",
    "trades_won": "Trades won", "trades_lost": "Trades lost", "max_drawdown_pct": "Max drawdown (backtrader)",
    "max_drawdown_bars": "Max drawdown length (bars)",
    # stress config
    "strategies": "Strategies", "scenarios": "Scenarios", "leverages": "Leverage levels", "data_kinds": "Data kinds",
    "wipeout": "Wipe-out floor (equity left)", "funding": "Funding", "created": "Created", "resumed": "Resumed",
    "cells": "Cells", "data_note": "Data note", "units": "Units",
    # optimization config
    "objective": "Objective", "method": "Method", "trials": "Trials", "walk_forward": "Walk-forward folds",
    "seed": "Seed",
}
PERCENT_KEYS = {"total_return", "max_drawdown", "min_distance_to_liquidation", "wipeout"}
TIME_KEYS = {"first_liquidation_time", "start", "end", "created"}


def label(key: str) -> str:
    """A column or setting name in words: ``max_drawdown`` -> ``Max drawdown``."""
    if key in LABELS:
        return LABELS[key]
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def fmt_value(key: str, value: Any, unit: str = "") -> str:
    """A setting or summary value for a key/value table."""
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return fmt_bool(value)
    if missing(value):
        return DASH
    if key in PERCENT_KEYS and isinstance(value, (int, float)):
        return fmt_pct(value, 2)
    if key == "max_drawdown_pct" and isinstance(value, (int, float)):
        return fmt_pct(float(value) / 100, 2)
    if key in TIME_KEYS:
        return fmt_time(value)
    if key in ("leverage",) and isinstance(value, (int, float)):
        return fmt_leverage(value)
    if key == "leverages" and isinstance(value, (list, tuple)):
        return ", ".join(fmt_leverage(v) for v in value)
    if isinstance(value, (int, np.integer)):
        return fmt_count(value)
    if isinstance(value, (float, np.floating)):
        return fmt_amount(value, unit)
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_value(key, v) for v in value) if value else "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} = {fmt_value(str(k), v)}" for k, v in value.items()) if value else "none"
    return str(value)


def config_rows(config: Mapping[str, Any], units: Mapping[str, str] | None = None, prefix: str = "",
                skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """A configuration as ``(setting, value)`` rows: nested mappings become indented rows
    (``Data · Kind``), lists are joined, flags read yes/no, times UTC."""
    units = units or {}
    rows: list[tuple[str, str]] = []
    for key, value in config.items():
        if key in skip:
            continue
        name = f"{prefix}{label(key)}"
        if isinstance(value, Mapping) and value and key not in ("params",):
            rows += config_rows(value, units, prefix=f"{name} · ", skip=skip)
        else:
            rows.append((name, fmt_value(key, value, units.get(key, ""))))
    return rows


def instrument_units(config: Mapping[str, Any]) -> dict[str, str]:
    """``base``, ``quote``, ``settle`` and ``qty`` (the unit of a quantity: ``BTC`` on a linear
    contract, ``USD contracts`` on XBTUSD, ``contracts of 100 USD`` on Binance COIN-M) of a run."""
    settle = str(config.get("settle_currency", "") or "")
    inverse = bool(config.get("inverse", False))
    base, quote, size = None, None, config.get("contract_size")
    try:
        from risk.venues import get_instrument

        inst = get_instrument(str(config.get("venue")), config.get("symbol") or None)
        base, quote, size = inst.base_currency, inst.quote_currency, inst.contract_size
        inverse = inst.inverse
        settle = settle or inst.settle_currency
    except Exception:  # noqa: BLE001 - an unknown venue in an old run: fall back to the config
        pass
    if quote is None:
        quote = "USD" if inverse else settle
    if base is None:
        symbol = str(config.get("symbol", ""))
        base = settle if inverse else (symbol[: -len(quote)] if quote and symbol.endswith(quote) else symbol or "base")
    if inverse:
        qty = f"{quote} contracts" if not size or float(size) == 1 else f"contracts of {float(size):g} {quote}"
    else:
        qty = base if not size or float(size) == 1 else f"contracts of {float(size):g} {base}"
    return {"base": base, "quote": quote, "settle": settle, "qty": qty}


def fmt_qty(value: Any, unit: str) -> str:
    """A position size with its unit: ``194,821 USD contracts``, ``9.96 BTC``."""
    if missing(value):
        return DASH
    v = float(value)
    text = f"{v:,.0f}" if v.is_integer() and abs(v) >= 1 else fmt_amount(v)
    return f"{text} {unit}".rstrip()
