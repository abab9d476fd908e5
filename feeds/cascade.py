"""Liquidation-cascade simulator: a SIMULATED waterfall from an initial shock.

The model is the "liquidation-inventory + depth propagator" of
``shared/research/mechanics.md`` section 3.6, stepped every ``dt_s`` seconds in log price:

* **Inventory.** Leveraged open interest (long and short, USD at entry) spread over entry
  prices (lognormal around ``price0 * exp(entry_offset)`` with ``entry_spread``) and a leverage
  mix. Every (entry, leverage) cell gets its liquidation and bankruptcy prices from the risk
  core's venue formulas (:func:`risk.formulas.liquidation_price_tiered`, the venue's dated
  bracket table, BitMEX's fee/funding add-ons), for an isolated position of
  ``position_usd``. Cells already past their liquidation price at ``price0`` are dropped and the
  rest rescaled, so the inventory is of live positions only.
* **Mark.** An exponential moving average of the last price (``mark_window_s``).
  Liquidations trigger on the mark.
* **Engine.** Triggered positions join a backlog; the engine executes at most
  ``engine_rate x depth`` USD per minute (limited throughput); during a ``halt`` nothing is
  executed (BitMEX 312). Fills past the bankruptcy price are paid by the insurance fund; when
  the fund is exhausted and ``adl`` is on, the backlog is closed against the opposite side at
  the bankruptcy price without market impact (auto-deleveraging).
* **Price.** Signed flow (engine sells, exogenous shocks, value buyers who buy
  ``buyer_strength x depth`` USD per minute per 1 % below a slow fair-value EMA and sell above it)
  moves log price by ``1 % x (flow / depth)^impact_exponent``; a share ``impact_permanent`` is
  permanent, the rest decays with ``impact_tau_s``; plus Gaussian noise.
* **Depth.** ``D <- max(D_min, D exp(-kappa |dx|) + (D0 - D) dt / tau_D)``: market makers pull
  quotes in fast moves and refill over time.
* **Funding.** At the venue's settlement times: the average premium of last over mark since
  the previous settlement plus the clamped interest term, capped (Binance's formula).

Everything is seeded (``numpy.random.default_rng(seed)``): same parameters and seed, same
path. Output: a canonical 1-minute bar frame (:mod:`feeds.schema`) with
``attrs["kind"] == "simulated"``.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from risk.errors import DeleverageError
from risk.formulas import bankruptcy_price, effective_mmr, liquidation_price_tiered
from risk.venues import get_instrument, venue_rules

FUNDING_CAPS = {"binance_usdm": 0.003, "binance_coinm": 0.003, "bitmex": 0.00375, "bybit": 0.00375,
                "okx": 0.00375, "hyperliquid": 0.04 / 8}
GRID_STEP = 0.0005  # width of an inventory bin in log price (0.05 %)


@dataclass(frozen=True)
class Shock:
    """Exogenous selling (positive ``usd``) or buying (negative), spread evenly over ``minutes`` from ``start_min``."""

    start_min: float
    minutes: float
    usd: float


@dataclass(frozen=True)
class CascadeParams:
    """Parameters of one simulated cascade (units in the field comments; see the module docstring)."""

    start: str = "2021-05-19T12:00Z"          # first bar's open (UTC)
    minutes: int = 240                         # length of the simulated window
    price0: float = 38_677.5                   # last price at start
    venue: str = "binance_usdm"                # liquidation formulas, funding times and cap
    symbol: str | None = None                  # venue instrument (default: the venue's BTC perp)
    # leveraged inventory
    long_oi_usd: float = 6.0e9                 # leveraged long open interest (USD at entry)
    short_oi_usd: float = 3.0e9                # leveraged short open interest
    entry_offset: float = 0.04                 # log offset of the entry-price centre above price0
    entry_spread: float = 0.08                 # lognormal sigma of entry prices
    leverage_mix: tuple[tuple[float, float], ...] = ((3, 0.15), (5, 0.2), (10, 0.25), (20, 0.2), (50, 0.12), (100, 0.08))
    position_usd: float = 50_000.0             # representative position size (selects the bracket)
    # order book and impact
    depth_usd: float = 150e6                   # D0: USD that moves the price 1 %
    depth_min_frac: float = 0.1                # D_min / D0
    depth_kappa: float = 20.0                  # depth decay per unit |log move|
    depth_tau_s: float = 1200.0                # depth refill time
    impact_permanent: float = 0.5              # g_inf: permanent share of impact
    impact_tau_s: float = 120.0                # decay time of the transient impact
    impact_exponent: float = 1.0               # 1: linear (Kyle); 0.5: square-root law
    # participants and engine
    engine_rate: float = 0.3                   # engine throughput: fraction of depth per minute
    buyer_strength: float = 0.05               # value flow: fraction of depth per minute per 1 % from fair
    fair_tau_s: float = 7200.0                 # fair-value EMA time
    mark_window_s: float = 30.0                # mark smoothing
    noise_per_sqrt_min: float = 0.001          # background volatility
    shocks: tuple[Shock, ...] = (Shock(0.0, 5.0, 400e6),)
    halts: tuple[tuple[float, float], ...] = ()  # (start_min, end_min): engine and shocks stop
    insurance_fund_usd: float = 500e6
    adl: bool = True
    dt_s: float = 5.0

    def __post_init__(self) -> None:
        checks = {
            "minutes": self.minutes > 0, "price0": self.price0 > 0, "long_oi_usd": self.long_oi_usd >= 0,
            "short_oi_usd": self.short_oi_usd >= 0, "entry_spread": self.entry_spread > 0,
            "position_usd": self.position_usd > 0, "depth_usd": self.depth_usd > 0,
            "depth_min_frac": 0 < self.depth_min_frac <= 1, "depth_kappa": self.depth_kappa >= 0,
            "depth_tau_s": self.depth_tau_s > 0, "impact_permanent": 0 <= self.impact_permanent <= 1,
            "impact_tau_s": self.impact_tau_s > 0, "impact_exponent": 0 < self.impact_exponent <= 1.5,
            "engine_rate": self.engine_rate >= 0, "buyer_strength": self.buyer_strength >= 0,
            "fair_tau_s": self.fair_tau_s > 0, "mark_window_s": self.mark_window_s > 0,
            "noise_per_sqrt_min": self.noise_per_sqrt_min >= 0, "insurance_fund_usd": self.insurance_fund_usd >= 0,
            "dt_s": 0 < self.dt_s <= 60 and (60 / self.dt_s).is_integer(),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise DeleverageError(f"cascade parameters out of range: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} "
                                  "(see CascadeParams for the expected ranges; dt_s must divide 60)")
        if not self.leverage_mix or any(l < 1 or w < 0 for l, w in self.leverage_mix) or sum(w for _, w in self.leverage_mix) <= 0:
            raise DeleverageError(f"leverage_mix must be (leverage >= 1, weight >= 0) pairs with positive total weight, got {self.leverage_mix!r}")
        venue_rules(self.venue)

    @property
    def start_ts(self) -> pd.Timestamp:
        ts = pd.Timestamp(self.start)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shocks"] = [list(asdict(s).values()) for s in self.shocks]
        d["halts"] = [list(h) for h in self.halts]
        d["leverage_mix"] = [list(x) for x in self.leverage_mix]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CascadeParams":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DeleverageError(f"unknown cascade parameter(s) {unknown}; known: {sorted(known)}")
        d = dict(data)
        if "shocks" in d:
            d["shocks"] = tuple(s if isinstance(s, Shock) else Shock(**s) if isinstance(s, dict) else Shock(*s) for s in d["shocks"])
        if "halts" in d:
            d["halts"] = tuple(tuple(h) for h in d["halts"])
        if "leverage_mix" in d:
            d["leverage_mix"] = tuple(tuple(x) for x in d["leverage_mix"])
        return cls(**d)

    def with_(self, **changes: Any) -> "CascadeParams":
        return replace(self, **changes)


# --- inventory -------------------------------------------------------------------------------

@dataclass
class Inventory:
    """Liquidation inventory of one side on a log-price grid (qty in base units)."""

    side: int
    levels: np.ndarray          # log trigger price of each bin (ascending)
    qty: np.ndarray             # base qty per bin
    bankrupt_qty: np.ndarray    # sum of qty x bankruptcy price per bin (for the insurance fund)
    cum_qty: np.ndarray = field(init=False)
    cum_bq: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.cum_qty = np.concatenate([[0.0], np.cumsum(self.qty)])
        self.cum_bq = np.concatenate([[0.0], np.cumsum(self.bankrupt_qty)])

    @property
    def total_qty(self) -> float:
        return float(self.cum_qty[-1])


def build_inventory(p: CascadeParams) -> tuple[Inventory, Inventory]:
    """Long and short inventories from the entry profile, leverage mix and the venue's formulas."""
    inst = get_instrument(p.venue, p.symbol)
    rules = venue_rules(p.venue)
    table = inst.tiers_at(p.start_ts.timestamp())
    floors, cums = table.floors_array, table.cums_array
    qs = (np.arange(41) + 0.5) / 41
    from scipy.stats import norm

    z = norm.ppf(qs)
    entries = p.price0 * np.exp(p.entry_offset + p.entry_spread * z)
    weights_e = np.full(len(entries), 1.0 / len(entries))
    total_w = sum(w for _, w in p.leverage_mix)
    x0 = math.log(p.price0)
    grid_lo, grid_hi = x0 - 3.0, x0 + 3.0
    n_bins = int((grid_hi - grid_lo) / GRID_STEP) + 1
    levels = grid_lo + GRID_STEP * np.arange(n_bins)
    out = []
    for side, oi in ((1, p.long_oi_usd), (-1, p.short_oi_usd)):
        qty = np.zeros(n_bins)
        bq = np.zeros(n_bins)
        live_usd = 0.0
        mmrs = np.array([effective_mmr(m, rules.mmr_adds_taker_fee, inst.taker_fee, rules.mmr_adds_funding, side, 0.0001)
                         for m in table.mmrs_array])
        for lev, w_l in p.leverage_mix:
            for entry, w_e in zip(entries, weights_e):
                usd = oi * (w_l / total_w) * w_e
                if usd <= 0:
                    continue
                if inst.inverse:
                    n = p.position_usd / inst.contract_size
                    wallet = p.position_usd / entry / lev
                else:
                    n = p.position_usd / entry / inst.contract_size
                    wallet = p.position_usd / lev
                lp = liquidation_price_tiered(inst.inverse, rules.mm_on_entry, side, n, inst.contract_size, entry,
                                              wallet, floors, mmrs, cums, 0.0, 0.0)
                bp = bankruptcy_price(inst.inverse, side, n, inst.contract_size, entry, wallet, 0.0, 0.0)
                if math.isnan(lp) or (side > 0 and lp >= p.price0) or (side < 0 and lp <= p.price0):
                    continue  # cannot be liquidated, or already liquidated before the start
                b = int(round((math.log(lp) - grid_lo) / GRID_STEP))
                if not 0 <= b < n_bins:
                    continue
                q = usd / entry
                live_usd += usd
                qty[b] += q
                bq[b] += q * (bp if not math.isnan(bp) else 0.0)
        if live_usd > 0:
            qty *= oi / live_usd
            bq *= oi / live_usd
        out.append(Inventory(side, levels, qty, bq))
    return out[0], out[1]
