"""Positions opened during a simulated cascade (feeds.cascade.kernel._open).

* A new position whose liquidation level lies in the range the mark has already swept (a dip
  buyer's long opened on a rebound, above the lowest mark so far) is opened and can be
  liquidated by the next leg. Until the fix the kernel dropped it silently.
* Momentum shorts (CascadeParams.momentum_short_share): of the momentum sellers' flow that does
  not close longs, a share opens new leveraged shorts at the current price. Opening them does
  not trade (the momentum sale is already in the flow), so a fall without a rebound keeps its
  path; a rebound squeezes them; open interest stays conserved; off is the model without them."""

from __future__ import annotations

import numpy as np
import pytest

from feeds.cascade import CascadeParams, Shock, simulate
from tests.cascade.conservation import assert_oi_conserved

# a leveraged market hit by a sell shock; momentum sellers follow the fall; no value buyers and no
# noise, and all impact permanent, so nothing rebounds
FALL = CascadeParams(minutes=120, dt_s=10.0, price0=40_000.0, long_oi_usd=2e9, short_oi_usd=1e9, depth_usd=300e6,
                     engine_tau_s=60.0, buyer_strength=0.0, noise_per_sqrt_min=0.0, shocks=(Shock(0.0, 10.0, 300e6),),
                     flow_excite=0.02, insurance_fund_usd=1e9, impact_permanent=1.0)


def test_opening_shorts_in_a_fall_without_rebound_keeps_the_path_and_scales_linearly():
    runs = {s: simulate(FALL.with_(momentum_short_share=s), 0) for s in (0.0, 0.3, 0.6)}
    close0 = runs[0.0]["close"].to_numpy()
    assert close0[-1] < 0.98 * FALL.price0                     # it is a fall, and the momentum sellers sell
    opened = {s: b.attrs["inventory"]["short_opened_usd"] for s, b in runs.items()}
    assert opened[0.0] == 0.0 and opened[0.3] > 1e6
    for s in (0.3, 0.6):
        np.testing.assert_array_equal(runs[s]["close"].to_numpy(), close0)
        assert runs[s].attrs["summary"]["liquidated_short_usd"] == 0.0
        assert_oi_conserved(runs[s].attrs["inventory"])
    # the opened notional is the share times the same momentum flow
    assert opened[0.6] == pytest.approx(2.0 * opened[0.3], rel=1e-12)
    # of the momentum flow, the part that closes longs (derisk_close) opens no shorts
    d = simulate(FALL.with_(momentum_short_share=0.3, derisk_close=0.5, derisk_lev_share=0.0), 0)
    np.testing.assert_array_equal(d["close"].to_numpy(), close0)   # closing unleveraged OI does not trade either
    assert d.attrs["inventory"]["short_opened_usd"] == pytest.approx(0.5 * opened[0.3], rel=1e-12)


def test_longs_opened_on_a_rebound_above_the_low_are_liquidated_by_the_next_leg():
    # 10x only (liquidation about 9.5 % below entry); leg 1 sweeps the mark down to about 25.9k, a
    # buy shock lifts it, dip buyers open longs, leg 2 stops above leg 1's low
    p = CascadeParams(minutes=150, dt_s=10.0, price0=40_000.0, long_oi_usd=1e6, short_oi_usd=1e6, depth_usd=20e6,
                      leverage_mix=((10, 1.0),), engine_tau_s=60.0, buyer_strength=0.05, noise_per_sqrt_min=0.0,
                      rebuild_share=0.5, insurance_fund_usd=1e9,
                      shocks=(Shock(0.0, 10.0, 250e6), Shock(40.0, 10.0, -200e6), Shock(90.0, 10.0, 150e6)))
    bars = simulate(p, 0)
    low1, low2 = bars["low"].iloc[:90].min(), bars["low"].iloc[90:].min()
    assert low2 > low1 * 1.1
    # every long live at minute 90 with a level above low2 (which leg 2 reaches) was opened after
    # the mark passed below its level: a long opened at E lives down to 0.905 E, and one opened
    # before leg 1's low with 0.905 E > low1 was liquidated in leg 1. So leg 2's liquidations are
    # longs opened on the rebound, inside the swept range; the kernel used to drop them (0 here)
    leg2 = bars["liq_long_notional"].iloc[90:].sum()
    assert leg2 > 0.5e6
    assert_oi_conserved(bars.attrs["inventory"])


def test_a_rebound_squeezes_the_momentum_shorts():
    # a buy shock after the fall lifts the price through the new shorts' liquidation levels
    p = FALL.with_(shocks=FALL.shocks + (Shock(60.0, 10.0, -300e6),))
    on = simulate(p.with_(momentum_short_share=0.5), 0).attrs
    off = simulate(p, 0).attrs
    assert off["summary"]["liquidated_short_usd"] == 0.0 and on["summary"]["liquidated_short_usd"] > 2e6   # about 4M
    assert_oi_conserved(on["inventory"])


def test_out_of_range_share_is_one_clear_error():
    from risk.errors import DeleverageError

    with pytest.raises(DeleverageError, match="momentum_short_share"):
        FALL.with_(momentum_short_share=1.5)
