"""Parameter sets of the kernel parity test (tests/cascade/test_kernel_parity.py) and the script
that wrote its golden figures, tests/cascade/kernel_golden.json, from the pure-Python step loop:

    .venv/bin/python tests/cascade/kernel_cases.py    # rewrites kernel_golden.json
    PYTHONPATH=/tmp/old .venv/bin/python tests/cascade/kernel_cases.py COMMIT   # from another
        checkout (git archive COMMIT | tar -x -C /tmp/old), e.g. the last pure-Python loop

Every set is stored in the JSON as its full parameter dict, so the parity test does not depend
on the shipped fit (fitted.json) or on the shared data; the two ``from_market`` sets were built
from the real 519 and 312 bars (calib.params_for with the shipped market fit) when the file was
written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).with_name("kernel_golden.json")
SEEDS = (0, 7)


def cases() -> dict:
    from feeds.cascade import CascadeParams, Shock
    from feeds.cascade.fit import preset

    base = CascadeParams(minutes=120, dt_s=10.0, price0=40_000.0, long_oi_usd=4e9, short_oi_usd=1e9,
                         depth_usd=150e6, engine_rate=0.5, buyer_strength=0.02, noise_per_sqrt_min=0.0005,
                         shocks=(Shock(0.0, 5.0, 300e6),))
    out = {
        # legacy presets: BitMEX (inverse), depth-capped engine, 60-s venue mark; 312 with its halt
        "preset_519": preset("519"),
        "preset_312": preset("312").with_(minutes=8 * 60),
        # linear venue, depth-capped engine, venue mark window (Binance 30 s), sqrt impact, a buy shock
        "binance_capped": base.with_(mark_window_s=None, impact_exponent=0.5,
                                     shocks=(Shock(0.0, 5.0, 300e6), Shock(50.0, 3.0, -200e6))),
        # backlog-proportional engine with the self-exciting and OU flow, rebuilding, a halt
        "binance_tau_flow": base.with_(engine_tau_s=60.0, flow_rate=0.3, flow_tau_min=20.0, flow_excite=0.08,
                                       flow_noise=0.3, rebuild_share=0.4, buyer_strength=0.06,
                                       halts=((30.0, 40.0),)),
        # the insurance fund runs out: ADL on a linear venue (as test_open_interest_is_conserved)
        "binance_adl": base.with_(long_oi_usd=12e9, short_oi_usd=6e9, depth_usd=60e6, engine_rate=0.1,
                                  insurance_fund_usd=0.0, shocks=(Shock(0.0, 5.0, 600e6), Shock(60.0, 5.0, -900e6))),
        # ... and with adl off (the fund is floored at 0 only with adl on; here it goes negative)
        "binance_no_adl": base.with_(long_oi_usd=12e9, short_oi_usd=6e9, depth_usd=60e6, engine_rate=0.1,
                                     insurance_fund_usd=0.0, adl=False, shocks=(Shock(0.0, 5.0, 600e6),)),
        # ADL on the inverse venue, backlog engine and rebuilding, Hyperliquid-length mark window
        "bitmex_adl_tau": base.with_(venue="bitmex", long_oi_usd=12e9, short_oi_usd=6e9, depth_usd=60e6,
                                     engine_tau_s=400.0, insurance_fund_usd=1e6, rebuild_share=0.3,
                                     mark_window_s=150.0, shocks=(Shock(0.0, 5.0, 600e6), Shock(60.0, 5.0, -900e6))),
        # Hyperliquid: hourly funding, its venue mark window and engine rate
        "hyperliquid": base.with_(venue="hyperliquid", mark_window_s=None, engine_rate=None, flow_excite=0.05,
                                  minutes=180),
    }
    try:
        from feeds.cascade.calib import params_for
        from feeds.cascade.events import EVENTS
        from feeds.cascade.fit import market_theta

        out["market_519"] = params_for(EVENTS["519"], market_theta())
        out["market_312"] = params_for(EVENTS["312"], market_theta())
        # a set the calibration's optimiser can draw in which the Python loop raised OverflowError
        # (math.exp of the last-over-mark premium overflows as the price runs away): the kernel
        # must raise too, or the optimiser's trajectory changes (calib._objective scores it 1e3)
        runaway = {"depth_k": 0.1724, "book_k": 0.1244, "oi_turnover": 0.3754, "lev_share": 0.8766, "flow_rate": 0.03657,
                   "flow_tau_min": 826.2, "flow_excite": 0.2617, "buyer_strength": 0.003703, "rebuild_share": 0.566,
                   "engine_mult": 0.1004, "flow_noise": 0.5034}
        out["market_312_overflow"] = params_for(EVENTS["312"], runaway)
    except Exception as exc:  # shared data absent
        print(f"from_market sets skipped: {exc}", file=sys.stderr)
    return out


def figures(bars) -> dict:
    """Summary, inventory and a few path values of one run."""
    close = bars["close"].to_numpy()
    return {
        "summary": dict(bars.attrs["summary"]),
        "inventory": dict(bars.attrs["inventory"]),
        "close_every_5_min": close[::5].tolist(),
        "sum_liq_long_notional": float(bars["liq_long_notional"].sum()),
        "sum_liq_short_notional": float(bars["liq_short_notional"].sum()),
        "sum_volume": float(bars["volume"].sum()),
        "sum_funding_rate": float(np.nansum(bars["funding_rate"].to_numpy())),
        "sum_open_interest": float(bars["open_interest"].sum()),
        "sum_mark_close": float(bars["mark_close"].sum()),
        "sum_low": float(bars["low"].sum()),
    }


def run(p, seed: int) -> dict:
    """figures() of one run, or {"error": exception type} when simulate raises."""
    from feeds.cascade import simulate

    try:
        bars = simulate(p, seed)
    except (OverflowError, ValueError, ZeroDivisionError, FloatingPointError) as exc:
        return {"error": type(exc).__name__}
    return figures(bars)


def main() -> None:
    # PYTHONPATH=<checkout of the Python loop> runs it on that tree: give its commit as argv[1]
    import feeds

    tree = Path(feeds.__file__).parent.parent
    commit = sys.argv[1] if len(sys.argv) > 1 else subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=tree).stdout.strip()
    doc = {"source": f"feeds.cascade.model.simulate, pure-Python step loop at commit {commit}",
           "seeds": list(SEEDS), "cases": {}}
    for name, p in cases().items():
        runs = {str(s): run(p, s) for s in SEEDS}
        doc["cases"][name] = {"params": p.to_dict(), "runs": runs}
        r0 = runs[str(SEEDS[0])]
        if "error" in r0:
            print(f"{name}: raises {r0['error']}")
        else:
            s0 = r0["summary"]
            print(f"{name}: ptt {s0['peak_to_trough']:.4f} adl_runs {s0['adl_runs']} fund_end {s0['insurance_fund_end_usd']:.3g}")
    GOLDEN.write_text(json.dumps(doc, indent=1, allow_nan=True) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
