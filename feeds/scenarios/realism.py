"""Realism figures of a 1-minute path: does it move like real waterfall minutes?

All on 1-minute log returns of the close, ``r_t = ln(C_t / C_{t-1})`` (dimensionless):

* ``acf1`` .. ``acf5``: sample autocorrelation of ``r`` at lags 1..5 (demeaned, the usual
  estimator ``sum (r_t - m)(r_{t-k} - m) / sum (r_t - m)^2``);
* ``vr5``, ``vr15``, ``vr60``: Lo-MacKinlay variance ratios
  ``VR(q) = Var(r_t + ... + r_{t-q+1}) / (q Var(r_t))`` over overlapping q-minute sums of demeaned
  returns (1 for a random walk; above 1 when moves persist, i.e. trends a moving average can
  harvest; below 1 when they revert);
* ``range_share``: the share of minutes whose range ``high / low - 1`` is above 1 %.

The acceptance bands against the real BitMEX minutes of 312 and 519 (issue 13): each ACF within
±0.05, each VR within ±20 %, the range share within ±30 % (relative).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

LAGS = (1, 2, 3, 4, 5)
VR_HORIZONS = (5, 15, 60)
RANGE_THRESHOLD = 0.01
FIGURES = tuple([f"acf{k}" for k in LAGS] + [f"vr{q}" for q in VR_HORIZONS] + ["range_share"])
TOLERANCES = {**{f"acf{k}": ("abs", 0.05) for k in LAGS}, **{f"vr{q}": ("rel", 0.20) for q in VR_HORIZONS},
              "range_share": ("rel", 0.30)}


def log_returns(close: np.ndarray) -> np.ndarray:
    c = np.asarray(close, dtype=float)
    return np.diff(np.log(c))


def autocorr(r: np.ndarray, lag: int) -> float:
    x = np.asarray(r, dtype=float) - np.mean(r)
    den = float(np.dot(x, x))
    return float(np.dot(x[lag:], x[:-lag]) / den) if den > 0 else float("nan")


def variance_ratio(r: np.ndarray, q: int) -> float:
    x = np.asarray(r, dtype=float) - np.mean(r)
    var1 = float(np.mean(x * x))
    if var1 <= 0 or len(x) <= q:
        return float("nan")
    csum = np.concatenate([[0.0], np.cumsum(x)])
    sums = csum[q:] - csum[:-q]
    return float(np.mean(sums * sums) / (q * var1))


def figures(bars: pd.DataFrame) -> dict[str, float]:
    """The realism figures (see the module docstring) of a 1-minute bar frame."""
    r = log_returns(bars["close"].to_numpy(float))
    out: dict[str, float] = {f"acf{k}": autocorr(r, k) for k in LAGS}
    out.update({f"vr{q}": variance_ratio(r, q) for q in VR_HORIZONS})
    rng = bars["high"].to_numpy(float) / bars["low"].to_numpy(float) - 1.0
    out["range_share"] = float(np.mean(rng > RANGE_THRESHOLD))
    return out


def within(name: str, got: float, real: float) -> bool:
    """Whether ``got`` lies in the acceptance band of figure ``name`` around ``real``."""
    how, tol = TOLERANCES[name]
    return abs(got - real) <= tol if how == "abs" else abs(got - real) <= tol * abs(real)


def compare(got: dict[str, float], real: dict[str, float] | None) -> list[dict[str, Any]]:
    """One row per figure: value, real value, band and whether it is inside (None without real)."""
    rows = []
    for name in FIGURES:
        how, tol = TOLERANCES[name]
        row: dict[str, Any] = {"figure": name, "value": got[name], "band": f"±{tol:g}" if how == "abs" else f"±{tol:.0%}"}
        if real is not None:
            row.update(real=real[name], ok=within(name, got[name], real[name]))
        rows.append(row)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        line = f"  {row['figure']:<12} {row['value']:>8.3f}"
        if "real" in row:
            line += f"   real {row['real']:>8.3f}   band {row['band']:<5} {'ok' if row['ok'] else 'OUTSIDE'}"
        lines.append(line)
    return lines


def seed_table(names: tuple[str, ...] = ("312", "519"), seeds: range = range(20),
               extra_horizons: tuple[int, ...] = (120, 240)) -> list[str]:
    """Markdown rows: each figure's real value and the reconstructions' median [p5, p95] over ``seeds``.

    The figures quoted in docs/scenarios.md (``python -m feeds.scenarios.realism --seeds 0-19``);
    ``extra_horizons`` adds VR(q) rows outside the acceptance bands (hour-scale persistence).
    """
    from feeds.scenarios import get_scenario

    keys = list(FIGURES) + [f"vr{q}" for q in extra_horizons]
    cols: dict[str, tuple[dict[str, float], pd.DataFrame]] = {}
    for name in names:
        s = get_scenario(name)
        real = s.bars(data="real")
        recs = [s.bars(venue="bitmex", seed=i) for i in seeds]

        def figs(bars: pd.DataFrame) -> dict[str, float]:
            out = figures(bars)
            r = log_returns(bars["close"].to_numpy(float))
            out.update({f"vr{q}": variance_ratio(r, q) for q in extra_horizons})
            return out

        cols[name] = (figs(real), pd.DataFrame([figs(b) for b in recs]))
    rows = ["| figure (band) | " + " | ".join(f"{n} real | {n} reconstructed" for n in names) + " |",
            "|---" * (1 + 2 * len(names)) + "|"]
    for key in keys:
        band = f" (±{TOLERANCES[key][1]:g})" if key in TOLERANCES and TOLERANCES[key][0] == "abs" else \
            (f" (±{TOLERANCES[key][1]:.0%})" if key in TOLERANCES else " (no band)")
        cells = []
        for name in names:
            real, rec = cols[name]
            med, p5, p95 = float(rec[key].median()), *np.percentile(rec[key], [5, 95])
            ok = "" if key not in TOLERANCES else ("" if within(key, med, real[key]) else " OUTSIDE")
            fmt = (lambda v: f"{v:.1%}") if key == "range_share" else (lambda v: f"{v:.3f}")
            cells += [fmt(real[key]), f"{fmt(med)} [{fmt(p5)}, {fmt(p95)}]{ok}"]
        rows.append(f"| {key}{band} | " + " | ".join(cells) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m feeds.scenarios.realism",
                                     description="Realism figures of the 312 and 519 reconstructions over seeds vs the real minutes")
    parser.add_argument("--seeds", default="0-19", help="first-last seed, inclusive (default 0-19, the test's)")
    args = parser.parse_args(argv)
    try:
        first, last = (int(p) for p in args.seeds.split("-"))
    except ValueError:
        parser.error(f"--seeds: expected FIRST-LAST such as 20-39, got {args.seeds!r}")
    if last < first:
        parser.error(f"--seeds: the last seed ({last}) is before the first ({first})")
    print("\n".join(seed_table(seeds=range(first, last + 1))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
