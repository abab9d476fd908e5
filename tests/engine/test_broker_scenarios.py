"""Broker behaviour on hand-made candles: each test states the story and the exact events.

Worked numbers come from the Binance USDⓈ-M isolated example (2 BTC long at 60,000, 20x,
bracket 0.5 %/50: liquidation 57,261.31, bankruptcy 57,000; Binance FAQ "How to Calculate
Liquidation Price of USDⓈ-M Futures Contracts", ../shared/research/mechanics.md §1.1).
"""

from __future__ import annotations

import math

import pytest

from risk.errors import DeleverageError
from tests.engine.helpers import bars, run

FLAT = (60_000.0, 60_000.0, 60_000.0, 60_000.0)
LIQ = 57_261.306532663315  # (120,000 - 6,000 - 50) / (2 * 0.995)


def test_wick_liquidates_although_close_recovers() -> None:
    # bar 0: open a 2 BTC long at 60,000 at 20x (isolated margin 6,000);
    # bar 2: a wick to 57,200 (< 57,261.31) and a close back at 59,900.
    frame = bars([FLAT, FLAT, (60_000, 60_100, 57_200, 59_900), FLAT])
    broker, strat = run([frame], {0: {0: 2.0}}, cash=10_000.0)
    [liq] = broker.events["liquidations"]
    assert liq["time"].minute == 2
    assert liq["liquidation_price"] == pytest.approx(LIQ, rel=1e-12)
    assert liq["fill_price"] == pytest.approx(LIQ, rel=1e-12)  # Binance closes at the liquidation price
    assert liq["trigger_price"] == 57_200.0
    # uPnL at the fill: 2 * (57,261.31 - 60,000) = -5,477.39; margin left 522.61 equals MM; the
    # clearance fee (1.25 % of 114,522.6 = 1,431.5) is capped at it, all to the insurance fund
    assert liq["realized_pnl"] == pytest.approx(-5_477.386934673367, rel=1e-12)
    assert liq["fee"] == pytest.approx(522.613065326633, rel=1e-9)
    assert broker.insurance_fund == pytest.approx(522.613065326633, rel=1e-9)
    # equity: 10,000 - entry fee 48 (0.04 % of 120,000) - 5,477.39 - 522.61 = 3,952
    assert broker.getvalue() == pytest.approx(3_952.0, rel=1e-12)
    assert strat.getposition(strat.data).size == 0
    assert ("Completed", True, pytest.approx(LIQ), None) in strat.orders
    assert len(strat.liquidations) == 1


def test_no_liquidation_when_wick_stays_above() -> None:
    frame = bars([FLAT, FLAT, (60_000, 60_100, 57_300, 59_900), FLAT])
    broker, _ = run([frame], {0: {0: 2.0}})
    assert broker.events["liquidations"] == []
    assert broker.book(broker._primary).liq_price == pytest.approx(LIQ, rel=1e-12)


def test_mark_price_feed_ignores_a_last_price_only_wick() -> None:
    # The 2021-07-26 Binance case: the perp's last price wicks (here to 50,000) while the mark,
    # which follows the spot index, stays at 59,500: no liquidation.
    last = [FLAT, FLAT, (60_000, 60_100, 50_000, 59_900), FLAT]
    mark = [FLAT, FLAT, (60_000, 60_050, 59_500, 59_900), FLAT]
    broker, _ = run([bars(last, mark=mark)], {0: {0: 2.0}})
    assert broker.events["liquidations"] == []
    # the same last-price bars without a mark series do liquidate
    broker2, _ = run([bars(last)], {0: {0: 2.0}})
    assert len(broker2.events["liquidations"]) == 1


def test_mark_wick_liquidates_even_if_last_does_not() -> None:
    last = [FLAT, FLAT, (60_000, 60_100, 59_000, 59_900), FLAT]
    mark = [FLAT, FLAT, (60_000, 60_050, 57_000, 59_900), FLAT]
    broker, _ = run([bars(last, mark=mark)], {0: {0: 2.0}})
    [liq] = broker.events["liquidations"]
    assert liq["trigger_price"] == 57_000.0


def test_cross_margin_winner_keeps_loser_alive() -> None:
    # BTC long 1 @ 60,000 and ETH short 10 @ 3,000, 20x each. Bar 1: BTC wicks to 56,500 while
    # ETH falls to 2,700 (the short gains 3,000).
    btc = bars([FLAT, (60_000, 60_000, 56_500, 57_000), (57_000,) * 4])
    eth = bars([(3_000.0,) * 4, (2_700.0,) * 4, (2_700.0,) * 4])
    plan = {0: {0: 1.0}, 1: {0: -10.0}}
    # isolated: BTC's own margin (3,000) is all it has: LP = (60,000 - 3,000 - 50)/0.995 = 57,236.18
    iso, _ = run([btc, eth], plan, symbols=["BTCUSDT", "ETHUSDT"], margin_mode="isolated")
    [liq] = iso.events["liquidations"]
    assert liq["symbol"] == "BTCUSDT"
    assert liq["liquidation_price"] == pytest.approx(57_236.180904522614, rel=1e-12)
    # cross: wallet 10,000 - fees 36 = 9,964; ETH MM at 2,700 = 27,000 x 0.65 % - 15 = 160.5,
    # ETH uPnL +3,000; the notional at the LP is below 50,000, so bracket 1 (0.4 %, cum 0):
        # LP(BTC) = (9,964 - 160.5 + 3,000 - 60,000)/(0.004 - 1) = 47,386.04
    cross, _ = run([btc, eth], plan, symbols=["BTCUSDT", "ETHUSDT"], margin_mode="cross")
    assert cross.events["liquidations"] == []
    btc_book = next(b for b in cross._books.values() if b.instrument.symbol == "BTCUSDT")
    assert btc_book.liq_price == pytest.approx((9_964 - 160.5 + 3_000 - 60_000) / (0.004 - 1), rel=1e-9)


def test_inverse_long_liquidates_before_linear_with_same_inputs() -> None:
    # Long at 50,000 with 20x on an inverse contract (BitMEX XBTUSD in 2021: base MM 0.40 % plus
    # the 0.075 % taker fee: LP = E/(1 + 1/20 - 0.475 %) = 47,835.45) and on a linear one (Binance BTCUSDT, 1 BTC: (50,000 - 2,500 - 50)/0.995 =
    # at the liquidation price the notional is below 50,000, so bracket 1 (0.4 %, cum 0) applies:
    # (50,000 - 2,500)/0.996 = 47,690.76). A low of 47,800 kills the inverse long only: its collateral is in the coin,
    # which loses value as the price falls.
    rows = [(50_000.0,) * 4, (50_000, 50_000, 47_800, 48_000), (48_000.0,) * 4]
    inverse, _ = run([bars(rows)], {0: {0: 50_000.0}}, venue="bitmex", cash=1.0)
    linear, _ = run([bars(rows)], {0: {0: 1.0}}, venue="binance_usdm", cash=10_000.0)
    [liq] = inverse.events["liquidations"]
    assert liq["liquidation_price"] == pytest.approx(50_000 / (1 + 0.05 - 0.00475), rel=1e-12)
    assert liq["fill_price"] == pytest.approx(50_000 / 1.05, rel=1e-12)  # BitMEX: bankruptcy price
    assert linear.events["liquidations"] == []
    assert next(iter(linear._books.values())).liq_price == pytest.approx(47_500 / 0.996, rel=1e-12)


def test_funding_sign_and_bars() -> None:
    # Settlements in bars 1 (+0.01 %), 3 (-0.02 %) and 5 (+0.01 %); a long of 2 BTC opens at bar 0's
    # open; it is closed at bar 5's open, so the bar-5 settlement (the position at that instant
    # is the one before the fill) still applies. Mark opens: 60,000, 61,000, 59,000.
    rows = [FLAT] * 7
    mark = [FLAT, (60_000,) * 4, FLAT, (61_000,) * 4, FLAT, (59_000,) * 4, FLAT]
    frame = bars(rows, mark=mark, funding={1: 0.0001, 3: -0.0002, 5: 0.0001})
    broker, strat = run([frame], {0: {0: 2.0, 5: 0.0}})
    amounts = [(e["time"].minute, e["amount"]) for e in broker.events["funding"]]
    assert amounts == [(1, pytest.approx(-12.0)), (3, pytest.approx(24.4)), (5, pytest.approx(-11.8))]
    # a short receives when the rate is positive
    broker_s, _ = run([frame], {0: {0: -2.0, 5: 0.0}})
    assert [e["amount"] for e in broker_s.events["funding"]] == pytest.approx([12.0, -24.4, 11.8])
    # a position opened in the settlement bar itself does not pay that settlement
    broker_late, _ = run([frame], {0: {1: 2.0}})
    assert [e["time"].minute for e in broker_late.events["funding"]] == [3, 5]
    assert len(strat.fundings) == 3


def test_constant_funding_at_venue_hours_is_announced() -> None:
    frame = bars([FLAT] * 30, freq="1h", start=__import__("pandas").Timestamp("2021-01-01 00:00", tz="UTC"))
    broker, _ = run([frame], {0: {0: 1.0}}, funding_rate=0.0001, allow_no_funding=False)
    times = [e["time"].hour for e in broker.events["funding"]]
    assert times == [8, 16, 0]  # Binance: 00/08/16 UTC; the 00:00 bar 0 is before the position exists
    assert all(e["amount"] == pytest.approx(-6.0) for e in broker.events["funding"])
    assert "constant funding rate of 0.0001" in broker.announcements[0]


def test_missing_funding_source_is_an_error() -> None:
    with pytest.raises(DeleverageError, match="no funding_rate column"):
        run([bars([FLAT, FLAT])], {0: {0: 1.0}}, allow_no_funding=False)


def test_order_beyond_available_margin_is_rejected() -> None:
    # 10,000 USDT at 20x supports 200,000 of notional less fees: 4 BTC at 60,000 needs 12,000 + 96.
    broker, strat = run([bars([FLAT, FLAT])], {0: {0: 4.0}}, cash=10_000.0)
    [(status, liquidation, _, reason)] = strat.orders
    assert status == "Margin" and not liquidation
    assert "needs 12,096 initial margin + fee, available 10,000" in reason
    assert broker.getvalue() == 10_000.0


def test_leverage_above_the_bracket_maximum_is_rejected() -> None:
    # 125x is allowed only below 50,000 of notional (Binance BTCUSDT bracket 1)
    broker, strat = run([bars([FLAT, FLAT])], {0: {0: 1.0}}, cash=10_000.0, leverage=125)
    [(status, _, _, reason)] = strat.orders
    assert status == "Margin" and "exceeds the venue maximum 100" in reason


def test_liquidation_cancels_open_orders() -> None:
    import backtrader as bt

    from engine.broker import PerpBroker
    from engine.bt_data import PerpData

    class WithLimit(bt.Strategy):
        def start(self) -> None:
            self.seen: list[str] = []

        def prenext_open(self) -> None:
            self.next_open()

        def next_open(self) -> None:
            if len(self) == 1:
                self.buy(size=2.0)
                self.sell(size=2.0, price=70_000.0, exectype=bt.Order.Limit)

        def notify_order(self, order: object) -> None:
            self.seen.append(order.getstatusname())  # type: ignore[attr-defined]

    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    broker = PerpBroker(venue="binance_usdm", leverage=20, allow_no_funding=True)
    broker.set_cash(10_000.0)
    broker.set_coo(True)
    cerebro.setbroker(broker)
    data = PerpData.from_frame(bars([FLAT, (60_000, 60_000, 57_000, 58_000), FLAT]))
    cerebro.adddata(data)
    broker.attach(data)
    cerebro.addstrategy(WithLimit)
    strat = cerebro.run()[0]
    assert "Canceled" in strat.seen
    assert len(broker.events["liquidations"]) == 1


def test_liquidation_fill_never_beyond_bankruptcy_on_a_gap() -> None:
    # The bar opens at 50,000, far below the bankruptcy price 57,000: the fill is capped at
    # 57,000 (the insurance fund takes the rest), so the loss equals the isolated margin.
    broker, _ = run([bars([FLAT, (50_000, 50_000, 50_000, 50_000)])], {0: {0: 2.0}})
    [liq] = broker.events["liquidations"]
    assert liq["fill_price"] == pytest.approx(57_000.0)
    assert liq["realized_pnl"] == pytest.approx(-6_000.0)
    assert liq["fee"] == 0.0
    assert broker.getvalue() == pytest.approx(10_000 - 48 - 6_000)
    assert not math.isnan(liq["bankruptcy_price"])


def test_market_exit_at_the_open_goes_before_the_bars_wick() -> None:
    # The 2 BTC long is closed by a market order at bar 2's open (60,000); the wick to 57,200
    # comes later in that bar, so there is nothing left to liquidate.
    frame = bars([FLAT, FLAT, (60_000, 60_100, 57_200, 59_900), FLAT])
    broker, strat = run([frame], {0: {0: 2.0, 2: 0.0}})
    assert broker.events["liquidations"] == []
    assert [f["price"] for f in broker.events["fills"]] == [60_000.0, 60_000.0]
    assert broker.getvalue() == pytest.approx(10_000 - 2 * 48.0)
    # a position still open after a partial reduce at that open is checked against the wick
    broker2, _ = run([frame], {0: {0: 2.0, 2: 1.9}})
    assert len(broker2.events["liquidations"]) == 1


def test_open_gapping_through_the_liquidation_price_liquidates_before_the_order() -> None:
    frame = bars([FLAT, FLAT, (57_100, 57_200, 57_000, 57_100), FLAT])
    broker, _ = run([frame], {0: {0: 2.0, 2: 0.0}})
    [liq] = broker.events["liquidations"]
    assert liq["fill_price"] == pytest.approx(57_100.0)  # Binance: the open, inside the bankruptcy price


def test_flip_admission_counts_the_fee_of_the_closing_leg() -> None:
    # Long 3 BTC at 60,000 (20x: margin 9,000, fee 72; equity 9,928). A flip to short 3.271 BTC
    # needs 3.271 x 3,000 margin + the fee on the whole 6.271 BTC order (150.5) = 9,963.5, more
    # than the 9,928 the closed leg frees: refused (counting only the new leg's fee, 78.5, it
    # would pass and leave the account short of its own margin).
    broker, strat = run([bars([FLAT] * 4)], {0: {0: 3.0, 2: -3.271}})
    statuses = [o[0] for o in strat.orders]
    assert statuses == ["Completed", "Margin"]
    assert "needs 9,963.504 initial margin + fee, available 9,928" in strat.orders[1][3]
    broker_ok, strat_ok = run([bars([FLAT] * 4)], {0: {0: 3.0, 2: -3.25}})
    assert [o[0] for o in strat_ok.orders] == ["Completed", "Completed"]
    assert broker_ok.available_balance() >= 0


def test_equity_is_valued_at_the_mark() -> None:
    # last closes at 58,000 while the mark closes at 59,500: the venue's uPnL of the 2 BTC long
    # is 2 x (59,500 - 60,000) = -1,000, so equity = 10,000 - 48 - 1,000 = 8,952 (not 6,952)
    last = [FLAT, (60_000, 60_000, 58_000, 58_000), FLAT]
    mark = [FLAT, (60_000, 60_000, 59_400, 59_500), FLAT]
    broker, _ = run([bars(last, mark=mark)], {0: {0: 2.0}})
    assert broker.recorded()["equity"][1] == pytest.approx(8_952.0, rel=1e-12)
    assert broker.getvalue() == pytest.approx(10_000 - 48.0, rel=1e-12)  # bar 2: back at 60,000
