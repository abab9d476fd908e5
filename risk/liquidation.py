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

    The price (quote per base, e.g. USD per BTC) at which the position's margin balance equals
    its maintenance margin, on the venue's own terms: the bracket table in force at
    ``timestamp``, MM valued at mark or at entry, the venue's add-ons to MM (BitMEX: exit taker
    fee and a costly funding rate; OKX: the taker-rate liquidation fee). Formulas and sign
    conventions: :mod:`risk.formulas` and the documentation page "Venue rules"
    (``docs/concepts/venue-rules.md``).

    Parameters
    ----------
    venue:
        ``"binance_usdm"`` (Binance USDⓈ-M, linear, MM at mark), ``"binance_coinm"`` (Binance
        COIN-M, inverse, MM at mark), ``"bitmex"`` (XBTUSD inverse, MM at entry + taker fee +
        funding), ``"bybit"`` (linear and inverse, MM at entry), ``"okx"`` (linear swaps, MM at
        mark + taker-rate liquidation fee) or ``"hyperliquid"`` (linear, MM at mark). See
        :data:`risk.venues.VENUES`.
    side:
        ``"long"``/``"buy"``/``1`` or ``"short"``/``"sell"``/``-1``.
    entry_price:
        Average entry price, quote per base (> 0). For inverse contracts the harmonic average.
    quantity:
        Position size (> 0): base units for linear contracts whose contract size is 1
        (Binance USDⓈ-M, Bybit USDT, Hyperliquid), otherwise number of contracts (OKX swaps:
        0.01 BTC each; Binance COIN-M: 100 USD (BTC) / 10 USD (ETH) each; BitMEX and Bybit
        inverse: 1 USD each).
    collateral:
        Settle-currency collateral: the isolated margin in isolated mode (initial margin plus
        any margin added, minus funding paid), the account's wallet balance in cross mode.
        USDT (USDC on Hyperliquid) for linear contracts, the coin for inverse ones.
    symbol:
        Instrument on the venue (default: the venue's BTC perpetual, ``DEFAULT_SYMBOLS``);
        supplies contract size, contract type, taker fee and the dated bracket table.
    margin_mode:
        ``"isolated"`` (default) or ``"cross"``. In cross mode pass the other positions'
        ``other_maintenance_margin`` and ``other_unrealized_pnl``.
    maintenance_rate, maintenance_amount:
        Override the bracket lookup with one bracket: rate as a fraction (0.005 = 0.5 %), amount
        (Binance's ``cum``) in settle currency, MM = notional x rate - amount. The venue's
        add-ons (BitMEX, OKX) are still applied to the rate.
    tiers:
        Override the bracket table with ``[(floor_notional, rate), ...]`` (floors in settle
        currency, the first one 0; a bracket holds (floor, next floor]). Maintenance amounts
        follow the instrument's rule: continuous (Binance, OKX, Hyperliquid) or none (BitMEX,
        Bybit: the bracket's rate applies to the whole position).
    other_maintenance_margin, other_unrealized_pnl:
        Cross mode only: maintenance margin and unrealized PnL (both at their marks, settle
        currency) of all the *other* positions sharing the wallet (Binance's TMM1, UPNL1).
    taker_fee:
        Override the instrument's taker fee (fraction); used where the venue adds it to
        maintenance: BitMEX (exit fee), OKX (liquidation fee).
    funding_rate:
        Next funding rate per interval (fraction; positive: longs pay). BitMEX adds it to the
        maintenance rate when it is a cost to the position (long with a positive rate, short
        with a negative one); other venues ignore it here.
    contract_size, inverse:
        Override the instrument's contract size (base per contract for linear, USD per
        contract for inverse) and contract type.
    timestamp:
        Unix seconds (UTC) selecting the bracket table in force then
        (:meth:`PerpInstrument.tiers_at`); the latest table when None.

    Returns
    -------
    float or None
        The liquidation price, or None when no positive price exists (e.g. a 1x linear long,
        or a short whose collateral covers any rise for inverse contracts).

    Raises
    ------
    DeleverageError
        Unknown venue, symbol, side or margin mode; non-positive quantity or price; cross-mode
        arguments in isolated mode.
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
        floors, mmrs, cums = tier_arrays(inst.tiers_at(timestamp), tiers)
        adjusted = np.array([adjust(m) for m in mmrs])
        price = liquidation_price_tiered(inv, rules.mm_on_entry, s, quantity, cs, entry_price, collateral,
                                         floors, adjusted, cums, other_maintenance_margin, other_unrealized_pnl)
    return None if math.isnan(price) else price


def tier_arrays(table, tiers: Iterable[tuple[float, float]] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(floors, maintenance rates, cumulative amounts)`` of the venue's dated ``table``, or of a
    user-given ``tiers`` list of ``(notional floor, rate)`` pairs (it must start at a floor of 0;
    the cumulative amounts follow the table's rule: continuous, or 0 on "step" venues)."""
    if tiers is None:
        return table.floors_array, table.mmrs_array, table.cums_array
    pairs = sorted(tiers)
    floors = np.array([f for f, _ in pairs], dtype=float)
    mmrs = np.array([r for _, r in pairs], dtype=float)
    if floors.shape[0] == 0 or floors[0] != 0.0:
        raise DeleverageError(f"tiers must start with a floor of 0, got {pairs}")
    cums = np.zeros(floors.shape[0]) if table.cum_rule == "step" else cumulative_amounts(floors, mmrs)
    return floors, mmrs, cums

def bankruptcy(venue: str, side: str | int, entry_price: float, quantity: float, collateral: float,
               *, symbol: str | None = None, other_maintenance_margin: float = 0.0,
               other_unrealized_pnl: float = 0.0, contract_size: float | None = None,
               inverse: bool | None = None) -> float | None:
    """Bankruptcy price (margin balance zero) of one position; None where none exists.

    Same arguments and units as :func:`liquidation_price`. In cross mode the other positions'
    maintenance margin is not consumable, so it is deducted from the collateral.
    """
    inst = get_instrument(venue, symbol)
    if quantity <= 0 or entry_price <= 0:
        raise DeleverageError(f"quantity and entry_price must be positive, got {quantity} and {entry_price}")
    inv = inst.inverse if inverse is None else inverse
    cs = inst.contract_size if contract_size is None else contract_size
    price = bankruptcy_price(inv, parse_side(side), quantity, cs, entry_price,
                             collateral, other_maintenance_margin, other_unrealized_pnl)
    return None if math.isnan(price) else price
