"""Two-symbol bars, random target arrays and the engine comparison of the portfolio tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.portfolio import Leg, PortfolioResult, PortfolioSpec
from tests.fast.helpers import random_bars

REL = 1e-9


def two_symbols(seed: int, n: int = 1500, **kwargs: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded BTCUSDT (40,000) and ETHUSDT (3,000) 1-minute bars on one index, with wicks, marks and funding."""
    return (random_bars(2 * seed + 1, n, **kwargs),  # type: ignore[arg-type]
            random_bars(2 * seed + 2, n, price=3_000.0, **kwargs))  # type: ignore[arg-type]


def random_targets(seed: int, n: int, choices: tuple[float, ...] = (-3.0, -1.5, -0.5, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
                   rate: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    change = rng.random(n) < rate
    values = rng.choice(np.asarray(choices), n)
    out = np.zeros(n)
    cur = 0.0
    for i in range(n):
        if change[i]:
            cur = float(values[i])
        out[i] = cur
    return out


def spec_of(btc: pd.DataFrame, eth: pd.DataFrame, t_btc: np.ndarray, t_eth: np.ndarray, **kwargs: object) -> PortfolioSpec:
    return PortfolioSpec([Leg("BTCUSDT", btc, t_btc), Leg("ETHUSDT", eth, t_eth)], **kwargs)  # type: ignore[arg-type]


def assert_same(a: PortfolioResult, b: PortfolioResult, rel: float = REL) -> None:
    """Every per-bar record and every event of two runs agree to ``rel`` (relative, floor 1)."""
    fa, fb = a.frame(), b.frame()
    assert list(fa.columns) == list(fb.columns)
    for col in fa.columns:
        x, y = fa[col].to_numpy(), fb[col].to_numpy()
        same_nan = np.isnan(x) == np.isnan(y)
        assert same_nan.all(), f"{col}: NaN pattern differs at bar {int(np.argmin(same_nan))}"
        with np.errstate(invalid="ignore"):
            ok = np.isnan(x) | (np.abs(x - y) <= rel * np.maximum(1.0, np.abs(x))) | (x == y)
        assert ok.all(), f"{col}: bar {int(np.argmin(ok))}: {x[np.argmin(ok)]} vs {y[np.argmin(ok)]}"
    for name in a.events:
        ea, eb = a.events[name], b.events[name]
        assert len(ea) == len(eb), f"{name}: {len(ea)} vs {len(eb)} rows"
        if not len(ea):
            continue
        assert (ea["time"].to_numpy() == eb["time"].to_numpy()).all(), name
        assert (ea["symbol"].to_numpy() == eb["symbol"].to_numpy()).all(), name
        for col in ea.columns:
            if ea[col].dtype.kind == "f":
                x, y = ea[col].to_numpy(), eb[col].to_numpy()
                with np.errstate(invalid="ignore"):
                    ok = (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= rel * np.maximum(1.0, np.abs(x))) | (x == y)
                assert ok.all(), f"{name}.{col}: row {int(np.argmin(ok))}: {x[np.argmin(ok)]} vs {y[np.argmin(ok)]}"
            elif ea[col].dtype.kind in "OUb":
                assert (ea[col].to_numpy() == eb[col].to_numpy()).all(), f"{name}.{col}"
    assert abs(a.insurance_fund - b.insurance_fund) <= rel * max(1.0, abs(a.insurance_fund))


def money_gap(r: PortfolioResult, cash: float) -> float:
    """equity[-1] - cash - (realized PnL - fees + funding + the insurance fund's cover + final uPnL at the
    mark), over all symbols."""
    ev = r.events
    explained = (ev["fills"]["realized_pnl"].sum() - ev["fees"]["amount"].sum() + ev["funding"]["amount"].sum()
                 + ev["liquidations"]["insurance_cover"].sum() + r.records["upnl"][-1].sum())
    return float(r.equity[-1] - cash - explained)


def assert_conserved(r: PortfolioResult, cash: float) -> None:
    """Every change of equity is a recorded event: fills' realized PnL, fees (>= 0: what the account
    paid), funding and the insurance fund's cover (its own kind); the account ends flat (no uPnL left).
    The fund's net is the clearance it received less the cover it paid out."""
    ev = r.events
    assert (r.records["qty"][-1] == 0.0).all()
    cover = ev["liquidations"]["insurance_cover"]
    explained = (ev["fills"]["realized_pnl"].sum() - ev["fees"]["amount"].sum() + ev["funding"]["amount"].sum()
                 + cover.sum())
    assert r.equity[-1] - cash == pytest.approx(explained, abs=1e-9 * cash)
    assert abs(money_gap(r, cash)) < 1e-9 * cash
    assert (ev["fees"]["amount"] >= 0.0).all() and r.summary["fees_total"] >= 0.0 and (cover >= 0.0).all()
    assert r.summary["insurance_cover_total"] == pytest.approx(cover.sum(), abs=1e-9)
    liq_fees = ev["fees"][ev["fees"]["kind"] == "liquidation"]["amount"].sum()
    assert r.insurance_fund == pytest.approx(ev["liquidations"]["insurance_fund"].sum(), abs=1e-9)
    assert r.insurance_fund == pytest.approx(liq_fees - cover.sum(), abs=1e-9)
