"""Ordinary backtrader code on the perpetual broker (issue 11 §2): hand-made bars, hand-calculated
expectations. Stock backtrader style throughout: orders placed in ``next()`` fill at the next
bar's open (no cheat-on-open), ``self.buy()`` / brackets / ``order_target_*`` / stock feeds.

Fees: Binance USD-M BTCUSDT taker 0.04 %, maker 0.02 % (risk/venues.py, Binance fee schedule,
VIP 0); ETHUSDT brackets 0.5 % MMR to 10,000 USDT, 0.65 % to 100,000 (Binance 2021 brackets,
risk/venues.py BINANCE_ETHUSDT_2021).
"""

from __future__ import annotations

from typing import Any

import backtrader as bt
import pandas as pd
import pytest

from engine.broker import PerpBroker
from engine.bt_data import PerpData
from risk.errors import DeleverageError
from tests.engine.helpers import bars

P = 60_000.0
FLAT = (P, P, P, P)


def cerebro_with(frames: list[pd.DataFrame] | None = None, *, venue: str = "binance_usdm", leverage: float = 10.0,
                 cash: float = 10_000.0, margin_mode: str = "isolated", symbols: list[str | None] | None = None,
                 funding_rate: float | None = None, **broker_kw: Any) -> tuple[bt.Cerebro, PerpBroker, list[Any]]:
    cerebro = bt.Cerebro(stdstats=False)
    broker = PerpBroker(venue=venue, leverage=leverage, margin_mode=margin_mode, funding_rate=funding_rate,
                        allow_no_funding=funding_rate is None, **broker_kw)
    broker.set_cash(cash)
    cerebro.setbroker(broker)
    datas = []
    for i, frame in enumerate(frames or []):
        data = PerpData.from_frame(frame, name=f"d{i}")
        cerebro.adddata(data)
        broker.attach(data, symbol=(symbols[i] if symbols else None))
        datas.append(data)
    return cerebro, broker, datas


class Recorder(bt.Strategy):
    """Records order outcomes and closed trades."""

    def start(self) -> None:
        self.done: list[tuple[str, float, float, str | None]] = []
        self.trades: list[Any] = []

    def notify_order(self, order: Any) -> None:
        if order.status in (order.Completed, order.Margin, order.Rejected, order.Canceled):
            self.done.append((order.getstatusname(), order.executed.size, order.executed.price,
                              order.info.get("rejection")))

    def notify_trade(self, trade: Any) -> None:
        if trade.isclosed:
            self.trades.append(trade)


# --- 2.3 reducing orders are margin-free; 2.6 trade PnL net of fees -----------------------------------


class Bracket(Recorder):
    def next(self) -> None:
        if len(self) == 1:
            self.buy_bracket(size=1.0, exectype=bt.Order.Market, stopprice=57_000.0, limitprice=63_000.0)


def test_bracket_take_profit_child_is_not_rejected_and_trade_pnl_is_net_of_fees() -> None:
    # bar 0: buy_bracket; bar 1 opens 60,000: the parent fills (taker fee 24); bar 2 reaches 63,500:
    # the take-profit limit sells 1 BTC at 63,000 (maker fee 12.6); the stop child is cancelled (OCO).
    # 10x: the parent needs 6,000 + 24 of 10,000; the take-profit child, checked as a new short,
    # would need 6,300 + 12.6 more and was rejected before.
    frame = bars([FLAT, FLAT, (P, 63_500.0, P, 63_200.0), (63_200.0,) * 4])
    cerebro, broker, _ = cerebro_with([frame])
    cerebro.addstrategy(Bracket)
    [strat] = cerebro.run()
    statuses = [d[0] for d in strat.done]
    assert statuses.count("Completed") == 2 and "Margin" not in statuses and "Canceled" in statuses
    fills = broker.events["fills"]
    assert [(f["side"], f["price"]) for f in fills] == [("buy", P), ("sell", 63_000.0)]
    assert [f["fee"] for f in fills] == pytest.approx([24.0, 12.6], rel=1e-12)
    assert broker.getvalue() == pytest.approx(10_000 + 3_000 - 24 - 12.6, rel=1e-12)
    [trade] = strat.trades
    assert trade.pnl == pytest.approx(3_000.0, rel=1e-12)
    assert trade.commission == pytest.approx(36.6, rel=1e-12)
    assert trade.pnlcomm == pytest.approx(2_963.4, rel=1e-12)


def test_trade_analyzer_counts_a_fee_losing_trade_as_lost() -> None:
    # buy 1 at 60,000 and sell at 60,010: gross +10, fees 24 + 24.004 -> net -38.004: a lost trade
    frame = bars([FLAT, FLAT, (60_010.0,) * 4, (60_010.0,) * 4])

    class RoundTrip(Recorder):
        def next(self) -> None:
            if len(self) == 1:
                self.buy(size=1.0)
            elif len(self) == 2:
                self.close()

    cerebro, broker, _ = cerebro_with([frame])
    cerebro.addstrategy(RoundTrip)
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="ta")
    [strat] = cerebro.run()
    ta = strat.analyzers.ta.get_analysis()
    assert ta["lost"]["total"] == 1 and ta["won"]["total"] == 0
    assert ta["pnl"]["net"]["total"] == pytest.approx(10.0 - 24.0 - 24.004, rel=1e-12)
    assert ta["pnl"]["gross"]["total"] == pytest.approx(10.0, rel=1e-12)


# --- 2.5 order_target_* hold their target --------------------------------------------------------------


def test_order_target_percent_every_bar_buys_once() -> None:
    # fees off (setcommission(commission=0)); price 100: 50 % of 10,000 is 50 BTC, bought once at bar 1's open
    frame = bars([(100.0,) * 4] * 6)

    class Target(Recorder):
        def next(self) -> None:
            self.order_target_percent(target=0.5)

    cerebro, broker, _ = cerebro_with([frame], leverage=1.0)
    broker.setcommission(commission=0.0)
    cerebro.addstrategy(Target)
    [strat] = cerebro.run()
    assert [(f["side"], f["qty"], f["price"]) for f in broker.events["fills"]] == [("buy", 50.0, 100.0)]
    assert broker.getvalue(datas=[strat.data]) == pytest.approx(5_000.0)


def test_order_target_value_on_an_inverse_contract_sizes_usd_contracts() -> None:
    # BitMEX XBTUSD (1 USD per contract, settled in BTC) at 10,000: a value of 0.5 BTC is 5,000 contracts
    frame = bars([(10_000.0,) * 4] * 4)

    class Target(Recorder):
        def next(self) -> None:
            self.order_target_value(target=0.5)

    cerebro, broker, _ = cerebro_with([frame], venue="bitmex", leverage=1.0, cash=1.0)
    broker.setcommission(commission=0.0)
    cerebro.addstrategy(Target)
    cerebro.run()
    assert [(f["side"], f["qty"]) for f in broker.events["fills"]] == [("buy", 5_000.0)]


# --- 2.7 setcommission / addcommissioninfo ----------------------------------------------------------


def test_setcommission_overrides_the_fee_and_refuses_futures_arguments() -> None:
    frame = bars([FLAT] * 3)

    class Buy(Recorder):
        def next(self) -> None:
            if len(self) == 1:
                self.buy(size=0.5)

    cerebro, broker, _ = cerebro_with([frame])
    broker.setcommission(commission=0.001)  # 0.1 % of notional
    cerebro.addstrategy(Buy)
    cerebro.run()
    assert broker.events["fills"][0]["fee"] == pytest.approx(0.5 * P * 0.001, rel=1e-12)  # 30 USDT
    with pytest.raises(DeleverageError, match=r"margin=1000.*mult=10"):
        broker.setcommission(commission=2.0, margin=1000.0, mult=10.0)
    with pytest.raises(DeleverageError, match="mult=10"):
        broker.addcommissioninfo(bt.CommInfoBase(commission=2.0, mult=10.0, margin=1000.0))


def test_addcommissioninfo_percentage_is_a_fee_override() -> None:
    frame = bars([FLAT] * 3)

    class Buy(Recorder):
        def next(self) -> None:
            if len(self) == 1:
                self.buy(size=0.5)

    cerebro, broker, _ = cerebro_with([frame])
    broker.addcommissioninfo(bt.CommInfoBase(commission=0.05))  # percabs False: 0.05 % -> 0.0005
    cerebro.addstrategy(Buy)
    cerebro.run()
    assert broker.events["fills"][0]["fee"] == pytest.approx(0.5 * P * 0.0005, rel=1e-12)  # 15 USDT


# --- 2.10 lot size and minimum notional ---------------------------------------------------------------


@pytest.mark.parametrize(("venue", "size", "price", "reason"), [
    ("bitmex", 0.0001196, 10_000.0, "not a multiple of the lot size 1"),
    ("binance_usdm", 0.0105, P, "not a multiple of the lot size 0.001"),
    ("binance_usdm", 0.004, 1_000.0, "below the minimum 5"),  # 4 USDT of notional
])
def test_lot_size_and_min_notional_reject_with_a_reason(venue: str, size: float, price: float, reason: str) -> None:
    frame = bars([(price,) * 4] * 3)

    class Buy(Recorder):
        def next(self) -> None:
            if len(self) == 1:
                self.buy(size=size)

    cerebro, broker, _ = cerebro_with([frame], venue=venue, leverage=1.0, cash=1.0 if venue == "bitmex" else 10_000.0)
    cerebro.addstrategy(Buy)
    [strat] = cerebro.run()
    [(status, _, _, why)] = strat.done
    assert status == "Rejected" and reason in why
    assert broker.events["fills"] == []


# --- 2.2 re-runs and optstrategy ---------------------------------------------------------------------


class Swing(Recorder):
    params = (("qty", 1.0),)
    finals: list[tuple[float, float]] = []

    def next(self) -> None:
        if len(self) == 1:
            self.buy(size=self.p.qty)
        elif len(self) == 3:
            self.close()

    def stop(self) -> None:
        Swing.finals.append((self.p.qty, self.broker.getvalue()))


SWING = [FLAT, FLAT, (61_000.0,) * 4, (62_000.0,) * 4, (62_000.0,) * 4]


def test_rerun_and_optstrategy_with_one_cpu_equal_fresh_runs() -> None:
    # a fresh run: buy q at 60,000, sell at 62,000: +2,000 q - 0.0004 (60,000 + 62,000) q
    expected = {q: 10_000 + 2_000 * q - 0.0004 * 122_000 * q for q in (0.5, 1.0)}
    Swing.finals = []
    cerebro, broker, _ = cerebro_with([bars(SWING)])
    cerebro.addstrategy(Swing, qty=1.0)
    cerebro.run()
    cerebro.run()  # the same Cerebro again: no position, event or ledger carried over
    assert [v for _, v in Swing.finals] == pytest.approx([expected[1.0]] * 2, rel=1e-12)
    assert len(broker.events["fills"]) == 2
    Swing.finals = []
    cerebro, broker, _ = cerebro_with([bars(SWING)])
    cerebro.optstrategy(Swing, qty=[0.5, 1.0])
    cerebro.run(maxcpus=1)
    assert dict(Swing.finals) == pytest.approx(expected, rel=1e-12)


# --- 2.4 stock feeds; 2.8 timeframe and resampling ----------------------------------------------------


def _hourly(n: int, price: float = P) -> pd.DataFrame:
    index = pd.date_range("2021-01-01 00:00", periods=n, freq="1h", name="datetime")
    return pd.DataFrame({"open": price, "high": price, "low": price, "close": price, "volume": 1.0,
                         "openinterest": 0.0}, index=index)


class BuyOne(Recorder):
    def next(self) -> None:
        if len(self) == 1:
            self.buy(size=1.0)


def test_pandas_data_trades_with_a_constant_funding_rate(tmp_path: Any) -> None:
    # hourly bars at 60,000 from 00:00; buy at 01:00's open (fee 24); Binance settles at 08:00 and 16:00:
    # a 1 BTC long pays 60,000 x 0.0001 = 6 USDT at the 08:00 bar (10 bars: 00:00 ... 09:00)
    for feed in (bt.feeds.PandasData(dataname=_hourly(10)), _csv_feed(tmp_path, _hourly(10))):
        cerebro, broker, _ = cerebro_with(funding_rate=0.0001)
        cerebro.adddata(feed)
        cerebro.addstrategy(BuyOne)
        cerebro.run()
        [funding] = broker.events["funding"]
        assert funding["time"] == pd.Timestamp("2021-01-01 08:00", tz="UTC")
        assert funding["amount"] == pytest.approx(-6.0, rel=1e-12)
        assert broker.getvalue() == pytest.approx(10_000 - 24 - 6, rel=1e-12)
        assert broker.recorded()["close"][-1] == P


def _csv_feed(tmp_path: Any, frame: pd.DataFrame) -> Any:
    path = tmp_path / "bars.csv"
    frame.to_csv(path, date_format="%Y-%m-%d %H:%M:%S")
    return bt.feeds.GenericCSVData(dataname=str(path), dtformat="%Y-%m-%d %H:%M:%S", datetime=0, open=1, high=2,
                                   low=3, close=4, volume=5, openinterest=6, timeframe=bt.TimeFrame.Minutes,
                                   compression=60)


def test_perpdata_declares_minutes_and_resamples_by_open_time() -> None:
    # 180 one-minute bars, open 100 + i, high +0.5, low -0.5, close +0.25: hour h holds minutes 60h ... 60h+59
    rows = [(100.0 + i, 100.5 + i, 99.5 + i, 100.25 + i) for i in range(180)]
    data = PerpData.from_frame(bars(rows), name="BTCUSDT")
    assert (data.p.timeframe, data.p.compression) == (bt.TimeFrame.Minutes, 1)
    assert PerpData.from_frame(bars(rows[:10], freq="1h")).p.compression == 60
    seen = []

    class Look(bt.Strategy):
        def next(self) -> None:
            d = self.datas[-1]
            seen.append((bt.num2date(d.datetime[0]), d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))

    cerebro, broker, _ = cerebro_with()
    cerebro.resampledata(data, timeframe=bt.TimeFrame.Minutes, compression=60)
    cerebro.addstrategy(Look)
    cerebro.run()
    assert seen == [(pd.Timestamp(f"2021-01-01 0{h}:00").to_pydatetime(), 100.0 + 60 * h, 159.5 + 60 * h,
                     99.5 + 60 * h, 159.25 + 60 * h, 60.0) for h in range(3)]


def test_a_resampled_perpdata_trades_and_settles_the_source_funding() -> None:
    # 1-minute bars at 60,000 with one funding print at 01:00 (0.0001); trading the 1-hour bars: the order
    # placed at the 00:00 bar fills at the 01:00 bar's open; the 01:00 settlement is paid by that position.
    frame = bars([FLAT] * 180, funding={60: 0.0001})
    data = PerpData.from_frame(frame, name="BTCUSDT")
    cerebro, broker, _ = cerebro_with()
    cerebro.resampledata(data, timeframe=bt.TimeFrame.Minutes, compression=60)
    cerebro.addstrategy(BuyOne)
    cerebro.run()
    [fill] = broker.events["fills"]
    assert fill["time"] == pd.Timestamp("2021-01-01 01:00", tz="UTC") and fill["price"] == P
    [funding] = broker.events["funding"]
    assert funding["amount"] == pytest.approx(-6.0, rel=1e-12)
    assert broker.getvalue() == pytest.approx(10_000 - 24 - 6, rel=1e-12)


# --- 2.9 several feeds, one cross wallet -----------------------------------------------------------------


def test_two_feeds_in_cross_share_the_wallet_and_data1_is_liquidated_by_the_account_rule() -> None:
    # BTC flat at 60,000 (no position); ETH: the strategy buys 10 ETH on data1 at 2,000 (fee 8), cross, 20x.
    # Cross: the whole wallet backs the position. Wallet 10,000 - 8 = 9,992; at p ~ 1,006 the notional
    # 10 p ~ 10,058 is in the 2nd bracket (10,000-100,000: MMR 0.65 %, maintenance amount
    # 10,000 x (0.65 % - 0.5 %) = 15); liquidation when 9,992 + 10 (p - 2,000) = 0.0065 x 10 p - 15
    #   ->  p = (20,000 - 9,992 - 15) / (10 x 0.9935) = 9,993 / 9.935 = 1,005.838...
    liq = (20_000.0 - 9_992.0 - 15.0) / 9.935
    btc = bars([FLAT] * 5)
    eth = bars([(2_000.0,) * 4, (2_000.0,) * 4, (2_000.0, 2_000.0, 1_010.0, 1_500.0),
                (1_500.0, 1_500.0, 1_000.0, 1_200.0), (1_200.0,) * 4])

    class TradeEth(Recorder):
        def next(self) -> None:
            if len(self) == 1:
                self.buy(data=self.data1, size=10.0)

    cerebro, broker, datas = cerebro_with([btc, eth], symbols=["BTCUSDT", "ETHUSDT"], leverage=20.0,
                                          margin_mode="cross")
    cerebro.addstrategy(TradeEth)
    cerebro.run()
    [event] = broker.events["liquidations"]
    assert event["symbol"] == "ETHUSDT"
    assert event["time"] == pd.Timestamp("2021-01-01 00:03", tz="UTC")  # 1,010 > liq at bar 2; 1,000 < liq at bar 3
    assert event["liquidation_price"] == pytest.approx(liq, rel=1e-9)
    assert broker.getposition(datas[1]).size == 0 and broker.getposition(datas[0]).size == 0


def test_a_loss_on_data0_moves_the_cross_liquidation_of_data1() -> None:
    # as above, plus 0.1 BTC long at 60,000 (fee 2.4) that is at 50,000 in bar 2: wallet 9,989.6, BTC uPnL
    # -1,000, BTC maintenance 5,000 x 0.4 % = 20 (first BTCUSDT bracket). ETH's cross liquidation price:
    # 9,989.6 - 1,000 - 20 + 10 (p - 2,000) = 0.0065 x 10 p - 15  ->  p = 11,015.4 / 9.935 = 1,108.747...
    # ETH's bar-2 low of 1,100 is above its single-position level (1,005.84) but below this one.
    liq = (20_000.0 - 9_989.6 + 1_000.0 + 20.0 - 15.0) / 9.935
    btc = bars([FLAT, FLAT, (50_000.0,) * 4, (50_000.0,) * 4])
    eth = bars([(2_000.0,) * 4, (2_000.0,) * 4, (2_000.0, 2_000.0, 1_100.0, 1_500.0), (1_500.0,) * 4])

    class Both(Recorder):
        def next(self) -> None:
            if len(self) == 1:
                self.buy(data=self.data0, size=0.1)
                self.buy(data=self.data1, size=10.0)

    cerebro, broker, _ = cerebro_with([btc, eth], symbols=["BTCUSDT", "ETHUSDT"], leverage=20.0, margin_mode="cross")
    cerebro.addstrategy(Both)
    cerebro.run()
    first = broker.events["liquidations"][0]
    assert first["symbol"] == "ETHUSDT" and first["time"] == pd.Timestamp("2021-01-01 00:02", tz="UTC")
    assert first["liquidation_price"] == pytest.approx(liq, rel=1e-9)
    assert broker.getvalue() >= 0.0


def test_inverse_trade_pnl_uses_the_harmonic_entry() -> None:
    # BitMEX XBTUSD (1 USD contracts, BTC settled), fees off: buy 1,000 at 10,000 and 1,000 at 8,000:
    # entry 2,000 / (1,000/10,000 + 1,000/8,000) = 8,888.89 (harmonic; the arithmetic mean is 9,000);
    # sell 2,000 at 9,000: PnL 2,000 x (1/8,888.89 - 1/9,000) = 0.1 + 0.125 - 2,000/9,000 = 0.0027778 BTC
    # (0 with the arithmetic mean)
    frame = bars([(10_000.0,) * 4, (10_000.0,) * 4, (8_000.0,) * 4, (9_000.0,) * 4, (9_000.0,) * 4])
    pnl = 0.1 + 0.125 - 2_000 / 9_000

    class Average(Recorder):
        def next(self) -> None:
            if len(self) in (1, 2):
                self.buy(size=1_000.0)
            elif len(self) == 3:
                self.close()

    cerebro, broker, _ = cerebro_with([frame], venue="bitmex", leverage=1.0, cash=1.0)
    broker.setcommission(commission=0.0)
    cerebro.addstrategy(Average)
    [strat] = cerebro.run()
    [trade] = strat.trades
    assert trade.price == pytest.approx(2_000 / 0.225, rel=1e-12)
    assert trade.pnl == pytest.approx(pnl, rel=1e-9)
    assert broker.events["fills"][-1]["realized_pnl"] == pytest.approx(pnl, rel=1e-9)
    assert broker.getvalue() == pytest.approx(1.0 + pnl, rel=1e-12)
