"""``deleverage demo``: the quick start. Stress every reference strategy through the built-in
scenarios, write the report and print where it is.

Nothing is downloaded: 312 and 519 run on the **real** BitMEX XBTUSD 1-minute bars shipped in
the package (``--data auto``), the other scenarios on the built-in **reconstructions** (seeded
price paths pinned to each event's published waypoints, with real minute statistics) unless the
fetch cache holds their real bars; every table row and report cell says which. The default subset keeps a fresh machine under a few minutes: the 6 reference strategies x 4
scenarios (312, 519, ftx, 2024-08-05) x 3 leverage levels (3, 10, 25), isolated margin,
each scenario on its default venue.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

DEMO_SCENARIOS = "312,519,ftx,2024-08-05"
DEMO_LEVERAGE = "3,10,25"
DEMO_OUT = Path("runs") / "demo"
# strategies that cannot run on the built-in scenarios' bars: left out of the default demo (said so)
NEEDS_OTHER_INPUT = {"liq_band_break": "needs liquidation-map lines (deleverage liqmap --lines) the scenarios do not have"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="stress the reference strategies over the built-in scenarios, write the report",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", default=DEMO_SCENARIOS, help=f"comma-separated scenarios (default {DEMO_SCENARIOS}; `all`)")
    p.add_argument("--leverage", default=DEMO_LEVERAGE, help=f"comma-separated leverage levels (default {DEMO_LEVERAGE})")
    p.add_argument("--strategies", default=None, help="comma-separated strategies (default: every reference strategy)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("--out", type=Path, default=None,
                   help="stress directory (default runs/demo, replaced by each demo; any other --out follows the "
                        "stress rule: refused when it holds a run, unless --resume or --overwrite)")
    from engine.commands.stress import add_rerun_options

    add_rerun_options(p)
    p.add_argument("--data", choices=("auto", "real", "reconstructed"), default="auto",
                   help="auto (default): real bars where shipped (312, 519) or cached, else the reconstruction")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.commands.stress import parse_wipeout, run_mode
    from engine.config import parse_list
    from engine.stress import StressSpec, format_table, load_scenario, run_stress
    from strategies import REGISTRY

    skipped = {k: v for k, v in NEEDS_OTHER_INPUT.items() if k in REGISTRY} if not args.strategies else {}
    strategies = (parse_list(args.strategies, "--strategies") if args.strategies
                  else [name for name in REGISTRY if name not in skipped])
    scenarios = parse_list(args.scenarios, "--scenarios")
    if scenarios == ["all"]:
        from feeds.scenarios import scenario_names

        scenarios = list(scenario_names())
    spec = StressSpec(strategy=strategies[0], scenarios=scenarios,
                      leverages=parse_list(args.leverage, "--leverage", float), data_kind=args.data,
                      workers=args.workers, wipeout=parse_wipeout(args.wipeout))
    spec.validate()
    inputs = [load_scenario(name, spec.data_kind) for name in scenarios]
    mode = run_mode(args)
    if args.out is None:  # the demo's own folder: a new demo replaces the last one
        args.out = DEMO_OUT
        mode = "resume" if args.resume else "overwrite"
    cells = len(strategies) * len(scenarios) * len(spec.leverages)
    used = ", ".join(f"{i.name} {'REAL ' + str(i.bars.attrs.get('venue', '')) if i.kind == 'real' else 'RECONSTRUCTED'}"
                     + (f" ({i.bars.attrs['origin']})" if i.kind == "real" and i.bars.attrs.get("origin") else "")
                     for i in inputs)

    def announce() -> None:  # once every input is checked: bad input is one line with nothing before it
        print(f"demo: {len(strategies)} strategies x {len(scenarios)} built-in scenarios x {len(spec.leverages)} "
              f"leverage levels = {cells} runs (nothing downloaded) -> {args.out}\n  data: {used}", file=sys.stderr)
        for name, why in skipped.items():
            print(f"  not in the demo: {name} ({why}; run it with deleverage stress on such bars)", file=sys.stderr)

    start = time.perf_counter()
    result = run_stress(spec, args.out, inputs=inputs, strategies=strategies, mode=mode, announce=announce)
    print(format_table(result))
    report = None
    if not args.no_report:
        from reports.html import render

        report = render(result.path)
    print(f"\n{cells} runs in {time.perf_counter() - start:.0f} s")
    print(f"stress directory: {result.path.resolve()}")
    if report:
        print(f"report: {Path(report).resolve()}")
    return 0
