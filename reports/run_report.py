"""The report of one run: price against liquidation price, the liquidation feed, margin,
equity and drawdown, funding and fees, metrics, config and data provenance."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from risk.errors import DeleverageError

from . import metrics as m
from .downsample import bucket_sum, downsample_ohlc_extremes
from .format import (config_rows, fmt_amount, fmt_bool, fmt_count, fmt_qty, fmt_time, fmt_value, instrument_units,
                     label, times_word)
from .page import esc, figure_block, fmt_num, fmt_pct, page, section, table
from .results import TABLES, RunResult, empty_table, legacy_cover_note, read_parquet

DEFAULT_MAX_POINTS = 6000  # per trace; a bucket keeps its first/last/extreme rows


def load_run(run_dir: str | Path) -> tuple[RunResult, pd.DataFrame | None]:
    """Read a run directory for reporting: the RunResult and the input bars (or None).

    Requires ``equity.parquet`` and ``config.json``; the other tables default to empty.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise DeleverageError(f"RUN_DIR does not exist or is not a directory: {path}")
    for required in ("equity.parquet", "config.json"):
        if not (path / required).exists():
            raise DeleverageError(f"RUN_DIR is not a run directory: missing {required} in {path}")
    try:
        config = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise DeleverageError(f"{path / 'config.json'} is not valid JSON: {exc}") from exc
    summary: dict[str, Any] = {}
    if (path / "summary.json").exists():
        try:
            summary = json.loads((path / "summary.json").read_text())
        except json.JSONDecodeError as exc:
            raise DeleverageError(f"{path / 'summary.json'} is not valid JSON: {exc}") from exc
    tables = {}
    for name in TABLES:
        file = path / f"{name}.parquet"
        tables[name] = read_parquet(file) if file.exists() else empty_table(name)
    equity = tables["equity"]
    missing = [c for c in ("equity",) if c not in equity.columns]
    if missing:
        raise DeleverageError(f"{path / 'equity.parquet'} lacks column(s) {', '.join(missing)}")
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise DeleverageError(f"{path / 'equity.parquet'} must be indexed by bar open time (a DatetimeIndex), found {type(equity.index).__name__}")
    if len(equity) < 2:
        raise DeleverageError(f"{path / 'equity.parquet'} has {len(equity)} bar(s); a report needs at least 2")
    bars = read_parquet(path / "bars.parquet") if (path / "bars.parquet").exists() else None
    return RunResult(config=config, summary=summary, **tables), bars


def _ms(index: pd.Index) -> np.ndarray:
    """Times as float milliseconds since the epoch (plotly date axes read numbers as ms UTC;
    a typed array is far smaller than ISO strings)."""
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ms").asi8.astype("float64")


def _times(values: Any) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(pd.to_datetime(pd.Series(values), utc=True))
    return idx


def _keep_mask(index: pd.DatetimeIndex, result: RunResult) -> np.ndarray:
    """Bars that must survive downsampling: position changes, fills and liquidations."""
    keep = np.zeros(len(index), dtype=bool)
    eq = result.equity
    if "position_qty" in eq:
        qty = eq["position_qty"].fillna(0.0).to_numpy()
        change = np.r_[False, qty[1:] != qty[:-1]]
        keep |= change | np.r_[change[1:], False]  # the last bar before and the first after
    for frame, col in ((result.liquidations, "time"), (result.fills, "time")):
        if len(frame) and col in frame:
            times = _times(frame[col])
            pos = index.searchsorted(times, side="right") - 1
            keep[pos[(pos >= 0) & (pos < len(index))]] = True
    return keep


def price_frame(result: RunResult, bars: pd.DataFrame | None) -> pd.DataFrame:
    """Per-bar price columns for the chart: close, mark, high/low (and mark high/low) from the
    input bars when present, and the liquidation price."""
    eq = result.equity
    frame = pd.DataFrame(index=eq.index)
    for col in ("close", "mark", "liquidation_price"):
        if col in eq:
            frame[col] = eq[col].astype("float64")
    if "mark" in frame and not has_mark_series(bars):
        frame = frame.drop(columns="mark")  # the engine's mark is the last price when the data has none
    if bars is not None and len(bars):
        b = bars.reindex(eq.index)
        for col in ("high", "low", "mark_high", "mark_low"):
            if col in b:
                frame[col] = b[col].astype("float64")
        if "close" not in frame and "close" in b:
            frame["close"] = b["close"]
        if "mark" not in frame and "mark_close" in b:
            frame["mark"] = b["mark_close"]
    return frame


def has_mark_series(bars: pd.DataFrame | None) -> bool:
    """True when the input bars carry a mark price of their own (``mark_close`` or ``mark``)."""
    return bars is not None and any(c in bars and bars[c].notna().any() for c in ("mark_close", "mark"))


def run_figure(result: RunResult, bars: pd.DataFrame | None, max_points: int = DEFAULT_MAX_POINTS) -> tuple[go.Figure, dict[str, Any]]:
    """The stacked time-series figure of a run (shared time axis) and display notes."""
    eq = result.equity
    index = pd.DatetimeIndex(eq.index)
    keep = _keep_mask(index, result)
    notes: dict[str, Any] = {"bars": len(eq)}
    quote = instrument_units(result.config)["quote"]
    mark_note = "last and mark" if has_mark_series(bars) else "last (no mark price in the data: liquidation is checked on last)"
    titles = (
        f"Price ({quote}): {mark_note}, bar range, liquidation price, entries / exits / liquidations",
        "Liquidation feed (market-wide notional)",
        "Margin ratio (maintenance margin / equity)",
        "Distance to liquidation (fraction of mark)",
        "Equity",
        "Drawdown",
        "Cumulative funding and fees",
    )
    fig = make_subplots(
        rows=7, cols=1, shared_xaxes=True, vertical_spacing=0.035, subplot_titles=titles,
        row_heights=[0.28, 0.12, 0.12, 0.12, 0.13, 0.1, 0.13],
    )

    # 1. price
    prices = price_frame(result, bars)
    lows = [c for c in ("low", "mark_low", "close", "mark", "liquidation_price") if c in prices]
    highs = [c for c in ("high", "mark_high", "close", "mark", "liquidation_price") if c in prices]
    shown = downsample_ohlc_extremes(prices, max_points, low=lows, high=highs, keep=keep)
    notes["price_points"] = len(shown)
    x = _ms(shown.index)
    if "high" in shown and "low" in shown:
        fig.add_trace(go.Scatter(x=x, y=shown["high"].to_numpy(), name="bar high", mode="lines",
                                 line=dict(width=0.6, color="rgba(100,116,139,0.7)"), legendgroup="range"), 1, 1)
        fig.add_trace(go.Scatter(x=x, y=shown["low"].to_numpy(), name="bar low (wick)", mode="lines",
                                 line=dict(width=0.6, color="rgba(100,116,139,0.7)"), fill="tonexty",
                                 fillcolor="rgba(148,163,184,0.25)", legendgroup="range"), 1, 1)
    if "mark_low" in shown:
        fig.add_trace(go.Scatter(x=x, y=shown["mark_low"].to_numpy(), name="mark low", mode="lines",
                                 line=dict(width=0.8, color="#f59e0b", dash="dot")), 1, 1)
    if "close" in shown:
        fig.add_trace(go.Scatter(x=x, y=shown["close"].to_numpy(), name="last (close)", mode="lines",
                                 line=dict(width=1.2, color="#1d4ed8")), 1, 1)
    if "mark" in shown:
        fig.add_trace(go.Scatter(x=x, y=shown["mark"].to_numpy(), name="mark", mode="lines",
                                 line=dict(width=1, color="#f59e0b")), 1, 1)
    if "liquidation_price" in shown and shown["liquidation_price"].notna().any():
        fig.add_trace(go.Scatter(x=x, y=shown["liquidation_price"].to_numpy(), name="liquidation price",
                                 mode="lines", connectgaps=False, line=dict(width=1.5, color="#dc2626", dash="dash")), 1, 1)
    _add_trade_markers(fig, result)

    # 2. liquidation feed
    liq_cols = [c for c in ("liq_long_notional", "liq_short_notional") if bars is not None and c in bars]
    if liq_cols and bars[liq_cols].notna().any().any():
        feed, width = bucket_sum(bars[liq_cols].astype("float64"), max(200, max_points // 3))
        per = "per bar" if width is None else f"per {_fmt_td(width)} bucket (summed)"
        notes["feed_points"] = len(feed)
        fx = _ms(feed.index)
        if "liq_long_notional" in feed:
            fig.add_trace(go.Bar(x=fx, y=-feed["liq_long_notional"].fillna(0).to_numpy(), name=f"longs liquidated ({per}, shown below 0)",
                                 marker_color="#dc2626", marker_line_width=0), 2, 1)
        if "liq_short_notional" in feed:
            fig.add_trace(go.Bar(x=fx, y=feed["liq_short_notional"].fillna(0).to_numpy(), name=f"shorts liquidated ({per})",
                                 marker_color="#16a34a", marker_line_width=0), 2, 1)
        fig.update_yaxes(title_text="notional", row=2, col=1)
        notes["feed"] = per
    else:
        fig.add_trace(go.Scatter(x=[_ms(index[:1])[0], _ms(index[-1:])[0]], y=[0, 0], mode="lines",
                                 line=dict(color="#cbd5e1"), name="no liquidation feed", showlegend=False, hoverinfo="skip"), 2, 1)
        fig.add_annotation(text="no liquidation feed in this run's data", xref="x2 domain", yref="y2 domain",
                           x=0.5, y=0.5, showarrow=False, font=dict(color="#64748b", size=14))
        notes["feed"] = None

    # 3-4. margin ratio, distance to liquidation
    for row, col, name, color in ((3, "margin_ratio", "margin ratio", "#7c3aed"),
                                  (4, "distance_to_liquidation", "distance to liquidation", "#0891b2")):
        if col in eq and eq[col].notna().any():
            s = eq[[col]].astype("float64")
            d = downsample_ohlc_extremes(s, max_points, low=col, high=col, keep=keep)
            fig.add_trace(go.Scatter(x=_ms(d.index), y=d[col].to_numpy(), name=name, mode="lines",
                                     connectgaps=False, line=dict(width=1, color=color)), row, 1)
            fig.update_yaxes(tickformat=".0%", row=row, col=1)
    if "margin_ratio" in eq:
        fig.add_hline(y=1.0, line=dict(color="#dc2626", width=1, dash="dot"), row=3, col=1,
                      annotation_text="liquidation at 100 %", annotation_position="top left")

    # 5-6. equity and drawdown
    ed = pd.DataFrame({"equity": eq["equity"].astype("float64")})
    if "wallet_balance" in eq:
        ed["wallet_balance"] = eq["wallet_balance"].astype("float64")
    ed["drawdown"] = m.drawdown(ed["equity"])
    d = downsample_ohlc_extremes(ed, max_points, low=["equity"], high=["equity", "drawdown"], keep=keep)
    dx = _ms(d.index)
    fig.add_trace(go.Scatter(x=dx, y=d["equity"].to_numpy(), name="equity", mode="lines", line=dict(width=1.3, color="#0f766e")), 5, 1)
    if "wallet_balance" in d:
        fig.add_trace(go.Scatter(x=dx, y=d["wallet_balance"].to_numpy(), name="wallet balance", mode="lines",
                                 line=dict(width=0.8, color="#94a3b8", dash="dot")), 5, 1)
    fig.add_trace(go.Scatter(x=dx, y=(-d["drawdown"]).to_numpy(), name="drawdown", mode="lines", fill="tozeroy",
                             line=dict(width=0.8, color="#b91c1c"), fillcolor="rgba(220,38,38,0.25)"), 6, 1)
    fig.update_yaxes(tickformat=".0%", row=6, col=1)
    settle = result.config.get("settle_currency", "")
    fig.update_yaxes(title_text=settle, row=5, col=1)

    # 7. funding and fees
    cf = pd.DataFrame(index=eq.index)
    if "funding_cum" in eq:
        cf["funding_cum"] = eq["funding_cum"].astype("float64")
    elif len(result.funding):
        cf["funding_cum"] = _cumulate(result.funding, "amount", index)
    if "fees_cum" in eq:
        cf["fees_cum"] = eq["fees_cum"].astype("float64")
    elif len(result.fees):
        cf["fees_cum"] = _cumulate(result.fees, "amount", index)
    if len(cf.columns):
        d = downsample_ohlc_extremes(cf, max_points, low=list(cf.columns), high=list(cf.columns), keep=keep)
        if "funding_cum" in d:
            fig.add_trace(go.Scatter(x=_ms(d.index), y=d["funding_cum"].to_numpy(), name="funding (cash flow; <0 = paid)",
                                     mode="lines", line=dict(width=1.2, color="#9333ea"), line_shape="hv"), 7, 1)
        if "fees_cum" in d:
            fig.add_trace(go.Scatter(x=_ms(d.index), y=(-d["fees_cum"]).to_numpy(), name="fees (shown as cost, <0)",
                                     mode="lines", line=dict(width=1.2, color="#ea580c"), line_shape="hv"), 7, 1)
    fig.update_yaxes(title_text=settle, row=7, col=1)

    fig.update_xaxes(type="date")
    fig.update_layout(
        height=1900, margin=dict(l=70, r=20, t=50, b=40), hovermode="x unified", barmode="relative",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), template="plotly_white", bargap=0,
    )
    return fig, notes


def _cumulate(frame: pd.DataFrame, col: str, index: pd.DatetimeIndex) -> pd.Series:
    times = _times(frame["time"])
    s = pd.Series(frame[col].to_numpy(dtype="float64"), index=times).groupby(level=0).sum()
    pos = index.searchsorted(s.index, side="right") - 1
    per_bar = pd.Series(0.0, index=index)
    np.add.at(per_bar.values, np.clip(pos, 0, len(index) - 1), s.to_numpy())
    return per_bar.cumsum()


def _add_trade_markers(fig: go.Figure, result: RunResult) -> None:
    units = instrument_units(result.config)
    trades = result.trades
    if len(trades):
        side = trades["side"].astype(str).str.lower()
        is_long = side.isin(["long", "buy"])
        for mask, label, symbol, color in ((is_long, "long entry", "triangle-up", "#16a34a"),
                                           (~is_long, "short entry", "triangle-down", "#dc2626")):
            t = trades[mask & trades["open_time"].notna()]
            if len(t):
                fig.add_trace(go.Scatter(
                    x=_ms(_times(t["open_time"])), y=t["entry_price"].to_numpy(dtype="float64"), mode="markers", name=label,
                    marker=dict(symbol=symbol, size=11, color=color, line=dict(width=1, color="#111")),
                    text=[f"{fmt_qty(q, units['qty'])}" for q in t["qty"].astype(float)],
                    hovertemplate="%{text}<br>%{y:,.2f} " + units["quote"] + "<extra></extra>"), 1, 1)
        liquidated = trades["liquidated"].fillna(False).astype(bool) if "liquidated" in trades else pd.Series(False, index=trades.index)
        t = trades[trades["close_time"].notna() & ~liquidated]
        if len(t):
            fig.add_trace(go.Scatter(
                x=_ms(_times(t["close_time"])), y=t["exit_price"].to_numpy(dtype="float64"), mode="markers", name="exit",
                marker=dict(symbol="circle-open", size=10, color="#111", line=dict(width=2)),
                text=[f"net PnL {fmt_amount(p, units['settle'])}" for p in t["pnl_net"].astype(float)],
                hovertemplate="%{text}<br>%{y:,.2f} " + units["quote"] + "<extra></extra>"), 1, 1)
    liq = result.liquidations
    if len(liq):
        price = liq["fill_price"].astype(float).where(liq["fill_price"].notna(), liq["liquidation_price"].astype(float))
        qu = units["quote"]
        text = [
            f"LIQUIDATED {s} {fmt_qty(q, units['qty'])}<br>trigger {tp:,.2f} {qu}<br>liquidation price {lp:,.2f} {qu}"
            f"<br>bankruptcy {bp:,.2f} {qu}<br>fill {fp:,.2f} {qu}"
            for s, q, tp, lp, bp, fp in zip(liq["side"], liq["qty"].astype(float), liq["trigger_price"].astype(float),
                                            liq["liquidation_price"].astype(float), liq["bankruptcy_price"].astype(float),
                                            liq["fill_price"].astype(float))
        ]
        if "partial" in liq:
            text = [("PARTIAL " + t.replace("LIQUIDATED ", "LIQUIDATION ") + f"<br>left open {fmt_qty(left, units['qty'])}")
                    if bool(p) else t for t, p, left in zip(text, liq["partial"].fillna(False),
                                                            liq["qty_left"].fillna(0.0).astype(float))]
        fig.add_trace(go.Scatter(
            x=_ms(_times(liq["time"])), y=price.to_numpy(), mode="markers", name="liquidation",
            marker=dict(symbol="x", size=16, color="#7f1d1d", line=dict(width=2, color="#fff")),
            text=text, hovertemplate="%{text}<extra></extra>"), 1, 1)


    adl = getattr(result, "adl", None)
    if adl is not None and len(adl):
        qu = units["quote"]
        fig.add_trace(go.Scatter(
            x=_ms(_times(adl["time"])), y=adl["price"].to_numpy(dtype="float64"), mode="markers", name="ADL",
            marker=dict(symbol="diamond", size=13, color="#6d28d9", line=dict(width=1, color="#fff")),
            text=[f"ADL {s} {fmt_qty(q, units['qty'])} at {p:,.2f} {qu}<br>left open {fmt_qty(left, units['qty'])}"
                  for s, q, p, left in zip(adl["side"], adl["qty"].astype(float), adl["price"].astype(float),
                                           adl["qty_left"].astype(float))],
            hovertemplate="%{text}<extra></extra>"), 1, 1)


def _fmt_td(td: pd.Timedelta | None) -> str:
    if td is None or pd.isna(td):
        return "–"
    seconds = int(td.total_seconds())
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}min" if minutes else "", f"{secs}s" if secs else ""]
    return " ".join(p for p in parts if p) or "0"


def metrics_rows(metrics: dict[str, Any], settle: str) -> list[tuple[str, str]]:
    cover = metrics.get("insurance_cover") or 0.0
    covered = [(f"Insurance fund's cover, credited ({settle})", fmt_amount(cover))] if cover > 0.0 else []
    return [
        ("Total return", fmt_pct(metrics["total_return"])),
        ("CAGR", fmt_pct(metrics["cagr"])),
        ("Sharpe (annualised, rf 0)", fmt_num(metrics["sharpe"])),
        ("Sortino (annualised, target 0)", fmt_num(metrics["sortino"])),
        ("Calmar", fmt_num(metrics["calmar"])),
        ("Max drawdown", fmt_pct(metrics["max_drawdown"])),
        ("Max drawdown duration", f"{_fmt_td(metrics['max_drawdown_duration'])} ({metrics['max_drawdown_bars']} bars)"),
        ("Trades (closed)", fmt_num(metrics["trades"])),
        ("Win rate", fmt_pct(metrics["win_rate"], 1)),
        ("Profit factor", fmt_num(metrics["profit_factor"])),
        ("Exposure (bars in a position)", fmt_pct(metrics["exposure"], 1)),
        (f"Fees paid ({settle})", fmt_amount(metrics["fees"])),
        *covered,
        (f"Funding (cash flow, {settle})", fmt_amount(metrics["funding"])),
        ("Liquidations", fmt_count(metrics["liquidations"])),
        (f"Final equity ({settle})", fmt_amount(metrics["final_equity"])),
        ("Bars / periods per year", f"{metrics['bars']:,} / {metrics['periods_per_year']:,.0f}"),
    ]


def provenance_html(config: dict[str, Any]) -> str:
    data = config.get("data") or {}
    kind = str(data.get("kind", "unknown"))
    sources = data.get("sources") or []
    if isinstance(sources, str):
        sources = [sources]
    items = "".join(f"<li><code>{esc(s)}</code></li>" for s in sources) or "<li>(no source files recorded)</li>"
    label = data.get("label")
    return (
        f'<p>Data: <span class="badge {esc(kind)}">{esc(kind)}</span> {esc(label) if label else ""}</p>'
        f"<p>Files:</p><ul>{items}</ul>"
    )


def render_run_html(result: RunResult, bars: pd.DataFrame | None, plotlyjs: str = "inline",
                    max_points: int = DEFAULT_MAX_POINTS, back_link: str | None = None, warning: str = "") -> str:
    """The run report as an HTML string."""
    cfg = result.config
    settle = str(cfg.get("settle_currency", ""))
    metrics = m.compute_metrics(result)
    fig, notes = run_figure(result, bars, max_points=max_points)
    idx = result.equity.index
    lev = cfg.get("leverage")
    title = " ".join(str(p) for p in (cfg.get("strategy", "run"), "·", cfg.get("venue", ""), cfg.get("symbol", ""),
                                       f"{float(lev):g}×" if lev is not None else "", cfg.get("margin_mode", "")) if p != "")
    data_kind = (cfg.get("data") or {}).get("kind", "unknown")
    subtitle = (f"{esc(fmt_time(idx[0]))} → {esc(fmt_time(idx[-1]))} · {len(idx):,} bars · data: "
                f'<span class="badge {esc(data_kind)}">{esc(data_kind)}</span>')
    body = []
    units = instrument_units(cfg)
    if back_link:
        body.append(f'<p><a href="{esc(back_link)}">← back to the stress report</a></p>')
    if warning:
        body.append(f'<div class="banner warn" id="plausibility-banner">⚠ {esc(warning)}</div>')
    liq = result.liquidations
    if len(liq):
        first = liq.iloc[0]
        qu = units["quote"]
        body.append(
            f'<div class="banner bad" id="liquidated-banner">Liquidated {times_word(len(liq))}: first at '
            f'{esc(fmt_time(first["time"]))}, {esc(first["side"])} {esc(fmt_qty(first["qty"], units["qty"]))} filled at '
            f'{esc(fmt_amount(first["fill_price"], qu, 2))} (liquidation price {esc(fmt_amount(first["liquidation_price"], qu, 2))}; '
            f'equity after {esc(fmt_amount(first["equity_after"], settle))})</div>')
        partial = int(liq["partial"].fillna(False).astype(bool).sum()) if "partial" in liq else 0
        if partial:
            body.append(f'<div class="banner warn" id="partial-banner">{partial} of these '
                        f'{"was a partial liquidation" if partial == 1 else "were partial liquidations"} '
                        "(the venue's rule closed part of the position; see the Liquidations table).</div>")
    else:
        body.append('<div class="banner good">No liquidation in this run.</div>')
    adl = getattr(result, "adl", None)
    if adl is not None and len(adl):
        first = adl.iloc[0]
        body.append(
            f'<div class="banner bad" id="adl-banner">Auto-deleveraged {times_word(len(adl))}: first at '
            f'{esc(fmt_time(first["time"]))}, {esc(first["side"])} {esc(fmt_qty(first["qty"], units["qty"]))} closed by '
            f'the venue at {esc(fmt_amount(first["price"], units["quote"], 2))} '
            f'({esc(fmt_qty(first["qty_left"], units["qty"]))} left open). '
            + esc(str(cfg.get("data", {}).get("adl_label") or "")) + "</div>")
    body.append(section("Metrics", '<div class="flex">' + table(("metric", "value"), metrics_rows(metrics, settle)) +
                        _engine_summary(result.summary, units) + "</div>"
                        '<p class="note">Sharpe, Sortino, CAGR, Calmar and max drawdown: empyrical-reloaded over per-bar '
                        "returns from the initial cash; durations, trade statistics and exposure: pandas.</p>", "metrics"))
    sampled = notes["price_points"] < notes["bars"]
    note = (f"Displayed {notes['price_points']:,} of {notes['bars']:,} bars: each bucket keeps its first and last bar, lowest "
            "low and highest high, and every entry, exit and liquidation bar, so no wick is smoothed away."
            if sampled else f"All {notes['bars']:,} bars displayed.")
    if notes.get("feed"):
        note += f" Liquidation feed {notes['feed']}."
    body.append(section("Charts", figure_block("run-chart", fig) + f'<p class="note">{esc(note)}</p>', "charts"))
    body.append(section("Trades", _frame_table(result.trades, 200, units), "trades"))
    if len(liq):
        body.append(section("Liquidations", _frame_table(liq, 200, units), "liquidations"))
    if adl is not None and len(adl):
        body.append(section("Auto-deleveraging (ADL)", _frame_table(adl, 200, units) +
                            '<p class="note">Closed by the venue from the bars\' ADL flow, at the bar\'s mark; the '
                            "queue quantile and queue notional are stated assumptions (see the run's notes).</p>",
                            "adl"))
    body.append(section("Data provenance", provenance_html(cfg), "provenance"))
    body.append(section("Config", table(("Setting", "Value"), config_rows(
        cfg, units={"cash": settle, "initial_cash": settle}, skip=("data",))), "config"))
    return page(title, subtitle, "\n".join(body), plotlyjs=plotlyjs)


SUMMARY_UNITS = ("final_equity", "initial_cash", "funding_total", "fees_total", "insurance_fund",
                 "insurance_cover_total")
SUMMARY_PRICES = ("first_liquidation_price", "first_liquidation_trigger")


def _engine_summary(summary: dict[str, Any], units: dict[str, str] | None = None) -> str:
    if not summary:
        return ""
    units = units or {"settle": "", "quote": ""}
    rows = []
    for key, value, path in _flatten(summary):
        unit = units["settle"] if key in SUMMARY_UNITS else units["quote"] if key in SUMMARY_PRICES else ""
        rows.append((path, fmt_value(key, value, unit)))
    return ('<div><p class="note">From the engine (summary.json, incl. backtrader analyzers):</p>'
            + table(("item", "value"), rows[:80]) + "</div>")


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, str]]:
    """``(key, value, label path)`` of every leaf, the path in words (``Orders refused · for margin``)."""
    out: list[tuple[str, Any, str]] = []
    for key, value in data.items():
        name = f"{prefix}{label(key)}"
        if isinstance(value, dict):
            out += _flatten(value, name + " · ")
        else:
            out.append((key, value, name))
    return out


def frame_columns(units: dict[str, str]) -> dict[str, tuple[str, Any]]:
    """Column -> (header with unit, formatter) for the trades, fills and liquidations tables."""
    q, s_, n = units["quote"], units["settle"], units["qty"]
    price = lambda v: fmt_amount(v, digits=2)  # noqa: E731
    money = lambda v: fmt_amount(v)  # noqa: E731
    return {
        "open_time": ("Opened (UTC)", fmt_time), "close_time": ("Closed (UTC)", fmt_time), "time": ("Time (UTC)", fmt_time),
        "side": ("Side", str), "qty": (f"Quantity ({n})", lambda v: fmt_qty(v, "")),
        "entry_price": (f"Entry price ({q})", price), "exit_price": (f"Exit price ({q})", price),
        "price": (f"Price ({q})", price), "trigger_price": (f"Trigger price ({q})", price),
        "liquidation_price": (f"Liquidation price ({q})", price), "bankruptcy_price": (f"Bankruptcy price ({q})", price),
        "fill_price": (f"Fill price ({q})", price), "pnl": (f"PnL ({s_})", money), "fees": (f"Fees ({s_})", money),
        "fee": (f"Fee ({s_})", money), "funding": (f"Funding ({s_})", money), "pnl_net": (f"Net PnL ({s_})", money),
        "realized_pnl": (f"Realised PnL ({s_})", money), "insurance_fund": (f"Insurance fund ({s_})", money),
        "insurance_cover": (f"Insurance fund's cover ({s_})", money),
        "equity_after": (f"Equity after ({s_})", money), "liquidated": ("Liquidated", fmt_bool), "kind": ("Kind", str),
        "partial": ("Partial", fmt_bool), "qty_left": (f"Left open ({n})", lambda v: fmt_qty(v, "")),
        "flow_notional": (f"ADL flow in the bar ({q})", money), "score": ("Ranking score", _cell),
        "quantile": ("Queue quantile", _cell), "lights": ("Lights (of 5)", _cell),
    }


def _frame_table(frame: pd.DataFrame, limit: int, units: dict[str, str] | None = None) -> str:
    """A trades / liquidations table in words and units; a column with one value everywhere
    (the symbol) moves to the note under it."""
    if not len(frame):
        return '<p class="note">none</p>'
    units = units or {"quote": "", "settle": "", "qty": ""}
    known = frame_columns(units)
    shown = frame.head(limit)
    constant = [c for c in ("symbol",) if c in shown and shown[c].astype(str).nunique() == 1]
    cols = [c for c in shown.columns if c not in constant]
    heads = [known[c][0] if c in known else label(c) for c in cols]
    rows = [[(known[c][1] if c in known else _cell)(v) if not _is_missing(v) else "–" for c, v in zip(cols, rec)]
            for rec in shown[cols].itertuples(index=False)]
    notes = [f"{label(c)}: {shown[c].astype(str).iloc[0]}" for c in constant]
    if len(frame) > limit:
        notes.append(f"first {limit} of {len(frame):,} rows")
    more = f'<p class="note">{esc(" · ".join(notes))}</p>' if notes else ""
    return table(heads, rows, left=0) + more


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _cell(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return fmt_bool(value)
    if isinstance(value, float):
        return "–" if math.isnan(value) else fmt_amount(value)
    if isinstance(value, pd.Timestamp):
        return fmt_time(value)
    return str(value)


def render_run(run_dir: str | Path, output: str | Path | None = None, plotlyjs: str = "inline",
               max_points: int = DEFAULT_MAX_POINTS, back_link: str | None = None, warning: str = "") -> Path:
    """Write ``RUN_DIR/report.html`` (or ``output``) and return its path."""
    result, bars = load_run(run_dir)
    warning = "; ".join(w for w in (warning, legacy_cover_note(result.liquidations)) if w)
    out = Path(output) if output else Path(run_dir) / "report.html"
    out.write_text(render_run_html(result, bars, plotlyjs=plotlyjs, max_points=max_points, back_link=back_link,
                                   warning=warning), encoding="utf-8")
    return out
