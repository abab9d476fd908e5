"""`deleverage cascade simulate --data --at` and `deleverage liqmap` end to end on a small canonical file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine.cli import main


@pytest.fixture()
def bars_csv(tmp_path):
    idx = pd.date_range("2024-03-01", periods=30 * 60, freq="1min", tz="UTC", name="open_time")
    rng = np.random.default_rng(3)
    close = 40_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, len(idx))))
    f = pd.DataFrame({"open": np.r_[close[0], close[:-1]], "high": close * 1.0006, "low": close * 0.9994,
                      "close": close, "volume": 20.0}, index=idx)
    f["high"] = np.maximum(f["high"], f["open"])
    f["low"] = np.minimum(f["low"], f["open"])
    path = tmp_path / "bars.csv"
    f.to_csv(path, date_format="%Y-%m-%dT%H:%M:%SZ")
    return path


def test_simulate_from_a_file(bars_csv, tmp_path, capsys):
    out = tmp_path / "sim.parquet"
    assert main(["cascade", "simulate", "--data", str(bars_csv), "--at", "2024-03-02T00:00Z", "--minutes", "60",
                 "--venue", "binance_usdm", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "initial conditions from" in text and "SIMULATED" in text and "volume-profile proxy" in text
    sim = pd.read_parquet(out)
    assert len(sim) == 60 and sim.index[0] == pd.Timestamp("2024-03-02T00:00Z")
    meta = json.loads((tmp_path / "sim.parquet.meta.json").read_text())
    assert meta["kind"] == "simulated" and "SIMULATED" in meta["label"]


def test_monte_carlo_counts_the_paths_that_end_above_the_start(bars_csv, tmp_path, capsys):
    out = tmp_path / "mc.csv"
    assert main(["cascade", "simulate", "--data", str(bars_csv), "--at", "2024-03-02T00:00Z", "--minutes", "60",
                 "--venue", "binance_usdm", "--runs", "6", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    table = pd.read_csv(out)
    up = int((table["close_vs_start"] > 0).sum())
    assert f"{up} of 6 end above the start price (a squeeze, not a waterfall)" in text


def test_simulate_errors_are_one_line(bars_csv, capsys):
    assert main(["cascade", "simulate", "--data", str(bars_csv), "--out", "x.parquet"]) == 2
    assert "--data needs --at" in capsys.readouterr().err
    assert main(["cascade", "simulate", "--data", str(bars_csv), "--at", "2020-01-01", "--out", "x.parquet"]) == 2
    assert "no bars in the 72 h before it" in capsys.readouterr().err


def test_liqmap_table_chart_and_lines(bars_csv, tmp_path, capsys):
    out, chart = tmp_path / "map.parquet", tmp_path / "map.html"
    assert main(["liqmap", "--data", str(bars_csv), "--at", "2024-03-02T00:00Z", "--venue", "binance_usdm",
                 "--out", str(out), "--chart", str(chart)]) == 0
    text = capsys.readouterr().out
    assert "ESTIMATED liquidation map" in text and "densest long (below) bands" in text
    m = pd.read_parquet(out)
    assert len(m) == 81 and {"band_low", "band_high", "long_usd", "short_usd"} <= set(m.columns)
    assert chart.read_text().count("densest") >= 1
    lines = tmp_path / "lines.parquet"
    assert main(["liqmap", "--data", str(bars_csv), "--venue", "binance_usdm", "--lines", str(lines)]) == 0
    f = pd.read_parquet(lines)
    assert f["liqmap_long_near_usd"].notna().sum() == 24 * 60
    assert main(["liqmap", "--data", str(bars_csv)]) == 2
    assert "needs --data FILE and --at TIME" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_backtest_reads_the_map_lines_from_a_file(bars_csv, tmp_path, capsys, suffix):
    from feeds.cascade.liqmap import LINE_COLUMNS
    from feeds.detect import load

    lines = tmp_path / f"bars+map{suffix}"
    assert main(["liqmap", "--data", str(bars_csv), "--venue", "binance_usdm", "--lines", str(lines)]) == 0
    written = pd.read_parquet(lines) if suffix == ".parquet" else pd.read_csv(lines, index_col=0)
    loaded = load(lines)
    # the canonical loader keeps the lines as written: same values, NaN before the first map (never filled)
    for c in LINE_COLUMNS:
        np.testing.assert_array_equal(loaded[c].to_numpy(), written[c].to_numpy())
    assert loaded["liqmap_long_near_usd"].isna().sum() == 6 * 60
    capsys.readouterr()
    run = tmp_path / "run"
    assert main(["backtest", "--data", str(lines), "--strategy", "liq_band_break", "--venue", "binance_usdm",
                 "--no-funding", "--param", "lookback=60", "--param", "min_band_usd=0", "--out", str(run),
                 "--json", "--no-report"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["fills"] > 0  # the strategy trades on the lines (without them it refuses to run)
    assert main(["backtest", "--data", str(bars_csv), "--strategy", "liq_band_break", "--venue", "binance_usdm",
                 "--no-funding", "--out", str(tmp_path / "run2"), "--no-report"]) == 2
    assert "liqmap" in capsys.readouterr().err


def test_calibrate_paths_without_rescore_is_one_clear_error(capsys):
    assert main(["cascade", "calibrate", "--paths"]) == 2
    assert "--paths prints the paths of the shipped fit's held-out rows: use it with --rescore" in capsys.readouterr().err


@pytest.mark.parametrize("argv, flags, mode", [
    (["--rescore", "--per-path"], "--per-path", "--rescore"),
    (["--rescore", "--ship"], "--ship", "--rescore"),
    (["--diagnose", "--loo", "--workers", "2"], "--loo, --workers", "--diagnose"),
    (["--rescore", "--optimizer-seed", "1", "--out", "x.json"], "--out, --optimizer-seed", "--rescore"),
    (["--legacy", "--loo", "--per-path"], "--loo, --per-path", "--legacy"),
    (["--shipped", "--maxiter", "3"], "--maxiter", "--shipped"),
    (["--legacy", "--score-seeds", "10:20"], "--score-seeds", "--legacy"),
    (["--diagnose", "--score-seeds", "10:20"], "--score-seeds", "--diagnose"),
    (["--rescore", "--fix", "flow_noise=0"], "--fix", "--rescore"),
    (["--rescore", "--free", "flow_noise"], "--free", "--rescore"),
    (["--ensemble", "a.json", "--bound", "lev_share=0.01:1"], "--bound", "--ensemble"),
    (["--diagnose", "--seed-mean"], "--seed-mean", "--diagnose"),
])
def test_calibrate_fit_options_in_a_rescore_or_diagnose_mode_are_one_clear_error(capsys, argv, flags, mode):
    """--rescore and --diagnose use the shipped fit, --legacy and --shipped read only some options of a
    fit; any other would be silently ignored."""
    assert main(["cascade", "calibrate", *argv]) == 2
    err = capsys.readouterr().err
    assert f"{flags}: not read by {mode}; drop" in err
    assert "Traceback" not in err


def test_calibrate_rescore_and_diagnose_together_is_one_clear_error(capsys):
    assert main(["cascade", "calibrate", "--rescore", "--diagnose"]) == 2
    assert "--rescore and --diagnose are separate modes: use one at a time" in capsys.readouterr().err
    assert main(["cascade", "calibrate", "--diagnose", "--shipped", "--legacy"]) == 2
    assert "--diagnose and --shipped are separate modes: use one at a time" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--set", "flow_noise=abc"], "cascade parameter flow_noise='abc': expected a number"),
    (["--set", "minutes=true"], "cascade parameter minutes=True: expected a number"),
    (["--runs", "0"], "--runs 0: expected a number of runs >= 1"),
    (["--halt", "10:5"], "--halt '10:5': expected 0 <= START_MIN < END_MIN (minutes after --at)"),
])
def test_simulate_bad_values_are_one_clear_line(bars_csv, tmp_path, capsys, extra, message):
    """Each used to fail inside the model (a TypeError on a string), run one path for --runs 0, or
    accept a halt that ends before it starts."""
    out = tmp_path / "sim.csv"
    assert main(["cascade", "simulate", "--data", str(bars_csv), "--at", "2024-03-02T00:00Z", "--minutes", "60",
                 "--venue", "binance_usdm", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "internal error" not in err and "Traceback" not in err
    assert not out.exists()


def test_a_liquidation_event_frame_is_named_as_such_not_a_type_error():
    from feeds.cascade.market import check_bars
    from risk.errors import DeleverageError

    events = pd.DataFrame({"time": pd.to_datetime(["2024-12-04T16:46Z"]), "price": [97_000.0], "notional": [1e4]})
    events.attrs.update(frame_kind="events", source_label="force.csv")
    with pytest.raises(DeleverageError, match=r"^force\.csv: holds liquidation events, not price bars; the map needs bars"):
        check_bars(events, "the map")
    bars = pd.DataFrame({"close": [1.0], "high": [1.0]}, index=pd.date_range("2024-01-01", periods=1, tz="UTC"))
    with pytest.raises(DeleverageError, match="the map: the frame lacks column 'low'"):
        check_bars(bars, "the map")
    with pytest.raises(DeleverageError, match="needs a UTC DatetimeIndex"):
        check_bars(bars.tz_localize(None), "the map")


@pytest.mark.shared_data
@pytest.mark.parametrize("command", [["liqmap"], ["cascade", "simulate"]])
def test_liqmap_and_simulate_on_a_liquidation_file_are_one_clear_line(shared_data, tmp_path, capsys, command):
    f = shared_data / "hyperliquid_liquidations_with_fills_2023-02-28_2023-05-01.csv"
    assert main([*command, "--data", str(f), "--at", "2023-03-10T00:00Z", "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{f}: holds liquidation events, not price bars" in err and "internal error" not in err


@pytest.mark.shared_data
def test_coinglass_check_needs_at_least_one_day(shared_data, capsys):
    assert main(["cascade", "coinglass-check", "--days", "0", "--data-path", str(shared_data)]) == 2
    assert "--days 0: expected a number of days >= 1" in capsys.readouterr().err


def test_simulate_options_that_would_be_ignored_are_one_clear_line(bars_csv, capsys):
    """--at/--minutes/--venue/--halt only shape a run from --data, and --preset competes with it."""
    assert main(["cascade", "simulate", "--preset", "312", "--at", "2021-05-19", "--minutes", "30", "--out", "x.csv"]) == 2
    assert "--at, --minutes: only with --data (a preset has its own start, window and venue)" in capsys.readouterr().err
    assert main(["cascade", "simulate", "--halt", "1:2", "--out", "x.csv"]) == 2
    assert "--halt: only with --data" in capsys.readouterr().err
    assert main(["cascade", "simulate", "--preset", "312", "--data", str(bars_csv), "--at", "2024-03-02T00:00Z",
                 "--out", "x.csv"]) == 2
    assert "--preset 312 and --data: the initial conditions come from one of them; drop one" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--at", "2024-03-02T00:00Z", "--within", "3"], "--within: not used by a map (--data --at); drop it"),
    (["--at", "2024-03-02T00:00Z", "--leverage", "5", "--sensitivity"], "--leverage, --sensitivity: not used by a map (--data --at); drop them"),
    (["--lines", "x.parquet", "--at", "2024-03-02T00:00Z"], "--at: not used by --lines; drop it"),
    (["--stress", "519", "--validate", "f.csv"], "--stress and --validate are separate modes of liqmap: use one at a time"),
    (["--stress", "519", "--leverage", "abc"], "--leverage: 'abc' is not a number"),
    (["--stress", "519,519"], "--stress '519,519': 519 is given twice; expected each item once"),
    (["--stress", "519,"], "--stress '519,': item 2 is empty"),
    (["--stress", "519", "--leverage", "0,3"], "--leverage '0,3': every leverage must be > 0"),
    (["--at", "2024-03-02T00:00Z", "--band", "0"], "--band 0: expected a band width in (0, 10] percent of the price"),
    (["--at", "2024-03-02T00:00Z", "--range", "-5"], "--range -5: expected a span in (--band, 90] percent of the price"),
    (["--at", "2024-03-02T00:00Z", "--lookback", "0"], "--lookback 0: expected a number of hours > 0"),
    (["--at", "2024-03-02T00:00Z", "--out", "map.txt"], "--out map.txt: expected a .parquet or .csv file name"),
])
def test_liqmap_options_outside_their_mode_or_range_are_one_clear_line(bars_csv, capsys, argv, message):
    """Each was silently ignored, failed inside (a ValueError on --leverage abc) or only after the map was built."""
    data = [] if "--stress" in argv else ["--data", str(bars_csv)]
    assert main(["liqmap", *data, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "internal error" not in err


def test_liqmap_validate_with_map_options_is_one_clear_line(tmp_path, capsys):
    assert main(["liqmap", "--validate", str(tmp_path / "f.csv"), "--band", "1"]) == 2
    assert "--band: not used by --validate; drop it" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "x", "--loo"], "--seeds: 'x' is not an integer"),
    (["--legacy", "--seeds", "-1"], "--seeds '-1': -1 is negative; expected seeds >= 0, e.g. 0,1,2"),  # was a RuntimeError
    (["--legacy", "--seeds", "1,1"], "--seeds '1,1': 1 is given twice; expected each item once"),
    (["--legacy", "--seeds", "1,,2"], "--seeds '1,,2': item 2 is empty"),
    (["--maxiter", "0"], "--maxiter 0: expected an integer of at least 1"),
    (["--legacy", "--popsize", "0"], "--popsize 0: expected an integer of at least 1"),  # ran a fit before
    (["--workers", "0"], "--workers 0: expected an integer of at least 1"),
    (["--optimizer-seed", "-1"], "--optimizer-seed -1: expected an integer of at least 0"),
    (["--rescore", "--score-seeds", "20"], "--score-seeds '20': expected START:END with 0 <= START < END"),
    (["--rescore", "--score-seeds", "20:10"], "--score-seeds '20:10': expected START:END"),
    (["--score-seeds", "a:b"], "--score-seeds 'a:b': expected START:END"),
    (["--fix", "flow_noise"], "--fix 'flow_noise': expected NAME=VALUE with a number, e.g. flow_noise=0"),
    (["--fix", "noise=0"], "--fix noise: not a fitted parameter; expected one of depth_k, "),
    (["--fix", "flow_noise=1.5"], "--fix flow_noise=1.5: expected a number within its bounds [0, 1]"),
    (["--fix", "flow_noise=0", "--fix", "flow_noise=0.1"], "--fix flow_noise: given twice"),
    (["--free", "depth_k"], "--free depth_k: not held by default; only flow_noise, liq_capture are"),
    (["--free", "flow_noise", "--free", "flow_noise"], "--free flow_noise: given twice"),
    (["--free", "flow_noise", "--fix", "flow_noise=0.1"], "--fix flow_noise and --free flow_noise: use one of them"),
    (["--per-path", "--seed-mean"], "--per-path and --seed-mean are the two objectives of a fit: use one of them"),
    (["--bound", "oi_turnover=10"], "--bound 'oi_turnover=10': expected NAME=LO:HI with two numbers, e.g. oi_turnover=0.02:10"),
    (["--bound", "oi_turnover=a:10"], "--bound 'oi_turnover=a:10': expected NAME=LO:HI with two numbers"),
    (["--bound", "turnover=0.1:10"], "--bound turnover: not a fitted parameter; expected one of depth_k, "),
    (["--bound", "lev_share=0.5:0.1"], "--bound lev_share=0.5:0.1: expected finite LO < HI"),
    (["--bound", "oi_turnover=0:10"], "--bound oi_turnover=0:10: oi_turnover is searched in log scale; expected LO > 0"),
    (["--bound", "lev_share=0.01:1", "--bound", "lev_share=0.02:1"], "--bound lev_share: given twice"),
    (["--bound", "flow_excite=-0.1:0.3"], "--bound flow_excite=-0.1:0.3: flow_excite is not negative; expected LO >= 0"),
    (["--bound", "lev_share=0.01:2"], "--bound lev_share=0.01:2: lev_share is a share; expected HI <= 1"),
    (["--bound", "lev_share=0.2:1", "--fix", "lev_share=0.1"], "--fix lev_share=0.1: expected a number within its bounds [0.2, 1]"),
])
def test_calibrate_bad_counts_and_seeds_are_one_clear_line(capsys, argv, message):
    from tests.cli_errors import one_line_error

    assert main(["cascade", "calibrate", *argv]) == 2
    assert message in one_line_error(capsys)


@pytest.mark.shared_data
def test_rescore_on_other_score_seeds_gives_that_decades_figures(shared_data, capsys):
    """--score-seeds re-scores the stored fits on other paths. Seeds 10-19 were the tables' paths until
    the tables moved to 100 (10-109): the shipped fit's held-out summary reads 7 of 17, loss 2.63, 2.81
    per path there, and 9 of 17, 2.62 and 2.82 on seeds 20-29 (docs/cascade.md, the decades of score
    seeds)."""
    for seeds, held_out in (("10:20", "goals met 7 of 17; mean loss 2.63 (of the seed-mean figures), 2.81 per path"),
                            ("20:30", "goals met 9 of 17; mean loss 2.62 (of the seed-mean figures), 2.82 per path")):
        assert main(["cascade", "calibrate", "--rescore", "--score-seeds", seeds, "--data-path", str(shared_data)]) == 0
        out = capsys.readouterr().out
        lo, hi = (int(x) for x in seeds.split(":"))
        assert f"re-scored now on seeds {lo}-{hi - 1} " in out
        summaries = [line for line in out.splitlines() if line.startswith("goals met")]
        assert summaries[1].startswith(held_out)  # in sample, held out, reference
        assert "(10 seeds, " in out and "(100 seeds, " not in out


def test_calibrate_holds_flow_noise_at_zero_by_default_and_free_and_fix_change_it():
    """The default configuration (calib.DEFAULT_FIXED): flow_noise held at 0 and liq_capture at 1;
    --free fits one again, --fix overrides the default value or holds another parameter as well."""
    from engine.commands.cascade import _fixed
    from feeds.cascade import calib

    assert calib.DEFAULT_FIXED == {"flow_noise": 0.0, "liq_capture": 1.0}
    assert _fixed(None, None, calib.DEFAULT_FIXED) == {"flow_noise": 0.0, "liq_capture": 1.0}
    assert _fixed(None, ["flow_noise"], calib.DEFAULT_FIXED) == {"liq_capture": 1.0}
    assert _fixed(None, ["flow_noise", "liq_capture"], calib.DEFAULT_FIXED) == {}
    assert _fixed(["flow_noise=0.2"], None, calib.DEFAULT_FIXED) == {"flow_noise": 0.2, "liq_capture": 1.0}
    assert _fixed(["momentum_short_share=0"], None, calib.DEFAULT_FIXED) == {"flow_noise": 0.0, "liq_capture": 1.0,
                                                                             "momentum_short_share": 0.0}


@pytest.mark.shared_data
@pytest.mark.parametrize("extra, per_path, fixed", [
    ([], True, {"flow_noise": 0.0, "liq_capture": 1.0}),               # the default: per path, no flow noise
    (["--per-path"], True, {"flow_noise": 0.0, "liq_capture": 1.0}),   # the flag only states the default
    (["--seed-mean", "--free", "flow_noise"], False, {"liq_capture": 1.0}),  # the configuration shipped until session 25
    (["--free", "liq_capture"], True, {"flow_noise": 0.0}),            # the throttled-feed observation model (session 26)
])
def test_calibrate_records_its_objective_and_held_parameters(shared_data, tmp_path, capsys, extra, per_path, fixed):
    out = tmp_path / "fit.json"
    assert main(["cascade", "calibrate", "--maxiter", "1", "--popsize", "1", "--seeds", "0", "--score-seeds", "0:1",
                 "--data-path", str(shared_data), "--out", str(out), *extra]) == 0
    text = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["settings"]["per_path"] is per_path and r["settings"]["fixed"] == fixed
    for name in ("flow_noise", "liq_capture"):
        assert (name in r["settings"]["bounds"]) is (name not in fixed)
        if name in fixed:
            assert r["theta"][name] == fixed[name]
    assert f"(fixed, not fitted: {', '.join(fixed)})" in text if fixed else "fixed, not fitted" not in text
    assert ("the loss of the seed-mean figures (--seed-mean)" in text) is (not per_path)


def test_a_table_shows_the_reported_share_of_the_simulated_liquidations_when_it_differs():
    """--free liq_capture: a Coinalyze row shows 'reported X of Y' (X scored, Y simulated) and the
    table says what X is; rows whose reported figure is the simulated one show it alone."""
    from engine.commands.cascade import format_table

    def row(name, rep):
        sim = {"peak_to_trough": -0.2, "time_to_trough_min": 100.0, "liq_long_usd": 800e6, "liq_short_usd": 100e6,
               "liq_long_reported_usd": rep * 800e6, "liq_short_reported_usd": rep * 100e6, "oi_change": None}
        real = {"peak_to_trough": -0.25, "time_to_trough_min": 90, "liq_long_usd": 470e6, "liq_short_usd": 50e6}
        return {"event": name, "sim": sim, "real": real, "met": {"liq_long": True}, "loss": 1.0}

    text = format_table([row("luna", 0.25), row("312", 1.0)], "t")
    assert "| luna | -20.0% / -25.0% | 100 / 90 | reported 200M of 800M / 470M | reported 25M of 100M / 50M |" in text
    assert "| 312 | -20.0% / -25.0% | 100 / 90 | 800M / 470M | 100M / 50M |" in text
    assert "X = liq_capture x Y" in text
    assert "liq_capture" not in format_table([row("312", 1.0)], "t")


@pytest.mark.shared_data
def test_calibrate_ensemble_prints_the_pooled_held_out_table(shared_data, tmp_path, capsys):
    from feeds.cascade import fit

    run = tmp_path / "run.json"
    run.write_text(json.dumps(fit.fitted()["market"]))
    assert main(["cascade", "calibrate", "--ensemble", str(run), str(run), "--score-seeds", "10:12",
                 "--data-path", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ENSEMBLE of 2 stored leave-one-out runs, scored now on seeds 10-11")
    assert "(2 fits x 2 seeds, " in out and "no-model reference" in out


def test_calibrate_ensemble_bad_files_are_one_clear_line(tmp_path, capsys):
    from tests.cli_errors import one_line_error

    bad_json, no_loo, old = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    bad_json.write_text("{not json")
    no_loo.write_text(json.dumps({"theta": {}, "loo": None}))
    events = ["312", "519", "luna", "ftx", "2024-08-05"]
    old.write_text(json.dumps({"settings": {}, "loo": [{"event": e, "theta": {"depth_k": 0.05}} for e in events]}))
    cases = [(tmp_path / "none.json", "no such file"), (bad_json, "not a calibration JSON (JSONDecodeError"),
             (no_loo, "expected the leave-one-out table of events 312, 519, luna, ftx, 2024-08-05"),
             (old, "the held-out fit of 312 has no book_k, oi_turnover")]
    for path, message in cases:
        assert main(["cascade", "calibrate", "--ensemble", str(path)]) == 2
        line = one_line_error(capsys)
        assert f"--ensemble {path}: " in line and message in line, line
    assert main(["cascade", "calibrate", "--ensemble", str(old), "--ship"]) == 2
    assert "--ship: not read by --ensemble" in one_line_error(capsys)
