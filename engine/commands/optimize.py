"""``deleverage optimize STRATEGY``: search parameters that make money and survive the waterfalls.

See :mod:`engine.optimize` for the method; this module only parses options and prints.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from engine.commands.backtest import finite_number, positive_number
from risk.errors import DeleverageError


def register(subparsers: argparse._SubParsersAction) -> None:
    from engine.commands.report import add_no_report_option

    p = subparsers.add_parser(
        "optimize",
        help="optimize a strategy's parameters (grid/random/DE, walk-forward, survive scenarios, resumable, Dask)",
        description="Search STRATEGY's parameters for the best in-sample objective among the sets that are "
        "liquidated in no required scenario, scoring each fold's sets out of sample too. Each finished "
        "evaluation is committed to DIR/trials.sqlite at once; --resume continues an interrupted run.",
    )
    p.add_argument("strategy", metavar="STRATEGY", help="a reference strategy name, path/to/file.py:ClassName or package.module:ClassName")
    p.add_argument("--param", action="append", default=[], metavar="NAME=LOW:HIGH[:STEP]",
                   help="a searched parameter (repeat); a bare NAME takes the strategy's declared range; "
                   "default: every declared range")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a parameter that is not searched (repeat)")
    p.add_argument("--method", choices=("grid", "random", "de", "tpe", "nsga2"), default="grid",
                   help="grid (scipy brute), seeded random draws, differential evolution, Optuna TPE, or Optuna "
                   "NSGA-II on two objectives (in-sample score, worst distance to liquidation across the --survive "
                   "scenarios) (default grid)")
    p.add_argument("--objective", choices=("sharpe", "sortino", "calmar", "return"), default="sharpe")
    p.add_argument("--survive", default=None, metavar="NAMES",
                   help="comma-separated scenarios a set must not be liquidated in (e.g. 312,519; a bar file "
                   "or synthetic:BARS:SEED also works)")
    p.add_argument("--walk-forward", type=int, default=1, metavar="K",
                   help="K rolling folds over K+1 equal chunks: optimize on chunk k, test on chunk k+1 "
                   "(default 1: first half in sample, second half out of sample; 0: all in sample)")
    p.add_argument("--data", required=True, metavar="PATH|synthetic:BARS[:SEED]",
                   help="bars: a file (format detected; canonical Parquet) or synthetic:BARS[:SEED]")
    p.add_argument("--scenario-data", choices=("reconstructed", "real"), default=None,
                   help="--survive scenarios from the seeded reconstruction (default) or real exchange bars "
                   "(needs --survive with a built-in scenario)")
    p.add_argument("--out", metavar="DIR", help="output directory (default runs/optimize-STRATEGY-TIME); must be new "
                   "or empty, unless it holds an earlier optimization and --resume or --overwrite is given")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the optimization in --out where it stopped")
    again.add_argument("--overwrite", action="store_true",
                       help="delete the earlier optimization in --out and start again (a folder holding anything "
                       "else is never deleted)")
    p.add_argument("--trials", type=int, default=None,
                   help="random, tpe, nsga2 only: number of parameter sets drawn (tpe/nsga2: per fold) (default 100)")
    p.add_argument("--seed", type=int, default=None,
                   help="random, de, tpe, nsga2 only: seed of the draws, 0 to 4294967295 (default 0)")
    p.add_argument("--popsize", type=int, default=None,
                   help="de, tpe, nsga2 only: differential evolution population multiplier; tpe/nsga2: trials asked "
                   "per batch, NSGA-II's population (default 15)")
    p.add_argument("--maxiter", type=int, default=None, help="de only: differential evolution generations (default 10)")
    p.add_argument("--grid-points", type=int, default=None,
                   help="grid only: values of a range given without a step (default 10)")
    p.add_argument("--engine", choices=("auto", "fast", "backtrader"), default="auto",
                   help="auto: the fast engine when the strategy has a target_exposure form, else backtrader")
    p.add_argument("--workers", type=int, default=None, help="local pool size (default: CPU count; 1 = in-process)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="parameter sets per worker task, simulated in one compiled call (default: automatic, up to "
                   "64 within 32 MB of per-bar arrays; 1 = one task per set). Does not change the results")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask distributed cluster, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--venue", default="binance_usdm")
    p.add_argument("--symbol", default=None)
    p.add_argument("--cash", type=positive_number, default=10_000.0)
    p.add_argument("--leverage", type=positive_number, default=None,
                   help="leverage of every run (default 1): the strategy's leverage parameter when it has one (then "
                   "not with --param/--set leverage), else the feed's default leverage")
    p.add_argument("--margin-mode", choices=("isolated", "cross"), default="isolated")
    p.add_argument("--funding-rate", type=finite_number, default=None,
                   help="constant funding rate for bars without a funding_rate column")
    p.add_argument("--no-funding", action="store_true",
                   help="settle no funding, as backtest --no-funding: bars without funding rates run, and the "
                   "funding_rate column of bars that carry one (--data, and the --survive scenarios, which then "
                   "run without funding) is left out")
    p.add_argument("--partial-liquidation", action="store_true",
                   help="the venue's partial liquidation runs before a full one (risk/partial.py; both engines)")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show the progress bar")
    prog.add_argument("--no-progress", dest="progress", action="store_false", help="never show the progress bar")
    add_no_report_option(p)
    p.set_defaults(func=run)


def _parse_set(items: list[str]) -> dict[str, str]:
    from engine.strategy_ref import split_params

    return split_params(items, "--set")


# the options only some methods read (an option the method ignores is an error, never dropped)
METHOD_OPTIONS: dict[str, tuple[str, tuple[str, ...], Any]] = {
    # dest: (option, methods that read it, default)
    "trials": ("--trials", ("random", "tpe", "nsga2"), 100),
    "seed": ("--seed", ("random", "de", "tpe", "nsga2"), 0),
    "popsize": ("--popsize", ("de", "tpe", "nsga2"), 15),
    "maxiter": ("--maxiter", ("de",), 10),
    "grid_points": ("--grid-points", ("grid",), 10),
}


def _method_options(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for dest, (option, methods, default) in METHOD_OPTIONS.items():
        value = getattr(args, dest)
        if value is not None and args.method not in methods:
            raise DeleverageError(f"{option} {value} has no effect with --method {args.method}; it applies to "
                                  f"--method {', '.join(methods)} only")
        out[dest] = default if value is None else value
    return out


def _survive(args: argparse.Namespace) -> tuple[str, ...]:
    from engine.config import parse_list

    if args.survive is None:
        return ()
    return tuple(parse_list(args.survive, "--survive"))


def build_config(args: argparse.Namespace) -> Any:
    from engine.optimize import OptimizeConfig, parse_param, resolve_ranges
    from engine.optimize.run import scenario_spec
    from engine.strategy_ref import has_param, load_strategy, type_params
    from risk.venues import get_instrument

    cls = load_strategy(args.strategy)
    ranges = resolve_ranges(cls, [parse_param(t) for t in args.param])
    fixed = type_params(cls, _parse_set(args.set), "--set")
    survive = _survive(args)
    method = _method_options(args)
    if args.grid_points is not None:
        if not any(r.step is None and r.low != r.high for r in ranges):
            raise DeleverageError(f"--grid-points {args.grid_points} has no effect: every searched range has a STEP "
                                  "(or one value); it sets the values of a range given as NAME=LOW:HIGH")
    if args.scenario_data is not None and not any(scenario_spec(n).startswith("scenario:") for n in survive):
        raise DeleverageError(f"--scenario-data {args.scenario_data} has no effect without a built-in scenario in "
                              "--survive (e.g. --survive 312,519); it picks the bars of those scenarios")
    if args.no_funding and args.funding_rate is not None:
        raise DeleverageError(f"--no-funding has no effect with --funding-rate {args.funding_rate:g} (bars without "
                              "funding settle that constant); give one of them")
    try:
        get_instrument(args.venue, args.symbol)
    except DeleverageError as exc:
        raise DeleverageError(f"--venue {args.venue}" + (f" --symbol {args.symbol}" if args.symbol else "")
                              + f": {exc}") from None
    leverage = 1.0 if args.leverage is None else float(args.leverage)
    if args.leverage is not None and has_param(cls, "leverage"):
        how = ("searched (--param leverage)" if any(r.name == "leverage" for r in ranges)
               else "fixed (--set leverage)" if "leverage" in fixed else None)
        if how:
            raise DeleverageError(f"--leverage {args.leverage:g} has no effect: {args.strategy}'s leverage parameter "
                                  f"is {how}; give one of them")
        fixed["leverage"] = leverage  # the strategy sizes by its own leverage parameter (as stress --leverage)
    run_settings = {"venue": args.venue, "symbol": args.symbol, "cash": args.cash, "leverage": leverage,
                    "margin_mode": args.margin_mode, "funding_rate": args.funding_rate,
                    "allow_no_funding": bool(args.no_funding),
                    # settle none: the funding_rate columns are left out (engine.optimize.evaluate.without_funding)
                    **({"no_funding": True} if args.no_funding else {}),
                    **({"partial_liquidation": True} if args.partial_liquidation else {})}
    return OptimizeConfig(
        strategy=args.strategy, ranges=tuple(ranges), data=args.data, method=args.method, objective=args.objective,
        survive=survive, walk_forward=args.walk_forward, fixed=fixed, trials=method["trials"], seed=method["seed"],
        popsize=method["popsize"], maxiter=method["maxiter"], grid_points=method["grid_points"], engine=args.engine,
        run=run_settings, scenario_data=args.scenario_data or "reconstructed",
    )


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def print_summary(summary: dict[str, Any], out: Path) -> None:
    print(f"optimize {summary['strategy']}: {summary['trials']} parameter sets, objective {summary['objective']}, "
          f"method {summary['method']}, engine {summary['engine']}, {summary['executor']}")
    ev = summary["evaluations"]
    print(f"evaluations: {ev['units']} ({ev['computed_now']} run now, {ev['from_store']} from the store) "
          f"in {summary['seconds']:.1f} s")
    print(f"{'fold':>4}  {'set':<18} {'params':<40} {'in-sample':>10} {'out-of-sample':>14}  liquidated in")
    for f in summary["per_fold"]:
        for label in ("chosen", "in_sample_winner"):
            e = f.get(label)
            if e is None:
                print(f"{f['fold']:>4}  {label:<18} {'(none feasible)':<40}")
                continue
            params = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in e["params"].items())
            print(f"{f['fold']:>4}  {label:<18} {params:<40} {_fmt(e['score_in_sample']):>10} "
                  f"{_fmt(e['score_out_of_sample']):>14}  {e['liquidated_in'] or '-'}")
            if label == "in_sample_winner" and e["liquidated_out_of_sample"]:
                print(f"      WARNING: fold {f['fold']}'s in-sample winner was LIQUIDATED out of sample")
    if (summary.get("config") or {}).get("run", {}).get("no_funding"):
        print("--no-funding: no funding settled (the funding rates of --data and --survive bars are left out)")
    print(f"trials: {out / 'trials.parquet'}")


def run(args: argparse.Namespace) -> int:
    from engine.commands.report import report_after
    from engine.optimize import DaskExecutor, LocalExecutor, optimize
    from engine.optimize.run import default_out_dir

    config = build_config(args)
    if args.resume and not args.out:
        raise DeleverageError("--resume needs --out DIR (the directory of the interrupted optimization)")
    if args.overwrite and not args.out:
        raise DeleverageError("--overwrite needs --out DIR (the directory of the optimization to replace)")
    if args.batch is not None and args.batch < 1:
        raise DeleverageError(f"--batch must be at least 1, got {args.batch}")
    out = Path(args.out) if args.out else default_out_dir(args.strategy)
    if args.scheduler:
        if args.workers is not None:
            raise DeleverageError("--workers applies to the local pool; with --scheduler the cluster's workers are used")
        executor = DaskExecutor(args.scheduler)
    else:
        executor = LocalExecutor(args.workers)

    def announce() -> None:  # once every input is checked: bad input is one line, with nothing before it
        print(f"optimize: writing {out} ({executor.describe()})", file=sys.stderr)

    try:
        result = optimize(config, out, resume=args.resume, overwrite=args.overwrite, executor=executor,
                          progress=args.progress, batch=args.batch, announce=announce)
    except KeyboardInterrupt:
        print(f"\noptimize: interrupted; finished evaluations are saved in {out / 'trials.sqlite'}. "
              f"Continue with the same command and --resume --out {out}", file=sys.stderr)
        return 130
    print_summary(result.summary, out)
    report_after(args, out)
    return 0
