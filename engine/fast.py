"""The fast engine: signal strategies through the same risk model, compiled with numba.

A strategy with a signal form (``target_exposure(bars, **params)``: the signed target leverage
to hold from the open of each bar, see :mod:`strategies.base`) runs here as one compiled pass
over the bar arrays instead of through backtrader. The pass reproduces
:class:`engine.broker.PerpBroker` step by step, with the risk module's own scalar kernels
(:mod:`risk.formulas`) compiled by ``numba.njit`` (``risk.formulas.jit_kernels``), not a
second copy of the formulas:

per bar i
  1. the strategy's decision at the open (trade only when ``target[i]`` differs from the last
     applied target; ``PerpStrategy.apply_exposure``: sizing ``E x |t| / (1 + |t| x taker)``
     with E the equity at this open (previous close value + the position's PnL to the open +
     the funding settled at the open; less the closing leg's fee on a flip), rounded down to
     the lot; the feed's leverage set to ``|t|``);
  2. funding: at bars whose ``funding_rate`` is not NaN (or, without that column, at the venue's
     funding hours at the configured constant rate) the position held at the open pays or
     receives ``funding_payment`` at the mark open (last open without mark); isolated
     collateral absorbs it;
  3. liquidation before orders: the position held at the open against the bar's adverse
     extreme of the trigger series (mark OHLC when present and not NaN, else last OHLC), filled
     at ``liquidation_fill_price`` (bankruptcy price on BitMEX/Bybit; liquidation price, or the
     trigger open on a gap, never beyond bankruptcy elsewhere), clearance fee capped at the
     remaining margin; with partial liquidation on (``RunConfig.partial_liquidation``) the venue's
     rule first (:func:`risk.partial.partial_liquidation_step`, compiled: Binance's restoring
     IOC, BitMEX/Bybit's risk-limit FOK, OKX's tier steps, Hyperliquid's 20 % slice and 30 s
     cooldown kept in ``Account.cool``) filled at that extreme, then the whole rest only when
     the rule says a full liquidation follows (``partial=True`` liquidation rows);
  4. order admission (initial margin + taker fee against the available balance, venue maximum
     leverage of the bracket) and the fill at the bar's open, taker fee;
  5. backtrader's end-of-bar mark to market (equity = wallet + unrealized PnL at the close);
  6. liquidation after fills for a position changed in the bar, against the same extreme;
  6b. ADL, for bars with an ADL flow (``adl_long_notional`` / ``adl_short_notional``): a
     profitable position on the side deleveraged in the bar is closed at the mark by
     :func:`risk.adl.adl_close_qty` with the venue's ranking score (``adl`` events);
  7. the per-bar record (equity, position, liquidation price, cumulative funding and fees).

Stops (``exits``: stop-loss / take-profit levels per bar, a trailing fraction; see
:mod:`strategies.base`): the position held during bar i meets its exits on the bar's path by
:func:`risk.path.first_exit` -- which of stop-loss, take-profit, trailing stop and the
liquidation comes first, gaps at the open included -- in step 3 for a position carried into
the bar (instead of the plain liquidation check) and in step 6 for the one filled at its open.
A stop fills at its level (or the open on a gap) with the taker fee, a take-profit with the
maker fee; the trailing peak starts at each fill's price.

Shape: the pass carries a few named structures (namedtuples numba passes by value):
``Market`` (bar arrays), ``Tiers`` (dated tier tables), ``Inst`` (instrument and venue
constants), ``Signal`` (targets and exit levels), ``Events`` (output buffers) and ``Account``
(the account and position state each step takes and returns), and composes one small compiled
step per concern: ``_decide`` (1), ``_fund`` (2), ``_liquidate`` (with ``_partial_close``) /
``_exits`` (3, 6), ``_order`` and ``_fill`` (4), ``_mark`` (5), ``_adl_close`` (6b), in the
order of :class:`engine.broker.PerpBroker`'s ``next``.
:func:`simulate_batch` runs many target arrays over the same prepared bars in one call
(``numba.prange`` over sets).

Cash is kept exactly as backtrader's BackBroker keeps it (the same increments in the same
order), so results agree with the backtrader path to rounding (tests/fast assert 1e-9
relative on fills, funding, liquidations and equity).

Scope: one feed (one instrument); market orders and the signal's protective exits; isolated
or cross margin, where cross means the whole wallet backs the single position; linear and
inverse contracts of every venue in :mod:`risk.venues`, with dated tier tables. Not covered:
several feeds or positions sharing a cross wallet, entry limit/stop orders, strategies that
react to their own fills, liquidations or funding (they have no signal form).

Entry points
------------
- :func:`run_fast`: a full :class:`reports.results.RunResult`, the same tables as
  :func:`engine.runner.run_backtest` (``config["engine"] == "fast"``).
- :func:`prepare` + :func:`simulate_arrays` / :func:`simulate_batch`: the optimizer's inner
  loop; arrays are prepared once per bar frame and each run returns only summary numbers (no
  DataFrame), one set or many per call.
- :func:`supports`: whether a strategy class has a signal form.
- :class:`ExposureStrategy`: the backtrader side of the contract for an arbitrary exposure
  array (used by the parity tests).
"""

from __future__ import annotations

import math
import types
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any, Callable

import numba
import numpy as np
import pandas as pd

from engine.broker import adl_announcement, num2dt
from engine.bt_data import adl_flow_arrays, bar_times, unix_seconds
from engine.runner import (
    RunConfig,
    equity_frame,
    events_frame,
    trades_frame,
    provenance,
    result_config,
    summarize,
)
from feeds.schema import MARK_COLUMNS
from reports.results import RunResult
from risk import adl as _adl
from risk import formulas as _formulas
from risk import partial as _partial
from risk import path as _path
from risk.errors import DeleverageError
from risk.instrument import PerpInstrument
from risk.venues import VenueRules, get_instrument, venue_rules



# --- the on-disk compile cache -----------------------------------------------------------------
# numba's cache of a compiled function is invalidated when *its own* source file changes, not
# when a kernel it calls (risk/formulas.py, ...) does: after an edit in risk/ the cached kernel
# would silently run the old formula. The cache therefore lives in a folder named by a hash of
# every source file the compiled code is built from (unless the user set NUMBA_CACHE_DIR). The
# setting is restored at the end of this module, so other numba code is not affected.

def _cache_dir() -> str | None:
    import hashlib
    import os
    from pathlib import Path

    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted([*root.joinpath("risk").glob("*.py"), Path(__file__).resolve()]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return str(base / "deleverage" / "numba" / digest.hexdigest()[:16])


_USER_CACHE_DIR = numba.config.CACHE_DIR
_OWN_CACHE_DIR = _cache_dir()
if _OWN_CACHE_DIR is not None:
    numba.config.CACHE_DIR = _OWN_CACHE_DIR


# --- the risk module's kernels, compiled -------------------------------------------------------

def _jit(fn: Callable[..., Any]) -> Any:
    return numba.njit(cache=True)(fn)


_K = _formulas.jit_kernels(_jit)
notional = _K["notional"]
unrealized_pnl = _K["unrealized_pnl"]
average_entry = _K["average_entry"]
initial_margin = _K["initial_margin"]
tier_index = _K["tier_index"]
liquidation_price_tiered = _K["liquidation_price_tiered"]
bankruptcy_price = _K["bankruptcy_price"]
funding_payment = _K["funding_payment"]
trade_fee = _K["trade_fee"]
effective_mmr = _K["effective_mmr"]
liquidation_fill_price = _K["liquidation_fill_price"]
liquidation_clearance = _K["liquidation_clearance"]
liquidation_fill = _K["liquidation_fill"]
liquidation_charge = _K["liquidation_charge"]
backstop_charge = _K["backstop_charge"]
fill_beyond_bankruptcy = _K["fill_beyond_bankruptcy"]
_PK = _partial.jit_kernels(_jit)
partial_liquidation_step = _PK["partial_liquidation_step"]
position_maintenance = _PK["position_maintenance"]
_AK = _adl.jit_kernels(_jit)
score_binance = _AK["score_binance"]
score_pnl_leverage = _AK["score_pnl_leverage"]
score_hyperliquid = _AK["score_hyperliquid"]
adl_close_qty = _AK["adl_close_qty"]
indicator_lights = _AK["indicator_lights"]

# event table layouts (columns of the 2-D float arrays the kernel fills)
# ``kind`` of a fill or fee row: K_TRADE, K_LIQUIDATION or K_ADL
FILL_COLS = ("bar", "qty", "price", "fee", "realized_pnl", "kind")  # qty signed
FUNDING_COLS = ("bar", "position_qty", "price", "rate", "amount")
LIQ_COLS = ("bar", "side", "qty", "trigger_price", "liquidation_price", "bankruptcy_price",
            "fill_price", "fee", "insurance_fund", "realized_pnl", "equity_after", "partial", "qty_left",
            "insurance_cover")
FEE_COLS = ("bar", "kind", "amount")
ADL_COLS = ("bar", "side", "qty", "price", "fee", "realized_pnl", "score", "quantile", "lights",
            "flow_notional", "qty_left", "equity_after")
K_TRADE, K_LIQUIDATION, K_ADL = 0.0, 1.0, 2.0
_KINDS = {K_TRADE: "trade", K_LIQUIDATION: "liquidation", K_ADL: "adl"}
# ADL ranking score of Inst.adl_score (risk.adl.ADL_RULES[venue].score)
S_BINANCE, S_PNL_LEVERAGE, S_HYPERLIQUID = 1, 2, 3
REC_COLS = ("equity", "qty", "entry", "collateral", "liq", "funding_cum", "fees_cum")
SUMMARY_KEYS = ("final_equity", "liquidations", "first_liquidation_bar", "first_liquidation_price",
                "first_liquidation_trigger", "funding_total", "fees_total", "insurance_fund",
                "max_drawdown", "min_distance_to_liquidation", "fills", "rejected_margin", "rejected_leverage",
                "overflow", "stop_exits", "take_profit_exits", "trailing_exits", "rejected_min_notional",
                "partial_liquidations", "adl_events", "insurance_cover_total")
# the optimizer's running score accumulators, written after SUMMARY_KEYS when ``out`` has room for
# them (reports.metrics.score_from_moments turns them into every --objective): the per-bar simple
# returns of the equity curve that starts with the cash one bar before the first bar
MOMENT_KEYS = ("returns", "returns_valid", "returns_sum", "returns_sumsq", "returns_down_sumsq",
               "returns_min", "returns_max", "max_drawdown_from_start")
_S0 = len(SUMMARY_KEYS)


# --- compiled helpers -------------------------------------------------------------------------

@numba.njit(cache=True)
def _cashadjust(inverse: bool, size: float, cs: float, price: float, newprice: float) -> float:
    """engine.broker.PerpCommInfo.cashadjust."""
    if size == 0.0 or price == newprice:
        return 0.0
    return unrealized_pnl(inverse, size, cs, price, newprice)


@numba.njit(cache=True)
def _bt_execute(inverse, cs, cash, bt_size, adjbase, size, price):
    """BackBroker._execute of a market fill with PerpCommInfo (no margin, no commission, mark-to-market
    cash): returns (cash, position size, adjbase, executed size)."""
    old = bt_size
    newb = old + size
    # backtrader's Position.update: the opened and closed parts of ``size``
    if newb == 0.0:
        opened = 0.0
        closed = size
    elif old == 0.0:
        opened = size
        closed = 0.0
    elif old > 0:
        if size > 0:
            opened = size
            closed = 0.0
        elif newb > 0:
            opened = 0.0
            closed = size
        else:
            opened = newb
            closed = -old
    else:
        if size < 0:
            opened = size
            closed = 0.0
        elif newb < 0:
            opened = 0.0
            closed = size
        else:
            opened = newb
            closed = -old
    c = cash
    if closed != 0.0:
        c += _cashadjust(inverse, -closed, cs, adjbase, price)
        cash = c
    if opened != 0.0:
        if c < 0.0:
            opened = 0.0  # "not enough cash": backtrader nullifies the opening part
        else:
            if abs(newb) > abs(opened):
                c += _cashadjust(inverse, newb - opened, cs, adjbase, price)
            adjbase = price
            cash = c
    filled = closed + opened
    return cash, old + filled, adjbase, filled


@numba.njit(cache=True)
def _levels(inverse, mm_on_entry, adds_taker, adds_funding, taker, last_rate, qty, cs, entry, wallet,
            floors, mmrs, cums, eff):
    """PerpBroker._refresh_levels for one position: (liquidation price, bankruptcy price)."""
    if qty == 0.0:
        return math.nan, math.nan
    side = 1 if qty > 0 else -1
    m = floors.shape[0]
    if adds_taker or adds_funding:
        for k in range(m):
            eff[k] = effective_mmr(mmrs[k], adds_taker, taker, adds_funding, side, last_rate)
        rates = eff[:m]
    else:
        rates = mmrs
    q = abs(qty)
    lp = liquidation_price_tiered(inverse, mm_on_entry, side, q, cs, entry, wallet, floors, rates, cums, 0.0, 0.0)
    bp = bankruptcy_price(inverse, side, q, cs, entry, wallet, 0.0, 0.0)
    return lp, bp


@numba.njit(cache=True)
def _apply_fill(inverse, cs, leverage, qty, entry, coll, fill_qty, price):
    """risk.position.apply_fill on plain floats: (qty, entry, collateral, realized pnl)."""
    if fill_qty == 0.0:
        return qty, entry, coll, 0.0
    old = qty
    if old == 0.0 or (old > 0) == (fill_qty > 0):
        new_entry = price if old == 0.0 else average_entry(inverse, abs(old), entry, abs(fill_qty), price)
        im = initial_margin(notional(inverse, fill_qty, cs, price), leverage)
        return old + fill_qty, new_entry, coll + im, 0.0
    closed = min(abs(fill_qty), abs(old))
    closed_signed = closed if old > 0 else -closed
    pnl = unrealized_pnl(inverse, closed_signed, cs, entry, price)
    remaining = old + fill_qty if abs(fill_qty) <= abs(old) else 0.0
    released = coll * (closed / abs(old))
    opened = abs(fill_qty) - closed
    if remaining != 0.0:
        return remaining, entry, coll - released, pnl
    if opened > 0.0:
        flipped = opened if fill_qty > 0 else -opened
        im = initial_margin(notional(inverse, flipped, cs, price), leverage)
        return flipped, price, im, pnl
    return 0.0, 0.0, 0.0, pnl


@numba.njit(cache=True, inline="always")
def _put(buf, n, values):
    """Write event row ``n`` of ``buf`` (an overflowing buffer is re-run larger): 1 if it did not fit."""
    if n >= buf.shape[0]:
        return 1
    for k in range(len(values)):
        buf[n, k] = values[k]
    return 0


# --- the kernel's structures ------------------------------------------------------------------
#
# What the compiled pass carries, grouped (numba passes namedtuples of arrays/scalars by value):
#   Market   the prepared bar arrays (one per bar)
#   Tiers    the venue's dated tier tables, flat with offsets
#   Inst     instrument and venue constants
#   Signal   the strategy's per-bar targets and optional exit levels (0-length = none)
#   Events   the output buffers (0 rows = not wanted)
#   Account  the account and position state, passed into each step and returned by it
# plus two small accumulators written only at events: ``tot`` (float64, slots T_*) and
# ``cnt`` (int64, slots C_*).

Market = namedtuple("Market", "open high low close tlow thigh topen fprice frate mark tidx ts adl_long adl_short")
Tiers = namedtuple("Tiers", "floors mmrs cums maxlev toff")
# the venue mechanics (issue 15): prule..pcool the partial-liquidation rule (risk.partial.PARTIAL_RULES,
# prule 0 = off), adl_on..adl_queue the strategy-level ADL (risk.adl.ADL_RULES; adl_on: the bars carry a flow)
Inst = namedtuple("Inst", "inverse cs lot taker maker liq_fee_rate mm_on_entry adds_taker adds_funding "
                          "fill_bankrupt backstop cross min_notional prule pfee pfund pmin_tier ptiers pfrac pthresh pcool "
                          "adl_on adl_score adl_divide adl_maker adl_lights adl_quantile adl_queue")
Signal = namedtuple("Signal", "exposure stop take trail")
Events = namedtuple("Events", "eq rec fills funds liqs fees adls")
Account = namedtuple("Account", "cash value bt_size adjbase qty entry coll lev cur last_rate lp bp peak cool")

# tot slots
T_FUNDING, T_FEES, T_INSURANCE, T_FIRST_FILL, T_FIRST_TRIG, T_COVER = 0, 1, 2, 3, 4, 5
N_TOT = 6
# cnt slots
C_NF, C_NFU, C_NL, C_NFE, C_LIQ, C_FILLS, C_FIRST_BAR, C_REJ_MARGIN, C_REJ_LEV, C_OVERFLOW = range(10)
C_STOP, C_TAKE, C_TRAIL = 10, 11, 12
C_REJ_MIN = 13
C_PARTIAL, C_NA = 14, 15  # partial liquidation rows; adl rows
N_CNT = 16

_P = _path.jit_kernels(_jit)
first_exit = _P["first_exit"]


@numba.njit(cache=True, inline="always")
def _with_levels(a, tb, ins, eff, cur, w):
    """The account with the position's liquidation and bankruptcy prices refreshed (tier table ``cur``)."""
    lo, hi = tb.toff[cur], tb.toff[cur + 1]
    lp, bp = _levels(ins.inverse, ins.mm_on_entry, ins.adds_taker, ins.adds_funding, ins.taker, a.last_rate,
                     a.qty, ins.cs, a.entry, w, tb.floors[lo:hi], tb.mmrs[lo:hi], tb.cums[lo:hi], eff)
    return Account(a.cash, a.value, a.bt_size, a.adjbase, a.qty, a.entry, a.coll, a.lev, cur, a.last_rate,
                   lp, bp, a.peak, a.cool)


@numba.njit(cache=True, inline="always")
def _wallet(a, ins):
    """The margin behind the position: its collateral (isolated) or the wallet (cross)."""
    if ins.cross and a.qty != 0.0:
        return a.cash - unrealized_pnl(ins.inverse, a.qty, ins.cs, a.entry, a.adjbase)
    return a.coll


@numba.njit(cache=True, inline="always")
def _fee_event(ev, cnt, tot, i, kind, fee):
    tot[T_FEES] += fee
    if ev.fees.shape[0] > 0:
        cnt[C_OVERFLOW] |= _put(ev.fees, cnt[C_NFE], (float(i), kind, float(fee)))
    cnt[C_NFE] += 1


@numba.njit(cache=True, inline="always")
def _fill_event(ev, cnt, i, filled, price, fee, pnl, kind):
    if ev.fills.shape[0] > 0:
        cnt[C_OVERFLOW] |= _put(ev.fills, cnt[C_NF], (float(i), float(filled), float(price), float(fee),
                                                      float(pnl), kind))
    cnt[C_NF] += 1
    cnt[C_FILLS] += 1


# --- one small step per concern -----------------------------------------------------------------

@numba.njit(cache=True, inline="always")
def _decide(i, mk, ins, sig, a, applied):
    """Step 1, the strategy's decision at the open (SignalStrategy.next_open -> apply_exposure):
    returns (order qty, leverage, applied target)."""
    order = 0.0
    lev = a.lev
    e = sig.exposure[i]
    if e == applied:
        return order, lev, applied
    price = mk.open[i]
    inverse, cs = ins.inverse, ins.cs
    if e == 0.0 or e != e:
        tq = 0.0
    else:
        lev = abs(e)  # set_leverage
        sgn = 1.0 if e > 0 else -1.0
        # PerpStrategy.equity_at_open: the value at the previous close, plus the position's
        # PnL from that close to this open and the funding settled at this open
        budget = a.value
        if a.qty != 0.0:
            budget += (unrealized_pnl(inverse, a.qty, cs, a.entry, price)
                       - unrealized_pnl(inverse, a.qty, cs, a.entry, a.adjbase))
            if mk.frate[i] == mk.frate[i]:
                budget += funding_payment(inverse, a.qty, cs, mk.fprice[i], mk.frate[i])
        if a.bt_size != 0.0 and (a.bt_size > 0) != (sgn > 0):  # a flip also pays the closing leg's fee
            budget -= trade_fee(notional(inverse, a.bt_size, cs, price), ins.taker)
        val = budget * lev / (1.0 + lev * max(ins.taker, 0.0)) * 0.999999
        unit = notional(inverse, 1.0, cs, price)
        raw = sgn * val / unit
        steps = math.floor(abs(raw) / ins.lot + 1e-9)
        tq = math.copysign(steps * ins.lot, raw)
    delta = tq - a.bt_size
    if not abs(delta) < ins.lot / 2:
        order = delta
    return order, lev, e


@numba.njit(cache=True, inline="always")
def _fund(i, mk, tb, ins, a, tot, cnt, ev, eff):
    """Step 2, funding at the open: the position held pays or receives ``funding_payment`` at the
    mark open; isolated collateral absorbs it; the tier table of the bar is loaded."""
    rate = mk.frate[i]
    cur = mk.tidx[i]
    a = Account(a.cash, a.value, a.bt_size, a.adjbase, a.qty, a.entry, a.coll, a.lev, cur, rate, a.lp, a.bp, a.peak, a.cool)
    if a.qty == 0.0:
        return a
    amount = funding_payment(ins.inverse, a.qty, ins.cs, mk.fprice[i], rate)
    coll = a.coll if ins.cross else a.coll + amount
    a = Account(a.cash + amount, a.value, a.bt_size, a.adjbase, a.qty, a.entry, coll, a.lev, cur, rate,
                a.lp, a.bp, a.peak, a.cool)
    tot[T_FUNDING] += amount
    if ev.funds.shape[0] > 0:
        cnt[C_OVERFLOW] |= _put(ev.funds, cnt[C_NFU], (float(i), float(a.qty), float(mk.fprice[i]), float(rate),
                                                        float(amount)))
    cnt[C_NFU] += 1
    return _with_levels(a, tb, ins, eff, cur, _wallet(a, ins))


@numba.njit(cache=True, inline="always")
def _order(i, mk, tb, ins, a, order, tot, cnt, ev, eff):
    """Step 4, the order: check_submitted (initial margin + taker fee against the available
    balance, the venue's maximum leverage of the bracket) and the fill at the open, taker fee.
    Returns (account, filled qty)."""
    inverse, cs = ins.inverse, ins.cs
    qty = a.qty
    upnl = 0.0
    if qty != 0.0:
        upnl = unrealized_pnl(inverse, qty, cs, a.entry, a.adjbase)
    avail = a.cash - upnl
    if qty != 0.0:
        if ins.cross:
            avail += upnl
        avail -= a.coll
    price = mk.open[i]
    new_qty = qty + order
    if qty == 0.0 or (new_qty > 0) == (qty > 0):
        added = max(0.0, abs(new_qty) - abs(qty))
    else:
        added = abs(new_qty)
    # the reducing part of the order releases its share of the posted margin
    # (and, isolated, realizes its uPnL at the open) for the rest of the order
    released = 0.0
    if qty != 0.0 and (order > 0) != (qty > 0):
        frac = min(abs(order), abs(qty)) / abs(qty)
        released = frac * a.coll
        if not ins.cross:
            released += frac * unrealized_pnl(inverse, qty, cs, a.entry, price)
    if added > 0.0 and ins.min_notional > 0.0:
        # PerpBroker.check_submitted: an order adding exposure below the venue's minimum notional
        # (quote currency: USD contracts x cs on inverse instruments) is rejected
        quote = abs(order) * cs * (1.0 if inverse else price)
        if quote < ins.min_notional * (1.0 - 1e-9):
            cnt[C_REJ_MIN] += 1
            return a, 0.0
    if added > 0.0:
        add_notional = notional(inverse, added, cs, price)
        need = add_notional / a.lev + trade_fee(notional(inverse, order, cs, price), ins.taker)
        total = notional(inverse, new_qty, cs, price)
        t = mk.tidx[i]
        ta_, tb_ = tb.toff[t], tb.toff[t + 1]
        max_lev = tb.maxlev[ta_ + tier_index(total, tb.floors[ta_:tb_])]
        if a.lev > max_lev + 1e-12:
            cnt[C_REJ_LEV] += 1  # rejected: above the venue's maximum leverage for that notional
            return a, 0.0
        if need > avail + released + 1e-12:
            cnt[C_REJ_MARGIN] += 1  # rejected: initial margin + fee above the available balance
            return a, 0.0
    return _fill(i, mk.tidx[i], tb, ins, a, order, price, ins.taker, tot, cnt, ev, eff)


@numba.njit(cache=True, inline="always")
def _fill(i, cur, tb, ins, a, size, price, fee_rate, tot, cnt, ev, eff):
    """A trade fill of ``size`` at ``price`` (BackBroker._execute + PerpBroker._on_fill, tier
    table ``cur`` loaded), fee at ``fee_rate``: returns (account, filled qty)."""
    cash, bt_size, adjbase, filled = _bt_execute(ins.inverse, ins.cs, a.cash, a.bt_size, a.adjbase, size, price)
    if filled == 0.0:
        return Account(cash, a.value, bt_size, adjbase, a.qty, a.entry, a.coll, a.lev, a.cur, a.last_rate,
                       a.lp, a.bp, a.peak, a.cool), 0.0
    qty, entry, coll, pnl = _apply_fill(ins.inverse, ins.cs, a.lev, a.qty, a.entry, a.coll, filled, price)
    fee = trade_fee(notional(ins.inverse, filled, ins.cs, price), fee_rate)
    if fee != 0.0:
        cash -= fee
        _fee_event(ev, cnt, tot, i, K_TRADE, fee)
    _fill_event(ev, cnt, i, filled, price, fee, pnl, K_TRADE)
    a = Account(cash, a.value, bt_size, adjbase, qty, entry, coll, a.lev, cur, a.last_rate, math.nan, math.nan,
                math.nan, a.cool)
    if qty == 0.0:
        return a, filled
    return _with_levels(a, tb, ins, eff, cur, _wallet(a, ins)), filled


@numba.njit(cache=True, inline="always")
def _liq_row(ev, cnt, tot, i, side, q, trig, lp, bp, fill, fee, to_fund, pnl, cash, partial, left, cover):
    """Record one liquidation row (a partial one too: it counts as a liquidation)."""
    if ev.liqs.shape[0] > 0:
        cnt[C_OVERFLOW] |= _put(ev.liqs, cnt[C_NL], (float(i), float(side), float(q), float(trig), float(lp),
                                                      float(bp), float(fill), float(fee), float(to_fund),
                                                      float(pnl), float(cash), partial, float(left), float(cover)))
    cnt[C_NL] += 1
    if cnt[C_LIQ] == 0:
        cnt[C_FIRST_BAR] = i
        tot[T_FIRST_FILL] = fill
        tot[T_FIRST_TRIG] = trig
    cnt[C_LIQ] += 1


@numba.njit(cache=True, inline="always")
def _rates(ins, side, last_rate, mmrs, eff):
    """The maintenance rates the venue enforces (PerpBroker._mmr_arrays: BitMEX adds the taker
    fee and funding) for a position of ``side``; ``eff`` is scratch space."""
    if not (ins.adds_taker or ins.adds_funding):
        return mmrs
    m = mmrs.shape[0]
    for k in range(m):
        eff[k] = effective_mmr(mmrs[k], ins.adds_taker, ins.taker, ins.adds_funding, side, last_rate)
    return eff[:m]


@numba.njit(cache=True)  # a call, not inlined: it runs only on a trigger, the per-bar loop stays small
def _partial_close(i, mk, tb, ins, a, trig, tot, cnt, ev, eff):
    """The venue's partial-liquidation step (PerpBroker._partial_liquidation): the rule of
    :func:`risk.partial.partial_liquidation_step` at ``trig`` (the bar's adverse extreme of the
    trigger series), in the tier table loaded (``a.cur``); Hyperliquid's cooldown from
    ``a.cool``. The slice fills at ``trig`` without trade fee, pays the rule's fee (capped at the
    isolated margin left; to the insurance fund only for a clearance fee) and, isolated, leaves
    ``collateral + realized - fee`` with the position. Returns (account, full liquidation follows)."""
    inverse, cs = ins.inverse, ins.cs
    side = 1 if a.qty > 0 else -1
    q = abs(a.qty)
    w = _wallet(a, ins)
    lo, hi = tb.toff[a.cur], tb.toff[a.cur + 1]
    rates = _rates(ins, side, a.last_rate, tb.mmrs[lo:hi], eff)
    now = mk.ts[i]
    closed, fee, _, _, _, _, full, in_liq = partial_liquidation_step(
        ins.prule, inverse, ins.mm_on_entry, side, q, cs, a.entry, w, trig, tb.floors[lo:hi], rates,
        tb.cums[lo:hi], 0.0, 0.0, ins.pfee, ins.lot, ins.pmin_tier, ins.ptiers, ins.pfrac, ins.pthresh,
        now < a.cool)
    if not in_liq or closed <= 0.0:
        return a, True  # the venue liquidates the whole position
    lp_used, bp_used = a.lp, a.bp
    cash, bt_size, adjbase, filled = _bt_execute(inverse, cs, a.cash, a.bt_size, a.adjbase, -side * closed, trig)
    qty, entry, coll, pnl = _apply_fill(inverse, cs, a.lev, a.qty, a.entry, a.coll, filled, trig)
    _fill_event(ev, cnt, i, filled, trig, 0.0, pnl, K_LIQUIDATION)
    if not ins.cross:
        fee = min(fee, max(0.0, w + pnl))
    if fee != 0.0:
        cash -= fee
        _fee_event(ev, cnt, tot, i, K_LIQUIDATION, fee)
    to_fund = fee if ins.pfund else 0.0
    tot[T_INSURANCE] += to_fund
    if not ins.cross and qty != 0.0:
        coll = w + pnl - fee
    cur = mk.tidx[i]
    a = Account(cash, a.value, bt_size, adjbase, qty, entry, coll, a.lev, cur, a.last_rate, a.lp, a.bp, math.nan,
                now + ins.pcool)
    a = _with_levels(a, tb, ins, eff, cur, _wallet(a, ins))
    _liq_row(ev, cnt, tot, i, side, closed, trig, lp_used, bp_used, trig, fee, to_fund, pnl, cash, 1.0, abs(qty),
             0.0)
    cnt[C_PARTIAL] += 1
    return a, full


@numba.njit(cache=True, inline="always")
def _liquidate(i, mk, tb, ins, a, trig, tot, cnt, ev, eff):
    """Step 3/6, the liquidation: the venue's partial step first when partial liquidation is on
    (:func:`_partial_close`), then, when it follows, the liquidation of the whole position (what is
    left) at ``liquidation_fill_price`` (bankruptcy price on BitMEX/Bybit; liquidation price, or
    the trigger open on a gap, never beyond bankruptcy elsewhere) through BackBroker._execute;
    clearance fee capped at the remaining margin; the insurance fund's result is the fee plus its
    close at the market, the trigger open on a gap (``liquidation_charge``)."""
    side = 1 if a.qty > 0 else -1
    # no margin left and bankrupt at the open (funding beyond the margin): the whole position, no partial step
    insolvent = liquidation_fill(ins.fill_bankrupt, side, a.lp, a.bp, mk.topen[i], _wallet(a, ins))[1]
    if ins.prule != 0 and not insolvent:
        a, full = _partial_close(i, mk, tb, ins, a, trig, tot, cnt, ev, eff)
        if not full or a.qty == 0.0:
            return a
    inverse, cs = ins.inverse, ins.cs
    fill, insolvent = liquidation_fill(ins.fill_bankrupt, side, a.lp, a.bp, mk.topen[i], _wallet(a, ins))
    q = abs(a.qty)
    # the position's maintenance margin at the fill (PerpBroker._maint; the backstop's level), only
    # where a backstop can take the margin (a backstop venue: the isolated margin, or in cross the
    # whole wallet, since this engine's account holds this one position)
    mm_fill = 0.0
    if ins.backstop:
        lo, hi = tb.toff[a.cur], tb.toff[a.cur + 1]
        mm_fill = position_maintenance(inverse, ins.mm_on_entry, q, cs, a.entry, fill, tb.floors[lo:hi],
                                       _rates(ins, side, a.last_rate, tb.mmrs[lo:hi], eff), tb.cums[lo:hi])
    lp_used = a.lp
    bp_used = a.bp
    cash, bt_size, adjbase, filled = _bt_execute(inverse, cs, a.cash, a.bt_size, a.adjbase, -side * q, fill)
    cur = mk.tidx[i]
    qty, entry, coll, pnl = _apply_fill(inverse, cs, a.lev, a.qty, a.entry, a.coll, filled, fill)
    _fill_event(ev, cnt, i, filled, fill, 0.0, pnl, K_LIQUIDATION)
    # margin left after the close: the isolated collateral + PnL, or the whole wallet in cross
    remaining = cash if ins.cross else a.coll + pnl
    lfee, to_fund = liquidation_charge(ins.fill_bankrupt, inverse, side, q, cs, fill, lp_used, mk.topen[i],
                                       ins.liq_fee_rate, remaining, insolvent)
    lfee, to_fund = backstop_charge(ins.backstop, side, lp_used, mk.topen[i], fill, remaining, mm_fill, lfee, to_fund,
                                    insolvent)
    cover = 0.0
    if lfee < 0.0:  # insolvent: the fund's cover of the shortfall, credited to the account (not a fee)
        cover = -lfee
        lfee = 0.0
        cash += cover
        tot[T_COVER] += cover
    elif lfee != 0.0:
        cash -= lfee
        _fee_event(ev, cnt, tot, i, K_LIQUIDATION, lfee)
    tot[T_INSURANCE] += to_fund
    _liq_row(ev, cnt, tot, i, side, q, trig, lp_used, bp_used, fill, lfee, to_fund, pnl, cash, 0.0, 0.0, cover)
    return Account(cash, a.value, bt_size, adjbase, qty, entry, coll, a.lev, cur, a.last_rate, math.nan, math.nan,
                   math.nan, a.cool)


@numba.njit(cache=True)  # a call, not inlined: it runs only on a trigger, the per-bar loop stays small
def _adl_close(i, mk, tb, ins, a, tot, cnt, ev, eff):
    """Step 7, strategy-level ADL (PerpBroker._adl_step) of a position held at the end of bar i
    when the bar's flow on its side (``adl_long`` / ``adl_short``, quote notional) is > 0 and its
    uPnL at the mark close is > 0: the venue's ranking score (:data:`risk.adl.ADL_RULES`), the
    quantile given (or 1.0, the front of the queue), :func:`risk.adl.adl_close_qty` with the
    assumed queue notional, the whole position within 1e-12 of it, else rounded down to the lot;
    the close fills at the mark without trade fee (Bybit: its maker fee as an ``adl`` fee).
    Returns the account (re-valued by the caller: PerpBroker re-values after any ADL bar)."""
    side = 1 if a.qty > 0 else -1
    flow = mk.adl_long[i] if side > 0 else mk.adl_short[i]
    if not flow > 0.0:
        return a
    inverse, cs = ins.inverse, ins.cs
    mark = mk.mark[i]
    upnl = unrealized_pnl(inverse, a.qty, cs, a.entry, mark)
    if not upnl > 0.0:
        return a
    q = abs(a.qty)
    w = _wallet(a, ins)
    if ins.adl_score == S_BINANCE:
        lo, hi = tb.toff[a.cur], tb.toff[a.cur + 1]
        rates = _rates(ins, side, a.last_rate, tb.mmrs[lo:hi], eff)
        mm = position_maintenance(inverse, ins.mm_on_entry, q, cs, a.entry, mark, tb.floors[lo:hi], rates,
                                  tb.cums[lo:hi])
        score = score_binance(upnl, w, mm)
    elif ins.adl_score == S_HYPERLIQUID:
        score = score_hyperliquid(side, a.entry, mark, notional(inverse, q, cs, mark), w + upnl)
    else:
        score = score_pnl_leverage(inverse, side, q, cs, a.entry, mark, a.bp, ins.adl_divide)
    quantile = ins.adl_quantile
    own_quote = q * cs * (1.0 if inverse else mark)  # the flow is quote notional (USD, USDT, USDC)
    close = adl_close_qty(q, own_quote, quantile, ins.adl_queue, flow)
    if close >= q * (1.0 - 1e-12):
        close = q
    elif ins.lot > 0.0:
        close = math.floor(close / ins.lot + 1e-9) * ins.lot
    if close <= 0.0:
        return a
    cash, bt_size, adjbase, filled = _bt_execute(inverse, cs, a.cash, a.bt_size, a.adjbase, -side * close, mark)
    qty, entry, coll, pnl = _apply_fill(inverse, cs, a.lev, a.qty, a.entry, a.coll, filled, mark)
    _fill_event(ev, cnt, i, filled, mark, 0.0, pnl, K_ADL)
    fee = trade_fee(notional(inverse, close, cs, mark), ins.maker) if ins.adl_maker else 0.0
    if fee != 0.0:
        cash -= fee
        _fee_event(ev, cnt, tot, i, K_ADL, fee)
    cur = mk.tidx[i]
    a = Account(cash, a.value, bt_size, adjbase, qty, entry, coll, a.lev, cur, a.last_rate, math.nan, math.nan,
                math.nan, a.cool)
    if qty != 0.0:
        a = _with_levels(a, tb, ins, eff, cur, _wallet(a, ins))
    if ev.adls.shape[0] > 0:
        cnt[C_OVERFLOW] |= _put(ev.adls, cnt[C_NA], (float(i), float(side), float(close), float(mark), float(fee),
                                                      float(pnl), float(score), float(quantile),
                                                      float(indicator_lights(quantile, ins.adl_lights)),
                                                      float(flow), float(abs(qty)), float(cash)))
    cnt[C_NA] += 1
    return a


@numba.njit(cache=True, inline="always")
def _liq_reached(t_low, t_high, a):
    """The bar's adverse extreme of the trigger series reaches the liquidation price."""
    if a.qty == 0.0 or a.lp != a.lp:
        return False
    if a.qty > 0:
        return t_low <= a.lp
    return t_high >= a.lp


@numba.njit(cache=True, inline="always")
def _exits(i, mk, tb, ins, sig, a, tot, cnt, ev, eff):
    """Stops: the first exit of the held position on bar i's path (:func:`risk.path.first_exit`:
    stop-loss, take-profit, trailing stop or liquidation); returns (account, exited)."""
    if a.qty == 0.0:
        return a, False
    side = 1 if a.qty > 0 else -1
    stop = sig.stop[i] if sig.stop.shape[0] > 0 else math.nan
    take = sig.take[i] if sig.take.shape[0] > 0 else math.nan
    trail = sig.trail[i] if sig.trail.shape[0] > 0 else math.nan
    kind, price, leg, peak = first_exit(side, mk.open[i], mk.high[i], mk.low[i], mk.close[i], mk.topen[i],
                                        mk.thigh[i], mk.tlow[i], stop, take, trail, a.peak, a.lp, a.bp)
    if kind == _path.NONE:
        return Account(a.cash, a.value, a.bt_size, a.adjbase, a.qty, a.entry, a.coll, a.lev, a.cur, a.last_rate,
                       a.lp, a.bp, peak, a.cool), False
    if kind == _path.LIQUIDATION:
        return _liquidate(i, mk, tb, ins, a, price, tot, cnt, ev, eff), True
    rate = ins.maker if kind == _path.TAKE_PROFIT else ins.taker  # a limit order; stops are stop-market
    cnt[C_STOP + kind - 1] += 1
    a, _ = _fill(i, mk.tidx[i], tb, ins, a, -a.qty, price, rate, tot, cnt, ev, eff)
    return a, True


@numba.njit(cache=True, inline="always")
def _revalue(a):
    return Account(a.cash, a.cash, a.bt_size, a.adjbase, a.qty, a.entry, a.coll, a.lev, a.cur, a.last_rate,
                   a.lp, a.bp, a.peak, a.cool)


@numba.njit(cache=True, inline="always")
def _mark(close, mark, ins, a):
    """Step 5, backtrader's end-of-bar mark to market at the close, then the venue's mark."""
    if a.bt_size == 0.0:
        if a.value == a.cash:
            return a
        return _revalue(a)
    cash = a.cash + _cashadjust(ins.inverse, a.bt_size, ins.cs, a.adjbase, close)
    adjbase = close
    if mark != close:
        cash += _cashadjust(ins.inverse, a.bt_size, ins.cs, adjbase, mark)
        adjbase = mark
    return Account(cash, cash, a.bt_size, adjbase, a.qty, a.entry, a.coll, a.lev, a.cur, a.last_rate, a.lp, a.bp,
                   a.peak, a.cool)


@numba.njit(cache=True)
def _kernel(mk, tb, ins, sig, cash0, lev0, ev, out):
    """One run (the steps of the module docstring, composed); ``out`` gets SUMMARY_KEYS."""
    n = mk.open.shape[0]
    record = ev.rec.shape[0] > 0
    keep_eq = ev.eq.shape[0] > 0
    stops = sig.stop.shape[0] > 0 or sig.take.shape[0] > 0 or sig.trail.shape[0] > 0
    ntab = tb.toff.shape[0] - 1
    maxm = 0
    for k in range(ntab):
        maxm = max(maxm, tb.toff[k + 1] - tb.toff[k])
    eff = np.empty(maxm)
    tot = np.zeros(N_TOT)
    tot[T_FIRST_FILL] = math.nan
    tot[T_FIRST_TRIG] = math.nan
    cnt = np.zeros(N_CNT, dtype=np.int64)
    cnt[C_FIRST_BAR] = -1
    # cash = backtrader's cash = account equity; value = broker.getvalue() at the end of next()
    a = Account(cash0, cash0, 0.0, math.nan, 0.0, 0.0, 0.0, lev0, ntab - 1, 0.0, math.nan, math.nan, math.nan, -math.inf)
    applied = 0.0  # the strategy's last applied target
    peak_eq = -math.inf
    max_dd = -math.inf
    min_dist = math.inf

    tlow, thigh, topen, close, mark, frate = mk.tlow, mk.thigh, mk.topen, mk.close, mk.mark, mk.frate
    exposure = sig.exposure
    # drawdowns by peak segment: max over bars of 1 - cash / peak is 1 - (lowest cash since the
    # peak) / peak for each positive peak (division is monotone: the same number, one division
    # per new peak instead of one per bar)
    seg_min = math.inf
    # score accumulators (MOMENT_KEYS): sums of r and r^2 in blocks of 256 (two-level summation)
    score = out.shape[0] > _S0
    prev_eq = cash0
    nv = 0
    s1 = s2 = b1 = b2 = sdown = 0.0
    nb = 0
    rmin = math.inf
    rmax = -math.inf
    peak0 = cash0
    seg0_min = cash0
    dd0 = 0.0
    adl_on = ins.adl_on
    for i in range(n):
        # 1. the decision at the open (only when the target changes)
        order = 0.0
        if exposure[i] != applied:
            order, lev, applied = _decide(i, mk, ins, sig, a, applied)
            if lev != a.lev:
                a = Account(a.cash, a.value, a.bt_size, a.adjbase, a.qty, a.entry, a.coll, lev, a.cur, a.last_rate,
                            a.lp, a.bp, a.peak, a.cool)
        # 2. funding at the open
        if frate[i] == frate[i]:
            a = _fund(i, mk, tb, ins, a, tot, cnt, ev, eff)
        changed = False
        deferred = False
        # 3. liquidation (and, with stops, the held position's exits) before the order
        if order == 0.0 and stops:
            if a.qty != 0.0:
                a, changed = _exits(i, mk, tb, ins, sig, a, tot, cnt, ev, eff)
        elif _liq_reached(tlow[i], thigh[i], a):
            side = 1 if a.qty > 0 else -1
            if order != 0.0 and ((side > 0 and topen[i] > a.lp) or (side < 0 and topen[i] < a.lp)) \
                    and not fill_beyond_bankruptcy(not ins.cross, side, a.bp, mk.open[i]):
                deferred = True  # the market order fills at the open first; check after the fills
            else:
                a = _liquidate(i, mk, tb, ins, a, tlow[i] if side > 0 else thigh[i], tot, cnt, ev, eff)
                changed = True
        # 4. the order's admission and fill at the open
        if order != 0.0:
            a, filled = _order(i, mk, tb, ins, a, order, tot, cnt, ev, eff)
            changed = changed or filled != 0.0
        # 5. the end-of-bar mark to market
        a = _mark(close[i], mark[i], ins, a)
        # 6. after the fills: liquidation (with stops, the exits of the position now held)
        if stops and order != 0.0:
            if a.qty != 0.0:
                a, hit = _exits(i, mk, tb, ins, sig, a, tot, cnt, ev, eff)
                if hit:
                    a = _revalue(a)  # PerpBroker re-values the account after a post-fill exit
        elif (changed or deferred) and _liq_reached(tlow[i], thigh[i], a):
            a = _liquidate(i, mk, tb, ins, a, tlow[i] if a.qty > 0 else thigh[i], tot, cnt, ev, eff)
            a = _revalue(a)
        # ADL (only bars with an ADL flow): the venue closes a profitable position
        if adl_on:
            if a.qty != 0.0 and (mk.adl_long[i] > 0.0 or mk.adl_short[i] > 0.0):
                a = _revalue(_adl_close(i, mk, tb, ins, a, tot, cnt, ev, eff))
        # 7. the record
        cash = a.cash
        if keep_eq:
            ev.eq[i] = cash
        if record:
            ev.rec[i, 0] = cash
            ev.rec[i, 1] = a.qty
            ev.rec[i, 2] = a.entry
            ev.rec[i, 3] = a.coll
            ev.rec[i, 4] = a.lp
            ev.rec[i, 5] = tot[T_FUNDING]
            ev.rec[i, 6] = tot[T_FEES]
        if cash > peak_eq:
            if peak_eq > 0.0:
                dd = 1.0 - seg_min / peak_eq
                if dd > max_dd:
                    max_dd = dd
            peak_eq = cash
            seg_min = cash
        elif cash < seg_min:
            seg_min = cash
        if not peak_eq > 0.0:
            # a peak of 0 (the account wiped out by the first bar's end, e.g. a cross liquidation
            # whose clearance took the rest): numpy's 1 - 0 / 0 is NaN, which the summary's nanmax
            # skips, and numba would raise ZeroDivisionError; only this off-path branch divides
            dd = 1.0 - cash / peak_eq if peak_eq != 0.0 else (math.inf if cash < 0.0 else -math.inf)
            if dd > max_dd:
                max_dd = dd
        lp = a.lp
        if a.qty != 0.0 and lp == lp and abs(lp) != math.inf:
            gap = abs(mark[i] - lp)
            if not gap > min_dist * mark[i] * (1.0 + 1e-9):  # cheap filter; the division decides
                dist = gap / mark[i]
                if dist < min_dist:
                    min_dist = dist
        if score:
            # prev_eq 0: numpy's x / 0 (NaN for 0 / 0, skipped below) where numba would raise
            r = cash / prev_eq - 1.0 if prev_eq != 0.0 else (math.nan if cash == 0.0 else math.copysign(math.inf, cash))
            prev_eq = cash
            if r == r:
                nv += 1
                b1 += r
                b2 += r * r
                nb += 1
                if nb == 256:
                    s1 += b1
                    s2 += b2
                    b1 = b2 = 0.0
                    nb = 0
                if r < 0.0:
                    sdown += r * r
                if r < rmin:
                    rmin = r
                if r > rmax:
                    rmax = r
            if cash > peak0:
                d0 = 1.0 - seg0_min / peak0
                if d0 > dd0:
                    dd0 = d0
                peak0 = cash
                seg0_min = cash
            elif cash < seg0_min:
                seg0_min = cash

    out[0] = a.cash
    out[1] = cnt[C_LIQ]
    out[2] = cnt[C_FIRST_BAR]
    out[3] = tot[T_FIRST_FILL]
    out[4] = tot[T_FIRST_TRIG]
    out[5] = tot[T_FUNDING]
    out[6] = tot[T_FEES]
    out[7] = tot[T_INSURANCE]
    if n > 0 and peak_eq > 0.0:
        dd = 1.0 - seg_min / peak_eq
        if dd > max_dd:
            max_dd = dd
    out[8] = (max_dd if max_dd != -math.inf else math.nan) if n > 0 else 0.0  # all NaN: numpy's nanmax
    out[9] = min_dist if min_dist != math.inf else math.nan
    out[10] = cnt[C_FILLS]
    out[11] = cnt[C_REJ_MARGIN]
    out[12] = cnt[C_REJ_LEV]
    out[13] = cnt[C_OVERFLOW]
    out[14] = cnt[C_STOP]
    out[15] = cnt[C_TAKE]
    out[16] = cnt[C_TRAIL]
    out[17] = cnt[C_REJ_MIN]
    out[18] = cnt[C_PARTIAL]
    out[19] = cnt[C_NA]
    out[20] = tot[T_COVER]
    if score:
        out[_S0] = n
        out[_S0 + 1] = nv
        out[_S0 + 2] = s1 + b1
        out[_S0 + 3] = s2 + b2
        out[_S0 + 4] = sdown
        out[_S0 + 5] = rmin
        out[_S0 + 6] = rmax
        out[_S0 + 7] = max(dd0, 1.0 - seg0_min / peak0)
    return cnt[C_NF], cnt[C_NFU], cnt[C_NL], cnt[C_NFE], cnt[C_NA]


_NONE1 = np.empty(0)


@numba.njit(cache=True, parallel=True)
def _kernel_batch(mk, tb, ins, exposures, stops, takes, trails, cash0, lev0, eqs, outs):
    """Many runs over the same prepared bars (``numba.prange`` over the rows of ``exposures``):
    row j's exits are row j of ``stops``/``takes``/``trails`` (0 columns = none), its per-bar
    equity goes to row j of ``eqs`` (0 columns = not kept) and its summary to row j of ``outs``."""
    m = exposures.shape[0]
    e0 = np.empty((0, 1))
    for j in numba.prange(m):
        sig = Signal(exposures[j], stops[j], takes[j], trails[j])
        ev = Events(eqs[j], e0, e0, e0, e0, e0, e0)
        _kernel(mk, tb, ins, sig, cash0, lev0, ev, outs[j])


@numba.njit(cache=True)
def _kernel_batch_serial(mk, tb, ins, exposures, stops, takes, trails, cash0, lev0, eqs, outs):
    """:func:`_kernel_batch` on one thread, without numba's threading layer (which a process
    forked after using it cannot use: the optimizer's pool workers run this one)."""
    m = exposures.shape[0]
    e0 = np.empty((0, 1))
    for j in range(m):
        sig = Signal(exposures[j], stops[j], takes[j], trails[j])
        ev = Events(eqs[j], e0, e0, e0, e0, e0, e0)
        _kernel(mk, tb, ins, sig, cash0, lev0, ev, outs[j])


# --- preparing a bar frame ------------------------------------------------------------------

@dataclass
class Prepared:
    """A bar frame and run settings turned into the kernel's arrays (build with :func:`prepare`)."""

    config: RunConfig
    instrument: PerpInstrument
    rules: VenueRules
    index: pd.DatetimeIndex
    dtnum: np.ndarray
    arrays: dict[str, np.ndarray]
    tables: dict[str, np.ndarray]
    scalars: dict[str, Any]
    has_mark: bool
    has_funding: bool
    announcements: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.dtnum.shape[0])


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return np.ascontiguousarray(frame[name].to_numpy(dtype=np.float64, na_value=np.nan))


def prepare(bars: pd.DataFrame, config: RunConfig) -> Prepared:
    """Validate ``bars`` and ``config`` as the backtrader path does and build the kernel arrays."""
    inst = get_instrument(config.venue, config.symbol)
    rules = venue_rules(config.venue)
    if config.cash <= 0:
        raise DeleverageError(f"cash must be positive, got {config.cash}")
    if config.margin_mode not in ("isolated", "cross"):
        raise DeleverageError(f"margin mode must be one of ('isolated', 'cross'), got {config.margin_mode!r}")
    if not config.leverage > 0:
        raise DeleverageError(f"leverage must be positive, got {config.leverage}")
    name = inst.symbol
    dtnum = bar_times(bars, name)
    n = len(bars)
    open_, high, low, close = (_column(bars, c) for c in ("open", "high", "low", "close"))
    has_mark = all(c in bars.columns for c in MARK_COLUMNS)
    has_funding = "funding_rate" in bars.columns
    if has_mark:
        m_open, m_high, m_low, m_close = (_column(bars, c) for c in MARK_COLUMNS)
        use = m_low == m_low
        tlow, thigh, topen = np.where(use, m_low, low), np.where(use, m_high, high), np.where(use, m_open, open_)
        fprice = np.where(m_open == m_open, m_open, open_)
        mark = np.where(m_close == m_close, m_close, close)  # as PerpBroker.recorded()
    else:
        tlow, thigh, topen, fprice, mark = low, high, open_, open_, close
    announcements: list[str] = []
    if has_funding:
        frate = _column(bars, "funding_rate")
    else:
        frate = np.full(n, np.nan)
        if config.funding_rate is None and not config.allow_no_funding:
            raise DeleverageError(
                f"feed {name} has no funding_rate column: pass a constant funding rate "
                "(--funding-rate / PerpBroker(funding_rate=...)) or allow_no_funding=True")
        if config.funding_rate is not None:
            announcements.append(
                f"feed {name} has no funding data: settling a constant funding rate of "
                f"{config.funding_rate:g} per interval at {rules.funding_hours_utc} UTC")
            frate = np.ascontiguousarray(_formulas.funding_schedule(
                dtnum, np.asarray(rules.funding_hours_utc, dtype=np.float64), float(config.funding_rate)))
    # tier tables: flat arrays with offsets; the table in force at each bar
    tabs = inst.tier_tables
    toff = np.zeros(len(tabs) + 1, dtype=np.int64)
    for k, t in enumerate(tabs):
        toff[k + 1] = toff[k] + len(t.floors)
    ts = unix_seconds(dtnum)
    starts = np.asarray([t.effective_timestamp for t in tabs], dtype=np.float64)
    tidx = np.maximum(np.searchsorted(starts, ts, side="right") - 1, 0).astype(np.int64)
    tables = {
        "floors": np.concatenate([t.floors_array for t in tabs]),
        "mmrs": np.concatenate([t.mmrs_array for t in tabs]),
        "cums": np.concatenate([t.cums_array for t in tabs]),
        "maxlev": np.concatenate([np.asarray(t.max_leverages, dtype=np.float64) for t in tabs]),
        "toff": toff,
    }
    # venue mechanics (issue 15): the partial-liquidation rule and the bars' ADL flow
    prule = _partial.PARTIAL_RULES.get(config.venue) if config.partial_liquidation else None
    if prule is not None and prule.rule == _partial.RULE_WHOLE:
        prule = None
    flow = adl_flow_arrays(bars, name)
    arule = _adl.ADL_RULES[config.venue] if flow is not None else None
    if arule is not None:
        announcements.append(adl_announcement(name, bars.attrs.get("adl_label"), config.adl_quantile, False,
                                              config.adl_queue_notional))
    arrays = {"open": open_, "high": high, "low": low, "close": close, "tlow": np.ascontiguousarray(tlow), "thigh": np.ascontiguousarray(thigh),
              "topen": np.ascontiguousarray(topen), "fprice": np.ascontiguousarray(fprice), "frate": frate,
              "mark": np.ascontiguousarray(mark), "tidx": tidx, "ts": np.ascontiguousarray(ts, dtype=np.float64),
              "adl_long": flow[0] if flow is not None else _NONE1, "adl_short": flow[1] if flow is not None else _NONE1}
    scalars = {
        "inverse": bool(inst.inverse), "cs": float(inst.contract_size), "lot": float(inst.lot_size),
        "taker": float(inst.taker_fee), "maker": float(inst.maker_fee), "liq_fee_rate": float(inst.liquidation_fee_rate),
        "mm_on_entry": bool(rules.mm_on_entry), "adds_taker": bool(rules.mmr_adds_taker_fee),
        "adds_funding": bool(rules.mmr_adds_funding), "fill_bankrupt": rules.liquidation_fill == "bankruptcy",
        "backstop": bool(rules.backstop_takes_margin),
        "cross": config.margin_mode == "cross", "cash0": float(config.cash), "lev0": float(config.leverage),
        "min_notional": float(inst.min_notional),
        "prule": int(prule.rule) if prule is not None else 0,
        "pfee": float({"liquidation": inst.liquidation_fee_rate, "taker": inst.taker_fee, "none": 0.0}[prule.fee])
        if prule is not None else 0.0,
        "pfund": prule is not None and prule.fee == "liquidation",
        "pmin_tier": int(prule.min_tier) if prule is not None else 0,
        "ptiers": int(prule.tiers_per_step) if prule is not None else 1,
        "pfrac": float(prule.fraction) if prule is not None else 1.0,
        "pthresh": float(prule.threshold) if prule is not None else 0.0,
        "pcool": float(prule.cooldown_s) if prule is not None else 0.0,
        "adl_on": arule is not None,
        "adl_score": {"binance": S_BINANCE, "hyperliquid": S_HYPERLIQUID}.get(arule.score, S_PNL_LEVERAGE)
        if arule is not None else 0,
        "adl_divide": bool(arule.divide_losses) if arule is not None else False,
        "adl_maker": arule is not None and arule.fee == "maker",
        "adl_lights": int(arule.lights) if arule is not None else 5,
        "adl_quantile": float(config.adl_quantile) if config.adl_quantile is not None else 1.0,
        "adl_queue": float(config.adl_queue_notional),
    }
    return Prepared(config=config, instrument=inst, rules=rules, index=bars.index, dtnum=dtnum, arrays=arrays,
                    tables=tables, scalars=scalars, has_mark=has_mark, has_funding=has_funding,
                    announcements=announcements)


def _structures(p: Prepared) -> tuple[Any, Any, Any]:
    """The kernel's Market, Tiers and Inst of a prepared frame (built once, kept on it)."""
    got = getattr(p, "_structs", None)
    if got is None:
        a, t, s = p.arrays, p.tables, p.scalars
        got = (Market(*(a[k] for k in Market._fields)), Tiers(*(t[k] for k in Tiers._fields)),
               Inst(*(s[k] for k in Inst._fields)))
        p._structs = got  # type: ignore[attr-defined]
    return got


def exits_arrays(p: Prepared, exits: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(stop, take, trail)`` kernel arrays of an exits mapping (``stop_loss``, ``take_profit``,
    ``trailing_stop``: :func:`strategies.base.exit_arrays`); 0-length = none."""
    from strategies.base import exit_arrays

    got = exit_arrays(exits, p.n, "exits")
    if got is None:
        return _NONE1, _NONE1, _NONE1
    return tuple(_NONE1 if x is None else np.ascontiguousarray(x, dtype=np.float64) for x in got)  # type: ignore[return-value]


_E0 = np.empty((0, 1))


def _events(n: int = 0, eq: bool = False, rec: bool = False, caps: tuple[int, ...] | None = None) -> Any:
    """Output buffers: ``caps`` rows of fills, funding, liquidations, fees (and adl: a fifth
    entry, else the liquidations' capacity); None = no event tables."""
    if caps:
        caps = tuple(caps) + ((caps[2],) if len(caps) == 4 else ())
        fills, funds, liqs, fees, adls = (np.empty((c, len(cols))) for c, cols in
                                          zip(caps, (FILL_COLS, FUNDING_COLS, LIQ_COLS, FEE_COLS, ADL_COLS)))
    else:
        fills = funds = liqs = fees = adls = _E0
    return Events(np.empty(n) if eq else _NONE1, np.empty((n, len(REC_COLS))) if rec else _E0,
                  fills, funds, liqs, fees, adls)


def _run_kernel(p: Prepared, exposure: np.ndarray, ev: Any,
                exits: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                score: bool = False) -> tuple[np.ndarray, tuple[int, ...]]:
    exposure = np.ascontiguousarray(exposure, dtype=np.float64)
    if exposure.shape != (p.n,):
        raise DeleverageError(f"exposure has shape {exposure.shape}, expected ({p.n},) (one target per bar)")
    mk, tb, ins = _structures(p)
    stop, take, trail = exits if exits is not None else (_NONE1, _NONE1, _NONE1)
    out = np.empty(len(SUMMARY_KEYS) + (len(MOMENT_KEYS) if score else 0))
    counts = _kernel(mk, tb, ins, Signal(exposure, stop, take, trail), p.scalars["cash0"], p.scalars["lev0"], ev, out)
    return out, counts


_INT_KEYS = ("liquidations", "first_liquidation_bar", "fills", "rejected_margin", "rejected_leverage",
             "stop_exits", "take_profit_exits", "trailing_exits", "rejected_min_notional",
             "partial_liquidations", "adl_events")


def _summary(out: np.ndarray, cash0: float) -> dict[str, Any]:
    values = out.tolist()
    res: dict[str, Any] = dict(zip(SUMMARY_KEYS, values))
    if len(values) > _S0:
        res["moments"] = dict(zip(MOMENT_KEYS, values[_S0:]))
    del res["overflow"]
    for k in _INT_KEYS:
        res[k] = int(res[k])
    res["liquidated"] = res["liquidations"] > 0
    res["total_return"] = res["final_equity"] / cash0 - 1.0
    return res


def simulate_arrays(prepared: Prepared | pd.DataFrame, exposure: np.ndarray,
                    config: RunConfig | None = None, *, equity: bool = False,
                    exits: dict[str, Any] | None = None, score: bool = False) -> dict[str, Any]:
    """One run, summary numbers only (no DataFrame): the optimizer's inner loop.

    ``prepared`` is a :func:`prepare` result (prepare once per bar frame and configuration,
    then call this for each parameter set), or a bar frame together with ``config``. Returns
    ``final_equity``, ``total_return``, ``liquidated``, ``liquidations``,
    ``first_liquidation_bar`` (index, -1 when none), ``first_liquidation_price`` (fill) and
    ``first_liquidation_trigger``, ``funding_total``, ``fees_total``, ``insurance_fund``,
    ``insurance_cover_total`` (what the fund credited insolvent liquidations; not a fee),
    ``max_drawdown``, ``min_distance_to_liquidation`` (NaN when never exposed) and ``fills``,
    the same numbers as the RunResult summary of :func:`run_fast`; ``rejected_margin`` and
    ``rejected_leverage`` count the orders the broker refuses (initial margin + fee above the
    available balance; leverage above the venue maximum for the notional); ``stop_exits``,
    ``take_profit_exits``, ``trailing_exits`` the exits by ``exits`` (``{"stop_loss": levels,
    "take_profit": levels, "trailing_stop": fraction}``, see :mod:`strategies.base`). With
    ``equity=True`` also ``equity``: the per-bar equity array (``RunResult.equity["equity"]`` of
    run_fast). With ``score=True`` also ``moments``: the running score accumulators of
    :data:`MOMENT_KEYS`, from which :func:`reports.metrics.score_from_moments` gives every
    objective without keeping the equity array.
    """
    if not isinstance(prepared, Prepared):
        if config is None:
            raise DeleverageError("simulate_arrays(bars, exposure, config): config is required with a bar frame")
        prepared = prepare(prepared, config)
    ev = _events(prepared.n, eq=equity)
    out, _ = _run_kernel(prepared, exposure, ev, exits_arrays(prepared, exits) if exits else None, score)
    res = _summary(out, prepared.scalars["cash0"])
    if equity:
        res["equity"] = ev.eq
    return res


def simulate_batch(prepared: Prepared, exposures: np.ndarray, *, equity: bool = False,
                   exits: list[dict[str, Any] | None] | None = None, threads: int | None = None,
                   score: bool = False) -> list[dict[str, Any]]:
    """Many runs over the same prepared bars in one compiled call (``numba.prange`` over sets).

    ``exposures`` is an (m, n) array, one target array per row; ``exits`` optionally one exits
    mapping per row. Returns the :func:`simulate_arrays` result of each row, identical to m
    calls of it (a test checks); with ``equity=True`` each has its ``equity`` array (a row of
    one (m, n) block). ``threads`` (default ``numba.get_num_threads()``): more than 1 runs the
    sets on numba's threads (``prange``); 1 runs them in a plain loop, which is what a process
    forked from one that used numba's threading layer must do. ``score=True``: each result has
    its ``moments`` (:func:`simulate_arrays`).
    """
    exposures = np.ascontiguousarray(exposures, dtype=np.float64)
    if exposures.ndim != 2 or exposures.shape[1] != prepared.n:
        raise DeleverageError(f"exposures has shape {exposures.shape}, expected (sets, {prepared.n})")
    m, n = exposures.shape
    mk, tb, ins = _structures(prepared)
    if exits is not None and any(exits):
        if len(exits) != m:
            raise DeleverageError(f"exits has {len(exits)} entries for {m} exposure rows")
        per = [exits_arrays(prepared, e) for e in exits]
        blocks = []
        for k in range(3):
            if any(x[k].shape[0] for x in per):
                blocks.append(np.stack([x[k] if x[k].shape[0] else np.full(n, np.nan) for x in per]))
            else:
                blocks.append(np.empty((m, 0)))
        stops, takes, trails = blocks
    else:
        stops = takes = trails = np.empty((m, 0))
    eqs = np.empty((m, n)) if equity else np.empty((m, 0))
    outs = np.empty((m, len(SUMMARY_KEYS) + (len(MOMENT_KEYS) if score else 0)))
    threads = numba.get_num_threads() if threads is None else int(threads)
    kernel = _kernel_batch if threads > 1 and m > 1 else _kernel_batch_serial
    kernel(mk, tb, ins, exposures, stops, takes, trails, prepared.scalars["cash0"], prepared.scalars["lev0"],
           eqs, outs)
    cash0 = prepared.scalars["cash0"]
    results = []
    for j in range(m):
        res = _summary(outs[j], cash0)
        if equity:
            res["equity"] = eqs[j]
        results.append(res)
    return results


# --- full results -----------------------------------------------------------------------------

def supports(strategy_cls: type, params: dict[str, Any] | None = None) -> bool:
    """True when ``strategy_cls`` has a signal form (a ``target_exposure`` classmethod of its own).

    With ``params``, a strategy asked to re-enter after its own liquidation (``reenter=True``,
    as buy-and-hold offers) has no signal form either.
    """
    fn = getattr(strategy_cls, "target_exposure", None)
    if fn is None or not callable(fn):
        return False
    base = None
    try:
        from strategies.base import SignalStrategy
        base = SignalStrategy.__dict__.get("target_exposure")
    except ImportError:  # pragma: no cover
        pass
    owner = next((k for k in strategy_cls.__mro__ if "target_exposure" in k.__dict__), None)
    if owner is None or (base is not None and owner.__dict__["target_exposure"] is base):
        return False
    return not (params and params.get("reenter"))


ENGINES = ("auto", "fast", "backtrader")


def select_engine(strategy_cls: type, engine: str = "auto", params: dict[str, Any] | None = None,
                  needs: tuple[str, ...] | list[str] = ()) -> str:
    """``"fast"`` or ``"backtrader"`` for a run of ``strategy_cls`` with ``params``.

    ``auto`` picks the fast engine when the strategy has a signal form (:func:`supports`);
    ``fast`` insists on it (a clear error otherwise); ``backtrader`` always runs backtrader.
    ``needs``: venue mechanics the run uses that this engine lacks
    (:func:`engine.runner.mechanics_needing_backtrader`; none since partial liquidation and ADL
    flows run here too): ``auto`` then picks backtrader (the caller announces why) and ``fast``
    is an error.
    """
    if engine not in ENGINES:
        raise DeleverageError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "backtrader":
        return "backtrader"
    if needs:
        if engine == "fast":
            raise DeleverageError(f"the fast engine does not model {' and '.join(needs)} yet: "
                                  "use --engine backtrader or auto")
        return "backtrader"
    ok = supports(strategy_cls, params)
    if engine == "fast" and not ok:
        raise DeleverageError(f"{strategy_cls.__name__} has no signal form (target_exposure): "
                              "use --engine backtrader or auto")
    return "fast" if ok else "backtrader"


def exposure_of(strategy_cls: type, bars: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
    """The strategy's target array on ``bars`` (float64, one per bar)."""
    if not supports(strategy_cls):
        raise DeleverageError(f"{strategy_cls.__name__} has no signal form (target_exposure): run it on backtrader")
    target = np.asarray(strategy_cls.target_exposure(bars, **dict(params or {})), dtype=np.float64)
    if target.shape != (len(bars),):
        raise DeleverageError(f"{strategy_cls.__name__}.target_exposure returned shape {target.shape}, "
                              f"expected ({len(bars)},)")
    return target


def exits_of(strategy_cls: type, bars: pd.DataFrame, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The strategy's exit levels on ``bars`` (``exit_levels``, see :mod:`strategies.base`), or None."""
    fn = getattr(strategy_cls, "exit_levels", None)
    if fn is None:
        return None
    got = fn(bars, **dict(params or {}))
    return {k: v for k, v in dict(got or {}).items() if v is not None} or None


def run_fast(bars: pd.DataFrame, exposure: np.ndarray | type, config: RunConfig,
             data_info: dict[str, Any] | None = None, exits: dict[str, Any] | None = None) -> RunResult:
    """Run a signal on the fast engine; the same :class:`RunResult` tables as the backtrader path.

    ``exposure`` is the target array (signed leverage per bar, see :mod:`strategies.base`) or a
    strategy class with a signal form, whose ``target_exposure(bars, **config.params)`` (and
    ``exit_levels``, when it has stops) is used. ``exits``: stop-loss / take-profit levels and a
    trailing fraction for an array (:mod:`strategies.base`, :mod:`risk.path`).
    ``config["engine"]`` of the result is ``"fast"``.
    """
    p = prepare(bars, config)
    if isinstance(exposure, type):
        cls = exposure
        from strategies.base import signal_frame

        seen = signal_frame(bars, p.arrays["frate"])
        exposure = exposure_of(cls, seen, config.params)
        if exits is None:
            exits = exits_of(cls, seen, config.params)
    n = p.n
    exposure = np.asarray(exposure, dtype=np.float64)
    arrays = exits_arrays(p, exits) if exits else None
    changes = int(np.count_nonzero(exposure[1:] != exposure[:-1])) + 2 if n else 1
    cap = 2 * changes + 16
    nfund = max(int(np.count_nonzero(p.arrays["frate"] == p.arrays["frate"])), 1)
    while True:
        ev = _events(n, eq=True, rec=True, caps=(cap, nfund, cap, cap + cap, cap))
        out, counts = _run_kernel(p, exposure, ev, arrays)
        if not out[SUMMARY_KEYS.index("overflow")]:
            break
        cap = max(3 * n + 16, 2 * cap)  # partial liquidations and ADL closes add rows
    return _assemble(p, ev, counts, out, data_info, bars)


def _assemble(p: Prepared, ev: Any, counts: tuple[int, ...], out: np.ndarray,
              data_info: dict[str, Any] | None, bars: pd.DataFrame) -> RunResult:
    nf, nfu, nl, nfe, na = counts
    inst, rules, config = p.instrument, p.rules, p.config
    sym = inst.symbol
    rec = ev.rec
    bufs = {"fills": ev.fills, "funds": ev.funds, "liqs": ev.liqs, "fees": ev.fees, "adls": ev.adls}
    times = {}

    def t(bar: float) -> Any:
        i = int(bar)
        if i not in times:
            times[i] = num2dt(p.dtnum[i])
        return times[i]

    fills = [{"time": t(r[0]), "symbol": sym, "side": "buy" if r[1] > 0 else "sell", "qty": abs(r[1]),
              "price": r[2], "fee": r[3], "realized_pnl": r[4], "kind": _KINDS[r[5]]}
             for r in bufs["fills"][:nf].tolist()]
    funding = [{"time": t(r[0]), "symbol": sym, "position_qty": r[1], "price": r[2], "rate": r[3], "amount": r[4]}
               for r in bufs["funds"][:nfu].tolist()]
    liqs = [{"time": t(r[0]), "symbol": sym, "side": "long" if r[1] > 0 else "short", "qty": r[2],
             "trigger_price": r[3], "liquidation_price": r[4], "bankruptcy_price": r[5], "fill_price": r[6],
             "fee": r[7], "insurance_fund": r[8], "realized_pnl": r[9], "equity_after": r[10],
             "partial": bool(r[11]), "qty_left": r[12], "insurance_cover": r[13]}
            for r in bufs["liqs"][:nl].tolist()]
    fees = [{"time": t(r[0]), "symbol": sym, "kind": _KINDS[r[1]], "amount": r[2]}
            for r in bufs["fees"][:nfe].tolist()]
    adl = [{"time": t(r[0]), "symbol": sym, "side": "long" if r[1] > 0 else "short", "qty": r[2], "price": r[3],
            "fee": r[4], "realized_pnl": r[5], "score": r[6], "quantile": r[7], "lights": int(r[8]),
            "flow_notional": r[9], "qty_left": r[10], "equity_after": r[11]}
           for r in bufs["adls"][:na].tolist()]
    recorder = types.SimpleNamespace(
        _rec={"dt": p.dtnum, "equity": rec[:, 0], "qty": rec[:, 1], "entry": rec[:, 2], "collateral": rec[:, 3],
              "close": p.arrays["close"], "mark": p.arrays["mark"],
              "liq": rec[:, 4]},
        _rec_funding=rec[:, 5], _rec_fees=rec[:, 6])
    book = types.SimpleNamespace(instrument=inst, rules=rules, margin_mode=config.margin_mode)
    equity = equity_frame(recorder, book)
    frames = {"fills": events_frame("fills", fills), "funding": events_frame("funding", funding),
              "liquidations": events_frame("liquidations", liqs), "fees": events_frame("fees", fees),
              "adl": events_frame("adl", adl)}
    trades = trades_frame(frames["fills"], frames["fees"], frames["funding"], frames["liquidations"])
    cfg = result_config(config, inst, rules, engine="fast", has_mark=p.has_mark, has_funding=p.has_funding,
                        announcements=p.announcements, data_info=provenance(bars, data_info))
    summary = summarize(equity, frames, config.cash, float(out[7]))
    summary["engine"] = "fast"
    # orders the broker would have refused (PerpBroker.check_submitted): margin, venue leverage limit
    summary["orders_rejected"] = {"margin": int(out[SUMMARY_KEYS.index("rejected_margin")]),
                                  "leverage_limit": int(out[SUMMARY_KEYS.index("rejected_leverage")]),
                                  "min_notional": int(out[SUMMARY_KEYS.index("rejected_min_notional")])}
    summary["exits"] = {k: int(out[SUMMARY_KEYS.index(f"{k}_exits")]) for k in ("stop", "take_profit", "trailing")}
    return RunResult(config=cfg, equity=equity, trades=trades, summary=summary, **frames)


# --- the backtrader side of the contract for an arbitrary array --------------------------------

def _exposure_strategy() -> type:
    from strategies.base import PerpStrategy

    class ExposureStrategy(PerpStrategy):
        """Apply a given target array with the signal-form semantics (backtrader path).

        ``params={"exposure": array}``: at the open of bar i, when ``exposure[i]`` differs from
        the last applied target, ``apply_exposure`` (flat on 0, else ``target_leverage``).
        """

        params = (("exposure", None),)

        def start(self) -> None:
            super().start()
            self._targets = np.asarray(self.p.exposure, dtype=np.float64)
            self._applied = 0.0

        def next_open(self) -> None:
            target = float(self._targets[len(self.data) - 1])
            if target != self._applied:
                self.apply_exposure(self.data, target)
                self._applied = target

        prenext_open = next_open

    return ExposureStrategy


numba.config.CACHE_DIR = _USER_CACHE_DIR  # every compiled function above has its cache locator


def __getattr__(name: str) -> Any:
    if name == "ExposureStrategy":
        cls = _exposure_strategy()
        globals()["ExposureStrategy"] = cls
        return cls
    raise AttributeError(name)
