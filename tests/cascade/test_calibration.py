"""The shipped calibration: its stated errors are reproduced; a tiny fit runs end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from feeds.cascade import fit
from risk.errors import DeleverageError


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


# --- the cross-event fit (feeds.cascade.calib; `deleverage cascade calibrate --loo --ship`) --------

def test_shipped_market_fit_and_loo_table():
    from feeds.cascade import calib

    data = fit.fitted()["market"]
    assert set(data["theta"]) == set(calib.BOUNDS)
    for name, (lo, hi) in calib.BOUNDS.items():
        assert lo <= data["theta"][name] <= hi
    assert [r["event"] for r in data["loo"]] == list(calib.EVENTS)
    # every leave-one-out row was predicted by a fit that did not see its event
    for r in data["loo"]:
        assert r["theta"] != data["theta"]
    assert "CoinGlass" in data["settings"]["not_used"]
    assert fit.market_theta() == {**__import__("feeds.cascade.market", fromlist=["x"]).MARKET_THETA, **data["theta"]}
    # the shipped fit is what the default command gives: the per-path objective, flow_noise held at 0
    assert data["settings"]["per_path"] is True and data["settings"]["fixed"] == calib.DEFAULT_FIXED
    assert data["theta"]["flow_noise"] == 0.0 and "flow_noise" not in data["settings"]["bounds"]
    assert all(r["theta"]["flow_noise"] == 0.0 for r in data["loo"])


@pytest.mark.shared_data
def test_shipped_in_sample_rows_are_reproduced(shared_data):
    from feeds.cascade import calib

    data = fit.fitted()["market"]
    seeds = tuple(data["settings"]["score_seeds"])
    for stored in data["in_sample"]:
        if stored["event"] not in ("519", "2024-08-05"):  # the two fastest events keep the test short
            continue
        got = calib.row(stored["event"], data["theta"], seeds, str(shared_data))
        for k, v in stored["sim"].items():
            if v is None:   # no real OI figure for this event: no simulated one either
                assert got["sim"][k] is None
                continue
            assert got["sim"][k] == pytest.approx(v, rel=1e-9, abs=1e-9), (stored["event"], k)
        assert got["real"]["peak_to_trough"] == pytest.approx(stored["real"]["peak_to_trough"], rel=1e-12)


@pytest.mark.shared_data
def test_event_targets_are_the_real_figures(shared_data):
    from feeds.cascade.events import EVENTS, targets

    t519 = targets(EVENTS["519"], shared_data)
    assert t519["peak_to_trough"] == pytest.approx(28_157.0 / 39_147.5 - 1, abs=0.02)  # BitMEX low 28,157 at 13:10
    assert t519["time_to_trough_min"] == 70
    t0805 = targets(EVENTS["2024-08-05"], shared_data)
    assert t0805["liq_long_usd"] == pytest.approx(221.93e6, rel=1e-3)  # Coinalyze 2024-08-05, all markets
    assert t0805["oi_change"] == pytest.approx(12.733430 / 15.668014 - 1, rel=1e-4)


@pytest.mark.shared_data
def test_a_tiny_cross_event_fit_runs(shared_data):
    from feeds.cascade import calib

    r = calib.fit_events(["519"], maxiter=1, popsize=1, data_path=str(shared_data))
    assert r["evaluations"] >= len(calib.BOUNDS) and math.isfinite(r["loss"])


@pytest.mark.shared_data
def test_diagnosis_changes_one_thing_at_a_time(shared_data, capsys):
    from engine.cli import main
    from feeds.cascade import calib

    rows = calib.diagnose(data_path=str(shared_data))
    assert [r["event"] for r in rows] == list(calib.EVENTS)
    for r in rows:
        v = r["variants"]
        assert r["long_over_depth"] == pytest.approx(r["long_usd"] / r["depth_usd"])
        # "as fitted" is the shipped simulation; without any exogenous sell flow the fall is much smaller
        assert abs(v["no exogenous flow"]["peak_to_trough"]) < abs(v["as fitted"]["peak_to_trough"])
        # the fall depends on leveraged OI relative to depth: twice the OI, or half the depth, deepens it
        # (not the same path any more: de-risking closes USD amounts, a smaller share of twice the OI)
        assert abs(v["2x leveraged OI"]["peak_to_trough"]) > abs(v["as fitted"]["peak_to_trough"])
        assert abs(v["half depth"]["peak_to_trough"]) > abs(v["as fitted"]["peak_to_trough"])
        # de-risking closes positions that could have been liquidated: without it, at least as many are
        assert v["no de-risking"]["liq_long_usd"] >= v["as fitted"]["liq_long_usd"] * (1 - 1e-9)
    assert main(["cascade", "calibrate", "--diagnose", "--data-path", str(shared_data)]) == 0
    assert "2x leveraged OI" in capsys.readouterr().out


@pytest.mark.shared_data
def test_no_model_baseline_is_the_other_events_real_figures(shared_data):
    """The reference row of the leave-one-out table: 519 is predicted by the mean fall and the
    geometric mean time to trough of the other four real events (by hand from their targets)."""
    from feeds.cascade import calib
    from feeds.cascade.events import EVENTS, targets

    rows = {r["event"]: r for r in calib.baseline_loo(str(shared_data))}
    others = [targets(EVENTS[n], shared_data) for n in ("312", "luna", "ftx", "2024-08-05")]
    b = rows["519"]["sim"]
    assert b["peak_to_trough"] == pytest.approx(sum(t["peak_to_trough"] for t in others) / 4, rel=1e-12)
    times = [t["time_to_trough_min"] for t in others]
    assert b["time_to_trough_min"] == pytest.approx(math.prod(times) ** 0.25, rel=1e-12)
    # 312's long liquidations: the geometric mean of the three Coinalyze events' long totals
    longs = [t["liq_long_usd"] for t in others[1:]]
    assert rows["312"]["sim"]["liq_long_usd"] == pytest.approx(math.prod(longs) ** (1 / 3), rel=1e-12)
    assert rows["519"]["met"]["peak_to_trough"] and not rows["312"]["met"]["peak_to_trough"]


@pytest.mark.shared_data
def test_shipped_loo_rows_are_reproduced_from_their_held_out_fits(shared_data):
    """Every leave-one-out row re-scored now with the theta fitted without its event gives the
    stored figures: the table in docs/cascade.md and the README comes from those fits."""
    from feeds.cascade import calib

    data = fit.fitted()["market"]
    seeds = tuple(data["settings"]["score_seeds"])
    for stored in data["loo"]:
        got = calib.row(stored["event"], stored["theta"], seeds, str(shared_data))
        for k, v in stored["sim"].items():
            if v is None:
                assert got["sim"][k] is None
                continue
            assert got["sim"][k] == pytest.approx(v, rel=1e-9, abs=1e-9), (stored["event"], k)
        assert got["met"] == stored["met"]
        # the table's p10..p90 spread of the fall over the 100 scored paths (seeds 10-109)
        assert got["spread"]["seeds"] == len(seeds) == 100
        assert got["spread"]["peak_to_trough_p10_p90"] == pytest.approx(stored["spread"]["peak_to_trough_p10_p90"], rel=1e-9)
        one = [calib.predict(calib.EVENTS[stored["event"]], stored["theta"], (s,), str(shared_data))["sim"] for s in seeds]
        falls = [r["peak_to_trough"] for r in one]
        assert got["spread"]["peak_to_trough_p10_p90"] == [float(np.percentile(falls, 10)), float(np.percentile(falls, 90))]
        # how many of the scored paths end above the start price (squeezes, not waterfalls)
        assert got["spread"]["paths_up"] == stored["spread"]["paths_up"] == sum(r["close_vs_start"] > 0 for r in one)
        assert got["sim"]["peak_to_trough"] == pytest.approx(float(np.mean(falls)), rel=1e-12)
        # the per-path loss: the mean over the 100 paths of each path's own loss
        real = calib._event_data(stored["event"], str(shared_data))[1]
        assert got["loss_per_path"] == pytest.approx(np.mean([calib.event_loss(calib.errors(r, real)) for r in one]), rel=1e-12)
    # the tables are scored on simulated paths the fit never saw
    assert not set(seeds) & set(data["settings"]["fit_seeds"])


@pytest.mark.shared_data
def test_shipped_fit_meets_more_held_out_goals_than_the_no_model_reference(shared_data):
    from feeds.cascade import calib

    data = fit.fitted()["market"]
    goals = ("peak_to_trough", "time_to_trough", "liq_long", "liq_short")

    def met(rows):
        return sum(r["met"][k] for r in rows for k in goals if k in r["met"])

    reference = calib.baseline_loo(str(shared_data))
    assert met(data["loo"]) > met(reference)
    # and the held-out loss (mean over events, goal units) is below the reference's
    assert sum(r["loss"] for r in data["loo"]) < sum(r["loss"] for r in reference)
    # one path at a time too: the mean of each held-out path's own loss is below the reference's
    # (a deterministic prediction, its own "path"); the fit shipped until session 25 was above it
    assert sum(r["loss_per_path"] for r in data["loo"]) < sum(r["loss"] for r in reference)


@pytest.mark.shared_data
def test_the_per_path_objective_is_the_mean_of_each_paths_loss(shared_data):
    """--per-path: the fit scores every simulated path against the real figures and averages the
    losses (the default); --seed-mean scores the seed-mean figures. Two seeds of 519 under the shipped
    fit with some flow noise put in (0.05; the shipped fit holds it at 0, and its paths then differ little)."""
    from feeds.cascade import calib

    theta = {**fit.market_theta(), "flow_noise": 0.05}
    names = tuple(calib.BOUNDS)
    z = [math.log(theta[n]) if n in calib.LOG_SCALE else theta[n] for n in names]
    pr = calib.predict(calib.EVENTS["519"], theta, (0, 1), str(shared_data))
    per = [calib.event_loss(calib.errors(r, pr["real"])) for r in pr["runs"]]
    assert calib._objective(z, names, ("519",), (0, 1), str(shared_data), True) == pytest.approx(np.mean(per), rel=1e-9)
    mean_loss = calib.event_loss(calib.errors(pr["sim"], pr["real"]))
    assert calib._objective(z, names, ("519",), (0, 1), str(shared_data)) == pytest.approx(mean_loss, rel=1e-9)
    # the two paths differ (519 sits on a knife edge), so the two objectives differ
    assert pr["runs"][0]["peak_to_trough"] != pr["runs"][1]["peak_to_trough"]
    assert abs(np.mean(per) - mean_loss) > 0.1


@pytest.mark.shared_data
def test_optimizer_seed_changes_the_trajectory_and_is_recorded(shared_data):
    from feeds.cascade import calib

    a = calib.calibrate(loo=False, seeds=(0,), score_seeds=(0,), maxiter=1, popsize=1, data_path=str(shared_data), optimizer_seed=0)
    b = calib.calibrate(loo=False, seeds=(0,), score_seeds=(0,), maxiter=1, popsize=1, data_path=str(shared_data), optimizer_seed=1)
    assert (a["settings"]["optimizer_seed"], b["settings"]["optimizer_seed"]) == (0, 1)
    assert a["theta"] != b["theta"]


@pytest.mark.shared_data
def test_rescore_paths_prints_every_held_out_path_and_the_waterfalls_apart(shared_data, capsys):
    from engine.cli import main

    assert main(["cascade", "calibrate", "--rescore", "--paths", "--data-path", str(shared_data)]) == 0
    out = capsys.readouterr().out
    data = fit.fitted()["market"]
    head, tail = out.split("held-out paths, one per seed")[1].split("held out, the paths that end below the start only")
    for stored in data["loo"]:
        ev = stored["event"]
        assert sum(line.startswith(f"| {ev} | ") for line in head.split("\n")) == 100
        down = 100 - stored["spread"]["paths_up"]
        assert f"| {ev} | {down}/100 |" in tail
    # the held-out table's summary line: goals met and both losses, from the re-scored rows
    from feeds.cascade import calib

    rows = [calib.row(r["event"], r["theta"], tuple(data["settings"]["score_seeds"]), str(shared_data)) for r in data["loo"]]
    t = calib.summary(rows)
    assert t["met"] == sum(v for r in data["loo"] for k, v in r["met"].items() if k != "oi_change")
    assert t["loss"] == pytest.approx(np.mean([r["loss"] for r in data["loo"]]), rel=1e-9)
    assert (f"goals met {t['met']} of 17; mean loss {t['loss']:.2f} (of the seed-mean figures), "
            f"{t['loss_per_path']:.2f} per path") in out.split("leave-one-event-out as shipped")[1].split("no-model reference")[0]


def test_table_summary_counts_goals_not_the_oi_change_and_needs_every_per_path_loss():
    from feeds.cascade import calib

    rows = [{"met": {"peak_to_trough": True, "time_to_trough": False, "oi_change": True}, "loss": 1.0, "loss_per_path": 3.0},
            {"met": {"peak_to_trough": True, "liq_long": True, "liq_short": False, "oi_change": False}, "loss": 2.0,
             "loss_per_path": 5.0}]
    assert calib.summary(rows) == {"met": 3, "goals": 5, "loss": 1.5, "loss_per_path": 4.0}
    del rows[1]["loss_per_path"]      # a stored row from before the per-path loss was recorded
    assert calib.summary(rows)["loss_per_path"] is None


@pytest.mark.shared_data
def test_a_fixed_parameter_is_held_at_its_value_and_left_out_of_the_search(shared_data):
    """--fix flow_noise=0: the search runs over the other parameters in their order, and each
    evaluation is the one of the full parameter vector with the fixed value put back."""
    from feeds.cascade import calib

    theta = {**fit.market_theta(), "flow_noise": 0.0781}  # the shipped fit holds it at 0: put noise in
    names = tuple(calib.BOUNDS)
    rest = tuple(n for n in names if n != "flow_noise")

    def z(ns, th):
        return [math.log(th[n]) if n in calib.LOG_SCALE else th[n] for n in ns]

    held = calib._objective(z(rest, theta), rest, ("519",), (0,), str(shared_data), False, {"flow_noise": 0.0})
    full = calib._objective(z(names, {**theta, "flow_noise": 0.0}), names, ("519",), (0,), str(shared_data))
    assert held == full
    assert held != calib._objective(z(names, theta), names, ("519",), (0,), str(shared_data))  # the noise matters
    r = calib.calibrate(loo=False, seeds=(0,), score_seeds=(0,), maxiter=1, popsize=1, data_path=str(shared_data),
                        fixed={"flow_noise": 0.0})
    assert r["theta"]["flow_noise"] == 0.0 and set(r["theta"]) == set(names)
    assert r["settings"]["fixed"] == {"flow_noise": 0.0} and "flow_noise" not in r["settings"]["bounds"]
    assert r["fit"]["evaluations"] == 2 * len(rest)  # popsize 1 x 13 parameters, two generations
    with pytest.raises(DeleverageError, match=r"--fix flow_noise=2.0: expected a number within its bounds \[0, 1\]"):
        calib.check_fixed({"flow_noise": 2.0})
    with pytest.raises(DeleverageError, match="every fitted parameter is fixed"):
        calib.check_fixed({n: calib.BOUNDS[n][0] for n in names})


@pytest.mark.shared_data
def test_a_search_range_given_replaces_the_default_one(shared_data):
    """--bound NAME=LO:HI: the fit searches that range (its theta lies in it), the run records it,
    and --fix is checked against it; the other ranges stay those of calib.BOUNDS."""
    from feeds.cascade import calib

    r = calib.calibrate(loo=False, seeds=(0,), score_seeds=(0,), maxiter=1, popsize=1, data_path=str(shared_data),
                        bounds={"oi_turnover": (2.0, 10.0), "lev_share": (0.005, 0.01)})
    assert 2.0 <= r["theta"]["oi_turnover"] <= 10.0 and 0.005 <= r["theta"]["lev_share"] <= 0.01
    assert r["settings"]["bounds"]["oi_turnover"] == (2.0, 10.0)
    assert r["settings"]["bounds"]["depth_k"] == calib.BOUNDS["depth_k"]
    table = calib.check_bounds({"lev_share": (0.05, 1.0)})  # the range searched until session 30
    assert calib.check_fixed({"lev_share": 0.01}) == {"lev_share": 0.01}
    with pytest.raises(DeleverageError, match=r"--fix lev_share=0.01: expected a number within its bounds \[0.05, 1\]"):
        calib.check_fixed({"lev_share": 0.01}, table)


def test_the_liquidations_are_scored_as_the_source_reports_them():
    """A row's liquidation error uses the reported notional when predict gives one (the Coinalyze
    events under liq_capture), else the simulated notional; the +1e6 floor is the same."""
    from feeds.cascade import calib

    real = {"peak_to_trough": -0.2, "time_to_trough_min": 95, "liq_long_usd": 250e6, "liq_short_usd": 100e6}
    sim = {"peak_to_trough": -0.2, "time_to_trough_min": 95, "liq_long_usd": 999e6, "liq_short_usd": 99e6,
           "liq_long_reported_usd": 499e6, "liq_short_reported_usd": 49e6}
    e = calib.errors(sim, real)
    assert e["liq_long"] == pytest.approx(1.0, abs=1e-12)    # log2((499 + 1) / 250)
    assert e["liq_short"] == pytest.approx(-1.0, abs=1e-12)  # log2((49 + 1) / 100)
    assert e["peak_to_trough"] == 0.0 and e["time_to_trough"] == 0.0
    plain = calib.errors({k: v for k, v in sim.items() if "reported" not in k}, real)
    assert plain["liq_long"] == pytest.approx(math.log2(1000 / 250), abs=1e-12)  # 2: twice the goal's factor


@pytest.mark.shared_data
def test_liq_capture_scales_the_coinalyze_figures_only(shared_data):
    """liq_capture is the share of the simulated notional the throttled public feeds report: it
    scales the reported figures of the Coinalyze events and nothing else (the paths, the true
    notional, every other figure; 312's BitMEX figure is compared as simulated)."""
    from feeds.cascade import calib

    base = {**fit.market_theta(), "liq_capture": 1.0}
    for name, applies in (("luna", True), ("312", False)):
        a = calib.predict(calib.EVENTS[name], base, (0,), str(shared_data))
        b = calib.predict(calib.EVENTS[name], {**base, "liq_capture": 0.25}, (0,), str(shared_data))
        assert a["real"]["liq_throttled"] is applies
        for k in ("peak_to_trough", "time_to_trough_min", "liq_long_usd", "liq_short_usd", "oi_change", "close_vs_start"):
            assert a["sim"][k] == b["sim"][k], (name, k)
        for side in ("long", "short"):
            assert a["sim"][f"liq_{side}_reported_usd"] == a["sim"][f"liq_{side}_usd"]
            want = (0.25 if applies else 1.0) * a["sim"][f"liq_{side}_usd"]
            assert b["sim"][f"liq_{side}_reported_usd"] == pytest.approx(want, rel=1e-12), (name, side)
    assert calib.EVENTS["luna"].days and not calib.EVENTS["312"].days


@pytest.mark.shared_data
def test_an_ensemble_pools_the_paths_of_every_runs_held_out_fit(shared_data):
    """calibrate --ensemble: one run gives its own held-out rows; two runs pool their paths, so the
    mean figures are the average of the two runs' means (same number of paths each) and the
    paths ending up add."""
    import copy

    from feeds.cascade import calib

    a = copy.deepcopy(fit.fitted()["market"])
    b = copy.deepcopy(a)
    for r in b["loo"]:
        r["theta"]["buyer_strength"] *= 1.5   # another fit of each fold
    seeds = (10, 11)
    one = calib.ensemble_rows([a], seeds, str(shared_data))
    for got, stored in zip(one, a["loo"]):
        want = calib.row(stored["event"], stored["theta"], seeds, str(shared_data))
        assert got == want
    rb = [calib.row(r["event"], r["theta"], seeds, str(shared_data)) for r in b["loo"]]
    two = calib.ensemble_rows([a, b], seeds, str(shared_data))
    for got, ra, rbb in zip(two, one, rb):
        assert got["event"] == ra["event"] and got["spread"]["fits"] == 2 and got["spread"]["seeds"] == 2
        assert got["sim"]["peak_to_trough"] == pytest.approx((ra["sim"]["peak_to_trough"] + rbb["sim"]["peak_to_trough"]) / 2, rel=1e-12)
        assert got["sim"]["liq_long_usd"] == pytest.approx((ra["sim"]["liq_long_usd"] + rbb["sim"]["liq_long_usd"]) / 2, rel=1e-12)
        assert got["loss_per_path"] == pytest.approx((ra["loss_per_path"] + rbb["loss_per_path"]) / 2, rel=1e-12)
        assert got["spread"]["paths_up"] == ra["spread"]["paths_up"] + rbb["spread"]["paths_up"]
    assert two[0]["sim"]["peak_to_trough"] != one[0]["sim"]["peak_to_trough"]  # the second fit differs


@pytest.mark.shared_data
def test_the_leave_one_out_fits_side_by_side_give_the_serial_result(shared_data):
    """--loo --workers 2: the six fits run one per process (engine.parallel's pool) and the result
    is the one of the fits run one after the other, each fit in its row; the fits are told apart."""
    from engine.commands.cascade import _fit_map
    from feeds.cascade import calib

    kw = dict(loo=True, seeds=(0,), score_seeds=(10,), maxiter=2, popsize=1, data_path=str(shared_data))
    said: list[str] = []
    serial = calib.calibrate(workers=1, **kw)
    side = calib.calibrate(workers=2, fit_map=_fit_map, progress=said.append, **kw)
    assert side["theta"] == serial["theta"] and side["in_sample"] == serial["in_sample"]
    for a, b in zip(side["loo"], serial["loo"]):
        assert a["event"] == b["event"] and a["theta"] == b["theta"] and a["sim"] == b["sim"]
    for r in serial["loo"]:  # each row holds the fit on the other four (at this budget they differ: 0.0056 / 0.21)
        others = [m for m in calib.EVENTS if m != r["event"]]
        assert r["theta"] == calib.fit_events(others, seeds=(0,), maxiter=2, popsize=1, data_path=str(shared_data))["theta"]
    assert len({r["theta"]["depth_k"] for r in serial["loo"]}) == 2
    assert said[0] == "fitting on all 5 events and without each one: 6 fits side by side over 2 processes ..."
    assert sorted(m.split(":")[0] for m in said[1:]) == sorted(["all events"] + [f"without {n}" for n in calib.EVENTS])
    assert said[-1].endswith("(6 of 6)")
