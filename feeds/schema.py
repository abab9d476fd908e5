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
adl_long_notional      no        quote notional of long positions auto-deleveraged in the bar
adl_short_notional     no        the same for short positions (an ADL flow: feeds/adl.py)
quote_volume           no        traded notional in the bar (quote currency)
open_interest_notional no        open interest at bar close (quote currency)
=====================  ========  ==========================================================

A frame may carry only some optional columns (an hourly liquidation export has only
``liq_long_notional`` and ``liq_short_notional``): a column the source does not provide is
**absent**, never a column of made-up zeros. NaN is allowed only in the "sparse" columns
(:data:`SPARSE_COLUMNS`: ``funding_rate``, which is NaN off-settlement by definition, and
the as-of levels ``open_interest*``, ``index_close``, ``premium_close`` before their first
observation); anywhere else NaN is a validation error.

Alignment rules (all causal: nothing is known before the bar in which it happened closes)

* **Events** (liquidations, trades) go to the bar that contains them:
  ``floor(time, interval)``. An event at 12:00:30 is in the 12:00 bar; one at exactly
  12:01:00.000 is in the 12:01 bar.
* **Funding settlements** likewise go to the bar containing the settlement instant, without
  rounding to the nominal time first: Binance's ``calc_time`` of 08:00:00.004 (a few ms of
  jitter after the hour) is in the 08:00 bar. When a coarser bar holds several settlements
  the rates are summed (``"sum_settlements"``).
* **Snapshots** (open interest, index/premium close) are "as of the bar close": the last
  snapshot whose time is inside the bar or earlier (a snapshot at exactly 12:05:00 belongs
  to the 12:05 bar, not to the 12:04 bar whose close it coincides with, so it is never seen
  early).

Units: ``volume`` is in base units. Contracts are converted by the loader (Binance COIN-M:
the archive's ``base_volume`` column; BitMEX XBTUSD: contracts are USD, so
``quote_volume`` = contracts x contract size exactly, and ``volume`` is the API's
``homeNotional`` (BTC) when the file has it, else quote / typical price ``(h+l+c)/3``, an
estimate that ``attrs["notes"]`` states).
Rates are fractions, never percentages.

``DataFrame.attrs`` carries provenance: ``source`` (file paths or ``"reconstruction"``),
``kind`` (``"real"``, ``"reconstructed"`` or ``"simulated"``), ``venue``, ``symbol``; loaders
add ``format`` (the loader's name), ``interval`` (pandas offset alias such as ``"1min"``),
``volume_unit`` as found in the file, ``quirks`` (documented venue quirks the validation
accepted, e.g. ``"open_is_previous_close"``), ``notes`` (derivations) and ``gap_fill`` when
the user asked for gaps to be filled.

Liquidation events
------------------
A ``DataFrame`` with one row per forced order, sorted by ``time`` (tz-aware UTC):
``time, venue, symbol, position_side ("long"|"short": the side of the liquidated
position), order_side ("sell"|"buy": the side of the forced order; a sell closes a long),
price, avg_price, qty (base units), notional (quote units)``. Optional: ``event_time`` (when
the venue published it, e.g. Binance ``E``; ``time`` is the order's trade time ``T``) and
``event_id`` (groups the fills of one liquidation, e.g. Hyperliquid).

Funding settlements and open-interest snapshots
-----------------------------------------------
Funding: ``time`` (settlement instant, UTC), ``venue``, ``symbol``, ``funding_rate``
(fraction per interval), ``interval_hours``. Open interest: ``time`` (snapshot instant),
``open_interest`` (base units) and/or ``open_interest_notional`` (quote units). Both are
placed on bars by :mod:`feeds.funding_rates` and :mod:`feeds.open_interest`.
"""

from __future__ import annotations

BAR_INDEX_NAME = "open_time"

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
REQUIRED_BAR_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
MARK_COLUMNS: tuple[str, ...] = ("mark_open", "mark_high", "mark_low", "mark_close")
LIQ_SIDES: tuple[str, ...] = ("long", "short")
LIQ_FIELDS: tuple[str, ...] = ("count", "qty", "notional")
LIQ_COLUMNS: tuple[str, ...] = tuple(f"liq_{s}_{f}" for s in LIQ_SIDES for f in LIQ_FIELDS)
ADL_FLOW_COLUMNS: tuple[str, ...] = ("adl_long_notional", "adl_short_notional")
OPTIONAL_BAR_COLUMNS: tuple[str, ...] = (
    *MARK_COLUMNS,
    "index_close",
    "premium_close",
    "funding_rate",
    "open_interest",
    *LIQ_COLUMNS,
    *ADL_FLOW_COLUMNS,
    "quote_volume",
    "open_interest_notional",
)
BAR_COLUMNS: tuple[str, ...] = (*REQUIRED_BAR_COLUMNS, *OPTIONAL_BAR_COLUMNS)
# ESTIMATED liquidation-map feed lines that ``deleverage liqmap --lines`` adds to bars
# (feeds.cascade.liqmap.map_lines): USD within a window below/above the price and the edges of the
# nearest dense band per side. The canonical loader keeps them when a file has them (NaN where no
# map exists yet, never filled); backtrader feeds expose them as lines (engine.bt_data).
LIQMAP_COLUMNS: tuple[str, ...] = ("liqmap_long_near_usd", "liqmap_short_near_usd", "liqmap_long_band_top",
                                   "liqmap_long_band_bottom", "liqmap_short_band_bottom", "liqmap_short_band_top")

# How each column aggregates when bars are resampled to a coarser interval.
RESAMPLE_RULES: dict[str, str] = {
    "open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum",
    "mark_open": "first", "mark_high": "max", "mark_low": "min", "mark_close": "last",
    "index_close": "last", "premium_close": "last",
    "funding_rate": "sum_settlements",  # at most one settlement per interval in practice; NaN if none
    "open_interest": "last",
    "open_interest_notional": "last",
    "quote_volume": "sum",
    **{c: "sum" for c in LIQ_COLUMNS},
    **{c: "sum" for c in ADL_FLOW_COLUMNS},
}

# Columns that may hold NaN (see the module docstring); everything else must be finite.
SPARSE_COLUMNS: tuple[str, ...] = ("funding_rate", "open_interest", "open_interest_notional",
                                   "index_close", "premium_close")
# Columns that are prices: they must be strictly positive.
POSITIVE_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, *MARK_COLUMNS, "index_close")
# Columns that must not be negative.
NON_NEGATIVE_COLUMNS: tuple[str, ...] = ("volume", "quote_volume", "open_interest", "open_interest_notional",
                                         *LIQ_COLUMNS, *ADL_FLOW_COLUMNS)

EVENT_COLUMNS: tuple[str, ...] = (
    "time", "venue", "symbol", "position_side", "order_side",
    "price", "avg_price", "qty", "notional",
)

EVENT_OPTIONAL_COLUMNS: tuple[str, ...] = ("event_time", "event_id")
POSITION_SIDES: tuple[str, ...] = ("long", "short")
ORDER_SIDE_FOR: dict[str, str] = {"long": "sell", "short": "buy"}  # a forced sell closes a long

FUNDING_COLUMNS: tuple[str, ...] = ("time", "venue", "symbol", "funding_rate", "interval_hours")
OPEN_INTEREST_COLUMNS: tuple[str, ...] = ("time", "open_interest", "open_interest_notional")

DATA_KINDS: tuple[str, ...] = ("real", "reconstructed", "simulated")

# Venue keys are those of :mod:`risk.venues`; the spellings found in files map onto them.
VENUE_ALIASES: dict[str, str] = {
    "binance_usdtm": "binance_usdm", "binance_um": "binance_usdm", "binance_usdm": "binance_usdm",
    "binance_cm": "binance_coinm", "binance_coinm": "binance_coinm",
    "bitmex": "bitmex", "hyperliquid": "hyperliquid", "bybit": "bybit", "okx": "okx",
}
