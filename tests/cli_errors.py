"""Shared assertion of the command-line input tests: bad input is one clear line on stderr."""

from __future__ import annotations

import pytest


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a refused command: nothing printed before it (no plan line), no
    stdout, no internal error or traceback."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert captured.out == ""
    assert "internal error" not in lines[0] and "Traceback" not in captured.err
    return lines[0]
