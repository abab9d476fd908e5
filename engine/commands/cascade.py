"""``deleverage cascade simulate|calibrate``: the liquidation-cascade simulator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cascade", help="simulate liquidation cascades and calibrate the simulator",
                                   description="SIMULATED waterfalls: a liquidation-inventory + order-book model.")
    sub = parser.add_subparsers(dest="cascade_command", metavar="ACTION")
    p = sub.add_parser("simulate", help="run the simulator (one seed -> bars; --runs N -> Monte Carlo summary)")
    p.add_argument("--preset", choices=("519", "312", "default"), default=None,
                   help="initial conditions with the shipped fitted parameters (default 519)")
    p.add_argument("--params", default=None, help="JSON file of CascadeParams fields (overrides the preset)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override one parameter (repeatable)")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="bars (any format `deleverage data` reads, or canonical CSV/Parquet): initial conditions from "
                        "the market before --at (feeds.cascade.from_market) instead of a preset")
    p.add_argument("--at", default=None, metavar="TIME", help="with --data: when the simulated cascade starts (UTC)")
    p.add_argument("--minutes", type=int, default=None, help="with --data: length of the simulated window (default 240)")
    p.add_argument("--venue", default=None, help="with --data: venue of the liquidation formulas (default: the file's)")
    p.add_argument("--halt", action="append", default=[], metavar="START_MIN:END_MIN",
                   help="with --data: engine halt in minutes after --at (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=1, help="Monte Carlo: number of seeds (seed, seed+1, ...)")
    p.add_argument("--vary", action="append", default=[], metavar="NAME=LO:HI", help="Monte Carlo: draw NAME in [LO, HI]")
    p.add_argument("--out", required=True, help="bars (.csv/.parquet) for one run, or the summary CSV for --runs > 1")
    p.set_defaults(func=_simulate)
    c = sub.add_parser("calibrate", help="fit across events (--loo: leave-one-event-out table); --legacy: the 519-only fit")
    c.add_argument("--loo", action="store_true", help="also score each event with a fit on the others (leave-one-out)")
    c.add_argument("--legacy", action="store_true", help="the old fit: 519 preset only, 312 held out")
    c.add_argument("--workers", type=int, default=1,
                   help="processes: with --loo the six fits run side by side, one per process; without, the "
                        "optimiser evaluates its population over them (the same fit either way)")
    c.add_argument("--ship", action="store_true", help="write the all-events fit into feeds/cascade/fitted.json")
    c.add_argument("--maxiter", type=int, default=None, help="optimiser generations (default 40; legacy 40)")
    c.add_argument("--popsize", type=int, default=None, help="population per parameter (default 6; legacy 8)")
    c.add_argument("--seeds", default=None, help="comma-separated simulation seeds (common random numbers; default 0,1,2 for "
                                                 "the fit; the tables score the 100 seeds 10-109 and show their spread; legacy 0,1,2)")
    c.add_argument("--fix", action="append", default=None, metavar="NAME=VALUE",
                   help="hold a fitted parameter at VALUE instead of fitting it (repeatable), e.g. "
                        "momentum_short_share=0; flow_noise is held at 0 and liq_capture at 1 by default (calib.DEFAULT_FIXED)")
    c.add_argument("--free", action="append", default=None, metavar="NAME",
                   help="fit a parameter that is held by default (repeatable): --free flow_noise --seed-mean is the "
                        "configuration shipped until session 25 (docs/cascade.md, stability table); --free liq_capture "
                        "fits the share of the simulated liquidations that the Coinalyze totals report")
    c.add_argument("--bound", action="append", default=None, metavar="NAME=LO:HI",
                   help="search a fitted parameter over [LO, HI] instead of its range in calib.BOUNDS (repeatable), "
                        "e.g. oi_turnover=0.02:10; the run's --out file records the ranges it used")
    c.add_argument("--score-seeds", default=None, metavar="START:END",
                   help="simulator seeds START..END-1 that score the tables (default 10:110, 100 paths the fit never "
                        "saw); with --rescore, re-score the stored fits on other paths, e.g. 30:40")
    c.add_argument("--optimizer-seed", type=int, default=0,
                   help="seed of the differential evolution (default 0, the shipped fit); another seed shows how much "
                        "the held-out table depends on the optimiser's trajectory")
    c.add_argument("--per-path", action="store_true",
                   help="fit the mean over the fit seeds of each simulated path's loss (penalises the spread of the "
                        "paths; the default and the shipped fit: the flag only states it)")
    c.add_argument("--seed-mean", action="store_true",
                   help="fit the loss of the seed-mean figures instead (a fit whose paths scatter on both sides of the "
                        "real figures can score well on their mean)")
    c.add_argument("--data-path", default=None, help="folder with the real BitMEX 1-minute files")
    c.add_argument("--out", default=None, help="write the calibration (theta, errors, parameter sets) as JSON")
    c.add_argument("--shipped", action="store_true", help="only re-score the shipped 519 fit of the presets (no optimisation)")
    c.add_argument("--rescore", action="store_true",
                   help="only re-score the shipped cross-event fit and print its stored leave-one-out table")
    c.add_argument("--paths", action="store_true",
                   help="with --rescore: also print every scored path of the held-out rows (fall, end vs start, time to "
                        "trough, liquidations) and the mean over the paths that end below the start")
    c.add_argument("--diagnose", action="store_true",
                   help="only print, per event under the shipped fit, the initial conditions and how each component "
                        "(leveraged OI, depth, sell flow, buyers, rebuild, engine) moves the simulated fall")
    c.add_argument("--ensemble", nargs="+", default=None, metavar="FILE",
                   help="only score the held-out rows of several stored --loo runs (their --out files, e.g. one per "
                        "--optimizer-seed) as one ensemble: each event's paths pooled over every run's fit without it")
    c.set_defaults(func=_calibrate)
    k = sub.add_parser("coinglass-check", help="out-of-sample shape check on the CoinGlass hourly file (never fitted on)")
    k.add_argument("--data-path", default=None, help="folder with the shared data files")
    k.add_argument("--days", type=int, default=3, help="largest liquidation days to compare (default 3)")
    k.set_defaults(func=_coinglass)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _market_params(args: argparse.Namespace):
    from feeds.cascade.market import from_market
    from feeds.detect import load
    from risk.errors import DeleverageError

    if not args.at:
        raise DeleverageError("--data needs --at TIME (when the simulated cascade starts, UTC)")
    halts = []
    for item in args.halt:
        try:
            a, b = (float(x) for x in item.split(":"))
        except ValueError:
            raise DeleverageError(f"--halt {item!r}: expected START_MIN:END_MIN") from None
        if not 0 <= a < b:
            raise DeleverageError(f"--halt {item!r}: expected 0 <= START_MIN < END_MIN (minutes after --at)")
        halts.append((a, b))
    frame = load(args.data)
    params, info = from_market(frame, args.at, minutes=240 if args.minutes is None else args.minutes, venue=args.venue,
                               halts=halts, details=True)
    print(f"initial conditions from {args.data} before {info['at']} ({info['hours_used']} h): price {info['price0']:,.2f}; "
          f"leveraged OI long {info['leveraged_long_usd'] / 1e6:,.0f}M / short {info['leveraged_short_usd'] / 1e6:,.0f}M USD "
          f"({info['oi_source']}; split from {info['split_source']}, long share {info['long_share']:.2f}); "
          f"depth {info['depth_usd'] / 1e6:,.1f}M USD per 1 % ({info['depth_source']})")
    return params, info


def _params(args: argparse.Namespace):
    from feeds.cascade import CascadeParams, preset
    from risk.errors import DeleverageError

    if getattr(args, "data", None):
        if args.preset is not None:
            raise DeleverageError(f"--preset {args.preset} and --data: the initial conditions come from one of them; drop one")
        params, _ = _market_params(args)
    else:
        only_data = [flag for flag, v in (("--at", args.at), ("--minutes", args.minutes), ("--venue", args.venue),
                                          ("--halt", args.halt)) if v is not None and v != []]
        if only_data:
            raise DeleverageError(f"{', '.join(only_data)}: only with --data (a preset has its own start, window and venue)")
        name = args.preset or "519"
        params = CascadeParams() if name == "default" else preset(name)
    if args.params:
        try:
            data = json.loads(Path(args.params).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DeleverageError(f"--params {args.params}: cannot read a JSON object of parameters ({exc})") from None
        params = CascadeParams.from_dict({**params.to_dict(), **data})
    changes = {}
    for item in args.set:
        if "=" not in item:
            raise DeleverageError(f"--set {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        changes[k.strip()] = _value(v)
    if changes:
        params = CascadeParams.from_dict({**params.to_dict(), **changes})
    return params


def _simulate(args: argparse.Namespace) -> int:
    from engine.commands.scenarios import write_frame
    from feeds.cascade import monte_carlo, simulate
    from risk.errors import DeleverageError

    if args.runs < 1:
        raise DeleverageError(f"--runs {args.runs}: expected a number of runs >= 1")
    params = _params(args)
    if args.runs > 1 or args.vary:
        vary = {}
        for item in args.vary:
            try:
                k, rng = item.split("=", 1)
                lo, hi = (float(x) for x in rng.split(":"))
            except ValueError:
                raise DeleverageError(f"--vary {item!r}: expected NAME=LO:HI") from None
            vary[k] = (lo, hi)
        table = monte_carlo(params, range(args.seed, args.seed + args.runs), vary)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        Path(str(out) + ".meta.json").write_text(json.dumps({"kind": "simulated", "label": "SIMULATED cascades (Monte Carlo summary)",
                                                             "params": params.to_dict(), "vary": vary}, indent=1, default=float))
        q = table["peak_to_trough"].quantile([0.05, 0.5, 0.95])
        up = int((table["close_vs_start"] > 0).sum())
        print(f"SIMULATED: {len(table)} runs -> {out}; peak-to-trough 5/50/95 %: {q.iloc[0]:+.1%} / {q.iloc[1]:+.1%} / {q.iloc[2]:+.1%}; "
              f"{up} of {len(table)} end above the start price (a squeeze, not a waterfall)")
        return 0
    bars = simulate(params, seed=args.seed)
    path = write_frame(bars, args.out)
    s = bars.attrs["summary"]
    print(f"{bars.attrs['label']} -> {path}")
    print(f"peak-to-trough {s['peak_to_trough']:+.2%} after {s['time_to_trough_min']} min; liquidated longs "
          f"{s['liquidated_long_usd'] / 1e6:,.0f}M / shorts {s['liquidated_short_usd'] / 1e6:,.0f}M USD; runaway ratio {s['runaway_ratio']:.2f}")
    return 0


def _print_eval(label: str, e: dict) -> None:
    m = e["mean"]
    print(f"{label}: drawdown-profile RMSE {m['profile_rmse']:.4f} (log), peak-to-trough sim {m['peak_to_trough_sim']:+.2%} "
          f"vs real {m['peak_to_trough_real']:+.2%} (error {m['peak_to_trough_error']:+.2%}), time to trough sim "
          f"{m['time_to_trough_sim_min']:.0f} vs real {m['time_to_trough_real_min']:.0f} min")


# options of a fit (flag -> argparse dest, default) and which of them each other mode reads
_FIT_OPTIONS = {"--loo": ("loo", False), "--ship": ("ship", False), "--per-path": ("per_path", False),
                "--maxiter": ("maxiter", None), "--popsize": ("popsize", None), "--seeds": ("seeds", None),
                "--out": ("out", None), "--optimizer-seed": ("optimizer_seed", 0), "--workers": ("workers", 1),
                "--score-seeds": ("score_seeds", None), "--fix": ("fix", None), "--free": ("free", None), "--bound": ("bound", None),
                "--seed-mean": ("seed_mean", False)}
_MODE_READS = {"--rescore": {"--score-seeds"}, "--ensemble": {"--score-seeds"}, "--diagnose": set(), "--legacy": {"--seeds", "--maxiter", "--popsize", "--out"},
               "--shipped": {"--seeds", "--out"}}


def _calibrate(args: argparse.Namespace) -> int:
    from risk.errors import DeleverageError

    if args.per_path and args.seed_mean:
        raise DeleverageError("--per-path and --seed-mean are the two objectives of a fit: use one of them")
    if args.paths and not args.rescore:
        raise DeleverageError("--paths prints the paths of the shipped fit's held-out rows: use it with --rescore")
    # --shipped re-scores the legacy fit: "--shipped --legacy" is one mode
    modes = [flag for flag in _MODE_READS if getattr(args, flag[2:]) and not (flag == "--legacy" and args.shipped)]
    if len(modes) > 1:
        raise DeleverageError(f"{' and '.join(modes)} are separate modes: use one at a time")
    if modes:
        unused = [flag for flag, (dest, default) in _FIT_OPTIONS.items()
                  if getattr(args, dest) != default and flag not in _MODE_READS[modes[0]]]
        if unused:
            raise DeleverageError(f"{', '.join(unused)}: not read by {modes[0]}; drop {'them' if len(unused) > 1 else 'it'} "
                                  f"or drop {modes[0]}")
    _check_fit_numbers(args)
    if args.legacy or args.shipped:
        return _calibrate_legacy(args)
    from feeds.cascade import calib

    score_seeds = calib.SCORE_SEEDS if args.score_seeds is None else _seed_range(args.score_seeds)

    if args.diagnose:
        import numpy as np

        np.seterr(all="ignore")
        rows = calib.diagnose(data_path=args.data_path)
        print("DIAGNOSIS of the shipped cross-event fit (seed 0; every path SIMULATED; one change at a time)")
        print("\n| event | leveraged long / short | depth per 1 % | long OI / depth | runaway R | real fall, trough, liq. long |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            re = r["real"]
            print(f"| {r['event']} | {_fmt_usd(r['long_usd'])} / {_fmt_usd(r['short_usd'])} | {_fmt_usd(r['depth_usd'])} | "
                  f"{r['long_over_depth']:.2f} | {r['runaway_ratio']:.2f} | {re['peak_to_trough']:+.1%}, "
                  f"{re['time_to_trough_min']:.0f} min, {_fmt_usd(re['liq_long_usd'])} |")
        labels = list(rows[0]["variants"])
        print("\npeak-to-trough / time to trough (min) / long liquidations, simulated:\n")
        print("| variant | " + " | ".join(r["event"] for r in rows) + " |")
        print("|---|" + "---|" * len(rows))
        for lab in labels:
            cells = [f"{v['peak_to_trough']:+.1%} / {v['time_to_trough_min']:.0f} / {_fmt_usd(v['liq_long_usd'])}"
                     for v in (r["variants"][lab] for r in rows)]
            print(f"| {lab} | " + " | ".join(cells) + " |")
        return 0
    if args.ensemble:
        runs = [_stored_loo_run(f, calib) for f in args.ensemble]
        rows = calib.ensemble_rows(runs, score_seeds, args.data_path)
        print(f"ENSEMBLE of {len(runs)} stored leave-one-out runs, scored now on seeds {_seed_text(score_seeds)} "
              "(every path SIMULATED)")
        print(format_table(rows, "leave-one-event-out, ensemble (each row: every run's fit on the other four, their "
                                 "paths pooled)"))
        print(format_table(calib.baseline_loo(args.data_path), _BASELINE))
        return 0
    if args.rescore:
        from feeds.cascade.fit import fitted, market_theta

        data = (fitted() or {}).get("market")
        if not data:
            raise DeleverageError("no shipped cross-event fit in feeds/cascade/fitted.json; run deleverage cascade calibrate --ship")
        theta = market_theta()
        if args.score_seeds is not None:  # other paths than the stored tables'
            data = {**data, "settings": {**data["settings"], "score_seeds": list(score_seeds)}}
        seeds = tuple(data["settings"]["score_seeds"])
        rows = [calib.row(n, theta, seeds, args.data_path) for n in calib.EVENTS]
        print(f"SHIPPED cross-event fit, re-scored now on seeds {_seed_text(seeds)} (every path SIMULATED)")
        print(format_table(rows, "in sample (fit on all five events)"))
        if data.get("loo"):
            # each held-out row re-scored under its stored fit (the same figures, plus the per-path loss)
            loo = [calib.row(r["event"], r["theta"], seeds, args.data_path) for r in data["loo"]]
            print(format_table(loo, "leave-one-event-out as shipped, re-scored (re-run with --loo to re-fit)"))
        print(format_table(calib.baseline_loo(args.data_path), _BASELINE))
        if args.paths and data.get("loo"):
            _print_paths(calib, data, args.data_path)
        return 0

    seeds = (0, 1, 2) if args.seeds is None else _seed_list(args.seeds)
    fixed = _fixed(args.fix, args.free, calib.DEFAULT_FIXED)  # values checked by calib.calibrate before any work
    bounds = _bounds(args.bound)  # names and values checked by calib.calibrate before any work, as fixed
    r = calib.calibrate(loo=args.loo, seeds=seeds, score_seeds=score_seeds, fixed=fixed, bounds=bounds,
                        maxiter=args.maxiter or calib.MAXITER, popsize=args.popsize or calib.POPSIZE,
                        data_path=args.data_path, workers=args.workers, progress=lambda m: print(m, flush=True),
                        optimizer_seed=args.optimizer_seed, per_path=not args.seed_mean, fit_map=_fit_map)
    print("SIMULATOR CALIBRATION across events (every path below is SIMULATED; inputs from the bars before each start)")
    print("theta: " + ", ".join(f"{k}={v:.4g}" for k, v in r["theta"].items())
          + (f" (fixed, not fitted: {', '.join(fixed)})" if fixed else ""))
    print("objective: " + ("the loss of the seed-mean figures (--seed-mean)" if args.seed_mean
                           else "the mean of each simulated path's own loss (per path)"))
    if bounds:
        print("search ranges changed: " + ", ".join(f"{n} [{lo:g}, {hi:g}]" for n, (lo, hi) in bounds.items()))
    print(f"fit: {r['fit']['evaluations']} evaluations in {r['fit']['seconds']:.0f} s")
    print(format_table(r["in_sample"], "in sample (fit on all five events)"))
    if r["loo"]:
        print(format_table(r["loo"], "leave-one-event-out (each row: fitted on the other four, then predicted)"))
        print(format_table(r["baseline_loo"], _BASELINE))
    print(f"total {r['settings']['seconds']:.0f} s")
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(json.dumps(r, indent=1, default=float))
        print(f"wrote {args.out}")
    if args.ship:
        from importlib import resources

        target = resources.files("feeds.cascade").joinpath("fitted.json")
        calib.save(r, str(target))
        print(f"shipped the all-events fit in {target}")
    return 0


def _fit_map(worker, tasks, workers):
    """calib.calibrate's fits over the project's process pool (Ctrl-C stops it cleanly)."""
    from engine.parallel import run_parallel

    return run_parallel(worker, tasks, workers=workers, desc="calibrate fits", progress=False)


def _stored_loo_run(path: str, calib) -> dict:
    """A ``calibrate --loo --out`` file, checked: one held-out fit per event, in order, each with
    every fitted parameter once the run's held values are put back (calib.ensemble_rows does
    that; ``liq_capture``, added in session 26, is 1 when absent: calib.predict), or a
    DeleverageError naming the file."""
    from risk.errors import DeleverageError

    p = Path(path)
    try:
        run = json.loads(p.read_text())
    except FileNotFoundError:
        raise DeleverageError(f"--ensemble {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeleverageError(f"--ensemble {path}: not a calibration JSON ({type(exc).__name__}: {exc})") from None
    loo = run.get("loo") if isinstance(run, dict) else None
    if not loo or [r.get("event") for r in loo] != list(calib.EVENTS):
        raise DeleverageError(f"--ensemble {path}: expected the leave-one-out table of events {', '.join(calib.EVENTS)} "
                              "(the --out file of deleverage cascade calibrate --loo)")
    run.setdefault("settings", {}).setdefault("fixed", {})
    for r in loo:
        theta = {**run["settings"]["fixed"], **r.get("theta", {})}
        missing = [n for n in calib.BOUNDS if n not in theta and n != "liq_capture"]
        if missing:
            raise DeleverageError(f"--ensemble {path}: the held-out fit of {r['event']} has no {', '.join(missing)} "
                                  "(a run from before the parameter existed); re-run it with this version")
    return run


def _print_paths(calib, data, data_path) -> None:
    """Every scored path of the stored held-out rows, and the waterfalls among them (paths that
    end below the start) on their own."""
    import numpy as np

    seeds = tuple(data["settings"]["score_seeds"])
    print("\nheld-out paths, one per seed (each SIMULATED; 'end' = last close vs the start price)\n")
    print("| event | seed | fall | end | time to trough (min) | liq. long | liq. short |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for stored in data["loo"]:
        runs = calib.predict(calib.EVENTS[stored["event"]], stored["theta"], seeds, data_path)["runs"]
        for s, r in zip(seeds, runs):
            print(f"| {stored['event']} | {s} | {r['peak_to_trough']:+.1%} | {r['close_vs_start']:+.1%} | "
                  f"{r['time_to_trough_min']:.0f} | {_fmt_usd(r['liq_long_usd'])} | {_fmt_usd(r['liq_short_usd'])} |")
        down = [r for r in runs if r["close_vs_start"] <= 0]
        summary.append((stored["event"], len(runs), down))
    print("\nheld out, the paths that end below the start only (waterfalls, not squeezes):\n")
    print("| event | paths | fall | time to trough (min) | liq. long | liq. short |")
    print("|---|---|---|---|---|---|")
    for name, n, down in summary:
        if not down:
            print(f"| {name} | 0/{n} | n/a | n/a | n/a | n/a |")
            continue
        m = {key: float(np.mean([r[key] for r in down])) for key in ("peak_to_trough", "time_to_trough_min", "liq_long_usd", "liq_short_usd")}
        print(f"| {name} | {len(down)}/{n} | {m['peak_to_trough']:+.1%} | {m['time_to_trough_min']:.0f} | {_fmt_usd(m['liq_long_usd'])} | "
              f"{_fmt_usd(m['liq_short_usd'])} |")


_BASELINE = ("no-model reference, leave-one-out (each row: the other four events' real figures alone, mean fall and "
             "OI change, geometric mean time and liquidations)")


def _fmt_usd(v) -> str:
    return "n/a" if v is None else f"{v / 1e6:,.0f}M"


def format_table(rows, title: str) -> str:
    """Markdown table of sim / real per event with the goal verdicts."""
    lines = [f"\n{title}", "",
             "| event | peak-to-trough sim / real | time to trough sim / real (min) | liq. long sim / real (USD) | "
             "liq. short sim / real (USD) | OI change sim / real | goals met | fall p10..p90 over seeds (paths ending above the start) |",
             "|---|---|---|---|---|---|---|---|"]
    captured = False
    for r in rows:
        s, real, met = r["sim"], r["real"], r["met"]
        oi = "n/a" if real.get("oi_change") is None else f"{s['oi_change']:+.1%} / {real['oi_change']:+.1%}"
        ll, ls = (_liq_cell(s, real, side) for side in ("long", "short"))
        captured = captured or any(_reported(s, side) is not None for side in ("long", "short"))
        goals = [k for k in ("peak_to_trough", "time_to_trough", "liq_long", "liq_short") if k in met]
        verdict = f"{sum(met[k] for k in goals)}/{len(goals)}"
        sp = r.get("spread")
        fits = "" if not sp or sp.get("fits", 1) == 1 else f"{sp['fits']} fits x "
        band = "n/a" if not sp else (f"{sp['peak_to_trough_p10_p90'][0]:+.1%} .. {sp['peak_to_trough_p10_p90'][1]:+.1%} "
                                      f"({fits}{sp['seeds']} seeds" + (f", {sp['paths_up']} end up)" if "paths_up" in sp else ")"))
        lines.append(f"| {r['event']} | {s['peak_to_trough']:+.1%} / {real['peak_to_trough']:+.1%} | "
                     f"{s['time_to_trough_min']:.0f} / {real['time_to_trough_min']:.0f} | {ll} | {ls} | {oi} | {verdict} | {band} |")
    from feeds.cascade.calib import summary

    t = summary(rows)
    pp = "" if t["loss_per_path"] is None else f", {t['loss_per_path']:.2f} per path (mean of each path's own loss)"
    lines += ["", f"goals met {t['met']} of {t['goals']}; mean loss {t['loss']:.2f} (of the seed-mean figures){pp}"]
    if captured:
        lines.append("liquidations 'reported X of Y': Y is the simulated notional, X = liq_capture x Y is what the throttled "
                     "public feeds behind the Coinalyze totals would report of it, and X is what is scored")
    return "\n".join(lines)


def _reported(sim: dict, side: str):
    """The simulated notional as the event's source would report it, when that differs from it."""
    v = sim.get(f"liq_{side}_reported_usd")
    return None if v is None or v == sim[f"liq_{side}_usd"] else v


def _liq_cell(sim: dict, real: dict, side: str) -> str:
    if not real.get(f"liq_{side}_usd"):
        return "n/a"
    rep = _reported(sim, side)
    got = _fmt_usd(sim[f"liq_{side}_usd"]) if rep is None else f"reported {_fmt_usd(rep)} of {_fmt_usd(sim[f'liq_{side}_usd'])}"
    return f"{got} / {_fmt_usd(real[f'liq_{side}_usd'])}"


def _fixed(items: list[str] | None, free: list[str] | None = None,
           defaults: dict[str, float] | None = None) -> dict[str, float]:
    """The parameters held at a value: ``defaults`` less the ``--free NAME`` ones, then ``--fix
    NAME=VALUE`` (repeatable; it overrides a default). One clear line for a malformed or repeated
    item, a ``--free`` name that is not held by default, or a name both freed and fixed."""
    from risk.errors import DeleverageError

    held = dict(defaults or {})
    for name in free or []:
        if name not in held:
            raise DeleverageError(f"--free {name}: not held by default; only {', '.join(held) or 'none'} "
                                  f"{'is' if len(held) == 1 else 'are'} (every other parameter is fitted already)")
        if (free or []).count(name) > 1:
            raise DeleverageError(f"--free {name}: given twice")
        del held[name]
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not name or number is None:
            raise DeleverageError(f"--fix {item!r}: expected NAME=VALUE with a number, e.g. flow_noise=0")
        if name in out:
            raise DeleverageError(f"--fix {name}: given twice")
        if name in (free or []):
            raise DeleverageError(f"--fix {name} and --free {name}: use one of them")
        out[name] = number
    return {**held, **out}


def _bounds(items: list[str] | None) -> dict[str, tuple[float, float]]:
    """``--bound NAME=LO:HI`` (repeatable): the search ranges to replace, or one clear line for a
    malformed or repeated item (names and values are checked by ``calib.check_bounds``)."""
    from risk.errors import DeleverageError

    out: dict[str, tuple[float, float]] = {}
    for item in items or []:
        name, sep, rng = item.partition("=")
        name = name.strip()
        lo, colon, hi = rng.partition(":")
        try:
            pair = (float(lo), float(hi))
        except ValueError:
            pair = None
        if not sep or not name or not colon or pair is None:
            raise DeleverageError(f"--bound {item!r}: expected NAME=LO:HI with two numbers, e.g. oi_turnover=0.02:10")
        if name in out:
            raise DeleverageError(f"--bound {name}: given twice")
        out[name] = pair
    return out


def _seed_list(text: str) -> tuple[int, ...]:
    """``--seeds 0,1,2``: distinct non-negative integers (``engine.config.parse_list``), or one clear line."""
    from engine.config import parse_list
    from risk.errors import DeleverageError

    seeds = tuple(parse_list(text, "--seeds", int))
    if min(seeds) < 0:
        raise DeleverageError(f"--seeds {text!r}: {min(seeds)} is negative; expected seeds >= 0, e.g. 0,1,2")
    return seeds


def _seed_range(text: str) -> tuple[int, ...]:
    """``--score-seeds 10:110``: the seeds START..END-1 (0 <= START < END), or one clear line."""
    from risk.errors import DeleverageError

    a, sep, b = text.partition(":")
    try:
        lo, hi = int(a), int(b)
    except ValueError:
        lo = hi = -1
    if not sep or lo < 0 or hi <= lo:
        raise DeleverageError(f"--score-seeds {text!r}: expected START:END with 0 <= START < END (the seeds "
                              "START..END-1), e.g. 10:110")
    return tuple(range(lo, hi))


def _seed_text(seeds) -> str:
    s = list(seeds)
    return f"{s[0]}-{s[-1]}" if s == list(range(s[0], s[-1] + 1)) else ",".join(map(str, s))


def _check_fit_numbers(args: argparse.Namespace) -> None:
    """Counts of the fit that must be at least 1 (and a seed at least 0): one clear line each."""
    from risk.errors import DeleverageError

    for flag, value, least in (("--maxiter", args.maxiter, 1), ("--popsize", args.popsize, 1),
                               ("--workers", args.workers, 1), ("--optimizer-seed", args.optimizer_seed, 0)):
        if value is not None and value < least:
            raise DeleverageError(f"{flag} {value}: expected an integer of at least {least}")


def _calibrate_legacy(args: argparse.Namespace) -> int:
    from feeds.cascade import fit

    seeds = _seed_list(args.seeds or "0,1,2")
    if args.shipped:
        theta = fit.fitted_theta()
        r = fit.CalibrationResult(theta, fit.evaluate("519", theta, seeds, data_path=args.data_path),
                                  fit.evaluate("312", theta, seeds, data_path=args.data_path), {"shipped": True})
    else:
        r = fit.calibrate(seeds=seeds, maxiter=args.maxiter or 40, popsize=args.popsize or 8,
                          data_path=args.data_path)
    print("SIMULATOR CALIBRATION (legacy: fitted on real BitMEX 519, 312 held out)")
    print("theta: " + ", ".join(f"{k}={v:.4g}" for k, v in r.theta.items()))
    _print_eval("519 fit     ", r.fit)
    _print_eval("312 hold-out", r.holdout)
    if args.out:
        r.save(args.out)
        print(f"wrote {args.out}")
    return 0


def _coinglass(args: argparse.Namespace) -> int:
    from feeds.cascade.calib import coinglass_check

    r = coinglass_check(data_path=args.data_path, days=args.days)
    print("OUT-OF-SAMPLE check: CoinGlass hourly BTC liquidations (Binance+Bybit+OKX, 2025-11..2026-05; never fitted on)")
    print("vs the SIMULATED hourly liquidations of the five calibration events (shipped fit, seed 0)")
    print("| series | long liquidations in 24 h | peak-hour share of longs | short share | legs |")
    print("|---|---|---|---|---|")
    for x in r["real"]:
        print(f"| real {x['day']} | {x['long_usd'] / 1e6:,.0f}M | {x['peak_hour_share']:.0%} | {x['short_share']:.0%} | {x['legs']} |")
    for x in r["sim"]:
        print(f"| SIMULATED {x['event']} | - | {x['peak_hour_share']:.0%} | {x['short_share']:.0%} | {x['legs']} |")
    return 0
