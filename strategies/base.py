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

Further sizing: :meth:`target_risk` (risk budget: lose ``risk`` x equity if the stop is hit,
capped at the feed's leverage) and :meth:`apply_exposure` (signed leverage; 0 = flat).

Signal form (the contract shared with the fast engine)
------------------------------------------------------
A strategy that can be expressed as a signal defines the classmethod::

    target_exposure(bars: pd.DataFrame, **params) -> np.ndarray   # float64, len(bars)

``target[i]`` is the **signed target leverage** (exposure as a multiple of equity; positive
long, negative short, 0 flat) to hold **from the open of bar i**. It may use only data up to
the close of bar ``i-1`` (or, for entries at the open such as buy-and-hold's ``entry_time``,
the *time* of bar i); ``target[0]`` is 0 unless the strategy enters at the first open.
Unknown parameter names raise :class:`risk.errors.DeleverageError`; omitted ones take the
class defaults (:meth:`PerpStrategy.param_defaults`).

Execution semantics, identical in backtrader and in the fast engine:

- **Trade only on change.** At the open of bar i, if ``target[i] != target[i-1]`` (with
  ``target[-1] = 0``), the position is set to ``target[i]``: flat when 0, otherwise
  :meth:`PerpStrategy.apply_exposure`: a market order filling at bar i's open, sized to a
  notional of ``E x |target| / (1 + |target| x taker_fee) x 0.999999`` at ``open[i]``, with
  the feed's leverage set to ``|target|``; ``E`` is the equity at bar i's open *after* the
  funding settled at that open (equity at bar i-1's close + the position's PnL from that close
  to ``open[i]`` + the funding payment at ``open[i]``; :meth:`PerpStrategy.equity_at_open`).
  Quantities are rounded to the instrument's lot. A flip closes and reopens in one order (the
  released margin counts towards the new side). Between changes the position is **not
  rebalanced**: its leverage drifts with the price.
- **After a liquidation** the position stays flat until the target changes again (a
  liquidated 5x long whose target is still 5 does not re-enter).
- Funding, fees and liquidation are the broker's (on the fast engine: the same risk kernels).

:class:`SignalStrategy` implements this once: a subclass defines ``target_exposure`` and the
backtrader run computes it on the feed's frame in ``start()`` and applies ``target[i]`` in
``next_open()`` at bar i (the runner enables cheat-on-open, so the order fills at bar i's
open). Both engines therefore execute the *same* signal; what keeps the signal honest is its
causality, which ``tests/strategies`` checks for every reference signal strategy (changing
bar k's high, low, close, volume or extra columns never changes ``target[:k+1]``).
Strategies that react to their own fills, stops, liquidations or funding (the cascade fade,
the DCA grid) have no signal form and do not define ``target_exposure``.

Stops (optional): a signal strategy may also define the classmethod::

    exit_levels(bars: pd.DataFrame, **params) -> dict | None

with any of ``stop_loss`` (per-bar price levels, NaN = none), ``take_profit`` (per-bar price
levels) and ``trailing_stop`` (a fraction of the best price since the entry, 0.02 = 2 %, or a
per-bar array of fractions). The levels of bar i protect the position held during bar i (the
one filled at its open, or the one carried into it); they may use data up to bar i's open
(:func:`levels_from_entry`: a fraction from the entry bar's open). Which exit a bar's path meets
first -- stop-loss, take-profit, trailing stop or the venue's liquidation, gaps at the open
included -- is decided by :func:`risk.path.first_exit` (its docstring is the rule). After an
exit the position stays flat until the target changes (as after a liquidation). Fees: stops are
stop-market orders (taker fee), the take-profit a limit order (maker fee). The fast engine
applies the rule in its compiled pass; on backtrader :class:`SignalStrategy` places the
matching orders (``Stop``, ``StopTrail``, ``Limit``, one OCO group) for the broker to fill.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import backtrader as bt
import numpy as np
import pandas as pd

from risk.errors import DeleverageError
from risk.formulas import funding_payment, notional, trade_fee, unrealized_pnl


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
    # the values a numeric parameter may take at all (not the search range): {name: (low, low
    # included, high, high included)}, None = unbounded; checked by check_params, which every
    # command reaches through engine.strategy_ref.type_params, and at the start of every run
    limits: ClassVar[dict[str, tuple[float | None, bool, float | None, bool]]] = {"leverage": (0.0, False, None, False)}

    def start(self) -> None:
        add = getattr(self.broker, "add_listener", None)
        if add is not None:
            add(self)

    # --- parameters -------------------------------------------------------------------------

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """The declared parameters and their defaults."""
        return dict(cls.params._getitems())

    @classmethod
    def resolve_params(cls, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overridden by ``params``; an unknown name raises :class:`DeleverageError`."""
        out = cls.param_defaults()
        unknown = sorted(set(params or {}) - set(out))
        if unknown:
            raise DeleverageError(f"{cls.__name__} has no parameter(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(out)}")
        out.update(params or {})
        return out

    @classmethod
    def check_params(cls, params: dict[str, Any], option: str | None = None) -> None:
        """Refuse a parameter value outside :attr:`limits` (one line naming the parameter and the
        range), so ``window=0`` or ``step=-0.02`` never reaches the strategy's arithmetic."""
        for name, (low, low_in, high, high_in) in cls.limits.items():
            if name not in params:
                continue
            value = params[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            bad = not (value == value)
            if low is not None:
                bad |= value < low if low_in else value <= low
            if high is not None:
                bad |= value > high if high_in else value >= high
            if bad:
                lo = "" if low is None else f"{low:g} {'<=' if low_in else '<'} "
                hi = "" if high is None else f" {'<=' if high_in else '<'} {high:g}"
                where = f"{option} {name}={value}: " if option else ""
                raise DeleverageError(f"{where}{cls.__name__}.{name} must be {lo}{name}{hi}, got {value!r}")

    def __init__(self) -> None:
        super().__init__()
        type(self).check_params({k: getattr(self.p, k) for k in type(self).limits if hasattr(self.p, k)})

    # --- hooks ------------------------------------------------------------------------------

    def notify_liquidation(self, event: dict[str, Any]) -> None:
        """Called when a position of this run is liquidated (override)."""

    def notify_funding(self, event: dict[str, Any]) -> None:
        """Called at each funding settlement of an open position (override)."""

    # --- sizing -----------------------------------------------------------------------------

    def target_qty(self, data: Any, qty: float, **kwargs: Any) -> Any:
        """Order the difference between the current position and signed ``qty``."""
        book = self.broker.book(data)
        if not math.isfinite(qty):
            raise DeleverageError(f"{type(self).__name__}: order size {qty} is not a finite quantity (a leverage or "
                                  "equity beyond the float range?); expected a finite position size")
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

    def cancel_alive(self, orders: list[Any]) -> list[Any]:
        """Cancel those of ``orders`` still alive (e.g. a position's resting exits); return ``[]``
        so that ``self._exits = self.cancel_alive(self._exits)`` forgets them."""
        for order in orders:
            if order.alive():
                self.cancel(order)
        return []

    def target_leverage(self, data: Any, leverage: float, side: int = 1, price: float | None = None,
                        equity: float | None = None, **kwargs: Any) -> Any:
        """Hold ``side`` exposure of ``leverage`` times ``equity`` (default ``broker.getvalue()``),
        leaving room for the taker fee.

        Sets the feed's leverage on the broker, so the initial margin of the position plus the
        order's fee equals the equity; a flip also leaves room for the fee of its closing leg.
        """
        self.broker.set_leverage(data, leverage)
        inst = self.broker.book(data).instrument
        fee = inst.taker_fee
        budget = self.broker.getvalue() if equity is None else equity
        held = self.getposition(data).size
        if held and (held > 0) != (side > 0):  # a flip also pays the closing leg's fee
            budget -= trade_fee(inst.notional(held, data.close[0] if price is None else price), fee)
        value = budget * leverage / (1.0 + leverage * max(fee, 0.0)) * 0.999999
        if not math.isfinite(value):  # a leverage near the float limit (1e308): the same size without overflow
            value = budget / (1.0 / leverage + max(fee, 0.0)) * 0.999999
        return self.target_notional(data, side * value, price=price, **kwargs)

    def target_risk(self, data: Any, risk: float, stop_price: float, side: int = 1,
                    price: float | None = None, max_leverage: float | None = None, **kwargs: Any) -> Any:
        """Risk budget: hold ``side`` a position that loses ``risk`` x equity (fees aside) if the
        price goes from ``price`` (default close) to ``stop_price``; capped at ``max_leverage``
        (default the feed's leverage) times equity."""
        if not risk > 0:
            raise DeleverageError(f"risk budget must be a positive fraction of equity, got {risk}")
        book = self.broker.book(data)
        inst = book.instrument
        price = data.close[0] if price is None else price
        if (side > 0 and not stop_price < price) or (side < 0 and not stop_price > price):
            raise DeleverageError(f"stop {stop_price} is on the wrong side of the price {price} for side {side}")
        loss_per_unit = abs(unrealized_pnl(inst.inverse, float(side), inst.contract_size, price, stop_price))
        equity = self.broker.getvalue()
        qty = risk * equity / loss_per_unit
        cap_lev = book.leverage if max_leverage is None else max_leverage
        unit = notional(inst.inverse, 1.0, inst.contract_size, price)
        cap = equity * cap_lev / (1.0 + cap_lev * max(inst.taker_fee, 0.0)) * 0.999999 / unit
        return self.target_qty(data, side * min(qty, cap), **kwargs)

    def apply_exposure(self, data: Any, exposure: float, **kwargs: Any) -> Any:
        """From ``next_open``: hold signed ``exposure`` times :meth:`equity_at_open` (0 = flat),
        filled at this bar's open; see the signal-form contract."""
        if exposure == 0 or exposure != exposure:
            return self.target_qty(data, 0.0, **kwargs)
        return self.target_leverage(data, abs(exposure), side=1 if exposure > 0 else -1, price=data.open[0],
                                    equity=self.equity_at_open(data), **kwargs)

    def equity_at_open(self, data: Any) -> float:
        """From ``next_open``: the account equity at this bar's open, after the funding settled
        at that open (what the broker will have when this bar's market orders fill).

        ``broker.getvalue()`` is marked at the previous close; this adds the position's PnL from
        that close to this open and the funding payment due at the open (the bar's
        ``funding_rate`` line, where the broker also places a constant rate at the venue's
        funding hours), at the mark open when the feed has one.
        """
        return self.broker.getvalue() + self.open_move(data)

    def open_move(self, data: Any) -> float:
        """The change of equity from ``data``'s position between the previous close and this open:
        its PnL from the marked close to the open, plus the funding due at the open (0 when flat)."""
        broker = self.broker
        pos = broker.book(data).position
        if not pos.qty:
            return 0.0
        opn = data.open[0]
        move = pos.unrealized_pnl(opn) - pos.unrealized_pnl(broker._marked_price(data))
        rate = data.funding_rate[0]
        if rate == rate:
            price = data.mark_open[0] if getattr(data, "has_mark", False) else math.nan
            price = opn if price != price else price
            move += funding_payment(pos.inverse, pos.qty, pos.contract_size, price, rate)
        return move

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


class SignalStrategy(PerpStrategy):
    """A strategy defined by its signal form (see the module docstring).

    Subclasses implement the classmethod ``target_exposure(bars, **params)``; this class
    computes it on the feed's bar frame at ``start()`` and, at the open of each bar i, trades
    only when ``target[i]`` differs from the last applied target.
    """

    @classmethod
    def target_exposure(cls, bars: pd.DataFrame, **params: Any) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def target_exposure_batch(cls, bars: pd.DataFrame, params_list: list[dict[str, Any]]) -> np.ndarray:
        """The targets of many parameter sets on ``bars``, an (m, n) float64 block (row j = the
        ``target_exposure`` of ``params_list[j]``, bit for bit). The optimizer calls this once per
        batch; the default stacks ``target_exposure``; a strategy may compute the whole block in
        compiled code (:mod:`strategies.signals`). A set the strategy refuses raises
        :class:`DeleverageError` (the optimizer then evaluates the sets one by one)."""
        out = np.empty((len(params_list), len(bars)))
        for j, params in enumerate(params_list):
            out[j] = np.asarray(cls.target_exposure(bars, **params), dtype=np.float64)
        return out

    @classmethod
    def exit_levels(cls, bars: pd.DataFrame, **params: Any) -> dict[str, Any] | None:
        """Stop-loss / take-profit levels and trailing fraction (module docstring); None = no stops."""
        return None

    def start(self) -> None:
        super().start()
        frame = getattr(self.data, "frame", None)
        if frame is None:
            raise DeleverageError(f"{type(self).__name__} needs a PerpData feed built from a bar frame")
        frame = signal_frame(frame, getattr(self.data, "placed_funding", None))
        params = {k: getattr(self.p, k) for k in self.param_defaults()}
        self.targets = np.asarray(type(self).target_exposure(frame, **params), dtype=np.float64)
        if self.targets.shape != (len(frame),):
            raise DeleverageError(f"{type(self).__name__}.target_exposure returned shape {self.targets.shape}, "
                                  f"expected ({len(frame)},)")
        self._applied = 0.0
        self._exits = exit_arrays(type(self).exit_levels(frame, **params), len(frame), type(self).__name__)
        self._exit_orders: list[Any] = []
        self._exit_key: tuple = ()

    def next_open(self) -> None:
        i = len(self.data) - 1
        target = float(self.targets[i])
        order = None
        if target != self._applied:
            order = self.apply_exposure(self.data, target)
            self._applied = target
        if self._exits is not None:
            self._place_exits(i, order)

    prenext_open = next_open

    def _place_exits(self, i: int, order: Any) -> None:
        """(Re)place the protective orders for the position expected after this open's fill:
        stop-loss (Stop), trailing stop (StopTrail), take-profit (Limit), in one OCO group and in
        that order (the broker tries them in submission order: the stop before the take-profit)."""
        stop, take, trail = (float(a[i]) if a is not None else math.nan for a in self._exits)
        size = self.getposition(self.data).size + (order.size if order is not None else 0.0)
        lot = self.broker.book(self.data).instrument.lot_size
        if abs(size) < lot / 2:
            size = 0.0
        key = (size, stop, take, trail)
        if order is None and key == self._exit_key:
            return
        for o in self._exit_orders:
            if o.alive():
                self.cancel(o)
        self._exit_orders = []
        self._exit_key = key
        if size == 0.0:
            return
        close = self.sell if size > 0 else self.buy
        q = abs(size)
        first = None
        for kind, level in ((bt.Order.Stop, stop), (bt.Order.StopTrail, trail), (bt.Order.Limit, take)):
            if not level == level:
                continue
            if kind == bt.Order.StopTrail:
                o = close(data=self.data, size=q, exectype=kind, trailpercent=level, oco=first)
            else:
                o = close(data=self.data, size=q, exectype=kind, price=level, oco=first)
            first = first or o
            self._exit_orders.append(o)


def signal_frame(bars: pd.DataFrame, funding: np.ndarray | None) -> pd.DataFrame:
    """The frame a signal strategy computes its targets on: ``bars`` plus, when they have no
    ``funding_rate`` column and the run settles a constant rate, that rate on the bars holding a
    settlement (what the feed's funding line shows on backtrader), so a strategy reading funding
    sees the funding the run settles. Both engines build it here."""
    if funding is None or "funding_rate" in bars.columns or not np.any(funding == funding):
        return bars
    out = bars.assign(funding_rate=np.asarray(funding, dtype=np.float64))
    out.attrs = dict(bars.attrs)
    return out


def exit_arrays(levels: dict[str, Any] | None, n: int, owner: str = "strategy"
                ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None] | None:
    """``(stop_loss, take_profit, trailing_stop)`` per-bar arrays of an ``exit_levels`` result
    (None for a level not given; None overall when there are no stops)."""
    if not levels:
        return None
    known = ("stop_loss", "take_profit", "trailing_stop")
    unknown = sorted(set(levels) - set(known))
    if unknown:
        raise DeleverageError(f"{owner}.exit_levels returned unknown level(s) {', '.join(unknown)}; "
                              f"known: {', '.join(known)}")
    out: list[np.ndarray | None] = []
    for name in known:
        v = levels.get(name)
        if v is None:
            out.append(None)
            continue
        a = np.asarray(v, dtype=np.float64)
        a = np.full(n, float(a)) if a.ndim == 0 else a
        if a.shape != (n,):
            raise DeleverageError(f"{owner}.exit_levels {name} has shape {a.shape}, expected ({n},) or a number")
        if name == "trailing_stop" and np.any((a <= 0) | (a >= 1)):
            raise DeleverageError(f"{owner}.exit_levels trailing_stop must be a fraction in (0, 1) (0.02 = 2 %)")
        out.append(a)
    if all(a is None for a in out):
        return None
    return out[0], out[1], out[2]


def levels_from_entry(target: np.ndarray, open_: np.ndarray, fraction: float, *, profit: bool = False) -> np.ndarray:
    """Per-bar levels ``fraction`` away from the open of the bar where the current target began
    (the entry's fill price): below it for a long stop-loss, above for a short (``profit=True``:
    the take-profit side). NaN while the target is 0 or ``fraction`` is not positive."""
    target = np.asarray(target, dtype=np.float64)
    open_ = np.asarray(open_, dtype=np.float64)
    n = len(target)
    out = np.full(n, np.nan)
    if not fraction > 0 or n == 0:
        return out
    prev = np.concatenate(([0.0], target[:-1]))
    starts = np.where(target != prev, np.arange(n), 0)
    entry = np.maximum.accumulate(starts)
    side = np.sign(target)
    sgn = side if profit else -side
    out = open_[entry] * (1.0 + sgn * fraction)
    out[side == 0] = np.nan
    return out


def shift_target(state: np.ndarray) -> np.ndarray:
    """``target[i] = state[i-1]`` (``target[0] = 0``): a decision at bar i-1's close is held from bar i's open."""
    state = np.nan_to_num(np.asarray(state, dtype=np.float64), nan=0.0)
    out = np.zeros(len(state))
    out[1:] = state[:-1]
    return out


def entry_index(bars: pd.DataFrame, entry_time: str | Any) -> int:
    """Index of the first bar at or after ``entry_time`` (ISO UTC text; 0 when empty)."""
    if entry_time in ("", None):
        return 0
    ts = pd.Timestamp(entry_time)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(bars.index.searchsorted(ts, side="left"))


# --- indicators once per frame -----------------------------------------------------------------

INDICATOR_CACHE_BYTES = 64 * 2**20
_INDICATORS: "OrderedDict[tuple[int, str, Any], tuple[pd.DataFrame, np.ndarray]]" = OrderedDict()
_INDICATOR_STATS = {"hits": 0, "misses": 0, "bytes": 0}


def cached_indicator(bars: pd.DataFrame, name: str, window: Any, compute: Callable[[], Any]) -> np.ndarray:
    """``compute()`` as a read-only float64 array, computed once per (bar frame, ``name``,
    ``window``) in this process: an optimizer chunk asks for SMA(50) of its closes once, however
    many parameter sets use it.

    The key is the frame object itself (held by the cache, so its identity cannot be reused
    while cached), the indicator's name (which names its input, e.g. ``"sma:close"``) and its
    window; the least recently used entries go beyond :data:`INDICATOR_CACHE_BYTES`. A frame
    changed in place after a look-up is not seen: the optimizer's segment frames are never
    changed.
    """
    key = (id(bars), name, window)
    hit = _INDICATORS.get(key)
    if hit is not None and hit[0] is bars:
        _INDICATORS.move_to_end(key)
        _INDICATOR_STATS["hits"] += 1
        return hit[1]
    value = np.ascontiguousarray(np.asarray(compute(), dtype=np.float64))
    value.setflags(write=False)
    _INDICATOR_STATS["misses"] += 1
    if hit is not None:
        _INDICATOR_STATS["bytes"] -= hit[1].nbytes
    _INDICATORS[key] = (bars, value)
    _INDICATOR_STATS["bytes"] += value.nbytes
    while _INDICATOR_STATS["bytes"] > INDICATOR_CACHE_BYTES and len(_INDICATORS) > 1:
        _, (_, old) = _INDICATORS.popitem(last=False)
        _INDICATOR_STATS["bytes"] -= old.nbytes
    return value


def clear_indicator_cache() -> None:
    _INDICATORS.clear()
    _INDICATOR_STATS.update(hits=0, misses=0, bytes=0)


def indicator_cache_stats() -> dict[str, int]:
    return {**_INDICATOR_STATS, "entries": len(_INDICATORS)}
