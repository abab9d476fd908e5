"""``deleverage scenarios list|show|export``: the built-in waterfall library."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("scenarios", help="the built-in liquidation waterfalls (312, 519, ...)",
                                   description="List, show and export the built-in waterfall scenarios. Paths are "
                                               "RECONSTRUCTIONS through published waypoints unless --data real.")
    sub = parser.add_subparsers(dest="scenarios_command", metavar="ACTION")
    p_list = sub.add_parser("list", help="list the scenarios")
    p_list.set_defaults(func=_list)
    for name, helptext, func in (("show", "facts, sources and figures of one scenario", _show),
                                 ("export", "write a scenario's 1-minute bars to CSV or Parquet", _export)):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("name", help="scenario name or alias, e.g. 312, 519, luna, 2025-10-10")
        p.add_argument("--asset", default="BTC", help="BTC (default) or ETH where the facts allow")
        p.add_argument("--venue", default=None, help="venue of the path (default: the scenario's default venue)")
        p.add_argument("--data", choices=("reconstructed", "real", "auto"), default="reconstructed",
                       help="reconstructed (default), real exchange bars where available (312, 519: BitMEX, shipped "
                            "in the package), or auto (real where shipped or cached, else reconstructed)")
        p.add_argument("--data-path", default=None, help="file or folder with the real data, or a `deleverage data fetch` cache folder "
                            "(default: the shipped bars, $DELEVERAGE_SHARED_DATA, ../shared/data, then the fetch cache)")
        p.add_argument("--seed", type=int, default=None, help="reconstruction seed (default: fixed per scenario)")
        if name == "export":
            p.add_argument("--out", required=True, help="output file: .csv or .parquet (metadata in FILE.meta.json)")
        p.set_defaults(func=func)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _list(args: argparse.Namespace) -> int:
    from feeds.scenarios import list_scenarios

    print(f"{'name':<11} {'window (UTC)':<35} {'venue':<13} {'assets':<8} {'real data':<22} title")
    for s in list_scenarios():
        window = f"{s.start:%Y-%m-%d %H:%M} .. {s.end:%Y-%m-%d %H:%M}"
        # where --data real would find bars now: shared data or the `deleverage data fetch` cache
        found = s.real_sources()
        real = ",".join(dict.fromkeys(f"{src['venue']} ({src['origin']})" for src in found)) or "-"
        print(f"{s.name:<11} {window:<35} {s.default_venue:<13} {'+'.join(s.assets):<8} {real:<22} {s.title}")
    print("\nPaths are RECONSTRUCTIONS (seeded, through published waypoints, real BitMEX minutes between them) "
          "unless --data real/auto; 312 and 519 ship their real BitMEX XBTUSD minutes in the package.")
    return 0


def checked_request(args: argparse.Namespace) -> Any:
    """The scenario of ``args.name`` with --asset, --venue, --seed, --data and --data-path checked
    (one clear error naming the option, before anything is printed or written); --asset and
    --venue are normalised to the catalogue's spelling (case-insensitive)."""
    from feeds.scenarios import ADL_FLOWS, get_scenario
    from feeds.scenarios.real import CACHE_VENUES
    from risk.errors import DeleverageError

    s = get_scenario(args.name)
    assets = {a.upper(): a for a in s.assets}
    asset = assets.get(str(args.asset).strip().upper())
    if asset is None:
        raise DeleverageError(f"--asset {args.asset}: scenario {s.name} has no such path; expected one of "
                              f"{', '.join(s.assets)}")
    args.asset = asset
    if args.seed is not None and args.seed < 0:
        raise DeleverageError(f"--seed {args.seed}: expected a non-negative integer (0, 1, 2, ...)")
    if args.data_path is not None:
        if args.data == "reconstructed":
            raise DeleverageError(f"--data-path {args.data_path}: only read with --data real or auto; --data "
                                  "reconstructed builds the path from the catalogue (drop --data-path, or add --data real)")
        if not Path(args.data_path).exists():
            raise DeleverageError(f"--data-path {args.data_path}: no such file or folder")
    if args.venue is not None:
        venue = str(args.venue).strip().lower()
        recon = [*s.paths[asset], *(v for (n, v) in ADL_FLOWS if n == s.name and v not in s.paths[asset])]
        real = list(dict.fromkeys([*s.venues, *s.real_venues(asset), *CACHE_VENUES]))
        allowed = recon if args.data == "reconstructed" else real if args.data == "real" else list(dict.fromkeys(recon + real))
        if venue not in allowed:
            raise DeleverageError(f"--venue {args.venue}: scenario {s.name} ({asset}, --data {args.data}) has no such "
                                  f"venue; expected one of {', '.join(allowed)}")
        args.venue = venue
    if args.seed is not None and args.data != "reconstructed" and (
            args.data == "real" or s.real_sources(asset, args.venue, args.data_path)):
        raise DeleverageError(f"--seed {args.seed}: only a reconstruction has a seed; --data {args.data} reads the "
                              "real exchange bars here (drop --seed, or use --data reconstructed)")
    return s


def _show(args: argparse.Namespace) -> int:
    s = checked_request(args)
    bars = s.bars(data=args.data, data_path=args.data_path, asset=args.asset, venue=args.venue, seed=args.seed)
    print(s.title if s.title.startswith(s.name) else f"{s.name}: {s.title}")  # the title once
    print(f"window      {s.start:%Y-%m-%d %H:%M} .. {s.end:%Y-%m-%d %H:%M} UTC ([start, end), 1-minute bars)")
    print(f"entry time  {s.entry_time:%Y-%m-%d %H:%M} UTC (suggested: positions open by then); fall starts {s.fall_start:%Y-%m-%d %H:%M}")
    print(f"venues      {', '.join(s.venues)} (default {s.default_venue}); paths: "
          + "; ".join(f"{a}: {', '.join(v)}" for a, v in s.paths.items()))
    _print_real_sources(s, args)
    print("\nFacts")
    for f in s.facts:
        print(f"  - {f['fact']}: {f['value']}\n      source: {s.source_text(f['source'])}")
    print(f"\n{str(bars.attrs['label']).replace(s.title, s.name)}")
    if bars.attrs.get("provenance"):
        for key, text in bars.attrs["provenance"].items():
            print(f"  {key:<17} {text}")
    if bars.attrs["kind"] == "reconstructed":
        print(f"  {bars.attrs.get('bootstrap', '')} (seed {bars.attrs['seed']})")
        path_venue = _path_venue(s, args)
        print(f"Figures ({args.asset}, {path_venue}"
              + (f" path, with {bars.attrs['venue']}'s ADL flow" if path_venue != bars.attrs["venue"] else "")
              + "): catalogue vs reconstruction")
        for key, w in s.figures(args.asset, _path_venue(s, args)).items():
            row = bars.loc[w["bar_time"] if "bar_time" in w else _ts(w["time"])]
            got = float(row[w["at"]])
            tag = " [ASSUMED]" if w["source"] == "assumed" else ""
            print(f"  {key:<10} {w['time']} {w['at']:<5} catalogue {w['price']:>12,.2f}  reconstructed {got:>12,.2f}{tag}")
        for a in bars.attrs.get("assumptions", []):
            print(f"  note: {a}")
    print()
    _print_extremes(s, bars, args)
    for side in ("long", "short"):
        col = f"liq_{side}_notional"
        if col in bars:
            print(f"{side:<5} liquidations {bars[col].sum() / 1e6:,.1f}M USD in the window")
    fund = bars["funding_rate"].dropna() if "funding_rate" in bars else []
    if len(fund):
        print("funding     " + ", ".join(f"{t:%m-%d %H:%M} {r:+.4%}" for t, r in fund.items()))
    _print_realism(s, bars, args)
    return 0


def _path_venue(s: Any, args: argparse.Namespace) -> str:
    """The venue whose catalogue path a reconstruction uses (a venue with only an ADL flow, such as
    Hyperliquid on 2025-10-10, runs on the scenario's default path)."""
    venue = args.venue or s.default_venue
    return venue if venue in s.paths.get(args.asset, {}) else s.default_venue


def _print_extremes(s: Any, bars: Any, args: argparse.Namespace) -> None:
    """The bars' own high and low (last and mark); a reconstruction's against its envelope."""
    low_t, high_t = bars["low"].idxmin(), bars["high"].idxmax()
    print(f"last  high {bars['high'].max():,.2f} at {high_t:%Y-%m-%d %H:%M}, low {bars['low'].min():,.2f} at "
          f"{low_t:%Y-%m-%d %H:%M}; peak-to-trough {bars['low'].min() / bars['high'].loc[:low_t].max() - 1:+.2%}")
    if "mark_low" in bars:
        print(f"mark  high {bars['mark_high'].max():,.2f}, low {bars['mark_low'].min():,.2f} "
              "(liquidations trigger on the mark)")
    if bars.attrs["kind"] != "reconstructed":
        return
    from feeds.scenarios.reconstruct import ENVELOPE

    prices = [w["price"] for w in s.path_spec(args.asset, _path_venue(s, args))["waypoints"]]
    lo, hi = min(prices) / (1 + ENVELOPE), max(prices) * (1 + ENVELOPE)
    cols = [c for c in ("high", "low", "mark_high", "mark_low") if c in bars]
    out = [f"{c} {bars[c].max() if 'high' in c else bars[c].min():,.2f}" for c in cols
           if (bars[c].max() > hi if "high" in c else bars[c].min() < lo)]
    print(f"envelope    waypoints {min(prices):,.2f} .. {max(prices):,.2f}; the reconstruction stays within "
          f"{ENVELOPE:.0%} ({lo:,.2f} .. {hi:,.2f}): " + ("OUTSIDE: " + ", ".join(out) if out else "inside"))


def _print_realism(s: Any, bars: Any, args: argparse.Namespace) -> None:
    """The path's realism figures (feeds.scenarios.realism), against the real minutes where known."""
    from feeds.scenarios.realism import compare, figures, format_rows
    from risk.errors import DeleverageError

    got = figures(bars)
    real, what = None, ""
    if bars.attrs["kind"] != "real" and s.real_sources("BTC", None, args.data_path):
        try:
            ref = s.bars(data="real", data_path=args.data_path, asset="BTC")
            real = figures(ref)
            what = f" vs the real {ref.attrs['venue']} {ref.attrs['symbol']} minutes of the window"
            if args.asset != "BTC" or bars.attrs["venue"] != ref.attrs["venue"]:
                what += f" (the nearest real reference for {args.asset} on {bars.attrs['venue']})"
        except DeleverageError:
            real = None
    print(f"\nRealism of this {bars.attrs['kind']} path (1-minute log returns of the close{what}):")
    print("  acf = autocorrelation at lag k; vr = variance ratio VR(q) (1 = random walk, > 1 = trends a moving "
          "average can harvest); range_share = minutes with high/low - 1 > 1 %")
    for line in format_rows(compare(got, real)):
        print(line)


def _print_real_sources(s: Any, args: argparse.Namespace) -> None:
    """Whether real bars of the window are available (--data real) and from where, in the order used."""
    from feeds.scenarios.real import CACHE_VENUES, fetch_commands, missing_error

    found = s.real_sources(args.asset, args.venue, args.data_path)
    for i, src in enumerate(found):
        where = (f"from the fetch cache {src['root']} ({', '.join(src['roles'])})" if src["kind"] == "cache"
                 else f"shipped in the package ({src['provenance']['file']})" if src["kind"] == "shipped"
                 else f"from the {src['origin']}: {src['files'][0]}")
        print(f"{'real data' if i == 0 else '':<11} {src['venue']} {src['symbol']} {where}"
              + (" <- used by --data real" if i == 0 and len(found) > 1 else ""))
    want = args.venue or s.default_venue
    if found and args.data_path is None and want in CACHE_VENUES and want not in {f["venue"] for f in found}:
        cmd = fetch_commands(want, s.venue_symbol(args.asset, want), s.start, s.end)[0]
        print(f"{'':<11} ({want} is not in the fetch cache; `{cmd}` would get it, then --venue {want})")
    if not found:
        why = str(missing_error(s, args.asset, args.venue, args.data_path)).split("\n", 1)[-1]
        print("real data   none found (--data real fails; reconstruction only):\n  " + why.replace("\n", "\n  "))


def _ts(text: str):
    import pandas as pd

    return pd.Timestamp(text)


def write_frame(frame: Any, out: str) -> Path:
    """Write bars to .csv or .parquet plus FILE.meta.json holding ``attrs`` (kind, label, source...)."""
    from risk.errors import DeleverageError

    path = Path(out)
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise DeleverageError(f"--out {out}: expected a .csv or .parquet file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.loads(json.dumps(frame.attrs, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    if path.suffix.lower() == ".csv":
        frame.to_csv(path, index_label="open_time", date_format="%Y-%m-%dT%H:%M:%SZ")
    else:
        clean = frame.copy()
        clean.attrs = meta
        clean.to_parquet(path)
    Path(str(path) + ".meta.json").write_text(json.dumps(meta, indent=1))
    return path


def _export(args: argparse.Namespace) -> int:
    from risk.errors import DeleverageError

    if Path(args.out).suffix.lower() not in (".csv", ".parquet"):
        raise DeleverageError(f"--out {args.out}: expected a .csv or .parquet file name")
    s = checked_request(args)
    bars = s.bars(data=args.data, data_path=args.data_path, asset=args.asset, venue=args.venue, seed=args.seed)
    path = write_frame(bars, args.out)
    print(f"wrote {len(bars)} bars to {path} (metadata: {path}.meta.json)")
    print(bars.attrs["label"])
    return 0
