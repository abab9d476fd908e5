"""What a stress cell's outcome means, in one place: the verdict rule, the plausibility rule
and the colours every table and chart uses for them.

Verdicts (:func:`classify`), in this order of precedence:

- ``refused``:    the broker refused every order (margin, or the venue's leverage limit for
  that notional) and nothing was filled; the strategy never got a position.
- ``no trade``:   nothing was filled and nothing refused: the strategy's signals never fired.
  Nothing was tested, so it is **not** a survivor.
- ``liquidated``: the venue liquidated the position at least once (whatever equity is left;
  on isolated margin an averaging-down strategy can be liquidated and keep 40 %).
- ``ADL``:        never liquidated, but the venue auto-deleveraged the position (an ADL flow in
  the bars, issue 15): a profitable hedge closed by the venue is not a survivor, whatever
  equity is left.
- ``wiped out``:  never liquidated, but equity left is below the floor (default 10 % of the
  initial equity, ``--wipeout``): the account bled out through stops, fees or funding.
- ``survived``:   traded, never liquidated, and equity left at or above the floor.

Only ``survived`` counts toward the survival frontier.

Insolvent (:func:`insolvent`): not a verdict of its own but a mark on a liquidated cell whose loss
went beyond its margin (a funding payment, or a gap, took more than the margin: the position was
bankrupt at the bar's open). The venue's insurance fund paid the shortfall back to zero, credited
to the account (the cell's ``insurance_cover``, a fraction of the initial equity like every money
column; not a fee). Its ``equity_left`` includes that cover: without the fund the account would
have ended at ``equity_left - insurance_cover``. Every table and chart that shows a verdict marks
it ("liquidated, insolvent") and gives the cover.

Plausibility (:func:`plausibility_warning`): the best a single position at leverage L could
make over the window is L times the window's best favourable move (buy at a low, sell at a
later high, or short a high and cover at a later low; inverse contracts pay that move in the
coin: 1 - 1/r for a long, r - 1 for a short, r the price ratio). A cell that ends with more
than that needs repeated round trips on the path between bars; and any cell that multiplies
its equity 10× or more on reconstructed or simulated bars is flagged. On reconstructed bars
the path between the published waypoints is seeded noise, so such a gain is an artefact of
the data, not evidence about the strategy; on real bars it points at a bad print or a fill
the venue would not have given. A cell that ends below zero equity is flagged as impossible:
a venue account floors at zero, so that is a defect of the simulation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SURVIVED, LIQUIDATED, WIPED_OUT, NO_TRADE, REFUSED = "survived", "liquidated", "wiped out", "no trade", "refused"
ADL = "ADL"  # auto-deleveraged: not liquidated, but the venue closed (part of) the position
VERDICTS = (SURVIVED, LIQUIDATED, ADL, WIPED_OUT, NO_TRADE, REFUSED)
DEFAULT_WIPEOUT = 0.10  # fraction of the initial equity
IMPLAUSIBLE_MULTIPLE = 10.0  # equity multiple flagged on reconstructed / simulated bars whatever the bound

# the shared colour scale of "equity left" (fraction of the initial equity): diverging, fixed,
# centred at 100 % (white); losses to red at 0 %, gains to green at 200 % (and beyond)
EQUITY_MIN, EQUITY_MID, EQUITY_MAX = 0.0, 1.0, 2.0
EQUITY_SCALE = ((0.0, "#b2182b"), (0.25, "#ef8a62"), (0.5, "#f7f7f7"), (0.75, "#7fbf7b"), (1.0, "#1b7837"))
# the verdicts that are not "survived" each have their own colour, outside that scale
VERDICT_COLOURS = {LIQUIDATED: "#111827", ADL: "#6d28d9", WIPED_OUT: "#7c2d12", NO_TRADE: "#d1d5db", REFUSED: "#a5b4fc"}
VERDICT_TEXT_COLOURS = {LIQUIDATED: "#ffffff", ADL: "#ffffff", WIPED_OUT: "#ffffff", NO_TRADE: "#374151", REFUSED: "#1e1b4b"}
VERDICT_SYMBOLS = {SURVIVED: "✓", LIQUIDATED: "✗", ADL: "⇊", WIPED_OUT: "✗", NO_TRADE: "–", REFUSED: "⊘"}
VERDICT_MEANING = {
    SURVIVED: "traded, never liquidated, equity left at or above the floor",
    LIQUIDATED: "the venue liquidated the position",
    ADL: "auto-deleveraged: not liquidated, but the venue closed the profitable position (the hedge is gone)",
    WIPED_OUT: "never liquidated, but equity left fell below the floor",
    NO_TRADE: "the strategy never opened a position: nothing was tested (not a survivor)",
    REFUSED: "the broker refused every order (margin or the venue's leverage limit): not a survivor",
}

INSOLVENT = "insolvent"  # a mark on a liquidated cell that the insurance fund bailed out, not a verdict
INSOLVENT_MEANING = ("the loss went beyond the margin: the insurance fund covered the shortfall (credited to the "
                     "account, not a fee); equity left includes the cover")


def insurance_cover(row: dict[str, Any]) -> float:
    """The insurance fund's cover of a stored stress row (fraction of the initial equity); 0.0 for a
    row written before the column existed, or a missing value."""
    v = row.get("insurance_cover")
    try:
        v = float(v)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) and v > 0.0 else 0.0


def insolvent(row: dict[str, Any]) -> bool:
    """True when the insurance fund covered a liquidation of the cell (``insurance_cover > 0``)."""
    return insurance_cover(row) > 0.0


def classify(*, liquidated: bool, refused: bool, fills: int, equity_left: float,
             wipeout: float = DEFAULT_WIPEOUT, adl: bool = False) -> str:
    """The verdict of one cell (see the module docstring). ``equity_left`` is a fraction of
    the initial equity; ``wipeout`` the floor, a fraction in [0, 1); ``adl``: the venue
    auto-deleveraged the position (an ``adl`` event) and it was never liquidated."""
    if not fills:
        return REFUSED if refused else NO_TRADE
    if liquidated:
        return LIQUIDATED
    if adl:
        return ADL
    if not (equity_left >= wipeout):  # NaN equity is not a survival
        return WIPED_OUT
    return SURVIVED


def check_wipeout(value: float) -> float:
    """The floor as a fraction in [0, 1); ValueError with a readable reason otherwise."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value < 1):
        raise ValueError(f"the wipe-out floor is a fraction of the initial equity in [0, 1) (0.1 = 10 %), got {value}")
    return float(value)


def best_move(high: np.ndarray, low: np.ndarray) -> tuple[float, float]:
    """``(r_long, r_short)``: the largest ratio later-high / earlier-low (a long bought at a low
    and sold at a later high) and earlier-high / later-low (a short), over the bars in order
    (a bar's own high and low count as later than its low and high: the order inside a bar is
    unknown, so the bound is generous)."""
    high = np.asarray(high, dtype="float64")
    low = np.asarray(low, dtype="float64")
    if not len(high):
        return 1.0, 1.0
    r_long = float(np.nanmax(high / np.fmin.accumulate(low)))
    r_short = float(np.nanmax(np.fmax.accumulate(high) / low))
    return max(r_long, 1.0), max(r_short, 1.0)


def single_trade_bound(leverage: float, r_long: float, r_short: float, inverse: bool) -> float:
    """The largest gain (fraction of the initial equity) one position at ``leverage`` could make
    from the best move: linear contracts pay ``r - 1`` (long) or ``1 - 1/r`` (short) per unit
    of notional in the quote currency; inverse contracts pay the coin ``1 - 1/r`` (long) or
    ``r - 1`` (short). Fees and funding ignored (they only lower it)."""
    if inverse:
        per_unit = max(1 - 1 / r_long, r_short - 1)
    else:
        per_unit = max(r_long - 1, 1 - 1 / r_short)
    return float(leverage) * per_unit


def plausibility_warning(*, equity_left: float, bound: float, data_kind: str, days: float,
                         leverage: float) -> str:
    """A one-line warning when the cell's result is implausible for its data, else ``""``."""
    if not math.isfinite(equity_left) or not math.isfinite(bound):
        return ""
    if equity_left < -1e-9:
        return (f"impossible: ended with {equity_left * 100:,.2f} % of the initial equity; a venue account cannot go "
                "below zero (a liquidation's deficit goes to the insurance fund), so this is a defect of the "
                "simulation, not a result")
    gain = equity_left - 1.0
    synthetic = data_kind != "real"
    beyond = gain > bound * (1 + 1e-9) + 1e-9
    huge = synthetic and equity_left >= IMPLAUSIBLE_MULTIPLE
    if not (beyond or huge):
        return ""
    what = (f"×{equity_left:,.1f} of the initial equity in {days:,.1f} days on {data_kind} bars"
            if equity_left >= 2 else f"{gain * 100:+,.0f} % in {days:,.1f} days on {data_kind} bars")
    why = []
    if beyond:
        why.append(f"more than one {leverage:g}× position could make on this window's best move ({bound * 100:+,.0f} %): "
                   "the gain comes from repeated trades on the path between bars")
    if huge:
        why.append(f"at least ×{IMPLAUSIBLE_MULTIPLE:g}")
    cause = ("the path between the published waypoints is seeded noise, so this is likely an artefact of the "
             "reconstruction" if data_kind == "reconstructed" else
             "simulated bars are not market data, so this is likely an artefact of the simulation"
             if synthetic else "check the bars for a bad print and the fills for prices the venue would not give")
    return f"implausible: {what}; {'; '.join(why)}; {cause}"


def verdict_of(row: dict[str, Any]) -> str:
    """The verdict stored in a survival row; rows written before verdicts existed are read by
    their ``survived`` / ``refused`` flags (a no-trade cell cannot be told apart there)."""
    v = row.get("verdict")
    if isinstance(v, str) and v in VERDICTS:
        return v
    if bool(row.get("refused", False) is True):
        return REFUSED
    return SURVIVED if bool(row.get("survived", False)) else LIQUIDATED


def _hex(c: str) -> tuple[int, int, int]:
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


def equity_colour(value: float) -> str:
    """The colour of ``value`` (equity left, fraction) on :data:`EQUITY_SCALE`, as ``#rrggbb``."""
    if value is None or not math.isfinite(float(value)):
        return "#ffffff"
    t = (min(max(float(value), EQUITY_MIN), EQUITY_MAX) - EQUITY_MIN) / (EQUITY_MAX - EQUITY_MIN)
    for (t0, c0), (t1, c1) in zip(EQUITY_SCALE, EQUITY_SCALE[1:]):
        if t <= t1:
            f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
            a, b = _hex(c0), _hex(c1)
            return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b))
    return EQUITY_SCALE[-1][1]


def cell_colours(verdict: str, equity_left: float) -> tuple[str, str]:
    """``(background, text)`` colour of a cell: the equity scale for a survivor, the verdict's
    own colour otherwise."""
    if verdict == SURVIVED:
        bg = equity_colour(equity_left)
        r, g, b = _hex(bg)
        return bg, "#111827" if (0.299 * r + 0.587 * g + 0.114 * b) > 140 else "#ffffff"
    return VERDICT_COLOURS[verdict], VERDICT_TEXT_COLOURS[verdict]
