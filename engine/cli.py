"""The ``deleverage`` command.

Each subcommand lives in ``engine/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking the
parsed arguments and returning an exit code). The registry below is explicit.

Every failure ends in one line on stderr and an exit code: 2 for bad input (a
:class:`~risk.errors.DeleverageError`, a file that cannot be opened or written, a bad
option), 130 for Ctrl-C, 1 for an internal error (a bug: ``DELEVERAGE_DEBUG=1`` shows the
traceback). Help texts are plain text: the docstrings' reST markup is removed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings

from risk.errors import DeleverageError

# name of the module in engine.commands, in the order they appear in --help
COMMAND_MODULES: tuple[str, ...] = (
    "backtest",
    "stress", "demo",
    "report",
    "optimize",
    "data",
    "scenarios", "cascade",
    "liqmap",
)

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 1

# Library messages name Python parameters; each command shows its own option instead.
# (phrase in a library message, command) -> the command's words. "*" applies to every command.
_OPTION_WORDS: tuple[tuple[str, str, str], ...] = (
    ("(data_path= / --data-path)", "backtest", "(--data-path DIR)"),
    ("data='reconstructed'", "backtest", "--data-kind reconstructed"),
    ("data='reconstructed'", "*", "--data reconstructed"),
    ("set DELEVERAGE_SHARED_DATA or pass data_path=", "*", "set DELEVERAGE_SHARED_DATA or pass --data-path DIR"),
    ("(then run without data_path, or pass the cache folder)", "*",
     "(then run without --data-path, or pass the cache folder as --data-path)"),
    ("data_path= / --data-path", "*", "--data-path"),
    ("allow_gaps / --allow-gaps, or fill with fill_gaps / --fill-gaps", "*", "--allow-gaps"),
    ("(pass --allow-outliers (allow_outliers=True) to keep it)", "*", "(pass --allow-outliers to keep it)"),
    ("(funding_unit= in Python)", "*", ""),
    ("format= / --format", "*", "--format"),
    ("(pass require_complete=False to accept)", "*", ""),
    ("pass symbol=", "*", "pass --symbol"),
    ("(--funding-rate / PerpBroker(funding_rate=...)) or allow_no_funding=True", "*",
     "(--funding-rate RATE) or --no-funding"),
)


def cli_words(message: str, command: str | None) -> str:
    """``message`` with library parameter names replaced by ``command``'s options."""
    for phrase, cmd, words in _OPTION_WORDS:
        if phrase in message and cmd in ("*", command):
            message = message.replace(phrase, words)
    return re.sub(r" +([;,)])", r"\1", message).strip()


def one_line(message: str) -> str:
    """Collapse a multi-line message to one line (bullets become ``;``-separated)."""
    parts = [p.strip() for p in str(message).splitlines() if p.strip()]
    parts = [p[2:].strip() if p.startswith("- ") else p for p in parts]  # bullets, never an option's "--"
    return "; ".join(parts)


_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`~?([^`]+)`")


def plain(text: str | None) -> str | None:
    """Help text without reST/Markdown markup (``code``, :func:`x`, **bold**, ``Examples::``)."""
    if not text:
        return text
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`]+)`", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    return re.sub(r"(?m)^(\s*\S.*?)::\s*$", r"\1:", text)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("deleverage")
    except Exception:  # not installed (running from a source tree)
        return "unknown"


def _strategy_names() -> list[str]:
    from strategies import REGISTRY

    return list(REGISTRY)


def _clean(parser: argparse.ArgumentParser, names: list[str]) -> None:
    """Strip markup from ``parser`` and its subparsers; say the strategy names next to every strategy option."""
    parser.description = plain(parser.description)
    parser.epilog = plain(parser.epilog)
    listing = ", ".join(names)
    for action in parser._actions:
        action.help = plain(action.help) if isinstance(action.help, str) else action.help
        if action.dest in ("strategy", "strategies") and action.help != argparse.SUPPRESS and \
                listing not in " ".join(str(action.help or "").split()):
            action.help = f"{action.help} (one of: {listing})" if action.help else f"one of: {listing}"
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = plain(choice.help)
            for sub in dict.fromkeys(action.choices.values()):
                _clean(sub, names)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_INPUT, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    names = _strategy_names()
    parser = Parser(
        prog="deleverage",
        description="Backtest leveraged perpetual-futures strategies and stress them through liquidation waterfalls.",
        epilog=f"strategies: {', '.join(names)}. `deleverage COMMAND --help` shows a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"deleverage {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"engine.commands.{name}").register(subparsers)
    _clean(parser, names)
    return parser


def _fail(command: str | None, message: str, code: int) -> int:
    print(f"deleverage: error: {cli_words(one_line(message), command)}", file=sys.stderr)
    return code


def _os_error(exc: OSError) -> str:
    """One line naming the path and what was wrong with it."""
    target = exc.filename if exc.filename is not None else "a file"
    said = {FileNotFoundError: "no such file or folder",
            FileExistsError: "already exists; expected a new path (or a folder the command may use)",
            IsADirectoryError: "is a folder; expected a file",
            NotADirectoryError: "a part of this path is a file; expected folders",
            PermissionError: "permission denied; expected a path you may read and write"}
    for cls, text in said.items():
        if isinstance(exc, cls):
            return f"{target}: {text}"
    return f"{target}: {exc.strerror or type(exc).__name__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    command = getattr(args, "command", None)
    try:
        with warnings.catch_warnings():
            if not os.environ.get("DELEVERAGE_DEBUG"):  # numeric warnings are not messages for a user
                warnings.simplefilter("ignore", RuntimeWarning)
            return int(args.func(args) or 0)
    except DeleverageError as exc:
        return _fail(command, str(exc), EXIT_INPUT)
    except KeyboardInterrupt:
        if sys.stderr.isatty():  # after the terminal's "^C"
            print("", file=sys.stderr)
        return _fail(command, f"{command or 'deleverage'} interrupted by Ctrl-C", EXIT_INTERRUPTED)
    except BrokenPipeError:  # `deleverage ... | head`: the reader left; stop quietly
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush does not fail
        except OSError:
            pass
        return 141
    except OSError as exc:
        return _fail(command, _os_error(exc), EXIT_INPUT)
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, never a traceback (unless asked)
        if os.environ.get("DELEVERAGE_DEBUG"):
            raise
        return _fail(command, f"internal error ({type(exc).__name__}: {one_line(str(exc))[:300]}); this is a bug in "
                     "deleverage, please report it (DELEVERAGE_DEBUG=1 shows the traceback)", EXIT_INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
