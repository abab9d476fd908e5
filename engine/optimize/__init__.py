"""Parameter optimization that survives: robust objectives, walk-forward, resumable, on Dask.

- :func:`optimize` (``engine.optimize.run``): search a strategy's parameters (grid through
  :func:`scipy.optimize.brute`, seeded random draws, seeded
  :func:`scipy.optimize.differential_evolution`, or Optuna's seeded TPE / NSGA-II) with
  rolling walk-forward folds, treating a set liquidated in any required stress scenario as
  infeasible (for Optuna: a violated constraint);
- units go to the workers in batches (:func:`evaluate_batch`: many parameter sets of one
  segment in one compiled call, indicators once per chunk); ``batch=1`` is one task per unit;
- every evaluated unit is committed to ``DIR/trials.sqlite`` as it finishes, so ``--resume``
  continues an interrupted run and ends with the same table;
- :class:`LocalExecutor` (a process pool, default) or :class:`DaskExecutor`
  (``--scheduler ADDRESS``) run the units; the worker :func:`evaluate` is a top-level function
  taking a plain dict and returning a plain record.

Output directory: ``optimize.json`` (configuration, provenance, per-fold summary),
``trials.parquet`` (one row per parameter set and fold), ``trials.sqlite`` (the live store) and,
for ``tpe``/``nsga2``, ``optuna.sqlite`` (the studies, one per fold).
"""

from .evaluate import OBJECTIVES, evaluate, evaluate_batch, load_bars, score_equity
from .executors import DaskExecutor, LocalExecutor
from .run import METHODS, OptimizeConfig, OptimizeResult, chunk_edges, optimize
from .space import ParamRange, parse_param, resolve_ranges, unit_key

__all__ = [
    "METHODS", "OBJECTIVES", "DaskExecutor", "LocalExecutor", "OptimizeConfig", "OptimizeResult",
    "ParamRange", "chunk_edges", "evaluate", "evaluate_batch", "load_bars", "optimize", "parse_param", "resolve_ranges",
    "score_equity", "unit_key",
]
