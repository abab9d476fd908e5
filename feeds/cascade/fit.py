"""Calibration of the cascade simulator on the real 519 BitMEX path, and the 312 hold-out.

Procedure (``deleverage cascade calibrate``):

1. Target: real BitMEX XBTUSD 1-minute bars of 2021-05-19 12:00-16:00 UTC (the final leg,
   38.7k -> 28,157 at 13:10 and the rebound).
2. Initial conditions of 519 (:func:`preset`): price at 12:00, leveraged inventory and
   leverage mix from the calibration anchors of mechanics.md 3.4-3.6 (kept fixed).
3. Fitted with ``scipy.optimize.differential_evolution`` (deterministic ``seed``, common random
   numbers over ``seeds``): depth, depth thinning and refill, engine throughput, value-buyer
   strength, shock size and duration. Loss = RMS log gap of the minute closes (the drawdown
   profile) + |peak-to-trough error| + 0.1 x |time-to-trough error| / 60 min.
4. Hold-out, no refit: 312's initial conditions (BitMEX, 2020-03-12 10:00 -> 03-13 04:00,
   price 7,353.5, two shocks at the published leg starts 10:00 and 23:00, the 02:16-02:40
   halt, a market 0.24x the size of 2021's: depth anchors 2020 $20-100M vs 2021 $100-400M per
   1 %), compared with the real 312 BitMEX bars.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from risk.errors import DeleverageError
from feeds.cascade.model import CascadeParams, Shock, simulate

FIT_NAMES: tuple[str, ...] = ("depth_usd", "depth_kappa", "depth_tau_s", "engine_rate", "buyer_strength",
                              "shock_usd", "shock_minutes")
BOUNDS: dict[str, tuple[float, float]] = {
    "depth_usd": (30e6, 600e6), "depth_kappa": (1.0, 80.0), "depth_tau_s": (120.0, 7200.0),
    "engine_rate": (0.02, 2.0), "buyer_strength": (0.0, 0.3), "shock_usd": (20e6, 4e9), "shock_minutes": (1.0, 60.0),
}
LOG_SCALE = {"depth_usd", "depth_kappa", "depth_tau_s", "engine_rate", "shock_usd", "shock_minutes"}
SIZE_2020_VS_2021 = 60.0 / 250.0  # midpoints of the D0 anchors (mechanics.md 3.6): 2020 $20-100M, 2021 $100-400M per 1 %

WINDOWS = {
    "519": ("2021-05-19T12:00Z", 240),
    "312": ("2020-03-12T10:00Z", 18 * 60),
}


def preset(name: str, theta: dict[str, float] | None = None) -> CascadeParams:
    """Initial conditions of ``"519"`` or ``"312"`` with the structural parameters ``theta``
    (default: the shipped fit). Prices at the start are the real BitMEX opens (catalogue facts)."""
    theta = dict(fitted_theta() if theta is None else theta)
    shock_usd = theta.pop("shock_usd")
    shock_min = theta.pop("shock_minutes")
    if name == "519":
        start, minutes = WINDOWS["519"]
        return CascadeParams(start=start, minutes=minutes, price0=38677.5, venue="bitmex",
                             long_oi_usd=6.0e9, short_oi_usd=3.0e9, insurance_fund_usd=500e6,
                             shocks=(Shock(0.0, shock_min, shock_usd),), **theta)
    if name == "312":
        start, minutes = WINDOWS["312"]
        k = SIZE_2020_VS_2021
        theta["depth_usd"] = theta["depth_usd"] * k
        return CascadeParams(start=start, minutes=minutes, price0=7353.5, venue="bitmex",
                             long_oi_usd=6.0e9 * k, short_oi_usd=3.0e9 * k, insurance_fund_usd=500e6 * k,
                             shocks=(Shock(0.0, shock_min, shock_usd * k), Shock(13 * 60.0, shock_min, shock_usd * k)),
                             halts=((16 * 60 + 16.0, 16 * 60 + 40.0),), **theta)
    raise DeleverageError(f"no cascade preset {name!r}; known: 519, 312")


def real_target(name: str, data_path: Any = None) -> pd.DataFrame:
    """Real BitMEX 1-minute bars of the preset's window (from the scenario library's real data)."""
    from feeds.scenarios import get_scenario

    if name not in WINDOWS:
        raise DeleverageError(f"no calibration window for {name!r}; known: {', '.join(WINDOWS)}")
    start, minutes = WINDOWS[name]
    bars = get_scenario(name).bars(data="real", venue="bitmex", data_path=data_path)
    t0 = pd.Timestamp(start)
    out = bars.loc[(bars.index >= t0) & (bars.index < t0 + pd.Timedelta(minutes=minutes))]
    if len(out) != minutes:
        raise DeleverageError(f"real data for {name} covers {len(out)} of {minutes} minutes")
    return out


def path_stats(frame: pd.DataFrame) -> dict[str, float]:
    low = frame["low"].to_numpy()
    trough = int(np.argmin(low))
    peak = float(frame["high"].to_numpy()[: trough + 1].max())
    return {"peak_to_trough": float(low[trough] / peak - 1.0), "time_to_trough_min": trough}


def path_errors(sim: pd.DataFrame, real: pd.DataFrame) -> dict[str, float]:
    """Fit errors of a simulated path against the real one (same length, same start price):
    ``profile_rmse`` (RMS of the log gap of minute closes, i.e. of the drawdown profiles),
    ``peak_to_trough_error`` (simulated minus real, fraction), ``time_to_trough_error_min``."""
    if len(sim) != len(real):
        raise DeleverageError(f"simulated ({len(sim)}) and real ({len(real)}) paths must have the same length")
    gap = np.log(sim["close"].to_numpy()) - np.log(real["close"].to_numpy())
    s, r = path_stats(sim), path_stats(real)
    return {
        "profile_rmse": float(np.sqrt(np.mean(gap ** 2))),
        "profile_max_abs": float(np.max(np.abs(gap))),
        "peak_to_trough_sim": s["peak_to_trough"], "peak_to_trough_real": r["peak_to_trough"],
        "peak_to_trough_error": s["peak_to_trough"] - r["peak_to_trough"],
        "time_to_trough_sim_min": s["time_to_trough_min"], "time_to_trough_real_min": r["time_to_trough_min"],
        "time_to_trough_error_min": s["time_to_trough_min"] - r["time_to_trough_min"],
    }


def loss(errors: dict[str, float]) -> float:
    return errors["profile_rmse"] + abs(errors["peak_to_trough_error"]) + 0.1 * abs(errors["time_to_trough_error_min"]) / 60.0


def evaluate(name: str, theta: dict[str, float] | None = None, seeds: Sequence[int] = (0, 1, 2),
             real: pd.DataFrame | None = None, data_path: Any = None) -> dict[str, Any]:
    """Errors of the preset ``name`` against its real path, averaged over ``seeds`` (and per seed)."""
    real = real_target(name, data_path) if real is None else real
    params = preset(name, theta)
    params = params.with_(price0=float(real["open"].iloc[0]))
    runs = [path_errors(simulate(params, seed=s), real) for s in seeds]
    mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    return {"mean": mean, "loss": float(np.mean([loss(r) for r in runs])), "per_seed": runs, "seeds": list(seeds)}


def _decode(z: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    return {n: float(math.exp(v) if n in LOG_SCALE else v) for n, v in zip(names, z)}


def _objective(z: np.ndarray, names: tuple[str, ...], base: dict[str, float], real: pd.DataFrame,
               seeds: tuple[int, ...]) -> float:
    theta = {**base, **_decode(z, names)}
    try:
        return evaluate("519", theta, seeds, real=real)["loss"]
    except (DeleverageError, FloatingPointError, OverflowError):
        return 1e3


@dataclass
class CalibrationResult:
    theta: dict[str, float]
    fit: dict[str, Any]
    holdout: dict[str, Any] | None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "calibration", "theta": self.theta, "fit_519": self.fit, "holdout_312": self.holdout,
                "settings": self.settings,
                "params_519": preset("519", self.theta).to_dict(), "params_312": preset("312", self.theta).to_dict()}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, default=float))


def calibrate(fit: Sequence[str] = FIT_NAMES, seeds: Sequence[int] = (0, 1, 2), maxiter: int = 30, popsize: int = 8,
              seed: int = 0, data_path: Any = None, holdout: bool = True, workers: int = 1,
              base: dict[str, float] | None = None) -> CalibrationResult:
    """Fit ``fit`` (names in :data:`BOUNDS`) on 519 with scipy's differential evolution, then
    score the 312 hold-out without refitting."""
    from scipy.optimize import differential_evolution

    unknown = [n for n in fit if n not in BOUNDS]
    if unknown:
        raise DeleverageError(f"cannot fit {unknown}; fittable: {', '.join(BOUNDS)}")
    names = tuple(fit)
    base_theta = dict(fitted_theta() if base is None else base)
    real = real_target("519", data_path)
    bounds = [(math.log(BOUNDS[n][0]), math.log(BOUNDS[n][1])) if n in LOG_SCALE else BOUNDS[n] for n in names]
    result = differential_evolution(_objective, bounds, args=(names, base_theta, real, tuple(seeds)), maxiter=maxiter,
                                    popsize=popsize, seed=seed, polish=False, tol=1e-4, workers=workers,
                                    updating="deferred" if workers != 1 else "immediate")
    theta = {**base_theta, **_decode(result.x, names)}
    fit_eval = evaluate("519", theta, seeds, real=real)
    hold = evaluate("312", theta, seeds, data_path=data_path) if holdout else None
    settings = {"fitted": list(names), "seeds": list(seeds), "maxiter": maxiter, "popsize": popsize, "de_seed": seed,
                "evaluations": int(result.nfev), "target": "real BitMEX XBTUSD 1m, 2021-05-19 12:00-16:00 UTC",
                "holdout": "real BitMEX XBTUSD 1m, 2020-03-12 10:00 -> 2020-03-13 04:00 UTC (no refit)"}
    return CalibrationResult(theta, fit_eval, hold, settings)


# --- the shipped fit -------------------------------------------------------------------------

DEFAULT_THETA: dict[str, float] = {
    "depth_usd": 150e6, "depth_kappa": 20.0, "depth_tau_s": 1200.0, "engine_rate": 0.3, "buyer_strength": 0.05,
    "shock_usd": 400e6, "shock_minutes": 5.0,
}


def fitted() -> dict[str, Any] | None:
    """The shipped calibration (``feeds/cascade/fitted.json``), or None before the first fit."""
    res = resources.files("feeds.cascade").joinpath("fitted.json")
    if not res.is_file():
        return None
    return json.loads(res.read_text(encoding="utf-8"))


def fitted_theta() -> dict[str, float]:
    data = fitted()
    return dict(data["theta"]) if data else dict(DEFAULT_THETA)


def fitted_params(name: str = "519") -> CascadeParams:
    """The shipped fitted parameter set for ``"519"`` or (hold-out initial conditions) ``"312"``."""
    return preset(name)


def market_theta() -> dict[str, float]:
    """The shipped cross-event fit of :func:`feeds.cascade.from_market` (``fitted.json`` key
    ``market``; see :mod:`feeds.cascade.calib`), or the untuned defaults before the first fit."""
    from feeds.cascade.market import MARKET_THETA

    data = fitted()
    if data and data.get("market"):
        return {**MARKET_THETA, **data["market"]["theta"]}
    return dict(MARKET_THETA)
