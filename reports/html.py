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

__all__ = ["check_output", "detect_kind", "is_report", "render", "render_optimization", "render_run", "render_stress"]

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
    """``"stress"``, ``"optimize"``, ``"run"`` or ``"portfolio-run"``; DeleverageError otherwise, and
    when the directory holds more than one kind of result (a report of one would silently leave
    out the other)."""
    path = Path(directory)
    if not path.is_dir():
        raise DeleverageError(f"{path} does not exist or is not a directory")
    found = [(kind, marker) for kind, marker in MARKERS if (path / marker).exists()]
    if len(found) > 1:
        raise DeleverageError(
            f"{path} holds more than one kind of result ({', '.join(f'{m}: {k}' for k, m in found)}); expected one run, "
            "stress or optimization per directory (move one of them to its own folder)")
    if found:
        return found[0][0]
    raise DeleverageError(
        f"{path} is not a run, stress or optimization directory: found none of "
        + ", ".join(marker for _, marker in MARKERS)
    )


REPORT_SUFFIXES = (".html", ".htm")
_REPORT_MARK = "window.__reportErrors"  # in the <head> of every page reports.page writes


def is_report(path: str | Path) -> bool:
    """True when ``path`` is an HTML report written by deleverage (its head carries the page's error hook)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256 * 1024)
    except OSError:
        return False
    return _REPORT_MARK.encode() in head


def check_output(output: str | Path, overwrite: bool = False) -> Path:
    """``-o PATH``: an ``.html`` file path in an existing folder; an existing file is replaced only
    with ``overwrite`` and only when it is a deleverage report (never an unrelated file)."""
    out = Path(output)
    if out.suffix.lower() not in REPORT_SUFFIXES:
        raise DeleverageError(f"-o {out}: a report is an HTML page; expected a path ending in .html")
    if out.is_dir():
        raise DeleverageError(f"-o {out}: is a folder; expected the path of an .html file")
    if not out.parent.is_dir():
        raise DeleverageError(f"-o {out}: the folder {out.parent} does not exist; expected an existing folder")
    if out.exists():
        if not overwrite:
            raise DeleverageError(f"-o {out}: already exists; pass --overwrite to replace it, or choose another path")
        if not is_report(out):
            raise DeleverageError(f"-o {out}: is not a deleverage report; expected a report to overwrite (nothing "
                                  "was changed)")
    return out


def legacy_warning(directory: str | Path) -> str:
    """:func:`reports.results.legacy_cover_note` of a run or portfolio-run directory ("" otherwise)."""
    from .results import legacy_cover_note, read_parquet

    path = Path(directory) / "liquidations.parquet"
    if detect_kind(directory) not in ("run", "portfolio-run") or not path.exists():
        return ""
    return legacy_cover_note(read_parquet(path))


def render(directory: str | Path, output: str | Path | None = None, overwrite: bool = False) -> Path:
    """Render the report of a run, stress or optimization directory; return its path. ``output``
    (default ``directory/report.html``, replaced each time): see :func:`check_output`."""
    kind = detect_kind(directory)
    if output is not None:
        output = check_output(output, overwrite)
    if kind in ("stress", "portfolio-run") and _portfolio(directory):
        from .portfolio_report import render_portfolio_run, render_portfolio_stress

        return render_portfolio_stress(directory, output) if kind == "stress" else render_portfolio_run(directory, output)
    if kind == "stress":
        return render_stress(directory, output)
    if kind == "optimize":
        return render_optimization(directory, output)
    return render_run(directory, output)
