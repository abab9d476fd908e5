"""One-off check: nothing that was in a README revision is lost, it lives on a docs page.

    .venv/bin/python tests/docs/check_readme_moved.py [--rev REV | --readme PATH]

Splits the old README's ``<!-- section:NAME -->`` sections into units (each paragraph, list
item, table row and code line), normalises whitespace, and looks for each unit in the current
README plus every page under ``docs/``. Prints the units not found with their section and line
and exits 1 if any. The default revision is the last README before it became the front page
(issue 17). Headings are not compared (pages rename them). Use it after merging a branch that edited an old README section: run it with that
branch's README (``--rev BRANCH``) to see which of its lines still need a home in ``docs/``.

``EDITS`` lists the deliberate rewordings made in the move (old text -> new text), applied to
the old README before the comparison, so that they do not hide anything else.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REV = "ee89418"   # README of 2026-12-01 before issue 17

EDITS = [
    ("runs the first command above", "runs the first command of [Optimization](../guides/optimize.md)"),
    ("The figures quoted above come from them, with the commands given.",
     "The figures quoted on [Performance](concepts/performance.md) come from them, with the commands given."),
    ("# one per core (see below)", "# one per core (see Performance: Optimization)"),
    # the doctests print: liquidation_price returns a numpy float, whose repr is np.float64(...)
    (">>> round(risk.", ">>> print(round(risk."),
    ('60_000, 2, 6_000), 2)', '60_000, 2, 6_000), 2))'),
    ('symbol="BTCUSD"), 2)', 'symbol="BTCUSD"), 2))'),
    # the real bars now shipped in the package come before the shared files (search order)
    ("there when given; the shared BitMEX files (312, 519); then",
     "there when given; the real BitMEX XBTUSD minutes of 312 and 519 shipped in the package "
     "(`feeds/scenarios/shipped/`, converted from the shared files by `feeds/scenarios/build_real.py`, "
     "so `--data real` works without `../shared`); the shared BitMEX files (312, 519); then"),
    # the demo now runs 312 and 519 on the shipped real bars
    ("on the built-in RECONSTRUCTED scenarios (nothing", "(312, 519: shipped REAL bars; the others RECONSTRUCTED; nothing"),
    ("![Stress report](docs/img/stress-report.png)", "![Stress report](../img/stress-report.png)"),
]


def norm(text: str) -> str:
    text = re.sub(r"^#+\s*", "", text.strip())
    return re.sub(r"\s+", " ", text).strip()


def units(readme: str) -> list[tuple[str, int, str]]:
    """(section, line, text) for every paragraph / list item / table row / code line of each section."""
    out: list[tuple[str, int, str]] = []
    lines = readme.splitlines()
    section = None
    para: list[str] = []
    start = 0
    fence = False

    def flush() -> None:
        nonlocal para
        if para and section:
            text = norm(" ".join(para))
            if text:
                out.append((section, start + 1, text))
        para = []

    for i, line in enumerate(lines):
        m = re.match(r"<!-- (/?)section:(\w+) -->", line.strip())
        if m:
            flush()
            section = None if m.group(1) else m.group(2)
            continue
        if line.startswith("```"):
            flush()
            fence = not fence
            continue
        if not fence and line.startswith("#"):
            flush()            # headings are renamed with the pages: not content
            continue
        if fence or line.startswith("|"):
            flush()
            if section and line.strip() and not re.fullmatch(r"\|[-:| ]+\|", line.strip()):
                out.append((section, i + 1, norm(line)))
            continue
        if not line.strip() or re.match(r"\s*[-*] |\s*\d+\. ", line):
            flush()
            if not line.strip():
                continue
        if not para:
            start = i
        para.append(line)
    flush()
    return out


def corpus() -> str:
    texts = [(ROOT / "README.md").read_text(encoding="utf-8")]
    texts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").rglob("*.md"))]
    return norm(" ".join(texts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--rev", default=DEFAULT_REV, help=f"git revision of the old README (default {DEFAULT_REV})")
    group.add_argument("--readme", type=Path, help="path of the old README instead of a revision")
    args = parser.parse_args(argv)
    if args.readme:
        old = args.readme.read_text(encoding="utf-8")
    else:
        old = subprocess.run(["git", "show", f"{args.rev}:README.md"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
    for before, after in EDITS:
        old = old.replace(before, after)
    have = corpus()
    found = missing = 0
    for section, line, text in units(old):
        if text in have:
            found += 1
        else:
            missing += 1
            print(f"MISSING section:{section} line {line}: {text[:160]}")
    print(f"{found} of {found + missing} README units found in README.md + docs/; {missing} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
