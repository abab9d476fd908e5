"""A portfolio on one cross wallet: several symbols, one target array each, both engines.

Signal form: one target-exposure array per symbol over a common time index (the signed target
leverage of that symbol's notional against the *account* equity; 0 or NaN = flat). At the open
of bar i every symbol whose target differs from its last applied one is re-sized (the others
keep their quantity):

- the account equity at this open ``E`` = the value at the previous close + every position's
  PnL from that close to this open + the funding settled at this open (at the mark open), less
  the closing-leg fee of every symbol that flips;
- each re-sized symbol's quantity is ``E x |t_k| / (1 + sum_j |t_j| x taker_j) x 0.999999 / unit
  price`` over the current targets of all symbols, rounded down to the lot (the single-symbol
  rule of :meth:`strategies.base.PerpStrategy.target_leverage` with one fee room for the whole
  book);
- every symbol's leverage setting is fixed for the run (:func:`account_leverage`): twice the
  largest gross target ``max_i sum_k |t_k,i|`` (at least 1), capped at the symbol's venue maximum
  (first bracket). The initial-margin check then leaves room for the other positions' losses
  (at exactly the gross target, a full book would refuse any order after a loss elsewhere), and
  a rebalance is never refused because a position kept the margin of an earlier, lower setting;
- the orders go in with the reducing ones first (a position cut or closed, then the others, in
  symbol order), so a rebalance frees margin before it uses it; each is admitted by the broker's
  initial-margin check against what is left.

Everything else is the broker's (:class:`engine.broker.PerpBroker`): funding per symbol at its
own settlements, fees, the account-level liquidation of :mod:`risk.account`
(:meth:`PerpBroker._account_liquidation`). :mod:`engine.fast_portfolio` compiles the same steps;
tests/portfolio assert parity at 1e-9.

Scope: linear contracts of one venue and one settle currency (an inverse BTC and ETH contract
settle in two coins: no common wallet), cross margin, market orders at the open. ADL flows (each
leg's own ``adl_long_notional`` / ``adl_short_notional``) are applied per position by both engines
on Binance and Hyperliquid, by the broker only elsewhere (:func:`fast_models_adl`). With
``partial_liquidation`` the position the account rule picks gets the venue's partial step first
(:func:`risk.partial.partial_liquidation_step`, judged in the account), in both engines. Not
covered: isolated legs in a portfolio.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.results import drawdowns, insurance_cover_total, max_drawdown_of
from risk.account import account_rule, margin_ratio_series
from risk.errors import DeleverageError
from risk.formulas import notional, trade_fee
from risk.venues import get_instrument, venue_rules

ENGINES = ("auto", "fast", "backtrader")


@dataclass
class Leg:
    """One symbol of a portfolio: its bars and its per-bar target exposure."""

    symbol: str
    bars: pd.DataFrame
    target: np.ndarray | None = None  # None with a strategy that trades every feed (run_strategy)


@dataclass
class PortfolioSpec:
    """A portfolio run: the legs (same time index), the venue, the starting cash (settle currency)."""

    legs: list[Leg]
    venue: str = "binance_usdm"
    cash: float = 10_000.0
    funding_rate: float | None = None
    allow_no_funding: bool = False
    label: str = ""
    partial_liquidation: bool = False  # the venue's partial rule (risk.partial) for the position the account closes

    @property
    def symbols(self) -> list[str]:
        return [leg.symbol for leg in self.legs]


def validate(spec: PortfolioSpec, targets: bool = True) -> None:
    """Refuse what a portfolio cannot be, each with one line naming the symbol and what was expected."""
    venue_rules(spec.venue)
    account_rule(spec.venue)
    if len(spec.legs) < 2:
        raise DeleverageError(f"portfolio: {len(spec.legs)} symbol(s); expected at least two on the one wallet "
                              "(one symbol is a plain backtest: deleverage backtest / stress)")
    if not spec.cash > 0:
        raise DeleverageError(f"portfolio: cash must be positive, got {spec.cash}")
    seen: set[str] = set()
    first = spec.legs[0]
    for leg in spec.legs:
        inst = get_instrument(spec.venue, leg.symbol)
        if inst.symbol in seen:
            raise DeleverageError(f"portfolio: symbol {inst.symbol} appears twice; expected each symbol once")
        seen.add(inst.symbol)
        if inst.inverse and len(spec.legs) > 1:
            raise DeleverageError(f"portfolio: {spec.venue} {inst.symbol} is an inverse contract settled in its own "
                                  "coin; a portfolio on one wallet needs linear contracts of one settle currency")
        target = np.asarray(leg.target, dtype=np.float64) if targets else np.zeros(len(leg.bars))
        if target.shape != (len(leg.bars),):
            raise DeleverageError(f"portfolio: {inst.symbol} target has shape {target.shape}, expected "
                                  f"({len(leg.bars)},) (one target per bar)")
        if len(leg.bars) != len(first.bars) or not leg.bars.index.equals(first.bars.index):
            raise DeleverageError(f"portfolio: {inst.symbol} bars are not on the time index of {first.symbol} "
                                  f"({len(leg.bars)} vs {len(first.bars)} bars); expected one common index "
                                  "(nothing is filled or dropped)")
    settle = {get_instrument(spec.venue, leg.symbol).settle_currency for leg in spec.legs}
    if len(settle) > 1:
        raise DeleverageError(f"portfolio: the symbols settle in {', '.join(sorted(settle))}; expected one currency")


def account_leverage(spec: PortfolioSpec) -> np.ndarray:
    """Each symbol's leverage setting for a portfolio run: twice the largest gross target over the
    bars (at least 1), capped at the symbol's venue maximum leverage (first bracket, latest table)."""
    gross = np.nansum(np.abs(np.vstack([np.asarray(leg.target, dtype=np.float64) for leg in spec.legs])), axis=0)
    want = max(1.0, 2.0 * float(gross.max()) if gross.size else 1.0)
    out = []
    for leg in spec.legs:
        table = get_instrument(spec.venue, leg.symbol).tier_tables[-1]
        out.append(min(want, float(table.max_leverages[0])))
    return np.asarray(out, dtype=np.float64)


def fast_models_adl(venue: str) -> bool:
    """Whether :mod:`engine.fast_portfolio` applies ADL flows on ``venue`` (its ranking score without a
    trade fee: Binance, Hyperliquid); elsewhere a portfolio with a flow runs on backtrader."""
    from risk.adl import ADL_RULES

    rule = ADL_RULES.get(venue)
    return rule is not None and rule.score in ("binance", "hyperliquid") and rule.fee == "none"


def has_adl_flow(spec: PortfolioSpec) -> bool:
    from feeds.adl import ADL_COLUMNS

    for leg in spec.legs:
        for c in ADL_COLUMNS:
            if c in leg.bars.columns and np.nansum(np.abs(leg.bars[c].to_numpy(dtype=np.float64))) > 0:
                return True
    return False


# --- the result --------------------------------------------------------------------------------------

EVENT_TABLES = ("fills", "funding", "liquidations", "fees")
PER_SYMBOL = ("qty", "entry", "mark", "upnl", "mm", "liq")


@dataclass
class PortfolioResult:
    """One portfolio run: per-bar account and per-symbol records, events with a ``symbol`` column."""

    spec_info: dict[str, Any]
    index: pd.DatetimeIndex
    symbols: list[str]
    equity: np.ndarray  # (n,) account equity at the mark close
    records: dict[str, np.ndarray]  # name -> (n, k) per symbol (PER_SYMBOL)
    events: dict[str, pd.DataFrame]
    insurance_fund: float
    engine: str
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def wallet(self) -> np.ndarray:
        return self.equity - self.records["upnl"].sum(axis=1)

    def margin_ratios(self) -> tuple[np.ndarray, np.ndarray]:
        """``(account, per_symbol)`` margin ratio per bar (:func:`risk.account.margin_ratio_series`)."""
        return margin_ratio_series(self.wallet, self.records["mm"], self.records["upnl"])

    def frame(self) -> pd.DataFrame:
        """One row per bar: equity, wallet, account margin ratio, then ``<symbol>_<field>`` columns."""
        account, per = self.margin_ratios()
        cols: dict[str, Any] = {"equity": self.equity, "wallet_balance": self.wallet, "account_margin_ratio": account}
        for j, sym in enumerate(self.symbols):
            for name in PER_SYMBOL:
                cols[f"{sym}_{name}"] = self.records[name][:, j]
            cols[f"{sym}_margin_ratio"] = per[:, j]
        return pd.DataFrame(cols, index=self.index)

    def save(self, run_dir: str | Path) -> Path:
        """Write ``portfolio.parquet`` (per bar), one parquet per event table and ``summary.json``."""
        out = Path(run_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.frame().to_parquet(out / "portfolio.parquet")
        for name, table in self.events.items():
            table.to_parquet(out / f"{name}.parquet")
        (out / "summary.json").write_text(json.dumps({**self.summary, "portfolio": self.spec_info}, indent=2,
                                                     default=str))
        return out


def summarize(result: PortfolioResult, cash: float) -> dict[str, Any]:
    eq = result.equity
    peak = np.maximum.accumulate(eq) if len(eq) else eq
    liq = result.events["liquidations"]
    account, _ = result.margin_ratios()
    finite = account[np.isfinite(account)]
    by_symbol = {}
    for sym in result.symbols:
        rows = liq[liq["symbol"] == sym]
        by_symbol[sym] = {
            "liquidations": int(len(rows)),
            "first_liquidation_time": rows.iloc[0]["time"].isoformat() if len(rows) else None,
            "funding_total": float(result.events["funding"].loc[result.events["funding"]["symbol"] == sym,
                                                                 "amount"].sum()),
            "fees_total": float(result.events["fees"].loc[result.events["fees"]["symbol"] == sym, "amount"].sum()),
            "insurance_cover_total": insurance_cover_total(rows),
        }
    return {
        "engine": result.engine,
        "initial_cash": cash,
        "final_equity": float(eq[-1]) if len(eq) else cash,
        "total_return": float(eq[-1] / cash - 1.0) if len(eq) else 0.0,
        "max_drawdown": max_drawdown_of(drawdowns(eq, peak)),
        "liquidated": bool(len(liq)),
        "liquidations": int(len(liq)),
        "liquidated_symbols": list(dict.fromkeys(liq["symbol"].tolist())),
        "first_liquidation_time": liq.iloc[0]["time"].isoformat() if len(liq) else None,
        "first_liquidation_symbol": str(liq.iloc[0]["symbol"]) if len(liq) else None,
        "max_account_margin_ratio": float(np.max(account[~np.isnan(account)])) if np.any(~np.isnan(account)) else None,
        "max_finite_account_margin_ratio": float(finite.max()) if len(finite) else None,
        "funding_total": float(result.events["funding"]["amount"].sum()),
        "fees_total": float(result.events["fees"]["amount"].sum()),
        "insurance_fund": float(result.insurance_fund),
        "insurance_cover_total": insurance_cover_total(liq),
        "fills": int(len(result.events["fills"])),
        "symbols": by_symbol,
        "bars": int(len(eq)),
    }


# --- the backtrader side -------------------------------------------------------------------------------

def _portfolio_strategy() -> type:
    from strategies.base import PerpStrategy

    class PortfolioExposureStrategy(PerpStrategy):
        """Apply one target array per feed (``params={"targets": [array, ...]}``, feed order) with the
        portfolio sizing of the module docstring, and record each bar's per-symbol state."""

        params = (("targets", None), ("leverages", None))

        def start(self) -> None:
            super().start()
            self._targets = [np.asarray(t, dtype=np.float64) for t in self.p.targets]
            self._applied = [0.0] * len(self._targets)
            self.rows: list[tuple[float, ...]] = []
            self.rejected = {"margin": 0, "leverage": 0, "min_notional": 0}
            for data, lev in zip(self.datas, self.p.leverages):
                self.broker.set_leverage(data, float(lev))

        def notify_order(self, order: Any) -> None:
            if order.status == order.Margin:
                why = str(order.info.get("rejection", ""))
                self.rejected["leverage" if why.startswith("leverage") else "margin"] += 1
            elif order.status == order.Rejected:
                self.rejected["min_notional"] += 1

        def _equity_at_open(self) -> float:
            equity = self.broker.getvalue()
            for data in self.datas:
                equity += self.open_move(data)
            return equity

        def next_open(self) -> None:
            i = len(self.data) - 1
            targets = [float(t[i]) for t in self._targets]
            changed = [k for k, t in enumerate(targets) if t != self._applied[k] and not (t != t and self._applied[k] == 0.0)]
            if not changed:
                return
            broker = self.broker
            budget = self._equity_at_open()
            room = 1.0 + sum(abs(t) * max(broker.book(d).instrument.taker_fee, 0.0)
                             for t, d in zip(targets, self.datas) if t == t)
            for k in changed:
                t, data = targets[k], self.datas[k]
                held = self.getposition(data).size
                if t == t and t != 0.0 and held and (held > 0) != (t > 0):
                    inst = broker.book(data).instrument
                    budget -= trade_fee(inst.notional(held, data.open[0]), inst.taker_fee)
            plan = []
            for k in changed:
                t, data = targets[k], self.datas[k]
                inst = broker.book(data).instrument
                if t != t or t == 0.0:
                    qty = 0.0
                else:
                    value = budget * abs(t) / room * 0.999999
                    qty = math.copysign(value / notional(inst.inverse, 1.0, inst.contract_size, data.open[0]), t)
                qty = inst.round_qty(qty)
                held = self.getposition(data).size
                reducing = held != 0.0 and (qty == 0.0 or ((qty > 0) == (held > 0) and abs(qty) < abs(held)))
                plan.append((0 if reducing else 1, k, qty))
                self._applied[k] = t if t == t else 0.0
            for _, k, qty in sorted(plan):
                self.target_qty(self.datas[k], qty)

        prenext_open = next_open

        def next(self) -> None:
            self.rows.append(_record_row(self))

        prenext = next

    return PortfolioExposureStrategy


def _record_row(strategy: Any) -> tuple[float, ...]:
    """The bar's record of a portfolio run: equity, then per feed qty, entry, mark, uPnL, MM at the
    mark and the displayed liquidation price (PER_SYMBOL)."""
    broker = strategy.broker
    row: list[float] = [broker.getvalue()]
    for data in strategy.datas:
        book = broker.book(data)
        pos = book.position
        mark = broker._mark(data)
        if pos.qty:
            row += [pos.qty, pos.entry, mark, pos.unrealized_pnl(mark), broker._maint(book, mark), book.liq_price]
        else:
            row += [0.0, 0.0, mark, 0.0, 0.0, math.nan]
    return tuple(row)


def _recorded(cls: type) -> type:
    """``cls`` (a backtrader strategy trading every feed itself) with the per-bar portfolio record
    appended after its own ``prenext`` / ``next``, and its refused orders counted."""

    def start(self: Any) -> None:
        cls.start(self)
        self.rows = []
        self.rejected = {"margin": 0, "leverage": 0, "min_notional": 0}

    def notify_order(self: Any, order: Any) -> None:
        if order.status == order.Margin:
            why = str(order.info.get("rejection", ""))
            self.rejected["leverage" if why.startswith("leverage") else "margin"] += 1
        elif order.status == order.Rejected:
            self.rejected["min_notional"] += 1
        cls.notify_order(self, order)

    def prenext(self: Any) -> None:
        cls.prenext(self)
        self.rows.append(_record_row(self))

    def nextstart(self: Any) -> None:
        cls.next(self)  # backtrader's default nextstart: one next
        self.rows.append(_record_row(self))

    def next(self: Any) -> None:
        cls.next(self)
        self.rows.append(_record_row(self))

    return type(f"Portfolio{cls.__name__}", (cls,), {"start": start, "notify_order": notify_order,
                                                      "prenext": prenext, "nextstart": nextstart, "next": next,
                                                      "__module__": cls.__module__})


def _events_frame(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    from engine.runner import events_frame

    frame = events_frame(name, rows)
    if name == "liquidations":
        extra = pd.DataFrame(rows) if rows else pd.DataFrame()
        frame["account"] = extra["account"].fillna(False).astype(bool).to_numpy() \
            if "account" in extra else np.zeros(len(frame), dtype=bool)
        frame["account_margin_ratio"] = extra["account_margin_ratio"].astype(float).to_numpy() \
            if "account_margin_ratio" in extra else np.full(len(frame), np.nan)
    return frame.reset_index(drop=True)


def run_backtrader(spec: PortfolioSpec) -> PortfolioResult:
    """The portfolio through backtrader and :class:`engine.broker.PerpBroker` (every feed cross)."""
    from engine.runner import RunConfig, run_backtest

    validate(spec)
    first, *rest = spec.legs
    config = RunConfig(strategy="portfolio", venue=spec.venue, symbol=first.symbol, leverage=1.0,
                       margin_mode="cross", cash=spec.cash, funding_rate=spec.funding_rate,
                       allow_no_funding=spec.allow_no_funding, analyzers=False,
                       partial_liquidation=spec.partial_liquidation,
                       params={"targets": [np.asarray(leg.target, dtype=np.float64) for leg in spec.legs],
                               "leverages": account_leverage(spec).tolist()})
    feeds = [(leg.bars, {"symbol": leg.symbol, "margin_mode": "cross", "leverage": 1.0}) for leg in rest]
    res = run_backtest(first.bars, _portfolio_strategy(), config, feeds=feeds)
    return _result(spec, res)


def run_strategy(spec: PortfolioSpec, strategy: str, params: dict[str, Any] | None = None,
                 leverage: float = 1.0) -> PortfolioResult:
    """A backtrader strategy that trades every symbol's feed itself (``self.datas`` in leg order) on
    the one cross wallet, through :class:`engine.broker.PerpBroker` (backtrader only: the compiled
    engine takes one target array per symbol). ``strategy``: a name, ``file.py:Class`` or
    ``module:Class``; ``leverage``: every feed's leverage setting and the strategy's ``leverage``
    parameter when it declares one. The legs' ``target`` arrays are not used."""
    from engine.runner import RunConfig, run_backtest
    from engine.strategy_ref import load_strategy, run_params, type_params

    validate(spec, targets=False)
    cls = load_strategy(strategy)
    typed = type_params(cls, dict(params or {}), f"strategy {strategy} params") if params else {}
    first, *rest = spec.legs
    config = RunConfig(strategy=strategy, params=run_params(cls, typed, leverage), venue=spec.venue,
                       symbol=first.symbol, leverage=float(leverage), margin_mode="cross", cash=spec.cash,
                       funding_rate=spec.funding_rate, allow_no_funding=spec.allow_no_funding, analyzers=False,
                       partial_liquidation=spec.partial_liquidation)
    feeds = [(leg.bars, {"symbol": leg.symbol, "margin_mode": "cross", "leverage": float(leverage)}) for leg in rest]
    res = run_backtest(first.bars, _recorded(cls), config, feeds=feeds)
    result = _result(spec, res)
    result.spec_info["strategy"] = strategy
    return result


def _result(spec: PortfolioSpec, res: Any) -> PortfolioResult:
    first = spec.legs[0]
    broker, strat = res.broker, res.strategy  # type: ignore[attr-defined]
    rows = np.asarray(strat.rows, dtype=np.float64)
    k = len(spec.legs)
    n = len(first.bars)
    if rows.shape != (n, 1 + k * len(PER_SYMBOL)):
        raise DeleverageError(f"portfolio record has {rows.shape[0]} rows, expected one per bar ({n}): a strategy "
                              "overriding nextstart must call next")
    records = {name: rows[:, 1 + j::len(PER_SYMBOL)][:, :k].copy() for j, name in enumerate(PER_SYMBOL)}
    events = {name: _events_frame(name, broker.events[name]) for name in (*EVENT_TABLES, "adl")}
    symbols = [get_instrument(spec.venue, leg.symbol).symbol for leg in spec.legs]
    result = PortfolioResult(spec_info=spec_info(spec), index=first.bars.index, symbols=symbols,
                             equity=rows[:, 0].copy(), records=records, events=events,
                             insurance_fund=float(broker.insurance_fund), engine="backtrader")
    result.summary = summarize(result, spec.cash)
    for why, n in strat.rejected.items():
        result.summary[f"rejected_{why}"] = int(n)
    result.announcements = list(broker.announcements)  # type: ignore[attr-defined]
    return result


def spec_info(spec: PortfolioSpec) -> dict[str, Any]:
    rule = account_rule(spec.venue)
    return {"venue": spec.venue, "symbols": spec.symbols, "margin_mode": "cross", "cash": spec.cash,
            "label": spec.label, "account_rule": rule.order_name, "account_rule_assumptions": list(rule.assumptions),
            "partial_liquidation": bool(spec.partial_liquidation)}


def run_portfolio(spec: PortfolioSpec, engine: str = "auto") -> PortfolioResult:
    """Run a portfolio on ``engine``: ``fast`` (:mod:`engine.fast_portfolio`), ``backtrader``, or
    ``auto`` (fast, unless a leg's bars carry an ADL flow on a venue the fast engine does not
    model ADL for, :func:`fast_models_adl`: backtrader)."""
    if engine not in ENGINES:
        raise DeleverageError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    validate(spec)
    adl = has_adl_flow(spec) and not fast_models_adl(spec.venue)
    if engine == "fast" and adl:
        raise DeleverageError(f"--engine fast: a leg's bars carry an ADL flow, and the portfolio fast engine models "
                              f"ADL on Binance and Hyperliquid only, not {spec.venue} (its ranking by PnL x "
                              "leverage from the bankruptcy price); use --engine backtrader or auto")
    if engine == "backtrader" or (engine == "auto" and adl):
        return run_backtrader(spec)
    from engine.fast_portfolio import run_fast_portfolio

    return run_fast_portfolio(spec)
