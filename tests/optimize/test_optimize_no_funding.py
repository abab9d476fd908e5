"""``optimize --no-funding`` settles no funding, as ``backtest --no-funding``: the ``funding_rate``
column of the --data bars and of every --survive segment is left out, in every search method, on
both engines, in every walk-forward layout. A run with the flag on bars carrying funding equals the
run on the same bars without the column; without the flag the funding is settled (hand-computed).
"""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from engine.cli import main

# settlements at 00:00, 08:00 and 16:00 UTC of 2021-01-01 and -02 (fractions; the base rate 0.0001
# makes the unit detection say "fraction")
DATA_RATES = [0.0001, 0.003, 0.0001, 0.003, 0.0001, 0.003]
SURVIVE_RATES = [0.0001, 0.0001, 0.04, 0.04, 0.0001, 0.0001]


def write_bars(path, rates=None, flat=False, n=48):
    """``n`` hourly bars from 2021-01-01 00:00 UTC: open 20,000 + 100 per bar and close open + 100
    (``flat``: open = close = 20,000), high close + 50, low open - 50; a ``funding_rate`` column
    with ``rates`` on the 00/08/16 bars when given."""
    times = pd.date_range("2021-01-01", periods=n, freq="h", tz="UTC")
    opens = [20_000.0 + (0.0 if flat else 100.0 * i) for i in range(n)]
    closes = [o + (0.0 if flat else 100.0) for o in opens]
    frame = pd.DataFrame({"open_time": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times], "open": opens,
                          "high": [c + 50.0 for c in closes], "low": [o - 50.0 for o in opens], "close": closes,
                          "volume": 10.0})
    if rates is not None:
        it = iter(rates)
        frame["funding_rate"] = [next(it) if t.hour in (0, 8, 16) else None for t in times]
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def files(tmp_path):
    return {"data": write_bars(tmp_path / "data.csv", DATA_RATES),
            "data_bare": write_bars(tmp_path / "data_bare.csv"),
            "survive": write_bars(tmp_path / "survive.csv", SURVIVE_RATES, flat=True),
            "survive_bare": write_bars(tmp_path / "survive_bare.csv", flat=True)}


def run(out, data, survive, *extra):
    args = ["optimize", "buy_and_hold", "--data", str(data), "--survive", str(survive), "--objective", "return",
            "--symbol", "BTCUSDT", "--workers", "1", "--no-progress", "--no-report", "--out", str(out), *extra]
    assert main(args) == 0
    return pd.read_parquet(out / "trials.parquet"), records(out)


def records(out):
    """The stored unit records by (params, segment kind): score, liquidated, min_distance, error."""
    with sqlite3.connect(out / "trials.sqlite") as conn:
        rows = conn.execute("SELECT params, segment, score, liquidated, min_distance, error FROM evals").fetchall()
    # the --survive segment is named by its file, which differs between the runs compared
    return sorted((p, "survive" if s.startswith("scenario:") else s, score, liq, dist, err)
                  for p, s, score, liq, dist, err in rows)


def comparable(table):
    """The table without the --survive file's name (the bare and the funded files are named apart)."""
    t = table.copy()
    t["liquidated_in"] = t["liquidated_in"].map(lambda v: "survive" if len(v) else "")
    return t


# one point (leverage 20) per search; de and the random draws stay on the single value too
SEARCHES = {
    "grid": ["--param", "leverage=20:20"],
    "grid-backtrader": ["--param", "leverage=20:20", "--engine", "backtrader"],
    "grid-per-set": ["--param", "leverage=20:20", "--batch", "1"],
    "grid-walk-forward-0": ["--param", "leverage=20:20", "--walk-forward", "0"],
    "grid-walk-forward-2": ["--param", "leverage=20:20", "--walk-forward", "2"],
    "random": ["--param", "leverage=20:20", "--method", "random", "--trials", "1"],
    "de": ["--param", "leverage=20:20", "--method", "de", "--popsize", "1", "--maxiter", "0"],
    "tpe": ["--param", "leverage=20:20", "--method", "tpe", "--trials", "1"],
    "nsga2": ["--param", "leverage=20:20", "--method", "nsga2", "--trials", "1"],
}


@pytest.mark.parametrize("search", list(SEARCHES))
def test_no_funding_equals_the_bars_without_funding(tmp_path, files, search, capsys) -> None:
    extra = SEARCHES[search]
    off, off_rec = run(tmp_path / "off", files["data"], files["survive"], "--no-funding", *extra)
    assert "--no-funding: no funding settled" in capsys.readouterr().out
    bare, bare_rec = run(tmp_path / "bare", files["data_bare"], files["survive_bare"], "--no-funding", *extra)
    on, on_rec = run(tmp_path / "on", files["data"], files["survive"], *extra)
    assert [r[3] for r in on_rec if r[1] == "survive"] == [1] and [r[3] for r in off_rec if r[1] == "survive"] == [0]
    pd.testing.assert_frame_equal(comparable(off), comparable(bare))
    assert off_rec == bare_rec
    # without the flag the funding is settled: the survive bars' two 4 % settlements liquidate the
    # 20x long (9.92 BTC at 20,000: 2 x 0.04 x 198,400 = 15,872 > the 10,000 margin), so no set is feasible
    assert (off["liquidated_in"] == "").all() and off["feasible"].all()
    assert (on["liquidated_in"] == str(files["survive"])).all() and not on["feasible"].any()
    assert (on["score_in_sample"] < off["score_in_sample"]).all()


@pytest.mark.parametrize("engine", ["fast", "backtrader"])
def test_the_funding_difference_is_the_hand_computed_payments(tmp_path, files, engine) -> None:
    extra = ["--param", "leverage=20:20", "--engine", engine]
    off, _ = run(tmp_path / "off", files["data"], files["survive"], "--no-funding", *extra)
    on, _ = run(tmp_path / "on", files["data"], files["survive"], *extra)
    # in sample (bars 0-23): 20x buy_and_hold fills at the open 20,000 (taker fee 0.04 %):
    # qty = 10,000 * 20 / (1 + 20 * 0.0004) * 0.999999 / 20,000 = 9.92063 -> 9.920 (lot 0.001). 00:00 is settled
    # before the fill (flat); 08:00 0.3 % at the open 20,800 and 16:00 0.01 % at 21,600:
    # 9.92 * (20,800 * 0.003 + 21,600 * 0.0001) = 9.92 * 64.56 = 640.4352 USDT of 10,000 cash
    assert int(10_000 * 20 / 1.008 * 0.999999 / 20_000 * 1000) == 9_920
    assert off["score_in_sample"].iloc[0] - on["score_in_sample"].iloc[0] == pytest.approx(0.06404352, rel=1e-9)
    # out of sample (bars 24-47), fresh cash, fill at 22,400: qty = 200,000 / 1.008 * 0.999999 / 22,400 = 8.85770
    # -> 8.857; 2021-01-02 00:00 is before the fill; 08:00 0.01 % at 23,200 and 16:00 0.3 % at 24,000:
    # 8.857 * (23,200 * 0.0001 + 24,000 * 0.003) = 8.857 * 74.32 = 658.25224
    assert int(10_000 * 20 / 1.008 * 0.999999 / 22_400 * 1000) == 8_857
    assert off["score_out_of_sample"].iloc[0] - on["score_out_of_sample"].iloc[0] == pytest.approx(0.065825224,
                                                                                                     rel=1e-9)


def test_a_built_in_survive_scenario_runs_without_its_funding(tmp_path, files, monkeypatch) -> None:
    """--survive 312: the reconstruction's funding_rate column (Binance's settlements of 312) is left out
    with --no-funding: the scenario's record equals the one on the same bars without the column."""
    import importlib
    from collections import OrderedDict

    from feeds.scenarios import Scenario

    ev = importlib.import_module("engine.optimize.evaluate")  # the module (the package exports the function)

    def fresh_caches() -> None:  # each run loads its bars again (the workers run in this process)
        for name in ("_BARS", "_SEGMENTS", "_PREPARED", "_CURVES"):
            monkeypatch.setattr(ev, name, OrderedDict())

    # 1x: the long survives the reconstruction, so its funding reaches the score (a liquidated isolated
    # long ends with the cash outside its margin whatever funding the margin paid: 2x scored -0.99976
    # with and without it)
    extra = ["--param", "leverage=1:1", "--walk-forward", "0"]
    fresh_caches()
    _, off = run(tmp_path / "off", files["data"], "312", "--no-funding", *extra)
    fresh_caches()
    _, on = run(tmp_path / "on", files["data"], "312", *extra)
    original = Scenario.bars

    def bars_without_funding(self, *args, **kwargs):
        bars = original(self, *args, **kwargs)
        assert "funding_rate" in bars.columns and bars["funding_rate"].notna().sum() > 0
        out = bars.drop(columns=["funding_rate"])
        out.attrs = dict(bars.attrs)
        return out

    monkeypatch.setattr(Scenario, "bars", bars_without_funding)
    fresh_caches()
    _, bare = run(tmp_path / "bare", files["data_bare"], "312", "--no-funding", *extra)
    scenario = {name: [r for r in recs if r[1] == "survive"] for name, recs in (("off", off), ("on", on),
                                                                                ("bare", bare))}
    assert len(scenario["off"]) == 1
    assert scenario["off"] == scenario["bare"]
    assert off == bare
    assert scenario["on"][0][3] == scenario["off"][0][3] == 0  # survived, with and without funding
    assert scenario["on"][0][2] != scenario["off"][0][2]  # the settled funding changes the scenario's score


def test_the_help_says_no_funding_is_settled_anywhere(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["optimize", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert ("--no-funding settle no funding, as backtest --no-funding: bars without funding rates run, and the "
            "funding_rate column of bars that carry one (--data, and the --survive scenarios, which then run "
            "without funding) is left out") in text
