"""Strategy references and typed parameters: the one place a command turns ``--strategy TEXT``
into a backtrader strategy class and ``--param NAME=TEXT`` into that class's own types.

A reference is one of:

- a reference strategy's name (``buy_and_hold``, see :data:`strategies.REGISTRY`);
- ``path/to/file.py:ClassName``: the file is imported as a module (once per process and file
  version) and ``ClassName`` taken from it;
- ``package.module:ClassName``: an importable module (on ``sys.path``, e.g. installed or in
  the working directory).

The class must be a ``bt.Strategy`` subclass (a :class:`strategies.base.PerpStrategy` is not
required). Parallel stress cells, optimizer pool and Dask workers receive the reference text
in their task and call :func:`load_strategy` themselves, so every worker runs the same file.

Parameters are typed from the class's own ``params`` defaults (:func:`type_params`): a default
of ``int`` takes whole numbers, ``float`` numbers, ``bool`` true/false/1/0/yes/no, a text
default whose name ends in ``_time`` (``entry_time``) an ISO-8601 time or an empty text, any
other text default text. A default of ``None`` keeps the value's own type (number, boolean or
text). Unknown names and values of the wrong type raise :class:`DeleverageError` naming the
option, the parameter and the expected type.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import re
import sys
from pathlib import Path
from typing import Any

from risk.errors import DeleverageError

_FILE_MODULES: dict[tuple[str, int], Any] = {}
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class StrategyRefError(DeleverageError):
    """A strategy reference that cannot be loaded (file, module or class named in the message)."""


def _known() -> str:
    from strategies import REGISTRY

    return ", ".join(REGISTRY)


def load_strategy(ref: str) -> type:
    """The strategy class named by ``ref`` (module docstring); one-line errors name what is missing."""
    import backtrader as bt
    from strategies import REGISTRY

    ref = str(ref).strip()
    if ref in REGISTRY:
        return REGISTRY[ref]
    if ":" not in ref:
        raise StrategyRefError(f"unknown strategy {ref!r}; known: {_known()}, or path/to/file.py:ClassName "
                               "or package.module:ClassName")
    target, _, cls_name = ref.rpartition(":")
    if not target or not cls_name.isidentifier():
        raise StrategyRefError(f"strategy {ref!r}: expected path/to/file.py:ClassName or package.module:ClassName")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _load_file(Path(target), ref)
        where = f"file {target}"
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise StrategyRefError(f"strategy {ref!r}: no module named {exc.name!r} (is it installed or on "
                                   "PYTHONPATH? a file needs its .py path)") from None
        except DeleverageError:
            raise
        except Exception as exc:  # the user's module failed while importing
            raise StrategyRefError(f"strategy {ref!r}: importing module {target} failed: "
                                   f"{type(exc).__name__}: {exc}") from None
        where = f"module {target}"
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, bt.Strategy) and v.__module__ == module.__name__)
        raise StrategyRefError(f"strategy {ref!r}: {where} has no class {cls_name!r}"
                               + (f"; strategies there: {', '.join(found)}" if found else ""))
    if not (isinstance(cls, type) and issubclass(cls, bt.Strategy)):
        raise StrategyRefError(f"strategy {ref!r}: {cls_name} in {where} is not a backtrader Strategy subclass")
    return cls


def _load_file(path: Path, ref: str) -> Any:
    if not path.is_file():
        raise StrategyRefError(f"strategy {ref!r}: file {path} not found" if not path.exists()
                               else f"strategy {ref!r}: {path} is not a file")
    if path.suffix != ".py":
        raise StrategyRefError(f"strategy {ref!r}: {path} is not a Python file (.py)")
    resolved = path.resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns)
    module = _FILE_MODULES.get(key)
    if module is not None:
        return module
    # a stable module name per file, so classes defined there pickle by reference in this process
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    name = f"deleverage_user_{re.sub(r'[^0-9A-Za-z_]', '_', resolved.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:  # pragma: no cover - .py files always have a loader
        raise StrategyRefError(f"strategy {ref!r}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except DeleverageError:
        sys.modules.pop(name, None)
        raise
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise StrategyRefError(f"strategy {ref!r}: {path} line {exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:
        sys.modules.pop(name, None)
        raise StrategyRefError(f"strategy {ref!r}: importing {path} failed: {type(exc).__name__}: {exc}") from None
    _FILE_MODULES[key] = module
    return module


def strategy_label(ref: str) -> str:
    """A short name for titles and directory names: the registry name or the class name."""
    ref = str(ref)
    return ref.rpartition(":")[2] if ":" in ref else ref


# --- parameters -------------------------------------------------------------------------------


def param_defaults(cls: type) -> dict[str, Any]:
    """The class's declared backtrader parameters and their defaults (in declaration order)."""
    params = getattr(cls, "params", None)
    if params is None:
        return {}
    if hasattr(params, "_getitems"):
        return dict(params._getitems())
    return dict(params)


def has_param(cls: type, name: str) -> bool:
    return name in param_defaults(cls)


def _kind(name: str, default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "time" if name.endswith("_time") else "str"
    if default is None:
        return "any"
    return "other"


_EXPECTED = {"bool": "a boolean (true/false)", "int": "a whole number", "float": "a number",
             "time": "an ISO-8601 UTC time such as 2020-03-12T00:00Z (or empty)", "str": "text"}


def _guess(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def type_value(cls: type, name: str, value: Any, option: str = "--param") -> Any:
    """``value`` (text from the command line, or a TOML value) as the type of ``cls``'s default for ``name``."""
    default = param_defaults(cls)[name]
    kind = _kind(name, default)
    where = f"{option} {name}={value}: {cls.__name__}.{name}"

    def bad() -> DeleverageError:
        return DeleverageError(f"{where} expects {_EXPECTED.get(kind, type(default).__name__)} "
                               f"(default {default!r}), got {value!r}")

    if kind == "any":
        return _guess(value.strip()) if isinstance(value, str) else value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise bad()
    if kind in ("int", "float"):
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, str):
            text = value.strip()
            try:
                num: float | int = int(text) if kind == "int" else float(text)
            except ValueError:
                try:
                    f = float(text)
                except ValueError:
                    raise bad() from None
                if kind == "int" and f.is_integer():
                    return int(f)
                raise bad() from None
        elif isinstance(value, (int, float)):
            num = value
        else:
            raise bad()
        if kind == "int":
            if isinstance(num, float):
                if not num.is_integer():
                    raise bad()
                num = int(num)
            return int(num)
        num = float(num)
        if not math.isfinite(num):
            raise DeleverageError(f"{where} expects a finite number, got {value!r}")
        return num
    if kind == "time":
        if not isinstance(value, str):
            raise bad()
        text = value.strip()
        if not text:
            return ""
        import pandas as pd

        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise bad() from None
        if ts is pd.NaT:
            raise bad()
        return text
    if kind == "str":
        if not isinstance(value, str):
            raise bad()
        return value
    # a default of another type (a tuple, a class, ...): not settable from text
    if isinstance(value, type(default)):
        return value
    raise DeleverageError(f"{where} has a default of type {type(default).__name__} ({default!r}) that cannot be "
                          "set from the command line")


def type_params(cls: type, params: dict[str, Any] | None, option: str = "--param") -> dict[str, Any]:
    """``params`` typed against ``cls``'s declared parameters; an unknown name is an error naming ``option``."""
    defaults = param_defaults(cls)
    params = dict(params or {})
    unknown = [n for n in params if n not in defaults]
    if unknown:
        raise DeleverageError(f"{option}: {cls.__name__} has no parameter(s) {', '.join(unknown)}; "
                              f"its parameters are: {', '.join(defaults) or 'none'}")
    typed = {name: type_value(cls, name, value, option) for name, value in params.items()}
    check = getattr(cls, "check_params", None)
    if callable(check):  # the strategy's own limits (strategies.base.PerpStrategy.limits)
        check(typed, option)
    return typed


def split_params(items: list[str] | None, option: str = "--param") -> dict[str, str]:
    """``["fast=10", "entry_time=2020-03-12"]`` -> ``{"fast": "10", ...}`` (text; type it with :func:`type_params`)."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise DeleverageError(f"{option} {item!r}: expected NAME=VALUE")
        out[name] = text.strip()
    return out


def run_params(cls: type, params: dict[str, Any], leverage: float | None) -> dict[str, Any]:
    """The keyword arguments passed to the strategy: ``params`` plus ``leverage`` when the class
    declares a ``leverage`` parameter (a plain ``bt.Strategy`` gets the leverage through the
    feed's default instead, :class:`engine.runner.RunConfig`)."""
    out = dict(params)
    if leverage is not None and has_param(cls, "leverage"):
        out["leverage"] = float(leverage)
    return out


def portable_ref(ref: str) -> str:
    """``ref`` with a file path made absolute, for tasks run by workers in other directories
    (a Dask worker's working directory need not be the caller's)."""
    ref = str(ref).strip()
    target, sep, cls_name = ref.rpartition(":")
    if sep and (target.endswith(".py") or "/" in target or "\\" in target):
        return f"{Path(target).resolve()}:{cls_name}"
    return ref
