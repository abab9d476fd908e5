"""The worker: run one parameter set on one segment and return a small plain record.

:func:`evaluate` is a top-level function taking a plain dict (picklable for a process pool,
serialisable for Dask). It never receives bars, strategies or engines: it loads the bars
named by ``task["data"]`` itself (cached per process, so a worker reads a year of bars once
for the whole sweep), loads the strategy from its reference (:func:`engine.strategy_ref.load_strategy`:
a reference name, ``file.py:Class`` or ``module:Class``), runs it
with the fast engine when the strategy supports it (backtrader otherwise) and returns::

    {"key", "score", "liquidated", "bars", "engine", "error", "seconds"}

Data specifications (``task["data"]``):

- a file path: CSV or Parquet bars in the canonical schema (:func:`feeds.generic.load_table`);
- ``synthetic:BARS[:SEED]``: seeded 1-minute bars (:func:`reports.synthetic.synthetic_bars`,
  a random walk with one deep one-bar wick at 70 % of the series);
- ``scenario:NAME[@VENUE]``: the canonical bars of a waterfall of the scenario library
  (:func:`feeds.scenarios.get_scenario`; ``task["scenario_data"]`` picks ``reconstructed``,
  the default, or ``real``).

``task["start"]``/``task["stop"]`` cut a walk-forward chunk out of the loaded bars by position.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from risk.errors import DeleverageError

OBJECTIVES = ("sharpe", "sortino", "calmar", "return")
_CACHE_SIZE = 4
_BARS: "OrderedDict[tuple[str, str | None], pd.DataFrame]" = OrderedDict()


# --- data ------------------------------------------------------------------------------------

def load_bars(spec: str, scenario_data: str | None = None) -> pd.DataFrame:
    """The bars named by ``spec`` (see the module docstring), cached per process."""
    cache_key = (spec, scenario_data)
    if cache_key in _BARS:
        _BARS.move_to_end(cache_key)
        return _BARS[cache_key]
    bars = _load(spec, scenario_data)
    if not isinstance(bars.index, pd.DatetimeIndex) or len(bars) < 2:
        raise DeleverageError(f"data {spec!r}: expected a bar frame with a DatetimeIndex and at least 2 bars")
    _BARS[cache_key] = bars
    while len(_BARS) > _CACHE_SIZE:
        _BARS.popitem(last=False)
    return bars


def _load(spec: str, scenario_data: str | None) -> pd.DataFrame:
    if spec.startswith("synthetic:"):
        from reports.synthetic import synthetic_bars

        parts = spec.split(":")[1:]
        try:
            n = int(parts[0])
            seed = int(parts[1]) if len(parts) > 1 and parts[1] else 7
        except (ValueError, IndexError):
            raise DeleverageError(f"data {spec!r}: expected synthetic:BARS[:SEED], e.g. synthetic:525600:7") from None
        if n < 10 or len(parts) > 2:
            raise DeleverageError(f"data {spec!r}: expected synthetic:BARS[:SEED] with BARS >= 10")
        bars = synthetic_bars(n, seed=seed)
        bars.attrs.update(spec=spec, seed=seed)
        return bars
    if spec.startswith("scenario:"):
        name, _, venue = spec.split(":", 1)[1].partition("@")
        try:
            from feeds.scenarios import get_scenario
        except ImportError as exc:  # the scenario library is not installed in this tree
            raise DeleverageError(f"--survive {name}: the scenario library (feeds.scenarios) is not available: {exc}") from exc
        scenario = get_scenario(name)
        kind = scenario_data or "reconstructed"
        return scenario.bars(data=kind, venue=venue or None)
    from pathlib import Path

    path = Path(spec)
    if not path.exists():
        raise DeleverageError(f"data {spec!r}: no such file (or use synthetic:BARS[:SEED])")
    from feeds.generic import load_table

    return load_table(path, kind="bars")


def segment_bars(task: dict[str, Any]) -> pd.DataFrame:
    bars = load_bars(task["data"], task.get("scenario_data"))
    start, stop = task.get("start"), task.get("stop")
    if start is None and stop is None:
        return bars
    part = bars.iloc[start:stop]
    part.attrs = dict(bars.attrs)
    return part


# --- scoring ---------------------------------------------------------------------------------

def score_equity(equity: pd.Series, objective: str) -> float:
    """The objective of an equity curve (its first point is the starting cash), through the
    report metrics (:mod:`reports.metrics`: one formula in one place). Non-finite -> NaN."""
    from reports import metrics

    if objective == "return":
        value = metrics.total_return(equity)
    else:
        ppy = metrics.periods_per_year(equity.index)
        fn = {"sharpe": metrics.sharpe, "sortino": metrics.sortino, "calmar": metrics.calmar}[objective]
        with np.errstate(all="ignore"):
            value = fn(equity, ppy)
    value = float(value)
    return value if math.isfinite(value) else math.nan


# --- engines ---------------------------------------------------------------------------------

def fast_supported(strategy_cls: type, params: dict[str, Any] | None = None) -> bool:
    """True when the fast engine supports ``strategy_cls`` (with ``params``)."""
    from engine.fast import supports

    return supports(strategy_cls, params)


def choose_engine(strategy_cls: type, engine: str, params: dict[str, Any] | None = None) -> str:
    """``fast`` when asked (auto) and the strategy has a signal form (:func:`engine.fast.select_engine`)."""
    from engine.fast import select_engine

    return select_engine(strategy_cls, engine, params)


def run_config(strategy_cls: type, params: dict[str, Any], run: dict[str, Any]) -> Any:
    from engine.runner import RunConfig

    return RunConfig(strategy=run.get("strategy", strategy_cls.__name__), params=dict(params),
                     venue=run.get("venue", "binance_usdm"), symbol=run.get("symbol"),
                     leverage=float(run.get("leverage", 1.0)), margin_mode=run.get("margin_mode", "isolated"),
                     cash=float(run.get("cash", 10_000.0)), funding_rate=run.get("funding_rate"),
                     allow_no_funding=bool(run.get("allow_no_funding", False)), analyzers=False)


_PREPARED: "OrderedDict[tuple, Any]" = OrderedDict()


def _prepared(task: dict[str, Any], bars: pd.DataFrame, config: Any) -> Any:
    """The fast engine's arrays of this segment and run settings, built once per process."""
    from engine import fast

    key = (task["data"], task.get("scenario_data"), task.get("start"), task.get("stop"),
           json.dumps(task.get("run", {}), sort_keys=True, default=str))
    if key not in _PREPARED:
        _PREPARED[key] = fast.prepare(bars, config)
        while len(_PREPARED) > 2 * _CACHE_SIZE:
            _PREPARED.popitem(last=False)
    return _PREPARED[key]


def simulate(strategy_cls: type, bars: pd.DataFrame, params: dict[str, Any], run: dict[str, Any],
             engine: str, task: dict[str, Any] | None = None) -> tuple[pd.Series, bool]:
    """Run once; return (equity curve starting with the initial cash, liquidated).

    The fast engine runs :func:`engine.fast.simulate_arrays` with ``equity=True`` (the per-bar
    equity only: no fill, trade or funding tables, which the optimizer does not need) on arrays
    prepared once per segment; the curve and the liquidation flag are those of
    :func:`engine.fast.run_fast` (a test checks).
    backtrader runs :func:`engine.runner.run_backtest` without analyzers.
    """
    from reports.metrics import equity_curve

    config = run_config(strategy_cls, params, run)
    if engine == "fast":
        from engine import fast

        prepared = _prepared(task or {"data": id(bars)}, bars, config)
        exposure = fast.exposure_of(strategy_cls, bars, params)
        res = fast.simulate_arrays(prepared, exposure, equity=True)
        equity = pd.DataFrame({"equity": res["equity"]}, index=prepared.index)
        view = SimpleNamespace(equity=equity, config={"initial_cash": config.cash})
        return equity_curve(view), bool(res["liquidated"])
    else:
        from engine.runner import run_backtest

        result = run_backtest(bars, strategy_cls, config)
    liquidated = bool(len(result.liquidations)) or bool(result.summary.get("liquidated", False))
    return equity_curve(result), liquidated


def evaluate(task: dict[str, Any]) -> dict[str, Any]:
    """Run ``task["params"]`` on the task's segment; return the plain record (module docstring).

    A :class:`DeleverageError` raised by the strategy for this parameter set (an invalid
    combination) is returned as ``error``; any other exception propagates (it is a bug).
    """
    from engine.strategy_ref import load_strategy

    t0 = time.perf_counter()
    cls = load_strategy(task["strategy"])  # the worker loads the same file or module by its reference
    params = task["params"]
    if task["data"].startswith("scenario:"):  # enter where the stress enters (engine.stress.scenario_params)
        from engine.stress import scenario_params
        from feeds.scenarios import get_scenario

        entry = get_scenario(task["data"][len("scenario:"):].split("@")[0]).entry_time
        params = scenario_params(cls, params, pd.Timestamp(entry).isoformat())
    engine = choose_engine(cls, task.get("engine", "auto"), params)
    bars = segment_bars(task)
    record: dict[str, Any] = {"key": task["key"], "bars": int(len(bars)), "engine": engine, "error": None}
    try:
        curve, liquidated = simulate(cls, bars, params, task.get("run", {}), engine, task)
    except DeleverageError as exc:
        record.update(score=math.nan, liquidated=False, error=f"{exc}")
    else:
        record.update(score=score_equity(curve, task["objective"]), liquidated=bool(liquidated))
    record["seconds"] = time.perf_counter() - t0
    return record
