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
  ``engine_rate x depth`` USD per minute (limited throughput), or, with ``engine_tau_s``, the
  backlog x (1 - exp(-dt / engine_tau_s)) per step (per-venue execution timescale,
  :data:`ENGINE_TAU_S`; used by ``from_market``); during a ``halt`` nothing is
  executed (BitMEX 312). Fills past the bankruptcy price are paid by the insurance fund; when
  the fund is exhausted and ``adl`` is on, the backlog is closed against the opposite side at
  the bankruptcy price without market impact by the exchange's ADL engine
  (:func:`risk.adl.run_adl`: the venue's ranking, groups of adjacent bins as positions, see
  :func:`adl_close`); what the other side cannot match is a socialised loss.
* **Price.** Signed flow (engine sells, exogenous shocks, value buyers who buy
  ``buyer_strength x depth`` USD per minute per 1 % below a slow fair-value EMA and sell above it)
  moves log price by ``1 % x (flow / depth)^impact_exponent``; a share ``impact_permanent`` is
  permanent, the rest decays with ``impact_tau_s``; plus Gaussian noise.
* **Depth.** ``D <- max(D_min, D exp(-kappa |dx|) + (D0 - D) dt / tau_D)``: market makers pull
  quotes in fast moves and refill over time.
* **Exogenous sell flow** (besides user-timed ``shocks``): a burst of ``flow_rate x D0`` USD per
  minute at the start decaying with ``flow_tau_min``, momentum/stop sellers adding
  ``flow_excite x D`` per minute per 1 % below a ``flow_window_min`` EMA of the price (a
  self-exciting, Hawkes-like term), and seeded Ornstein-Uhlenbeck noise of ``flow_noise x D0``
  per minute (``flow_noise_tau_min``). All in units of depth, so scaling open interest and
  depth together leaves the price path unchanged and scales the liquidated notional.
* **De-risking.** A share ``derisk_close`` of the directed exogenous flow (user shocks, the burst
  and the momentum sellers; not the two-sided noise, whose buyers and sellers open and close in
  balance) closes existing positions of the side it trades against (holders selling out of
  longs, shorts covering into a buy shock) instead of
  opening new ones: open interest falls without a liquidation, and ``derisk_lev_share`` of the
  closed notional leaves the leveraged inventory pro rata over its bins (those positions can no
  longer be liquidated). Off by default (0).
* **Leverage rebuilding.** A share ``rebuild_share`` of the value buyers' (sellers') flow opens
  new leveraged longs (shorts) at the current price over the leverage mix; their liquidation
  levels join the inventory, so the next leg has a band to hit. **Momentum shorts**: of the
  momentum sellers' flow that does not close longs (a share ``1 - derisk_close``), a share
  ``momentum_short_share`` opens new leveraged shorts at the current price (late shorts piling
  into the fall), whose liquidation levels sit just above it: a rebound squeezes them. Off by
  default (0).
* **Venue defaults.** ``engine_rate=None`` / ``mark_window_s=None`` take the venue's value from
  :data:`ENGINE_RATE` / :data:`MARK_WINDOW_S` (BitMEX passive, Binance IOC chase, Hyperliquid
  150-s mark; mechanics.md 3.6 table).
* **Funding.** At the venue's settlement times: the average premium of last over mark since
  the previous settlement plus the clamped interest term, capped (Binance's formula).

Everything is seeded (``numpy.random.default_rng(seed)``): same parameters and seed, same
path. The per-step loop runs compiled (:mod:`feeds.cascade.kernel`, numba); the venue
formulas and ADL (:func:`adl_close`) stay here in Python. Output: a canonical 1-minute bar frame (:mod:`feeds.schema`) with
``attrs["kind"] == "simulated"``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterable

import numpy as np
import pandas as pd

from feeds.cascade import kernel as _k
from risk.errors import DeleverageError
from risk.formulas import bankruptcy_price, effective_mmr, liquidation_price_tiered
from risk.venues import get_instrument, venue_rules

FUNDING_CAPS = {"binance_usdm": 0.003, "binance_coinm": 0.003, "bitmex": 0.00375, "bybit": 0.00375,
                "okx": 0.00375, "hyperliquid": 0.04 / 8}
GRID_STEP = 0.0005  # width of an inventory bin in log price (0.05 %)
# engine throughput (fraction of depth per minute) and mark smoothing by venue, mechanics.md 3.6:
# c = 0.05 (passive, BitMEX 312) .. 1 (IOC chase, Binance); w = 30-150 s (Binance 30 s, HL 150 s)
ENGINE_RATE = {"bitmex": 0.3, "binance_usdm": 1.0, "binance_coinm": 1.0, "bybit": 1.0, "okx": 1.0,
               "hyperliquid": 0.4}
# execution timescale of a backlog-proportional engine (engine_tau_s): Binance/Bybit/OKX send
# IOC orders at once (~1 min to work through the book), BitMEX's passive 2020 engine ~5 min,
# Hyperliquid 20 % of a position per 30 s (mechanics.md 1.6) ~ 2.5 min
ENGINE_TAU_S = {"bitmex": 300.0, "binance_usdm": 60.0, "binance_coinm": 60.0, "bybit": 60.0, "okx": 60.0,
                "hyperliquid": 150.0}
MARK_WINDOW_S = {"bitmex": 60.0, "binance_usdm": 30.0, "binance_coinm": 30.0, "bybit": 30.0, "okx": 30.0,
                 "hyperliquid": 150.0}


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
    engine_rate: float | None = 0.3            # engine throughput: fraction of depth per minute (None: venue's)
    buyer_strength: float = 0.05               # value flow: fraction of depth per minute per 1 % from fair
    fair_tau_s: float = 7200.0                 # fair-value EMA time
    mark_window_s: float | None = 30.0         # mark smoothing (None: the venue's, MARK_WINDOW_S)
    noise_per_sqrt_min: float = 0.001          # background volatility
    shocks: tuple[Shock, ...] = (Shock(0.0, 5.0, 400e6),)
    halts: tuple[tuple[float, float], ...] = ()  # (start_min, end_min): engine and shocks stop
    insurance_fund_usd: float = 500e6
    adl: bool = True
    dt_s: float = 5.0
    # explicit entry profile (from_market): (side +1/-1, entry price, weight[, leverage]); the side's
    # OI is spread over its entries in proportion to the weights (over the leverage mix when no
    # leverage is given). Empty: the lognormal profile above.
    entries: tuple[tuple, ...] = ()
    # exogenous sell-flow process (fractions of depth per minute; see the module docstring)
    flow_rate: float = 0.0
    flow_tau_min: float = 30.0
    flow_excite: float = 0.0
    flow_window_min: float = 15.0
    flow_noise: float = 0.0
    flow_noise_tau_min: float = 20.0
    rebuild_share: float = 0.0                 # share of value flow that opens new leveraged positions
    # de-risking: a share of the directed exogenous flow (shocks, burst, momentum sellers; not the
    # two-sided noise) closes existing positions of the side it trades against (sells close longs,
    # buys close shorts) instead of opening new ones; derisk_lev_share of that closed notional comes off the leveraged inventory
    # (pro rata over its bins), the rest is unleveraged open interest
    derisk_close: float = 0.0
    derisk_lev_share: float = 1.0
    # momentum shorts: of the momentum sellers' flow that does not close longs (1 - derisk_close),
    # this share opens new leveraged shorts at the current price over the leverage mix
    momentum_short_share: float = 0.0
    # backlog-proportional engine: each step executes backlog x (1 - exp(-dt / engine_tau_s)), so
    # more triggered OI means more forced selling (None: the depth-capped engine above)
    engine_tau_s: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):  # numbers first: a string from --set or a JSON file fails here, not in a comparison
            v = getattr(self, f.name)
            if f.type in ("float", "int", "float | None") and not (
                    (v is None and f.type == "float | None") or (isinstance(v, numbers.Real) and not isinstance(v, bool))):
                raise DeleverageError(f"cascade parameter {f.name}={v!r}: expected a number")
        for h in self.halts:
            if len(h) != 2 or not all(isinstance(x, numbers.Real) for x in h) or not 0 <= h[0] < h[1]:
                raise DeleverageError(f"halts must be (start_min, end_min) pairs with 0 <= start < end, got {h!r}")
        checks = {
            "minutes": self.minutes > 0, "price0": self.price0 > 0, "long_oi_usd": self.long_oi_usd >= 0,
            "short_oi_usd": self.short_oi_usd >= 0, "entry_spread": self.entry_spread > 0,
            "position_usd": self.position_usd > 0, "depth_usd": self.depth_usd > 0,
            "depth_min_frac": 0 < self.depth_min_frac <= 1, "depth_kappa": self.depth_kappa >= 0,
            "depth_tau_s": self.depth_tau_s > 0, "impact_permanent": 0 <= self.impact_permanent <= 1,
            "impact_tau_s": self.impact_tau_s > 0, "impact_exponent": 0 < self.impact_exponent <= 1.5,
            "buyer_strength": self.buyer_strength >= 0,
            "fair_tau_s": self.fair_tau_s > 0,
            "noise_per_sqrt_min": self.noise_per_sqrt_min >= 0, "insurance_fund_usd": self.insurance_fund_usd >= 0,
            "dt_s": 0 < self.dt_s <= 60 and (60 / self.dt_s).is_integer(),
            "flow_rate": self.flow_rate >= 0, "flow_tau_min": self.flow_tau_min > 0, "flow_excite": self.flow_excite >= 0,
            "flow_window_min": self.flow_window_min > 0, "flow_noise": self.flow_noise >= 0,
            "flow_noise_tau_min": self.flow_noise_tau_min > 0, "rebuild_share": 0 <= self.rebuild_share <= 1,
            "derisk_close": 0 <= self.derisk_close <= 1,
            "momentum_short_share": 0 <= self.momentum_short_share <= 1, "derisk_lev_share": 0 <= self.derisk_lev_share <= 1,
        }
        if self.engine_rate is not None and self.engine_rate < 0:
            checks["engine_rate"] = False
        if self.engine_tau_s is not None and self.engine_tau_s <= 0:
            checks["engine_tau_s"] = False
        if self.mark_window_s is not None and self.mark_window_s <= 0:
            checks["mark_window_s"] = False
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise DeleverageError(f"cascade parameters out of range: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} "
                                  "(see CascadeParams for the expected ranges; dt_s must divide 60)")
        if not self.leverage_mix or any(l < 1 or w < 0 for l, w in self.leverage_mix) or sum(w for _, w in self.leverage_mix) <= 0:
            raise DeleverageError(f"leverage_mix must be (leverage >= 1, weight >= 0) pairs with positive total weight, got {self.leverage_mix!r}")
        venue_rules(self.venue)
        for e in self.entries:
            if len(e) not in (3, 4) or e[0] not in (1, -1) or not e[1] > 0 or not e[2] >= 0 or (len(e) == 4 and not e[3] >= 1):
                raise DeleverageError(f"entries must be (side +1/-1, price > 0, weight >= 0[, leverage >= 1]), got {e!r}")

    @property
    def engine_rate_eff(self) -> float:
        return float(ENGINE_RATE.get(self.venue, 1.0) if self.engine_rate is None else self.engine_rate)

    @property
    def mark_window_eff(self) -> float:
        return float(MARK_WINDOW_S.get(self.venue, 30.0) if self.mark_window_s is None else self.mark_window_s)

    @property
    def start_ts(self) -> pd.Timestamp:
        ts = pd.Timestamp(self.start)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

    def to_dict(self) -> dict[str, Any]:
        # shallow (asdict's deep copy is 1.4 ms for a from_market set's ~400 entries, a third of a
        # run); every field is a str, number, None or one of the tuples converted below
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["shocks"] = [[s.start_min, s.minutes, s.usd] for s in self.shocks]
        d["halts"] = [list(h) for h in self.halts]
        d["leverage_mix"] = [list(x) for x in self.leverage_mix]
        d["entries"] = [list(x) for x in self.entries]
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
        if "entries" in d:
            d["entries"] = tuple((int(e[0]), *map(float, e[1:])) for e in d["entries"])
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
    entry_qty: np.ndarray | None = None  # sum of qty x entry price per bin (ADL ranking); None: unknown
    cum_qty: np.ndarray = field(init=False)
    cum_bq: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.cum_qty = np.concatenate([[0.0], np.cumsum(self.qty)])
        self.cum_bq = np.concatenate([[0.0], np.cumsum(self.bankrupt_qty)])

    @property
    def total_qty(self) -> float:
        return float(self.cum_qty[-1])


def lev_ratios(p: CascadeParams, side: int) -> list[tuple[float, float, float]]:
    """(weight share, liquidation / entry, bankruptcy / entry) per leverage of the mix, from the
    risk core's venue formulas for an isolated position of ``position_usd`` entered at ``price0``
    (liquidation and bankruptcy prices are proportional to the entry for a fixed position size:
    the bracket is chosen by the notional, the collateral is notional / leverage)."""
    return [(w, r_l, r_b) for w, r_l, r_b in _lev_ratios(p.venue, p.symbol, p.start_ts.timestamp(), p.price0,
                                                         p.position_usd, p.leverage_mix, side)]


_RATIO_CACHE: dict[tuple, list] = {}


def _lev_ratios(venue, symbol, ts, price0, position_usd, mix, side):
    key = (venue, symbol, ts, price0, position_usd, mix, side)
    hit = _RATIO_CACHE.get(key)
    if hit is not None:
        return hit
    inst = get_instrument(venue, symbol)
    rules = venue_rules(venue)
    table = inst.tiers_at(ts)
    floors, cums = table.floors_array, table.cums_array
    mmrs = np.array([effective_mmr(m, rules.mmr_adds_taker_fee, inst.taker_fee, rules.mmr_adds_funding, side, 0.0001)
                     for m in table.mmrs_array])
    total_w = sum(w for _, w in mix)
    out = []
    entry = price0
    for lev, w in mix:
        if inst.inverse:
            n = position_usd / inst.contract_size
            wallet = position_usd / entry / lev
        else:
            n = position_usd / entry / inst.contract_size
            wallet = position_usd / lev
        lp = liquidation_price_tiered(inst.inverse, rules.mm_on_entry, side, n, inst.contract_size, entry,
                                      wallet, floors, mmrs, cums, 0.0, 0.0)
        bp = bankruptcy_price(inst.inverse, side, n, inst.contract_size, entry, wallet, 0.0, 0.0)
        out.append((w / total_w, (lp / entry) if not math.isnan(lp) else math.nan,
                    (bp / entry) if not math.isnan(bp) else 0.0))
    if len(_RATIO_CACHE) > 512:
        _RATIO_CACHE.clear()
    _RATIO_CACHE[key] = out
    return out


def _profile(p: CascadeParams, side: int) -> list[tuple[float | None, np.ndarray, np.ndarray]]:
    """Groups of (leverage or None for the mix, entry prices, weights) of one side; weights over
    all groups sum to 1."""
    if p.entries:
        groups: dict[float | None, list[tuple[float, float]]] = {}
        for e in p.entries:
            if e[0] == side and e[2] > 0:
                groups.setdefault(float(e[3]) if len(e) > 3 else None, []).append((e[1], e[2]))
        total = sum(w for g in groups.values() for _, w in g)
        out = []
        for lev, g in groups.items():
            pr, w = np.array(g).T
            out.append((lev, pr, w / total))
        return out
    from scipy.stats import norm

    z = norm.ppf((np.arange(41) + 0.5) / 41)
    return [(None, p.price0 * np.exp(p.entry_offset + p.entry_spread * z), np.full(41, 1.0 / 41))]


_UNIT_CACHE: dict[tuple, tuple] = {}


def _unit_inventory(p: CascadeParams, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Levels, qty, qty x bankruptcy price and qty x entry price per bin for 1 USD of the side's
    open interest (live positions only, rescaled to 1 USD). Cached: calibration reuses it across runs."""
    key = (side, p.venue, p.symbol, p.start, p.price0, p.position_usd, p.leverage_mix, p.entries,
           p.entry_offset if not p.entries else 0.0, p.entry_spread if not p.entries else 0.0)
    hit = _UNIT_CACHE.get(key)
    if hit is not None:
        return hit
    x0 = math.log(p.price0)
    grid_lo = x0 - 3.0
    n_bins = int(6.0 / GRID_STEP) + 1
    levels = grid_lo + GRID_STEP * np.arange(n_bins)
    qty = np.zeros(n_bins)
    bq = np.zeros(n_bins)
    eq = np.zeros(n_bins)
    live = 0.0
    ts = p.start_ts.timestamp()
    cells = []
    for lev, entries, w_e in _profile(p, side):
        mix = p.leverage_mix if lev is None else ((lev, 1.0),)
        cells += [(entries, w_e, c) for c in _lev_ratios(p.venue, p.symbol, ts, p.price0, p.position_usd, mix, side)]
    for entries, w_e, (w_l, r_l, r_b) in cells:
        if math.isnan(r_l):
            continue  # cannot be liquidated
        lp = entries * r_l
        ok = (lp < p.price0) if side > 0 else (lp > p.price0)  # already liquidated before the start: dropped
        b = np.rint((np.log(np.where(ok, lp, p.price0)) - grid_lo) / GRID_STEP).astype(np.int64)
        ok &= (b >= 0) & (b < n_bins)
        usd = w_l * w_e
        q = np.where(ok, usd / entries, 0.0)
        np.add.at(qty, np.clip(b, 0, n_bins - 1), q)
        np.add.at(bq, np.clip(b, 0, n_bins - 1), q * entries * r_b)
        np.add.at(eq, np.clip(b, 0, n_bins - 1), q * entries)
        live += float(np.sum(usd[ok]))
    if live > 0:
        qty /= live
        bq /= live
        eq /= live
    if len(_UNIT_CACHE) > 64:
        _UNIT_CACHE.clear()
    _UNIT_CACHE[key] = (levels, qty, bq, eq)
    return levels, qty, bq, eq


def build_inventory(p: CascadeParams) -> tuple[Inventory, Inventory]:
    """Long and short inventories from the entry profile (lognormal, or ``entries``), the
    leverage mix and the venue's formulas; each side holds its OI (USD at entry) of live positions."""
    out = []
    for side, oi in ((1, p.long_oi_usd), (-1, p.short_oi_usd)):
        levels, qty, bq, eq = _unit_inventory(p, side)
        out.append(Inventory(side, levels, qty * oi, bq * oi, eq * oi))
    return out[0], out[1]


def runaway_ratio(p: CascadeParams, band: float = 0.05) -> float:
    """Branching ratio R at the start: long notional that liquidates per 1 % fall (averaged over
    the first ``band`` below ``price0``) divided by the book depth per 1 %. R > 1 means the
    liquidations a move triggers move the price further than the move itself (SBF's 312
    criterion, mechanics.md 3.2); buyers, impact decay and engine throttling raise the
    practical threshold above 1."""
    return _runaway(build_inventory(p)[0], p, band)


def _runaway(longs: Inventory, p: CascadeParams, band: float = 0.05) -> float:
    x0 = math.log(p.price0)
    mask = (longs.levels >= x0 + math.log(1 - band)) & (longs.levels <= x0)
    usd = float(np.sum(longs.qty[mask] * np.exp(longs.levels[mask])))
    return usd / (band * 100.0) / p.depth_usd


def _settlement_mask(times: pd.DatetimeIndex, venue: str) -> np.ndarray:
    hours = venue_rules(venue).funding_hours_utc
    return np.asarray((times.minute == 0) & np.isin(times.hour, hours))


ADL_GROUP_BINS = 20  # opposite-side bins ranked together at ADL: 20 x 0.05 % = 1 % of trigger price


def _group_sums(v: np.ndarray) -> np.ndarray:
    """Sum of each group of ADL_GROUP_BINS adjacent bins (the last group may be shorter): the
    same per-group numpy sums as ``v[a:b].sum()``, in one call."""
    n_full = len(v) // ADL_GROUP_BINS
    out = v[: n_full * ADL_GROUP_BINS].reshape(n_full, ADL_GROUP_BINS).sum(axis=1)
    if len(v) > n_full * ADL_GROUP_BINS:
        out = np.append(out, v[n_full * ADL_GROUP_BINS:].sum())
    return out


def adl_close(venue: str, symbol: str | None, bankrupt_side: int, bankrupt_qty: float, bankrupt_price: float,
              deficit_usd: float, qty: list, bq: list, eq: list, price: float) -> tuple[np.ndarray, Any]:
    """Close ``bankrupt_qty`` (base units) of the bankrupt side's backlog against the opposite
    side's live bins with the exchange's ADL engine (:func:`risk.adl.run_adl`: the venue's
    ranking, only as much as needed, socialised loss when the other side runs out).

    The simulator's inventory is binned, so each group of :data:`ADL_GROUP_BINS` adjacent bins is
    one ranked position (its average entry, bankruptcy price and the collateral between them,
    isolated). Quantities go to the ADL engine in contracts valued at ``price`` (the same
    conversion for both sides, so matched contracts are matched base units). The fund is already
    exhausted: ``deficit_usd`` is what the ADL'd positions (or the socialised loss) cover.
    Returns the base qty closed per bin and the :class:`risk.adl.AdlResult`."""
    from risk.adl import AdlPosition, run_adl
    from risk.formulas import unrealized_pnl

    inst = get_instrument(venue, symbol)
    inverse, cs = inst.inverse, inst.contract_size
    to_contracts = (price / cs) if inverse else (1.0 / cs)
    q = np.asarray(qty, float)
    n = len(q)
    groups = []
    positions = []
    g_q, g_e, g_b = (_group_sums(np.asarray(v, float)) for v in (q, eq, bq))
    for g in np.flatnonzero(~(g_q <= 0.0)):  # groups with live qty (NaN kept, as a failed check)
        a = int(g) * ADL_GROUP_BINS
        b = min(n, a + ADL_GROUP_BINS)
        gq = float(g_q[g])
        entry = float(g_e[g]) / gq
        bk = float(g_b[g]) / gq
        nc = gq * to_contracts
        side = -bankrupt_side
        # isolated collateral = the loss from entry to the bankruptcy price (settle ccy)
        coll = max(0.0, -unrealized_pnl(inverse, side * nc, cs, entry, bk)) if bk > 0 else \
            (nc * cs / entry if inverse else nc * cs * entry)
        positions.append(AdlPosition(account=f"bins {a:06d}", side=side, qty=nc, entry=entry, collateral=coll))
        groups.append((a, b, gq))
    closed = np.zeros(n)
    need = bankrupt_qty * to_contracts
    deficit = deficit_usd / price if inverse else deficit_usd  # settle ccy of the instrument
    res = run_adl(venue, bankrupt_side, need, bankrupt_price, max(deficit, 1e-12 * need), positions,
                  insurance_fund=0.0, mark=price, symbol=symbol)
    by_account = {f.account: f.qty for f in res.fills}
    for pos, (a, b, gq) in zip(positions, groups):
        c = by_account.get(pos.account, 0.0) / to_contracts
        if c > 0:
            closed[a:b] = q[a:b] * min(1.0, c / gq)
    return closed, res


def _adl_step(p: CascadeParams, st: np.ndarray, qL: np.ndarray, bL: np.ndarray, eL: np.ndarray,
              qS: np.ndarray, bS: np.ndarray, eS: np.ndarray) -> None:
    """Stage 3 of a step in which the insurance fund is exhausted with a backlog: the exchange's
    ADL engine (risk.adl.run_adl, through :func:`adl_close`) closes the backlog against the other
    side's positions in the venue's ranking order. Updates the kernel state ``st`` and the
    opposite side's bins in place; the fund is left at 0."""
    bl_q, bl_b, bs_q, bs_b = (float(st[i]) for i in (_k.S_BLQ, _k.S_BLB, _k.S_BSQ, _k.S_BSB))
    price = float(st[_k.S_PRICE])
    deficit = -float(st[_k.S_FUND])
    to_usd = price if get_instrument(p.venue, p.symbol).inverse else 1.0
    w_l = bl_q / (bl_q + bs_q)
    for side, bq_ in ((1, bl_q), (-1, bs_q)):
        if bq_ <= 0:
            continue
        share = deficit * (w_l if side > 0 else 1.0 - w_l)
        opp_q, opp_b, opp_e = (qS, bS, eS) if side > 0 else (qL, bL, eL)
        avg_b = (bl_b / bl_q) if side > 0 else (bs_b / bs_q)
        closed, res = adl_close(p.venue, p.symbol, side, bq_, avg_b if avg_b > 0 else price, share,
                                opp_q, opp_b, opp_e, price)
        r = float(closed.sum())
        if r > 0:
            i = np.flatnonzero(closed)
            k = 1.0 - closed[i] / opp_q[i]
            opp_q[i] *= k
            opp_b[i] *= k
            opp_e[i] *= k
        st[_k.T_ADL_COVERED] += sum(f.shortfall_covered for f in res.fills) * to_usd
        st[_k.T_SOCIALISED] += res.socialised_loss * to_usd
        st[_k.T_ADL_EVENTS] += 1
        if side > 0:
            st[_k.S_LIVE_S] -= r
            st[_k.T_RED_S] += r
            st[_k.T_ADL_L] += bl_q
            bl_q = bl_b = 0.0
            st[_k.S_BLQ] = st[_k.S_BLB] = 0.0
        else:
            st[_k.S_LIVE_L] -= r
            st[_k.T_RED_L] += r
            st[_k.T_ADL_S] += bs_q
            bs_q = bs_b = 0.0
            st[_k.S_BSQ] = st[_k.S_BSB] = 0.0
    st[_k.S_FUND] = 0.0


class AdlRoundsExceeded(DeleverageError):
    """A run needed more ADL rounds than ``max_adl_rounds`` (the calibration's bound)."""


def _run(params: CascadeParams, seed: int, max_adl_rounds: int | None = None) -> dict[str, Any]:
    """The step loop of one run and its raw arrays (what :func:`simulate` and
    :func:`simulate_summary` turn into bars and figures). ``max_adl_rounds``: stop with
    :class:`AdlRoundsExceeded` when the insurance fund is exhausted more often than that (each
    round runs the venue's ADL in Python; the calibration bounds them, see feeds.cascade.calib)."""
    p = params
    longs, shorts = build_inventory(p)
    levels = longs.levels
    grid_lo = float(levels[0])
    spb = int(round(60 / p.dt_s))
    n_steps = p.minutes * spb
    dt = p.dt_s
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n_steps) * (p.noise_per_sqrt_min * math.sqrt(dt / 60.0))
    D0 = float(p.depth_usd)

    shock = np.zeros(n_steps)
    for s in p.shocks:
        a = max(0, int(round(s.start_min * spb)))
        b = min(n_steps, max(a + 1, int(round((s.start_min + s.minutes) * spb))))
        if a < n_steps:
            shock[a:b] += s.usd / (b - a)
    # exogenous sell flow: decaying burst + OU noise (USD per step, in units of D0)
    t_min = np.arange(n_steps) * (dt / 60.0)
    shock += D0 * p.flow_rate * np.exp(-t_min / p.flow_tau_min) * (dt / 60.0)
    directed = shock.copy()    # what de-risking acts on: shocks and burst, not the two-sided noise
    if p.flow_noise > 0:
        z = np.random.default_rng([seed, 1]).standard_normal(n_steps)
        phi_ou = math.exp(-dt / 60.0 / p.flow_noise_tau_min)
        shock += D0 * p.flow_noise * _k.ou_path(z, phi_ou, math.sqrt(1.0 - phi_ou * phi_ou)) * (dt / 60.0)
    halted = np.zeros(n_steps, dtype=bool)
    for a, b in p.halts:
        halted[max(0, int(a * spb)):max(0, int(b * spb))] = True
    shock[halted] = 0.0
    directed[halted] = 0.0

    # constants of the step loop (feeds.cascade.kernel)
    x0 = math.log(p.price0)
    cfg = np.empty(_k.N_CFG)
    cfg[_k.C_X0] = x0
    cfg[_k.C_D0] = D0
    cfg[_k.C_DMIN] = D0 * p.depth_min_frac
    cfg[_k.C_AM] = 1.0 - math.exp(-dt / p.mark_window_eff)
    cfg[_k.C_AF] = 1.0 - math.exp(-dt / p.fair_tau_s)
    cfg[_k.C_AW] = 1.0 - math.exp(-dt / 60.0 / p.flow_window_min)
    cfg[_k.C_DECAY] = math.exp(-dt / p.impact_tau_s)
    cfg[_k.C_G] = p.impact_permanent
    cfg[_k.C_DELTA] = p.impact_exponent
    cfg[_k.C_CAPK] = p.engine_rate_eff * dt / 60.0
    cfg[_k.C_TAUFRAC] = math.nan if p.engine_tau_s is None else 1.0 - math.exp(-dt / p.engine_tau_s)
    cfg[_k.C_BUYK] = p.buyer_strength * dt / 60.0 / 0.01
    cfg[_k.C_EXCK] = p.flow_excite * dt / 60.0 / 0.01
    cfg[_k.C_REBUILD] = p.rebuild_share
    cfg[_k.C_GRIDLO] = grid_lo
    cfg[_k.C_GRIDSTEP] = GRID_STEP
    cfg[_k.C_KAPPA] = p.depth_kappa
    cfg[_k.C_TAUD] = p.depth_tau_s
    cfg[_k.C_DT] = dt
    cfg[_k.C_ADL] = 1.0 if p.adl else 0.0
    cfg[_k.C_DRK] = p.derisk_close * p.derisk_lev_share
    cfg[_k.C_DRKOI] = p.derisk_close
    cfg[_k.C_MOMSHORT] = p.momentum_short_share * (1.0 - p.derisk_close)
    # new positions opened during the event: weight, bin offset and bankruptcy ratio per leverage
    # (row 0 longs, row 1 shorts; leverages that cannot be liquidated are left out)
    n_mix = len(p.leverage_mix)
    reb_w, reb_rb = np.zeros((2, n_mix)), np.zeros((2, n_mix))
    reb_off, reb_n = np.zeros((2, n_mix), dtype=np.int64), np.zeros(2, dtype=np.int64)
    for row, side in ((0, 1), (1, -1)):
        for w, r_l, r_b in lev_ratios(p, side):
            if not math.isnan(r_l):
                j = reb_n[row]
                reb_w[row, j], reb_off[row, j], reb_rb[row, j] = w, int(round(math.log(r_l) / GRID_STEP)), r_b
                reb_n[row] += 1

    # inventory bins (copies: the Inventory objects stay the initial state)
    qL, bL, eL = longs.qty.copy(), longs.bankrupt_qty.copy(), longs.entry_qty.copy()
    qS, bS, eS = shorts.qty.copy(), shorts.bankrupt_qty.copy(), shorts.entry_qty.copy()
    init_l, init_s = float(longs.total_qty), float(shorts.total_qty)
    st = np.zeros(_k.N_ST)
    st[[_k.S_X, _k.S_M, _k.S_F, _k.S_FW]] = x0
    st[_k.S_D] = D0
    st[_k.S_LIVE_L], st[_k.S_LIVE_S] = init_l, init_s
    st[_k.S_FUND] = p.insurance_fund_usd
    st[_k.S_SCL_L] = st[_k.S_SCL_S] = 1.0
    # long bins >= k_long are triggered, short bins < k_short
    ist = np.array([_k.bisect_left(levels, x0), _k.bisect_right(levels, x0)], dtype=np.int64)

    xs = np.full(n_steps + 1, x0)
    ms = np.full(n_steps + 1, x0)
    trig_l, trig_s, trig_l_usd, trig_s_usd = (np.zeros(n_steps) for _ in range(4))
    vol_usd, prem, oi, depth, fund_path = (np.zeros(n_steps) for _ in range(5))

    t, resume = 0, False
    while True:
        t = _k.step_loop(t, resume, cfg, st, ist, levels, qL, bL, eL, qS, bS, eS, noise, shock, directed, halted,
                         reb_w, reb_off, reb_rb, reb_n, xs, ms, trig_l, trig_s, trig_l_usd, trig_s_usd,
                         vol_usd, prem, oi, depth, fund_path)
        if t >= n_steps:
            break
        # 3. (step t) the insurance fund is exhausted with a backlog: ADL, then stage 4 of step t
        if max_adl_rounds is not None and st[_k.T_ADL_EVENTS] >= max_adl_rounds:
            raise AdlRoundsExceeded(f"more than {max_adl_rounds} ADL rounds in one run (step {t} of {n_steps})")
        _adl_step(p, st, qL, bL, eL, qS, bS, eS)
        resume = True
    tot = {name: float(st[_k.S_TOT + i]) for i, name in enumerate(_k.TOTALS)}
    live_l, live_s = float(st[_k.S_LIVE_L]), float(st[_k.S_LIVE_S])
    bl_q, bs_q, fund = float(st[_k.S_BLQ]), float(st[_k.S_BSQ]), float(st[_k.S_FUND])

    return {"p": p, "longs": longs, "spb": spb, "n_steps": n_steps, "xs": xs, "ms": ms, "trig_l": trig_l,
            "trig_s": trig_s, "trig_l_usd": trig_l_usd, "trig_s_usd": trig_s_usd, "vol_usd": vol_usd, "prem": prem,
            "oi": oi, "depth": depth, "fund_path": fund_path, "tot": tot, "live_l": live_l, "live_s": live_s,
            "bl_q": bl_q, "bs_q": bs_q, "fund": fund, "init_l": init_l, "init_s": init_s, "qL": qL, "qS": qS, "D0": D0}


def _figures(r: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Summary, inventory and the per-bar last-price OHLC of a run (numpy only)."""
    p, spb, n_steps, xs = r["p"], r["spb"], r["n_steps"], r["xs"]
    tot, fund, depth, fund_path, oi = r["tot"], r["fund"], r["depth"], r["fund_path"], r["oi"]
    init_l, init_s, D0 = r["init_l"], r["init_s"], r["D0"]
    n_bars = p.minutes
    idx = np.arange(n_bars)[:, None] * spb + np.arange(spb + 1)[None, :]
    last = np.exp(xs)[idx]
    close = last[:, -1]
    ohlc = {"open": last[:, 0], "high": last.max(axis=1), "low": last.min(axis=1), "close": close, "idx": idx}
    trough = int(np.argmin(ohlc["low"]))
    peak = float(ohlc["high"][: trough + 1].max())
    summary = {
        "peak_to_trough": float(ohlc["low"][trough] / peak - 1.0),
        "trough_price": float(ohlc["low"][trough]),
        "time_to_trough_min": trough,
        "close_vs_start": float(close[-1] / p.price0 - 1.0),
        "liquidated_long_usd": float(r["trig_l_usd"].sum()), "liquidated_short_usd": float(r["trig_s_usd"].sum()),
        "adl_long_qty": tot["adl_l"], "adl_short_qty": tot["adl_s"],
        "adl_shortfall_covered_usd": tot["adl_covered"], "socialised_loss_usd": tot["socialised"],
        "adl_runs": int(tot["adl_events"]),
        "insurance_fund_end_usd": float(fund), "insurance_fund_min_usd": float(fund_path.min()) if n_steps else float(fund),
        "depth_min_usd": float(depth.min()) if n_steps else D0,
        "runaway_ratio": _runaway(r["longs"], p),
        "oi_qty_change": float(oi[-1] / (init_l + init_s) - 1.0) if n_steps and init_l + init_s > 0 else 0.0,
        "opened_long_usd": tot["new_l_usd"], "opened_short_usd": tot["new_s_usd"],
    }
    inventory = {
        "long_initial_qty": init_l, "long_live_qty": r["live_l"], "long_triggered_qty": tot["trig_l"],
        "long_executed_qty": tot["exec_l"], "long_backlog_qty": r["bl_q"], "long_adl_closed_qty": tot["adl_l"],
        "long_removed_by_adl_qty": tot["red_l"],
        "long_opened_qty": tot["new_l"], "long_opened_usd": tot["new_l_usd"],
        "long_live_from_bins_qty": _k.seq_sum(r["qL"]), "long_derisked_qty": tot["drk_l"],
        "short_initial_qty": init_s, "short_live_qty": r["live_s"], "short_triggered_qty": tot["trig_s"],
        "short_executed_qty": tot["exec_s"], "short_backlog_qty": r["bs_q"], "short_adl_closed_qty": tot["adl_s"],
        "short_removed_by_adl_qty": tot["red_s"],
        "short_opened_qty": tot["new_s"], "short_opened_usd": tot["new_s_usd"],
        "short_live_from_bins_qty": _k.seq_sum(r["qS"]), "short_derisked_qty": tot["drk_s"],
        "derisked_oi_qty": tot["drk_oi"],
    }
    return summary, inventory, ohlc


def simulate_summary(params: CascadeParams, seed: int = 0,
                     max_adl_rounds: int | None = None) -> tuple[dict[str, Any], dict[str, Any], float]:
    """The figures of :func:`simulate` without building the bar frame: ``(summary, inventory,
    last close)``, identical to ``simulate(...).attrs["summary"]``, ``.attrs["inventory"]`` and
    the last bar's close (the calibration's path: thousands of runs, no DataFrame each).
    ``max_adl_rounds``: see :func:`_run` (default: no bound)."""
    summary, inventory, ohlc = _figures(_run(params, seed, max_adl_rounds))
    return summary, inventory, float(ohlc["close"][-1])


def simulate(params: CascadeParams, seed: int = 0) -> pd.DataFrame:
    """Run one cascade; returns the canonical 1-minute bar frame (``attrs["kind"] == "simulated"``).

    ``attrs["summary"]`` holds peak-to-trough, time to trough, liquidated notional by side,
    ADL, the insurance fund and the initial runaway ratio; ``attrs["inventory"]`` the
    open-interest bookkeeping (initial + opened = live + triggered + removed by ADL + de-risked, per side).
    """
    r = _run(params, seed)
    summary, inventory, ohlc = _figures(r)
    p, spb, xs, ms = r["p"], r["spb"], r["xs"], r["ms"]
    trig_l, trig_s, trig_l_usd, trig_s_usd = r["trig_l"], r["trig_s"], r["trig_l_usd"], r["trig_s_usd"]
    vol_usd, prem, oi = r["vol_usd"], r["prem"], r["oi"]
    n_bars = p.minutes
    times = pd.date_range(p.start_ts, periods=n_bars, freq="1min", name="open_time")
    mark = np.exp(ms)[ohlc["idx"]]
    close = ohlc["close"]
    per_bar = lambda a: a.reshape(n_bars, spb).sum(axis=1)  # noqa: E731
    vol_q = per_bar(vol_usd)
    cols: dict[str, np.ndarray] = {
        "open": ohlc["open"], "high": ohlc["high"], "low": ohlc["low"], "close": close,
        "volume": per_bar(vol_usd / np.exp(xs[1:])), "quote_volume": vol_q,
        "mark_open": mark[:, 0], "mark_high": mark.max(axis=1), "mark_low": mark.min(axis=1), "mark_close": mark[:, -1],
        "liq_long_qty": per_bar(trig_l), "liq_long_notional": per_bar(trig_l_usd),
        "liq_short_qty": per_bar(trig_s), "liq_short_notional": per_bar(trig_s_usd),
        "open_interest": oi.reshape(n_bars, spb)[:, -1],
    }
    cols["open_interest_notional"] = cols["open_interest"] * close
    # funding at settlements: Binance-style premium + clamped interest, capped
    funding = np.full(n_bars, np.nan)
    cap = FUNDING_CAPS.get(p.venue, 0.003)
    hourly = venue_rules(p.venue).funding_hours_utc == tuple(range(24))
    prem_bar = prem.reshape(n_bars, spb).mean(axis=1)
    last_settle = 0
    for i in np.flatnonzero(_settlement_mask(times, p.venue)):
        avg = float(prem_bar[last_settle:i].mean()) if i > last_settle else float(prem_bar[0])
        rate = avg + min(max(0.0001 - avg, -0.0005), 0.0005)
        rate = min(max(rate, -cap), cap)
        funding[i] = rate / 8.0 if hourly else rate
        last_settle = i
    cols["funding_rate"] = funding
    frame = pd.DataFrame(cols, index=times)

    frame.attrs.update({
        "kind": "simulated", "source": "cascade simulator (feeds.cascade)",
        "label": f"SIMULATED cascade (seed {seed}) on {p.venue}: not exchange data",
        "venue": p.venue, "symbol": get_instrument(p.venue, p.symbol).symbol, "interval": "1min",
        "seed": int(seed), "params": p.to_dict(), "summary": summary, "inventory": inventory,
        "volume_unit": "base (simulated: engine, shock and value-flow volume only)",
        "notes": ["open_interest = leveraged positions still open in the model (long + short, base units)",
                  "liq_*: notional triggered on the mark (joins the engine's backlog), valued at the mark"],
    })
    return frame


def monte_carlo(params: CascadeParams, seeds: Iterable[int], vary: dict[str, tuple[float, float]] | None = None,
                sample_seed: int = 0) -> pd.DataFrame:
    """Run ``simulate`` over seeds, drawing each parameter in ``vary`` uniformly from its
    (low, high) range (log-uniform when both bounds are positive and differ by more than 10x);
    returns one summary row per run."""
    rng = np.random.default_rng(sample_seed)
    rows = []
    names = {f.name for f in fields(CascadeParams)}
    for seed in seeds:
        changes: dict[str, Any] = {}
        for name, (lo, hi) in (vary or {}).items():
            if name not in names:
                raise DeleverageError(f"cannot vary unknown parameter {name!r}")
            if lo > 0 and hi / lo > 10:
                changes[name] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            else:
                changes[name] = float(rng.uniform(lo, hi))
        run = simulate(params.with_(**changes), seed=int(seed))
        rows.append({"seed": int(seed), **changes, **run.attrs["summary"]})
    return pd.DataFrame(rows)
