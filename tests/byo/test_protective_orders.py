"""A resting protective order never vetoes a liquidation (issue 11 §2.1).

The position: 2 BTC long at 60,000 on Binance USD-M BTCUSDT, 20x isolated (margin 6,000; taker fee
48 from the wallet): liquidation 57,261.31, bankruptcy 57,000 (Binance FAQ "How to Calculate
Liquidation Price of USDⓈ-M Futures Contracts", bracket 0.5 % / 50; the same example as
tests/engine/test_broker_scenarios.py). The rule is :func:`risk.path.first_exit` (shared with the fast engine), applied by
:meth:`engine.broker.PerpBroker._stop_first`.
"""

from __future__ import annotations

from typing import Any

import backtrader as bt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.byo.test_backtrader_behaviour import FLAT, P, cerebro_with
from tests.engine.helpers import bars

LIQ = 57_261.306532663315
BANK = 57_000.0


class Protect(bt.Strategy):
    """Buy 2 BTC at bar 1's open; after the fill rest one sell order (``kind``, ``price``, ``limit``)."""

    params = (("kind", "stop"), ("price", 58_000.0), ("limit", None))

    def start(self) -> None:
        self.log: list[tuple[int, float, float]] = []

    def next(self) -> None:
        if len(self) == 1:
            self.buy(size=2.0)
        elif len(self) == 2 and self.position.size:
            if self.p.kind == "stop":
                self.sell(size=2.0, exectype=bt.Order.Stop, price=self.p.price)
            else:
                self.sell(size=2.0, exectype=bt.Order.StopLimit, price=self.p.price, plimit=self.p.limit)
        self.log.append((len(self), self.position.size, self.broker.book(self.data).liq_price))


def run(rows: list[tuple[float, ...]], mark: list[tuple[float, ...]] | None = None, **params: Any) -> Any:
    cerebro, broker, _ = cerebro_with([bars(rows, mark=mark)], leverage=20.0)
    cerebro.addstrategy(Protect, **params)
    [strat] = cerebro.run()
    return broker, strat


def test_a_stoplimit_whose_limit_is_gapped_through_does_not_veto() -> None:
    # bar 2 opens at 57,800: the stop (58,000) triggers at the open, below its limit 57,900, and the bar
    # never comes back to 57,900; its low 57,100 is through the liquidation price: liquidated at 57,261.31
    broker, _ = run([FLAT, FLAT, FLAT, (57_800.0, 57_850.0, 57_100.0, 57_500.0), (57_500.0,) * 4],
                    kind="stoplimit", price=58_000.0, limit=57_900.0)
    [liq] = broker.events["liquidations"]
    assert liq["fill_price"] == pytest.approx(LIQ, rel=1e-12)
    assert [f["kind"] for f in broker.events["fills"]] == ["trade", "liquidation"]


def test_a_stop_on_last_price_does_not_veto_a_mark_wick() -> None:
    # last price never goes below 58,500 (the stop at 58,000 does not trigger); the mark wicks to 57,200
    rows = [FLAT, FLAT, FLAT, (P, P, 58_500.0, 59_000.0), (59_000.0,) * 4]
    mark = [FLAT, FLAT, FLAT, (P, P, 57_200.0, 59_000.0), (59_000.0,) * 4]
    broker, _ = run(rows, mark=mark)
    [liq] = broker.events["liquidations"]
    assert liq["trigger_price"] == 57_200.0 and liq["fill_price"] == pytest.approx(LIQ, rel=1e-12)


def test_a_stop_gapped_below_bankruptcy_is_the_liquidations_isolated_loss_is_the_margin() -> None:
    # bar 2 opens at 56,000, below the bankruptcy price: the liquidation takes it at 57,000 (never past
    # bankruptcy), the loss is the 6,000 margin; a stop fill at 56,000 would have lost 8,000
    broker, _ = run([FLAT, FLAT, FLAT, (56_000.0, 56_500.0, 55_500.0, 56_000.0), (56_000.0,) * 4])
    [liq] = broker.events["liquidations"]
    assert liq["fill_price"] == pytest.approx(BANK, rel=1e-12)
    assert broker.getvalue() == pytest.approx(10_000.0 - 48.0 - 6_000.0, rel=1e-12)


def test_a_stop_reached_first_on_the_path_closes_the_position_instead() -> None:
    # bar 2: 60,000 -> 57,000; the stop at 59,000 is 1/3 of the way down, the liquidation 91 %: the stop
    # sells 2 BTC at 59,000 (fee 47.2); equity 10,000 - 48 - 2,000 - 47.2
    broker, _ = run([FLAT, FLAT, FLAT, (P, P, 57_000.0, 58_000.0), (58_000.0,) * 4], price=59_000.0)
    assert broker.events["liquidations"] == []
    assert broker.events["fills"][-1]["price"] == 59_000.0
    assert broker.getvalue() == pytest.approx(10_000.0 - 48.0 - 2_000.0 - 47.2, rel=1e-12)


@st.composite
def paths(draw: Any) -> tuple[list[tuple[float, ...]], list[tuple[float, ...]] | None]:
    n = draw(st.integers(4, 9))
    price, rows, marks = P, [FLAT, FLAT], [FLAT, FLAT]
    use_mark = draw(st.booleans())
    for _ in range(n):
        gap = draw(st.floats(-0.06, 0.03))
        opn = price * (1 + gap)
        lo = opn * (1 - draw(st.floats(0.0, 0.06)))
        hi = opn * (1 + draw(st.floats(0.0, 0.02)))
        close = lo + (hi - lo) * draw(st.floats(0.0, 1.0))
        rows.append((opn, hi, lo, close))
        off = draw(st.floats(-0.01, 0.01))
        marks.append((opn * (1 + off / 2), hi * (1 + off / 2), lo * (1 + off), close))
        price = close
    return rows, (marks if use_mark else None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths(), st.sampled_from(["stop", "stoplimit"]), st.floats(56_000.0, 59_900.0), st.floats(0.0, 0.01))
def test_no_bar_through_the_liquidation_price_leaves_the_position_open(path: Any, kind: str, stop: float,
                                                                        below: float) -> None:
    rows, mark = path
    broker, strat = run(rows, mark=mark, kind=kind, price=stop, limit=stop * (1 - below))
    trig = mark or rows
    for (_, size_before, liq_before), (bar, size_after, _) in zip(strat.log, strat.log[1:]):
        low = trig[bar - 1][2]
        if size_before and liq_before == liq_before and low <= liq_before:
            assert size_after == 0, f"bar {bar - 1}: low {low} through liquidation {liq_before}, still open"
    # isolated: the position never loses more than its 6,000 margin; a stop's own closing fee (taker,
    # at most 0.04 % x 2 BTC x 66,000 = 52.8 on these paths) is paid from the wallet on top
    assert broker.getvalue() >= 10_000.0 - 48.0 - 6_000.0 - 52.8


def test_a_stop_gapped_between_liquidation_and_bankruptcy_fills_at_the_open() -> None:
    # risk.path rule 1: the open 57,050 is through the stop (57,100) and the liquidation price (57,261.31)
    # but not beyond bankruptcy (57,000): the stop fills at the open, 2 x 2,950 = 5,900 lost (less than
    # the margin), closing fee 0.04 % x 114,100 = 45.64
    broker, _ = run([FLAT, FLAT, FLAT, (57_050.0, 57_080.0, 56_900.0, 57_000.0), (57_000.0,) * 4], price=57_100.0)
    assert broker.events["liquidations"] == []
    assert broker.events["fills"][-1]["price"] == 57_050.0
    assert broker.getvalue() == pytest.approx(10_000.0 - 48.0 - 5_900.0 - 45.64, rel=1e-12)
