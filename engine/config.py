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
            if section == "params" and isinstance(value, (dict, list)):
                raise DeleverageError(f"config file {p}: [params] {key} must be a number, boolean or text")
        out[section] = dict(values)
    return out


def parse_list(value: Any, what: str, cast: type = str) -> list[Any]:
    """``"312,519"`` or ``["312", 519]`` -> typed list; errors name ``what``."""
    items = value if isinstance(value, list) else [v for v in str(value).split(",")]
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            out.append(cast(text) if cast is not str else text)
        except ValueError:
            raise DeleverageError(f"{what}: {text!r} is not a {cast.__name__}") from None
    if not out:
        raise DeleverageError(f"{what}: empty list")
    return out
