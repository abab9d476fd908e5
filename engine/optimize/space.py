"""The search space: parameter ranges, their grid values, and snapping a point onto them.

A range is ``(low, high, step)``; ``step`` None means continuous. Values are plain Python
``int`` (when the strategy's default for the parameter is an int, or the range is integral and
the default is missing) or ``float`` rounded to 10 significant decimals, so a point has one
spelling whatever produced it (a grid, a random draw, differential evolution) and its hash is
stable across processes and machines.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from risk.errors import DeleverageError

DEFAULT_GRID_POINTS = 10  # values per continuous range on a grid


@dataclass(frozen=True)
class ParamRange:
    """One searched parameter. ``integer`` values are ints; ``step`` None = continuous."""

    name: str
    low: float
    high: float
    step: float | None
    integer: bool = False

    def values(self, grid_points: int = DEFAULT_GRID_POINTS) -> list[float | int]:
        """The grid values: ``low, low+step, ...`` up to ``high`` (inclusive when it lands on
        it); ``grid_points`` evenly spaced values for a continuous range."""
        if self.low == self.high:
            return [self.snap(self.low)]
        if self.step is None:
            if self.integer:
                raw = np.unique(np.round(np.linspace(self.low, self.high, grid_points)))
            else:
                raw = np.linspace(self.low, self.high, grid_points)
        else:
            n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            raw = self.low + self.step * np.arange(n)
        out: list[float | int] = []
        for v in raw:
            s = self.snap(float(v))
            if not out or s != out[-1]:
                out.append(s)
        return out

    def snap(self, value: float) -> float | int:
        """The canonical value nearest ``value`` inside the range (on the step grid if any)."""
        v = min(max(float(value), self.low), self.high)
        if self.step is not None:
            v = self.low + round((v - self.low) / self.step) * self.step
            v = min(v, self.low + math.floor((self.high - self.low) / self.step + 1e-9) * self.step)
        if self.integer:
            return int(round(v))
        return canonical_float(v)

    def as_json(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "step": self.step, "integer": self.integer}


def canonical_float(v: float) -> float:
    """``v`` rounded to 10 decimals (so 0.1 + 0.2 and 0.3 are the same point); -0.0 becomes 0.0."""
    r = round(float(v), 10)
    return 0.0 if r == 0 else r


def parse_param(text: str) -> tuple[str, tuple[float, float, float | None] | None]:
    """``NAME=LOW:HIGH[:STEP]`` -> (name, (low, high, step)); a bare ``NAME`` -> (name, None)
    (use the strategy's declared range)."""
    if "=" not in text:
        name = text.strip()
        if not name.isidentifier():
            raise DeleverageError(f"--param {text!r}: expected NAME=LOW:HIGH[:STEP] or a bare NAME")
        return name, None
    name, _, spec = text.partition("=")
    name = name.strip()
    parts = spec.split(":")
    if not name.isidentifier() or len(parts) not in (2, 3):
        raise DeleverageError(f"--param {text!r}: expected NAME=LOW:HIGH[:STEP], e.g. fast=5:50:5")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise DeleverageError(f"--param {text!r}: LOW, HIGH and STEP must be numbers") from None
    low, high = nums[0], nums[1]
    step = nums[2] if len(nums) == 3 else None
    return name, (low, high, step)


def strategy_defaults(strategy_cls: type) -> dict[str, Any]:
    """The strategy's parameters and their defaults (backtrader ``params``)."""
    params = getattr(strategy_cls, "params", None)
    if params is None:
        return {}
    if hasattr(params, "_getpairs"):
        return dict(params._getpairs())
    return dict(params)


def resolve_ranges(strategy_cls: type, given: list[tuple[str, tuple[float, float, float | None] | None]]
                   ) -> list[ParamRange]:
    """The searched parameters: those named with ``--param`` (a bare name takes the declared
    range), or every declared range of the strategy when none is named."""
    declared: dict[str, tuple[float, float, float | None]] = dict(getattr(strategy_cls, "ranges", {}) or {})
    defaults = strategy_defaults(strategy_cls)
    name = getattr(strategy_cls, "__name__", str(strategy_cls))
    items = given or [(n, None) for n in declared]
    if not items:
        raise DeleverageError(f"{name} declares no parameter ranges: name them with --param NAME=LOW:HIGH[:STEP]")
    seen: set[str] = set()
    out: list[ParamRange] = []
    for pname, spec in items:
        if pname in seen:
            raise DeleverageError(f"--param {pname} given twice")
        seen.add(pname)
        if pname not in defaults:
            raise DeleverageError(f"{name} has no parameter {pname!r}; its parameters are: {', '.join(defaults) or 'none'}")
        if spec is None:
            if pname not in declared:
                raise DeleverageError(f"{name} declares no range for {pname!r}: give one with --param {pname}=LOW:HIGH[:STEP]")
            spec = declared[pname]
        low, high, step = (float(spec[0]), float(spec[1]), None if spec[2] is None else float(spec[2]))
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise DeleverageError(f"--param {pname}: need finite LOW <= HIGH, got {low:g}:{high:g}")
        if step is not None and not (math.isfinite(step) and step > 0):
            raise DeleverageError(f"--param {pname}: STEP must be positive, got {step:g}")
        if step is not None and low < high and step > high - low + 1e-9 * max(1.0, abs(high - low)):
            raise DeleverageError(f"--param {pname}={low:g}:{high:g}:{step:g}: STEP {step:g} is larger than HIGH - LOW "
                                  f"= {high - low:g}, so only {low:g} would be searched; expected a STEP of at most "
                                  f"{high - low:g} (or {pname}={low:g}:{low:g} for the one value)")
        default = defaults[pname]
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise DeleverageError(f"{name}.{pname} is not numeric (default {default!r}); only numeric parameters can be searched")
        integer = isinstance(default, int)
        if integer and not all(float(v).is_integer() for v in (low, high, step or 1.0)):
            raise DeleverageError(f"--param {pname}: {name}.{pname} is an integer, so LOW, HIGH and STEP must be whole numbers")
        out.append(ParamRange(pname, low, high, step, integer))
    return out


def point_key(params: dict[str, Any]) -> str:
    """A stable text form of a parameter set (sorted names, canonical numbers)."""
    return json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True, separators=(",", ":"))


def unit_key(params: dict[str, Any], segment: str) -> str:
    """The SQLite key of one evaluation: a hash of the parameter set and the segment it ran on."""
    text = point_key(params) + "|" + segment
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def grid_size(ranges: list[ParamRange], grid_points: int) -> int:
    return int(np.prod([len(r.values(grid_points)) for r in ranges]))
