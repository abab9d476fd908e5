"""The perpetual-futures broker: backtrader's BackBroker plus margin, funding and liquidation.

How the books are kept
----------------------
backtrader keeps the order lifecycle, positions (size, price) and ``cash``. Our commission
scheme (:class:`PerpCommInfo`) is futures-like with zero margin per contract and a
mark-to-market ``cashadjust``, so backtrader's ``cash`` *is* the account equity: wallet
balance plus unrealized PnL at the bar's mark close (the venues value positions at the mark;
the last close when the feed has no mark), in the settle currency (coin for inverse
contracts: ``cashadjust`` uses ``cs*(1/p0 - 1/p1)`` per contract, which telescopes exactly).
Everything else (isolated collateral, average entry, which the venue computes harmonically
for inverse contracts, liquidation and bankruptcy prices) lives in one
:class:`risk.position.PerpPosition` per feed, folded from the same fills; an invariant
check asserts its quantity equals backtrader's position after every fill.

Every change of equity is an event: a fill (realized PnL), a fee (trade or liquidation
clearance), a funding payment, a liquidation. ``events`` holds them as plain rows.

Per bar, for each feed (the hot path; kept to a few float comparisons):

1. **Funding**: if the bar holds a settlement (``funding_rate`` not NaN in the feed; or, for a
   feed without a funding column, a venue funding hour at the configured constant rate), the
   position held at the settlement instant (the bar's open, before this bar's fills) pays or
   receives ``risk.formulas.funding_payment`` at the bar's mark open (last open without mark).
2. **Liquidation, before orders**: the position held at the bar's open is checked against the
   bar's adverse extreme of the trigger series (mark OHLC when the feed has it, else last
   price): low for a long, high for a short. A wick inside the bar liquidates even if the
   close recovers. If a pending stop order of that feed would trigger before the liquidation
   price on the way down (up), the stop gets its chance first. If a market order of that
   feed fills at this open, the order goes first (the open comes before the bar's extreme)
   and the check moves to step 4, unless the open itself is through the liquidation price.
3. backtrader processes orders (market orders fill at this bar's open) and marks to market.
4. **Liquidation, after fills**: a position opened or changed in this bar, or whose check
   waited for a market order, is checked against the same bar's extreme (pessimistic: the
   extreme may come after the fill).

A liquidation cancels the feed's open orders, closes the whole position through backtrader
(the order carries ``info["liquidation"] = True`` and reaches ``notify_order``), charges the
venue's clearance fee to an insurance-fund ledger, and is announced to listeners through
``notify_liquidation(event)``; funding through ``notify_funding(event)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import backtrader as bt
import numpy as np

from engine.bt_data import unix_seconds

from risk.errors import DeleverageError
from risk.formulas import (
    bankruptcy_price,
    effective_mmr,
    funding_payment,
    funding_schedule,
    liquidation_clearance,
    liquidation_fill_price,
    liquidation_price_tiered,
    maintenance_margin,
    notional,
    tier_index,
    trade_fee,
    unrealized_pnl,
)
from risk.instrument import PerpInstrument
from risk.position import PerpPosition, apply_fill, apply_funding
from risk.venues import VenueRules, get_instrument, venue_rules

MARGIN_MODES = ("isolated", "cross")
_NAN = math.nan


def num2dt(value: float) -> datetime:
    """backtrader's float date to an aware UTC datetime."""
    return bt.num2date(value).replace(tzinfo=timezone.utc)


class PerpCommInfo(bt.CommInfoBase):
    """Futures-like, zero margin per contract, mark-to-market cash, fees charged by the broker.

    With no margin taken out of ``cash`` and PnL moved into cash every bar, backtrader's cash
    equals account equity. Fees are charged by :class:`PerpBroker` (maker or taker by order
    type, clearance fee on liquidation), so ``getcommission`` is zero here.
    """

    params = (("inverse", False), ("contract_size", 1.0), ("stocklike", False), ("margin", 1.0))

    def __init__(self) -> None:
        super().__init__()
        self._stocklike = False
        self._inverse = bool(self.p.inverse)
        self._cs = float(self.p.contract_size)

    def get_margin(self, price: float) -> float:
        return 0.0

    def getsize(self, price: float, cash: float) -> float:
        return cash / price  # fractional, never rounded down to an int

    def getoperationcost(self, size: float, price: float) -> float:
        return 0.0

    def getvaluesize(self, size: float, price: float) -> float:
        return 0.0

    def getvalue(self, position: Any, price: float) -> float:
        return 0.0

    def getcommission(self, size: float, price: float) -> float:
        return 0.0

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        return 0.0

    def profitandloss(self, size: float, price: float, newprice: float) -> float:
        return unrealized_pnl(self._inverse, size, self._cs, price, newprice)

    def cashadjust(self, size: float, price: float, newprice: float) -> float:
        if not size or price == newprice:
            return 0.0
        return unrealized_pnl(self._inverse, size, self._cs, price, newprice)


@dataclass
class Book:
    """The broker's per-feed state: instrument, venue rules, settings and the risk position."""

    data: Any
    instrument: PerpInstrument
    rules: VenueRules
    leverage: float
    margin_mode: str
    position: PerpPosition
    floors: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    mmrs: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    cums: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    liq_price: float = _NAN
    bank_price: float = _NAN
    last_rate: float = 0.0
    changed: bool = False  # fills happened in the current bar
    deferred: bool = False  # the pre-order check waited for a market order filling at this open
    # lines bound once, so the per-bar path does no attribute lookups through backtrader
    dt_line: Any = None
    funding_line: Any = None
    trig_low: Any = None
    trig_high: Any = None
    mark_line: Any = None  # mark close, when the feed has a mark: open positions are valued at it
    low_line: Any = None
    high_line: Any = None


class PerpBroker(bt.brokers.BackBroker):
    """BackBroker with perpetual-futures margin, funding and liquidation (see module docstring).

    Parameters (``PerpBroker(venue=..., ...)``)
    ----------
    venue, symbol:
        Default venue and instrument for feeds not configured with :meth:`configure`.
    leverage, margin_mode:
        Defaults per feed; change with :meth:`set_leverage` / :meth:`set_margin_mode`.
    funding_rate:
        Constant funding rate (fraction per interval, positive: longs pay) for feeds without a
        ``funding_rate`` column, settled at the venue's funding hours. None means "no funding"
        and is refused for feeds without funding data unless ``allow_no_funding`` is set, so a
        run never silently ignores funding.
    """

    params = (
        ("venue", "binance_usdm"),
        ("symbol", None),
        ("leverage", 1.0),
        ("margin_mode", "isolated"),
        ("funding_rate", None),
        ("allow_no_funding", False),
        ("record", True),
    )

    def __init__(self) -> None:
        super().__init__()
        self._books: dict[Any, Book] = {}
        self._configs: dict[Any, dict[str, Any]] = {}
        self._listeners: list[Any] = []
        self.events: dict[str, list[dict[str, Any]]] = {
            "fills": [], "funding": [], "liquidations": [], "fees": [],
        }
        self.insurance_fund = 0.0
        self.announcements: list[str] = []
        self._primary: Any = None
        self._book_list: list[Book] = []
        self._funding_cum = 0.0
        self._fees_cum = 0.0
        # per bar only the equity is appended; the primary feed's position state is logged
        # when it changes (bar index, qty, entry, collateral, liq price, funding, fees)
        self._equity: list[float] = []
        self._state_log: list[tuple[int, float, float, float, float, float, float]] = []
        self._dirty = False
        self._recorded: dict[str, np.ndarray] | None = None
        self._in_liquidation = False

    # --- configuration ---------------------------------------------------------------------

    def configure(self, data: Any, *, venue: str | None = None, symbol: str | None = None,
                  leverage: float | None = None, margin_mode: str | None = None) -> None:
        """Set venue, symbol, leverage or margin mode of ``data`` (before or during the run)."""
        cfg = self._configs.setdefault(data, {})
        for key, value in (("venue", venue), ("symbol", symbol), ("leverage", leverage),
                           ("margin_mode", margin_mode)):
            if value is not None:
                cfg[key] = value
        if data in self._books:
            book = self._books[data]
            if leverage is not None:
                self.set_leverage(data, leverage)
            if margin_mode is not None:
                self.set_margin_mode(data, margin_mode)
            if venue is not None or symbol is not None:
                if book.position.qty:
                    raise DeleverageError("cannot change the venue or symbol of a feed with an open position")
                del self._books[data]
                self._book_list.remove(book)
                self._book(data)

    def set_leverage(self, data: Any, leverage: float) -> None:
        """Leverage for new exposure on ``data`` (from a strategy: ``self.broker.set_leverage(self.data, 20)``)."""
        book = self._book(data)
        if not leverage > 0:
            raise DeleverageError(f"leverage must be positive, got {leverage}")
        book.leverage = float(leverage)
        book.position = PerpPosition(book.position.inverse, book.position.contract_size, float(leverage),
                                     book.position.qty, book.position.entry, book.position.collateral)

    def set_margin_mode(self, data: Any, mode: str) -> None:
        """``"isolated"`` or ``"cross"``; only while the feed is flat (as on the venues)."""
        if mode not in MARGIN_MODES:
            raise DeleverageError(f"margin mode must be one of {MARGIN_MODES}, got {mode!r}")
        book = self._book(data)
        if book.position.qty and mode != book.margin_mode:
            raise DeleverageError("the margin mode can only change while the position is flat")
        book.margin_mode = mode
        self._refresh_levels()

    def add_listener(self, listener: Any) -> None:
        """Register an object with ``notify_liquidation(event)`` / ``notify_funding(event)``."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def book(self, data: Any) -> Book:
        """The broker's risk state for ``data`` (read-only use)."""
        return self._book(data)

    def _book(self, data: Any) -> Book:
        book = self._books.get(data)
        if book is not None:
            return book
        cfg = self._configs.get(data, {})
        venue = cfg.get("venue", self.p.venue)
        rules = venue_rules(venue)
        inst = get_instrument(venue, cfg.get("symbol", self.p.symbol))
        leverage = float(cfg.get("leverage", self.p.leverage))
        mode = cfg.get("margin_mode", self.p.margin_mode)
        if mode not in MARGIN_MODES:
            raise DeleverageError(f"margin mode must be one of {MARGIN_MODES}, got {mode!r}")
        book = Book(data=data, instrument=inst, rules=rules, leverage=leverage, margin_mode=mode,
                    position=PerpPosition(inst.inverse, inst.contract_size, leverage))
        self._load_tiers(book, None)
        has_funding = getattr(data, "has_funding", False)
        if not has_funding:
            if self.p.funding_rate is None and not self.p.allow_no_funding:
                raise DeleverageError(
                    f"feed {data._name or 'data0'} has no funding_rate column: pass a constant funding rate "
                    "(--funding-rate / PerpBroker(funding_rate=...)) or allow_no_funding=True")
            if self.p.funding_rate is not None:
                self.announcements.append(
                    f"feed {data._name or 'data0'} has no funding data: settling a constant funding rate of "
                    f"{self.p.funding_rate:g} per interval at {rules.funding_hours_utc} UTC")
                # the constant rate becomes the feed's funding line, on the bars holding a settlement
                hours = np.asarray(rules.funding_hours_utc, dtype=np.float64)
                data.set_line_values("funding_rate", funding_schedule(data.times(), hours, float(self.p.funding_rate)))
                has_funding = True
        self.comminfo[data] = PerpCommInfo(inverse=inst.inverse, contract_size=inst.contract_size)
        lines = data.lines
        book.dt_line = lines.datetime
        book.funding_line = lines.funding_rate if has_funding else None
        mark = getattr(data, "has_mark", False)
        book.low_line, book.high_line = lines.low, lines.high
        book.trig_low = lines.mark_low if mark else lines.low
        book.trig_high = lines.mark_high if mark else lines.high
        book.mark_line = lines.mark_close if mark else None
        self._books[data] = book
        self._book_list.append(book)
        if self._primary is None:
            self._primary = data
        return book

    def _load_tiers(self, book: Book, dtnum: float | None) -> None:
        ts = None if dtnum is None else unix_seconds(dtnum)
        table = book.instrument.tiers_at(ts)
        book.floors, book.cums = table.floors_array, table.cums_array
        book.mmrs = table.mmrs_array

    def attach(self, data: Any, **settings: Any) -> Book:
        """Register ``data`` with optional ``venue``, ``symbol``, ``leverage``, ``margin_mode``.

        The runner attaches every feed before the run, so the first feed is the one whose
        per-bar state is recorded and a missing funding source is reported up front.
        """
        self.configure(data, **settings)
        return self._book(data)

    def getcommissioninfo(self, data: Any) -> bt.CommInfoBase:
        if data not in self._books:
            self._book(data)
        return self.comminfo[data]

    # --- risk levels (recomputed on fills and funding, not every bar) ------------------------

    def _mmr_arrays(self, book: Book) -> np.ndarray:
        r = book.rules
        if not (r.mmr_adds_taker_fee or r.mmr_adds_funding):
            return book.mmrs
        side = book.position.side
        return np.array([effective_mmr(m, r.mmr_adds_taker_fee, book.instrument.taker_fee,
                                       r.mmr_adds_funding, side, book.last_rate) for m in book.mmrs])

    def _mark(self, data: Any) -> float:
        if getattr(data, "has_mark", False):
            m = data.mark_close[0]
            if m == m:
                return m
        return data.close[0]

    def _maint(self, book: Book, price: float) -> float:
        pos = book.position
        if not pos.qty:
            return 0.0
        value_price = pos.entry if book.rules.mm_on_entry else price
        value = notional(pos.inverse, pos.qty, pos.contract_size, value_price)
        i = tier_index(value, book.floors)
        mmr = self._mmr_arrays(book)[i]
        return maintenance_margin(value, mmr, book.cums[i])

    def _marked_price(self, data: Any) -> float:
        """The price backtrader's cash is currently marked to for ``data``."""
        base = self.positions[data].adjbase
        return base if base else data.close[0]

    def wallet_balance(self) -> float:
        """Equity minus all unrealized PnL (at the price cash is marked to)."""
        upnl = 0.0
        for data, book in self._books.items():
            if book.position.qty:
                upnl += book.position.unrealized_pnl(self._marked_price(data))
        return self.cash - upnl

    def _refresh_levels(self) -> None:
        """Recompute liquidation and bankruptcy prices of every open position."""
        cross = [b for b in self._books.values() if b.position.qty and b.margin_mode == "cross"]
        wallet = self.wallet_balance() if cross else 0.0
        for book in self._books.values():
            pos = book.position
            if not pos.qty:
                book.liq_price = book.bank_price = _NAN
                continue
            if book.margin_mode == "isolated":
                w, other_mm, other_upnl = pos.collateral, 0.0, 0.0
            else:
                w = wallet - sum(b.position.collateral for b in self._books.values()
                                 if b.position.qty and b.margin_mode == "isolated")
                other_mm = other_upnl = 0.0
                for other in cross:
                    if other is book:
                        continue
                    mark = self._mark(other.data)
                    other_mm += self._maint(other, mark)
                    other_upnl += other.position.unrealized_pnl(mark)
            inv, cs, side = pos.inverse, pos.contract_size, pos.side
            qty, entry = abs(pos.qty), pos.entry
            book.liq_price = liquidation_price_tiered(
                inv, book.rules.mm_on_entry, side, qty, cs, entry, w,
                book.floors, self._mmr_arrays(book), book.cums, other_mm, other_upnl)
            book.bank_price = bankruptcy_price(inv, side, qty, cs, entry, w, other_mm, other_upnl)
        self._multi_cross = len(cross) > 1

    # --- order admission: initial margin against available balance ----------------------------

    def available_balance(self) -> float:
        """Equity not tied up: wallet + cross uPnL - posted collateral (isolated and cross IM)."""
        avail = self.wallet_balance()
        for data, book in self._books.items():
            pos = book.position
            if pos.qty:
                if book.margin_mode == "cross":
                    avail += pos.unrealized_pnl(self._marked_price(data))
                avail -= pos.collateral
        return avail

    def check_submitted(self) -> None:
        available = self.available_balance()
        projected: dict[Any, float] = {}
        while self.submitted:
            order = self.submitted.popleft()
            if self._take_children(order) is None:
                continue
            book = self._book(order.data)
            pos_qty = projected.get(order.data, book.position.qty)
            new_qty = pos_qty + order.size
            added = max(0.0, abs(new_qty) - abs(pos_qty)) if (pos_qty == 0 or (new_qty > 0) == (pos_qty > 0)) \
                else abs(new_qty)
            # a market order fills at the open of the bar being processed: check at that price
            price = order.data.open[0] if order.exectype == bt.Order.Market else (order.created.price or order.data.close[0])
            need = 0.0
            reason = ""
            # the reducing part of an order (a close, or the first leg of a flip) releases its share
            # of the posted margin (and, isolated, realizes its uPnL) for the rest of the order
            released = 0.0
            held = book.position.qty
            if held and pos_qty and (order.size > 0) != (pos_qty > 0):
                frac = min(abs(order.size), abs(pos_qty)) / abs(held)
                released = frac * book.position.collateral
                if book.margin_mode == "isolated":
                    released += frac * book.position.unrealized_pnl(price)
            if added > 0.0:
                inst = book.instrument
                add_notional = notional(inst.inverse, added, inst.contract_size, price)
                # the fee is charged on the whole order, the closing leg of a flip included
                order_notional = notional(inst.inverse, abs(order.size), inst.contract_size, price)
                need = add_notional / book.leverage + trade_fee(order_notional, self._fee_rate(book, order))
                total = notional(inst.inverse, new_qty, inst.contract_size, price)
                max_lev = book.instrument.tiers_at(unix_seconds(order.data.datetime[0])).bracket(total)[2]
                if book.leverage > max_lev + 1e-12:
                    reason = f"leverage {book.leverage:g} exceeds the venue maximum {max_lev:g} for notional {total:,.2f}"
                elif need > available + released + 1e-12:
                    reason = f"needs {need:,.8g} initial margin + fee, available {available + released:,.8g}"
            if reason:
                order.addinfo(rejection=reason)
                order.margin()
                self.notify(order)
                self._ococheck(order)
                self._bracketize(order, cancel=True)
                continue
            available += released - need
            projected[order.data] = new_qty
            self.submit_accept(order)

    @staticmethod
    def _fee_rate(book: Book, order: Any) -> float:
        inst = book.instrument
        return inst.maker_fee if order.exectype == bt.Order.Limit else inst.taker_fee

    # --- fills -------------------------------------------------------------------------------

    def _execute(self, order: Any, ago: Any = None, price: Any = None, cash: Any = None,
                 position: Any = None, dtcoc: Any = None) -> Any:
        if ago is None:
            return super()._execute(order, ago=ago, price=price, cash=cash, position=position, dtcoc=dtcoc)
        before = order.executed.size
        super()._execute(order, ago=ago, price=price, cash=cash, position=position, dtcoc=dtcoc)
        filled = order.executed.size - before
        if filled:
            self._on_fill(order, filled, price)
        return None

    def _on_fill(self, order: Any, filled: float, price: float) -> None:
        data = order.data
        book = self._book(data)
        inst = book.instrument
        liquidation = self._in_liquidation
        self._load_tiers(book, data.datetime[0])
        outcome = apply_fill(book.position, filled, price)
        book.position = outcome.position
        value = notional(inst.inverse, filled, inst.contract_size, price)
        fee = 0.0 if liquidation else trade_fee(value, self._fee_rate(book, order))
        time = num2dt(data.datetime[0])
        self._charge_fee(time, inst.symbol, "trade", fee)
        self.events["fills"].append({
            "time": time, "symbol": inst.symbol, "side": "buy" if filled > 0 else "sell",
            "qty": abs(filled), "price": price, "fee": fee, "realized_pnl": outcome.realized_pnl,
            "kind": "liquidation" if liquidation else "trade",
        })
        bt_size = self.positions[data].size
        if abs(bt_size - book.position.qty) > 1e-9 * max(1.0, abs(bt_size)):
            raise AssertionError(f"position books disagree: backtrader {bt_size} vs risk {book.position.qty}")
        book.changed = True
        self._refresh_levels()
        self._dirty = True

    # --- events --------------------------------------------------------------------------------

    def _charge_fee(self, time: datetime, symbol: str, kind: str, amount: float) -> None:
        """Take a fee out of the account and record it (``kind``: trade or liquidation)."""
        if amount:
            self.cash -= amount
            self._fees_cum += amount
            self.events["fees"].append({"time": time, "symbol": symbol, "kind": kind, "amount": amount})

    def _emit(self, table: str, event: dict[str, Any], hook: str) -> None:
        """Record an event that changed the account, refresh the risk levels, tell the listeners."""
        self.events[table].append(event)
        self._refresh_levels()
        self._dirty = True
        for listener in self._listeners:
            fn = getattr(listener, hook, None)
            if fn:
                fn(event)

    # --- funding -----------------------------------------------------------------------------

    def _settle_funding(self, book: Book, rate: float) -> None:
        data = book.data
        book.last_rate = rate
        self._load_tiers(book, data.datetime[0])
        pos = book.position
        if not pos.qty:
            return
        price = data.mark_open[0] if getattr(data, "has_mark", False) else _NAN
        if price != price:
            price = data.open[0]
        amount = funding_payment(pos.inverse, pos.qty, pos.contract_size, price, rate)
        self.cash += amount
        self._funding_cum += amount
        if book.margin_mode == "isolated":
            book.position = apply_funding(pos, amount)
        event = {"time": num2dt(data.datetime[0]), "symbol": book.instrument.symbol,
                 "position_qty": pos.qty, "price": price, "rate": rate, "amount": amount}
        self._emit("funding", event, "notify_funding")

    # --- liquidation -------------------------------------------------------------------------

    def _trigger_extremes(self, data: Any) -> tuple[float, float, float]:
        if data.has_mark:
            low, high, opn = data.mark_low[0], data.mark_high[0], data.mark_open[0]
            if low == low:
                return low, high, opn
        return data.low[0], data.high[0], data.open[0]

    def _check_liquidation(self, book: Book, pre_orders: bool) -> None:
        pos = book.position
        if not pos.qty:
            return
        if self._multi_cross and book.margin_mode == "cross":
            self._refresh_levels()
        lp = book.liq_price
        if lp != lp:
            return
        low, high, opn = self._trigger_extremes(book.data)
        side = pos.side
        if (side > 0 and low > lp) or (side < 0 and high < lp):
            return
        if pre_orders:
            if self._stop_first(book, lp, side):
                return
            # A market order of this feed fills at this bar's open, before the bar's extreme: let
            # it fill first and check what is left after the fills, unless the open itself is
            # already through the liquidation price (a gap: the engine acts before the order).
            if ((side > 0 and opn > lp) or (side < 0 and opn < lp)) and self._market_order_due(book.data):
                book.deferred = True
                return
        self._liquidate(book, low if side > 0 else high, opn)

    def _market_order_due(self, data: Any) -> bool:
        for queue in (self.submitted, self.pending):
            for order in queue:
                if order is not None and order.data is data and order.exectype == bt.Order.Market and order.alive():
                    return True
        return False

    def _stop_first(self, book: Book, lp: float, side: int) -> bool:
        for order in self.pending:
            if order is None or order.data is not book.data or not order.alive():
                continue
            if order.exectype in (bt.Order.Stop, bt.Order.StopLimit, bt.Order.StopTrail, bt.Order.StopTrailLimit):
                trigger = order.created.price
                if side > 0 and order.size < 0 and trigger > lp:
                    return True
                if side < 0 and order.size > 0 and trigger < lp:
                    return True
        return False

    def _liquidate(self, book: Book, trigger_price: float, trigger_open: float) -> None:
        data, pos, inst, rules = book.data, book.position, book.instrument, book.rules
        side, qty = pos.side, abs(pos.qty)
        lp, bp = book.liq_price, book.bank_price
        fill = liquidation_fill_price(rules.liquidation_fill == "bankruptcy", side, lp, bp, trigger_open)
        for order in list(self.pending):
            if order is not None and order.data is data and order.alive():
                self.cancel(order)
        collateral_before = pos.collateral
        order_cls = bt.order.SellOrder if side > 0 else bt.order.BuyOrder
        order = order_cls(owner=None, data=data, size=qty, price=fill, exectype=bt.Order.Market)
        order.addcomminfo(self.getcommissioninfo(data))
        order.addinfo(liquidation=True, liquidation_price=lp, bankruptcy_price=bp, trigger_price=trigger_price)
        self._ocoize(order, None)
        self.orders.append(order)
        order.submit(self)
        order.accept(self)
        self._in_liquidation = True
        try:
            self._execute(order, ago=0, price=fill)
        finally:
            self._in_liquidation = False
        realized = self.events["fills"][-1]["realized_pnl"]
        if book.margin_mode == "cross":
            # the cross pool after the close: equity less what isolated positions hold
            remaining = self.cash
            for other in self._books.values():
                if other is not book and other.position.qty and other.margin_mode == "isolated":
                    remaining -= other.position.collateral + other.position.unrealized_pnl(
                        self._marked_price(other.data))
        else:
            remaining = collateral_before + realized  # margin left in the position after the close
        fee, to_fund = liquidation_clearance(rules.liquidation_fill == "bankruptcy", inst.inverse, side, qty,
                                             inst.contract_size, fill, lp, inst.liquidation_fee_rate, remaining)
        time = num2dt(data.datetime[0])
        self._charge_fee(time, inst.symbol, "liquidation", fee)
        self.insurance_fund += to_fund
        event = {
            "time": time, "symbol": inst.symbol, "side": "long" if side > 0 else "short", "qty": qty,
            "trigger_price": trigger_price, "liquidation_price": lp, "bankruptcy_price": bp,
            "fill_price": fill, "fee": fee, "insurance_fund": to_fund, "realized_pnl": realized,
            "equity_after": self.cash,
        }
        self._emit("liquidations", event, "notify_liquidation")

    # --- the bar -----------------------------------------------------------------------------

    def next(self) -> None:
        multi_cross = self._multi_cross
        for book in self._book_list:
            book.changed = book.deferred = False
            line = book.funding_line
            if line is not None:
                rate = line[0]
                if rate == rate:
                    self._settle_funding(book, rate)
            qty = book.position.qty
            if qty:
                if multi_cross and book.margin_mode == "cross":
                    self._check_liquidation(book, pre_orders=True)
                    continue
                lp = book.liq_price
                if lp == lp:  # quick reject before the full check
                    if qty > 0:
                        low = book.trig_low[0]
                        if low > lp or (low != low and book.low_line[0] > lp):
                            continue
                    else:
                        high = book.trig_high[0]
                        if high < lp or (high != high and book.high_line[0] < lp):
                            continue
                    self._check_liquidation(book, pre_orders=True)
        super().next()
        liquidations = len(self.events["liquidations"])
        for book in self._book_list:
            if (book.changed or book.deferred) and book.position.qty:
                self._check_liquidation(book, pre_orders=False)
        revalue = len(self.events["liquidations"]) != liquidations
        for book in self._book_list:
            # backtrader marked positions to the last close; venues value them at the mark
            if book.mark_line is not None and book.position.qty:
                mark = book.mark_line[0]
                bt_pos = self.positions[book.data]
                if mark == mark and bt_pos.size and mark != bt_pos.adjbase:
                    self.cash += self.comminfo[book.data].cashadjust(bt_pos.size, bt_pos.adjbase, mark)
                    bt_pos.adjbase = mark
                    revalue = True
        if revalue:
            self._get_value()  # backtrader caches the value at the end of its next()
        if self.p.record:
            self._equity.append(self.cash)
            if self._dirty:
                self._log_state()

    def _log_state(self) -> None:
        self._dirty = False
        book = self._books.get(self._primary)
        if book is None:
            return
        pos = book.position
        self._state_log.append((len(self._equity) - 1, pos.qty, pos.entry, pos.collateral, book.liq_price,
                                self._funding_cum, self._fees_cum))

    def recorded(self) -> dict[str, np.ndarray]:
        """The primary feed's per-bar record: dt (backtrader date numbers), equity, qty, entry,
        collateral, close, mark, liq, funding_cum, fees_cum (arrays of one value per bar)."""
        n = len(self._equity)
        if self._recorded is not None and len(self._recorded["equity"]) == n:
            return self._recorded
        data = self._primary
        columns = dict(zip(("datetime", "open", "high", "low", "close"), data._columns[:5]))
        close = np.asarray(columns["close"][:n], dtype=np.float64)
        mark = np.asarray(data.frame["mark_close"].to_numpy(dtype=np.float64)[:n]) if data.has_mark else close
        mark = np.where(np.isnan(mark), close, mark)
        out = {"dt": np.asarray(columns["datetime"][:n], dtype=np.float64),
               "equity": np.asarray(self._equity, dtype=np.float64), "close": close, "mark": mark}
        state = np.zeros((n, 6))
        state[:, 3] = np.nan
        log = self._state_log
        for k, row in enumerate(log):
            stop = log[k + 1][0] if k + 1 < len(log) else n
            state[row[0]:stop] = row[1:]
        for j, name in enumerate(("qty", "entry", "collateral", "liq", "funding_cum", "fees_cum")):
            out[name] = state[:, j]
        self._recorded = out
        return out

    @property
    def _rec(self) -> dict[str, np.ndarray]:
        return self.recorded()

    @property
    def _rec_funding(self) -> np.ndarray:
        return self.recorded()["funding_cum"]

    @property
    def _rec_fees(self) -> np.ndarray:
        return self.recorded()["fees_cum"]

    _multi_cross = False
