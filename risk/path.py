"""The intrabar path rule: which exit a position meets first on one bar.

A bar only tells its open, high, low and close; a stop-loss, a take-profit, a trailing stop
and the venue's liquidation can all lie inside its range. Both engines (the compiled pass in
:mod:`engine.fast` and the backtrader broker :mod:`engine.broker`) settle that with the one
function below, :func:`first_exit`, so they agree on every bar. It is pure Python on floats
(stdlib only), written so that ``numba.njit`` compiles it unchanged.

The path (a pessimistic four-point path, the convention of freqtrade and backtesting.py: when
a stop and a take-profit are both inside a bar, the stop is taken)
----------------------------------------------------------------------------------------------
For a long (a short is the mirror image: high and low swap, "below" becomes "above")::

    leg 0  the open            (a gap: every level the open is already through)
    leg 1  open -> low         (adverse: the stop-loss, the trailing stop, the liquidation)
    leg 2  low  -> high        (favourable: the take-profit; the trailing peak rises to the high)
    leg 3  high -> close       (the trailing stop, at its level raised by this bar's high)

Series: the stop-loss, take-profit and trailing stop trigger on the traded (last) price
``open/high/low/close``; the liquidation triggers on the venue's trigger series
``t_open/t_high/t_low`` (mark OHLC where the feed has them, else the same last OHLC).

Rules, in this order
--------------------
1. **Gap at the open.** The protective level ``P`` is the higher (long) of the stop-loss and
   the trailing level (peak before this bar x (1 - trail)); it is the trailing stop's only
   when strictly above the stop-loss. If the open is at or through ``P``, the protective
   order fills **at the open** -- unless the open is beyond the bankruptcy price while the
   trigger open is through the liquidation price: a stop gapped through beyond bankruptcy is
   the liquidation's (the margin behind the position is gone before the stop can fill; the
   venue's engine takes the position over). Otherwise, if the trigger open is at or through
   the liquidation price, the liquidation takes it. Otherwise, a take-profit at or below
   the open (long) fills at the open (a limit order gapped in the trader's favour).
2. **Adverse leg.** If the low reaches ``P`` and the trigger low reaches the liquidation
   price, the level met first on the way down wins: ``P`` strictly above the liquidation
   price fills at ``P``; otherwise (below or equal) it is the liquidation -- a resting
   protective order never vetoes a liquidation it does not precede. Only one of them
   reached: that one.
3. **Favourable leg.** A take-profit at or below the high fills at the take-profit.
4. **To the close.** With a trailing stop, the peak becomes max(peak, open, high); if the close
   is at or below the trailing level of that peak, the trailing stop fills at that level.

Fill prices: protective and take-profit fills are at the level (or the open on a gap), with no
slippage model; a liquidation's fill is the venue's
(:func:`risk.formulas.liquidation_fill_price`, from the trigger open, the liquidation and
the bankruptcy prices), so :func:`first_exit` reports the trigger series' adverse extreme
as its price, as the liquidation table's ``trigger_price``.

Units and signs: prices in quote currency per unit of base (the instrument's price, linear or
inverse alike); ``side`` +1 long, -1 short; ``trail`` a fraction of the peak (0.02 = 2 %);
NaN switches a level off (no stop, no take-profit, no trail, not liquidatable, no
bankruptcy price).
"""

from __future__ import annotations

import math
from typing import Any, Callable

NONE = 0
STOP_LOSS = 1
TAKE_PROFIT = 2
TRAILING_STOP = 3
LIQUIDATION = 4
KIND_NAMES = ("none", "stop_loss", "take_profit", "trailing_stop", "liquidation")

LEG_OPEN = 0
LEG_ADVERSE = 1
LEG_FAVOURABLE = 2
LEG_CLOSE = 3


def trailing_level(side: int, peak: float, trail: float) -> float:
    """The trailing stop's trigger for a peak: ``peak x (1 - trail)`` long, ``peak x (1 + trail)``
    short (``peak`` the best price since entry: the highest for a long, the lowest for a short).
    NaN when there is no trail (``trail`` NaN or <= 0) or no peak."""
    if not (trail > 0.0) or peak != peak:
        return math.nan
    if side > 0:
        return peak * (1.0 - trail)
    return peak * (1.0 + trail)


def first_exit(side: int, open_: float, high: float, low: float, close: float,
               t_open: float, t_high: float, t_low: float,
               stop: float, take: float, trail: float, peak: float,
               liq: float, bank: float) -> tuple[int, float, int, float]:
    """The first exit of a ``side`` position on one bar (see the module docstring).

    ``peak`` is the best traded price since the position's entry before this bar (NaN: the
    position was entered at this bar's open, the peak starts at the open). Returns
    ``(kind, price, leg, peak_after)``: ``kind`` one of NONE, STOP_LOSS, TAKE_PROFIT,
    TRAILING_STOP, LIQUIDATION; ``price`` the fill price of a stop/take-profit/trailing exit
    or, for a liquidation, the trigger series' adverse extreme (the caller fills it at
    :func:`risk.formulas.liquidation_fill_price`), NaN for NONE; ``leg`` where on the path it
    happened (LEG_OPEN ... LEG_CLOSE, -1 for NONE); ``peak_after`` the peak after the part of
    the bar the position lived through (max/min with the open and, if it got that far, the
    high/low).
    """
    if side == 0:
        return NONE, math.nan, -1, peak
    s = 1.0 if side > 0 else -1.0
    # everything in "long space": x -> s * x, so adverse is always downwards
    o = s * open_
    lo = s * low if side > 0 else s * high
    hi = s * high if side > 0 else s * low
    c = s * close
    to = s * t_open
    tlo = s * t_low if side > 0 else s * t_high
    sl = s * stop
    tp = s * take
    lq = s * liq
    bk = s * bank
    pk = peak if peak == peak else open_
    has_trail = trail > 0.0
    tr = s * trailing_level(side, pk, trail) if has_trail else math.nan

    # the protective level: the higher of stop-loss and trailing level (NaN-aware)
    if tr == tr and (sl != sl or tr > sl):
        p, pkind = tr, TRAILING_STOP
    else:
        p, pkind = sl, STOP_LOSS
    liq_extreme = t_low if side > 0 else t_high

    # leg 0: the open
    liq_gap = lq == lq and to <= lq
    if p == p and o <= p:
        if liq_gap and bk == bk and o < bk:
            return LIQUIDATION, liq_extreme, LEG_OPEN, peak
        return pkind, open_, LEG_OPEN, peak
    if liq_gap:
        return LIQUIDATION, liq_extreme, LEG_OPEN, peak
    if tp == tp and o >= tp:
        return TAKE_PROFIT, open_, LEG_OPEN, peak
    # the open is on the path: it may raise the peak (and the trailing level)
    if s * open_ > s * pk:
        pk = open_
    if has_trail:
        tr = s * trailing_level(side, pk, trail)
        if tr == tr and (sl != sl or tr > sl):
            p, pkind = tr, TRAILING_STOP
        else:
            p, pkind = sl, STOP_LOSS

    # leg 1: adverse, open -> low
    prot_hit = p == p and lo <= p
    liq_hit = lq == lq and tlo <= lq
    if prot_hit and liq_hit:
        if p > lq:
            return pkind, s * p, LEG_ADVERSE, pk
        return LIQUIDATION, liq_extreme, LEG_ADVERSE, pk
    if prot_hit:
        return pkind, s * p, LEG_ADVERSE, pk
    if liq_hit:
        return LIQUIDATION, liq_extreme, LEG_ADVERSE, pk

    # leg 2: favourable, low -> high
    if tp == tp and hi >= tp:
        return TAKE_PROFIT, take, LEG_FAVOURABLE, pk
    if hi > s * pk:
        pk = s * hi

    # leg 3: high -> close, the trailing stop at its raised level
    if has_trail:
        tr = s * trailing_level(side, pk, trail)
        if tr == tr and c <= tr:
            return TRAILING_STOP, s * tr, LEG_CLOSE, pk
    return NONE, math.nan, -1, pk


KERNELS = ("trailing_level", "first_exit")


def jit_kernels(jit: Callable[[Callable[..., Any]], Any]) -> dict[str, Any]:
    """Compile :func:`trailing_level` and :func:`first_exit` with ``jit`` (e.g. ``numba.njit``),
    the callee compiled too (:func:`risk.formulas.clone_into`); ``{name: compiled}``."""
    from risk.formulas import clone_into

    return clone_into(dict(globals()), [(globals(), KERNELS)], jit)
