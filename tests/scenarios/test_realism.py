"""Issue 13 acceptance: reconstructions move like the real waterfall minutes and cannot be farmed.

* The realism figures (``feeds.scenarios.realism``) are checked by hand on tiny series.
* On the 312 and 519 windows, the median over seeds 0..19 of the reconstructed BitMEX path's
  lag-1..5 autocorrelations is within ±0.05 of the real minutes' (shipped in the package),
  VR(5), VR(15), VR(60) within ±20 %, the share of minutes with a range above 1 % within ±30 %.
  Every figure is held to its band (the earlier miss, 519's lag-4 autocorrelation at +0.039
  against the real -0.031, came from the segment into the 13:10 low being filled by monotone
  falls; docs/scenarios.md says how the generator was changed).
* Over 20 seeds, the real-data result of ``sma_crossover`` and ``breakout`` (defaults) at 1x and
  3x lies between the seeds' 5th and 95th percentiles and the seeds' median is within a factor
  of 2 of it. "Within a factor of 2" is taken on the equity multiple (final / initial equity,
  1 + return): a factor on a signed return that crosses zero means nothing. The spread is
  printed (``pytest -s``) and quoted in docs/scenarios.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feeds.scenarios import get_scenario
from feeds.scenarios.realism import FIGURES, autocorr, compare, figures, variance_ratio, within

SEEDS_REALISM = range(20)
SEEDS_SPREAD = range(20)


def test_autocorrelation_and_variance_ratio_by_hand():
    r = np.array([1.0, -1.0, 1.0, -1.0])  # mean 0; lag 1: (-1 -1 -1) / 4 = -0.75; lag 2: (1 + 1) / 4 = 0.5
    assert autocorr(r, 1) == pytest.approx(-0.75)
    assert autocorr(r, 2) == pytest.approx(0.5)
    # VR(2): overlapping 2-sums of the demeaned series are 0, 0, 0 -> 0 (perfect reversion)
    assert variance_ratio(r, 2) == pytest.approx(0.0)
    trend = np.array([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])  # mean 0, var 1; 3-sums 3, 1, -1, -3 -> mean sq 5
    assert variance_ratio(trend, 3) == pytest.approx(5.0 / 3.0)
    iid = np.random.default_rng(0).standard_normal(200_000)
    assert variance_ratio(iid, 15) == pytest.approx(1.0, abs=0.03) and abs(autocorr(iid, 1)) < 0.01


def test_range_share_and_bands_by_hand():
    bars = pd.DataFrame({"open": [100.0, 100, 100, 100], "high": [100.5, 102, 100.9, 100],
                         "low": [100.0, 100, 100, 98], "close": [100.0, 101, 100, 99]})
    f = figures(bars)
    assert f["range_share"] == pytest.approx(0.5)  # ranges 0.5 %, 2 %, 0.9 %, 2.04 %
    assert within("acf1", 0.10, 0.149) and not within("acf1", 0.10, 0.151)
    assert within("vr60", 1.2, 1.0) and not within("vr60", 1.21, 1.0)
    assert within("range_share", 0.13, 0.1) and not within("range_share", 0.131, 0.1)
    walk = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.003, 500)))
    g = figures(pd.DataFrame({"open": walk, "high": walk * 1.004, "low": walk / 1.004, "close": walk}))
    rows = compare(g, g)
    assert [r["figure"] for r in rows] == list(FIGURES) and all(r["ok"] for r in rows)


@pytest.fixture(scope="module")
def windows():
    out = {}
    for name in ("312", "519"):
        s = get_scenario(name)
        real = s.bars(data="real")
        assert real.attrs["kind"] == "real" and real.attrs["origin"] == "package"
        recs = [s.bars(venue="bitmex", seed=i) for i in SEEDS_SPREAD]
        assert all(r.attrs["kind"] == "reconstructed" for r in recs)
        out[name] = (real, recs)
    return out


@pytest.mark.parametrize("name", ["312", "519"])
def test_reconstructed_minutes_match_the_real_minutes(windows, name):
    real, recs = windows[name]
    want = figures(real)
    got = pd.DataFrame([figures(recs[i]) for i in SEEDS_REALISM]).median()
    print(f"\n{name} realism, median of seeds 0..19 vs real:",
          {k: (round(float(got[k]), 3), round(want[k], 3)) for k in FIGURES})
    for key in FIGURES:
        assert within(key, float(got[key]), want[key]), f"{key}: reconstructed {got[key]:.3f}, real {want[key]:.3f}"
    # and not the old Brownian bridge's trends: VR(60) of the bridge was 4.9 (312) and 3.6 (519)
    assert got["vr60"] < 1.5


def _equity_multiple(bars: pd.DataFrame, strategy: str, leverage: float) -> float:
    from engine.fast import run_fast
    from engine.runner import RunConfig
    from strategies import REGISTRY

    config = RunConfig(strategy=strategy, params={"leverage": leverage}, venue="bitmex", leverage=leverage,
                       cash=1.0, funding_rate=0.0001)
    return run_fast(bars, REGISTRY[strategy], config).summary["final_equity"] / 1.0


@pytest.mark.parametrize("name", ["312", "519"])
def test_seed_spread_brackets_the_real_result(windows, name):
    real, recs = windows[name]
    lines = []
    for strategy in ("sma_crossover", "breakout"):
        for leverage in (1.0, 3.0):
            want = _equity_multiple(real, strategy, leverage)
            got = np.array([_equity_multiple(b, strategy, leverage) for b in recs])
            p5, p50, p95 = np.percentile(got, [5, 50, 95])
            lines.append(f"{name} {strategy} {leverage:g}x: real {want - 1:+.1%}; 20 seeds p5 {p5 - 1:+.1%}, "
                         f"median {p50 - 1:+.1%}, p95 {p95 - 1:+.1%}")
            assert p5 <= want <= p95, lines[-1]
            assert 0.5 <= p50 / want <= 2.0, lines[-1]
    print("\n" + "\n".join(lines))


def test_eth_519_mark_follows_the_index_through_the_perp_print():
    b = get_scenario("519").bars(asset="ETH")
    t = pd.Timestamp("2021-05-19 13:10Z")
    assert b["low"].min() == pytest.approx(1400.0) and b["low"].idxmin() == t  # the perp print
    # the index never goes below the published spot low (1,888, events.md), and the mark follows it
    assert b["index_close"].min() >= 1888.0 * (1 - 1e-12)
    assert b["mark_low"].min() >= 1888.0 and b.loc[t, "mark_low"] == pytest.approx(1888.0, rel=0.02)
    # a 5x long from 1,950 (liquidation near 1,950 x (1 - 1/5 + 0.5 %) = 1,570) dies on the last price, not on the mark
    lp = 1950.0 * (1 - 0.2 + 0.005)
    assert b["low"].min() < lp < b["mark_low"].min()
    assumed = [a for a in b.attrs["assumptions"] if "13:09Z" in a or "13:10Z close" in a]
    assert len(assumed) == 2 and "minute_scale" in get_scenario("519").path_spec("ETH")


def test_segment_into_a_low_keeps_its_last_real_minute_and_meets_the_level():
    import sys

    from feeds.scenarios.reconstruct import MinutePool

    rec = sys.modules["feeds.scenarios.reconstruct"]
    # a hand-made window of 6 real minutes: returns, upper and lower wicks (log units)
    r = np.array([-0.01, 0.004, -0.02, 0.003, -0.015, 0.01])
    u = np.array([0.001, 0.002, 0.001, 0.003, 0.002, 0.001])
    d = np.array([0.002, 0.001, 0.004, 0.001, 0.03, 0.002])
    pool = MinutePool(r, u, d, ((0, 6),), ("hand",))
    move = -0.06  # from the segment's start to the low waypoint's level
    idx, got, scale = rec._segment(np.random.default_rng(0), pool, 4, move, None, "low")
    last = int(idx[-1])
    assert got[-1] == pytest.approx(scale * r[last])  # the last real minute is kept (scaled only)
    # the bar's low = its close - max(its return, 0) - its wick: exactly at the level
    low = got.sum() - max(got[-1], 0.0) - scale * d[last]
    assert low == pytest.approx(move, abs=1e-12)
    # a plain segment ends on its knot instead
    _, plain, _ = rec._segment(np.random.default_rng(0), pool, 4, move)
    assert plain.sum() == pytest.approx(move, abs=1e-12)


def test_seed_table_prints_each_figure_against_the_real_minutes():
    from feeds.scenarios.realism import main, seed_table

    rows = seed_table(names=("519",), seeds=range(2), extra_horizons=(120,))
    assert len(rows) == 2 + len(FIGURES) + 1 and rows[0].startswith("| figure (band) | 519 real")
    real = figures(get_scenario("519").bars(data="real"))
    acf1 = rows[2].split("|")
    assert acf1[1].strip() == "acf1 (±0.05)" and float(acf1[2]) == pytest.approx(real["acf1"], abs=5e-4)
    with pytest.raises(SystemExit):
        main(["--seeds", "5-1"])
