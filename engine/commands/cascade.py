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
    p.add_argument("--preset", choices=("519", "312", "default"), default="519",
                   help="initial conditions with the shipped fitted parameters (default 519)")
    p.add_argument("--params", default=None, help="JSON file of CascadeParams fields (overrides the preset)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override one parameter (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=1, help="Monte Carlo: number of seeds (seed, seed+1, ...)")
    p.add_argument("--vary", action="append", default=[], metavar="NAME=LO:HI", help="Monte Carlo: draw NAME in [LO, HI]")
    p.add_argument("--out", required=True, help="bars (.csv/.parquet) for one run, or the summary CSV for --runs > 1")
    p.set_defaults(func=_simulate)
    c = sub.add_parser("calibrate", help="fit on the real 519 BitMEX path, score 312 out of sample")
    c.add_argument("--maxiter", type=int, default=40)
    c.add_argument("--popsize", type=int, default=8)
    c.add_argument("--seeds", default="0,1,2", help="comma-separated simulation seeds (common random numbers)")
    c.add_argument("--data-path", default=None, help="folder with the real BitMEX 1-minute files")
    c.add_argument("--out", default=None, help="write the calibration (theta, errors, parameter sets) as JSON")
    c.add_argument("--shipped", action="store_true", help="only re-score the shipped fit (no optimisation)")
    c.set_defaults(func=_calibrate)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _params(args: argparse.Namespace):
    from feeds.cascade import CascadeParams, preset
    from risk.errors import DeleverageError

    params = CascadeParams() if args.preset == "default" else preset(args.preset)
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
        print(f"SIMULATED: {len(table)} runs -> {out}; peak-to-trough 5/50/95 %: {q.iloc[0]:+.1%} / {q.iloc[1]:+.1%} / {q.iloc[2]:+.1%}")
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


def _calibrate(args: argparse.Namespace) -> int:
    from feeds.cascade import fit

    seeds = tuple(int(s) for s in args.seeds.split(","))
    if args.shipped:
        theta = fit.fitted_theta()
        r = fit.CalibrationResult(theta, fit.evaluate("519", theta, seeds, data_path=args.data_path),
                                  fit.evaluate("312", theta, seeds, data_path=args.data_path), {"shipped": True})
    else:
        r = fit.calibrate(seeds=seeds, maxiter=args.maxiter, popsize=args.popsize,
                          data_path=args.data_path)
    print("SIMULATOR CALIBRATION (fitted on real BitMEX 519, 312 held out)")
    print("theta: " + ", ".join(f"{k}={v:.4g}" for k, v in r.theta.items()))
    _print_eval("519 fit     ", r.fit)
    _print_eval("312 hold-out", r.holdout)
    if args.out:
        r.save(args.out)
        print(f"wrote {args.out}")
    return 0
