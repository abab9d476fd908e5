"""Auto-deleveraging (ADL): ranking scores, the venue's indicator, the exchange-level ADL engine
and the per-bar rule for one strategy position inside a venue's ADL flow.

When a liquidated position cannot be closed at its bankruptcy price, the loss beyond its
collateral (the *deficit*) is paid by the insurance fund; when the fund cannot pay it, the
venue auto-deleverages: profitable positions on the other side are closed against the
bankrupt one, in the venue's ranking order, at the venue's ADL price.

Pieces (scalar or 1-D array kernels that ``numba.njit`` compiles, :func:`jit_kernels`, plus the
friendly :func:`run_adl` over :class:`AdlPosition` records):

- ranking scores: :func:`score_binance` (Binance "LeveragePnL"), :func:`score_pnl_leverage`
  (Bybit, BitMEX, OKX: PnL % x effective leverage), :func:`score_hyperliquid`;
- the indicator: :func:`rank_quantile` (Binance "LeveragePnlQuantile" = rank / user count) and
  :func:`indicator_lights` (the 5 lights);
- the exchange-level engine: :func:`allocate` (closes the need in ranking order, ties broken
  by a key), :func:`run_adl` (insurance fund first, then ADL, or socialised loss when ADL is
  off or the other side runs out);
- the strategy-level rule: :func:`queue_step` (how much of a position at a known place in the
  queue a bar's ADL flow closes) and :func:`hit_probability` (when only its quantile bucket,
  e.g. its lights, is known); :func:`adl_close_qty` combines the rank quantile with
  :func:`queue_step`: the function the engines call per bar.

Money: :func:`run_adl` returns ``fund_paid + sum(fill.shortfall_covered) + socialised_loss ==
deficit`` exactly (a hypothesis property tests it). Sources per venue: :data:`ADL_RULES` and
``docs/venue-mechanics.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from risk import formulas
from risk.errors import DeleverageError
from risk.formulas import bankruptcy_price, notional, unrealized_pnl

# --- ranking scores --------------------------------------------------------------------------

def score_binance(upnl: float, wallet_balance: float, maint_margin: float) -> float:
    """Binance's ADL ranking "LeveragePnL" = PnL % x margin ratio.

    ``PnL % = max(0, upnl) / max(1, wallet_balance)``; ``margin ratio = MM / (wallet + upnl)``,
    0 when ``wallet + upnl <= 0`` (Binance FAQ 360033525471, formula quoted on the Binance
    developer forum, dev.binance.vision/t/17801). Non-profitable positions score 0.
    """
    pnl_pct = max(0.0, upnl) / max(1.0, wallet_balance)
    equity = wallet_balance + upnl
    ratio = 0.0 if equity <= 0.0 else maint_margin / equity
    return pnl_pct * ratio


def effective_leverage(inverse: bool, side: int, qty: float, cs: float, mark: float, bankrupt: float) -> float:
    """``|mark value| / (mark value - bankrupt value)``: notional over the equity left above bankruptcy.

    The denominator is the PnL from the bankruptcy price to the mark (settle ccy). No
    bankruptcy price (NaN: the position cannot go bankrupt, e.g. a 1x linear long whose
    bankruptcy price is 0) gives the 1x value of a fully collateralised position, exactly the
    linear long's limit; a position at or past bankruptcy gives +inf.
    """
    if math.isnan(bankrupt):
        return 1.0
    cushion = unrealized_pnl(inverse, side * qty, cs, bankrupt, mark)
    if cushion <= 0.0:
        return math.inf
    return notional(inverse, qty, cs, mark) / cushion


def score_pnl_leverage(inverse: bool, side: int, qty: float, cs: float, entry: float, mark: float,
                       bankrupt: float, divide_losses: bool) -> float:
    """Bybit / BitMEX / OKX ADL ranking: ``PnL % x effective leverage``.

    ``PnL % = (mark value - entry value) / |entry value|`` = upnl / entry notional. Bybit and
    BitMEX divide instead when PnL % < 0 (``divide_losses``: "PnL % / effective leverage (if
    loss)", bitmex.com/app/autoDeleveraging); OKX publishes one product for all
    ("leverage PnL % = position's PnL % x effective leverage", OKX ADL FAQ).
    """
    if qty <= 0.0:
        return 0.0
    # Both factors are ratios of amounts proportional to qty, so the score does not depend on the
    # size: they are computed for one unit, which keeps a tiny position (5e-324 BTC, whose
    # notional underflows to 0) from dividing by zero or ranking as infinitely leveraged.
    pnl_pct = unrealized_pnl(inverse, side * 1.0, cs, entry, mark) / notional(inverse, 1.0, cs, entry)
    lev = effective_leverage(inverse, side, 1.0, cs, mark, bankrupt)
    if pnl_pct < 0.0 and divide_losses:
        return pnl_pct / lev
    if pnl_pct == 0.0:
        return 0.0
    return pnl_pct * lev


def score_hyperliquid(side: int, entry: float, mark: float, notional_value: float, account_value: float) -> float:
    """Hyperliquid's ADL sorting index ``(mark / entry) * (notional / account_value)``.

    Published for "the affected users in profit" (hyperliquid.gitbook.io ... auto-deleveraging).
    **Assumption**: for shorts the price ratio is inverted, ``(entry / mark)``, so that the more
    profitable short ranks higher as "ranked by unrealized pnl and leverage" says (the page
    prints one formula without a side). ``account_value <= 0`` gives +inf.
    """
    if account_value <= 0.0:
        return math.inf
    ratio = mark / entry if side > 0 else entry / mark
    return ratio * notional_value / account_value


def rank_quantile(score: float, population: np.ndarray) -> float:
    """Binance's "LeveragePnlQuantile" = rank / total user count, the position counted in.

    ``rank`` = 1 + the number of population scores strictly below ``score`` (ties share the
    lowest rank, so an all-equal population sits at the bottom); ``population`` holds the
    *other* positions' scores on the same side. Returns a fraction in (0, 1].
    """
    below = 0
    for k in range(population.shape[0]):
        if population[k] < score:
            below += 1
    return (below + 1.0) / (population.shape[0] + 1.0)


def indicator_lights(quantile: float, n_lights: int) -> int:
    """The lights shown for a quantile: ``ceil(quantile * n_lights)``, at least 1.

    Binance and Bybit show 5 lights; the cut points are **not published** by Binance: equal
    quantile buckets (20 % per light, as other venues using the same indicator state) are
    assumed.
    """
    lights = int(math.ceil(quantile * n_lights - 1e-12))
    if lights < 1:
        return 1
    if lights > n_lights:
        return n_lights
    return lights


# --- the exchange-level engine ---------------------------------------------------------------

def bankrupt_deficit(inverse: bool, side: int, qty: float, cs: float, bankrupt: float, market: float) -> float:
    """Deficit of closing a bankrupt position at ``market`` instead of its bankruptcy price (>= 0, settle ccy).

    It is the loss the insurance fund pays after taking the position over at the bankruptcy
    price: ``max(0, -upnl(bankrupt -> market))``.
    """
    return max(0.0, -unrealized_pnl(inverse, side * qty, cs, bankrupt, market))


def allocate(need: float, qtys: np.ndarray, scores: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Close ``need`` (contracts) from positions in ranking order; returns the closed qty per position.

    Highest ``score`` first; ties broken by ascending ``keys`` (distinct integers: the
    caller's stable order of accounts), so the result never depends on input order. Each
    position gives ``min(its qty, what is still needed)``; NaN scores are never selected.
    """
    n = qtys.shape[0]
    closed = np.zeros(n)
    order = np.argsort(keys, kind="mergesort")
    neg = np.empty(n)
    for k in range(n):
        s = scores[order[k]]
        neg[k] = math.inf if math.isnan(s) else -s
    order = order[np.argsort(neg, kind="mergesort")]
    left = need
    for k in range(n):
        if left <= 0.0:
            break
        i = order[k]
        if math.isnan(scores[i]) or qtys[i] <= 0.0:
            continue
        q = qtys[i] if qtys[i] < left else left
        closed[i] = q
        left -= q
    return closed


# --- the strategy-level rule ----------------------------------------------------------------

def queue_step(ahead: float, own: float, flow: float) -> tuple[float, float, float]:
    """One bar of a venue's ADL flow against a position at a known place in its side's queue.

    ``ahead`` is the notional of positions ranked above ours on our side, ``own`` our notional,
    ``flow`` the notional the venue deleverages on our side in this bar (all settle ccy, >= 0).
    The venue closes from the top of the queue (ranking order) and only as much as it needs,
    so we are hit only by the flow beyond ``ahead``. Returns ``(closed_fraction_of_own,
    ahead_after, own_after)``; the next bar continues from the shrunken queue (positions
    above us that were closed are gone). Re-ranking between bars is the caller's (it passes a
    new ``ahead``).
    """
    if own <= 0.0:
        left = ahead - flow
        return 0.0, left if left > 0.0 else 0.0, 0.0
    hit = flow - ahead
    if hit <= 0.0:
        return 0.0, ahead - flow, own
    closed = hit if hit < own else own
    return closed / own, 0.0, own - closed


def adl_close_qty(qty: float, own_notional: float, quantile: float, queue_notional: float, flow: float) -> float:
    """The per-bar rule the engines call: quantity of a position auto-deleveraged by a bar's flow.

    ``quantile`` is the position's rank quantile on its side (:func:`rank_quantile`, 1 = top of
    the queue), ``queue_notional`` the notional of the *other* positions in that side's queue,
    ``flow`` the bar's ADL notional on that side (settle ccy). The notional ranked ahead is
    ``(1 - quantile) * queue_notional`` (**assumption**: notional spread like the count of
    positions); :func:`queue_step` then gives the closed fraction. Returns the closed quantity
    (0 <= result <= qty).
    """
    ahead = (1.0 - quantile) * queue_notional
    if ahead < 0.0:
        ahead = 0.0
    frac, _, _ = queue_step(ahead, own_notional, flow)
    return frac * qty


def hit_probability(flow_fraction: float, quantile_lo: float, quantile_hi: float) -> float:
    """Probability that a bar's flow reaches a position known only by its quantile bucket.

    ``flow_fraction`` = flow / the side's queue notional. A position whose rank quantile lies
    in ``[quantile_lo, quantile_hi]`` (e.g. the 5th light: 0.8..1.0) has between
    ``1 - quantile_hi`` and ``1 - quantile_lo`` of the queue ahead of it; with its place
    uniform in the bucket (and notional spread like count: **assumption**) it is reached with
    probability ``clamp((flow_fraction - (1 - quantile_hi)) / (quantile_hi - quantile_lo), 0, 1)``.
    """
    width = quantile_hi - quantile_lo
    if width <= 0.0:
        return 1.0 if flow_fraction > 1.0 - quantile_hi else 0.0
    p = (flow_fraction - (1.0 - quantile_hi)) / width
    if p < 0.0:
        return 0.0
    if p > 1.0:
        return 1.0
    return p


KERNELS: tuple[str, ...] = (
    "score_binance", "effective_leverage", "score_pnl_leverage", "score_hyperliquid", "rank_quantile",
    "indicator_lights", "bankrupt_deficit", "allocate", "queue_step", "adl_close_qty", "hit_probability",
)
"""The kernels of this module (all compile with ``numba.njit``; tested)."""


def jit_kernels(jit: Callable[[Callable[..., Any]], Any]) -> dict[str, Any]:
    """Compile this module's kernels (and the :mod:`risk.formulas` kernels they call) with ``jit``."""
    namespace: dict[str, Any] = {**vars(formulas), **globals()}
    return formulas.clone_into(namespace, [(vars(formulas), formulas.KERNELS), (globals(), KERNELS)], jit)


# --- venue rules -----------------------------------------------------------------------------

@dataclass(frozen=True)
class AdlRule:
    """How one venue ranks and prices auto-deleveraging.

    ``score``: ``"binance"``, ``"pnl_leverage"`` (``divide_losses`` for Bybit/BitMEX) or
    ``"hyperliquid"``. ``price``: ``"bankruptcy"`` (the liquidated order's bankruptcy price) or
    ``"mark"``. ``profitable_only``: only positions in profit are deleveraged (otherwise every
    opposite position is in the queue, losers ranked last). ``fee``: the fee charged to the
    deleveraged position (``"none"`` or ``"maker"``). ``lights``: indicator lights shown.
    """

    venue: str
    score: str
    price: str
    profitable_only: bool
    divide_losses: bool = False
    fee: str = "none"
    lights: int = 5
    sources: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()


BINANCE_ADL = "https://www.binance.com/hi/amp/support/faq/360033525471"
BINANCE_ADL_FORUM = "https://dev.binance.vision/t/how-to-caculating-leverage-pnl-quantile/17801"
BINANCE_INSURANCE = "https://www.binance.com/bg/support/faq/360033525371"
BYBIT_ADL = "https://help.bybit.com/hc/en-us/articles/900000031623-What-is-Auto-Deleveraging-ADL-"
BITMEX_ADL = "https://bitmex.com/app/autoDeleveraging"
OKX_ADL = "https://www.ouyizh.biz/en-sg/help/iv-introduction-to-auto-deleveraging-adl"
HL_ADL = "https://hyperliquid.gitbook.io/hyperliquid-docs/trading/auto-deleveraging"

_BINANCE_RULE = AdlRule(
    venue="binance_usdm", score="binance", price="bankruptcy", profitable_only=False,
    sources=(BINANCE_ADL, BINANCE_ADL_FORUM, BINANCE_INSURANCE),
    assumptions=("Light cut points (equal quintiles) not published.",
                 "Non-profitable positions score 0 and are queued after profitable ones, ties by account."),
)
ADL_RULES: dict[str, AdlRule] = {
    "binance_usdm": _BINANCE_RULE,
    "binance_coinm": AdlRule(venue="binance_coinm", score="binance", price="bankruptcy", profitable_only=False,
                             sources=_BINANCE_RULE.sources, assumptions=_BINANCE_RULE.assumptions),
    "bybit": AdlRule(venue="bybit", score="pnl_leverage", price="bankruptcy", profitable_only=False,
                     divide_losses=True, fee="maker", sources=(BYBIT_ADL,),
                     assumptions=("Light cut points (equal quintiles) assumed.",)),
    "bitmex": AdlRule(venue="bitmex", score="pnl_leverage", price="bankruptcy", profitable_only=False,
                      divide_losses=True, sources=(BITMEX_ADL,),
                      assumptions=("No fee on the deleveraged position (not stated).",)),
    "okx": AdlRule(venue="okx", score="pnl_leverage", price="bankruptcy", profitable_only=False, sources=(OKX_ADL,),
                   assumptions=("OKX closes at the mark 'in normal circumstances' and at the bankruptcy "
                                "price when the fund is nearly depleted; ADL here happens only once the "
                                "fund is exhausted, so the bankruptcy price is used.",
                                "Effective leverage defined as for Bybit/BitMEX (OKX does not define it).",
                                "No fee on the deleveraged position (not stated).")),
    "hyperliquid": AdlRule(venue="hyperliquid", score="hyperliquid", price="mark", profitable_only=True,
                           sources=(HL_ADL,),
                           assumptions=("Sorting index side-adjusted for shorts (entry/mark).",
                                        "Price: 'the previous mark price' (current docs; an older version "
                                        "says previous oracle price); the caller passes it as mark.",
                                        "How the underwater account's negative equity is absorbed is not "
                                        "published; the ADL'd positions bear it pro rata to the quantity "
                                        "closed, as an explicit haircut.")),
}
"""The ADL rule of each venue of :data:`risk.venues.VENUES`."""


@dataclass(frozen=True)
class AdlPosition:
    """One open position eligible for ADL (same instrument as the bankrupt one).

    ``collateral``: wallet balance (cross) or isolated margin backing it, settle ccy;
    ``maint_margin``: its maintenance margin (Binance's score uses it; computed from the
    instrument's brackets when None); ``account_value``: Hyperliquid's account value (default
    ``collateral + upnl``).
    """

    account: str
    side: int
    qty: float
    entry: float
    collateral: float
    maint_margin: float | None = None
    account_value: float | None = None


@dataclass(frozen=True)
class AdlFill:
    """One deleveraged position: ``qty`` closed at ``price`` (realized PnL and fee in settle ccy).

    ``shortfall_covered`` is the part of the deficit this close covers (qty x deficit per
    contract); ``haircut`` the cash debited on top of the realized PnL (non-zero only where the
    venue closes at the mark, Hyperliquid; at the bankruptcy price the shortfall is already in
    the price). Cash to the account = ``realized_pnl - fee - haircut``.
    """

    account: str
    side: int
    qty: float
    price: float
    realized_pnl: float
    fee: float
    haircut: float
    shortfall_covered: float
    score: float
    rank: int


@dataclass(frozen=True)
class AdlResult:
    """What happened to one deficit: the fund paid, who was deleveraged, what was socialised."""

    venue: str
    deficit: float
    fund_before: float
    fund_paid: float
    fund_after: float
    adl_qty_needed: float
    fills: tuple[AdlFill, ...] = field(default_factory=tuple)
    socialised_loss: float = 0.0
    unmatched_qty: float = 0.0


def _score(rule: AdlRule, inverse: bool, cs: float, p: AdlPosition, mark: float, mmr: float, cum: float) -> float:
    upnl = unrealized_pnl(inverse, p.side * p.qty, cs, p.entry, mark)
    if rule.score == "binance":
        mm = p.maint_margin if p.maint_margin is not None else notional(inverse, p.qty, cs, mark) * mmr - cum
        return score_binance(upnl, p.collateral, mm)
    if rule.score == "hyperliquid":
        av = p.account_value if p.account_value is not None else p.collateral + upnl
        return score_hyperliquid(p.side, p.entry, mark, notional(inverse, p.qty, cs, mark), av)
    bk = bankruptcy_price(inverse, p.side, p.qty, cs, p.entry, p.collateral, 0.0, 0.0)
    return score_pnl_leverage(inverse, p.side, p.qty, cs, p.entry, mark, bk, rule.divide_losses)


def run_adl(
    venue: str, bankrupt_side: str | int, bankrupt_qty: float, bankrupt_price: float, deficit: float,
    positions: Sequence[AdlPosition], *, insurance_fund: float, mark: float, enabled: bool = True,
    symbol: str | None = None,
) -> AdlResult:
    """Cover one bankrupt position's ``deficit`` (settle ccy, >= 0): fund first, then ADL.

    ``bankrupt_qty`` contracts of ``bankrupt_side`` went bankrupt at ``bankrupt_price``; the
    deficit is what closing them in the market costs beyond their collateral (e.g.
    :func:`bankrupt_deficit`). The insurance fund pays ``min(fund, deficit)``. The rest ``R``
    needs ``bankrupt_qty * R / deficit`` contracts to be matched against opposite positions
    (each matched contract is closed at the ADL price and covers ``deficit / bankrupt_qty``),
    closed in the venue's ranking order (:data:`ADL_RULES`), only as much as needed, ties by
    account name then input order. ADL disabled, or the other side exhausted: the remainder
    is reported as ``socialised_loss``. ``mark`` values positions for the ranking (and is the
    ADL price where the venue uses the mark).
    """
    from risk.liquidation import parse_side
    from risk.venues import get_instrument

    if venue not in ADL_RULES:
        raise DeleverageError(f"unknown venue {venue!r} for ADL; known: {', '.join(ADL_RULES)}")
    rule = ADL_RULES[venue]
    side = parse_side(bankrupt_side)
    if deficit < 0 or bankrupt_qty <= 0 or insurance_fund < 0 or not (mark > 0) or not (bankrupt_price > 0):
        raise DeleverageError("run_adl: deficit and insurance_fund must be >= 0, bankrupt_qty, bankrupt_price "
                              f"and mark > 0; got {deficit}, {insurance_fund}, {bankrupt_qty}, {bankrupt_price}, {mark}")
    inst = get_instrument(venue, symbol)
    inverse, cs = inst.inverse, inst.contract_size
    paid = min(insurance_fund, deficit)
    rest = deficit - paid
    base = dict(venue=venue, deficit=deficit, fund_before=insurance_fund, fund_paid=paid,
                fund_after=insurance_fund - paid)
    if rest <= 0.0:
        return AdlResult(adl_qty_needed=0.0, **base)
    per_contract = deficit / bankrupt_qty
    need = bankrupt_qty * rest / deficit
    if not enabled:
        return AdlResult(adl_qty_needed=need, socialised_loss=rest, unmatched_qty=need, **base)
    table = inst.tiers_at(None)
    names = sorted(range(len(positions)), key=lambda k: (positions[k].account, k))
    keys = np.empty(len(positions), dtype=np.int64)
    for rank_key, k in enumerate(names):
        keys[k] = rank_key
    qtys = np.zeros(len(positions))
    scores = np.full(len(positions), math.nan)
    for k, p in enumerate(positions):
        if p.qty < 0 or p.entry <= 0 or p.side not in (1, -1):
            raise DeleverageError(f"ADL position {k} ({p.account}): side must be +1/-1, qty >= 0 and entry > 0")
        if p.side != -side or p.qty == 0:
            continue
        if rule.profitable_only and unrealized_pnl(inverse, p.side * p.qty, cs, p.entry, mark) <= 0.0:
            continue
        mmr, cum, _ = table.bracket(notional(inverse, p.qty, cs, mark))
        qtys[k] = p.qty
        scores[k] = _score(rule, inverse, cs, p, mark, mmr, cum)
    closed = allocate(need, qtys, scores, keys)
    price = bankrupt_price if rule.price == "bankruptcy" else mark
    fee_rate = inst.maker_fee if rule.fee == "maker" else 0.0
    order = sorted((k for k in range(len(positions)) if closed[k] > 0),
                   key=lambda k: (-scores[k], keys[k]))
    fills = []
    for rank, k in enumerate(order, start=1):
        p, q = positions[k], float(closed[k])
        covered = q * per_contract
        fills.append(AdlFill(
            account=p.account, side=p.side, qty=q, price=price,
            realized_pnl=unrealized_pnl(inverse, p.side * q, cs, p.entry, price),
            fee=notional(inverse, q, cs, price) * fee_rate,
            haircut=covered if rule.price == "mark" else 0.0,
            shortfall_covered=covered, score=float(scores[k]), rank=rank))
    matched = float(closed.sum())
    unmatched = max(0.0, need - matched)
    social = rest - sum(f.shortfall_covered for f in fills)
    if social <= 1e-12 * deficit:
        social = 0.0  # float round-off of a fully matched need
    return AdlResult(adl_qty_needed=need, fills=tuple(fills), socialised_loss=social,
                     unmatched_qty=unmatched, **base)
