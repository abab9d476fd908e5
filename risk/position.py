"""A perpetual position as a fold over fills and funding payments.

:class:`PerpPosition` is immutable; :func:`apply_fill` and :func:`apply_funding` return the new
position and the money that moved, so the engines record every change of equity as an event.

Isolated collateral: opening or adding posts ``notional_at_fill / leverage`` of initial margin;
reducing releases collateral in proportion to the quantity closed; funding payments are taken
from (or added to) the collateral, as Binance and BitMEX do for isolated positions. Realized PnL
and fees go to the wallet, not the collateral.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from risk.formulas import average_entry, initial_margin, notional, unrealized_pnl

DUST = 1e-12
"""Relative size difference under which a reducing fill is taken to close the position exactly."""


@dataclass(frozen=True)
class PerpPosition:
    """``qty`` signed (positive long; base units or contracts), ``entry`` average entry price,
    ``collateral`` isolated margin (settle currency; also tracked in cross mode as the initial
    margin in use), ``leverage`` the leverage new exposure is opened at."""

    inverse: bool
    contract_size: float
    leverage: float
    qty: float = 0.0
    entry: float = 0.0
    collateral: float = 0.0

    @property
    def side(self) -> int:
        return 1 if self.qty > 0 else (-1 if self.qty < 0 else 0)

    def notional(self, price: float) -> float:
        return notional(self.inverse, self.qty, self.contract_size, price)

    def unrealized_pnl(self, price: float) -> float:
        return unrealized_pnl(self.inverse, self.qty, self.contract_size, self.entry, price)


@dataclass(frozen=True)
class FillOutcome:
    """What a fill did: the new position, the realized PnL (settle ccy), and collateral moved
    from the wallet into the position (negative: released)."""

    position: PerpPosition
    realized_pnl: float
    collateral_change: float
    closed_qty: float
    opened_qty: float


def apply_fill(pos: PerpPosition, fill_qty: float, price: float) -> FillOutcome:
    """Apply a fill of signed ``fill_qty`` at ``price`` to ``pos``."""
    if fill_qty == 0.0:
        return FillOutcome(pos, 0.0, 0.0, 0.0, 0.0)
    old = pos.qty
    cs, inv = pos.contract_size, pos.inverse
    if old == 0.0 or (old > 0) == (fill_qty > 0):  # open or add
        entry = price if old == 0.0 else average_entry(inv, abs(old), pos.entry, abs(fill_qty), price)
        im = initial_margin(notional(inv, fill_qty, cs, price), pos.leverage)
        new = replace(pos, qty=old + fill_qty, entry=entry, collateral=pos.collateral + im)
        return FillOutcome(new, 0.0, im, 0.0, abs(fill_qty))
    # A fill within float round-off of the position size closes it exactly: 0.1 + 0.2 bought
    # and 0.3 sold must leave nothing, not a 5.5e-17 dust position (or a dust flip).
    if abs(abs(fill_qty) - abs(old)) <= DUST * abs(old):
        fill_qty = -old
    closed = min(abs(fill_qty), abs(old))
    closed_signed = closed if old > 0 else -closed
    pnl = unrealized_pnl(inv, closed_signed, cs, pos.entry, price)
    remaining = old + fill_qty if abs(fill_qty) <= abs(old) else 0.0
    released = pos.collateral * (closed / abs(old))
    opened = abs(fill_qty) - closed
    if remaining != 0.0:  # partial reduce
        new = replace(pos, qty=remaining, collateral=pos.collateral - released)
        return FillOutcome(new, pnl, -released, closed, 0.0)
    if opened > 0.0:  # flip
        flipped_qty = opened if fill_qty > 0 else -opened
        im = initial_margin(notional(inv, flipped_qty, cs, price), pos.leverage)
        new = replace(pos, qty=flipped_qty, entry=price, collateral=im)
        return FillOutcome(new, pnl, im - pos.collateral, closed, opened)
    new = replace(pos, qty=0.0, entry=0.0, collateral=0.0)
    return FillOutcome(new, pnl, -pos.collateral, closed, 0.0)


def apply_funding(pos: PerpPosition, amount: float) -> PerpPosition:
    """Add a funding cash flow (negative = paid) to the position's collateral."""
    return replace(pos, collateral=pos.collateral + amount)
