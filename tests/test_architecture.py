"""Enforce the import direction of DEVELOPERS.md with an AST scan of every module.

- risk/: standard library and numpy only (never backtrader, pandas, or another package of ours
  except risk itself);
- feeds/: may use risk; never backtrader, strategies, reports or engine;
- strategies/: may use risk, feeds.schema, ta, backtrader; never reports or engine;
- reports/: never backtrader, strategies or engine (may use risk and feeds);
- engine/: anything; nothing outside engine imports engine.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUR_PACKAGES = {"risk", "feeds", "strategies", "reports", "engine"}
STDLIB = set(sys.stdlib_module_names)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    package = path.relative_to(ROOT).parts[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import stays inside the package
                found.append((node.lineno, package + ("." + node.module if node.module else "")))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def _allowed(package: str, module: str) -> bool:
    top = module.split(".")[0]
    if package == "risk":
        return top in STDLIB or top in {"numpy", "risk", "__future__"}
    if top == "backtrader":
        return package in {"strategies", "engine"}
    if top == "engine":
        return package == "engine"
    if package == "feeds":
        return top not in {"strategies", "reports"}
    if package == "strategies":
        return top not in {"reports"} and (top != "feeds" or module in {"feeds", "feeds.schema"})
    if package == "reports":
        return top not in {"strategies"}
    return True


def _modules() -> list[Path]:
    return sorted(p for pkg in OUR_PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_import_direction(path: Path) -> None:
    package = path.relative_to(ROOT).parts[0]
    bad = [f"line {line}: {module}" for line, module in _imports(path) if not _allowed(package, module)]
    assert not bad, f"{path.relative_to(ROOT)} ({package}/) may not import: " + "; ".join(bad)


def test_rules_catch_violations(tmp_path: Path) -> None:
    """The checker itself must flag a forbidden import (a test that cannot fail is a defect)."""
    assert not _allowed("risk", "pandas")
    assert not _allowed("risk", "backtrader")
    assert not _allowed("feeds", "backtrader")
    assert not _allowed("reports", "backtrader.analyzers")
    assert not _allowed("strategies", "engine.broker")
    assert not _allowed("strategies", "feeds.loaders")
    assert _allowed("strategies", "feeds.schema")
    assert _allowed("risk", "math") and _allowed("risk", "numpy")
