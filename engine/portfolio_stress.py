"""``deleverage stress --portfolio FILE.toml``: a portfolio on one cross wallet through each waterfall.

The TOML names the symbols, the venue and the grid::

    [portfolio]
    venue = "binance_usdm"          # one venue, one settle currency
    margin = "cross"                # the only mode of a portfolio (one wallet)
    cash = 10000
    scenarios = ["312", "519", "2024-08-05"]
    leverage = [1, 2, 3, 5, 10]     # the account's gross leverage per cell
    data = "reconstructed"          # auto | real | reconstructed (as --data)
    engine = "auto"                 # auto | fast | backtrader
    partial_liquidation = false     # the venue's partial rule for the position the account closes

    [[symbols]]
    symbol = "BTCUSDT"
    weight = 0.6                    # share of the cell's leverage; negative = short; |weights| sum to 1
    # strategy = "sma_crossover"    # optional: a signal-form strategy; its target x weight
    # params = { fast = 12, slow = 48 }
    # data = "path/to/bars.parquet" # instead of the scenario's path of this asset

Per cell (scenario, leverage L) each symbol's target is ``weight x L`` from the scenario's entry
time on (buy/sell and hold), or ``weight x L x`` its strategy's ``target_exposure`` (called with
``leverage=1`` when the strategy has that parameter). The verdict is the account's: SURVIVED,
LIQUIDATED (which symbol when, in order), WIPED OUT, NO TRADE; ADL events are counted; a cell whose
liquidation left the account below zero (the loss beyond the margin) records the insurance fund's
cover, credited to the account (``insurance_cover``, a fraction of the cash like ``fees``; the run
summary's ``insurance_cover_total``, 0 when solvent and in records written before it existed). A scenario
without a path for a symbol's asset is refused with one line naming the scenarios that have it.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.portfolio import Leg, PortfolioSpec, run_portfolio
from risk.errors import DeleverageError
from risk.venues import get_instrument

PORTFOLIO_KEYS = {"venue": str, "margin": str, "cash": (int, float), "scenarios": list, "leverage": list,
                  "data": str, "engine": str, "funding_rate": (int, float), "wipeout": (int, float), "out": str,
                  "partial_liquidation": bool, "strategy": str, "params": dict}
SYMBOL_KEYS = {"symbol": str, "weight": (int, float), "asset": str, "strategy": str, "params": dict, "data": str}


@dataclass
class SymbolEntry:
    symbol: str
    weight: float
    asset: str
    strategy: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    data: str | None = None


@dataclass
class PortfolioStressSpec:
    path: str
    symbols: list[SymbolEntry]
    venue: str = "binance_usdm"
    cash: float = 10_000.0
    scenarios: list[str] = field(default_factory=lambda: ["312", "519"])
    leverages: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0, 5.0, 10.0])
    data_kind: str = "reconstructed"
    engine: str = "auto"
    funding_rate: float = 0.0001
    wipeout: float = 0.1
    workers: int | None = None  # processes for the grid (default: CPU count)
    partial_liquidation: bool = False  # the venue's partial rule for the position the account closes
    strategy: str | None = None  # one backtrader strategy trading every symbol's feed (backtrader only)
    params: dict[str, Any] = field(default_factory=dict)


def _type_name(t: Any) -> str:
    names = {str: "text", dict: "a table", list: "a list", int: "a number", float: "a number", bool: "true or false"}
    if isinstance(t, tuple):
        return "a number"
    return names.get(t, t.__name__)


def _check(path: Path, where: str, key: str, value: Any, want: Any) -> None:
    if isinstance(value, bool) and want in ((int, float),):
        raise DeleverageError(f"{path}: {where} {key} = {value!r}: expected {_type_name(want)}")
    if not isinstance(value, want):
        raise DeleverageError(f"{path}: {where} {key} = {value!r}: expected {_type_name(want)}")


def load_portfolio_toml(path: str | Path) -> PortfolioStressSpec:
    """Read and check a portfolio TOML; every error is one line naming the file, the key and what was expected."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeleverageError(f"--portfolio: file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeleverageError(f"{p}: not valid TOML: {exc}") from None
    unknown = set(data) - {"portfolio", "symbols"}
    if unknown:
        raise DeleverageError(f"{p}: unknown section [{sorted(unknown)[0]}]; expected [portfolio] and [[symbols]]")
    top = data.get("portfolio", {})
    if not isinstance(top, dict):
        raise DeleverageError(f"{p}: [portfolio] must be a table")
    for key, value in top.items():
        if key not in PORTFOLIO_KEYS:
            raise DeleverageError(f"{p}: unknown key {key!r} in [portfolio]; expected {', '.join(PORTFOLIO_KEYS)}")
        _check(p, "[portfolio]", key, value, PORTFOLIO_KEYS[key])
    if top.get("margin", "cross") != "cross":
        raise DeleverageError(f"{p}: [portfolio] margin = {top['margin']!r}: expected \"cross\" (a portfolio shares "
                              "one cross wallet; run isolated legs as separate stress runs)")
    rows = data.get("symbols")
    if not isinstance(rows, list) or not rows:
        raise DeleverageError(f"{p}: no [[symbols]] entries; expected at least two, each with symbol = \"...\"")
    venue = str(top.get("venue", "binance_usdm"))
    whole = top.get("strategy")
    entries = []
    for j, row in enumerate(rows, start=1):
        where = f"[[symbols]] #{j}"
        if not isinstance(row, dict):
            raise DeleverageError(f"{p}: {where} must be a table")
        for key, value in row.items():
            if key not in SYMBOL_KEYS:
                raise DeleverageError(f"{p}: unknown key {key!r} in {where}; expected {', '.join(SYMBOL_KEYS)}")
            _check(p, where, key, value, SYMBOL_KEYS[key])
        for key in ("strategy", "weight", "params"):
            if whole and key in row:
                raise DeleverageError(f"{p}: {where} {key}: [portfolio] strategy = {whole!r} trades every symbol "
                                      "itself; expected no per-symbol strategy, weight or params")
        if "symbol" not in row:
            raise DeleverageError(f"{p}: {where} has no symbol; expected symbol = \"BTCUSDT\" (or the venue's name)")
        try:
            inst = get_instrument(venue, row["symbol"])
        except DeleverageError as exc:
            raise DeleverageError(f"{p}: {where} symbol = {row['symbol']!r}: {exc}") from None
        weight = float(row.get("weight", 1.0 / len(rows)))
        if not math.isfinite(weight) or weight == 0.0:
            raise DeleverageError(f"{p}: {where} weight = {row.get('weight')!r}: expected a non-zero finite number")
        asset = str(row.get("asset") or getattr(inst, "base_currency", None) or inst.symbol.replace("USDT", ""))
        for key, value in (row.get("params") or {}).items():
            if isinstance(value, (dict, list)):
                raise DeleverageError(f"{p}: {where} params.{key}: expected a number, boolean or text")
        entries.append(SymbolEntry(symbol=inst.symbol, weight=weight, asset=asset.upper(), strategy=row.get("strategy"),
                                   params=dict(row.get("params") or {}), data=row.get("data")))
    if not whole:
        gross = sum(abs(e.weight) for e in entries)
        if abs(gross - 1.0) > 1e-9:
            terms = " + ".join(f"|{e.weight:g}|" for e in entries)
            raise DeleverageError(
                f"{p}: [[symbols]] weights: {terms} = {gross:g}; expected absolute weights summing to 1 (each "
                f"cell's leverage is the account's gross leverage, split by weight: at [portfolio] leverage L these "
                f"would hold {gross:g} x L): scale the weights to sum to 1 and set the gross leverage with [portfolio] "
                f"leverage")
    from engine.config import parse_list

    spec = PortfolioStressSpec(path=str(p), symbols=entries, venue=venue, cash=float(top.get("cash", 10_000.0)),
                               data_kind=str(top.get("data", "reconstructed")), engine=str(top.get("engine", "auto")),
                               funding_rate=float(top.get("funding_rate", 0.0001)),
                               wipeout=float(top.get("wipeout", 0.1)),
                               partial_liquidation=bool(top.get("partial_liquidation", False)),
                               strategy=whole, params=dict(top.get("params") or {}))
    if whole:
        from engine.strategy_ref import portable_ref

        spec.strategy = portable_ref(whole)  # a file path made absolute (pool workers, a resume elsewhere)
    if "scenarios" in top:
        spec.scenarios = parse_list(top["scenarios"], f"{p}: [portfolio] scenarios")
    if "leverage" in top:
        spec.leverages = parse_list(top["leverage"], f"{p}: [portfolio] leverage", float)
    check_spec(spec)
    return spec


def check_spec(spec: PortfolioStressSpec) -> None:
    from engine.portfolio import ENGINES

    where = f"{spec.path}: [portfolio]"
    if len(spec.symbols) < 2:
        raise DeleverageError(f"{spec.path}: {len(spec.symbols)} [[symbols]] entry; expected at least two")
    if not spec.cash > 0:
        raise DeleverageError(f"{where} cash = {spec.cash:g}: expected a positive number")
    if spec.data_kind not in ("auto", "real", "reconstructed"):
        raise DeleverageError(f"{where} data = {spec.data_kind!r}: expected auto, real or reconstructed")
    if spec.engine not in ENGINES:
        raise DeleverageError(f"{where} engine = {spec.engine!r}: expected one of {', '.join(ENGINES)}")
    if any(not (v > 0 and math.isfinite(v)) for v in spec.leverages):
        raise DeleverageError(f"{where} leverage = {spec.leverages}: expected finite numbers > 0")
    if not 0 <= spec.wipeout < 1:
        raise DeleverageError(f"{where} wipeout = {spec.wipeout:g}: expected a fraction in [0, 1)")
    if spec.strategy:
        from engine.strategy_ref import load_strategy, type_params

        if spec.engine == "fast":
            raise DeleverageError(f"{where} engine = \"fast\": strategy = {spec.strategy!r} trades the feeds "
                                  "itself, which runs on backtrader only (the compiled engine takes one target "
                                  "array per symbol); expected auto or backtrader")
        try:
            cls = load_strategy(spec.strategy)
            type_params(cls, dict(spec.params), f"{spec.path}: [portfolio] params")
        except DeleverageError as exc:
            raise DeleverageError(f"{where} strategy = {spec.strategy!r}: {exc}") from None
        if "leverage" in spec.params:
            raise DeleverageError(f"{where} params.leverage: the grid sets the leverage per cell; expected "
                                  "[portfolio] leverage = [...] instead")
    from feeds.scenarios import get_scenario

    for name in spec.scenarios:
        scenario = get_scenario(name)
        for entry in spec.symbols:
            if entry.data is None and spec.venue not in scenario.paths.get(entry.asset, {}) \
                    and not scenario.has_real(entry.asset, spec.venue):
                have = [s.name for s in _scenarios_with(entry.asset, spec.venue)]
                raise DeleverageError(
                    f"scenario {scenario.name} has no {entry.asset} path on {spec.venue} (for {entry.symbol}); "
                    f"scenarios with one: {', '.join(have) or 'none'} (or give {entry.symbol} a data = FILE)")


def _scenarios_with(asset: str, venue: str) -> list[Any]:
    from feeds.scenarios import list_scenarios

    return [s for s in list_scenarios() if venue in s.paths.get(asset, {}) or s.has_real(asset, venue)]


# --- the grid ------------------------------------------------------------------------------------------

def _bars_for(spec: PortfolioStressSpec, entry: SymbolEntry, scenario: Any) -> pd.DataFrame:
    if entry.data is not None:
        from feeds.detect import load

        return load(entry.data)
    return scenario.bars(data=spec.data_kind, asset=entry.asset, venue=spec.venue)


def _signal(entry: SymbolEntry, bars: pd.DataFrame, entry_time: Any) -> np.ndarray:
    """The symbol's unit signal: +1/-1 hold from the scenario's entry, or its strategy's target at leverage 1."""
    if entry.strategy is None:
        from strategies.base import entry_index

        out = np.zeros(len(bars))
        out[entry_index(bars, entry_time):] = 1.0
        return out
    from engine.strategy_ref import has_param, load_strategy, type_params

    cls = load_strategy(entry.strategy)
    if not hasattr(cls, "target_exposure"):
        raise DeleverageError(f"{entry.symbol}: strategy {entry.strategy} has no signal form (target_exposure); "
                              "a portfolio symbol needs one")
    params = type_params(cls, entry.params, f"[[symbols]] {entry.symbol} params") if entry.params else {}
    if has_param(cls, "leverage"):
        params["leverage"] = 1.0
    return np.asarray(cls.target_exposure(bars, **params), dtype=np.float64)


VERDICT_COLUMNS = ("scenario", "leverage", "verdict", "survived", "liquidated", "liquidations", "equity_left",
                   "max_drawdown", "max_account_margin_ratio", "funding_paid", "fees", "adl_events", "rejected_orders",
                   "engine",
                   "data_kind", "run_dir", "insurance_cover")
# columns added after portfolio stress directories were first written: their value in older records
VERDICT_DEFAULTS: dict[str, Any] = {"insurance_cover": 0.0}


def run_cell(spec: PortfolioStressSpec, scenario_name: str, leverage: float, out: Path) -> dict[str, Any]:
    """Run one (scenario, leverage) cell and write its run directory whole (``engine.stress.write_cell_dir``:
    a temporary folder renamed into place, with the record as ``cell.json``); return its record."""
    from reports.verdicts import SURVIVED, classify
    from feeds.scenarios import get_scenario
    from engine.stress import write_cell_dir

    scenario = get_scenario(scenario_name)
    legs, kinds = [], []
    for entry in spec.symbols:
        bars = _bars_for(spec, entry, scenario)
        kinds.append(str(bars.attrs.get("kind", "real")))
        target = None if spec.strategy else entry.weight * leverage * _signal(entry, bars, scenario.entry_time)
        legs.append(Leg(entry.symbol, bars, target))
    pspec = PortfolioSpec(legs=legs, venue=spec.venue, cash=spec.cash, funding_rate=spec.funding_rate,
                          label=f"{scenario.name} x{leverage:g}", partial_liquidation=spec.partial_liquidation)
    if spec.strategy:
        from engine.portfolio import run_strategy
        from engine.stress import scenario_params
        from engine.strategy_ref import load_strategy

        entry_time = pd.Timestamp(scenario.entry_time).isoformat() if scenario.entry_time is not None else ""
        params = scenario_params(load_strategy(spec.strategy), dict(spec.params), entry_time)
        result = run_strategy(pspec, spec.strategy, params, leverage)
    else:
        result = run_portfolio(pspec, spec.engine)
    s = result.summary
    liq = result.events["liquidations"]
    adl = result.events.get("adl")
    n_adl = int(len(adl)) if adl is not None else 0
    equity_left = s["final_equity"] / spec.cash
    verdict = classify(liquidated=bool(s["liquidated"]), refused=False, fills=int(s["fills"]),
                       equity_left=equity_left, wipeout=spec.wipeout, adl=bool(n_adl))
    run_dir = cell_dir(scenario.name, leverage)
    record = {
        "scenario": scenario.name, "leverage": float(leverage), "verdict": verdict, "survived": verdict == SURVIVED,
        "liquidated": bool(s["liquidated"]),
        "liquidations": "; ".join(f"{r['symbol']} {r['time']:%Y-%m-%d %H:%M}" for _, r in liq.iterrows()),
        "equity_left": equity_left, "max_drawdown": s["max_drawdown"],
        "max_account_margin_ratio": s["max_finite_account_margin_ratio"] if s["max_finite_account_margin_ratio"]
        is not None else math.nan,
        "funding_paid": s["funding_total"] / spec.cash, "fees": s["fees_total"] / spec.cash, "adl_events": n_adl,
        # what the insurance fund credited the account on insolvent liquidations (not a fee; the summary's
        # insurance_cover_total, per symbol in "symbols"): equity_left includes it
        "insurance_cover": float(s.get("insurance_cover_total") or 0.0) / spec.cash,
        "rejected_orders": int(s.get("rejected_margin", 0) + s.get("rejected_leverage", 0)
                               + s.get("rejected_min_notional", 0)),
        "engine": result.engine, "data_kind": "+".join(sorted(set(kinds))), "run_dir": run_dir,
        "symbols": s["symbols"],
    }
    # one JSON round trip: the record is the same whether it comes from this process, a worker or
    # cells.jsonl on a resume (NaN survives as NaN)
    record = json.loads(json.dumps(record, default=str))
    write_cell_dir(Path(out) / run_dir, result.save, record)
    return record


def cell_dir(scenario: str, leverage: float) -> str:
    return f"runs/{scenario}/x{leverage:g}".replace(".", "_")


def _spec_from_plain(plain: dict[str, Any]) -> PortfolioStressSpec:
    fields = dict(plain)
    fields["symbols"] = [SymbolEntry(**e) for e in fields["symbols"]]
    return PortfolioStressSpec(**fields)


def _run_task(task: dict[str, Any]) -> dict[str, Any]:
    """One cell from a plain (picklable) task: what a pool worker runs (``engine.parallel``)."""
    return run_cell(_spec_from_plain(task["spec"]), task["scenario"], float(task["leverage"]), Path(task["stress_dir"]))


def run_options(spec: PortfolioStressSpec) -> dict[str, Any]:
    """Everything that decides a cell's result (a resume must match it): the TOML's settings and a
    content digest of every symbol's bars in every scenario."""
    from dataclasses import asdict

    from engine.stress import bars_digest
    from feeds.scenarios import get_scenario

    plain = asdict(spec)
    del plain["path"], plain["workers"]
    digests = {}
    for name in spec.scenarios:
        scenario = get_scenario(name)
        for entry in spec.symbols:
            digests[f"{scenario.name}/{entry.symbol}"] = bars_digest(_bars_for(spec, entry, scenario))
    return {**plain, "bars": digests}


def run_portfolio_stress(spec: PortfolioStressSpec, out: Path, progress: bool | None = None,
                         mode: str = "new", announce: Any = None) -> pd.DataFrame:
    """Every (scenario, leverage) cell on a process pool (``spec.workers``, ``engine.parallel``), each
    written to ``out`` as it finishes (a run directory renamed into place and a ``cells.jsonl`` line).
    ``mode``: ``new`` (refused when ``out`` holds a stress run), ``resume`` (run only the cells missing;
    refused, naming what differs, when the options or bars differ) or ``overwrite``. The same
    machinery as the single-symbol grid (engine.stress). The table (grid order) has ``attrs["resumed"]``,
    the number of cells kept from the earlier run. ``announce`` is called once every input is checked,
    before the first cell runs."""
    from dataclasses import asdict

    from engine.stress import _atomic_parquet, _atomic_write_text, _differences, _prepare_dir, read_stress_json, run_cells

    path = Path(out)
    _prepare_dir(path, mode)
    resuming = mode == "resume"
    old: dict[str, Any] = {}
    if resuming:
        old = read_stress_json(path)
        if old.get("kind") != "portfolio":
            raise DeleverageError(f"--resume: {path} holds a single-strategy stress run, not a portfolio one; "
                                  "choose another --out or pass --overwrite")
    options = run_options(spec)
    if resuming:
        diff = _differences(old.get("options", {}), options)
        if diff:
            raise DeleverageError(f"--resume: {path} was run with other options ({'; '.join(diff)}); "
                                  "run again with the same portfolio file and options, or pass --overwrite")
    path.mkdir(parents=True, exist_ok=True)
    plain = asdict(spec)
    tasks = [{"spec": plain, "scenario": name, "leverage": float(lev), "stress_dir": str(path),
              "run_dir": cell_dir(name, float(lev))} for name in spec.scenarios for lev in spec.leverages]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    config = {
        "kind": "portfolio", "portfolio_file": spec.path, "venue": spec.venue, "cash": spec.cash,
        "symbols": [e.__dict__ for e in spec.symbols], "scenarios": spec.scenarios, "leverages": spec.leverages,
        "data": spec.data_kind, "engine": spec.engine, "partial_liquidation": spec.partial_liquidation,
        "cells": len(tasks), "created": now, "options": options,
    }
    if announce is not None:
        announce()
    records, resumed = run_cells(path, config, old if resuming else None, tasks, _run_task, workers=spec.workers,
                                 desc="stress --portfolio", progress=progress)
    # cells.jsonl in grid order once every cell is in (it was appended as cells finished)
    _atomic_write_text(path / "cells.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in records))
    table = pd.DataFrame(records)
    for col, value in VERDICT_DEFAULTS.items():  # records of an earlier run being resumed may lack it
        table[col] = table[col].fillna(value).astype("float64") if col in table else value
    _atomic_parquet(table[list(VERDICT_COLUMNS)], path / "survival.parquet")
    table.attrs["resumed"] = resumed
    return table


def _insolvent_mark(rec: dict[str, Any], cover: float, cash: float) -> str:
    """`` (insolvent: fund covered BTCUSDT 19.31%, ETHUSDT 0.50%)``: which symbols' liquidations the
    insurance fund covered, as fractions of the initial equity (the run summary per symbol); ``""``
    for a solvent cell."""
    from reports.verdicts import INSOLVENT

    if not cover:
        return ""
    per = rec.get("symbols") if isinstance(rec.get("symbols"), dict) else {}
    parts = [f"{sym} {float(v.get('insurance_cover_total') or 0.0) / cash:.2%}" for sym, v in per.items()
             if isinstance(v, dict) and float(v.get("insurance_cover_total") or 0.0) > 0.0]
    return f"  ({INSOLVENT}: fund covered {', '.join(parts)})" if parts else f"  ({INSOLVENT})"


def format_table(table: pd.DataFrame, spec: PortfolioStressSpec) -> str:
    if spec.strategy:
        from engine.strategy_ref import strategy_label

        names = ", ".join(e.symbol for e in spec.symbols)
        lines = [f"portfolio on one cross wallet ({spec.venue}): {names}, traded by {strategy_label(spec.strategy)} "
                 "(backtrader; leverage per cell)"]
    else:
        names = ", ".join(f"{e.symbol} {e.weight:+g}" for e in spec.symbols)
        lines = [f"portfolio on one cross wallet ({spec.venue}): {names} (weights x leverage)"]
    if table.attrs.get("resumed"):
        lines.append(f"  resumed: {table.attrs['resumed']} of {len(table)} cells were already written and kept")
    from reports.verdicts import insolvent, insurance_cover

    # the insurance fund's cover: a column only when a cell had one (a grid without an insolvent
    # liquidation prints as before)
    covered = any(insolvent(r) for r in table.to_dict("records"))
    lines += [
             f"{'scenario':<12} {'lev':>5} {'verdict':<11} {'equity':>7} {'max MR':>7}"
             + (f" {'fund cover':>10}" if covered else "")
             + "  liquidated (account rule)   [max MR: account margin ratio at the bar closes]"]
    for _, r in table.iterrows():
        mr = r["max_account_margin_ratio"]
        refused = f"  ({r['rejected_orders']} order(s) refused for margin)" if r["rejected_orders"] else ""
        cover = insurance_cover(r.to_dict())
        lines.append(f"{r['scenario']:<12} {r['leverage']:>5g} {r['verdict']:<11} {r['equity_left']:>7.1%} "
                     f"{mr:>7.1%}" + (f" {(f'{cover:.2%}' if cover else ''):>10}" if covered else "")
                     + f"  {r['liquidations'] or '-'}" + _insolvent_mark(r.to_dict(), cover, spec.cash) + refused)
    if covered:
        lines.append("fund cover: the insurance fund's cover of insolvent liquidations (the account's loss beyond its "
                     "margin, paid back to zero), credited to the account, not a fee, as a fraction of the initial "
                     "equity; equity includes it (without the fund: equity - fund cover)")
    kinds = sorted(set(table["data_kind"]))
    if any("reconstructed" in k for k in kinds):
        lines.append("data: RECONSTRUCTED paths (seeded paths through published waypoints, not exchange data) "
                     "where marked reconstructed")
    return "\n".join(lines)
