"""The tutorials run: every marked block of every executable docs page is executed and its shown
output compared (conventions in ``tests/docs/pages.py``).

One test per page: python blocks share the page's namespace, console blocks' ``deleverage``
commands run through the installed CLI, all in one temporary working directory in which
``../shared/data`` is the real exchange data.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, shared_data_dir
from tests.docs.pages import Block, commands, executable_pages, parse_blocks

DOCS = REPO_ROOT / "docs"
TUTORIALS = DOCS / "tutorials"
PAGES = executable_pages(DOCS) + [REPO_ROOT / "README.md"]
CHECKER = doctest.OutputChecker()


def normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def assert_output(where: str, expected: str, got: str) -> None:
    want, have = normalise(expected), normalise(got)
    if not CHECKER.check_output(want, have, doctest.ELLIPSIS):
        raise AssertionError(f"{where}: the output differs from the page.\n--- page\n{want}--- got\n{have}")


def cli_argv(text: str, where: str) -> list[str]:
    argv = shlex.split(text)
    if not argv or argv[0] != "deleverage":
        raise AssertionError(f"{where}: a run block may only hold 'deleverage ...' commands, got {text!r}")
    script = Path(sys.executable).with_name("deleverage")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]
    return head + argv[1:]


def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    shared = shared_data_dir()
    if shared.is_dir():
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "data").symlink_to(shared.resolve(), target_is_directory=True)
    if (REPO_ROOT / "examples").is_dir():
        (work / "examples").symlink_to(REPO_ROOT / "examples", target_is_directory=True)
    return work


def run_console(block: Block, cwd: Path) -> None:
    env = dict(os.environ, COLUMNS="120", PYTHONPATH=str(REPO_ROOT))
    for cmd in commands(block):
        where = f"{block.page.name}:{cmd.line}"
        proc = subprocess.run(cli_argv(cmd.argv_text, where), cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)
        if proc.returncode != block.exit_status:
            raise AssertionError(f"{where}: `{cmd.argv_text}` exited {proc.returncode}, expected "
                                 f"{block.exit_status}\n--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}")
        if cmd.expected.strip():
            # an expected error line may be on stderr: compare both streams when the exit is non-zero
            got = proc.stdout if block.exit_status == 0 else proc.stdout + proc.stderr
            assert_output(where, cmd.expected, got)


def run_doctest(block: Block, namespace: dict) -> None:
    """A ``>>>`` session: each example's output is compared (doctest, ELLIPSIS)."""
    test = doctest.DocTestParser().get_doctest(block.text, namespace, block.where, str(block.page), block.line)
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=report.write, clear_globs=False)
    if result.failed:
        raise AssertionError(f"{block.where}: {result.failed} of {result.attempted} examples failed\n{report.getvalue()}")


def run_page(page: Path, tmp_path: Path) -> None:
    blocks = parse_blocks(page)
    cwd = workdir(tmp_path)
    namespace: dict = {"__name__": f"docs_page_{page.stem}"}
    last_stdout: str | None = None
    old = Path.cwd()
    os.chdir(cwd)
    try:
        for block in blocks:
            if block.marker == "run" and block.lang in ("python", "pycon") and block.text.lstrip().startswith(">>>"):
                run_doctest(block, namespace)
                last_stdout = None
            elif block.marker == "run" and block.lang == "python":
                buf = io.StringIO()
                code = compile(block.text, f"{page.relative_to(REPO_ROOT)}:{block.line}", "exec")
                with contextlib.redirect_stdout(buf):
                    exec(code, namespace)
                last_stdout = buf.getvalue()
            elif block.marker == "run" and block.lang in ("console", "shell", "sh", "bash"):
                run_console(block, cwd)
                last_stdout = None
            elif block.marker == "run":
                raise AssertionError(f"{block.where}: cannot run a {block.lang!r} block")
            elif block.marker == "excerpt":
                source = (REPO_ROOT / block.argument).read_text(encoding="utf-8")
                assert block.text.strip("\n") in source, f"{block.where}: not a verbatim excerpt of {block.argument}"
            elif block.marker == "output":
                if last_stdout is None:
                    raise AssertionError(f"{block.where}: an output block must follow a python run block")
                assert_output(block.where, block.text, last_stdout)
                last_stdout = None
    finally:
        os.chdir(old)


def test_tutorial_pages_exist() -> None:
    tutorials = sorted(p.name for p in TUTORIALS.glob("*.md"))
    assert tutorials, "no tutorial pages under docs/tutorials"
    assert set(tutorials) <= {p.name for p in PAGES}, "every tutorial page has blocks that run"
    assert any(b.marker == "run" for b in parse_blocks(REPO_ROOT / "README.md")), "the README example runs"


@pytest.mark.parametrize("page", [p for p in PAGES if p.parent == TUTORIALS], ids=lambda p: p.stem)
def test_every_block_accounted_for(page: Path) -> None:
    """A tutorial's code block either runs, is the output of one, or says why it does not run."""
    for block in parse_blocks(page):
        if block.lang in ("python", "console", "shell", "sh", "bash", "toml", ""):
            assert block.marker, (f"{block.where}: a {block.lang or 'plain'} block without a marker "
                                  "(<!-- run -->, <!-- output --> or <!-- not-run: reason -->)")
        if block.marker == "not-run":
            assert block.argument, f"{block.where}: not-run needs a reason"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT).with_suffix("")))
def test_page_runs(page: Path, tmp_path: Path, shared_data: Path) -> None:
    run_page(page, tmp_path)
