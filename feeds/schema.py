"""The canonical bar and liquidation-event schemas.

Every loader in :mod:`feeds` produces one of these two shapes; the backtrader feed
(:class:`engine.bt_data.PerpData`), the scenario library, the cascade simulator and the
reports all read them.

Bars
----
A ``pandas.DataFrame`` indexed by a tz-aware UTC ``DatetimeIndex`` named ``open_time``.
**A bar is labelled by its open**: the row at 12:00 of a 1-minute series covers
[12:00:00, 12:01:00). A strategy sees a bar only after it has closed, so anything that
happens inside [12:00, 12:01) (a trade, a liquidation event, a funding settlement) is known
to the strategy at the 12:00 bar's ``next()`` call and not before.

=====================  ========  ==========================================================
column                 required  meaning (units)
=====================  ========  ==========================================================
open high low close    yes       last-traded price OHLC (quote currency per base unit)
volume                 yes       traded quantity in the bar (base units; contracts are
                                 converted by the loader, and say so in ``attrs``)
mark_open .. mark_close no       mark price OHLC; liquidation triggers on it when present
index_close            no        index (spot composite) price at bar close
premium_close          no        premium index at bar close (fraction)
funding_rate           no        funding rate *settled inside this bar* (fraction per
                                 funding interval; positive means longs pay shorts);
                                 NaN in bars without a settlement
open_interest          no        open interest at bar close (base units)
liq_long_count         no        number of liquidation events of long positions in the bar
liq_long_qty           no        base quantity of liquidated longs
liq_long_notional      no        quote notional of liquidated longs
liq_short_*            no        the same for liquidated shorts
=====================  ========  ==========================================================

``DataFrame.attrs`` carries provenance: ``source`` (file paths or ``"reconstruction"``),
``kind`` (``"real"``, ``"reconstructed"`` or ``"simulated"``), ``venue``, ``symbol``.

Liquidation events
------------------
A ``DataFrame`` with one row per forced order, sorted by ``time`` (tz-aware UTC):
``time, venue, symbol, position_side ("long"|"short": the side of the liquidated
position), order_side ("sell"|"buy": the side of the forced order; a sell closes a long),
price, avg_price, qty (base units), notional (quote units)``.
"""

from __future__ import annotations

BAR_INDEX_NAME = "open_time"

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
REQUIRED_BAR_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
MARK_COLUMNS: tuple[str, ...] = ("mark_open", "mark_high", "mark_low", "mark_close")
LIQ_SIDES: tuple[str, ...] = ("long", "short")
LIQ_FIELDS: tuple[str, ...] = ("count", "qty", "notional")
LIQ_COLUMNS: tuple[str, ...] = tuple(f"liq_{s}_{f}" for s in LIQ_SIDES for f in LIQ_FIELDS)
OPTIONAL_BAR_COLUMNS: tuple[str, ...] = (
    *MARK_COLUMNS,
    "index_close",
    "premium_close",
    "funding_rate",
    "open_interest",
    *LIQ_COLUMNS,
)
BAR_COLUMNS: tuple[str, ...] = (*REQUIRED_BAR_COLUMNS, *OPTIONAL_BAR_COLUMNS)

# How each column aggregates when bars are resampled to a coarser interval.
RESAMPLE_RULES: dict[str, str] = {
    "open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum",
    "mark_open": "first", "mark_high": "max", "mark_low": "min", "mark_close": "last",
    "index_close": "last", "premium_close": "last",
    "funding_rate": "sum_settlements",  # at most one settlement per interval in practice; NaN if none
    "open_interest": "last",
    **{c: "sum" for c in LIQ_COLUMNS},
}

EVENT_COLUMNS: tuple[str, ...] = (
    "time", "venue", "symbol", "position_side", "order_side",
    "price", "avg_price", "qty", "notional",
)

DATA_KINDS: tuple[str, ...] = ("real", "reconstructed", "simulated")
