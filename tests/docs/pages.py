"""Executable documentation pages: find the fenced blocks of a Markdown page that the test suite runs.

A page marks each fenced block it wants checked with an HTML comment on the line just before
the fence (invisible on the site):

``<!-- run -->``
    A ``python`` block is executed (one that starts with ``>>>`` is run as a doctest session,
    each example's output compared); all the run blocks of one page share one namespace (and one
    temporary working directory). A ``console`` block holds ``$ deleverage ...`` commands
    (continued with a trailing backslash); each runs through the CLI in the page's working
    directory, and the lines after a command, up to the next ``$``, are its expected output
    (standard output only; an empty expectation is not checked).
``<!-- run: exit=1 -->``
    As above, and every command of the block must exit with that status (default 0).
``<!-- output -->``
    The expected standard output of the python run block just before it.
``<!-- excerpt: PATH -->``
    The block is a verbatim excerpt of the repository file PATH (checked, not executed), so a
    page that shows ``examples/`` code cannot drift from it.
``<!-- not-run: REASON -->``
    Shown, not executed (e.g. a download that needs the network). The page must say so in
    visible text too; the marker makes the test suite account for every block.

Expected output is compared line by line after stripping trailing blanks, with doctest's
ELLIPSIS: ``...`` matches any text, including several lines.

In the working directory ``../shared/data`` is the real exchange data (a symbolic link to
``tests.conftest.shared_data_dir()``) and ``examples`` is the repository's ``examples/``, so
pages use the same paths as a checkout beside ``../shared``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MARKER = re.compile(r"^<!--\s*(run|output|not-run|excerpt)\s*(?::\s*(.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")


@dataclass
class Block:
    page: Path
    line: int                      # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None             # run / output / not-run / None
    argument: str = ""             # after the colon of the marker
    exit_status: int = 0

    @property
    def where(self) -> str:
        return f"{self.page.name}:{self.line}"


@dataclass
class Command:
    argv_text: str                 # the command as typed, without the "$ "
    expected: str
    line: int
    block: Block = field(repr=False)


def parse_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page`` with the marker on the line before its fence (or None)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i].lstrip())
        if not m:
            i += 1
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())
        fence = m.group(1)
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        marker = argument = None
        j = start - 1
        if j >= 0:
            mm = MARKER.match(lines[j].strip())
            if mm:
                marker, argument = mm.group(1), mm.group(2) or ""
        block = Block(page, start + 1, m.group(2).lower(), "\n".join(body), marker, argument or "")
        if marker == "run" and argument:
            em = re.fullmatch(r"exit\s*=\s*(\d+)", argument)
            if not em:
                raise ValueError(f"{block.where}: marker argument {argument!r}; expected 'exit=N'")
            block.exit_status = int(em.group(1))
        blocks.append(block)
        i += 1
    return blocks


def commands(block: Block) -> list[Command]:
    """The ``$ ...`` commands of a console block with the output shown after each."""
    out: list[Command] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if out:
                out[-1].expected += line + "\n"
            elif line.strip():
                raise ValueError(f"{block.where}: text before the first '$ ' command: {line!r}")
            i += 1
            continue
        first = i
        text = line[2:]
        while text.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text.rstrip()[:-1] + " " + lines[i].strip()
        out.append(Command(text.strip(), "", block.line + 1 + first, block))
        i += 1
    return out


def executable_pages(docs_dir: Path) -> list[Path]:
    """Pages under ``docs_dir`` with at least one run marker."""
    return sorted(p for p in docs_dir.rglob("*.md")
                  if any(b.marker == "run" for b in parse_blocks(p)))
