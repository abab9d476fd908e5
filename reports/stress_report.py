"""The stress report: leverage × scenario survival heatmap, the survival frontier, and a link
from every cell to that cell's run report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go


from .page import esc, figure_block, fmt_num, fmt_pct, json_block, page, section, table, write_plotly_asset
from .results import load_table_dir
from .run_report import render_run

SURVIVAL_COLUMNS = (
    "strategy", "scenario", "leverage", "margin_mode", "venue", "data_kind", "survived", "liquidated_at",
    "liquidation_price", "equity_left", "max_drawdown", "min_distance_to_liquidation", "funding_paid", "fees", "run_dir",
)
REQUIRED_SURVIVAL = ("scenario", "leverage", "survived", "equity_left")


def load_stress(stress_dir: str | Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """``(stress.json config, survival table, frontier table)``; the frontier is computed from
    the survival table when ``frontier.parquet`` is absent."""
    path = Path(stress_dir)
    config, survival = load_table_dir(path, "survival.parquet", REQUIRED_SURVIVAL, "stress.json", "STRESS_DIR")
    survival = survival.copy()
    survival["survived"] = survival["survived"].fillna(False).astype(bool)
    if (path / "frontier.parquet").exists():
        frontier = pd.read_parquet(path / "frontier.parquet")
    else:
        frontier = compute_frontier(survival)
    return config, survival, frontier


def compute_frontier(survival: pd.DataFrame) -> pd.DataFrame:
    """Highest leverage that survived, per scenario (NaN when none did)."""
    keys = [c for c in ("strategy", "margin_mode", "scenario") if c in survival]
    out = (survival.assign(_lev=survival["leverage"].where(survival["survived"]))
           .groupby(keys, sort=False)["_lev"].max().rename("max_surviving_leverage").reset_index())
    return out


def _groups(survival: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    keys = [c for c in ("strategy", "margin_mode", "venue") if c in survival and survival[c].nunique() > 1]
    if not keys:
        return [("", survival)]
    return [(" · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,))), g)
            for key, g in survival.groupby(keys, sort=False)]


def _lev_label(lev: float) -> str:
    return f"{lev:g}×"


def _cell_link(run_dir: Any) -> str | None:
    if run_dir is None or (isinstance(run_dir, float) and np.isnan(run_dir)) or str(run_dir) == "":
        return None
    return f"{str(run_dir).rstrip('/')}/report.html"


def heatmap_figure(group: pd.DataFrame, title: str) -> go.Figure:
    """Scenario (rows) × leverage (columns); colour = equity left (0 when liquidated);
    a click on a cell opens that cell's run report."""
    scenarios = list(dict.fromkeys(group["scenario"]))
    levs = sorted(group["leverage"].unique())
    z = np.full((len(scenarios), len(levs)), np.nan)
    text = [["" for _ in levs] for _ in scenarios]
    links = [[None for _ in levs] for _ in scenarios]
    hover = [["" for _ in levs] for _ in scenarios]
    for rec in group.to_dict("records"):
        i, j = scenarios.index(rec["scenario"]), levs.index(rec["leverage"])
        survived = bool(rec["survived"])
        refused = bool(rec.get("refused", False))
        z[i, j] = float(rec["equity_left"]) if survived else (np.nan if refused else 0.0)
        text[i][j] = (f"✓ {float(rec['equity_left']) * 100:.0f}%" if survived
                      else "⊘ refused" if refused else "✗ liq")
        links[i][j] = _cell_link(rec.get("run_dir"))
        hover[i][j] = (
            f"{rec['scenario']} at {_lev_label(rec['leverage'])}<br>"
            + ("survived" if survived else "REFUSED by the broker (margin or the venue's leverage limit)" if refused
               else f"LIQUIDATED at {rec.get('liquidated_at')} (price {fmt_num(rec.get('liquidation_price'))})")
            + f"<br>equity left {fmt_pct(rec['equity_left'], 1)}<br>max drawdown {fmt_pct(rec.get('max_drawdown'), 1)}"
            + f"<br>min distance to liquidation {fmt_pct(rec.get('min_distance_to_liquidation'), 1)}"
            + f"<br>funding {fmt_num(rec.get('funding_paid'))} · fees {fmt_num(rec.get('fees'))}"
            + ("<br><i>click to open the run</i>" if links[i][j] else "")
        )
    fig = go.Figure(go.Heatmap(
        z=z, x=[_lev_label(v) for v in levs], y=scenarios, text=text, texttemplate="%{text}",
        customdata=links, hovertext=hover, hoverinfo="text", zmin=0, zmax=max(1.0, float(np.nanmax(z)) if np.isfinite(z).any() else 1.0),
        colorscale=[[0, "#b91c1c"], [0.001, "#fca5a5"], [0.5, "#fde68a"], [1, "#15803d"]],
        colorbar=dict(title="equity left", tickformat=".0%"), xgap=2, ygap=2,
    ))
    fig.update_layout(
        title=title or "Survival by scenario and leverage", xaxis_title="leverage", yaxis_title="scenario",
        yaxis=dict(autorange="reversed", type="category"), xaxis=dict(type="category"),
        height=max(320, 60 * len(scenarios) + 160), margin=dict(l=160, r=20, t=50, b=50), template="plotly_white",
    )
    return fig


def frontier_figure(survival: pd.DataFrame, frontier: pd.DataFrame) -> go.Figure:
    """Left: highest surviving leverage per scenario. Right: equity left against leverage,
    per scenario, with the liquidated cells marked."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], horizontal_spacing=0.12,
                        subplot_titles=("Survival frontier: highest leverage that survived", "Equity left by leverage"))
    f = frontier.copy()
    label = f["scenario"].astype(str)
    if "strategy" in f and f["strategy"].nunique() > 1:
        label = f["strategy"].astype(str) + " · " + label
    values = f["max_surviving_leverage"].astype(float)
    fig.add_trace(go.Bar(
        y=label, x=values.fillna(0).to_numpy(), orientation="h", name="max surviving leverage",
        text=[("none" if np.isnan(v) else f"{v:g}×") for v in values], textposition="outside",
        marker_color=["#b91c1c" if np.isnan(v) else "#15803d" for v in values], showlegend=False,
    ), 1, 1)
    fig.update_yaxes(autorange="reversed", type="category", row=1, col=1)
    top = float(np.nanmax(values)) if values.notna().any() else 1.0
    fig.update_xaxes(title_text="leverage", range=[0, top * 1.2], row=1, col=1)
    for scenario, g in survival.groupby("scenario", sort=False):
        g = g.sort_values("leverage")
        eq_left = g["equity_left"].astype(float).where(g["survived"], 0.0)
        fig.add_trace(go.Scatter(
            x=g["leverage"].to_numpy(dtype=float), y=eq_left.to_numpy(), mode="lines+markers", name=str(scenario),
            marker=dict(symbol=["circle" if s else "x" for s in g["survived"]], size=[8 if s else 12 for s in g["survived"]]),
        ), 1, 2)
    levs = sorted(float(v) for v in survival["leverage"].unique())
    fig.update_xaxes(type="log", title_text="leverage (log scale)", tickvals=levs, ticktext=[_lev_label(v) for v in levs],
                     row=1, col=2)
    fig.update_yaxes(tickformat=".0%", title_text="equity left", row=1, col=2)
    fig.update_layout(height=max(360, 40 * len(f) + 160), template="plotly_white", margin=dict(l=160, r=20, t=50, b=50))
    return fig


def grid_table(group: pd.DataFrame) -> str:
    """The same grid as an HTML table whose every cell links to its run report."""
    scenarios = list(dict.fromkeys(group["scenario"]))
    levs = sorted(group["leverage"].unique())
    cells = {(r["scenario"], r["leverage"]): r for r in group.to_dict("records")}
    head = "".join(f"<th>{esc(_lev_label(v))}</th>" for v in levs)
    rows = []
    for s in scenarios:
        tds = []
        for v in levs:
            r = cells.get((s, v))
            if r is None:
                tds.append("<td></td>")
                continue
            ok = bool(r["survived"])
            label = (f"✓ {float(r['equity_left']) * 100:.0f}%" if ok
                     else "⊘ refused" if bool(r.get("refused", False)) else "✗ liquidated")
            link = _cell_link(r.get("run_dir"))
            inner = f'<a href="{esc(link)}">{label}</a>' if link else label
            tds.append(f'<td class="{"ok" if ok else "dead"}">{inner}</td>')
        rows.append(f'<tr><th class="l">{esc(s)}</th>{"".join(tds)}</tr>')
    return f'<table class="grid"><thead><tr><th class="l">scenario \\ leverage</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render_stress_html(config: dict[str, Any], survival: pd.DataFrame, frontier: pd.DataFrame) -> str:
    n = len(survival)
    alive = int(survival["survived"].sum())
    refused = int(survival["refused"].fillna(False).astype(bool).sum()) if "refused" in survival else 0
    strategies = ", ".join(sorted(map(str, survival["strategy"].unique()))) if "strategy" in survival else config.get("strategy", "")
    title = f"Stress report · {strategies}" if strategies else "Stress report"
    kinds = ", ".join(sorted(map(str, survival["data_kind"].dropna().unique()))) if "data_kind" in survival else "unknown"
    subtitle = (f"{survival['scenario'].nunique()} scenarios × {survival['leverage'].nunique()} leverages · "
                f"data: {esc(kinds)}")
    body = [f'<div class="banner {"good" if alive == n else "bad"}" id="survival-banner">'
            f"{alive} of {n} cells survived; {n - alive - refused} were liquidated"
            + (f"; the broker refused every order in {refused} (not counted as survived)" if refused else "")
            + ".</div>"]
    for i, (name, g) in enumerate(_groups(survival)):
        body.append(section(
            f"Survival heatmap {name}".strip(),
            figure_block(f"stress-heatmap-{i}", heatmap_figure(g, name), links=True)
            + '<p class="note">Colour and label: equity left as a fraction of the initial equity (✗ = liquidated, ⊘ = every order refused). '
              "Click a cell to open that run's report; the table below has the same links.</p>"
            + grid_table(g), f"heatmap-{i}"))
    body.append(section("Survival frontier", figure_block("stress-frontier", frontier_figure(survival, frontier)), "frontier"))
    cols = [c for c in SURVIVAL_COLUMNS if c in survival.columns and c != "run_dir"]
    rows = []
    for rec in survival.to_dict("records"):
        row = []
        for c in cols:
            v = rec[c]
            if c in ("equity_left", "max_drawdown", "min_distance_to_liquidation"):
                v = fmt_pct(v, 1)
            elif isinstance(v, float):
                v = fmt_num(v)
            row.append(esc(v))
        link = _cell_link(rec.get("run_dir"))
        row.append(f'<a href="{esc(link)}">run</a>' if link else "")
        rows.append(row)
    body.append(section("All cells", table([*cols, "report"], rows, left=2, raw=True), "cells"))
    body.append(section("Stress config", json_block(config), "config"))
    return page(title, subtitle, "\n".join(body))


def render_stress(stress_dir: str | Path, output: str | Path | None = None, render_cells: bool = True) -> Path:
    """Write ``STRESS_DIR/report.html`` and, when ``render_cells``, each cell's run report
    (``<run_dir>/report.html``). The cell pages share one ``STRESS_DIR/assets/plotly.min.js``
    rather than inlining 4.6 MB each; the stress page itself is self-contained."""
    path = Path(stress_dir)
    config, survival, frontier = load_stress(path)
    if render_cells and "run_dir" in survival:
        asset = None
        for run_dir in survival["run_dir"].dropna().unique():
            cell = path / str(run_dir)
            if not (cell / "equity.parquet").exists():
                continue
            if asset is None:
                asset = write_plotly_asset(path / "assets")
            rel_js = os.path.relpath(asset, cell).replace(os.sep, "/")
            back = os.path.relpath(path / "report.html", cell).replace(os.sep, "/")
            render_run(cell, plotlyjs=rel_js, back_link=back)
    out = Path(output) if output else path / "report.html"
    out.write_text(render_stress_html(config, survival, frontier), encoding="utf-8")
    return out
