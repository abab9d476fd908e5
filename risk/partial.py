"""Partial liquidation per venue: what a venue closes *before* a full liquidation.

Every venue we model tries to keep part of a large position alive when it enters liquidation;
small positions are closed whole. One scalar kernel, :func:`partial_liquidation_step`, applies
the venue's rule to one position at one price and says what was closed, what it cost, what is
left and whether the venue's full liquidation of the rest follows. The rule is data
(:data:`PARTIAL_RULES`), so the engines never branch on venue names. The kernels use only
``math``-level operations, plain scalars and 1-D float arrays, so the fast engine compiles the
same functions with ``numba.njit`` (:func:`jit_kernels`, tested in
``tests/risk/test_partial_numba_parity.py``).

Units and signs are those of :mod:`risk.formulas` (``side`` +1 long / -1 short, ``qty`` >= 0
in base units or contracts, money in the settle currency). ``wallet`` is the collateral backing
the position: the isolated margin, or the cross wallet balance with ``other_mm`` and
``other_upnl`` of the other positions (the margin balance is
``wallet - other_mm + other_upnl + upnl``, exactly as in the liquidation-price formulas).

The liquidation order of the partial step fills at ``price`` (the mark that triggered it; at
bar resolution the engines pass the price they liquidate at). Its fee is
``notional(price) * fee_rate``. Realized PnL of the closed part goes into ``wallet``; the
result's ``wallet_after = wallet + realized_pnl - fee``, so the account's equity at ``price``
drops by exactly the fee (money is conserved; tested).

Rules (sources and assumptions are listed per venue in :data:`PARTIAL_RULES` and in
``docs/venue-mechanics.md``):

``RULE_WHOLE`` (0)
    No partial step: when the position is in liquidation the venue's full liquidation follows.
``RULE_RESTORE`` (1), Binance
    "The system will first cancel all open orders, then attempt to reduce the user's margin
    limit with one large Immediate or Cancel order without fully liquidating the user. If the
    user is margin compliant after calculating the realized losses and liquidation fee
    deductions, the liquidation will stop." The size of that order is **not published**; we
    assume the smallest close (rounded up to the lot) after which the position is margin
    compliant, with the clearance fee charged on the closed part. When the clearance rate is
    above the maintenance rate (small positions), no partial close can restore margin, and the
    position is liquidated whole: Binance says the same ("for smaller users, the effective
    maintenance margin is lower than the liquidation fee rate, so they are already bankrupt").
``RULE_STEP_DOWN`` (2), BitMEX and Bybit
    On the lowest risk-limit tier the position is taken over whole. Above it, a Fill-or-Kill
    order "of a size to bring the position value below a lower tier Risk Limit" (BitMEX) /
    "of the difference between the current position value and the lower margin tier value
    which satisfies the margin requirement" (Bybit) is sent; if the position is still in
    liquidation the rest is taken over at the bankruptcy price. We take the highest lower tier
    whose limit satisfies the margin requirement (the smallest FOK); when none does, no FOK is
    sent and the whole position is taken over (**assumption**: the venues do not say whether a
    FOK that cannot restore margin is still sent). The FOK pays ``fee_rate`` (the taker fee;
    **assumption**, not stated by either venue). The user-selected risk limit above the one
    the position needs (BitMEX's first step, "reduce the risk limit to the associated summed
    position tier") does not exist here: the tier is always the one the position value needs.
``RULE_TIER_STEPS`` (3), OKX
    From tier ``min_tier`` (0-based; OKX: "Level 3 or higher" = index 2) when the margin
    balance is below the current tier's requirement but above the lowest tier's, "the system
    calculates the number of contracts needed to reduce the position by two tiers" and closes
    them; if still short, it repeats; at tiers 1-2, or below the lowest tier's requirement,
    the position is liquidated whole. ``tiers_per_step`` = 2 (OKX coin-margined swap rules,
    relayed; OKX's margin-trading rules say one tier, a parameter here).
``RULE_FRACTION`` (4), Hyperliquid
    "For liquidatable positions larger than 100k USDC, only 20 % of the position will be sent
    as a market liquidation order to the book. After a block where any position of a user is
    partially liquidated, there is a cooldown period of 30 seconds. During this cooldown
    period, all market liquidation orders for that user will be for the entire position."
    ``cooldown_active`` says whether the user is inside that window (then the whole position
    goes). The community wiki (and this project's issue) read it as "the rest after 30 s if
    still below maintenance"; at 1-minute bars both readings close the rest inside the same
    bar, they differ only in the price of the second order.
    The backstop: when the account equity is below 2/3 of the maintenance margin and the book
    liquidation has not succeeded, the liquidator vault (part of HLP) takes the whole position and
    its margin (HL docs, liquidations: :data:`HL_LIQ`; community wiki :data:`HL_WIKI`). The slice fills at
    ``price`` (the bar's adverse extreme); when the account's equity there,
    ``margin balance + other_mm``, is below ``BACKSTOP_MM_FRACTION`` (2/3) of its maintenance
    margin, ``mm + other_mm``, no slice is sent and the whole position goes to the full
    liquidation (``full_follows``, nothing closed partially). That covers every slice that would
    fill past the bankruptcy price of an isolated position or of the cross account (equity < 0):
    it would realize more than the margin, leave the rest with negative collateral (its new
    bankruptcy price beyond the bar's open) and the account below zero. The whole position is
    then liquidated by the engines' rule (liquidation price, or the open on a gap, never past
    bankruptcy), as with partial liquidation off; when the bar opened past the backstop level
    (equity at the open below 2/3 of MM) the vault keeps the margin left of an isolated position
    or a single-symbol cross account (:func:`risk.formulas.backstop_charge`: "the position and its
    margin are transferred to the liquidator; the maintenance margin is not returned", HL docs,
    liquidations; research mechanics.md 1.6); a cross account with several positions opening below
    that level goes to the vault whole, before any slice (:func:`risk.account.account_backstop`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from risk import formulas
from risk.errors import DeleverageError
from risk.formulas import BACKSTOP_MM_FRACTION, notional, tier_index, unrealized_pnl
from risk.liquidation import tier_arrays

RULE_WHOLE = 0
RULE_RESTORE = 1
RULE_STEP_DOWN = 2
RULE_TIER_STEPS = 3
RULE_FRACTION = 4

_EPS = 1e-9


# --- kernels ---------------------------------------------------------------------------------

def margin_balance(inverse: bool, side: int, qty: float, cs: float, entry: float, price: float,
                   wallet: float, other_mm: float, other_upnl: float) -> float:
    """Margin balance backing the position at ``price``: ``wallet - other_mm + other_upnl + upnl`` (settle ccy)."""
    return wallet - other_mm + other_upnl + unrealized_pnl(inverse, side * qty, cs, entry, price)


def position_maintenance(inverse: bool, mm_on_entry: bool, qty: float, cs: float, entry: float,
                         price: float, floors: np.ndarray, mmrs: np.ndarray, cums: np.ndarray) -> float:
    """Maintenance margin of the position: ``value*mmr_i - cum_i`` of the tier holding its value.

    The value is taken at the entry price for ``mm_on_entry`` venues (BitMEX, Bybit), at
    ``price`` otherwise, as in :func:`risk.formulas.liquidation_price_tiered`.
    """
    ref = entry if mm_on_entry else price
    value = notional(inverse, qty, cs, ref)
    i = tier_index(value, floors)
    return value * mmrs[i] - cums[i]


def position_tier(inverse: bool, mm_on_entry: bool, qty: float, cs: float, entry: float,
                  price: float, floors: np.ndarray) -> int:
    """Index of the tier (risk limit) that holds the position's value (see :func:`position_maintenance`)."""
    ref = entry if mm_on_entry else price
    return tier_index(notional(inverse, qty, cs, ref), floors)


def lot_ceil(qty: float, lot: float) -> float:
    """``qty`` rounded up to a multiple of ``lot`` (``lot`` <= 0: unchanged); float noise below 1e-9 lot ignored."""
    if lot <= 0.0:
        return qty
    return math.ceil(qty / lot - _EPS) * lot


def lot_floor(qty: float, lot: float) -> float:
    """``qty`` rounded down to a multiple of ``lot`` (``lot`` <= 0: unchanged)."""
    if lot <= 0.0:
        return qty
    return math.floor(qty / lot + _EPS) * lot


def partial_liquidation_step(
    rule: int, inverse: bool, mm_on_entry: bool, side: int, qty: float, cs: float, entry: float,
    wallet: float, price: float, floors: np.ndarray, mmrs: np.ndarray, cums: np.ndarray,
    other_mm: float, other_upnl: float, fee_rate: float, lot: float, min_tier: int,
    tiers_per_step: int, fraction: float, threshold: float, cooldown_active: bool,
) -> tuple[float, float, float, float, float, int, bool, bool]:
    """Apply the venue's partial-liquidation rule to one position at ``price``.

    ``mmrs`` are the rates the venue enforces (already including BitMEX's taker fee and
    funding, OKX's liquidation fee: :func:`risk.formulas.effective_mmr`), ``cums`` the
    maintenance amounts, ``fee_rate`` the fee rate of the partial close, ``lot`` the quantity
    step (a closed quantity is a whole number of lots). ``min_tier``/``tiers_per_step`` are
    OKX's, ``fraction``/``threshold``/``cooldown_active`` Hyperliquid's; other rules ignore
    them.

    Returns ``(closed_qty, fee, realized_pnl, remaining_qty, wallet_after, tier_after,
    full_follows, in_liquidation)``: ``closed_qty`` filled at ``price`` (0 when the rule closes
    nothing partially), its fee and realized PnL (settle ccy), what is left, the collateral
    after (``wallet + realized_pnl - fee``), the tier of what is left, whether the venue's
    full liquidation of the remaining position follows (the engine then applies
    :func:`risk.formulas.liquidation_fill_price` / :func:`risk.formulas.bankruptcy_price` to
    it), and whether the position was in liquidation at all (margin balance <= maintenance).
    """
    tier0 = position_tier(inverse, mm_on_entry, qty, cs, entry, price, floors)
    if qty <= 0.0:
        return 0.0, 0.0, 0.0, qty, wallet, tier0, False, False
    mb = margin_balance(inverse, side, qty, cs, entry, price, wallet, other_mm, other_upnl)
    mm = position_maintenance(inverse, mm_on_entry, qty, cs, entry, price, floors, mmrs, cums)
    if mb > mm:
        return 0.0, 0.0, 0.0, qty, wallet, tier0, False, False
    ref = entry if mm_on_entry else price
    u = notional(inverse, 1.0, cs, ref)      # tier value per unit of qty
    uf = notional(inverse, 1.0, cs, price)   # fee notional per unit of qty
    n = floors.shape[0]
    close = qty  # qty >= this means "no partial step possible"

    if rule == RULE_RESTORE:
        # smallest q with mb - fee(q) > MM(qty - q); within tier j the slack grows with q at
        # rate u*mmr_j - uf*fee_rate, so a tier helps only if that rate is positive.
        for j in range(tier0, -1, -1):
            rate = u * mmrs[j] - uf * fee_rate
            if rate <= 0.0:
                continue
            q = (qty * u * mmrs[j] - cums[j] - mb) / rate
            if q < 0.0:
                q = 0.0
            if j + 1 < n and (qty - q) * u > floors[j + 1]:
                q = qty - floors[j + 1] / u  # the remainder must fit in tier j
            if j > 0 and (qty - q) * u <= floors[j]:
                continue  # the remainder would be in a lower tier: that tier's pass decides
            q = lot_ceil(q, lot)
            if q <= 0.0:
                q = lot if lot > 0.0 else _EPS * qty
            # compliance is strict (MB > MM): a close landing exactly on the boundary needs one lot more
            if mb - uf * q * fee_rate - ((qty - q) * u * mmrs[j] - cums[j]) <= 0.0:
                q = q + lot if lot > 0.0 else q * (1.0 + _EPS)
            if q < close:
                close = q
    elif rule == RULE_STEP_DOWN:
        for j in range(tier0 - 1, -1, -1):  # highest lower tier first: the smallest FOK
            q = lot_ceil(qty - floors[j + 1] / u, lot)
            if q <= 0.0 or q >= qty:
                continue
            rem = qty - q
            mm_rem = position_maintenance(inverse, mm_on_entry, rem, cs, entry, price, floors, mmrs, cums)
            if mb - uf * q * fee_rate > mm_rem:
                close = q
                break
    elif rule == RULE_TIER_STEPS:
        rem = qty
        fee_sum = 0.0
        mb_now = mb
        while True:
            t = position_tier(inverse, mm_on_entry, rem, cs, entry, price, floors)
            lowest = notional(inverse, rem, cs, ref) * mmrs[0] - cums[0]
            if t < min_tier or mb_now <= lowest:
                break
            target = t - tiers_per_step
            if target < 0:
                target = 0
            q = lot_ceil(rem - floors[target + 1] / u, lot)
            if q <= 0.0 or q >= rem:
                break
            rem -= q
            fee_sum += uf * q * fee_rate
            mb_now -= uf * q * fee_rate
            if mb_now > position_maintenance(inverse, mm_on_entry, rem, cs, entry, price, floors, mmrs, cums):
                break
        if rem < qty:
            close = qty - rem
    elif rule == RULE_FRACTION:
        # the backstop: the account's equity below 2/3 of its maintenance margin at the slice's
        # price (always so when equity < 0) -> no 20 % market order, the whole position goes
        backstop = mb + other_mm < BACKSTOP_MM_FRACTION * (mm + other_mm)
        if not cooldown_active and not backstop and notional(inverse, qty, cs, price) > threshold:
            q = lot_floor(qty * fraction, lot)
            if q > 0.0:
                close = q

    if close >= qty:
        return 0.0, 0.0, 0.0, qty, wallet, tier0, True, True
    rem = qty - close
    fee = uf * close * fee_rate
    pnl = unrealized_pnl(inverse, side * close, cs, entry, price)
    wallet_after = wallet + pnl - fee
    mb_after = margin_balance(inverse, side, rem, cs, entry, price, wallet_after, other_mm, other_upnl)
    mm_after = position_maintenance(inverse, mm_on_entry, rem, cs, entry, price, floors, mmrs, cums)
    tier_after = position_tier(inverse, mm_on_entry, rem, cs, entry, price, floors)
    return close, fee, pnl, rem, wallet_after, tier_after, not (mb_after > mm_after), True


KERNELS: tuple[str, ...] = (
    "margin_balance", "position_maintenance", "position_tier", "lot_ceil", "lot_floor",
    "partial_liquidation_step",
)
"""The kernels of this module (all compile with ``numba.njit``; tested)."""


def jit_kernels(jit: Callable[[Callable[..., Any]], Any]) -> dict[str, Any]:
    """Compile this module's kernels (and the :mod:`risk.formulas` kernels they call) with ``jit``."""
    namespace: dict[str, Any] = {**vars(formulas), **globals()}
    return formulas.clone_into(namespace, [(vars(formulas), formulas.KERNELS), (globals(), KERNELS)], jit)


# --- venue rules -----------------------------------------------------------------------------

@dataclass(frozen=True)
class PartialRule:
    """How one venue liquidates partially (see the module docstring for each ``rule``).

    ``fee`` names the fee rate of the partial close: ``"liquidation"`` (the instrument's
    clearance fee, Binance and OKX), ``"taker"`` (BitMEX/Bybit FOK, assumed) or ``"none"``
    (Hyperliquid: no clearance fee). ``assumptions`` lists what the venue does not publish.
    """

    venue: str
    rule: int
    fee: str
    min_tier: int = 0
    tiers_per_step: int = 1
    fraction: float = 1.0
    threshold: float = 0.0
    cooldown_s: float = 0.0
    sources: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()


BINANCE_PROTOCOL = "https://binance.zendesk.com/hc/en-us/articles/360033525271-Liquidation"
BINANCE_TRADERWAGON = "https://docs.traderwagon.com/faq/futures-trading-introduction/liquidation-protocol"
BITMEX_LIQ = "https://www.bitmex.com/app/liquidation"
BITMEX_LIQ_EXAMPLES = "https://testnet.bitmex.com/app/liquidationExamples"
BITMEX_RISK_LIMITS = "https://www.bitmex.com/app/riskLimitsExamples"
BYBIT_LIQ_USDT = "https://help.bybit.com/hc/en-us/articles/900000167723-Liquidation-Process-USDT-Contract-"
BYBIT_LIQ_INVERSE = "https://bybitglobal.com/en-US/help-center/HelpCenterKnowledge/bybitHC_Article?id=000001098&language=en_US"
OKX_PARTIAL = ("OKX 'Coin-margined perpetual contract forced partial liquidation rules' (relayed at "
               "https://www.amorrr.com/14966.html and https://365shuku.com/10258.html); OKX margin-trading "
               "'Tiered margin ratio system' (https://support.okexcn.com/hc/en-us/articles/360037209112)")
OKX_TIERS = "https://okx.huicker.com/fr-fr/help/v-tiered-maintenance-margin-ratio-rules"
HL_ANNOUNCEMENT = "https://tginsight.xyz/channel/hyperliquid_announcements/post/307"
HL_LIQ = "https://hyperliquid.gitbook.io/hyperliquid-docs/trading/liquidations"
HL_WIKI = "https://hyperliquid-co.gitbook.io/wiki/architecture/hypercore/dex/clearinghouse/liquidations"

_BINANCE = PartialRule(
    venue="binance_usdm", rule=RULE_RESTORE, fee="liquidation",
    sources=(BINANCE_TRADERWAGON, BINANCE_PROTOCOL),
    assumptions=("Size of the IOC order not published: the smallest close (in lots) that leaves the "
                 "position margin compliant after the clearance fee.",
                 "The IOC fills in full at the triggering price (bar resolution; no book depth).",
                 "Cross margin: which of several positions Binance reduces first is not published."),
)
_STEP_ASSUMPTIONS = (
    "The FOK fills at the triggering price and pays the taker fee (neither venue states the fee).",
    "When no lower tier restores margin no FOK is sent and the whole position is taken over.",
    "The risk limit is always the one the position value needs (no user-selected higher limit).",
)
PARTIAL_RULES: dict[str, PartialRule] = {
    "binance_usdm": _BINANCE,
    "binance_coinm": PartialRule(venue="binance_coinm", rule=RULE_RESTORE, fee="liquidation",
                                 sources=_BINANCE.sources, assumptions=_BINANCE.assumptions),
    "bitmex": PartialRule(venue="bitmex", rule=RULE_STEP_DOWN, fee="taker",
                          sources=(BITMEX_LIQ, BITMEX_LIQ_EXAMPLES, BITMEX_RISK_LIMITS),
                          assumptions=_STEP_ASSUMPTIONS),
    "bybit": PartialRule(venue="bybit", rule=RULE_STEP_DOWN, fee="taker",
                         sources=(BYBIT_LIQ_USDT, BYBIT_LIQ_INVERSE), assumptions=_STEP_ASSUMPTIONS),
    "okx": PartialRule(venue="okx", rule=RULE_TIER_STEPS, fee="liquidation", min_tier=2, tiers_per_step=2,
                       sources=(OKX_PARTIAL, OKX_TIERS),
                       assumptions=("OKX's own pages were read through relays; the coin-margined rule "
                                    "(two tiers per step) is applied to USDT swaps too.",
                                    "Each step fills at the triggering price and pays the taker-rate "
                                    "liquidation fee.")),
    "hyperliquid": PartialRule(venue="hyperliquid", rule=RULE_FRACTION, fee="none", fraction=0.2,
                               threshold=100_000.0, cooldown_s=30.0,
                               sources=(HL_ANNOUNCEMENT, HL_LIQ, HL_WIKI),
                               assumptions=("The 20 % slice fills at the triggering price (no book depth).",
                                            "No fee on the slice (no clearance fee; whether the market "
                                            "order pays the taker fee is not stated).",
                                            "'Larger than 100k USDC' is the notional at the mark.",
                                            "Backstop (equity below 2/3 of MM at the slice's price): no "
                                            "slice, the whole position is liquidated by the engines' rule; "
                                            "on a bar opening past that level the vault keeps the margin "
                                            "left (isolated, or a cross account's only position: "
                                            "risk.formulas.backstop_charge; several cross positions: "
                                            "risk.account.account_backstop, before any slice).")),
}
"""The partial-liquidation rule of each venue of :data:`risk.venues.VENUES`."""


@dataclass(frozen=True)
class PartialLiquidation:
    """What a venue's partial liquidation did to one position (see :func:`partial_liquidation_step`)."""

    venue: str
    in_liquidation: bool
    closed_qty: float
    price: float
    fee: float
    realized_pnl: float
    remaining_qty: float
    wallet_after: float
    tier_before: int
    tier_after: int
    full_follows: bool
    cooldown_s: float


def partial_liquidation(
    venue: str, side: str | int, entry_price: float, quantity: float, collateral: float, price: float,
    *, symbol: str | None = None, tiers: tuple[tuple[float, float], ...] | None = None,
    other_maintenance_margin: float = 0.0, other_unrealized_pnl: float = 0.0,
    taker_fee: float | None = None, funding_rate: float = 0.0, cooldown_active: bool = False,
    timestamp: float | None = None,
) -> PartialLiquidation:
    """The venue's partial liquidation of one position at ``price`` (the friendly entry point).

    Arguments as :func:`risk.liquidation_price` (``tiers`` overrides the bracket table with
    ``[(floor, rate), ...]``; maintenance amounts follow the instrument's rule), plus ``price``:
    the mark at which the liquidation is evaluated and the partial order fills.
    """
    from risk.liquidation import parse_side  # local: risk.liquidation imports risk.venues
    from risk.venues import get_instrument, venue_rules

    rules = venue_rules(venue)
    prule = PARTIAL_RULES[venue]
    s = parse_side(side)
    if quantity <= 0 or entry_price <= 0 or price <= 0:
        raise DeleverageError(f"quantity, entry_price and price must be positive, got {quantity}, {entry_price}, {price}")
    inst = get_instrument(venue, symbol)
    taker = inst.taker_fee if taker_fee is None else taker_fee
    table = inst.tiers_at(timestamp)
    floors, base, cums = tier_arrays(table, tiers)
    mmrs = np.array([formulas.effective_mmr(m, rules.mmr_adds_taker_fee, taker, rules.mmr_adds_funding, s,
                                            funding_rate) for m in base])
    fee_rate = {"liquidation": inst.liquidation_fee_rate, "taker": taker, "none": 0.0}[prule.fee]
    tier_before = position_tier(inst.inverse, rules.mm_on_entry, quantity, inst.contract_size, entry_price, price, floors)
    out = partial_liquidation_step(
        prule.rule, inst.inverse, rules.mm_on_entry, s, float(quantity), inst.contract_size, float(entry_price),
        float(collateral), float(price), floors, mmrs, cums, float(other_maintenance_margin),
        float(other_unrealized_pnl), fee_rate, inst.lot_size, prule.min_tier, prule.tiers_per_step,
        prule.fraction, prule.threshold, cooldown_active)
    closed, fee, pnl, rem, wallet_after, tier_after, full, in_liq = out
    return PartialLiquidation(venue=venue, in_liquidation=in_liq, closed_qty=closed, price=float(price), fee=fee,
                              realized_pnl=pnl, remaining_qty=rem, wallet_after=wallet_after,
                              tier_before=tier_before, tier_after=tier_after, full_follows=full,
                              cooldown_s=prule.cooldown_s if closed > 0 else 0.0)
