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
- ``backstop_takes_margin``: a backstop liquidator takes an isolated position and its margin (or
  a cross account's only position and the cross margin; an account with several: every cross position and the
  cross margin, :func:`risk.account.account_backstop`) when the bar opens past its backstop level (Hyperliquid: equity below 2/3 of the maintenance
  margin without a successful book liquidation; :func:`risk.formulas.backstop_charge`).
- ``partial_liquidation``: what the venue does before a full liquidation; at bar resolution
  the backtest liquidates the whole position (documented for each venue).
- Not modelled: BitMEX ETHUSD is a *quanto* contract (PnL in XBT = contracts x multiplier x
  price change in USD, whatever the ETH/BTC rate), which is neither linear nor inverse; only
  XBTUSD is shipped for BitMEX.
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
    backstop_takes_margin: bool = False

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
                             "closes the whole position at the liquidation price, no clearance fee; a "
                             "bar opening past the backstop level (equity < 2/3 of MM): the vault keeps "
                             "the margin left, isolated or a cross account's only position "
                             "(risk.formulas.backstop_charge), or every cross position and the cross "
                             "margin of an account below 2/3 of its MM at the opens "
                             "(risk.account.account_backstop)."),
        funding_hours_utc=tuple(range(24)), funding_price="oracle",
        sources=("https://hyperliquid.gitbook.io/hyperliquid-docs/trading/liquidations",
                 "https://hyperliquid.gitbook.io/hyperliquid-docs/trading/funding"),
        backstop_takes_margin=True,
    ),
}


# --- tier tables -----------------------------------------------------------------------------

BINANCE_BTCUSDT_2021 = TierTable(
    effective_from="2021-03-18",
    floors=(0, 50_000, 250_000, 1_000_000, 10_000_000, 20_000_000, 50_000_000, 100_000_000, 200_000_000, 300_000_000),
    mmrs=(0.004, 0.005, 0.01, 0.025, 0.05, 0.10, 0.125, 0.15, 0.25, 0.50),
    max_leverages=(125, 100, 50, 20, 10, 5, 4, 3, 2, 1),
    source=("Binance announcement 'Updates to Leverage and Margin Tiers of Binance Futures Contracts "
            "(2021-03-18)': BTCUSDT 125x brackets in force from 2021-03-18 09:00 UTC "
            "(https://www.binance.com/tr/support/announcement/86cf9aa472574b8cb2e05bb751c2a9a6). Same "
            "table as read from the web client in March 2021 (gist highfestiva/b71e76f51eed84d56c1be8ebbcc286b5, "
            "maintenance amounts 50, 1,300, 16,300, 266,300, 1,266,300 = the continuous rule); Binance's "
            "cross-margin example (mmr 2.5 %, cum 16,300 for a 3.5M position) matches it."),
    note=("Also applied before 2021-03-18 (earliest table we can cite). Binance's USD-M liquidation FAQ "
          "of 2020-08-14 confirms the first three brackets (0.4 %/0.5 %/1 %, floors 50k/250k, cum 1,300) "
          "for 2020; the 2020 upper brackets are not established."),
)
BINANCE_BTCUSDT_2024 = TierTable(
    effective_from="2024-06-28",
    floors=(0, 50_000, 600_000, 3_000_000, 12_000_000, 70_000_000, 100_000_000, 230_000_000,
            480_000_000, 600_000_000, 800_000_000, 1_200_000_000),
    mmrs=(0.004, 0.005, 0.0065, 0.01, 0.02, 0.025, 0.05, 0.10, 0.125, 0.15, 0.25, 0.50),
    max_leverages=(125, 100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1),
    source=("freqtrade freqtrade/exchange/binance_leverage_tiers.json, 'BTC/USDT:USDT' (commit "
            "01d10aebcab25c526473c603a88e14eb7d9699cc; its cum column 50, 950, 11,450, 131,450, 481,450, "
            "2,981,450 ... equals the continuous rule)."),
    note=("Snapshot date: the file lists the BTCUSDT 240927 and 241227 quarterlies, so it was taken "
          "between 2024-06-28 and 2024-09-27; effective_from is the earliest of those. When Binance "
          "moved from the 2021 table to this one is not established: dates from 2021-03-18 to "
          "2024-06-28 use the 2021 table."),
)
BINANCE_ETHUSDT_2021 = TierTable(
    effective_from="2020-01-01",
    floors=(0, 10_000, 100_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000),
    mmrs=(0.005, 0.0065, 0.01, 0.02, 0.05, 0.10, 0.125, 0.15, 0.25),
    max_leverages=(100, 75, 50, 25, 10, 5, 4, 3, 2),
    source=("ETHUSDT brackets of 2021; the continuous rule gives cum 135,365 for the 10 % bracket, "
            "exactly the maintenance amount in Binance's published cross-margin example "
            "(How to calculate liquidation price of USDⓈ-M contracts)."),
    note=("Earliest table we can cite; also applied to earlier dates. The brackets (10k/100k/500k/1M/"
          "2M/5M/10M/20M; 100x..2x) are those of Binance's 'Leverage and Margin of USDⓈ-M Futures' page "
          "(Finandy mirror https://docs.finandy.com/markets/finandy-futures/untitled-1); the first six "
          "rates are fixed by the 135,365 amount, the 12.5/15/25 % rates follow Binance's 4x/3x/2x rates."),
)
BINANCE_ETHUSDT_2024 = TierTable(
    effective_from="2024-06-28",
    floors=(0, 50_000, 600_000, 3_000_000, 12_000_000, 50_000_000, 65_000_000, 150_000_000,
            320_000_000, 400_000_000, 530_000_000, 800_000_000),
    mmrs=(0.004, 0.005, 0.0065, 0.01, 0.02, 0.025, 0.05, 0.10, 0.125, 0.15, 0.25, 0.50),
    max_leverages=(125, 100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1),
    source=("freqtrade freqtrade/exchange/binance_leverage_tiers.json, 'ETH/USDT:USDT' (commit "
            "01d10aebcab25c526473c603a88e14eb7d9699cc; cum column = the continuous rule)."),
    note="Snapshot between 2024-06-28 and 2024-09-27 (see BINANCE_BTCUSDT_2024); switch date not established.",
)

# Binance COIN-M (inverse): floors in coin. Every published BTCUSD maintenance amount is
# reproduced by these rates with the continuous rule: 0.56 BTC (level 4) and 1.81 BTC (level 5,
# "50 BTC x (5 % - 2.5 %) + 0.56 BTC") and 11.81 BTC at 300 BTC (12.5 % tier) for the first
# table; 11.605 BTC at 300 BTC for the second.
BINANCE_COINM_FAQ = "https://www.binance.com/es/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46"
BINANCE_COINM_LEVERAGE = "https://www.binance.com/en/support/faq/be2c7d9d95b04a7e8044ed02dd7dfe5c"
BINANCE_BTCUSD_PERP_2020 = TierTable(
    effective_from="2020-06-11",
    floors=(0, 10, 20, 30, 50, 100, 200, 400, 1_000),
    mmrs=(0.004, 0.005, 0.01, 0.025, 0.05, 0.10, 0.125, 0.15, 0.25),
    max_leverages=(125, 100, 50, 20, 10, 5, 4, 3, 2),
    source=(f"Brackets (notional in BTC) and leverages: Binance 'Leverage and Margin in Coin-Margined "
            f"Futures Contracts' (page dated 2020-06-11, {BINANCE_COINM_LEVERAGE}). Rates: Binance 'How to "
            f"Calculate Liquidation Price of COIN-M Futures Contracts' (2021-02-05, {BINANCE_COINM_FAQ}): "
            f"level-5 amount 50 BTC x (5 % - 2.5 %) + 0.56 BTC = 1.81 BTC, 300 BTC is in the 12.5 % tier "
            f"with amount 11.81 BTC; these fix the 2.5/5/10/12.5 % rates and the 0.4/0.5/1 % first rates "
            f"reproduce 0.56."),
    note=("The 15 % (3x) and 25 % (2x) rates are Binance's COIN-M rates for those leverages (Aug-2021 "
          "tier announcement relayed at https://mobie.io/updated-leverage-and-margin-tiers-of-binance-"
          "futures-contracts). The page's 1x bracket ('above 1,000' like 2x) is ambiguous and omitted. "
          "Also applied before 2020-06-11."),
)
BINANCE_BTCUSD_PERP_2021 = TierTable(
    effective_from="2021-04-15",
    floors=(0, 5, 10, 20, 50, 100, 200, 400, 1_000, 1_500),
    mmrs=(0.004, 0.005, 0.01, 0.025, 0.05, 0.10, 0.125, 0.15, 0.25, 0.50),
    max_leverages=(125, 100, 50, 20, 10, 5, 4, 3, 2, 1),
    source=("Brackets: the same Binance page in its mid-2021 version (with the 2021-07-27 new-user "
            "leverage note; mirror http://www.binance-register.co/en/issues/item/3040.html): 125x <= 5, "
            "100x <= 10, 50x <= 20, 20x <= 50, 10x <= 100, 5x <= 200, 4x <= 400, 3x <= 1,000, 2x <= 1,500 "
            "BTC. Rates as the 2020 table; check: Binance's COIN-M FAQ (es-MX version) gives 11.605 BTC "
            "for 300 BTC, which these rates reproduce."),
    note=("Switch date not established: Binance announced on 2021-02-22 that COIN-M maintenance margins "
          "would be updated over ten weeks, naming 2021-04-13 and 2021-04-15 as the next implementation "
          "times; 2021-04-15 is assumed. 519 (2021-05-19) uses this table."),
)
BINANCE_ETHUSD_PERP_2020 = TierTable(
    effective_from="2020-06-11",
    floors=(0, 100, 500, 1_000, 2_000, 4_000, 6_000, 8_000, 10_000),
    mmrs=(0.005, 0.0065, 0.01, 0.025, 0.05, 0.10, 0.125, 0.15, 0.25),
    max_leverages=(100, 75, 50, 20, 10, 5, 4, 3, 2),
    source=(f"Brackets (notional in ETH) and leverages: Binance 'Leverage and Margin in Coin-Margined "
            f"Futures Contracts' ({BINANCE_COINM_LEVERAGE}): 100x <= 100, 75x <= 500, 50x <= 1,000, "
            f"20x <= 2,000, 10x <= 4,000, 5x <= 6,000, 4x <= 8,000, 3x <= 10,000, 2x above."),
    note=("Rates INFERRED, not published for ETHUSD: half the initial rate (1 %, 1.3 %, 2 %, 5 %, 10 %, "
          "20 %, 25 %), 15 % at 3x and 25 % at 2x: the rule that reproduces every published BTCUSD "
          "amount. Applied to all dates."),
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


BYBIT_BTCUSDT_TABLE = TierTable(
    effective_from="2020-01-01",
    floors=(0, 2_000_000, 4_000_000),
    mmrs=(0.005, 0.01, 0.015),
    max_leverages=(100, 57.14, 40),
    source=("Bybit risk limits of BTCUSDT (USDT perpetual) as returned by Bybit's risk-limit endpoint, "
            "reproduced in carpenstar/bybitapi-sdk-derivatives src/Derivatives/MarketData/RiskLimit/README.md: "
            "limit 2,000,000 -> MM 0.5 %, IM 1 %, 100x; 4,000,000 -> 1 %, 1.75 %, 57.14x; 6,000,000 -> 1.5 %, "
            "2.5 %, 40x. Bybit's own example (1 BTC at 20,000, 50x -> LP 19,700) uses the 0.5 % base rate."),
    cum_rule="step",
    note=("Only the first three risk-limit tiers are published there (positions above 6M USDT use the 1.5 % "
          "tier). Date of the source not established; applied to all dates. Earlier, Bybit's level 1 was "
          "1,000,000 USDT (Bybit risk-limit adjustment notice, relayed at https://mobie.io/details-of-risk-"
          "limit-adjustment-by-bybit); that older table is not modelled."),
)
BYBIT_INVERSE_RISK_LIMIT = "https://www.bybit.com/ar-SA/help-center/article/Risk-Limit-Inverse-Contract"
BYBIT_BTCUSD_TABLE = TierTable(
    effective_from="2020-01-01", floors=(0,), mmrs=(0.005,), max_leverages=(100,),
    source=(f"Bybit 'Risk Limit (Inverse Contract)': 'the maintenance margin base rate is 0.5 % for BTC' "
            f"({BYBIT_INVERSE_RISK_LIMIT}); mechanics.md 1.4 example (100,000 USD at 40,000, 20x -> 38,277.51)."),
    cum_rule="step",
    note=("ONE bracket only: the base tier (Bybit's v5 risk-limit example gives 150 BTC as BTCUSD's first "
          "limit); the higher tiers were not found, so larger positions are under-margined here. "
          "Max leverage 100x (IM base 1 %) not confirmed from a source."),
)
BYBIT_ETHUSD_TABLE = TierTable(
    effective_from="2020-01-01", floors=(0,), mmrs=(0.01,), max_leverages=(50,),
    source=f"Bybit 'Risk Limit (Inverse Contract)': 'the maintenance margin base rate is ... 1 % for ETH' ({BYBIT_INVERSE_RISK_LIMIT}).",
    cum_rule="step",
    note="ONE bracket only (base tier); higher tiers not found. Max leverage 50x not confirmed from a source.",
)
OKX_BTC_USDT_SWAP_TABLE = TierTable(
    effective_from="2020-01-01", floors=(0,), mmrs=(0.004,), max_leverages=(125,),
    source=("The 0.4 % tier-1 rate of the OKX example in mechanics.md 1.5 (1 BTC at 40,000, 20x, taker "
            "0.05 % -> 38,171.77), built on OKX 'Tiered maintenance margin ratio rules' "
            "(https://okx.huicker.com/fr-fr/help/v-tiered-maintenance-margin-ratio-rules)."),
    note=("ONE bracket only. OKX's BTC-USDT-SWAP position-tier table was not found in the corpus. OKX "
          "tiers are defined in contracts (GET /api/v5/public/position-tiers, minSz/maxSz), not in "
          "notional; override with maintenance_rate= or tiers=."),
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
                tier_tables=(BINANCE_BTCUSDT_2021, BINANCE_BTCUSDT_2024)),
    _instrument(symbol="ETHUSDT", venue="binance_usdm", inverse=False, contract_size=1.0, tick_size=0.01,
                lot_size=0.001, min_notional=5.0, settle_currency="USDT", quote_currency="USDT",
                base_currency="ETH", maker_fee=0.0002, taker_fee=0.0004, liquidation_fee_rate=0.0125,
                funding_interval_hours=8, tier_tables=(BINANCE_ETHUSDT_2021, BINANCE_ETHUSDT_2024)),
    _instrument(symbol="BTCUSD_PERP", venue="binance_coinm", inverse=True, contract_size=100.0, tick_size=0.1,
                lot_size=1.0, min_notional=100.0, settle_currency="BTC", maker_fee=0.0001, taker_fee=0.0005,
                liquidation_fee_rate=0.005, funding_interval_hours=8,
                tier_tables=(BINANCE_BTCUSD_PERP_2020, BINANCE_BTCUSD_PERP_2021)),
    _instrument(symbol="ETHUSD_PERP", venue="binance_coinm", inverse=True, contract_size=10.0, tick_size=0.01,
                lot_size=1.0, min_notional=10.0, settle_currency="ETH", base_currency="ETH", maker_fee=0.0001,
                taker_fee=0.0005, liquidation_fee_rate=0.005, funding_interval_hours=8,
                tier_tables=(BINANCE_ETHUSD_PERP_2020,)),
    _instrument(symbol="BTCUSDT", venue="bybit", inverse=False, contract_size=1.0, tick_size=0.5, lot_size=0.001,
                min_notional=1.0, settle_currency="USDT", quote_currency="USDT", maker_fee=-0.00025,
                taker_fee=0.00075, liquidation_fee_rate=0.0, funding_interval_hours=8,
                tier_tables=(BYBIT_BTCUSDT_TABLE,)),
    _instrument(symbol="BTCUSD", venue="bybit", inverse=True, contract_size=1.0, tick_size=0.5, lot_size=1.0,
                min_notional=1.0, settle_currency="BTC", maker_fee=-0.00025, taker_fee=0.00075,
                liquidation_fee_rate=0.0, funding_interval_hours=8, tier_tables=(BYBIT_BTCUSD_TABLE,)),
    _instrument(symbol="ETHUSD", venue="bybit", inverse=True, contract_size=1.0, tick_size=0.05, lot_size=1.0,
                min_notional=1.0, settle_currency="ETH", base_currency="ETH", maker_fee=-0.00025,
                taker_fee=0.00075, liquidation_fee_rate=0.0, funding_interval_hours=8,
                tier_tables=(BYBIT_ETHUSD_TABLE,)),
    _instrument(symbol="BTC-USDT-SWAP", venue="okx", inverse=False, contract_size=0.01, tick_size=0.1,
                lot_size=1.0, min_notional=1.0, settle_currency="USDT", quote_currency="USDT",
                maker_fee=0.0002, taker_fee=0.0005, liquidation_fee_rate=0.0005, funding_interval_hours=8,
                tier_tables=(OKX_BTC_USDT_SWAP_TABLE,)),
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
    "binance_coinm": "BTCUSD_PERP",
    "bitmex": "XBTUSD",
    "bybit": "BTCUSDT",
    "okx": "BTC-USDT-SWAP",
    "hyperliquid": "BTC",
}
"""The instrument :func:`get_instrument` returns when no symbol is named: each venue's BTC perpetual."""


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
