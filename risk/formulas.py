"""Scalar margin, liquidation, funding and fee formulas: the one place each formula lives.

Every function here takes and returns plain floats, ints and bools (tier tables as 1-D
numpy float arrays), uses only ``math``-level operations and no Python objects, so the
compiled fast engine can wrap the very same functions with ``numba.njit`` instead of keeping
a second copy. "Cannot be liquidated" is NaN here; the friendly API in
:mod:`risk.liquidation` turns it into ``None``.

Glossary (units)
----------------
=================  ===========================================================================
``inverse``        False: linear (USDT-margined) contract, PnL and margin in the quote
                   currency. True: inverse (coin-margined), PnL and margin in the coin.
``side``           +1 long, -1 short.
``qty``            position size, always >= 0: base units for linear contracts, number of
                   contracts for inverse ones.
``cs``             contract size: base units per contract for linear (1.0 when ``qty`` is in
                   base units), quote (USD) per contract for inverse (BitMEX XBTUSD: 1 USD).
``entry``          average entry price (quote per base). Inverse averages are harmonic.
``wallet``         collateral backing the position, in settle currency: the isolated
                   margin (isolated mode) or the account's wallet balance (cross mode).
``other_mm``       cross mode: maintenance margin of all *other* positions (settle ccy).
``other_upnl``     cross mode: unrealized PnL of all other positions (settle ccy).
``mmr``, ``cum``   maintenance-margin rate (fraction) and maintenance amount (settle ccy)
                   of the bracket: MM = notional * mmr - cum.
``mm_on_entry``    False: maintenance margin is valued at the mark price (Binance, OKX,
                   Hyperliquid). True: valued at the entry price (BitMEX, Bybit).
=================  ===========================================================================

Notional ("position value") is in the settle currency: ``qty*cs*price`` for linear,
``qty*cs/price`` for inverse.
"""

from __future__ import annotations

import math
import types
from typing import Any, Callable

import numpy as np

NAN = math.nan


# --- value and PnL ---------------------------------------------------------------------------

def notional(inverse: bool, qty: float, cs: float, price: float) -> float:
    """Position value in settle currency: ``|qty|*cs*price`` (linear) or ``|qty|*cs/price`` (inverse)."""
    if inverse:
        return abs(qty) * cs / price
    return abs(qty) * cs * price


def unrealized_pnl(inverse: bool, signed_qty: float, cs: float, entry: float, price: float) -> float:
    """PnL of ``signed_qty`` (positive long) opened at ``entry`` and valued at ``price``.

    Linear: ``q*cs*(price - entry)`` in quote. Inverse: ``q*cs*(1/entry - 1/price)`` in coin.
    """
    if signed_qty == 0.0:
        return 0.0
    if inverse:
        return signed_qty * cs * (1.0 / entry - 1.0 / price)
    return signed_qty * cs * (price - entry)


def average_entry(inverse: bool, qty_a: float, price_a: float, qty_b: float, price_b: float) -> float:
    """Average entry of two same-side lots: arithmetic (linear) or harmonic (inverse), qty-weighted."""
    total = qty_a + qty_b
    if inverse:
        return total / (qty_a / price_a + qty_b / price_b)
    return (qty_a * price_a + qty_b * price_b) / total


# --- margin ----------------------------------------------------------------------------------

def initial_margin(notional_value: float, leverage: float) -> float:
    """Initial margin = notional / leverage (settle currency)."""
    return notional_value / leverage


def maintenance_margin(notional_value: float, mmr: float, cum: float) -> float:
    """Maintenance margin of a bracket: ``notional*mmr - cum`` (settle currency)."""
    return notional_value * mmr - cum


def margin_ratio(maint_margin: float, margin_balance: float) -> float:
    """Binance's margin ratio = maintenance margin / margin balance; liquidation at >= 1.

    Returns +inf when the margin balance is zero or negative.
    """
    if margin_balance <= 0.0:
        return math.inf
    return maint_margin / margin_balance


def tier_index(notional_value: float, floors: np.ndarray) -> int:
    """Index of the bracket whose ``(floor, next floor]`` holds ``notional_value``.

    ``floors`` ascend from ``floors[0] == 0``. A value exactly on a floor belongs to the bracket
    *below* it, as the venues publish their brackets ("50,000 < Position <= 250,000": Binance;
    "Limit: 2,000,000": Bybit; BitMEX's 200 XBT base risk limit includes 200 XBT).
    """
    i = 0
    n = floors.shape[0]
    while i + 1 < n and notional_value > floors[i + 1]:
        i += 1
    return i


def cumulative_amounts(floors: np.ndarray, mmrs: np.ndarray) -> np.ndarray:
    """Maintenance amounts of a bracket table: ``cum_n = floor_n*(mmr_n - mmr_{n-1}) + cum_{n-1}``, ``cum_0 = 0``.

    This is Binance's definition (FAQ "How to Calculate Liquidation Price of USDⓈ-M Futures
    Contracts"); it makes MM continuous across bracket floors.
    """
    cums = np.zeros(floors.shape[0])
    for i in range(1, floors.shape[0]):
        cums[i] = floors[i] * (mmrs[i] - mmrs[i - 1]) + cums[i - 1]
    return cums


# --- liquidation and bankruptcy prices -------------------------------------------------------

def liquidation_price_bracket(
    inverse: bool, mm_on_entry: bool, side: int, qty: float, cs: float, entry: float,
    wallet: float, mmr: float, cum: float, other_mm: float, other_upnl: float,
) -> float:
    """Price at which margin balance equals maintenance margin, for one bracket (mmr, cum).

    Solves ``wallet - other_mm + other_upnl + upnl(P) = MM(P)`` for P (derivations in
    ../shared/research/mechanics.md section 1):

    - linear, MM at mark (Binance USDⓈ-M one-way):
      ``P = (W - TMM1 + UPNL1 + cum - s*Q*E) / (Q*mmr - s*Q)``
    - inverse, MM at mark (Binance COIN-M):
      ``P = N*CS*(mmr + s) / (W - TMM1 + UPNL1 + cum + s*N*CS/E)``
    - linear, MM at entry (Bybit): ``P = E - (W' - MM_E)/(s*Q)``
    - inverse, MM at entry (BitMEX, Bybit inverse): ``P = s*N*CS / (W' + s*N*CS/E - MM_E)``

    with ``W' = W - TMM1 + UPNL1`` and ``MM_E`` the maintenance margin valued at entry.
    Returns NaN when no positive finite price exists (the position cannot be liquidated).
    """
    if qty <= 0.0:
        return NAN
    w = wallet - other_mm + other_upnl
    q = qty * cs
    s = float(side)
    if mm_on_entry:
        if inverse:
            mm_e = q / entry * mmr - cum
            denom = w + s * q / entry - mm_e
            if denom == 0.0:
                return NAN
            price = s * q / denom
        else:
            mm_e = q * entry * mmr - cum
            price = entry - (w - mm_e) / (s * q)
    else:
        if inverse:
            denom = w + cum + s * q / entry
            if denom == 0.0:
                return NAN
            price = q * (mmr + s) / denom
        else:
            denom = q * mmr - s * q
            if denom == 0.0:
                return NAN
            price = (w + cum - s * q * entry) / denom
    if not (price > 0.0) or math.isinf(price):
        return NAN
    return price


def liquidation_price_tiered(
    inverse: bool, mm_on_entry: bool, side: int, qty: float, cs: float, entry: float,
    wallet: float, floors: np.ndarray, mmrs: np.ndarray, cums: np.ndarray,
    other_mm: float, other_upnl: float,
) -> float:
    """Liquidation price with a bracket table: the bracket must hold the notional at that price.

    Binance: "if the notional at the liquidation price falls in a different bracket than at
    entry, recompute with that bracket's (mmr, cum)". For MM valued at entry the bracket is
    fixed by the entry notional. For MM at mark, each bracket's candidate price is tried from
    the entry bracket outwards and the first self-consistent one is returned. Because ``cum``
    makes MM continuous across floors, at most one bracket is consistent for a given side.
    """
    if mm_on_entry:
        i = tier_index(notional(inverse, qty, cs, entry), floors)
        return liquidation_price_bracket(inverse, True, side, qty, cs, entry, wallet,
                                         mmrs[i], cums[i], other_mm, other_upnl)
    n = floors.shape[0]
    start = tier_index(notional(inverse, qty, cs, entry), floors)
    # search the entry bracket first, then the neighbours at growing distance
    for k in range(2 * n):
        d = (k + 1) // 2
        i = start + d if k % 2 == 1 else start - d
        if k == 0:
            i = start
        if i < 0 or i >= n:
            continue
        price = liquidation_price_bracket(inverse, False, side, qty, cs, entry, wallet,
                                          mmrs[i], cums[i], other_mm, other_upnl)
        if math.isnan(price):
            continue
        value = notional(inverse, qty, cs, price)
        upper = floors[i + 1] if i + 1 < n else math.inf
        if (i == 0 or value > floors[i]) and value <= upper:
            return price
    # no self-consistent bracket: fall back to the entry bracket (documented edge case)
    return liquidation_price_bracket(inverse, False, side, qty, cs, entry, wallet,
                                     mmrs[start], cums[start], other_mm, other_upnl)


def bankruptcy_price(
    inverse: bool, side: int, qty: float, cs: float, entry: float, wallet: float,
    other_mm: float, other_upnl: float,
) -> float:
    """Price at which margin balance is zero: the position has lost all its collateral.

    Linear: ``E - W'/(s*Q)``. Inverse: ``s*N*CS / (W' + s*N*CS/E)``. ``W' = W - TMM1 + UPNL1``
    (in cross mode the other positions' maintenance margin is not consumable). NaN when no
    positive finite price exists.
    """
    if qty <= 0.0:
        return NAN
    w = wallet - other_mm + other_upnl
    q = qty * cs
    s = float(side)
    if inverse:
        denom = w + s * q / entry
        if denom == 0.0:
            return NAN
        price = s * q / denom
    else:
        price = entry - w / (s * q)
    if not (price > 0.0) or math.isinf(price):
        return NAN
    return price


def is_breached(side: int, liq_price: float, bar_low: float, bar_high: float) -> bool:
    """True when the bar's adverse extreme reaches the liquidation price (low for a long, high for a short)."""
    if math.isnan(liq_price):
        return False
    if side > 0:
        return bar_low <= liq_price
    return bar_high >= liq_price


# --- funding and fees ------------------------------------------------------------------------

def next_funding_time(t_days: float, hours: np.ndarray) -> float:
    """The first funding time at or after ``t_days``.

    ``t_days`` counts days from a UTC midnight (backtrader's date numbers do); ``hours`` are the
    venue's settlement hours of the UTC day, ascending (Binance 0, 8, 16; BitMEX 4, 12, 20;
    Hyperliquid every hour).
    """
    day = float(math.floor(t_days))
    for extra in range(2):
        for k in range(hours.shape[0]):
            t = day + extra + hours[k] / 24.0
            if t >= t_days - 1e-9:
                return t
    return day + 1.0 + hours[0] / 24.0


def funding_schedule(t_days: np.ndarray, hours: np.ndarray, rate: float) -> np.ndarray:
    """A constant funding ``rate`` placed on bars: the rate at the first bar at or after each
    settlement time (bars labelled by their open, ``t_days`` as in :func:`next_funding_time`),
    NaN elsewhere. A bar that opens exactly at a settlement time holds it."""
    out = np.empty(t_days.shape[0])
    nxt = -math.inf
    for i in range(t_days.shape[0]):
        d = t_days[i]
        out[i] = NAN
        if nxt == -math.inf:
            nxt = next_funding_time(d, hours)
        if d < nxt - 1e-9:
            continue
        nxt = next_funding_time(d + 1.0 / 86400.0, hours)  # the settlement after this one
        out[i] = rate
    return out


def funding_payment(inverse: bool, signed_qty: float, cs: float, price: float, rate: float) -> float:
    """Cash flow *to the position holder* at a funding settlement, in settle currency.

    One sign convention everywhere: a positive ``rate`` means longs pay shorts, so a long
    with a positive rate receives a negative amount. ``price`` is the venue's funding price
    (mark on Binance/BitMEX, oracle on Hyperliquid). Linear: ``-q*cs*price*rate``; inverse:
    ``-q*cs/price*rate`` (BitMEX: "position value in XBT times the funding rate").
    """
    if inverse:
        return -signed_qty * cs / price * rate
    return -signed_qty * cs * price * rate


def trade_fee(notional_value: float, rate: float) -> float:
    """Fee charged on a fill: ``notional * rate`` (settle currency; a negative rate is a maker rebate)."""
    return notional_value * rate


# --- venue policy pieces (scalar, so the compiled engine shares them) ------------------------

def effective_mmr(mmr: float, adds_taker_fee: bool, taker_fee: float, adds_funding: bool,
                  side: int, next_funding_rate: float) -> float:
    """Maintenance rate the venue actually enforces.

    BitMEX: ``MM = base MM + exit taker fee + funding rate`` (the funding term only when it is a
    cost to the position: ``side*rate > 0``). OKX: the margin ratio counts the taker-rate
    liquidation fee on top of MM. Other venues: the bracket rate as is.
    """
    rate = mmr
    if adds_taker_fee:
        rate += taker_fee
    if adds_funding:
        cost = side * next_funding_rate
        if cost > 0.0:
            rate += cost
    return rate


def liquidation_exit_price(side: int, liq_price: float, trigger_open: float) -> float:
    """The market price a triggered liquidation closes at: the liquidation price, or the trigger
    series' open when the bar gapped through it (a long: ``trigger_open < liq_price``; a short:
    ``trigger_open > liq_price``). Not floored at the bankruptcy price: it is where the position
    actually leaves the market, the trader's fill on the non-bankruptcy venues before that floor
    (:func:`liquidation_fill_price`) and the insurance fund's exit of a position it took over
    (:func:`liquidation_charge`). ``side`` +1 long / -1 short."""
    if side > 0 and trigger_open < liq_price:
        return trigger_open
    if side < 0 and trigger_open > liq_price:
        return trigger_open
    return liq_price


def liquidation_fill_price(fill_at_bankruptcy: bool, side: int, liq_price: float,
                           bankrupt_price: float, trigger_open: float) -> float:
    """Price at which a triggered liquidation is filled.

    Bankruptcy venues (BitMEX, Bybit) take the position over at the bankruptcy price. The
    others close at the liquidation price, or at the trigger series' open when the bar gapped
    through it; never beyond the bankruptcy price (past it the insurance fund absorbs the loss,
    so the trader's loss is capped at the position's collateral).
    """
    if fill_at_bankruptcy or math.isnan(liq_price):
        return bankrupt_price
    price = liquidation_exit_price(side, liq_price, trigger_open)
    if not math.isnan(bankrupt_price):
        if side > 0 and price < bankrupt_price:
            price = bankrupt_price
        elif side < 0 and price > bankrupt_price:
            price = bankrupt_price
    return price


def liquidation_fill(fill_at_bankruptcy: bool, side: int, liq_price: float, bankrupt_price: float,
                     trigger_open: float, margin: float) -> tuple[float, bool]:
    """``(fill price, insolvent)`` of a triggered liquidation: :func:`liquidation_fill_price`,
    except for a position that is already bankrupt at the bar's open with no margin left behind it
    (``margin``, the collateral or the cross wallet backing it less the other positions'
    maintenance margin plus their uPnL, is <= 0: a funding payment larger than the margin took it
    all). Its bankruptcy price then lies beyond the entry on the profit side (or does not exist),
    so filling there would be a price far outside the market (a long "sold" at 5x the price) and a
    fictitious profit. The venue closes such a position at the market, the trigger series' open
    (``insolvent`` True), and its insurance fund covers the shortfall
    (:func:`liquidation_charge`). ``side`` +1 long / -1 short."""
    if margin <= 0.0:
        bankrupt_now = (bankrupt_price != bankrupt_price or (side > 0 and bankrupt_price >= trigger_open)
                        or (side < 0 and bankrupt_price <= trigger_open))
        if bankrupt_now:
            return trigger_open, True
    return liquidation_fill_price(fill_at_bankruptcy, side, liq_price, bankrupt_price, trigger_open), False


def liquidation_charge(fill_at_bankruptcy: bool, inverse: bool, side: int, qty: float, cs: float, fill: float,
                       liq_price: float, trigger_open: float, fee_rate: float, margin_left: float,
                       insolvent: bool) -> tuple[float, float]:
    """``(fee charged to the account, the insurance fund's result)`` of a liquidation filled by
    :func:`liquidation_fill` at ``fill`` (``trigger_open``: the trigger series' open of the bar).

    Solvent: the fee is :func:`liquidation_clearance`'s (the capped clearance fee; none on BitMEX
    and Bybit), and the fund's result is that fee plus ``uPnL(fill -> exit)`` of the closed
    quantity, ``exit`` the market price the position leaves at, :func:`liquidation_exit_price`
    (the liquidation price, or the trigger open when the bar gapped through it). The fund takes
    over what the trader's fill did not close at the market: on BitMEX/Bybit the whole position
    at the bankruptcy price ("fills better than bankruptcy go to the insurance fund; if it cannot
    fill at bankruptcy it spends the fund to aggress the book", bitmex.com/app/liquidation), on
    Binance/OKX/Hyperliquid the position past the bankruptcy price where the trader's fill is
    floored (Binance FAQ "Insurance Fund" 360033525371: it takes over bankrupt positions, "losses
    funded by the fund, profits credited to it"). So: no gap, ``exit`` is the liquidation price
    (BitMEX/Bybit: the margin between the liquidation and bankruptcy prices, the others: just the
    fee); a gap on BitMEX/Bybit: ``uPnL(bankruptcy -> open)``, smaller, negative past
    bankruptcy; a gap past bankruptcy elsewhere: fee + ``uPnL(bankruptcy -> open)`` < 0; a gap
    not past it elsewhere: the fee (the trader filled at the open). Without a liquidation price
    (NaN) the fund's result is :func:`liquidation_clearance`'s. The trader's side (the fee) never
    depends on the exit.

    ``insolvent`` (closed at the market with ``margin_left < 0`` after the close): no clearance fee
    and the insurance fund's cover of the shortfall, both values ``margin_left`` (negative: the fund
    pays the account back to zero margin; Binance liquidation protocol: "if the account goes
    negative, the fund tops it back to zero"; BitMEX/Bybit: the fund takes the bankrupt position's
    loss). The engines book a negative charge as the fund's cover, ``-charge`` credited to the
    account (the liquidation event's ``insurance_cover``, the summary's ``insurance_cover_total``),
    not as a fee: the fee of that liquidation is 0 and ``fees_total`` never includes the cover."""
    if insolvent:
        cover = margin_left if margin_left < 0.0 else 0.0
        return cover, cover
    fee, to_fund = liquidation_clearance(fill_at_bankruptcy, inverse, side, qty, cs, fill, liq_price, fee_rate,
                                         margin_left)
    if liq_price != liq_price:
        return fee, to_fund
    exit_price = liquidation_exit_price(side, liq_price, trigger_open)
    return fee, fee + unrealized_pnl(inverse, side * qty, cs, fill, exit_price)


BACKSTOP_MM_FRACTION = 2.0 / 3.0
"""Hyperliquid's backstop level: account equity below this fraction of the maintenance margin, the
book liquidation not having succeeded -> the liquidator vault takes the position and its margin
(hyperliquid.gitbook.io/hyperliquid-docs/trading/liquidations; research mechanics.md 1.6). Used by
:func:`backstop_charge` and :mod:`risk.partial` (no 20 % slice past it)."""


def backstop_charge(takes_margin: bool, side: int, liq_price: float, trigger_open: float, fill: float,
                    margin_left: float, mm: float, fee: float, to_fund: float,
                    insolvent: bool) -> tuple[float, float]:
    """``(fee, insurance fund's result)`` of a liquidation after the venue's backstop: the values of
    :func:`liquidation_charge` (``fee``, ``to_fund``), or, when the backstop liquidator takes the
    position over, the whole margin left charged to the account and paid to the fund.

    Hyperliquid (``VenueRules.backstop_takes_margin``; ``takes_margin``: an isolated position, or a
    cross account's only position, whose margin is the cross margin):
    "If the account equity drops below 2/3 of the maintenance margin without successful
    liquidation through the order book, the backstop liquidator vault takes over: the position and
    its margin are transferred to the liquidator; the maintenance margin is not returned" (HL docs,
    trading/liquidations; research mechanics.md 1.6). At bar resolution the book liquidation
    succeeds when the bar reaches the liquidation price (no gap: filled there, equity = MM, the
    margin left is returned). It fails when the trigger series OPENS past the liquidation price
    (a gap: ``fill`` is the trigger open, the book never traded in between) and the equity there,
    ``margin_left`` (the isolated margin, or the cross account's equity, left after the close at
    ``fill``), is below ``BACKSTOP_MM_FRACTION`` x ``mm`` (the position's maintenance margin at
    ``fill``): then the charge is the whole margin left, booked like a clearance fee to the fund
    (``to_fund`` grows by what the fee grows), and the isolated position, or the cross account, ends
    with 0. A gap past the bankruptcy price leaves no margin (the fill is floored there): nothing
    more to take. A cross account holding other cross positions, all of which HL transfers, is
    judged as an account (``takes_margin`` False here; :func:`risk.account.account_backstop`)."""
    if not takes_margin or insolvent or liq_price != liq_price or fill != trigger_open:
        return fee, to_fund
    if liquidation_exit_price(side, liq_price, trigger_open) == liq_price:
        return fee, to_fund  # no gap: the book liquidation at the liquidation price succeeded
    if not margin_left < BACKSTOP_MM_FRACTION * mm:
        return fee, to_fund
    left = margin_left if margin_left > 0.0 else 0.0
    if left <= fee:
        return fee, to_fund
    return left, to_fund + (left - fee)


def fill_beyond_bankruptcy(isolated: bool, side: int, bankrupt_price: float, fill_price: float) -> bool:
    """True when closing an isolated position at ``fill_price`` would lose more than its margin
    (the price is beyond the bankruptcy price, ``side`` +1 long / -1 short). The engines then let
    the liquidation take the position instead of a market order at that price: an isolated
    position never loses more than its posted margin (the loss past bankruptcy is the insurance
    fund's). Cross positions are backed by the whole wallet: always False."""
    if not isolated or bankrupt_price != bankrupt_price:
        return False
    if side > 0:
        return fill_price < bankrupt_price
    return fill_price > bankrupt_price

def liquidation_clearance(fill_at_bankruptcy: bool, inverse: bool, side: int, qty: float, cs: float,
                          fill: float, liq_price: float, fee_rate: float,
                          margin_left: float) -> tuple[float, float]:
    """Clearance of a liquidated position: ``(fee charged to the account, paid to the insurance fund)``.

    Bankruptcy venues (BitMEX, Bybit) charge no fee: the engine takes the position over at the
    bankruptcy price and the margin between the liquidation and bankruptcy prices,
    ``uPnL(fill -> liq_price)`` of the closed quantity, is the insurance fund's when it closes the
    position at the liquidation price (no gap; the engines book the fund by
    :func:`liquidation_charge`, which closes it at the open when the bar gapped). The other
    venues (Binance, OKX, Hyperliquid) charge the clearance fee ``notional(fill) * fee_rate``
    but never more than the margin left after the close (``margin_left``: the isolated
    position's collateral plus its realised PnL; in cross mode the cross pool of the whole
    account after the close), so a liquidation never leaves the account below zero. Source:
    Binance liquidation protocol (FAQ 360033525271; "if the account goes negative, the fund
    tops it back to zero"); whether the fee itself is capped at the remaining margin is not
    published: we assume it is (the account floors at 0). Settle currency, >= 0.
    """
    if fill_at_bankruptcy:
        if liq_price == liq_price:
            return 0.0, unrealized_pnl(inverse, side * qty, cs, fill, liq_price)
        return 0.0, 0.0
    fee = trade_fee(notional(inverse, qty, cs, fill), fee_rate)
    left = margin_left if margin_left > 0.0 else 0.0
    if fee > left:
        fee = left
    return fee, fee


# --- compiling the kernels -------------------------------------------------------------------

KERNELS: tuple[str, ...] = (
    "notional", "unrealized_pnl", "average_entry", "initial_margin", "maintenance_margin",
    "margin_ratio", "tier_index", "cumulative_amounts", "liquidation_price_bracket",
    "liquidation_price_tiered", "bankruptcy_price", "is_breached", "funding_payment", "trade_fee",
    "effective_mmr", "liquidation_fill_price", "fill_beyond_bankruptcy", "liquidation_clearance", "next_funding_time",
    "liquidation_fill", "liquidation_charge", "liquidation_exit_price", "backstop_charge",
    "funding_schedule",
)
"""Names of the scalar kernels above: every one compiles with ``numba.njit`` (tested)."""


def clone_into(namespace: dict[str, Any], modules_kernels: list[tuple[dict[str, Any], tuple[str, ...]]],
               jit: Callable[[Callable[..., Any]], Any]) -> dict[str, Any]:
    """Compile the kernels ``names`` of each ``(module globals, names)`` with ``jit``, every one
    re-created over the one shared ``namespace``, which then maps each name to its compiled
    version (so compiled kernels call compiled kernels); return ``{name: compiled}``. The
    module pieces of :mod:`risk` (:mod:`risk.path`, :mod:`risk.partial`, :mod:`risk.adl`)
    compile through it too."""
    compiled: dict[str, Any] = {}
    for module_globals, names in modules_kernels:
        for name in names:
            fn = module_globals[name]
            clone = types.FunctionType(fn.__code__, namespace, name, fn.__defaults__, fn.__closure__)
            clone.__doc__ = fn.__doc__
            compiled[name] = jit(clone)
    namespace.update(compiled)
    return compiled


def jit_kernels(jit: Callable[[Callable[..., Any]], Any]) -> dict[str, Any]:
    """Compile every kernel with ``jit`` (e.g. ``numba.njit``); return ``{name: compiled}``.

    Wrapping a kernel that calls another kernel (``liquidation_price_tiered`` calls
    ``tier_index``, ``notional`` and ``liquidation_price_bracket``) with ``numba.njit`` on its
    own fails: numba cannot type a plain Python function found in the globals. Here each
    kernel is re-created over one shared globals namespace in which every kernel name is
    replaced by its compiled version (:func:`clone_into`), so compiled kernels call compiled
    kernels. The Python functions of this module are left untouched. Compilation happens
    lazily at first call.
    """
    return clone_into(dict(globals()), [(globals(), KERNELS)], jit)
