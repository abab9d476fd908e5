"""Venue profiles: how each venue margins, liquidates and funds, with the instruments we ship.

Each :class:`VenueRules` states the venue's liquidation policy in data, so the broker and the
fast engine apply it without branching on venue names:

- ``mm_on_entry``: maintenance margin valued at the entry price (BitMEX, Bybit) instead of
  the mark price (Binance, OKX, Hyperliquid). See :mod:`risk.formulas`.
- ``mmr_adds_taker_fee``: the maintenance requirement includes the exit taker fee
  (BitMEX: "MM = 0.50 % + exit taker fee + funding rate"; OKX: margin ratio counts
  "MM + liquidation fee" with the fee at the taker rate).
- ``mmr_adds_funding``: the maintenance requirement includes the next funding payment when it
  is a cost to the position (BitMEX).
- ``liquidation_fill``: ``"bankruptcy"``: the position is taken over at the bankruptcy price
  and the trader loses the whole position margin; the part between the liquidation and the
  bankruptcy price goes to the insurance fund (BitMEX, Bybit). ``"liquidation"``: the
  position is closed at the liquidation price (Binance's IOC at the trigger, Hyperliquid's
  market order, OKX); the clearance fee (``PerpInstrument.liquidation_fee_rate``, capped at
  the remaining margin) goes to the insurance fund and the rest of the margin is returned.
- ``partial_liquidation``: what the venue does before a full liquidation; at bar resolution
  the backtest liquidates the whole position (documented for each venue).
- Trigger: every venue triggers on the **mark price**. The broker uses the feed's mark OHLC
  when present and the last-price OHLC otherwise, and checks the bar's adverse extreme (low
  for a long, high for a short), so a wick inside a bar liquidates even if the close
  recovers. Liquidating cancels the position's open orders.
"""

from __future__ import annotations

from dataclasses import dataclass

from risk.errors import DeleverageError
from risk.instrument import PerpInstrument, TierTable


@dataclass(frozen=True)
class VenueRules:
    """The margin, liquidation and funding rules of one venue (see the module docstring)."""

    key: str
    title: str
    mm_on_entry: bool
    mmr_adds_taker_fee: bool
    mmr_adds_funding: bool
    liquidation_fill: str  # "bankruptcy" | "liquidation"
    partial_liquidation: str
    funding_hours_utc: tuple[int, ...]
    funding_price: str  # "mark" | "oracle"
    sources: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.liquidation_fill not in ("bankruptcy", "liquidation"):
            raise DeleverageError(f"venue {self.key}: liquidation_fill must be 'bankruptcy' or 'liquidation'")


BINANCE_LIQ_FAQ = "https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93"
BINANCE_PROTOCOL = "https://www.binance.com/en-NZ/support/faq/binance-futures-liquidation-protocols-360033525271"

VENUES: dict[str, VenueRules] = {
    "binance_usdm": VenueRules(
        key="binance_usdm", title="Binance USDⓈ-M futures (linear)",
        mm_on_entry=False, mmr_adds_taker_fee=False, mmr_adds_funding=False,
        liquidation_fill="liquidation",
        partial_liquidation=("Binance first sends one IOC order that tries to restore the margin "
                             "without closing the whole position; the backtest closes it whole at "
                             "the liquidation price (conservative at bar resolution)."),
        funding_hours_utc=(0, 8, 16), funding_price="mark",
        sources=(BINANCE_LIQ_FAQ, BINANCE_PROTOCOL),
    ),
    "binance_coinm": VenueRules(
        key="binance_coinm", title="Binance COIN-M futures (inverse)",
        mm_on_entry=False, mmr_adds_taker_fee=False, mmr_adds_funding=False,
        liquidation_fill="liquidation",
        partial_liquidation="As Binance USDⓈ-M.",
        funding_hours_utc=(0, 8, 16), funding_price="mark",
        sources=("https://www.binance.com/es/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46", BINANCE_PROTOCOL),
    ),
    "bitmex": VenueRules(
        key="bitmex", title="BitMEX (XBTUSD inverse perpetual)",
        mm_on_entry=True, mmr_adds_taker_fee=True, mmr_adds_funding=True,
        liquidation_fill="bankruptcy",
        partial_liquidation=("Above the base risk limit BitMEX first steps the risk limit down and "
                             "sends a Fill-or-Kill order; at the base tier it takes the whole "
                             "position over at the bankruptcy price (the backtest does that)."),
        funding_hours_utc=(4, 12, 20), funding_price="mark",
        sources=("https://www.bitmex.com/app/liquidation", "https://www.bitmex.com/app/inversePerpetualsGuide",
                 "https://www.bitmex.com/app/riskLimitsExamples"),
    ),
    "bybit": VenueRules(
        key="bybit", title="Bybit (linear USDT and inverse)",
        mm_on_entry=True, mmr_adds_taker_fee=False, mmr_adds_funding=False,
        liquidation_fill="bankruptcy",
        partial_liquidation=("Bybit reduces the risk limit tier by partial liquidation for positions "
                             "above the lowest tier; at the lowest tier the position is closed at the "
                             "bankruptcy price (the backtest does that)."),
        funding_hours_utc=(0, 8, 16), funding_price="mark",
        sources=("https://testnet.bybit.com/en-US/help-center/s/article/Liquidation-Price-USDT-Contract",
                 "https://www.kbybit.com/en/help-center/article/Liquidation-Price-Calculation-under-Isolated-Mode-Unified-Trading-Account"),
    ),
    "okx": VenueRules(
        key="okx", title="OKX perpetual swaps",
        mm_on_entry=False, mmr_adds_taker_fee=True, mmr_adds_funding=False,
        liquidation_fill="liquidation",
        partial_liquidation=("OKX liquidates partially tier by tier for large positions; the backtest "
                             "closes the whole position at the liquidation price."),
        funding_hours_utc=(0, 8, 16), funding_price="mark",
        sources=("https://okx.huicker.com/fr-fr/help/v-tiered-maintenance-margin-ratio-rules",),
    ),
    "hyperliquid": VenueRules(
        key="hyperliquid", title="Hyperliquid perpetuals",
        mm_on_entry=False, mmr_adds_taker_fee=False, mmr_adds_funding=False,
        liquidation_fill="liquidation",
        partial_liquidation=("Positions above 100k USDC are liquidated 20 % first, then the rest after "
                             "a 30 s cooldown; both fall inside one 1-minute bar, so the backtest "
                             "closes the whole position at the liquidation price, no clearance fee."),
        funding_hours_utc=tuple(range(24)), funding_price="oracle",
        sources=("https://hyperliquid.gitbook.io/hyperliquid-docs/trading/liquidations",
                 "https://hyperliquid.gitbook.io/hyperliquid-docs/trading/funding"),
    ),
}


# --- tier tables -----------------------------------------------------------------------------

BINANCE_BTCUSDT_2021 = TierTable(
    effective_from="2020-01-01",
    floors=(0, 50_000, 250_000, 1_000_000, 10_000_000, 20_000_000, 50_000_000, 100_000_000, 200_000_000, 300_000_000),
    mmrs=(0.004, 0.005, 0.01, 0.025, 0.05, 0.10, 0.125, 0.15, 0.25, 0.50),
    max_leverages=(125, 100, 50, 20, 10, 5, 4, 3, 2, 1),
    source=("BTCUSDT brackets read from the Binance web client in March 2021 (gist "
            "highfestiva/b71e76f51eed84d56c1be8ebbcc286b5); the maintenance amounts it lists "
            "(50, 1,300, 16,300, 266,300, 1,266,300) equal the continuous rule. Binance's own "
            "cross-margin example (mmr 2.5 %, cum 16,300 for a 3.5M position) matches it."),
    note="Earliest table we can cite; also applied to dates before March 2021, 312 included.",
)
BINANCE_ETHUSDT_2021 = TierTable(
    effective_from="2020-01-01",
    floors=(0, 10_000, 100_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000),
    mmrs=(0.005, 0.0065, 0.01, 0.02, 0.05, 0.10, 0.125, 0.15, 0.25),
    max_leverages=(100, 75, 50, 25, 10, 5, 4, 3, 2),
    source=("ETHUSDT brackets of 2021; the continuous rule gives cum 135,365 for the 10 % bracket, "
            "exactly the maintenance amount in Binance's published cross-margin example "
            "(How to calculate liquidation price of USDⓈ-M contracts)."),
    note="Earliest table we can cite; also applied to earlier dates.",
)


def _bitmex_xbtusd(effective_from: str, base_mmr: float, source: str) -> TierTable:
    # Base risk limit 200 XBT; each further 100 XBT step raises IM and MM by 0.5 %
    # (riskLimitsExamples); max leverage = 1 / IM with IM = 1 % + 0.5 % per step.
    steps = 10
    floors = tuple([0.0] + [200.0 + 100.0 * i for i in range(steps - 1)])
    mmrs = tuple(base_mmr + 0.005 * i for i in range(steps))
    max_lev = tuple(round(1.0 / (0.01 + 0.005 * i), 2) for i in range(steps))
    return TierTable(effective_from=effective_from, floors=floors, mmrs=mmrs, max_leverages=max_lev,
                     source=source, cum_rule="step")


BITMEX_XBTUSD_TABLES = (
    _bitmex_xbtusd("2016-05-13", 0.005, "BitMEX base MM 0.50 % at the time of 312; risk-limit steps of 100 XBT above 200 XBT add 0.5 % (https://www.bitmex.com/app/riskLimitsExamples)."),
    _bitmex_xbtusd("2020-04-17", 0.0045, "BitMEX blog 17 Apr 2020: base maintenance margin of XBT series reduced to 0.45 %."),
    _bitmex_xbtusd("2020-05-05", 0.0040, "BitMEX announcement 5 May 2020: base maintenance margin reduced to 0.40 %."),
)

HYPERLIQUID_BTC_TABLES = (
    TierTable(effective_from="2023-01-01", floors=(0,), mmrs=(0.01,), max_leverages=(50,),
              source="Hyperliquid docs: maintenance margin is half the initial margin at max leverage; BTC max 50x (1 %)."),
    TierTable(effective_from="2025-03-13", floors=(0,), mmrs=(0.0125,), max_leverages=(40,),
              source="BTC max leverage cut to 40x after the March 2025 ETH whale episode: maintenance 1.25 %."),
)
HYPERLIQUID_ETH_TABLES = (
    TierTable(effective_from="2023-01-01", floors=(0,), mmrs=(0.01,), max_leverages=(50,),
              source="Hyperliquid docs: maintenance margin is half the initial margin at max leverage; ETH max 50x (1 %)."),
    TierTable(effective_from="2025-03-13", floors=(0,), mmrs=(0.02,), max_leverages=(25,),
              source="ETH max leverage cut to 25x after the March 2025 ETH whale episode: maintenance 2 %."),
)


def _instrument(**kwargs: object) -> PerpInstrument:
    return PerpInstrument(**kwargs)  # type: ignore[arg-type]


INSTRUMENTS: dict[tuple[str, str], PerpInstrument] = {}


def register(instrument: PerpInstrument) -> PerpInstrument:
    """Add an instrument to the registry (key: venue, symbol)."""
    if instrument.venue not in VENUES:
        raise DeleverageError(f"unknown venue {instrument.venue!r}; known: {', '.join(VENUES)}")
    INSTRUMENTS[(instrument.venue, instrument.symbol)] = instrument
    return instrument


for _inst in (
    _instrument(symbol="BTCUSDT", venue="binance_usdm", inverse=False, contract_size=1.0, tick_size=0.1,
                lot_size=0.001, min_notional=5.0, settle_currency="USDT", quote_currency="USDT",
                maker_fee=0.0002, taker_fee=0.0004, liquidation_fee_rate=0.0125, funding_interval_hours=8,
                tier_tables=(BINANCE_BTCUSDT_2021,)),
    _instrument(symbol="ETHUSDT", venue="binance_usdm", inverse=False, contract_size=1.0, tick_size=0.01,
                lot_size=0.001, min_notional=5.0, settle_currency="USDT", quote_currency="USDT",
                base_currency="ETH", maker_fee=0.0002, taker_fee=0.0004, liquidation_fee_rate=0.0125,
                funding_interval_hours=8, tier_tables=(BINANCE_ETHUSDT_2021,)),
    _instrument(symbol="XBTUSD", venue="bitmex", inverse=True, contract_size=1.0, tick_size=0.5, lot_size=1.0,
                min_notional=1.0, settle_currency="BTC", maker_fee=-0.00025, taker_fee=0.00075,
                liquidation_fee_rate=0.0, funding_interval_hours=8, tier_tables=BITMEX_XBTUSD_TABLES),
    _instrument(symbol="BTC", venue="hyperliquid", inverse=False, contract_size=1.0, tick_size=1.0,
                lot_size=0.00001, min_notional=10.0, settle_currency="USDC", quote_currency="USDC",
                maker_fee=0.00015, taker_fee=0.00045, liquidation_fee_rate=0.0, funding_interval_hours=1,
                tier_tables=HYPERLIQUID_BTC_TABLES),
    _instrument(symbol="ETH", venue="hyperliquid", inverse=False, contract_size=1.0, tick_size=0.1,
                lot_size=0.0001, min_notional=10.0, settle_currency="USDC", quote_currency="USDC",
                base_currency="ETH", maker_fee=0.00015, taker_fee=0.00045, liquidation_fee_rate=0.0,
                funding_interval_hours=1, tier_tables=HYPERLIQUID_ETH_TABLES),
):
    register(_inst)

DEFAULT_SYMBOLS: dict[str, str] = {
    "binance_usdm": "BTCUSDT",
    "bitmex": "XBTUSD",
    "hyperliquid": "BTC",
}


def venue_rules(venue: str) -> VenueRules:
    """The rules of ``venue``; a clear error names the known venues."""
    try:
        return VENUES[venue]
    except KeyError:
        raise DeleverageError(f"unknown venue {venue!r}; known: {', '.join(VENUES)}") from None


def get_instrument(venue: str, symbol: str | None = None) -> PerpInstrument:
    """The instrument ``symbol`` on ``venue`` (the venue's BTC perpetual when ``symbol`` is None)."""
    venue_rules(venue)
    if symbol is None:
        if venue not in DEFAULT_SYMBOLS:
            raise DeleverageError(f"venue {venue!r} has no default symbol; name one of: "
                                  + ", ".join(s for v, s in INSTRUMENTS if v == venue))
        symbol = DEFAULT_SYMBOLS[venue]
    try:
        return INSTRUMENTS[(venue, symbol)]
    except KeyError:
        known = ", ".join(s for v, s in INSTRUMENTS if v == venue) or "none"
        raise DeleverageError(f"unknown instrument {symbol!r} on {venue}; known: {known}") from None
