"""TOML configuration files for ``deleverage stress`` (and other commands that run a strategy).

::

    [strategy]
    name = "sma_crossover"

    [params]            # strategy parameters (see `ranges` / the strategy's docstring)
    fast = 12
    slow = 48

    [stress]
    scenarios = ["312", "519"]
    leverage = [1, 2, 3, 5, 10]
    margin = "isolated"         # or "cross"
    venue = "bitmex"            # default: each scenario's venue
    data = "reconstructed"      # or "real"
    data_path = "../shared/data"
    cash = 1.0
    funding_rate = 0.0001       # constant for bars without funding data
    workers = 4

Precedence: command line > file > defaults. Unknown sections or keys are errors (a typo never
silently falls back to a default).
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from risk.errors import DeleverageError

SECTIONS: dict[str, dict[str, tuple[type, ...]]] = {
    "strategy": {"name": (str,)},
    "params": {},  # free-form, checked against the strategy
    "stress": {"scenarios": (list, str), "leverage": (list, int, float, str), "margin": (str,), "venue": (str,),
               "data": (str,), "data_path": (str,), "cash": (int, float), "funding_rate": (int, float),
               "workers": (int,), "out": (str,), "engine": (str,)},
}


def load_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and check a TOML config; returns ``{"strategy": {...}, "params": {...}, "stress": {...}}``."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeleverageError(f"config file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeleverageError(f"config file {p} is not valid TOML: {exc}") from None
    out: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for section, values in data.items():
        if section not in SECTIONS:
            raise DeleverageError(f"config file {p}: unknown section [{section}]; expected {', '.join(SECTIONS)}")
        if not isinstance(values, dict):
            raise DeleverageError(f"config file {p}: [{section}] must be a table")
        allowed = SECTIONS[section]
        for key, value in values.items():
            if allowed and key not in allowed:
                raise DeleverageError(f"config file {p}: unknown key {key!r} in [{section}]; "
                                      f"expected {', '.join(allowed)}")
            if allowed and not isinstance(value, allowed[key]):
                raise DeleverageError(f"config file {p}: [{section}] {key} = {value!r} has the wrong type")
            if section == "stress":
                _check_stress_value(p, key, value)
            if section == "params" and isinstance(value, (dict, list)):
                raise DeleverageError(f"config file {p}: [params] {key} must be a number, boolean or text")
        out[section] = dict(values)
    return out


# [stress] numbers get the command line's checks (--cash, --funding-rate, --workers)
_NUMBER_RULES: dict[str, tuple[Any, str]] = {
    "cash": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "funding_rate": (lambda v: math.isfinite(v), "a finite number (a rate per interval, e.g. 0.0001)"),
    "workers": (lambda v: v >= 1, "a whole number of at least 1"),
}


def _check_stress_value(path: Path, key: str, value: Any) -> None:
    if key == "venue":
        from risk.venues import venue_rules

        try:
            venue_rules(value)
        except DeleverageError as exc:
            raise DeleverageError(f"config file {path}: [stress] venue = {value!r}: {exc}") from None
    if key == "data_path" and not Path(value).exists():
        raise DeleverageError(f"config file {path}: [stress] data_path = {value!r}: no such file or folder; expected "
                              "a file or folder of real bars, or a `deleverage data fetch` cache")
    rule = _NUMBER_RULES.get(key)
    if rule is None:
        return
    ok, expected = rule
    if isinstance(value, bool) or not ok(value):
        raise DeleverageError(f"config file {path}: [stress] {key} = {value!r}: expected {expected}")


def parse_list(value: Any, what: str, cast: type = str) -> list[Any]:
    """``"312,519"`` or ``["312", 519]`` -> typed list; errors name ``what``. An empty item
    (``1,,2``, ``312,``) and an item given twice (``312,312``, ``1,1.0``) are errors: a list is
    never silently shortened or run twice."""
    items = value if isinstance(value, list) else [v for v in str(value).split(",")]
    shown = ",".join(str(v) for v in items) if isinstance(value, list) else str(value)
    if not any(str(item).strip() for item in items):
        raise DeleverageError(f"{what}: empty list")
    kind = {float: "a number", int: "an integer"}.get(cast, f"a {cast.__name__}")
    out: list[Any] = []
    for n, item in enumerate(items, start=1):
        text = str(item).strip()
        if not text:
            raise DeleverageError(f"{what} {shown!r}: item {n} is empty; expected a comma-separated list "
                                  "without empty items")
        if cast is not str and isinstance(item, bool):
            raise DeleverageError(f"{what}: {item!r} is not {kind}")
        try:
            typed = cast(text) if cast is not str else text
        except ValueError:
            raise DeleverageError(f"{what}: {text!r} is not {kind}") from None
        if typed in out:
            raise DeleverageError(f"{what} {shown!r}: {text} is given twice; expected each item once")
        out.append(typed)
    return out
