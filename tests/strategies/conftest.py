"""Hand-made bars and a one-call runner for the strategy tests (Binance USD-M BTCUSDT, linear,
taker fee 0.04 %, lot 0.001; 10,000 USDT)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from engine.runner import RunConfig, run_backtest
from reports.results import RunResult


def make_bars(closes: list[float], *, opens: list[float] | None = None, highs: list[float] | None = None,
              lows: list[float] | None = None, freq: str = "1h", start: str = "2024-01-01",
              **extra: Any) -> pd.DataFrame:
    """Bars whose open is the previous close (the first: its close), high/low the body unless given."""
    c = np.asarray(closes, dtype=float)
    o = np.asarray(opens, dtype=float) if opens is not None else np.concatenate([[c[0]], c[:-1]])
    h = np.asarray(highs, dtype=float) if highs is not None else np.maximum(o, c)
    lo = np.asarray(lows, dtype=float) if lows is not None else np.minimum(o, c)
    index = pd.date_range(start, periods=len(c), freq=freq, tz="UTC", name="open_time")
    frame = pd.DataFrame({"open": o, "high": np.maximum(h, np.maximum(o, c)),
                          "low": np.minimum(lo, np.minimum(o, c)), "close": c, "volume": 10.0}, index=index)
    for name, values in extra.items():
        frame[name] = np.asarray(values, dtype=float)
    frame.attrs.update({"kind": "simulated", "source": "hand-made test bars"})
    return frame


def run(strategy_cls: type, bars: pd.DataFrame, *, venue: str = "binance_usdm", cash: float = 10_000.0,
        margin: str = "isolated", **params: Any) -> tuple[RunResult, Any]:
    """Run and return (result, the strategy instance)."""
    captured: dict[str, Any] = {}

    class Probe(strategy_cls):  # type: ignore[misc, valid-type]
        def stop(self) -> None:
            captured["strategy"] = self

    config = RunConfig(strategy=strategy_cls.__name__, params=params, venue=venue, cash=cash, margin_mode=margin,
                       leverage=float(params.get("leverage", 1.0)),
                       funding_rate=None if "funding_rate" in bars.columns else 0.0)
    return run_backtest(bars, Probe, config), captured["strategy"]


@pytest.fixture()
def bars_factory() -> Callable[..., pd.DataFrame]:
    return make_bars


@pytest.fixture()
def runner() -> Callable[..., tuple[RunResult, Any]]:
    return run
