"""The stored result of one run, and how it is written to and read from a run directory.

A run directory holds::

    config.json        the run's configuration and data provenance (see RunResult.config)
    summary.json       headline numbers (see engine.runner / reports.metrics)
    equity.parquet     one row per bar
    fills.parquet      one row per fill (trades and liquidations)
    trades.parquet     one row per closed (or still open) round trip
    funding.parquet    one row per funding settlement of an open position
    liquidations.parquet  one row per liquidation
    fees.parquet       one row per fee charged (trade fees, liquidation clearance fees, ADL fees)
    adl.parquet        one row per auto-deleveraging close of the strategy's position (issue 15)

All money columns are in the instrument's settle currency (USDT for linear contracts, the
coin for inverse ones); ``config["settle_currency"]`` names it. Times are tz-aware UTC.

Money is conserved: ``equity[-1] - initial_cash == sum(fills.realized_pnl) +
final unrealized PnL - sum(fees.amount) + sum(funding.amount) + sum(liquidations.insurance_cover)``
where liquidation clearance fees appear in ``fees`` with ``kind == "liquidation"`` and realized PnL
of liquidation fills appears in ``fills`` with ``kind == "liquidation"``; an auto-deleveraging close
is a fill with ``kind == "adl"`` (and its fee, Bybit's maker fee, a fee with ``kind == "adl"``).
Every ``fees.amount`` is paid by the account (a liquidation's clearance fee >= 0; only a maker
rebate is negative). ``liquidations.insurance_cover`` (>= 0) is
what the insurance fund credited the account on an insolvent liquidation (a position with no
margin left, bankrupt at the bar's open, closed at the market: the fund pays the shortfall back to
zero, :func:`risk.formulas.liquidation_charge`); it is not a fee. ``liquidations.insurance_fund``
is the fund's net on the row: the clearance it received, or ``-insurance_cover`` it paid out, and
for a solvent liquidation whose bar gapped through the liquidation price the fund's result of the
gapped close, ``fee + uPnL(trader's fill -> exit at the trigger open)`` (negative past bankruptcy).
A trade's ``pnl_net`` is ``pnl - fees + funding`` plus the cover of its liquidation.

A liquidation row with ``partial == True`` is a venue's partial liquidation (``qty`` closed,
``qty_left`` still open); a full liquidation has ``partial == False`` and ``qty_left == 0``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Column contracts, in order. Producers (the engines) must emit exactly these columns.
EQUITY_COLUMNS = (
    "equity", "wallet_balance", "unrealized_pnl", "position_qty", "close", "mark",
    "liquidation_price", "maintenance_margin", "margin_ratio", "distance_to_liquidation",
    "funding_cum", "fees_cum",
)
FILL_COLUMNS = ("time", "symbol", "side", "qty", "price", "fee", "realized_pnl", "kind")
TRADE_COLUMNS = (
    "open_time", "close_time", "symbol", "side", "qty", "entry_price", "exit_price",
    "pnl", "fees", "funding", "pnl_net", "liquidated",
)
FUNDING_COLUMNS = ("time", "symbol", "position_qty", "price", "rate", "amount")
LIQUIDATION_COLUMNS = (
    "time", "symbol", "side", "qty", "trigger_price", "liquidation_price",
    "bankruptcy_price", "fill_price", "fee", "insurance_fund", "realized_pnl", "equity_after",
    "partial", "qty_left", "insurance_cover",
)
ADL_COLUMNS = (
    "time", "symbol", "side", "qty", "price", "fee", "realized_pnl", "score", "quantile", "lights",
    "flow_notional", "qty_left", "equity_after",
)
# columns added after run directories were first written: their value in older rows / producers
COLUMN_DEFAULTS: dict[str, dict[str, Any]] = {"liquidations": {"partial": False, "qty_left": 0.0,
                                                                "insurance_cover": 0.0}}
OPTIONAL_TABLES = ("adl",)  # a run directory written before the table existed reads it as empty
FEE_COLUMNS = ("time", "symbol", "kind", "amount")

TABLES: dict[str, tuple[str, ...]] = {
    "equity": EQUITY_COLUMNS,
    "fills": FILL_COLUMNS,
    "trades": TRADE_COLUMNS,
    "funding": FUNDING_COLUMNS,
    "liquidations": LIQUIDATION_COLUMNS,
    "fees": FEE_COLUMNS,
    "adl": ADL_COLUMNS,
}


def empty_table(name: str) -> pd.DataFrame:
    """Return an empty frame with the columns of table ``name``."""
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in TABLES[name]})


@dataclass
class RunResult:
    """Everything a run produced. ``equity`` is indexed by bar open time (UTC)."""

    config: dict[str, Any]
    equity: pd.DataFrame
    fills: pd.DataFrame = field(default_factory=lambda: empty_table("fills"))
    trades: pd.DataFrame = field(default_factory=lambda: empty_table("trades"))
    funding: pd.DataFrame = field(default_factory=lambda: empty_table("funding"))
    liquidations: pd.DataFrame = field(default_factory=lambda: empty_table("liquidations"))
    fees: pd.DataFrame = field(default_factory=lambda: empty_table("fees"))
    adl: pd.DataFrame = field(default_factory=lambda: empty_table("adl"))
    summary: dict[str, Any] = field(default_factory=dict)

    def save(self, run_dir: str | Path) -> Path:
        """Write the run to ``run_dir`` (created if needed) and return the path."""
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            frame: pd.DataFrame = getattr(self, name)
            frame.to_parquet(path / f"{name}.parquet")
        (path / "config.json").write_text(json.dumps(self.config, indent=2, default=str) + "\n")
        (path / "summary.json").write_text(json.dumps(self.summary, indent=2, default=_json_default) + "\n")
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> RunResult:
        """Read a run directory written by :meth:`save`."""
        path = Path(run_dir)
        missing = [f"{n}.parquet" for n in TABLES
                   if n not in OPTIONAL_TABLES and not (path / f"{n}.parquet").exists()]
        missing += [f for f in ("config.json", "summary.json") if not (path / f).exists()]
        if missing:
            raise FileNotFoundError(f"{path} is not a complete run directory: missing {', '.join(missing)}")
        tables = {name: read_parquet(path / f"{name}.parquet") if (path / f"{name}.parquet").exists()
                  else empty_table(name) for name in TABLES}
        for name, defaults in COLUMN_DEFAULTS.items():
            for column, value in defaults.items():
                if column not in tables[name].columns:
                    tables[name][column] = value
        return cls(
            config=read_json(path / "config.json"),
            summary=read_json(path / "summary.json"),
            **tables,
        )


def drawdowns(eq: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """``1 - equity / running peak`` per bar, without numpy's warnings: a peak of 0 (an account
    wiped out by the first bar's end) gives NaN where the equity is 0 too (no drawdown is
    defined against nothing), as the compiled pass does (:func:`engine.fast._kernel`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - eq / peak


def max_drawdown_of(dd: np.ndarray) -> float:
    """The summary's ``max_drawdown``: the largest of :func:`drawdowns` (NaN bars skipped; NaN
    when every bar is NaN, 0 with no bars)."""
    if not len(dd):
        return 0.0
    return float(np.nanmax(dd)) if not np.isnan(dd).all() else math.nan


def insurance_cover_total(liquidations: pd.DataFrame) -> float:
    """What the insurance fund credited the account over a run (the sum of
    ``liquidations.insurance_cover``, insolvent liquidations only; never a fee): 0.0 without one
    (and for a table written before the column existed)."""
    if not len(liquidations) or "insurance_cover" not in liquidations:
        return 0.0
    return float(liquidations["insurance_cover"].sum())


def legacy_cover_note(liquidations: pd.DataFrame) -> str:
    """A warning for a run stored before the insurance fund's cover of an insolvent liquidation
    became its own kind (``insurance_cover``, commit 8edc9b2): such a run booked the cover as a
    negative liquidation fee, so its liquidation fee and ``fees_total`` include it and its cover
    reads 0. Today's engines never write a negative liquidation fee. The stored
    numbers are shown as they are (never rewritten); the note says which row and how to refresh."""
    if not len(liquidations) or "fee" not in liquidations:
        return ""
    fees = pd.to_numeric(liquidations["fee"], errors="coerce").to_numpy(dtype="float64")
    negative = np.flatnonzero(fees < 0.0)
    if not len(negative):
        return ""
    row = int(negative[0])
    more = f" (and {len(negative) - 1} more)" if len(negative) > 1 else ""
    return (f"stored by an earlier deleverage: liquidation row {row + 1}{more} has fee {fees[row]:.6g} < 0, the "
            "insurance fund's cover booked as a negative fee, so the fees total includes it and the cover shows 0; "
            "re-run to book it as insurance_cover")


def read_parquet(path: str | Path) -> pd.DataFrame:
    """``pd.read_parquet(path)``, or one clear DeleverageError naming the file when it is not a
    readable Parquet file (truncated, overwritten, not Parquet at all)."""
    from risk.errors import DeleverageError

    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise DeleverageError(f"{path}: file not found") from None
    except Exception as exc:  # pyarrow's ArrowInvalid / ArrowIOError / OSError: the file's bytes, not a bug
        import re

        detail = re.sub(r"^Could not open Parquet input source '[^']*':\s*", "", " ".join(str(exc).split()))
        if len(detail) > 160:
            detail = detail[:157] + "..."
        raise DeleverageError(f"{path}: not a readable Parquet file ({detail}); expected the "
                              "file as deleverage wrote it (run the command that made this directory again)") from None


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``, or one clear DeleverageError naming the file."""
    from risk.errors import DeleverageError

    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeleverageError(f"{path} is not valid JSON: {exc}") from None


def load_table_dir(directory: str | Path, table: str, required: tuple[str, ...], config_name: str,
                   label: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """Read ``table`` (a Parquet file with the ``required`` columns and at least one row) and the
    optional JSON ``config_name`` of a stress or optimization directory; clear errors otherwise."""
    from risk.errors import DeleverageError

    path = Path(directory)
    if not (path / table).exists():
        raise DeleverageError(f"{label} is not a {label.split('_')[0].lower()} directory: missing {table} in {path}")
    frame = read_parquet(path / table)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DeleverageError(f"{path / table} lacks column(s) {', '.join(missing)}")
    if not len(frame):
        raise DeleverageError(f"{path / table} has no rows")
    config: dict[str, Any] = {}
    if (path / config_name).exists():
        try:
            config = json.loads((path / config_name).read_text())
        except json.JSONDecodeError as exc:
            raise DeleverageError(f"{path / config_name} is not valid JSON: {exc}") from exc
    return config, frame


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)
