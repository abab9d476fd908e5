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
     remaining margin;
  4. order admission (initial margin + taker fee against the available balance, venue maximum
     leverage of the bracket) and the fill at the bar's open, taker fee;
  5. backtrader's end-of-bar mark to market (equity = wallet + unrealized PnL at the close);
  6. liquidation after fills for a position changed in the bar, against the same extreme;
  7. the per-bar record (equity, position, liquidation price, cumulative funding and fees).

Cash is kept exactly as backtrader's BackBroker keeps it (the same increments in the same
order), so results agree with the backtrader path to rounding (tests/fast assert 1e-9
relative on fills, funding, liquidations and equity).

Scope: one feed (one instrument); market orders only (what a signal strategy sends); isolated
or cross margin, where cross means the whole wallet backs the single position; linear and
inverse contracts of every venue in :mod:`risk.venues`, with dated tier tables. Not covered:
several feeds or positions sharing a cross wallet, limit/stop orders (maker fees), strategies
that react to their own fills, liquidations or funding (they have no signal form).

Entry points
------------
- :func:`run_fast`: a full :class:`reports.results.RunResult`, the same tables as
  :func:`engine.runner.run_backtest` (``config["engine"] == "fast"``).
- :func:`prepare` + :func:`simulate_arrays`: the optimizer's inner loop; arrays are prepared
  once per bar frame and each run returns only summary numbers (no DataFrame).
- :func:`supports`: whether a strategy class has a signal form.
- :class:`ExposureStrategy`: the backtrader side of the contract for an arbitrary exposure
  array (used by the parity tests).
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import numba
import numpy as np
import pandas as pd

from engine.broker import num2dt
from engine.bt_data import bar_times, unix_seconds
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
from risk import formulas as _formulas
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

# event table layouts (columns of the 2-D float arrays the kernel fills)
FILL_COLS = ("bar", "qty", "price", "fee", "realized_pnl", "liquidation")  # qty signed
FUNDING_COLS = ("bar", "position_qty", "price", "rate", "amount")
LIQ_COLS = ("bar", "side", "qty", "trigger_price", "liquidation_price", "bankruptcy_price",
            "fill_price", "fee", "insurance_fund", "realized_pnl", "equity_after")
FEE_COLS = ("bar", "liquidation", "amount")
REC_COLS = ("equity", "qty", "entry", "collateral", "liq", "funding_cum", "fees_cum")
SUMMARY_KEYS = ("final_equity", "liquidations", "first_liquidation_bar", "first_liquidation_price",
                "first_liquidation_trigger", "funding_total", "fees_total", "insurance_fund",
                "max_drawdown", "min_distance_to_liquidation", "fills", "rejected_margin", "rejected_leverage",
                "overflow")


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


@numba.njit(cache=True)
def _kernel(open_, close, tlow, thigh, topen, fprice, frate, mark, tidx, exposure,
            floors_all, mmrs_all, cums_all, maxlev_all, toff,
            inverse, cs, lot, taker, liq_fee_rate, mm_on_entry, adds_taker, adds_funding,
            fill_bankrupt, cross, cash0, lev0,
            rec, fills, funds, liqs, fees, out):
    """One run. ``rec``/``fills``/``funds``/``liqs``/``fees`` have 0 rows for a summary-only run."""
    n = open_.shape[0]
    record = rec.shape[0] > 0
    events = fills.shape[0] > 0
    ntab = toff.shape[0] - 1
    maxm = 0
    for k in range(ntab):
        maxm = max(maxm, toff[k + 1] - toff[k])
    eff = np.empty(maxm)

    cash = cash0          # backtrader's cash = account equity
    value = cash0         # broker.getvalue(): cash as valued at the end of BackBroker.next()
    bt_size = 0.0         # backtrader's position size
    adjbase = math.nan    # backtrader's position.adjbase
    qty = 0.0             # risk position (PerpPosition)
    entry = 0.0
    coll = 0.0
    lev = lev0            # book.leverage (= the position's leverage)
    cur = ntab - 1        # tier table loaded in the book (the latest until the first fill/funding)
    a, b = toff[cur], toff[cur + 1]
    last_rate = 0.0
    lp = math.nan
    bp = math.nan
    applied = 0.0         # the strategy's last applied target
    funding_cum = 0.0
    fees_cum = 0.0
    insurance = 0.0
    nf = 0
    nfu = 0
    nl = 0
    nfe = 0
    n_liq = 0
    n_fills = 0
    first_bar = -1
    first_fill = math.nan
    first_trig = math.nan
    funding_total = 0.0
    fees_total = 0.0
    peak = -math.inf
    max_dd = -math.inf
    min_dist = math.inf
    rej_margin = 0
    rej_lev = 0
    overflow = 0

    for i in range(n):
        # 1. strategy decision at the open (SignalStrategy.next_open -> apply_exposure)
        order = 0.0
        e = exposure[i]
        if e != applied:
            price = open_[i]
            if e == 0.0 or e != e:
                tq = 0.0
            else:
                lev = abs(e)  # set_leverage
                sgn = 1.0 if e > 0 else -1.0
                # PerpStrategy.equity_at_open: the value at the previous close, plus the position's
                # PnL from that close to this open and the funding settled at this open
                budget = value
                if qty != 0.0:
                    budget += unrealized_pnl(inverse, qty, cs, entry, price) - unrealized_pnl(inverse, qty, cs, entry, adjbase)
                    if frate[i] == frate[i]:
                        budget += funding_payment(inverse, qty, cs, fprice[i], frate[i])
                if bt_size != 0.0 and (bt_size > 0) != (sgn > 0):  # a flip also pays the closing leg's fee
                    budget -= trade_fee(notional(inverse, bt_size, cs, price), taker)
                val = budget * lev / (1.0 + lev * max(taker, 0.0)) * 0.999999
                unit = notional(inverse, 1.0, cs, price)
                raw = sgn * val / unit
                steps = math.floor(abs(raw) / lot + 1e-9)
                tq = math.copysign(steps * lot, raw)
            delta = tq - bt_size
            if not abs(delta) < lot / 2:
                order = delta
            applied = e

        changed = False
        deferred = False
        # 2. funding at the open
        rate = frate[i]
        if rate == rate:
            last_rate = rate
            cur = tidx[i]
            a, b = toff[cur], toff[cur + 1]
            if qty != 0.0:
                amount = funding_payment(inverse, qty, cs, fprice[i], rate)
                cash += amount
                funding_cum += amount
                funding_total += amount
                if not cross:
                    coll = coll + amount
                if events:
                    overflow |= _put(funds, nfu, (float(i), float(qty), float(fprice[i]), float(rate), float(amount)))
                nfu += 1
                w = coll
                if cross:
                    w = cash - unrealized_pnl(inverse, qty, cs, entry, adjbase)
                lp, bp = _levels(inverse, mm_on_entry, adds_taker, adds_funding, taker, last_rate, qty, cs,
                                 entry, w, floors_all[a:b], mmrs_all[a:b], cums_all[a:b], eff)

        # 3. liquidation before orders; 4. admission and fill at the open; 6. after fills
        for phase in range(3):
            if phase == 1:
                # 4. check_submitted + the market order's fill at the open
                if order == 0.0:
                    continue
                upnl = 0.0
                if qty != 0.0:
                    upnl = unrealized_pnl(inverse, qty, cs, entry, adjbase)
                avail = cash - upnl
                if qty != 0.0:
                    if cross:
                        avail += upnl
                    avail -= coll
                price = open_[i]
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
                    released = frac * coll
                    if not cross:
                        released += frac * unrealized_pnl(inverse, qty, cs, entry, price)
                if added > 0.0:
                    add_notional = notional(inverse, added, cs, price)
                    need = add_notional / lev + trade_fee(notional(inverse, order, cs, price), taker)
                    total = notional(inverse, new_qty, cs, price)
                    t = tidx[i]
                    ta_, tb_ = toff[t], toff[t + 1]
                    max_lev = maxlev_all[ta_ + tier_index(total, floors_all[ta_:tb_])]
                    if lev > max_lev + 1e-12:
                        rej_lev += 1  # rejected: above the venue's maximum leverage for that notional
                        continue
                    if need > avail + released + 1e-12:
                        rej_margin += 1  # rejected: initial margin + fee above the available balance
                        continue
                cash, bt_size, adjbase, filled = _bt_execute(inverse, cs, cash, bt_size, adjbase, order, open_[i])
                if filled == 0.0:
                    continue
                # PerpBroker._on_fill
                cur = tidx[i]
                a, b = toff[cur], toff[cur + 1]
                qty, entry, coll, pnl = _apply_fill(inverse, cs, lev, qty, entry, coll, filled, price)
                fee = trade_fee(notional(inverse, filled, cs, price), taker)
                if fee != 0.0:
                    cash -= fee
                    fees_cum += fee
                    fees_total += fee
                    if events:
                        overflow |= _put(fees, nfe, (float(i), 0.0, float(fee)))
                    nfe += 1
                if events:
                    overflow |= _put(fills, nf, (float(i), float(filled), float(price), float(fee), float(pnl), 0.0))
                nf += 1
                n_fills += 1
                changed = True
                w = coll
                if cross and qty != 0.0:
                    w = cash - unrealized_pnl(inverse, qty, cs, entry, adjbase)
                lp, bp = _levels(inverse, mm_on_entry, adds_taker, adds_funding, taker, last_rate, qty, cs,
                                 entry, w, floors_all[a:b], mmrs_all[a:b], cums_all[a:b], eff)
                continue
            if phase == 2:
                # 5. end of BackBroker.next(): mark to market at the close, then value the account
                if bt_size != 0.0:
                    cash += _cashadjust(inverse, bt_size, cs, adjbase, close[i])
                    adjbase = close[i]
                    # PerpBroker: the venue values open positions at the mark
                    if mark[i] != close[i]:
                        cash += _cashadjust(inverse, bt_size, cs, adjbase, mark[i])
                        adjbase = mark[i]
                value = cash
                if not changed and not deferred:
                    continue
            # liquidation check (phase 0: before orders, phase 2: after fills)
            if qty == 0.0 or lp != lp:
                continue
            side = 1 if qty > 0 else -1
            low = tlow[i]
            high = thigh[i]
            if (side > 0 and low > lp) or (side < 0 and high < lp):
                continue
            if phase == 0 and order != 0.0 and ((side > 0 and topen[i] > lp) or (side < 0 and topen[i] < lp)):
                deferred = True  # the market order fills at the open first; check after the fills
                continue
            trig = low if side > 0 else high
            fill = liquidation_fill_price(fill_bankrupt, side, lp, bp, topen[i])
            q = abs(qty)
            coll_before = coll
            lp_used = lp
            bp_used = bp
            # the liquidation order through BackBroker._execute (a pure close of |risk qty|)
            cash, bt_size, adjbase, filled = _bt_execute(inverse, cs, cash, bt_size, adjbase, -side * q, fill)
            cur = tidx[i]
            a, b = toff[cur], toff[cur + 1]
            qty, entry, coll, pnl = _apply_fill(inverse, cs, lev, qty, entry, coll, filled, fill)
            if events:
                overflow |= _put(fills, nf, (float(i), float(filled), float(fill), 0.0, float(pnl), 1.0))
            nf += 1
            n_fills += 1
            changed = True
            lp = math.nan
            bp = math.nan
            # margin left after the close: the isolated collateral + PnL, or the whole wallet in cross
            remaining = cash if cross else coll_before + pnl
            lfee, to_fund = liquidation_clearance(fill_bankrupt, inverse, side, q, cs, fill, lp_used,
                                                  liq_fee_rate, remaining)
            if lfee != 0.0:
                cash -= lfee
                fees_cum += lfee
                fees_total += lfee
                if events:
                    overflow |= _put(fees, nfe, (float(i), 1.0, float(lfee)))
                nfe += 1
            insurance += to_fund
            if events:
                overflow |= _put(liqs, nl, (float(i), float(side), float(q), float(trig), float(lp_used), float(bp_used), float(fill), float(lfee), float(to_fund), float(pnl), float(cash)))
            nl += 1
            if n_liq == 0:
                first_bar = i
                first_fill = fill
                first_trig = trig
            n_liq += 1
            if phase == 2:
                value = cash  # PerpBroker re-values the account after a post-fill liquidation

        # 7. the record
        if record:
            rec[i, 0] = cash
            rec[i, 1] = qty
            rec[i, 2] = entry
            rec[i, 3] = coll
            rec[i, 4] = lp
            rec[i, 5] = funding_cum
            rec[i, 6] = fees_cum
        if cash > peak:
            peak = cash
        dd = 1.0 - cash / peak
        if dd > max_dd:
            max_dd = dd
        if qty != 0.0 and lp == lp and abs(lp) != math.inf:
            dist = abs(mark[i] - lp) / mark[i]
            if dist < min_dist:
                min_dist = dist

    out[0] = cash
    out[1] = n_liq
    out[2] = first_bar
    out[3] = first_fill
    out[4] = first_trig
    out[5] = funding_total
    out[6] = fees_total
    out[7] = insurance
    out[8] = max_dd if n > 0 else 0.0
    out[9] = min_dist if min_dist != math.inf else math.nan
    out[10] = n_fills
    out[11] = rej_margin
    out[12] = rej_lev
    out[13] = overflow
    return nf, nfu, nl, nfe


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
    arrays = {"open": open_, "close": close, "tlow": np.ascontiguousarray(tlow), "thigh": np.ascontiguousarray(thigh),
              "topen": np.ascontiguousarray(topen), "fprice": np.ascontiguousarray(fprice), "frate": frate,
              "mark": np.ascontiguousarray(mark), "tidx": tidx}
    scalars = {
        "inverse": bool(inst.inverse), "cs": float(inst.contract_size), "lot": float(inst.lot_size),
        "taker": float(inst.taker_fee), "liq_fee_rate": float(inst.liquidation_fee_rate),
        "mm_on_entry": bool(rules.mm_on_entry), "adds_taker": bool(rules.mmr_adds_taker_fee),
        "adds_funding": bool(rules.mmr_adds_funding), "fill_bankrupt": rules.liquidation_fill == "bankruptcy",
        "cross": config.margin_mode == "cross", "cash0": float(config.cash), "lev0": float(config.leverage),
    }
    return Prepared(config=config, instrument=inst, rules=rules, index=bars.index, dtnum=dtnum, arrays=arrays,
                    tables=tables, scalars=scalars, has_mark=has_mark, has_funding=has_funding,
                    announcements=announcements)


_EMPTY2 = {k: np.empty((0, len(c))) for k, c in
           (("rec", REC_COLS), ("fills", FILL_COLS), ("funds", FUNDING_COLS), ("liqs", LIQ_COLS), ("fees", FEE_COLS))}


def _run_kernel(p: Prepared, exposure: np.ndarray, bufs: dict[str, np.ndarray]) -> tuple[np.ndarray, tuple[int, ...]]:
    exposure = np.ascontiguousarray(exposure, dtype=np.float64)
    if exposure.shape != (p.n,):
        raise DeleverageError(f"exposure has shape {exposure.shape}, expected ({p.n},) (one target per bar)")
    a, t, s = p.arrays, p.tables, p.scalars
    out = np.empty(len(SUMMARY_KEYS))
    counts = _kernel(a["open"], a["close"], a["tlow"], a["thigh"], a["topen"], a["fprice"], a["frate"], a["mark"],
                     a["tidx"], exposure, t["floors"], t["mmrs"], t["cums"], t["maxlev"], t["toff"],
                     s["inverse"], s["cs"], s["lot"], s["taker"], s["liq_fee_rate"], s["mm_on_entry"],
                     s["adds_taker"], s["adds_funding"], s["fill_bankrupt"], s["cross"], s["cash0"], s["lev0"],
                     bufs["rec"], bufs["fills"], bufs["funds"], bufs["liqs"], bufs["fees"], out)
    return out, counts


def simulate_arrays(prepared: Prepared | pd.DataFrame, exposure: np.ndarray,
                    config: RunConfig | None = None, *, equity: bool = False) -> dict[str, Any]:
    """One run, summary numbers only (no DataFrame): the optimizer's inner loop.

    ``prepared`` is a :func:`prepare` result (prepare once per bar frame and configuration,
    then call this for each parameter set), or a bar frame together with ``config``. Returns
    ``final_equity``, ``total_return``, ``liquidated``, ``liquidations``,
    ``first_liquidation_bar`` (index, -1 when none), ``first_liquidation_price`` (fill) and
    ``first_liquidation_trigger``, ``funding_total``, ``fees_total``, ``insurance_fund``,
    ``max_drawdown``, ``min_distance_to_liquidation`` (NaN when never exposed) and ``fills``,
    the same numbers as the RunResult summary of :func:`run_fast`; ``rejected_margin`` and
    ``rejected_leverage`` count the orders the broker refuses (initial margin + fee above the
    available balance; leverage above the venue maximum for the notional). With ``equity=True`` also
    ``equity``: the per-bar equity array (``RunResult.equity["equity"]`` of run_fast).
    """
    if not isinstance(prepared, Prepared):
        if config is None:
            raise DeleverageError("simulate_arrays(bars, exposure, config): config is required with a bar frame")
        prepared = prepare(prepared, config)
    bufs = _EMPTY2
    if equity:
        bufs = dict(_EMPTY2)
        bufs["rec"] = np.empty((prepared.n, len(REC_COLS)))
    out, _ = _run_kernel(prepared, exposure, bufs)
    res: dict[str, Any] = dict(zip(SUMMARY_KEYS, out.tolist()))
    del res["overflow"]
    for k in ("liquidations", "first_liquidation_bar", "fills", "rejected_margin", "rejected_leverage"):
        res[k] = int(res[k])
    res["liquidated"] = res["liquidations"] > 0
    res["total_return"] = res["final_equity"] / prepared.scalars["cash0"] - 1.0
    if equity:
        res["equity"] = bufs["rec"][:, 0].copy()
    return res


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


def select_engine(strategy_cls: type, engine: str = "auto", params: dict[str, Any] | None = None) -> str:
    """``"fast"`` or ``"backtrader"`` for a run of ``strategy_cls`` with ``params``.

    ``auto`` picks the fast engine when the strategy has a signal form (:func:`supports`);
    ``fast`` insists on it (a clear error otherwise); ``backtrader`` always runs backtrader.
    """
    if engine not in ENGINES:
        raise DeleverageError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "backtrader":
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


def run_fast(bars: pd.DataFrame, exposure: np.ndarray | type, config: RunConfig,
             data_info: dict[str, Any] | None = None) -> RunResult:
    """Run a signal on the fast engine; the same :class:`RunResult` tables as the backtrader path.

    ``exposure`` is the target array (signed leverage per bar, see :mod:`strategies.base`) or a
    strategy class with a signal form, whose ``target_exposure(bars, **config.params)`` is used.
    ``config["engine"]`` of the result is ``"fast"``.
    """
    if isinstance(exposure, type):
        exposure = exposure_of(exposure, bars, config.params)
    p = prepare(bars, config)
    n = p.n
    exposure = np.asarray(exposure, dtype=np.float64)
    changes = int(np.count_nonzero(exposure[1:] != exposure[:-1])) + 2 if n else 1
    cap = 2 * changes + 16
    while True:
        bufs = {"rec": np.empty((n, len(REC_COLS))), "fills": np.empty((cap, len(FILL_COLS))),
                "funds": np.empty((max(int(np.count_nonzero(p.arrays["frate"] == p.arrays["frate"])), 1), len(FUNDING_COLS))),
                "liqs": np.empty((cap, len(LIQ_COLS))), "fees": np.empty((cap + cap, len(FEE_COLS)))}
        out, counts = _run_kernel(p, exposure, bufs)
        if not out[SUMMARY_KEYS.index("overflow")]:
            break
        cap = 3 * n + 16
    return _assemble(p, bufs, counts, out, data_info, bars)


def _assemble(p: Prepared, bufs: dict[str, np.ndarray], counts: tuple[int, ...], out: np.ndarray,
              data_info: dict[str, Any] | None, bars: pd.DataFrame) -> RunResult:
    nf, nfu, nl, nfe = counts
    inst, rules, config = p.instrument, p.rules, p.config
    sym = inst.symbol
    rec = bufs["rec"]
    times = {}

    def t(bar: float) -> Any:
        i = int(bar)
        if i not in times:
            times[i] = num2dt(p.dtnum[i])
        return times[i]

    fills = [{"time": t(r[0]), "symbol": sym, "side": "buy" if r[1] > 0 else "sell", "qty": abs(r[1]),
              "price": r[2], "fee": r[3], "realized_pnl": r[4], "kind": "liquidation" if r[5] else "trade"}
             for r in bufs["fills"][:nf].tolist()]
    funding = [{"time": t(r[0]), "symbol": sym, "position_qty": r[1], "price": r[2], "rate": r[3], "amount": r[4]}
               for r in bufs["funds"][:nfu].tolist()]
    liqs = [{"time": t(r[0]), "symbol": sym, "side": "long" if r[1] > 0 else "short", "qty": r[2],
             "trigger_price": r[3], "liquidation_price": r[4], "bankruptcy_price": r[5], "fill_price": r[6],
             "fee": r[7], "insurance_fund": r[8], "realized_pnl": r[9], "equity_after": r[10]}
            for r in bufs["liqs"][:nl].tolist()]
    fees = [{"time": t(r[0]), "symbol": sym, "kind": "liquidation" if r[1] else "trade", "amount": r[2]}
            for r in bufs["fees"][:nfe].tolist()]
    recorder = types.SimpleNamespace(
        _rec={"dt": p.dtnum, "equity": rec[:, 0], "qty": rec[:, 1], "entry": rec[:, 2], "collateral": rec[:, 3],
              "close": p.arrays["close"], "mark": p.arrays["mark"],
              "liq": rec[:, 4]},
        _rec_funding=rec[:, 5], _rec_fees=rec[:, 6])
    book = types.SimpleNamespace(instrument=inst, rules=rules, margin_mode=config.margin_mode)
    equity = equity_frame(recorder, book)
    frames = {"fills": events_frame("fills", fills), "funding": events_frame("funding", funding),
              "liquidations": events_frame("liquidations", liqs), "fees": events_frame("fees", fees)}
    trades = trades_frame(frames["fills"], frames["fees"], frames["funding"])
    cfg = result_config(config, inst, rules, engine="fast", has_mark=p.has_mark, has_funding=p.has_funding,
                        announcements=p.announcements, data_info=provenance(bars, data_info))
    summary = summarize(equity, frames, config.cash, float(out[7]))
    summary["engine"] = "fast"
    # orders the broker would have refused (PerpBroker.check_submitted): margin, venue leverage limit
    summary["orders_rejected"] = {"margin": int(out[SUMMARY_KEYS.index("rejected_margin")]),
                                  "leverage_limit": int(out[SUMMARY_KEYS.index("rejected_leverage")])}
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
