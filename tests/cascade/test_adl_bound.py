"""The calibration's bound on ADL rounds per run (feeds.cascade.calib.FIT_MAX_ADL_ROUNDS): a run
that needs more rounds stops with one clear error; a bound it does not reach changes nothing."""

from __future__ import annotations

import pytest

from feeds.cascade import CascadeParams
from feeds.cascade.model import AdlRoundsExceeded, simulate_summary
from risk.errors import DeleverageError

# an empty insurance fund and a backlog engine: ADL runs on several steps
ADL = CascadeParams(minutes=180, dt_s=10.0, price0=40_000.0, long_oi_usd=12e9, short_oi_usd=6e9, depth_usd=60e6,
                    engine_tau_s=600.0, buyer_strength=0.03, noise_per_sqrt_min=0.0005, flow_rate=0.4,
                    flow_tau_min=30.0, flow_excite=0.02, flow_noise=0.2, rebuild_share=0.3, insurance_fund_usd=0.0)


def test_a_bound_below_the_rounds_stops_the_run_and_one_above_changes_nothing():
    free = simulate_summary(ADL, 2)
    rounds = free[0]["adl_runs"]
    assert rounds >= 3
    with pytest.raises(AdlRoundsExceeded, match=f"more than {rounds - 1} ADL rounds"):
        simulate_summary(ADL, 2, max_adl_rounds=rounds - 1)
    assert issubclass(AdlRoundsExceeded, DeleverageError)   # the fit scores it as a failed set
    bounded = simulate_summary(ADL, 2, max_adl_rounds=rounds)
    assert bounded[0] == free[0] and bounded[1] == free[1] and bounded[2] == free[2]


@pytest.mark.shared_data
def test_the_shipped_fit_stays_below_the_bound_on_every_fit_path(shared_data):
    # the fit scored every set on its fit seeds with the bound: the shipped set passed it there
    from feeds.cascade import calib
    from feeds.cascade.fit import fitted

    data = fitted()["market"]
    for name, ev in calib.EVENTS.items():
        p = calib.params_for(ev, data["theta"], str(shared_data))
        for seed in data["settings"]["fit_seeds"]:
            sm, _, _ = simulate_summary(p, seed, max_adl_rounds=calib.FIT_MAX_ADL_ROUNDS)
            assert sm["adl_runs"] <= calib.FIT_MAX_ADL_ROUNDS, (name, seed)
