"""Orchestration: folds, the search, the live store, the final table and the output directory.

Units of work
-------------
A *unit* is one parameter set run on one *segment*: a walk-forward chunk of ``--data``
(``chunk:K``) or a stress scenario (``scenario:NAME``). Each unit is evaluated once, keyed
by a hash of (parameter set, segment), and committed to ``trials.sqlite`` as soon as it
finishes; everything else (the search, the folds, the table) is derived from those units, so
a resumed run answers finished units from the store and computes only the rest.

Walk-forward (rolling)
----------------------
``--walk-forward K`` (K >= 1) cuts the data into K+1 contiguous chunks of equal length. Fold
``k`` optimizes on chunk ``k`` (in sample) and scores the same parameter sets on chunk
``k+1`` (out of sample): a rolling, not anchored, window, so every fold's in-sample period has
the same length and each chunk is simulated once per parameter set (it serves as one fold's
out-of-sample and the next fold's in-sample). Each chunk is simulated from a flat account, so
indicators warm up inside it. ``K = 0`` optimizes on all the data and has no out-of-sample
score.

Robustness
----------
A parameter set is *feasible* in a fold when it was liquidated neither in any ``--survive``
scenario nor in the fold's in-sample chunk (what the optimizer may know). Out-of-sample
liquidation does not change feasibility (that would be look-ahead) but is reported in
``liquidated_in`` as ``out_of_sample``. The *chosen* set of a fold is the feasible one with
the best in-sample score (ties: the lowest trial_id).

Determinism
-----------
Grid and random points are fixed by the ranges and the seed; differential evolution is
seeded and its population is evaluated as one batch per generation (``updating="deferred"``),
so its path depends only on the scores, which are the same wherever a unit ran. Optuna's TPE
and NSGA-II (``--method tpe``/``nsga2``) are seeded and asked in batches of ``--popsize``;
a resumed run replays each fold's study (``DIR/optuna.sqlite``) from the unit store, so it
asks the same points as an uninterrupted one. The final
table is sorted by (trial_id, fold), trial_id numbering the distinct parameter sets in
ascending order of their values.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.strategy_ref import portable_ref
from risk.errors import DeleverageError

from .evaluate import OBJECTIVES, choose_engine, evaluate, evaluate_batch, load_bars
from .space import ParamRange, point_key, unit_key
from .store import TrialStore

METHODS = ("grid", "random", "de", "tpe", "nsga2")
BATCH_BYTES = 48 * 2**20   # a batch's target arrays (8 bytes a bar per set; scores are accumulated, no equity kept) stay under this
MAX_BATCH = 64
PENALTY = 1.0e6  # what differential evolution minimises for an infeasible or undefined set
MIN_CHUNK_BARS = 10
MAX_SEED = 2**32 - 1  # numpy's and scipy's seed range


@dataclass(frozen=True)
class OptimizeConfig:
    """Everything that decides the result of an optimization (checked again on ``--resume``)."""

    strategy: str
    ranges: tuple[ParamRange, ...]
    data: str
    method: str = "grid"
    objective: str = "sharpe"
    survive: tuple[str, ...] = ()
    walk_forward: int = 1
    fixed: dict[str, Any] = field(default_factory=dict)
    trials: int = 100          # random, tpe, nsga2: number of points drawn (per fold for tpe/nsga2)
    seed: int = 0              # random and differential evolution
    popsize: int = 15          # differential evolution; tpe/nsga2: trials asked per batch (NSGA-II's population)
    maxiter: int = 10          # differential evolution
    tol: float = 0.01          # differential evolution
    grid_points: int = 10      # grid: values per continuous range
    engine: str = "auto"
    run: dict[str, Any] = field(default_factory=dict)  # RunConfig fields: venue, cash, leverage, funding_rate...
    scenario_data: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DeleverageError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.objective not in OBJECTIVES:
            raise DeleverageError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.walk_forward < 0:
            raise DeleverageError(f"--walk-forward must be 0 or more, got {self.walk_forward}")
        if self.trials < 1:
            raise DeleverageError(f"--trials must be at least 1, got {self.trials}")
        if self.popsize < 1 or self.maxiter < 0:
            raise DeleverageError(f"--popsize must be >= 1 and --maxiter >= 0, got {self.popsize} and {self.maxiter}")
        if self.grid_points < 1:
            raise DeleverageError(f"--grid-points must be at least 1, got {self.grid_points}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise DeleverageError(f"--seed {self.seed}: expected a whole number from 0 to {MAX_SEED} (2**32 - 1)")
        if not self.ranges:
            raise DeleverageError("nothing to optimize: no parameter ranges")
        clash = sorted(set(self.fixed) & {r.name for r in self.ranges})
        if clash:
            raise DeleverageError(f"parameter(s) {', '.join(clash)} both searched (--param) and fixed (--set)")

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ranges"] = {r.name: r.as_json() for r in self.ranges}
        d["survive"] = list(self.survive)
        return d


@dataclass(frozen=True)
class Segment:
    label: str            # 'chunk:0', 'scenario:312'
    data: str             # data spec handed to the worker
    start: int | None = None
    stop: int | None = None
    name: str = ""        # how liquidated_in names it (scenario name)
    venue: str | None = None  # run this segment on this venue (a scenario's) instead of --venue


@dataclass
class OptimizeResult:
    directory: Path
    trials: pd.DataFrame
    summary: dict[str, Any]


# --- segments --------------------------------------------------------------------------------

def scenario_spec(name: str) -> str:
    """``312`` -> ``scenario:312``; a path or a ``synthetic:``/``scenario:`` spec is kept."""
    if ":" in name or "/" in name or name.endswith((".parquet", ".csv", ".zip", ".json")):
        return name
    return f"scenario:{name}"


def chunk_edges(n_bars: int, walk_forward: int) -> list[int]:
    """Positions cutting ``n_bars`` into ``walk_forward + 1`` contiguous chunks (one when 0)."""
    parts = walk_forward + 1 if walk_forward else 1
    edges = [int(round(n_bars * i / parts)) for i in range(parts + 1)]
    shortest = min(b - a for a, b in zip(edges, edges[1:]))
    if shortest < MIN_CHUNK_BARS:
        raise DeleverageError(f"--walk-forward {walk_forward} cuts {n_bars} bars into chunks of {shortest} bars; "
                              f"need at least {MIN_CHUNK_BARS} per chunk: use fewer folds or more data")
    return edges


def build_segments(config: OptimizeConfig, n_bars: int) -> tuple[list[Segment], list[Segment]]:
    edges = chunk_edges(n_bars, config.walk_forward)
    chunks = [Segment(f"chunk:{i}", config.data, a, b, name=f"chunk {i}") for i, (a, b) in enumerate(zip(edges, edges[1:]))]
    scenarios = []
    for name in config.survive:
        spec = scenario_spec(name)
        venue = None
        if spec.startswith("scenario:"):
            spec, venue = _scenario_venue(name, config.run.get("venue") or "binance_usdm")
        scenarios.append(Segment(f"scenario:{name}", spec, name=name, venue=venue))
    return chunks, scenarios


def _scenario_venue(name: str, venue: str) -> tuple[str, str]:
    """A scenario is replayed on the optimization's venue when the library has it there, else
    on the scenario's default venue (e.g. 312 on BitMEX when asked for a venue it lacks)."""
    try:
        from feeds.scenarios import get_scenario
    except ImportError as exc:
        raise DeleverageError(f"--survive {name}: the scenario library (feeds.scenarios) is not available: {exc}") from exc
    scenario = get_scenario(name)
    use = venue if venue in scenario.venues else scenario.default_venue
    return f"scenario:{scenario.name}@{use}", use


# --- the evaluation service ------------------------------------------------------------------

class Unit:
    """One finished unit as the parent keeps it in memory: the few fields the search and the
    table read (a 100,000-set search holds 400,000 of these; a dict each cost ~10x the memory).
    Read like the record it came from (``u["score"]``, ``u.get("error")``)."""

    __slots__ = ("score", "liquidated", "min_distance", "engine", "error", "segment")
    _ENGINES: dict[str, str] = {}

    def __init__(self, record: dict[str, Any], segment: str | None = None) -> None:
        score = record.get("score")
        dist = record.get("min_distance")
        self.score = math.nan if score is None else float(score)
        self.liquidated = bool(record.get("liquidated"))
        self.min_distance = math.nan if dist is None else float(dist)
        engine = record.get("engine")
        self.engine = None if engine is None else Unit._ENGINES.setdefault(engine, engine)
        self.error = record.get("error") or None
        seg = segment if segment is not None else record.get("segment")
        self.segment = None if seg is None else sys.intern(seg)

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)


class Evaluator:
    """Answers (parameter set, fold) questions from the store, computing missing units in batches."""

    def __init__(self, config: OptimizeConfig, store: TrialStore, executor: Any, chunks: list[Segment],
                 scenarios: list[Segment], progress: Any = None, batch: int | None = None) -> None:
        self.config = config
        self.batch = batch  # sets per task: 1 = one task per unit (the per-set path); None = automatic
        self.store = store
        self.executor = executor
        self.chunks = chunks
        self.scenarios = scenarios
        self.progress = progress
        self.cache: dict[str, Unit] = {}
        self.computed = 0
        self.reused = 0
        self.requested: dict[int, list[dict[str, Any]]] = {}  # fold -> points asked for, in order

    @property
    def folds(self) -> int:
        return max(1, len(self.chunks) - 1) if self.config.walk_forward else 1

    def fold_segments(self, fold: int) -> tuple[Segment, Segment | None]:
        if self.config.walk_forward:
            return self.chunks[fold], self.chunks[fold + 1]
        return self.chunks[0], None

    def units(self, point: dict[str, Any], fold: int) -> list[Segment]:
        ins, oos = self.fold_segments(fold)
        return [ins] + ([oos] if oos is not None else []) + list(self.scenarios)

    def params(self, point: dict[str, Any]) -> dict[str, Any]:
        return {**self.config.fixed, **point}

    def key(self, point: dict[str, Any], seg: Segment) -> str:
        return unit_key(self.params(point), seg.label)

    def task(self, point: dict[str, Any], seg: Segment) -> dict[str, Any]:
        cfg = self.config
        run = {"strategy": cfg.strategy, **cfg.run}
        if seg.venue is not None and seg.venue != run.get("venue"):
            run.update(venue=seg.venue, symbol=None)
        return {"key": self.key(point, seg), "strategy": portable_ref(cfg.strategy), "params": self.params(point),
                "data": seg.data, "start": seg.start, "stop": seg.stop, "objective": cfg.objective,
                "run": run, "engine": cfg.engine,
                "scenario_data": cfg.scenario_data, "segment": seg.label}

    def ensure(self, pairs: list[tuple[dict[str, Any], int]]) -> None:
        """Make sure every unit of every (point, fold) is known: from memory, the store, or by
        running it (all missing units in one parallel batch, each written on arrival)."""
        wanted: dict[str, tuple[dict[str, Any], Segment]] = {}
        for point, fold in pairs:
            for seg in self.units(point, fold):
                k = self.key(point, seg)
                if k not in self.cache and k not in wanted:
                    wanted[k] = (point, seg)
        if not wanted:
            return
        stored = self.store.get_many(list(wanted), params=False)
        self.cache.update((k, Unit(r)) for k, r in stored.items())
        self.reused += len(stored)
        if self.progress is not None and stored:
            self.progress.update(len(stored))
        missing = [(p, s) for k, (p, s) in wanted.items() if k not in stored]
        if self.batch == 1:
            for task, record in self.executor.map([self.task(p, s) for p, s in missing]):
                self._arrived([(task["params"], task["segment"], record)])
            return
        for task, records in self.executor.map(self.batch_tasks(missing), evaluate_batch):
            self._arrived([(pt, task["segment"], r) for pt, r in zip(task["points"], records)])

    def _arrived(self, results: list[tuple[dict[str, Any], str, dict[str, Any]]]) -> None:
        """Commit finished units to the store (one transaction) and keep them in memory."""
        self.store.put_many([(record, point_key(params), segment) for params, segment, record in results])
        for _, segment, record in results:
            self.cache[record["key"]] = Unit(record, segment)
        self.computed += len(results)
        if self.progress is not None:
            self.progress.update(len(results))

    def batch_size(self, seg: Segment, n_sets: int) -> int:
        """Sets per task on ``seg``: as many as fit :data:`BATCH_BYTES` (at most :data:`MAX_BATCH`),
        but no fewer tasks than twice the workers when there are enough sets."""
        if self.batch is not None:
            return max(1, int(self.batch))
        if seg.start is not None and seg.stop is not None:
            bars = seg.stop - seg.start
        else:
            bars = len(load_bars(seg.data, self.config.scenario_data, bool(self.config.run.get("no_funding"))))
        fit = max(1, BATCH_BYTES // (8 * max(bars, 1)))
        workers = getattr(self.executor, "pool_size", lambda: 1)()
        spread = max(1, math.ceil(n_sets / (2 * workers)))
        return int(max(1, min(fit, MAX_BATCH, spread)))

    def batch_tasks(self, missing: list[tuple[dict[str, Any], Segment]]) -> list[dict[str, Any]]:
        """The missing units grouped by segment into batch tasks (:func:`evaluate_batch`)."""
        by_seg: dict[str, list[tuple[dict[str, Any], Segment]]] = {}
        for p, seg in missing:
            by_seg.setdefault(seg.label, []).append((p, seg))
        for items in by_seg.values():  # neighbours share indicator windows (the results do not depend on it)
            items.sort(key=lambda ps: tuple(_sort_value(v) for v in ps[0].values()))
        # numba threads inside a task only when the batch runs in this process (a forked pool
        # worker cannot use a threading layer its parent started)
        workers = getattr(self.executor, "pool_size", lambda: 1)()
        in_process = getattr(self.executor, "name", "") == "local" and workers == 1
        threads = (os.cpu_count() or 1) if in_process else 1
        tasks = []
        for items in by_seg.values():
            seg = items[0][1]
            size = self.batch_size(seg, len(items))
            for i in range(0, len(items), size):
                part = items[i:i + size]
                task = self.task(part[0][0], seg)
                del task["key"], task["params"]
                task["keys"] = [self.key(p, seg) for p, _ in part]
                task["points"] = [self.params(p) for p, _ in part]
                task["threads"] = threads
                tasks.append(task)
        return tasks

    def outcome(self, point: dict[str, Any], fold: int) -> dict[str, Any]:
        """Scores, feasibility and liquidations of ``point`` in ``fold`` (units must be known)."""
        ins, oos = self.fold_segments(fold)
        r_in = self.cache[self.key(point, ins)]
        r_out = self.cache[self.key(point, oos)] if oos is not None else None
        liq: list[str] = []
        errors: list[str] = []
        for seg in self.scenarios:
            r = self.cache[self.key(point, seg)]
            if r["liquidated"]:
                liq.append(seg.name)
            if r.get("error"):
                errors.append(f"{seg.name}: {r['error']}")
        infeasible_scenarios = bool(liq)
        if r_in["liquidated"]:
            liq.append("in_sample")
        if r_out is not None and r_out["liquidated"]:
            liq.append("out_of_sample")
        for label, r in (("in_sample", r_in), ("out_of_sample", r_out)):
            if r is not None and r.get("error"):
                errors.append(f"{label}: {r['error']}")
        score_in = r_in["score"]
        feasible = not infeasible_scenarios and not r_in["liquidated"] and not errors
        return {"score_in_sample": score_in, "score_out_of_sample": r_out["score"] if r_out is not None else math.nan,
                "feasible": feasible, "liquidated_in": ",".join(liq), "error": "; ".join(errors),
                "engine": r_in.get("engine")}

    def worst_distance(self, point: dict[str, Any], fold: int) -> float:
        """The smallest distance to liquidation (fraction of the mark) across the required
        scenarios (the in-sample chunk when there are none); 0 for a liquidated run, 1 (far)
        when never exposed."""
        ins, _ = self.fold_segments(fold)
        segs = list(self.scenarios) or [ins]
        worst = 1.0
        for seg in segs:
            r = self.cache[self.key(point, seg)]
            d = 0.0 if r["liquidated"] else r.get("min_distance", math.nan)
            if d is None or d != d:
                d = 1.0
            worst = min(worst, float(d))
        return worst

    def objective(self, point: dict[str, Any], fold: int) -> float:
        """What the search minimises: minus the in-sample score, or PENALTY when infeasible/undefined."""
        o = self.outcome(point, fold)
        s = o["score_in_sample"]
        if not o["feasible"] or not math.isfinite(s):
            return PENALTY
        return -float(s)

    def evaluate_points(self, points: list[dict[str, Any]], fold: int) -> list[float]:
        log = self.requested.setdefault(fold, [])
        log.extend(points)
        self.ensure([(p, fold) for p in points])
        return [self.objective(p, fold) for p in points]


def _sort_value(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, str(v))


class _Mapper:
    """The map-like callable scipy's ``workers=`` receives: turns vectors into parameter sets
    and answers a whole batch (brute's grid, a DE generation) through the Evaluator."""

    def __init__(self, evaluator: Evaluator, to_point: Any, fold: int) -> None:
        self.evaluator = evaluator
        self.to_point = to_point
        self.fold = fold

    def __call__(self, func: Any, iterable: Any) -> list[float]:
        points = [self.to_point(np.atleast_1d(np.asarray(x, dtype=float))) for x in iterable]
        return self.evaluator.evaluate_points(points, self.fold)


# --- the searches ----------------------------------------------------------------------------

def grid_points(ranges: tuple[ParamRange, ...], n: int) -> list[list[float | int]]:
    return [r.values(n) for r in ranges]


def _search_grid(ev: Evaluator, config: OptimizeConfig) -> None:
    from scipy.optimize import brute

    values = grid_points(config.ranges, config.grid_points)
    names = [r.name for r in config.ranges]

    def to_point(idx: np.ndarray) -> dict[str, Any]:
        return {n: values[i][int(round(v))] for i, (n, v) in enumerate(zip(names, idx))}

    # Every unit of every fold in one batch (one pool, one progress bar), then scipy's brute
    # walks each fold's grid (of value indices) with every answer at hand.
    import itertools
    everything = [dict(zip(names, combo)) for combo in itertools.product(*values)]
    ev.ensure([(p, f) for f in range(ev.folds) for p in everything])
    for fold in range(ev.folds):
        if len(everything) == 1:  # one point (every range LOW == HIGH): nothing for brute to walk
            ev.evaluate_points(everything, fold)
            continue
        slices = tuple(slice(0, len(v), 1) for v in values)
        brute(lambda x: 0.0, slices, finish=None, workers=_Mapper(ev, to_point, fold))


def _search_random(ev: Evaluator, config: OptimizeConfig) -> None:
    rng = np.random.default_rng(config.seed)
    seen: set[str] = set()
    points: list[dict[str, Any]] = []
    space = 1
    for r in config.ranges:
        space *= len(r.values(10**6)) if r.step is not None or r.integer else 10**12
        space = min(space, 10**12)
    limit = min(config.trials, space)
    draws = 0
    while len(points) < limit and draws < 100 * config.trials:
        draws += 1
        point = {r.name: r.snap(rng.uniform(r.low, r.high)) for r in config.ranges}
        k = point_key(point)
        if k not in seen:
            seen.add(k)
            points.append(point)
    ev.ensure([(p, f) for f in range(ev.folds) for p in points])
    for fold in range(ev.folds):
        ev.evaluate_points(points, fold)


def _search_de(ev: Evaluator, config: OptimizeConfig) -> list[dict[str, Any]]:
    from scipy.optimize import differential_evolution

    bounds = [(r.low, r.high) for r in config.ranges]

    def to_point(x: np.ndarray) -> dict[str, Any]:
        return {r.name: r.snap(v) for r, v in zip(config.ranges, x)}

    out = []
    for fold in range(ev.folds):
        fixed_dims = [i for i, r in enumerate(config.ranges) if r.low == r.high]
        if len(fixed_dims) == len(bounds):  # a single point: nothing to evolve
            ev.evaluate_points([to_point(np.array([b[0] for b in bounds]))], fold)
            continue
        res = differential_evolution(lambda x: 0.0, bounds, seed=config.seed, popsize=config.popsize,
                                     maxiter=config.maxiter, tol=config.tol, polish=False,
                                     updating="deferred", workers=_Mapper(ev, to_point, fold))
        out.append({"fold": fold, "nit": int(res.nit), "nfev": int(res.nfev), "message": str(res.message)})
    return out


def _suggest(trial: Any, r: ParamRange) -> float | int:
    if r.low == r.high:
        return r.snap(r.low)
    if r.integer:
        step = int(r.step) if r.step else 1
        return r.snap(trial.suggest_int(r.name, int(r.low), int(r.high), step=max(step, 1)))
    if r.step is not None:
        n = int(math.floor((r.high - r.low) / r.step + 1e-9))
        return r.snap(r.low + r.step * trial.suggest_int(f"{r.name}__step", 0, n))
    return r.snap(trial.suggest_float(r.name, r.low, r.high))


def _search_optuna(ev: Evaluator, config: OptimizeConfig, out: Path) -> list[dict[str, Any]]:
    """Optuna's TPE (one objective: the in-sample score) or NSGA-II (two: the in-sample score and
    the worst distance to liquidation across the required waterfalls), seeded; a set liquidated
    in a required waterfall or in sample is infeasible, told to the sampler as a constraint
    (``Trial.set_constraint``: > 0 = violated). Each fold has its study ``fold-K`` in
    ``DIR/optuna.sqlite``.

    Trials are asked in batches of ``config.popsize`` (one parallel batch of units each), then
    told. Resuming replays each study from the start: its units come from ``trials.sqlite`` in
    moments and the seeded sampler asks the same points, so a resumed run ends with exactly the
    study and the table of an uninterrupted one.
    """
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'optuna.sqlite'}")
    two = config.method == "nsga2"
    info = []
    for fold in range(ev.folds):
        name = f"fold-{fold}"
        try:
            optuna.delete_study(study_name=name, storage=storage)  # replayed from the unit store
        except KeyError:
            pass
        if two:
            sampler = optuna.samplers.NSGAIISampler(seed=config.seed, population_size=max(2, config.popsize))
            study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                        directions=["maximize", "maximize"])
        else:
            sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=min(10, config.trials))
            study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, direction="maximize")
        study.set_user_attr("objectives", ["score_in_sample"] + (["worst_distance_to_liquidation"] if two else []))
        asked = 0
        while asked < config.trials:
            k = min(max(1, config.popsize), config.trials - asked)
            trials = [study.ask() for _ in range(k)]
            points = [{r.name: _suggest(t, r) for r in config.ranges} for t in trials]
            asked += k
            ev.evaluate_points(points, fold)
            for t, p in zip(trials, points):
                o = ev.outcome(p, fold)
                t.set_user_attr("params", p)
                violated = 0.0 if o["feasible"] else 1.0
                t.set_user_attr("constraint", [violated])
                t.set_constraint("liquidated_in_a_required_scenario", violated)  # > 0: infeasible
                score = o["score_in_sample"]
                values = [score] + ([ev.worst_distance(p, fold)] if two else [])
                if not all(math.isfinite(v) for v in values):
                    study.tell(t, state=TrialState.FAIL)
                else:
                    study.tell(t, values if two else values[0])
        info.append({"fold": fold, "study": name, "storage": str(out / "optuna.sqlite"), "trials": asked,
                     "complete": sum(1 for t in study.trials if t.state == TrialState.COMPLETE)})
    return info


def de_max_points(config: OptimizeConfig) -> int:
    dims = len(config.ranges)
    return config.popsize * dims * (config.maxiter + 1)


# --- the table -------------------------------------------------------------------------------

def build_table(ev: Evaluator, config: OptimizeConfig) -> pd.DataFrame:
    names = [r.name for r in config.ranges]
    distinct: dict[str, dict[str, Any]] = {}
    for points in ev.requested.values():
        for p in points:
            distinct.setdefault(point_key(p), p)
    ordered = sorted(distinct.values(), key=lambda p: tuple(p[n] for n in names))
    trial_of = {point_key(p): i for i, p in enumerate(ordered)}
    rows = []
    for fold in sorted(ev.requested):
        done: set[str] = set()
        for p in ev.requested[fold]:
            k = point_key(p)
            if k in done:
                continue
            done.add(k)
            o = ev.outcome(p, fold)
            row: dict[str, Any] = {"trial_id": trial_of[k], **{f"param_{n}": p[n] for n in names}}
            if config.walk_forward:
                row["fold"] = fold
            row.update(score_in_sample=o["score_in_sample"], score_out_of_sample=o["score_out_of_sample"],
                       feasible=o["feasible"], liquidated_in=o["liquidated_in"], chosen=False, error=o["error"])
            rows.append(row)
    table = pd.DataFrame(rows)
    sort = ["trial_id", "fold"] if config.walk_forward else ["trial_id"]
    table = table.sort_values(sort, kind="mergesort").reset_index(drop=True)
    by_fold = table.groupby("fold") if config.walk_forward else [(0, table)]
    for _, g in by_fold:
        ok = g[g["feasible"] & np.isfinite(g["score_in_sample"].astype(float))]
        if len(ok):
            best = ok["score_in_sample"].max()
            idx = ok.index[ok["score_in_sample"] == best][0]  # lowest trial_id among ties
            table.loc[idx, "chosen"] = True
    table["trial_id"] = table["trial_id"].astype("int64")
    if config.walk_forward:
        table["fold"] = table["fold"].astype("int64")
    for r in config.ranges:
        col = f"param_{r.name}"
        table[col] = table[col].astype("int64" if r.integer else "float64")
    table["score_in_sample"] = table["score_in_sample"].astype("float64")
    table["score_out_of_sample"] = table["score_out_of_sample"].astype("float64")
    table["feasible"] = table["feasible"].astype(bool)
    table["chosen"] = table["chosen"].astype(bool)
    return table


def fold_summary(table: pd.DataFrame, config: OptimizeConfig) -> list[dict[str, Any]]:
    """Per fold: the chosen robust set and the in-sample winner, in-sample against out-of-sample."""
    params = [f"param_{r.name}" for r in config.ranges]
    groups = table.groupby("fold") if "fold" in table else [(0, table)]
    out = []
    for fold, g in groups:
        entry: dict[str, Any] = {"fold": int(fold), "trials": int(len(g)), "feasible": int(g["feasible"].sum())}
        finite = g[np.isfinite(g["score_in_sample"])]
        for label, frame in (("chosen", g[g["chosen"]]),
                             ("in_sample_winner", finite.loc[[finite["score_in_sample"].idxmax()]] if len(finite) else finite)):
            if not len(frame):
                entry[label] = None
                continue
            r = frame.iloc[0]
            entry[label] = {
                "trial_id": int(r["trial_id"]), "params": {p.removeprefix("param_"): _plain(r[p]) for p in params},
                "score_in_sample": _plain(r["score_in_sample"]), "score_out_of_sample": _plain(r["score_out_of_sample"]),
                "feasible": bool(r["feasible"]), "liquidated_in": str(r["liquidated_in"]),
                "liquidated_out_of_sample": "out_of_sample" in str(r["liquidated_in"]).split(","),
            }
        out.append(entry)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    return v


# --- the whole run ---------------------------------------------------------------------------

def data_provenance(spec: str, bars: pd.DataFrame) -> dict[str, Any]:
    attrs = {k: v for k, v in bars.attrs.items() if isinstance(v, (str, int, float, bool, list))}
    return {"spec": spec, "bars": int(len(bars)), "start": bars.index[0].isoformat(), "end": bars.index[-1].isoformat(),
            "kind": attrs.get("kind", "real"), "attrs": attrs}


def _progress_bar(total: int, enabled: bool | None) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="optimize", unit="run", file=sys.stderr, dynamic_ncols=True)


# what an optimization directory holds (an --out holding anything else is never written into or deleted)
OPT_FILES = ("trials.sqlite", "trials.sqlite-wal", "trials.sqlite-shm", "trials.sqlite-journal", "optuna.sqlite",
             "optuna.sqlite-wal", "optuna.sqlite-shm", "optuna.sqlite-journal", "trials.parquet", "optimize.json",
             "report.html")
OPT_MARKERS = ("trials.sqlite", "optimize.json", "trials.parquet")


def check_out_dir(out: Path, resume: bool, overwrite: bool) -> bool:
    """``--out`` must be new or empty, or hold an earlier optimization and nothing else (then
    ``resume`` continues it, ``overwrite`` replaces it); the rule of ``backtest`` and ``stress``.
    Returns True when an earlier optimization is to be deleted (``overwrite``); deletes nothing."""
    if resume and overwrite:
        raise DeleverageError("--resume and --overwrite: pass one (continue the optimization in --out, or replace it)")
    if out.exists() and not out.is_dir():
        raise DeleverageError(f"--out {out}: is an existing file; expected a folder for the optimization")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if resume and not (out / "trials.sqlite").exists():
        raise DeleverageError(f"--resume: {out / 'trials.sqlite'} does not exist; nothing to continue (run without --resume)")
    if not entries:
        return False
    foreign = [name for name in entries if name not in OPT_FILES]
    ours = any(name in OPT_MARKERS for name in entries)
    if foreign:
        what = "holds an optimization and other files" if ours else "is not empty and holds no optimization"
        shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        raise DeleverageError(f"--out {out}: {what} ({shown}); expected a new or empty folder, or one holding only "
                              "an earlier optimization: choose another --out (nothing was changed)")
    if not ours:  # only a report.html or a stray journal: not an optimization
        raise DeleverageError(f"--out {out}: is not empty and holds no optimization ({', '.join(entries)}); expected a "
                              "new or empty folder: choose another --out (nothing was changed)")
    if resume:
        return False
    if not overwrite:
        raise DeleverageError(f"--out {out}: already holds an optimization (trials.sqlite): pass --resume to continue "
                              "it, --overwrite to replace it, or choose another --out")
    return True


def _remove_optimization(out: Path) -> None:
    for name in OPT_FILES:
        (out / name).unlink(missing_ok=True)


def optimize(config: OptimizeConfig, out_dir: str | Path, *, resume: bool = False, executor: Any = None,
             progress: bool | None = None, batch: int | None = None, overwrite: bool = False,
             announce: Any = None) -> OptimizeResult:
    """Run (or continue, with ``resume``) an optimization into ``out_dir``; see the module docstring.

    ``out_dir`` must be new or empty, or hold an earlier optimization only (``resume`` continues
    it, ``overwrite`` deletes it first, once every input is checked): :func:`check_out_dir`.
    ``batch``: parameter sets per worker task (None: automatic, see :meth:`Evaluator.batch_size`;
    1: one task and one compiled call per unit, the per-set path). It changes nothing in the result.
    ``announce``: called once every input has been checked, before the first evaluation (the
    command prints its plan line there, so bad input is one line with nothing before it).
    """
    from engine.strategy_ref import load_strategy

    from .executors import LocalExecutor

    executor = executor or LocalExecutor()
    store = None
    bar = None
    try:
        cls = load_strategy(config.strategy)
        engine = choose_engine(cls, config.engine)
        out = Path(out_dir)
        db = out / "trials.sqlite"
        replace = check_out_dir(out, resume, overwrite)
        t0 = time.time()
        off = bool(config.run.get("no_funding"))  # --no-funding: the bars' funding_rate columns are left out
        bars = load_bars(config.data, config.scenario_data, off)
        chunks, scenarios = build_segments(config, len(bars))
        for seg in scenarios:  # fail early on an unknown scenario or unreadable file
            load_bars(seg.data, config.scenario_data, off)
        cfg_json = json.loads(json.dumps(config.as_json(), sort_keys=True, default=str))
        if resume:
            store = TrialStore(db)
            stored_cfg = store.get_meta("config")
            if stored_cfg is not None and stored_cfg != cfg_json:
                diff = sorted(k for k in set(stored_cfg) | set(cfg_json) if stored_cfg.get(k) != cfg_json.get(k))
                raise DeleverageError(f"--resume: the options differ from the interrupted run's in: {', '.join(diff)}; "
                                      f"repeat the original command with --resume")
            if stored_cfg is None:
                _preflight(config, chunks[0])
                store.set_meta("config", cfg_json)
        else:
            _preflight(config, chunks[0])
            if replace:
                _remove_optimization(out)
            store = TrialStore(db)
            store.set_meta("config", cfg_json)
        if announce is not None:
            announce()
        n_units = 1 + (1 if config.walk_forward else 0) + len(scenarios)
        folds = max(1, config.walk_forward)
        if config.method == "grid":
            from .space import grid_size
            n_points = grid_size(list(config.ranges), config.grid_points)
            total = n_points * len({s.label for s in chunks}) + n_points * len(scenarios)
        elif config.method in ("random", "tpe", "nsga2"):
            total = config.trials * (len(chunks) + len(scenarios))
        else:
            total = de_max_points(config) * n_units * folds
        bar = _progress_bar(total, progress)
        ev = Evaluator(config, store, executor, chunks, scenarios, bar, batch=batch)
        de_info = None
        optuna_info = None
        if config.method == "grid":
            _search_grid(ev, config)
        elif config.method == "random":
            _search_random(ev, config)
        elif config.method in ("tpe", "nsga2"):
            optuna_info = _search_optuna(ev, config, out)
        else:
            de_info = _search_de(ev, config)
        if bar is not None:
            bar.total = bar.n
            bar.refresh()
        table = build_table(ev, config)
        engines = sorted({r.get("engine") for r in ev.cache.values() if r.get("engine")}) or [engine]
        summary = {
            "strategy": config.strategy, "objective": config.objective, "method": config.method,
            "params": {r.name: [r.low, r.high] for r in config.ranges},
            "param_ranges": {r.name: r.as_json() for r in config.ranges},
            "fixed_params": config.fixed,
            "survive": list(config.survive), "folds": config.walk_forward,
            "walk_forward": {
                "folds": config.walk_forward, "scheme": "rolling" if config.walk_forward else "none",
                "chunks": [{"label": c.label, "start": bars.index[c.start].isoformat(),
                            "end": bars.index[c.stop - 1].isoformat(), "bars": c.stop - c.start} for c in chunks],
            },
            "engine": "+".join(engines),
            "data": data_provenance(config.data, bars),
            "executor": executor.describe(),
            "config": cfg_json,
            "evaluations": {"units": len(ev.cache), "computed_now": ev.computed, "from_store": ev.reused},
            "seconds": round(time.time() - t0, 3),
            "per_fold": fold_summary(table, config),
            "trials": int(table["trial_id"].nunique()),
        }
        if de_info is not None:
            summary["differential_evolution"] = de_info
        if optuna_info is not None:
            summary["optuna"] = optuna_info
        out.mkdir(parents=True, exist_ok=True)
        table.to_parquet(out / "trials.parquet", index=False)
        (out / "optimize.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        return OptimizeResult(out, table, summary)
    finally:
        if bar is not None:
            bar.close()
        if store is not None:
            store.close()
        executor.close()


def _preflight(config: OptimizeConfig, first: Segment) -> None:
    """Run the strategy with its default parameters on the first bars, in this process, so a
    bad setting (missing funding, unknown venue...) fails once with its message instead of
    being recorded as the failure of every parameter set."""
    n = min(2_000, (first.stop or 0) - (first.start or 0)) if first.stop is not None else 2_000
    task = {"key": "preflight", "strategy": config.strategy, "params": dict(config.fixed), "data": first.data,
            "start": first.start, "stop": (first.start or 0) + n, "objective": config.objective,
            "run": {"strategy": config.strategy, **config.run}, "engine": config.engine,
            "scenario_data": config.scenario_data}
    record = evaluate(task)
    if record.get("error"):
        raise DeleverageError(f"{config.strategy} fails with its default parameters on the first {n} bars: {record['error']}")


def default_out_dir(strategy: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    from engine.strategy_ref import strategy_label

    label = "".join(c if c.isalnum() or c in "-_." else "_" for c in strategy_label(strategy))
    return Path("runs") / f"optimize-{label}-{stamp}-{os.getpid()}"
