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
clearance), a funding payment, a liquidation. ``events`` holds them as plain rows. The trade
fee is backtrader's commission of the fill (:class:`PerpCommInfo` charges the maker or taker
rate the broker sets for the order), so ``order.executed.comm``, ``trade.commission`` and
``trade.pnlcomm`` (hence TradeAnalyzer and SQN) are net of it; funding is not attributed to
trades (it is an account event, ``events["funding"]``).

Per bar, for each feed (the hot path; kept to a few float comparisons):

1. **Funding**: if the bar holds a settlement (``funding_rate`` not NaN in the feed; or, for a
   feed without a funding column, a venue funding hour at the configured constant rate), the
   position held at the settlement instant (the bar's open, before this bar's fills) pays or
   receives ``risk.formulas.funding_payment`` at the bar's mark open (last open without mark).
2. **Liquidation, before orders**: the position held at the bar's open is checked against the
   bar's adverse extreme of the trigger series (mark OHLC when the feed has it, else last
   price): low for a long, high for a short. A wick inside the bar liquidates even if the
   close recovers. A resting protective order (Stop, StopLimit, StopTrail) defers the check
   only when it really fills first on the bar's path (:func:`risk.path.first_exit`, the rule
   the fast engine applies too; :meth:`PerpBroker._stop_first`); the position is re-checked
   after the fills either way. If a market order of that
   feed fills at this open, the order goes first (the open comes before the bar's extreme)
   and the check moves to step 4, unless the open itself is through the liquidation price.
3. backtrader processes orders (market orders fill at this bar's open) and marks to market.
4. **Liquidation, after fills**: a position opened or changed in this bar, or whose check
   waited for a market order, is checked against the same bar's extreme (pessimistic: the
   extreme may come after the fill).

backtrader compatibility (issue 11): :meth:`PerpBroker.start` resets the books per run (re-runs,
``optstrategy`` with ``maxcpus=1``); orders are checked against the venue's lot size and
minimum notional (``Rejected``, ``order.info["rejection"]``) and for initial margin
(``Margin``), where bracket children and any reducing part never need margin;
``getvalue(datas=[d])`` is the position's signed notional (``order_target_*``);
``setcommission(commission=x)`` / ``addcommissioninfo`` override the fee rate and refuse
futures-style arguments by name; stock feeds (PandasData, GenericCSVData) and resampled or
replayed clones trade on the last price with funding settled by time.

Several feeds in cross margin (two or more cross books) share one wallet and are liquidated by
the account, not position by position: once per bar, after the fills, the venue's account rule
(:mod:`risk.account`; :meth:`PerpBroker._account_liquidation`) checks the account's margin
balance against the sum of maintenance margins at each position's adverse extreme and closes the
positions it picks (largest loss first; Hyperliquid: all), re-evaluating after each close.

A liquidation cancels the feed's open orders, closes the whole position through backtrader
(the order carries ``info["liquidation"] = True`` and reaches ``notify_order``), charges the
venue's clearance fee to an insurance-fund ledger (an insolvent position, bankrupt at the open with
no margin behind it: no fee, the fund credits the account its shortfall, the event's
``insurance_cover``), and is announced to listeners through ``notify_liquidation(event)``; funding
through ``notify_funding(event)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import backtrader as bt
import numpy as np

from engine.bt_data import PerpData, unix_seconds

from risk.errors import DeleverageError
from risk.formulas import (
    backstop_charge,
    bankruptcy_price,
    effective_mmr,
    funding_payment,
    funding_schedule,
    fill_beyond_bankruptcy,
    liquidation_charge,
    liquidation_fill,
    liquidation_price_tiered,
    maintenance_margin,
    next_funding_time,
    notional,
    tier_index,
    trade_fee,
    unrealized_pnl,
)
from risk.account import ACCOUNT_RULES, ORDER_ALL, account_backstop, account_margin_ratio, next_to_liquidate, others
from risk.adl import ADL_RULES, AdlRule, adl_close_qty, indicator_lights, rank_quantile, score_binance, \
    score_hyperliquid, score_pnl_leverage
from risk.instrument import PerpInstrument
from risk.partial import PARTIAL_RULES, RULE_WHOLE, PartialRule, partial_liquidation_step
from risk.path import LEG_OPEN, LIQUIDATION, NONE, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, first_exit, trailing_level
from risk.position import PerpPosition, apply_fill, apply_funding
from risk.venues import VenueRules, get_instrument, venue_rules

MARGIN_MODES = ("isolated", "cross")
_NAN = math.nan


def adl_announcement(name: str, label: str | None, quantile: float | None, population: bool,
                     queue_notional: float) -> str:
    """What a run with an ADL flow announces (both engines): the flow's label and the assumptions."""
    label = label or "the feed's adl_long_notional / adl_short_notional columns"
    return (f"feed {name} carries an ADL flow ({label}): a profitable position on the deleveraged side is "
            f"closed per bar by risk.adl.adl_close_qty at the bar's mark, ranked at quantile "
            + (f"{quantile:g} (given)" if quantile is not None else
               ("from the given score population" if population else
                "1.0 (assumed: the front of the queue, the worst case)"))
            + f", queue notional ahead {float(queue_notional):,.0f} (assumed)")


def num2dt(value: float) -> datetime:
    """backtrader's float date to an aware UTC datetime."""
    return bt.num2date(value).replace(tzinfo=timezone.utc)


class PerpCommInfo(bt.CommInfoBase):
    """Futures-like, zero margin per contract, mark-to-market cash, fees charged by the broker.

    With no margin taken out of ``cash`` and PnL moved into cash every bar, backtrader's cash
    equals account equity. The commission of a fill is its trade fee, ``fee_rate`` x notional
    (the broker sets the maker or taker rate of the order before each fill, 0 for liquidation
    closes; the clearance fee is charged separately by the broker); ``getsize`` converts a
    value in settle currency to contracts (inverse: USD contracts) rounded to the lot.
    """

    params = (("inverse", False), ("contract_size", 1.0), ("stocklike", False), ("margin", 1.0), ("lot_size", 0.0))

    def __init__(self) -> None:
        super().__init__()
        self._stocklike = False
        self._inverse = bool(self.p.inverse)
        self._cs = float(self.p.contract_size)
        self._lot = float(self.p.lot_size)
        self.fee_rate = 0.0  # set by the broker around each fill (maker/taker by order type; 0 for liquidations)

    def get_margin(self, price: float) -> float:
        return 0.0

    def getsize(self, price: float, cash: float) -> float:
        """Contracts worth ``cash`` (settle currency) of notional at ``price``, toward zero to the lot
        (``order_target_value`` sizes with it)."""
        qty = cash / notional(self._inverse, 1.0, self._cs, price)
        if self._lot > 0:
            qty = math.copysign(math.floor(abs(qty) / self._lot + 1e-9) * self._lot, qty)
        return qty

    def getoperationcost(self, size: float, price: float) -> float:
        return 0.0

    def getvaluesize(self, size: float, price: float) -> float:
        return 0.0

    def getvalue(self, position: Any, price: float) -> float:
        return 0.0

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        # the trade fee of the fill being executed: backtrader takes it out of cash and books it on
        # the order (order.executed.comm) and its trade (trade.commission, trade.pnlcomm)
        return trade_fee(notional(self._inverse, abs(size), self._cs, price), self.fee_rate)

    def profitandloss(self, size: float, price: float, newprice: float) -> float:
        return unrealized_pnl(self._inverse, size, self._cs, price, newprice)

    def cashadjust(self, size: float, price: float, newprice: float) -> float:
        if not size or price == newprice:
            return 0.0
        return unrealized_pnl(self._inverse, size, self._cs, price, newprice)


class PerpTrade(bt.trade.Trade):
    """backtrader's Trade with the venues' **harmonic** average entry on inverse contracts.

    An inverse position's entry is ``total contracts / sum(contracts / price)`` (BitMEX, Binance
    COIN-M), not the arithmetic mean backtrader uses; PnL ``q x cs x (1/entry - 1/exit)`` of a
    trade added to at several prices is only right with it. Linear contracts and any other
    commission scheme behave exactly as stock backtrader. Installed as the ``Trade`` class
    backtrader's strategies create (``backtrader.strategy.Trade``) when this module is imported.
    """

    def update(self, order: Any, size: float, price: float, value: float, commission: float, pnl: float,
               comminfo: Any) -> None:
        old, old_price = self.size, self.price
        super().update(order, size, price, value, commission, pnl, comminfo)
        if (size and old and isinstance(comminfo, PerpCommInfo) and comminfo._inverse
                and abs(self.size) > abs(old) and (self.size > 0) == (old > 0)):
            self.price = self.size / (old / old_price + size / price)
            self.value = comminfo.getvaluesize(self.size, self.price)


bt.strategy.Trade = PerpTrade


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
    has_mark: bool = False  # liquidation triggers on the feed's mark OHLC (native PerpData with mark columns)
    maker_fee: float = 0.0
    taker_fee: float = 0.0
    # funding of feeds without a funding line: (times, rates) of a source's prints, or (hours, rate)
    schedule: Any = None
    schedule_i: int = 0
    schedule_next: float = _NAN
    # venue mechanics (issue 15): the partial-liquidation rule, Hyperliquid's cooldown, the ADL flow lines
    partial: PartialRule | None = None
    cooldown_until: float = -math.inf  # unix seconds: a partial liquidation's cooldown ends here
    adl: AdlRule | None = None
    adl_long: Any = None  # notional of longs auto-deleveraged in the bar (PerpData line), or None
    adl_short: Any = None
    # trailing stops (risk.path): the best price since the last fill, and the bar's decision of the
    # position's exit group ((bar, group) key, kind, price), dropped at every fill
    trail_peak: float = _NAN
    trail_decision: Any = None


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
        ("maker_fee", None),
        ("taker_fee", None),
        ("partial_liquidation", False),
        ("adl_quantile", None),
        ("adl_queue_notional", 0.0),
        ("adl_population", None),
    )

    def __init__(self) -> None:
        super().__init__()
        self._configs: dict[Any, dict[str, Any]] = {}
        self._listeners: list[Any] = []
        self._fee_override: dict[Any, float] = {}  # setcommission(commission=..., name=...): name (None: all) -> rate
        self._reset_state()

    def start(self) -> None:
        """A run starts from a clean account: backtrader resets cash, orders and positions; this resets
        the perpetual books (leverage and margin mode back to their configured values), events, the
        insurance ledger and the records, so re-runs and ``optstrategy`` with ``maxcpus=1`` give
        every run the result of a fresh one."""
        attached = [book.data for book in getattr(self, "_book_list", [])]
        super().start()
        self._reset_state()
        for data in attached:
            self._book(data)

    def _reset_state(self) -> None:
        self._books: dict[Any, Book] = {}
        self.events: dict[str, list[dict[str, Any]]] = {
            "fills": [], "funding": [], "liquidations": [], "fees": [], "adl": [],
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
        self._forced_kind = "liquidation"  # kind of the fill a forced close records: liquidation or adl
        self._multi_cross = False
        self._account_mode = False  # two or more cross feeds: account-level liquidation (_account_liquidation)
        self._generic_record = False  # the primary feed is not a plain PerpData: record its dt/close per bar
        self._dts: list[float] = []
        self._closes: list[float] = []

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
        self._update_account_mode()
        self._refresh_levels()

    def add_listener(self, listener: Any) -> None:
        """Register an object with ``notify_liquidation(event)`` / ``notify_funding(event)`` /
        ``notify_adl(event)``."""
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
        native = isinstance(data, PerpData) and not data._filters  # its own lines are the bar's (no resampler)
        aliases = data.lines.getlinealiases()
        has_funding = getattr(data, "has_funding", False) if native else (
            "funding_rate" in aliases and not isinstance(data, PerpData))
        source = data if isinstance(data, PerpData) else getattr(data.p, "dataname", None)
        name = data._name or "data0"
        if not has_funding and not native and isinstance(source, PerpData) and source.has_funding:
            # a resampled/replayed PerpData or a clone of one: settle the source's funding prints by time
            frame = source.frame
            rates = frame["funding_rate"].to_numpy(dtype=np.float64, na_value=np.nan)
            keep = ~np.isnan(rates)
            book.schedule = (source.times()[keep], rates[keep])
            book.schedule_i = 0
        elif not has_funding:
            if self.p.funding_rate is None and not self.p.allow_no_funding:
                raise DeleverageError(
                    f"feed {name} has no funding_rate column: pass a constant funding rate "
                    "(--funding-rate / PerpBroker(funding_rate=...)) or allow_no_funding=True")
            if self.p.funding_rate is not None:
                self.announcements.append(
                    f"feed {name} has no funding data: settling a constant funding rate of "
                    f"{self.p.funding_rate:g} per interval at {rules.funding_hours_utc} UTC")
                hours = np.asarray(rules.funding_hours_utc, dtype=np.float64)
                if native:  # the constant rate becomes the feed's funding line, on the bars holding a settlement
                    data.set_line_values("funding_rate",
                                         funding_schedule(data.times(), hours, float(self.p.funding_rate)))
                    has_funding = True
                else:  # any other feed: settled at the first bar at or after each settlement time
                    book.schedule = (hours, float(self.p.funding_rate))
                    book.schedule_i = -1
        override = self._fee_override.get(name, self._fee_override.get(None))
        book.maker_fee = inst.maker_fee if self.p.maker_fee is None else float(self.p.maker_fee)
        book.taker_fee = inst.taker_fee if self.p.taker_fee is None else float(self.p.taker_fee)
        if override is not None:
            book.maker_fee = book.taker_fee = override
        self.comminfo[data] = PerpCommInfo(inverse=inst.inverse, contract_size=inst.contract_size,
                                           lot_size=inst.lot_size)
        lines = data.lines
        book.dt_line = lines.datetime
        book.funding_line = lines.funding_rate if has_funding else None
        mark = native and getattr(data, "has_mark", False)
        book.has_mark = mark
        book.low_line, book.high_line = lines.low, lines.high
        book.trig_low = lines.mark_low if mark else lines.low
        book.trig_high = lines.mark_high if mark else lines.high
        book.mark_line = lines.mark_close if mark else None
        book.partial = PARTIAL_RULES.get(venue) if self.p.partial_liquidation else None
        if book.partial is not None and book.partial.rule == RULE_WHOLE:
            book.partial = None
        if native and getattr(data, "has_adl", False):
            book.adl = ADL_RULES[venue]
            book.adl_long, book.adl_short = lines.adl_long_notional, lines.adl_short_notional
            self.announcements.append(adl_announcement(name, data.attrs.get("adl_label"), self.p.adl_quantile,
                                                       self.p.adl_population is not None,
                                                       self.p.adl_queue_notional))
        self._books[data] = book
        self._book_list.append(book)
        self._update_account_mode()
        if self._primary is None:
            self._primary = data
            self._generic_record = not native
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
        if self._books[data].has_mark:
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

    def _margin_context(self, book: Book) -> tuple[float, float, float]:
        """``(wallet, other_mm, other_upnl)`` backing ``book``'s position, as the liquidation-price
        formulas take them: its isolated collateral, or the cross wallet (less what isolated
        positions hold) with the other cross positions' maintenance margin and uPnL at their marks."""
        pos = book.position
        if book.margin_mode == "isolated":
            return pos.collateral, 0.0, 0.0
        w = self._cross_wallet()
        other_mm = other_upnl = 0.0
        for other in self._books.values():
            if other is book or not other.position.qty or other.margin_mode != "cross":
                continue
            mark = self._mark(other.data)
            other_mm += self._maint(other, mark)
            other_upnl += other.position.unrealized_pnl(mark)
        return w, other_mm, other_upnl

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
            inst = book.instrument
            # venue limits: the lot (quantity step) and the minimum order notional
            lots = abs(order.size) / inst.lot_size
            invalid = ""
            if abs(lots - round(lots)) > 1e-6 * max(1.0, lots) or round(lots) == 0:
                invalid = (f"size {abs(order.size):.10g} is not a multiple of the lot size {inst.lot_size:g} "
                           f"of {inst.venue} {inst.symbol}")
            # a bracket child (stop-loss / take-profit) exits its parent's position: it never opens
            # exposure of its own and is not checked for margin (nor counted towards the projection)
            exit_child = order.parent is not None
            pos_qty = projected.get(order.data, book.position.qty)
            # a resting order (stop, limit, trailing) that only reduces the position (as it will be
            # once the orders before it fill) is an exit too: never checked for margin, and not
            # projected (a stop-loss and a take-profit of one OCO group are alternatives, not both fills)
            if (order.exectype != bt.Order.Market and pos_qty and (order.size > 0) != (pos_qty > 0)
                    and abs(order.size) <= abs(pos_qty) * (1 + 1e-12)):
                exit_child = True
                if order.parent is None:
                    # admitted as reduce-only: it is cancelled, never filled, once it no longer
                    # reduces the position (see _execute), as the venues' reduce-only stops are
                    order.addinfo(reduce_only=True)
            new_qty = pos_qty + order.size
            added = max(0.0, abs(new_qty) - abs(pos_qty)) if (pos_qty == 0 or (new_qty > 0) == (pos_qty > 0)) \
                else abs(new_qty)
            if exit_child:
                added = 0.0
            # a market order fills at the open of the bar being processed: check at that price
            price = order.data.open[0] if order.exectype == bt.Order.Market else (order.created.price or order.data.close[0])
            need = 0.0
            reason = ""
            if not invalid and added > 0.0 and inst.min_notional > 0:
                value = abs(order.size) * inst.contract_size * (1.0 if inst.inverse else price)  # quote currency
                if value < inst.min_notional * (1 - 1e-9):
                    invalid = (f"order notional {value:,.8g} is below the minimum {inst.min_notional:g} "
                               f"of {inst.venue} {inst.symbol}")
            if invalid:
                order.addinfo(rejection=invalid)
                order.reject(self)
                self.notify(order)
                self._ococheck(order)
                self._bracketize(order, cancel=True)
                continue
            # the reducing part of an order (a close, or the first leg of a flip) releases its share
            # of the posted margin (and, isolated, realizes its uPnL) for the rest of the order
            released = 0.0
            held = book.position.qty
            if held and pos_qty and (order.size > 0) != (pos_qty > 0) and not exit_child:
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
            if not exit_child:
                projected[order.data] = new_qty
            self.submit_accept(order)

    @staticmethod
    def _fee_rate(book: Book, order: Any) -> float:
        """Maker fee for limit orders, taker fee otherwise (the venue's, or the override)."""
        return book.maker_fee if order.exectype == bt.Order.Limit else book.taker_fee

    # --- backtrader's commission API: a fee override, or a clear refusal ------------------------

    def setcommission(self, commission: float = 0.0, margin: Any = None, mult: float = 1.0, commtype: Any = None,
                      percabs: bool = True, stocklike: bool = False, interest: float = 0.0,
                      interest_long: bool = False, leverage: float = 1.0, automargin: bool = False,
                      name: str | None = None) -> None:
        """``commission`` overrides the venue's maker and taker fee (a fraction of notional, as
        backtrader's ``percabs=True``) for the feed ``name`` (None: every feed). Everything else a
        perpetual defines itself (contract size, margin, leverage, funding instead of interest):
        any other argument set away from backtrader's default is refused, naming it."""
        given = {"margin": (margin, None), "mult": (mult, 1.0), "commtype": (commtype, None),
                 "percabs": (percabs, True), "stocklike": (stocklike, False), "interest": (interest, 0.0),
                 "interest_long": (interest_long, False), "leverage": (leverage, 1.0),
                 "automargin": (automargin, False)}
        bad = [f"{k}={v!r}" for k, (v, default) in given.items() if v != default]
        if bad:
            raise DeleverageError(
                f"setcommission: the perpetual broker does not support {', '.join(bad)}: contract size and "
                "margin come from the venue's instrument, leverage from set_leverage/--leverage, funding "
                "replaces interest; only commission= (a fee rate, fraction of notional) is honoured")
        self._set_fee_override(float(commission), name)

    def addcommissioninfo(self, comminfo: Any, name: str | None = None) -> None:
        """Honoured as a fee override when ``comminfo`` is a percentage commission on notional
        (``CommInfoBase(commission=x)`` with no margin, multiplier, interest or leverage); refused,
        naming the unsupported parameters, otherwise."""
        p = comminfo.p
        bad = [f"{k}={getattr(p, k)!r}" for k, default in (("mult", 1.0), ("interest", 0.0), ("leverage", 1.0),
                                                           ("automargin", False)) if getattr(p, k) != default]
        if p.margin:
            bad.insert(0, f"margin={p.margin!r}")
        if getattr(comminfo, "_commtype", None) != bt.CommInfoBase.COMM_PERC:
            bad.append("commtype=COMM_FIXED (a fee per contract)")
        if type(comminfo).getcommission is not bt.CommInfoBase.getcommission or \
                type(comminfo)._getcommission is not bt.CommInfoBase._getcommission:
            bad.append(f"a custom commission function ({type(comminfo).__name__})")
        if bad:
            raise DeleverageError(
                f"addcommissioninfo: the perpetual broker does not support {', '.join(bad)}: contract size and "
                "margin come from the venue's instrument, leverage from set_leverage/--leverage, funding "
                "replaces interest; only a percentage commission (a fee rate on notional) is honoured")
        self._set_fee_override(float(p.commission), name)

    def _set_fee_override(self, rate: float, name: str | None) -> None:
        if not math.isfinite(rate):
            raise DeleverageError(f"setcommission: commission must be a finite fee rate, got {rate}")
        self._fee_override[name] = rate
        for data, book in self._books.items():
            if name is None or data._name == name:
                book.maker_fee = book.taker_fee = rate

    def get_value(self, datas: Any = None, mkt: bool = False, lever: bool = False) -> float:
        """The account equity (``datas`` None), or the signed notional of the positions on ``datas``
        at the price cash is marked to, in settle currency (what ``order_target_value`` and
        ``order_target_percent`` compare their target with)."""
        if datas is None:
            return super().get_value(None, mkt=mkt, lever=lever)
        total = 0.0
        for data in datas:
            size = self.positions[data].size
            if size:
                inst = self._book(data).instrument
                total += notional(inst.inverse, size, inst.contract_size, self._marked_price(data))
        return total

    getvalue = get_value

    # --- fills -------------------------------------------------------------------------------

    def _execute(self, order: Any, ago: Any = None, price: Any = None, cash: Any = None,
                 position: Any = None, dtcoc: Any = None) -> Any:
        if ago is None:
            return super()._execute(order, ago=ago, price=price, cash=cash, position=position, dtcoc=dtcoc)
        book = self._book(order.data)
        if order.info.get("reduce_only") and not self._in_liquidation:
            held = book.position.qty
            if not held or (order.size > 0) == (held > 0) or abs(order.size) > abs(held) * (1 + 1e-12):
                # a resting exit admitted without margin whose position is gone (closed by another
                # order, a liquidation or ADL): filling it would open exposure nobody checked
                order.addinfo(rejection="reduce-only: no position left for it to reduce; cancelled")
                order.cancel()
                self.notify(order)
                self._ococheck(order)
                return None
        self.comminfo[order.data].fee_rate = 0.0 if self._in_liquidation else self._fee_rate(book, order)
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
        # backtrader already took the fee out of cash (PerpCommInfo's commission, on the order and trade)
        self._charge_fee(time, inst.symbol, "trade", fee, deducted=True)
        self.events["fills"].append({
            "time": time, "symbol": inst.symbol, "side": "buy" if filled > 0 else "sell",
            "qty": abs(filled), "price": price, "fee": fee, "realized_pnl": outcome.realized_pnl,
            "kind": self._forced_kind if liquidation else "trade",
        })
        bt_size = self.positions[data].size
        if abs(bt_size - book.position.qty) > 1e-9 * max(1.0, abs(bt_size)):
            raise AssertionError(f"position books disagree: backtrader {bt_size} vs risk {book.position.qty}")
        book.changed = True
        book.trail_peak = _NAN  # the trailing peak restarts at each fill (as in engine.fast)
        book.trail_decision = None
        self._refresh_levels()
        self._dirty = True

    # --- events --------------------------------------------------------------------------------

    def _charge_fee(self, time: datetime, symbol: str, kind: str, amount: float, deducted: bool = False) -> None:
        """Take a fee out of the account (unless backtrader already did: ``deducted``) and record it
        (``kind``: trade or liquidation)."""
        if amount:
            if not deducted:
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
        price = data.mark_open[0] if book.has_mark else _NAN
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

    def _scheduled_funding(self, book: Book) -> None:
        """Funding of a feed without a funding line (a stock backtrader feed, a resampled or
        replayed PerpData): each settlement is paid at the first bar whose time is at or after it,
        at that bar's open; several settlements inside one bar are paid one by one."""
        now = book.dt_line[0]
        times, rates = book.schedule
        if book.schedule_i < 0:  # a constant rate at the venue's funding hours
            if book.schedule_next != book.schedule_next:
                book.schedule_next = next_funding_time(now, times)
            while now >= book.schedule_next - 1e-9:
                self._settle_funding(book, rates)
                book.schedule_next = next_funding_time(book.schedule_next + 1.0 / 86400.0, times)
            return
        i, n = book.schedule_i, len(times)
        while i < n and times[i] <= now + 1e-9:
            self._settle_funding(book, float(rates[i]))
            i += 1
        book.schedule_i = i

    # --- liquidation -------------------------------------------------------------------------

    def _trigger_extremes(self, data: Any) -> tuple[float, float, float]:
        if self._books[data].has_mark:
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
                book.deferred = True  # re-checked after backtrader's fills
                return
            # A market order of this feed fills at this bar's open, before the bar's extreme: let
            # it fill first and check what is left after the fills, unless the open itself is
            # already through the liquidation price (a gap: the engine acts before the order), or
            # the order would fill an isolated position beyond its bankruptcy price (the last
            # price gapped past it while the mark had not): an isolated position never loses more
            # than its margin, so that loss is the liquidation's (risk.formulas.fill_beyond_bankruptcy).
            if ((side > 0 and opn > lp) or (side < 0 and opn < lp)) and self._market_order_due(book.data) \
                    and not fill_beyond_bankruptcy(book.margin_mode == "isolated", side, book.bank_price,
                                                   book.data.open[0]):
                book.deferred = True
                return
        trigger = low if side > 0 else high
        if book.partial is not None and not self._insolvent(book, opn) and not self._partial_liquidation(book, trigger):
            return  # the venue's partial close left the position margin compliant
        if book.position.qty:
            self._liquidate(book, trigger, opn)

    def _insolvent(self, book: Book, trigger_open: float) -> bool:
        """The position has no margin left and is bankrupt at the bar's open (a funding payment took
        more than its margin): the venue closes all of it, no partial step (risk.formulas.liquidation_fill)."""
        w, other_mm, other_upnl = self._margin_context(book)
        return liquidation_fill(book.rules.liquidation_fill == "bankruptcy", book.position.side, book.liq_price,
                                book.bank_price, trigger_open, w - other_mm + other_upnl)[1]

    def _partial_liquidation(self, book: Book, price: float, context: tuple[float, float, float] | None = None,
                             extra: dict[str, Any] | None = None) -> bool:
        """The venue's partial-liquidation step (:func:`risk.partial.partial_liquidation_step`)
        at ``price``, the bar's adverse extreme of the trigger series (the close the venue would
        need for the position to survive the whole bar). Returns whether the full liquidation of
        what is left follows.

        The partial close cancels the feed's open orders (as the venues do first), fills through
        backtrader at ``price`` (``info["liquidation"]`` and ``info["partial"]`` set), pays the
        rule's fee (clearance fee, to the insurance-fund ledger; BitMEX/Bybit FOK: the taker fee,
        to the venue) and keeps the isolated margin with the position: its collateral becomes
        ``collateral + realized PnL - fee`` (the kernel's ``wallet_after``). A ``liquidations``
        row with ``partial=True``, ``qty`` closed and ``qty_left`` records it. ``context``: the
        ``(wallet, other_mm, other_upnl)`` to judge it in (default :meth:`_margin_context`; the
        account-level liquidation passes the others at their extremes); ``extra``: more event fields.
        """
        pos, inst, rule = book.position, book.instrument, book.partial
        side, qty = pos.side, abs(pos.qty)
        wallet, other_mm, other_upnl = context if context is not None else self._margin_context(book)
        fee_rate = {"liquidation": inst.liquidation_fee_rate, "taker": book.taker_fee, "none": 0.0}[rule.fee]
        now = float(unix_seconds(book.dt_line[0]))
        closed, fee, _, rem, _, _, full, in_liq = partial_liquidation_step(
            rule.rule, pos.inverse, book.rules.mm_on_entry, side, qty, pos.contract_size, pos.entry, wallet,
            price, book.floors, self._mmr_arrays(book), book.cums, other_mm, other_upnl, fee_rate,
            inst.lot_size, rule.min_tier, rule.tiers_per_step, rule.fraction, rule.threshold,
            now < book.cooldown_until)
        if not in_liq or closed <= 0.0:
            return True  # the venue liquidates the whole position (existing rules)
        lp, bp = book.liq_price, book.bank_price
        realized = self._forced_close(book, closed, price, "liquidation",
                                      {"partial": True, "liquidation_price": lp, "bankruptcy_price": bp,
                                       "trigger_price": price})
        fee = min(fee, max(0.0, wallet + realized)) if book.margin_mode == "isolated" else fee
        time = num2dt(book.data.datetime[0])
        self._charge_fee(time, inst.symbol, "liquidation", fee)
        to_fund = fee if rule.fee == "liquidation" else 0.0
        self.insurance_fund += to_fund
        if book.margin_mode == "isolated" and book.position.qty:
            book.position = replace(book.position, collateral=wallet + realized - fee)
        book.cooldown_until = now + rule.cooldown_s
        event = {
            "time": time, "symbol": inst.symbol, "side": "long" if side > 0 else "short", "qty": closed,
            "trigger_price": price, "liquidation_price": lp, "bankruptcy_price": bp, "fill_price": price,
            "fee": fee, "insurance_fund": to_fund, "realized_pnl": realized, "equity_after": self.cash,
            "partial": True, "qty_left": abs(book.position.qty), "insurance_cover": 0.0,
        }
        if extra:
            event.update(extra)
        self._emit("liquidations", event, "notify_liquidation")
        return full

    def _forced_close(self, book: Book, qty: float, price: float, kind: str, info: dict[str, Any]) -> float:
        """Close ``qty`` of ``book``'s position at ``price`` through backtrader as a venue action (no
        trade fee; the fill row's ``kind`` is ``kind``); open orders of the feed are cancelled
        first when it is a liquidation or closes the whole position. Returns the realized PnL of the fill."""
        data, side = book.data, book.position.side
        if kind == "liquidation" or qty >= abs(book.position.qty):
            for order in list(self.pending):
                if order is not None and order.data is data and order.alive():
                    self.cancel(order)
        order_cls = bt.order.SellOrder if side > 0 else bt.order.BuyOrder
        order = order_cls(owner=None, data=data, size=qty, price=price, exectype=bt.Order.Market)
        order.addcomminfo(self.getcommissioninfo(data))
        order.addinfo(**{"liquidation": kind == "liquidation", "adl": kind == "adl", **info})
        self._ocoize(order, None)
        self.orders.append(order)
        order.submit(self)
        order.accept(self)
        self._in_liquidation = True
        self._forced_kind = kind
        try:
            self._execute(order, ago=0, price=price)
        finally:
            self._in_liquidation = False
            self._forced_kind = "liquidation"
        return self.events["fills"][-1]["realized_pnl"]

    def _market_order_due(self, data: Any) -> bool:
        for queue in (self.submitted, self.pending):
            for order in queue:
                if order is not None and order.data is data and order.exectype == bt.Order.Market and order.alive():
                    return True
        return False

    # --- trailing stops on the path rule --------------------------------------------------------

    _EXIT_KINDS = {bt.Order.Stop: STOP_LOSS, bt.Order.StopTrail: TRAILING_STOP, bt.Order.Limit: TAKE_PROFIT}

    def _try_exec(self, order: Any) -> None:
        """backtrader's order processing, except for the exits of a position whose group holds a
        trailing stop by fraction (:meth:`_trail_exit`)."""
        kind = self._EXIT_KINDS.get(order.exectype)
        if kind is not None:
            book = self._books.get(order.data)
            if book is not None:
                decision = self._trail_exit(book, order)
                if decision is not None:
                    if decision[0] == kind:
                        self._execute(order, ago=0, price=decision[1])
                    return
        super()._try_exec(order)

    def _trail_exit(self, book: Book, order: Any) -> tuple[int, float] | None:
        """The bar's first exit of the position for the OCO group of ``order``, when that group
        holds a reducing ``StopTrail`` by ``trailpercent``; None otherwise (backtrader fills it).

        backtrader's ``StopTrail`` moves its level only at each bar's close
        (``BackBroker._try_exec_stop`` -> ``order.trailadjust(close)``), from a level first set at
        the close of the bar it was placed in. Here the group (Stop = stop-loss, StopTrail =
        trailing stop, Limit = take-profit, the reducing orders of one OCO group) is settled by
        :func:`risk.path.first_exit`, the rule of the fast engine: the trailing peak is the best
        price since the last fill (the open of the fill's bar, then each open and favourable
        extreme), the trailing level can be hit on the adverse leg and on the last leg to the close,
        and a stop and a trailing stop inside one bar are one protective level (the higher for a
        long). Returns ``(kind, price)``: the order of that kind fills at ``price``, the others of
        the group wait (a LIQUIDATION or NONE: none fills). Decided once per bar and group; when
        nothing fills, the peak moves on and the StopTrail's ``created.price`` shows its level.
        """
        qty = book.position.qty
        if not qty or (order.size > 0) == (qty > 0):
            return None
        leader = self._ocos.get(order.ref)
        key = (len(book.data), leader)
        d = book.trail_decision
        if d is not None and d[0] == key:
            return d[1]
        side = 1 if qty > 0 else -1
        stop = take = trail = _NAN
        trail_order = None
        data = book.data
        for o in (order, *self.pending):
            if o is None or o.data is not data or not o.alive() or self._ocos.get(o.ref) != leader \
                    or (o.size > 0) == (side > 0):
                continue
            et = o.exectype
            if et == bt.Order.StopTrail:
                if o.trailpercent and not o.trailamount:
                    trail, trail_order = float(o.trailpercent), o
            elif et == bt.Order.Stop and o.created.price is not None:
                stop = float(o.created.price)
            elif et == bt.Order.Limit and o.created.price is not None:
                take = float(o.created.price)
        if trail_order is None:
            return None
        t_low, t_high, t_open = self._trigger_extremes(data)
        kind, price, _, peak = first_exit(side, data.open[0], data.high[0], data.low[0], data.close[0], t_open,
                                          t_high, t_low, stop, take, trail, book.trail_peak, book.liq_price,
                                          book.bank_price)
        if kind == NONE:
            book.trail_peak = peak
            trail_order.created.price = trailing_level(side, peak, trail)
        book.trail_decision = (key, (kind, price))
        return kind, price

    def _stop_first(self, book: Book, lp: float, side: int) -> bool:
        """Does a resting protective order of this feed really fill before the liquidation in this bar?

        The rule is :func:`risk.path.first_exit`, the one intrabar path rule the fast engine also
        uses: each resting reducing Stop / StopTrail (at its current trigger) / StopLimit /
        StopTrailLimit is put on the bar's path (open, then the adverse leg) as a stop-loss
        against the liquidation price on the trigger series (mark, else last). It comes first
        only when ``first_exit`` says STOP_LOSS: triggered at the open (unless the open is beyond
        the bankruptcy price while the trigger open is through the liquidation price), or met
        on the adverse leg strictly before the liquidation price. A stop the last price never
        reaches does not fill and never vetoes. For a StopLimit, the limit must also be fillable
        where the stop triggers: at the open, the open must not be beyond the limit (a limit
        gapped through never fills on the way down); on the adverse leg, the limit must not be
        beyond the trigger (it then fills at the trigger).

        When an order is judged first, the broker still re-checks the position after
        backtrader's fills (so an order that did not fill, or closed only part, leaves the
        position to the liquidation in the same bar).
        """
        data = book.data
        t_low, t_high, t_open = self._trigger_extremes(data)
        opn, high, low, close = data.open[0], data.high[0], data.low[0], data.close[0]
        for order in self.pending:
            if order is None or order.data is not data or not order.alive():
                continue
            if order.exectype not in (bt.Order.Stop, bt.Order.StopLimit, bt.Order.StopTrail, bt.Order.StopTrailLimit):
                continue
            if (order.size > 0) == (side > 0):  # not a protective (reducing) order
                continue
            decision = self._trail_exit(book, order)
            if decision is not None:  # a group with a trailing stop: its exit, or the liquidation
                if decision[0] != LIQUIDATION:
                    return True
                continue
            trig = order.created.price
            if trig is None:
                continue
            kind, _, leg, _ = first_exit(side, opn, high, low, close, t_open, t_high, t_low,
                                         float(trig), _NAN, _NAN, _NAN, lp, book.bank_price)
            if kind != STOP_LOSS:
                continue
            if order.exectype in (bt.Order.StopLimit, bt.Order.StopTrailLimit):
                limit = order.created.pricelimit
                if limit is not None:
                    where = opn if leg == LEG_OPEN else trig
                    if (side > 0 and where < limit) or (side < 0 and where > limit):
                        continue
            return True
        return False

    def _liquidate(self, book: Book, trigger_price: float, trigger_open: float,
                   extra: dict[str, Any] | None = None, margin: float | None = None) -> None:
        """Close ``book``'s whole position by the venue's rule (risk.formulas.liquidation_fill and
        liquidation_charge). ``margin``: the margin behind the position (default from
        :meth:`_margin_context`; the account-level liquidation passes the one its levels are solved in)."""
        data, pos, inst, rules = book.data, book.position, book.instrument, book.rules
        side, qty = pos.side, abs(pos.qty)
        lp, bp = book.liq_price, book.bank_price
        if margin is None:
            w, other_mm, other_upnl = self._margin_context(book)
            margin = w - other_mm + other_upnl
        fill, insolvent = liquidation_fill(rules.liquidation_fill == "bankruptcy", side, lp, bp, trigger_open, margin)
        # the backstop takes an isolated position and its margin, or the position and the cross margin
        # of an account with one cross feed (as the fast engine); an account with several cross feeds
        # is liquidated by the account (_account_backstop: every cross position and the cross margin)
        backstop = rules.backstop_takes_margin and (book.margin_mode == "isolated" or not self._account_mode)
        mm_fill = self._maint(book, fill) if backstop else 0.0  # the position's MM at the fill (the backstop's level)
        collateral_before = pos.collateral
        realized = self._forced_close(book, qty, fill, "liquidation",
                                      {"liquidation_price": lp, "bankruptcy_price": bp, "trigger_price": trigger_price})
        if book.margin_mode == "cross":
            remaining = self._cross_pool()  # the cross pool after the close
        else:
            remaining = collateral_before + realized  # margin left in the position after the close
        fee, to_fund = liquidation_charge(rules.liquidation_fill == "bankruptcy", inst.inverse, side, qty,
                                          inst.contract_size, fill, lp, trigger_open, inst.liquidation_fee_rate,
                                          remaining, insolvent)
        fee, to_fund = backstop_charge(backstop, side, lp, trigger_open, fill, remaining, mm_fill, fee, to_fund,
                                       insolvent)
        time = num2dt(data.datetime[0])
        cover = 0.0
        if fee < 0.0:  # insolvent: the fund's cover of the shortfall, credited to the account (not a fee)
            cover, fee = -fee, 0.0
            self.cash += cover
        self._charge_fee(time, inst.symbol, "liquidation", fee)
        self.insurance_fund += to_fund
        event = {
            "time": time, "symbol": inst.symbol, "side": "long" if side > 0 else "short", "qty": qty,
            "trigger_price": trigger_price, "liquidation_price": lp, "bankruptcy_price": bp,
            "fill_price": fill, "fee": fee, "insurance_fund": to_fund, "realized_pnl": realized,
            "equity_after": self.cash, "partial": False, "qty_left": 0.0, "insurance_cover": cover,
        }
        if extra:
            event.update(extra)
        self._emit("liquidations", event, "notify_liquidation")

    # --- account-level liquidation of cross positions (issue 15: a portfolio on one wallet) -----

    def _update_account_mode(self) -> None:
        """Two or more cross feeds share the wallet: their liquidation is the account's."""
        self._account_mode = sum(1 for b in self._book_list if b.margin_mode == "cross") > 1

    def _account_liquidation(self) -> None:
        """Liquidate a breached cross account by the venue's account rule (:mod:`risk.account`).

        Runs once per bar, after backtrader's fills, whenever two or more cross positions share
        the wallet (at the bar's open or after its fills); those positions then skip the
        per-position checks. Each open cross position is valued at its bar's adverse extreme of
        the trigger series (mark low for a long, mark high for a short; last price without a
        mark): the pessimistic assumption that the extremes coincide. The account is breached
        when ``wallet + sum(uPnL) <= sum(MM)`` (:func:`risk.account.next_to_liquidate`, which
        also picks the position: largest loss first). The picked position closes at its
        account-level liquidation price (Binance's cross formula with the others' MM and uPnL at
        their extremes as TMM1/UPNL1), at the trigger open when the open is already past it,
        never beyond its bankruptcy price (bankruptcy venues: at the bankruptcy price), through
        :meth:`_liquidate` (clearance fee capped at the cross pool left); with no margin behind it
        (the wallet less the others' MM plus their uPnL at their extremes) and bankrupt at its open,
        at the trigger open with the insurance fund covering the shortfall and no partial step
        (risk.formulas.liquidation_fill / liquidation_charge, as one position). The account is then
        re-evaluated with the realized PnL and fee in the wallet (Hyperliquid: every cross
        position is closed, the ones after the first by market orders at the breach: each at the
        adverse extreme it was valued at, floored at its bankruptcy price). On Hyperliquid an account
        that opens below 2/3 of its maintenance margin goes to the backstop liquidator first
        (:meth:`_account_backstop`). The event carries ``account=True`` and the account margin ratio.
        With ``partial_liquidation`` the picked position first gets the venue's partial step
        (:meth:`_partial_liquidation` judged in the account: the others at their extremes), once
        per position and bar; the account is then re-evaluated, or, when the venue's full
        liquidation follows, the rest closes at its account-level price with the slice in the wallet.
        """
        books = [b for b in self._book_list if b.margin_mode == "cross" and b.position.qty]
        if not books:
            return
        rule = ACCOUNT_RULES.get(books[0].rules.key) or ACCOUNT_RULES["binance_usdm"]
        if books[0].rules.backstop_takes_margin and self._account_backstop(books):
            self._refresh_levels()
            return
        started = False
        sliced: set[int] = set()  # positions that had their partial step in this bar
        while books:
            n = len(books)
            qtys, mms, upnls = np.empty(n), np.empty(n), np.empty(n)
            trig, opens = np.empty(n), np.empty(n)
            for j, b in enumerate(books):
                low, high, opn = self._trigger_extremes(b.data)
                price = low if b.position.qty > 0 else high
                qtys[j] = b.position.qty
                mms[j] = self._maint(b, price)
                upnls[j] = b.position.unrealized_pnl(price)
                trig[j], opens[j] = price, opn
            wallet = self._cross_wallet()
            k = next_to_liquidate(rule.order, wallet, qtys, mms, upnls, started)
            if k < 0:
                break
            ratio = account_margin_ratio(wallet, float(mms.sum()), float(upnls.sum()))
            book = books[k]
            pos = book.position
            omm, oup = others(k, qtys, mms, upnls)
            side, qty = pos.side, abs(pos.qty)
            book.liq_price = liquidation_price_tiered(
                pos.inverse, book.rules.mm_on_entry, side, qty, pos.contract_size, pos.entry, wallet,
                book.floors, self._mmr_arrays(book), book.cums, omm, oup)
            book.bank_price = bankruptcy_price(pos.inverse, side, qty, pos.contract_size, pos.entry, wallet, omm, oup)
            if book.liq_price != book.liq_price and book.bank_price != book.bank_price:
                book.liq_price = float(trig[k])  # no positive price solves it: close at the extreme
            info = {"account": True, "account_margin_ratio": ratio, "account_rule": rule.order_name}
            # no margin behind it (the others at their extremes) and bankrupt at its open (a funding
            # payment, or the others' loss, took it all): the whole position at the open, no partial step
            fill_rule = book.rules.liquidation_fill == "bankruptcy"
            insolvent = liquidation_fill(fill_rule, side, book.liq_price, book.bank_price, float(opens[k]),
                                         wallet - omm + oup)[1]
            if book.partial is not None and id(book) not in sliced and not insolvent:
                # the venue's partial rule for the picked position first, judged in the account
                # (the others' MM and uPnL at their extremes); once per position and bar
                sliced.add(id(book))
                rows = len(self.events["liquidations"])
                full = self._partial_liquidation(book, float(trig[k]), (wallet, omm, oup), info)
                if not full or not book.position.qty:
                    books = [b for b in books if b.position.qty]
                    continue  # re-evaluate the account after the slice
                if len(self.events["liquidations"]) > rows:
                    # the rest closes whole at its account-level price with the slice in the wallet
                    pos = book.position
                    wallet = self._cross_wallet()
                    qty = abs(pos.qty)
                    book.liq_price = liquidation_price_tiered(
                        pos.inverse, book.rules.mm_on_entry, side, qty, pos.contract_size, pos.entry, wallet,
                        book.floors, self._mmr_arrays(book), book.cums, omm, oup)
                    book.bank_price = bankruptcy_price(pos.inverse, side, qty, pos.contract_size, pos.entry, wallet,
                                                       omm, oup)
                    if book.liq_price != book.liq_price and book.bank_price != book.bank_price:
                        book.liq_price = float(trig[k])
            if started and rule.order == ORDER_ALL:
                # the rest of a breached account (Hyperliquid): market orders at the breach, each
                # position at the adverse extreme it was valued at, not at a level of its own (which
                # the bar may never have traded); floored at its bankruptcy price as any liquidation
                book.liq_price = float(trig[k])
            self._liquidate(book, float(trig[k]), float(opens[k]), info, wallet - omm + oup)
            started = True
            books = [b for b in books if b.position.qty]
        self._refresh_levels()  # the displayed levels: each position's cross price, the others at their marks

    def _account_backstop(self, books: list[Book]) -> bool:
        """Hyperliquid's backstop liquidator takes the breached cross account over at the bar's open
        (:func:`risk.account.account_backstop`: the margin balance at the positions' trigger opens
        below 2/3 of their maintenance margin there, so the book liquidation cannot have succeeded).
        Every cross position (``books``) closes at its trigger open, largest loss first (each row's
        levels: its account-level prices with the others at their opens); a cross pool below 0 after
        a close is the fund's cover on that row (credited, not a fee), as any insolvent liquidation;
        the cross margin left after the last close is charged to the account as a liquidation fee,
        paid to the fund (the vault keeps it), on the last row. The account's cross equity ends at
        0. Returns False, having done nothing, above that level."""
        n = len(books)
        qtys, mms, upnls, opens = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
        for j, b in enumerate(books):
            opn = self._trigger_extremes(b.data)[2]
            qtys[j] = b.position.qty
            mms[j] = self._maint(b, opn)
            upnls[j] = b.position.unrealized_pnl(opn)
            opens[j] = opn
        wallet = self._cross_wallet()
        if not account_backstop(True, wallet, float(mms.sum()), float(upnls.sum())):
            return False
        info = {"account": True, "account_margin_ratio": account_margin_ratio(wallet, float(mms.sum()),
                                                                              float(upnls.sum())),
                "account_rule": "backstop: the vault takes every cross position and the cross margin"}
        rows = []
        while True:
            k = next_to_liquidate(ORDER_ALL, wallet, qtys, mms, upnls, True)
            if k < 0:
                break
            book = books[k]
            pos = book.position
            omm, oup = others(k, qtys, mms, upnls)
            side, qty, opn = pos.side, abs(pos.qty), float(opens[k])
            lp = liquidation_price_tiered(pos.inverse, book.rules.mm_on_entry, side, qty, pos.contract_size,
                                          pos.entry, wallet, book.floors, self._mmr_arrays(book), book.cums, omm, oup)
            bp = bankruptcy_price(pos.inverse, side, qty, pos.contract_size, pos.entry, wallet, omm, oup)
            if lp != lp and bp != bp:
                lp = opn  # no positive price solves it (as _account_liquidation)
            realized = self._forced_close(book, qty, opn, "liquidation",
                                          {"liquidation_price": lp, "bankruptcy_price": bp, "trigger_price": opn})
            # the cross pool after the close (equity less what isolated positions hold): below 0, the
            # fund's cover, as any insolvent liquidation (credited to the account, not a fee)
            pool = self._cross_pool()
            cover = -pool if pool < 0.0 else 0.0
            self.cash += cover
            self.insurance_fund -= cover
            rows.append({"time": num2dt(book.data.datetime[0]), "symbol": book.instrument.symbol,
                         "side": "long" if side > 0 else "short", "qty": qty, "trigger_price": opn,
                         "liquidation_price": lp, "bankruptcy_price": bp, "fill_price": opn, "fee": 0.0,
                         "insurance_fund": -cover, "realized_pnl": realized, "equity_after": self.cash,
                         "partial": False, "qty_left": 0.0, "insurance_cover": cover, **info})
            qtys[k] = 0.0
            wallet = self._cross_wallet()
        left = self._cross_pool()  # every cross position closed: the cross margin left, the vault's
        last = rows[-1]
        if left > 0.0:
            self._charge_fee(last["time"], last["symbol"], "liquidation", left)
            self.insurance_fund += left
            last["fee"], last["insurance_fund"], last["equity_after"] = left, last["insurance_fund"] + left, self.cash
        for event in rows:
            self._emit("liquidations", event, "notify_liquidation")
        return True

    def _cross_wallet(self) -> float:
        """The cross wallet: the wallet balance less what isolated positions hold as collateral."""
        return self.wallet_balance() - sum(b.position.collateral for b in self._book_list
                                           if b.position.qty and b.margin_mode == "isolated")

    def _cross_pool(self) -> float:
        """The cross margin: the account's equity (cash) less what its isolated positions hold."""
        pool = self.cash
        for other in self._book_list:
            if other.position.qty and other.margin_mode == "isolated":
                pool -= other.position.collateral + other.position.unrealized_pnl(self._marked_price(other.data))
        return pool

    # --- auto-deleveraging (strategy level) -----------------------------------------------------

    def _adl_step(self, book: Book) -> None:
        """Apply the bar's ADL flow on the position's side (the feed's ``adl_long_notional`` /
        ``adl_short_notional``, quote notional of the positions the venue closed in the bar).

        Only a profitable position is reached: Hyperliquid's queue holds profitable positions
        only; on the other venues losers are queued after every profitable position, and we
        assume a bar's flow never gets past them. The position's ranking score is the venue's
        (:data:`risk.adl.ADL_RULES`), its quantile on its side ``adl_quantile`` (given), else its
        rank in ``adl_population`` (the other positions' scores), else 1.0 (the front of the
        queue: the worst case, announced). :func:`risk.adl.adl_close_qty` gives the quantity,
        rounded down to the lot, with ``adl_queue_notional`` the notional of the rest of the
        queue. The close fills at the bar's mark close (Hyperliquid: "the previous mark price",
        at bar resolution the bar's mark; the centralised venues use the bankrupt counterparty's
        bankruptcy price, which a flow does not carry: the mark is our assumption). Bybit charges
        its maker fee; the others none. One ``adl`` event per close; ``notify_adl(event)``.
        """
        pos, inst, rule = book.position, book.instrument, book.adl
        side = pos.side
        flow = (book.adl_long if side > 0 else book.adl_short)[0]
        if not flow > 0.0:
            return
        data = book.data
        mark = self._mark(data)
        upnl = pos.unrealized_pnl(mark)
        if not upnl > 0.0:
            return
        qty, cs, inv = abs(pos.qty), pos.contract_size, pos.inverse
        wallet, _, _ = self._margin_context(book)
        if rule.score == "binance":
            score = score_binance(upnl, wallet, self._maint(book, mark))
        elif rule.score == "hyperliquid":
            score = score_hyperliquid(side, pos.entry, mark, notional(inv, qty, cs, mark), wallet + upnl)
        else:
            score = score_pnl_leverage(inv, side, qty, cs, pos.entry, mark, book.bank_price, rule.divide_losses)
        if self.p.adl_quantile is not None:
            quantile = float(self.p.adl_quantile)
        elif self.p.adl_population is not None:
            quantile = rank_quantile(score, np.asarray(self.p.adl_population, dtype=np.float64))
        else:
            quantile = 1.0
        own_quote = qty * cs * (1.0 if inv else mark)  # the flow is quote notional (USD, USDT, USDC)
        close = adl_close_qty(qty, own_quote, quantile, float(self.p.adl_queue_notional), float(flow))
        lot = inst.lot_size
        if close >= qty * (1.0 - 1e-12):
            close = qty
        elif lot > 0:
            close = math.floor(close / lot + 1e-9) * lot
        if close <= 0.0:
            return
        realized = self._forced_close(book, close, mark, "adl", {"adl_quantile": quantile, "adl_score": score})
        fee = trade_fee(notional(inv, close, cs, mark), book.maker_fee) if rule.fee == "maker" else 0.0
        time = num2dt(data.datetime[0])
        self._charge_fee(time, inst.symbol, "adl", fee)
        event = {
            "time": time, "symbol": inst.symbol, "side": "long" if side > 0 else "short", "qty": close,
            "price": mark, "fee": fee, "realized_pnl": realized, "score": score, "quantile": quantile,
            "lights": indicator_lights(quantile, rule.lights), "flow_notional": float(flow),
            "qty_left": abs(book.position.qty), "equity_after": self.cash,
        }
        self._emit("adl", event, "notify_adl")

    # --- the bar -----------------------------------------------------------------------------

    def next(self) -> None:
        account = self._account_mode
        for book in self._book_list:
            book.changed = book.deferred = False
            line = book.funding_line
            if line is not None:
                rate = line[0]
                if rate == rate:
                    self._settle_funding(book, rate)
            elif book.schedule is not None:
                self._scheduled_funding(book)
            qty = book.position.qty
            if qty:
                if account and book.margin_mode == "cross":
                    continue  # the account-level check after the fills (_account_liquidation)
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
            if (book.changed or book.deferred) and book.position.qty and not (account and book.margin_mode == "cross"):
                self._check_liquidation(book, pre_orders=False)
        if account:
            self._account_liquidation()
        adl = self.events["adl"]
        n_adl = len(adl)
        for book in self._book_list:
            if book.adl is not None and book.position.qty:
                self._adl_step(book)
        revalue = len(self.events["liquidations"]) != liquidations or len(adl) != n_adl
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
            if self._generic_record:
                primary = self._primary
                self._dts.append(primary.datetime[0])
                self._closes.append(primary.close[0])
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
        if self._generic_record:
            columns = {"datetime": self._dts, "close": self._closes}
        else:
            columns = dict(zip(("datetime", "open", "high", "low", "close"), data._columns[:5]))
        close = np.asarray(columns["close"][:n], dtype=np.float64)
        has_mark = self._books[data].has_mark
        mark = np.asarray(data.frame["mark_close"].to_numpy(dtype=np.float64)[:n]) if has_mark else close
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
    _account_mode = False
