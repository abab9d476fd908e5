from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from report_helpers import array, figures
from reports import metrics as m
from reports.html import detect_kind, render
from reports.page import plotly_js
from reports.run_report import load_run, render_run
from reports.stress_report import compute_frontier, render_stress
from reports.synthetic import synthetic_run, write_synthetic_optimization, write_synthetic_run
from risk.errors import DeleverageError


def _trace(fig: dict, name: str) -> dict:
    hits = [t for t in fig["data"] if t.get("name") == name]
    assert hits, f"no trace named {name!r}: {[t.get('name') for t in fig['data']]}"
    return hits[0]


def _self_contained(html: str) -> None:
    assert len(html) > 3_000_000  # plotly.js (~4.6 MB) is inlined
    assert "plotly.js v" in html or "Plotly" in html
    assert plotly_js() in html
    ours = html.replace(plotly_js(), "")  # the bundle itself mentions URLs it never fetches here (geo topojson)
    assert not re.search(r"""<script[^>]+src=""", ours)
    assert "http://" not in ours and "https://" not in ours
    assert not re.search(r"""<link[^>]+href=["']?https?:""", html)


def test_run_report(run_dir: Path) -> None:
    out = render_run(run_dir)
    assert out == run_dir / "report.html"
    html = out.read_text()
    _self_contained(html)
    result, bars = load_run(run_dir)
    metrics = m.compute_metrics(result)
    # the metrics table shows the computed numbers
    assert f"{metrics['total_return'] * 100:.2f} %" in html
    assert f"{metrics['max_drawdown'] * 100:.2f} %" in html
    assert 'id="liquidated-banner"' in html and "Liquidated once: first at" in html
    # config and provenance
    assert "simulated" in html and "reports.synthetic.synthetic_bars(seed=7)" in html
    fig = figures(html)["run-chart"]
    liq_price = array(_trace(fig, "liquidation price")["y"])
    entry = result.trades["entry_price"].iloc[1]
    assert np.nanmin(liq_price) == pytest.approx(entry * (1 - 1 / 10 + 0.005))
    liq = _trace(fig, "liquidation")
    assert array(liq["y"])[0] == pytest.approx(result.liquidations["fill_price"].iloc[0])
    assert len(array(_trace(fig, "long entry")["y"])) == 2
    # the liquidation feed is drawn from bars.parquet
    longs = array(_trace(fig, next(t["name"] for t in fig["data"] if str(t.get("name", "")).startswith("longs liquidated")))["y"])
    assert -longs.min() == pytest.approx(bars["liq_long_notional"].max())


def test_run_report_keeps_the_wick_when_downsampling(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "big", n_bars=60_000)
    html = render_run(run, max_points=3000).read_text()
    bars = pd.read_parquet(run / "bars.parquet")
    fig = figures(html)["run-chart"]
    low = array(_trace(fig, "bar low (wick)")["y"])
    assert len(low) < 3000 < len(bars)
    assert low.min() == bars["low"].min()  # the one-bar wick is drawn at its real depth
    assert "Displayed" in html and "no wick is smoothed away" in html


def test_run_without_bars_says_so(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "nobars", n_bars=500, with_bars=False, liquidate=False)
    html = render(run).read_text()
    assert "no liquidation feed in this run&#x27;s data" in html or "no liquidation feed in this run's data" in html
    assert "No liquidation in this run." in html


def test_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(DeleverageError, match="not a run, stress or optimization directory"):
        render(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(DeleverageError, match="missing equity.parquet"):
        load_run(tmp_path)
    with pytest.raises(DeleverageError, match="does not exist"):
        render(tmp_path / "nope")


def test_stress_report_links_every_cell(stress_dir: Path) -> None:
    assert detect_kind(stress_dir) == "stress"
    out = render(stress_dir)
    html = out.read_text()
    _self_contained(html)
    survival = pd.read_parquet(stress_dir / "survival.parquet")
    assert f"{int(survival['survived'].sum())} of {len(survival)} cells survived" in html
    for run_dir in survival["run_dir"]:
        assert f'href="{run_dir}/report.html"' in html
        cell = stress_dir / run_dir / "report.html"
        assert cell.exists()
        page = cell.read_text()
        assert len(page) < 1_000_000 and 'src="../../../assets/plotly.min.js"' in page
        assert 'href="../../../report.html"' in page
    assert (stress_dir / "assets" / "plotly.min.js").stat().st_size > 3_000_000
    figs = figures(html)
    heat = figs["stress-heatmap-0"]["data"][0]
    assert heat["type"] == "heatmap"
    assert heat["customdata"][0][0] == "runs/312/x2/report.html"
    z = array(heat["z"]) if isinstance(heat["z"], dict) else np.asarray(heat["z"], dtype=float)
    # 312 survives up to 3x: 2x survived with equity left 1 - 0.04 = 0.96 on the fixed diverging
    # scale (0 % .. 100 % .. 200 %, shared by every panel); 5x and up liquidated: the second trace,
    # in the liquidated colour (index 0 of its discrete scale), not on the equity scale
    assert np.asarray(z, dtype=float).reshape(3, 4)[0, 0] == pytest.approx(0.96)
    assert np.isnan(np.asarray(z, dtype=float).reshape(3, 4)[0, 1:]).all()
    assert (heat["zmin"], heat["zmid"], heat["zmax"]) == (0.0, 1.0, 2.0)
    other = figs["stress-heatmap-0"]["data"][1]
    zo = array(other["z"]) if isinstance(other["z"], dict) else np.asarray(other["z"], dtype=float)
    assert np.asarray(zo, dtype=float).reshape(3, 4)[0, 1:].tolist() == [0.0, 0.0, 0.0]
    assert other["colorscale"][0][1] == "#111827"  # liquidated
    frontier = figs["stress-frontier"]["data"][0]
    assert array(frontier["x"]).tolist() == [2.0, 5.0, 10.0]


def test_frontier_is_computed_when_absent() -> None:
    survival = pd.DataFrame({"scenario": ["a", "a", "a", "b", "b"], "leverage": [1.0, 5.0, 10.0, 1.0, 5.0],
                             "survived": [True, True, False, False, False]})
    f = compute_frontier(survival).set_index("scenario")["max_surviving_leverage"]
    assert f["a"] == 5.0 and np.isnan(f["b"])


def test_stress_missing_columns(tmp_path: Path) -> None:
    pd.DataFrame({"scenario": ["a"]}).to_parquet(tmp_path / "survival.parquet")
    with pytest.raises(DeleverageError, match="lacks column"):
        render_stress(tmp_path)


def test_optimization_report_flags_a_liquidated_winner(opt_dir: Path) -> None:
    html = render(opt_dir).read_text()
    _self_contained(html)
    trials = pd.read_parquet(opt_dir / "trials.parquet")
    mean_is = trials.groupby("trial_id")["score_in_sample"].mean()
    winner = mean_is.idxmax()
    assert not trials.loc[trials["trial_id"] == winner, "feasible"].any()
    banner = re.search(r'<div class="banner bad" id="winner-banner">(.*?)</div>', html, re.S).group(1)
    assert f"trial {winner} " in banner and "LIQUIDATED" in banner and "312-2020-03-12" in banner
    chosen = trials.loc[trials["chosen"], "trial_id"].unique().tolist()
    assert len(chosen) == 1
    figs = figures(html)
    assert {"opt-is-oos", "opt-heatmap-0", "opt-heatmap-1", "opt-heatmap-2"} <= set(figs)
    star = next(t for t in figs["opt-is-oos"]["data"] if t["name"] == "chosen robust set")
    assert array(star["x"])[0] == pytest.approx(mean_is[chosen[0]])
    # the fast x slow in-sample heatmap shows the best trial per cell
    z = np.asarray(figs["opt-heatmap-0"]["data"][0]["z"], dtype=float) if not isinstance(figs["opt-heatmap-0"]["data"][0]["z"], dict) \
        else array(figs["opt-heatmap-0"]["data"][0]["z"])
    assert np.nanmax(z) == pytest.approx(mean_is.max())


def test_optimization_report_praises_a_surviving_winner(tmp_path: Path) -> None:
    opt = write_synthetic_optimization(tmp_path / "opt")
    trials = pd.read_parquet(opt / "trials.parquet")
    trials.loc[:, "feasible"] = True
    trials.loc[:, "liquidated_in"] = ""
    trials.loc[:, "score_out_of_sample"] = trials["score_in_sample"] * 0.5
    trials.to_parquet(opt / "trials.parquet")
    html = render(opt).read_text()
    assert '<div class="banner good" id="winner-banner">' in html and "survived every required scenario" in html


def test_summary_from_the_engine_is_shown(tmp_path: Path) -> None:
    result, bars = synthetic_run(n_bars=300, liquidate=False)
    result.summary = {"backtrader": {"trades_total": 7, "drawdown_max": 12.5}}
    result.save(tmp_path / "r")
    html = render(tmp_path / "r").read_text()
    # in words, not snake_case: the known key by its label, an unknown one spelled out
    assert 'backtrader · Trades (backtrader)</td><td class="">7</td>' in html
    assert 'backtrader · Drawdown max</td><td class="">12.50</td>' in html
    assert "trades_total" not in html.split('<script type="application/json"')[0]
