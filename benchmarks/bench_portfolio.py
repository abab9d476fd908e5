"""Portfolio engines on one scenario cell: the compiled pass against backtrader.

    .venv/bin/python benchmarks/bench_portfolio.py [SCENARIO] [LEVERAGE]

Runs examples/portfolio_btc_eth.toml's BTCUSDT + ETHUSDT portfolio (reconstructed bars) on the
scenario (default 519) at the given gross leverage (default 3) with each engine, checks they
agree, and prints bars, the best of 3 wall times per engine and the ratio (the compile is warmed
up first and not timed).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.fast_portfolio import run_fast_portfolio  # noqa: E402
from engine.portfolio import Leg, PortfolioSpec, run_backtrader  # noqa: E402
from engine.portfolio_stress import _signal, load_portfolio_toml  # noqa: E402
from feeds.scenarios import get_scenario  # noqa: E402


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "519"
    lev = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    spec = load_portfolio_toml(ROOT / "examples" / "portfolio_btc_eth.toml")
    scenario = get_scenario(name)
    legs = []
    for e in spec.symbols:
        bars = scenario.bars(data="reconstructed", asset=e.asset, venue=spec.venue)
        legs.append(Leg(e.symbol, bars, e.weight * lev * _signal(e, bars, scenario.entry_time)))
    p = PortfolioSpec(legs=legs, venue=spec.venue, cash=spec.cash, funding_rate=spec.funding_rate)
    run_fast_portfolio(p)  # compile (cached on disk after the first run)

    def best(fn) -> tuple[float, object]:
        times, out = [], None
        for _ in range(3):
            t = time.perf_counter()
            out = fn(p)
            times.append(time.perf_counter() - t)
        return min(times), out

    t_fast, fast = best(run_fast_portfolio)
    t_bt, slow = best(run_backtrader)
    assert np.allclose(fast.equity, slow.equity, rtol=1e-9, atol=1e-9)
    print(f"scenario {name} x{lev:g}: {len(legs[0].bars)} bars x {len(legs)} symbols")
    print(f"fast {t_fast * 1e3:.1f} ms, backtrader {t_bt * 1e3:.0f} ms, ratio {t_bt / t_fast:.0f}x; "
          f"final equity {fast.equity[-1]:.2f} (both), liquidations {len(fast.events['liquidations'])}")


if __name__ == "__main__":
    main()
