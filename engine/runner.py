"""Run one backtest: build Cerebro with the perpetual broker and feed, run, collect a RunResult.

This is the only place Cerebro is built for a single run.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from engine.broker import PerpBroker
from engine.bt_data import PerpData, unix_seconds
from reports.results import COLUMN_DEFAULTS, TABLES, RunResult, drawdowns, insurance_cover_total, max_drawdown_of
from risk.errors import DeleverageError
from risk.venues import get_instrument, venue_rules


@dataclass(frozen=True)
class RunConfig:
    """One backtest's settings.

    ``cash`` is the starting equity in the instrument's settle currency (USDT for linear
    contracts, BTC for XBTUSD). ``leverage`` and ``margin_mode`` are the feed's defaults;
    strategies may change them (``self.broker.set_leverage(data, 20)``). ``funding_rate`` is
    the constant rate settled at the venue's funding hours when the bars carry no
    ``funding_rate`` column (announced in the result); None with such bars is an error unless
    ``allow_no_funding``.

    ``partial_liquidation``: the venue's partial-liquidation rule (:mod:`risk.partial`) runs
    before a full liquidation (both engines; off by default, see docs/venue-mechanics.md).
    When the bars carry an ADL flow (``adl_long_notional`` / ``adl_short_notional``) a
    profitable position is auto-deleveraged by it; ``adl_quantile`` is the position's assumed rank quantile on its side (None: 1.0, the front of the queue,
    the worst case) and ``adl_queue_notional`` the assumed notional of the rest of the queue.
    """

    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
    venue: str = "binance_usdm"
    symbol: str | None = None
    leverage: float = 1.0
    margin_mode: str = "isolated"
    cash: float = 10_000.0
    funding_rate: float | None = None
    allow_no_funding: bool = False
    analyzers: bool = True
    partial_liquidation: bool = False
    adl_quantile: float | None = None
    adl_queue_notional: float = 0.0


def mechanics_needing_backtrader(config: RunConfig, bars: pd.DataFrame | None = None) -> list[str]:
    """Venue mechanics of this run that the fast engine does not model, for
    :func:`engine.fast.select_engine` (``auto`` then runs backtrader and announces why, ``fast``
    refuses). None since issue 15: the fast engine runs the venue's partial liquidation
    (``config.partial_liquidation``) and the ADL flow of the bars like the broker (parity tests
    in tests/fast/test_partial_parity.py and test_adl_parity.py); the function stays the one
    place a future mechanic the fast engine lacks is named."""
    return []


def engine_note(needs: list[str]) -> str:
    """The announcement of a run moved to backtrader because the fast engine lacks ``needs``."""
    return f"engine: backtrader, because the fast engine does not model {' and '.join(needs)} yet"


def run_backtest(bars: pd.DataFrame, strategy_cls: type, config: RunConfig,
                 data_info: dict[str, Any] | None = None, *,
                 analyzers: dict[str, Any] | None = None, sizer: Any = None,
                 feeds: list[tuple[pd.DataFrame, dict[str, Any]]] | None = None) -> RunResult:
    """Run ``strategy_cls`` (any ``bt.Strategy`` subclass) with ``config.params`` on ``bars``.

    ``analyzers``: extra backtrader analyzers, ``{name: AnalyzerClass}`` or ``{name: (AnalyzerClass,
    kwargs)}``; their ``get_analysis()`` lands in ``summary["analyzers"][name]``.
    ``sizer``: a sizer class or ``(SizerClass, kwargs)`` for ``cerebro.addsizer`` (e.g.
    :class:`engine.sizers.LeveragedPercent`). ``feeds``: more bar frames traded in the same account,
    each ``(frame, {"symbol": ..., "venue": ..., "leverage": ..., "margin_mode": ...})``; they are
    ``data1``, ``data2``, ... of the strategy and share the wallet (cross positions share it as the
    venue's account rule says). The result's equity is the whole account; its position columns,
    liquidation price and distance are the first feed's; fills, fees, funding and liquidations
    hold every feed's events (``symbol`` column). ``result.strategy`` and ``result.broker`` are the
    finished strategy and broker objects.
    """
    inst = get_instrument(config.venue, config.symbol)
    venue_rules(config.venue)
    if config.cash <= 0:
        raise DeleverageError(f"cash must be positive, got {config.cash}")
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    broker = PerpBroker(venue=config.venue, symbol=inst.symbol, leverage=config.leverage,
                        margin_mode=config.margin_mode, funding_rate=config.funding_rate,
                        allow_no_funding=config.allow_no_funding,
                        partial_liquidation=config.partial_liquidation, adl_quantile=config.adl_quantile,
                        adl_queue_notional=config.adl_queue_notional)
    broker.set_cash(config.cash)
    broker.set_coo(True)
    cerebro.setbroker(broker)
    data = PerpData.from_frame(bars, name=inst.symbol)
    if data.has_adl:
        data.attrs.setdefault("adl_label", bars.attrs.get("adl_label") or "")
    cerebro.adddata(data)
    broker.attach(data)
    for k, (frame, settings) in enumerate(feeds or [], start=1):
        settings = dict(settings or {})
        unknown = set(settings) - {"symbol", "venue", "leverage", "margin_mode"}
        if unknown:
            raise DeleverageError(f"feeds[{k - 1}]: unknown setting(s) {', '.join(sorted(unknown))}; "
                                  "expected symbol, venue, leverage, margin_mode")
        extra_inst = get_instrument(settings.get("venue", config.venue), settings.get("symbol"))
        name = extra_inst.symbol if extra_inst.symbol != inst.symbol else f"{extra_inst.symbol}_{k}"
        extra = PerpData.from_frame(frame, name=name)
        cerebro.adddata(extra)
        broker.attach(extra, **{**settings, "symbol": extra_inst.symbol})
    cerebro.addstrategy(strategy_cls, **config.params)
    if sizer is not None:
        cls_, kwargs = sizer if isinstance(sizer, tuple) else (sizer, {})
        cerebro.addsizer(cls_, **kwargs)
    if config.analyzers:
        cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
        cerebro.addanalyzer(bt.analyzers.DrawDown, _name="drawdown")
    for name, spec in (analyzers or {}).items():
        if name in ("trades", "drawdown") and config.analyzers:
            raise DeleverageError(f"analyzer name {name!r} is taken by the run's own analyzers; choose another")
        cls_, kwargs = spec if isinstance(spec, tuple) else (spec, {})
        cerebro.addanalyzer(cls_, _name=name, **kwargs)
    try:
        strategies = cerebro.run()
    except DeleverageError:
        raise
    except Exception as exc:
        blame = user_code_frame(strategy_cls, exc)
        if blame is None:
            raise
        raise UserStrategyError(user_error_message(strategy_cls, exc, blame, data)) from exc
    result = collect_result(broker, data, bars, config, strategies[0], provenance(bars, data_info))
    if analyzers:
        result.summary["analyzers"] = {name: _plain(getattr(strategies[0].analyzers, name).get_analysis())
                                       for name in analyzers}
    result.strategy = strategies[0]  # type: ignore[attr-defined]
    result.broker = broker  # type: ignore[attr-defined]
    return result


class UserStrategyError(DeleverageError):
    """An exception raised by the user's own strategy code during a run (not a deleverage bug)."""


_OWN_ROOT = Path(__file__).resolve().parent.parent  # the deleverage source tree (engine, risk, strategies, ...)


def _is_own_file(filename: str) -> bool:
    path = Path(filename).resolve()
    if "site-packages" in path.parts or "dist-packages" in path.parts or filename.startswith("<"):
        return True  # backtrader, numpy, pandas, the standard library's frozen modules
    try:
        rel = path.relative_to(_OWN_ROOT)
    except ValueError:
        return path.is_relative_to(Path(sys.base_prefix).resolve()) or path.is_relative_to(Path(sys.prefix).resolve())
    return rel.parts[0] in ("engine", "risk", "feeds", "strategies", "reports")


def user_code_frame(strategy_cls: type, exc: BaseException) -> tuple[str, int, str] | None:
    """``(file, line, function)`` of the innermost frame of ``exc``'s traceback in code that is not
    deleverage's, backtrader's or the standard library's (the user's strategy), or None."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    for fr in reversed(frames):
        if not _is_own_file(fr.filename):
            return fr.filename, fr.lineno or 0, fr.name
    return None


def user_error_message(strategy_cls: type, exc: BaseException, blame: tuple[str, int, str], data: Any) -> str:
    file, line, func = blame
    name = getattr(strategy_cls, "__name__", str(strategy_cls))
    when = ""
    try:
        if len(data):
            when = f" at bar {data.datetime.datetime(0):%Y-%m-%d %H:%M} UTC"
    except Exception:  # noqa: BLE001 - no bar yet (raised in __init__/start)
        when = ""
    text = " ".join(str(exc).split())[:300]
    return (f"strategy {name} ({file}, line {line}, in {func}) raised {type(exc).__name__}: {text}{when}; "
            "this is an error in the strategy's own code, not in deleverage")


def _plain(value: Any) -> Any:
    """An analyzer's analysis (nested ordered dicts, datetimes as keys) as JSON-friendly values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def provenance(bars: pd.DataFrame, data_info: dict[str, Any] | None) -> dict[str, Any]:
    """The run's data provenance: ``data_info`` completed from the frame's ``attrs``."""
    info = dict(data_info or {})
    info.setdefault("kind", bars.attrs.get("kind", "real"))
    info.setdefault("sources", bars.attrs.get("source", bars.attrs.get("sources", [])))
    info.setdefault("label", bars.attrs.get("label", ""))
    if bars.attrs.get("adl_label"):  # an ADL flow joined onto the bars (a reconstruction: labelled as such)
        info.setdefault("adl_label", bars.attrs["adl_label"])
    return info


def result_config(config: RunConfig, inst: Any, rules: Any, *, engine: str, has_mark: bool, has_funding: bool,
                  announcements: list[str], data_info: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` of a run, the same for both engines."""
    cfg = asdict(config)
    cfg.update({
        "symbol": inst.symbol, "settle_currency": inst.settle_currency, "inverse": inst.inverse,
        "contract_size": inst.contract_size, "engine": engine, "venue_title": rules.title,
        "liquidation_fill": rules.liquidation_fill, "trigger": "mark" if has_mark else "last",
        "funding_source": "feed" if has_funding else (
            f"constant {config.funding_rate:g}" if config.funding_rate is not None else "none"),
        "announcements": list(announcements), "data": data_info, "initial_cash": config.cash,
    })
    return cfg


def collect_result(broker: PerpBroker, data: PerpData, bars: pd.DataFrame, config: RunConfig,
                   strategy: Any, data_info: dict[str, Any]) -> RunResult:
    """Turn the broker's recorded bars and events into a :class:`RunResult`."""
    book = broker.book(data)
    inst, rules = book.instrument, book.rules
    equity = equity_frame(broker, book)
    frames = {name: events_frame(name, broker.events.get(name, [])) for name in
              ("fills", "funding", "liquidations", "fees", "adl")}
    trades = trades_frame(frames["fills"], frames["fees"], frames["funding"], frames["liquidations"])
    cfg = result_config(config, inst, rules, engine="backtrader", has_mark=data.has_mark,
                        has_funding=data.has_funding, announcements=broker.announcements, data_info=data_info)
    summary = summarize(equity, frames, config.cash, broker.insurance_fund)
    if config.analyzers and strategy is not None:
        summary["backtrader"] = _analyzer_summary(strategy)
    return RunResult(config=cfg, equity=equity, trades=trades, summary=summary, **frames)


def summarize(equity: pd.DataFrame, frames: dict[str, pd.DataFrame], cash: float,
              insurance_fund: float) -> dict[str, Any]:
    """Headline numbers of a run (settle currency and fractions)."""
    eq = equity["equity"].to_numpy()
    peak = np.maximum.accumulate(eq) if len(eq) else eq
    dd = drawdowns(eq, peak)
    liq = frames["liquidations"]
    adl = frames.get("adl")
    first = liq.iloc[0] if len(liq) else None
    dist = equity["distance_to_liquidation"].to_numpy()
    return {
        "initial_cash": cash,
        "final_equity": float(eq[-1]) if len(eq) else cash,
        "total_return": float(eq[-1] / cash - 1.0) if len(eq) else 0.0,
        "max_drawdown": max_drawdown_of(dd),
        "liquidated": bool(len(liq)),
        "liquidations": int(len(liq)),
        "first_liquidation_time": first["time"].isoformat() if first is not None else None,
        "first_liquidation_price": float(first["fill_price"]) if first is not None else None,
        "first_liquidation_trigger": float(first["trigger_price"]) if first is not None else None,
        "funding_total": float(frames["funding"]["amount"].sum()) if len(frames["funding"]) else 0.0,
        "fees_total": float(frames["fees"]["amount"].sum()) if len(frames["fees"]) else 0.0,
        "insurance_fund": float(insurance_fund),
        "insurance_cover_total": insurance_cover_total(liq),
        "min_distance_to_liquidation": float(np.nanmin(dist)) if np.isfinite(dist).any() else None,
        "fills": int(len(frames["fills"])),
        "partial_liquidations": int(liq["partial"].astype(bool).sum()) if len(liq) and "partial" in liq else 0,
        "adl_events": int(len(adl)) if adl is not None else 0,
        "adl_notional": float((adl["qty"] * adl["price"]).sum()) if adl is not None and len(adl) else 0.0,
        "bars": int(len(eq)),
        "start": equity.index[0].isoformat() if len(eq) else None,
        "end": equity.index[-1].isoformat() if len(eq) else None,
    }


def _analyzer_summary(strategy: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    trades = strategy.analyzers.trades.get_analysis()
    total = trades.get("total", {})
    out["trades_total"] = int(total.get("total", 0) or 0)
    out["trades_closed"] = int(total.get("closed", 0) or 0)
    if "won" in trades:
        out["trades_won"] = int(trades["won"]["total"])
        out["trades_lost"] = int(trades["lost"]["total"])
    dd = strategy.analyzers.drawdown.get_analysis()
    out["max_drawdown_pct"] = float(dd.get("max", {}).get("drawdown", 0.0))
    out["max_drawdown_bars"] = int(dd.get("max", {}).get("len", 0))
    return out


def equity_frame(broker: PerpBroker, book: Any) -> pd.DataFrame:
    rec = {k: np.asarray(v, dtype=np.float64) for k, v in broker._rec.items()}
    index = pd.DatetimeIndex(pd.to_datetime(unix_seconds(rec["dt"]), unit="s", utc=True)
                             .round("ms"), name="open_time")
    inst, rules = book.instrument, book.rules
    qty, entry, close, mark = rec["qty"], rec["entry"], rec["close"], rec["mark"]
    cs = inst.contract_size
    with np.errstate(divide="ignore", invalid="ignore"):
        if inst.inverse:
            upnl_mark = np.where(qty != 0, qty * cs * (1.0 / entry - 1.0 / mark), 0.0)
            value = np.abs(qty) * cs / np.where(rules.mm_on_entry, entry, mark)
        else:
            upnl_mark = qty * cs * (mark - entry)
            value = np.abs(qty) * cs * np.where(rules.mm_on_entry, entry, mark)
        value = np.where(qty != 0, value, 0.0)
        start_ts = float(index[0].timestamp()) if len(index) else None
        table = inst.tiers_at(start_ts)
        i = np.clip(np.searchsorted(table.floors_array, value, side="right") - 1, 0, None)
        mmr = table.mmrs_array[i] + (inst.taker_fee if rules.mmr_adds_taker_fee else 0.0)
        maint = np.where(qty != 0, value * mmr - table.cums_array[i], 0.0)
        if book.margin_mode == "isolated":
            balance = rec["collateral"] + upnl_mark
        else:
            balance = rec["equity"]
        ratio = np.where(qty != 0, np.where(balance > 0, maint / balance, np.inf), 0.0)
        liq = rec["liq"]
        dist = np.where((qty != 0) & np.isfinite(liq), np.abs(mark - liq) / mark, np.nan)
    # equity is valued at the mark (the close when the feed has no mark), as the venues do
    frame = pd.DataFrame({
        "equity": rec["equity"], "wallet_balance": rec["equity"] - upnl_mark, "unrealized_pnl": upnl_mark,
        "position_qty": qty, "close": close, "mark": mark, "liquidation_price": liq,
        "maintenance_margin": maint, "margin_ratio": ratio, "distance_to_liquidation": dist,
        "funding_cum": np.asarray(broker._rec_funding), "fees_cum": np.asarray(broker._rec_fees),
    }, index=index)
    return frame[list(TABLES["equity"])]


def events_frame(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = list(TABLES[name])
    if not rows:
        frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        frame["time"] = pd.Series(dtype="datetime64[ns, UTC]")
        return frame
    frame = pd.DataFrame(rows)
    for column, value in COLUMN_DEFAULTS.get(name, {}).items():
        if column not in frame.columns:
            frame[column] = value
    frame = frame[columns]
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def trades_frame(fills: pd.DataFrame, fees: pd.DataFrame, funding: pd.DataFrame,
                 liquidations: pd.DataFrame | None = None) -> pd.DataFrame:
    """Round trips from the fill sequence: a trade opens when the position leaves zero and closes
    when it returns to zero (a flip closes one trade and opens the next). ``pnl_net`` is the
    realized PnL less the fees plus the funding and the insurance fund's cover of the trade's
    liquidation (``liquidations.insurance_cover``, an insolvent one only)."""
    rows: list[dict[str, Any]] = []
    position = 0.0
    current: dict[str, Any] | None = None
    for fill in fills.itertuples(index=False):
        signed = fill.qty if fill.side == "buy" else -fill.qty
        if current is None:
            current = {"open_time": fill.time, "symbol": fill.symbol, "side": "long" if signed > 0 else "short",
                       "qty": 0.0, "entry_value": 0.0, "exit_value": 0.0, "exit_qty": 0.0,
                       "pnl": 0.0, "liquidated": False}
        new = position + signed
        if position == 0 or (new > 0) == (position > 0) and abs(new) > abs(position):
            current["qty"] += abs(signed)
            current["entry_value"] += abs(signed) * fill.price
        else:
            closed = min(abs(signed), abs(position))
            current["exit_qty"] += closed
            current["exit_value"] += closed * fill.price
            current["pnl"] += fill.realized_pnl
            current["liquidated"] |= fill.kind == "liquidation"
        position = new if abs(new) > 1e-12 else 0.0
        if position == 0 or (new != 0 and (new > 0) != (signed > 0) is False and False):
            current["close_time"] = fill.time
            rows.append(current)
            current = None
        elif (position > 0) != (current["side"] == "long"):  # flipped through zero
            current["close_time"] = fill.time
            rows.append(current)
            current = {"open_time": fill.time, "symbol": fill.symbol, "side": "long" if position > 0 else "short",
                       "qty": abs(position), "entry_value": abs(position) * fill.price, "exit_value": 0.0,
                       "exit_qty": 0.0, "pnl": 0.0, "liquidated": False}
    if current is not None:
        current["close_time"] = pd.NaT
        rows.append(current)
    out = []
    covered = None  # the liquidations the insurance fund covered (rare: an insolvent position)
    if liquidations is not None and len(liquidations) and "insurance_cover" in liquidations:
        covered = liquidations[liquidations["insurance_cover"] > 0.0]
        covered = covered if len(covered) else None
    for row in rows:
        start, end = row["open_time"], row["close_time"]
        in_trade = lambda t: (t >= start) & ((t <= end) if end is not pd.NaT else True)  # noqa: E731
        fee_sum = float(fees.loc[in_trade(fees["time"]), "amount"].sum()) if len(fees) else 0.0
        fund_sum = float(funding.loc[in_trade(funding["time"]), "amount"].sum()) if len(funding) else 0.0
        cover = 0.0
        if covered is not None:
            cover = float(covered.loc[in_trade(covered["time"]), "insurance_cover"].sum())
        out.append({
            "open_time": start, "close_time": end, "symbol": row["symbol"], "side": row["side"],
            "qty": row["qty"], "entry_price": row["entry_value"] / row["qty"] if row["qty"] else math.nan,
            "exit_price": row["exit_value"] / row["exit_qty"] if row["exit_qty"] else math.nan,
            "pnl": row["pnl"], "fees": fee_sum, "funding": fund_sum,
            "pnl_net": row["pnl"] - fee_sum + fund_sum + cover, "liquidated": row["liquidated"],
        })
    if not out:
        frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in TABLES["trades"]})
        return frame
    return pd.DataFrame(out)[list(TABLES["trades"])]


def save_run(result: RunResult, run_dir: str | Path, bars: pd.DataFrame | None = None) -> Path:
    """Write the run directory, with the input bars as ``bars.parquet`` for the report."""
    path = result.save(run_dir)
    if bars is not None:
        frame = bars.copy()
        frame.attrs = {}
        frame.to_parquet(path / "bars.parquet")
    return path


def watch_refusals(strategy_cls: Any) -> tuple[Any, list[str]]:
    """A subclass of the strategy that records each order the broker refused, and the list it fills."""
    refusals: list[str] = []

    class Watched(strategy_cls):  # type: ignore[misc, valid-type]
        def notify_order(self, order: Any) -> None:
            if order.status in (order.Margin, order.Rejected):  # margin/leverage, or lot/minimum notional
                refusals.append(str(order.info.get("rejection", "margin")))
            super().notify_order(order)

    Watched.__name__ = strategy_cls.__name__
    Watched.__qualname__ = strategy_cls.__qualname__
    return Watched, refusals
