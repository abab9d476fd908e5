"""The 2025-10-10 Hyperliquid ADL flow (feeds/adl.py): published totals, the labelled
reconstruction, the per-minute profile worked out by hand, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feeds.adl import ADL_COLUMNS, HL_20251010_SHORT_SHARE, adl_flow_frame, hyperliquid_20251010_flow
from risk.adl import queue_step
from risk.errors import DeleverageError


def test_totals_match_the_published_figures():
    flow = hyperliquid_20251010_flow()
    assert tuple(flow.columns) == ADL_COLUMNS
    assert flow.index[0] == pd.Timestamp("2025-10-10 21:15", tz="UTC") and len(flow) == 12
    assert flow.index.name == "open_time" and (flow.index[1:] - flow.index[:-1] == pd.Timedelta("1min")).all()
    assert flow.to_numpy().sum() == pytest.approx(2_103_111_431.0, rel=1e-12)  # ConejoCapital, 21:15-21:27
    assert flow.attrs["published"]["profitable_share"] == 0.945
    assert flow.attrs["published"]["median_leverage"] == 0.15


def test_labelled_as_a_reconstruction_with_its_sources_and_assumptions():
    flow = hyperliquid_20251010_flow("BTC")
    assert flow.attrs["kind"] == "reconstructed"
    assert "RECONSTRUCTION" in flow.attrs["label"]
    assert any("HyperMultiAssetedADL" in s for s in flow.attrs["sources"])
    assert any("2512.01112" in s for s in flow.attrs["sources"])
    assert len(flow.attrs["assumptions"]) == 3


def test_per_minute_profile_by_hand():
    """21:15 holds nothing (first ADL at T+62 s); 21:16 the 21:15-21:17 sample (285,546,805);
    the other 1,817,564,626 spread over 10 minutes = 181,756,462.6 each; BTC is 620,890,948 of it."""
    total = hyperliquid_20251010_flow().sum(axis=1).to_numpy()
    assert total[0] == 0.0
    assert total[1] == pytest.approx(285_546_805.0)
    np.testing.assert_allclose(total[2:], 181_756_462.6, rtol=1e-12)
    btc = hyperliquid_20251010_flow("btc").sum(axis=1)
    assert btc.sum() == pytest.approx(620_890_948.0, rel=1e-12)
    assert btc.iloc[1] == pytest.approx(285_546_805.0 * 620_890_948.0 / 2_103_111_431.0)


def test_side_split():
    flow = hyperliquid_20251010_flow()
    shorts = flow["adl_short_notional"].sum() / flow.to_numpy().sum()
    assert shorts == pytest.approx(16.7 / 19.13) == pytest.approx(HL_20251010_SHORT_SHARE)
    all_short = hyperliquid_20251010_flow(short_share=1.0)
    assert (all_short["adl_long_notional"] == 0).all()


def test_a_short_hedge_inside_the_flow():
    """A short of US$1M with US$1.5B of shorts ranked ahead of it: the flow reaches it in the 21:24 bar."""
    flow = hyperliquid_20251010_flow("all")["adl_short_notional"].to_numpy()
    ahead, own, hit_at = 1.5e9, 1e6, None
    for k, f in enumerate(flow):
        frac, ahead, own = queue_step(ahead, own, f)
        if frac > 0 and hit_at is None:
            hit_at = k
    cumulative = np.cumsum(flow)
    assert hit_at == int(np.argmax(cumulative > 1.5e9)) == 9 and own == 0.0  # 9 = the 21:24 bar


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"coin": "DOGE"}, "coin must be"),
    ({"short_share": 1.5}, "short_share"),
])
def test_bad_options_are_one_clear_error(kwargs, match):
    with pytest.raises(DeleverageError, match=match):
        hyperliquid_20251010_flow(**kwargs)


def test_flow_frame_rejects_negative_or_missing_notional():
    index = pd.date_range("2025-10-10 21:15", periods=2, freq="1min", tz="UTC")
    with pytest.raises(DeleverageError, match="non-negative"):
        adl_flow_frame(index, np.array([1.0, -1.0]), 0.5, {})
    with pytest.raises(DeleverageError, match="one finite"):
        adl_flow_frame(index, np.array([1.0]), 0.5, {})
