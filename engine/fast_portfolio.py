"""The portfolio fast engine: several symbols on one cross wallet in one compiled pass.

The same portfolio as :func:`engine.portfolio.run_backtrader` (signal form: one target array
per symbol over a common time index, sizing and order sequence of :mod:`engine.portfolio`),
compiled with numba over stacked bar arrays (one row per symbol). The pass reproduces
:class:`engine.broker.PerpBroker` in account mode step by step, with the risk module's compiled
kernels (``risk.formulas``, ``risk.account``) and the single-symbol engine's compiled
backtrader steps (:func:`engine.fast._bt_execute`, :func:`engine.fast._apply_fill`,
:func:`engine.fast._cashadjust`); per bar i:

1. the decision at the open (:class:`engine.portfolio` ``PortfolioExposureStrategy.next_open``):
   the account equity at the open, the re-sized symbols' quantities, reducing orders first (every
   symbol's leverage is the run's one account value, :func:`engine.portfolio.account_leverage`);
2. funding per symbol at its own settlements (the position held at the open, at the mark open);
3. order admission (``check_submitted``: initial margin + taker fee against the available
   balance, the venue's maximum leverage of the bracket, the minimum notional) and the fills at
   the open, taker fee;
4. backtrader's end-of-bar mark to market at each symbol's close;
5. the account-level liquidation (:meth:`PerpBroker._account_liquidation`: every position at its
   bar's adverse trigger extreme, :func:`risk.account.next_to_liquidate`, the picked one closed
   at its account-level liquidation price by :func:`risk.formulas.liquidation_fill` and
   :func:`risk.formulas.liquidation_charge` (with no margin behind it, the others at their
   extremes, and bankrupt at its open: at its trigger open, the insurance fund covering the
   shortfall, credited as the row's ``insurance_cover``, not a fee), the account re-evaluated;
   with ``partial_liquidation`` the picked position (unless insolvent) first gets
   :func:`risk.partial.partial_liquidation_step` judged in the account, once per position and bar,
   as :meth:`PerpBroker._account_liquidation`);
   ADL (:meth:`PerpBroker._adl_step`, per symbol in order, on Binance and Hyperliquid): the bar's
   flow on the position's side (its own bars' ``adl_long_notional`` / ``adl_short_notional``)
   closes a profitable position, :func:`risk.adl.adl_close_qty` at quantile 1.0 with no queue
   ahead (the broker's defaults), at the mark close, no trade fee; scored by
   :func:`risk.adl.score_binance` / :func:`risk.adl.score_hyperliquid`;
6. the venue's mark (positions valued at each symbol's mark close);
7. the record: equity, per symbol qty, entry, mark, uPnL and maintenance margin at the mark,
   displayed liquidation price (the others at their marks).

Money and events agree with the broker to rounding (tests/portfolio assert 1e-9 relative).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import pandas as pd

from engine import fast as _fast
from engine.portfolio import PER_SYMBOL, PortfolioResult, PortfolioSpec, _events_frame, account_leverage, spec_info, \
    summarize, validate
from engine.runner import RunConfig
from risk import account as _account
from risk import adl as _adl
from risk import partial as _partial
from risk.account import account_rule
from risk.errors import DeleverageError
from risk.venues import venue_rules

_numba_cache = _fast._OWN_CACHE_DIR
if _numba_cache is not None:
    _saved_cache = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = _numba_cache

_A = _account.jit_kernels(_fast._jit)
_D = _adl.jit_kernels(_fast._jit)
score_binance = _D["score_binance"]
score_hyperliquid = _D["score_hyperliquid"]
adl_close_qty = _D["adl_close_qty"]
partial_liquidation_step = _partial.jit_kernels(_fast._jit)["partial_liquidation_step"]
next_to_liquidate = _A["next_to_liquidate"]
account_margin_ratio = _A["account_margin_ratio"]
account_backstop = _A["account_backstop"]
others = _A["others"]
ORDER_ALL = _account.ORDER_ALL  # a compile-time constant inside the kernels
_put = _fast._put
notional = _fast.notional
unrealized_pnl = _fast.unrealized_pnl
tier_index = _fast.tier_index
liquidation_price_tiered = _fast.liquidation_price_tiered
bankruptcy_price = _fast.bankruptcy_price
funding_payment = _fast.funding_payment
trade_fee = _fast.trade_fee
effective_mmr = _fast.effective_mmr
liquidation_fill = _fast._K["liquidation_fill"]
liquidation_charge = _fast._K["liquidation_charge"]
maintenance_margin = _fast._K["maintenance_margin"]
_bt_execute = _fast._bt_execute
_apply_fill = _fast._apply_fill
_cashadjust = _fast._cashadjust

FILL_COLS = ("bar", "sym", "qty", "price", "fee", "realized_pnl", "liquidation")
FUNDING_COLS = ("bar", "sym", "position_qty", "price", "rate", "amount")
LIQ_COLS = ("bar", "sym", "side", "qty", "trigger_price", "liquidation_price", "bankruptcy_price", "fill_price",
            "fee", "insurance_fund", "realized_pnl", "equity_after", "account_margin_ratio", "partial", "qty_left",
            "insurance_cover")
PARTIAL_FEES = {"liquidation": 0, "taker": 1, "none": 2}
FEE_COLS = ("bar", "sym", "liquidation", "amount")  # liquidation: 0 trade, 1 liquidation, 2 adl
ADL_COLS = ("bar", "sym", "side", "qty", "price", "realized_pnl", "score", "flow", "qty_left", "equity_after")
# counters
N_FILLS, N_FUND, N_LIQ, N_FEE, N_OVERFLOW, N_REJ_MARGIN, N_REJ_LEV, N_REJ_MIN, N_ADL = range(9)
# ADL ranking scores the compiled portfolio engine computes (risk.adl.ADL_RULES[venue].score)
ADL_SCORES = {"binance": 0, "hyperliquid": 1}


@numba.njit(cache=True)
def _eff_rates(k, cur, side, last_rate, taker, floors_off, mmrs, adds_taker, adds_funding, eff):
    """The effective maintenance rates of symbol k's table ``cur`` (PerpBroker._mmr_arrays) in ``eff``."""
    lo, hi = floors_off[cur], floors_off[cur + 1]
    if not (adds_taker or adds_funding):
        return mmrs[lo:hi]
    for j in range(hi - lo):
        eff[j] = effective_mmr(mmrs[lo + j], adds_taker, taker[k], adds_funding, side, last_rate[k])
    return eff[:hi - lo]


@numba.njit(cache=True)
def _maint(k, qty, entry, price, cur, last_rate, inverse, cs, taker, mm_on_entry, adds_taker, adds_funding,
           floors, mmrs, cums, toff):
    """PerpBroker._maint: maintenance margin of symbol k's position valued at ``price``."""
    if qty == 0.0:
        return 0.0
    lo, hi = toff[cur], toff[cur + 1]
    value = notional(inverse[k], qty, cs[k], entry if mm_on_entry else price)
    t = tier_index(value, floors[lo:hi])
    mmr = mmrs[lo + t]
    if adds_taker or adds_funding:
        side = 1 if qty > 0 else -1
        mmr = effective_mmr(mmr, adds_taker, taker[k], adds_funding, side, last_rate[k])
    return maintenance_margin(value, mmr, cums[lo + t])


@numba.njit(cache=True)
def _account_wallet(cash, qty, inverse, cs, entry, adjbase):
    """The cross wallet: backtrader's cash (= equity at the last mark) less every open position's uPnL there."""
    upnl_sum = 0.0
    for o in range(qty.shape[0]):
        if qty[o] != 0.0:
            upnl_sum += unrealized_pnl(inverse[o], qty[o], cs[o], entry[o], adjbase[o])
    return cash - upnl_sum


@numba.njit(cache=True)
def _account_levels(k, side, wallet, omm, oup, trig, cur, last_rate, inverse, cs, entry, qty, taker, mm_on_entry,
                    adds_taker, adds_funding, floors, mmrs, cums, toff, eff):
    """Position ``k``'s account-level liquidation and bankruptcy prices (the others' MM and uPnL
    ``omm``/``oup`` in the account), with the trigger price when neither exists; and its effective rates."""
    q = abs(qty[k])
    rates = _eff_rates(k, cur[k], side, last_rate, taker, toff, mmrs, adds_taker, adds_funding, eff)
    lo, hi = toff[cur[k]], toff[cur[k] + 1]
    lpk = liquidation_price_tiered(inverse[k], mm_on_entry, side, q, cs[k], entry[k], wallet,
                                   floors[lo:hi], rates, cums[lo:hi], omm, oup)
    bpk = bankruptcy_price(inverse[k], side, q, cs[k], entry[k], wallet, omm, oup)
    if lpk != lpk and bpk != bpk:
        lpk = trig
    return q, rates, lo, hi, lpk, bpk


@numba.njit(cache=True)
def _venue_close(i, k, size, price, cash, inverse, cs, lev, bt_size, adjbase, cur, tidx, qty, entry, coll,
                 fills, cnt):
    """A venue's close of ``size`` (signed) of symbol k at ``price`` through backtrader's cash
    (PerpBroker._forced_close): no trade fee, a fill row of kind liquidation. Returns
    ``(cash, filled, realized PnL)``."""
    cash, bt_size[k], adjbase[k], filled = _bt_execute(inverse[k], cs[k], cash, bt_size[k], adjbase[k], size, price)
    cur[k] = tidx[k, i]
    qty[k], entry[k], coll[k], pnl = _apply_fill(inverse[k], cs[k], lev[k], qty[k], entry[k], coll[k], filled, price)
    cnt[N_OVERFLOW] |= _put(fills, cnt[N_FILLS], (float(i), float(k), filled, price, 0.0, pnl, 1.0))
    cnt[N_FILLS] += 1
    return cash, filled, pnl


@numba.njit(cache=True)
def _kernel(opn, low, high, close, tlow, thigh, topen, fprice, frate, mark, tidx,
            inverse, cs, lot, taker, liq_fee_rate, min_notional, cur0,
            mm_on_entry, adds_taker, adds_funding, fill_bankrupt, order_rule, backstop_on,
            floors, mmrs, cums, maxlev, toff, targets, cash0, lev0,
            adl_on, adl_long, adl_short, adl_score,
            p_on, p_rule, p_fee, p_min_tier, p_tiers, p_fraction, p_threshold, p_cooldown, times_s,
            rec, fills, funds, liqs, fees, adls, cnt, tot):
    ns, n = opn.shape
    maxm = 0
    for t in range(toff.shape[0] - 1):
        maxm = max(maxm, toff[t + 1] - toff[t])
    eff = np.empty(maxm)
    bt_size = np.zeros(ns)
    adjbase = np.zeros(ns)
    qty = np.zeros(ns)
    entry = np.zeros(ns)
    coll = np.zeros(ns)
    lev = lev0.copy()
    lp = np.full(ns, math.nan)
    last_rate = np.zeros(ns)
    cur = cur0.copy()
    applied = np.zeros(ns)
    order = np.zeros(ns)
    seq = np.empty(ns, dtype=np.int64)
    accepted = np.zeros(ns, dtype=np.bool_)
    qtys = np.empty(ns)
    mms = np.empty(ns)
    upnls = np.empty(ns)
    trig = np.empty(ns)
    opens = np.empty(ns)
    idx = np.empty(ns, dtype=np.int64)
    cool = np.full(ns, -math.inf)  # a partial liquidation's cooldown ends here (unix seconds)
    sliced = np.zeros(ns, dtype=np.bool_)
    cash = cash0
    value = cash0
    insurance = 0.0
    for i in range(n):
        # 1. the decision at the open
        nseq = 0
        any_change = False
        for k in range(ns):
            t = targets[k, i]
            order[k] = 0.0
            if t != applied[k] and not (t != t and applied[k] == 0.0):
                any_change = True
        if any_change:
            budget = value
            for k in range(ns):
                if qty[k] != 0.0:
                    budget += (unrealized_pnl(inverse[k], qty[k], cs[k], entry[k], opn[k, i])
                               - unrealized_pnl(inverse[k], qty[k], cs[k], entry[k], adjbase[k]))
                    r = frate[k, i]
                    if r == r:
                        budget += funding_payment(inverse[k], qty[k], cs[k], fprice[k, i], r)
            room = 1.0
            for k in range(ns):
                t = targets[k, i]
                if t == t:
                    room += abs(t) * max(taker[k], 0.0)
            for k in range(ns):
                t = targets[k, i]
                if not (t != applied[k] and not (t != t and applied[k] == 0.0)):
                    continue
                held = bt_size[k]
                if t == t and t != 0.0 and held != 0.0 and (held > 0) != (t > 0):
                    budget -= trade_fee(notional(inverse[k], held, cs[k], opn[k, i]), taker[k])
            # the plan: (reducing first, then symbol order)
            for pass_ in range(2):
                for k in range(ns):
                    t = targets[k, i]
                    if not (t != applied[k] and not (t != t and applied[k] == 0.0)):
                        continue
                    if t != t or t == 0.0:
                        q = 0.0
                    else:
                        val = budget * abs(t) / room * 0.999999
                        q = math.copysign(val / notional(inverse[k], 1.0, cs[k], opn[k, i]), t)
                    steps = math.floor(abs(q) / lot[k] + 1e-9)
                    q = math.copysign(steps * lot[k], q)
                    steps = math.floor(abs(q) / lot[k] + 1e-9)  # PerpStrategy.target_qty rounds again
                    q = math.copysign(steps * lot[k], q)
                    held = bt_size[k]
                    reducing = held != 0.0 and (q == 0.0 or ((q > 0) == (held > 0) and abs(q) < abs(held)))
                    if (pass_ == 0) != reducing:
                        continue
                    delta = q - held
                    if abs(delta) < lot[k] / 2:
                        continue
                    order[k] = delta
                    seq[nseq] = k
                    nseq += 1
            for k in range(ns):
                t = targets[k, i]
                if t != applied[k] and not (t != t and applied[k] == 0.0):
                    applied[k] = t if t == t else 0.0
        # 2. funding per symbol
        for k in range(ns):
            r = frate[k, i]
            if r == r:
                last_rate[k] = r
                cur[k] = tidx[k, i]
                if qty[k] != 0.0:
                    amount = funding_payment(inverse[k], qty[k], cs[k], fprice[k, i], r)
                    cash += amount
                    tot[0] += amount
                    cnt[N_OVERFLOW] |= _put(funds, cnt[N_FUND], (float(i), float(k), qty[k], fprice[k, i], r, amount))
                    cnt[N_FUND] += 1
        # 3. admission (check_submitted) and the fills at the open
        if nseq > 0:
            avail = _account_wallet(cash, qty, inverse, cs, entry, adjbase)
            for k in range(ns):
                if qty[k] != 0.0:
                    avail += unrealized_pnl(inverse[k], qty[k], cs[k], entry[k], adjbase[k])
                    avail -= coll[k]
            for s in range(nseq):
                k = seq[s]
                size = order[k]
                accepted[k] = False
                price = opn[k, i]
                pos_qty = qty[k]
                new_qty = pos_qty + size
                if pos_qty == 0.0 or (new_qty > 0) == (pos_qty > 0):
                    added = max(0.0, abs(new_qty) - abs(pos_qty))
                else:
                    added = abs(new_qty)
                if added > 0.0 and min_notional[k] > 0.0:
                    quote = abs(size) * cs[k] * (1.0 if inverse[k] else price)
                    if quote < min_notional[k] * (1.0 - 1e-9):
                        cnt[N_REJ_MIN] += 1
                        continue
                released = 0.0
                if pos_qty != 0.0 and (size > 0) != (pos_qty > 0):
                    frac = min(abs(size), abs(pos_qty)) / abs(pos_qty)
                    released = frac * coll[k]
                need = 0.0
                if added > 0.0:
                    add_notional = notional(inverse[k], added, cs[k], price)
                    need = add_notional / lev[k] + trade_fee(notional(inverse[k], abs(size), cs[k], price), taker[k])
                    total = notional(inverse[k], new_qty, cs[k], price)
                    tb = tidx[k, i]
                    lo, hi = toff[tb], toff[tb + 1]
                    max_lev = maxlev[lo + tier_index(total, floors[lo:hi])]
                    if lev[k] > max_lev + 1e-12:
                        cnt[N_REJ_LEV] += 1
                        continue
                    if need > avail + released + 1e-12:
                        cnt[N_REJ_MARGIN] += 1
                        continue
                avail += released - need
                accepted[k] = True
            for s in range(nseq):
                k = seq[s]
                if not accepted[k]:
                    continue
                price = opn[k, i]
                cash, bt_size[k], adjbase[k], filled = _bt_execute(inverse[k], cs[k], cash, bt_size[k], adjbase[k],
                                                                   order[k], price)
                if filled == 0.0:
                    continue
                cur[k] = tidx[k, i]
                qty[k], entry[k], coll[k], pnl = _apply_fill(inverse[k], cs[k], lev[k], qty[k], entry[k], coll[k],
                                                             filled, price)
                fee = trade_fee(notional(inverse[k], filled, cs[k], price), taker[k])
                cash -= fee
                if fee != 0.0:
                    tot[1] += fee
                    cnt[N_OVERFLOW] |= _put(fees, cnt[N_FEE], (float(i), float(k), 0.0, fee))
                    cnt[N_FEE] += 1
                cnt[N_OVERFLOW] |= _put(fills, cnt[N_FILLS], (float(i), float(k), filled, price, fee, pnl, 0.0))
                cnt[N_FILLS] += 1
        # 4. backtrader's end-of-bar mark to market
        for k in range(ns):
            if bt_size[k] != 0.0:
                cash += _cashadjust(inverse[k], bt_size[k], cs[k], adjbase[k], close[k, i])
                adjbase[k] = close[k, i]
        # 5. the account-level liquidation
        started = False
        for k in range(ns):
            sliced[k] = False
        if backstop_on:
            # PerpBroker._account_backstop: below 2/3 of its MM at the opens (risk.account.account_backstop)
            # the vault takes every position at its trigger open and the cross margin left
            m = 0
            mm_tot = 0.0
            up_tot = 0.0
            for k in range(ns):
                if qty[k] != 0.0:
                    idx[m] = k
                    qtys[m] = qty[k]
                    mms[m] = _maint(k, qty[k], entry[k], topen[k, i], cur[k], last_rate, inverse, cs, taker,
                                    mm_on_entry, adds_taker, adds_funding, floors, mmrs, cums, toff)
                    upnls[m] = unrealized_pnl(inverse[k], qty[k], cs[k], entry[k], topen[k, i])
                    mm_tot += mms[m]
                    up_tot += upnls[m]
                    m += 1
            wallet = _account_wallet(cash, qty, inverse, cs, entry, adjbase) if m > 0 else 0.0
            if m > 0 and account_backstop(True, wallet, mm_tot, up_tot):
                ratio = account_margin_ratio(wallet, mm_tot, up_tot)
                last = -1
                last_k = 0
                while True:
                    j = next_to_liquidate(ORDER_ALL, wallet, qtys[:m], mms[:m], upnls[:m], True)
                    if j < 0:
                        break
                    k = idx[j]
                    omm, oup = others(j, qtys[:m], mms[:m], upnls[:m])
                    side = 1 if qty[k] > 0 else -1
                    price = topen[k, i]
                    q, rates, lo, hi, lpk, bpk = _account_levels(k, side, wallet, omm, oup, price, cur, last_rate,
                                                                 inverse, cs, entry, qty, taker, mm_on_entry,
                                                                 adds_taker, adds_funding, floors, mmrs, cums, toff,
                                                                 eff)
                    cash, filled, pnl = _venue_close(i, k, -side * q, price, cash, inverse, cs, lev, bt_size, adjbase,
                                                     cur, tidx, qty, entry, coll, fills, cnt)
                    cover = -cash if cash < 0.0 else 0.0  # the pool below 0: the fund's cover, as any insolvent one
                    cash += cover
                    insurance -= cover
                    last = cnt[N_LIQ]
                    cnt[N_OVERFLOW] |= _put(liqs, cnt[N_LIQ], (float(i), float(k), float(side), q, price, lpk, bpk,
                                                               price, 0.0, -cover, pnl, cash, ratio, 0.0, 0.0, cover))
                    cnt[N_LIQ] += 1
                    qtys[j] = 0.0
                    last_k = k
                    wallet = _account_wallet(cash, qty, inverse, cs, entry, adjbase)
                left = cash  # every position closed: the cross margin left, the vault's
                if left > 0.0:
                    cash -= left
                    tot[1] += left
                    insurance += left
                    cnt[N_OVERFLOW] |= _put(fees, cnt[N_FEE], (float(i), float(last_k), 1.0, left))
                    cnt[N_FEE] += 1
                    if last < liqs.shape[0]:
                        liqs[last, 8] = left
                        liqs[last, 9] += left
                        liqs[last, 11] = cash
        while True:
            m = 0
            for k in range(ns):
                if qty[k] != 0.0:
                    price = tlow[k, i] if qty[k] > 0 else thigh[k, i]
                    idx[m] = k
                    qtys[m] = qty[k]
                    mms[m] = _maint(k, qty[k], entry[k], price, cur[k], last_rate, inverse, cs, taker, mm_on_entry,
                                    adds_taker, adds_funding, floors, mmrs, cums, toff)
                    upnls[m] = unrealized_pnl(inverse[k], qty[k], cs[k], entry[k], price)
                    trig[m] = price
                    opens[m] = topen[k, i]
                    m += 1
            if m == 0:
                break
            wallet = _account_wallet(cash, qty, inverse, cs, entry, adjbase)
            j = next_to_liquidate(order_rule, wallet, qtys[:m], mms[:m], upnls[:m], started)
            if j < 0:
                break
            mm_tot = 0.0
            up_tot = 0.0
            for jj in range(m):
                mm_tot += mms[jj]
                up_tot += upnls[jj]
            ratio = account_margin_ratio(wallet, mm_tot, up_tot)
            k = idx[j]
            omm, oup = others(j, qtys[:m], mms[:m], upnls[:m])
            side = 1 if qty[k] > 0 else -1
            q, rates, lo, hi, lpk, bpk = _account_levels(k, side, wallet, omm, oup, trig[j], cur, last_rate, inverse,
                                                         cs, entry, qty, taker, mm_on_entry, adds_taker, adds_funding,
                                                         floors, mmrs, cums, toff, eff)
            # no margin behind it (the others at their extremes) and bankrupt at its open (a funding
            # payment, or the others' loss, took it all): the whole position at the open, no partial step
            insolvent = liquidation_fill(fill_bankrupt, side, lpk, bpk, opens[j], wallet - omm + oup)[1]
            if p_on and not sliced[k] and not insolvent:
                # the venue's partial rule first (PerpBroker._partial_liquidation judged in the account:
                # the others' MM and uPnL at their extremes); once per position and bar
                sliced[k] = True
                fee_rate = liq_fee_rate[k] if p_fee == 0 else (taker[k] if p_fee == 1 else 0.0)
                now = times_s[i]
                closed, pfee, _r, _rem, _w, _t, full, in_liq = partial_liquidation_step(
                    p_rule, inverse[k], mm_on_entry, side, q, cs[k], entry[k], wallet, trig[j], floors[lo:hi],
                    rates, cums[lo:hi], omm, oup, fee_rate, lot[k], p_min_tier, p_tiers, p_fraction, p_threshold,
                    now < cool[k])
                if in_liq and closed > 0.0:
                    price = trig[j]
                    cash, filled, pnl = _venue_close(i, k, -side * closed, price, cash, inverse, cs, lev, bt_size,
                                                     adjbase, cur, tidx, qty, entry, coll, fills, cnt)
                    if pfee != 0.0:
                        cash -= pfee
                        tot[1] += pfee
                        cnt[N_OVERFLOW] |= _put(fees, cnt[N_FEE], (float(i), float(k), 1.0, pfee))
                        cnt[N_FEE] += 1
                    to_fund = pfee if p_fee == 0 else 0.0
                    insurance += to_fund
                    cool[k] = now + p_cooldown
                    cnt[N_OVERFLOW] |= _put(liqs, cnt[N_LIQ], (float(i), float(k), float(side), closed, price, lpk,
                                                               bpk, price, pfee, to_fund, pnl, cash, ratio, 1.0,
                                                               abs(qty[k]), 0.0))
                    cnt[N_LIQ] += 1
                    if not full or qty[k] == 0.0:
                        continue  # re-evaluate the account after the slice
                    # the rest closes whole at its account-level price with the slice in the wallet
                    wallet = _account_wallet(cash, qty, inverse, cs, entry, adjbase)
                    q, rates, lo, hi, lpk, bpk = _account_levels(k, side, wallet, omm, oup, trig[j], cur, last_rate,
                                                                 inverse, cs, entry, qty, taker, mm_on_entry,
                                                                 adds_taker, adds_funding, floors, mmrs, cums, toff,
                                                                 eff)
            if started and order_rule == ORDER_ALL:
                lpk = trig[j]  # the rest of a breached account (ORDER_ALL): at the breach, as the broker
            started = True
            fill, insolvent = liquidation_fill(fill_bankrupt, side, lpk, bpk, opens[j], wallet - omm + oup)
            cash, filled, pnl = _venue_close(i, k, -side * q, fill, cash, inverse, cs, lev, bt_size, adjbase, cur,
                                             tidx, qty, entry, coll, fills, cnt)
            lfee, to_fund = liquidation_charge(fill_bankrupt, inverse[k], side, q, cs[k], fill, lpk, opens[j],
                                               liq_fee_rate[k], cash, insolvent)
            # no backstop_charge here: an account past the backstop level went to the vault above
            cover = 0.0
            if lfee < 0.0:  # insolvent: the fund's cover of the shortfall, credited to the account (not a fee)
                cover = -lfee
                lfee = 0.0
                cash += cover
            elif lfee != 0.0:
                cash -= lfee
                tot[1] += lfee
                cnt[N_OVERFLOW] |= _put(fees, cnt[N_FEE], (float(i), float(k), 1.0, lfee))
                cnt[N_FEE] += 1
            insurance += to_fund
            cnt[N_OVERFLOW] |= _put(liqs, cnt[N_LIQ], (float(i), float(k), float(side), q, trig[j], lpk, bpk, fill,
                                                       lfee, to_fund, pnl, cash, ratio, 0.0, 0.0, cover))
            cnt[N_LIQ] += 1
        # 5b. ADL (PerpBroker._adl_step, per symbol in order): the bar's flow on the position's side
        # closes a profitable position at the mark close; quantile 1.0 (the front of the queue) and
        # no queue ahead, the broker's defaults; no trade fee (Binance, Hyperliquid: ADL_SCORES)
        for k in range(ns):
            if not adl_on[k] or qty[k] == 0.0:
                continue
            side = 1 if qty[k] > 0 else -1
            flow = adl_long[k, i] if side > 0 else adl_short[k, i]
            if not flow > 0.0:
                continue
            mk = mark[k, i]
            upnl_k = unrealized_pnl(inverse[k], qty[k], cs[k], entry[k], mk)
            if not upnl_k > 0.0:
                continue
            q = abs(qty[k])
            wallet = _account_wallet(cash, qty, inverse, cs, entry, adjbase)
            if adl_score == 0:
                score = score_binance(upnl_k, wallet,
                                      _maint(k, qty[k], entry[k], mk, cur[k], last_rate, inverse, cs, taker,
                                             mm_on_entry, adds_taker, adds_funding, floors, mmrs, cums, toff))
            else:
                score = score_hyperliquid(side, entry[k], mk, notional(inverse[k], q, cs[k], mk), wallet + upnl_k)
            own_quote = q * cs[k] * (1.0 if inverse[k] else mk)
            cq = adl_close_qty(q, own_quote, 1.0, 0.0, flow)
            if cq >= q * (1.0 - 1e-12):
                cq = q
            elif lot[k] > 0:
                cq = math.floor(cq / lot[k] + 1e-9) * lot[k]
            if cq <= 0.0:
                continue
            cash, bt_size[k], adjbase[k], filled = _bt_execute(inverse[k], cs[k], cash, bt_size[k], adjbase[k],
                                                               -side * cq, mk)
            cur[k] = tidx[k, i]
            qty[k], entry[k], coll[k], pnl = _apply_fill(inverse[k], cs[k], lev[k], qty[k], entry[k], coll[k],
                                                         filled, mk)
            cnt[N_OVERFLOW] |= _put(fills, cnt[N_FILLS], (float(i), float(k), filled, mk, 0.0, pnl, 2.0))
            cnt[N_FILLS] += 1
            cnt[N_OVERFLOW] |= _put(adls, cnt[N_ADL], (float(i), float(k), float(side), cq, mk, pnl, score, flow,
                                                       abs(qty[k]), cash))
            cnt[N_ADL] += 1
        # 6. the venue's mark
        for k in range(ns):
            if qty[k] != 0.0 and bt_size[k] != 0.0 and mark[k, i] != adjbase[k]:
                cash += _cashadjust(inverse[k], bt_size[k], cs[k], adjbase[k], mark[k, i])
                adjbase[k] = mark[k, i]
        value = cash
        # 7. the record (and the displayed liquidation prices: the others at their marks)
        wallet = _account_wallet(cash, qty, inverse, cs, entry, adjbase)
        rec[i, 0] = cash
        for k in range(ns):
            c = 1 + 6 * k
            mk = mark[k, i]
            if qty[k] == 0.0:
                lp[k] = math.nan
                rec[i, c] = 0.0
                rec[i, c + 1] = 0.0
                rec[i, c + 2] = mk
                rec[i, c + 3] = 0.0
                rec[i, c + 4] = 0.0
                rec[i, c + 5] = math.nan
                continue
            omm = 0.0
            oup = 0.0
            for o in range(ns):
                if o != k and qty[o] != 0.0:
                    omm += _maint(o, qty[o], entry[o], mark[o, i], cur[o], last_rate, inverse, cs, taker,
                                  mm_on_entry, adds_taker, adds_funding, floors, mmrs, cums, toff)
                    oup += unrealized_pnl(inverse[o], qty[o], cs[o], entry[o], mark[o, i])
            side = 1 if qty[k] > 0 else -1
            rates = _eff_rates(k, cur[k], side, last_rate, taker, toff, mmrs, adds_taker, adds_funding, eff)
            lo, hi = toff[cur[k]], toff[cur[k] + 1]
            lp[k] = liquidation_price_tiered(inverse[k], mm_on_entry, side, abs(qty[k]), cs[k], entry[k], wallet,
                                             floors[lo:hi], rates, cums[lo:hi], omm, oup)
            rec[i, c] = qty[k]
            rec[i, c + 1] = entry[k]
            rec[i, c + 2] = mk
            rec[i, c + 3] = unrealized_pnl(inverse[k], qty[k], cs[k], entry[k], mk)
            rec[i, c + 4] = _maint(k, qty[k], entry[k], mk, cur[k], last_rate, inverse, cs, taker, mm_on_entry,
                                   adds_taker, adds_funding, floors, mmrs, cums, toff)
            rec[i, c + 5] = lp[k]
    tot[2] = insurance
    return cash


if _numba_cache is not None:
    numba.config.CACHE_DIR = _saved_cache


# --- the Python side ------------------------------------------------------------------------------------

def _prepare(spec: PortfolioSpec) -> tuple[list[Any], dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    preps = []
    for leg in spec.legs:
        config = RunConfig(strategy="portfolio", venue=spec.venue, symbol=leg.symbol, leverage=1.0,
                           margin_mode="cross", cash=spec.cash, funding_rate=spec.funding_rate,
                           allow_no_funding=spec.allow_no_funding)
        preps.append(_fast.prepare(leg.bars, config))
    names = ("open", "low", "high", "close", "tlow", "thigh", "topen", "fprice", "frate", "mark")
    arrays = {name: np.ascontiguousarray(np.vstack([p.arrays[name] for p in preps])) for name in names}
    # one flat table list: symbol k's tables follow symbol k-1's
    floors, mmrs, cums, maxlev, toff = [], [], [], [], [0]
    tidx, cur0 = [], []
    for p in preps:
        base = len(toff) - 1
        t = p.tables
        for j in range(len(t["toff"]) - 1):
            lo, hi = t["toff"][j], t["toff"][j + 1]
            floors.append(t["floors"][lo:hi])
            mmrs.append(t["mmrs"][lo:hi])
            cums.append(t["cums"][lo:hi])
            maxlev.append(t["maxlev"][lo:hi])
            toff.append(toff[-1] + hi - lo)
        tidx.append(p.arrays["tidx"] + base)
        cur0.append(base + len(t["toff"]) - 2)
    arrays["tidx"] = np.ascontiguousarray(np.vstack(tidx).astype(np.int64))
    # ADL flows (per symbol, its own bars' columns; checked as the backtrader feed checks them)
    from feeds.adl import ADL_COLUMNS

    adl_on, longs, shorts = [], [], []
    for leg in spec.legs:
        on = any(c in leg.bars.columns for c in ADL_COLUMNS)
        if on:
            from engine.bt_data import PerpData

            PerpData.from_frame(leg.bars, leg.symbol)  # both columns, >= 0 in every bar: else one line
        n = len(leg.bars)
        adl_on.append(on)
        longs.append(leg.bars["adl_long_notional"].to_numpy(dtype=np.float64) if on else np.zeros(n))
        shorts.append(leg.bars["adl_short_notional"].to_numpy(dtype=np.float64) if on else np.zeros(n))
    arrays["adl_long"] = np.ascontiguousarray(np.vstack(longs))
    arrays["adl_short"] = np.ascontiguousarray(np.vstack(shorts))
    arrays["adl_on"] = np.asarray(adl_on, dtype=np.bool_)
    tables = {"floors": np.concatenate(floors), "mmrs": np.concatenate(mmrs), "cums": np.concatenate(cums),
              "maxlev": np.concatenate(maxlev), "toff": np.asarray(toff, dtype=np.int64),
              "cur0": np.asarray(cur0, dtype=np.int64)}
    s0 = preps[0].scalars
    scalars = {
        "inverse": np.asarray([p.scalars["inverse"] for p in preps], dtype=np.bool_),
        "cs": np.asarray([p.scalars["cs"] for p in preps]), "lot": np.asarray([p.scalars["lot"] for p in preps]),
        "taker": np.asarray([p.scalars["taker"] for p in preps]),
        "liq_fee_rate": np.asarray([p.scalars["liq_fee_rate"] for p in preps]),
        "min_notional": np.asarray([p.scalars["min_notional"] for p in preps]),
        "mm_on_entry": s0["mm_on_entry"], "adds_taker": s0["adds_taker"], "adds_funding": s0["adds_funding"],
        "fill_bankrupt": s0["fill_bankrupt"],
    }
    return preps, arrays, tables, scalars


def run_fast_portfolio(spec: PortfolioSpec) -> PortfolioResult:
    """The portfolio in one compiled pass; the same :class:`engine.portfolio.PortfolioResult` as
    :func:`engine.portfolio.run_backtrader`."""
    validate(spec)
    preps, a, t, s = _prepare(spec)
    ns, n = a["open"].shape
    targets = np.ascontiguousarray(np.vstack([np.asarray(leg.target, dtype=np.float64) for leg in spec.legs]))
    changes = int(np.sum(np.diff(np.nan_to_num(targets), axis=1, prepend=0.0) != 0))
    nfund = int(np.sum(~np.isnan(a["frate"])))
    caps = [changes + ns + 8, nfund + 1, changes + ns + 8, 2 * (changes + ns) + 16]
    order_rule = account_rule(spec.venue).order
    backstop_on = venue_rules(spec.venue).backstop_takes_margin
    rule = _adl.ADL_RULES[spec.venue]
    if a["adl_on"].any() and (rule.score not in ADL_SCORES or rule.fee != "none"):
        raise DeleverageError(f"portfolio fast engine: ADL on {spec.venue} ranks by {rule.score} (fee {rule.fee}), "
                              "which the compiled portfolio engine does not model (Binance and Hyperliquid only); "
                              "use --engine backtrader or auto")
    nadl = int(np.sum((a["adl_long"] > 0) | (a["adl_short"] > 0))) + 1
    prule = _partial.PARTIAL_RULES.get(spec.venue) if spec.partial_liquidation else None
    if prule is not None and prule.rule == _partial.RULE_WHOLE:
        prule = None
    index = spec.legs[0].bars.index
    times_s = (np.asarray((index - pd.Timestamp(0, tz=index.tz)) / pd.Timedelta(seconds=1), dtype=np.float64)
               if prule is not None else np.zeros(n))  # unix seconds, whatever the index's unit
    for _ in range(4):
        rec = np.empty((n, 1 + len(PER_SYMBOL) * ns))
        fills, funds = np.empty((caps[0], len(FILL_COLS))), np.empty((caps[1], len(FUNDING_COLS)))
        liqs, fees = np.empty((caps[2], len(LIQ_COLS))), np.empty((caps[3], len(FEE_COLS)))
        adls = np.empty((nadl, len(ADL_COLS)))
        cnt = np.zeros(9, dtype=np.int64)
        tot = np.zeros(3)
        _kernel(a["open"], a["low"], a["high"], a["close"], a["tlow"], a["thigh"], a["topen"], a["fprice"],
                a["frate"], a["mark"], a["tidx"], s["inverse"], s["cs"], s["lot"], s["taker"], s["liq_fee_rate"],
                s["min_notional"], t["cur0"], s["mm_on_entry"], s["adds_taker"], s["adds_funding"],
                s["fill_bankrupt"], order_rule, backstop_on, t["floors"], t["mmrs"], t["cums"], t["maxlev"], t["toff"],
                targets, float(spec.cash), account_leverage(spec), a["adl_on"], a["adl_long"], a["adl_short"],
                ADL_SCORES.get(rule.score, 0), prule is not None, prule.rule if prule else 0,
                PARTIAL_FEES[prule.fee] if prule else 0, prule.min_tier if prule else 0,
                prule.tiers_per_step if prule else 1, float(prule.fraction) if prule else 1.0,
                float(prule.threshold) if prule else 0.0, float(prule.cooldown_s) if prule else 0.0,
                np.ascontiguousarray(times_s), rec, fills, funds, liqs, fees, adls, cnt, tot)
        if not cnt[N_OVERFLOW]:
            break
        caps = [max(c, int(cnt[j])) * 2 + 8 for j, c in enumerate(caps)]
    else:  # pragma: no cover - the capacities grow each time
        raise DeleverageError("portfolio fast engine: event buffers overflowed")
    symbols = [p.instrument.symbol for p in preps]
    times = spec.legs[0].bars.index
    events = _frames(fills[:cnt[N_FILLS]], funds[:cnt[N_FUND]], liqs[:cnt[N_LIQ]], fees[:cnt[N_FEE]], times, symbols,
                     adls[:cnt[N_ADL]], rule)
    records = {name: rec[:, 1 + j::len(PER_SYMBOL)][:, :ns].copy() for j, name in enumerate(PER_SYMBOL)}
    result = PortfolioResult(spec_info=spec_info(spec), index=times, symbols=symbols, equity=rec[:, 0].copy(),
                             records=records, events=events, insurance_fund=float(tot[2]), engine="fast")
    result.summary = summarize(result, spec.cash)
    result.summary["rejected_margin"] = int(cnt[N_REJ_MARGIN])
    result.summary["rejected_leverage"] = int(cnt[N_REJ_LEV])
    result.summary["rejected_min_notional"] = int(cnt[N_REJ_MIN])
    result.announcements = [m for p in preps for m in p.announcements]  # type: ignore[attr-defined]
    return result


FILL_KINDS = ("trade", "liquidation", "adl")


def _frames(fills: np.ndarray, funds: np.ndarray, liqs: np.ndarray, fees: np.ndarray, times: pd.DatetimeIndex,
            symbols: list[str], adls: np.ndarray, rule: Any) -> dict[str, pd.DataFrame]:
    def when(col: np.ndarray) -> list[Any]:
        return [times[int(b)] for b in col]

    def sym(col: np.ndarray) -> list[str]:
        return [symbols[int(j)] for j in col]

    fill_rows = [{"time": times[int(r[0])], "symbol": symbols[int(r[1])], "side": "buy" if r[2] > 0 else "sell",
                  "qty": abs(r[2]), "price": r[3], "fee": r[4], "realized_pnl": r[5],
                  "kind": FILL_KINDS[int(r[6])]} for r in fills]
    fund_rows = [{"time": t_, "symbol": s_, "position_qty": r[2], "price": r[3], "rate": r[4], "amount": r[5]}
                 for t_, s_, r in zip(when(funds[:, 0]), sym(funds[:, 1]), funds)]
    liq_rows = [{"time": times[int(r[0])], "symbol": symbols[int(r[1])], "side": "long" if r[2] > 0 else "short",
                 "qty": r[3], "trigger_price": r[4], "liquidation_price": r[5], "bankruptcy_price": r[6],
                 "fill_price": r[7], "fee": r[8], "insurance_fund": r[9], "realized_pnl": r[10],
                 "equity_after": r[11], "partial": bool(r[13]), "qty_left": r[14], "insurance_cover": r[15],
                 "account": True, "account_margin_ratio": r[12]} for r in liqs]
    fee_rows = [{"time": times[int(r[0])], "symbol": symbols[int(r[1])],
                 "kind": FILL_KINDS[int(r[2])], "amount": r[3]} for r in fees]
    lights = _adl.indicator_lights(1.0, rule.lights)
    adl_rows = [{"time": times[int(r[0])], "symbol": symbols[int(r[1])], "side": "long" if r[2] > 0 else "short",
                 "qty": r[3], "price": r[4], "fee": 0.0, "realized_pnl": r[5], "score": r[6], "quantile": 1.0,
                 "lights": lights, "flow_notional": r[7], "qty_left": r[8], "equity_after": r[9]} for r in adls]
    return {"fills": _events_frame("fills", fill_rows), "funding": _events_frame("funding", fund_rows),
            "liquidations": _events_frame("liquidations", liq_rows), "fees": _events_frame("fees", fee_rows),
            "adl": _events_frame("adl", adl_rows)}


__all__ = ["run_fast_portfolio"]
