"""Partial liquidation per venue (risk/partial.py): worked examples, each row citing its source.

No venue prints a numeric partial-liquidation example; each row applies the venue's published
rule (cited) to the venue's published table or example position, and the expected numbers are
worked out by hand in the row's comment ("derived", as in ../shared/research/mechanics.md).
Rows marked "published statement" check a sentence the venue printed (e.g. Binance: small
positions are always liquidated whole).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import risk
from risk.partial import (
    PARTIAL_RULES,
    RULE_FRACTION,
    RULE_RESTORE,
    RULE_STEP_DOWN,
    RULE_TIER_STEPS,
    partial_liquidation,
    partial_liquidation_step,
)
from risk.formulas import liquidation_price_tiered
from risk.venues import BINANCE_BTCUSDT_2024, VENUES

BINANCE_SMART = "Binance 'Liquidation protocol' (docs.traderwagon.com ... liquidation-protocol; zendesk 360033525271)"
BITMEX_PROC = "BitMEX 'Liquidation' / 'Liquidation examples' (bitmex.com/app/liquidation, testnet.bitmex.com/app/liquidationExamples)"
BITMEX_TABLE = "BitMEX 'Risk limits examples' table <200 XBT 0.50 %, <350 1.00 %, <500 1.50 %, <650 2.00 % (bitmex.com/app/riskLimitsExamples)"
BYBIT_PROC = "Bybit 'Liquidation Process (USDT Contract)' (help.bybit.com ... 900000167723)"
OKX_PROC = "OKX forced partial liquidation rules (relayed amorrr.com/14966.html)"
HL_PROC = "Hyperliquid partial liquidations announcement (tginsight.xyz ... hyperliquid_announcements/post/307)"


def test_every_venue_has_a_rule_with_sources():
    assert set(PARTIAL_RULES) == set(VENUES)
    for rule in PARTIAL_RULES.values():
        assert rule.sources and all(s.strip() for s in rule.sources)
        assert rule.assumptions, f"{rule.venue}: say what the venue does not publish"


# --- Binance: one IOC that restores margin, else whole ----------------------------------------

def test_binance_small_position_is_liquidated_whole():
    """Published statement (Binance zendesk 360033525271): 'for smaller users, the effective
    maintenance margin is lower than the liquidation fee rate, so they are already bankrupt'.
    2 BTC @60k 20x is in the 0.5 % bracket < 1.25 % clearance: no partial close restores margin."""
    out = partial_liquidation("binance_usdm", "long", 60_000, 2, 6_000, 57_261.0)
    assert out.in_liquidation and out.full_follows
    assert out.closed_qty == 0.0 and out.fee == 0.0 and out.remaining_qty == 2.0


def test_binance_large_position_keeps_most_of_it():
    """Derived (rule: """ + BINANCE_SMART + """; brackets: BINANCE_BTCUSDT_2024, 12M-70M at 2 %,
    cum 131,450; clearance fee 1.25 %).

    300 BTC long @60,000, isolated 1,800,000 USDT, mark 54,600:
    MB = 1,800,000 + 300 x (54,600 - 60,000) = 180,000; MM = 300 x 54,600 x 2 % - 131,450 = 196,150.
    Smallest q with 180,000 - 1.25 % x 54,600 q > (300 - q) x 54,600 x 2 % - 131,450:
    q > 16,150 / (54,600 x 0.75 %) = 39.4383 -> 39.439 BTC (lot 0.001); fee 26,917.12.
    """
    ts = BINANCE_BTCUSDT_2024.effective_timestamp
    out = partial_liquidation("binance_usdm", "long", 60_000, 300, 1_800_000, 54_600, timestamp=ts)
    assert out.in_liquidation and not out.full_follows
    assert out.closed_qty == pytest.approx(39.439, abs=1e-9)
    assert out.fee == pytest.approx(39.439 * 54_600 * 0.0125, rel=1e-12)
    assert out.realized_pnl == pytest.approx(39.439 * -5_400, rel=1e-12)
    assert out.remaining_qty == pytest.approx(260.561, abs=1e-9)
    assert out.tier_before == out.tier_after == 4
    mb_after = out.wallet_after + 260.561 * (54_600 - 60_000)
    assert mb_after == pytest.approx(153_082.88, abs=0.01)
    assert mb_after > 260.561 * 54_600 * 0.02 - 131_450  # 153,082.61: compliant


def test_binance_coinm_inverse_partial_close():
    """Derived, inverse (rule as USDⓈ-M; brackets BINANCE_BTCUSD_PERP_2021: (20, 50] BTC at 2.5 %,
    cum = 20 x 1.5 % + 0.055 = 0.355 BTC; clearance 0.5 %).

    15,000 BTCUSD_PERP (100 USD) long @50,000, 1.6499 BTC isolated, mark 48,000: value 31.25 BTC,
    MM = 31.25 x 2.5 % - 0.355 = 0.42625; upnl = 1.5e6 x (1/50,000 - 1/48,000) = -1.25 -> MB 0.3999.
    Per contract u = 100/48,000 BTC: q > (0.78125 - 0.355 - 0.3999) / (u x 2 %) = 632.4 -> 633
    contracts; fee 633 x u x 0.5 % = 0.00659375 BTC.
    """
    out = partial_liquidation("binance_coinm", "long", 50_000, 15_000, 1.6499, 48_000)
    assert out.in_liquidation and not out.full_follows
    assert out.closed_qty == 633.0 and out.remaining_qty == 14_367.0
    assert out.fee == pytest.approx(633 * 100 / 48_000 * 0.005, rel=1e-12)
    assert out.realized_pnl == pytest.approx(63_300 * (1 / 50_000 - 1 / 48_000), rel=1e-12)


def test_binance_too_deep_goes_whole():
    """Same position at 54,000: MB = 0, the close needed (475 BTC) exceeds the position."""
    ts = BINANCE_BTCUSDT_2024.effective_timestamp
    out = partial_liquidation("binance_usdm", "long", 60_000, 300, 1_800_000, 54_000, timestamp=ts)
    assert out.full_follows and out.closed_qty == 0.0


def test_not_in_liquidation_does_nothing():
    out = partial_liquidation("binance_usdm", "long", 60_000, 2, 6_000, 58_000.0)
    assert not out.in_liquidation and not out.full_follows and out.closed_qty == 0.0


# --- BitMEX and Bybit: FOK down to a lower risk limit ------------------------------------------

BITMEX_TIERS = ((0.0, 0.005), (200.0, 0.010), (350.0, 0.015), (500.0, 0.020))


def test_bitmex_steps_down_one_risk_limit():
    """Derived (rule: """ + BITMEX_PROC + """; table: """ + BITMEX_TABLE + """; MM adds the 0.075 % exit taker fee).

    Long 3,000,000 XBTUSD @10,000 = 300 XBT at entry: the <350 XBT limit, MM 1.075 % = 3.225 XBT.
    Collateral 6 XBT, mark 9,900: upnl = 3e6 x (1/10,000 - 1/9,900) = -3.0303, MB = 2.9697 < 3.225.
    FOK down to the 200 XBT limit: 1,000,000 contracts, fee 1e6/9,900 x 0.075 % = 0.075758 XBT;
    then MB 2.8939 > MM 200 x 0.575 % = 1.15 XBT: the liquidation stops.
    """
    out = partial_liquidation("bitmex", "long", 10_000, 3_000_000, 6.0, 9_900, tiers=BITMEX_TIERS)
    assert out.in_liquidation and not out.full_follows
    assert out.closed_qty == 1_000_000 and out.remaining_qty == 2_000_000
    assert out.tier_before == 1 and out.tier_after == 0
    assert out.fee == pytest.approx(1e6 / 9_900 * 0.00075, rel=1e-12)
    assert out.realized_pnl == pytest.approx(1e6 * (1 / 10_000 - 1 / 9_900), rel=1e-12)
    assert out.wallet_after == pytest.approx(6.0 + 1e6 * (1 / 10_000 - 1 / 9_900) - 1e6 / 9_900 * 0.00075, rel=1e-12)


def test_bitmex_lowest_limit_is_taken_over_whole():
    """Published rule: 'Users on the Lowest Risk Limit tiers ... the position will be liquidated ...
    at the bankruptcy price' (""" + BITMEX_PROC + """). 1,000,000 contracts (100 XBT) @10,000."""
    out = partial_liquidation("bitmex", "long", 10_000, 1_000_000, 1.0, 9_930, tiers=BITMEX_TIERS)
    assert out.in_liquidation and out.full_follows and out.closed_qty == 0.0


def test_bitmex_no_lower_limit_restores_margin_goes_whole():
    """Same 300 XBT position at 9,750: MB = 6 - 7.6923 < 0, no FOK can help (assumption: none is sent)."""
    out = partial_liquidation("bitmex", "long", 10_000, 3_000_000, 6.0, 9_750, tiers=BITMEX_TIERS)
    assert out.full_follows and out.closed_qty == 0.0


def test_bybit_steps_down_to_the_base_risk_limit():
    """Derived (rule: """ + BYBIT_PROC + """ 'Submit a FillOrKill order of the difference between the
    current position value and the lower margin tier value which satisfies the margin requirement';
    tiers: BYBIT_BTCUSDT_TABLE 2M at 0.5 %, 4M at 1 %, MM valued at entry).

    75 BTC long @40,000 = 3,000,000 USDT (1 % tier, MM 30,000), collateral 60,000, mark 39,500:
    MB = 60,000 - 37,500 = 22,500 < 30,000. FOK 25 BTC down to the 2,000,000 limit, taker 0.075 %:
    fee 740.625; MB 21,759.375 > MM 10,000. Realized PnL 25 x -500 = -12,500.
    """
    out = partial_liquidation("bybit", "long", 40_000, 75, 60_000, 39_500)
    assert out.in_liquidation and not out.full_follows
    assert out.closed_qty == pytest.approx(25.0, abs=1e-9)
    assert out.fee == pytest.approx(740.625, rel=1e-12)
    assert out.realized_pnl == pytest.approx(-12_500.0, rel=1e-12)
    assert out.wallet_after == pytest.approx(46_759.375, rel=1e-12)
    assert out.tier_before == 1 and out.tier_after == 0


def test_bybit_base_tier_published_example_goes_whole():
    """Bybit's published example (1 BTC long @20,000, 50x, mmr 0.5 % -> LP 19,700; testnet.bybit.com
    ... Liquidation-Price-USDT-Contract) at its liquidation price: lowest tier, closed whole."""
    out = partial_liquidation("bybit", "long", 20_000, 1, 400, 19_700)
    assert out.in_liquidation and out.full_follows and out.closed_qty == 0.0


# --- OKX: two tiers at a time from tier 3 -------------------------------------------------------

# A hand-made tier table with OKX's published structure ("+0.5 % per extra tier", mechanics 1.5),
# 1M USDT per tier; the OKX BTC-USDT-SWAP table is not in the corpus. OKX values the whole
# position at the tier's rate (no maintenance amount) and adds the 0.05 % taker-rate fee.
OKX_FLOORS = np.array([0.0, 1e6, 2e6, 3e6, 4e6])
OKX_MMRS = np.array([0.004, 0.009, 0.014, 0.019, 0.024]) + 0.0005
OKX_CUMS = np.zeros(5)


def _okx(wallet: float, contracts: float, price: float = 30_000.0, entry: float = 31_000.0):
    r = PARTIAL_RULES["okx"]
    return partial_liquidation_step(r.rule, False, False, 1, contracts, 0.01, entry, wallet, price, OKX_FLOORS,
                                    OKX_MMRS, OKX_CUMS, 0.0, 0.0, 0.0005, 1.0, r.min_tier, r.tiers_per_step,
                                    r.fraction, r.threshold, False)


def test_okx_one_step_of_two_tiers():
    """Derived (rule: """ + OKX_PROC + """: tier >= 3, margin between the lowest and the current
    requirement -> close the contracts that take the position down two tiers, re-check).

    15,000 contracts x 0.01 BTC @ mark 30,000 = 4.5M (tier 5, 2.45 % -> MM 110,250); entry 31,000,
    wallet 210,000 -> MB 60,000 > lowest 4.5M x 0.45 % = 20,250. Down two tiers (to <= 3M): close
    5,000 contracts, fee 1.5M x 0.05 % = 750; MB 59,250 > MM 3M x 1.45 % = 43,500: stop.
    """
    closed, fee, pnl, rem, wallet_after, tier_after, full, in_liq = _okx(210_000.0, 15_000.0)
    assert in_liq and not full
    assert (closed, rem, tier_after) == (5_000.0, 10_000.0, 2)
    assert fee == pytest.approx(750.0, rel=1e-12)
    assert pnl == pytest.approx(-50_000.0, rel=1e-12)
    assert wallet_after == pytest.approx(210_000.0 - 50_000.0 - 750.0, rel=1e-12)


def test_okx_repeats_until_compliant():
    """Same position, wallet 190,000 (MB 40,000): after the first step MB 39,250 < 43,500, so a
    second step takes tier 3 down to tier 1: remainder <= 1M -> 3,333 contracts (lot 1), 6,667 more
    closed, fee 1,000.05; MB 38,249.95 > 999,900 x 0.45 % = 4,499.55."""
    closed, fee, pnl, rem, wallet_after, tier_after, full, in_liq = _okx(190_000.0, 15_000.0)
    assert in_liq and not full
    assert (closed, rem, tier_after) == (11_667.0, 3_333.0, 0)
    assert fee == pytest.approx(750.0 + 1_000.05, rel=1e-12)
    assert pnl == pytest.approx(-116_670.0, rel=1e-12)


@pytest.mark.parametrize(("wallet", "contracts", "why"), [
    (60_000.0, 5_000.0, "tier 2 (1.5M, MB 10,000 < MM 14,250): 'for Tiers 1-2 ... full liquidation'"),
    (160_000.0, 15_000.0, "MB 10,000 below the lowest tier's 20,250: full liquidation"),
])
def test_okx_full_liquidation_cases(wallet, contracts, why):
    closed, fee, pnl, rem, wallet_after, tier_after, full, in_liq = _okx(wallet, contracts)
    assert in_liq and full and closed == 0.0, why


# --- Hyperliquid: 20 % above 100k USDC ----------------------------------------------------------

def test_hyperliquid_twenty_percent_slice_restores_margin():
    """Derived (rule: """ + HL_PROC + """; BTC max 40x -> MM 1.25 %).

    3 BTC long @100,000, isolated 30,000 (LP 91,139.24), mark 91,000: notional 273,000 > 100k, so
    20 % = 0.6 BTC is sold: PnL -5,400, no fee; then MB = 24,600 - 2.4 x 9,000 = 3,000 > MM
    2.4 x 91,000 x 1.25 % = 2,730: the rest stays open.
    """
    out = partial_liquidation("hyperliquid", "long", 100_000, 3, 30_000, 91_000)
    assert out.in_liquidation and not out.full_follows
    assert out.closed_qty == pytest.approx(0.6, abs=1e-12) and out.fee == 0.0
    assert out.realized_pnl == pytest.approx(-5_400.0, rel=1e-9)
    assert out.remaining_qty == pytest.approx(2.4, abs=1e-12)
    assert out.cooldown_s == 30.0


def test_hyperliquid_slice_not_enough_then_whole():
    """At 90,900: after the slice MB = 24,540 - 21,840 = 2,700 < MM 2,727 -> the rest follows
    (inside the 30 s cooldown every liquidation order is for the entire position)."""
    out = partial_liquidation("hyperliquid", "long", 100_000, 3, 30_000, 90_900)
    assert out.closed_qty == pytest.approx(0.6, abs=1e-12) and out.full_follows


@pytest.mark.parametrize(("qty", "collateral", "cooldown", "why"), [
    (1.0, 10_000.0, False, "91,000 notional is not above 100k USDC: whole"),
    (3.0, 30_000.0, True, "inside the cooldown: the entire position"),
])
def test_hyperliquid_whole_cases(qty, collateral, cooldown, why):
    out = partial_liquidation("hyperliquid", "long", 100_000, qty, collateral, 91_000, cooldown_active=cooldown)
    assert out.in_liquidation and out.full_follows and out.closed_qty == 0.0, why


@pytest.mark.parametrize(("mark", "mb", "mm", "sliced"), [
    (90_800.0, 2_400.0, 3_405.0, True),     # 2,400 >= 2/3 x 3,405 = 2,270: the 20 % slice
    (90_700.0, 2_100.0, 3_401.25, False),   # 2,100 < 2/3 x 3,401.25 = 2,267.5: backstop
    (90_600.0, 1_800.0, 3_397.5, False),    # 1,800 < 2,265: backstop
    (89_000.0, -3_000.0, 3_337.5, False),   # past the bankruptcy price 90,000: backstop, never a slice
])
def test_hyperliquid_backstop_below_two_thirds_of_maintenance(mark, mb, mm, sliced):
    """Derived (HL docs, liquidations; research mechanics.md 1.6: account equity below 2/3 of the
    maintenance margin -> the backstop liquidation, the liquidator vault takes the whole position).
    3 BTC long @100,000, isolated 30,000 (bankruptcy 90,000): at the mark, MB = 30,000 + 3 x
    (mark - 100,000), MM = 3 x mark x 1.25 %. A slice is sent only while MB >= 2/3 MM; below it
    (and always past bankruptcy, where a slice at the mark would lose more than the margin) nothing
    is closed partially and the whole position follows."""
    assert 30_000 + 3 * (mark - 100_000) == pytest.approx(mb) and 3 * mark * 0.0125 == pytest.approx(mm)
    out = partial_liquidation("hyperliquid", "long", 100_000, 3, 30_000, mark)
    assert out.in_liquidation and out.full_follows
    if sliced:
        assert out.closed_qty == pytest.approx(0.6, abs=1e-12)
    else:
        assert out.closed_qty == 0.0 and out.remaining_qty == 3.0 and out.wallet_after == 30_000.0


def test_hyperliquid_backstop_short():
    """The same rule for a 3 BTC short @100,000, isolated 30,000 (bankruptcy 110,000): at 109,000
    MB = 30,000 - 3 x 9,000 = 3,000 >= 2/3 x (3 x 109,000 x 1.25 % = 4,087.5) = 2,725: a 0.6 BTC
    slice; at 109,400 MB = 1,800 < 2/3 x 4,102.5 = 2,735: backstop, nothing closed partially."""
    sliced = partial_liquidation("hyperliquid", "short", 100_000, 3, 30_000, 109_000)
    assert sliced.closed_qty == pytest.approx(0.6, abs=1e-12)
    whole = partial_liquidation("hyperliquid", "short", 100_000, 3, 30_000, 109_400)
    assert whole.in_liquidation and whole.full_follows and whole.closed_qty == 0.0


# --- properties ----------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(rule=st.sampled_from([RULE_RESTORE, RULE_STEP_DOWN, RULE_TIER_STEPS, RULE_FRACTION]),
       side=st.sampled_from([1, -1]), qty=st.floats(1.0, 2_000.0), lev=st.floats(2.0, 100.0),
       depth=st.floats(-0.01, 0.03), fee=st.floats(0.0, 0.0125))
def test_partial_close_conserves_money_and_quantity(rule, side, qty, lev, depth, fee):
    """Equity at the price drops by exactly the fee; closed + remaining = qty; closes are whole lots;
    when no full liquidation follows, the rest is margin compliant. Prices are drawn around the
    liquidation price (``depth`` past it), where partial closes happen."""
    t = BINANCE_BTCUSDT_2024
    entry, lot = 60_000.0, 0.001
    qty = math.floor(qty / lot) * lot
    wallet = qty * entry / lev
    liq = liquidation_price_tiered(False, False, side, qty, 1.0, entry, wallet, t.floors_array, t.mmrs_array,
                                   t.cums_array, 0.0, 0.0)
    price = (liq if not math.isnan(liq) else entry * 0.5) * (1 - side * depth)
    out = partial_liquidation_step(rule, False, False, side, qty, 1.0, entry, wallet, price, t.floors_array,
                                   t.mmrs_array, t.cums_array, 0.0, 0.0, fee, lot, 2, 2, 0.2, 100_000.0, False)
    closed, fee_paid, pnl, rem, wallet_after, tier_after, full, in_liq = out
    assert closed + rem == pytest.approx(qty, rel=1e-12)
    assert abs(closed / lot - round(closed / lot)) < 1e-6
    eq_before = wallet + side * qty * (price - entry)
    eq_after = wallet_after + side * rem * (price - entry)
    assert eq_after == pytest.approx(eq_before - fee_paid, rel=1e-9, abs=1e-6)
    assert fee_paid == pytest.approx(closed * price * fee, rel=1e-12, abs=1e-12)
    if in_liq and closed > 0 and not full:
        mm = rem * price * t.mmrs_array[tier_after] - t.cums_array[tier_after]
        assert eq_after > mm
    if not in_liq:
        assert closed == 0 and not full


def test_friendly_entry_point_rejects_bad_input():
    with pytest.raises(risk.DeleverageError, match="positive"):
        partial_liquidation("okx", "long", 40_000, 0, 100, 39_000)
    with pytest.raises(risk.DeleverageError, match="unknown venue"):
        partial_liquidation("nope", "long", 40_000, 1, 100, 39_000)
