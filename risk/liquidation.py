"""The public liquidation-price entry point and the per-position liquidation levels.

``risk.liquidation_price(venue, side, entry_price, quantity, collateral, **venue_params)``
answers the question a user asks most: "where does this position die?".
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from risk.errors import DeleverageError
from risk.formulas import (
    bankruptcy_price,
    cumulative_amounts,
    effective_mmr,
    liquidation_price_bracket,
    liquidation_price_tiered,
)
from risk.venues import get_instrument, venue_rules

SIDES = {"long": 1, "short": -1, 1: 1, -1: -1, "buy": 1, "sell": -1}


def parse_side(side: str | int) -> int:
    """``"long"``/``"buy"``/``1`` -> +1, ``"short"``/``"sell"``/``-1`` -> -1."""
    try:
        return SIDES[side.lower() if isinstance(side, str) else side]
    except KeyError:
        raise DeleverageError(f"side must be 'long' or 'short', got {side!r}") from None


def liquidation_price(
    venue: str,
    side: str | int,
    entry_price: float,
    quantity: float,
    collateral: float,
    *,
    symbol: str | None = None,
    margin_mode: str = "isolated",
    maintenance_rate: float | None = None,
    maintenance_amount: float = 0.0,
    tiers: Iterable[tuple[float, float]] | None = None,
    other_maintenance_margin: float = 0.0,
    other_unrealized_pnl: float = 0.0,
    taker_fee: float | None = None,
    funding_rate: float = 0.0,
    contract_size: float | None = None,
    inverse: bool | None = None,
    timestamp: float | None = None,
) -> float | None:
    """Liquidation price of one position on ``venue``, or None if it cannot be liquidated.

    Parameters
    ----------
    venue:
        ``"binance_usdm"``, ``"binance_coinm"``, ``"bitmex"``, ``"bybit"``, ``"okx"`` or
        ``"hyperliquid"`` (see :mod:`risk.venues`).
    side:
        ``"long"`` or ``"short"``.
    entry_price:
        Average entry price (quote per base).
    quantity:
        Position size, positive: base units (linear) or contracts (inverse).
    collateral:
        Settle-currency collateral: the isolated margin in isolated mode, the account's wallet
        balance in cross mode (USDT for linear, coin for inverse).
    symbol:
        Instrument on the venue (default: the venue's BTC perpetual); supplies contract size,
        contract type, taker fee and the dated bracket table.
    margin_mode:
        ``"isolated"`` or ``"cross"``. In cross mode pass the other positions'
        ``other_maintenance_margin`` and ``other_unrealized_pnl`` (settle currency, at mark).
    maintenance_rate, maintenance_amount:
        Override the bracket lookup with one bracket (rate as a fraction; amount in settle
        currency). ``tiers``: override with your own ``[(floor_notional, rate), ...]`` table
        (continuous maintenance amounts are derived from it).
    taker_fee:
        Override the instrument's taker fee (used where the venue adds it to maintenance:
        BitMEX, OKX).
    funding_rate:
        Next funding rate (fraction; positive: longs pay). BitMEX adds it to maintenance when it
        is a cost to the position.
    contract_size, inverse:
        Override the instrument's contract size and contract type.
    timestamp:
        Unix seconds (UTC) selecting the bracket table in force; latest when None.
    """
    rules = venue_rules(venue)
    s = parse_side(side)
    if quantity <= 0 or entry_price <= 0:
        raise DeleverageError(f"quantity and entry_price must be positive, got {quantity} and {entry_price}")
    if margin_mode not in ("isolated", "cross"):
        raise DeleverageError(f"margin_mode must be 'isolated' or 'cross', got {margin_mode!r}")
    if margin_mode == "isolated" and (other_maintenance_margin or other_unrealized_pnl):
        raise DeleverageError("other_maintenance_margin and other_unrealized_pnl only apply to cross margin")
    inst = get_instrument(venue, symbol)
    inv = inst.inverse if inverse is None else inverse
    cs = inst.contract_size if contract_size is None else contract_size
    taker = inst.taker_fee if taker_fee is None else taker_fee

    def adjust(rate: float) -> float:
        return effective_mmr(rate, rules.mmr_adds_taker_fee, taker, rules.mmr_adds_funding, s, funding_rate)

    if maintenance_rate is not None:
        price = liquidation_price_bracket(inv, rules.mm_on_entry, s, quantity, cs, entry_price, collateral,
                                          adjust(maintenance_rate), maintenance_amount,
                                          other_maintenance_margin, other_unrealized_pnl)
    else:
        if tiers is not None:
            pairs = sorted(tiers)
            floors = np.array([f for f, _ in pairs], dtype=float)
            mmrs = np.array([r for _, r in pairs], dtype=float)
            cums = cumulative_amounts(floors, mmrs)
        else:
            table = inst.tiers_at(timestamp)
            floors, mmrs, cums = table.floors_array, table.mmrs_array, table.cums_array
        adjusted = np.array([adjust(m) for m in mmrs])
        price = liquidation_price_tiered(inv, rules.mm_on_entry, s, quantity, cs, entry_price, collateral,
                                         floors, adjusted, cums, other_maintenance_margin, other_unrealized_pnl)
    return None if math.isnan(price) else price


def bankruptcy(venue: str, side: str | int, entry_price: float, quantity: float, collateral: float,
               *, symbol: str | None = None, other_maintenance_margin: float = 0.0,
               other_unrealized_pnl: float = 0.0) -> float | None:
    """Bankruptcy price (margin balance zero) of one position; None where none exists."""
    inst = get_instrument(venue, symbol)
    price = bankruptcy_price(inst.inverse, parse_side(side), quantity, inst.contract_size, entry_price,
                             collateral, other_maintenance_margin, other_unrealized_pnl)
    return None if math.isnan(price) else price
