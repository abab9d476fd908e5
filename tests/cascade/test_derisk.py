"""De-risking (CascadeParams.derisk_close): a share of the directed exogenous flow closes
existing positions pro rata instead of opening new ones. Hand-calculated closes, open interest
conserved with the new term, fewer liquidations, and off means bit-identical."""

from __future__ import annotations

import numpy as np
import pytest

from feeds.cascade import CascadeParams, Shock, simulate
from tests.cascade.conservation import assert_oi_conserved

# a market so deep that the shocks do not move the price (impact 1 % x 1e6 / 1e16): every close
# is at price0, so the closed quantities are hand sums
STILL = CascadeParams(minutes=30, dt_s=10.0, price0=40_000.0, long_oi_usd=2e9, short_oi_usd=1e9, depth_usd=1e16,
                      buyer_strength=0.0, noise_per_sqrt_min=0.0, shocks=(Shock(0.0, 5.0, 400e6), Shock(10.0, 2.0, -100e6)),
                      insurance_fund_usd=0.0, derisk_close=0.25, derisk_lev_share=0.4)


def test_closed_quantities_are_the_hand_sums():
    bars = simulate(STILL, 0)
    inv, s = bars.attrs["inventory"], bars.attrs["summary"]
    assert s["liquidated_long_usd"] == 0 and s["liquidated_short_usd"] == 0   # nothing near a liquidation level
    # the 400M sell shock: 0.25 of it closes positions, 0.4 of that comes off the leveraged longs
    assert inv["long_derisked_qty"] == pytest.approx(0.25 * 0.4 * 400e6 / 40_000.0, rel=1e-9)   # 1,000 BTC
    # the 100M buy shock closes shorts the same way
    assert inv["short_derisked_qty"] == pytest.approx(0.25 * 0.4 * 100e6 / 40_000.0, rel=1e-9)  # 250 BTC
    # every closed quantity, leveraged or not, leaves the open interest
    assert inv["derisked_oi_qty"] == pytest.approx(0.25 * 500e6 / 40_000.0, rel=1e-9)          # 3,125 BTC
    assert inv["long_live_qty"] == pytest.approx(inv["long_initial_qty"] - 1_000.0, rel=1e-9)
    assert_oi_conserved(inv)
    # the model's open interest (leveraged positions) falls by exactly what was closed
    oi = bars["open_interest"].to_numpy()
    assert oi[-1] == pytest.approx(inv["long_initial_qty"] + inv["short_initial_qty"] - 1_250.0, rel=1e-9)


def test_closed_positions_are_no_longer_liquidated():
    # the same crash through the long band liquidates less when part of the longs closed first
    crash = dict(depth_usd=60e6, shocks=(Shock(0.0, 5.0, 400e6), Shock(10.0, 20.0, 3e9)), engine_rate=1.0)
    on = simulate(STILL.with_(**crash), 0).attrs
    off = simulate(STILL.with_(**crash, derisk_close=0.0), 0).attrs
    assert on["inventory"]["long_derisked_qty"] > 0
    assert on["summary"]["liquidated_long_usd"] < off["summary"]["liquidated_long_usd"]
    assert_oi_conserved(on["inventory"])


def test_noise_does_not_de_risk():
    # the two-sided flow noise opens and closes in balance: it closes nothing
    p = STILL.with_(shocks=(), flow_noise=0.5, flow_rate=0.0, depth_usd=150e6)
    inv = simulate(p, 1).attrs["inventory"]
    assert inv["long_derisked_qty"] == 0 and inv["short_derisked_qty"] == 0 and inv["derisked_oi_qty"] == 0


def test_with_rebuilding_and_adl_open_interest_staysassert_oi_conserved():
    # momentum sellers and the burst de-risk while dip buyers open new longs into scaled bins,
    # and an empty fund makes ADL work on the scaled arrays
    p = CascadeParams(minutes=180, dt_s=10.0, price0=40_000.0, long_oi_usd=12e9, short_oi_usd=6e9, depth_usd=60e6,
                      engine_tau_s=600.0, buyer_strength=0.03, noise_per_sqrt_min=0.0005, shocks=(), flow_rate=0.4,
                      flow_tau_min=30.0, flow_excite=0.02, flow_noise=0.2, rebuild_share=0.3, insurance_fund_usd=0.0,
                      derisk_close=0.3, derisk_lev_share=0.5)
    bars = simulate(p, 2)
    inv, s = bars.attrs["inventory"], bars.attrs["summary"]
    assert inv["long_derisked_qty"] > 0 and inv["long_opened_qty"] > 0 and s["adl_runs"] > 0
    assert_oi_conserved(inv)


def test_more_de_risking_liquidates_less_and_off_is_identical():
    p = CascadeParams(minutes=180, dt_s=10.0, price0=40_000.0, long_oi_usd=3e9, short_oi_usd=1.5e9, depth_usd=100e6,
                      engine_tau_s=60.0, buyer_strength=0.03, noise_per_sqrt_min=0.0005, shocks=(), flow_rate=0.4,
                      flow_tau_min=30.0, flow_excite=0.02, flow_noise=0.2, insurance_fund_usd=200e6)
    liq = [simulate(p.with_(derisk_close=c), 0).attrs["summary"]["liquidated_long_usd"] for c in (0.0, 0.2, 0.5, 1.0)]
    assert all(b < a for a, b in zip(liq, liq[1:])), liq
    a, b = simulate(p, 0), simulate(p.with_(derisk_close=0.0, derisk_lev_share=0.3), 0)
    assert np.array_equal(a["close"].to_numpy(), b["close"].to_numpy())
    assert a.attrs["summary"] == b.attrs["summary"]


def test_out_of_range_is_one_clear_error():
    from risk.errors import DeleverageError

    with pytest.raises(DeleverageError, match="derisk_close=1.5"):
        STILL.with_(derisk_close=1.5)


def test_the_summary_path_gives_the_figures_of_the_bar_frame():
    # the calibration runs simulate_summary (no DataFrame); it must be the same run as simulate
    from feeds.cascade.model import simulate_summary

    p = CascadeParams(minutes=120, dt_s=10.0, price0=40_000.0, long_oi_usd=12e9, short_oi_usd=6e9, depth_usd=60e6,
                      engine_tau_s=600.0, buyer_strength=0.03, noise_per_sqrt_min=0.0005, shocks=(), flow_rate=0.4,
                      flow_tau_min=30.0, flow_excite=0.02, flow_noise=0.2, rebuild_share=0.3, insurance_fund_usd=0.0,
                      derisk_close=0.3, derisk_lev_share=0.5)
    for seed in (0, 4):
        bars = simulate(p, seed)
        summary, inventory, close = simulate_summary(p, seed)
        assert summary == bars.attrs["summary"] and inventory == bars.attrs["inventory"]
        assert close == bars["close"].iloc[-1]
