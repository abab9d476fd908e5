"""risk.path.first_exit: hand-made bars with the exit worked out by hand, the mirror property,
and the numba-compiled function giving the same answers.

Bars below are (open, high, low, close); the trigger series equals the traded one unless a
test says otherwise.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk import path
from risk.path import (LEG_ADVERSE, LEG_CLOSE, LEG_FAVOURABLE, LEG_OPEN, LIQUIDATION, NONE, STOP_LOSS,
                       TAKE_PROFIT, TRAILING_STOP, first_exit, trailing_level)

N = math.nan


def run(side, bar, stop=N, take=N, trail=N, peak=N, liq=N, bank=N, trig=None):
    o, h, l, c = bar
    to, th, tl = (o, h, l) if trig is None else trig
    return first_exit(side, o, h, l, c, to, th, tl, stop, take, trail, peak, liq, bank)


def test_nothing_inside_the_bar():
    kind, price, leg, peak = run(1, (100, 105, 98, 103), stop=95, take=110, liq=90, bank=88)
    assert (kind, leg) == (NONE, -1) and math.isnan(price) and peak == 105  # the peak: the open, then the high
    kind, *_ = run(0, (100, 105, 98, 103), stop=99)
    assert kind == NONE


def test_stop_loss_inside_the_adverse_leg_fills_at_the_stop():
    assert run(1, (100, 105, 94, 103), stop=95)[:3] == (STOP_LOSS, 95, LEG_ADVERSE)
    assert run(-1, (100, 106, 94, 97), stop=105)[:3] == (STOP_LOSS, 105, LEG_ADVERSE)


def test_stop_and_take_profit_in_one_bar_the_stop_is_taken():
    # long: low 94 <= stop 95 and high 111 >= take 110: the adverse leg comes first
    assert run(1, (100, 111, 94, 103), stop=95, take=110)[:3] == (STOP_LOSS, 95, LEG_ADVERSE)
    # short: high 106 >= stop 105 and low 89 <= take 90
    assert run(-1, (100, 106, 89, 97), stop=105, take=90)[:3] == (STOP_LOSS, 105, LEG_ADVERSE)


def test_take_profit_on_the_favourable_leg_and_on_a_gap():
    assert run(1, (100, 111, 97, 103), stop=95, take=110)[:3] == (TAKE_PROFIT, 110, LEG_FAVOURABLE)
    assert run(1, (112, 115, 111, 113), stop=95, take=110)[:3] == (TAKE_PROFIT, 112, LEG_OPEN)  # gapped up: the open
    assert run(-1, (88, 89, 85, 86), stop=105, take=90)[:3] == (TAKE_PROFIT, 88, LEG_OPEN)


def test_stop_gapped_through_fills_at_the_open():
    assert run(1, (93, 96, 90, 95), stop=95, liq=80, bank=78)[:3] == (STOP_LOSS, 93, LEG_OPEN)
    assert run(-1, (108, 110, 104, 105), stop=105, liq=120, bank=122)[:3] == (STOP_LOSS, 108, LEG_OPEN)


def test_stop_above_the_liquidation_price_goes_first():
    # long 10x from 100: liq 90.5, bankruptcy 90; stop 92; the low 85 is through both
    assert run(1, (100, 101, 85, 88), stop=92, liq=90.5, bank=90)[:3] == (STOP_LOSS, 92, LEG_ADVERSE)


def test_a_stop_below_the_liquidation_price_never_vetoes_it():
    kind, price, leg, _ = run(1, (100, 101, 85, 88), stop=89, liq=90.5, bank=90)
    assert (kind, price, leg) == (LIQUIDATION, 85, LEG_ADVERSE)  # price: the trigger low
    # equal levels: the liquidation
    assert run(1, (100, 101, 85, 88), stop=90.5, liq=90.5, bank=90)[0] == LIQUIDATION
    # short mirror: stop 111 above liq 109.5
    assert run(-1, (100, 115, 99, 112), stop=111, liq=109.5, bank=110)[:3] == (LIQUIDATION, 115, LEG_ADVERSE)


def test_gap_through_bankruptcy_is_the_liquidations():
    # open 89 is through the stop 92, the liquidation 90.5 and the bankruptcy 90
    assert run(1, (89, 90, 87, 88), stop=92, liq=90.5, bank=90)[:3] == (LIQUIDATION, 87, LEG_OPEN)
    # open 90.2: through the stop and the liquidation price but not beyond bankruptcy: the stop, at the open
    assert run(1, (90.2, 91, 87, 88), stop=92, liq=90.5, bank=90)[:3] == (STOP_LOSS, 90.2, LEG_OPEN)
    # short: open 111 beyond bankruptcy 110
    assert run(-1, (111, 112, 109, 110), stop=108, liq=109.5, bank=110)[:3] == (LIQUIDATION, 112, LEG_OPEN)
    # without a stop a gap through the liquidation price is the liquidation's
    assert run(1, (90.2, 91, 87, 88), liq=90.5, bank=90)[:3] == (LIQUIDATION, 87, LEG_OPEN)


def test_liquidation_on_the_mark_while_the_stop_is_on_the_last_price():
    # last low 93 stays above the stop 92; the mark low 90 reaches the liquidation 90.5
    kind, price, leg, _ = run(1, (100, 101, 93, 95), stop=92, liq=90.5, bank=90, trig=(100, 101, 90))
    assert (kind, price, leg) == (LIQUIDATION, 90, LEG_ADVERSE)


def test_trailing_stop_levels_by_hand():
    assert trailing_level(1, 200.0, 0.05) == 190.0
    assert trailing_level(-1, 100.0, 0.05) == 105.0
    assert math.isnan(trailing_level(1, 200.0, math.nan)) and math.isnan(trailing_level(1, 200.0, 0.0))
    # peak 120 before the bar: level 114; the low 113 reaches it on the adverse leg
    assert run(1, (118, 119, 113, 115), trail=0.05, peak=120)[:3] == (TRAILING_STOP, 114, LEG_ADVERSE)
    # the open 121 raises the peak first: level 114.95
    kind, price, leg, _ = run(1, (121, 122, 114.5, 116), trail=0.05, peak=120)
    assert (kind, leg) == (TRAILING_STOP, LEG_ADVERSE) and price == pytest.approx(121 * 0.95)
    # the high 130 raises the level to 123.5 and the close 123 is below it: leg 3, at the level
    kind, price, leg, peak = run(1, (121, 130, 120, 123), trail=0.05, peak=120)
    assert (kind, leg) == (TRAILING_STOP, LEG_CLOSE) and price == pytest.approx(123.5) and peak == 130
    # the close 124 stays above: no exit, the peak is carried
    assert run(1, (121, 130, 120, 124), trail=0.05, peak=120)[0] == NONE
    assert run(1, (121, 130, 120, 124), trail=0.05, peak=120)[3] == 130
    # short: peak (lowest) 100, trail 3 %: level 103; the high 103.5 reaches it
    assert run(-1, (101, 103.5, 99, 102), trail=0.03, peak=100)[:3] == (TRAILING_STOP, 103, LEG_ADVERSE)
    # gap through the trailing level at the open
    assert run(1, (110, 112, 108, 111), trail=0.05, peak=120)[:3] == (TRAILING_STOP, 110, LEG_OPEN)


def test_trailing_stop_above_the_fixed_stop_is_the_trailing_one():
    # peak 120, trail 5 %: 114 above the stop 100
    assert run(1, (118, 119, 99, 101), stop=100, trail=0.05, peak=120)[:3] == (TRAILING_STOP, 114, LEG_ADVERSE)
    # the fixed stop above the trailing level is the stop-loss
    assert run(1, (118, 119, 99, 101), stop=115, trail=0.05, peak=120)[:3] == (STOP_LOSS, 115, LEG_ADVERSE)


def test_entry_bar_peak_starts_at_the_open():
    # NaN peak: entered at this open (100); level 95 at 5 %
    assert run(1, (100, 101, 94, 96), trail=0.05)[:3] == (TRAILING_STOP, 95, LEG_ADVERSE)


prices = st.floats(50.0, 150.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(o=prices, a=prices, b=prices, c=prices, stop=st.one_of(st.just(N), prices),
       take=st.one_of(st.just(N), prices), trail=st.one_of(st.just(N), st.floats(0.001, 0.3)),
       peak=st.one_of(st.just(N), prices), liq=st.one_of(st.just(N), prices), gap=st.floats(0.0, 5.0))
def test_short_is_the_mirror_of_long(o, a, b, c, stop, take, trail, peak, liq, gap):
    h, l = max(o, a, b, c), min(o, a, b, c)
    bank = liq - gap if liq == liq else N
    long_ = run(1, (o, h, l, c), stop=stop, take=take, trail=trail, peak=peak, liq=liq, bank=bank)
    neg = lambda x: -x  # noqa: E731  (prices mirrored through 0: a long on p is a short on -p)
    short = run(-1, (-o, -l, -h, -c), stop=neg(stop), take=neg(take), trail=N, peak=neg(peak), liq=neg(liq),
                bank=neg(bank)) if not trail == trail else None
    if short is not None:
        assert short[0] == long_[0] and short[2] == long_[2]
        if long_[0] != NONE:
            assert short[1] == pytest.approx(-long_[1])
    # invariants of the rule
    kind, price, leg, _ = long_
    if kind in (STOP_LOSS, TRAILING_STOP, TAKE_PROFIT):
        assert l - 1e-9 <= price <= h + 1e-9  # fills inside the bar
    if kind == STOP_LOSS and leg == LEG_ADVERSE and liq == liq:
        assert stop > liq  # a stop beats the liquidation only when it is met first
    if kind == NONE and liq == liq:
        assert l > liq  # a liquidation inside the bar is never missed


def test_compiles_with_numba_and_gives_the_same_answers():
    numba = pytest.importorskip("numba")
    fn = path.jit_kernels(numba.njit)["first_exit"]
    cases = [
        (1, 100, 105, 94, 103, 100, 105, 94, 95, N, N, N, N, N),
        (1, 89, 90, 87, 88, 89, 90, 87, 92, N, N, N, 90.5, 90),
        (1, 121, 130, 120, 123, 121, 130, 120, N, N, 0.05, 120, N, N),
        (-1, 100, 115, 99, 112, 100, 115, 99, 111, 90, N, N, 109.5, 110),
        (-1, 88, 89, 85, 86, 88, 89, 85, 105, 90, N, N, N, N),
    ]
    for args in cases:
        args = tuple(float(x) if i else int(x) for i, x in enumerate(args))
        got, want = fn(*args), path.first_exit(*args)
        assert got[0] == want[0] and got[2] == want[2]
        assert (math.isnan(got[1]) and math.isnan(want[1])) or got[1] == want[1]
        assert (math.isnan(got[3]) and math.isnan(want[3])) or got[3] == want[3]
