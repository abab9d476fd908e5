"""The project's user-facing error type.

Every error caused by bad input (a file, a row, a parameter) is a :class:`DeleverageError`
whose message says what was found and what was expected. The CLI prints these without a
traceback and exits with status 2; anything else is a bug and keeps its traceback.
"""


class DeleverageError(Exception):
    """Bad input: the message names the file/row/column or parameter and what was expected."""
