"""Instrument specification: an immutable description of one perpetual contract.

A :class:`PerpInstrument` says what a contract is (linear or inverse, contract size, tick and
lot, fees, funding interval) and carries its maintenance-margin bracket tables, each dated,
so a backtest of 2020 uses the brackets in force in 2020.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from risk.errors import DeleverageError
from risk.formulas import cumulative_amounts, notional, tier_index


@dataclass(frozen=True)
class TierTable:
    """Maintenance-margin brackets in force from ``effective_from`` (UTC date, ISO text).

    ``floors`` are the lower notional bounds of the brackets in settle currency (ascending,
    starting at 0; a bracket holds notionals in ``(floor, next floor]``, as venues publish them); ``mmrs`` the maintenance rates (fractions); ``max_leverages`` the maximum
    leverage allowed in each bracket. ``cum_rule`` says how maintenance amounts are formed:
    ``"continuous"`` (Binance, OKX: ``cum_n = floor_n*(mmr_n - mmr_{n-1}) + cum_{n-1}``)
    or ``"step"`` (BitMEX and Bybit risk limits: the bracket's rate applies to the whole
    position, no amount deducted). ``source`` cites where the table was published.
    """

    effective_from: str
    floors: tuple[float, ...]
    mmrs: tuple[float, ...]
    max_leverages: tuple[float, ...]
    source: str
    cum_rule: str = "continuous"
    note: str = ""
    floors_array: np.ndarray = field(init=False, repr=False, compare=False)
    mmrs_array: np.ndarray = field(init=False, repr=False, compare=False)
    cums_array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.floors)
        if not (n == len(self.mmrs) == len(self.max_leverages)) or n == 0:
            raise DeleverageError(f"tier table {self.effective_from}: floors, mmrs and max_leverages must have the same non-zero length")
        if self.floors[0] != 0 or any(b <= a for a, b in zip(self.floors, self.floors[1:])):
            raise DeleverageError(f"tier table {self.effective_from}: floors must start at 0 and increase strictly, got {self.floors}")
        if any(not (0 < m < 1) for m in self.mmrs):
            raise DeleverageError(f"tier table {self.effective_from}: maintenance rates must be fractions in (0, 1), got {self.mmrs}")
        if any(not (lev > 0) for lev in self.max_leverages):
            raise DeleverageError(f"tier table {self.effective_from}: max_leverages must be positive, got {self.max_leverages}")
        try:
            datetime.fromisoformat(self.effective_from)
        except (TypeError, ValueError):
            raise DeleverageError(f"tier table effective_from must be an ISO date like '2021-03-18', got {self.effective_from!r}") from None
        if not self.source.strip():
            raise DeleverageError(f"tier table {self.effective_from}: source must cite where the table was published")
        if self.cum_rule not in ("continuous", "step"):
            raise DeleverageError(f"tier table {self.effective_from}: cum_rule must be 'continuous' or 'step', got {self.cum_rule!r}")
        floors = np.asarray(self.floors, dtype=np.float64)
        mmrs = np.asarray(self.mmrs, dtype=np.float64)
        cums = cumulative_amounts(floors, mmrs) if self.cum_rule == "continuous" else np.zeros(n)
        object.__setattr__(self, "floors_array", floors)
        object.__setattr__(self, "mmrs_array", mmrs)
        object.__setattr__(self, "cums_array", cums)

    def bracket(self, notional_value: float) -> tuple[float, float, float]:
        """Return ``(mmr, cum, max_leverage)`` of the bracket holding ``notional_value``."""
        i = tier_index(notional_value, self.floors_array)
        return float(self.mmrs_array[i]), float(self.cums_array[i]), float(self.max_leverages[i])

    @property
    def effective_timestamp(self) -> float:
        return datetime.fromisoformat(self.effective_from).replace(tzinfo=timezone.utc).timestamp()


@dataclass(frozen=True)
class PerpInstrument:
    """One perpetual contract on one venue.

    Parameters
    ----------
    symbol, venue:
        Venue symbol (``"BTCUSDT"``, ``"XBTUSD"``) and venue key (see :mod:`risk.venues`).
    inverse:
        False for linear (USDT/USDC-margined) contracts, True for inverse (coin-margined).
    contract_size:
        Linear: base units per contract (1.0: quantities are in base units). Inverse: quote
        (USD) per contract (XBTUSD: 1 USD; Binance COIN-M BTCUSD_PERP: 100 USD).
    tick_size, lot_size, min_notional:
        Price increment (quote), quantity increment (base units or contracts), and the minimum
        order notional (quote currency).
    settle_currency:
        Currency of margin and PnL (``"USDT"``, ``"BTC"``...).
    maker_fee, taker_fee:
        Trade fee rates (fractions of notional; negative means a rebate).
    liquidation_fee_rate:
        Clearance fee charged on the liquidated notional and paid to the insurance fund
        (Binance); 0 where the venue instead takes the remaining margin (BitMEX, Bybit) or
        charges nothing (Hyperliquid).
    funding_interval_hours:
        Hours between funding settlements.
    tier_tables:
        Dated maintenance-margin bracket tables, any order; the one in force at a time is
        the latest whose ``effective_from`` is not after it.
    """

    symbol: str
    venue: str
    inverse: bool
    contract_size: float
    tick_size: float
    lot_size: float
    min_notional: float
    settle_currency: str
    maker_fee: float
    taker_fee: float
    liquidation_fee_rate: float
    funding_interval_hours: float
    tier_tables: tuple[TierTable, ...]
    base_currency: str = "BTC"
    quote_currency: str = "USD"

    def __post_init__(self) -> None:
        if not self.tier_tables:
            raise DeleverageError(f"{self.venue}:{self.symbol}: at least one tier table is required")
        if self.contract_size <= 0 or self.tick_size <= 0 or self.lot_size <= 0:
            raise DeleverageError(f"{self.venue}:{self.symbol}: contract_size, tick_size and lot_size must be positive")
        tables = tuple(sorted(self.tier_tables, key=lambda t: t.effective_from))
        object.__setattr__(self, "tier_tables", tables)
        object.__setattr__(self, "_starts", [t.effective_timestamp for t in tables])

    def tiers_at(self, timestamp: float | None = None) -> TierTable:
        """The bracket table in force at ``timestamp`` (Unix seconds, UTC); latest when None.

        Before the earliest table's date the earliest table is used (the earliest one we can
        cite); that table's ``note`` says so.
        """
        if timestamp is None:
            return self.tier_tables[-1]
        i = bisect.bisect_right(self._starts, timestamp) - 1  # type: ignore[attr-defined]
        return self.tier_tables[max(i, 0)]

    def max_leverage(self, notional_value: float, timestamp: float | None = None) -> float:
        """Maximum leverage allowed for a position of ``notional_value`` (settle currency)."""
        return self.tiers_at(timestamp).bracket(notional_value)[2]

    def notional(self, qty: float, price: float) -> float:
        """Position value in settle currency."""
        return notional(self.inverse, qty, self.contract_size, price)

    def round_qty(self, qty: float) -> float:
        """Round a quantity down to the lot size (toward zero)."""
        steps = math.floor(abs(qty) / self.lot_size + 1e-9)
        return math.copysign(steps * self.lot_size, qty)

    def round_price(self, price: float) -> float:
        """Round a price to the nearest tick."""
        return round(price / self.tick_size) * self.tick_size
