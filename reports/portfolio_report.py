"""Reports of a portfolio on one cross wallet: one page per run, one page per portfolio stress grid.

A run page (``portfolio.parquet`` + event tables, :meth:`engine.portfolio.PortfolioResult.save`)
shows the account equity, the account margin ratio with each symbol's share of it
(``MM_k / margin balance``: the shares add up to the account's ratio; 100 % is the venue's
liquidation line), each symbol's mark with its liquidation price and its events, and the
events per symbol. A stress page (``stress.json`` with ``kind = "portfolio"``) shows the grid of
account verdicts (which symbol was liquidated when) and links every cell's run page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import verdicts as V
from .page import esc, figure_block, fmt_num, fmt_pct, page, section, table
from risk.errors import DeleverageError

from .results import legacy_cover_note, read_json, read_parquet

MAX_POINTS = 4000


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    """Every k-th bar (and every bar where a position changed) so a long run stays light to draw."""
    if len(frame) <= MAX_POINTS:
        return frame
    step = int(np.ceil(len(frame) / MAX_POINTS))
    keep = np.zeros(len(frame), dtype=bool)
    keep[::step] = True
    keep[-1] = True
    for col in frame.columns:
        if col.endswith("_qty"):
            q = frame[col].to_numpy()
            keep[1:] |= q[1:] != q[:-1]
    return frame[keep]


def _symbols(frame: pd.DataFrame) -> list[str]:
    return [c[: -len("_qty")] for c in frame.columns if c.endswith("_qty")]


def _read_events(directory: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for name in ("fills", "funding", "liquidations", "fees", "adl"):
        path = directory / f"{name}.parquet"
        out[name] = read_parquet(path) if path.exists() else pd.DataFrame()
    return out


def portfolio_figures(frame: pd.DataFrame, events: dict[str, pd.DataFrame]) -> tuple[go.Figure, go.Figure]:
    """``(margin figure, per-symbol price figure)`` of one portfolio run."""
    symbols = _symbols(frame)
    thin = _thin(frame)
    x = thin.index
    margin = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.4, 0.6], vertical_spacing=0.06,
                           subplot_titles=("account equity", "margin ratio (account and each symbol's share)"))
    margin.add_trace(go.Scatter(x=x, y=thin["equity"], name="equity", line={"color": "#14213d"}), row=1, col=1)
    margin.add_trace(go.Scatter(x=x, y=thin["account_margin_ratio"].clip(upper=2.0) * 100, name="account",
                                line={"color": "#c0392b", "width": 2}), row=2, col=1)
    for sym in symbols:
        margin.add_trace(go.Scatter(x=x, y=thin[f"{sym}_margin_ratio"].clip(upper=2.0) * 100, name=f"{sym} share",
                                    line={"width": 1}), row=2, col=1)
    margin.add_hline(y=100, line={"dash": "dash", "color": "#8a1c1c"}, row=2, col=1,
                     annotation_text="liquidation (100 %)")
    margin.update_yaxes(title_text="%", row=2, col=1)
    margin.update_layout(height=560, margin={"t": 40, "l": 60, "r": 20, "b": 30}, legend={"orientation": "h"})
    prices = make_subplots(rows=len(symbols), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=[f"{s}: mark, liquidation price, events" for s in symbols])
    liq = events.get("liquidations", pd.DataFrame())
    fills = events.get("fills", pd.DataFrame())
    for r, sym in enumerate(symbols, start=1):
        prices.add_trace(go.Scatter(x=x, y=thin[f"{sym}_mark"], name=f"{sym} mark", line={"color": "#334e68"}),
                         row=r, col=1)
        prices.add_trace(go.Scatter(x=x, y=thin[f"{sym}_liq"], name=f"{sym} liquidation price",
                                    line={"color": "#c0392b", "dash": "dot"}), row=r, col=1)
        if len(fills):
            mine = fills[(fills["symbol"] == sym) & (fills["kind"] == "trade")]
            if len(mine):
                prices.add_trace(go.Scatter(x=mine["time"], y=mine["price"], mode="markers", name=f"{sym} fills",
                                            marker={"symbol": "circle", "size": 7, "color": "#2e7d32"}), row=r, col=1)
        if len(liq):
            mine = liq[liq["symbol"] == sym]
            if len(mine):
                prices.add_trace(go.Scatter(x=mine["time"], y=mine["fill_price"], mode="markers",
                                            name=f"{sym} liquidated (account rule)",
                                            marker={"symbol": "x", "size": 12, "color": "#c0392b"}), row=r, col=1)
    prices.update_layout(height=260 * len(symbols) + 60, margin={"t": 40, "l": 60, "r": 20, "b": 30},
                         legend={"orientation": "h"})
    return margin, prices


def _event_tables(events: dict[str, pd.DataFrame], symbols: list[str]) -> str:
    out = []
    liq = events.get("liquidations", pd.DataFrame())
    # the insurance fund's cover of an insolvent liquidation (credited to the account, not a fee): a
    # column only when the run had one (a table written before the column existed has none)
    covered = len(liq) > 0 and "insurance_cover" in liq and bool((liq["insurance_cover"] > 0.0).any())
    if len(liq):
        rows = [(esc(r["symbol"]), esc(f"{r['time']:%Y-%m-%d %H:%M}"), esc(r["side"]), fmt_num(r["qty"], 4),
                 fmt_num(r["liquidation_price"]), fmt_num(r["fill_price"]), fmt_num(r["fee"]),
                 *((fmt_num(r["insurance_cover"]),) if covered else ()),
                 fmt_num(r["realized_pnl"]), fmt_num(r["equity_after"]),
                 fmt_pct(r.get("account_margin_ratio"), 1)) for _, r in liq.iterrows()]
        out.append("<h3>Liquidations (account-level, in the order the account rule closed them)</h3>" + table(
            ["symbol", "time", "side", "qty", "liquidation price", "fill", "clearance fee",
             *(("insurance fund's cover",) if covered else ()), "realized PnL",
             "equity after", "account margin ratio"], rows, left=3, raw=True))
    else:
        out.append('<p class="note">No liquidation.</p>')
    per = []
    for sym in symbols:
        f = events["fills"][events["fills"]["symbol"] == sym] if len(events["fills"]) else events["fills"]
        fu = events["funding"][events["funding"]["symbol"] == sym] if len(events["funding"]) else events["funding"]
        fe = events["fees"][events["fees"]["symbol"] == sym] if len(events["fees"]) else events["fees"]
        cover = (fmt_num(float(liq.loc[liq["symbol"] == sym, "insurance_cover"].sum())),) if covered else ()
        per.append((esc(sym), len(f), fmt_num(float(f["realized_pnl"].sum()) if len(f) else 0.0),
                    len(fu), fmt_num(float(fu["amount"].sum()) if len(fu) else 0.0),
                    fmt_num(float(fe["amount"].sum()) if len(fe) else 0.0), *cover))
    out.append("<h3>Events per symbol</h3>" + table(
        ["symbol", "fills", "realized PnL", "funding settlements", "funding", "fees",
         *(("insurance fund's cover",) if covered else ())], per, raw=True))
    return "\n".join(out)


def render_portfolio_run(directory: str | Path, output: str | Path | None = None,
                         plotlyjs: str = "inline") -> Path:
    """``directory/report.html`` of one portfolio run."""
    d = Path(directory)
    frame = read_parquet(d / "portfolio.parquet")
    events = _read_events(d)
    summary = read_json(d / "summary.json") if (d / "summary.json").exists() else {}
    info = summary.get("portfolio", {})
    symbols = _symbols(frame)
    margin, prices = portfolio_figures(frame, events)
    verdict = ("LIQUIDATED: " + ", ".join(summary.get("liquidated_symbols", []))) if summary.get("liquidated") \
        else "not liquidated"
    head = (f'<div class="banner {"bad" if summary.get("liquidated") else "good"}">{esc(verdict)}; equity left '
            f'{fmt_pct(summary.get("final_equity", np.nan) / summary.get("initial_cash", np.nan), 1)}; '
            f'max account margin ratio {fmt_pct(summary.get("max_finite_account_margin_ratio"), 1)}</div>'
            f'<p class="note">One cross wallet on {esc(info.get("venue", ""))}: {esc(", ".join(symbols))}. '
            f'Account rule: {esc(info.get("account_rule", ""))}. Assumptions: '
            f'{esc("; ".join(info.get("account_rule_assumptions", [])))}. Engine: {esc(summary.get("engine", ""))}.</p>')
    cover = summary.get("insurance_cover_total") or 0.0
    if cover > 0.0:  # an insolvent liquidation: the fund paid the account's shortfall back to zero
        head += (f'<p class="note">Insolvent liquidation: the insurance fund covered {fmt_num(cover)} of the '
                 "account's shortfall (credited to the account, not a fee; fees are what the account paid).</p>")
    legacy = legacy_cover_note(events["liquidations"])
    if legacy:
        head = f'<div class="banner warn" id="legacy-banner">⚠ {esc(legacy)}</div>' + head
    body = (head + section("Account margin", figure_block("margin", margin))
            + section("Symbols", figure_block("prices", prices))
            + section("Events", _event_tables(events, symbols)))
    out = Path(output) if output else d / "report.html"
    out.write_text(page(f"Portfolio {info.get('label', '')}".strip(), esc(", ".join(symbols)), body, plotlyjs))
    return out


def render_portfolio_stress(directory: str | Path, output: str | Path | None = None) -> Path:
    """``directory/report.html`` of a portfolio stress grid, with each cell's run page."""
    from .page import write_plotly_asset

    d = Path(directory)
    spec = read_json(d / "stress.json")
    if not (d / "cells.jsonl").exists():
        raise DeleverageError(f"{d / 'cells.jsonl'}: file not found; expected the cell log of the portfolio stress run")
    cells = []
    for n, line in enumerate((d / "cells.jsonl").read_text().splitlines(), start=1):
        if line.strip():
            try:
                cells.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DeleverageError(f"{d / 'cells.jsonl'} line {n} is not valid JSON: {exc}") from None
    write_plotly_asset(d)
    for cell in cells:
        cell_dir = d / cell["run_dir"]
        rel = "/".join([".."] * len(Path(cell["run_dir"]).parts)) + "/plotly.min.js"
        render_portfolio_run(cell_dir, plotlyjs=rel)
    scenarios = list(dict.fromkeys(c["scenario"] for c in cells))
    levs = sorted({float(c["leverage"]) for c in cells})
    by = {(c["scenario"], float(c["leverage"])): c for c in cells}
    rows = []
    bailed = 0
    for s in scenarios:
        row: list[Any] = [esc(s)]
        for lev in levs:
            c = by.get((s, lev))
            if c is None:
                row.append("–")
                continue
            cls = "good" if c["survived"] else "bad"
            detail = esc(c["liquidations"]) if c["liquidations"] else f"equity {fmt_pct(c['equity_left'], 0)}"
            word = c["verdict"]
            if V.insolvent(c):  # the insurance fund paid the loss beyond the margin (older cells: no key, 0)
                bailed += 1
                word = f"{word}, {V.INSOLVENT}" if word == V.LIQUIDATED else word
                detail += (f"<br>the insurance fund covered {fmt_pct(V.insurance_cover(c), 2)}; without it equity "
                           f"{fmt_pct(float(c['equity_left']) - V.insurance_cover(c), 2)}")
            row.append(f'<a href="{esc(c["run_dir"])}/report.html"><span class="pill {cls}">{esc(word)}'
                       f'</span><br><span class="note">{detail}</span></a>')
        rows.append(row)
    grid = table(["scenario"] + [f"{lev:g}x" for lev in levs], rows, raw=True, cls="grid")
    kinds = sorted({c["data_kind"] for c in cells})
    names = ", ".join(f"{e['symbol']} {e['weight']:+g}" for e in spec["symbols"])
    note = (f'<p class="note">Account verdict per cell: the portfolio {esc(names)} (weights x the cell\'s gross '
            f'leverage) on one {esc(spec["venue"])} cross wallet; LIQUIDATED lists the symbols the account rule '
            f'closed, in order. Data: {esc(", ".join(kinds))}'
            + (" (RECONSTRUCTED: seeded paths through published waypoints, not exchange data)"
               if any("reconstructed" in k for k in kinds) else "") + ".</p>")
    if bailed:
        note += (f'<p class="note">{bailed} cell(s) {V.INSOLVENT}: {esc(V.INSOLVENT_MEANING)}. The cover is a percent '
                 "of the initial equity; the cell's page gives it per liquidation and per symbol.</p>")
    body = section("Portfolio survival grid", note + grid)
    out = Path(output) if output else d / "report.html"
    out.write_text(page("Portfolio stress", esc(names), body))
    return out
