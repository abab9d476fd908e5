"""Properties of the risk kernels and the position fold, checked with hypothesis.

- At the liquidation price the margin balance equals the maintenance margin (linear and
  inverse, isolated and cross, MM at mark and at entry, one bracket and whole bracket tables,
  the bracket used being the one that holds the notional at the liquidation price).
- At the bankruptcy price the margin balance is zero.
- A long's liquidation price is below entry and a short's above whenever collateral exceeds MM;
  more collateral moves it away.
- The position fold conserves money over random fills and funding payments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from risk import venues
from risk.formulas import (
    bankruptcy_price,
    funding_payment,
    liquidation_price_bracket,
    liquidation_price_tiered,
    maintenance_margin,
    notional,
    tier_index,
    trade_fee,
    unrealized_pnl,
)
from risk.position import PerpPosition, apply_fill, apply_funding

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sides = st.sampled_from([1, -1])
prices = st.floats(min_value=100.0, max_value=100_000.0)
leverages = st.floats(min_value=1.2, max_value=125.0)
rates = st.floats(min_value=0.001, max_value=0.2)


@st.composite
def positions(draw: st.DrawFn) -> tuple[bool, float, float, float]:
    """(inverse, contract size, quantity, entry): linear in base units or contracts, inverse in USD contracts."""
    inverse = draw(st.booleans())
    entry = draw(prices)
    if inverse:
        cs = draw(st.sampled_from([1.0, 10.0, 100.0]))
        qty = float(draw(st.integers(min_value=1, max_value=1_000_000)))
    else:
        cs = draw(st.sampled_from([1.0, 0.01, 0.1]))
        qty = draw(st.floats(min_value=0.001, max_value=5_000.0))
    return inverse, cs, qty, entry


def margin_gap(inverse, mm_on_entry, side, qty, cs, entry, wallet, mmr, cum, other_mm, other_upnl, price):
    """(margin balance, total maintenance margin) at ``price``, cross-account form."""
    balance = wallet + other_upnl + unrealized_pnl(inverse, side * qty, cs, entry, price)
    value = notional(inverse, qty, cs, entry if mm_on_entry else price)
    return balance, other_mm + maintenance_margin(value, mmr, cum)


def assert_equal_money(a: float, b: float, scale: float) -> None:
    assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * scale), (a, b, scale)


# --- one bracket ------------------------------------------------------------------------------

@SETTINGS
@given(pos=positions(), side=sides, leverage=leverages, mmr=rates, mm_on_entry=st.booleans(),
       cross=st.booleans(), data=st.data())
def test_margin_balance_equals_maintenance_at_the_liquidation_price(pos, side, leverage, mmr, mm_on_entry, cross, data):
    inverse, cs, qty, entry = pos
    value = notional(inverse, qty, cs, entry)
    wallet = value / leverage
    cum = data.draw(st.floats(min_value=0.0, max_value=0.5)) * value * mmr  # a bracket amount below MM
    other_mm = other_upnl = 0.0
    if cross:
        other_mm = data.draw(st.floats(min_value=0.0, max_value=0.5)) * wallet
        other_upnl = data.draw(st.floats(min_value=-0.5, max_value=2.0)) * wallet
        wallet += other_mm  # the account holds the other positions' maintenance too
    lp = liquidation_price_bracket(inverse, mm_on_entry, side, qty, cs, entry, wallet, mmr, cum, other_mm, other_upnl)
    assume(not math.isnan(lp))
    balance, maint = margin_gap(inverse, mm_on_entry, side, qty, cs, entry, wallet, mmr, cum, other_mm, other_upnl, lp)
    assert_equal_money(balance, maint, value + wallet + abs(other_upnl))


@SETTINGS
@given(pos=positions(), side=sides, leverage=leverages, cross=st.booleans(), data=st.data())
def test_margin_balance_is_zero_at_the_bankruptcy_price(pos, side, leverage, cross, data):
    inverse, cs, qty, entry = pos
    value = notional(inverse, qty, cs, entry)
    wallet = value / leverage
    other_mm = other_upnl = 0.0
    if cross:
        other_mm = data.draw(st.floats(min_value=0.0, max_value=0.5)) * wallet
        other_upnl = data.draw(st.floats(min_value=-0.5, max_value=2.0)) * wallet
        wallet += other_mm
    bp = bankruptcy_price(inverse, side, qty, cs, entry, wallet, other_mm, other_upnl)
    assume(not math.isnan(bp))
    free = wallet - other_mm + other_upnl + unrealized_pnl(inverse, side * qty, cs, entry, bp)
    assert abs(free) <= 1e-9 * (value + wallet + abs(other_upnl))


@SETTINGS
@given(pos=positions(), side=sides, leverage=leverages, mmr=rates, mm_on_entry=st.booleans(),
       extra=st.floats(min_value=0.01, max_value=3.0))
def test_liquidation_price_sits_on_the_losing_side_and_more_collateral_moves_it_away(
        pos, side, leverage, mmr, mm_on_entry, extra):
    inverse, cs, qty, entry = pos
    value = notional(inverse, qty, cs, entry)
    wallet = value / leverage
    assume(wallet > value * mmr * 1.000001)  # collateral above maintenance at entry
    lp = liquidation_price_bracket(inverse, mm_on_entry, side, qty, cs, entry, wallet, mmr, 0.0, 0.0, 0.0)
    more = liquidation_price_bracket(inverse, mm_on_entry, side, qty, cs, entry, wallet * (1 + extra), mmr, 0.0, 0.0, 0.0)
    if side > 0:
        assert math.isnan(lp) or lp < entry
        assert math.isnan(more) or (not math.isnan(lp) and more < lp)
    else:
        assert lp > entry  # a short always has a finite liquidation price above entry here
        assert math.isnan(more) or more > lp


def test_liquidation_side_property_is_not_vacuous():
    # a long with less collateral than maintenance is already past its liquidation price
    lp = liquidation_price_bracket(False, False, 1, 1.0, 1.0, 100.0, 0.1, 0.01, 0.0, 0.0, 0.0)
    assert lp > 100.0


# --- bracket tables ---------------------------------------------------------------------------

TABLES = [
    pytest.param(venues.BINANCE_BTCUSDT_2021, False, False, 1.0, id="binance BTCUSDT 2021"),
    pytest.param(venues.BINANCE_BTCUSDT_2024, False, False, 1.0, id="binance BTCUSDT 2024"),
    pytest.param(venues.BINANCE_ETHUSDT_2021, False, False, 1.0, id="binance ETHUSDT 2021"),
    pytest.param(venues.BINANCE_BTCUSD_PERP_2020, True, False, 100.0, id="binance BTCUSD_PERP 2020 (inverse)"),
    pytest.param(venues.BINANCE_BTCUSD_PERP_2021, True, False, 100.0, id="binance BTCUSD_PERP 2021 (inverse)"),
    pytest.param(venues.BITMEX_XBTUSD_TABLES[0], True, True, 1.0, id="bitmex XBTUSD 2016 step (MM at entry)"),
    pytest.param(venues.BYBIT_BTCUSDT_TABLE, False, True, 1.0, id="bybit BTCUSDT step (MM at entry)"),
]


@pytest.mark.parametrize(("table", "inverse", "mm_on_entry", "cs"), TABLES)
@settings(max_examples=150, deadline=None)
@given(side=sides, leverage=st.floats(min_value=1.2, max_value=100.0), entry=prices,
       log_value=st.floats(min_value=1.0, max_value=9.0), data=st.data())
def test_tiered_liquidation_price_uses_the_bracket_at_the_liquidation_price(
        table, inverse, mm_on_entry, cs, side, leverage, entry, log_value, data):
    # position value at entry spread over the whole table (10 .. 1e9 settle units; coin for inverse)
    value = 10.0 ** (log_value - (4.0 if inverse else 0.0))
    qty = value * entry / cs if inverse else value / (cs * entry)
    wallet = value / leverage
    other_mm = other_upnl = 0.0
    if data.draw(st.booleans()):
        other_mm = data.draw(st.floats(min_value=0.0, max_value=0.3)) * wallet
        other_upnl = data.draw(st.floats(min_value=-0.3, max_value=1.0)) * wallet
        wallet += other_mm
    floors, mmrs, cums = table.floors_array, table.mmrs_array, table.cums_array
    lp = liquidation_price_tiered(inverse, mm_on_entry, side, qty, cs, entry, wallet, floors, mmrs, cums, other_mm, other_upnl)
    assume(not math.isnan(lp))
    i = tier_index(notional(inverse, qty, cs, entry if mm_on_entry else lp), floors)
    balance, maint = margin_gap(inverse, mm_on_entry, side, qty, cs, entry, wallet, mmrs[i], cums[i], other_mm, other_upnl, lp)
    assert_equal_money(balance, maint, value + wallet + abs(other_upnl))


def test_tier_change_between_entry_and_liquidation_is_followed():
    """A 3x long of 40M USDT: the notional at the LP falls into the 10 % bracket, not the entry's 12.5 %."""
    t = venues.BINANCE_BTCUSDT_2021
    qty, entry = 1_000.0, 60_000.0  # 60M notional: 12.5 % bracket (50M..100M)
    lp = liquidation_price_tiered(False, False, 1, qty, 1.0, entry, 20_000_000.0, t.floors_array, t.mmrs_array,
                                  t.cums_array, 0.0, 0.0)
    entry_bracket = liquidation_price_bracket(False, False, 1, qty, 1.0, entry, 20_000_000.0, 0.125, t.cums_array[6], 0.0, 0.0)
    assert tier_index(qty * lp, t.floors_array) == 5  # 20M..50M: 10 %
    assert not math.isclose(lp, entry_bracket)  # the entry bracket alone would be inconsistent
    assert qty * entry_bracket <= 50_000_000.0


def test_bracket_boundary_belongs_to_the_lower_bracket():
    # Binance publishes "50,000 < Position <= 250,000": 50,000 exactly is still 125x / 0.4 %
    t = venues.BINANCE_BTCUSDT_2021
    assert t.bracket(50_000.0) == (0.004, 0.0, 125.0)
    assert t.bracket(50_000.01)[0] == 0.005


# --- the position fold ------------------------------------------------------------------------

fills = st.lists(
    st.tuples(st.sampled_from(["fill", "funding"]),
              st.floats(min_value=-3.0, max_value=3.0).filter(lambda q: abs(q) > 1e-3),
              st.floats(min_value=0.5, max_value=2.0),      # price as a multiple of 20,000
              st.floats(min_value=-0.003, max_value=0.003)),  # funding rate
    min_size=1, max_size=30)


@SETTINGS
@given(steps=fills, inverse=st.booleans(), leverage=st.floats(min_value=1.0, max_value=100.0))
def test_position_fold_conserves_money(steps, inverse, leverage):
    cs = 100.0 if inverse else 1.0
    scale = 1_000.0 if inverse else 1.0  # contracts for inverse
    pos = PerpPosition(inverse=inverse, contract_size=cs, leverage=leverage)
    wallet = 0.0  # free balance; collateral is pos.collateral
    realized = fees = funding = 0.0
    cash_flow = 0.0  # linear: quote paid for the fills, sum q*cs*p; inverse: coin value of the fills, sum q*cs/p
    price = 20_000.0
    for kind, q, mult, rate in steps:
        price = 20_000.0 * mult
        if kind == "funding":
            if pos.qty == 0.0:
                continue
            amount = funding_payment(inverse, pos.qty, cs, price, rate)
            before = pos.collateral
            pos = apply_funding(pos, amount)
            assert pos.collateral - before == pytest.approx(amount, abs=1e-9)
            funding += amount
            continue
        qty = q * scale
        fee = trade_fee(notional(inverse, qty, cs, price), 0.0005)
        out = apply_fill(pos, qty, price)
        assert out.position.collateral - pos.collateral == pytest.approx(out.collateral_change, abs=1e-9 * (1 + abs(pos.collateral)))
        assert out.closed_qty + out.opened_qty == pytest.approx(abs(qty))
        wallet += out.realized_pnl - fee - out.collateral_change
        realized += out.realized_pnl
        fees += fee
        cash_flow += qty * cs * price if not inverse else qty * cs / price
        pos = out.position
        if pos.qty == 0.0:
            assert pos.collateral == 0.0 and pos.entry == 0.0
    # wallet + collateral changed by exactly realized PnL - fees + funding
    assert wallet + pos.collateral == pytest.approx(realized - fees + funding, rel=1e-9, abs=1e-9 * (1 + abs(realized)))
    # realized + unrealized PnL equals the mark-to-market value of all fills (checks average entry)
    mtm = (pos.qty * cs * price - cash_flow) if not inverse else (cash_flow - pos.qty * cs / price)
    total = realized + pos.unrealized_pnl(price) if pos.qty else realized
    assert total == pytest.approx(mtm, rel=1e-9, abs=1e-7 * (1 + abs(mtm)))


@SETTINGS
@given(steps=fills, inverse=st.booleans(), leverage=st.floats(min_value=1.0, max_value=100.0))
def test_collateral_is_entry_notional_over_leverage_without_funding(steps, inverse, leverage):
    cs = 10.0 if inverse else 1.0
    pos = PerpPosition(inverse=inverse, contract_size=cs, leverage=leverage)
    for _, q, mult, _ in steps:
        pos = apply_fill(pos, q * (100.0 if inverse else 1.0), 20_000.0 * mult).position
        expected = notional(inverse, pos.qty, cs, pos.entry) / leverage if pos.qty else 0.0
        assert pos.collateral == pytest.approx(expected, rel=1e-9, abs=1e-12)


@SETTINGS
@given(q1=st.floats(min_value=0.01, max_value=100.0), q2=st.floats(min_value=0.01, max_value=100.0),
       p1=prices, p2=prices, mark=prices, side=sides, inverse=st.booleans())
def test_combined_entry_keeps_the_lots_pnl(q1, q2, p1, p2, mark, side, inverse):
    """Inverse entries average harmonically, linear ones arithmetically: uPnL(sum) == sum of uPnL(lots)."""
    cs = 100.0 if inverse else 1.0
    pos = PerpPosition(inverse=inverse, contract_size=cs, leverage=10.0)
    pos = apply_fill(apply_fill(pos, side * q1, p1).position, side * q2, p2).position
    lots = unrealized_pnl(inverse, side * q1, cs, p1, mark) + unrealized_pnl(inverse, side * q2, cs, p2, mark)
    scale = notional(inverse, q1 + q2, cs, min(p1, p2, mark))
    assert_equal_money(pos.unrealized_pnl(mark), lots, scale)
    if inverse:
        assert pos.entry == pytest.approx((q1 + q2) / (q1 / p1 + q2 / p2), rel=1e-12)


def test_closing_a_float_sum_leaves_no_dust():
    pos = PerpPosition(inverse=False, contract_size=1.0, leverage=10.0)
    pos = apply_fill(apply_fill(pos, 0.1, 100.0).position, 0.2, 100.0).position
    assert pos.qty == 0.30000000000000004
    out = apply_fill(pos, -0.3, 110.0)
    assert out.position.qty == 0.0 and out.position.collateral == 0.0
    assert out.realized_pnl == pytest.approx(3.0) and out.opened_qty == 0.0


def test_flip_realizes_and_reopens():
    pos = apply_fill(PerpPosition(inverse=False, contract_size=1.0, leverage=10.0), 2.0, 100.0).position
    out = apply_fill(pos, -3.0, 110.0)
    assert out.realized_pnl == pytest.approx(20.0)
    assert out.position.qty == pytest.approx(-1.0) and out.position.entry == 110.0
    assert out.position.collateral == pytest.approx(11.0)
    assert out.collateral_change == pytest.approx(11.0 - 20.0)
    assert np.isclose(out.closed_qty, 2.0) and np.isclose(out.opened_qty, 1.0)
