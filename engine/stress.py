"""The stress test: one strategy through each liquidation waterfall at each leverage.

:func:`run_stress` runs every (scenario, leverage) cell in parallel (:mod:`engine.parallel`),
writes each cell as a full run directory as soon as it finishes, and then the stress
directory read by ``reports.stress_report``::

    STRESS_DIR/
      stress.json         the configuration, data provenance and funding source per scenario
      survival.parquet    one row per cell (SURVIVAL_COLUMNS)
      frontier.parquet    scenario, max_surviving_leverage (NaN if none survived)
      cells.jsonl         one line per finished cell, appended as cells finish
      inputs/<scenario>.parquet   the bars each cell ran on
      runs/<scenario>/x<leverage>/  each cell's run directory (engine.runner.save_run)

Re-runs: a second run into a directory that already holds a stress run is refused unless
``mode="resume"`` (finish the cells missing from ``cells.jsonl``; refused, naming what differs,
when the options or input bars differ from ``stress.json["options"]``) or ``mode="overwrite"``
(the old directory is removed first). Each cell's run directory is written under a temporary
name beside its final place and renamed when complete, with the cell's record as ``cell.json``,
so a kill never leaves a half cell; ``survival.parquet`` and ``frontier.parquet`` are written
the same way at the end.

Verdicts (``verdict``; rule in :mod:`reports.verdicts`): survived, liquidated, wiped out (equity
left under the ``wipeout`` floor, default 10 %), no trade (nothing filled, nothing refused) or
refused; ``survived`` is True only for the first, and only survivors count toward the frontier.
``warning`` carries the plausibility warning of a cell whose gain is implausible for its data.

Survival-table units: ``equity_left``, ``max_drawdown``, ``min_distance_to_liquidation``,
``funding_paid``, ``fees`` and ``insurance_cover`` are **fractions of the initial equity** (of the
mark price for the distance), in the settle currency of the venue (BTC for BitMEX XBTUSD);
``funding_paid`` is the funding cash flow, negative when the strategy paid (the sign of
``RiskView.funding_paid``); ``fees`` is what the account paid; ``insurance_cover`` (>= 0) is what
the insurance fund credited the account when a liquidation was insolvent (the loss beyond the
margin, the run summary's ``insurance_cover_total``; not a fee, 0 for a solvent cell and for
records written before the column existed): ``equity_left`` includes it, so
``equity_left - insurance_cover`` is where the account would have ended without the fund.
``liquidation_price`` is the liquidation price that was hit (the fill, bankruptcy price on
BitMEX, is in the cell's run directory). ``fills`` counts the cell's
fills; ``refused`` means the broker refused every order (margin, or the venue's maximum
leverage for that notional; the reason is in ``cells.jsonl``).

Bars without a ``funding_rate`` column settle a stated constant rate (default 0.01 % per
interval, the BitMEX/Binance baseline); ``stress.json["funding"]`` records the source per
scenario.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from reports.verdicts import (DEFAULT_WIPEOUT, INSOLVENT, SURVIVED, best_move, check_wipeout, classify, insolvent,
                              insurance_cover, plausibility_warning, single_trade_bound)
from risk.errors import DeleverageError

SURVIVAL_COLUMNS = (
    "strategy", "scenario", "leverage", "margin_mode", "venue", "data_kind", "survived", "liquidated_at",
    "liquidation_price", "equity_left", "max_drawdown", "min_distance_to_liquidation", "funding_paid", "fees", "run_dir",
    "refused", "engine", "verdict", "fills", "warning", "insurance_cover",
)
# columns added after stress directories were first written: their value in older records / tables
SURVIVAL_DEFAULTS: dict[str, Any] = {"insurance_cover": 0.0}
DEFAULT_LEVERAGES = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)
DEFAULT_FUNDING_RATE = 0.0001
DATA_KINDS = ("reconstructed", "real", "auto")  # auto: real where shipped or cached, else reconstructed
TMP_PREFIX = ".tmp-"  # a cell being written; removed by a resume


@dataclass
class StressSpec:
    """What to stress. ``venue`` None: each scenario's default venue. ``cash`` None: 1 coin on
    inverse contracts, 10,000 on linear ones. ``funding_rate``: the constant settled on bars
    without funding data."""

    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
    scenarios: list[str] = field(default_factory=lambda: ["312", "519"])
    leverages: list[float] = field(default_factory=lambda: list(DEFAULT_LEVERAGES))
    margin_mode: str = "isolated"
    venue: str | None = None
    data_kind: str = "reconstructed"
    data_path: str | None = None
    cash: float | None = None
    funding_rate: float = DEFAULT_FUNDING_RATE
    workers: int | None = None
    engine: str = "auto"  # auto: the compiled fast engine when the strategy has a signal form
    wipeout: float = DEFAULT_WIPEOUT  # equity left (fraction) under which a cell is WIPED OUT
    partial_liquidation: bool = False  # the venue's partial liquidation first (both engines: issue 15)

    def validate(self) -> None:
        from engine.strategy_ref import load_strategy, type_params

        cls = load_strategy(self.strategy)
        self.params = type_params(cls, self.params, "--param")
        if "leverage" in self.params:
            raise DeleverageError("the stress sets the strategy's leverage per cell: use --leverage, not a leverage parameter")
        if not self.scenarios:
            raise DeleverageError("no scenarios given")
        if not self.leverages or any(not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v))
                                     for v in self.leverages):
            raise DeleverageError(f"--leverage: levels must be finite numbers > 0, got {self.leverages}")
        if len(set(self.scenarios)) != len(self.scenarios) or len(set(self.leverages)) != len(self.leverages):
            raise DeleverageError("scenarios and leverage levels must not repeat")
        if self.margin_mode not in ("isolated", "cross"):
            raise DeleverageError(f"margin must be isolated or cross, got {self.margin_mode!r}")
        if self.data_kind not in DATA_KINDS:
            raise DeleverageError(f"data must be one of {', '.join(DATA_KINDS)}, got {self.data_kind!r}")
        if self.cash is not None and (isinstance(self.cash, bool) or not isinstance(self.cash, (int, float))
                                      or not (math.isfinite(self.cash) and self.cash > 0)):
            raise DeleverageError(f"--cash {self.cash}: expected a finite number > 0")
        if isinstance(self.funding_rate, bool) or not isinstance(self.funding_rate, (int, float)) \
                or not math.isfinite(self.funding_rate):
            raise DeleverageError(f"--funding-rate {self.funding_rate}: expected a finite number (a rate per interval, "
                                  "e.g. 0.0001)")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise DeleverageError(f"--workers {self.workers}: expected a whole number of at least 1")
        if self.venue is not None:
            from risk.venues import venue_rules

            try:
                venue_rules(self.venue)
            except DeleverageError as exc:  # one line listing the known venues
                raise DeleverageError(f"--venue {self.venue}: {exc}") from None
        if self.data_path is not None:
            if not Path(self.data_path).exists():
                raise DeleverageError(f"--data-path {self.data_path}: no such file or folder; expected a file or folder "
                                      "of real bars, or a `deleverage data fetch` cache")
            if self.data_kind == "reconstructed":
                raise DeleverageError(f"--data-path {self.data_path} has no effect with --data reconstructed (the "
                                      "reconstructions are built in); use --data real or auto to read it, or drop it")
        try:
            check_wipeout(self.wipeout)
        except ValueError as exc:
            raise DeleverageError(f"--wipeout: {exc}") from None
        from engine.fast import select_engine

        select_engine(cls, self.engine, self.params)


@dataclass
class ScenarioInput:
    """Bars of one scenario and what the survival table says about them."""

    name: str
    bars: pd.DataFrame
    title: str = ""
    entry_time: str = ""
    default_venue: str = "binance_usdm"
    kind: str = ""

    def __post_init__(self) -> None:
        self.kind = self.kind or str(self.bars.attrs.get("kind", "real"))


def load_scenario(name: str, data_kind: str = "reconstructed", data_path: str | None = None,
                  venue: str | None = None) -> ScenarioInput:
    """A built-in scenario's bars (``feeds.scenarios``): real, reconstructed, or ``auto`` (real
    where shipped or cached, else reconstructed). ``venue``: the path (or real bars) of that
    venue when the scenario has one, else its default. The input's default venue is the venue
    of the bars (real 519 bars are BitMEX's although the scenario's default venue is Binance)."""
    from feeds.scenarios import get_scenario

    scenario = get_scenario(name)
    from feeds.scenarios import ADL_FLOWS

    has = venue is not None and (venue in scenario.paths.get("BTC", {}) or scenario.has_real("BTC", venue)
                                 or (scenario.name, venue) in ADL_FLOWS)
    bars = scenario.bars(data=data_kind, data_path=data_path, venue=venue if has else None)
    entry = scenario.entry_time
    return ScenarioInput(name=scenario.name, bars=bars, title=scenario.title,
                         entry_time=pd.Timestamp(entry).isoformat() if entry is not None else "",
                         default_venue=str(bars.attrs.get("venue") or scenario.default_venue),
                         kind=str(bars.attrs.get("kind", data_kind)))


# --- one cell (runs in a worker process) ----------------------------------------------------


@lru_cache(maxsize=8)
def _bars(path: str) -> pd.DataFrame:
    from reports.results import read_parquet

    return read_parquet(path)


def run_cell(task: dict[str, Any]) -> dict[str, Any]:
    """Run one (scenario, leverage) cell from a plain task, write its run directory, return its row."""
    from engine.runner import RunConfig, run_backtest, watch_refusals
    from engine.strategy_ref import load_strategy, run_params

    bars = _bars(task["bars_path"])
    cls = load_strategy(task.get("strategy_ref", task["strategy"]))  # a worker loads the same file or module by its reference
    Watched, refusals = watch_refusals(cls)
    config = RunConfig(strategy=task["strategy"], params=run_params(cls, task["params"], task["leverage"]),
                       venue=task["venue"],
                       leverage=float(task["leverage"]), margin_mode=task["margin_mode"], cash=float(task["cash"]),
                       funding_rate=task["funding_rate"],
                       partial_liquidation=bool(task.get("partial_liquidation", False)))
    from engine.fast import run_fast, select_engine
    from engine.runner import engine_note, mechanics_needing_backtrader

    needs = mechanics_needing_backtrader(config, bars)
    engine = select_engine(cls, task.get("engine", "auto"), config.params, needs)
    if engine == "fast":  # the compiled pass of the same risk model (parity-tested with backtrader)
        result = run_fast(bars, cls, config, data_info=task["data_info"])
        refused_orders = result.summary["orders_rejected"]
        refusals += [f"{n} order(s) refused: {why}" for why, n in refused_orders.items() if n]
    else:
        result = run_backtest(bars, Watched, config, data_info=task["data_info"])
        from engine.fast import supports

        if needs and task.get("engine", "auto") == "auto" and supports(cls, config.params):
            result.config["announcements"].insert(0, engine_note(needs))
    s = result.summary
    cash = float(task["cash"])
    liq = result.liquidations
    # a cell whose every order was refused (e.g. 100x above the venue's leverage limit for that
    # notional) never held a position: it did not survive anything, so it is not a survivor
    refused = bool(refusals) and not s["fills"]
    equity_left = s["final_equity"] / cash
    verdict = classify(liquidated=bool(s["liquidated"]), refused=refused, fills=int(s["fills"]),
                       equity_left=equity_left, wipeout=float(task.get("wipeout", DEFAULT_WIPEOUT)),
                       adl=bool(s.get("adl_events")))
    warning = ""
    if s["fills"] and len(bars) > 1:
        r_long, r_short = best_move(bars["high"].to_numpy(), bars["low"].to_numpy())
        bound = single_trade_bound(float(task["leverage"]), r_long, r_short, bool(result.config.get("inverse")))
        step = bars.index[1] - bars.index[0]
        days = (bars.index[-1] - bars.index[0] + step) / pd.Timedelta(days=1)
        warning = plausibility_warning(equity_left=equity_left, bound=bound, data_kind=task["data_info"]["kind"],
                                       days=days, leverage=float(task["leverage"]))
    record = {
        "strategy": task["strategy"], "scenario": task["scenario"], "leverage": float(task["leverage"]),
        "margin_mode": task["margin_mode"], "venue": task["venue"], "data_kind": task["data_info"]["kind"],
        "survived": verdict == SURVIVED, "verdict": verdict, "warning": warning,
        "liquidated": bool(s["liquidated"]),
        "adl_events": int(s.get("adl_events", 0)),
        "adl_at": result.adl["time"].iloc[0].isoformat() if len(result.adl) else None,
        "liquidated_at": s["first_liquidation_time"],
        "liquidation_price": float(liq["liquidation_price"].iloc[0]) if len(liq) else math.nan,
        "equity_left": equity_left,
        "max_drawdown": s["max_drawdown"],
        "min_distance_to_liquidation": (s["min_distance_to_liquidation"]
                                        if s["min_distance_to_liquidation"] is not None else math.nan),
        "funding_paid": s["funding_total"] / cash,
        "fees": s["fees_total"] / cash,
        # what the insurance fund credited the account on an insolvent liquidation (not a fee; the
        # summary's insurance_cover_total): equity_left includes it
        "insurance_cover": float(s.get("insurance_cover_total") or 0.0) / cash,
        "run_dir": task["run_dir"],
        "refused": refused, "engine": engine,
        # not in survival.parquet: context for the printed table
        "fills": s["fills"], "fill_price": s["first_liquidation_price"],
        "refusals": refusals[:3],
        "announcements": result.config.get("announcements", []),
    }
    # one JSON round trip: the record is the same whether it comes from this process or from
    # cells.jsonl on a resume
    record = json.loads(json.dumps(record, default=str))
    _write_cell_atomically(result, Path(task["stress_dir"]) / task["run_dir"], bars, record)
    return record


def _write_cell_atomically(result: Any, final: Path, bars: pd.DataFrame, record: dict[str, Any]) -> None:
    from engine.runner import save_run

    write_cell_dir(final, lambda tmp: save_run(result, tmp, bars), record)


def write_cell_dir(final: Path, write: Any, record: dict[str, Any]) -> None:
    """Write a cell's run directory (``write(tmp_dir)``) under a temporary name beside ``final``
    (with the record as ``cell.json``), then rename it into place: a kill leaves either no cell
    or a whole one. Shared by the single-symbol and the portfolio grid."""
    import shutil
    import uuid

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
    write(tmp)
    (tmp / "cell.json").write_text(json.dumps(record, indent=2) + "\n")
    if final.exists():  # a whole cell from a run killed before its cells.jsonl line: replaced
        shutil.rmtree(final)
    os.replace(tmp, final)


# --- the grid --------------------------------------------------------------------------------


def _lev_dir(leverage: float) -> str:
    return "x" + (f"{leverage:g}".replace(".", "_"))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def plan_tasks(spec: StressSpec, inputs: list[ScenarioInput], stress_dir: Path,
               strategy_names: Iterable[str] | None = None,
               write_inputs: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Write each scenario's bars to ``inputs/`` and build the plain tasks; also the per-scenario notes."""
    from engine.strategy_ref import load_strategy, portable_ref, run_params, strategy_label
    from risk.venues import get_instrument

    strategies = list(strategy_names or [spec.strategy])
    (stress_dir / "inputs").mkdir(parents=True, exist_ok=True)
    tasks: list[dict[str, Any]] = []
    notes: dict[str, Any] = {}
    for inp in inputs:
        bars_path = stress_dir / "inputs" / f"{_safe(inp.name)}.parquet"
        frame = inp.bars.copy()
        frame.attrs = {}
        if write_inputs or not bars_path.exists():
            _atomic_parquet(frame, bars_path)
        venue = spec.venue or inp.default_venue
        inst = get_instrument(venue, None)
        cash = spec.cash if spec.cash is not None else (1.0 if inst.inverse else 10_000.0)
        has_funding = "funding_rate" in inp.bars.columns
        funding = ("from the bars (funding_rate column)" if has_funding else
                   f"constant {spec.funding_rate:g} per interval at the venue's funding hours (the bars have no funding data)")
        notes[inp.name] = {"title": inp.title, "digest": bars_digest(frame), "data_kind": inp.kind, "venue": venue, "symbol": inst.symbol,
                           "settle_currency": inst.settle_currency, "initial_cash": cash, "funding": funding,
                           "entry_time": inp.entry_time, "bars": len(inp.bars),
                           "start": inp.bars.index[0].isoformat() if len(inp.bars) else None,
                           "end": inp.bars.index[-1].isoformat() if len(inp.bars) else None,
                           "source": inp.bars.attrs.get("source", inp.bars.attrs.get("sources", "")),
                           "origin": inp.bars.attrs.get("origin", ""),
                           "label": inp.bars.attrs.get("label", inp.title),
                           **({"adl_flow": inp.bars.attrs["adl_label"]} if inp.bars.attrs.get("adl_label") else {})}
        info = {"kind": inp.kind, "sources": inp.bars.attrs.get("source", inp.bars.attrs.get("sources", [])),
                "label": inp.bars.attrs.get("label", inp.title), "scenario": inp.name}
        for strategy in strategies:
            cls = load_strategy(strategy)
            params = scenario_params(cls, dict(spec.params) if strategy == spec.strategy else {}, inp.entry_time)
            for lev in spec.leverages:
                prefix = f"runs/{_safe(strategy_label(strategy))}/" if len(strategies) > 1 else "runs/"
                tasks.append({
                    "strategy": strategy, "strategy_ref": portable_ref(strategy),
                    "params": run_params(cls, params, lev), "scenario": inp.name,
                    "leverage": float(lev), "margin_mode": spec.margin_mode, "venue": venue, "cash": cash,
                    "funding_rate": None if has_funding else spec.funding_rate, "bars_path": str(bars_path),
                    "stress_dir": str(stress_dir), "run_dir": f"{prefix}{_safe(inp.name)}/{_lev_dir(float(lev))}",
                    "data_info": info, "engine": spec.engine, "wipeout": float(spec.wipeout),
                    "partial_liquidation": bool(spec.partial_liquidation),
                })
    return tasks, notes


def scenario_params(strategy_cls: type, params: dict[str, Any], entry_time: str) -> dict[str, Any]:
    """A strategy with an ``entry_time`` parameter enters at the scenario's entry time (hours
    before the fall) unless the user set one; stress and optimization use the same rule."""
    out = dict(params)
    from engine.strategy_ref import has_param

    if has_param(strategy_cls, "entry_time") and "entry_time" not in out and entry_time:
        out["entry_time"] = entry_time
    return out


def frontier_table(survival: pd.DataFrame) -> pd.DataFrame:
    """Highest surviving leverage per scenario (per strategy too when several), NaN when none."""
    keys = ["strategy", "scenario"] if survival["strategy"].nunique() > 1 else ["scenario"]
    order = list(dict.fromkeys(survival["scenario"]))
    out = (survival.assign(_lev=survival["leverage"].where(survival["survived"]))
           .groupby(keys, sort=False)["_lev"].max().rename("max_surviving_leverage").reset_index())
    out["max_surviving_leverage"] = out["max_surviving_leverage"].astype("float64")
    out["_o"] = out["scenario"].map({s: i for i, s in enumerate(order)})
    return out.sort_values([*keys[:-1], "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def survival_frame(records: list[dict[str, Any]], scenario_order: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(records)
    for col, value in SURVIVAL_DEFAULTS.items():  # records of an earlier run being resumed may lack it
        frame[col] = frame[col].fillna(value) if col in frame else value
    frame["liquidated_at"] = pd.to_datetime(frame["liquidated_at"], utc=True)
    frame["survived"] = frame["survived"].astype(bool)
    frame["refused"] = frame["refused"].astype(bool)
    frame["fills"] = frame["fills"].astype("int64")
    frame["warning"] = frame["warning"].fillna("").astype(str)
    for col in ("liquidation_price", "equity_left", "max_drawdown", "min_distance_to_liquidation", "funding_paid",
                "fees", "insurance_cover", "leverage"):
        frame[col] = frame[col].astype("float64")
    frame["_o"] = frame["scenario"].map({s: i for i, s in enumerate(scenario_order)})
    frame = frame.sort_values(["strategy", "_o", "leverage"], kind="stable").reset_index(drop=True)
    return frame[list(SURVIVAL_COLUMNS)]


@dataclass
class StressResult:
    path: Path
    survival: pd.DataFrame
    frontier: pd.DataFrame
    config: dict[str, Any]
    records: list[dict[str, Any]]
    resumed: int = 0  # cells taken from an earlier run (resume)


RUN_MODES = ("new", "resume", "overwrite")


def bars_digest(frame: pd.DataFrame) -> str:
    """A short content hash of a scenario's bars (index and every column), to tell on a resume
    whether the cells already written ran on the same data."""
    import hashlib

    h = hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    h.update(",".join(map(str, frame.columns)).encode())
    return h.hexdigest()[:16]


def run_options(spec: StressSpec, strategies: list[str] | None, notes: dict[str, Any]) -> dict[str, Any]:
    """Everything that decides a cell's result; a resume must match it exactly."""
    return {
        "strategies": list(strategies or [spec.strategy]), "strategy": spec.strategy, "params": dict(spec.params),
        "scenarios": list(notes), "leverages": [float(v) for v in spec.leverages], "margin": spec.margin_mode,
        "venue": spec.venue, "data": spec.data_kind, "data_path": spec.data_path, "cash": spec.cash,
        "funding_rate": spec.funding_rate, "engine": spec.engine, "wipeout": float(spec.wipeout),
        **({"partial_liquidation": True} if spec.partial_liquidation else {}),
        "bars": {name: note["digest"] for name, note in notes.items()},
    }


OPTION_NAMES = {"strategies": "strategies", "strategy": "strategy", "params": "--param", "scenarios": "--scenarios",
                "leverages": "--leverage", "margin": "--margin", "venue": "--venue", "data": "--data",
                "data_path": "--data-path", "cash": "--cash", "funding_rate": "--funding-rate", "engine": "--engine",
                "wipeout": "--wipeout", "partial_liquidation": "--partial-liquidation"}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            name = OPTION_NAMES.get(key, key)
            if key == "bars":
                changed = [k for k in sorted(set(a or {}) | set(b or {})) if (a or {}).get(k) != (b or {}).get(k)]
                out.append(f"input bars of {', '.join(changed)} differ")
            else:
                out.append(f"{name}: {json.dumps(a, default=str)} there, {json.dumps(b, default=str)} now")
    return out


def _is_stress_dir(path: Path) -> bool:
    return any((path / name).exists() for name in ("stress.json", "cells.jsonl", "survival.parquet"))


def read_stress_json(path: Path) -> dict[str, Any]:
    """The ``stress.json`` of a run being resumed (one clear error when it is not valid JSON)."""
    try:
        return json.loads((path / "stress.json").read_text())
    except json.JSONDecodeError as exc:
        raise DeleverageError(f"--resume: {path / 'stress.json'} is not valid JSON ({exc}); use --overwrite") from None


def _prepare_dir(path: Path, mode: str) -> None:
    """Refuse to mix a new run with an old one: see the module docstring."""
    import shutil

    if mode not in RUN_MODES:
        raise DeleverageError(f"mode must be one of {', '.join(RUN_MODES)}, got {mode!r}")
    if path.exists() and not path.is_dir():
        raise DeleverageError(f"--out {path}: is a file (it already exists); expected a directory (new, or an earlier stress run)")
    if not path.exists() or not any(path.iterdir()):
        if mode == "resume":
            raise DeleverageError(f"--resume: {path} holds no stress run to resume (no stress.json)")
        return
    if not _is_stress_dir(path):
        raise DeleverageError(f"--out {path}: the directory is not empty and is not a stress run (no stress.json); "
                              "choose another --out (it is never deleted)")
    if mode == "new":
        raise DeleverageError(f"--out {path} already holds a stress run: pass --resume to finish its missing cells "
                              "or --overwrite to replace it")
    if mode == "overwrite":
        shutil.rmtree(path)
    elif not (path / "stress.json").exists():
        raise DeleverageError(f"--resume: {path / 'stress.json'} is missing, so the options of that run are unknown; "
                              "use --overwrite")


def run_cells(path: Path, config: dict[str, Any], old_config: dict[str, Any] | None, tasks: list[dict[str, Any]],
              worker: Any, *, workers: int | None, desc: str, progress: bool | None) -> tuple[list[dict[str, Any]], int]:
    """Run a grid's cells into ``path``: write ``stress.json``, take the finished cells from
    ``cells.jsonl`` when resuming (``old_config`` given), run the rest on the pool and append each
    record to ``cells.jsonl`` as it finishes (fsynced: a kill can only tear the last line).
    Returns the records in task order and how many came from the earlier run."""
    from engine.parallel import run_parallel

    log = path / "cells.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if old_config is not None:
        config["created"] = old_config.get("created", config["created"])
        config["resumed"] = [*old_config.get("resumed", []), datetime.now(timezone.utc).isoformat(timespec="seconds")]
        done = _finished_cells(path, tasks)
    else:
        log.write_text("")
    _atomic_write_text(path / "stress.json", json.dumps(config, indent=2, default=str) + "\n")

    def write_cell(task: dict[str, Any], record: dict[str, Any]) -> None:
        with log.open("a") as fh:  # one write per line: a kill can only tear the last line
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    todo = [t for t in tasks if t["run_dir"] not in done]
    fresh = {task["run_dir"]: rec for task, rec in run_parallel(worker, todo, workers=workers, desc=desc,
                                                                 progress=progress, on_result=write_cell)}
    by_dir = {**done, **fresh}
    return [by_dir[t["run_dir"]] for t in tasks], len(done)


def _finished_cells(path: Path, tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Records of the cells already written whole (a line in cells.jsonl and a renamed run
    directory with its cell.json), keyed by run_dir; drops temporary cell folders and a torn
    last line, and rewrites cells.jsonl with only the records kept."""
    import shutil

    for tmp in path.glob(f"runs/**/{TMP_PREFIX}*"):
        if tmp.is_dir():
            shutil.rmtree(tmp)
    wanted = {t["run_dir"] for t in tasks}
    done: dict[str, dict[str, Any]] = {}
    log = path / "cells.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill: that cell runs again
        run_dir = rec.get("run_dir") if isinstance(rec, dict) else None
        if run_dir in wanted and (path / run_dir / "cell.json").exists():
            done[run_dir] = rec
    _atomic_write_text(log, "".join(json.dumps(r, default=str) + "\n" for r in done.values()))
    return done


def _atomic_write_text(target: Path, text: str) -> None:
    tmp = target.with_name(f"{TMP_PREFIX}{target.name}")
    tmp.write_text(text)
    os.replace(tmp, target)


def _atomic_parquet(frame: pd.DataFrame, target: Path) -> None:
    tmp = target.with_name(f"{TMP_PREFIX}{target.name}")
    frame.to_parquet(tmp)
    os.replace(tmp, target)


def run_stress(spec: StressSpec, stress_dir: str | Path, inputs: list[ScenarioInput] | None = None,
               progress: bool | None = None, strategies: list[str] | None = None, mode: str = "new",
               announce: Any = None) -> StressResult:
    """Run the grid and write the stress directory. ``inputs`` (hand-made bars) replaces the
    built-in scenarios named in ``spec.scenarios``; ``strategies`` runs several strategies
    (each with its defaults; ``spec.params`` applies to ``spec.strategy``) in one directory.
    ``mode``: ``new`` (refused when ``stress_dir`` holds a stress run), ``resume`` (finish its
    missing cells; the options must be the same) or ``overwrite``. ``announce`` is called once
    every input is checked, before the first cell runs (the commands print their plan line there,
    so bad input is one line with nothing before it)."""

    spec.validate()
    from engine.strategy_ref import load_strategy

    if strategies is not None and len(set(strategies)) != len(strategies):
        twice = sorted({s for s in strategies if strategies.count(s) > 1})
        raise DeleverageError(f"strategies {', '.join(twice)} given twice; expected each strategy once")
    for name in strategies or []:
        load_strategy(name)
    path = Path(stress_dir)
    _prepare_dir(path, mode)
    if inputs is None:
        inputs = [load_scenario(name, spec.data_kind, spec.data_path, spec.venue) for name in spec.scenarios]
    resuming = mode == "resume" and (path / "stress.json").exists()
    old_config: dict[str, Any] = read_stress_json(path) if resuming else {}
    path.mkdir(parents=True, exist_ok=True)
    tasks, notes = plan_tasks(spec, inputs, path, strategies, write_inputs=not resuming)
    options = run_options(spec, strategies, notes)
    if resuming:
        diff = _differences(old_config.get("options", {}), options)
        if diff:
            raise DeleverageError(f"--resume: {path} was run with other options ({'; '.join(diff)}); "
                                  "run again with the same options, or pass --overwrite to replace it")
    config = {
        "strategy": spec.strategy if not strategies else ",".join(strategies),
        "strategies": strategies or [spec.strategy], "params": spec.params,
        "scenarios": [i.name for i in inputs], "leverages": [float(v) for v in spec.leverages],
        "margin_mode": spec.margin_mode, "venue": spec.venue or "scenario default",
        "data": spec.data_kind, "data_kinds": sorted({i.kind for i in inputs}),
        "wipeout": float(spec.wipeout),
        "funding": {k: v["funding"] for k, v in notes.items()}, "scenario_notes": notes,
        "units": "equity_left, max_drawdown, funding_paid (negative = paid), fees, insurance_cover (the insurance "
                 "fund's cover of an insolvent liquidation, credited): fractions of the initial equity in the settle "
                 "currency; min_distance_to_liquidation: fraction of the mark price",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cells": len(tasks), "options": options,
    }
    recon = [i.name for i in inputs if i.kind != "real"]
    if recon:
        real = [i.name for i in inputs if i.kind == "real"]
        which = (f"RECONSTRUCTED data for {', '.join(recon)} (real exchange bars for {', '.join(real)})" if real
                 else "RECONSTRUCTED data")
        config["data_note"] = (f"{which}: seeded price paths pinned to the published waypoints of each "
                               "event; only the waypoints, totals and funding prints are facts")
    if announce is not None:
        announce()
    records, resumed = run_cells(path, config, old_config if resuming else None, tasks, run_cell,
                                 workers=spec.workers, desc="stress", progress=progress)
    survival = survival_frame(records, [i.name for i in inputs])
    frontier = frontier_table(survival)
    _atomic_parquet(survival, path / "survival.parquet")
    _atomic_parquet(frontier, path / "frontier.parquet")
    order = {(r["strategy"], r["scenario"], r["leverage"]): r for r in records}
    records = [order[(r.strategy, r.scenario, r.leverage)] for r in survival.itertuples()]
    return StressResult(path=path, survival=survival, frontier=frontier, config=config, records=records,
                        resumed=resumed)


# --- text output -----------------------------------------------------------------------------


def _pct(v: Any, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v * 100:.{digits}f}%"


def verdict_label(verdict: str) -> str:
    """How the printed table writes a verdict: failures in capitals."""
    return verdict if verdict == SURVIVED else verdict.upper()


COVER_MEANING = ("the insurance fund's cover of an insolvent liquidation (the loss beyond the margin, paid back "
                 "to zero), credited to the account, not a fee, as a fraction of the initial equity; equity includes "
                 "it (without the fund: equity - fund cover)")


def _cover_words(rec: dict[str, Any], cfg: dict[str, Any]) -> str:
    """``fund covered 14,705.4 USDT (147.05 % of the initial equity); equity without the fund -147.05 %``."""
    from reports.format import fmt_amount, fmt_pct

    cover = insurance_cover(rec)
    note = (cfg.get("scenario_notes") or {}).get(str(rec["scenario"]), {})
    cash = note.get("initial_cash")
    amount = (f"{fmt_amount(cover * float(cash), str(note.get('settle_currency', '')))} ({fmt_pct(cover, 2)} of the "
              "initial equity)" if isinstance(cash, (int, float)) else f"{fmt_pct(cover, 2)} of the initial equity")
    return (f"fund covered {amount}; equity without the fund "
            f"{fmt_pct(float(rec['equity_left']) - cover, 2)}")


def format_table(result: StressResult) -> str:
    """The survival table and frontier as plain text (what ``deleverage stress`` prints)."""
    from reports.verdicts import ADL, LIQUIDATED, NO_TRADE, REFUSED, VERDICT_MEANING, WIPED_OUT
    from engine.strategy_ref import strategy_label

    lines: list[str] = []
    cfg = result.config
    kinds = ", ".join(cfg["data_kinds"])
    floor = float(cfg.get("wipeout", DEFAULT_WIPEOUT))
    lines.append(f"stress: {cfg['strategy']} | margin {cfg['margin_mode']} | data: {kinds} | "
                 f"survived = traded, not liquidated, equity left >= {floor * 100:g} %")
    engines = pd.Series([rec.get("engine", "backtrader") for rec in result.records]).value_counts()
    lines.append("  engine: " + ", ".join(f"{name} ({count} cells)" for name, count in engines.items())
                 + ("; fast = the compiled pass of the same risk model, parity-tested with backtrader"
                    if "fast" in engines else ""))
    if result.resumed:
        lines.append(f"  resumed: {result.resumed} of {len(result.records)} cells were already written and kept")
    if "data_note" in cfg:
        lines.append(f"  note: {cfg['data_note']}")
    for name, note in cfg["scenario_notes"].items():
        origin = f", {note['origin']}" if note.get("origin") and note["data_kind"] == "real" else ""
        lines.append(f"  {name}: {note['venue']} {note['symbol']} [{note['data_kind']}{origin}], {note['bars']} bars "
                     f"{note['start']} .. {note['end']}, cash {note['initial_cash']:g} {note['settle_currency']}, "
                     f"funding {note['funding']}")
        if note.get("adl_flow"):
            lines.append(f"  {name}: ADL flow in the bars: {note['adl_flow']}; a profitable position is assumed at "
                         "the front of its side's ADL queue (the worst case)")
    # the insurance fund's cover: a column (and a list under the table) only when a cell had one, so a
    # grid without an insolvent liquidation prints as before
    covered = any(insolvent(rec) for rec in result.records)
    header = (f"{'strategy':<14} {'scenario':<11} {'data':<6} {'lev':>6}  {'result':<11} {'when (UTC)':<17} "
              f"{'liq price':>10} {'equity':>8} {'max DD':>7} {'min dist':>8} {'funding':>8} {'fees':>8}"
              + (f" {'fund cover':>10}" if covered else ""))
    lines += ["", header, "-" * len(header)]
    refused: list[str] = []
    warnings: list[str] = []
    bailed: list[str] = []
    for rec in result.records:
        at = rec["liquidated_at"] or rec.get("adl_at")
        when = pd.Timestamp(at).strftime("%Y-%m-%d %H:%M") if at else ""
        verdict = rec["verdict"]
        if verdict == REFUSED and rec.get("refusals"):
            refused.append(f"  {rec['strategy']} {rec['scenario']} {rec['leverage']:g}x refused: {rec['refusals'][0]}")
        mark = ""
        if rec.get("warning"):
            warnings.append(f"  [{len(warnings) + 1}] {rec['strategy']} {rec['scenario']} {rec['leverage']:g}x: "
                            f"{rec['warning']}")
            mark = f" !{len(warnings)}"
        price = f"{rec['liquidation_price']:,.1f}" if rec["liquidation_price"] == rec["liquidation_price"] else ""
        kind = {"reconstructed": "recon"}.get(str(rec.get("data_kind", "")), str(rec.get("data_kind", "")))[:6]
        name = strategy_label(rec["strategy"])  # a file or module reference shows its class name
        lines.append(f"{name[:14]:<14} {str(rec['scenario'])[:11]:<11} {kind:<6} {rec['leverage']:>5g}x  "
                     f"{verdict_label(verdict) + mark:<11} {when:<17} {price:>10} {_pct(rec['equity_left']):>8} "
                     f"{_pct(rec['max_drawdown']):>7} {_pct(rec['min_distance_to_liquidation']):>8} "
                     f"{_pct(rec['funding_paid'], 2):>8} {_pct(rec['fees'], 2):>8}"
                     + (f" {_pct(insurance_cover(rec), 2) if insolvent(rec) else '':>10}" if covered else ""))
        if insolvent(rec):
            bailed.append(f"  {name} {rec['scenario']} {rec['leverage']:g}x: {_cover_words(rec, cfg)}")
    lines.append("")
    seen = {rec["verdict"] for rec in result.records}
    for verdict in (LIQUIDATED, ADL, WIPED_OUT, NO_TRADE, REFUSED):
        if verdict in seen:
            extra = f" (< {floor * 100:g} %)" if verdict == WIPED_OUT else ""
            lines.append(f"{verdict_label(verdict)}: {VERDICT_MEANING[verdict]}{extra}")
    if covered:
        lines.append(f"fund cover: {COVER_MEANING}")
    if bailed:
        lines += ["", f"{INSOLVENT.upper()} liquidations (liquidated with a loss beyond the margin; the insurance "
                      "fund bailed the account out):", *bailed]
    if refused:
        lines += ["", "REFUSED cells (the broker's reason):", *refused]
    if warnings:
        lines += ["", "! implausible or impossible results (shown, but do not trust them):", *warnings]
    lines += ["", "survival frontier (highest leverage that survived; liquidated, wiped-out, no-trade and refused "
                  "cells never count):"]
    for row in result.frontier.itertuples():
        v = row.max_surviving_leverage
        who = f"{row.strategy} / " if "strategy" in result.frontier.columns else ""
        lines.append(f"  {who}{row.scenario}: " + ("none survived" if not v == v else f"{v:g}x"))
    return "\n".join(lines)


def to_json(result: StressResult, report: Path | None = None) -> dict[str, Any]:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, (pd.Timestamp, datetime)):
            return pd.Timestamp(v).isoformat() if not pd.isna(v) else None
        if v is pd.NaT:
            return None
        if isinstance(v, np.generic):
            return clean(v.item())
        return v

    cells = [{k: clean(v) for k, v in row.items()} for row in result.survival.to_dict("records")]
    frontier = [{k: clean(v) for k, v in row.items()} for row in result.frontier.to_dict("records")]
    return {"stress_dir": str(result.path), "report": str(report) if report else None, "config": result.config,
            "survival": cells, "frontier": frontier}


def spec_dict(spec: StressSpec) -> dict[str, Any]:
    return asdict(spec)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
