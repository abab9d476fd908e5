"""The stress report: leverage × scenario survival heatmap, the survival frontier, and a link
from every cell to that cell's run report."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go


from . import verdicts as V
from .format import config_rows, fmt_amount, fmt_count, fmt_pct, fmt_time, instrument_units, missing
from .page import esc, figure_block, page, section, table, write_plotly_asset
from .results import load_table_dir
from .run_report import render_run

SURVIVAL_COLUMNS = (
    "strategy", "scenario", "leverage", "margin_mode", "venue", "data_kind", "survived", "liquidated_at",
    "liquidation_price", "equity_left", "max_drawdown", "min_distance_to_liquidation", "funding_paid", "fees", "run_dir",
    "insurance_cover",
)
# columns added after stress directories were first written: their value when an older table lacks them
SURVIVAL_DEFAULTS = {"insurance_cover": 0.0}
REQUIRED_SURVIVAL = ("scenario", "leverage", "survived", "equity_left")


def load_stress(stress_dir: str | Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """``(stress.json config, survival table, frontier table)``; the frontier is computed from
    the survival table when ``frontier.parquet`` is absent."""
    path = Path(stress_dir)
    config, survival = load_table_dir(path, "survival.parquet", REQUIRED_SURVIVAL, "stress.json", "STRESS_DIR")
    survival = survival.copy()
    survival["survived"] = survival["survived"].fillna(False).astype(bool)
    for col, value in SURVIVAL_DEFAULTS.items():
        survival[col] = survival[col].fillna(value).astype("float64") if col in survival else value
    if (path / "frontier.parquet").exists():
        from .results import read_parquet

        frontier = read_parquet(path / "frontier.parquet")
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
    # one panel per margin mode; strategies are rows of the same panel (strategy · scenario);
    # the venue is each scenario's own, never a panel
    keys = [c for c in ("margin_mode",) if c in survival and survival[c].nunique() > 1]
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


def with_verdicts(survival: pd.DataFrame) -> pd.DataFrame:
    """The survival table with a ``verdict`` for every row (older directories: from the
    survived / refused flags) and a ``warning`` string (empty when none)."""
    out = survival.copy()
    out["verdict"] = [V.verdict_of(r) for r in out.to_dict("records")]
    out["warning"] = out["warning"].fillna("").astype(str) if "warning" in out else ""
    return out


def row_label(rec: dict[str, Any], several: bool) -> str:
    """A grid row: the scenario, prefixed by the strategy when the grid has several."""
    return f"{rec['strategy']} · {rec['scenario']}" if several else str(rec["scenario"])


def _several(group: pd.DataFrame) -> bool:
    return "strategy" in group and group["strategy"].nunique() > 1


def cell_label(rec: dict[str, Any], short: bool = False) -> str:
    """What a grid cell says: ``✓ 54 %``, ``✗ liquidated``, ``✗ liquidated, insolvent`` (short: ``✗
    insolvent``: the insurance fund covered the loss beyond the margin), ``✗ wiped out 5 %``, ``– no
    trade``, ``⊘ refused``; ``⚠`` when the result is implausible for its data."""
    verdict = rec["verdict"]
    eq = rec.get("equity_left")
    sym = V.VERDICT_SYMBOLS[verdict]
    if verdict == V.SURVIVED:
        text = f"{sym} {_pct0(eq)}"
    elif verdict == V.LIQUIDATED and V.insolvent(rec):  # the insurance fund paid the loss beyond the margin
        text = f"{sym} {V.INSOLVENT}" if short else f"{sym} liquidated, {V.INSOLVENT}"
    elif verdict == V.LIQUIDATED:
        text = f"{sym} liq" if short else f"{sym} liquidated"
    elif verdict == V.WIPED_OUT:
        text = f"{sym} wiped {_pct0(eq)}" if short else f"{sym} wiped out {_pct0(eq)}"
    else:
        text = f"{sym} {verdict}"
    return text + (" ⚠" if rec.get("warning") else "")


def _pct0(v: Any) -> str:
    if v is None or not np.isfinite(float(v)):
        return "–"
    x = float(v) * 100
    if 0 < x < 0.05:
        return "< 0.1 %"  # not "0.0 %": something is left
    return f"{x:,.0f} %" if abs(x) >= 1 or x == 0 else f"{x:.1f} %"


def _hover(rec: dict[str, Any], floor: float) -> str:
    verdict = rec["verdict"]
    lines = [f"{rec.get('strategy', '')} · {rec['scenario']} at {_lev_label(rec['leverage'])}".lstrip(" ·"),
             f"<b>{verdict.upper() if verdict != V.SURVIVED else verdict}</b>: {V.VERDICT_MEANING[verdict]}"
             + (f" ({fmt_pct(floor, 0)})" if verdict == V.WIPED_OUT else "")]
    if verdict == V.LIQUIDATED:
        lines.append(f"first liquidation {fmt_time(rec.get('liquidated_at'))} at {fmt_amount(rec.get('liquidation_price'))}")
    if V.insolvent(rec):
        lines.append(f"<b>{V.INSOLVENT.upper()}</b>: {cover_words(rec)}")
    lines += [f"equity left {fmt_pct(rec['equity_left'])}", f"max drawdown {fmt_pct(rec.get('max_drawdown'))}",
              f"closest distance to liquidation {fmt_pct(rec.get('min_distance_to_liquidation'))}",
              f"funding {fmt_pct(rec.get('funding_paid'), 2)} · fees {fmt_pct(rec.get('fees'), 2)} of the initial equity"]
    if rec.get("warning"):
        lines.append("⚠ " + "<br>".join(textwrap.wrap(str(rec["warning"]), 80)))
    if _cell_link(rec.get("run_dir")):
        lines.append("<i>click to open the run</i>")
    return "<br>".join(lines)


def cover_words(rec: dict[str, Any]) -> str:
    """``the insurance fund covered 147.05 % of the initial equity (the loss beyond the margin, credited to
    the account, not a fee); without it equity left would be -147.05 %``."""
    cover = V.insurance_cover(rec)
    return (f"the insurance fund covered {fmt_pct(cover, 2)} of the initial equity (the loss beyond the margin, "
            f"credited to the account, not a fee); without it equity left would be "
            f"{fmt_pct(float(rec['equity_left']) - cover, 2)}")


def _colorscale() -> list[list[Any]]:
    return [[t, c] for t, c in V.EQUITY_SCALE]


def heatmap_figure(group: pd.DataFrame, title: str, floor: float = V.DEFAULT_WIPEOUT) -> go.Figure:
    """Scenario (rows) × leverage (columns). Survivors are coloured by equity left on the one
    fixed diverging scale (0 % red, 100 % white, 200 % and more green), shared by every panel;
    liquidated, wiped-out, no-trade and refused cells have their own colours. A click on a cell
    opens that cell's run report."""
    group = with_verdicts(group)
    several = _several(group)
    scenarios = list(dict.fromkeys(row_label(r, several) for r in group.to_dict("records")))
    levs = sorted(group["leverage"].unique())
    shape = (len(scenarios), len(levs))
    z = np.full(shape, np.nan)  # survivors: equity left
    zc = np.full(shape, np.nan)  # other verdicts: their index in OTHER
    text = [["" for _ in levs] for _ in scenarios]
    links = [[None for _ in levs] for _ in scenarios]
    hover = [["" for _ in levs] for _ in scenarios]
    for rec in group.to_dict("records"):
        i, j = scenarios.index(row_label(rec, several)), levs.index(rec["leverage"])
        if rec["verdict"] == V.SURVIVED:
            z[i, j] = float(rec["equity_left"])
        else:
            zc[i, j] = OTHER.index(rec["verdict"])
        text[i][j] = cell_label(rec, short=True)
        links[i][j] = _cell_link(rec.get("run_dir"))
        hover[i][j] = _hover(rec, floor)
    x = [_lev_label(v) for v in levs]
    n = len(OTHER)
    discrete = []
    for k, verdict in enumerate(OTHER):
        discrete += [[k / n, V.VERDICT_COLOURS[verdict]], [(k + 1) / n, V.VERDICT_COLOURS[verdict]]]
    fig = go.Figure()
    fig.add_trace(go.Heatmap(
        z=z, x=x, y=scenarios, customdata=links, hovertext=hover, hoverinfo="text", zmin=V.EQUITY_MIN,
        zmid=V.EQUITY_MID, zmax=V.EQUITY_MAX, colorscale=_colorscale(), xgap=2, ygap=2, name="survived",
        colorbar=dict(title=dict(text="equity left<br>(survived)"), tickformat=".0%", tickvals=[0, 0.5, 1, 1.5, 2],
                      ticktext=["0 %", "50 %", "100 %", "150 %", "≥ 200 %"], len=1.0, thickness=14),
    ))
    fig.add_trace(go.Heatmap(
        z=zc, x=x, y=scenarios, customdata=links, hovertext=hover, hoverinfo="text", zmin=0, zmax=n,
        colorscale=discrete, showscale=False, xgap=2, ygap=2, name="not survived",
    ))
    # the labels, in a colour readable on each cell
    for rec in group.to_dict("records"):
        _, fg = V.cell_colours(rec["verdict"], float(rec["equity_left"]))
        # positions by index: a category named like a number ("312") would be read as a coordinate
        fig.add_annotation(x=levs.index(rec["leverage"]), y=scenarios.index(row_label(rec, several)),
                           text=cell_label(rec, short=True), showarrow=False, font=dict(color=fg, size=12))
    fig.update_layout(
        title=title or None, xaxis_title="leverage", yaxis_title="strategy · scenario" if several else "scenario",
        yaxis=dict(autorange="reversed", type="category"), xaxis=dict(type="category", side="top"),
        height=max(240, 34 * len(scenarios) + 110), margin=dict(l=190 if several else 110, r=20, t=60 if title else 40,
                                                                   b=20), template="plotly_white",
    )
    return fig


OTHER = tuple(v for v in V.VERDICTS if v != V.SURVIVED)  # every verdict but survived has its own colour


def legend_html(floor: float, insolvent: bool = False) -> str:
    """The key of the colours, shared by every panel, table and chart of the page; ``insolvent``: the
    grid has a liquidation the insurance fund covered (its key is added)."""
    stops = ", ".join(f"{c} {t * 100:.0f}%" for t, c in V.EQUITY_SCALE)
    items = [f'<span class="key"><span class="swatch scale" style="background:linear-gradient(90deg,{stops})"></span>'
             "survived: equity left, 0 % → 100 % (white) → ≥ 200 %</span>"]
    for verdict in OTHER:
        extra = f" (under {fmt_pct(floor, 0)})" if verdict == V.WIPED_OUT else ""
        items.append(f'<span class="key"><span class="swatch" style="background:{V.VERDICT_COLOURS[verdict]}"></span>'
                     f"{V.VERDICT_SYMBOLS[verdict]} {esc(verdict)}: {esc(V.VERDICT_MEANING[verdict])}{esc(extra)}</span>")
    if insolvent:
        items.append(f'<span class="key"><span class="swatch" style="background:{V.VERDICT_COLOURS[V.LIQUIDATED]}">'
                     f'</span>{V.VERDICT_SYMBOLS[V.LIQUIDATED]} {esc(V.INSOLVENT)}: liquidated, and '
                     f'{esc(V.INSOLVENT_MEANING)}</span>')
    items.append('<span class="key">⚠ implausible or impossible for its data (see the warnings)</span>')
    return f'<div class="legend" id="verdict-legend">{"".join(items)}</div>'


def frontier_figure(survival: pd.DataFrame, frontier: pd.DataFrame) -> go.Figure:
    """The highest leverage that survived per (strategy,) scenario; only survived cells count."""
    f = frontier.copy()
    label = f["scenario"].astype(str)
    if "strategy" in f and f["strategy"].nunique() > 1:
        label = f["strategy"].astype(str) + " · " + label
    values = f["max_surviving_leverage"].astype(float)
    fig = go.Figure(go.Bar(
        y=label, x=values.fillna(0).to_numpy(), orientation="h", name="highest surviving leverage",
        text=[("none survived" if np.isnan(v) else f"{v:g}×") for v in values], textposition="outside",
        marker_color=[V.VERDICT_COLOURS[V.LIQUIDATED] if np.isnan(v) else V.EQUITY_SCALE[-1][1] for v in values],
        showlegend=False, hovertemplate="%{y}: %{text}<extra></extra>", cliponaxis=False,
    ))
    top = float(np.nanmax(values)) if values.notna().any() else 1.0
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title_text="highest leverage that survived (traded, not liquidated, above the floor)",
                     range=[0, top * 1.25])
    fig.update_layout(height=max(260, 22 * len(f) + 110), template="plotly_white", margin=dict(l=170, r=30, t=20, b=50))
    return fig


def equity_figure(survival: pd.DataFrame) -> go.Figure:
    """Equity left against leverage: one panel per strategy, one line per scenario (never
    joining strategies); each marker shows its cell's verdict. Log scale: 0.1 % at the bottom
    (a liquidated cell that kept less is drawn there; the hover gives the value)."""
    from plotly.subplots import make_subplots

    survival = with_verdicts(survival)
    strategies = list(dict.fromkeys(survival["strategy"])) if "strategy" in survival else [""]
    cols = min(3, len(strategies))
    rows = -(-len(strategies) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[str(s) for s in strategies], shared_yaxes=True,
                        horizontal_spacing=0.05, vertical_spacing=0.12 if rows > 1 else 0.1)
    scenarios = list(dict.fromkeys(survival["scenario"]))
    palette = ("#1f77b4", "#ff7f0e", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
    colour = {s: palette[i % len(palette)] for i, s in enumerate(scenarios)}
    symbol = {V.SURVIVED: "circle", V.LIQUIDATED: "x", V.ADL: "triangle-down", V.WIPED_OUT: "x-open",
              V.NO_TRADE: "circle-open", V.REFUSED: "square-open"}
    floor_shown = 0.001
    top = 1.0
    for k, strategy in enumerate(strategies):
        r, c = k // cols + 1, k % cols + 1
        sub = survival[survival["strategy"] == strategy] if strategy != "" else survival
        for scenario, g in sub.groupby("scenario", sort=False):
            g = g.sort_values("leverage")
            eq = g["equity_left"].astype(float).to_numpy()
            top = max(top, float(np.nanmax(eq)) if np.isfinite(eq).any() else 1.0)
            shown = np.clip(np.nan_to_num(eq, nan=floor_shown), floor_shown, None)
            verdicts = g["verdict"].tolist()
            fig.add_trace(go.Scatter(
                x=g["leverage"].to_numpy(dtype=float), y=shown, mode="lines+markers", name=str(scenario),
                legendgroup=str(scenario), showlegend=k == 0, line=dict(color=colour[scenario], width=1.5),
                marker=dict(symbol=[symbol[v] for v in verdicts], size=[8 if v == V.SURVIVED else 11 for v in verdicts],
                            color=colour[scenario], line=dict(width=1.5, color=colour[scenario])),
                text=[f"{strategy} · {scenario} at {_lev_label(lv)}: {v}, equity left {fmt_pct(e)}".lstrip(" ·")
                      + (f" ({V.INSOLVENT}: the insurance fund covered {fmt_pct(V.insurance_cover(rec), 2)})"
                         if V.insolvent(rec) else "")
                      for lv, v, e, rec in zip(g["leverage"], verdicts, eq, g.to_dict("records"))],
                hovertemplate="%{text}<extra></extra>",
            ), r, c)
    levs = sorted(float(v) for v in survival["leverage"].unique())
    fig.update_xaxes(type="log", tickvals=levs, ticktext=[_lev_label(v) for v in levs])
    ticks = [v for v in (0.001, 0.01, 0.1, 0.5, 1, 2, 10, 100, 1000, 10000) if v <= top * 1.5] or [1]
    fig.update_yaxes(type="log", range=[np.log10(floor_shown) - 0.1, np.log10(max(top, 2.0)) + 0.15], tickvals=ticks,
                     ticktext=[fmt_pct(v, 1 if v < 0.01 else 0).replace(",", " ") for v in ticks])
    fig.update_yaxes(title_text="equity left (log)", col=1)
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text="leverage (log)", row=rows, col=c)
    fig.add_annotation(text="● survived  ✕ liquidated  ▼ auto-deleveraged  ⊗ wiped out  ○ no trade  □ refused", xref="paper", yref="paper",
                       x=1, y=1.0, yshift=50 if rows == 1 else 56, showarrow=False, xanchor="right", font=dict(size=11))
    fig.update_layout(height=300 * rows + 110, template="plotly_white", margin=dict(l=80, r=20, t=90, b=50),
                      legend=dict(orientation="h", yanchor="top", y=0.99, yref="container", x=0, title_text="scenario "))
    return fig


def grid_table(group: pd.DataFrame) -> str:
    """The same grid as an HTML table whose every cell links to its run report, coloured on
    the same scale as the heatmap."""
    group = with_verdicts(group)
    several = _several(group)
    scenarios = list(dict.fromkeys(row_label(r, several) for r in group.to_dict("records")))
    levs = sorted(group["leverage"].unique())
    cells = {(row_label(r, several), r["leverage"]): r for r in group.to_dict("records")}
    head = "".join(f"<th>{esc(_lev_label(v))}</th>" for v in levs)
    rows = []
    for s in scenarios:
        tds = []
        for v in levs:
            r = cells.get((s, v))
            if r is None:
                tds.append("<td></td>")
                continue
            bg, fg = V.cell_colours(r["verdict"], float(r["equity_left"]))
            label = esc(cell_label(r))
            link = _cell_link(r.get("run_dir"))
            inner = f'<a href="{esc(link)}">{label}</a>' if link else label
            tip = f' title="{esc(r["warning"])}"' if r.get("warning") else ""
            cls = "ok" if r["verdict"] == V.SURVIVED else "dead"
            tds.append(f'<td class="{cls} v-{r["verdict"].replace(" ", "-")}" style="background:{bg};color:{fg}"{tip}>'
                       f"{inner}</td>")
        rows.append(f'<tr><th class="l">{esc(s)}</th>{"".join(tds)}</tr>')
    corner = "strategy · scenario \\ leverage" if several else "scenario \\ leverage"
    return (f'<table class="grid"><thead><tr><th class="l">{corner}</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _price_unit(config: dict[str, Any], rec: dict[str, Any]) -> str:
    note = (config.get("scenario_notes") or {}).get(str(rec.get("scenario")), {})
    venue, symbol = note.get("venue") or rec.get("venue"), note.get("symbol")
    if not venue:
        return ""
    return instrument_units({"venue": venue, "symbol": symbol, "settle_currency": note.get("settle_currency", "")})["quote"]


CELL_COLUMNS = (  # (column, header, formatter)
    ("strategy", "Strategy"), ("scenario", "Scenario"), ("leverage", "Leverage"), ("margin_mode", "Margin"),
    ("data_kind", "Data"), ("verdict", "Verdict"), ("liquidated_at", "First liquidation (UTC)"),
    ("liquidation_price", "Liquidation price"), ("equity_left", "Equity left"), ("max_drawdown", "Max drawdown"),
    ("min_distance_to_liquidation", "Closest to liquidation"), ("funding_paid", "Funding"), ("fees", "Fees"),
    ("insurance_cover", "Insurance fund's cover"), ("engine", "Engine"),
)


def cells_table(config: dict[str, Any], survival: pd.DataFrame) -> tuple[str, list[str]]:
    """Every cell in words and units; columns that hold one value for every cell move to the
    caption. Returns the HTML and the numbered warnings."""
    survival = with_verdicts(survival)
    covered = bool(survival.apply(lambda r: V.insolvent(r.to_dict()), axis=1).any()) if len(survival) else False
    # the insurance fund's cover: a column only when a cell had one (0 everywhere is not worth a column)
    present = [(c, h) for c, h in CELL_COLUMNS if c in survival.columns and (c != "insurance_cover" or covered)]
    constant = [(c, h) for c, h in present if c not in ("strategy", "scenario", "leverage", "verdict", "insurance_cover")
                and survival[c].map(str).nunique(dropna=False) == 1]
    cols = [(c, h) for c, h in present if (c, h) not in constant]
    heads = [h for _, h in cols] + ["Note", "Run"]
    warnings: list[str] = []
    rows = []
    for rec in survival.to_dict("records"):
        row = []
        for c, _ in cols:
            v = rec.get(c)
            if c == "verdict":
                bg, fg = V.cell_colours(v, float(rec["equity_left"]))
                word = f"{v}, {V.INSOLVENT}" if v == V.LIQUIDATED and V.insolvent(rec) else v
                tip = f' title="{esc(cover_words(rec))}"' if V.insolvent(rec) else ""
                text = (f'<span class="pill" style="background:{bg};color:{fg}"{tip}>{esc(V.VERDICT_SYMBOLS[v])} '
                        f'{esc(word)}</span>')
            elif c == "insurance_cover":
                text = esc(fmt_pct(v, 2)) if V.insolvent(rec) else "–"
            elif c == "leverage":
                text = esc(_lev_label(float(v)))
            elif c == "liquidated_at":
                text = esc(fmt_time(v).removesuffix(" UTC"))
            elif c == "liquidation_price":
                text = esc(fmt_amount(v, _price_unit(config, rec)) if not missing(v) else "–")
            elif c in ("equity_left", "max_drawdown", "min_distance_to_liquidation"):
                text = esc(fmt_pct(v, 1))
            elif c in ("funding_paid", "fees"):
                text = esc(fmt_pct(v, 2))
            else:
                text = esc(v if not missing(v) else "–")
            row.append(text)
        if rec.get("warning"):
            warnings.append(f"{rec.get('strategy', '')} · {rec['scenario']} at {_lev_label(rec['leverage'])}: {rec['warning']}")
            row.append(f'<a class="warn" href="#warning-{len(warnings)}" title="{esc(rec["warning"])}">⚠ {len(warnings)}</a>')
        else:
            row.append("")
        link = _cell_link(rec.get("run_dir"))
        row.append(f'<a href="{esc(link)}">report</a>' if link else "")
        rows.append(row)
    caption = " · ".join(f"{h}: {esc(survival[c].astype(str).iloc[0])}" for c, h in constant)
    money = ("funding (cash flow, negative = paid), fees (what the account paid) and the insurance fund's cover (of "
             "an insolvent liquidation: the loss beyond the margin, credited to the account, not a fee; equity left "
             "includes it)" if covered else "funding (cash flow, negative = paid) and fees")
    note = (f'<p class="note">Equity left, max drawdown, {money}: percent of the '
            "initial equity in the settle currency; closest to liquidation: percent of the mark price"
            + (f". Every cell: {caption}" if caption else "") + ".</p>")
    return note + table(heads, rows, left=2, raw=True, cls="cells"), warnings


def scenario_table(config: dict[str, Any]) -> str:
    notes = config.get("scenario_notes") or {}
    if not notes:
        return ""
    rows = []
    for name, n in notes.items():
        rows.append([name, n.get("title", ""), n.get("data_kind", ""), f"{n.get('venue', '')} {n.get('symbol', '')}",
                     fmt_count(n.get("bars")), fmt_time(n.get("start")), fmt_time(n.get("end")),
                     fmt_amount(n.get("initial_cash"), n.get("settle_currency", "")),
                     str(n.get("funding", "")).replace("(funding_rate column)", "(their funding-rate column)")])
    return table(["Scenario", "Title", "Data", "Venue", "Bars", "First bar", "Last bar", "Initial equity", "Funding"],
                 rows, left=4, cls="wrap2 wrap9")


def render_stress_html(config: dict[str, Any], survival: pd.DataFrame, frontier: pd.DataFrame) -> str:
    survival = with_verdicts(survival)
    floor = float(config.get("wipeout", V.DEFAULT_WIPEOUT))
    n = len(survival)
    counts = survival["verdict"].value_counts()
    alive = int(counts.get(V.SURVIVED, 0))
    strategies = ", ".join(sorted(map(str, survival["strategy"].unique()))) if "strategy" in survival else config.get("strategy", "")
    title = f"Stress report · {strategies}" if strategies else "Stress report"
    kinds = ", ".join(sorted(map(str, survival["data_kind"].dropna().unique()))) if "data_kind" in survival else "unknown"
    subtitle = (f"{survival['scenario'].nunique()} scenarios × {survival['leverage'].nunique()} leverage levels · "
                f"data: {esc(kinds)} · survived = traded, never liquidated, equity left ≥ {esc(fmt_pct(floor, 0))}")
    parts = [f"{alive} of {n} cells survived"]
    for verdict, what in ((V.LIQUIDATED, "were liquidated"), (V.WIPED_OUT, f"were wiped out (under {fmt_pct(floor, 0)})"),
                          (V.NO_TRADE, "never traded (no trade: not a survivor)"),
                          (V.REFUSED, "had every order refused by the broker (not counted as survived)")):
        if counts.get(verdict, 0):
            parts.append(f"{int(counts[verdict])} {what}")
    if not counts.get(V.LIQUIDATED, 0):
        parts.insert(1, "0 were liquidated")
    bailed = [r for r in survival.to_dict("records") if V.insolvent(r)]
    if bailed:
        k = parts.index(next(p for p in parts if p.endswith("were liquidated")))
        parts[k] += (f" ({len(bailed)} insolvent: the insurance fund covered the loss beyond the margin, up to "
                     f"{fmt_pct(max(V.insurance_cover(r) for r in bailed), 2)} of the initial equity)")
    body = [f'<div class="banner {"good" if alive == n else "bad"}" id="survival-banner">{esc("; ".join(parts))}.</div>']
    if "data_note" in config:
        body.append(f'<div class="banner warn">{esc(config["data_note"])}.</div>')
    n_warn = int((survival["warning"] != "").sum())
    if n_warn:
        body.append(f'<div class="banner warn" id="plausibility-banner">⚠ {n_warn} cell(s) show a result that is '
                    'implausible or impossible for their data: see <a href="#warnings">the warnings</a> before trusting them.</div>')
    legend = legend_html(floor, insolvent=bool(bailed))
    for i, (name, g) in enumerate(_groups(survival)):
        body.append(section(
            f"Survival heatmap {name}".strip(),
            (legend if i == 0 else "")
            + figure_block(f"stress-heatmap-{i}", heatmap_figure(g, name, floor), links=True)
            + '<details><summary>The same grid as a table, every cell a link to its run report</summary>'
            + grid_table(g) + "</details>", f"heatmap-{i}"))
    body.append(section("Survival frontier", figure_block("stress-frontier", frontier_figure(survival, frontier))
                        + '<p class="note">Only survived cells count: a liquidated, wiped-out, no-trade or refused cell '
                          "never raises the frontier.</p>", "frontier"))
    body.append(section("Equity left by leverage", figure_block("stress-equity", equity_figure(survival))
                        + '<p class="note">One panel per strategy, one line per scenario (strategies are never joined). '
                          "Log scale: a cell that kept less than 0.1 % (most liquidations) is drawn at 0.1 %; the hover "
                          "gives its value.</p>", "equity"))
    cells_html, warnings = cells_table(config, survival)
    body.append(section("All cells", cells_html, "cells"))
    if warnings:
        items = "".join(f'<li id="warning-{k + 1}">{esc(w)}</li>' for k, w in enumerate(warnings))
        body.append(section("Warnings: implausible or impossible results", f"<ol>{items}</ol>"
                            f'<p class="note">Rule: {esc(PLAUSIBILITY_RULE)}</p>', "warnings"))
    config_html = table(("Setting", "Value"), config_rows(config, skip=("scenario_notes", "funding", "options", "units",
                                                                 *(("strategy",) if "strategies" in config else ()))),
                        cls="kv")
    body.append(section("Stress config", '<div class="flex">' + config_html + "</div>"
                        + "<h3>Scenarios</h3>" + scenario_table(config), "config"))
    return page(title, subtitle, "\n".join(body))


PLAUSIBILITY_RULE = ("a cell that ends below zero equity is impossible (a venue account floors at zero); a cell is "
                     "flagged implausible when it gained more than one position at its leverage could make on the "
                     "window's best move (buy the lowest low before the highest later high, or short the reverse), or "
                     "when it multiplied its equity 10× or more on reconstructed or simulated bars.")


def render_stress(stress_dir: str | Path, output: str | Path | None = None, render_cells: bool = True) -> Path:
    """Write ``STRESS_DIR/report.html`` and, when ``render_cells``, each cell's run report
    (``<run_dir>/report.html``). The cell pages share one ``STRESS_DIR/assets/plotly.min.js``
    rather than inlining 4.6 MB each; the stress page itself is self-contained."""
    path = Path(stress_dir)
    config, survival, frontier = load_stress(path)
    if render_cells and "run_dir" in survival:
        asset = None
        warnings = dict(zip(survival["run_dir"], with_verdicts(survival)["warning"]))
        for run_dir in survival["run_dir"].dropna().unique():
            cell = path / str(run_dir)
            if not (cell / "equity.parquet").exists():
                continue
            if asset is None:
                asset = write_plotly_asset(path / "assets")
            rel_js = os.path.relpath(asset, cell).replace(os.sep, "/")
            back = os.path.relpath(path / "report.html", cell).replace(os.sep, "/")
            render_run(cell, plotlyjs=rel_js, back_link=back, warning=str(warnings.get(run_dir) or ""))
    out = Path(output) if output else path / "report.html"
    out.write_text(render_stress_html(config, survival, frontier), encoding="utf-8")
    return out
