"""The base class of perpetual-futures strategies.

:class:`PerpStrategy` gives a strategy:

- target helpers: :meth:`target_leverage`, :meth:`target_notional`, :meth:`target_qty`
  (fractional quantities, rounded to the instrument's lot, with the entry fee left room for);
- a read-only risk view, :meth:`risk_view` (liquidation price, distance to it, margin ratio,
  funding paid so far, available balance);
- hooks :meth:`notify_liquidation` and :meth:`notify_funding`, called by the broker with the
  event row (a dict) when they happen; liquidation fills also reach ``notify_order`` with
  ``order.info["liquidation"] == True``;
- ``ranges``: the declared search range of each numeric parameter, ``{name: (low, high,
  step)}`` (step None = continuous), read by the optimizer.

Strategies run on :class:`engine.bt_data.PerpData` feeds, so the liquidation-feed lines
(``self.data.liq_long_notional[0]`` ...), mark price, funding rate and open interest are at
hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import backtrader as bt

from risk.formulas import notional


@dataclass(frozen=True)
class RiskView:
    """What the broker knows about one feed's position (settle currency, fractions)."""

    qty: float
    entry_price: float
    liquidation_price: float  # NaN when flat or not liquidatable
    bankruptcy_price: float
    distance_to_liquidation: float  # |mark - liq| / mark, NaN when flat
    margin_ratio: float  # maintenance margin / margin balance; liquidation at 1
    collateral: float
    funding_paid: float  # cumulative funding cash flow of the account (negative = paid)
    available_balance: float
    equity: float


class PerpStrategy(bt.Strategy):
    """Base class: see the module docstring."""

    params = (("leverage", 1.0),)
    ranges: ClassVar[dict[str, tuple[float, float, float | None]]] = {"leverage": (1.0, 100.0, None)}

    def start(self) -> None:
        add = getattr(self.broker, "add_listener", None)
        if add is not None:
            add(self)

    # --- hooks ------------------------------------------------------------------------------

    def notify_liquidation(self, event: dict[str, Any]) -> None:
        """Called when a position of this run is liquidated (override)."""

    def notify_funding(self, event: dict[str, Any]) -> None:
        """Called at each funding settlement of an open position (override)."""

    # --- sizing -----------------------------------------------------------------------------

    def target_qty(self, data: Any, qty: float, **kwargs: Any) -> Any:
        """Order the difference between the current position and signed ``qty``."""
        book = self.broker.book(data)
        qty = book.instrument.round_qty(qty)
        delta = qty - self.getposition(data).size
        if abs(delta) < book.instrument.lot_size / 2:
            return None
        if delta > 0:
            return self.buy(data=data, size=delta, **kwargs)
        return self.sell(data=data, size=-delta, **kwargs)

    def target_notional(self, data: Any, value: float, price: float | None = None, **kwargs: Any) -> Any:
        """Hold a position worth signed ``value`` in settle currency at ``price`` (default close)."""
        book = self.broker.book(data)
        inst = book.instrument
        price = data.close[0] if price is None else price
        unit = notional(inst.inverse, 1.0, inst.contract_size, price)
        return self.target_qty(data, value / unit, **kwargs)

    def target_leverage(self, data: Any, leverage: float, side: int = 1, price: float | None = None,
                        **kwargs: Any) -> Any:
        """Hold ``side`` exposure of ``leverage`` times equity, leaving room for the taker fee.

        Sets the feed's leverage on the broker, so the initial margin of the position equals
        the equity less the entry fee.
        """
        self.broker.set_leverage(data, leverage)
        fee = self.broker.book(data).instrument.taker_fee
        equity = self.broker.getvalue()
        value = equity * leverage / (1.0 + leverage * max(fee, 0.0)) * 0.999999
        return self.target_notional(data, side * value, price=price, **kwargs)

    # --- risk view --------------------------------------------------------------------------

    def risk_view(self, data: Any | None = None) -> RiskView:
        data = self.data if data is None else data
        broker = self.broker
        book = broker.book(data)
        pos = book.position
        mark = broker._mark(data)
        equity = broker.getvalue()
        liq = book.liq_price
        if pos.qty:
            balance = pos.collateral + pos.unrealized_pnl(mark) if book.margin_mode == "isolated" else equity
            mm = broker._maint(book, mark)
            ratio = mm / balance if balance > 0 else math.inf
            dist = abs(mark - liq) / mark if liq == liq else math.nan
        else:
            ratio, dist = 0.0, math.nan
        return RiskView(qty=pos.qty, entry_price=pos.entry, liquidation_price=liq,
                        bankruptcy_price=book.bank_price, distance_to_liquidation=dist,
                        margin_ratio=ratio, collateral=pos.collateral,
                        funding_paid=broker._funding_cum, available_balance=broker.available_balance(),
                        equity=equity)
