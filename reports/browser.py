"""Open a report in headless Chromium (Debian's ``chromium``) and read back what it drew.

Used by the browser test and to take the README screenshot::

    python -m reports.browser REPORT.html [SCREENSHOT.png] [--width 1400] [--height 2000]

prints the number of charts expected and drawn and any page errors, and exits non-zero when a
chart is missing or the page logged an error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--enable-logging=stderr", "--v=1",  # v=1: console messages reach the log
)


def find_chromium() -> str | None:
    """Path of a Chromium executable, or None. ``$CHROMIUM`` wins when set."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class BrowserResult:
    dom: str
    charts_expected: int | None
    charts_drawn: int | None
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    svg_count: int = 0
    trace_count: int = 0
    screenshot: Path | None = None
    scroll_width: int | None = None  # the document's width once drawn (> view_width: horizontal overflow)
    view_width: int | None = None
    overflow: list[str] = field(default_factory=list)  # ids of sections wider than their box

    @property
    def fits(self) -> bool:
        """No horizontal overflow: the page is no wider than the window and no section is
        wider than its box."""
        return (self.scroll_width is not None and self.view_width is not None
                and self.scroll_width <= self.view_width and not self.overflow)

    @property
    def ok(self) -> bool:
        return (self.charts_expected is not None and self.charts_expected > 0
                and self.charts_drawn == self.charts_expected and not self.page_errors and not self.console_errors)


def _attr(dom: str, name: str) -> int | None:
    body = re.search(r"<body\b[^>]*>", dom)
    if not body:
        return None
    found = re.search(rf'{name}="(\d+)"', body.group(0))
    return int(found.group(1)) if found else None


def open_report(html_path: str | Path, screenshot: str | Path | None = None, width: int = 1400,
                height: int = 2000, budget_ms: int = 15000, chromium: str | None = None,
                timeout: float = 120.0) -> BrowserResult:
    """Load ``html_path`` in headless Chromium, dump its DOM after ``budget_ms`` of virtual
    time, collect console errors from Chromium's log, and optionally save a screenshot."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found (apt-get install -y chromium)")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="deleverage-chromium-") as profile:
        base = [exe, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                f"--window-size={width},{height}"]
        proc = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
        dom = proc.stdout
        console = [line for line in proc.stderr.splitlines()
                   if re.search(r":CONSOLE[:(]", line) and re.search(r"Uncaught|Error|error|Failed to load", line)]
        shot = None
        if screenshot is not None:
            shot = Path(screenshot).resolve()
            shot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([*base, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=timeout)
    errors_box = re.search(r'<pre id="report-errors"[^>]*>(.*?)</pre>', dom, re.S)
    page_errors = [e for e in (errors_box.group(1).splitlines() if errors_box else []) if e.strip()]
    return BrowserResult(
        dom=dom, charts_expected=_attr(dom, "data-charts-expected"), charts_drawn=_attr(dom, "data-charts-drawn"),
        page_errors=page_errors, console_errors=console, svg_count=dom.count('class="main-svg"'),
        trace_count=len(re.findall(r'class="[^"]*\btrace\b', dom)),
        screenshot=shot if shot is not None and shot.exists() else None,
        scroll_width=_attr(dom, "data-scroll-width"), view_width=_attr(dom, "data-view-width"),
        overflow=[x for x in (_str_attr(dom, "data-overflow") or "").split(",") if x],
    )


def _str_attr(dom: str, name: str) -> str | None:
    body = re.search(r"<body\b[^>]*>", dom)
    found = re.search(rf'{name}="([^"]*)"', body.group(0)) if body else None
    return found.group(1) if found else None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m reports.browser", description="Open a report in headless Chromium.")
    parser.add_argument("report")
    parser.add_argument("screenshot", nargs="?")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2000)
    args = parser.parse_args(argv)
    result = open_report(args.report, screenshot=args.screenshot, width=args.width, height=args.height)
    print(f"charts drawn {result.charts_drawn} of {result.charts_expected}; svg {result.svg_count}; traces {result.trace_count}")
    print(f"width: page {result.scroll_width} px in a {result.view_width} px window"
          + (f"; sections wider than their box: {', '.join(result.overflow)}" if result.overflow else "")
          + ("" if result.fits else " (HORIZONTAL OVERFLOW)"))
    for err in result.page_errors + result.console_errors:
        print("error:", err)
    if result.screenshot:
        print("screenshot:", result.screenshot)
    return 0 if result.ok and result.fits else 1


if __name__ == "__main__":
    sys.exit(main())
