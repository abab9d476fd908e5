"""Entry points that render a stored result directory to one HTML report.

``render(directory)`` detects the kind of directory (a run, a stress grid or an
optimization) by the file it holds and writes ``directory/report.html``:

- run:          ``equity.parquet``   -> :func:`render_run`
- stress:       ``survival.parquet`` -> :func:`render_stress` (also each cell's run page)
- optimization: ``trials.parquet``   -> :func:`render_optimization`
"""

from __future__ import annotations

from pathlib import Path

from risk.errors import DeleverageError

from .optimize_report import render_optimization
from .run_report import render_run
from .stress_report import render_stress

__all__ = ["detect_kind", "render", "render_optimization", "render_run", "render_stress"]

MARKERS = (("stress", "survival.parquet"), ("optimize", "trials.parquet"), ("run", "equity.parquet"),
           ("portfolio-run", "portfolio.parquet"))


def _portfolio(directory: str | Path) -> bool:
    """A portfolio run (``portfolio.parquet``) or a portfolio stress grid (``stress.json`` kind portfolio)."""
    import json

    path = Path(directory)
    if (path / "portfolio.parquet").exists():
        return True
    meta = path / "stress.json"
    try:
        return meta.exists() and json.loads(meta.read_text()).get("kind") == "portfolio"
    except ValueError:
        return False


def detect_kind(directory: str | Path) -> str:
    """``"stress"``, ``"optimize"`` or ``"run"``; DeleverageError otherwise."""
    path = Path(directory)
    if not path.is_dir():
        raise DeleverageError(f"{path} does not exist or is not a directory")
    for kind, marker in MARKERS:
        if (path / marker).exists():
            return kind
    raise DeleverageError(
        f"{path} is not a run, stress or optimization directory: found none of "
        + ", ".join(marker for _, marker in MARKERS)
    )


def render(directory: str | Path, output: str | Path | None = None) -> Path:
    """Render the report of a run, stress or optimization directory; return its path."""
    kind = detect_kind(directory)
    if kind in ("stress", "portfolio-run") and _portfolio(directory):
        from .portfolio_report import render_portfolio_run, render_portfolio_stress

        return render_portfolio_stress(directory, output) if kind == "stress" else render_portfolio_run(directory, output)
    if kind == "stress":
        return render_stress(directory, output)
    if kind == "optimize":
        return render_optimization(directory, output)
    return render_run(directory, output)
