"""Account-level (cross-margin) liquidation: the pure decision both engines take for a portfolio.

Several positions on one cross wallet are liquidated by the *account's* margin, not position by
position. Both engines (the broker, :meth:`engine.broker.PerpBroker._account_liquidation`, and
the portfolio fast engine, :mod:`engine.fast_portfolio`) call the kernels below; they are plain
floats and numpy arrays (``numba.njit``-compilable, :func:`jit_kernels`, tested in
``tests/portfolio/test_account_rule.py``).

Units and signs: money in the settle currency (USDT/USDC: a portfolio is linear contracts of one
settle currency); ``wallet`` is the cross wallet balance (equity less every unrealized PnL, less
what isolated positions hold); ``mms[k]`` and ``upnls[k]`` are position k's maintenance margin and
unrealized PnL valued at the price the engine evaluates (at bar resolution: each position's
adverse extreme of its trigger series, see below); ``qtys[k]`` signed, 0 = no position.

The trigger (every venue): the account is in liquidation when its margin balance
``wallet + sum(upnl)`` falls to the sum of its cross positions' maintenance margins, i.e. the
account margin ratio ``sum(MM) / margin balance`` reaches 100 %.

- Binance USDⓈ-M: "liquidation ... when collateral < maintenance margin", margin ratio = MM /
  margin balance reaching 100 %, cross positions share the margin balance (FAQ "Binance Futures
  Liquidation Protocols", 360033525271; cross liquidation-price example with two positions, FAQ
  b3c689c1f50a44cabb3a84e663b81d93; ../shared/research/mechanics.md §1.1).
- Bybit (Unified Trading Account, cross margin): "the risk of a Unified Trading Account is
  assessed using the ... Maintenance Margin Rate (MMR) of all positions. Liquidation is triggered
  when MMR reaches 100 %" (help center "Trading Rules: Liquidation Process (Unified Trading
  Account)", article 000001876).
- OKX: "margin ratio <= 100 %" on the account's adjusted equity (mechanics.md §1.5).
- Hyperliquid: "liquidation when account equity < maintenance margin" (docs, trading/liquidations;
  mechanics.md §1.6).

Which position first (``ORDER_*``): **no venue publishes the order** in which the positions of a
breached cross account are closed. Our stated assumptions:

``ORDER_LARGEST_LOSS`` (Binance, Bybit, OKX, BitMEX; **assumption**)
    the position with the largest unrealized loss at the evaluated prices is closed first (ties:
    the larger maintenance margin, then the first symbol); the account is re-evaluated after
    each close with the realized PnL and fee in the wallet, and the next one follows only while
    the account is still breached. This is the practice some venues publish ("when you own
    multiple positions, we execute from large amount of loss position until margin rate goes
    up", is6 FAQ "What is liquidation process?") and what Binance's stated aim implies (restore
    the margin with as little closed as possible: the losing position is what the breach is made
    of).
``ORDER_ALL`` (Hyperliquid; **assumption**)
    Hyperliquid's docs describe the liquidation of a cross account as market orders for its
    positions without a re-evaluation step between them: once breached, every cross position of
    the account is closed (largest loss first, for a deterministic event order); the ones after
    the first at the market at the breach, each at the adverse extreme it was valued at. An
    account that opens below 2/3 of its maintenance margin goes to the backstop vault instead
    (:func:`account_backstop`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from risk import formulas
from risk.formulas import BACKSTOP_MM_FRACTION, maintenance_margin, margin_ratio, notional, tier_index

ORDER_LARGEST_LOSS = 0
ORDER_ALL = 1

NONE = -1


def account_margin_balance(wallet: float, upnl_total: float) -> float:
    """The account's margin balance: cross wallet plus every cross position's unrealized PnL."""
    return wallet + upnl_total


def account_breached(wallet: float, mm_total: float, upnl_total: float) -> bool:
    """True when the account's margin balance is at or below the sum of its maintenance margins
    (account margin ratio >= 100 %) while it holds maintenance margin at all."""
    if not mm_total > 0.0:
        return False
    return wallet + upnl_total <= mm_total


def account_margin_ratio(wallet: float, mm_total: float, upnl_total: float) -> float:
    """The account margin ratio ``sum(MM) / (wallet + sum(uPnL))``; +inf at a margin balance <= 0."""
    return margin_ratio(mm_total, wallet + upnl_total)


def position_mm(mm_on_entry: bool, qty: float, cs: float, entry: float, price: float,
                floors: np.ndarray, mmrs: np.ndarray, cums: np.ndarray) -> float:
    """Maintenance margin of one linear position (signed ``qty``) valued at ``price`` (at its entry
    on venues whose MM is on the entry value), with the bracket of that notional."""
    if qty == 0.0:
        return 0.0
    value = notional(False, qty, cs, entry if mm_on_entry else price)
    i = tier_index(value, floors)
    return maintenance_margin(value, mmrs[i], cums[i])


def account_backstop(takes_margin: bool, wallet: float, mm_total: float, upnl_total: float) -> bool:
    """True when the venue's backstop liquidator takes a breached cross account over at the bar's
    open (Hyperliquid, ``VenueRules.backstop_takes_margin``): the account's margin balance at its
    positions' trigger opens, ``wallet + upnl_total``, is below ``BACKSTOP_MM_FRACTION`` (2/3) of
    their maintenance margin there, ``mm_total`` (both valued at the opens).

    "If the account equity drops below 2/3 of the maintenance margin without successful
    liquidation through the order book, the backstop liquidator vault takes over: the position and
    its margin are transferred" (HL docs, trading/liquidations; research mechanics.md 1.6). At bar
    resolution the book liquidation fails when the account OPENS past that level (a gap: nothing
    traded between the last bar and the open). The engines then close every cross position at its
    trigger open and charge the whole cross margin left to the account, paid to the fund (the
    vault keeps it); a cross margin below 0 there is the fund's cover. The rule of
    :func:`risk.formulas.backstop_charge` for one position, applied to the account."""
    if not takes_margin or not mm_total > 0.0:
        return False
    return wallet + upnl_total < BACKSTOP_MM_FRACTION * mm_total


def next_to_liquidate(order_rule: int, wallet: float, qtys: np.ndarray, mms: np.ndarray,
                      upnls: np.ndarray, started: bool) -> int:
    """Index of the cross position the account liquidates next, or ``NONE`` (-1).

    ``started``: a liquidation of this account is already under way in this evaluation (after a
    close, ``ORDER_ALL`` goes on without re-checking the breach). The pick is the open position
    with the smallest uPnL (largest loss), ties broken by the larger MM, then the lower index.
    """
    n = qtys.shape[0]
    mm_total = 0.0
    upnl_total = 0.0
    for k in range(n):
        if qtys[k] != 0.0:
            mm_total += mms[k]
            upnl_total += upnls[k]
    if not (started and order_rule == ORDER_ALL):
        if not account_breached(wallet, mm_total, upnl_total):
            return NONE
    best = NONE
    for k in range(n):
        if qtys[k] == 0.0:
            continue
        if best == NONE or upnls[k] < upnls[best] or (upnls[k] == upnls[best] and mms[k] > mms[best]):
            best = k
    return best


def others(k: int, qtys: np.ndarray, mms: np.ndarray, upnls: np.ndarray) -> tuple[float, float]:
    """``(other_mm, other_upnl)``: the maintenance margin and uPnL of every open position but k,
    the ``TMM1`` / ``UPNL1`` of Binance's cross liquidation-price formula."""
    omm = 0.0
    oup = 0.0
    for j in range(qtys.shape[0]):
        if j != k and qtys[j] != 0.0:
            omm += mms[j]
            oup += upnls[j]
    return omm, oup


KERNELS: tuple[str, ...] = ("account_margin_balance", "account_breached", "account_margin_ratio",
                            "account_backstop", "position_mm", "next_to_liquidate", "others")


def jit_kernels(jit: Callable[[Callable[..., Any]], Any]) -> dict[str, Any]:
    """Compile this module's kernels (and the :mod:`risk.formulas` kernels they call) with ``jit``."""
    namespace: dict[str, Any] = {**vars(formulas), **globals()}
    return formulas.clone_into(namespace, [(vars(formulas), formulas.KERNELS), (globals(), KERNELS)], jit)


# --- per-bar series for reports -------------------------------------------------------------------

def margin_ratio_series(wallet: np.ndarray, mm: np.ndarray, upnl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar margin ratios of a portfolio: ``(account, per_symbol)``.

    ``wallet`` (n,), ``mm`` and ``upnl`` (n, k) at the bar's mark close. The account ratio is
    ``sum(MM) / (wallet + sum(uPnL))``; a symbol's ratio is its share ``MM_k / (wallet +
    sum(uPnL))`` (the per-symbol ratios add up to the account's). NaN where the account holds no
    position, +inf where the margin balance is <= 0.
    """
    balance = wallet + upnl.sum(axis=1)
    total = mm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        account = np.where(balance > 0, total / balance, np.inf)
        per = np.where((balance > 0)[:, None], mm / balance[:, None], np.inf)
    flat = total == 0
    account[flat] = np.nan
    per[mm == 0] = np.nan
    return account, per


# --- venue rules ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AccountRule:
    """How one venue liquidates a breached cross account (see the module docstring)."""

    venue: str
    order: int
    sources: tuple[str, ...]
    assumptions: tuple[str, ...]

    @property
    def order_name(self) -> str:
        return "largest loss first, re-evaluated after each close" if self.order == ORDER_LARGEST_LOSS \
            else "every cross position closed (largest loss first)"


_TRIGGER_BINANCE = ("Binance FAQ 360033525271 'Binance Futures Liquidation Protocols' (margin ratio = MM / "
                    "margin balance reaching 100 %)",
                    "Binance FAQ b3c689c1f50a44cabb3a84e663b81d93 (cross liquidation price with TMM1, UPNL1)")
_ORDER_ASSUMED = "the order in which a breached cross account's positions are closed is not published: " \
                 "largest unrealized loss first, the account re-evaluated after each close (assumption)"

ACCOUNT_RULES: dict[str, AccountRule] = {
    "binance_usdm": AccountRule("binance_usdm", ORDER_LARGEST_LOSS, _TRIGGER_BINANCE, (_ORDER_ASSUMED,)),
    "binance_coinm": AccountRule("binance_coinm", ORDER_LARGEST_LOSS, _TRIGGER_BINANCE, (_ORDER_ASSUMED,)),
    "bybit": AccountRule("bybit", ORDER_LARGEST_LOSS,
                         ("Bybit help center 000001876 'Trading Rules: Liquidation Process (Unified Trading "
                          "Account)': cross margin liquidation when the account MMR reaches 100 %",),
                         (_ORDER_ASSUMED,)),
    "okx": AccountRule("okx", ORDER_LARGEST_LOSS,
                       ("OKX 'Tiered maintenance margin ratio rules' (margin ratio <= 100 %)",), (_ORDER_ASSUMED,)),
    "bitmex": AccountRule("bitmex", ORDER_LARGEST_LOSS, ("BitMEX liquidation guide (cross margin)",),
                          (_ORDER_ASSUMED,)),
    "hyperliquid": AccountRule("hyperliquid", ORDER_ALL,
                               ("Hyperliquid docs, trading/liquidations: liquidation when account equity < "
                                "maintenance margin; market orders for the positions; below 2/3 of the "
                                "maintenance margin without a book liquidation the backstop vault takes the "
                                "positions and the margin",),
                               ("a breached cross account has every cross position closed, no re-evaluation "
                                "between the closes (assumption: the docs describe no order); the positions "
                                "after the first close at the market at the breach, each at its bar's adverse "
                                "extreme (bar resolution)",
                                "the book liquidation fails when the account opens below 2/3 of its "
                                "maintenance margin: every cross position closes at its trigger open and the "
                                "cross margin left goes to the vault (risk.account.account_backstop)")),
}
"""The account-level liquidation rule of each venue of :data:`risk.venues.VENUES`."""


def account_rule(venue: str) -> AccountRule:
    try:
        return ACCOUNT_RULES[venue]
    except KeyError:
        from risk.errors import DeleverageError
        raise DeleverageError(f"no account-level liquidation rule for venue {venue!r}; expected one of "
                              f"{', '.join(ACCOUNT_RULES)}") from None


__all__ = ["ACCOUNT_RULES", "AccountRule", "ORDER_ALL", "ORDER_LARGEST_LOSS", "NONE", "account_backstop",
           "account_breached",
           "account_margin_balance", "account_margin_ratio", "account_rule", "jit_kernels",
           "margin_ratio_series", "next_to_liquidate", "others", "position_mm"]
