"""The optimization report: parameter heatmaps, in-sample against out-of-sample scores, the
chosen robust set, and a loud warning when the in-sample winner was liquidated."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from risk.errors import DeleverageError

from .format import config_rows, fmt_bool, fmt_count, fmt_leverage
from .page import esc, figure_block, fmt_num, page, section, table
from .results import load_table_dir

REQUIRED_TRIALS = ("trial_id", "score_in_sample", "score_out_of_sample", "feasible", "chosen")
MAX_PAIRS = 3  # parameter pairs drawn as heatmaps


def load_optimization(opt_dir: str | Path) -> tuple[dict[str, Any], pd.DataFrame]:
    config, trials = load_table_dir(opt_dir, "trials.parquet", REQUIRED_TRIALS, "optimize.json", "OPT_DIR")
    if not param_columns(trials):
        raise DeleverageError(f"{Path(opt_dir) / 'trials.parquet'} has no param_<name> column")
    return config, trials


def param_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in trials.columns if c.startswith("param_")]


def per_trial(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: walk-forward folds averaged (scores), ``feasible`` only if feasible
    in every fold, ``chosen`` if chosen in any, liquidation scenarios united."""
    params = param_columns(trials)
    t = trials.copy()
    t["feasible"] = t["feasible"].fillna(False).astype(bool)
    t["chosen"] = t["chosen"].fillna(False).astype(bool)
    if "liquidated_in" not in t:
        t["liquidated_in"] = ""
    t["liquidated_in"] = t["liquidated_in"].fillna("").astype(str)

    def union(values: pd.Series) -> str:
        names = sorted({n.strip() for v in values for n in v.split(",") if n.strip()})
        return ",".join(names)

    agg = t.groupby("trial_id", sort=True).agg(
        **{p: (p, "first") for p in params},
        score_in_sample=("score_in_sample", "mean"),
        score_out_of_sample=("score_out_of_sample", "mean"),
        feasible=("feasible", "all"),
        chosen=("chosen", "any"),
        liquidated_in=("liquidated_in", union),
    )
    agg["folds"] = t.groupby("trial_id").size()
    return agg.reset_index()


def in_sample_winner(agg: pd.DataFrame) -> pd.Series:
    """The trial with the best mean in-sample score, feasible or not."""
    return agg.loc[agg["score_in_sample"].idxmax()]


def _params_text(row: pd.Series, params: list[str]) -> str:
    return ", ".join(f"{p.removeprefix('param_')}={_fmt_param(row[p])}" for p in params)


def _fmt_param(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float, np.integer, np.floating)) else str(v)


def heatmap_figure(agg: pd.DataFrame, a: str, b: str) -> go.Figure:
    """In-sample and out-of-sample score over parameters ``a`` × ``b`` (best over the other
    parameters; cells where every trial was liquidated are marked ✗)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("in-sample score (best over other params)", "out-of-sample score (same trial)"))
    xs = sorted(agg[a].unique())
    ys = sorted(agg[b].unique())
    z_is = np.full((len(ys), len(xs)), np.nan)
    z_oos = np.full((len(ys), len(xs)), np.nan)
    text = [["" for _ in xs] for _ in ys]
    for (xa, yb), g in agg.groupby([a, b]):
        best = g.loc[g["score_in_sample"].idxmax()]
        i, j = ys.index(yb), xs.index(xa)
        z_is[i, j] = best["score_in_sample"]
        z_oos[i, j] = best["score_out_of_sample"]
        text[i][j] = f"{best['score_in_sample']:.2f}" + ("" if best["feasible"] else " ✗")
    lo = float(np.nanmin([np.nanmin(z_is), np.nanmin(z_oos)]))
    hi = float(np.nanmax([np.nanmax(z_is), np.nanmax(z_oos)]))
    xl, yl = [_fmt_param(v) for v in xs], [_fmt_param(v) for v in ys]
    common = dict(x=xl, y=yl, zmin=lo, zmax=hi, colorscale="Viridis", xgap=1, ygap=1)
    fig.add_trace(go.Heatmap(z=z_is, text=text, texttemplate="%{text}", colorbar=dict(title="score", x=1.0), **common), 1, 1)
    fig.add_trace(go.Heatmap(z=z_oos, texttemplate="%{z:.2f}", showscale=False, **common), 1, 2)
    for col in (1, 2):
        fig.update_xaxes(title_text=a.removeprefix("param_"), type="category", row=1, col=col)
        fig.update_yaxes(title_text=b.removeprefix("param_"), type="category", row=1, col=col)
    fig.update_layout(height=420, template="plotly_white", margin=dict(l=70, r=20, t=50, b=50))
    return fig


def line_figure(agg: pd.DataFrame, a: str) -> go.Figure:
    g = agg.groupby(a).agg(score_in_sample=("score_in_sample", "max"), score_out_of_sample=("score_out_of_sample", "max")).reset_index()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=g[a], y=g["score_in_sample"], mode="lines+markers", name="in-sample (best)"))
    fig.add_trace(go.Scatter(x=g[a], y=g["score_out_of_sample"], mode="lines+markers", name="out-of-sample (best)"))
    fig.update_layout(height=380, template="plotly_white", xaxis_title=a.removeprefix("param_"), yaxis_title="score")
    return fig


def is_oos_figure(agg: pd.DataFrame, params: list[str], winner: pd.Series) -> go.Figure:
    fig = go.Figure()
    groups = (
        ("feasible", agg["feasible"] & ~agg["chosen"], dict(color="#2563eb", size=8, symbol="circle")),
        ("liquidated in a required scenario", ~agg["feasible"], dict(color="#dc2626", size=10, symbol="x")),
        ("chosen robust set", agg["chosen"], dict(color="#f59e0b", size=16, symbol="star", line=dict(width=1, color="#111"))),
    )
    for name, mask, marker in groups:
        g = agg[mask]
        if not len(g):
            continue
        fig.add_trace(go.Scatter(
            x=g["score_in_sample"], y=g["score_out_of_sample"], mode="markers", name=name, marker=marker,
            text=[f"trial {int(r['trial_id'])}: {_params_text(r, params)}" + (f"<br>liquidated in {r['liquidated_in']}" if r["liquidated_in"] else "")
                  for _, r in g.iterrows()],
            hovertemplate="%{text}<br>in-sample %{x:.3f}<br>out-of-sample %{y:.3f}<extra></extra>",
        ))
    fig.add_annotation(x=winner["score_in_sample"], y=winner["score_out_of_sample"], text="in-sample winner",
                       showarrow=True, arrowhead=2, ax=-60, ay=-40,
                       font=dict(color="#b91c1c" if not winner["feasible"] else "#111"))
    lo = float(np.nanmin(agg[["score_in_sample", "score_out_of_sample"]].to_numpy()))
    hi = float(np.nanmax(agg[["score_in_sample", "score_out_of_sample"]].to_numpy()))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="out-of-sample = in-sample",
                             line=dict(dash="dot", color="#94a3b8")))
    fig.update_layout(height=480, template="plotly_white", xaxis_title="in-sample score", yaxis_title="out-of-sample score",
                      margin=dict(l=70, r=20, t=30, b=50))
    return fig


def render_optimization_html(config: dict[str, Any], trials: pd.DataFrame) -> str:
    params = param_columns(trials)
    agg = per_trial(trials)
    winner = in_sample_winner(agg)
    folds = int(trials["fold"].nunique()) if "fold" in trials else 0
    title = f"Optimization report · {config.get('strategy', '')}".rstrip(" ·")
    subtitle = esc(f"{len(agg)} trials · objective {config.get('objective', '?')} · method {config.get('method', '?')}"
                   + (f" · {folds} walk-forward folds" if folds else ""))
    body = []
    wtext = f"trial {int(winner['trial_id'])} ({_params_text(winner, params)}), in-sample score {winner['score_in_sample']:.3f}"
    if not winner["feasible"] or winner["liquidated_in"]:
        where = winner["liquidated_in"] or "a required scenario"
        body.append(f'<div class="banner bad" id="winner-banner">⚠ The in-sample winner, {esc(wtext)}, was LIQUIDATED out of '
                    f"sample in {esc(where)} (out-of-sample score {fmt_num(winner['score_out_of_sample'], 3)}). "
                    "It is not in the robust set.</div>")
    else:
        body.append(f'<div class="banner good" id="winner-banner">The in-sample winner, {esc(wtext)}, survived every required '
                    f"scenario (out-of-sample score {fmt_num(winner['score_out_of_sample'], 3)}).</div>")
    chosen = agg[agg["chosen"]]
    cols = ["trial_id", *params, "score_in_sample", "score_out_of_sample", "feasible", "liquidated_in", "folds"]
    objective = str(config.get("objective", "score"))
    names = {"trial_id": "Trial", "score_in_sample": f"In-sample {objective}",
             "score_out_of_sample": f"Out-of-sample {objective}", "feasible": "Survived every required scenario",
             "liquidated_in": "Liquidated in", "folds": "Folds", "param_leverage": "Leverage"}
    heads = [names.get(c, c.removeprefix("param_")) for c in cols]

    def cell(c: str, v: Any) -> str:
        if c == "feasible":
            return fmt_bool(v)
        if c == "liquidated_in":
            return ", ".join(x for x in str(v).split(",") if x) or "none"
        if c == "param_leverage":
            return fmt_leverage(v)
        if c in ("trial_id", "folds"):
            return fmt_count(v)
        return fmt_num(v, 3) if isinstance(v, (float, np.floating)) else _fmt_param(v)

    def rows(frame: pd.DataFrame) -> list[list[str]]:
        return [[cell(c, r[c]) for c in cols] for _, r in frame.iterrows()]

    body.append(section("Chosen robust set", table(heads, rows(chosen)) if len(chosen) else
                        '<p class="banner bad">No trial was chosen: nothing survived every required scenario.</p>', "chosen"))
    body.append(section("In-sample against out-of-sample", figure_block("opt-is-oos", is_oos_figure(agg, params, winner)), "is-oos"))
    numeric = [p for p in params if pd.api.types.is_numeric_dtype(agg[p]) and agg[p].nunique() > 1] or params
    if len(numeric) >= 2:
        for k, (a, b) in enumerate(list(itertools.combinations(numeric, 2))[:MAX_PAIRS]):
            body.append(section(f"Parameters: {a.removeprefix('param_')} × {b.removeprefix('param_')}",
                                figure_block(f"opt-heatmap-{k}", heatmap_figure(agg, a, b)), f"heatmap-{k}"))
    else:
        body.append(section(f"Parameter: {numeric[0].removeprefix('param_')}",
                            figure_block("opt-heatmap-0", line_figure(agg, numeric[0])), "heatmap-0"))
    top = agg.sort_values("score_in_sample", ascending=False).head(50)
    body.append(section("Trials (best 50 in sample)", table(heads, rows(top)), "trials"))
    body.append(section("Optimization config", table(("Setting", "Value"), config_rows(config), cls="kv"), "config"))
    return page(title, subtitle, "\n".join(body))


def render_optimization(opt_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write ``OPT_DIR/report.html`` and return its path."""
    config, trials = load_optimization(opt_dir)
    out = Path(output) if output else Path(opt_dir) / "report.html"
    out.write_text(render_optimization_html(config, trials), encoding="utf-8")
    return out
