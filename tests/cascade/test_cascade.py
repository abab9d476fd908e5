"""Cascade simulator: no OI no cascade, runaway above threshold, monotone in depth and leverage,
open interest conserved, seeded reproducibility, formulas from the risk core."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

import risk
from feeds.cascade import CascadeParams, Shock, build_inventory, monte_carlo, runaway_ratio, simulate
from risk.errors import DeleverageError

# a compact, fast base case: 2 h at 10-s steps, one 5-minute sell shock of 1 % of depth x 5
BASE = CascadeParams(minutes=120, dt_s=10.0, price0=40_000.0, long_oi_usd=4e9, short_oi_usd=1e9,
                     depth_usd=150e6, engine_rate=0.5, buyer_strength=0.02, noise_per_sqrt_min=0.0005,
                     shocks=(Shock(0.0, 5.0, 300e6),))


def drop(p: CascadeParams, seed: int = 0) -> float:
    return -simulate(p, seed).attrs["summary"]["peak_to_trough"]


def test_no_leveraged_open_interest_no_cascade():
    flat = BASE.with_(long_oi_usd=0.0, short_oi_usd=0.0)
    bars = simulate(flat, 0)
    s = bars.attrs["summary"]
    assert s["liquidated_long_usd"] == 0 and s["liquidated_short_usd"] == 0 and s["runaway_ratio"] == 0
    # only the shock's own impact: 300M into 150M per 1 % is about 2 % before decay and buyers
    assert 0.005 < -s["peak_to_trough"] < 0.03


def test_above_the_runaway_threshold_it_cascades():
    quiet = drop(BASE.with_(long_oi_usd=0.0, short_oi_usd=0.0))
    hot = BASE.with_(long_oi_usd=12e9, depth_usd=80e6, engine_rate=1.0)
    assert runaway_ratio(hot) > 1.0
    hot_bars = simulate(hot, 0)
    s = hot_bars.attrs["summary"]
    flat_shock = drop(hot.with_(long_oi_usd=0.0, short_oi_usd=0.0))
    assert -s["peak_to_trough"] > 3 * flat_shock and -s["peak_to_trough"] > 0.10
    assert s["liquidated_long_usd"] > 1e9 and quiet < 0.03


def test_fall_grows_as_depth_shrinks():
    falls = [drop(BASE.with_(depth_usd=d)) for d in (400e6, 200e6, 100e6, 60e6)]
    assert all(b > a for a, b in zip(falls, falls[1:])), falls


def test_fall_grows_with_leverage():
    falls = [drop(BASE.with_(leverage_mix=((lev, 1.0),))) for lev in (3, 10, 25, 50)]
    assert all(b > a for a, b in zip(falls, falls[1:])), falls


@pytest.mark.parametrize("adl", [True, False])
def test_open_interest_is_conserved(adl):
    # a violent case: thin book, slow engine, empty insurance fund, so ADL fires when enabled
    p = BASE.with_(long_oi_usd=12e9, short_oi_usd=6e9, depth_usd=60e6, engine_rate=0.1, insurance_fund_usd=0.0, adl=adl,
                   shocks=(Shock(0.0, 5.0, 600e6), Shock(60.0, 5.0, -900e6)))
    bars = simulate(p, 3)
    inv = bars.attrs["inventory"]
    for side in ("long", "short"):
        initial = inv[f"{side}_initial_qty"]
        assert initial > 0
        parts = inv[f"{side}_live_qty"] + inv[f"{side}_triggered_qty"] + inv[f"{side}_removed_by_adl_qty"]
        assert parts == pytest.approx(initial, rel=1e-9)
        done = inv[f"{side}_executed_qty"] + inv[f"{side}_backlog_qty"] + inv[f"{side}_adl_closed_qty"]
        assert done == pytest.approx(inv[f"{side}_triggered_qty"], rel=1e-9, abs=1e-9)
        assert inv[f"{side}_live_from_bins_qty"] == pytest.approx(inv[f"{side}_live_qty"], rel=1e-9, abs=1e-6)
        assert bars[f"liq_{side}_qty"].sum() == pytest.approx(inv[f"{side}_triggered_qty"], rel=1e-9, abs=1e-9)
    assert (inv["long_adl_closed_qty"] + inv["short_adl_closed_qty"] > 0) == adl
    assert (bars["open_interest"].diff().dropna() <= 1e-6).all()  # OI only falls (no new positions in the model)


def test_same_seed_same_path():
    a, b = simulate(BASE, 11), simulate(BASE, 11)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["summary"] == b.attrs["summary"]
    c = simulate(BASE, 12)
    assert not np.allclose(a["close"], c["close"])


def test_output_is_a_canonical_simulated_feed():
    bars = simulate(BASE.with_(start="2021-05-19T07:00Z", minutes=120), 0)
    assert bars.attrs["kind"] == "simulated" and "SIMULATED" in bars.attrs["label"]
    assert bars.index.name == "open_time" and str(bars.index.tz) == "UTC" and len(bars) == 120
    for col in ("open", "high", "low", "close", "volume", "mark_open", "mark_high", "mark_low", "mark_close",
                "liq_long_notional", "liq_short_notional", "open_interest", "funding_rate"):
        assert col in bars and (col == "funding_rate" or bars[col].notna().all())
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1) - 1e-9).all()
    # Binance settles at 08:00: one print, within the +-0.3 % cap; NaN elsewhere
    fund = bars["funding_rate"].dropna()
    assert list(fund.index) == [pd.Timestamp("2021-05-19T08:00Z")] and abs(fund.iloc[0]) <= 0.003
    # the mark smooths the last price: its range is never wider
    assert (bars["mark_high"] - bars["mark_low"]).sum() < (bars["high"] - bars["low"]).sum()


@pytest.mark.parametrize("venue", ["binance_usdm", "bitmex"])
def test_inventory_levels_come_from_the_risk_core(venue):
    lev, entry = 10.0, 40_000.0
    p = CascadeParams(venue=venue, price0=39_000.0, entry_offset=math.log(entry / 39_000.0), entry_spread=1e-9,
                      leverage_mix=((lev, 1.0),), long_oi_usd=1e9, short_oi_usd=1e9, position_usd=50_000.0)
    longs, shorts = build_inventory(p)
    inst = risk.get_instrument(venue)
    if inst.inverse:
        qty, collateral = 50_000.0, 50_000.0 / entry / lev
    else:
        qty, collateral = 50_000.0 / entry, 50_000.0 / lev
    for inv, side in ((longs, "long"), (shorts, "short")):
        expected = risk.liquidation_price(venue, side, entry, qty, collateral, funding_rate=0.0001,
                                          timestamp=p.start_ts.timestamp())
        level = math.exp(inv.levels[np.flatnonzero(inv.qty)[0]])
        assert level == pytest.approx(expected, rel=6e-4)  # one grid bin is 0.05 %
        assert inv.qty.sum() * entry == pytest.approx(1e9, rel=1e-9)  # OI in USD at entry


def test_monte_carlo_over_seeds_and_parameters():
    table = monte_carlo(BASE.with_(minutes=60), seeds=range(4), vary={"depth_usd": (50e6, 400e6)})
    assert len(table) == 4 and table["depth_usd"].between(50e6, 400e6).all()
    # thinner books fall further
    assert table.sort_values("depth_usd")["peak_to_trough"].iloc[0] < table.sort_values("depth_usd")["peak_to_trough"].iloc[-1]


def test_bad_parameters_raise():
    with pytest.raises(DeleverageError, match="depth_usd=-1"):
        CascadeParams(depth_usd=-1)
    with pytest.raises(DeleverageError, match="leverage_mix"):
        CascadeParams(leverage_mix=((0.5, 1.0),))
    with pytest.raises(DeleverageError, match="unknown venue"):
        CascadeParams(venue="mtgox")
    with pytest.raises(DeleverageError, match="unknown cascade parameter"):
        CascadeParams.from_dict({"depht": 1})


# --- dynamics of issue 14: exogenous sell flow, leverage rebuilding, OI relative to depth ---------

FLOW = CascadeParams(minutes=180, dt_s=10.0, price0=40_000.0, long_oi_usd=3e9, short_oi_usd=1.5e9, depth_usd=100e6,
                     engine_tau_s=60.0, buyer_strength=0.03, noise_per_sqrt_min=0.0005, shocks=(), flow_rate=0.4,
                     flow_tau_min=30.0, flow_excite=0.02, flow_noise=0.2, rebuild_share=0.3, insurance_fund_usd=200e6)


def test_doubling_leveraged_oi_at_fixed_depth_deepens_the_fall():
    for seed in (0, 1, 2):
        base = drop(FLOW, seed)
        double = drop(FLOW.with_(long_oi_usd=6e9, short_oi_usd=3e9), seed)
        assert double > base + 0.01, (seed, base, double)


def test_scaling_oi_and_depth_together_scales_notional_not_the_path():
    a = simulate(FLOW, 4)
    b = simulate(FLOW.with_(long_oi_usd=30e9, short_oi_usd=15e9, depth_usd=1e9, insurance_fund_usd=2e9), 4)
    sa, sb = a.attrs["summary"], b.attrs["summary"]
    assert sa["liquidated_long_usd"] > 1e8
    assert sb["liquidated_long_usd"] == pytest.approx(10 * sa["liquidated_long_usd"], rel=0.02)
    assert np.max(np.abs(np.log(b["close"].to_numpy() / a["close"].to_numpy()))) < 0.005
    assert sb["peak_to_trough"] == pytest.approx(sa["peak_to_trough"], abs=0.002)


def test_dip_buyers_rebuild_leverage_and_oi_stays_conserved():
    bars = simulate(FLOW.with_(insurance_fund_usd=0.0, engine_tau_s=600.0), 2)
    inv, s = bars.attrs["inventory"], bars.attrs["summary"]
    assert s["opened_long_usd"] > 0 and inv["long_opened_qty"] > 0
    for side in ("long", "short"):
        initial = inv[f"{side}_initial_qty"] + inv[f"{side}_opened_qty"]
        parts = inv[f"{side}_live_qty"] + inv[f"{side}_triggered_qty"] + inv[f"{side}_removed_by_adl_qty"]
        assert parts == pytest.approx(initial, rel=1e-9)
        done = inv[f"{side}_executed_qty"] + inv[f"{side}_backlog_qty"] + inv[f"{side}_adl_closed_qty"]
        assert done == pytest.approx(inv[f"{side}_triggered_qty"], rel=1e-9, abs=1e-9)
        assert inv[f"{side}_live_from_bins_qty"] == pytest.approx(inv[f"{side}_live_qty"], rel=1e-9, abs=1e-6)
    # the rebuilt longs are a band that is hit later: more is liquidated than without rebuilding
    plain = simulate(FLOW.with_(insurance_fund_usd=0.0, engine_tau_s=600.0, rebuild_share=0.0), 2).attrs["summary"]
    assert s["liquidated_long_usd"] > plain["liquidated_long_usd"]


def test_the_sell_flow_alone_moves_the_price_by_its_size_over_depth():
    # no leveraged OI, no buyers, no noise, permanent impact: 0.4 x D0 per minute decaying over 30 min
    # integrates to 0.4 x 30 x (1 - e^-6) depth-units = 11.97 % in log price (linear impact, 1 % per D)
    p = FLOW.with_(long_oi_usd=0.0, short_oi_usd=0.0, buyer_strength=0.0, flow_excite=0.0, flow_noise=0.0,
                   noise_per_sqrt_min=0.0, impact_permanent=1.0, depth_kappa=0.0, rebuild_share=0.0)
    bars = simulate(p, 0)
    dt_min = p.dt_s / 60
    steps = np.arange(p.minutes * 6) * dt_min
    expected = 0.01 * 0.4 * dt_min * np.exp(-steps / 30.0).sum()
    assert math.log(bars["close"].iloc[-1] / p.price0) == pytest.approx(-expected, rel=1e-9)


def test_venue_defaults_for_engine_and_mark():
    p = CascadeParams(venue="bitmex", engine_rate=None, mark_window_s=None)
    assert p.engine_rate_eff == 0.3 and p.mark_window_eff == 60.0
    assert CascadeParams(venue="hyperliquid", mark_window_s=None).mark_window_eff == 150.0


def test_adl_closes_the_top_ranked_positions_through_the_exchange_engine():
    # short side, Binance BTCUSDT (linear, 1 BTC contracts), price 10,000. Bins 0-19: 1 BTC shorted at
    # 11,000, bankruptcy 12,100 (10x): in profit. Bins 20-39: 2 BTC shorted at 9,500, bankruptcy 10,450:
    # at a loss, so Binance's LeveragePnL score is 0 and it is queued last.
    from feeds.cascade.model import ADL_GROUP_BINS, adl_close
    from risk.adl import AdlPosition, run_adl

    n = 2 * ADL_GROUP_BINS
    qty, bq, eq = [0.0] * n, [0.0] * n, [0.0] * n
    qty[5], bq[5], eq[5] = 1.0, 12_100.0, 11_000.0
    qty[25], bq[25], eq[25] = 2.0, 2 * 10_450.0, 2 * 9_500.0
    # 1.5 BTC of bankrupt longs (bankruptcy 10,500) with a 750 USD deficit the fund cannot pay
    closed, res = adl_close("binance_usdm", None, 1, 1.5, 10_500.0, 750.0, qty, bq, eq, 10_000.0)
    assert closed[5] == pytest.approx(1.0) and closed[25] == pytest.approx(0.5)
    assert closed.sum() == pytest.approx(1.5)
    # the same as the exchange-level engine called by hand with the two positions
    direct = run_adl("binance_usdm", 1, 1.5, 10_500.0, 750.0,
                     [AdlPosition("bins 000000", -1, 1.0, 11_000.0, 1.0 * (12_100 - 11_000)),
                      AdlPosition("bins 000020", -1, 2.0, 9_500.0, 2.0 * (10_450 - 9_500))],
                     insurance_fund=0.0, mark=10_000.0)
    assert [(f.account, f.qty, f.price) for f in res.fills] == [(f.account, f.qty, f.price) for f in direct.fills]
    assert [f.account for f in res.fills] == ["bins 000000", "bins 000020"]
    assert sum(f.shortfall_covered for f in res.fills) + res.socialised_loss == pytest.approx(750.0)
    # the other side runs out: what is not matched is a socialised loss
    closed, res = adl_close("binance_usdm", None, 1, 6.0, 10_500.0, 600.0, qty, bq, eq, 10_000.0)
    assert closed.sum() == pytest.approx(3.0) and res.socialised_loss == pytest.approx(300.0)


def test_simulator_adl_uses_risk_adl(monkeypatch):
    import risk.adl

    calls = []
    real = risk.adl.run_adl

    def counting(*a, **k):
        calls.append(a[1])
        return real(*a, **k)

    monkeypatch.setattr(risk.adl, "run_adl", counting)
    p = BASE.with_(long_oi_usd=12e9, short_oi_usd=6e9, depth_usd=60e6, engine_rate=0.1, insurance_fund_usd=0.0,
                   shocks=(Shock(0.0, 5.0, 600e6), Shock(60.0, 5.0, -900e6)))
    s = simulate(p, 3).attrs["summary"]
    assert calls and s["adl_runs"] == len(calls)
    assert s["adl_shortfall_covered_usd"] + s["socialised_loss_usd"] > 0


@pytest.mark.parametrize("change, message", [
    ({"depth_usd": "1e6"}, "cascade parameter depth_usd='1e6': expected a number"),
    ({"adl": True, "engine_tau_s": "60"}, "cascade parameter engine_tau_s='60': expected a number"),
    ({"dt_s": True}, "cascade parameter dt_s=True: expected a number"),
    ({"halts": ((30.0, 10.0),)}, "halts must be (start_min, end_min) pairs with 0 <= start < end"),
    ({"halts": ((-1.0, 10.0),)}, "halts must be (start_min, end_min) pairs with 0 <= start < end"),
])
def test_params_reject_non_numbers_and_backward_halts(change, message):
    with pytest.raises(DeleverageError, match=re.escape(message)):
        CascadeParams().with_(**change)
    # None stays allowed where the field means "the venue's" and numpy numbers are numbers
    assert CascadeParams().with_(engine_tau_s=None, depth_usd=np.float64(2e6), minutes=np.int64(30)).minutes == 30
