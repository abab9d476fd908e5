"""The 2025-10-10 scenario carries Hyperliquid's ADL flow (a labelled reconstruction), a short
hedge through it is auto-deleveraged, the stress verdict says ADL, and such runs stay on the fast
engine, which models both mechanics (issue 15)."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.fast import select_engine
from engine.runner import RunConfig, mechanics_needing_backtrader, run_backtest, save_run
from feeds.adl import HL_20251010_COIN_USD, HL_20251010_SHORT_SHARE
from feeds.scenarios import get_scenario
from reports.results import RunResult
from reports.verdicts import ADL, LIQUIDATED, classify
from risk.errors import DeleverageError
from strategies.buy_and_hold import BuyAndHold


@pytest.fixture(scope="module")
def hl_bars() -> pd.DataFrame:
    return get_scenario("2025-10-10").bars(venue="hyperliquid")


def test_the_scenario_bars_carry_the_labelled_flow(hl_bars: pd.DataFrame) -> None:
    assert "RECONSTRUCTION from published aggregates" in hl_bars.attrs["adl_label"]
    assert any("ADL flow attached" in n for n in hl_bars.attrs["notes"])
    assert hl_bars.attrs["venue"] == "hyperliquid"
    # BTC's published 620.9M over the window, the short share of it on shorts; 0 elsewhere
    total = hl_bars["adl_long_notional"].sum() + hl_bars["adl_short_notional"].sum()
    assert total == pytest.approx(HL_20251010_COIN_USD["BTC"], rel=1e-12)
    assert hl_bars["adl_short_notional"].sum() == pytest.approx(HL_20251010_COIN_USD["BTC"] * HL_20251010_SHORT_SHARE)
    window = hl_bars.loc["2025-10-10 21:15":"2025-10-10 21:26"]
    assert (hl_bars.drop(window.index)[["adl_long_notional", "adl_short_notional"]] == 0).all().all()
    assert window["adl_short_notional"].iloc[0] == 0.0 and window["adl_short_notional"].iloc[1] > 0
    # other venues of the scenario have no flow
    assert "adl_short_notional" not in get_scenario("2025-10-10").bars().columns


def test_a_short_hedge_is_auto_deleveraged_at_2116(hl_bars: pd.DataFrame, tmp_path) -> None:
    config = RunConfig(strategy="buy_and_hold", params={"side": -1, "leverage": 2.0,
                                                        "entry_time": "2025-10-10T14:00Z"},
                       venue="hyperliquid", leverage=2.0)
    # both engines model the flow now (parity: tests/fast/test_adl_parity.py)
    assert mechanics_needing_backtrader(config, hl_bars) == []
    assert select_engine(BuyAndHold, "auto", config.params, mechanics_needing_backtrader(config, hl_bars)) == "fast"
    # a mechanic named as missing still moves auto to backtrader and makes --engine fast an error
    assert select_engine(BuyAndHold, "auto", config.params, ["a future mechanic"]) == "backtrader"
    with pytest.raises(DeleverageError, match="fast engine does not model a future mechanic"):
        select_engine(BuyAndHold, "fast", config.params, ["a future mechanic"])
    result = run_backtest(hl_bars, BuyAndHold, config)
    (event,) = result.adl.itertuples()
    # the whole short (front of the queue, the default assumption: a 20k notional against a
    # 73.6M flow) is bought back at the 21:16 mark
    assert event.time == pd.Timestamp("2025-10-10 21:16", tz="UTC") and event.side == "short"
    assert event.qty_left == 0.0 and event.quantile == 1.0 and event.realized_pnl > 0
    assert result.summary["adl_events"] == 1 and not result.summary["liquidated"]
    assert result.summary["adl_notional"] == pytest.approx(event.qty * event.price)
    assert any("ADL flow" in a and "RECONSTRUCTION" in a for a in result.config["announcements"])
    path = save_run(result, tmp_path / "run", hl_bars)
    loaded = RunResult.load(path)
    assert len(loaded.adl) == 1 and loaded.adl["qty"].iloc[0] == pytest.approx(event.qty)
    assert classify(liquidated=False, refused=False, fills=2, equity_left=1.2, adl=True) == ADL
    assert classify(liquidated=True, refused=False, fills=2, equity_left=0.2, adl=True) == LIQUIDATED


def test_partial_liquidation_runs_on_the_fast_engine() -> None:
    config = RunConfig(strategy="buy_and_hold", partial_liquidation=True)
    assert mechanics_needing_backtrader(config) == []
    assert select_engine(BuyAndHold, "auto", {}, mechanics_needing_backtrader(config)) == "fast"


def test_an_old_run_directory_without_the_adl_table_still_loads(tmp_path, hl_bars) -> None:
    config = RunConfig(strategy="buy_and_hold", params={"leverage": 1.0}, venue="hyperliquid")
    result = run_backtest(hl_bars.drop(columns=["adl_long_notional", "adl_short_notional"]).iloc[:50], BuyAndHold,
                          config)
    path = save_run(result, tmp_path / "old", None)
    (path / "adl.parquet").unlink()
    liq = pd.read_parquet(path / "liquidations.parquet").drop(columns=["partial", "qty_left"])
    liq.to_parquet(path / "liquidations.parquet")
    loaded = RunResult.load(path)
    assert list(loaded.adl.columns)[:3] == ["time", "symbol", "side"] and not len(loaded.adl)
    assert "partial" in loaded.liquidations.columns


def test_the_run_report_shows_adl_and_partial_fills(hl_bars: pd.DataFrame, tmp_path) -> None:
    from reports.html import render_run

    short = RunConfig(strategy="buy_and_hold", params={"side": -1, "leverage": 2.0, "entry_time": "2025-10-10T14:00Z"},
                      venue="hyperliquid", leverage=2.0)
    page = render_run(save_run(run_backtest(hl_bars, BuyAndHold, short), tmp_path / "adl", hl_bars)).read_text()
    assert 'id="adl-banner">Auto-deleveraged once: first at 2025-10-10 21:16 UTC, short' in page
    assert "Auto-deleveraging (ADL)" in page and "RECONSTRUCTION from published aggregates" in page
    long_ = RunConfig(strategy="buy_and_hold", params={"leverage": 30.0}, venue="hyperliquid", leverage=30.0,
                      cash=100_000.0, partial_liquidation=True)
    plain = hl_bars.drop(columns=["adl_long_notional", "adl_short_notional"])
    result = run_backtest(plain, BuyAndHold, long_)
    n_partial = int(result.liquidations["partial"].sum())
    assert n_partial >= 1 and result.summary["partial_liquidations"] == n_partial
    page = render_run(save_run(result, tmp_path / "partial", plain)).read_text()
    assert f'id="partial-banner">{n_partial} of these' in page and "Left open (BTC)" in page
