"""The waterfall library: 312, 519 and the other liquidation waterfalls, built in.

Each :class:`Scenario` carries its window, venues, key facts with sources and, per asset and
venue, the published waypoints from which :meth:`Scenario.bars` reconstructs a 1-minute path
(last and mark OHLC, funding, liquidation notional by side, open interest where published).
Reconstructions are deterministic (seeded) and labelled ``attrs["kind"] = "reconstructed"``.
``bars(data="real")`` returns the real exchange bars where we have them: a file given, the real
BitMEX XBTUSD minutes of 312 and 519 shipped in the package (``feeds/scenarios/shipped``, built
by :mod:`feeds.scenarios.build_real` from the shared files), the shared files themselves, or
what ``deleverage data fetch`` put in the cache (Binance USDⓈ-M klines + mark + funding, BitMEX
buckets + funding), in that order. ``bars(data="auto")`` is the real bars where they are shipped
or cached, else the reconstruction.

Time convention: ``scenario.start`` is the first bar's open, ``scenario.end`` the open of the
bar after the last one (so ``[start, end)``); ``scenario.entry_time`` is a suggested time to
have positions open, some hours before ``scenario.fall_start``.

>>> from feeds.scenarios import get_scenario
>>> s = get_scenario("519")
>>> bars = s.bars()                       # reconstructed, Binance USD-M, BTC
>>> bars.attrs["kind"]
'reconstructed'
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from risk.errors import DeleverageError
from feeds.adl import attach_adl_flow
from feeds.scenarios.reconstruct import parse_time, pool_for, reconstruct, stable_seed

DATA_CHOICES = ("reconstructed", "real", "auto")


def _hl_20251010(asset: str) -> pd.DataFrame | None:
    from feeds.adl import HL_20251010_COIN_USD, hyperliquid_20251010_flow

    return hyperliquid_20251010_flow(asset) if asset.upper() in HL_20251010_COIN_USD else None


# (scenario, venue) -> the ADL flow of an asset (None: no flow for that asset). Each is a
# reconstruction from published aggregates, labelled so wherever it shows (feeds/adl.py).
ADL_FLOWS: dict[tuple[str, str], Any] = {("2025-10-10", "hyperliquid"): _hl_20251010}


@dataclass(frozen=True)
class Scenario:
    """One waterfall of the catalogue (see the module docstring for the time convention)."""

    name: str
    title: str
    start: pd.Timestamp
    end: pd.Timestamp
    entry_time: pd.Timestamp
    fall_start: pd.Timestamp
    venues: tuple[str, ...]
    default_venue: str
    symbol: str
    facts: tuple[dict[str, str], ...]
    aliases: tuple[str, ...] = ()
    paths: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict, repr=False, compare=False)
    real_data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict, repr=False, compare=False)
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def assets(self) -> tuple[str, ...]:
        return tuple(self.paths)

    def path_spec(self, asset: str = "BTC", venue: str | None = None) -> dict[str, Any]:
        """The catalogue entry (waypoints, basis, liquidations, funding) of one asset on one venue."""
        venue = venue or self.default_venue
        if asset not in self.paths:
            raise DeleverageError(f"scenario {self.name}: no {asset!r} path; available assets: {', '.join(self.paths)}")
        if venue not in self.paths[asset]:
            raise DeleverageError(f"scenario {self.name}: no {asset} path for venue {venue!r}; "
                                  f"available: {', '.join(self.paths[asset])}")
        return self.paths[asset][venue]

    def figures(self, asset: str = "BTC", venue: str | None = None) -> dict[str, dict[str, Any]]:
        """The catalogue figures (open, peak, low, close, ...) with time, price and source."""
        return {w["figure"]: w for w in self.path_spec(asset, venue)["waypoints"] if "figure" in w}

    def has_real(self, asset: str = "BTC", venue: str | None = None) -> bool:
        return (venue or self.default_venue) in self.real_data.get(asset, {})

    def real_venues(self, asset: str = "BTC") -> tuple[str, ...]:
        return tuple(self.real_data.get(asset, {}))

    def source_text(self, key: str) -> str:
        return self.sources.get(key, key)

    def bars(self, data: str = "reconstructed", data_path: Any = None, asset: str = "BTC",
             venue: str | None = None, seed: int | None = None) -> pd.DataFrame:
        """Canonical 1-minute bar frame of the scenario window (see :mod:`feeds.schema`).

        ``data="auto"``: the real bars when :meth:`real_sources` finds any (shipped in the package
        for 312 and 519, shared data, fetch cache, or ``data_path``), else the reconstruction;
        ``attrs["kind"]`` says which.
        ``data="reconstructed"`` (default): the seeded reconstruction from the catalogue
        (``seed`` changes the random detail between waypoints, never the waypoints).
        ``data="real"``: the real exchange bars. Looked for in ``data_path`` when given (a file,
        its folder, or a fetch cache folder); else in the package and the shared data (312 and 519:
        BitMEX XBTUSD 1-minute, so the venue defaults to ``"bitmex"`` there), then in the ``deleverage data
        fetch`` cache (``$DELEVERAGE_CACHE``, ``~/.cache/deleverage``) for the default venue first
        (see :meth:`real_sources`). When nothing covers the window, the error names the exact
        ``deleverage data fetch`` commands.
        """
        if data not in DATA_CHOICES:
            raise DeleverageError(f"data must be one of {DATA_CHOICES}, got {data!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise DeleverageError(f"seed {seed!r}: expected a non-negative integer (0, 1, 2, ...)")
        if data_path is not None and data != "reconstructed" and not Path(data_path).exists():
            raise DeleverageError(f"data_path {data_path}: no such file or folder")
        asked = data
        if data == "auto":  # real where shipped, shared or cached (or in data_path), else the reconstruction
            data = "real" if self.real_sources(asset, venue, data_path) else "reconstructed"
        if data == "real":
            if seed is not None:
                raise DeleverageError(f"seed {seed}: only a reconstruction has a seed; data={asked!r} reads the real "
                                      "exchange bars here")
            return self._real(asset, venue, data_path)
        venue = venue or self.default_venue
        flow_venue = venue
        if (self.name, venue) in ADL_FLOWS and venue not in self.paths.get(asset, {}):
            venue = self.default_venue  # the venue's ADL flow on the scenario's default path (said in the notes)
        spec = self.path_spec(asset, venue)
        what = f"scenario {self.name} {asset}/{venue}"
        used_seed = stable_seed(self.name, asset, venue) if seed is None else int(seed)
        frame, extras = reconstruct(spec, start=self.start, end=self.end, venue=venue, seed=used_seed, what=what,
                                    pool=pool_for(self.name), fall_start=self.fall_start)
        label = (f"RECONSTRUCTION of {self.title} ({asset}, {venue}): a seeded path through published "
                 f"waypoints, not exchange data")
        frame.attrs.update({
            "kind": "reconstructed", "source": "reconstruction", "label": label, "scenario": self.name,
            "venue": venue, "symbol": spec.get("symbol", asset), "asset": asset, "interval": "1min",
            "seed": used_seed, "entry_time": self.entry_time.isoformat(), "fall_start": self.fall_start.isoformat(),
            "volume_unit": "base (reconstructed: shape only, " + spec.get("volume_basis", "assumed level") + ")",
            "proxy": spec.get("proxy", ""),
            **extras,
        })
        if flow_venue != venue:
            frame.attrs["notes"] = [*(frame.attrs.get("notes") or []),
                                    f"{flow_venue}: the catalogue has no {flow_venue} price path for {asset}; the "
                                    f"{venue} path is used, with {flow_venue}'s ADL flow"]
            frame.attrs["venue"] = flow_venue
        return self._with_adl_flow(frame, asset, flow_venue)

    def _with_adl_flow(self, frame: pd.DataFrame, asset: str, venue: str) -> pd.DataFrame:
        """Attach the scenario's ADL flow on ``venue`` (:data:`ADL_FLOWS`; real or reconstructed
        bars alike), labelled as the reconstruction it is (``attrs["adl_label"]``, notes)."""
        make = ADL_FLOWS.get((self.name, venue))
        if make is None:
            return frame
        flow = make(asset)
        return attach_adl_flow(frame, flow) if flow is not None else frame

    def venue_symbol(self, asset: str, venue: str) -> str:
        """The exchange symbol of ``asset`` on ``venue`` (``XBTUSD``, ``BTCUSDT``, ...)."""
        spec = self.paths.get(asset, {}).get(venue, {})
        return spec.get("symbol") or ("XBTUSD" if (venue, asset) == ("bitmex", "BTC") else f"{asset}USDT")

    def real_sources(self, asset: str = "BTC", venue: str | None = None, data_path: Any = None) -> list[dict[str, Any]]:
        """Where real bars of the whole window are, in the order ``bars(data="real")`` takes them.

        ``data_path`` when given (a canonical Parquet file, a folder of shared-layout files, or a
        fetch cache folder) and only there; else the package, the shared data, then the fetch cache. Each entry:
        ``{"venue", "symbol", "origin", "files", ...}``; ``[]`` when nothing covers the window.
        """
        from feeds.scenarios.real import real_sources

        return real_sources(self, asset, venue, data_path)

    def _real(self, asset: str, venue: str | None, data_path: Any) -> pd.DataFrame:
        from feeds.scenarios import real as R

        found = self.real_sources(asset, venue, data_path)
        if not found:
            raise R.missing_error(self, asset, venue, data_path)
        src = found[0]
        venue, symbol = src["venue"], src["symbol"]
        if src["kind"] == "shipped":
            spec = self.real_data[asset][venue]
            frame, extras = R.shipped_bars(spec, self.start, self.end, self.name)
            label = (f"REAL {venue} {symbol} bars for {self.title} (shipped in the package, converted from "
                     f"{spec['file']})")
            volume_unit = "base (estimated from USD contracts)"
        elif src["kind"] == "cache":
            frame, extras = R.cached_bars(venue, symbol, self.start, self.end, Path(src["root"]), self.name)
            label = f"REAL {venue} {symbol} bars for {self.title} (from the fetch cache {src['root']})"
            volume_unit = "base"
        else:
            spec = self.real_data.get(asset, {}).get(venue, {"file": ""})
            frame, extras = R.real_bars(spec, self.start, self.end, data_path, self.name)
            extras["origin"] = src["origin"]
            label = f"REAL {venue} bars for {self.title}"
            volume_unit = "base (estimated from USD contracts)" if src["kind"] == "shared" else "base"
        frame.attrs.update({
            "kind": "real", "label": label, "scenario": self.name, "venue": venue,
            "symbol": symbol, "asset": asset, "interval": "1min",
            "volume_unit": volume_unit, "entry_time": self.entry_time.isoformat(),
            "fall_start": self.fall_start.isoformat(), **extras,
        })
        return self._with_adl_flow(frame, asset, venue)


def _build(entry: dict[str, Any], sources: dict[str, str]) -> Scenario:
    name = entry["name"]
    t = {k: parse_time(entry[k], f"scenario {name} {k}") for k in ("start", "end", "entry_time", "fall_start")}
    if not (t["start"] <= t["entry_time"] < t["fall_start"] < t["end"]):
        raise DeleverageError(f"scenario {name}: expected start <= entry_time < fall_start < end")
    if entry["default_venue"] not in entry["venues"]:
        raise DeleverageError(f"scenario {name}: default_venue must be one of its venues")
    return Scenario(
        name=name, title=entry["title"], venues=tuple(entry["venues"]), default_venue=entry["default_venue"],
        symbol=entry.get("symbol", "BTC"), facts=tuple(entry["facts"]), aliases=tuple(entry.get("aliases", ())),
        paths=entry["paths"], real_data=entry.get("real_data", {}), sources=sources, **t,
    )


@lru_cache(maxsize=1)
def _catalogue() -> tuple[Scenario, ...]:
    text = resources.files("feeds.scenarios").joinpath("catalogue.json").read_text(encoding="utf-8")
    raw = json.loads(text)
    return tuple(_build(e, raw["sources"]) for e in raw["scenarios"])


def list_scenarios() -> list[Scenario]:
    """Every scenario of the built-in catalogue, in chronological order."""
    return sorted(_catalogue(), key=lambda s: s.start)


def scenario_names() -> list[str]:
    return [s.name for s in list_scenarios()]


def get_scenario(name: str) -> Scenario:
    """A scenario by name or alias (case-insensitive): ``"312"``, ``"519"``, ``"luna"``, ``"2025-10-10"``..."""
    key = str(name).strip().lower()
    for s in _catalogue():
        if key == s.name.lower() or key in (a.lower() for a in s.aliases):
            return s
    raise DeleverageError(f"unknown scenario {name!r}; known: {', '.join(scenario_names())}")


__all__ = ["Scenario", "list_scenarios", "get_scenario", "scenario_names", "DATA_CHOICES"]
