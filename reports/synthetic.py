"""Synthetic results in the stored formats, for the report tests, the benchmark and the docs.

Nothing here simulates a market faithfully: the numbers only have the right shapes and
stories (a long that is liquidated on a one-bar wick, a stress grid where high leverage dies,
an optimization whose in-sample winner is liquidated out of sample).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .results import RunResult


def synthetic_bars(n_bars: int, start: str = "2024-01-01", freq: str = "1min", seed: int = 7,
                   wick_at: float = 0.7, wick_depth: float = 0.18, price: float = 40_000.0) -> pd.DataFrame:
    """Bars in the canonical schema with one deep one-bar wick at fraction ``wick_at``."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n_bars, freq=freq, tz="UTC", name="open_time")
    steps = rng.normal(0.0, 0.0008, n_bars)
    close = price * np.exp(np.cumsum(steps))
    open_ = np.r_[price, close[:-1]]
    spread = np.abs(rng.normal(0, 0.0006, n_bars)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    wick = int(n_bars * wick_at)
    low[wick] = min(open_[wick], close[wick]) * (1 - wick_depth)
    mark_close = close * (1 + rng.normal(0, 0.0002, n_bars))
    mark_low = np.minimum(low * 1.002, mark_close)
    mark_low[wick] = low[wick] * 1.01
    liq_long = np.where(rng.random(n_bars) < 0.05, rng.lognormal(11, 1.5, n_bars), 0.0)
    liq_short = np.where(rng.random(n_bars) < 0.05, rng.lognormal(11, 1.5, n_bars), 0.0)
    liq_long[wick] = 5e8
    frame = pd.DataFrame({
        "open": open_, "high": high, "low": low, "close": close, "volume": rng.lognormal(3, 1, n_bars),
        "mark_open": np.r_[mark_close[0], mark_close[:-1]], "mark_high": np.maximum(high * 0.999, mark_close),
        "mark_low": mark_low, "mark_close": mark_close,
        "liq_long_notional": liq_long, "liq_short_notional": liq_short,
    }, index=idx)
    frame.attrs.update(kind="simulated", source="reports.synthetic", venue="binance-usdm", symbol="BTCUSDT")
    return frame


def synthetic_run(n_bars: int = 2000, leverage: float = 10.0, initial_cash: float = 10_000.0, seed: int = 7,
                  freq: str = "1min", with_bars: bool = True, liquidate: bool = True) -> tuple[RunResult, pd.DataFrame]:
    """A long round trip, then a long that the wick liquidates (when ``liquidate``)."""
    bars = synthetic_bars(n_bars, seed=seed, freq=freq)
    close = bars["close"].to_numpy()
    mark = bars["mark_close"].to_numpy()
    idx = bars.index
    mmr, fee_rate = 0.005, 0.0005
    wick = int(n_bars * 0.7)
    legs = [(n_bars // 10, n_bars // 3), (n_bars // 2, wick if liquidate else n_bars - 5)]
    qty_pos = np.zeros(n_bars)
    liq_price = np.full(n_bars, np.nan)
    wallet = np.full(n_bars, initial_cash)
    unreal = np.zeros(n_bars)
    fees_cum = np.zeros(n_bars)
    funding_cum = np.zeros(n_bars)
    fills, trades, fees, funding, liqs = [], [], [], [], []
    cash = initial_cash
    fee_total = 0.0
    funding_total = 0.0
    for k, (a, b) in enumerate(legs):
        entry = close[a]
        qty = round(cash * leverage / entry, 3)
        lp = entry * (1 - 1 / leverage + mmr)
        fee_in = qty * entry * fee_rate
        cash -= fee_in
        fee_total += fee_in
        fees.append((idx[a], "BTCUSDT", "trade", fee_in))
        fills.append((idx[a], "BTCUSDT", "buy", qty, entry, fee_in, 0.0, "trade"))
        is_liq = liquidate and k == 1
        for i in range(a, b):
            if i > a and (i - a) % 480 == 0:
                amount = -qty * mark[i] * 0.0001
                funding_total += amount
                cash += amount
                funding.append((idx[i], "BTCUSDT", qty, mark[i], 0.0001, amount))
            qty_pos[i] = qty
            liq_price[i] = lp
            unreal[i] = qty * (mark[i] - entry)
            wallet[i] = cash
            fees_cum[i] = fee_total
            funding_cum[i] = funding_total
        if is_liq:
            bp = entry * (1 - 1 / leverage)
            fill_price = lp
            pnl = qty * (fill_price - entry)
            fee_out = qty * fill_price * 0.002
            cash += pnl - fee_out
            fee_total += fee_out
            fills.append((idx[b], "BTCUSDT", "sell", qty, fill_price, fee_out, pnl, "liquidation"))
            fees.append((idx[b], "BTCUSDT", "liquidation", fee_out))
            liqs.append((idx[b], "BTCUSDT", "long", qty, bars["mark_low"].iloc[b], lp, bp, fill_price, fee_out, 0.0, pnl, cash,
                         False, 0.0, 0.0))
            trades.append((idx[a], idx[b], "BTCUSDT", "long", qty, entry, fill_price, pnl, fee_in + fee_out,
                           funding_total, pnl - fee_in - fee_out, True))
        else:
            exit_ = close[b]
            pnl = qty * (exit_ - entry)
            fee_out = qty * exit_ * fee_rate
            cash += pnl - fee_out
            fee_total += fee_out
            fills.append((idx[b], "BTCUSDT", "sell", qty, exit_, fee_out, pnl, "trade"))
            fees.append((idx[b], "BTCUSDT", "trade", fee_out))
            trades.append((idx[a], idx[b], "BTCUSDT", "long", qty, entry, exit_, pnl, fee_in + fee_out,
                           0.0, pnl - fee_in - fee_out, False))
        wallet[b:] = cash
        fees_cum[b:] = fee_total
        funding_cum[b:] = funding_total
    equity_v = wallet + unreal
    maint = qty_pos * mark * mmr
    with np.errstate(divide="ignore", invalid="ignore"):
        margin_ratio = np.where(qty_pos != 0, maint / equity_v, 0.0)
        distance = np.where(qty_pos != 0, (mark - liq_price) / mark, np.nan)
    equity = pd.DataFrame({
        "equity": equity_v, "wallet_balance": wallet, "unrealized_pnl": unreal, "position_qty": qty_pos,
        "close": close, "mark": mark, "liquidation_price": liq_price, "maintenance_margin": maint,
        "margin_ratio": margin_ratio, "distance_to_liquidation": distance,
        "funding_cum": funding_cum, "fees_cum": fees_cum,
    }, index=idx)

    def frame(rows, cols):
        return pd.DataFrame(rows, columns=list(cols))

    from .results import FEE_COLUMNS, FILL_COLUMNS, FUNDING_COLUMNS, LIQUIDATION_COLUMNS, TRADE_COLUMNS

    result = RunResult(
        config={
            "strategy": "synthetic_trend", "params": {"fast": 20, "slow": 100}, "venue": "binance-usdm",
            "symbol": "BTCUSDT", "leverage": leverage, "margin_mode": "isolated", "initial_cash": initial_cash,
            "settle_currency": "USDT",
            "data": {"kind": "simulated", "sources": ["reports.synthetic.synthetic_bars(seed=%d)" % seed],
                     "label": "synthetic random walk with one wick"},
            "engine": "synthetic",
        },
        equity=equity,
        fills=frame(fills, FILL_COLUMNS), trades=frame(trades, TRADE_COLUMNS), funding=frame(funding, FUNDING_COLUMNS),
        liquidations=frame(liqs, LIQUIDATION_COLUMNS), fees=frame(fees, FEE_COLUMNS),
        summary={"engine": "synthetic", "analyzers": {"sharpe": {"sharperatio": None}, "trades": {"total": len(trades)}}},
    )
    return result, bars


def write_synthetic_run(run_dir: str | Path, with_bars: bool = True, **kwargs) -> Path:
    result, bars = synthetic_run(**kwargs)
    path = result.save(run_dir)
    if with_bars:
        bars.to_parquet(path / "bars.parquet")
    return path


SCENARIOS = ("312-2020-03-12", "519-2021-05-19", "ftx-2022-11-08", "luna-2022-05-09", "aug-2024-08-05")
LEVERAGES = (1, 2, 3, 5, 10, 20, 50)


def write_synthetic_stress(stress_dir: str | Path, scenarios=SCENARIOS, leverages=LEVERAGES,
                           n_bars: int = 600, with_runs: bool = True) -> Path:
    """A stress directory (stress.json, survival.parquet, frontier.parquet, cell run dirs)."""
    path = Path(stress_dir)
    path.mkdir(parents=True, exist_ok=True)
    rows = []
    for s_i, scenario in enumerate(scenarios):
        limit = (3, 5, 10, 20, 2)[s_i % 5]  # highest surviving leverage
        for lev in leverages:
            survived = lev <= limit
            run_dir = f"runs/{scenario}/x{lev}"
            if with_runs:
                write_synthetic_run(path / run_dir, n_bars=n_bars, leverage=float(lev), seed=s_i + 1,
                                    liquidate=not survived)
            equity_left = max(0.0, 1 - 0.02 * lev - 0.01 * s_i) if survived else 0.0
            rows.append({
                "strategy": "synthetic_trend", "scenario": scenario, "leverage": float(lev), "margin_mode": "isolated",
                "venue": "binance-usdm", "data_kind": "simulated", "survived": survived,
                "liquidated_at": pd.NaT if survived else pd.Timestamp("2020-03-12 10:00", tz="UTC") + pd.Timedelta(minutes=60 // lev),
                "liquidation_price": np.nan if survived else 5000.0 * (1 - 1 / lev),
                "equity_left": equity_left, "max_drawdown": min(1.0, 0.04 * lev + 0.02 * s_i),
                "min_distance_to_liquidation": max(0.0, 1 / lev - 0.05 * (s_i + 1)) if survived else 0.0,
                "funding_paid": -0.3 * lev, "fees": 0.8 * lev, "run_dir": run_dir,
            })
    survival = pd.DataFrame(rows)
    survival["liquidated_at"] = pd.to_datetime(survival["liquidated_at"], utc=True)
    survival.to_parquet(path / "survival.parquet")
    frontier = survival.groupby("scenario", sort=False).apply(
        lambda g: g.loc[g["survived"], "leverage"].max(), include_groups=False).rename("max_surviving_leverage").reset_index()
    frontier.to_parquet(path / "frontier.parquet")
    (path / "stress.json").write_text(json.dumps({
        "strategy": "synthetic_trend", "scenarios": list(scenarios), "leverages": list(leverages),
        "margin_mode": "isolated", "venue": "binance-usdm", "note": "synthetic stress grid (reports.synthetic)",
    }, indent=2) + "\n")
    return path


def write_synthetic_optimization(opt_dir: str | Path, folds: int = 0) -> Path:
    """An optimization directory whose in-sample winner is liquidated out of sample."""
    path = Path(opt_dir)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    rows = []
    trial = 0
    for fast in (5, 10, 20, 30, 50):
        for slow in (50, 100, 150, 200):
            for lev in (2, 5, 10):
                score = 1.5 - ((fast - 20) / 30) ** 2 - ((slow - 120) / 150) ** 2 + 0.05 * lev
                liquidated = lev >= 10 and fast <= 10
                for fold in (range(folds) if folds else [None]):
                    row = {
                        "trial_id": trial, "param_fast": fast, "param_slow": slow, "param_leverage": float(lev),
                        "score_in_sample": score + (0.9 if liquidated else 0) + rng.normal(0, 0.02),
                        "score_out_of_sample": (score * 0.7 + rng.normal(0, 0.05)) if not liquidated else -1.0,
                        "feasible": not liquidated, "liquidated_in": "312-2020-03-12,519-2021-05-19" if liquidated else "",
                        "chosen": False,
                    }
                    if fold is not None:
                        row["fold"] = fold
                    rows.append(row)
                trial += 1
    trials = pd.DataFrame(rows)
    feasible = trials[trials["feasible"]].groupby("trial_id")["score_out_of_sample"].mean()
    trials["chosen"] = trials["trial_id"] == feasible.idxmax()
    trials.to_parquet(path / "trials.parquet")
    (path / "optimize.json").write_text(json.dumps({
        "strategy": "synthetic_trend", "objective": "sharpe", "method": "grid",
        "params": {"fast": [5, 50], "slow": [50, 200], "leverage": [2, 10]},
        "survive": ["312-2020-03-12", "519-2021-05-19"], "folds": folds,
    }, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m reports.synthetic run|stress|optimize DIR``: write a synthetic directory."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("run", "stress", "optimize"):
        print("usage: python -m reports.synthetic run|stress|optimize DIR", file=sys.stderr)
        return 2
    writer = {"run": write_synthetic_run, "stress": write_synthetic_stress, "optimize": write_synthetic_optimization}[args[0]]
    print(writer(args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
