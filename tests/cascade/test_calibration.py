"""The shipped calibration: its stated errors are reproduced; a tiny fit runs end to end."""

from __future__ import annotations

import math

import pytest

from feeds.cascade import fit


def test_shipped_fit_exists_and_is_within_bounds():
    data = fit.fitted()
    assert data is not None, "feeds/cascade/fitted.json must ship with the package"
    for name, (lo, hi) in fit.BOUNDS.items():
        assert lo <= data["theta"][name] <= hi
    assert data["settings"]["target"].startswith("real BitMEX XBTUSD 1m, 2021-05-19")


@pytest.mark.shared_data
def test_shipped_errors_are_reproduced(shared_data):
    data = fit.fitted()
    seeds = tuple(data["settings"]["seeds"])
    for name, key in (("519", "fit_519"), ("312", "holdout_312")):
        got = fit.evaluate(name, data["theta"], seeds, data_path=shared_data)["mean"]
        for k, v in data[key]["mean"].items():
            assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), (name, k)
    # the fit is better in sample than out of sample, and it is a real fit (not the untuned default)
    assert data["fit_519"]["loss"] < data["holdout_312"]["loss"]
    default = fit.evaluate("519", fit.DEFAULT_THETA, seeds, data_path=shared_data)["loss"]
    assert data["fit_519"]["loss"] < default


@pytest.mark.shared_data
def test_tiny_calibration_runs(shared_data):
    r = fit.calibrate(fit=("depth_usd",), seeds=(0,), maxiter=1, popsize=3, data_path=shared_data, holdout=False)
    lo, hi = fit.BOUNDS["depth_usd"]
    assert lo <= r.theta["depth_usd"] <= hi and math.isfinite(r.fit["loss"])
    assert r.settings["evaluations"] >= 3
