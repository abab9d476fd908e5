"""Stops on the fast path: hand-made bars with hand-computed exits, the batched pass against
single runs, and parity with the backtrader path (SignalStrategy's Stop/Limit orders filled by
engine.broker) on random and real bars.

The path rule is risk.path.first_exit (tests/risk/test_path.py); here it is checked inside the
engines: fill prices, fees (stop: taker, take-profit: maker), money conservation, and that the
position stays flat after an exit until the target changes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine import fast
from engine.runner import RunConfig, run_backtest
from risk.venues import get_instrument
from strategies import Breakout
from strategies.base import SignalStrategy, levels_from_entry
from tests.fast.helpers import assert_parity, random_bars, random_targets

CASH = 10_000.0
CFG = RunConfig(strategy="x", venue="binance_usdm", cash=CASH, allow_no_funding=True)


def hand_bars(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    idx = pd.date_range("2024-01-01 00:00", periods=len(rows), freq="1min", tz="UTC")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx)
    frame["volume"] = 1.0
    frame.attrs = {"kind": "simulated", "source": "hand-made"}
    return frame


def test_stop_loss_by_hand():
    # 1x long from bar 1's open (100); stop 95 from bar 1; bar 3's low 94 reaches it
    bars = hand_bars([(100, 100, 100, 100), (100, 101, 99, 100), (100, 102, 98, 101), (101, 101, 94, 96),
                      (96, 97, 95, 96)])
    target = np.array([0, 1, 1, 1, 1], dtype=float)
    stop = np.array([np.nan, 95, 95, 95, 95])
    res = fast.run_fast(bars, target, CFG, exits={"stop_loss": stop})
    inst = get_instrument("binance_usdm", None)
    f = res.fills
    assert list(f["kind"]) == ["trade", "trade"] and list(f["side"]) == ["buy", "sell"]
    q = f["qty"].iloc[0]
    # the entry: E x 1 / (1 + taker) x 0.999999 at 100, rounded down to the lot
    assert q == pytest.approx(math.floor(CASH / (1 + inst.taker_fee) * 0.999999 / 100 / inst.lot_size + 1e-9)
                              * inst.lot_size)
    assert f["price"].tolist() == [100.0, 95.0]
    assert f["fee"].iloc[1] == pytest.approx(q * 95 * inst.taker_fee)
    assert f["realized_pnl"].iloc[1] == pytest.approx(q * (95 - 100))
    # flat after the stop, though the target is still 1
    assert res.equity["position_qty"].tolist() == [0.0, q, q, 0.0, 0.0]
    assert res.summary["exits"] == {"stop": 1, "take_profit": 0, "trailing": 0}
    # money: every equity change is a fill's PnL, a fee or the insurance fund's cover (none here)
    assert res.summary["final_equity"] == pytest.approx(CASH + f["realized_pnl"].sum() - res.fees["amount"].sum()
                                                         + res.summary["insurance_cover_total"])


def test_take_profit_pays_the_maker_fee_and_a_gap_fills_at_the_open():
    bars = hand_bars([(100, 100, 100, 100), (100, 101, 99, 100), (103, 104, 102, 103)])  # bar 2 gaps over 102
    target = np.array([0, 1, 1], dtype=float)
    res = fast.run_fast(bars, target, CFG, exits={"take_profit": 102.0})
    inst = get_instrument("binance_usdm", None)
    f = res.fills
    q = f["qty"].iloc[0]
    assert f["price"].tolist() == [100.0, 103.0]
    assert f["fee"].iloc[1] == pytest.approx(q * 103 * inst.maker_fee)
    assert res.summary["exits"]["take_profit"] == 1


def test_trailing_stop_by_hand():
    # long from 100; trail 5 %: the high 110 of bar 2 lifts the level to 104.5; bar 3's low 104 reaches it
    bars = hand_bars([(100, 100, 100, 100), (100, 101, 99, 100), (101, 110, 100, 108), (107, 108, 104, 105)])
    target = np.array([0, 1, 1, 1], dtype=float)
    res = fast.run_fast(bars, target, CFG, exits={"trailing_stop": 0.05})
    assert res.fills["price"].tolist() == [100.0, pytest.approx(104.5)]
    assert res.summary["exits"]["trailing"] == 1


def test_a_stop_below_the_liquidation_price_does_not_veto_it():
    # 20x long from 100 (isolated): liquidation near 95.4; stop 90 lies beyond it
    bars = hand_bars([(100, 100, 100, 100), (100, 100.5, 99.5, 100), (100, 100, 89, 92)])
    target = np.array([0, 20, 20], dtype=float)
    res = fast.run_fast(bars, target, CFG, exits={"stop_loss": 90.0})
    assert len(res.liquidations) == 1 and res.summary["exits"]["stop"] == 0
    # a stop above it goes first
    res = fast.run_fast(bars, target, CFG, exits={"stop_loss": 97.0})
    assert len(res.liquidations) == 0 and res.fills["price"].tolist()[-1] == 97.0


def test_the_batched_pass_equals_single_runs():
    bars = random_bars(3, n=2000)
    p = fast.prepare(bars, RunConfig(strategy="x", funding_rate=1e-4))
    rng = np.random.default_rng(0)
    exps = np.stack([random_targets(s, len(bars), (-5.0, -2.0, 0.0, 3.0, 10.0), 0.01) for s in range(6)])
    close = bars["close"].to_numpy()
    exits = [None, {"stop_loss": levels_from_entry(exps[1], bars["open"].to_numpy(), 0.01)},
             {"trailing_stop": 0.02}, {"take_profit": levels_from_entry(exps[3], bars["open"].to_numpy(), 0.015,
                                                                        profit=True)},
             {"stop_loss": close * (1 - 0.01 * rng.random()), "trailing_stop": 0.03}, None]
    batch = fast.simulate_batch(p, exps, equity=True, exits=exits)
    for e, x, b in zip(exps, exits, batch):
        one = fast.simulate_arrays(p, e, equity=True, exits=x)
        assert np.array_equal(one.pop("equity"), b.pop("equity"))
        assert one == b or all((one[k] == b[k]) or (one[k] != one[k] and b[k] != b[k]) for k in one)
    assert sum(b["stop_exits"] + b["trailing_exits"] + b["take_profit_exits"] for b in batch) > 10


class _StopSignal(SignalStrategy):
    """A user signal strategy with stops: random targets, a stop-loss and a take-profit a fixed
    fraction from the entry's open."""

    params = (("leverage", 1.0), ("seed", 0), ("stop", 0.01), ("take", 0.02), ("trail", 0.0),
              ("levels", (-3.0, 0.0, 2.0, 5.0)))

    @classmethod
    def target_exposure(cls, bars, **params):
        p = cls.resolve_params(params)
        return random_targets(int(p["seed"]), len(bars), tuple(p["levels"]), 0.01)

    @classmethod
    def exit_levels(cls, bars, **params):
        p = cls.resolve_params(params)
        t = cls.target_exposure(bars, **params)
        opn = bars["open"].to_numpy()
        out = {}
        if p["stop"] > 0:
            out["stop_loss"] = levels_from_entry(t, opn, float(p["stop"]))
        if p["take"] > 0:
            out["take_profit"] = levels_from_entry(t, opn, float(p["take"]), profit=True)
        if p["trail"] > 0:
            out["trailing_stop"] = float(p["trail"])
        return out


def _fixed(target, exits):
    """A SignalStrategy with a given target array and exit levels (hand-made bars)."""

    class Fixed(SignalStrategy):
        params = (("leverage", 1.0),)

        @classmethod
        def target_exposure(cls, bars, **params):
            return np.asarray(target, dtype=float)

        @classmethod
        def exit_levels(cls, bars, **params):
            return exits

    return Fixed


@pytest.mark.parametrize("side", [1, -1])
def test_trailing_stop_on_the_leg_to_the_close_by_hand_in_both_engines(side):
    # 1x long from bar 1's open (100), trail 5 %. Bar 1: peak 101 (its high), level 95.95, close 100 above it.
    # Bar 2: open 101, low 100.5 above 95.95; the high 112 lifts the peak: level 112 x 0.95 = 106.4;
    # the close 106 is below it: the trailing stop fills at 106.4 on the last leg (a stop-market: taker).
    # backtrader's own StopTrail would move only at the closes (100 x 0.95, then 106 x 0.95) and not fill.
    # The short is the mirror image: bars reflected around 100, level 88 x 1.05 = 92.4.
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (101, 112, 100.5, 106), (106, 107, 105, 106)]
    if side < 0:
        rows = [(200 - o, 200 - lo, 200 - h, 200 - c) for o, h, lo, c in rows]
    bars = hand_bars(rows)
    strat = _fixed([0, side, side, side], {"trailing_stop": 0.05})
    inst = get_instrument("binance_usdm", None)
    level = 106.4 if side > 0 else 88 * 1.05
    for res in (run_backtest(bars, strat, CFG), fast.run_fast(bars, strat, CFG)):
        f = res.fills
        assert list(f["side"]) == (["buy", "sell"] if side > 0 else ["sell", "buy"])
        q = f["qty"].iloc[0]
        assert f["price"].tolist() == [100.0, pytest.approx(level, rel=1e-12)]
        assert f["fee"].iloc[1] == pytest.approx(q * level * inst.taker_fee)
        assert f["realized_pnl"].iloc[1] == pytest.approx(q * side * (level - 100))
        assert res.equity["position_qty"].tolist() == [0.0, side * q, 0.0, 0.0]
        assert res.summary["final_equity"] == pytest.approx(CASH + f["realized_pnl"].sum() - res.fees["amount"].sum()
                                                         + res.summary["insurance_cover_total"])
    assert_parity(run_backtest(bars, strat, CFG), fast.run_fast(bars, strat, CFG), CASH)


def test_trailing_stop_on_the_adverse_leg_and_with_a_stop_by_hand_in_both_engines():
    # long from 100, trail 5 %, stop-loss 96: bar 2's high 110 lifts the level to 104.5 (above the stop,
    # so it is the protective level); bar 3 opens at 107 and its low 104 reaches 104.5: trailing fill at 104.5
    bars = hand_bars([(100, 100, 100, 100), (100, 101, 99, 100), (101, 110, 100, 108), (107, 108, 104, 105)])
    strat = _fixed([0, 1, 1, 1], {"trailing_stop": 0.05, "stop_loss": np.array([np.nan, 96, 96, 96])})
    for res in (run_backtest(bars, strat, CFG), fast.run_fast(bars, strat, CFG)):
        assert res.fills["price"].tolist() == [100.0, pytest.approx(104.5, rel=1e-12)]
    assert fast.run_fast(bars, strat, CFG).summary["exits"] == {"stop": 0, "take_profit": 0, "trailing": 1}
    # a stop-loss of 104.8 set from bar 3 (the orders are re-placed; the peak 110 is kept: no fill since
    # the entry) lies above the trailing level 104.5: it is the protective level, the low 104 reaches it
    strat = _fixed([0, 1, 1, 1], {"trailing_stop": 0.05, "stop_loss": np.array([np.nan, np.nan, np.nan, 104.8])})
    for res in (run_backtest(bars, strat, CFG), fast.run_fast(bars, strat, CFG)):
        assert res.fills["price"].tolist() == [100.0, 104.8]
    assert fast.run_fast(bars, strat, CFG).summary["exits"] == {"stop": 1, "take_profit": 0, "trailing": 0}


@pytest.mark.parametrize("seed,venue,margin,stop,take", [
    (1, "binance_usdm", "isolated", 0.01, 0.0), (2, "bybit", "isolated", 0.008, 0.0),
    (3, "binance_usdm", "cross", 0.01, 0.0), (4, "binance_usdm", "isolated", 0.0, 0.015),
    (5, "bitmex", "isolated", 0.0, 0.01)])
def test_stop_loss_or_take_profit_parity_on_random_bars(seed, venue, margin, stop, take):
    bars = random_bars(seed, n=2500)
    cfg = RunConfig(strategy="stops", params={"seed": seed, "stop": stop, "take": take}, venue=venue,
                    margin_mode=margin, cash=CASH if venue != "bitmex" else 1.0, funding_rate=1e-4)
    slow = run_backtest(bars, _StopSignal, cfg)
    quick = fast.run_fast(bars, _StopSignal, cfg)
    assert quick.summary["exits"]["stop"] + quick.summary["exits"]["take_profit"] > 3
    assert_parity(slow, quick, cfg.cash)


def test_stop_and_take_profit_together_parity_on_random_bars():
    bars = random_bars(1, n=2500)
    cfg = RunConfig(strategy="stops", params={"seed": 1, "stop": 0.01, "take": 0.02}, cash=CASH, funding_rate=1e-4)
    assert_parity(run_backtest(bars, _StopSignal, cfg), fast.run_fast(bars, _StopSignal, cfg), CASH)


def test_breakout_with_a_stop_runs_fast_and_matches_backtrader():
    bars = random_bars(7, n=3000)
    cfg = RunConfig(strategy="breakout", params={"lookback": 30, "mode": "short", "leverage": 3.0, "stop_loss": 0.004},
                    cash=CASH, funding_rate=1e-4)
    assert fast.select_engine(Breakout, "auto", cfg.params) == "fast"
    quick = fast.run_fast(bars, Breakout, cfg)
    assert quick.summary["exits"]["stop"] > 0
    assert_parity(run_backtest(bars, Breakout, cfg), quick, CASH)


def test_trailing_stop_parity_on_random_bars():
    bars = random_bars(5, n=2500)
    cfg = RunConfig(strategy="breakout", params={"lookback": 30, "mode": "short", "leverage": 2.0,
                                                 "trailing_stop": 0.003}, cash=CASH, funding_rate=1e-4)
    quick = fast.run_fast(bars, Breakout, cfg)
    assert quick.summary["exits"]["trailing"] > 3
    assert_parity(run_backtest(bars, Breakout, cfg), quick, CASH)


@pytest.mark.parametrize("seed,venue,margin,stop,take,trail", [
    (11, "binance_usdm", "isolated", 0.0, 0.0, 0.006), (12, "bybit", "cross", 0.008, 0.0, 0.005),
    (13, "binance_usdm", "isolated", 0.0, 0.012, 0.006), (14, "bitmex", "isolated", 0.01, 0.015, 0.004)])
def test_trailing_stop_with_stops_parity_on_random_bars(seed, venue, margin, stop, take, trail):
    bars = random_bars(seed, n=2500)
    cfg = RunConfig(strategy="stops", params={"seed": seed, "stop": stop, "take": take, "trail": trail},
                    venue=venue, margin_mode=margin, cash=CASH if venue != "bitmex" else 1.0, funding_rate=1e-4)
    quick = fast.run_fast(bars, _StopSignal, cfg)
    assert quick.summary["exits"]["trailing"] > 3
    assert_parity(run_backtest(bars, _StopSignal, cfg), quick, cfg.cash)


@pytest.mark.shared_data
def test_stop_parity_on_real_519_bars(shared_data):
    from feeds.build import build_frame

    bars = build_frame(symbol="XBTUSD", start="2021-05-18", end="2021-05-21",
                       klines=shared_data / "bitmex_xbtusd_1m_2021-05-16_2021-05-22.csv")
    cfg = RunConfig(strategy="stops", params={"seed": 4, "stop": 0.01, "take": 0.0, "levels": (-5.0, 0.0, 5.0, 10.0)},
                    venue="binance_usdm", cash=CASH, funding_rate=1e-4)
    slow = run_backtest(bars, _StopSignal, cfg)
    quick = fast.run_fast(bars, _StopSignal, cfg)
    assert quick.summary["exits"]["stop"] > 0
    assert_parity(slow, quick, CASH)


@pytest.mark.shared_data
def test_trailing_stop_parity_on_real_519_bars(shared_data):
    from feeds.build import build_frame

    bars = build_frame(symbol="XBTUSD", start="2021-05-18", end="2021-05-21",
                       klines=shared_data / "bitmex_xbtusd_1m_2021-05-16_2021-05-22.csv")
    cfg = RunConfig(strategy="stops", params={"seed": 4, "stop": 0.0, "take": 0.0, "trail": 0.008,
                                              "levels": (-5.0, 0.0, 5.0, 10.0)},
                    venue="binance_usdm", cash=CASH, funding_rate=1e-4)
    quick = fast.run_fast(bars, _StopSignal, cfg)
    assert quick.summary["exits"]["trailing"] > 0
    assert_parity(run_backtest(bars, _StopSignal, cfg), quick, CASH)
