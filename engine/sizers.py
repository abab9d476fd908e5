"""Leverage-aware sizers for plain backtrader strategies on :class:`engine.broker.PerpBroker`.

backtrader's stock sizers size in units of ``cash / price``; on a perpetual broker ``cash`` is
the equity and leverage multiplies what a margin can hold, and an inverse contract (BitMEX
XBTUSD: 1 USD per contract, settled in BTC) is counted in USD contracts, not coins. These
sizers ask the broker for the feed's instrument and leverage.
"""

from __future__ import annotations

from typing import Any

import backtrader as bt

from risk.errors import DeleverageError


class LeveragedPercent(bt.Sizer):
    """Size a new position at ``percent`` % of the available balance times the feed's leverage.

    ``percent=95`` on a 10x feed opens a position whose notional is 9.5 times the available
    balance (less room for the taker fee), in contracts of the instrument at the current close
    (``notional = qty x contract_size x price`` linear, ``qty x contract_size / price``
    inverse), rounded down to the venue's lot. ``leverage`` None uses the feed's leverage
    (``--leverage`` or ``self.broker.set_leverage(data, L)``); a number sets it on the broker
    before sizing. An order against an open position closes it (its size is the position's).
    """

    params = (("percent", 95.0), ("leverage", None))

    def _getsizing(self, comminfo: Any, cash: float, data: Any, isbuy: bool) -> float:
        broker = self.broker
        book_of = getattr(broker, "book", None)
        if book_of is None:
            raise DeleverageError("LeveragedPercent sizes on the perpetual broker (engine.broker.PerpBroker)")
        if not 0 < float(self.p.percent) <= 100:
            raise DeleverageError(f"LeveragedPercent percent must be in (0, 100], got {self.p.percent}")
        if self.p.leverage is not None:
            broker.set_leverage(data, float(self.p.leverage))
        book = book_of(data)
        held = broker.getposition(data).size
        if held and (held > 0) != isbuy:
            return abs(held)
        inst = book.instrument
        price = data.close[0]
        budget = max(broker.available_balance(), 0.0) * float(self.p.percent) / 100.0
        lev = book.leverage
        value = budget * lev / (1.0 + lev * max(inst.taker_fee, 0.0))
        qty = inst.round_qty(value / inst.notional(1.0, price))
        return qty
