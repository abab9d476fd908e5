"""Auto-deleveraging (risk/adl.py): venue ranking examples, the exchange-level engine's acceptance
cases, a conservation property, and the strategy-level rule on a hand-made flow."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import risk
from risk.adl import (
    ADL_RULES,
    AdlPosition,
    adl_close_qty,
    bankrupt_deficit,
    effective_leverage,
    hit_probability,
    indicator_lights,
    queue_step,
    rank_quantile,
    run_adl,
    score_binance,
    score_hyperliquid,
    score_pnl_leverage,
)
from risk.formulas import bankruptcy_price
from risk.venues import VENUES

BINANCE_FORUM = "Binance developer forum dev.binance.vision/t/17801 quoting Binance FAQ 360033525471"
BYBIT_ADL = "Bybit 'What is Auto-Deleveraging (ADL)' (help.bybit.com ... 900000031623)"


def test_every_venue_has_an_adl_rule_with_sources():
    assert set(ADL_RULES) == set(VENUES)
    for rule in ADL_RULES.values():
        assert rule.sources and rule.price in ("bankruptcy", "mark")


# --- ranking examples -------------------------------------------------------------------------

def test_binance_leverage_pnl_published_example():
    """""" + BINANCE_FORUM + """: unrealized profit 40.2, wallet balance 4.27, margin ratio 13.42 %
    -> PnL % = 40.2 / 4.27 = 9.41, LeveragePnL = 9.41 x 13.42 % = 1.26."""
    mm = 0.1342 * (4.27 + 40.2)  # the margin ratio the user read off the UI
    assert round(score_binance(40.2, 4.27, mm), 2) == 1.26
    assert score_binance(-3.0, 100.0, 5.0) == 0.0           # not profitable: 0
    assert score_binance(10.0, 0.5, 1.0) == pytest.approx(10.0 * 1.0 / 10.5)  # max(1, WB) in the PnL %
    assert score_binance(10.0, -20.0, 1.0) == 0.0           # equity <= 0: margin ratio 0


def test_bybit_adl_price_is_the_bankruptcy_price_published_example():
    """""" + BYBIT_ADL + """: 5,000 BTCUSD bought at 7,890.08 on 50x; 'Bankruptcy Price = Entry x
    Leverage / (Leverage + 1) = 7,735.372549 USD'; the selected shorts are deleveraged at it."""
    collateral = 5_000 / 7_890.08 / 50  # initial margin in BTC
    b = bankruptcy_price(True, 1, 5_000.0, 1.0, 7_890.08, collateral, 0.0, 0.0)
    assert b == pytest.approx(7_735.372549, abs=5e-7)
    shorts = [AdlPosition("s1", -1, 5_000.0, 8_000.0, 5_000 / 8_000 / 10)]
    out = run_adl("bybit", "long", 5_000.0, b, 0.01, shorts, insurance_fund=0.0, mark=7_700.0, symbol="BTCUSD")
    assert [f.price for f in out.fills] == [b]


def test_pnl_times_effective_leverage_by_hand():
    """BitMEX/Bybit definitions (bitmex.com/app/autoDeleveraging): short 2 BTC @110,000 with 20,000
    collateral (bankruptcy 120,000), mark 96,000: PnL % = 28,000 / 220,000 = 0.12727; effective
    leverage = 192,000 / (2 x (120,000 - 96,000)) = 4; score 0.50909. A loser (short @90,000,
    bankruptcy 100,000): PnL % = -6/90 = -0.0667, effective leverage 96/4 = 24, score -0.0667/24."""
    assert effective_leverage(False, -1, 2.0, 1.0, 96_000.0, 120_000.0) == pytest.approx(4.0)
    assert score_pnl_leverage(False, -1, 2.0, 1.0, 110_000.0, 96_000.0, 120_000.0, True) == pytest.approx(28 / 220 * 4)
    loser = score_pnl_leverage(False, -1, 1.0, 1.0, 90_000.0, 96_000.0, 100_000.0, True)
    assert loser == pytest.approx((-6_000 / 90_000) / 24)
    okx_loser = score_pnl_leverage(False, -1, 1.0, 1.0, 90_000.0, 96_000.0, 100_000.0, False)
    assert okx_loser == pytest.approx((-6_000 / 90_000) * 24)


@pytest.mark.parametrize("inverse, side, entry, mark, bankrupt", [
    (True, -1, 50_000.0, 48_000.0, 55_000.0),     # the hypothesis example: BitMEX inverse short
    (False, 1, 90_000.0, 96_000.0, 80_000.0),
    (False, -1, 90_000.0, 96_000.0, 100_000.0),
])
def test_the_ranking_score_does_not_depend_on_the_size_even_for_a_subnormal_one(inverse, side, entry, mark, bankrupt):
    """PnL % and effective leverage are ratios of amounts proportional to the quantity: a position
    of 5e-324 (a subnormal, whose inverse notional 5e-324 / 50,000 underflows to 0) ranks exactly
    as one of 1 or 20 contracts. It raised ZeroDivisionError in run_adl (found by
    test_money_is_conserved) and its leverage came out infinite."""
    ref = score_pnl_leverage(inverse, side, 1.0, 1.0, entry, mark, bankrupt, True)
    for qty in (5e-324, 1e-300, 20.0):
        assert score_pnl_leverage(inverse, side, qty, 1.0, entry, mark, bankrupt, True) == ref
    assert math.isfinite(ref)


def test_hyperliquid_sorting_index_by_hand():
    """Hyperliquid docs: (mark / entry) x (notional / account value); long @90,000 mark 96,000,
    notional 96,000, account 24,000 -> (96/90) x 4 = 4.2667; a short uses entry/mark (assumption)."""
    assert score_hyperliquid(1, 90_000.0, 96_000.0, 96_000.0, 24_000.0) == pytest.approx(96 / 90 * 4)
    assert score_hyperliquid(-1, 110_000.0, 96_000.0, 192_000.0, 40_000.0) == pytest.approx(110 / 96 * 4.8)


def test_quantile_and_lights():
    pop = np.array([0.1, 0.5, 0.5, 2.0, 3.0])
    assert rank_quantile(0.5, pop) == pytest.approx(2 / 6)
    assert indicator_lights(rank_quantile(0.5, pop), 5) == 2
    assert rank_quantile(5.0, pop) == 1.0 and indicator_lights(1.0, 5) == 5
    assert indicator_lights(rank_quantile(0.0, pop), 5) == 1
    assert indicator_lights(0.2, 5) == 1 and indicator_lights(0.2001, 5) == 2


# --- the exchange-level engine: acceptance cases ----------------------------------------------

SHORTS = [
    AdlPosition("a", -1, 2.0, 110_000.0, 20_000.0),   # score 0.509 (bankruptcy 120,000)
    AdlPosition("b", -1, 1.0, 105_000.0, 50_000.0),   # score 0.139 (bankruptcy 155,000)
    AdlPosition("c", -1, 3.0, 90_000.0, 30_000.0),    # losing at 96,000: score < 0
    AdlPosition("d", 1, 5.0, 100_000.0, 100_000.0),   # same side as the bankrupt long: never
]
# A long of 1 BTC went bankrupt at 99,000 and the market took it at 96,000: deficit 3,000.
DEFICIT = bankrupt_deficit(False, 1, 1.0, 1.0, 99_000.0, 96_000.0)


def test_deficit_by_hand():
    assert DEFICIT == 3_000.0
    assert bankrupt_deficit(False, 1, 1.0, 1.0, 99_000.0, 99_500.0) == 0.0  # closed above bankruptcy


def test_fund_absorbs_a_small_deficit_and_nobody_is_deleveraged():
    out = run_adl("bybit", "long", 1.0, 99_000.0, DEFICIT, SHORTS, insurance_fund=10_000.0, mark=96_000.0)
    assert (out.fund_paid, out.fund_after, out.fills, out.socialised_loss) == (3_000.0, 7_000.0, (), 0.0)


def test_fund_empty_highest_ranked_profitable_closed_first_only_for_the_deficit():
    out = run_adl("bybit", "long", 1.0, 99_000.0, DEFICIT, SHORTS, insurance_fund=0.0, mark=96_000.0)
    assert [(f.account, f.qty, f.rank) for f in out.fills] == [("a", 1.0, 1)]  # 1 of its 2 BTC
    f = out.fills[0]
    assert f.price == 99_000.0 and f.realized_pnl == pytest.approx(11_000.0) and f.haircut == 0.0
    assert f.shortfall_covered == pytest.approx(3_000.0)  # = 1 x (99,000 - 96,000): closing at B, not the mark
    assert f.fee == pytest.approx(99_000.0 * risk.get_instrument("bybit").maker_fee)  # Bybit: maker fee to the ADL'd
    assert out.socialised_loss == 0.0 and out.unmatched_qty == 0.0


def test_partly_funded_deficit_deleverages_only_the_rest():
    out = run_adl("binance_usdm", "long", 1.0, 99_000.0, DEFICIT, SHORTS, insurance_fund=1_000.0, mark=96_000.0)
    assert out.fund_paid == 1_000.0 and out.adl_qty_needed == pytest.approx(2 / 3)
    assert [(f.account, round(f.qty, 12)) for f in out.fills] == [("a", round(2 / 3, 12))]
    assert out.fills[0].fee == 0.0  # Binance: 'no trading fee will be charged'


def test_larger_deficit_walks_down_the_queue_then_socialises():
    # 3 BTC bankrupt: a (2) then b (1); 7 BTC: a, b, then the loser c (3), 1 BTC unmatched
    out = run_adl("bybit", "long", 3.0, 99_000.0, 9_000.0, SHORTS, insurance_fund=0.0, mark=96_000.0)
    assert [(f.account, f.qty) for f in out.fills] == [("a", 2.0), ("b", 1.0)]
    out = run_adl("bybit", "long", 7.0, 99_000.0, 21_000.0, SHORTS, insurance_fund=0.0, mark=96_000.0)
    assert [(f.account, f.qty) for f in out.fills] == [("a", 2.0), ("b", 1.0), ("c", 3.0)]
    assert out.unmatched_qty == pytest.approx(1.0) and out.socialised_loss == pytest.approx(3_000.0)


def test_hyperliquid_only_profitable_at_the_mark_with_a_haircut():
    out = run_adl("hyperliquid", "long", 7.0, 99_000.0, 21_000.0, SHORTS, insurance_fund=0.0, mark=96_000.0)
    assert [f.account for f in out.fills] == ["a", "b"]  # c is losing: never on Hyperliquid
    assert all(f.price == 96_000.0 for f in out.fills)
    assert [f.haircut for f in out.fills] == pytest.approx([6_000.0, 3_000.0])
    assert out.socialised_loss == pytest.approx(12_000.0)


def test_ties_are_broken_deterministically_by_account():
    twins = [AdlPosition(name, -1, 1.0, 110_000.0, 10_000.0) for name in ("zed", "amy", "kim")]
    results = set()
    for perm in itertools.permutations(twins):
        out = run_adl("bybit", "long", 1.5, 99_000.0, 4_500.0, list(perm), insurance_fund=0.0, mark=96_000.0)
        results.add(tuple((f.account, f.qty) for f in out.fills))
    assert results == {(("amy", 1.0), ("kim", 0.5))}


def test_adl_disabled_reports_the_deficit_as_socialised_loss():
    out = run_adl("bybit", "long", 1.0, 99_000.0, DEFICIT, SHORTS, insurance_fund=500.0, mark=96_000.0, enabled=False)
    assert out.fills == () and out.fund_paid == 500.0 and out.socialised_loss == 2_500.0


def test_bad_input_is_one_clear_error():
    with pytest.raises(risk.DeleverageError, match="deficit"):
        run_adl("bybit", "long", 1.0, 99_000.0, -1.0, SHORTS, insurance_fund=0.0, mark=96_000.0)
    with pytest.raises(risk.DeleverageError, match="ADL position 0"):
        run_adl("bybit", "long", 1.0, 99_000.0, 1.0, [AdlPosition("x", 2, 1.0, 1.0, 1.0)], insurance_fund=0.0,
                mark=96_000.0)


position = st.builds(AdlPosition, account=st.sampled_from(["a", "b", "c", "d", "e"]), side=st.sampled_from([1, -1]),
                     qty=st.floats(0.0, 10.0), entry=st.floats(50_000.0, 150_000.0),
                     collateral=st.floats(1_000.0, 500_000.0))


@settings(max_examples=80, deadline=None)
@given(venue=st.sampled_from(sorted(ADL_RULES)), positions=st.lists(position, max_size=8),
       qty=st.floats(0.01, 20.0), deficit=st.floats(0.0, 1e6), fund=st.floats(0.0, 1e6),
       mark=st.floats(60_000.0, 140_000.0), enabled=st.booleans())
def test_money_is_conserved(venue, positions, qty, deficit, fund, mark, enabled):
    """fund paid + deficit covered by ADL'd positions + socialised loss = deficit; nobody gives more
    than they hold, only the other side is touched, and the queue is closed in ranking order."""
    symbol = "BTCUSDT" if venue in ("binance_usdm", "bybit") else None
    out = run_adl(venue, "long", qty, 99_000.0, deficit, positions, insurance_fund=fund, mark=mark,
                  enabled=enabled, symbol=symbol)
    covered = sum(f.shortfall_covered for f in out.fills)
    assert out.fund_paid + covered + out.socialised_loss == pytest.approx(deficit, rel=1e-9, abs=1e-9)
    assert out.fund_paid == pytest.approx(min(fund, deficit)) and out.fund_after >= 0
    assert out.socialised_loss >= 0
    held: dict[str, float] = {}
    for p in positions:
        if p.side == -1:
            held[p.account] = held.get(p.account, 0.0) + p.qty
    for f in out.fills:
        assert f.side == -1 and f.qty > 0
        assert f.qty <= held[f.account] + 1e-9
    assert sum(f.qty for f in out.fills) <= out.adl_qty_needed * (1 + 1e-12) + 1e-12
    scores = [f.score for f in out.fills]
    assert scores == sorted(scores, reverse=True)
    if not enabled:
        assert out.fills == ()


# --- the strategy-level rule -------------------------------------------------------------------

def test_queue_step_on_a_hand_made_flow():
    """100 of notional ranked ahead of our 50; the venue deleverages 60, 30, 40, 100 on our side in
    four bars: the first two bars stop above us, the third closes 30 of our 50, the fourth the rest."""
    ahead, own, closed = 100.0, 50.0, []
    for flow in (60.0, 30.0, 40.0, 100.0):
        frac, ahead, own_after = queue_step(ahead, own, flow)
        closed.append(frac * own)
        own = own_after
    assert closed == [0.0, 0.0, 30.0, 20.0] and own == 0.0


def test_adl_close_qty_from_the_rank_quantile():
    """Quantile 0.9 in a queue of 1,000,000: 100,000 ranked ahead; a 150,000 flow closes 50,000 of
    our 200,000 notional = a quarter of our 2 BTC; 50,000 of flow stops above us."""
    assert adl_close_qty(2.0, 200_000.0, 0.9, 1e6, 150_000.0) == pytest.approx(0.5)
    assert adl_close_qty(2.0, 200_000.0, 0.9, 1e6, 50_000.0) == 0.0
    assert adl_close_qty(2.0, 200_000.0, 1.0, 1e6, 1e9) == 2.0  # top of the queue, huge flow: all of it


def test_hit_probability_from_the_lights():
    # 10 % of the queue deleveraged; five lights = the top 20 %: reached with probability 1/2
    assert hit_probability(0.10, 0.8, 1.0) == pytest.approx(0.5)
    assert hit_probability(0.30, 0.8, 1.0) == 1.0
    assert hit_probability(0.10, 0.6, 0.8) == 0.0  # four lights: 20 %..40 % of the queue ahead
    assert hit_probability(0.30, 0.6, 0.8) == pytest.approx(0.5)
    assert not math.isnan(hit_probability(0.5, 0.9, 0.9))


@settings(max_examples=100, deadline=None)
@given(ahead=st.floats(0.0, 1e9), own=st.floats(0.0, 1e7), flows=st.lists(st.floats(0.0, 5e8), max_size=12))
def test_queue_closes_exactly_the_flow_beyond_the_positions_ahead(ahead, own, flows):
    """Over any sequence of bars, what is closed of our position is the cumulative flow beyond
    what was ranked ahead of it, capped at the position: clamp(sum(flow) - ahead, 0, own)."""
    a, o, closed = ahead, own, 0.0
    for f in flows:
        frac, a, o_after = queue_step(a, o, f)
        closed += frac * o
        assert 0.0 <= frac <= 1.0 and o_after == pytest.approx(o * (1 - frac), abs=1e-6)
        o = o_after
    expected = min(max(sum(flows) - ahead, 0.0), own)
    assert closed == pytest.approx(expected, rel=1e-9, abs=1e-3)
