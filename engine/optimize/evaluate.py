"""The worker: run one parameter set on one segment and return a small plain record.

:func:`evaluate` is a top-level function taking a plain dict (picklable for a process pool,
serialisable for Dask). It never receives bars, strategies or engines: it loads the bars
named by ``task["data"]`` itself (cached per process, so a worker reads a year of bars once
for the whole sweep), loads the strategy from its reference (:func:`engine.strategy_ref.load_strategy`:
a reference name, ``file.py:Class`` or ``module:Class``), runs it
with the fast engine when the strategy supports it (backtrader otherwise) and returns::

    {"key", "score", "liquidated", "min_distance", "bars", "engine", "error", "seconds"}

(``min_distance``: the smallest distance to the liquidation price over the run, as a fraction of
the mark; NaN when never exposed.) :func:`evaluate_batch` does the same for many parameter sets
on one segment: their target arrays go to the compiled pass together
(:func:`engine.fast.simulate_batch`), and it returns the list of records, identical to one
:func:`evaluate` each (a test checks).

Data specifications (``task["data"]``):

- a file path: CSV or Parquet bars in the canonical schema (:func:`feeds.generic.load_table`);
- ``synthetic:BARS[:SEED]``: seeded 1-minute bars (:func:`reports.synthetic.synthetic_bars`,
  a random walk with one deep one-bar wick at 70 % of the series);
- ``scenario:NAME[@VENUE]``: the canonical bars of a waterfall of the scenario library
  (:func:`feeds.scenarios.get_scenario`; ``task["scenario_data"]`` picks ``reconstructed``,
  the default, or ``real``).

``task["start"]``/``task["stop"]`` cut a walk-forward chunk out of the loaded bars by position.

``task["run"]["no_funding"]`` (``optimize --no-funding``) settles no funding anywhere: the
``funding_rate`` column of every segment's bars (the data's and each ``--survive`` scenario's)
is left out when they are loaded, as ``backtest --no-funding`` leaves it out of its bars; the
strategy sees the bars without it too.
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
_BARS: "OrderedDict[tuple[str, str | None, bool], pd.DataFrame]" = OrderedDict()


# --- data ------------------------------------------------------------------------------------

def load_bars(spec: str, scenario_data: str | None = None, no_funding: bool = False) -> pd.DataFrame:
    """The bars named by ``spec`` (see the module docstring), cached per process; ``no_funding``:
    without their ``funding_rate`` column (:func:`without_funding`)."""
    cache_key = (spec, scenario_data, bool(no_funding))
    if cache_key in _BARS:
        _BARS.move_to_end(cache_key)
        return _BARS[cache_key]
    bars = _load(spec, scenario_data)
    if not isinstance(bars.index, pd.DatetimeIndex) or len(bars) < 2:
        raise DeleverageError(f"data {spec!r}: expected a bar frame with a DatetimeIndex and at least 2 bars")
    if no_funding:
        bars = without_funding(bars)
    _BARS[cache_key] = bars
    while len(_BARS) > _CACHE_SIZE:
        _BARS.popitem(last=False)
    return bars


def without_funding(bars: pd.DataFrame) -> pd.DataFrame:
    """``bars`` without a ``funding_rate`` column (the same frame when it has none): no funding is
    settled on them, the rule of ``backtest --no-funding``."""
    if "funding_rate" not in bars.columns:
        return bars
    out = bars.drop(columns=["funding_rate"])
    out.attrs = dict(bars.attrs)
    note = "--no-funding: the funding rates in the bars are left out, no funding is settled"
    out.attrs["notes"] = [*(bars.attrs.get("notes") or []), note]
    return out


def settles_no_funding(task: dict[str, Any]) -> bool:
    """Whether the task settles no funding (``optimize --no-funding``: ``run["no_funding"]``)."""
    return bool((task.get("run") or {}).get("no_funding", False))


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
        if not 0 <= seed <= 2**32 - 1:
            raise DeleverageError(f"data {spec!r}: SEED {seed} is out of range; expected synthetic:BARS[:SEED] "
                                  "with SEED a whole number from 0 to 4294967295")
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


_SEGMENTS: "OrderedDict[tuple, pd.DataFrame]" = OrderedDict()


def segment_bars(task: dict[str, Any]) -> pd.DataFrame:
    """The task's bars (a chunk cut by position), the same frame object for every task of a
    segment in this process (so indicators computed on it are cached, see
    :func:`strategies.base.cached_indicator`)."""
    bars = load_bars(task["data"], task.get("scenario_data"), settles_no_funding(task))
    start, stop = task.get("start"), task.get("stop")
    if start is None and stop is None:
        return bars
    key = (task["data"], task.get("scenario_data"), settles_no_funding(task), start, stop)
    part = _SEGMENTS.get(key)
    if part is None or part.attrs.get("_parent") != id(bars):
        part = bars.iloc[start:stop]
        part.attrs = dict(bars.attrs)
        part.attrs["_parent"] = id(bars)
        _SEGMENTS[key] = part
        while len(_SEGMENTS) > 2 * _CACHE_SIZE:
            _SEGMENTS.popitem(last=False)
    return part


# --- scoring ---------------------------------------------------------------------------------

def score_equity(equity: pd.Series, objective: str, periods_per_year: float | None = None) -> float:
    """The objective of an equity curve (its first point is the starting cash), through the
    report metrics (:mod:`reports.metrics`: one formula in one place). Non-finite -> NaN.
    ``periods_per_year`` (default: derived from the curve's index) may be passed when known."""
    from reports import metrics

    if objective == "return":
        value = metrics.total_return(equity)
    else:
        ppy = metrics.periods_per_year(equity.index) if periods_per_year is None else periods_per_year
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


def choose_engine(strategy_cls: type, engine: str, params: dict[str, Any] | None = None,
                  bars: pd.DataFrame | None = None) -> str:
    """``fast`` when asked (auto) and the strategy has a signal form (:func:`engine.fast.select_engine`;
    partial liquidation and ADL flows run on both engines)."""
    from engine.fast import select_engine
    from engine.runner import RunConfig, mechanics_needing_backtrader

    needs = mechanics_needing_backtrader(RunConfig(strategy=strategy_cls.__name__), bars) if bars is not None else []
    return select_engine(strategy_cls, engine, params, needs)


def run_config(strategy_cls: type, params: dict[str, Any], run: dict[str, Any]) -> Any:
    from engine.runner import RunConfig

    return RunConfig(strategy=run.get("strategy", strategy_cls.__name__), params=dict(params),
                     venue=run.get("venue", "binance_usdm"), symbol=run.get("symbol"),
                     leverage=float(run.get("leverage", 1.0)), margin_mode=run.get("margin_mode", "isolated"),
                     cash=float(run.get("cash", 10_000.0)), funding_rate=run.get("funding_rate"),
                     allow_no_funding=bool(run.get("allow_no_funding", False) or run.get("no_funding", False)),
                     analyzers=False,
                     partial_liquidation=bool(run.get("partial_liquidation", False)))


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


_CURVES: "OrderedDict[int, tuple[Any, pd.DatetimeIndex, float]]" = OrderedDict()


def _curve_index(prepared: Any) -> tuple[pd.DatetimeIndex, float]:
    """The equity curve's index of a prepared segment (one bar before the first, as
    :func:`reports.metrics.equity_curve`) and its periods per year, computed once per segment."""
    got = _CURVES.get(id(prepared))
    if got is None or got[0] is not prepared:
        from reports import metrics

        index = prepared.index
        if len(index) >= 2:
            index = index.insert(0, index[0] - (index[1] - index[0]))
        ppy = metrics.periods_per_year(index) if len(index) >= 2 else math.nan
        got = (prepared, index, ppy)
        _CURVES[id(prepared)] = got
        while len(_CURVES) > 2 * _CACHE_SIZE:
            _CURVES.popitem(last=False)
    return got[1], got[2]


def score_fast(prepared: Any, equity: np.ndarray, cash: float, objective: str) -> float:
    """The objective of a fast-engine equity array: the curve of :func:`reports.metrics.equity_curve`
    (the starting cash one bar before the first bar), scored by :func:`score_equity`. The per-set
    and the batched paths both score through here, so their scores are bit-identical."""
    index, ppy = _curve_index(prepared)
    values = np.concatenate(([float(cash)], equity)) if len(index) == len(equity) + 1 else equity
    curve = pd.Series(values, index=index if len(index) == len(values) else prepared.index, dtype="float64")
    return score_equity(curve, objective, ppy if ppy == ppy else None)


def score_moments(prepared: Any, res: dict[str, Any], cash: float, objective: str) -> float:
    """The objective of a fast-engine run from the running accumulators the compiled pass kept
    (``simulate_arrays(..., score=True)``: no equity array), by
    :func:`reports.metrics.score_from_moments`, with the segment's periods per year computed
    once. The per-set and the batched paths both score through here (bit-identical tables);
    equal to :func:`score_fast` on the run's equity curve to 1e-9 relative (a test checks)."""
    from reports.metrics import score_from_moments

    _, ppy = _curve_index(prepared)
    return score_from_moments(objective, res["moments"], res["final_equity"] / float(cash), ppy)


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
        res = fast.simulate_arrays(prepared, exposure, equity=True, exits=fast.exits_of(strategy_cls, bars, params))
        equity = pd.DataFrame({"equity": res["equity"]}, index=prepared.index)
        view = SimpleNamespace(equity=equity, config={"initial_cash": config.cash})
        return equity_curve(view), bool(res["liquidated"])
    else:
        from engine.runner import run_backtest

        result = run_backtest(bars, strategy_cls, config)
    liquidated = bool(len(result.liquidations)) or bool(result.summary.get("liquidated", False))
    return equity_curve(result), liquidated


def _params_for(cls: type, task: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    if task["data"].startswith("scenario:"):  # enter where the stress enters (engine.stress.scenario_params)
        from engine.stress import scenario_params
        from feeds.scenarios import get_scenario

        entry = get_scenario(task["data"][len("scenario:"):].split("@")[0]).entry_time
        params = scenario_params(cls, params, pd.Timestamp(entry).isoformat())
    return params


def _strategy(ref: str) -> type:
    """The worker loads the same file or module by its reference (a name, file.py:Class, module:Class)."""
    from engine.strategy_ref import load_strategy

    return load_strategy(ref)


def evaluate(task: dict[str, Any]) -> dict[str, Any]:
    """Run ``task["params"]`` on the task's segment; return the plain record (module docstring).

    A :class:`DeleverageError` raised by the strategy for this parameter set (an invalid
    combination) is returned as ``error``; any other exception propagates (it is a bug).
    """
    t0 = time.perf_counter()
    cls = _strategy(task["strategy"])
    params = _params_for(cls, task, task["params"])
    bars = segment_bars(task)
    engine = choose_engine(cls, task.get("engine", "auto"), params, bars)
    record: dict[str, Any] = {"key": task["key"], "bars": int(len(bars)), "engine": engine, "error": None}
    run = task.get("run", {})
    try:
        if engine == "fast":
            from engine import fast

            config = run_config(cls, params, run)
            prepared = _prepared(task, bars, config)
            exposure = fast.exposure_of(cls, bars, params)
            res = fast.simulate_arrays(prepared, exposure, score=True, exits=fast.exits_of(cls, bars, params))
            score = score_moments(prepared, res, config.cash, task["objective"])
            liquidated, dist = bool(res["liquidated"]), res["min_distance_to_liquidation"]
        else:
            curve, liquidated, dist = _simulate_backtrader(cls, bars, params, run)
            score = score_equity(curve, task["objective"])
    except DeleverageError as exc:
        record.update(score=math.nan, liquidated=False, min_distance=math.nan, error=f"{exc}")
    else:
        record.update(score=score, liquidated=liquidated, min_distance=_dist(dist))
    record["seconds"] = time.perf_counter() - t0
    return record


def _dist(value: Any) -> float:
    return math.nan if value is None else float(value)


def _simulate_backtrader(cls: type, bars: pd.DataFrame, params: dict[str, Any],
                         run: dict[str, Any]) -> tuple[pd.Series, bool, Any]:
    from engine.runner import run_backtest
    from reports.metrics import equity_curve

    result = run_backtest(bars, cls, run_config(cls, params, run))
    liquidated = bool(len(result.liquidations)) or bool(result.summary.get("liquidated", False))
    return equity_curve(result), liquidated, result.summary.get("min_distance_to_liquidation")


def evaluate_batch(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the parameter sets ``task["points"]`` (keys ``task["keys"]``) on the task's segment;
    the records of :func:`evaluate`, one per set, in order.

    The sets the fast engine runs go to the compiled pass in one call
    (:func:`engine.fast.simulate_batch`), over arrays prepared once, with their indicators
    computed once (:func:`strategies.base.cached_indicator`); the others (backtrader, or a set
    the strategy refuses) are evaluated one by one. ``seconds`` of a batched set is its share of
    the batch's wall time.
    """
    from engine import fast

    t0 = time.perf_counter()
    threads = max(1, int(task.get("threads") or 1))
    cls = _strategy(task["strategy"])
    bars = segment_bars(task)
    run = task.get("run", {})
    records: list[dict[str, Any] | None] = [None] * len(task["points"])
    wanted: list[tuple[int, dict[str, Any]]] = []
    for j, (key, point) in enumerate(zip(task["keys"], task["points"])):
        params = _params_for(cls, task, point)
        engine = choose_engine(cls, task.get("engine", "auto"), params, bars)
        if engine != "fast":
            records[j] = evaluate({**task, "key": key, "params": point})
            continue
        wanted.append((j, params))
    # the targets of the whole batch in one call (compiled for the reference strategies,
    # strategies.signals); a set the strategy refuses sends the batch through the sets one by one
    block = None
    batch_fn = getattr(cls, "target_exposure_batch", None)
    if wanted and batch_fn is not None:
        try:
            block = np.asarray(batch_fn(bars, [p for _, p in wanted]), dtype=np.float64)
        except DeleverageError:
            block = None
        if block is not None and block.shape != (len(wanted), len(bars)):
            raise DeleverageError(f"{cls.__name__}.target_exposure_batch returned shape {block.shape}, "
                                  f"expected ({len(wanted)}, {len(bars)})")
    rows: list[tuple[int, int, dict[str, Any] | None, float]] = []  # (set, row of exps, exits, cash)
    singles: list[np.ndarray] = []
    config = None
    for w, (j, params) in enumerate(wanted):
        try:
            if block is None:
                singles.append(fast.exposure_of(cls, bars, params))
            exits = fast.exits_of(cls, bars, params)
        except DeleverageError as exc:
            records[j] = {"key": task["keys"][j], "bars": int(len(bars)), "engine": "fast", "error": f"{exc}",
                          "score": math.nan, "liquidated": False, "min_distance": math.nan, "seconds": 0.0}
            continue
        if config is None:
            config = run_config(cls, params, run)
        rows.append((j, len(rows) if block is None else w, exits,
                     run_config(cls, params, run).cash))
    if rows:
        prepared = _prepared(task, bars, config)
        if block is None:
            exps = np.stack(singles)
        elif len(rows) == len(wanted):
            exps = block
        else:
            exps = block[[r[1] for r in rows]]
        del block, singles
        exits = [r[2] for r in rows]
        results = fast.simulate_batch(prepared, exps, score=True, exits=exits if any(exits) else None,
                                      threads=threads)
        del exps
        for (j, _, _, cash), res in zip(rows, results):
            records[j] = {"key": task["keys"][j], "bars": int(len(bars)), "engine": "fast", "error": None,
                          "score": score_moments(prepared, res, cash, task["objective"]),
                          "liquidated": bool(res["liquidated"]),
                          "min_distance": _dist(res["min_distance_to_liquidation"])}
        share = (time.perf_counter() - t0) / len(rows)
        for j, *_ in rows:
            records[j]["seconds"] = share  # type: ignore[index]
    return records  # type: ignore[return-value]
