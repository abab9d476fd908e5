"""``deleverage liqmap``: the ESTIMATED liquidation map at a moment (notional per price band and side)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("liqmap", help="estimated liquidation map (notional per price band and side) at a moment",
                              description="ESTIMATED liquidation bands from the OI history (or a volume proxy) before --at, "
                                          "the venue's formulas and the calibrated leverage mix; not exchange data.")
    p.add_argument("--data", help="bars before --at (any format `deleverage data` reads, or canonical CSV/Parquet)")
    p.add_argument("--at", help="the moment of the map (UTC); only bars before it are used")
    p.add_argument("--band", type=float, default=0.5, metavar="PCT", help="band width in percent of the price (default 0.5)")
    p.add_argument("--range", dest="range_pct", type=float, default=20.0, metavar="PCT",
                   help="bands span +-PCT around the price (default 20)")
    p.add_argument("--method", choices=("range", "calibrated", "model", "ladder"), default="range",
                   help="range (default: entries across each hour's open/high/low/close, crossed levels partly "
                        "consumed, leverage mix and holding time fitted on realised liquidations), calibrated (entries "
                        "at the typical price, crossed levels removed), model (the cascade simulator's mix) or the "
                        "naive 100/50/25/10/5x ladder")
    p.add_argument("--venue", default=None, help="venue of the liquidation formulas (default: the file's)")
    p.add_argument("--lookback", type=float, default=72.0, metavar="HOURS", help="history used (default 72 h)")
    p.add_argument("--out", default=None, help="bands as Parquet (.parquet) or CSV (.csv)")
    p.add_argument("--chart", default=None, help="HTML chart: price on the side, notional by band, price and key levels")
    p.add_argument("--lines", default=None, metavar="OUT",
                   help="write the bars plus the liquidation-map feed lines (recomputed hourly from the bars before "
                        "each hour) to OUT (.parquet/.csv), for strategies such as liq_band_break")
    p.add_argument("--within", type=float, default=5.0, metavar="PCT", help="with --lines: the 'near' window (default 5 %%)")
    p.add_argument("--stress", default=None, metavar="EVENTS",
                   help="backtest liq_band_break on the real bars of calibration events (e.g. 312,519) with the map "
                        "lines, at each --leverage; prints one row per event and leverage")
    p.add_argument("--leverage", default="1,3,5,10", help="with --stress: comma-separated leverage levels")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="with --stress: liq_band_break parameter (repeatable)")
    p.add_argument("--validate", default=None, metavar="FORCEORDER_CSV",
                   help="instead of a map: score the maps against a Binance forceOrder recording (the calibrated "
                        "map fitted on its earlier hours, scored on the later ones)")
    p.add_argument("--sensitivity", action="store_true",
                   help="with --validate: also print POST-HOC checks of the range map on the later hours (its score "
                        "on a grid of parameters, with consume fixed at 1, and per hour)")
    p.add_argument("--ship", action="store_true",
                   help="with --validate: write the fits into feeds/cascade/fitted.json (key liqmap only)")
    p.set_defaults(func=_run)


# which options each mode of the command reads (flag -> argparse dest, default); any other given option is an error
_OPTIONS = {"--data": ("data", None), "--at": ("at", None), "--band": ("band", 0.5), "--range": ("range_pct", 20.0),
            "--method": ("method", "range"), "--venue": ("venue", None), "--lookback": ("lookback", 72.0),
            "--out": ("out", None), "--chart": ("chart", None), "--within": ("within", 5.0),
            "--leverage": ("leverage", "1,3,5,10"), "--param": ("param", []), "--sensitivity": ("sensitivity", False),
            "--ship": ("ship", False)}
_MODE_USES = {
    "--stress": {"--within", "--band", "--range", "--lookback", "--leverage", "--param"},
    "--validate": {"--sensitivity", "--ship"},
    "--lines": {"--data", "--within", "--band", "--range", "--lookback", "--venue"},
    "a map (--data --at)": {"--data", "--at", "--band", "--range", "--method", "--venue", "--lookback", "--out", "--chart"},
}


def _check_options(args: argparse.Namespace) -> str:
    """The mode of this call, after one clear error for two modes at once or an option the mode would ignore."""
    from risk.errors import DeleverageError

    modes = [m for m, dest in (("--stress", "stress"), ("--validate", "validate"), ("--lines", "lines")) if getattr(args, dest)]
    if len(modes) > 1:
        raise DeleverageError(f"{' and '.join(modes)} are separate modes of liqmap: use one at a time")
    mode = modes[0] if modes else "a map (--data --at)"
    unused = [flag for flag, (dest, default) in _OPTIONS.items()
              if getattr(args, dest) != default and flag not in _MODE_USES[mode]]
    if unused:
        raise DeleverageError(f"{', '.join(unused)}: not used by {mode}; drop {'them' if len(unused) > 1 else 'it'}")
    if not 0 < args.band <= 10:
        raise DeleverageError(f"--band {args.band:g}: expected a band width in (0, 10] percent of the price")
    if not args.band < args.range_pct <= 90:
        raise DeleverageError(f"--range {args.range_pct:g}: expected a span in (--band, 90] percent of the price")
    if args.lookback <= 0:
        raise DeleverageError(f"--lookback {args.lookback:g}: expected a number of hours > 0")
    if args.within <= 0:
        raise DeleverageError(f"--within {args.within:g}: expected a window > 0 percent")
    if args.out and Path(args.out).suffix.lower() not in (".parquet", ".csv"):
        raise DeleverageError(f"--out {args.out}: expected a .parquet or .csv file name")
    return mode


def _run(args: argparse.Namespace) -> int:
    from risk.errors import DeleverageError

    from feeds.cascade import liqmap

    _check_options(args)
    if args.stress:
        return _stress(args)
    if args.validate:
        r = liqmap.validate_force_orders(args.validate)
        print(f"LIQUIDATION MAP VALIDATION against {args.validate} ({r['events']} liquidation orders, "
              f"{r['realised_usd'] / 1e6:,.1f}M USD in {r['hours']} recorded hours)")
        print(f"share of realised notional in the {r['top_bands']} densest {r['band_pct']:g} % bands of its side: "
              f"simulator-mix model {r['model']:.1%}, naive ladder {r['ladder']:.1%} (uniform guess {r['uniform']:.0%})")
        o = r["out_of_sample"]
        f = o["fit"]["params"]
        print(f"calibrated map fitted on {o['fit_hours'][2]} recorded hours {o['fit_hours'][0]} .. {o['fit_hours'][1]} "
              f"({o['fit_usd'] / 1e6:,.1f}M USD): leverage weights lev^{f['power']:g} over "
              f"{'/'.join(f'{x:g}' for x in liqmap.LEVERAGE_GRID)}x, positions held {f['hold_hours']:g} h; "
              f"in the fit window {o['fit']['fit_share']:.1%} (ladder {o['fit_ladder']:.1%})")
        g = o["fit_range"]["params"]
        print(f"range map (default; entries over each hour's open/high/low/close, a fitted fraction of a crossed level consumed) "
              f"fitted on the same hours: lev^{g['power']:g}, held {g['hold_hours']:g} h, consume {g['consume']:g}; "
              f"in the fit window {o['fit_range']['fit_share']:.1%}")
        print(f"OUT OF SAMPLE, {o['test_hours'][2]} later recorded hours {o['test_hours'][0]} .. {o['test_hours'][1]} "
              f"({o['test_usd'] / 1e6:,.1f}M USD): range {o['range']:.1%}, calibrated {o['calibrated']:.1%}, "
              f"simulator-mix model {o['model']:.1%}, naive ladder {o['ladder']:.1%} (uniform guess {r['uniform']:.0%})")
        v = o["reverse"]
        print(f"robustness check (reverse split: fitted on the later hours, scored on the earlier): "
              f"range {v['range']['score']:.1%} (lev^{v['range']['params']['power']:g}, "
              f"{v['range']['params']['hold_hours']:g} h, consume {v['range']['params']['consume']:g}), "
              f"calibrated {v['calibrated']['score']:.1%}, naive ladder {v['ladder']:.1%}")
        if args.sensitivity:
            _sensitivity(liqmap.sensitivity_force_orders(args.validate))
        if args.ship:
            from importlib import resources

            target = Path(str(resources.files("feeds.cascade") / "fitted.json"))
            liqmap.ship(r, target)
            print(f"shipped the maps' fits in {target} (key liqmap)")
        return 0
    from feeds.detect import load

    if args.lines:
        if not args.data:
            raise DeleverageError("liqmap --lines needs --data FILE")
        from engine.commands.scenarios import write_frame

        frame = load(args.data)
        out = liqmap.map_lines(frame, within_pct=args.within, band_pct=args.band, range_pct=args.range_pct,
                               lookback_hours=args.lookback, venue=args.venue)
        path = write_frame(out, args.lines)
        n = int(out["liqmap_long_near_usd"].notna().sum())
        print(f"wrote {len(out)} bars with ESTIMATED liquidation-map lines ({n} bars with a map) to {path}")
        return 0
    if not (args.data and args.at):
        raise DeleverageError("liqmap needs --data FILE and --at TIME (or --lines OUT, or --validate FORCEORDER_CSV)")
    frame = load(args.data)
    m = liqmap.liquidation_map(frame, args.at, band_pct=args.band, range_pct=args.range_pct, venue=args.venue,
                               lookback_hours=args.lookback, method=args.method)
    k = m.attrs["key_levels"]
    print(m.attrs["label"])
    print(f"at {m.attrs['at']}: price {k['price']:,.2f}; 24 h range {k['24h_low']:,.2f} .. {k['24h_high']:,.2f}")
    below = m[m["distance_pct"] < 0]
    above = m[m["distance_pct"] > 0]
    for name, sub, col in (("long (below)", below, "long_usd"), ("short (above)", above, "short_usd")):
        top = sub.nlargest(5, col)
        top = top[top[col] > 0]
        print(f"densest {name} bands: " + ("; ".join(f"{r.band_low:,.0f}-{r.band_high:,.0f}: {r[col] / 1e6:,.1f}M"
                                                   for _, r in top.iterrows()) or "none"))
        for pct in (2, 5, 10):
            near = sub[sub["distance_pct"].abs() <= pct][col].sum()
            print(f"  within {pct:>2} %: {near / 1e6:,.1f}M USD")
    for side in ("long", "short"):
        b = liqmap.dense_band(m, side)
        if b:
            print(f"nearest dense {side} band: {min(b):,.0f} .. {max(b):,.0f}")
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".parquet":
            out = m.copy()
            out.attrs = {k_: (str(v) if not isinstance(v, (str, int, float)) else v) for k_, v in m.attrs.items()}
            out.to_parquet(path)
        else:  # .csv (checked before the map is built)
            m.to_csv(path)
        print(f"wrote {len(m)} bands to {path}")
    if args.chart:
        write_chart(m, args.chart)
        print(f"wrote chart {args.chart}")
    return 0


def _sensitivity(s: dict) -> None:
    print("POST-HOC (the later hours were already scored): range map share on the later hours by parameters")
    print("| power | hold (h) | consume | share |")
    print("|---|---|---|---|")
    for c, share in s["grid"]:
        print(f"| {c['power']:g} | {c['hold_hours']:g} | {c['consume']:g} | {share:.1%} |")
    above = sum(share > s["ladder"] for _, share in s["grid"])
    shares = [share for _, share in s["grid"]]
    print(f"{above} of {len(shares)} points beat the naive ladder's {s['ladder']:.1%} "
          f"(range {min(shares):.1%} .. {max(shares):.1%})")
    e = s["entries_only"]
    print(f"consume fixed at 1 (crossed levels removed whole; only the entries over each hour's range new): fitted "
          f"lev^{e['params']['power']:g}, {e['params']['hold_hours']:g} h, {e['fit_share']:.1%} in the fit window, "
          f"{e['score']:.1%} on the later hours")
    print("| hour | realised (M USD) | range | calibrated | naive ladder |")
    print("|---|---|---|---|---|")
    for r in s["per_hour"]:
        print(f"| {r['hour'][:16]} | {r['usd'] / 1e6:.2f} | {r['range']:.1%} | {r['calibrated']:.1%} | {r['ladder']:.1%} |")


def write_chart(m, out: str) -> Path:
    """Horizontal bars: price on the vertical axis, long notional to the left, short to the right."""
    import plotly.graph_objects as go

    k = m.attrs["key_levels"]
    fig = go.Figure()
    fig.add_bar(y=m["mid"], x=-m["long_usd"] / 1e6, orientation="h", name="longs liquidated if price falls here (M USD)",
                marker_color="#c0392b")
    fig.add_bar(y=m["mid"], x=m["short_usd"] / 1e6, orientation="h", name="shorts liquidated if price rises here (M USD)",
                marker_color="#27ae60")
    for name, level, dash in (("price", k["price"], "solid"), ("24 h high", k["24h_high"], "dot"),
                              ("24 h low", k["24h_low"], "dot"), ("densest long band", k.get("densest_long_band"), "dash"),
                              ("densest short band", k.get("densest_short_band"), "dash")):
        if level is not None:
            fig.add_hline(y=level, line_dash=dash, annotation_text=f"{name} {level:,.0f}", annotation_position="top left")
    fig.update_layout(title=f"{m.attrs['label']}<br>at {m.attrs['at']} ({m.attrs['venue']}, {m.attrs['method']})",
                      barmode="overlay", xaxis_title="notional per band (M USD; longs left, shorts right)",
                      yaxis_title="price", bargap=0.05, height=800)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs="cdn")
    return path


def _stress(args: argparse.Namespace) -> int:
    """liq_band_break on the real BitMEX bars of 312/519 (map lines from the bars before each hour)."""
    from engine.commands.backtest import parse_params
    from engine.config import parse_list
    from engine.runner import RunConfig, run_backtest
    from feeds.cascade.events import EVENTS, market_frame
    from feeds.cascade.liqmap import map_lines
    from risk.errors import DeleverageError
    from strategies import LiqBandBreak

    params = {"lookback": 240, "max_hold": 240, **parse_params(args.param)}
    levels = parse_list(args.leverage, "--leverage", float)
    if not all(x > 0 for x in levels):
        raise DeleverageError(f"--leverage {args.leverage!r}: every leverage must be > 0")
    events = parse_list(args.stress, "--stress")
    for name in events:
        if name not in ("312", "519"):
            raise DeleverageError(f"--stress {name!r}: real minute bars exist for 312 and 519 only")
    print(f"STRESS of liq_band_break on real bars with ESTIMATED liquidation-map lines; params {params}")
    print("| event | bars | leverage | return | max drawdown | trades | exits (band edge / stop / max hold) | liquidated |")
    print("|---|---|---|---|---|---|---|---|")
    for name in events:
        frame = market_frame(EVENTS[name], getattr(args, "data_path", None))
        if name == "519":  # Binance funding was placed as a sentiment input; the BitMEX run uses a constant rate
            frame = frame.drop(columns=["funding_rate"])
        bars = map_lines(frame, within_pct=args.within, band_pct=args.band, range_pct=args.range_pct,
                         lookback_hours=args.lookback)
        for lev in levels:
            cfg = RunConfig(strategy="liq_band_break", params={**params, "leverage": lev}, venue="bitmex", cash=1.0,
                            leverage=lev, funding_rate=None if "funding_rate" in bars else 0.0001)
            captured = {}

            class Probe(LiqBandBreak):
                def stop(self) -> None:
                    captured["s"] = self

            res = run_backtest(bars, Probe, cfg)
            ev = [s["event"] for s in captured["s"].signals]
            summ = res.summary
            print(f"| {name} | {bars.index[0]:%Y-%m-%d} .. {bars.index[-1]:%m-%d} | {lev:g}x | {summ['total_return']:+.1%} | "
                  f"{summ['max_drawdown']:.1%} | {ev.count('entry')} | {ev.count('band_far_edge')} / {ev.count('stop')} / "
                  f"{ev.count('max_hold')} | {ev.count('liquidated')} |")
    return 0
