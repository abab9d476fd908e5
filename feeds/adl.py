"""ADL flows: the notional a venue auto-deleverages per bar, by the side of the positions closed.

A flow frame is indexed like the bars (tz-aware UTC ``open_time``, a bar labelled by its open)
with two columns in the quote currency (USD/USDC):

=====================  ======================================================================
``adl_long_notional``  notional of *long* positions auto-deleveraged inside the bar
``adl_short_notional`` notional of *short* positions auto-deleveraged inside the bar
=====================  ======================================================================

The engines will read it per bar and apply :func:`risk.adl.queue_step` /
:func:`risk.adl.hit_probability` to the strategy's position on that side.

:func:`hyperliquid_20251010_flow` builds the one flow we can anchor on published figures: the
Hyperliquid ADL of 2025-10-10, 21:15-21:27 UTC. It is a **reconstruction from published
aggregates** (``attrs["kind"] = "reconstructed"``), not venue data: the per-minute split and the
long/short split are assumptions, listed in ``attrs["assumptions"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from feeds.schema import BAR_INDEX_NAME
from risk.errors import DeleverageError

ADL_COLUMNS = ("adl_long_notional", "adl_short_notional")

CONEJO_README = ("ConejoCapital/HyperMultiAssetedADL README (relayed in ../shared/research/anchors-2026-12.md): "
                 "21:15-21:27 UTC, 34,983 ADL events, US$2.10B; first ADL 61.7 s after the first liquidation; "
                 "median leverage of ADL'd accounts 0.15x; 94.5 % of ADL'd positions profitable")
CONEJO_VOLUME = ("ConejoCapital/HyperMultiAssetedADL ADL_NET_VOLUME_FULL_12MIN.md: total net notional "
                 "US$2,103,111,431 over 21:15:00-21:27:00 (Hyperliquid node_fills); BTC 620,890,948, ETH "
                 "458,008,925, SOL 276,200,961, HYPE 189,932,888; the SonarX 2-minute sample 21:15-21:17 "
                 "holds 285,546,805; realized PnL of ADL'd positions 834,295,749")
CONEJO_TIMING = ("ConejoCapital/HyperMultiAssetedADL docs/analysis/CASCADE_TIMING_ANALYSIS.md: first "
                 "liquidation at T+3 s, first ADL at T+62 s (T = 21:15:00 UTC)")
ARXIV_ADL = ("Autodeleveraging: Impossibilities and Optimization, arXiv 2512.01112: ADL 'used repeatedly to "
             "close 2.1 billion of positions in 12 minutes' on Hyperliquid, 2025-10-10")
COINGLASS_SIDES = ("CoinGlass, reported (../shared/research/anchors-2026-12.md): 2025-10-10/11 US$19.13B "
                   "liquidated, longs US$16.7B, shorts US$2.4B")

HL_20251010_START = pd.Timestamp("2025-10-10 21:15", tz="UTC")
HL_20251010_MINUTES = 12
HL_20251010_TOTAL_USD = 2_103_111_431.0
HL_20251010_FIRST_TWO_MIN_USD = 285_546_805.0
HL_20251010_COIN_USD = {"BTC": 620_890_948.0, "ETH": 458_008_925.0, "SOL": 276_200_961.0, "HYPE": 189_932_888.0}
HL_20251010_SHORT_SHARE = 16.7 / 19.13
"""Assumed share of ADL'd notional that was short: the long share of the day's liquidations
(ADL closes positions opposite to the bankrupt ones). The ADL side split is not published in
our sources; all ten largest ADL'd winners were shorts (mechanics.md, HyperAnalyzeADL)."""


def adl_flow_frame(index: pd.DatetimeIndex, total: np.ndarray, short_share: float, attrs: dict[str, Any]) -> pd.DataFrame:
    """A flow frame from per-bar total ADL notional and the share of it that closed shorts."""
    if not (0.0 <= short_share <= 1.0):
        raise DeleverageError(f"short_share must be a fraction in [0, 1], got {short_share!r}")
    total = np.asarray(total, dtype=float)
    if total.shape != (len(index),) or np.any(~np.isfinite(total)) or np.any(total < 0):
        raise DeleverageError("ADL flow: one finite, non-negative notional per bar is required")
    frame = pd.DataFrame({"adl_long_notional": total * (1.0 - short_share), "adl_short_notional": total * short_share},
                         index=pd.DatetimeIndex(index, name=BAR_INDEX_NAME))
    frame.attrs.update(attrs)
    return frame


def hyperliquid_20251010_flow(coin: str = "all", short_share: float = HL_20251010_SHORT_SHARE) -> pd.DataFrame:
    """Per-minute ADL flow of Hyperliquid on 2025-10-10, 21:15-21:26 (12 one-minute bars), USD.

    Reconstruction from published aggregates:

    - the window's total, US$2,103,111,431 (all coins), or one coin's total (``coin`` = BTC,
      ETH, SOL or HYPE);
    - 21:15 bar: 0 (the first ADL came 62 s after the window opened);
    - 21:16 bar: the 21:15-21:17 sample's US$285,546,805 (all of it after the first ADL);
    - 21:17-21:26: the rest, **spread evenly** (assumption: the per-minute split is not
      published in our sources);
    - a coin gets the all-coin profile scaled to its total (assumption: same timing);
    - the long/short split is ``short_share`` (default: the day's long share of liquidations,
      an assumption; see :data:`HL_20251010_SHORT_SHARE`).
    """
    key = coin.upper() if coin.lower() != "all" else "all"
    if key != "all" and key not in HL_20251010_COIN_USD:
        raise DeleverageError(f"coin must be 'all' or one of {', '.join(HL_20251010_COIN_USD)}, got {coin!r}")
    weights = np.zeros(HL_20251010_MINUTES)
    weights[1] = HL_20251010_FIRST_TWO_MIN_USD
    weights[2:] = (HL_20251010_TOTAL_USD - HL_20251010_FIRST_TWO_MIN_USD) / (HL_20251010_MINUTES - 2)
    scale = 1.0 if key == "all" else HL_20251010_COIN_USD[key] / HL_20251010_TOTAL_USD
    index = pd.date_range(HL_20251010_START, periods=HL_20251010_MINUTES, freq="1min")
    attrs: dict[str, Any] = {
        "kind": "reconstructed",
        "label": "RECONSTRUCTION from published aggregates (not venue data): Hyperliquid ADL flow, 2025-10-10",
        "venue": "hyperliquid", "symbol": coin if key == "all" else key, "interval": "1min", "currency": "USD",
        "sources": [CONEJO_README, CONEJO_VOLUME, CONEJO_TIMING, ARXIV_ADL, COINGLASS_SIDES],
        "published": {"total_usd": HL_20251010_TOTAL_USD, "events": 34_983, "window": "21:15-21:27 UTC",
                      "profitable_share": 0.945, "median_leverage": 0.15,
                      "realized_pnl_usd": 834_295_749.0, "first_adl_after_s": 61.7},
        "assumptions": [
            "21:17-21:26 per-minute notional spread evenly (split not published in our sources)",
            "a single coin follows the all-coin timing, scaled to its published total",
            f"short share of ADL'd notional = {short_share:.4f} (default: long share of the day's liquidations)",
        ],
        "notes": [],
    }
    return adl_flow_frame(index, weights * scale, short_share, attrs)


def attach_adl_flow(bars: pd.DataFrame, flow: pd.DataFrame) -> pd.DataFrame:
    """``bars`` with the flow's ``adl_long_notional`` / ``adl_short_notional`` columns joined by
    bar open time. Bars outside the flow's window get 0 (no ADL flow there: written explicitly
    and said so in ``attrs["notes"]``); a flow bar with no matching bar is an error (nothing is
    dropped silently). The flow's label is kept as ``attrs["adl_label"]`` and in the notes, with
    its sources and assumptions under ``attrs["adl_flow"]``."""
    missing = flow.index.difference(bars.index)
    if len(missing):
        raise DeleverageError(f"ADL flow: {len(missing)} flow bar(s) have no matching bar, first {missing[0]}; "
                              "the bars must cover the flow's window at the same interval")
    out = bars.copy()
    for column in ("adl_long_notional", "adl_short_notional"):
        out[column] = flow[column].reindex(bars.index).fillna(0.0).to_numpy(dtype=float)
    label = str(flow.attrs.get("label", "ADL flow"))
    notes = list(bars.attrs.get("notes") or [])
    notes.append(f"ADL flow attached: {label}; {flow.index[0]:%Y-%m-%d %H:%M}-{flow.index[-1]:%H:%M} UTC, "
                 "0 in the bars outside that window (no ADL flow)")
    out.attrs = dict(bars.attrs)
    out.attrs.update({"notes": notes, "adl_label": label,
                      "adl_flow": {k: flow.attrs.get(k) for k in ("kind", "sources", "assumptions", "published")}})
    return out
