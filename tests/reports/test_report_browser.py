"""Each kind of report opened in a real browser: headless Chromium (Debian's package).

Skipped when chromium is missing, unless DELEVERAGE_REQUIRE_SHARED=1 (CI), where it fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reports.browser import find_chromium, open_report
from reports.html import render

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    if exe is None:
        reason = "headless Chromium not found (apt-get install -y chromium; .ci/run installs it)"
        if os.environ.get("DELEVERAGE_REQUIRE_SHARED") == "1":
            pytest.fail(reason + "; DELEVERAGE_REQUIRE_SHARED=1 makes it mandatory")
        pytest.skip(reason)
    return exe


def _check(report: Path, shot: Path, chromium: str, min_charts: int):
    result = open_report(report, screenshot=shot, chromium=chromium)
    assert result.page_errors == [] and result.console_errors == []
    assert result.charts_expected is not None and result.charts_expected >= min_charts
    assert result.charts_drawn == result.charts_expected, "not every chart was drawn"
    assert result.svg_count >= result.charts_expected  # plotly's .main-svg per chart
    assert result.screenshot is not None and result.screenshot.stat().st_size > 20_000
    # fits a 1,400 px window: no horizontal overflow of the page or of any section
    assert result.view_width is not None and result.view_width <= 1400
    assert result.scroll_width is not None and result.scroll_width <= result.view_width, "the page scrolls sideways"
    assert result.overflow == [], f"sections wider than their box: {result.overflow}"
    return result


def test_run_report_from_a_real_run(real_run_dir: Path, chromium: str, tmp_path: Path) -> None:
    _check(render(real_run_dir), tmp_path / "run-report.png", chromium, 1)


def test_stress_report_and_a_cell_page(real_stress_dir: Path, chromium: str, tmp_path: Path) -> None:
    report = render(real_stress_dir)
    _check(report, tmp_path / "stress-report.png", chromium, 2)
    # a cell page loads the shared plotly.js beside the stress report
    _check(real_stress_dir / "runs" / "519" / "x10" / "report.html", tmp_path / "cell.png", chromium, 1)


def test_optimization_report(real_opt_dir: Path, chromium: str, tmp_path: Path) -> None:
    _check(render(real_opt_dir), tmp_path / "opt-report.png", chromium, 2)


def test_the_width_check_catches_a_wide_table(run_dir: Path, chromium: str, tmp_path: Path) -> None:
    """A table wider than the window must fail the overflow check."""
    html = render(run_dir).read_text()
    wide = "<section id=\"wide\"><table><tr>" + "<td>a_very_long_cell_value</td>" * 120 + "</tr></table></section>"
    page = tmp_path / "wide.html"
    page.write_text(html.replace("<main>", "<main>" + wide, 1))
    result = open_report(page, chromium=chromium)
    assert not result.fits and result.scroll_width > 1400 and "wide" in result.overflow


def test_the_check_catches_errors_and_missing_charts(run_dir: Path, chromium: str, tmp_path: Path) -> None:
    """A page that logs an error and has an undrawable chart must fail the check."""
    html = render(run_dir).read_text()
    broken = html.replace('<main>', '<main><script>console.error("boom from the page"); notAFunction();</script>', 1)
    broken = broken.replace('<div id="run-chart" class="chart"></div>', "", 1)  # its spec now has no div
    page = tmp_path / "broken.html"
    page.write_text(broken)
    result = open_report(page, chromium=chromium)
    assert any("boom from the page" in e for e in result.page_errors)
    assert any("Uncaught ReferenceError" in e for e in result.console_errors)
    assert not result.ok
    assert result.charts_drawn != result.charts_expected
